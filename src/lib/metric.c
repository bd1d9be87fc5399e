/*
 * metric: the Prometheus text format (exposition format 0.0.4) and
 * OpenMetrics 1.0.0, a fixed-bucket histogram, a bounded tally.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/metric.h"

/* Upper bounds in microseconds; METRIC_HIST_BUCKETS of them. */
static const uint64_t hist_le_us[METRIC_HIST_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const hist_le[METRIC_HIST_BUCKETS] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
	"0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};

static const char *
type_name(enum metric_type type)
{
	switch (type) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_GAUGE:
		return "gauge";
	case METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

void
metric_family(struct metric_writer *w, const char *name,
    enum metric_type type, const char *help)
{
	size_t len = strlen(name);

	/* OpenMetrics names the counter family without its _total. */
	if (w->format == METRIC_OPENMETRICS && type == METRIC_COUNTER &&
	    len > 6 && strcmp(name + len - 6, "_total") == 0)
		len -= 6;
	evbuffer_add_printf(w->out, "# HELP %.*s %s\n# TYPE %.*s %s\n",
	    (int)len, name, help, (int)len, name, type_name(type));
}

/* A label value as both formats want it: \\, \" and \n escaped. */
static void
put_label(struct metric_writer *w, const char *label, const char *value)
{
	const char *p;

	evbuffer_add_printf(w->out, "%s=\"", label);
	for (p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			evbuffer_add_printf(w->out, "\\%c", *p);
		else if (*p == '\n')
			evbuffer_add(w->out, "\\n", 2);
		else
			evbuffer_add(w->out, p, 1);
	}
	evbuffer_add(w->out, "\"", 1);
}

static void
put_name(struct metric_writer *w, const char *name, const char *label,
    const char *value)
{
	evbuffer_add_printf(w->out, "%s", name);
	if (label == NULL)
		return;
	evbuffer_add(w->out, "{", 1);
	put_label(w, label, value);
	evbuffer_add(w->out, "}", 1);
}

void
metric_u64(struct metric_writer *w, const char *name, const char *label,
    const char *value, uint64_t v)
{
	put_name(w, name, label, value);
	evbuffer_add_printf(w->out, " %llu\n", (unsigned long long)v);
}

void
metric_double(struct metric_writer *w, const char *name, const char *label,
    const char *value, double v)
{
	put_name(w, name, label, value);
	evbuffer_add_printf(w->out, " %.17g\n", v);
}

void
metric_end(struct metric_writer *w)
{
	if (w->format == METRIC_OPENMETRICS)
		evbuffer_add(w->out, "# EOF\n", 6);
}

void
metric_hist_observe(struct metric_hist *h, uint64_t us)
{
	size_t i;

	/* 16 compares at most; most latencies land in the first few. */
	for (i = 0; i < METRIC_HIST_BUCKETS && us > hist_le_us[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum_us += us;
}

static void
hist_sample(struct metric_writer *w, const char *name, const char *suffix,
    const char *label, const char *value, const char *le)
{
	evbuffer_add_printf(w->out, "%s%s", name, suffix);
	if (label == NULL && le == NULL)
		return;
	evbuffer_add(w->out, "{", 1);
	if (label != NULL)
		put_label(w, label, value);
	if (label != NULL && le != NULL)
		evbuffer_add(w->out, ",", 1);
	if (le != NULL)
		put_label(w, "le", le);
	evbuffer_add(w->out, "}", 1);
}

void
metric_hist_write(struct metric_writer *w, const char *name,
    const char *label, const char *value, const struct metric_hist *h)
{
	uint64_t	cum = 0;
	size_t		i;

	for (i = 0; i < METRIC_HIST_BUCKETS; i++) {
		cum += h->bucket[i];
		hist_sample(w, name, "_bucket", label, value, hist_le[i]);
		evbuffer_add_printf(w->out, " %llu\n", (unsigned long long)cum);
	}
	hist_sample(w, name, "_bucket", label, value, "+Inf");
	evbuffer_add_printf(w->out, " %llu\n", (unsigned long long)h->count);
	hist_sample(w, name, "_sum", label, value, NULL);
	evbuffer_add_printf(w->out, " %llu.%06llu\n",
	    (unsigned long long)(h->sum_us / 1000000),
	    (unsigned long long)(h->sum_us % 1000000));
	hist_sample(w, name, "_count", label, value, NULL);
	evbuffer_add_printf(w->out, " %llu\n", (unsigned long long)h->count);
}

/* The slot of value in t, made if there is room; else "other"'s. */
static size_t
tally_slot(struct metric_tally *t, const char *value)
{
	size_t i;

	if (value == NULL || *value == '\0')
		value = "unknown";
	for (i = 0; i < t->n; i++)
		if (strncmp(t->e[i].value, value, METRIC_LABEL_MAX - 1) == 0)
			return i;
	/* Full but for the last slot, kept for "other". */
	if (t->n >= METRIC_TALLY_MAX - 1 && strcmp(value, "other") != 0)
		return tally_slot(t, "other");
	i = t->n++;
	snprintf(t->e[i].value, sizeof(t->e[i].value), "%s", value);
	t->e[i].count = 0;
	return i;
}

void
metric_tally_add(struct metric_tally *t, const char *value)
{
	t->e[tally_slot(t, value)].count++;
}

uint64_t
metric_tally_get(const struct metric_tally *t, const char *value)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->e[i].value, value) == 0)
			return t->e[i].count;
	return 0;
}

void
metric_tally_write(struct metric_writer *w, const char *name,
    const char *label, const struct metric_tally *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		metric_u64(w, name, label, t->e[i].value, t->e[i].count);
}
