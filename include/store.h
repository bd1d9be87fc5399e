/*
 * store: the maildrop interface. Protocol code sees only this header.
 *
 * A driver (store_maildir.c, later store_mbox.c) fills a struct store_ops
 * and is found by name through store_driver(). A maildrop is opened,
 * locked and scanned by one blocking call, made from a worker thread;
 * every other call is cheap and is made from the event loop. Message
 * indexes are 0-based here; the protocol adds 1.
 *
 * The lock is exclusive across sessions and across processes: a second
 * open of the same maildrop fails with STORE_INUSE until the first is
 * committed or closed.
 */
#ifndef EVPOP3D_STORE_H
#define EVPOP3D_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "evpop3d.h"

enum store_err {
	STORE_OK = 0,
	STORE_TEMP,	/* transient: -ERR [SYS/TEMP] */
	STORE_PERM,	/* permanent: -ERR [SYS/PERM] */
	STORE_INUSE,	/* locked by another session: -ERR [IN-USE] */
	STORE_GONE,	/* the message was removed by another program */
};

struct maildrop {
	const struct store_ops	*ops;	/* drivers embed this first */
};

struct store_reader {
	const struct store_ops	*ops;	/* drivers embed this first */
};

struct store_ops {
	const char *name;

	/*
	 * Open, lock and scan the maildrop at path (already expanded).
	 * Blocking; thread-safe. On error writes a reason for the log to err.
	 */
	enum store_err	(*open)(const char *path, struct maildrop **md_r,
			    char *err, size_t errlen);
	size_t		(*count)(const struct maildrop *md);
	/* Wire size in octets (see wire.h). */
	uint64_t	(*size)(const struct maildrop *md, size_t i);
	/* Unique id: 1..70 chars in 0x21..0x7E, stable across sessions. */
	const char	*(*uidl)(const struct maildrop *md, size_t i);

	/* Stream the raw message; wire.h turns it into wire format. */
	enum store_err	(*msg_open)(struct maildrop *md, size_t i,
			    struct store_reader **r_r);
	/* Up to len bytes; returns > 0, 0 at the end, -1 on error. */
	ssize_t		(*msg_read)(struct store_reader *r, void *buf, size_t len);
	void		(*msg_close)(struct store_reader *r);

	/*
	 * UPDATE (RFC 1939 section 6): remove messages i with del[i] != 0,
	 * then unlock and free md. *failed_r counts removals that failed.
	 * Returns STORE_OK when every removal succeeded.
	 */
	enum store_err	(*commit)(struct maildrop *md, const uint8_t *del,
			    size_t *failed_r);
	/* Unlock and free md, removing nothing. */
	void		(*close)(struct maildrop *md);
};

/* The driver registered under name ("maildir"), or NULL. */
const struct store_ops *store_driver(const char *name);
/* The name of the i-th registered driver, NULL past the last one. */
const char	*store_driver_name(size_t i);

/*
 * Expand a location template: %u user, %n local part (before '@'), %d
 * domain (after '@', "" if none), %h home, %% a percent sign. Returns 0, or
 * -1 if the result does not fit, names an unknown escape, or uses %h/%d
 * when they are empty.
 */
int	store_expand_location(const char *tmpl, const char *user,
	    const char *home, char *out, size_t outlen);

/* For drivers: a failed system call's errno as a store error (permission
 * problems are permanent, the rest temporary). */
enum store_err	 store_errno(int errnum);

/*
 * For drivers: "<what> <path>: <strerror>" into err; returns
 * store_errno(errnum). Thread-safe (strerror_r).
 */
enum store_err	 store_fail(int errnum, char *err, size_t errlen,
		    const char *what, const char *path);

/* The RFC 2449/3206 response code for err: "[SYS/TEMP]", ... or "". */
const char *store_err_code(enum store_err err);

/* Shorthands that dispatch through md->ops. */
static inline size_t maildrop_count(const struct maildrop *md)
{ return md->ops->count(md); }
static inline uint64_t maildrop_size(const struct maildrop *md, size_t i)
{ return md->ops->size(md, i); }
static inline const char *maildrop_uidl(const struct maildrop *md, size_t i)
{ return md->ops->uidl(md, i); }

#endif
