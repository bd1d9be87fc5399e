/*
 * swarm scenario and reply parsing: every statement, nesting, templates
 * and {{ escapes, the two passes of a pipeline, parse errors with their
 * line numbers, every shipped scripts/swarm/NAME.swarm (run through the
 * interpreter against a simulated server), the status/STAT/LIST/UIDL line
 * parsers, and the multi-line body counter fed at random split points
 * against a whole-buffer reference.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "reply.h"
#include "scenario.h"

#define TRACE_MAX	8192

/* ------------------------------------------------------------ helpers */

static struct sc_prog *
parse_ok(const char *text)
{
	struct sc_prog	*p;
	char		 err[512];

	p = sc_parse_string("t.swarm", text, NULL, 0, err, sizeof(err));
	if (p == NULL)
		fail_msg("parse failed: %s", err);
	return p;
}

/* Parse must fail with exactly want as the message. */
static void
parse_err(const char *text, const char *want)
{
	struct sc_prog	*p;
	char		 err[512];

	p = sc_parse_string("t.swarm", text, NULL, 0, err, sizeof(err));
	if (p != NULL) {
		sc_free(p);
		fail_msg("parsed, expected \"%s\"", want);
	}
	assert_string_equal(err, want);
}

/*
 * A simulated session.  The server's STAT answer is count/size; after
 * `stop_after` pauses the run is stopping.  The trace lists what the
 * engine would do: "connect;send:USER u1;expect;...".
 */
struct sim {
	int64_t		 count, size;
	int		 stop_after;
	int		 pauses;
	int		 sends, expects;
	char		 trace[TRACE_MAX];
};

static void
trace(struct sim *s, const char *a, const char *b)
{
	size_t	 n = strlen(s->trace);

	snprintf(s->trace + n, sizeof(s->trace) - n, "%s%s%s;", a,
	    b ? ":" : "", b ? b : "");
}

static const char *check_names[] = { "", "stat", "list", "uidl", "retr",
    "top" };

static void
simulate(const struct sc_prog *p, struct sim *s, const char *user,
    const char *password)
{
	const struct sc_insn	*in;
	struct sc_run		 r;
	struct sc_ctx		 ctx;
	int64_t			 ints[64];
	char			 buf[SC_LINE_MAX + 1], num[32];
	int			 stopping = 0, guard;

	assert_true(p->nints <= 64);
	sc_run_init(p, &r, ints, 7);
	ctx.user = user;
	ctx.user_len = strlen(user);
	ctx.password = password;
	ctx.password_len = strlen(password);
	ctx.ints = ints;
	for (guard = 0; guard < 10000; guard++) {
		in = sc_step(p, &r, ints, stopping);
		assert_non_null(in);
		switch (in->op) {
		case SC_CONNECT:
			trace(s, "connect", NULL);
			break;
		case SC_SEND:
			sc_expand(p, &in->text, &ctx, buf, sizeof(buf));
			trace(s, "send", buf);
			s->sends++;
			break;
		case SC_PIPE_END:
			trace(s, "flush", NULL);
			break;
		case SC_EXPECT:
			s->expects++;
			if (in->check == SC_CHK_RETR) {
				snprintf(num, sizeof(num), "retr %lld",
				    (long long)sc_eval(&in->x, ints));
				trace(s, "expect", num);
			} else
				trace(s, "expect", in->check ?
				    check_names[in->check] : NULL);
			if (in->check == SC_CHK_STAT)
				sc_set_stat(&r, ints, s->count, s->size);
			break;
		case SC_PAUSE:
			snprintf(num, sizeof(num), "%lld",
			    (long long)sc_eval(&in->x, ints));
			trace(s, "pause", num);
			if (++s->pauses >= s->stop_after)
				stopping = 1;
			break;
		case SC_MARK:
			trace(s, "mark", p->marks[in->mark]);
			break;
		case SC_CLOSE:
			trace(s, "close", NULL);
			break;
		case SC_HALT:
			return;
		default:
			fail_msg("sc_step returned op %d", in->op);
		}
		sc_done(p, &r, ints);
	}
	fail_msg("scenario did not halt");
}

static void
run_trace(const char *text, int64_t count, const char *want)
{
	struct sc_prog	*p = parse_ok(text);
	struct sim	 s;

	memset(&s, 0, sizeof(s));
	s.count = count;
	s.size = count * 100;
	s.stop_after = 3;
	simulate(p, &s, "alice", "secret");
	assert_string_equal(s.trace, want);
	sc_free(p);
}

/* ------------------------------------------------------------ statements */

static void
test_every_statement(void **state)
{
	struct sc_prog		*p;
	const struct sc_insn	*in;
	static const uint8_t	 ops[] = {
		SC_CONNECT, SC_EXPECT, SC_SEND, SC_EXPECT, SC_PIPE_BEGIN,
		SC_SEND, SC_EXPECT, SC_PIPE_END, SC_FOR, SC_SEND, SC_EXPECT,
		SC_FOR_NEXT, SC_REPEAT, SC_SEND, SC_EXPECT, SC_REPEAT_NEXT,
		SC_MARK, SC_LOOP, SC_PAUSE, SC_SEND, SC_EXPECT, SC_LOOP_NEXT,
		SC_SEND, SC_EXPECT, SC_CLOSE, SC_HALT,
	};
	size_t			 i;

	(void)state;
	p = parse_ok(
	    "# a comment line\n"
	    "set n 2   # trailing comment\n"
	    "connect\n"
	    "expect OK\n"
	    "  send STAT\n"
	    "\texpect OK stat\n"
	    "pipeline\n"
	    "send LIST\n"
	    "expect OK list\n"
	    "end\n"
	    "for i in 1..{count}\n"
	    "send RETR {i}\n"
	    "expect OK retr {i}\n"
	    "end\n"
	    "repeat {n}\n"
	    "send TOP 1 0\n"
	    "expect ANY top\n"
	    "end\n"
	    "mark ready\n"
	    "loop\n"
	    "pause 250\n"
	    "send NOOP\n"
	    "expect ERR\n"
	    "end\n"
	    "\n"
	    "send QUIT\r\n"
	    "expect ANY multiline\n"
	    "close\n");
	assert_int_equal(p->ninsns, sizeof(ops));
	for (i = 0; i < sizeof(ops); i++)
		assert_int_equal(p->insns[i].op, ops[i]);

	in = &p->insns[3];
	assert_int_equal(in->check, SC_CHK_STAT);
	assert_int_equal(in->multiline, 0);
	assert_int_equal(in->line, 6);
	assert_int_equal(p->insns[6].check, SC_CHK_LIST);
	assert_int_equal(p->insns[6].multiline, 1);
	assert_int_equal(p->insns[10].check, SC_CHK_RETR);
	assert_int_equal(p->insns[14].check, SC_CHK_TOP);
	assert_int_equal(p->insns[14].status, SC_ST_ANY);
	assert_int_equal(p->insns[20].status, SC_ST_ERR);
	assert_int_equal(p->insns[23].multiline, 1);
	assert_int_equal(p->insns[23].check, SC_CHK_NONE);
	/* Jumps: blocks point past their end, ends back at the start. */
	assert_int_equal(p->insns[8].jump, 12);
	assert_int_equal(p->insns[11].jump, 8);
	assert_int_equal(p->insns[17].jump, 22);
	assert_int_equal(p->insns[21].jump, 17);
	assert_int_equal(p->insns[7].jump, 4);
	/* Only the loop body is flagged as such. */
	assert_int_equal(p->insns[18].in_loop, 1);
	assert_int_equal(p->insns[22].in_loop, 0);
	assert_int_equal(p->ready_mark, 0);
	assert_string_equal(p->marks[0], "ready");
	assert_int_equal(p->has_loop, 1);
	/* Verbs: OTHER first, then in order of appearance. */
	assert_string_equal(p->verbs[0], "OTHER");
	assert_string_equal(p->verbs[p->insns[2].verb], "STAT");
	assert_string_equal(p->verbs[p->insns[9].verb], "RETR");
	assert_string_equal(p->verbs[p->insns[22].verb], "QUIT");
	assert_int_equal(sc_verb_lookup(p, "quit now", 8), p->insns[22].verb);
	assert_int_equal(sc_verb_lookup(p, "XYZZY", 5), SC_VERB_OTHER);
	sc_free(p);
}

static void
test_templates(void **state)
{
	struct sc_prog	*p;
	struct sc_ctx	 ctx;
	int64_t		 ints[8] = { 42, 3, 1234, 5, 0, 0, 0, 0 };
	char		 buf[SC_LINE_MAX + 1];
	size_t		 n;

	(void)state;
	p = parse_ok(
	    "set greeting hello world\n"
	    "set x 9\n"
	    "connect\n"
	    "send X {{literal}} {greeting}/{x} {user}:{password} n{session}"
	    " {count} {size} }{{\n"
	    "send {user}\n"
	    "send PASS {password}\n");
	ctx.user = "bob";
	ctx.user_len = 3;
	ctx.password = "p w";
	ctx.password_len = 3;
	ctx.ints = ints;
	n = sc_expand(p, &p->insns[1].text, &ctx, buf, sizeof(buf));
	assert_string_equal(buf, "X {literal}} hello world/9 bob:p w n42 3 "
	    "1234 }{");
	assert_int_equal(n, strlen(buf));
	/* Constants fold into the literal around them. */
	assert_int_equal(p->parts[p->insns[1].text.first].kind, SC_PART_LIT);
	assert_int_equal(p->parts[p->insns[1].text.first + 1].kind,
	    SC_PART_USER);
	/* A send starting with a variable has its verb found at run time. */
	assert_int_equal(p->insns[2].verb, SC_VERB_DYNAMIC);
	assert_string_equal(p->verbs[p->insns[3].verb], "PASS");
	/* Truncation is safe. */
	n = sc_expand(p, &p->insns[1].text, &ctx, buf, 6);
	assert_int_equal(n, 5);
	assert_string_equal(buf, "X {li");

	assert_int_equal(sc_fmt_i64(buf, INT64_MIN), 20);
	buf[20] = '\0';
	assert_string_equal(buf, "-9223372036854775808");
	sc_free(p);
}

static void
test_vars_override(void **state)
{
	struct sc_def	 defs[] = {
		{ "n", "4", 0 },
		{ "extra", "zz", 0 },
		{ "unused", "1", 0 },
	};
	struct sc_prog	*p;
	struct sim	 s;
	char		 err[256];

	(void)state;
	p = sc_parse_string("v.swarm",
	    "set n 2\n"
	    "connect\n"
	    "repeat {n}\n"
	    "send NOOP {extra}\n"
	    "end\n", defs, 3, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(defs[0].used, 1);
	assert_int_equal(defs[1].used, 1);
	assert_int_equal(defs[2].used, 0);
	memset(&s, 0, sizeof(s));
	simulate(p, &s, "u", "p");
	assert_string_equal(s.trace, "connect;send:NOOP zz;send:NOOP zz;"
	    "send:NOOP zz;send:NOOP zz;");
	sc_free(p);

	/* An override that is not an integer where one is needed. */
	defs[0].value = "four";
	p = sc_parse_string("v.swarm", "set n 2\nconnect\nrepeat {n}\n"
	    "pause 1\nend\n", defs, 1, err, sizeof(err));
	assert_null(p);
	assert_string_equal(err, "v.swarm:3: variable 'n' is not an integer: "
	    "'four'");
}

/* ------------------------------------------------------------ control */

static void
test_nesting(void **state)
{
	(void)state;
	run_trace(
	    "connect\n"
	    "repeat 2\n"
	    "  for i in 1..2\n"
	    "    for j in {i}..2\n"
	    "      send X {i}{j}\n"
	    "    end\n"
	    "  end\n"
	    "  for k in 5..4\n"		/* empty */
	    "    send never\n"
	    "  end\n"
	    "end\n"
	    "repeat 0\n"
	    "  send never\n"
	    "end\n", 2,
	    "connect;send:X 11;send:X 12;send:X 22;send:X 11;send:X 12;"
	    "send:X 22;");
}

static void
test_for_uses_stat(void **state)
{
	(void)state;
	run_trace(
	    "connect\nexpect OK\nsend STAT\nexpect OK stat\n"
	    "for i in 1..{count}\nsend RETR {i}\nexpect OK retr {i}\nend\n"
	    "for i in 1..min(2,{count})\nsend DELE {i}\nend\n"
	    "send QUIT {size}\nclose\n", 3,
	    "connect;expect;send:STAT;expect:stat;send:RETR 1;"
	    "expect:retr 1;send:RETR 2;expect:retr 2;send:RETR 3;"
	    "expect:retr 3;send:DELE 1;send:DELE 2;send:QUIT 300;close;");
	run_trace("connect\nsend STAT\nexpect OK stat\n"
	    "for i in 1..min({count}, 3)\nsend DELE {i}\nend\n", 0,
	    "connect;send:STAT;expect:stat;");
}

static void
test_pipeline_two_passes(void **state)
{
	(void)state;
	/* All sends, one flush, then all expects in order; {count} from a
	 * stat inside the pipeline only changes when it ends. */
	run_trace(
	    "connect\n"
	    "pipeline\n"
	    "  send STAT\n"
	    "  expect OK stat\n"
	    "  for i in 1..2\n"
	    "    send RETR {i}\n"
	    "    expect OK retr {i}\n"
	    "  end\n"
	    "  send X {count}\n"
	    "  expect OK\n"
	    "end\n"
	    "send Y {count}\n", 5,
	    "connect;send:STAT;send:RETR 1;send:RETR 2;send:X 0;flush;"
	    "expect:stat;expect:retr 1;expect:retr 2;expect;send:Y 5;");
}

static void
test_loop_stops(void **state)
{
	(void)state;
	run_trace(
	    "set interval 100\n"
	    "connect\n"
	    "mark ready\n"
	    "loop\n"
	    "  pause {interval}\n"
	    "  send NOOP\n"
	    "  expect OK\n"
	    "end\n"
	    "send QUIT\n"
	    "close\n", 0,
	    "connect;mark:ready;pause:100;send:NOOP;expect;pause:100;"
	    "send:NOOP;expect;pause:100;send:NOOP;expect;send:QUIT;close;");
}

static void
test_runaway_guard(void **state)
{
	struct sc_prog		*p;
	struct sc_run		 r;
	int64_t			 ints[16];

	(void)state;
	/* A huge loop without I/O: sc_step gives up instead of hanging. */
	p = parse_ok("connect\nfor i in 1..100000000\nmark x\nend\n");
	sc_run_init(p, &r, ints, 1);
	assert_int_equal(sc_step(p, &r, ints, 0)->op, SC_CONNECT);
	sc_done(p, &r, ints);
	/* mark returns each time; count them to the guard of the caller */
	assert_int_equal(sc_step(p, &r, ints, 0)->op, SC_MARK);
	sc_free(p);

	p = parse_ok("connect\nfor i in 1..100000000\nfor j in 1..0\n"
	    "send x\nend\nend\n");
	sc_run_init(p, &r, ints, 1);
	assert_int_equal(sc_step(p, &r, ints, 0)->op, SC_CONNECT);
	sc_done(p, &r, ints);
	assert_null(sc_step(p, &r, ints, 0));
	sc_free(p);
}

/* ------------------------------------------------------------ errors */

static void
test_errors(void **state)
{
	(void)state;
	parse_err("connect\nsend USER {usr}\n",
	    "t.swarm:2: unknown variable 'usr'");
	parse_err("connect\n\n\nfrobnicate 3\n",
	    "t.swarm:4: unknown statement 'frobnicate'");
	parse_err("connect\nend\n", "t.swarm:2: 'end' without a block");
	parse_err("connect\nrepeat 2\nsend X\n",
	    "t.swarm:2: 'repeat' without 'end'");
	parse_err("connect\npipeline\nsend X\nfor i in 1..2\nend\n",
	    "t.swarm:2: 'pipeline' without 'end'");
	parse_err("connect\nfor i in 1-3\nend\n",
	    "t.swarm:2: bad range '1-3' (want A..B)");
	parse_err("connect\nfor i in 1..\nend\n",
	    "t.swarm:2: bad range '1..' (want A..B)");
	parse_err("connect\nfor i in x..3\nend\n",
	    "t.swarm:2: not an integer: 'x'");
	parse_err("connect\nfor i in 1..{user}\nend\n",
	    "t.swarm:2: variable 'user' is not an integer");
	parse_err("connect\nfor i 1..3\nend\n",
	    "t.swarm:2: usage: for VAR in A..B");
	parse_err("connect\nfor\n", "t.swarm:2: usage: for VAR in A..B");
	parse_err("connect\nsend\n", "t.swarm:2: send: missing text");
	parse_err("connect\nexpect\n",
	    "t.swarm:2: expect: missing status (OK, ERR or ANY)");
	parse_err("connect\nexpect YES\n",
	    "t.swarm:2: expect: bad status 'YES' (OK, ERR or ANY)");
	parse_err("connect\nexpect OK retr\n",
	    "t.swarm:2: expect: 'retr' needs a message number");
	parse_err("connect\nexpect OK multiline stat\n",
	    "t.swarm:2: expect: 'stat' is a single-line reply");
	parse_err("connect\nexpect OK list extra\n",
	    "t.swarm:2: expect: unexpected 'extra'");
	parse_err("connect\nexpect OK bogus\n",
	    "t.swarm:2: expect: unknown check 'bogus'");
	parse_err("set x\n", "t.swarm:1: usage: set NAME VALUE");
	parse_err("set user me\n", "t.swarm:1: 'user' is a built-in variable");
	parse_err("set a 1\nset a 2\n", "t.swarm:2: variable 'a' set twice");
	parse_err("set 9a 1\n", "t.swarm:1: bad variable name '9a'");
	parse_err("connect\nrepeat\n", "t.swarm:2: usage: repeat N");
	parse_err("connect\npause\n", "t.swarm:2: usage: pause MS");
	parse_err("connect\npause -5\n", "t.swarm:2: pause: negative time");
	parse_err("connect\nmark\n", "t.swarm:2: usage: mark NAME");
	parse_err("connect\nconnect\n",
	    "t.swarm:2: only one 'connect' per scenario");
	parse_err("connect x\n", "t.swarm:1: 'connect' takes no arguments");
	parse_err("send X\nconnect\n", "t.swarm:1: 'send' before 'connect'");
	parse_err("connect\nclose\nexpect OK\n",
	    "t.swarm:3: 'expect' after 'close'");
	parse_err("connect\npipeline\npause 1\nend\n",
	    "t.swarm:3: 'pause' is not allowed inside a pipeline");
	parse_err("connect\npipeline\npipeline\nend\nend\n",
	    "t.swarm:3: 'pipeline' is not allowed inside a pipeline");
	parse_err("connect\nloop\nsend NOOP\nend\n",
	    "t.swarm:4: 'loop' (line 2) has no expect or pause: it would spin");
	parse_err("connect\nfor i in 1..2\nfor i in 1..2\nend\nend\n",
	    "t.swarm:3: loop variable 'i' is already a variable");
	parse_err("connect\nsend X {\n",
	    "t.swarm:2: unterminated '{' in \"{\"");
	parse_err("connect\nsend X {a-b}\n",
	    "t.swarm:2: bad variable name '{a-b}'");
	/* A loop variable is out of scope after its end. */
	parse_err("connect\nfor i in 1..2\nend\nsend {i}\n",
	    "t.swarm:4: unknown variable 'i'");
	parse_err("# nothing\n", "t.swarm:1: no 'connect' in the scenario");
	/* '#' after a blank starts a comment, inside a word it does not. */
	run_trace("connect\nsend A#B #C\n", 0, "connect;send:A#B;");
	parse_err("connect\nrepeat 1\nrepeat 1\nrepeat 1\nrepeat 1\n"
	    "repeat 1\nrepeat 1\nrepeat 1\nrepeat 1\nrepeat 1\n",
	    "t.swarm:10: blocks nested deeper than 8");
}

/* ------------------------------------------------------------ files */

static void
test_parse_file(void **state)
{
	char		 dir[] = "/tmp/test_swarm_scenario.XXXXXX";
	char		 path[256], err[512], want[512];
	struct sc_prog	*p;
	FILE		*f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/bad.swarm", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("connect\nexpect OK\nsend USER {nobody}\n", f);
	fclose(f);
	p = sc_parse_file(path, NULL, 0, err, sizeof(err));
	assert_null(p);
	snprintf(want, sizeof(want), "%s:3: unknown variable 'nobody'", path);
	assert_string_equal(err, want);

	snprintf(path, sizeof(path), "%s/good.swarm", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("connect\nsend QUIT\nexpect OK\nclose\n", f);
	fclose(f);
	p = sc_parse_file(path, NULL, 0, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(p->name, path);
	sc_free(p);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/bad.swarm", dir);
	assert_int_equal(unlink(path), 0);

	snprintf(path, sizeof(path), "%s/missing.swarm", dir);
	assert_null(sc_parse_file(path, NULL, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(rmdir(dir), 0);
}

/* Every shipped scenario parses and runs to its end on a fake server. */
static void
test_shipped_scenarios(void **state)
{
	static const char *const want[] = { "full", "login", "pipeline",
	    "idle", "retr-big", "churn", "handshake" };
	const char	*src = getenv("EVPOP3D_SOURCE_DIR");
	char		 dir[1024], path[1400], err[512];
	struct dirent	*de;
	struct sc_prog	*p;
	struct sim	 s;
	DIR		*d;
	size_t		 i, n = 0, len;
	int		 seen[7] = { 0 };

	(void)state;
	if (src == NULL)
		src = ".";
	snprintf(dir, sizeof(dir), "%s/scripts/swarm", src);
	d = opendir(dir);
	if (d == NULL)
		fail_msg("%s: cannot open (set EVPOP3D_SOURCE_DIR)", dir);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 7 || strcmp(de->d_name + len - 6, ".swarm") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		p = sc_parse_file(path, NULL, 0, err, sizeof(err));
		if (p == NULL)
			fail_msg("%s", err);
		memset(&s, 0, sizeof(s));
		s.count = 4;
		s.size = 4000;
		s.stop_after = 2;
		simulate(p, &s, "user1", "pw1");
		/*
		 * Each logs in, QUITs and closes; `handshake` (the TLS
		 * benchmark's connection cost) only QUITs.
		 */
		if (strcmp(de->d_name, "handshake.swarm") == 0)
			assert_string_equal(s.trace, "connect;expect;"
			    "send:QUIT;expect;close;");
		else
			assert_non_null(strstr(s.trace, "connect;expect;"
			    "send:USER user1;expect;send:PASS pw1;expect;"));
		assert_non_null(strstr(s.trace, "send:QUIT;"));
		len = strlen(s.trace);
		assert_true(len > 6);
		assert_string_equal(s.trace + len - 6, "close;");
		for (i = 0; i < 7; i++)
			if (strncmp(de->d_name, want[i], strlen(want[i])) == 0 &&
			    de->d_name[strlen(want[i])] == '.')
				seen[i]++;
		if (strcmp(de->d_name, "full.swarm") == 0)
			assert_non_null(strstr(s.trace, "send:RETR 4;"
			    "expect:retr 4;send:QUIT;expect;close;"));
		if (strcmp(de->d_name, "churn.swarm") == 0)
			assert_non_null(strstr(s.trace, "send:DELE 3;expect;"
			    "send:QUIT;"));
		if (strcmp(de->d_name, "pipeline.swarm") == 0)
			assert_non_null(strstr(s.trace, "send:RETR 10;"
			    "send:QUIT;flush;expect:stat;"));
		if (strcmp(de->d_name, "idle.swarm") == 0)
			assert_non_null(strstr(s.trace, "mark:ready;pause:1000;"
			    "send:NOOP;expect;pause:1000;"));
		if (strcmp(de->d_name, "retr-big.swarm") == 0)
			assert_int_equal(s.sends, 8);	/* USER PASS STAT LIST 3xRETR QUIT */
		sc_free(p);
		n++;
	}
	closedir(d);
	assert_true(n >= 6);
	for (i = 0; i < 7; i++)
		if (seen[i] != 1)
			fail_msg("scripts/swarm/%s.swarm missing", want[i]);
}

/* ------------------------------------------------------------ replies */

static void
test_status_lines(void **state)
{
	uint64_t	 a, b, n;
	const char	*uid;
	size_t		 ul;

	(void)state;
	assert_int_equal(reply_status("+OK", 3), REPLY_OK);
	assert_int_equal(reply_status("+OK hi", 6), REPLY_OK);
	assert_int_equal(reply_status("-ERR", 4), REPLY_ERR);
	assert_int_equal(reply_status("-ERR [IN-USE] x", 15), REPLY_ERR);
	assert_int_equal(reply_status("+OKAY", 5), REPLY_BAD);
	assert_int_equal(reply_status("+ok", 3), REPLY_BAD);
	assert_int_equal(reply_status("", 0), REPLY_BAD);
	assert_int_equal(reply_status("-ER", 3), REPLY_BAD);

	assert_int_equal(reply_parse_stat("+OK 2 320", 9, &a, &b), 0);
	assert_true(a == 2 && b == 320);
	assert_int_equal(reply_parse_stat("+OK 2 320 more", 14, &a, &b), 0);
	assert_int_equal(reply_parse_stat("+OK 2", 5, &a, &b), -1);
	assert_int_equal(reply_parse_stat("+OK 2 x", 7, &a, &b), -1);
	assert_int_equal(reply_parse_stat("+OK  2 3", 8, &a, &b), -1);
	assert_int_equal(reply_parse_stat("+OK 2 3x", 8, &a, &b), -1);
	assert_int_equal(reply_parse_stat("+OK 99999999999999999999 3", 26,
	    &a, &b), -1);

	assert_int_equal(reply_parse_list("1 120", 5, &n, &a), 0);
	assert_true(n == 1 && a == 120);
	assert_int_equal(reply_parse_list("1", 1, &n, &a), -1);
	assert_int_equal(reply_parse_list("a 1", 3, &n, &a), -1);

	assert_int_equal(reply_parse_uidl("3 abc.def", 9, &n, &uid, &ul), 0);
	assert_true(n == 3 && ul == 7 && memcmp(uid, "abc.def", 7) == 0);
	assert_int_equal(reply_parse_uidl("3 ab c", 6, &n, &uid, &ul), -1);
	assert_int_equal(reply_parse_uidl("3 ", 2, &n, &uid, &ul), -1);
	assert_int_equal(reply_parse_uidl("3 \x7f", 3, &n, &uid, &ul), -1);
	assert_int_equal(reply_parse_uidl("3 "
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "456789", 72, &n, &uid, &ul), 0);
	assert_int_equal(reply_parse_uidl("3 "
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "4567890", 73, &n, &uid, &ul), -1);
	assert_true(reply_hash("a", 1) != reply_hash("b", 1));
}

/* Feed all of buf in one go; returns consumed. */
static size_t
ml_whole(struct mlcount *mc, const char *buf, size_t len)
{
	mlcount_init(mc);
	return mlcount_feed(mc, buf, len);
}

static void
test_mlcount_cases(void **state)
{
	struct mlcount	 mc;
	const char	*b;

	(void)state;
	/* Empty body. */
	b = ".\r\n+OK next\r\n";
	assert_int_equal(ml_whole(&mc, b, strlen(b)), 3);
	assert_int_equal(mc.octets, 0);
	assert_int_equal(mc.flags, ML_DONE);
	/* Stuffed lines count without their first dot. */
	b = "a\r\n..\r\n..b\r\n.c\r\n\r\n.\r\n";
	assert_int_equal(ml_whole(&mc, b, strlen(b)), strlen(b));
	assert_int_equal(mc.octets, 3 + 3 + 4 + 3 + 2);
	assert_int_equal(mc.lines, 5);
	assert_int_equal(mc.flags, ML_DONE);
	/* A bare LF counts as CRLF and is flagged. */
	b = "ab\ncd\r\n.\r\n";
	assert_int_equal(ml_whole(&mc, b, strlen(b)), strlen(b));
	assert_int_equal(mc.octets, 8);
	assert_int_equal(mc.flags, ML_DONE | ML_BARE_LF);
	/* ".\r" followed by something else: the CR is content. */
	b = ".\rx\r\n.\r\n";
	assert_int_equal(ml_whole(&mc, b, strlen(b)), strlen(b));
	assert_int_equal(mc.octets, 4);
	assert_int_equal(mc.flags, ML_DONE);
	/* "\r\n.\r" at the end of what came: no terminator yet. */
	b = "x\r\n.\r";
	assert_int_equal(ml_whole(&mc, b, strlen(b)), strlen(b));
	assert_int_equal(mc.flags, 0);
	assert_true(mlcount_at_dot_cr(&mc));
	assert_int_equal(mlcount_feed(&mc, "\n", 1), 1);
	assert_int_equal(mc.flags, ML_DONE);
	assert_int_equal(mc.octets, 3);
	/* "x.\r\n" is not a terminator: the dot is not at line start. */
	b = "x.\r\n";
	assert_int_equal(ml_whole(&mc, b, strlen(b)), 4);
	assert_int_equal(mc.flags, 0);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/*
 * Reference: split the whole wire text into lines, un-stuff, count.
 * Returns the offset just past the terminator line, or 0 if none.
 */
static size_t
ml_reference(const char *w, size_t len, uint64_t *octets, int *bare)
{
	size_t		 off = 0, n, c;
	const char	*lf;

	*octets = 0;
	*bare = 0;
	while (off < len) {
		lf = memchr(w + off, '\n', len - off);
		if (lf == NULL)
			return 0;
		n = (size_t)(lf - (w + off));
		c = n;
		if (c > 0 && w[off + c - 1] == '\r')
			c--;
		else
			*bare = 1;
		if (c == 1 && w[off] == '.')
			return off + n + 1;
		if (c > 0 && w[off] == '.')
			c--;
		*octets += c + 2;
		off += n + 1;
	}
	return 0;
}

static void
test_mlcount_random_splits(void **state)
{
	static const char alpha[] = ".a\r .";
	uint64_t	 seed = 0x9e3779b97f4a7c15ULL, ref_oct;
	char		 w[4096];
	struct mlcount	 mc;
	size_t		 len, end, off, chunk, used, k, nl, i, c;
	int		 round, bare, split;

	(void)state;
	for (round = 0; round < 2000; round++) {
		len = 0;
		nl = rnd(&seed) % 12;
		for (i = 0; i < nl; i++) {
			char	 line[16];
			int	 lf_only = rnd(&seed) % 8 == 0;

			c = rnd(&seed) % 8;
			for (k = 0; k < c; k++)
				line[k] = alpha[rnd(&seed) % 5];
			if (lf_only && c > 0 && line[c - 1] == '\r')
				line[c - 1] = 'a';
			if (c > 0 && line[0] == '.')
				w[len++] = '.';		/* stuff */
			memcpy(w + len, line, c);
			len += c;
			if (!lf_only)
				w[len++] = '\r';
			w[len++] = '\n';
		}
		memcpy(w + len, ".\r\n+OK junk\r\n", 13);
		len += 13;
		end = ml_reference(w, len, &ref_oct, &bare);
		assert_true(end > 0);

		for (split = 0; split < 8; split++) {
			mlcount_init(&mc);
			off = 0;
			while (!(mc.flags & ML_DONE)) {
				assert_true(off < len);
				chunk = split == 0 ? 1 :
				    1 + rnd(&seed) % (len - off);
				used = mlcount_feed(&mc, w + off, chunk);
				assert_true(used <= chunk);
				if (!(mc.flags & ML_DONE))
					assert_int_equal(used, chunk);
				off += used;
			}
			assert_int_equal(off, end);
			assert_int_equal(mc.octets, ref_oct);
			assert_int_equal((mc.flags & ML_BARE_LF) != 0, bare);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_statement),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_vars_override),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_for_uses_stat),
		cmocka_unit_test(test_pipeline_two_passes),
		cmocka_unit_test(test_loop_stops),
		cmocka_unit_test(test_runaway_guard),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_shipped_scenarios),
		cmocka_unit_test(test_status_lines),
		cmocka_unit_test(test_mlcount_cases),
		cmocka_unit_test(test_mlcount_random_splits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
