/*
 * metric: the pieces of a Prometheus exposition, without HTTP: a writer
 * of the text format (0.0.4, or OpenMetrics 1.0.0), a latency histogram
 * and a tally of counters by one label.
 *
 * Every part keeps its own counters as plain integers bumped on the loop
 * thread, and writes them on demand through a struct metric_writer
 * (server_metrics_write(), pop3_metrics_write()); net/metrics.c serves
 * the result. Nothing here locks or allocates on the counting path.
 *
 * Label values are never client-chosen text: a part passes fixed names
 * (a command from its table, a reason from its code), and a tally keeps
 * at most METRIC_TALLY_MAX of them, the rest under "other".
 */
#ifndef EVPOP3D_METRIC_H
#define EVPOP3D_METRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum metric_format {
	METRIC_TEXT,		/* text/plain; version=0.0.4 */
	METRIC_OPENMETRICS,	/* application/openmetrics-text; 1.0.0 */
};

struct metric_writer {
	struct evbuffer		*out;
	enum metric_format	 format;
};

enum metric_type {
	METRIC_COUNTER,		/* name ends in _total */
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
};

/*
 * The # HELP and # TYPE lines of a family. name is the sample name (a
 * counter's with its "_total", which OpenMetrics leaves off these lines).
 * Each family once per exposition, before its samples.
 */
void	metric_family(struct metric_writer *w, const char *name,
	    enum metric_type type, const char *help);
/*
 * One sample: name, optionally one label (label NULL: none), an integer
 * value. The value is escaped as the format wants ('\\', '"', newline).
 */
void	metric_u64(struct metric_writer *w, const char *name,
	    const char *label, const char *value, uint64_t v);
/* The same with a floating value (seconds, a timestamp). */
void	metric_double(struct metric_writer *w, const char *name,
	    const char *label, const char *value, double v);
/* The end of an exposition: "# EOF" for OpenMetrics, nothing for text. */
void	metric_end(struct metric_writer *w);

/*
 * Latency histogram with fixed buckets, upper bounds in seconds:
 * 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5
 * 1 2.5 5 10, then +Inf. Observed in microseconds.
 */
#define METRIC_HIST_BUCKETS	16

struct metric_hist {
	uint64_t	bucket[METRIC_HIST_BUCKETS + 1];	/* not cumulative */
	uint64_t	count;
	uint64_t	sum_us;
};

void	metric_hist_observe(struct metric_hist *h, uint64_t us);
/*
 * The samples of h as histogram name (name_bucket with le="...",
 * name_sum in seconds, name_count), with one more label first if label
 * is not NULL.
 */
void	metric_hist_write(struct metric_writer *w, const char *name,
	    const char *label, const char *value, const struct metric_hist *h);

/*
 * Counters by one label value, for reasons named in code (static
 * strings). Bounded: past METRIC_TALLY_MAX distinct values, the count
 * goes to "other".
 */
#define METRIC_TALLY_MAX	32
#define METRIC_LABEL_MAX	32	/* a value's length, longer is cut */

struct metric_tally {
	size_t		 n;
	struct {
		char		 value[METRIC_LABEL_MAX];
		uint64_t	 count;
	}		 e[METRIC_TALLY_MAX];
};

/* Add one to value's counter (NULL or "" count as "unknown"). */
void	metric_tally_add(struct metric_tally *t, const char *value);
/* Its current count (0 if never added). */
uint64_t metric_tally_get(const struct metric_tally *t, const char *value);
/* One sample per value: name{label="value"} count. */
void	metric_tally_write(struct metric_writer *w, const char *name,
	    const char *label, const struct metric_tally *t);

#endif
