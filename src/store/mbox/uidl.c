/*
 * uidl: the visible messages and their UIDLs.
 *
 * UIDL. A valid X-UIDL header (RFC 1939 section 7: 1..70 chars in
 * 0x21..0x7E) wins: the id a former POP3 server stored. Otherwise the
 * [pop3] uidl_format if set (%m the MD5 below, %u the message's X-UID, %v
 * X-IMAPbase's first number in the first message: Dovecot's mbox headers;
 * %f has no value), otherwise the hex MD5 of the header block the client
 * sees (%m). A message whose id an earlier one already has falls back to
 * its MD5, then "MD5-2", "MD5-3", ... So appending mail changes no id,
 * and deleting mail changes none but that of a later message sharing the
 * deleted one's X-UIDL or header block (the same Message-ID and Received
 * lines: in practice the same message delivered twice), which inherits
 * its id.
 *
 * The UW-IMAP/Dovecot pseudo message (X-IMAP or X-IMAPbase and the
 * Subject "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA") is no POP3
 * message: it is not listed and always kept.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/idtab.h"
#include "store/mbox/mbox_int.h"
#include "store/store.h"
#include "store/uidl_format.h"

/*
 * The UIDL table (idtab.h) holds indexes into mb->msgs: is message i's
 * uidl key (len bytes)? Keys come from mail (X-UIDL): the table's random
 * seed keeps chosen ids from making a login quadratic.
 */
static bool
mb_uidl_is(const void *arg, uint32_t i, const char *key, size_t len)
{
	const struct mb_msg	*msgs = arg;

	return idtab_key_is(msgs[i].uidl, key, len);
}

/*
 * Claim id (len bytes) for m if no earlier message has it: 1 if it is
 * m's now, 0 if taken, -1 out of memory. copy: id is not in the arena.
 */
static inline int
mb_claim(struct mb *mb, struct idtab *t, struct mb_msg *m, const char *id,
    size_t len, bool copy)
{
	uint64_t	 h;
	size_t		 s;

	s = idtab_find(t, id, len, mb_uidl_is, mb->msgs, &h);
	if (idtab_used(t, s))
		return 0;
	m->uidl = copy ? arena_strndup(&mb->arena, id, len) : id;
	if (m->uidl == NULL)
		return -1;
	idtab_set(t, s, h, (uint32_t)(m - mb->msgs));
	return 1;
}

/*
 * Give each visible message its UIDL (see the top of the file): the
 * first of X-UIDL, uidl_format, MD5, MD5-2, MD5-3, ... that no earlier
 * message has. Earlier messages choose first, so appending mail never
 * changes an id.
 */
enum store_err
mb_make_uidls(struct mb *mb, const char *fmt, char *err, size_t errlen)
{
	struct uidl_vars v;
	struct idtab	 t;
	struct mb_msg	*m;
	char		 buf[POP3_UIDL_MAX + 1];
	size_t		 i, k;
	bool		 uses_v;
	int		 len, r = 0;

	if (fmt == NULL)
		fmt = "";
	uses_v = *fmt != '\0' && uidl_format_uses(fmt, 'v');
	if (idtab_init(&t, mb->nvis) == -1)
		goto nomem;
	for (i = 0; i < mb->nvis; i++) {
		m = mb_vis(mb, i);
		if (m->xuidl != NULL && (r = mb_claim(mb, &t, m, m->xuidl,
		    strlen(m->xuidl), false)) != 0)
			goto next;
		if (*fmt != '\0') {
			memset(&v, 0, sizeof(v));
			v.md5 = m->md5;
			v.has_uid = m->has_xuid && (mb->has_uidvalidity ||
			    !uses_v);
			v.uid = m->xuid;
			v.uidvalidity = mb->uidvalidity;
			len = uidl_format_expand(fmt, &v, buf, sizeof(buf));
			if (len > 0 && (r = mb_claim(mb, &t, m, buf,
			    (size_t)len, true)) != 0)
				goto next;
		}
		if ((r = mb_claim(mb, &t, m, m->md5, strlen(m->md5),
		    false)) != 0)
			goto next;
		for (k = 2; r == 0; k++) {
			len = snprintf(buf, sizeof(buf), "%s-%zu", m->md5, k);
			r = mb_claim(mb, &t, m, buf, (size_t)len, true);
		}
next:
		if (r == -1) {
			idtab_free(&t);
			goto nomem;
		}
	}
	idtab_free(&t);
	return STORE_OK;
nomem:
	return store_fail(ENOMEM, err, errlen, "mbox", mb->path);
}

/* The visible messages, their total size. */
enum store_err
mb_make_vis(struct mb *mb, char *err, size_t errlen)
{
	size_t	 i, nhidden = 0;

	for (i = 0; i < mb->nmsgs; i++)
		nhidden += mb->msgs[i].hidden;
	mb->nvis = mb->nmsgs - nhidden;
	if (nhidden > 0) {
		mb->vis = reallocarray(NULL, mb->nvis > 0 ? mb->nvis : 1,
		    sizeof(*mb->vis));
		if (mb->vis == NULL)
			return store_fail(ENOMEM, err, errlen, "mbox",
			    mb->path);
		for (i = 0, nhidden = 0; i < mb->nmsgs; i++)
			if (!mb->msgs[i].hidden)
				mb->vis[nhidden++] = (uint32_t)i;
	}
	mb->total = 0;
	for (i = 0; i < mb->nvis; i++)
		mb->total += mb_vis(mb, i)->size;
	return STORE_OK;
}
