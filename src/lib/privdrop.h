/*
 * privdrop: give up root before serving any client.
 *
 * The daemon starts as root (to bind port 110 or 995, and read keys and
 * the passwd-file), then becomes one unprivileged mail user (Dovecot's
 * vmail model): supplementary groups cleared, then setgid(), then
 * setuid(), then a check that root cannot be had back. glibc's setuid()
 * family applies to every thread of the process (the kernel's ids are
 * per thread; glibc signals each thread to change its own), so worker
 * threads created before the drop end up with the same ids.
 *
 * Two steps, so that `evpop3d -t` reports what the start would refuse:
 * privdrop_prepare() resolves the names and decides, privdrop_apply()
 * changes the ids. Neither knows the configuration file: the caller
 * passes [server] user, group and allow_root.
 */
#ifndef EVPOP3D_PRIVDROP_H
#define EVPOP3D_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privdrop {
	char	 user[64];	/* "" when there is nothing to drop to */
	char	 group[64];
	uid_t	 uid;
	gid_t	 gid;
	bool	 drop;		/* privdrop_apply() changes ids */
	bool	 as_root;	/* stays root: allow_root = yes */
};

/*
 * Decide what privdrop_apply() will do for a process running with the
 * current effective uid. user and group are names ("" or NULL: not set;
 * no group: the user's primary group).
 *
 *  - root, user set: drop to user (and group); a user of uid 0 counts
 *    as staying root;
 *  - root, no user: refused unless allow_root (then stays root);
 *  - not root, no user: run as is;
 *  - not root, user set: fine if it is already the current uid and gid,
 *    refused otherwise (only root can switch).
 *
 * Returns 0 with *pd_r filled, or -1 with one line in err naming the
 * key ("[server] user: unknown user 'vmail'").
 */
int	privdrop_prepare(const char *user, const char *group, bool allow_root,
	    struct privdrop *pd_r, char *err, size_t errlen);

/*
 * Change ids as decided: setgroups(0), setgid(), setuid(), then verify
 * that real, effective and saved ids are the new ones, that there are
 * no supplementary groups, and that setuid(0) now fails. Logs one line
 * (event=privdrop, or a warning event=running-as-root). Returns 0, or
 * -1 with the failing step in err: the caller must not serve then.
 */
int	privdrop_apply(const struct privdrop *pd, char *err, size_t errlen);

/*
 * After the drop: warn (event=file-unreadable) when path cannot be read
 * by the ids we now run with. what names the file in the line
 * ("passwd_file"). Returns 0 if readable, -1 if not.
 */
int	privdrop_check_readable(const char *what, const char *path);

#endif
