/*
 * NAME
 *	probe - STARTTLS probe engine
 * SUMMARY
 *	See tlspolicy/probe.h for the contract. This file holds the SMTP
 *	client state machine and the poll() loop that drives many of them.
 * DESCRIPTION
 *	One connection (struct conn) per address. Its states, in order:
 *
 *	RESOLVE	  the target's name is being resolved: all names at once
 *		  through the resolver (c-ares, opts.dns_servers) before
 *		  the loop, within one step timeout
 *	QUEUED	  waiting for a job slot; not on the clock yet
 *	CONNECT	  non-blocking connect() in progress
 *	BANNER	  reading the 220 greeting (may be multi-line)
 *	EHLO	  EHLO sent; reading the reply, which must offer STARTTLS
 *	STARTTLS  STARTTLS sent; reading the 220
 *	HANDSHAKE TLS handshake, with the target's settings (in wrapper
 *		  mode right after CONNECT: SMTPS speaks TLS first)
 *	CHAIN	  taking the presented chain and its fingerprints
 *	QUIT	  QUIT sent over TLS; the reply is waited for briefly and
 *		  any failure here is ignored: we already have the chain
 *	DONE	  closed; the result is final
 *
 *	A connection only moves forward. Every step has a deadline (the
 *	earlier of the address's and the step's); the loop's poll()
 *	timeout is the nearest deadline, so a silent or drip-feeding
 *	server cannot hold us past it. Replies go through the capped
 *	parser in smtp_reply.c, so memory per connection is bounded too.
 *
 *	Writes use send(MSG_NOSIGNAL), but OpenSSL's socket BIO uses
 *	write(), which raises SIGPIPE on a peer that has gone away. A
 *	library must not change the process's signal dispositions, so
 *	tp_prober_run() blocks SIGPIPE in the calling thread while it runs
 *	and swallows one it caused (the technique of curl's sigpipe.h).
 * DIAGNOSTICS
 *	Per-address errors are in the results, "host[address]:port: what".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "casefold.h"
#include "diag.h"
#include "hostport.h"
#include "ossl.h"
#include "smtp_reply.h"
#include "tlspolicy/fingerprint.h"
#include "tlspolicy/probe.h"
#include "tlspolicy/resolver.h"

/* How long we wait for the 221 to our QUIT: politeness, not a result. */
#define QUIT_GRACE 2.0
/* One read from the socket; also the most a reply can leave over. */
#define READ_CHUNK 4096
#define DEFAULT_JOBS 16

enum probe_state {
	PS_RESOLVE,
	PS_QUEUED,
	PS_CONNECT,
	PS_BANNER,
	PS_EHLO,
	PS_STARTTLS,
	PS_HANDSHAKE,
	PS_CHAIN,
	PS_QUIT,
	PS_DONE,
	PS_LAST
};

/* Step names as errors and traces show them. */
static const char *const state_names[PS_LAST] = {
	[PS_RESOLVE] = "resolve",
	[PS_QUEUED] = "queued",
	[PS_CONNECT] = "connect",
	[PS_BANNER] = "banner",
	[PS_EHLO] = "EHLO",
	[PS_STARTTLS] = "STARTTLS",
	[PS_HANDSHAKE] = "TLS handshake",
	[PS_CHAIN] = "chain",
	[PS_QUIT] = "QUIT",
	[PS_DONE] = "done",
};

/* What we are waiting for, for "timed out ... after 30s". */
static const char *const state_waits[PS_LAST] = {
	[PS_RESOLVE] = "resolving",
	[PS_QUEUED] = "queued",
	[PS_CONNECT] = "connecting",
	[PS_BANNER] = "waiting for banner",
	[PS_EHLO] = "waiting for EHLO reply",
	[PS_STARTTLS] = "waiting for STARTTLS reply",
	[PS_HANDSHAKE] = "in TLS handshake",
	[PS_CHAIN] = "taking the chain",
	[PS_QUIT] = "waiting for QUIT reply",
	[PS_DONE] = "done",
};

/* Which reply a parse error was in: "garbage in EHLO reply". */
static const char *const state_replies[PS_LAST] = {
	[PS_BANNER] = "banner",
	[PS_EHLO] = "EHLO reply",
	[PS_STARTTLS] = "STARTTLS reply",
	[PS_QUIT] = "QUIT reply",
};

/*
 * Everything results point to lives in one arena freed with the prober,
 * so results need no per-field ownership rules.
 */
struct chunk {
	struct chunk *next;
	size_t used;
	size_t size;
	alignas(max_align_t) unsigned char data[];
};

/*
 * How to speak TLS to one target, copied from its tp_client_settings
 * when it is added (strings in the arena), so settings need not outlive
 * the call and targets that share settings cost nothing more.
 */
struct tls_params {
	const char *cipherlist;	/* "" for OpenSSL's default */
	const char *groups;	/* "" for OpenSSL's default */
	const char *helo;	/* NULL: opts.ehlo_name, else this host's FQDN */
	const char *error;	/* settings Postfix cannot use: TLS fails */
	unsigned int excluded;	/* TP_PROTO_* */
	int min_version, max_version;
	int security_level;
	int wrappermode;
	unsigned int families;
	int preference;		/* 0, 4, 6 */
	const char *bind4, *bind6;	/* source addresses, "" none */
	int bind_enforce;
	size_t ctx;		/* index in the prober's contexts */
};

/* A TLS context per client certificate in use. */
struct client_ctx {
	SSL_CTX *ctx;
	const char *key;	/* cert|key|eccert|eckey|chain, in the arena */
};

struct target {
	char *spec;
	tp__hostport hp;
	char *servername;	/* SNI to send, or NULL */
	char *connect_to;	/* numeric address to use instead of resolving */
	struct tls_params tls;
	size_t first;		/* its first result */
	size_t count;		/* and how many */
	struct addrinfo *ai;	/* in the arena */
	size_t lookup;		/* its tp_resolver index, for a name */
	const char *dns_error;	/* why the name did not resolve, or NULL */
	tp_tlsa_record *tlsa;	/* DANE: usable records (in the arena) */
	size_t ntlsa;
	const char *nexthop;	/* DANE-TA reference name beside the host, or NULL */
};

struct conn {
	tp_probe_result *res;
	const struct target *target;
	enum probe_state state;
	int fd;
	SSL *ssl;
	struct sockaddr_storage sa;
	socklen_t salen;
	double t_start;		/* connect began */
	double t_step;		/* current step began */
	short events;		/* what poll() should wait for */
	tp_buf out;		/* command being sent */
	size_t out_off;
	tp__smtp_reply reply;
	char pending[READ_CHUNK]; /* bytes read after a complete reply */
	size_t npending;
	char label[TP_HOST_MAX + INET6_ADDRSTRLEN + 16]; /* host[addr]:port */
};

struct tp_prober {
	tp_probe_opts opts;	/* strings point into the arena */
	tp_client_settings *own_settings; /* the defaults when opts had none */
	struct client_ctx *ctxs;
	size_t nctxs;
	struct target *targets;
	size_t ntargets;
	tp_probe_result *results;
	size_t nresults;
	size_t ndone;		/* results final so far, for opts.progress */
	struct conn *conns;
	struct chunk *arena;
	tp_resolver *resolver;	/* for targets given by name */
	int ran;
	int oom;		/* an arena allocation failed during the run */
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
arena_alloc(tp_prober *p, size_t len)
{
	const size_t align = alignof(max_align_t);
	struct chunk *c = p->arena;
	size_t size;

	len = (len + align - 1) & ~(align - 1);
	if (c == NULL || c->size - c->used < len) {
		size = len > 8192 ? len : 8192;
		c = malloc(sizeof(*c) + size);
		if (c == NULL) {
			p->oom = 1;
			return NULL;
		}
		c->size = size;
		c->used = 0;
		c->next = p->arena;
		p->arena = c;
	}
	c->used += len;
	return c->data + c->used - len;
}

static char *
arena_strdup(tp_prober *p, const char *s)
{
	size_t len = strlen(s) + 1;
	char *copy = arena_alloc(p, len);

	if (copy != NULL)
		memcpy(copy, s, len);
	return copy;
}

static const char *
keep(tp_prober *p, const char *s)
{
	char *copy = arena_strdup(p, s);

	return copy ? copy : "out of memory";
}

/*
 * Server text must not reach a terminal as control bytes, nor JSON as
 * invalid UTF-8 (jansson refuses it).
 */
static void
sanitize(char *s)
{
	tp__utf8_sanitize(s);
}

static void trace(tp_prober *p, const char *fmt, ...) TP_PRINTF(2, 3);

static void
trace(tp_prober *p, const char *fmt, ...)
{
	char line[TP_SMTP_LINE_MAX + 512];
	va_list ap;

	if (p->opts.trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sanitize(line);
	p->opts.trace(line, p->opts.trace_payload);
}

static void
set_state(tp_prober *p, struct conn *c, enum probe_state state)
{
	trace(p, "%s: %s -> %s", c->label, state_names[c->state],
	      state_names[state]);
	c->state = state;
	c->t_step = now();
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		/* One try at close_notify; a dead peer is no reason to wait. */
		ERR_clear_error();
		if (c->res->status == TP_OK)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	tp_buf_dispose(&c->out);
	tp__smtp_reply_dispose(&c->reply);
}

static void
conn_finish(tp_prober *p, struct conn *c)
{
	c->res->step = state_names[c->state];
	c->res->elapsed = now() - c->t_start;
	if (c->res->status == TP_OK)
		c->res->step = state_names[PS_DONE];
	conn_close(c);
	if (c->state != PS_DONE)
		set_state(p, c, PS_DONE);
}

static void conn_fail(tp_prober *p, struct conn *c, int status,
		      const char *fmt, ...) TP_PRINTF(4, 5);

static void
conn_fail(tp_prober *p, struct conn *c, int status, const char *fmt, ...)
{
	char msg[TP_DIAG_MESSAGE_MAX], line[TP_DIAG_MESSAGE_MAX + sizeof(c->label) + 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: %s", c->label, msg);
	sanitize(line);
	c->res->status = status;
	c->res->error = keep(p, line);
	trace(p, "%s: failed: %s", c->label, msg);
	conn_finish(p, c);
}

/*
 * The server answered, but TLS cannot be had with these settings: at a
 * mandatory level Postfix defers the mail for this server.
 */
static void conn_tls_fail(tp_prober *p, struct conn *c, int status,
			  const char *fmt, ...) TP_PRINTF(4, 5);

static void
conn_tls_fail(tp_prober *p, struct conn *c, int status, const char *fmt, ...)
{
	char msg[TP_DIAG_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->res->tls_failed = 1;
	conn_fail(p, c, status, "%s", msg);
}

/* The OpenSSL reason for the last error, e.g. "sslv3 alert handshake failure". */
static const char *
tls_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e ? ERR_reason_error_string(e) : NULL;

	return why ? why : "unknown error";
}

static double
conn_deadline(const tp_prober *p, const struct conn *c, int *is_step)
{
	double host = c->t_start + p->opts.timeout;
	double step = c->t_step + p->opts.step_timeout;

	if (c->state == PS_QUIT && c->t_step + QUIT_GRACE < step)
		step = c->t_step + QUIT_GRACE;
	if (is_step != NULL)
		*is_step = step < host;
	return step < host ? step : host;
}

static void
conn_timeout(tp_prober *p, struct conn *c)
{
	int is_step;

	if (c->state == PS_QUIT) {
		trace(p, "%s: no reply to QUIT; closing", c->label);
		conn_finish(p, c);
		return;
	}
	conn_deadline(p, c, &is_step);
	conn_fail(p, c, TP_ETIMEOUT, "timed out %s after %gs",
		  state_waits[c->state],
		  is_step ? p->opts.step_timeout : p->opts.timeout);
}

/* In QUIT every failure just ends the probe: the result is already in. */
static void
conn_lost(tp_prober *p, struct conn *c, int status, const char *fmt, ...)
	TP_PRINTF(4, 5);

static void
conn_lost(tp_prober *p, struct conn *c, int status, const char *fmt, ...)
{
	char msg[TP_DIAG_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->state == PS_QUIT) {
		trace(p, "%s: after QUIT: %s", c->label, msg);
		conn_finish(p, c);
		return;
	}
	conn_fail(p, c, status, "%s", msg);
}

static void start_tls(tp_prober *p, struct conn *c);

/* TCP is up: the banner, or in wrapper mode (SMTPS) TLS at once. */
static void
connected(tp_prober *p, struct conn *c)
{
	if (c->target->tls.wrappermode) {
		start_tls(p, c);
		return;
	}
	set_state(p, c, PS_BANNER);
	c->events = POLLIN;
}

/*
 * bind_source - smtp_connect_addr(): the connection comes from the
 * family's source address when one is set. A bind that fails is a
 * warning to Postfix, and the kernel picks the address, unless
 * smtp_bind_address_enforce: then the delivery is deferred. -1 when c
 * failed.
 */
static int
bind_source(tp_prober *p, struct conn *c)
{
	const struct tls_params *tls = &c->target->tls;
	const char *addr = c->sa.ss_family == AF_INET6 ? tls->bind6 : tls->bind4;
	struct addrinfo hints, *res = NULL;
	int rc, err;

	if (addr == NULL || *addr == '\0')
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(addr, NULL, &hints, &res) != 0)
		return 0;	/* client.c said why in tls_error */
	rc = bind(c->fd, res->ai_addr, res->ai_addrlen);
	err = errno;
	freeaddrinfo(res);
	if (rc == 0)
		return 0;
	trace(p, "%s: bind %s: %s", c->label, addr, strerror(err));
	if (!tls->bind_enforce)
		return 0;
	conn_tls_fail(p, c, TP_ECONNECT, "bind %s: %s: Postfix defers (smtp_bind_address_enforce = yes)",
		      addr, strerror(err));
	return -1;
}

/*
 * Start connecting. -1 (and c back in QUEUED) when the process is out of
 * file descriptors and last_chance is not set: the caller retries once a
 * running probe has ended, so a --jobs above the fd limit degrades to
 * fewer connections at once instead of failures.
 */
static int
conn_start(tp_prober *p, struct conn *c, int last_chance)
{
	const struct sockaddr *sa = (const struct sockaddr *)&c->sa;

	c->t_start = now();
	set_state(p, c, PS_CONNECT);
	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 && (errno == EMFILE || errno == ENFILE) && !last_chance) {
		/* Out of descriptors: wait for a running probe to end. */
		c->state = PS_QUEUED;
		return -1;
	}
	if (c->fd < 0) {
		conn_fail(p, c, TP_ECONNECT, "socket: %s", strerror(errno));
		return 0;
	}
	if (bind_source(p, c) != 0)
		return 0;
	if (connect(c->fd, sa, c->salen) == 0) {
		connected(p, c);
		return 0;
	}
	if (errno != EINPROGRESS) {
		conn_fail(p, c, TP_ECONNECT, "connect: %s", strerror(errno));
		return 0;
	}
	c->events = POLLOUT;
	return 0;
}

static void
conn_send(tp_prober *p, struct conn *c, const char *cmd)
{
	trace(p, "%s: >>> %s", c->label, cmd);
	tp__buf_truncate(&c->out, 0);
	c->out_off = 0;
	if (tp__buf_puts(&c->out, cmd) != TP_OK ||
	    tp__buf_puts(&c->out, "\r\n") != TP_OK)
		conn_fail(p, c, TP_ENOMEM, "out of memory");
}

/* 1 when everything is sent, 0 when poll() must wait, -1 when failed. */
static int
conn_flush(tp_prober *p, struct conn *c)
{
	while (c->out_off < c->out.size) {
		size_t left = c->out.size - c->out_off;
		ssize_t n;

		if (c->ssl != NULL) {
			int rc, err;

			ERR_clear_error();
			rc = SSL_write(c->ssl, c->out.ptr + c->out_off,
				       left > (size_t)INT_MAX ? INT_MAX : (int)left);
			if (rc > 0) {
				c->out_off += (size_t)rc;
				continue;
			}
			err = SSL_get_error(c->ssl, rc);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				c->events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
				return 0;
			}
			conn_lost(p, c, TP_ECONNECT, "connection closed during %s",
				  state_names[c->state]);
			return -1;
		}
		n = send(c->fd, c->out.ptr + c->out_off, left, MSG_NOSIGNAL);
		if (n >= 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->events = POLLOUT;
			return 0;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			conn_lost(p, c, TP_ECONNECT, "connection closed during %s",
				  state_names[c->state]);
		else
			conn_lost(p, c, TP_ECONNECT, "error sending %s: %s",
				  state_names[c->state], strerror(errno));
		return -1;
	}
	c->events = POLLIN;
	return 1;
}

/* Bytes from the socket (or TLS): >0 count, 0 must wait, -1 failed. */
static ssize_t
conn_read(tp_prober *p, struct conn *c, char *buf, size_t size)
{
	ssize_t n;

	if (c->ssl != NULL) {
		int rc, err;

		ERR_clear_error();
		rc = SSL_read(c->ssl, buf, (int)size);
		if (rc > 0)
			return rc;
		err = SSL_get_error(c->ssl, rc);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			c->events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			return 0;
		}
		if (err == SSL_ERROR_SSL)
			conn_lost(p, c, TP_ETLS, "TLS error during %s: %s",
				  state_names[c->state], tls_reason());
		else
			conn_lost(p, c, TP_ECONNECT, "connection closed during %s",
				  state_names[c->state]);
		return -1;
	}
	for (;;) {
		n = recv(c->fd, buf, size, 0);
		if (n > 0)
			return n;
		if (n == 0) {
			conn_lost(p, c, TP_ECONNECT, "connection closed during %s",
				  state_names[c->state]);
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->events = POLLIN;
			return 0;
		}
		conn_lost(p, c, TP_ECONNECT, "connection closed during %s: %s",
			  state_names[c->state], strerror(errno));
		return -1;
	}
}

static void
trace_reply(tp_prober *p, struct conn *c)
{
	const char *line = c->reply.text.ptr, *nl;

	if (p->opts.trace == NULL || line == NULL)
		return;
	for (; *line && (nl = strchr(line, '\n')) != NULL; line = nl + 1)
		trace(p, "%s: <<< %.*s", c->label, (int)(nl - line), line);
}

/* A whole reply has arrived in the current state: act on it. */
static void
handle_reply(tp_prober *p, struct conn *c)
{
	char summary[512];
	int code = c->reply.code;
	char ehlo[TP_HOST_MAX + 8];	/* check_text() bounds the name */

	trace_reply(p, c);
	tp__smtp_reply_summary(&c->reply, summary, sizeof(summary));
	switch (c->state) {
	case PS_BANNER:
		if (code != 220) {
			conn_fail(p, c, TP_EPROTOCOL, "banner: %s", summary);
			return;
		}
		set_state(p, c, PS_EHLO);
		/* The caller's name for all, else the settings' (never empty). */
		snprintf(ehlo, sizeof(ehlo), "EHLO %s",
			 p->opts.ehlo_name ? p->opts.ehlo_name
			 : c->target->tls.helo ? c->target->tls.helo : "localhost");
		conn_send(p, c, ehlo);
		break;
	case PS_EHLO:
		if (code != 250) {
			conn_fail(p, c, TP_EPROTOCOL, "EHLO %s: %s",
				  code >= 400 ? "rejected" : "unexpected reply",
				  summary);
			return;
		}
		if (!tp__smtp_reply_has_keyword(&c->reply, "STARTTLS")) {
			conn_tls_fail(p, c, TP_EPROTOCOL, "no STARTTLS in EHLO reply");
			return;
		}
		set_state(p, c, PS_STARTTLS);
		conn_send(p, c, "STARTTLS");
		break;
	case PS_STARTTLS:
		if (code != 220) {
			conn_tls_fail(p, c, TP_EPROTOCOL, "STARTTLS %s: %s",
				      code >= 400 ? "rejected" : "unexpected reply",
				      summary);
			return;
		}
		/*
		 * Plaintext after the 220 would be read as if it came over
		 * TLS (the STARTTLS command injection of CVE-2011-0411).
		 */
		if (c->npending > 0) {
			conn_fail(p, c, TP_EPROTOCOL,
				  "unexpected data after STARTTLS reply");
			return;
		}
		start_tls(p, c);
		break;
	case PS_QUIT:
		conn_finish(p, c);
		return;
	case PS_RESOLVE:
	case PS_QUEUED:
	case PS_CONNECT:
	case PS_HANDSHAKE:
	case PS_CHAIN:
	case PS_DONE:
	case PS_LAST:
		break;
	}
	tp__smtp_reply_reset(&c->reply);
}

/* Send what is queued, then read until a reply is whole or we must wait. */
static void
step_dialogue(tp_prober *p, struct conn *c)
{
	char buf[READ_CHUNK];
	ssize_t n;
	size_t used;
	int rc;

	if (conn_flush(p, c) <= 0)
		return;
	for (;;) {
		/* Leftovers of the last read come first: they may be a reply. */
		if (c->npending > 0) {
			memcpy(buf, c->pending, c->npending);
			n = (ssize_t)c->npending;
			c->npending = 0;
		} else if ((n = conn_read(p, c, buf, sizeof(buf))) <= 0) {
			return;
		}
		rc = tp__smtp_reply_feed(&c->reply, buf, (size_t)n, &used);
		if (rc < 0) {
			conn_lost(p, c, rc, "%s in %s", c->reply.why,
				  state_replies[c->state]);
			return;
		}
		if (rc == 1) {
			c->npending = (size_t)n - used;
			memcpy(c->pending, buf + used, c->npending);
			handle_reply(p, c);
			return;
		}
	}
}

static int
is_ip_literal(const char *s)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* TLS_SSL_OP_PROTOMASK() of Postfix's tls.h. */
static long
protocol_options(unsigned int excluded)
{
	return ((excluded & TP_PROTO_SSLv2) ? SSL_OP_NO_SSLv2 : 0L)
	    | ((excluded & TP_PROTO_SSLv3) ? SSL_OP_NO_SSLv3 : 0L)
	    | ((excluded & TP_PROTO_TLSv1) ? SSL_OP_NO_TLSv1 : 0L)
	    | ((excluded & TP_PROTO_TLSv1_1) ? SSL_OP_NO_TLSv1_1 : 0L)
	    | ((excluded & TP_PROTO_TLSv1_2) ? SSL_OP_NO_TLSv1_2 : 0L)
	    | ((excluded & TP_PROTO_TLSv1_3) ? SSL_OP_NO_TLSv1_3 : 0L);
}

/*
 * DANE as Postfix's client sets it up for a server with usable TLSA
 * records (tls_client.c, tls_dane.c): no base domain, the host and the
 * next hop as the names DANE-TA(2) certificates must match, none for
 * DANE-EE(3) (RFC 7672 section 3.1.1). The verdict is read in
 * step_chain(). Returns -1 when the connection was failed.
 */
static int
enable_dane(tp_prober *p, struct conn *c)
{
	const struct target *t = c->target;
	int usable = 0;

	c->res->dane = -1;
	if (SSL_dane_enable(c->ssl, NULL) <= 0) {
		conn_fail(p, c, TP_ETLS, "TLS setup: DANE: %s", tls_reason());
		return -1;
	}
	SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!is_ip_literal(t->hp.host) && SSL_add1_host(c->ssl, t->hp.host) != 1) {
		conn_fail(p, c, TP_ETLS, "TLS setup: DANE name %s: %s", t->hp.host, tls_reason());
		return -1;
	}
	if (t->nexthop != NULL && strcasecmp(t->nexthop, t->hp.host) != 0 &&
	    !is_ip_literal(t->nexthop) && SSL_add1_host(c->ssl, t->nexthop) != 1) {
		conn_fail(p, c, TP_ETLS, "TLS setup: DANE name %s: %s", t->nexthop, tls_reason());
		return -1;
	}
	for (size_t i = 0; i < t->ntlsa; i++) {
		const tp_tlsa_record *r = &t->tlsa[i];
		int rc = SSL_dane_tlsa_add(c->ssl, (uint8_t)r->usage, (uint8_t)r->selector,
					   (uint8_t)r->mtype, r->data, r->len);

		if (rc < 0) {
			conn_fail(p, c, TP_ETLS, "TLS setup: DANE record: %s", tls_reason());
			return -1;
		}
		usable += rc > 0;	/* 0: a record OpenSSL cannot use */
	}
	ERR_clear_error();
	if (usable > 0)
		c->res->dane = 0;
	return 0;
}

/*
 * Make the SSL object the way tls_client_start() does: cipher list,
 * protocol exclusions and bounds, SNI, then the security level.
 */
static void
start_tls(tp_prober *p, struct conn *c)
{
	const struct tls_params *tls = &c->target->tls;
	const char *sni = c->target->servername;

	set_state(p, c, PS_HANDSHAKE);
	c->res->wrappermode = tls->wrappermode;
	if (tls->error != NULL) {
		conn_tls_fail(p, c, TP_ETLS, "TLS setup: %s", tls->error);
		return;
	}
	ERR_clear_error();
	c->ssl = SSL_new(p->ctxs[tls->ctx].ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_fail(p, c, TP_ETLS, "TLS setup: %s", tls_reason());
		return;
	}
	if (*tls->cipherlist && SSL_set_cipher_list(c->ssl, tls->cipherlist) != 1) {
		conn_tls_fail(p, c, TP_ETLS, "TLS setup: cipher list \"%s\": %s",
			      tls->cipherlist, tls_reason());
		return;
	}
	if (tls->excluded != 0)
		SSL_set_options(c->ssl, (uint64_t)protocol_options(tls->excluded));
	if (SSL_set_min_proto_version(c->ssl, tls->min_version) != 1 ||
	    SSL_set_max_proto_version(c->ssl, tls->max_version) != 1) {
		conn_tls_fail(p, c, TP_ETLS, "TLS setup: protocol version bounds 0x%x..0x%x: %s",
			      (unsigned int)tls->min_version, (unsigned int)tls->max_version,
			      tls_reason());
		return;
	}
	if (*tls->groups && SSL_set1_groups_list(c->ssl, tls->groups) != 1) {
		conn_tls_fail(p, c, TP_ETLS, "TLS setup: groups \"%s\": %s",
			      tls->groups, tls_reason());
		return;
	}
	if (sni != NULL) {
		if (SSL_set_tlsext_host_name(c->ssl, sni) != 1) {
			conn_fail(p, c, TP_ETLS, "TLS setup: SNI \"%s\": %s", sni,
				  tls_reason());
			return;
		}
		c->res->servername = keep(p, sni);
	}
	SSL_set_security_level(c->ssl, tls->security_level);
	if (c->target->ntlsa > 0 && enable_dane(p, c) != 0)
		return;
	SSL_set_connect_state(c->ssl);
	c->events = POLLOUT;
}

static void
step_handshake(tp_prober *p, struct conn *c)
{
	int rc, err;

	ERR_clear_error();
	rc = SSL_connect(c->ssl);
	if (rc == 1) {
		set_state(p, c, PS_CHAIN);
		return;
	}
	err = SSL_get_error(c->ssl, rc);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		c->events = POLLIN;
		return;
	case SSL_ERROR_WANT_WRITE:
		c->events = POLLOUT;
		return;
	case SSL_ERROR_SSL:
		/* OpenSSL 3 reports a peer's close as an error; it is a close. */
		if (ERR_GET_REASON(ERR_peek_last_error()) !=
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			conn_tls_fail(p, c, TP_ETLS, "TLS handshake: %s", tls_reason());
			return;
		}
		break;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() == 0 && errno != 0 && rc < 0 &&
		    errno != EPIPE && errno != ECONNRESET) {
			conn_fail(p, c, TP_ECONNECT, "TLS handshake: %s",
				  strerror(errno));
			return;
		}
		break;
	default:
		break;
	}
	/*
	 * A server that hangs up in the handshake (no shared cipher or
	 * protocol, for some) fails Postfix's handshake just the same.
	 */
	conn_tls_fail(p, c, TP_ECONNECT, "connection closed during TLS handshake");
}

static const char *
name_text(tp_prober *p, const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	const char *text = "";
	char *data;
	long len;

	if (bio == NULL)
		return "";
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (len = BIO_get_mem_data(bio, &data)) >= 0) {
		char *copy = arena_alloc(p, (size_t)len + 1);

		if (copy != NULL) {
			memcpy(copy, data, (size_t)len);
			copy[len] = '\0';
			sanitize(copy);
			text = copy;
		}
	}
	BIO_free(bio);
	return text;
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* Fill out from x; a message in diag on failure. */
static int
take_cert(tp_prober *p, tp_probe_cert *out, X509 *x, tp_diag *diag)
{
	unsigned char *der = NULL, *copy;
	int len, rc;

	len = i2d_X509(x, &der);
	if (len <= 0)
		return tp__diag_set(diag, TP_ETLS, NULL, 0,
				    "cannot encode certificate: %s", tls_reason());
	copy = arena_alloc(p, (size_t)len);
	if (copy == NULL) {
		OPENSSL_free(der);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	memcpy(copy, der, (size_t)len);
	OPENSSL_free(der);
	out->der = copy;
	out->der_len = (size_t)len;
	out->subject = name_text(p, X509_get_subject_name(x));
	out->issuer = name_text(p, X509_get_issuer_name(x));
	out->not_before = asn1_time(X509_get0_notBefore(x));
	out->not_after = asn1_time(X509_get0_notAfter(x));
	if ((rc = tp__fingerprint_x509(out->fingerprint, x, p->opts.digest,
				       TP_PIN_CERT, diag)) != 0)
		return rc;
	return tp__fingerprint_x509(out->pkey_fingerprint, x, p->opts.digest,
				    TP_PIN_PKEY, diag);
}

static void
step_chain(tp_prober *p, struct conn *c)
{
	STACK_OF(X509) *sk = SSL_get_peer_cert_chain(c->ssl);
	tp_probe_result *r = c->res;
	tp_probe_cert *chain;
	const char *name = c->target->servername;
	X509 *leaf;
	long verify;
	int n = sk ? sk_X509_num(sk) : 0;

	r->tls_version = SSL_get_version(c->ssl);
	r->cipher = keep(p, SSL_get_cipher_name(c->ssl));
	if (n <= 0) {
		conn_tls_fail(p, c, TP_ETLS, "no certificate presented");
		return;
	}
	chain = arena_alloc(p, (size_t)n * sizeof(*chain));
	if (chain == NULL) {
		conn_fail(p, c, TP_ENOMEM, "out of memory");
		return;
	}
	memset(chain, 0, (size_t)n * sizeof(*chain));
	for (int i = 0; i < n; i++) {
		tp_diag diag = TP_DIAG_INIT;
		int rc = take_cert(p, &chain[i], sk_X509_value(sk, i), &diag);

		if (rc != 0) {
			conn_fail(p, c, rc, "certificate %d: %s", i, diag.message);
			return;
		}
	}
	r->chain = chain;
	r->chain_len = (size_t)n;
	verify = SSL_get_verify_result(c->ssl);
	r->verified = verify == X509_V_OK;
	r->verify_error = r->verified ? "" : keep(p, X509_verify_cert_error_string(verify));
	/* With DANE enabled the verification above was DANE's. */
	if (r->dane == 0 && r->verified && SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0)
		r->dane = 1;
	leaf = sk_X509_value(sk, 0);
	if (name == NULL)	/* an address literal without servername */
		r->name_matches = X509_check_ip_asc(leaf, c->target->hp.host, 0) == 1;
	else if (is_ip_literal(name))
		r->name_matches = X509_check_ip_asc(leaf, name, 0) == 1;
	else
		r->name_matches = X509_check_host(leaf, name, 0, 0, NULL) == 1;
	r->status = TP_OK;
	r->error = "";
	trace(p, "%s: %s %s, %d certificate(s), leaf %s", c->label,
	      r->tls_version, r->cipher, n, chain[0].subject);
	set_state(p, c, PS_QUIT);
	conn_send(p, c, "QUIT");
}

static void
step_connect(tp_prober *p, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err != 0) {
		conn_fail(p, c, TP_ECONNECT, "connect: %s", strerror(err));
		return;
	}
	connected(p, c);
}

/* Run the state machine until it must wait for the network (or is done). */
static void
conn_io(tp_prober *p, struct conn *c)
{
	enum probe_state before;

	do {
		before = c->state;
		switch (c->state) {
		case PS_CONNECT:
			step_connect(p, c);
			break;
		case PS_BANNER:
		case PS_EHLO:
		case PS_STARTTLS:
		case PS_QUIT:
			step_dialogue(p, c);
			break;
		case PS_HANDSHAKE:
			step_handshake(p, c);
			break;
		case PS_CHAIN:
			step_chain(p, c);
			break;
		case PS_RESOLVE:
		case PS_QUEUED:
		case PS_DONE:
		case PS_LAST:
			break;
		}
	} while (c->state != before && c->state != PS_DONE);
}

static int
check_text(const char *s)
{
	if (s == NULL)
		return 0;
	if (*s == '\0' || strlen(s) > TP_HOST_MAX)
		return -1;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return -1;
	return 0;
}

/*
 * The TLS context for a client certificate (or none),
 * made as tls_client_init() makes Postfix's: security level 0, bug
 * work-arounds, no verification failure (verification is for our
 * information), the client certificate when configured. Its index goes
 * to *index. TP_ETLS (with the reason) when a certificate cannot be
 * loaded; TP_ENOMEM.
 */
static int
client_ctx(tp_prober *p, const tp_client_info *in, size_t *index, tp_diag *diag)
{
	char key[4 * PATH_MAX + 8];
	struct client_ctx *v;
	SSL_CTX *ctx;
	char *why = NULL;

	snprintf(key, sizeof(key), "%s|%s|%s|%s|%s", in->cert_file, in->key_file,
		 in->eccert_file, in->eckey_file, in->chain_files);
	for (size_t i = 0; i < p->nctxs; i++)
		if (strcmp(p->ctxs[i].key, key) == 0) {
			if (index)
				*index = i;
			return 0;
		}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return tp__diag_set(diag, TP_ETLS, NULL, 0,
				    "cannot make a TLS context: %s", tls_reason());
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_IGNORE_UNEXPECTED_EOF |
			    SSL_OP_SINGLE_ECDH_USE | SSL_OP_SINGLE_DH_USE);
	/* Verification is for information: a CA store we cannot load just
	 * means nothing verifies, so errors here are not fatal. */
	if (p->opts.ca_file != NULL || p->opts.ca_path != NULL)
		(void)SSL_CTX_load_verify_locations(ctx, p->opts.ca_file,
						    p->opts.ca_path);
	else
		tp__ca_store_default(SSL_CTX_get_cert_store(ctx));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* As tls_client_init(): DANE ready for the connections that use it. */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		tp__diag_set(diag, TP_ETLS, NULL, 0, "cannot enable DANE: %s", tls_reason());
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return TP_ETLS;
	}
	if (tp__client_certs_use(ctx, in, &why) != TP_OK) {
		SSL_CTX_free(ctx);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	if (why != NULL) {
		tp__diag_set(diag, TP_ETLS, NULL, 0, "cannot load the client certificate: %s", why);
		free(why);
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return TP_ETLS;
	}
	ERR_clear_error();
	v = realloc(p->ctxs, (p->nctxs + 1) * sizeof(*v));
	if (v == NULL || (v[p->nctxs].key = arena_strdup(p, key)) == NULL) {
		if (v != NULL)
			p->ctxs = v;
		SSL_CTX_free(ctx);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	p->ctxs = v;
	v[p->nctxs].ctx = ctx;
	if (index)
		*index = p->nctxs;
	p->nctxs++;
	return 0;
}

/* Copy what the probe needs of settings into t->tls (strings in the arena). */
static int
take_settings(tp_prober *p, struct target *t, const tp_client_settings *settings,
	      const char *servername, const char *nexthop)
{
	const tp_client_info *in = tp_client_settings_info(settings);
	struct tls_params *tls = &t->tls;
	const char *sni;
	tp_diag d = TP_DIAG_INIT;

	if ((tls->cipherlist = arena_strdup(p, in->cipherlist ? in->cipherlist : "")) == NULL ||
	    (tls->groups = arena_strdup(p, in->groups ? in->groups : "")) == NULL)
		return TP_ENOMEM;
	tls->helo = NULL;
	if (in->helo_name && *in->helo_name && check_text(in->helo_name) == 0 &&
	    (tls->helo = arena_strdup(p, in->helo_name)) == NULL)
		return TP_ENOMEM;
	tls->excluded = in->protocols_excluded;
	tls->min_version = in->min_version;
	tls->max_version = in->max_version;
	tls->security_level = in->security_level;
	tls->wrappermode = in->wrappermode;
	tls->families = in->families;
	tls->preference = in->address_preference;
	if ((tls->bind4 = arena_strdup(p, in->bind_address ? in->bind_address : "")) == NULL ||
	    (tls->bind6 = arena_strdup(p, in->bind_address6 ? in->bind_address6 : "")) == NULL)
		return TP_ENOMEM;
	tls->bind_enforce = in->bind_enforce;
	tls->error = NULL;
	if (in->tls_error != NULL && (tls->error = arena_strdup(p, in->tls_error)) == NULL)
		return TP_ENOMEM;
	if (tls->error == NULL && client_ctx(p, in, &tls->ctx, &d) != 0) {
		if (d.status == TP_ENOMEM)
			return TP_ENOMEM;
		if ((tls->error = arena_strdup(p, d.message)) == NULL)
			return TP_ENOMEM;
	}
	/* SNI: the caller's name, else the options', else the settings' rule. */
	sni = servername ? servername : p->opts.servername;
	if (sni == NULL) {
		sni = tp_client_settings_sni(settings, t->hp.host);
		if (in->servername && strcmp(in->servername, "nexthop") == 0 &&
		    nexthop != NULL)
			sni = nexthop;
	}
	t->servername = NULL;
	if (sni != NULL && check_text(sni) == 0 &&
	    (t->servername = arena_strdup(p, sni)) == NULL)
		return TP_ENOMEM;
	return TP_OK;
}

/*
 * The TLSA records a server's DANE check can use (RFC 7672 section
 * 3.1.3: DANE-TA(2) and DANE-EE(3) only), copied into the arena.
 */
static int
take_tlsa(tp_prober *p, struct target *t, const tp_probe_target *pt)
{
	size_t n = 0;

	for (size_t i = 0; pt->tlsa != NULL && i < pt->tlsa_count; i++)
		n += pt->tlsa[i].usage == 2 || pt->tlsa[i].usage == 3;
	if (n == 0)
		return TP_OK;
	if ((t->tlsa = arena_alloc(p, n * sizeof(*t->tlsa))) == NULL)
		return TP_ENOMEM;
	for (size_t i = 0; i < pt->tlsa_count; i++) {
		const tp_tlsa_record *r = &pt->tlsa[i];
		unsigned char *data;

		if (r->usage != 2 && r->usage != 3)
			continue;
		if ((data = arena_alloc(p, r->len ? r->len : 1)) == NULL)
			return TP_ENOMEM;
		if (r->len)
			memcpy(data, r->data, r->len);
		t->tlsa[t->ntlsa] = *r;
		t->tlsa[t->ntlsa++].data = data;
	}
	if (pt->nexthop != NULL && (t->nexthop = arena_strdup(p, pt->nexthop)) == NULL)
		return TP_ENOMEM;
	return TP_OK;
}

/* A new target slot, zeroed; NULL when out of memory. */
static struct target *
new_target(tp_prober *p)
{
	struct target *targets = realloc(p->targets, (p->ntargets + 1) * sizeof(*targets));

	if (targets == NULL)
		return NULL;
	p->targets = targets;
	memset(&targets[p->ntargets], 0, sizeof(targets[0]));
	return &targets[p->ntargets];
}

int
tp_prober_new(tp_prober **out, const tp_probe_opts *opts, tp_diag *diag)
{
	tp_probe_opts defaults = TP_PROBE_OPTS_INIT, old;
	tp_prober *p;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version == 1 || opts->version == 2) {
		/* Built before the later fields: read only what it has. */
		old = defaults;
		memcpy(&old, opts, opts->version == 1 ? offsetof(tp_probe_opts, progress)
			: offsetof(tp_probe_opts, settings));
		opts = &old;
	} else if (opts->version != TP_PROBE_OPTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "probe options version %u, want %u",
				    opts->version, TP_PROBE_OPTS_VERSION);
	if (!(opts->timeout > 0) || !(opts->step_timeout >= 0) ||
	    !isfinite(opts->timeout) || !isfinite(opts->step_timeout))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "probe timeout must be positive");
	if (check_text(opts->ehlo_name) != 0)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "bad EHLO name");
	if (check_text(opts->servername) != 0)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "bad server name");
	if (opts->digest != NULL && tp_digest_check(opts->digest) != 0)
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0,
				    "unknown digest \"%s\"", opts->digest);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	p->opts = *opts;
	if (p->opts.step_timeout == 0 || p->opts.step_timeout > p->opts.timeout)
		p->opts.step_timeout = p->opts.timeout;
	if (p->opts.jobs == 0)
		p->opts.jobs = DEFAULT_JOBS;
#define COPY(field, dflt) \
	((p->opts.field = arena_strdup(p, opts->field ? opts->field : (dflt))) == NULL)
	if (COPY(digest, "sha256") ||
	    (opts->ehlo_name && COPY(ehlo_name, "")) ||
	    (opts->servername && COPY(servername, "")) ||
	    (opts->ca_file && COPY(ca_file, "")) ||
	    (opts->ca_path && COPY(ca_path, ""))) {
		tp_prober_free(p);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
#undef COPY
	{
		tp_resolver_opts ro = TP_RESOLVER_OPTS_INIT;
		int rc;

		ro.servers = opts->dns_servers;
		ro.timeout = p->opts.step_timeout;
		if ((rc = tp_resolver_new(&p->resolver, &ro, diag)) != 0) {
			tp_prober_free(p);
			return rc;
		}
		p->opts.dns_servers = NULL;	/* the resolver has its copy */
	}
	if (opts->settings == NULL) {
		int rc = tp_client_settings_new(&p->own_settings, NULL, NULL,
						"fingerprint", diag);

		if (rc != 0) {
			tp_prober_free(p);
			return rc;
		}
		p->opts.settings = p->own_settings;
	}
	*out = p;
	return 0;
}

int
tp_prober_add(size_t *out_index, tp_prober *p, const char *target,
	      const char *servername, tp_diag *diag)
{
	struct target *t;
	tp__hostport hp;
	int rc;

	if (p->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "cannot add a target after the probe ran");
	if ((rc = tp__hostport_parse(&hp, target, diag)) != 0)
		return rc;
	if (check_text(servername) != 0)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "%s: bad server name", target);
	if ((t = new_target(p)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	t->hp = hp;
	if ((t->spec = arena_strdup(p, target)) == NULL ||
	    take_settings(p, t, p->opts.settings, servername, NULL) != TP_OK)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (out_index != NULL)
		*out_index = p->ntargets;
	p->ntargets++;
	return 0;
}

int
tp_prober_add_target(size_t *out_index, tp_prober *p, const tp_probe_target *pt,
		     tp_diag *diag)
{
	char spec[TP_HOST_MAX + INET6_ADDRSTRLEN + 16];
	unsigned char addr[sizeof(struct in6_addr)];
	struct target *t;
	tp__hostport hp;
	int rc;

	if (p->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "cannot add a target after the probe ran");
	if (pt == NULL || pt->version < 1 || pt->version > TP_PROBE_TARGET_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "probe target version %u, want 1 to %u",
				    pt ? pt->version : 0, TP_PROBE_TARGET_VERSION);
	if (pt->port > 65535)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0, "%s: bad port %u",
				    pt->host ? pt->host : "?", pt->port);
	/* Check the host as a target of its own: the same rules. */
	if (pt->host == NULL || strlen(pt->host) > TP_HOST_MAX)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0, "bad host name");
	snprintf(spec, sizeof(spec), strchr(pt->host, ':') ? "[%s]:%u" : "%s:%u",
		 pt->host, pt->port ? pt->port : 25);
	if ((rc = tp__hostport_parse(&hp, spec, diag)) != 0)
		return rc;
	if (pt->address != NULL && inet_pton(AF_INET, pt->address, addr) != 1 &&
	    inet_pton(AF_INET6, pt->address, addr) != 1)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "%s: \"%s\" is no IP address", spec, pt->address);
	if ((t = new_target(p)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	t->hp = hp;
	if ((t->spec = arena_strdup(p, spec)) == NULL ||
	    (pt->address && (t->connect_to = arena_strdup(p, pt->address)) == NULL) ||
	    take_settings(p, t, pt->settings ? pt->settings : p->opts.settings,
			  NULL, pt->nexthop) != TP_OK ||
	    (pt->version >= 2 && take_tlsa(p, t, pt) != TP_OK))
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (out_index != NULL)
		*out_index = p->ntargets;
	p->ntargets++;
	return 0;
}

static int
same_address(const struct addrinfo *a, const struct addrinfo *b)
{
	return a->ai_addrlen == b->ai_addrlen &&
	       memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen) == 0;
}

/* An addrinfo node in the arena for a numeric address from the resolver. */
static struct addrinfo *
arena_addrinfo(tp_prober *p, const char *address, unsigned int port)
{
	struct addrinfo *ai = arena_alloc(p, sizeof(*ai));
	struct sockaddr_storage *ss = arena_alloc(p, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	if (ai == NULL || ss == NULL)
		return NULL;
	memset(ai, 0, sizeof(*ai));
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		ai->ai_addrlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		ai->ai_addrlen = sizeof(*sin6);
	} else {
		return NULL;
	}
	ai->ai_family = ss->ss_family;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_protocol = IPPROTO_TCP;
	ai->ai_addr = (struct sockaddr *)ss;
	return ai;
}

/*
 * Resolve every target, the names all at once through the resolver (its
 * deadline: the step timeout), address literals with getaddrinfo (no
 * lookup); count the results each will have. Fails only for TP_ENOMEM
 * or TP_EIO from the resolver's poll().
 */
static int
resolve_targets(tp_prober *p, tp_diag *diag)
{
	size_t names = 0;

	for (size_t i = 0; i < p->ntargets; i++) {
		struct target *t = &p->targets[i];
		tp_diag d = TP_DIAG_INIT;

		t->lookup = SIZE_MAX;
		if (t->hp.family != AF_UNSPEC || t->connect_to != NULL)
			continue;
		if (tp_resolver_add_host(&t->lookup, p->resolver, t->hp.host, &d) != 0) {
			const char *m = d.message;
			size_t hl = strlen(t->hp.host);

			if (d.status == TP_ENOMEM)
				return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			if (strncmp(m, t->hp.host, hl) == 0 && strncmp(m + hl, ": ", 2) == 0)
				m += hl + 2;
			t->dns_error = keep(p, m);
			t->lookup = SIZE_MAX;
			continue;
		}
		names++;
	}
	if (names > 0) {
		int rc = tp_resolver_run(p->resolver, diag);

		if (rc != 0)
			return rc;
	}
	for (size_t i = 0; i < p->ntargets; i++) {
		struct target *t = &p->targets[i];
		const tp_resolve_result *res = t->lookup == SIZE_MAX ? NULL :
			tp_resolver_result(p->resolver, t->lookup);
		const char *one = t->connect_to ? t->connect_to
		    : t->hp.family != AF_UNSPEC ? t->hp.host : NULL;
		const char *const *addrs = one ? &one : res && res->status == TP_OK
		    ? res->addresses : NULL;
		size_t naddrs = one ? 1 : addrs ? res->address_count : 0, skipped = 0;
		struct addrinfo **tail = &t->ai;

		t->count = 0;
		if (res != NULL && res->status != TP_OK) {
			const char *m = res->error;
			size_t hl = strlen(res->name);

			/* "host: what" -> "what": the label names the host. */
			if (strncmp(m, res->name, hl) == 0 && strncmp(m + hl, ": ", 2) == 0)
				m += hl + 2;
			t->dns_error = keep(p, m);
		}
		/*
		 * inet_protocols: the families Postfix uses; then
		 * smtp_address_preference: the preferred family first, each
		 * family in the order the resolver gave (a stable sort).
		 */
		for (int pass = 0; pass < 2; pass++)
			for (size_t j = 0; j < naddrs; j++) {
				int v6 = strchr(addrs[j], ':') != NULL;
				int first = t->tls.preference == 0 ||
					    (t->tls.preference == 6) == v6;

				if (!(t->tls.families & (v6 ? TP_FAMILY_IPV6 : TP_FAMILY_IPV4))) {
					skipped += pass == 0;
					continue;
				}
				if ((pass == 0) != first)
					continue;
				if ((*tail = arena_addrinfo(p, addrs[j], t->hp.port)) == NULL)
					continue;
				tail = &(*tail)->ai_next;
				t->count++;	/* the resolver dropped duplicates */
			}
		if (t->count == 0 && skipped > 0 && t->dns_error == NULL)
			t->dns_error = keep(p, "no address of a family in use (inet_protocols)");
		if (t->count == 0)
			t->count = 1;	/* reported as "cannot resolve" */
	}
	return p->oom ? tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory") : 0;
}

static void
setup_results(tp_prober *p)
{
	size_t k = 0;

	for (size_t i = 0; i < p->ntargets; i++) {
		struct target *t = &p->targets[i];
		struct addrinfo *ai;
		int any = 0;

		t->first = k;
		for (ai = t->ai; ai != NULL; ai = ai->ai_next) {
			struct conn *c = &p->conns[k];
			tp_probe_result *r = &p->results[k];
			char addr[INET6_ADDRSTRLEN + 16];
			int dup = 0;

			if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
				continue;
			for (struct addrinfo *b = t->ai; b != ai && !dup; b = b->ai_next)
				dup = same_address(ai, b);
			if (dup || ai->ai_addrlen > sizeof(c->sa))
				continue;
			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr),
					NULL, 0, NI_NUMERICHOST) != 0)
				snprintf(addr, sizeof(addr), "?");
			r->address = keep(p, addr);
			memcpy(&c->sa, ai->ai_addr, ai->ai_addrlen);
			c->salen = ai->ai_addrlen;
			c->state = PS_QUEUED;
			any = 1;
			k++;
		}
		if (!any) {
			tp_probe_result *r = &p->results[k];
			char msg[TP_DIAG_MESSAGE_MAX];

			p->conns[k].state = PS_DONE;
			r->status = TP_EDNS;
			r->step = state_names[PS_RESOLVE];
			snprintf(msg, sizeof(msg), "%s:%u: cannot resolve %s: %s",
				 t->hp.host, t->hp.port, t->hp.host,
				 t->dns_error ? t->dns_error : "no IPv4 or IPv6 address");
			r->error = keep(p, msg);
			k++;
		}
		/* Now that k is known for this target: fill the common fields. */
		for (size_t j = t->first; j < k; j++) {
			struct conn *c = &p->conns[j];
			tp_probe_result *r = &p->results[j];

			c->res = r;
			c->target = t;
			c->fd = -1;
			r->target = i;
			r->target_spec = t->spec;
			r->host = t->hp.host;
			r->port = t->hp.port;
			r->dane = -1;
			if (c->state == PS_QUEUED) {
				char msg[sizeof(c->label) + 32];

				snprintf(c->label, sizeof(c->label), "%s[%s]:%u",
					 t->hp.host, r->address, t->hp.port);
				/* Overwritten when it ends; stays if the run is cut short. */
				snprintf(msg, sizeof(msg), "%s: not probed", c->label);
				r->status = TP_ETIMEOUT;
				r->error = keep(p, msg);
				r->step = state_names[PS_QUEUED];
			}
		}
		t->count = k - t->first;
		t->ai = NULL;
	}
	p->nresults = k;
}

/* A result is final: tell opts.progress. */
static void
report_done(tp_prober *p, const struct conn *c)
{
	p->ndone++;
	if (p->opts.progress != NULL)
		p->opts.progress(c->res, p->ndone, p->nresults,
				 p->opts.progress_payload);
}

/* The poll() loop: at most opts.jobs connections at once. */
static int
run_loop(tp_prober *p, tp_diag *diag)
{
	size_t jobs = p->opts.jobs, next = 0, nact = 0;
	struct conn **act;
	struct pollfd *pfd;
	int rc = 0;

	if (jobs > p->nresults)
		jobs = p->nresults > 0 ? p->nresults : 1;
	act = calloc(jobs, sizeof(*act));
	pfd = calloc(jobs, sizeof(*pfd));

	if (act == NULL || pfd == NULL) {
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		goto out;
	}
	for (;;) {
		double t, wait = -1;
		size_t keep_n = 0;

		while (nact < jobs && next < p->nresults) {
			struct conn *c = &p->conns[next++];

			if (c->state != PS_QUEUED) {
				report_done(p, c);	/* did not resolve */
				continue;
			}
			if (conn_start(p, c, nact == 0) < 0) {
				next--;
				jobs = nact;	/* what the fd limit allows */
				break;
			}
			/* Only an immediate connect has something to do yet:
			 * SO_ERROR reads 0 while a connect is in progress. */
			if (c->state == PS_BANNER)
				conn_io(p, c);
			if (c->state != PS_DONE)
				act[nact++] = c;
			else
				report_done(p, c);
		}
		if (nact == 0)
			break;
		t = now();
		for (size_t i = 0; i < nact; i++) {
			double left = conn_deadline(p, act[i], NULL) - t;

			pfd[i].fd = act[i]->fd;
			pfd[i].events = act[i]->events;
			pfd[i].revents = 0;
			if (wait < 0 || left < wait)
				wait = left;
		}
		if (wait < 0)
			wait = 0;
		if (wait > 3600)
			wait = 3600;	/* keeps the milliseconds in an int */
		/* Round up: waking a hair early would just poll again. */
		if (poll(pfd, (nfds_t)nact, (int)(wait * 1000) + 1) < 0 &&
		    errno != EINTR) {
			rc = tp__diag_errno(diag, TP_EIO, errno, "poll");
			goto out;
		}
		for (size_t i = 0; i < nact; i++) {
			struct conn *c = act[i];

			if (pfd[i].revents != 0)
				conn_io(p, c);
			if (c->state != PS_DONE && now() >= conn_deadline(p, c, NULL))
				conn_timeout(p, c);
			if (c->state != PS_DONE)
				act[keep_n++] = c;
			else
				report_done(p, c);
		}
		nact = keep_n;
	}
out:
	for (size_t i = 0; i < nact; i++)
		conn_close(act[i]);
	free(act);
	free(pfd);
	return rc;
}

int
tp_prober_run(tp_prober *p, tp_diag *diag)
{
	sigset_t block, old, pending;
	int had_sigpipe, rc;

	if (p->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "a prober runs only once");
	p->ran = 1;
	if ((rc = resolve_targets(p, diag)) != 0)
		return rc;
	{
		size_t n = 0;

		for (size_t i = 0; i < p->ntargets; i++)
			n += p->targets[i].count;
		if (n > 0) {
			p->results = calloc(n, sizeof(*p->results));
			p->conns = calloc(n, sizeof(*p->conns));
			if (p->results == NULL || p->conns == NULL)
				return tp__diag_set(diag, TP_ENOMEM, NULL, 0,
						    "out of memory");
		}
	}
	setup_results(p);

	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	sigemptyset(&pending);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	sigpending(&pending);
	had_sigpipe = sigismember(&pending, SIGPIPE);

	rc = run_loop(p, diag);

	sigemptyset(&pending);
	sigpending(&pending);
	if (!had_sigpipe && sigismember(&pending, SIGPIPE)) {
		struct timespec zero = { 0, 0 };

		(void)sigtimedwait(&block, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0 && p->oom)
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return rc;
}

size_t
tp_prober_result_count(const tp_prober *p)
{
	return p ? p->nresults : 0;
}

const tp_probe_result *
tp_prober_result(const tp_prober *p, size_t i)
{
	return p && i < p->nresults ? &p->results[i] : NULL;
}

void
tp_prober_free(tp_prober *p)
{
	struct chunk *c, *next;

	if (p == NULL)
		return;
	for (size_t i = 0; p->conns != NULL && i < p->nresults; i++)
		if (p->conns[i].res != NULL)
			conn_close(&p->conns[i]);
	tp_resolver_free(p->resolver);
	for (size_t i = 0; i < p->nctxs; i++)
		SSL_CTX_free(p->ctxs[i].ctx);
	free(p->ctxs);
	tp_client_settings_free(p->own_settings);
	free(p->targets);
	free(p->results);
	free(p->conns);
	for (c = p->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(p);
}
