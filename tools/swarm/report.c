/*
 * report: text and JSON renderings of struct swarm_stats.
 *
 * The JSON emitter is a few functions over a FILE with a comma flag per
 * nesting level; strings are escaped per RFC 8259 section 7 and
 * non-finite numbers become null.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

#define JSON_DEPTH	16

struct json {
	FILE		*f;
	int		 depth;
	bool		 comma[JSON_DEPTH];
};

static void
json_str(struct json *j, const char *s)
{
	const unsigned char	*p;

	fputc('"', j->f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", j->f);
			break;
		case '\\':
			fputs("\\\\", j->f);
			break;
		case '\n':
			fputs("\\n", j->f);
			break;
		case '\r':
			fputs("\\r", j->f);
			break;
		case '\t':
			fputs("\\t", j->f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(j->f, "\\u%04x", *p);
			else
				fputc(*p, j->f);
		}
	}
	fputc('"', j->f);
}

/* Separator and key (key NULL inside arrays). */
static void
json_key(struct json *j, const char *key)
{
	if (j->comma[j->depth])
		fputc(',', j->f);
	j->comma[j->depth] = true;
	if (key != NULL) {
		json_str(j, key);
		fputc(':', j->f);
	}
}

static void
json_open(struct json *j, const char *key, char c)
{
	json_key(j, key);
	fputc(c, j->f);
	if (j->depth + 1 < JSON_DEPTH)
		j->depth++;
	j->comma[j->depth] = false;
}

static void
json_close(struct json *j, char c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
}

static void
json_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

static void
json_dbl(struct json *j, const char *key, double v, int prec)
{
	json_key(j, key);
	if (isfinite(v))
		fprintf(j->f, "%.*f", prec, v);
	else
		fputs("null", j->f);
}

static void
json_string(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	json_str(j, v);
}

static void
json_lit(struct json *j, const char *key, const char *lit)
{
	json_key(j, key);
	fputs(lit, j->f);
}

static double
per(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

static void
json_lat(struct json *j, const char *key, const struct hist *h)
{
	json_open(j, key, '{');
	json_u64(j, "count", h->count);
	json_dbl(j, "mean", hist_mean(h), 1);
	json_u64(j, "p50", hist_percentile(h, 50));
	json_u64(j, "p90", hist_percentile(h, 90));
	json_u64(j, "p99", hist_percentile(h, 99));
	json_u64(j, "max", h->count ? h->max : 0);
	json_close(j, '}');
}

struct cdf_arg {
	struct json	*j;
	uint64_t	 total;
};

static void
cdf_point(uint64_t upper, uint64_t cumulative, void *arg)
{
	struct cdf_arg	*a = arg;

	json_open(a->j, NULL, '[');
	json_u64(a->j, NULL, upper);
	json_dbl(a->j, NULL, (double)cumulative / (double)a->total, 6);
	json_close(a->j, ']');
}

static void
json_cdf(struct json *j, const char *key, const struct hist *h)
{
	struct cdf_arg	 a = { j, h->count };

	json_open(j, key, '[');
	if (h->count > 0)
		hist_foreach(h, cdf_point, &a);
	json_close(j, ']');
}

static double
mem_per(uint64_t at, uint64_t start, uint64_t n)
{
	return n > 0 ? ((double)at - (double)start) / (double)n : 0.0;
}

void
report_json(FILE *f, const struct swarm_opts *o, const struct swarm_stats *st)
{
	const struct sc_prog		*prog = o->prog;
	const struct swarm_server	*sv = &st->server;
	struct json			 j;
	uint16_t			 v;
	uint32_t			 i;
	int				 k;

	memset(&j, 0, sizeof(j));
	j.f = f;
	json_open(&j, NULL, '{');
	json_string(&j, "scenario", o->scenario);
	json_string(&j, "host", o->host);
	json_u64(&j, "port", o->port);
	json_u64(&j, "concurrency", o->concurrency);
	json_dbl(&j, "rate", o->rate, 3);
	json_dbl(&j, "elapsed_s", st->elapsed_s, 3);

	json_open(&j, "sessions", '{');
	json_u64(&j, "started", st->started);
	json_u64(&j, "completed", st->completed);
	json_u64(&j, "failed", st->failed);
	json_u64(&j, "aborted", st->aborted);
	json_close(&j, '}');
	json_u64(&j, "peak_open", st->peak_open);
	json_dbl(&j, "sessions_per_s", per((double)st->completed,
	    st->elapsed_s), 3);
	json_u64(&j, "commands", st->commands);
	json_dbl(&j, "commands_per_s", per((double)st->commands,
	    st->elapsed_s), 3);
	json_u64(&j, "bytes_in", st->bytes_in);
	json_u64(&j, "bytes_out", st->bytes_out);
	json_dbl(&j, "mb_per_s", per((double)st->bytes_in, st->elapsed_s) /
	    1e6, 3);

	json_open(&j, "violations", '{');
	json_u64(&j, "total", st->violations_total);
	json_open(&j, "by_kind", '{');
	for (k = 0; k < VK_NKINDS; k++)
		json_u64(&j, engine_kind_name((enum swarm_kind)k),
		    st->violations[k]);
	json_close(&j, '}');
	json_close(&j, '}');
	if (o->tls == SWARM_TLS_OFF)
		json_lit(&j, "tls", "null");
	else {
		json_open(&j, "tls", '{');
		json_string(&j, "mode", o->tls == SWARM_TLS_STLS ? "stls" :
		    "implicit");
		json_lit(&j, "resume", o->tls_resume ? "true" : "false");
		json_lit(&j, "verify", o->cacert != NULL ? "true" : "false");
		json_u64(&j, "handshakes", st->tls_full + st->tls_resumed);
		json_u64(&j, "full", st->tls_full);
		json_u64(&j, "resumed", st->tls_resumed);
		json_dbl(&j, "handshakes_per_s", per((double)(st->tls_full +
		    st->tls_resumed), st->elapsed_s), 3);
		json_string(&j, "protocol", st->tls_proto);
		json_string(&j, "cipher", st->tls_cipher);
		json_close(&j, '}');
	}
	json_open(&j, "errors", '{');
	json_u64(&j, "err_reply", st->err_replies);
	json_close(&j, '}');

	json_open(&j, "latency_us", '{');
	json_lat(&j, "session", &st->session);
	json_lat(&j, "connect", &st->connect);
	json_lat(&j, "greeting", &st->greeting);
	json_lat(&j, "handshake", &st->handshake);
	json_open(&j, "commands", '{');
	for (v = 0; v < prog->nverbs; v++)
		if (st->verbs[v].count > 0)
			json_lat(&j, prog->verbs[v], &st->verbs[v]);
	json_close(&j, '}');
	json_close(&j, '}');

	json_open(&j, "cdf", '{');
	json_cdf(&j, "session", &st->session);
	json_open(&j, "commands", '{');
	for (v = 0; v < prog->nverbs; v++)
		if (st->verbs[v].count > 0)
			json_cdf(&j, prog->verbs[v], &st->verbs[v]);
	json_close(&j, '}');
	json_close(&j, '}');

	if (!sv->sampled)
		json_lit(&j, "server", "null");
	else {
		json_open(&j, "server", '{');
		json_u64(&j, "pid", (uint64_t)sv->pid);
		json_lit(&j, "children", sv->children ? "true" : "false");
		json_u64(&j, "cpu_us", sv->cpu_us);
		json_dbl(&j, "cpu_us_per_session", per((double)sv->cpu_us,
		    (double)st->completed), 3);
		json_u64(&j, "rss_start", sv->rss_start);
		json_u64(&j, "rss_peak", sv->rss_peak);
		json_u64(&j, "rss_end", sv->rss_end);
		json_u64(&j, "pss_start", sv->pss_start);
		json_u64(&j, "pss_peak", sv->pss_peak);
		json_dbl(&j, "mem_per_session", mem_per(sv->mem_rss,
		    sv->rss_start, sv->mem_open), 1);
		json_dbl(&j, "pss_per_session", sv->mem_pss ?
		    mem_per(sv->mem_pss, sv->pss_start, sv->mem_open) : 0.0,
		    1);
		json_u64(&j, "mem_sessions", sv->mem_open);
		json_u64(&j, "nprocs_peak", sv->nprocs_peak);
		json_close(&j, '}');
	}

	json_open(&j, "timeline", '[');
	for (i = 0; i < st->ntimeline; i++) {
		json_open(&j, NULL, '[');
		json_dbl(&j, NULL, st->timeline[i].t, 3);
		json_u64(&j, NULL, st->timeline[i].open);
		json_u64(&j, NULL, st->timeline[i].completed);
		json_u64(&j, NULL, st->timeline[i].rss);
		json_close(&j, ']');
	}
	json_close(&j, ']');

	json_open(&j, "marks", '{');
	for (v = 0; v < prog->nmarks; v++)
		json_u64(&j, prog->marks[v], st->marks[v]);
	json_close(&j, '}');
	json_open(&j, "client", '{');
	json_u64(&j, "cpu_us", st->client_cpu_us);
	json_dbl(&j, "cpu_share", per((double)st->client_cpu_us,
	    st->elapsed_s * 1e6), 3);
	json_close(&j, '}');
	json_lit(&j, "interrupted", st->interrupted ? "true" : "false");
	json_close(&j, '}');
	fputc('\n', f);
	fflush(f);
}

static void
text_lat(FILE *f, const char *name, const struct hist *h)
{
	if (h->count == 0)
		return;
	fprintf(f, "  %-10s %10llu %10.3f %10.3f %10.3f %10.3f %10.3f\n",
	    name, (unsigned long long)h->count, hist_mean(h) / 1e3,
	    (double)hist_percentile(h, 50) / 1e3,
	    (double)hist_percentile(h, 90) / 1e3,
	    (double)hist_percentile(h, 99) / 1e3, (double)h->max / 1e3);
}

static const char *
human(char *buf, size_t size, double bytes)
{
	if (fabs(bytes) >= 1024.0 * 1024 * 1024)
		snprintf(buf, size, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
	else if (fabs(bytes) >= 1024.0 * 1024)
		snprintf(buf, size, "%.2f MiB", bytes / (1024.0 * 1024));
	else if (fabs(bytes) >= 1024.0)
		snprintf(buf, size, "%.1f KiB", bytes / 1024.0);
	else
		snprintf(buf, size, "%.0f B", bytes);
	return buf;
}

void
report_text(FILE *f, const struct swarm_opts *o, const struct swarm_stats *st)
{
	const struct sc_prog		*prog = o->prog;
	const struct swarm_server	*sv = &st->server;
	char				 b1[32], b2[32], b3[32], b4[32];
	uint16_t			 v;
	int				 k, any = 0;

	fprintf(f, "scenario %s against %s port %u: concurrency %u, rate "
	    "%s, %.2f s%s\n", o->scenario, o->host, o->port, o->concurrency,
	    o->rate > 0 ? "limited" : "unlimited", st->elapsed_s,
	    st->interrupted ? " (interrupted)" : "");
	if (o->rate > 0)
		fprintf(f, "  rate limit %.1f sessions/s\n", o->rate);
	fprintf(f, "sessions   %llu started, %llu completed, %llu failed, "
	    "%llu aborted; peak open %llu\n",
	    (unsigned long long)st->started,
	    (unsigned long long)st->completed,
	    (unsigned long long)st->failed,
	    (unsigned long long)st->aborted,
	    (unsigned long long)st->peak_open);
	fprintf(f, "throughput %.1f sessions/s, %.1f commands/s, %.3f MB/s "
	    "in (%llu commands, %llu bytes in, %llu out)\n",
	    per((double)st->completed, st->elapsed_s),
	    per((double)st->commands, st->elapsed_s),
	    per((double)st->bytes_in, st->elapsed_s) / 1e6,
	    (unsigned long long)st->commands,
	    (unsigned long long)st->bytes_in,
	    (unsigned long long)st->bytes_out);

	fprintf(f, "latency ms %10s %10s %10s %10s %10s %10s\n", "count",
	    "mean", "p50", "p90", "p99", "max");
	text_lat(f, "session", &st->session);
	text_lat(f, "connect", &st->connect);
	text_lat(f, "greeting", &st->greeting);
	text_lat(f, "handshake", &st->handshake);
	for (v = 0; v < prog->nverbs; v++)
		text_lat(f, prog->verbs[v], &st->verbs[v]);

	if (o->tls != SWARM_TLS_OFF)
		fprintf(f, "tls        %s%s: %llu handshakes (%llu full, %llu "
		    "resumed), %.1f/s; %s %s\n",
		    o->tls == SWARM_TLS_STLS ? "STLS" : "implicit",
		    o->tls_resume ? ", resumption offered" : "",
		    (unsigned long long)(st->tls_full + st->tls_resumed),
		    (unsigned long long)st->tls_full,
		    (unsigned long long)st->tls_resumed,
		    per((double)(st->tls_full + st->tls_resumed),
		    st->elapsed_s), st->tls_proto[0] ? st->tls_proto : "-",
		    st->tls_cipher);
	fprintf(f, "violations %llu", (unsigned long long)st->violations_total);
	for (k = 0; k < VK_NKINDS; k++)
		if (st->violations[k] > 0)
			fprintf(f, "%s %s %llu", any++ ? "," : ":",
			    engine_kind_name((enum swarm_kind)k),
			    (unsigned long long)st->violations[k]);
	fprintf(f, "; -ERR replies %llu\n",
	    (unsigned long long)st->err_replies);
	for (v = 0; v < prog->nmarks; v++)
		fprintf(f, "mark %s reached %llu times\n", prog->marks[v],
		    (unsigned long long)st->marks[v]);

	if (sv->sampled) {
		fprintf(f, "server pid %d%s: cpu %.3f s, %.1f us/session; "
		    "rss %s start, %s peak, %s end\n", (int)sv->pid,
		    sv->children ? " (+children)" : "",
		    (double)sv->cpu_us / 1e6,
		    per((double)sv->cpu_us, (double)st->completed),
		    human(b1, sizeof(b1), (double)sv->rss_start),
		    human(b2, sizeof(b2), (double)sv->rss_peak),
		    human(b3, sizeof(b3), (double)sv->rss_end));
		if (sv->mem_open > 0)
			fprintf(f, "server memory/session %s rss, %s pss "
			    "(at %llu sessions open)\n",
			    human(b1, sizeof(b1), mem_per(sv->mem_rss,
			    sv->rss_start, sv->mem_open)),
			    sv->mem_pss ? human(b4, sizeof(b4),
			    mem_per(sv->mem_pss, sv->pss_start,
			    sv->mem_open)) : "n/a",
			    (unsigned long long)sv->mem_open);
	}
	fprintf(f, "client cpu %.3f s (%.0f%% of one core)\n",
	    (double)st->client_cpu_us / 1e6,
	    100.0 * per((double)st->client_cpu_us, st->elapsed_s * 1e6));
	fflush(f);
}
