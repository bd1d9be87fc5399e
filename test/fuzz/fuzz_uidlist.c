/*
 * fuzz_uidlist: the dovecot-uidlist reader and the evpop3d-uidl-cutoff
 * reader (store/maildir/maildir_uidlist.h) on arbitrary file contents.
 *
 * Input: byte 0 picks the options (the Maildir's message count, a
 * migration cutoff, a want() callback), the rest is the file. It is
 * written as <dir>/dovecot-uidlist and loaded: 1 with a list whose
 * UIDVALIDITY is not 0 and whose kept records are bounded as the header
 * promises (2 * nmsgs + 1000), or 0 with a reason, never -1 (the file is
 * readable). Every base name the file mentions is then looked up, in
 * file order and backwards, and a found record must have a UID > 0, not
 * above the highest read. The same bytes are read as the cutoff file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/maildir/maildir_uidlist.h"
#include "lib/log.h"
#include "fuzz.h"

/* want(): names whose length is even are the Maildir's. */
static int
want_even(void *arg, const char *name, size_t len)
{
	(void)arg;
	(void)name;
	return len % 2 == 0;
}

/* Look up the name after the last ':' or ' ' of one line. */
static void
lookup_line(struct maildir_uidlist *ul, const char *line, const char *eol)
{
	const struct maildir_uidlist_rec	*r;
	const char				*k;

	for (k = eol; k > line && k[-1] != ':' && k[-1] != ' '; k--)
		;
	r = maildir_uidlist_lookup(ul, k, (size_t)(eol - k));
	if (r != NULL) {
		FUZZ_CHECK(r->uid > 0);
		FUZZ_CHECK(r->uid <= maildir_uidlist_max_uid(ul));
	}
}

/* Every line's name, in file order, then backwards. */
static void
lookup_all(struct maildir_uidlist *ul, const char *p, size_t len)
{
	const char	*end = p + len, *line, *eol;

	for (line = p; line < end; line = eol + 1) {
		if ((eol = memchr(line, '\n', (size_t)(end - line))) == NULL)
			eol = end;
		lookup_line(ul, line, eol);
	}
	for (eol = end; eol > p; eol = line - 1) {
		for (line = eol; line > p && line[-1] != '\n'; line--)
			;
		lookup_line(ul, line, eol);
		if (line == p)
			break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maildir_uidlist_opts	 o;
	struct maildir_uidlist		*ul = NULL;
	const char			*file;
	char				 path[512];
	size_t				 len;
	uint32_t			 v, u;
	int				 r;

	if (size < 1)
		return 0;
	memset(&o, 0, sizeof(o));
	o.nmsgs = (size_t)(data[0] & 0x0f) * 3;
	o.max_uid = (data[0] & 0x10) ? (uint32_t)(data[0] >> 5) * 7 + 1 : 0;
	if (data[0] & 0x80)
		o.want = want_even;
	file = (const char *)data + 1;
	len = size - 1;

	snprintf(path, sizeof(path), "%s/%s", fuzz_dir(),
	    MAILDIR_UIDLIST_FILE);
	fuzz_write_file(path, file, len);
	r = maildir_uidlist_load(fuzz_dir(), &o, &ul);
	FUZZ_CHECK(r == 0 || r == 1);
	if (r == 1) {
		FUZZ_CHECK(ul != NULL);
		FUZZ_CHECK(maildir_uidlist_uidvalidity(ul) > 0);
		FUZZ_CHECK(maildir_uidlist_count(ul) <= 2 * o.nmsgs + 1000);
		lookup_all(ul, file, len);
		maildir_uidlist_free(ul);
	} else {
		FUZZ_CHECK(ul == NULL && o.why != NULL);
	}

	snprintf(path, sizeof(path), "%s/%s", fuzz_dir(),
	    MAILDIR_UIDLIST_CUTOFF_FILE);
	fuzz_write_file(path, file, len);
	r = maildir_uidlist_cutoff_load(fuzz_dir(), &v, &u);
	FUZZ_CHECK(r == 1 || r == -1);
	return 0;
}
