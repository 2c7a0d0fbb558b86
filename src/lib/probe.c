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
 *	HANDSHAKE TLS handshake with SNI
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "diag.h"
#include "hostport.h"
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

struct target {
	char *spec;
	tp__hostport hp;
	char *servername;	/* per-target override, or NULL */
	size_t first;		/* its first result */
	size_t count;		/* and how many */
	struct addrinfo *ai;	/* from getaddrinfo, or in the arena */
	int ai_in_arena;	/* built from the resolver's answer */
	int gai_error;
	size_t lookup;		/* its tp_resolver index, for a name */
	const char *dns_error;	/* why the name did not resolve, or NULL */
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
	SSL_CTX *ctx;
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

/* Control bytes from a hostile server must not reach a terminal. */
static void
sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
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
	if (connect(c->fd, sa, c->salen) == 0) {
		set_state(p, c, PS_BANNER);
		c->events = POLLIN;
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

static void start_tls(tp_prober *p, struct conn *c);

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
		snprintf(ehlo, sizeof(ehlo), "EHLO %s", p->opts.ehlo_name);
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
			conn_fail(p, c, TP_EPROTOCOL, "no STARTTLS in EHLO reply");
			return;
		}
		set_state(p, c, PS_STARTTLS);
		conn_send(p, c, "STARTTLS");
		break;
	case PS_STARTTLS:
		if (code != 220) {
			conn_fail(p, c, TP_EPROTOCOL, "STARTTLS %s: %s",
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

static const char *
target_servername(const tp_prober *p, const struct target *t)
{
	if (t->servername != NULL)
		return t->servername;
	if (p->opts.servername != NULL)
		return p->opts.servername;
	return t->hp.family == AF_UNSPEC ? t->hp.host : NULL;
}

static int
is_ip_literal(const char *s)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

static void
start_tls(tp_prober *p, struct conn *c)
{
	const char *sni = target_servername(p, c->target);

	set_state(p, c, PS_HANDSHAKE);
	ERR_clear_error();
	c->ssl = SSL_new(p->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_fail(p, c, TP_ETLS, "TLS setup: %s", tls_reason());
		return;
	}
	/* RFC 6066: SNI carries host names only, never address literals. */
	if (sni != NULL && !is_ip_literal(sni)) {
		if (SSL_set_tlsext_host_name(c->ssl, sni) != 1) {
			conn_fail(p, c, TP_ETLS, "TLS setup: SNI \"%s\": %s", sni,
				  tls_reason());
			return;
		}
		c->res->servername = keep(p, sni);
	}
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
			conn_fail(p, c, TP_ETLS, "TLS handshake: %s", tls_reason());
			return;
		}
		conn_fail(p, c, TP_ECONNECT, "connection closed during TLS handshake");
		return;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() == 0 && errno != 0 && rc < 0 &&
		    errno != EPIPE && errno != ECONNRESET) {
			conn_fail(p, c, TP_ECONNECT, "TLS handshake: %s",
				  strerror(errno));
			return;
		}
		conn_fail(p, c, TP_ECONNECT, "connection closed during TLS handshake");
		return;
	default:
		conn_fail(p, c, TP_ECONNECT, "connection closed during TLS handshake");
		return;
	}
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
	if ((rc = tp_fingerprint_der(out->fingerprint, copy, (size_t)len,
				     p->opts.digest, TP_PIN_CERT, diag)) != 0)
		return rc;
	return tp_fingerprint_der(out->pkey_fingerprint, copy, (size_t)len,
				  p->opts.digest, TP_PIN_PKEY, diag);
}

static void
step_chain(tp_prober *p, struct conn *c)
{
	STACK_OF(X509) *sk = SSL_get_peer_cert_chain(c->ssl);
	tp_probe_result *r = c->res;
	tp_probe_cert *chain;
	const char *name = target_servername(p, c->target);
	X509 *leaf;
	long verify;
	int n = sk ? sk_X509_num(sk) : 0;

	r->tls_version = SSL_get_version(c->ssl);
	r->cipher = keep(p, SSL_get_cipher_name(c->ssl));
	if (n <= 0) {
		conn_fail(p, c, TP_ETLS, "no certificate presented");
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
	set_state(p, c, PS_BANNER);
	c->events = POLLIN;
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

int
tp_prober_new(tp_prober **out, const tp_probe_opts *opts, tp_diag *diag)
{
	tp_probe_opts defaults = TP_PROBE_OPTS_INIT, v1;
	tp_prober *p;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version == 1) {
		/* Built before the progress fields: read only what it has. */
		v1 = defaults;
		memcpy(&v1, opts, offsetof(tp_probe_opts, progress));
		opts = &v1;
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
	ERR_clear_error();
	if ((p->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tp__diag_set(diag, TP_ETLS, NULL, 0, "cannot make a TLS context: %s",
			     tls_reason());
		tp_prober_free(p);
		return TP_ETLS;
	}
	/* Verification is for information: a CA store we cannot load just
	 * means nothing verifies, so errors here are not fatal. */
	if (p->opts.ca_file != NULL || p->opts.ca_path != NULL)
		(void)SSL_CTX_load_verify_locations(p->ctx, p->opts.ca_file,
						    p->opts.ca_path);
	else
		(void)SSL_CTX_set_default_verify_paths(p->ctx);
	SSL_CTX_set_verify(p->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(p->ctx, SSL_SESS_CACHE_OFF);
	ERR_clear_error();
	*out = p;
	return 0;
}

int
tp_prober_add(size_t *out_index, tp_prober *p, const char *target,
	      const char *servername, tp_diag *diag)
{
	struct target *targets, *t;
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
	targets = realloc(p->targets, (p->ntargets + 1) * sizeof(*targets));
	if (targets == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	p->targets = targets;
	t = &targets[p->ntargets];
	memset(t, 0, sizeof(*t));
	t->hp = hp;
	if ((t->spec = arena_strdup(p, target)) == NULL ||
	    (servername && (t->servername = arena_strdup(p, servername)) == NULL))
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (out_index != NULL)
		*out_index = p->ntargets;
	p->ntargets++;
	return 0;
}

/* Postfix's myhostname default: gethostname(), made fully qualified. */
static const char *
default_ehlo_name(tp_prober *p)
{
	char name[256];
	struct addrinfo hints, *ai = NULL;
	const char *use = "localhost";

	if (gethostname(name, sizeof(name)) == 0) {
		name[sizeof(name) - 1] = '\0';
		use = name;
		if (strchr(name, '.') == NULL) {
			memset(&hints, 0, sizeof(hints));
			hints.ai_flags = AI_CANONNAME;
			if (getaddrinfo(name, NULL, &hints, &ai) == 0 &&
			    ai->ai_canonname != NULL && strchr(ai->ai_canonname, '.') &&
			    check_text(ai->ai_canonname) == 0)
				use = ai->ai_canonname;
		}
		if (check_text(use) != 0)
			use = "localhost";
	}
	use = keep(p, use);
	if (ai != NULL)
		freeaddrinfo(ai);
	return use;
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
	char port[8];
	size_t names = 0;

	for (size_t i = 0; i < p->ntargets; i++) {
		struct target *t = &p->targets[i];
		tp_diag d = TP_DIAG_INIT;

		if (t->hp.family != AF_UNSPEC)
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
		struct addrinfo hints, *ai;

		t->count = 0;
		if (t->hp.family == AF_UNSPEC) {
			const tp_resolve_result *res = t->lookup == SIZE_MAX ? NULL :
				tp_resolver_result(p->resolver, t->lookup);
			struct addrinfo **tail = &t->ai;

			t->ai_in_arena = 1;
			if (res != NULL && res->status != TP_OK) {
				const char *m = res->error;
				size_t hl = strlen(res->name);

				/* "host: what" -> "what": the label names the host. */
				if (strncmp(m, res->name, hl) == 0 && strncmp(m + hl, ": ", 2) == 0)
					m += hl + 2;
				t->dns_error = keep(p, m);
			}
			for (size_t j = 0; res != NULL && res->status == TP_OK &&
					   j < res->address_count; j++) {
				if ((*tail = arena_addrinfo(p, res->addresses[j],
							    t->hp.port)) == NULL)
					continue;
				tail = &(*tail)->ai_next;
				t->count++;	/* the resolver dropped duplicates */
			}
			if (t->count == 0)
				t->count = 1;	/* reported as "cannot resolve" */
			continue;
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = t->hp.family;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_protocol = IPPROTO_TCP;
		hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
		snprintf(port, sizeof(port), "%u", t->hp.port);
		t->gai_error = getaddrinfo(t->hp.host, port, &hints, &t->ai);
		if (t->gai_error != 0) {
			t->ai = NULL;
			t->count = 1;
			continue;
		}
		for (ai = t->ai; ai != NULL; ai = ai->ai_next) {
			int dup = 0;

			if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
				continue;
			for (struct addrinfo *b = t->ai; b != ai && !dup; b = b->ai_next)
				dup = same_address(ai, b);
			if (!dup)
				t->count++;
		}
		if (t->count == 0)
			t->count = 1;	/* reported as "no address" */
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
				 t->dns_error ? t->dns_error :
				 t->gai_error ? gai_strerror(t->gai_error)
					      : "no IPv4 or IPv6 address");
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
		if (t->ai != NULL && !t->ai_in_arena)
			freeaddrinfo(t->ai);
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
	if (p->opts.ehlo_name == NULL)
		p->opts.ehlo_name = default_ehlo_name(p);
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
	for (size_t i = 0; i < p->ntargets; i++)
		if (p->targets[i].ai != NULL && !p->targets[i].ai_in_arena)
			freeaddrinfo(p->targets[i].ai);
	tp_resolver_free(p->resolver);
	SSL_CTX_free(p->ctx);
	free(p->targets);
	free(p->results);
	free(p->conns);
	for (c = p->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(p);
}
