/*
 * privdrop: give up root before serving any client (see privdrop.h).
 *
 * The order is the one that cannot fail open: groups and gid while we
 * still may change them, the uid last, and then a check of every id and
 * of setuid(0), as OpenSMTPD and Dovecot do after their drops.
 */

#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/privdrop.h"

/* getpw*_r() and getgr*_r() buffer: a group with many members is big. */
#define PRIVDROP_NSS_BUF	65536

/* Look user up; 0, or -1 with the reason in err. */
static int
privdrop_user(const char *user, uid_t *uid_r, gid_t *gid_r, char *err,
    size_t errlen)
{
	struct passwd	 pw, *res = NULL;
	char		*buf;
	int		 rc;

	if ((buf = malloc(PRIVDROP_NSS_BUF)) == NULL) {
		snprintf(err, errlen, "[server] user: out of memory");
		return -1;
	}
	rc = getpwnam_r(user, &pw, buf, PRIVDROP_NSS_BUF, &res);
	if (res != NULL) {
		*uid_r = pw.pw_uid;
		*gid_r = pw.pw_gid;
	}
	free(buf);
	if (res == NULL) {
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			snprintf(err, errlen, "[server] user: cannot look up "
			    "'%.64s': %s", user, strerror(rc));
		else
			snprintf(err, errlen, "[server] user: unknown user "
			    "'%.64s' (not in the system's user database)",
			    user);
		return -1;
	}
	return 0;
}

/* Look group up; 0, or -1 with the reason in err. */
static int
privdrop_group(const char *group, gid_t *gid_r, char *err, size_t errlen)
{
	struct group	 gr, *res = NULL;
	char		*buf;
	int		 rc;

	if ((buf = malloc(PRIVDROP_NSS_BUF)) == NULL) {
		snprintf(err, errlen, "[server] group: out of memory");
		return -1;
	}
	rc = getgrnam_r(group, &gr, buf, PRIVDROP_NSS_BUF, &res);
	if (res != NULL)
		*gid_r = gr.gr_gid;
	free(buf);
	if (res == NULL) {
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			snprintf(err, errlen, "[server] group: cannot look up "
			    "'%.64s': %s", group, strerror(rc));
		else
			snprintf(err, errlen, "[server] group: unknown group "
			    "'%.64s' (not in the system's group database)",
			    group);
		return -1;
	}
	return 0;
}

/* See privdrop.h. */
int
privdrop_prepare(const char *user, const char *group, bool allow_root,
    struct privdrop *pd_r, char *err, size_t errlen)
{
	struct privdrop	 pd;
	bool		 root = geteuid() == 0;

	memset(&pd, 0, sizeof(pd));
	if (user == NULL)
		user = "";
	if (group == NULL)
		group = "";
	if (strlen(user) >= sizeof(pd.user) ||
	    strlen(group) >= sizeof(pd.group)) {
		snprintf(err, errlen, "[server] %s: name too long",
		    strlen(user) >= sizeof(pd.user) ? "user" : "group");
		return -1;
	}
	if (*user == '\0' && *group != '\0') {
		snprintf(err, errlen, "[server] group: set without [server] "
		    "user");
		return -1;
	}
	if (*user == '\0') {
		if (root && !allow_root) {
			snprintf(err, errlen, "refusing to run as root: set "
			    "[server] user (e.g. vmail) to the user to serve "
			    "as, or [server] allow_root = yes");
			return -1;
		}
		pd.as_root = root;
		*pd_r = pd;
		return 0;
	}
	if (privdrop_user(user, &pd.uid, &pd.gid, err, errlen) == -1)
		return -1;
	if (*group != '\0' && privdrop_group(group, &pd.gid, err, errlen) == -1)
		return -1;
	snprintf(pd.user, sizeof(pd.user), "%s", user);
	snprintf(pd.group, sizeof(pd.group), "%s", group);
	if (pd.uid == 0 && !allow_root) {
		snprintf(err, errlen, "[server] user: '%s' is root (uid 0): "
		    "refusing to run as root unless [server] allow_root = yes",
		    user);
		return -1;
	}
	if (!root) {
		if (pd.uid != geteuid() || pd.gid != getegid()) {
			snprintf(err, errlen, "[server] user: cannot switch to "
			    "'%s' (uid %lu, gid %lu): not started as root",
			    user, (unsigned long)pd.uid, (unsigned long)pd.gid);
			return -1;
		}
		*pd_r = pd;		/* already there: nothing to do */
		return 0;
	}
	pd.drop = pd.uid != 0;
	pd.as_root = pd.uid == 0;
	*pd_r = pd;
	return 0;
}

/* See privdrop.h. */
int
privdrop_apply(const struct privdrop *pd, char *err, size_t errlen)
{
	uid_t	ru, eu, su;
	gid_t	rg, eg, sg;

	if (pd->as_root) {
		log_warnx("event=running-as-root note=\"[server] allow_root = "
		    "yes: clients are served by uid 0\"");
		return 0;
	}
	if (!pd->drop)
		return 0;
	if (setgroups(0, NULL) == -1) {
		snprintf(err, errlen, "setgroups(0): %s", strerror(errno));
		return -1;
	}
	if (setresgid(pd->gid, pd->gid, pd->gid) == -1) {
		snprintf(err, errlen, "setresgid(%lu): %s",
		    (unsigned long)pd->gid, strerror(errno));
		return -1;
	}
	if (setresuid(pd->uid, pd->uid, pd->uid) == -1) {
		snprintf(err, errlen, "setresuid(%lu): %s",
		    (unsigned long)pd->uid, strerror(errno));
		return -1;
	}
	/* Trust nothing: every id, no groups, and no way back. */
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    ru != pd->uid || eu != pd->uid || su != pd->uid ||
	    rg != pd->gid || eg != pd->gid || sg != pd->gid) {
		snprintf(err, errlen, "ids not changed as asked");
		return -1;
	}
	if (getgroups(0, NULL) != 0) {
		snprintf(err, errlen, "supplementary groups still set");
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1) {
		snprintf(err, errlen, "root could be regained after the drop");
		return -1;
	}
	log_info("event=privdrop user=%s uid=%lu gid=%lu groups=none",
	    pd->user, (unsigned long)pd->uid, (unsigned long)pd->gid);
	return 0;
}

/* See privdrop.h. access() checks with the real ids: ours after a drop. */
int
privdrop_check_readable(const char *what, const char *path)
{
	if (access(path, R_OK) == 0)
		return 0;
	log_warn("event=file-unreadable key=%s file=%s uid=%lu gid=%lu "
	    "note=\"a change to it cannot be loaded: give the user read "
	    "access to it and search access to its directories\"", what,
	    path, (unsigned long)getuid(), (unsigned long)getgid());
	return -1;
}
