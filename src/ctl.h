/*
 * ctl: the client side of the admin socket (net/control.h), that is
 * `evpop3d who | kick | stats | reload`, run by an operator against the
 * running daemon.
 */
#ifndef EVPOP3D_CTL_H
#define EVPOP3D_CTL_H

#include <stdbool.h>

/* Where the commands read [control] socket from when not told (-c). */
#define CTL_DEFAULT_CONFIG	"/etc/evpop3d/evpop3d.ini"

/* Is word one of the commands ctl_main() runs? */
bool	ctl_command(const char *word);

/*
 * Run argv[0] (a ctl_command()) with its options: print the reply lines
 * to stdout, an error to stderr. Returns the exit status: 0 done, 1 the
 * daemon answered ERR or could not be reached, 2 usage.
 */
int	ctl_main(int argc, char *argv[]);

#endif
