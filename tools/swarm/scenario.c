/*
 * scenario: parser and interpreter of the swarm scenario language (see
 * scenario.h for the language).
 *
 * The parser is a single pass over the lines.  Blocks are kept on a small
 * stack; `end` emits the block's closing instruction and patches the
 * opening one's jump.  Loop slots are allocated by nesting depth, so
 * sibling loops share slots and a session needs 3 + 2 * depth int64s.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grow.h"
#include "scenario.h"

#define SC_MAX_VERBS	64
#define SC_MAX_MARKS	64
#define SC_INT_WIDTH	20		/* longest decimal of an int64 */
#define SC_FILE_MAX	(1 << 20)	/* a scenario is a small text file */

struct cvar {
	char		*name;
	char		*value;
	int		 from_def;	/* value came from --var */
	int		 set_seen;	/* a `set` statement named it */
};

struct block {
	uint8_t		 op;		/* SC_FOR, SC_REPEAT, SC_LOOP, SC_PIPE_BEGIN */
	uint32_t	 pc;		/* the opening instruction */
	unsigned	 line;
	int		 has_wait;	/* loop: an expect or pause inside */
	char		 var[SC_NAME_MAX + 1];	/* for: the loop variable */
	uint16_t	 var_slot;
};

struct parser {
	const char	*name;
	unsigned	 line;
	struct sc_prog	*p;
	uint32_t	 capinsns;
	uint32_t	 capparts;
	uint32_t	 captext;
	struct cvar	*consts;
	size_t		 nconsts;
	uint32_t	 capconsts;
	struct sc_def	*defs;
	size_t		 ndefs;
	struct block	 stack[SC_MAX_DEPTH];
	int		 depth;
	int		 in_pipe;
	int		 connected;
	int		 closed;
	char		*err;
	size_t		 errlen;
};

static const char *const builtin_names[] = {
	"user", "password", "session", "count", "size",
};

static const char *const op_names[] = {
	[SC_FOR] = "for", [SC_REPEAT] = "repeat", [SC_LOOP] = "loop",
	[SC_PIPE_BEGIN] = "pipeline",
};

static int	perr(struct parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Record "name:line: message"; always returns -1. */
static int
perr(struct parser *ps, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (ps->err == NULL || ps->errlen == 0)
		return -1;
	n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
oom(struct parser *ps)
{
	return perr(ps, "out of memory");
}

static int
valid_name(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > SC_NAME_MAX)
		return 0;
	if (!isalpha((unsigned char)s[0]) && s[0] != '_')
		return 0;
	for (i = 1; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

static int
is_builtin(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < sizeof(builtin_names) / sizeof(builtin_names[0]); i++)
		if (strlen(builtin_names[i]) == len &&
		    memcmp(builtin_names[i], s, len) == 0)
			return 1;
	return 0;
}

static int
name_is(const char *s, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(s, name, len) == 0;
}

/* Strict decimal (optional '-'); returns -1 if s is not one. */
static int
parse_int(const char *s, size_t len, int64_t *v)
{
	int	 neg = 0;
	uint64_t acc = 0;
	size_t	 i = 0;

	if (len > 0 && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == len)
		return -1;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		acc = acc * 10 + (uint64_t)(s[i] - '0');
		if (acc > (uint64_t)INT64_MAX)
			return -1;
	}
	*v = neg ? -(int64_t)acc : (int64_t)acc;
	return 0;
}

/* ------------------------------------------------------------ variables */

static struct cvar *
const_find(struct parser *ps, const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < ps->nconsts; i++)
		if (name_is(s, len, ps->consts[i].name))
			return &ps->consts[i];
	return NULL;
}

static struct cvar *
const_add(struct parser *ps, const char *s, size_t len, const char *value,
    int from_def)
{
	struct cvar	*c;

	if (swarm_grow((void **)&ps->consts, &ps->capconsts, ps->nconsts + 1,
	    sizeof(*ps->consts)) == -1)
		return NULL;
	c = &ps->consts[ps->nconsts];
	memset(c, 0, sizeof(*c));
	if ((c->name = strndup(s, len)) == NULL ||
	    (c->value = strdup(value)) == NULL) {
		free(c->name);
		return NULL;
	}
	c->from_def = from_def;
	ps->nconsts++;
	return c;
}

/* A --var for this name, if any (marked used). */
static struct sc_def *
def_find(struct parser *ps, const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < ps->ndefs; i++)
		if (name_is(s, len, ps->defs[i].name)) {
			ps->defs[i].used = 1;
			return &ps->defs[i];
		}
	return NULL;
}

/*
 * A constant: from `set` or, failing that, from --var.  Returns 1 with *c_r
 * set, 0 if there is none, -1 when out of memory.
 */
static int
const_lookup(struct parser *ps, const char *s, size_t len, struct cvar **c_r)
{
	struct sc_def	*d;

	if ((*c_r = const_find(ps, s, len)) != NULL)
		return 1;
	if ((d = def_find(ps, s, len)) == NULL)
		return 0;
	if ((*c_r = const_add(ps, s, len, d->value, 1)) == NULL)
		return oom(ps);
	return 1;
}

/* The slot of an enclosing loop variable, or -1. */
static int
loopvar_slot(struct parser *ps, const char *s, size_t len)
{
	int	 i;

	for (i = ps->depth - 1; i >= 0; i--)
		if (ps->stack[i].op == SC_FOR &&
		    name_is(s, len, ps->stack[i].var))
			return ps->stack[i].var_slot;
	return -1;
}

enum ref_kind { REF_NONE, REF_USER, REF_PASSWORD, REF_INT, REF_CONST };

struct ref {
	enum ref_kind	 kind;
	uint16_t	 slot;
	const char	*value;
};

static int
resolve(struct parser *ps, const char *s, size_t len, struct ref *r)
{
	struct cvar	*c;
	int		 slot, found;

	memset(r, 0, sizeof(*r));
	if (!valid_name(s, len))
		return perr(ps, "bad variable name '{%.*s}'", (int)len, s);
	if (name_is(s, len, "user"))
		r->kind = REF_USER;
	else if (name_is(s, len, "password"))
		r->kind = REF_PASSWORD;
	else if (name_is(s, len, "session")) {
		r->kind = REF_INT;
		r->slot = SC_SLOT_SESSION;
	} else if (name_is(s, len, "count")) {
		r->kind = REF_INT;
		r->slot = SC_SLOT_COUNT;
	} else if (name_is(s, len, "size")) {
		r->kind = REF_INT;
		r->slot = SC_SLOT_SIZE;
	} else if ((slot = loopvar_slot(ps, s, len)) >= 0) {
		r->kind = REF_INT;
		r->slot = (uint16_t)slot;
	} else if ((found = const_lookup(ps, s, len, &c)) == 1) {
		r->kind = REF_CONST;
		r->value = c->value;
	} else if (found == -1)
		return -1;
	else
		return perr(ps, "unknown variable '%.*s'", (int)len, s);
	return 0;
}

/* ------------------------------------------------------------ templates */

/* Append bytes to the literal pool. */
static int
text_add(struct parser *ps, const char *s, size_t len)
{
	struct sc_prog	*p = ps->p;

	if (swarm_grow((void **)&p->text, &ps->captext, p->textlen + len + 1, 1) == -1)
		return oom(ps);
	memcpy(p->text + p->textlen, s, len);
	p->text[p->textlen + len] = '\0';
	p->textlen += len;
	return 0;
}

static int
part_add(struct parser *ps, uint8_t kind, uint16_t slot, uint32_t off,
    uint32_t len)
{
	struct sc_prog	*p = ps->p;

	if (swarm_grow((void **)&p->parts, &ps->capparts, p->nparts + 1,
	    sizeof(*p->parts)) == -1)
		return oom(ps);
	p->parts[p->nparts].kind = kind;
	p->parts[p->nparts].slot = slot;
	p->parts[p->nparts].off = off;
	p->parts[p->nparts].len = len;
	p->nparts++;
	return 0;
}

/* Append literal bytes to template t, merging with its last literal part. */
static int
tmpl_lit(struct parser *ps, struct sc_tmpl *t, const char *s, size_t len)
{
	struct sc_prog	*p = ps->p;
	struct sc_part	*last;
	size_t		 off = p->textlen;

	if (len == 0)
		return 0;
	if (text_add(ps, s, len) == -1)
		return -1;
	last = t->nparts > 0 ? &p->parts[t->first + t->nparts - 1] : NULL;
	if (last != NULL && last->kind == SC_PART_LIT &&
	    last->off + last->len == off) {
		last->len += (uint32_t)len;
		return 0;
	}
	if (part_add(ps, SC_PART_LIT, 0, (uint32_t)off, (uint32_t)len) == -1)
		return -1;
	t->nparts++;
	return 0;
}

/*
 * Split s into literal and variable parts; *maxlen_r gets the longest
 * possible expansion.
 */
static int
parse_tmpl(struct parser *ps, const char *s, struct sc_tmpl *t,
    size_t *maxlen_r)
{
	struct ref	 r;
	const char	*q, *end;
	size_t		 maxlen = 0;

	t->first = ps->p->nparts;
	t->nparts = 0;
	while (*s != '\0') {
		if (s[0] == '{' && s[1] == '{') {
			if (tmpl_lit(ps, t, "{", 1) == -1)
				return -1;
			maxlen++;
			s += 2;
			continue;
		}
		if (s[0] != '{') {
			q = strchr(s, '{');
			if (q == NULL)
				q = s + strlen(s);
			if (tmpl_lit(ps, t, s, (size_t)(q - s)) == -1)
				return -1;
			maxlen += (size_t)(q - s);
			s = q;
			continue;
		}
		if ((end = strchr(s + 1, '}')) == NULL)
			return perr(ps, "unterminated '{' in \"%s\"", s);
		if (resolve(ps, s + 1, (size_t)(end - s - 1), &r) == -1)
			return -1;
		switch (r.kind) {
		case REF_CONST:
			if (tmpl_lit(ps, t, r.value, strlen(r.value)) == -1)
				return -1;
			maxlen += strlen(r.value);
			break;
		case REF_USER:
		case REF_PASSWORD:
			if (part_add(ps, r.kind == REF_USER ? SC_PART_USER :
			    SC_PART_PASSWORD, 0, 0, 0) == -1)
				return -1;
			t->nparts++;
			maxlen += SC_VALUE_MAX;
			break;
		case REF_INT:
			if (part_add(ps, SC_PART_INT, r.slot, 0, 0) == -1)
				return -1;
			t->nparts++;
			maxlen += SC_INT_WIDTH;
			break;
		case REF_NONE:
			break;
		}
		s = end + 1;
	}
	*maxlen_r = maxlen;
	return 0;
}

/* One integer term: digits or a single {variable}. */
static int
parse_term(struct parser *ps, const char *s, size_t len, struct sc_term *t)
{
	struct ref	 r;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	memset(t, 0, sizeof(*t));
	if (len >= 2 && s[0] == '{' && s[len - 1] == '}' && s[1] != '{') {
		if (memchr(s + 1, '}', len - 2) != NULL)
			return perr(ps, "not an integer: '%.*s'", (int)len, s);
		if (resolve(ps, s + 1, len - 2, &r) == -1)
			return -1;
		switch (r.kind) {
		case REF_INT:
			t->is_slot = 1;
			t->slot = r.slot;
			return 0;
		case REF_CONST:
			if (parse_int(r.value, strlen(r.value), &t->val) == -1)
				return perr(ps, "variable '%.*s' is not an "
				    "integer: '%s'", (int)(len - 2), s + 1,
				    r.value);
			return 0;
		default:
			return perr(ps, "variable '%.*s' is not an integer",
			    (int)(len - 2), s + 1);
		}
	}
	if (parse_int(s, len, &t->val) == -1)
		return perr(ps, "not an integer: '%.*s'", (int)len, s);
	return 0;
}

/* X or min(X,Y). */
static int
parse_iexpr(struct parser *ps, const char *s, size_t len, struct sc_iexpr *x)
{
	const char	*comma;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	memset(x, 0, sizeof(*x));
	if (len == 0)
		return perr(ps, "missing number");
	if (len > 5 && strncmp(s, "min(", 4) == 0 && s[len - 1] == ')') {
		comma = memchr(s + 4, ',', len - 5);
		if (comma == NULL)
			return perr(ps, "min() needs two arguments");
		x->is_min = 1;
		if (parse_term(ps, s + 4, (size_t)(comma - s - 4), &x->a) == -1)
			return -1;
		return parse_term(ps, comma + 1,
		    (size_t)(s + len - 1 - comma - 1), &x->b);
	}
	return parse_term(ps, s, len, &x->a);
}

/* ------------------------------------------------------------ emitting */

/* The innermost enclosing `loop` block, or NULL. */
static const struct block *
in_loop(struct parser *ps)
{
	int	 i;

	for (i = ps->depth - 1; i >= 0; i--)
		if (ps->stack[i].op == SC_LOOP)
			return &ps->stack[i];
	return NULL;
}

static struct sc_insn *
emit(struct parser *ps, uint8_t op)
{
	struct sc_prog	*p = ps->p;
	struct sc_insn	*in;

	if (swarm_grow((void **)&p->insns, &ps->capinsns, p->ninsns + 1,
	    sizeof(*p->insns)) == -1) {
		oom(ps);
		return NULL;
	}
	in = &p->insns[p->ninsns++];
	memset(in, 0, sizeof(*in));
	in->op = op;
	in->line = ps->line;
	in->in_loop = in_loop(ps) != NULL;
	return in;
}

static int
intern(struct parser *ps, char ***tab, uint16_t *n, int max, const char *s,
    size_t len, uint16_t *idx)
{
	char	**q;
	uint16_t i;

	for (i = 0; i < *n; i++)
		if (strlen((*tab)[i]) == len &&
		    strncasecmp((*tab)[i], s, len) == 0) {
			*idx = i;
			return 0;
		}
	if (*n >= max) {
		*idx = 0;
		return 1;
	}
	if ((q = reallocarray(*tab, (size_t)*n + 1, sizeof(*q))) == NULL)
		return oom(ps);
	*tab = q;
	if ((q[*n] = strndup(s, len)) == NULL)
		return oom(ps);
	*idx = (*n)++;
	return 0;
}

/* Verb of a send template: its first word if that is all literal. */
static int
send_verb(struct parser *ps, const struct sc_tmpl *t, uint16_t *verb)
{
	const struct sc_part	*pt;
	const char		*s;
	char			 word[9];
	size_t			 i, n;

	*verb = SC_VERB_DYNAMIC;
	if (t->nparts == 0)
		return 0;
	pt = &ps->p->parts[t->first];
	if (pt->kind != SC_PART_LIT)
		return 0;
	s = ps->p->text + pt->off;
	for (n = 0; n < pt->len && s[n] != ' '; n++)
		;
	if (n == pt->len && t->nparts > 1)
		return 0;		/* "RE{x}": the word is not all literal */
	*verb = SC_VERB_OTHER;
	if (n == 0 || n >= sizeof(word))
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]))
			return 0;
		word[i] = (char)toupper((unsigned char)s[i]);
	}
	if (intern(ps, &ps->p->verbs, &ps->p->nverbs, SC_MAX_VERBS, word, n,
	    verb) == -1)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ statements */

static int
push(struct parser *ps, uint8_t op, struct block **b)
{
	if (ps->depth >= SC_MAX_DEPTH)
		return perr(ps, "blocks nested deeper than %d", SC_MAX_DEPTH);
	*b = &ps->stack[ps->depth++];
	memset(*b, 0, sizeof(**b));
	(*b)->op = op;
	(*b)->pc = ps->p->ninsns;
	(*b)->line = ps->line;
	return 0;
}

/* Slots of a block opened at the current depth (before push()). */
static void
block_slots(struct parser *ps, uint16_t *var, uint16_t *lim)
{
	uint16_t	 base = (uint16_t)(SC_SLOT_LOOP + 2 * ps->depth);

	*var = base;
	*lim = (uint16_t)(base + 1);
	if (ps->p->nints < base + 2)
		ps->p->nints = (uint16_t)(base + 2);
}

/* A statement that waits: every enclosing `loop` can not spin. */
static void
note_wait(struct parser *ps)
{
	int	 i;

	for (i = 0; i < ps->depth; i++)
		ps->stack[i].has_wait = 1;
}

static int
need_connection(struct parser *ps, const char *kw)
{
	if (!ps->connected)
		return perr(ps, "'%s' before 'connect'", kw);
	if (ps->closed)
		return perr(ps, "'%s' after 'close'", kw);
	return 0;
}

static int
no_pipe(struct parser *ps, const char *kw)
{
	if (ps->in_pipe)
		return perr(ps, "'%s' is not allowed inside a pipeline", kw);
	return 0;
}

static int
no_args(struct parser *ps, const char *kw, const char *rest)
{
	if (*rest != '\0')
		return perr(ps, "'%s' takes no arguments", kw);
	return 0;
}

static int
st_set(struct parser *ps, char *rest)
{
	struct cvar	*c;
	struct sc_def	*d;
	char		*v;
	size_t		 n;

	n = strcspn(rest, " \t");
	v = rest + n;
	v += strspn(v, " \t");
	if (n == 0 || *v == '\0')
		return perr(ps, "usage: set NAME VALUE");
	if (!valid_name(rest, n))
		return perr(ps, "bad variable name '%.*s'", (int)n, rest);
	if (is_builtin(rest, n))
		return perr(ps, "'%.*s' is a built-in variable", (int)n, rest);
	if (loopvar_slot(ps, rest, n) >= 0)
		return perr(ps, "'%.*s' is a loop variable", (int)n, rest);
	if ((c = const_find(ps, rest, n)) != NULL) {
		if (c->set_seen || !c->from_def)
			return perr(ps, "variable '%.*s' set twice", (int)n,
			    rest);
		c->set_seen = 1;	/* --var already gave the value */
		return 0;
	}
	if ((d = def_find(ps, rest, n)) != NULL)
		v = (char *)d->value;
	if ((c = const_add(ps, rest, n, v, d != NULL)) == NULL)
		return oom(ps);
	c->set_seen = 1;
	return 0;
}

static int
st_expect(struct parser *ps, char *rest)
{
	struct sc_insn	*in;
	char		*w[5], *save = NULL, *tok;
	int		 nw = 0, i = 1;
	uint8_t		 status, check = SC_CHK_NONE, multi = 0;

	if (need_connection(ps, "expect") == -1)
		return -1;
	for (tok = strtok_r(rest, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save)) {
		if (nw == 5)
			return perr(ps, "expect: too many arguments");
		w[nw++] = tok;
	}
	if (nw == 0)
		return perr(ps, "expect: missing status (OK, ERR or ANY)");
	if (strcasecmp(w[0], "OK") == 0)
		status = SC_ST_OK;
	else if (strcasecmp(w[0], "ERR") == 0)
		status = SC_ST_ERR;
	else if (strcasecmp(w[0], "ANY") == 0)
		status = SC_ST_ANY;
	else
		return perr(ps, "expect: bad status '%s' (OK, ERR or ANY)",
		    w[0]);
	if (i < nw && strcmp(w[i], "multiline") == 0) {
		multi = 1;
		i++;
	}
	if ((in = emit(ps, SC_EXPECT)) == NULL)
		return -1;
	if (i < nw) {
		if (strcmp(w[i], "stat") == 0) {
			if (multi)
				return perr(ps, "expect: 'stat' is a "
				    "single-line reply");
			check = SC_CHK_STAT;
		} else if (strcmp(w[i], "list") == 0)
			check = SC_CHK_LIST;
		else if (strcmp(w[i], "uidl") == 0)
			check = SC_CHK_UIDL;
		else if (strcmp(w[i], "top") == 0)
			check = SC_CHK_TOP;
		else if (strcmp(w[i], "retr") == 0) {
			check = SC_CHK_RETR;
			if (i + 1 >= nw)
				return perr(ps, "expect: 'retr' needs a "
				    "message number");
			if (parse_iexpr(ps, w[i + 1], strlen(w[i + 1]),
			    &in->x) == -1)
				return -1;
			i++;
		} else
			return perr(ps, "expect: unknown check '%s'", w[i]);
		if (check != SC_CHK_STAT)
			multi = 1;
		i++;
	}
	if (i < nw)
		return perr(ps, "expect: unexpected '%s'", w[i]);
	in->status = status;
	in->check = check;
	in->multiline = multi;
	note_wait(ps);
	return 0;
}

static int
st_send(struct parser *ps, char *rest)
{
	struct sc_insn	*in;
	struct sc_tmpl	 t;
	size_t		 maxlen = 0;
	uint16_t	 verb;

	if (need_connection(ps, "send") == -1)
		return -1;
	if (*rest == '\0')
		return perr(ps, "send: missing text");
	if (parse_tmpl(ps, rest, &t, &maxlen) == -1)
		return -1;
	if (maxlen > SC_LINE_MAX)
		return perr(ps, "send: line may exceed %d octets", SC_LINE_MAX);
	if (send_verb(ps, &t, &verb) == -1)
		return -1;
	if ((in = emit(ps, SC_SEND)) == NULL)
		return -1;
	in->text = t;
	in->verb = verb;
	return 0;
}

static int
st_for(struct parser *ps, char *rest)
{
	struct sc_insn	*in;
	struct block	*b = NULL;
	char		*var, *in_kw, *range, *dots;
	size_t		 nvar;
	uint16_t	 vslot, lslot;

	var = rest;
	nvar = strcspn(var, " \t");
	in_kw = var + nvar;
	in_kw += strspn(in_kw, " \t");
	if (nvar == 0 || strncmp(in_kw, "in", 2) != 0 ||
	    (in_kw[2] != ' ' && in_kw[2] != '\t'))
		return perr(ps, "usage: for VAR in A..B");
	range = in_kw + 2;
	range += strspn(range, " \t");
	if (!valid_name(var, nvar))
		return perr(ps, "bad variable name '%.*s'", (int)nvar, var);
	if (is_builtin(var, nvar) || loopvar_slot(ps, var, nvar) >= 0 ||
	    const_find(ps, var, nvar) != NULL)
		return perr(ps, "loop variable '%.*s' is already a variable",
		    (int)nvar, var);
	if (*range == '\0')
		return perr(ps, "usage: for VAR in A..B");
	if ((dots = strstr(range, "..")) == NULL || dots == range ||
	    dots[2 + strspn(dots + 2, " \t")] == '\0')
		return perr(ps, "bad range '%s' (want A..B)", range);
	block_slots(ps, &vslot, &lslot);
	if ((in = emit(ps, SC_FOR)) == NULL)
		return -1;
	in->var = vslot;
	in->lim = lslot;
	if (parse_iexpr(ps, range, (size_t)(dots - range), &in->x) == -1 ||
	    parse_iexpr(ps, dots + 2, strlen(dots + 2), &in->y) == -1)
		return -1;
	if (push(ps, SC_FOR, &b) == -1)
		return -1;
	b->pc--;			/* the FOR emitted just above */
	memcpy(b->var, var, nvar);
	b->var[nvar] = '\0';
	b->var_slot = vslot;
	return 0;
}

static int
st_repeat(struct parser *ps, char *rest)
{
	struct sc_insn	*in;
	struct block	*b = NULL;
	uint16_t	 vslot, lslot;

	if (*rest == '\0')
		return perr(ps, "usage: repeat N");
	block_slots(ps, &vslot, &lslot);
	if ((in = emit(ps, SC_REPEAT)) == NULL)
		return -1;
	in->lim = lslot;
	if (parse_iexpr(ps, rest, strlen(rest), &in->x) == -1)
		return -1;
	if (push(ps, SC_REPEAT, &b) == -1)
		return -1;
	b->pc--;
	return 0;
}

static int
st_block(struct parser *ps, uint8_t op, const char *kw, char *rest)
{
	struct block	*b;

	if (no_args(ps, kw, rest) == -1 || no_pipe(ps, kw) == -1)
		return -1;
	if (op == SC_PIPE_BEGIN && need_connection(ps, kw) == -1)
		return -1;
	if (push(ps, op, &b) == -1)
		return -1;
	if (emit(ps, op) == NULL)
		return -1;
	if (op == SC_PIPE_BEGIN)
		ps->in_pipe = 1;
	else
		ps->p->has_loop = 1;
	return 0;
}

static int
st_end(struct parser *ps, char *rest)
{
	struct block	*b;
	struct sc_insn	*in;
	uint8_t		 op;

	if (no_args(ps, "end", rest) == -1)
		return -1;
	if (ps->depth == 0)
		return perr(ps, "'end' without a block");
	b = &ps->stack[ps->depth - 1];
	switch (b->op) {
	case SC_FOR:
		op = SC_FOR_NEXT;
		break;
	case SC_REPEAT:
		op = SC_REPEAT_NEXT;
		break;
	case SC_LOOP:
		if (!b->has_wait)
			return perr(ps, "'loop' (line %u) has no expect or "
			    "pause: it would spin", b->line);
		op = SC_LOOP_NEXT;
		break;
	default:
		op = SC_PIPE_END;
		ps->in_pipe = 0;
		break;
	}
	if ((in = emit(ps, op)) == NULL)
		return -1;
	in->jump = b->pc;
	ps->p->insns[b->pc].jump = ps->p->ninsns;
	ps->depth--;
	return 0;
}

static int
st_pause(struct parser *ps, char *rest)
{
	struct sc_insn	*in;

	if (no_pipe(ps, "pause") == -1)
		return -1;
	if (*rest == '\0')
		return perr(ps, "usage: pause MS");
	if ((in = emit(ps, SC_PAUSE)) == NULL)
		return -1;
	/* Where a pause that ends because the run stops goes on. */
	if (in->in_loop)
		in->jump = in_loop(ps)->pc;
	if (parse_iexpr(ps, rest, strlen(rest), &in->x) == -1)
		return -1;
	if (!in->x.is_min && !in->x.a.is_slot && in->x.a.val < 0)
		return perr(ps, "pause: negative time");
	note_wait(ps);
	return 0;
}

static int
st_mark(struct parser *ps, char *rest)
{
	struct sc_insn	*in;
	uint16_t	 idx;
	int		 r;

	if (!valid_name(rest, strlen(rest)))
		return perr(ps, "usage: mark NAME");
	if (no_pipe(ps, "mark") == -1)
		return -1;
	if ((in = emit(ps, SC_MARK)) == NULL)
		return -1;
	r = intern(ps, &ps->p->marks, &ps->p->nmarks, SC_MAX_MARKS, rest,
	    strlen(rest), &idx);
	if (r == -1)
		return -1;
	if (r == 1)
		return perr(ps, "more than %d marks", SC_MAX_MARKS);
	in->mark = idx;
	if (strcmp(rest, "ready") == 0)
		ps->p->ready_mark = idx;
	return 0;
}

static int
st_connect(struct parser *ps, char *rest)
{
	if (no_args(ps, "connect", rest) == -1 || no_pipe(ps, "connect") == -1)
		return -1;
	if (ps->connected)
		return perr(ps, "only one 'connect' per scenario");
	if (ps->depth > 0)
		return perr(ps, "'connect' must be outside blocks");
	ps->connected = 1;
	return emit(ps, SC_CONNECT) == NULL ? -1 : 0;
}

static int
st_close(struct parser *ps, char *rest)
{
	if (no_args(ps, "close", rest) == -1 || no_pipe(ps, "close") == -1 ||
	    need_connection(ps, "close") == -1)
		return -1;
	if (ps->depth > 0)
		return perr(ps, "'close' must be outside blocks");
	ps->closed = 1;
	note_wait(ps);
	return emit(ps, SC_CLOSE) == NULL ? -1 : 0;
}

/* Cut a comment: '#' at the start or after a blank. */
static void
strip_comment(char *s)
{
	char	*p;

	for (p = s; *p != '\0'; p++)
		if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
}

static int
parse_line(struct parser *ps, char *s)
{
	char	*kw, *rest, *e;
	size_t	 n;

	strip_comment(s);
	s += strspn(s, " \t");
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	if (*s == '\0')
		return 0;
	kw = s;
	n = strcspn(kw, " \t");
	rest = kw + n;
	if (*rest != '\0') {
		*rest++ = '\0';
		rest += strspn(rest, " \t");
	}

	if (strcmp(kw, "set") == 0)
		return st_set(ps, rest);
	if (strcmp(kw, "connect") == 0)
		return st_connect(ps, rest);
	if (strcmp(kw, "expect") == 0)
		return st_expect(ps, rest);
	if (strcmp(kw, "send") == 0)
		return st_send(ps, rest);
	if (strcmp(kw, "pipeline") == 0)
		return st_block(ps, SC_PIPE_BEGIN, kw, rest);
	if (strcmp(kw, "loop") == 0)
		return st_block(ps, SC_LOOP, kw, rest);
	if (strcmp(kw, "for") == 0)
		return st_for(ps, rest);
	if (strcmp(kw, "repeat") == 0)
		return st_repeat(ps, rest);
	if (strcmp(kw, "end") == 0)
		return st_end(ps, rest);
	if (strcmp(kw, "pause") == 0)
		return st_pause(ps, rest);
	if (strcmp(kw, "mark") == 0)
		return st_mark(ps, rest);
	if (strcmp(kw, "close") == 0)
		return st_close(ps, rest);
	return perr(ps, "unknown statement '%s'", kw);
}

static void
parser_free(struct parser *ps)
{
	size_t	 i;

	for (i = 0; i < ps->nconsts; i++) {
		free(ps->consts[i].name);
		free(ps->consts[i].value);
	}
	free(ps->consts);
}

struct sc_prog *
sc_parse_string(const char *name, const char *text, struct sc_def *defs,
    size_t ndefs, char *err, size_t errlen)
{
	struct parser	 ps;
	struct sc_prog	*p;
	const char	*s, *nl;
	char		*line;
	size_t		 n;
	int		 rc = 0;
	uint16_t	 other;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&ps, 0, sizeof(ps));
	ps.name = name;
	ps.defs = defs;
	ps.ndefs = ndefs;
	ps.err = err;
	ps.errlen = errlen;
	for (n = 0; n < ndefs; n++)
		defs[n].used = 0;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->name = strdup(name)) == NULL) {
		free(p);
		perr(&ps, "out of memory");
		return NULL;
	}
	p->nints = SC_SLOT_LOOP;
	p->ready_mark = -1;
	ps.p = p;
	if (intern(&ps, &p->verbs, &p->nverbs, SC_MAX_VERBS, "OTHER", 5,
	    &other) == -1)
		goto fail;

	for (s = text; *s != '\0' && rc == 0; s = nl + (*nl != '\0')) {
		ps.line++;
		nl = strchr(s, '\n');
		if (nl == NULL)
			nl = s + strlen(s);
		if ((line = strndup(s, (size_t)(nl - s))) == NULL) {
			oom(&ps);
			goto fail;
		}
		rc = parse_line(&ps, line);
		free(line);
	}
	if (rc != 0)
		goto fail;
	if (ps.depth > 0) {
		ps.line = ps.stack[ps.depth - 1].line;
		perr(&ps, "'%s' without 'end'",
		    op_names[ps.stack[ps.depth - 1].op]);
		goto fail;
	}
	if (!ps.connected) {
		perr(&ps, "no 'connect' in the scenario");
		goto fail;
	}
	ps.line++;
	if (emit(&ps, SC_HALT) == NULL)
		goto fail;
	parser_free(&ps);
	return p;
fail:
	parser_free(&ps);
	sc_free(p);
	return NULL;
}

struct sc_prog *
sc_parse_file(const char *path, struct sc_def *defs, size_t ndefs, char *err,
    size_t errlen)
{
	struct sc_prog	*p;
	FILE		*f;
	char		*buf;
	size_t		 n;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(SC_FILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(buf, 1, SC_FILE_MAX + 1, f);
	if (ferror(f) || n > SC_FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ?
		    "read error" : "file too large");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL) {
		snprintf(err, errlen, "%s: NUL byte in scenario", path);
		free(buf);
		return NULL;
	}
	p = sc_parse_string(path, buf, defs, ndefs, err, errlen);
	free(buf);
	return p;
}

void
sc_free(struct sc_prog *p)
{
	uint16_t	 i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nverbs; i++)
		free(p->verbs[i]);
	for (i = 0; i < p->nmarks; i++)
		free(p->marks[i]);
	free(p->verbs);
	free(p->marks);
	free(p->insns);
	free(p->parts);
	free(p->text);
	free(p->name);
	free(p);
}

/* ------------------------------------------------------------ runtime */

void
sc_run_init(const struct sc_prog *prog, struct sc_run *r, int64_t *ints,
    int64_t session)
{
	memset(r, 0, sizeof(*r));
	memset(ints, 0, sizeof(*ints) * prog->nints);
	ints[SC_SLOT_SESSION] = session;
}

int64_t
sc_eval(const struct sc_iexpr *x, const int64_t *ints)
{
	int64_t	 a, b;

	a = x->a.is_slot ? ints[x->a.slot] : x->a.val;
	if (!x->is_min)
		return a;
	b = x->b.is_slot ? ints[x->b.slot] : x->b.val;
	return a < b ? a : b;
}

const struct sc_insn *
sc_step(const struct sc_prog *prog, struct sc_run *r, int64_t *ints,
    int stopping)
{
	const struct sc_insn	*in, *blk;
	unsigned		 steps;
	int64_t			 a, b;

	for (steps = 0; steps < SC_MAX_STEPS; steps++) {
		in = &prog->insns[r->pc];
		switch (in->op) {
		case SC_SEND:
			if (r->pipe == SC_PIPE_EXPECT) {
				r->pc++;
				continue;
			}
			return in;
		case SC_EXPECT:
			if (r->pipe == SC_PIPE_SEND) {
				r->pc++;
				continue;
			}
			return in;
		case SC_PIPE_BEGIN:
			r->pipe = SC_PIPE_SEND;
			r->pipe_pc = r->pc++;
			continue;
		case SC_PIPE_END:
			if (r->pipe == SC_PIPE_SEND)
				return in;
			r->pipe = SC_PIPE_NONE;
			if (r->stat_deferred) {
				ints[SC_SLOT_COUNT] = r->stat_count;
				ints[SC_SLOT_SIZE] = r->stat_size;
				r->stat_deferred = 0;
			}
			r->pc++;
			continue;
		case SC_FOR:
			a = sc_eval(&in->x, ints);
			b = sc_eval(&in->y, ints);
			ints[in->var] = a;
			ints[in->lim] = b;
			r->pc = a > b ? in->jump : r->pc + 1;
			continue;
		case SC_FOR_NEXT:
			blk = &prog->insns[in->jump];
			if (ints[blk->var] < ints[blk->lim]) {
				ints[blk->var]++;
				r->pc = in->jump + 1;
			} else
				r->pc++;
			continue;
		case SC_REPEAT:
			ints[in->lim] = sc_eval(&in->x, ints);
			r->pc = ints[in->lim] <= 0 ? in->jump : r->pc + 1;
			continue;
		case SC_REPEAT_NEXT:
			blk = &prog->insns[in->jump];
			r->pc = --ints[blk->lim] > 0 ? in->jump + 1 : r->pc + 1;
			continue;
		case SC_LOOP:
			r->pc = stopping ? in->jump : r->pc + 1;
			continue;
		case SC_LOOP_NEXT:
			r->pc = in->jump;
			continue;
		default:	/* connect, pause, mark, close, halt */
			return in;
		}
	}
	return NULL;
}

void
sc_done(const struct sc_prog *prog, struct sc_run *r, int64_t *ints)
{
	const struct sc_insn	*in = &prog->insns[r->pc];

	(void)ints;
	if (in->op == SC_HALT)
		return;
	if (in->op == SC_PIPE_END && r->pipe == SC_PIPE_SEND) {
		/* Second pass over the body: the expects. */
		r->pipe = SC_PIPE_EXPECT;
		r->pc = r->pipe_pc + 1;
		return;
	}
	r->pc++;
}

void
sc_set_stat(struct sc_run *r, int64_t *ints, int64_t count, int64_t size)
{
	if (r->pipe == SC_PIPE_EXPECT) {
		r->stat_deferred = 1;
		r->stat_count = count;
		r->stat_size = size;
		return;
	}
	ints[SC_SLOT_COUNT] = count;
	ints[SC_SLOT_SIZE] = size;
}

size_t
sc_fmt_i64(char *buf, int64_t v)
{
	char		 tmp[SC_INT_WIDTH + 1];
	uint64_t	 u;
	size_t		 n = 0, i = 0;

	if (v < 0) {
		buf[i++] = '-';
		u = (uint64_t)0 - (uint64_t)v;
	} else
		u = (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	while (n > 0)
		buf[i++] = tmp[--n];
	return i;
}

size_t
sc_expand(const struct sc_prog *prog, const struct sc_tmpl *t,
    const struct sc_ctx *ctx, char *buf, size_t size)
{
	const struct sc_part	*pt;
	const char		*src;
	char			 num[SC_INT_WIDTH + 1];
	size_t			 len = 0, n;
	uint32_t		 i;

	if (size == 0)
		return 0;
	for (i = 0; i < t->nparts; i++) {
		pt = &prog->parts[t->first + i];
		switch (pt->kind) {
		case SC_PART_LIT:
			src = prog->text + pt->off;
			n = pt->len;
			break;
		case SC_PART_USER:
			src = ctx->user;
			n = ctx->user_len;
			break;
		case SC_PART_PASSWORD:
			src = ctx->password;
			n = ctx->password_len;
			break;
		default:
			n = sc_fmt_i64(num, ctx->ints[pt->slot]);
			src = num;
			break;
		}
		if (n > size - 1 - len)
			n = size - 1 - len;
		memcpy(buf + len, src, n);
		len += n;
	}
	buf[len] = '\0';
	return len;
}

uint16_t
sc_verb_lookup(const struct sc_prog *prog, const char *line, size_t len)
{
	size_t		 n;
	uint16_t	 i;

	for (n = 0; n < len && line[n] != ' '; n++)
		;
	for (i = 1; i < prog->nverbs; i++)
		if (strlen(prog->verbs[i]) == n &&
		    strncasecmp(prog->verbs[i], line, n) == 0)
			return i;
	return SC_VERB_OTHER;
}
