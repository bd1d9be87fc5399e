/*
 * logfmt: the logout line's format, compiled once, expanded per session.
 *
 * A compiled format is an array of ops, each a piece of literal text
 * (an offset and length into a copy of the format) and optionally a
 * variable. The literal of an op with a variable is that variable's
 * label, left out with it when the variable has no value.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fmt.h"
#include "lib/log.h"
#include "lib/logfmt.h"

/* Longest user name we quote in full (POP3 lines are shorter anyway). */
#define LOGFMT_USER_MAX	1024

struct logfmt_name {
	char		 letter;	/* Dovecot's one-letter form, or 0 */
	const char	*name;
	enum logfmt_var	 var;
};

/* Dovecot's pop3_logout_format letters and long names, and ours. */
static const struct logfmt_name logfmt_names[] = {
	{ 'i', "input", LOGFMT_INPUT },
	{ 'o', "output", LOGFMT_OUTPUT },
	{ 't', "top_count", LOGFMT_TOP_COUNT },
	{ 'p', "top_bytes", LOGFMT_TOP_BYTES },
	{ 'r', "retr_count", LOGFMT_RETR_COUNT },
	{ 'b', "retr_bytes", LOGFMT_RETR_BYTES },
	{ 'd', "deleted_count", LOGFMT_DELETED_COUNT },
	{ 'm', "message_count", LOGFMT_MESSAGE_COUNT },
	{ 's', "message_bytes", LOGFMT_MESSAGE_BYTES },
	{ 0, "size", LOGFMT_MESSAGE_BYTES },
	{ 0, "left", LOGFMT_LEFT },
	{ 'u', "user", LOGFMT_USER },
	{ 0, "rip", LOGFMT_RIP },
	{ 0, "lip", LOGFMT_LIP },
	{ 0, "reason", LOGFMT_REASON },
	{ 0, "tls", LOGFMT_TLS },
	{ 0, "state", LOGFMT_STATE },
	{ 0, "duration", LOGFMT_DURATION },
	{ 0, "duration_ms", LOGFMT_DURATION_MS },
	{ 0, "session", LOGFMT_SESSION },
};

#define LOGFMT_NNAMES	(sizeof(logfmt_names) / sizeof(logfmt_names[0]))
#define LOGFMT_NO_VAR	(-1)

struct logfmt_op {
	unsigned short	 off, len;	/* literal (label) in text */
	int		 var;		/* enum logfmt_var or LOGFMT_NO_VAR */
};

struct logfmt {
	char			*text;	/* literals, '%' sequences removed */
	struct logfmt_op	*ops;
	size_t			 n_ops;
	uint32_t		 uses;	/* bit per variable */
};

static int
logfmt_lookup_letter(char c)
{
	size_t i;

	for (i = 0; i < LOGFMT_NNAMES; i++)
		if (logfmt_names[i].letter == c)
			return (int)logfmt_names[i].var;
	return LOGFMT_NO_VAR;
}

static int
logfmt_lookup_name(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < LOGFMT_NNAMES; i++)
		if (strlen(logfmt_names[i].name) == len &&
		    memcmp(logfmt_names[i].name, name, len) == 0)
			return (int)logfmt_names[i].var;
	return LOGFMT_NO_VAR;
}

/*
 * Close the literal text[*start..end) into ops: with a variable, the part
 * after the last space becomes its label (its own op), the rest a plain
 * literal before it.
 */
static void
logfmt_push(struct logfmt *f, size_t *start, size_t end, int var)
{
	size_t	label = *start, i;

	if (var != LOGFMT_NO_VAR) {
		for (i = end; i > *start; i--)
			if (f->text[i - 1] == ' ') {
				label = i - 1;
				break;
			}
	} else
		label = end;
	if (label > *start)
		f->ops[f->n_ops++] = (struct logfmt_op){
		    .off = (unsigned short)*start,
		    .len = (unsigned short)(label - *start),
		    .var = LOGFMT_NO_VAR };
	if (var != LOGFMT_NO_VAR) {
		f->ops[f->n_ops++] = (struct logfmt_op){
		    .off = (unsigned short)label,
		    .len = (unsigned short)(end - label), .var = var };
		f->uses |= 1u << var;
	}
	*start = end;
}

int
logfmt_compile(const char *fmt, struct logfmt **fmt_r, char *why,
    size_t whylen)
{
	struct logfmt	*f;
	const char	*p, *close;
	size_t		 n = strlen(fmt), o = 0, start = 0, max_ops;
	int		 var;

	*fmt_r = NULL;
	if (n > LOGFMT_MAX_LEN) {
		snprintf(why, whylen, "longer than %d characters",
		    LOGFMT_MAX_LEN);
		return -1;
	}
	/* Each '%' adds at most two ops (literal, label+var); one more. */
	max_ops = 2 * n + 1;
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->text = malloc(n + 1)) == NULL ||
	    (f->ops = calloc(max_ops, sizeof(*f->ops))) == NULL) {
		snprintf(why, whylen, "out of memory");
		logfmt_free(f);
		return -1;
	}
	for (p = fmt; *p != '\0'; p++) {
		if (*p != '%') {
			f->text[o++] = *p;
			continue;
		}
		p++;
		if (*p == '%') {
			f->text[o++] = '%';
			continue;
		}
		if (*p == '\0') {
			snprintf(why, whylen, "'%%' at the end (write %%%% "
			    "for a '%%')");
			goto fail;
		}
		if (*p == '{') {
			if ((close = strchr(p + 1, '}')) == NULL) {
				snprintf(why, whylen, "unterminated '%%{' at "
				    "offset %zu", (size_t)(p - 1 - fmt));
				goto fail;
			}
			var = logfmt_lookup_name(p + 1, (size_t)(close - p - 1));
			if (var == LOGFMT_NO_VAR) {
				snprintf(why, whylen, "unknown variable "
				    "'%%{%.*s}'", (int)(close - p - 1 > 40 ? 40 :
				    close - p - 1), p + 1);
				goto fail;
			}
			p = close;
		} else if ((var = logfmt_lookup_letter(*p)) ==
		    LOGFMT_NO_VAR) {
			snprintf(why, whylen, "unknown variable '%%%c'",
			    *p >= 0x20 && *p < 0x7f ? *p : '?');
			goto fail;
		}
		logfmt_push(f, &start, o, var);
	}
	logfmt_push(f, &start, o, LOGFMT_NO_VAR);
	f->text[o] = '\0';
	*fmt_r = f;
	return 0;
 fail:
	logfmt_free(f);
	return -1;
}

void
logfmt_free(struct logfmt *f)
{
	if (f == NULL)
		return;
	free(f->text);
	free(f->ops);
	free(f);
}

bool
logfmt_uses(const struct logfmt *f, enum logfmt_var v)
{
	return f != NULL && (f->uses & (1u << v)) != 0;
}

/* The decimal value of a numeric variable into num; false if absent. */
static bool
logfmt_number(const struct logfmt_values *v, enum logfmt_var var,
    uint64_t *n_r)
{
	if (var == LOGFMT_DURATION_MS || var == LOGFMT_INPUT ||
	    var == LOGFMT_OUTPUT) {
		*n_r = var == LOGFMT_DURATION_MS ? v->duration_ms :
		    var == LOGFMT_INPUT ? v->input : v->output;
		return true;
	}
	if (!v->has_proto)
		return false;
	switch (var) {
	case LOGFMT_TOP_COUNT:		*n_r = v->top_count; break;
	case LOGFMT_TOP_BYTES:		*n_r = v->top_bytes; break;
	case LOGFMT_RETR_COUNT:		*n_r = v->retr_count; break;
	case LOGFMT_RETR_BYTES:		*n_r = v->retr_bytes; break;
	case LOGFMT_DELETED_COUNT:	*n_r = v->deleted_count; break;
	case LOGFMT_MESSAGE_COUNT:	*n_r = v->message_count; break;
	case LOGFMT_MESSAGE_BYTES:	*n_r = v->message_bytes; break;
	case LOGFMT_LEFT:
		*n_r = v->message_count > v->deleted_count ?
		    v->message_count - v->deleted_count : 0;
		break;
	default:
		return false;
	}
	return true;
}

/* n in decimal at the end of tmp (len >= 21); returns its start. */
static const char *
logfmt_u64(uint64_t n, char *tmp, size_t len)
{
	tmp[len - 1] = '\0';
	return fmt_u64_back(tmp + len - 1, n);
}

/*
 * The text of variable var into tmp (or a constant string); NULL when it
 * has no value in this session.
 */
static const char *
logfmt_value(const struct logfmt_values *v, int var, char *tmp, size_t len)
{
	uint64_t n;

	switch (var) {
	case LOGFMT_USER:
		if (!v->has_proto)
			return NULL;
		return v->user != NULL ? log_quote(tmp, len, v->user) : "-";
	case LOGFMT_RIP:
		return v->rip;
	case LOGFMT_LIP:
		return v->lip;
	case LOGFMT_REASON:
		return v->reason;
	case LOGFMT_TLS:
		return v->tls;
	case LOGFMT_STATE:
		return v->has_proto ? v->state : NULL;
	case LOGFMT_SESSION:
		snprintf(tmp, len, "%016" PRIx64, v->session);
		return tmp;
	case LOGFMT_DURATION:
		snprintf(tmp, len, "%" PRIu64 ".%03u", v->duration_ms / 1000,
		    (unsigned)(v->duration_ms % 1000));
		return tmp;
	default:
		if (!logfmt_number(v, (enum logfmt_var)var, &n))
			return NULL;
		/* Not snprintf(): the line's numbers are most of its cost. */
		return logfmt_u64(n, tmp, len);
	}
}

/* Append n bytes of s at *o in buf (len), as much as fits. */
static void
logfmt_put(char *buf, size_t len, size_t *o, const char *s, size_t n)
{
	if (*o + n > len - 1)
		n = len - 1 - *o;
	memcpy(buf + *o, s, n);
	*o += n;
}

size_t
logfmt_expand(const struct logfmt *f, const struct logfmt_values *v,
    char *buf, size_t len)
{
	const struct logfmt_op	*op;
	const char		*val;
	char			 tmp[LOG_QUOTED_SIZE(LOGFMT_USER_MAX)];
	size_t			 i, o = 0, skip;
	bool			 dropped = false;

	for (i = 0; i < f->n_ops && o < len - 1; i++) {
		op = &f->ops[i];
		val = NULL;
		if (op->var != LOGFMT_NO_VAR &&
		    (val = logfmt_value(v, op->var, tmp, sizeof(tmp))) == NULL) {
			dropped = true;	/* absent: its label goes too */
			continue;
		}
		/* What followed a dropped first field starts the line. */
		skip = o == 0 && dropped && op->len > 0 &&
		    f->text[op->off] == ' ' ? 1 : 0;
		logfmt_put(buf, len, &o, f->text + op->off + skip,
		    op->len - skip);
		if (val != NULL)
			logfmt_put(buf, len, &o, val, strlen(val));
	}
	buf[o] = '\0';
	return o;
}
