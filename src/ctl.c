/*
 * ctl: `evpop3d who [-1] | kick USER | stats | reload`, a client of the
 * admin socket (net/control.h for the protocol). It finds the socket in
 * [control] socket of the configuration (-c FILE, default
 * CTL_DEFAULT_CONFIG) or is told it (-s SOCKET); it waits at most
 * CTL_TIMEOUT_S for the daemon, which answers at once or not at all.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "lib/evpop3d.h"
#include "net/control.h"

#define CTL_TIMEOUT_S	30

static const char *const ctl_commands[] = { "who", "kick", "stats", "reload" };

bool
ctl_command(const char *word)
{
	size_t i;

	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		if (strcmp(word, ctl_commands[i]) == 0)
			return true;
	return false;
}

static int
ctl_usage(const char *cmd)
{
	if (strcmp(cmd, "who") == 0)
		fprintf(stderr, "usage: %s who [-1] [-c FILE | -s SOCKET]\n",
		    EVPOP3D_NAME);
	else if (strcmp(cmd, "kick") == 0)
		fprintf(stderr, "usage: %s kick [-c FILE | -s SOCKET] USER\n",
		    EVPOP3D_NAME);
	else
		fprintf(stderr, "usage: %s %s [-c FILE | -s SOCKET]\n",
		    EVPOP3D_NAME, cmd);
	return 2;
}

/* [control] socket of the configuration at conf, copied to buf. */
static int
ctl_socket_path(const char *conf, char *buf, size_t len)
{
	struct cfg	*cfg;
	char		 err[1024];
	int		 rc = -1;

	if (cfg_load(conf, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", EVPOP3D_NAME, err);
		return -1;
	}
	if (cfg->control_socket[0] == '\0')
		fprintf(stderr, "%s: %s: [control] socket is empty: the admin "
		    "socket is off\n", EVPOP3D_NAME, conf);
	else if ((size_t)snprintf(buf, len, "%s", cfg->control_socket) < len)
		rc = 0;
	cfg_free(cfg);
	return rc;
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { .tv_sec = CTL_TIMEOUT_S };
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "%s: %s: path too long for a socket\n",
		    EVPOP3D_NAME, path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "%s: socket: %s\n", EVPOP3D_NAME,
		    strerror(errno));
		return -1;
	}
	/* A daemon that stops answering cannot hang us. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "%s: cannot connect to %s: %s\n", EVPOP3D_NAME,
		    path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Send request, print the reply lines ("* " taken off), and turn the
 * final line into the exit status.
 */
static int
ctl_exchange(const char *path, const char *cmd, const char *request)
{
	FILE	*in;
	char	*line = NULL;
	size_t	 cap = 0;
	ssize_t	 n;
	int	 fd, ret = 1;
	unsigned version;

	if ((fd = ctl_connect(path)) == -1)
		return 1;
	if ((in = fdopen(fd, "r")) == NULL) {
		fprintf(stderr, "%s: %s\n", EVPOP3D_NAME, strerror(errno));
		close(fd);
		return 1;
	}
	errno = 0;
	if ((n = getline(&line, &cap, in)) > 0 &&
	    strncmp(line, "ERR ", 4) == 0) {
		/* Refused before the greeting: "ERR busy: ..." */
		line[strcspn(line, "\n")] = '\0';
		fprintf(stderr, "%s: %s: %s\n", EVPOP3D_NAME, path, line + 4);
		goto out;
	}
	if (n == -1 || sscanf(line, "EVPOP3D-CONTROL %u", &version) != 1) {
		fprintf(stderr, "%s: %s: %s\n", EVPOP3D_NAME, path, n == -1 ?
		    (errno != 0 ? strerror(errno) : "closed at once (busy?)") :
		    "not an evpop3d admin socket");
		goto out;
	}
	if (version != CONTROL_VERSION) {
		fprintf(stderr, "%s: %s: the daemon speaks version %u, this "
		    "program %d\n", EVPOP3D_NAME, path, version,
		    CONTROL_VERSION);
		goto out;
	}
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) == -1) {
		fprintf(stderr, "%s: %s: %s\n", EVPOP3D_NAME, path,
		    strerror(errno));
		goto out;
	}
	errno = 0;
	while ((n = getline(&line, &cap, in)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (strncmp(line, "* ", 2) == 0) {
			printf("%s\n", line + 2);
			continue;
		}
		if (strcmp(line, "OK") == 0) {
			if (strcmp(cmd, "reload") == 0)
				printf("OK\n");
			ret = 0;
		} else if (strncmp(line, "ERR ", 4) == 0)
			fprintf(stderr, "%s: %s: %s\n", EVPOP3D_NAME, cmd,
			    line + 4);
		else
			fprintf(stderr, "%s: %s: unexpected reply line\n",
			    EVPOP3D_NAME, path);
		goto out;
	}
	fprintf(stderr, "%s: %s: the daemon closed before the end of its "
	    "reply%s%s\n", EVPOP3D_NAME, path, errno != 0 ? ": " : "",
	    errno != 0 ? strerror(errno) : "");
out:
	free(line);
	fclose(in);
	if (fflush(stdout) == EOF && ret == 0)
		ret = 1;
	return ret;
}

int
ctl_main(int argc, char *argv[])
{
	const char	*cmd = argv[0], *conf = CTL_DEFAULT_CONFIG;
	const char	*sock = NULL;
	char		 path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	char		 request[CONTROL_REQUEST_MAX + 1];
	bool		 verbose = false;
	int		 ch;
	size_t		 n, i;

	optind = 1;
	while ((ch = getopt(argc, argv, strcmp(cmd, "who") == 0 ? "1c:s:v" :
	    "c:s:")) != -1) {
		switch (ch) {
		case '1':
		case 'v':
			verbose = true;
			break;
		case 'c':
			conf = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		default:
			return ctl_usage(cmd);
		}
	}
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "kick") == 0) {
		if (argc != 1 || argv[0][0] == '\0')
			return ctl_usage(cmd);
		/* One line of printable text: the daemon refuses the rest. */
		n = strlen(argv[0]);
		for (i = 0; i < n; i++)
			if ((unsigned char)argv[0][i] < 0x20 ||
			    (unsigned char)argv[0][i] > 0x7e) {
				fprintf(stderr, "%s: kick: the user name has "
				    "a byte that is not printable ASCII\n",
				    EVPOP3D_NAME);
				return 2;
			}
		if (n > POP3_USER_MAX) {
			fprintf(stderr, "%s: kick: user name longer than %d "
			    "bytes\n", EVPOP3D_NAME, POP3_USER_MAX);
			return 2;
		}
		snprintf(request, sizeof(request), "kick %s\n", argv[0]);
	} else if (argc != 0)
		return ctl_usage(cmd);
	else
		snprintf(request, sizeof(request), "%s%s\n", cmd,
		    verbose ? " -1" : "");
	if (sock == NULL) {
		if (ctl_socket_path(conf, path, sizeof(path)) == -1)
			return 1;
		sock = path;
	}
	return ctl_exchange(sock, cmd, request);
}
