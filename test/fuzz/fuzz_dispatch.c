/*
 * fuzz_dispatch: the POP3 protocol fed arbitrary bytes over a real
 * session, as a client would send them.
 *
 * Everything is the daemon's own: the configuration is loaded from a
 * file, pop3_env_new() reads a real passwd-file and starts the worker
 * pool, the session set runs pop3_proto, and the maildrops are a real
 * Maildir (bob@example.com, password "hunter2", five messages with dots,
 * bare LFs, lone CRs, a line with no end and one without a body) and a
 * real mbox (carol@example.com, same password, two messages), so input
 * can log in and reach TRANSACTION and UPDATE with USER/PASS, APOP
 * (apop = yes; the greeting's timestamp is random, so APOP only ever
 * fails) and SASL PLAIN and LOGIN. Only the transport is not a socket:
 * the session runs over a bufferevent pair.
 *
 * Each input: the maildrops are made anew, a new environment and set
 * are made, the input is written to the session in one go followed by
 * an end of file (the session answers every pipelined command, then
 * closes: "disconnected", or after QUIT the UPDATE), and the loop turns
 * until the session is gone and every worker job is done; then all is
 * freed. So no input sees what an earlier one did (a DELE committed, a
 * lock, a cache file). The loop turns at most DEADLINE_MS; a session
 * that does not end by then is a hang and aborts.
 *
 * What the client receives is checked only for the framing every reply
 * shares: it starts with "+OK", and no LF is ever sent without its CR
 * (RFC 1939 section 3).
 */
#include <sys/stat.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "lib/evpop3d.h"
#include "lib/log.h"
#include "lib/monotime.h"
#include "lib/shlimits.h"
#include "pop3/pop3.h"
#include "session/session.h"
#include "fuzz.h"

#define DEADLINE_MS	20000
#define TICK_MS		50

static const struct {
	const char	*name;
	const char	*text;
} maildir_msgs[] = {
	{ "1700000001.M1P1.fuzz", "From: alice@example.com\nSubject: one\n\n"
	    "Hello.\n.a line with a dot\n..two\n.\nend\n" },
	{ "1700000002.M2P1.fuzz:2,S", "Subject: two\r\nX: y\n\r\n"
	    "CRLF\r\nLF\n\nlone\rCR\r\n.\r\nno end of line" },
	{ "1700000003.M3P1.fuzz", "Subject: three\n\n..\n. \nbody\n.\n" },
	{ "1700000004.M4P1.fuzz", "Subject: four, no body\n\n" },
	{ "1700000005.M5P1.fuzz", "" },
};

static const char mbox_text[] =
    "From alice@example.com Mon Jan  1 10:00:00 2024\n"
    "Status: RO\nX-UID: 7\nSubject: m1\n\nbody\n>From here\n.dot\n\n"
    "From bob@example.com Tue Jan  2 10:00:00 2024\n"
    "Subject: m2\n\nsecond\n";

static struct event_base	*base;
static struct cfg		*cfg;
static struct event		*tick;
static char			 home_bob[512], home_carol[512];

struct client {
	bool	 first;		/* nothing received yet */
	char	 last;		/* the last byte received */
	size_t	 got;
	char	 head[3];
};

static void
mkdir_p(const char *path)
{
	FUZZ_CHECK(mkdir(path, 0700) == 0);
}

/* The maildrops, as they were before any input. */
static void
maildrops_make(void)
{
	char	 path[1024];
	size_t	 i;

	fuzz_rmtree(home_bob);
	fuzz_rmtree(home_carol);
	mkdir_p(home_bob);
	snprintf(path, sizeof(path), "%s/Maildir", home_bob);
	mkdir_p(path);
	snprintf(path, sizeof(path), "%s/Maildir/new", home_bob);
	mkdir_p(path);
	snprintf(path, sizeof(path), "%s/Maildir/cur", home_bob);
	mkdir_p(path);
	snprintf(path, sizeof(path), "%s/Maildir/tmp", home_bob);
	mkdir_p(path);
	for (i = 0; i < sizeof(maildir_msgs) / sizeof(maildir_msgs[0]); i++) {
		snprintf(path, sizeof(path), "%s/Maildir/%s/%s", home_bob,
		    strchr(maildir_msgs[i].name, ':') ? "cur" : "new",
		    maildir_msgs[i].name);
		fuzz_write_file(path, maildir_msgs[i].text,
		    strlen(maildir_msgs[i].text));
	}
	mkdir_p(home_carol);
	snprintf(path, sizeof(path), "%s/mbox", home_carol);
	fuzz_write_file(path, mbox_text, sizeof(mbox_text) - 1);
}

/* Ends a turn of the loop now and then, so the deadline is looked at. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char			 path[512], text[2048], err[512];
	const char		*dir;

	(void)argc;
	(void)argv;
	log_init(false);
	dir = fuzz_dir();
	snprintf(home_bob, sizeof(home_bob), "%s/bob", dir);
	snprintf(home_carol, sizeof(home_carol), "%s/carol", dir);
	snprintf(path, sizeof(path), "%s/passwd", dir);
	snprintf(text, sizeof(text),
	    "bob@example.com:{PLAIN}hunter2::::%s::\n"
	    "carol@example.com:{PLAIN}hunter2::::%s::"
	    "userdb_mail=mbox:~/mbox\n", home_bob, home_carol);
	fuzz_write_file(path, text, strlen(text));
	snprintf(path, sizeof(path), "%s/evpop3d.ini", dir);
	snprintf(text, sizeof(text),
	    "[server]\nlisten = 127.0.0.1:0\nhostname = fuzz.example\n"
	    "max_bad_commands = 20\n"
	    "[auth]\npasswd_file = passwd\nfailure_delay = 0\napop = yes\n"
	    "max_failures = 3\nthreads = 1\n"
	    "[mail]\nlocation = %%h/Maildir\n");
	fuzz_write_file(path, text, strlen(text));
	if (cfg_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_dispatch: %s\n", err);
		abort();
	}
	if (shlimits_init((size_t)cfg->max_connections,
	    (size_t)cfg->penalty_table_size, 1, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_dispatch: %s\n", err);
		abort();
	}
	base = event_base_new();	/* as main() has it */
	FUZZ_CHECK(base != NULL);
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	FUZZ_CHECK(tick != NULL);
	return 0;
}

/* Take what arrived: check the framing, keep nothing. */
static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client		*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_iovec	 v[8];
	size_t			 i, j;
	int			 n;
	char			 ch;

	n = evbuffer_peek(in, -1, NULL, v, 8);
	for (i = 0; i < (size_t)n && i < 8; i++) {
		for (j = 0; j < v[i].iov_len; j++) {
			ch = ((const char *)v[i].iov_base)[j];
			if (c->got < sizeof(c->head))
				c->head[c->got] = ch;
			c->got++;
			if (ch == '\n')
				FUZZ_CHECK(!c->first && c->last == '\r');
			c->last = ch;
			c->first = false;
		}
	}
	if (c->got >= sizeof(c->head))
		FUZZ_CHECK(memcmp(c->head, "+OK", 3) == 0);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (n > 8)
		client_read_cb(bev, arg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in	 sin = { .sin_family = AF_INET,
				    .sin_port = htons(4242) };
	struct timeval		 tv = { .tv_usec = TICK_MS * 1000 };
	struct bufferevent	*pair[2];
	struct pop3_env		*env;
	struct session_set	*set;
	struct client		 c = { .first = true };
	uint64_t		 deadline;

	maildrops_make();
	FUZZ_CHECK(pop3_env_new(base, cfg, &env) == 0);
	set = session_set_new(base, &(struct session_params){
	    .proto = &pop3_proto, .arg = env, .line_max = POP3_LINE_MAX,
	    .write_timeout = 60 });
	FUZZ_CHECK(set != NULL);
	FUZZ_CHECK(bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE,
	    pair) == 0);
	bufferevent_setcb(pair[1], client_read_cb, NULL, NULL, &c);
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	FUZZ_CHECK(session_new(set, pair[0], (struct sockaddr *)&sin,
	    sizeof(sin), NULL, 0, 0) != NULL);

	/* The whole input, then the end of file. */
	FUZZ_CHECK(bufferevent_write(pair[1], data, size) == 0);
	bufferevent_flush(pair[1], EV_WRITE, BEV_FINISHED);

	deadline = mono_ms() + DEADLINE_MS;
	evtimer_add(tick, &tv);
	while (session_set_count(set) > 0) {
		FUZZ_CHECK(mono_ms() < deadline);
		event_base_loop(base, EVLOOP_ONCE);
	}
	evtimer_del(tick);
	session_set_free(set);
	pop3_env_free(env);
	/* What the last turn left for the client (its partner is gone). */
	client_read_cb(pair[1], &c);
	bufferevent_free(pair[1]);
	FUZZ_CHECK(c.got >= 3);
	return 0;
}
