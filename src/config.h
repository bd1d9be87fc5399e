/*
 * config: the INI file (iniparser) turned into an immutable struct cfg.
 *
 * Every key lives in one table in config.c: section, key, type, offset,
 * default, bounds. Relative paths (passwd_file, the mail location) are
 * resolved against the directory of the config file. Unknown sections and
 * keys, and keys given twice, are reported with log_warnx() and counted in
 * cfg->warnings, but are not fatal (evpop3d -t fails on them).
 */
#ifndef EVPOP3D_CONFIG_H
#define EVPOP3D_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/logfmt.h"

#define CFG_WORKERS_MAX	256	/* [server] workers */

struct cfg_listen {
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	char			 text[64];	/* as written: "[::1]:1100" */
};

/*
 * [auth] plaintext: may a session that is not under TLS log in with a
 * clear-text password (USER/PASS, APOP, AUTH PLAIN and LOGIN)?
 */
enum cfg_plaintext {
	CFG_PLAINTEXT_LOCALHOST,	/* from 127.0.0.0/8 and ::1 only */
	CFG_PLAINTEXT_ALLOWED,		/* from anywhere */
	CFG_PLAINTEXT_NEVER,		/* only under TLS */
};

/* One [tls.NAME] section: the certificate for SNI server name NAME. */
struct cfg_tls_sni {
	char	*name;		/* lower case; "*.example.org" is a wildcard */
	char	*cert;		/* absolute */
	char	*key;
};

/* A network, ADDRESS[/PREFIX] ([auth] limits_exempt, [server]
 * proxy_protocol_from). */
struct cfg_net {
	int			 family;	/* AF_INET or AF_INET6 */
	unsigned char		 addr[16];	/* 4 octets for AF_INET */
	int			 prefix;	/* bits */
};

struct cfg {
	unsigned		 refs;		/* cfg_ref(), cfg_free() */
	char			*path;		/* the file we were read from */
	int			 warnings;	/* unknown or duplicate keys and
						   sections logged at load */

	/* [server] */
	struct cfg_listen	*listen;
	size_t			 n_listen;
	char			*hostname;
	int			 idle_timeout;	/* s, TRANSACTION; >= 600 */
	int			 login_timeout;	/* s, connect to login */
	int			 write_timeout;	/* s, client not reading */
	int			 max_connections;
	int			 max_bad_commands;
	int			 shutdown_timeout; /* s: the drain at a stop */
	/* PROXY protocol (net/proxy.h): who must send a header, how fast */
	struct cfg_net		*proxy_from;
	size_t			 n_proxy_from;
	int			 proxy_timeout;	/* s, connect to a whole header */
	/* [server] listen_tls, [tls], [tls.NAME]: TLS (net/tls.c) */
	struct cfg_listen	*listen_tls;	/* implicit TLS (RFC 8314) */
	size_t			 n_listen_tls;
	char			*tls_cert;	/* absolute; NULL: no TLS */
	char			*tls_key;
	char			*tls_dh;	/* optional */
	char			*tls_ciphers;	/* TLSv1.2; NULL: OpenSSL's */
	char			*tls_ciphersuites; /* TLSv1.3 */
	char			*tls_min_protocol; /* "TLSv1.2" or "TLSv1.3" */
	struct cfg_tls_sni	*tls_sni;	/* [tls.NAME] sections */
	size_t			 n_tls_sni;
	char			*user;		/* "" = do not switch */
	char			*group;		/* "" = the user's group */
	bool			 allow_root;	/* serve as uid 0 */
	char			*workers_text;	/* as written: N or "auto" */
	int			 workers;	/* 1..CFG_WORKERS_MAX; start-only */

	/* [auth] */
	char			*auth_driver;	/* "passwd-file" or "pgsql" */
	bool			 auth_pgsql;	/* driver = pgsql */
	char			*passwd_file;	/* absolute; NULL with pgsql */
	/* [auth] driver = pgsql (auth/auth_pgsql.h) */
	char			*pgsql_connect;	/* libpq conninfo */
	char			*password_query;	/* sqltmpl.h */
	char			*user_query;	/* "" = none */
	int			 pgsql_connections;
	int			 pgsql_timeout;	/* s */
	int			 cache_ttl;	/* s; 0 = no cache */
	int			 cache_size;	/* users */
	bool			 apop;
	int			 failure_delay_ms;
	int			 max_failures;
	int			 threads;
	bool			 quick_jobs;	/* cheap logins on the loop */
	int			 quick_limit_ms;	/* worker.h: slow_us */
	bool			 allow_shrink;	/* passwd-file may lose users */
	char			*plaintext_text; /* as written */
	enum cfg_plaintext	 plaintext;	/* before TLS (RFC 2595 s. 2.3) */
	/* [auth] brute-force defence and per-source limits */
	int			 max_connections_per_ip;	/* 0: none */
	int			 max_unauth_per_ip;		/* 0: none */
	int			 max_logins_per_user;	/* per user+IP; 0: none */
	int			 penalty_max_ms;	/* 0: no penalty */
	int			 penalty_expire;	/* s without a failure */
	int			 penalty_table_size;	/* idle addresses kept */
	struct cfg_net		*limits_exempt;
	size_t			 n_limits_exempt;

	/* [mail] */
	char			*mail_driver;
	char			*mail_location;	/* template, %u %n %d %h */
	int			 listing_cache_kib;	/* [mail] listing_cache */

	/* [pop3] */
	bool			 enable_last;
	char			*uidl_format;	/* "" = each driver's default */

	/* [log] */
	bool			 log_debug;

	/* [control]: the admin socket (net/control.h) */
	char			*control_socket; /* absolute; "" = none */
	char			*control_mode_text; /* as written, octal */
	int			 control_mode;	/* of the socket file */
	char			*log_target_text;	/* as written */
	char			*log_facility_text;
	char			*log_logout_text;
	enum log_target		 log_target;	/* LOG_TARGET_AUTO: decide
						   at log_configure() */
	int			 log_facility;	/* syslog(3) LOG_MAIL ... */
	struct logfmt		*log_logout;	/* compiled logout_format */
	/* [metrics] (net/metrics.h) */
	char			*metrics_listen; /* "" = no endpoint */
};

/*
 * Load and validate path. On success returns 0 and stores a new cfg in
 * *cfg_r (free with cfg_free()). On error returns -1 and writes one line to
 * err naming the file, section, key and what is wrong, for example
 *   "conf/evpop3d.ini: [server] idle_timeout: must be at least 600, got 30"
 */
int	cfg_load(const char *path, struct cfg **cfg_r, char *err, size_t errlen);
/*
 * A cfg is shared by its users (a reload makes a new one while sessions
 * keep theirs): cfg_ref() takes a reference, cfg_free() drops one and
 * frees with the last. The event loop's thread only; worker threads
 * read a cfg whose reference their job holds.
 */
struct cfg *cfg_ref(struct cfg *cfg);
void	cfg_free(struct cfg *cfg);
/* The [log] settings of cfg for log_configure(). */
void	cfg_log_params(const struct cfg *cfg, struct log_params *p_r);

/*
 * Parse one listen address: "127.0.0.1:110", "[::1]:110", "*:110" (all
 * IPv4), "[::]:110" (all IPv6). Port 0 means "pick one" (tests use it).
 * Returns 0 or -1 with a reason in err.
 */
int	cfg_parse_listen(const char *text, struct cfg_listen *l_r,
	    char *err, size_t errlen);

/*
 * Is sa's address in [auth] limits_exempt? Exempt clients are neither
 * counted nor limited nor penalized (local webmail, a local proxy). An
 * IPv4-mapped IPv6 address is taken as IPv4.
 */
bool	cfg_limits_exempt(const struct cfg *cfg, const struct sockaddr *sa);
/*
 * Is sa's address in [server] proxy_protocol_from? Connections from
 * there must begin with a PROXY protocol header (a load balancer).
 */
bool	cfg_proxy_trusted(const struct cfg *cfg, const struct sockaddr *sa);

#endif
