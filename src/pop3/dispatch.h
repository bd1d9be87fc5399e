/*
 * dispatch: the command table and the dispatcher (dispatch.c).
 */
#ifndef EVPOP3D_POP3_DISPATCH_H
#define EVPOP3D_POP3_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "pop3/client.h"

#define CMDF_SECRET	0x01	/* never log the arguments */
#define CMDF_RESTLINE	0x02	/* one argument: the rest of the line */

#define POP3_MAX_ARGS	4

typedef enum cmd_result pop3_handler(struct client *c, int argc, char **argv);

struct pop3_cmd {
	const char	*name;
	pop3_handler	*fn;
	unsigned	 states;	/* mask of enum pop3_state */
	int		 min_args;
	int		 max_args;
	unsigned	 flags;
};

struct pop3_cmd_stats {
	uint64_t	calls;
	uint64_t	errors;
};

/* Handle one complete command line (terminator removed). */
void	pop3_dispatch(struct client *c, char *line, size_t len);
/* The command table, for tests and statistics. */
const struct pop3_cmd	*pop3_cmd_table(size_t *n_r);
const struct pop3_cmd	*pop3_cmd_find(const char *name);
const struct pop3_cmd_stats *pop3_cmd_stats(size_t *n_r);

#endif
