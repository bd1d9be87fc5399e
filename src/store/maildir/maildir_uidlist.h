/*
 * maildir_uidlist: a read-only reader of Dovecot's <Maildir>/dovecot-uidlist,
 * so that a Maildir Dovecot has served keeps its POP3 UIDLs (issue 4,
 * "Migration without re-downloads"; the driver's maildir/uidl.c uses it).
 *
 * The file maps each message's base name (the file name up to the first
 * ':', which a flag change or a move from new/ to cur/ keeps) to its IMAP
 * UID, and carries the mailbox's UIDVALIDITY. Dovecot's default POP3
 * UIDL, "%08Xu%08Xv", is made of those two; a UIDL Dovecot saved
 * (pop3_save_uidl) or a migration script wrote (courier-dovecot-migrate.pl)
 * is in the record's P field. Two versions exist:
 *
 *	1 <uidvalidity> <nextuid>			(Dovecot 1.0, Courier's
 *	<uid> <filename>				 courierimapuiddb)
 *
 *	3 V<uidvalidity> N<nextuid> [G<guid>] ...	(Dovecot 1.1 and later)
 *	<uid> [<key><value> ...] :<filename>
 *
 * Version 3 record fields used here: P<pop3 uidl> (an empty value means
 * "the base name", Dovecot's shorthand) and O<pop3 order> (Dovecot lists
 * messages with one first, by it). S<size>, W<vsize>, G<guid> and unknown
 * keys are skipped. Version 2 (a few Dovecot development snapshots) is
 * refused, as current Dovecot refuses it.
 *
 * It is read as current Dovecot (maildir-uidlist.c) reads it, and any
 * deviation makes the whole file unusable ("no uidlist"), never a crash:
 * a bad version or header, a UIDVALIDITY or next UID of 0, a record whose
 * UID is 0, not above the previous one or (version 1) not below the next
 * UID, a file name that holds '/' or (version 3) is empty. So does what
 * Dovecot would accept but we do not: a NUL byte, a line over
 * MAILDIR_UIDLIST_LINE_MAX, a file over MAILDIR_UIDLIST_FILE_MAX, a
 * symbolic link or anything but a regular file, and more records than the
 * Maildir can need (below). A file that exists but cannot be read
 * (permissions, I/O) is an error for the caller, not "no uidlist".
 * A last line without its newline is ignored, as Dovecot ignores it: it is
 * an append in progress. When two records name one base name, the later
 * one wins, as in Dovecot.
 *
 * Memory is bounded by the Maildir, not by the file, which any user who
 * can write his Maildir can fill: the file is read whole (at most
 * MAILDIR_UIDLIST_FILE_MAX bytes) and at most 2 * nmsgs + 1000 records
 * are kept (56-72 bytes each). Dovecot keeps the records of expunged
 * mail until it rewrites the list, and never rewrites it once POP3 users
 * have moved to evpop3d and delete what they download, so a list may
 * well hold more: then only the records of messages the Maildir has (the
 * caller's want()) are kept, and a list with more than that even so (one
 * name listed again and again) is unusable. Measured peak RSS of a whole
 * login (store_maildir open(), Release build): the worst case, a 32 MiB
 * list of 3.1 million short records, 36 MB for a Maildir of one message
 * (3.4 MB without a list; 159 MB before these bounds) and 55 MB for one
 * of 100,000 (19 MB without; 174 MB before); a 127 MiB list (603 MB
 * before) is not read. A real list of 100,000 records (6.9 MB) adds 10.5
 * MB to the 19 MB of a 100,000-message login.
 *
 * Migration cutoff (the caller's business, maildir/uidl.c): with max_uid
 * set, records above it are not read at all (nor checked: parsing stops
 * at the first one, the UIDs being increasing), and a file larger than
 * MAILDIR_UIDLIST_FILE_MAX is read up to that size, usable if the cutoff
 * lies within. The cutoff itself is kept in <Maildir>/evpop3d-uidl-cutoff,
 * a file of ours, one line:
 *
 *	evpop3d-uidl-cutoff 1 V<uidvalidity> U<highest listed UID>
 *
 * (decimal, no leading zeros; U0 means "no Dovecot ids", and then V may
 * be 0 too), written through tmp/ and rename() and read strictly: any
 * other content is damage.
 *
 * Locking: none is needed for reading. Dovecot writes the file under its
 * dovecot-uidlist.lock dotlock, and either appends whole lines or writes
 * a new file and rename()s it into place, so an open() sees one complete
 * version (plus, at worst, a torn last line, see above). This reader never
 * writes, creates or locks any of Dovecot's files.
 *
 * Threads: a list is used by one thread at a time (a lookup moves a
 * hint); load it on the thread that opens the maildrop (it reads a file).
 */
#ifndef EVPOP3D_MAILDIR_UIDLIST_H
#define EVPOP3D_MAILDIR_UIDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAILDIR_UIDLIST_FILE		"dovecot-uidlist"
#define MAILDIR_UIDLIST_FILE_MAX	(32u * 1024 * 1024)
#define MAILDIR_UIDLIST_LINE_MAX	4096	/* bytes, newline included */
#define MAILDIR_UIDLIST_CUTOFF_FILE	"evpop3d-uidl-cutoff"

struct maildir_uidlist;

/* What the list says about one message. */
struct maildir_uidlist_rec {
	uint32_t	 uid;		/* IMAP UID, > 0 */
	uint32_t	 order;		/* O field, if has_order */
	bool		 has_order;
	/*
	 * P field: NULL without one; "" for "the base name" (Dovecot writes
	 * that when the UIDL it saved equals the base name); else the UIDL
	 * as written, which may not be a valid unique-id: check it.
	 */
	const char	*pop3_uidl;
};

/* How to load a list, and why it was not usable. */
struct maildir_uidlist_opts {
	/* In. */
	size_t		  nmsgs;	/* messages in the Maildir: at most */
					/* 2 * nmsgs + 1000 records are kept */
	uint32_t	  max_uid;	/* > 0: read records up to this UID */
	/*
	 * When the list has more records than that: 1 if the base name
	 * (len bytes, not terminated) is a message of the Maildir, else 0.
	 * NULL: such a list is unusable.
	 */
	int		(*want)(void *arg, const char *name, size_t len);
	void		 *arg;
	/* Out, when load() says 0. */
	const char	 *why;		/* NULL: there is no file; else why */
					/* it is unusable (a static string) */
	size_t		  line;		/* the damaged line (1: the header), */
					/* or 0 */
};

/*
 * Read <root>/dovecot-uidlist as o says. Returns 1 and the list in *ul_r;
 * 0 and NULL when there is no usable list (missing, or unusable as
 * described above: o->why, o->line); -1 and NULL with errno set when it
 * exists but could not be read (EACCES, EIO, EMFILE, ENOMEM...): the
 * caller should fail rather than serve other ids for one session.
 */
int	maildir_uidlist_load(const char *root, struct maildir_uidlist_opts *o,
	    struct maildir_uidlist **ul_r);

/* The list's UIDVALIDITY (> 0). */
uint32_t maildir_uidlist_uidvalidity(const struct maildir_uidlist *ul);

/* The number of base names with a record kept. */
size_t	maildir_uidlist_count(const struct maildir_uidlist *ul);

/* The highest UID of the records read, kept or not; 0 if none. */
uint32_t maildir_uidlist_max_uid(const struct maildir_uidlist *ul);

/*
 * The record of a message file name (len bytes; only the part before the
 * first ':' counts, so a name with or without its ":2,<flags>" will do),
 * or NULL. Points into ul. Fastest when names are looked up in UID order.
 */
const struct maildir_uidlist_rec *
	maildir_uidlist_lookup(struct maildir_uidlist *ul, const char *name,
	    size_t len);

void	maildir_uidlist_free(struct maildir_uidlist *ul);

/*
 * Read <root>/evpop3d-uidl-cutoff: 1 and its values, 0 if there is none,
 * -1 with errno set if it cannot be read, or EBADMSG if it is damaged
 * (anything but the one line above, a symbolic link, not a regular file).
 */
int	maildir_uidlist_cutoff_load(const char *root, uint32_t *uidvalidity_r,
	    uint32_t *max_uid_r);

/*
 * Write <root>/evpop3d-uidl-cutoff: to <root>/tmp/, fsync()ed, then
 * renamed into place. The caller holds the maildrop lock (one writer).
 * 0, or -1 with errno set (nothing left behind in tmp/).
 */
int	maildir_uidlist_cutoff_save(const char *root, uint32_t uidvalidity,
	    uint32_t max_uid);

#endif
