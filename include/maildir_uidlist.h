/*
 * maildir_uidlist: a read-only reader of Dovecot's <Maildir>/dovecot-uidlist,
 * so that a Maildir Dovecot has served keeps its POP3 UIDLs (issue 4,
 * "Migration without re-downloads"; store_maildir.c uses it).
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
 * deviation makes the whole file unusable ("no uidlist": the messages
 * keep their name-based ids), never a crash: a bad version or header, a
 * UIDVALIDITY or next UID of 0, a record whose UID is 0, not above the
 * previous one or (version 1) not below the next UID, a file name that
 * holds '/' or (version 3) is empty. So does what Dovecot would accept
 * but we do not: a NUL byte, a line over MAILDIR_UIDLIST_LINE_MAX, a file
 * over MAILDIR_UIDLIST_FILE_MAX (memory stays bounded: the file plus
 * about 60 bytes per record), a symbolic link or anything but a regular
 * file. A file that exists but cannot be read (permissions, I/O) is an
 * error for the caller, not "no uidlist".
 * A last line without its newline is ignored, as Dovecot ignores it: it is
 * an append in progress. When two records name one base name, the later
 * one wins, as in Dovecot.
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
#define MAILDIR_UIDLIST_FILE_MAX	(128u * 1024 * 1024)
#define MAILDIR_UIDLIST_LINE_MAX	4096	/* bytes, newline included */

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

/*
 * Read <root>/dovecot-uidlist. Returns 1 and the list in *ul_r; 0 and
 * NULL when there is no usable list (missing, or unusable as described
 * above); -1 and NULL with errno set when it exists but could not be
 * read (EACCES, EIO, EMFILE, ENOMEM...): the caller should fail rather
 * than serve other ids for one session.
 */
int	maildir_uidlist_load(const char *root, struct maildir_uidlist **ul_r);

/* The list's UIDVALIDITY (> 0). */
uint32_t maildir_uidlist_uidvalidity(const struct maildir_uidlist *ul);

/* The number of base names with a record. */
size_t	maildir_uidlist_count(const struct maildir_uidlist *ul);

/*
 * The record of a message file name (len bytes; only the part before the
 * first ':' counts, so a name with or without its ":2,<flags>" will do),
 * or NULL. Points into ul. Fastest when names are looked up in UID order.
 */
const struct maildir_uidlist_rec *
	maildir_uidlist_lookup(struct maildir_uidlist *ul, const char *name,
	    size_t len);

void	maildir_uidlist_free(struct maildir_uidlist *ul);

#endif
