/*
 * report: the swarm's final report, as a text table or one JSON object
 * (keys documented in the issue 3 spec; scripts/bench parses them).
 */
#ifndef SWARM_REPORT_H
#define SWARM_REPORT_H

#include <stdio.h>

#include "engine.h"

/* Human-readable report: totals, rates, a latency table in ms. */
void	report_text(FILE *f, const struct swarm_opts *o,
	    const struct swarm_stats *st);

/* One JSON object followed by a newline. */
void	report_json(FILE *f, const struct swarm_opts *o,
	    const struct swarm_stats *st);

#endif
