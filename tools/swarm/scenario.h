/*
 * scenario: the evpop3d-swarm scenario language, compiled.
 *
 * A scenario file is parsed once into a flat, read-only program shared by
 * every session: an instruction array whose blocks (for, repeat, loop,
 * pipeline) are resolved into jump targets, and whose templates are
 * pre-split into literal and variable parts.  Variable names are resolved
 * at parse time: `set` constants (and --var overrides) are folded into the
 * literals, the per-session values ({session}, {count}, {size}, loop
 * variables) become indexes into a small int64 slot array, and {user} and
 * {password} are taken from the session's context.  The hot path never
 * hashes or compares names.
 *
 * The language, one statement per line ('#' at the start of a line or
 * after a blank starts a comment; indentation is free):
 *
 *	set NAME VALUE		constant, overridden by --var NAME=VALUE
 *	connect			open the TCP connection
 *	expect OK|ERR|ANY [multiline] [stat|list|uidl|retr N|top]
 *	send TEXT		TEXT CRLF (gathered when inside a pipeline)
 *	pipeline ... end	all sends, one write, then all expects
 *	for VAR in A..B ... end	integer loop; A and B are integers,
 *				{variables} or min(X,Y) of those
 *	repeat N ... end
 *	loop ... end		until the run is stopping
 *	pause MS
 *	mark NAME
 *	close
 *
 * In templates {name} expands a variable and {{ is a literal '{'.
 *
 * This module knows nothing of libevent or sockets: the engine asks
 * sc_step() for the next instruction that needs I/O or time, performs it,
 * and calls sc_done().  Control flow (loops, the two passes of a
 * pipeline, the stop flag) is handled here, so the unit test can drive a
 * program without a network.
 */
#ifndef SWARM_SCENARIO_H
#define SWARM_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#define SC_MAX_DEPTH	8		/* nesting of for/repeat/loop/pipeline */
#define SC_LINE_MAX	1024		/* longest expanded send line (w/o CRLF) */
#define SC_VALUE_MAX	255		/* longest {user} or {password} */
#define SC_NAME_MAX	31		/* longest variable or mark name */
#define SC_MAX_STEPS	1000000		/* control steps without a wait */

/* Built-in integer slots; loop slots follow. */
#define SC_SLOT_SESSION	0
#define SC_SLOT_COUNT	1
#define SC_SLOT_SIZE	2
#define SC_SLOT_LOOP	3

#define SC_VERB_OTHER	0		/* verb index of unknown commands */
#define SC_VERB_DYNAMIC	0xffff		/* send TEXT starts with a variable */

enum sc_op {
	SC_CONNECT,
	SC_EXPECT,
	SC_SEND,
	SC_PIPE_BEGIN,
	SC_PIPE_END,	/* returned by sc_step() in the send pass: flush */
	SC_FOR,
	SC_FOR_NEXT,
	SC_REPEAT,
	SC_REPEAT_NEXT,
	SC_LOOP,
	SC_LOOP_NEXT,
	SC_PAUSE,
	SC_MARK,
	SC_CLOSE,
	SC_HALT,	/* end of program */
};

enum sc_status {
	SC_ST_OK,
	SC_ST_ERR,
	SC_ST_ANY,
};

enum sc_check {
	SC_CHK_NONE,
	SC_CHK_STAT,
	SC_CHK_LIST,
	SC_CHK_UIDL,
	SC_CHK_RETR,
	SC_CHK_TOP,
};

enum sc_part_kind {
	SC_PART_LIT,		/* off/len into prog->text */
	SC_PART_USER,
	SC_PART_PASSWORD,
	SC_PART_INT,		/* slot */
};

struct sc_part {
	uint8_t		 kind;
	uint16_t	 slot;
	uint32_t	 off;
	uint32_t	 len;
};

struct sc_tmpl {
	uint32_t	 first;		/* index of the first part */
	uint32_t	 nparts;
};

/* An integer term: a constant or a slot; an expression is a or min(a, b). */
struct sc_term {
	uint8_t		 is_slot;
	uint16_t	 slot;
	int64_t		 val;
};

struct sc_iexpr {
	uint8_t		 is_min;
	struct sc_term	 a, b;
};

struct sc_insn {
	uint8_t		 op;		/* enum sc_op */
	uint8_t		 status;	/* expect: enum sc_status */
	uint8_t		 check;		/* expect: enum sc_check */
	uint8_t		 multiline;	/* expect */
	uint8_t		 in_loop;	/* inside a `loop` block */
	uint16_t	 verb;		/* send: index into prog->verbs */
	uint16_t	 var;		/* for: slot of the loop variable */
	uint16_t	 lim;		/* for, repeat: slot of the bound/counter */
	uint16_t	 mark;		/* mark: index into prog->marks */
	uint32_t	 jump;		/* for/repeat/loop: past the end;
					 * *_NEXT, pipe end: the block start;
					 * pause in a loop: the loop's start */
	uint32_t	 line;		/* source line, for messages */
	struct sc_tmpl	 text;		/* send */
	struct sc_iexpr	 x;		/* for: from; repeat, pause, retr: n */
	struct sc_iexpr	 y;		/* for: to */
};

struct sc_prog {
	char		*name;		/* file name as given to the parser */
	struct sc_insn	*insns;
	uint32_t	 ninsns;
	struct sc_part	*parts;
	uint32_t	 nparts;
	char		*text;		/* literal pool */
	size_t		 textlen;
	uint16_t	 nints;		/* int slots a session needs */
	uint16_t	 nverbs;	/* verbs[0] is "OTHER" */
	char		**verbs;
	uint16_t	 nmarks;
	char		**marks;
	int		 ready_mark;	/* index of mark "ready", or -1 */
	unsigned	 has_loop:1;	/* a `loop` statement exists */
};

/* A --var NAME=VALUE override; used is set when the scenario knows NAME. */
struct sc_def {
	const char	*name;
	const char	*value;
	int		 used;
};

/* What a template expansion needs from a session. */
struct sc_ctx {
	const char	*user;
	size_t		 user_len;
	const char	*password;
	size_t		 password_len;
	const int64_t	*ints;
};

enum sc_pipe {
	SC_PIPE_NONE,
	SC_PIPE_SEND,		/* first pass: sends only */
	SC_PIPE_EXPECT,		/* second pass: expects only */
};

/* Per-session interpreter state (small: the program is shared). */
struct sc_run {
	uint32_t	 pc;
	uint32_t	 pipe_pc;	/* pc of the open PIPE_BEGIN */
	uint8_t		 pipe;		/* enum sc_pipe */
	uint8_t		 stat_deferred;
	int64_t		 stat_count;	/* {count}/{size} seen inside a */
	int64_t		 stat_size;	/* pipeline, applied at its end */
};

/*
 * Parse a scenario.  name is used in messages ("name:LINE: message") and
 * kept in the program.  defs (may be NULL when ndefs is 0) override and
 * extend `set`; their used flags are updated.  Returns a program to free
 * with sc_free(), or NULL with a message in err (errlen > 0).
 */
struct sc_prog	*sc_parse_string(const char *name, const char *text,
		    struct sc_def *defs, size_t ndefs, char *err, size_t errlen);
/* Same, reading the file at path (used as the name). */
struct sc_prog	*sc_parse_file(const char *path, struct sc_def *defs,
		    size_t ndefs, char *err, size_t errlen);
void		 sc_free(struct sc_prog *prog);

/* Reset r and the session's ints (nints of them) for a new session. */
void		 sc_run_init(const struct sc_prog *prog, struct sc_run *r,
		    int64_t *ints, int64_t session);

/*
 * Run control flow from r->pc and return the next instruction that needs
 * the engine: SC_CONNECT, SC_SEND, SC_PIPE_END (send pass over: write the
 * gathered commands), SC_EXPECT, SC_PAUSE, SC_MARK, SC_CLOSE or SC_HALT.
 * r->pc stays on it until sc_done().  stopping makes `loop` blocks exit.
 * Returns NULL if SC_MAX_STEPS control steps ran without reaching one.
 */
const struct sc_insn *sc_step(const struct sc_prog *prog, struct sc_run *r,
		    int64_t *ints, int stopping);
/* The instruction returned by sc_step() has been carried out. */
void		 sc_done(const struct sc_prog *prog, struct sc_run *r,
		    int64_t *ints);

/*
 * A stat check saw "+OK count size": set {count} and {size}, at once or,
 * in the expect pass of a pipeline, when the pipeline ends (both passes of
 * a pipeline must see the same values).
 */
void		 sc_set_stat(struct sc_run *r, int64_t *ints, int64_t count,
		    int64_t size);

/* Value of an integer expression. */
int64_t		 sc_eval(const struct sc_iexpr *x, const int64_t *ints);

/*
 * Expand a template into buf (size >= SC_LINE_MAX + 1 always suffices:
 * the parser bounds every template).  Returns the length; buf is
 * NUL-terminated.
 */
size_t		 sc_expand(const struct sc_prog *prog, const struct sc_tmpl *t,
		    const struct sc_ctx *ctx, char *buf, size_t size);

/* Verb index of an expanded command line (for SC_VERB_DYNAMIC sends). */
uint16_t	 sc_verb_lookup(const struct sc_prog *prog, const char *line,
		    size_t len);

/* Decimal of v into buf (>= 21 bytes), not terminated; returns length. */
size_t		 sc_fmt_i64(char *buf, int64_t v);

#endif
