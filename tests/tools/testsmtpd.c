/*
 * NAME
 *	testsmtpd - small STARTTLS SMTP server for the test suite
 * SYNOPSIS
 *	testsmtpd --cert FILE [--key FILE] [--chain FILE] [--listen ADDR]...
 *		[--port-file FILE] [--pid-file FILE] [--mode MODE]
 *		[--mode-file FILE] [--maildir DIR] [--log FILE]
 *		[--hostname NAME] [--delay SECONDS] [--timeout SECONDS]
 *		[--tls-version 1.2|1.3] [--count N] [--wrapper]
 * DESCRIPTION
 *	A STARTTLS SMTP server that tests start on a free loopback port. It
 *	serves a real SMTP session (so a real Postfix can deliver to it) or
 *	misbehaves on purpose in one of the ways a hostile or broken server
 *	can fail a client (--mode). It stays in the foreground, one child
 *	process per connection, and exits on SIGTERM or SIGINT (its children
 *	with it) or after --count connections.
 *
 *	--cert FILE	PEM certificate (leaf first; further certificates in
 *			the file are sent as the chain).
 *	--key FILE	PEM private key. Default: read it from the --cert file,
 *			so a combined cert+key file can be swapped atomically
 *			with one rename().
 *	--chain FILE	extra PEM certificates appended to the chain sent.
 *			The certificate, key and chain files are read again
 *			for EACH connection: a test replaces the files (write
 *			a temp file, rename) and the next connection presents
 *			the new certificate. When cert and key do not match
 *			(caught between two renames) the child retries for up
 *			to a second. The files are checked once at startup:
 *			unusable files are a startup error (exit 1).
 *	--listen ADDR	127.0.0.1:PORT, [::1]:PORT, any 127.0.0.0/8 address;
 *			PORT 0 picks a free port; a later --listen with port 0
 *			gets the first one's port when it is free there too
 *			(so localhost:PORT reaches both 127.0.0.1 and ::1).
 *			Repeatable (up to 16).
 *			Default 127.0.0.1:0. Non-loopback addresses are refused.
 *	--port-file FILE  write the bound port of each --listen, one a line
 *			in --listen order, once all sockets listen: written to
 *			FILE.tmp then renamed, so a test can wait for FILE to
 *			appear. Removed again at exit.
 *	--pid-file FILE	write the server's pid (atomically, removed at exit).
 *	--mode MODE	how every connection is served (see MODES). Default
 *			normal.
 *	--mode-file FILE  if FILE exists, its first word overrides --mode;
 *			read at each connection, so a test can change the mode
 *			without restarting.
 *	--maildir DIR	save each accepted message as DIR/msg.<time>.<pid>.<n>.eml
 *			(written as a dot file, then renamed: a test may wait
 *			for *.eml). The file starts with X-Testsmtpd-* headers
 *			(Mail-From, Rcpt-To per recipient, TLS, SNI), then the
 *			message as received, dot-unstuffed, CRLF line ends.
 *	--log FILE	append one line per connection when it ends:
 *			  testsmtpd[PID]: peer=ADDR:PORT mode=MODE sni=NAME|-
 *			  tls=VERSION|- cipher=NAME|- helo=NAME|- messages=N
 *			  result=WORD
 *			and "testsmtpd[PID]: listening on ADDR:PORT" at start.
 *			Default: standard error.
 *	--hostname NAME	name used in the banner and EHLO reply
 *			(default testsmtpd.test).
 *	--delay SECONDS	delay per reply in mode slow and per byte in mode drip
 *			(fractions allowed; default 1).
 *	--timeout SECONDS  per-connection idle timeout for reads and writes,
 *			and the total duration of endless outputs (drip,
 *			long-line, endless-multiline); default 120.
 *	--tls-version V	offer only TLS 1.2 or only TLS 1.3 (default both).
 *	--wrapper	wrapper mode (SMTPS, port 465): the TLS handshake comes
 *			first, then the banner and the session over TLS; the
 *			modes that misbehave before or at STARTTLS do not apply.
 *	--count N	stop accepting after N connections; exit when they end.
 * MODES
 *	normal		banner "220 NAME ESMTP testsmtpd", EHLO with STARTTLS,
 *			PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES;
 *			STARTTLS -> "220 2.0.0 Ready to start TLS", handshake
 *			(records SNI), then EHLO, MAIL, RCPT, DATA, RSET, NOOP,
 *			VRFY, HELO, QUIT. Plaintext mail is accepted too.
 *	multiline-banner a valid three-line 220 banner, then normal.
 *	slow		normal, but every reply waits --delay seconds.
 *	silent		accept, never send anything (reads and discards).
 *	drip		a never-ending multi-line banner ("220-..." lines),
 *			one byte each --delay seconds.
 *	banner421	"421 4.3.2 ..." banner, then close.
 *	garbage		1 KB of random binary bytes instead of a banner (the
 *			first byte is never a digit), then reads until the
 *			client closes.
 *	long-line	"220 " then letters without any CRLF, endless, about
 *			400 KB/s (a 64 KB cap is hit in ~0.2 s).
 *	endless-multiline  normal banner; EHLO gets "250-" lines that never
 *			end, about 400 KB/s.
 *	ehlo-4xx	EHLO and HELO get "450 4.3.0 ..." (connection stays).
 *	ehlo-5xx	EHLO and HELO get "550 5.7.1 ...".
 *	no-starttls	EHLO reply without STARTTLS; STARTTLS gets 502.
 *	starttls-4xx	STARTTLS gets "454 4.7.0 ...".
 *	starttls-5xx	STARTTLS gets "554 5.7.0 ...".
 *	tls-alert	after "220 2.0.0 Ready to start TLS" the ClientHello
 *			is answered with a fatal handshake_failure alert.
 *	close-after-banner   banner, then close.
 *	close-after-ehlo     the EHLO reply, then close.
 *	close-after-starttls the 220 reply to STARTTLS, then close.
 *	close-in-handshake   reads the ClientHello, sends the first half of
 *			the server's first handshake flight, then closes.
 * EXIT STATUS
 *	0 after SIGTERM/SIGINT or --count; 1 on a startup error; 64 on a
 *	usage error.
 * SAFETY
 *	Every line read is capped (2 KB for commands, longer lines get 500);
 *	messages over the advertised SIZE (10 MB) are read and dropped with
 *	552. Hostile outputs are rate limited and stop when the client stops
 *	reading (blocking writes with a timeout, never a busy loop).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll, accept4 */
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_LISTEN 16
#define MAX_CHILDREN 256
#define CMD_LINE_MAX 2048          /* command line cap, bytes */
#define DATA_SEG_MAX 4096          /* DATA is copied in segments of this */
#define MAX_MESSAGE_SIZE 10485760L /* advertised SIZE */
#define FLOOD_CHUNK 2048           /* endless modes: bytes per write */
#define FLOOD_PAUSE_MS 5           /* ... and pause between writes */

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

enum mode {
	MODE_NORMAL,
	MODE_MULTILINE_BANNER,
	MODE_SLOW,
	MODE_SILENT,
	MODE_DRIP,
	MODE_BANNER421,
	MODE_GARBAGE,
	MODE_LONG_LINE,
	MODE_ENDLESS_MULTILINE,
	MODE_EHLO_4XX,
	MODE_EHLO_5XX,
	MODE_NO_STARTTLS,
	MODE_STARTTLS_4XX,
	MODE_STARTTLS_5XX,
	MODE_TLS_ALERT,
	MODE_CLOSE_AFTER_BANNER,
	MODE_CLOSE_AFTER_EHLO,
	MODE_CLOSE_AFTER_STARTTLS,
	MODE_CLOSE_IN_HANDSHAKE,
	MODE_LAST
};

static const char *const mode_names[MODE_LAST] = {
	[MODE_NORMAL] = "normal",
	[MODE_MULTILINE_BANNER] = "multiline-banner",
	[MODE_SLOW] = "slow",
	[MODE_SILENT] = "silent",
	[MODE_DRIP] = "drip",
	[MODE_BANNER421] = "banner421",
	[MODE_GARBAGE] = "garbage",
	[MODE_LONG_LINE] = "long-line",
	[MODE_ENDLESS_MULTILINE] = "endless-multiline",
	[MODE_EHLO_4XX] = "ehlo-4xx",
	[MODE_EHLO_5XX] = "ehlo-5xx",
	[MODE_NO_STARTTLS] = "no-starttls",
	[MODE_STARTTLS_4XX] = "starttls-4xx",
	[MODE_STARTTLS_5XX] = "starttls-5xx",
	[MODE_TLS_ALERT] = "tls-alert",
	[MODE_CLOSE_AFTER_BANNER] = "close-after-banner",
	[MODE_CLOSE_AFTER_EHLO] = "close-after-ehlo",
	[MODE_CLOSE_AFTER_STARTTLS] = "close-after-starttls",
	[MODE_CLOSE_IN_HANDSHAKE] = "close-in-handshake",
};

struct options {
	const char *cert;
	const char *key;
	const char *chain;
	const char *listen[MAX_LISTEN];
	int nlisten;
	const char *port_file;
	const char *pid_file;
	enum mode mode;
	const char *mode_file;
	const char *maildir;
	const char *log;
	const char *hostname;
	long delay_ms;
	int timeout_s;
	int tls_version; /* 0 both, else TLS1_2_VERSION or TLS1_3_VERSION */
	long count;      /* 0 unlimited */
	bool wrapper;    /* TLS from the first byte (SMTPS) */
};

static struct options opt;
static int log_fd = STDERR_FILENO;

/* One client connection, served by one child process. */
struct conn {
	int fd;
	SSL *ssl;
	enum mode mode;
	char peer[INET6_ADDRSTRLEN + 8];
	unsigned char in[8192]; /* read buffer: bounded, never grows */
	size_t in_start, in_end;
	bool in_eof;
	char helo[256];
	char sni[256];
	int messages;
	const char *result;
};

/* ---- small utilities ---------------------------------------------------- */

static void log_line(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Writes one line with a single write(): lines from concurrent children
 * appended to the same O_APPEND file never interleave. */
static void log_line(const char *fmt, ...)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "testsmtpd[%ld]: ", (long)getpid());
	va_list ap;

	if (n < 0)
		return;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	ssize_t w = write(log_fd, buf, len);
	(void)w;
}

static void die(const char *fmt, ...) PRINTF_LIKE(1, 2);

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("testsmtpd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes "CONTENT" to PATH atomically (PATH.tmp, then rename). */
static int write_file_atomic(const char *path, const char *content)
{
	char tmp[4096];
	int ret = -1;
	FILE *fp = NULL;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	fp = fopen(tmp, "w");
	if (fp == NULL)
		goto out;
	if (fputs(content, fp) == EOF)
		goto out;
	if (fclose(fp) != 0) {
		fp = NULL;
		goto out;
	}
	fp = NULL;
	if (rename(tmp, path) < 0)
		goto out;
	ret = 0;
out:
	if (fp != NULL)
		fclose(fp);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

static enum mode mode_from_name(const char *name)
{
	for (int i = 0; i < MODE_LAST; i++)
		if (strcmp(name, mode_names[i]) == 0)
			return (enum mode)i;
	return MODE_LAST;
}

/* The mode for a new connection: --mode-file's first word when the file
 * exists and names a mode, else --mode. */
static enum mode current_mode(void)
{
	char word[64];
	FILE *fp;
	enum mode m = opt.mode;

	if (opt.mode_file == NULL || (fp = fopen(opt.mode_file, "r")) == NULL)
		return m;
	if (fscanf(fp, "%63s", word) == 1) {
		enum mode fm = mode_from_name(word);
		if (fm != MODE_LAST)
			m = fm;
		else
			log_line("%s: unknown mode \"%s\", using %s", opt.mode_file,
				 word, mode_names[m]);
	}
	fclose(fp);
	return m;
}

/* ---- connection I/O -------------------------------------------------------- */

/* Writes all of BUF, through TLS once it is on. Returns 0 or -1 (peer gone,
 * or the send timeout expired because the peer stopped reading). */
static int conn_write(struct conn *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		if (c->ssl != NULL) {
			int n = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
			if (n <= 0)
				return -1;
			p += n;
			len -= (size_t)n;
		} else {
			ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			p += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

static int reply(struct conn *c, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Sends one reply (FMT holds every line but the final CRLF). In mode slow
 * each reply first waits --delay. */
static int reply(struct conn *c, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (c->mode == MODE_SLOW)
		sleep_ms(opt.delay_ms);
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	size_t len = (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 3;
	buf[len++] = '\r';
	buf[len++] = '\n';
	return conn_write(c, buf, len);
}

/* Reads more input into the buffer (which must have room). Returns the
 * number of bytes read, 0 at EOF, -1 on error or idle timeout. */
static ssize_t conn_fill(struct conn *c)
{
	if (c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
	size_t room = sizeof(c->in) - c->in_end;
	if (c->ssl != NULL) {
		int n = SSL_read(c->ssl, c->in + c->in_end, (int)room);
		if (n <= 0) {
			int err = SSL_get_error(c->ssl, n);
			return err == SSL_ERROR_ZERO_RETURN ? 0 : -1;
		}
		c->in_end += (size_t)n;
		return n;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->in_end, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			c->in_end += (size_t)n;
		return n;
	}
}

/*
 * Returns the next segment of the current input line in OUT (at most CAP-1
 * bytes, NUL-terminated) and its length in *LEN. *EOL says whether the
 * segment ends the line (the CRLF or LF is stripped); a longer line comes
 * in several segments, so nothing grows with the client's line length.
 * Returns 0, or -1 at EOF/error/timeout (c->result says which).
 */
static int conn_segment(struct conn *c, char *out, size_t cap, size_t *len, bool *eol)
{
	for (;;) {
		unsigned char *start = c->in + c->in_start;
		size_t avail = c->in_end - c->in_start;
		unsigned char *nl = memchr(start, '\n', avail);
		size_t seg = nl != NULL ? (size_t)(nl - start) + 1 : avail;

		if (nl != NULL || avail >= cap - 1) {
			if (seg > cap - 1)
				seg = cap - 1;
			*eol = seg > 0 && start[seg - 1] == '\n';
			memcpy(out, start, seg);
			c->in_start += seg;
			*len = seg;
			if (*eol) {
				(*len)--;
				if (*len > 0 && out[*len - 1] == '\r')
					(*len)--;
			}
			out[*len] = '\0';
			return 0;
		}
		ssize_t n = conn_fill(c);
		if (n == 0) {
			c->result = "eof";
			return -1;
		}
		if (n < 0) {
			c->result = (errno == EAGAIN || errno == EWOULDBLOCK) ? "timeout" : "read-error";
			return -1;
		}
	}
}

/* Reads one command line. Returns 1 with the line in OUT, 0 when the line
 * was too long (already drained; the caller replies 500), -1 at EOF. */
static int conn_command(struct conn *c, char *out, size_t cap)
{
	size_t len;
	bool eol;

	if (conn_segment(c, out, cap, &len, &eol) < 0)
		return -1;
	if (eol)
		return 1;
	char drain[512];
	do {
		if (conn_segment(c, drain, sizeof(drain), &len, &eol) < 0)
			return -1;
	} while (!eol);
	return 0;
}

/* Reads and discards input until EOF or timeout (for modes that only
 * wait for the client to give up). */
static void conn_drain(struct conn *c)
{
	for (;;) {
		c->in_start = c->in_end = 0;
		ssize_t n = conn_fill(c);
		if (n == 0) {
			c->result = "eof";
			return;
		}
		if (n < 0) {
			c->result = "timeout";
			return;
		}
	}
}

/* ---- endless outputs ----------------------------------------------------- */

/* Sends PREFIX once, then FILL(c, buf) chunks forever: about 400 KB/s, until
 * the client closes or stops reading, or --timeout seconds pass. */
static void flood(struct conn *c, const char *prefix, size_t (*fill)(char *, size_t, unsigned long *))
{
	char buf[FLOOD_CHUNK + 128];
	unsigned long seq = 0;
	double end = now_s() + opt.timeout_s;

	if (conn_write(c, prefix, strlen(prefix)) < 0) {
		c->result = "peer-gone";
		return;
	}
	while (now_s() < end) {
		size_t n = fill(buf, FLOOD_CHUNK, &seq);
		if (conn_write(c, buf, n) < 0) {
			c->result = "peer-gone";
			return;
		}
		sleep_ms(FLOOD_PAUSE_MS);
	}
	c->result = "flood-timeout";
}

static size_t fill_letters(char *buf, size_t cap, unsigned long *seq)
{
	for (size_t i = 0; i < cap; i++)
		buf[i] = (char)('a' + (*seq)++ % 26);
	return cap;
}

static size_t fill_multiline(char *buf, size_t cap, unsigned long *seq)
{
	size_t n = 0;

	while (n + 80 < cap) {
		int k = snprintf(buf + n, cap - n,
				 "250-ENDLESS-CONTINUATION-%010lu never-ending multi-line reply\r\n",
				 (*seq)++);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	return n;
}

/* One byte each --delay of "220-NAME drip...\r\n" lines, repeated. */
static void drip(struct conn *c)
{
	char line[300];
	double end = now_s() + opt.timeout_s;
	int n = snprintf(line, sizeof(line), "220-%s drip-fed banner that never ends\r\n",
			 opt.hostname);

	if (n < 0 || (size_t)n >= sizeof(line))
		n = (int)strlen(line);
	for (size_t i = 0; now_s() < end; i = (i + 1) % (size_t)n) {
		if (conn_write(c, line + i, 1) < 0) {
			c->result = "peer-gone";
			return;
		}
		sleep_ms(opt.delay_ms);
	}
	c->result = "drip-timeout";
}

/* ---- TLS ----------------------------------------------------------------------- */

static int reject_client_hello(SSL *ssl, int *al, void *arg)
{
	(void)ssl;
	(void)arg;
	*al = SSL_AD_HANDSHAKE_FAILURE;
	return SSL_CLIENT_HELLO_ERROR;
}

/* Loads the extra chain file into CTX. */
static int load_chain(SSL_CTX *ctx, const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x;
	int n = 0;

	if (fp == NULL)
		return -1;
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		if (!SSL_CTX_add0_chain_cert(ctx, x)) {
			X509_free(x);
			n = -1;
			break;
		}
		n++;
	}
	ERR_clear_error(); /* the PEM reader ends with "no start line" */
	fclose(fp);
	return n > 0 ? 0 : -1;
}

/*
 * Builds a server context from the current contents of the certificate,
 * key and chain files. Retries for up to a second when the key does not
 * match the certificate: a test may be between renaming the two files.
 * Returns NULL with WHY set on failure.
 */
static SSL_CTX *tls_context(const char **why)
{
	for (int attempt = 0;; attempt++) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		const char *key = opt.key != NULL ? opt.key : opt.cert;

		if (ctx == NULL) {
			*why = "SSL_CTX_new failed";
			return NULL;
		}
		SSL_CTX_set_min_proto_version(ctx, opt.tls_version ? opt.tls_version : TLS1_2_VERSION);
		if (opt.tls_version)
			SSL_CTX_set_max_proto_version(ctx, opt.tls_version);
		if (SSL_CTX_use_certificate_chain_file(ctx, opt.cert) != 1) {
			*why = "cannot load certificate";
		} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			*why = "cannot load key, or it does not match the certificate";
		} else if (SSL_CTX_check_private_key(ctx) != 1) {
			*why = "key does not match the certificate";
		} else if (opt.chain != NULL && load_chain(ctx, opt.chain) < 0) {
			*why = "cannot load chain file";
		} else {
			ERR_clear_error();
			return ctx;
		}
		SSL_CTX_free(ctx);
		ERR_clear_error();
		if (attempt >= 20)
			return NULL;
		sleep_ms(50);
	}
}

static const char *tls_version_name(const SSL *ssl)
{
	return ssl != NULL ? SSL_get_version(ssl) : "-";
}

/*
 * Mode close-in-handshake: lets OpenSSL read the ClientHello and produce
 * its first flight into a memory BIO, sends the first half of it and
 * closes, so the client is cut off in the middle of a server message.
 */
static void close_in_handshake(struct conn *c, SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);
	BIO *rbio = BIO_new_socket(c->fd, BIO_NOCLOSE);
	BIO *wbio = BIO_new(BIO_s_mem());
	int flags = fcntl(c->fd, F_GETFL);
	double end = now_s() + opt.timeout_s;

	c->result = "close-in-handshake";
	if (ssl == NULL || rbio == NULL || wbio == NULL) {
		BIO_free(rbio);
		BIO_free(wbio);
		goto out;
	}
	SSL_set_bio(ssl, rbio, wbio); /* ssl owns both now */
	fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
	while (BIO_ctrl_pending(wbio) == 0 && now_s() < end) {
		int r = SSL_accept(ssl);
		if (r > 0 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
			break;
		if (BIO_ctrl_pending(wbio) > 0)
			break;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		poll(&pfd, 1, 1000);
	}
	fcntl(c->fd, F_SETFL, flags);
	char *data;
	long len = BIO_get_mem_data(wbio, &data);
	if (len > 1) {
		(void)conn_write(c, data, (size_t)len / 2);
		log_line("close-in-handshake: sent %ld of %ld handshake bytes", len / 2, len);
	}
out:
	SSL_free(ssl);
	ERR_clear_error();
}

/* Handles STARTTLS in the modes that reach it (announce: the 220 reply
 * first; not in wrapper mode, where TLS comes before anything). Returns 0
 * when TLS is up, -1 when the connection is to end. */
static int starttls(struct conn *c, bool announce)
{
	const char *why = NULL;
	SSL_CTX *ctx = tls_context(&why);
	int ret = -1;

	if (ctx == NULL) {
		log_line("%s: %s", opt.cert, why);
		reply(c, "454 4.7.0 TLS not available: %s", why);
		return 1; /* the session goes on, without TLS */
	}
	if (c->mode == MODE_TLS_ALERT)
		SSL_CTX_set_client_hello_cb(ctx, reject_client_hello, NULL);
	if (announce && reply(c, "220 2.0.0 Ready to start TLS") < 0) {
		c->result = "peer-gone";
		goto out;
	}
	/* Pipelined plaintext after STARTTLS must not leak into the TLS
	 * session (the STARTTLS command injection attack): drop it. */
	c->in_start = c->in_end = 0;
	if (c->mode == MODE_CLOSE_AFTER_STARTTLS) {
		c->result = "close-after-starttls";
		goto out;
	}
	if (c->mode == MODE_CLOSE_IN_HANDSHAKE) {
		close_in_handshake(c, ctx);
		goto out;
	}
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		c->result = "ssl-new-failed";
		goto out;
	}
	if (SSL_accept(c->ssl) != 1) {
		unsigned long e = ERR_peek_error();
		log_line("peer=%s TLS handshake failed: %s", c->peer,
			 e != 0 ? ERR_reason_error_string(e) : "connection closed");
		c->result = c->mode == MODE_TLS_ALERT ? "tls-alert-sent" : "tls-handshake-failed";
		SSL_free(c->ssl);
		c->ssl = NULL;
		goto out;
	}
	const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
	snprintf(c->sni, sizeof(c->sni), "%s", sni != NULL ? sni : "-");
	ret = 0;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

/* ---- SMTP session ----------------------------------------------------------- */

/* Case-insensitive prefix match of a command verb, followed by end of line
 * or a space (or ':' for MAIL FROM / RCPT TO). */
static bool is_cmd(const char *line, const char *verb)
{
	size_t n = strlen(verb);

	return strncasecmp(line, verb, n) == 0
	       && (line[n] == '\0' || line[n] == ' ' || line[n] == ':');
}

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Message being received: envelope held in bounded buffers. */
struct message {
	char from[CMD_LINE_MAX];
	char rcpts[8192];
	int nrcpt;
};

/* Reads the DATA body up to "." and saves it in --maildir. Replies itself.
 * Returns 0, or -1 when the connection ended. */
static int receive_data(struct conn *c, const struct message *msg)
{
	char tmp[4096], final[4096], seg[DATA_SEG_MAX];
	FILE *fp = NULL;
	long size = 0;
	bool at_bol = true, too_big = false;
	int ret = -1;

	tmp[0] = '\0';
	if (opt.maildir != NULL) {
		snprintf(tmp, sizeof(tmp), "%s/.tmp.%ld.%d", opt.maildir, (long)getpid(),
			 c->messages);
		fp = fopen(tmp, "w");
		if (fp == NULL) {
			log_line("%s: %s", tmp, strerror(errno));
			reply(c, "451 4.3.0 cannot create message file");
			return 0;
		}
		fprintf(fp, "X-Testsmtpd-Mail-From: %s\r\n%s", msg->from, msg->rcpts);
		fprintf(fp, "X-Testsmtpd-TLS: %s\r\nX-Testsmtpd-SNI: %s\r\n",
			tls_version_name(c->ssl), c->sni);
	}
	if (reply(c, "354 End data with <CR><LF>.<CR><LF>") < 0)
		goto out;
	for (;;) {
		size_t len;
		bool eol;

		if (conn_segment(c, seg, sizeof(seg), &len, &eol) < 0)
			goto out;
		const char *p = seg;
		if (at_bol && seg[0] == '.') {
			if (eol && len == 1)
				break;
			p++; /* dot-unstuffing */
			len--;
		}
		size += (long)len + (eol ? 2 : 0);
		if (size > MAX_MESSAGE_SIZE)
			too_big = true;
		if (fp != NULL && !too_big) {
			fwrite(p, 1, len, fp);
			if (eol)
				fputs("\r\n", fp);
		}
		at_bol = eol;
	}
	if (too_big) {
		ret = reply(c, "552 5.3.4 Message size exceeds fixed limit");
		goto out;
	}
	if (fp != NULL) {
		int bad = ferror(fp);
		if (fclose(fp) != 0)
			bad = 1;
		fp = NULL;
		snprintf(final, sizeof(final), "%s/msg.%ld.%ld.%d.eml", opt.maildir,
			 (long)time(NULL), (long)getpid(), c->messages);
		if (bad || rename(tmp, final) < 0) {
			log_line("%s: %s", final, strerror(errno));
			ret = reply(c, "451 4.3.0 cannot save message");
			goto out;
		}
		tmp[0] = '\0';
		log_line("peer=%s delivered %s from=%s rcpts=%d", c->peer, final, msg->from,
			 msg->nrcpt);
	}
	c->messages++;
	ret = reply(c, "250 2.0.0 Ok: queued as TEST%ld%d", (long)getpid(), c->messages);
out:
	if (fp != NULL)
		fclose(fp);
	if (tmp[0] != '\0')
		unlink(tmp);
	return ret < 0 ? -1 : 0;
}

static int ehlo_reply(struct conn *c)
{
	bool offer_tls = c->ssl == NULL && c->mode != MODE_NO_STARTTLS;

	if (c->mode == MODE_ENDLESS_MULTILINE) {
		char first[300];
		snprintf(first, sizeof(first), "250-%s\r\n", opt.hostname);
		flood(c, first, fill_multiline);
		return -1;
	}
	int r = reply(c,
		      "250-%s\r\n250-PIPELINING\r\n250-SIZE %ld\r\n%s"
		      "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME",
		      opt.hostname, MAX_MESSAGE_SIZE, offer_tls ? "250-STARTTLS\r\n" : "");
	if (r < 0)
		c->result = "peer-gone";
	if (c->mode == MODE_CLOSE_AFTER_EHLO) {
		c->result = "close-after-ehlo";
		return -1;
	}
	return r;
}

/* The command loop, from the banner to QUIT. */
static void session(struct conn *c)
{
	char line[CMD_LINE_MAX];
	struct message msg;
	bool greeted = false, in_mail = false;
	int r;

	memset(&msg, 0, sizeof(msg));
	c->result = "eof";
	for (;;) {
		r = conn_command(c, line, sizeof(line));
		if (r < 0)
			return;
		if (r == 0) {
			if (reply(c, "500 5.5.2 Error: line too long") < 0)
				return;
			continue;
		}
		if (is_cmd(line, "EHLO") || is_cmd(line, "HELO")) {
			/* Keep what fits: the HELO name only goes to the log. */
			snprintf(c->helo, sizeof(c->helo), "%.*s", (int)sizeof(c->helo) - 1,
				 skip_ws(line + 4));
			if (c->mode == MODE_EHLO_4XX)
				r = reply(c, "450 4.3.0 EHLO temporarily rejected (testsmtpd ehlo-4xx)");
			else if (c->mode == MODE_EHLO_5XX)
				r = reply(c, "550 5.7.1 EHLO rejected (testsmtpd ehlo-5xx)");
			else if (is_cmd(line, "HELO"))
				r = reply(c, "250 %s", opt.hostname);
			else
				r = ehlo_reply(c);
			greeted = r >= 0 && c->mode != MODE_EHLO_4XX && c->mode != MODE_EHLO_5XX;
			in_mail = false;
		} else if (is_cmd(line, "STARTTLS")) {
			if (c->ssl != NULL)
				r = reply(c, "554 5.5.1 Error: TLS already active");
			else if (!greeted)
				r = reply(c, "503 5.5.1 Error: send EHLO first");
			else if (c->mode == MODE_NO_STARTTLS)
				r = reply(c, "502 5.5.1 Error: command not implemented");
			else if (c->mode == MODE_STARTTLS_4XX)
				r = reply(c, "454 4.7.0 TLS not available due to temporary reason");
			else if (c->mode == MODE_STARTTLS_5XX)
				r = reply(c, "554 5.7.0 TLS not available (testsmtpd starttls-5xx)");
			else {
				r = starttls(c, true);
				if (r < 0)
					return;
				if (r == 0) {
					greeted = false; /* RFC 3207: forget the state */
					in_mail = false;
					c->helo[0] = '\0';
				}
				r = 0;
			}
		} else if (is_cmd(line, "MAIL")) {
			const char *arg = skip_ws(line + 4);
			if (!greeted)
				r = reply(c, "503 5.5.1 Error: send HELO/EHLO first");
			else if (in_mail)
				r = reply(c, "503 5.5.1 Error: nested MAIL command");
			else if (strncasecmp(arg, "FROM:", 5) != 0)
				r = reply(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
			else {
				memset(&msg, 0, sizeof(msg));
				snprintf(msg.from, sizeof(msg.from), "%s", skip_ws(arg + 5));
				in_mail = true;
				r = reply(c, "250 2.1.0 Ok");
			}
		} else if (is_cmd(line, "RCPT")) {
			const char *arg = skip_ws(line + 4);
			size_t used = strlen(msg.rcpts);
			if (!in_mail)
				r = reply(c, "503 5.5.1 Error: need MAIL command");
			else if (strncasecmp(arg, "TO:", 3) != 0)
				r = reply(c, "501 5.5.4 Syntax: RCPT TO:<address>");
			else if (used + strlen(arg) + 40 >= sizeof(msg.rcpts))
				r = reply(c, "452 4.5.3 Error: too many recipients");
			else {
				snprintf(msg.rcpts + used, sizeof(msg.rcpts) - used,
					 "X-Testsmtpd-Rcpt-To: %s\r\n", skip_ws(arg + 3));
				msg.nrcpt++;
				r = reply(c, "250 2.1.5 Ok");
			}
		} else if (is_cmd(line, "DATA")) {
			if (!in_mail || msg.nrcpt == 0)
				r = reply(c, "503 5.5.1 Error: need RCPT command");
			else {
				r = receive_data(c, &msg);
				in_mail = false;
			}
		} else if (is_cmd(line, "RSET")) {
			in_mail = false;
			r = reply(c, "250 2.0.0 Ok");
		} else if (is_cmd(line, "NOOP")) {
			r = reply(c, "250 2.0.0 Ok");
		} else if (is_cmd(line, "VRFY")) {
			r = reply(c, "252 2.0.0 Cannot VRFY user");
		} else if (is_cmd(line, "QUIT")) {
			reply(c, "221 2.0.0 Bye");
			c->result = "quit";
			return;
		} else {
			r = reply(c, "500 5.5.2 Error: command not recognized");
		}
		if (r < 0) {
			if (strcmp(c->result, "eof") == 0)
				c->result = "peer-gone";
			return;
		}
	}
}

/* Serves one connection according to its mode. Runs in the child. */
static void serve(int fd, const char *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct timeval tv = {.tv_sec = opt.timeout_s};

	if (c == NULL)
		return;
	c->fd = fd;
	c->mode = current_mode();
	c->result = "eof";
	snprintf(c->peer, sizeof(c->peer), "%.*s", (int)sizeof(c->peer) - 1, peer);
	snprintf(c->sni, sizeof(c->sni), "-");
	/* Idle timeouts: a read or write that waits this long fails, so a
	 * client that stops talking or reading never keeps us forever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	switch (c->mode) {
	case MODE_SILENT:
		conn_drain(c);
		break;
	case MODE_DRIP:
		drip(c);
		break;
	case MODE_BANNER421:
		reply(c, "421 4.3.2 %s Service not available, closing channel", opt.hostname);
		c->result = "banner421";
		break;
	case MODE_GARBAGE: {
		unsigned char junk[1024];
		if (RAND_bytes(junk, sizeof(junk)) != 1)
			memset(junk, 0xA5, sizeof(junk));
		junk[0] |= 0x80; /* never a digit: not even a lucky "220" */
		if (conn_write(c, junk, sizeof(junk)) == 0)
			conn_drain(c);
		c->result = "garbage";
		break;
	}
	case MODE_LONG_LINE:
		flood(c, "220 ", fill_letters);
		break;
	case MODE_MULTILINE_BANNER:
		if (reply(c, "220-%s ESMTP testsmtpd\r\n220-multi-line banner, second line\r\n"
			     "220 %s ready", opt.hostname, opt.hostname) == 0)
			session(c);
		break;
	case MODE_CLOSE_AFTER_BANNER:
		reply(c, "220 %s ESMTP testsmtpd", opt.hostname);
		c->result = "close-after-banner";
		break;
	default:
		if (opt.wrapper && starttls(c, false) != 0)
			break;
		if (reply(c, "220 %s ESMTP testsmtpd", opt.hostname) == 0)
			session(c);
		break;
	}
	const char *cipher = c->ssl != NULL ? SSL_get_cipher_name(c->ssl) : "-";
	log_line("peer=%s mode=%s sni=%s tls=%s cipher=%s helo=%s messages=%d result=%s",
		 c->peer, mode_names[c->mode], c->sni, tls_version_name(c->ssl),
		 cipher != NULL ? cipher : "-", c->helo[0] ? c->helo : "-", c->messages,
		 c->result);
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl); /* close_notify; the peer may be gone */
		SSL_free(c->ssl);
	}
	free(c);
}

/* ---- listener / parent -------------------------------------------------- */

static volatile sig_atomic_t got_term, got_chld;

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_chld = 1;
	else
		got_term = 1;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;
	return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
}

/* Parses "A.B.C.D:PORT" or "[V6]:PORT" into SS. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof(host))
			return -1;
		memcpy(host, spec + 1, (size_t)(rb - spec - 1));
		host[rb - spec - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
			return -1;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
	}
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port > 65535)
		return -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
	} else {
		return -1;
	}
	return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
		snprintf(buf, cap, "%s:%u", host, port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
		snprintf(buf, cap, "[%s]:%u", host, port);
	}
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

/* Opens one listening socket. A port 0 spec first tries PREFER (the port
 * an earlier --listen got, when not 0), so that 127.0.0.1 and ::1 share one
 * port and "localhost:PORT" reaches both addresses; failing that, any. */
static int open_listener(const char *spec, unsigned prefer, unsigned *port_out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	if (parse_listen(spec, &ss, &len) < 0)
		die("--listen %s: expected ADDR:PORT or [ADDR]:PORT", spec);
	if (!is_loopback(&ss))
		die("--listen %s: only loopback addresses are allowed", spec);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("--listen %s: socket: %s", spec, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	bool any_port = ntohs(ss.ss_family == AF_INET
				      ? ((struct sockaddr_in *)(void *)&ss)->sin_port
				      : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port) == 0;
	if (any_port && prefer != 0) {
		set_port(&ss, prefer);
		if (bind(fd, (struct sockaddr *)&ss, len) == 0)
			goto bound;
		set_port(&ss, 0);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die("--listen %s: bind: %s", spec, strerror(errno));
bound:
	if (listen(fd, 64) < 0)
		die("--listen %s: listen: %s", spec, strerror(errno));
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		die("--listen %s: getsockname: %s", spec, strerror(errno));
	char name[INET6_ADDRSTRLEN + 10];
	format_addr(&ss, name, sizeof(name));
	log_line("listening on %s mode=%s", name, mode_names[opt.mode]);
	*port_out = ntohs(ss.ss_family == AF_INET
				  ? ((struct sockaddr_in *)(void *)&ss)->sin_port
				  : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
	return fd;
}

static void usage(void)
{
	fputs("usage: testsmtpd --cert FILE [--key FILE] [--chain FILE] [--listen ADDR]...\n"
	      "         [--port-file FILE] [--pid-file FILE] [--mode MODE] [--mode-file FILE]\n"
	      "         [--maildir DIR] [--log FILE] [--hostname NAME] [--delay SECONDS]\n"
	      "         [--timeout SECONDS] [--tls-version 1.2|1.3] [--count N] [--wrapper]\n"
	      "modes:",
	      stderr);
	for (int i = 0; i < MODE_LAST; i++)
		fprintf(stderr, " %s", mode_names[i]);
	fputc('\n', stderr);
	exit(64);
}

static long parse_number(const char *name, const char *s, long min, long max)
{
	char *end;

	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
		fprintf(stderr, "testsmtpd: %s %s: expected a number from %ld to %ld\n", name, s,
			min, max);
		exit(64);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"cert", required_argument, NULL, 'c'},
		{"key", required_argument, NULL, 'k'},
		{"chain", required_argument, NULL, 'C'},
		{"listen", required_argument, NULL, 'l'},
		{"port-file", required_argument, NULL, 'p'},
		{"pid-file", required_argument, NULL, 'P'},
		{"mode", required_argument, NULL, 'm'},
		{"mode-file", required_argument, NULL, 'M'},
		{"maildir", required_argument, NULL, 'd'},
		{"log", required_argument, NULL, 'L'},
		{"hostname", required_argument, NULL, 'H'},
		{"delay", required_argument, NULL, 'D'},
		{"timeout", required_argument, NULL, 't'},
		{"tls-version", required_argument, NULL, 'T'},
		{"count", required_argument, NULL, 'n'},
		{"wrapper", no_argument, NULL, 'W'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	opt.mode = MODE_NORMAL;
	opt.hostname = "testsmtpd.test";
	opt.delay_ms = 1000;
	opt.timeout_s = 120;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': opt.cert = optarg; break;
		case 'k': opt.key = optarg; break;
		case 'C': opt.chain = optarg; break;
		case 'l':
			if (opt.nlisten == MAX_LISTEN)
				usage();
			opt.listen[opt.nlisten++] = optarg;
			break;
		case 'p': opt.port_file = optarg; break;
		case 'P': opt.pid_file = optarg; break;
		case 'm':
			opt.mode = mode_from_name(optarg);
			if (opt.mode == MODE_LAST) {
				fprintf(stderr, "testsmtpd: --mode %s: unknown mode\n", optarg);
				usage();
			}
			break;
		case 'M': opt.mode_file = optarg; break;
		case 'd': opt.maildir = optarg; break;
		case 'L': opt.log = optarg; break;
		case 'H': opt.hostname = optarg; break;
		case 'D': {
			char *end;
			double d = strtod(optarg, &end);
			if (*end != '\0' || end == optarg || !(d >= 0 && d <= 3600)) {
				fprintf(stderr, "testsmtpd: --delay %s: expected seconds\n", optarg);
				exit(64);
			}
			opt.delay_ms = (long)(d * 1000);
			break;
		}
		case 't': opt.timeout_s = (int)parse_number("--timeout", optarg, 1, 86400); break;
		case 'T':
			if (strcmp(optarg, "1.2") == 0)
				opt.tls_version = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				opt.tls_version = TLS1_3_VERSION;
			else
				usage();
			break;
		case 'n': opt.count = parse_number("--count", optarg, 1, 1000000000L); break;
		case 'W': opt.wrapper = true; break;
		default: usage();
		}
	}
	if (optind != argc || opt.cert == NULL)
		usage();
	if (opt.nlisten == 0)
		opt.listen[opt.nlisten++] = "127.0.0.1:0";
	if (strlen(opt.hostname) > 200)
		usage();
}

static pid_t children[MAX_CHILDREN];
static int nchildren;

static void reap(void)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		for (int i = 0; i < nchildren; i++) {
			if (children[i] == pid) {
				children[i] = children[--nchildren];
				break;
			}
		}
	}
}

static void run_child(int cfd, const struct sockaddr_storage *peer, int *lfds)
{
	char name[INET6_ADDRSTRLEN + 10];
	sigset_t none;

	sigemptyset(&none);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef __linux__
	prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a killed server */
#endif
	for (int i = 0; i < opt.nlisten; i++)
		close(lfds[i]);
	format_addr(peer, name, sizeof(name));
	serve(cfd, name);
	close(cfd);
	_exit(0);
}

int main(int argc, char **argv)
{
	int lfds[MAX_LISTEN];
	unsigned ports[MAX_LISTEN];
	char portbuf[MAX_LISTEN * 8 + 1] = "";
	long accepted = 0;
	sigset_t block, empty;
	struct sigaction sa;
	const char *why;

	parse_args(argc, argv);
	if (opt.log != NULL) {
		log_fd = open(opt.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (log_fd < 0)
			die("%s: %s", opt.log, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);

	/* Fail fast on unusable certificate files (children reload them). */
	SSL_CTX *check = tls_context(&why);
	if (check == NULL)
		die("%s: %s", opt.cert, why);
	SSL_CTX_free(check);

	/* Signals are blocked except inside ppoll(): no race between the
	 * flag test and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&empty);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);

	for (int i = 0; i < opt.nlisten; i++) {
		lfds[i] = open_listener(opt.listen[i], i > 0 ? ports[0] : 0, &ports[i]);
		size_t used = strlen(portbuf);
		snprintf(portbuf + used, sizeof(portbuf) - used, "%u\n", ports[i]);
	}
	if (opt.pid_file != NULL) {
		char pidbuf[32];
		snprintf(pidbuf, sizeof(pidbuf), "%ld\n", (long)getpid());
		if (write_file_atomic(opt.pid_file, pidbuf) < 0)
			die("%s: %s", opt.pid_file, strerror(errno));
	}
	if (opt.port_file != NULL && write_file_atomic(opt.port_file, portbuf) < 0)
		die("%s: %s", opt.port_file, strerror(errno));

	while (!got_term && (opt.count == 0 || accepted < opt.count)) {
		struct pollfd pfds[MAX_LISTEN];
		int n = nchildren < MAX_CHILDREN ? opt.nlisten : 0;

		for (int i = 0; i < n; i++)
			pfds[i] = (struct pollfd){.fd = lfds[i], .events = POLLIN};
		int r = ppoll(pfds, (nfds_t)n, NULL, &empty);
		if (got_chld) {
			got_chld = 0;
			reap();
		}
		if (r <= 0)
			continue;
		for (int i = 0; i < n && (opt.count == 0 || accepted < opt.count); i++) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);

			if (!(pfds[i].revents & POLLIN))
				continue;
			int cfd = accept4(lfds[i], (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
			if (cfd < 0)
				continue;
			accepted++;
			pid_t pid = fork();
			if (pid == 0)
				run_child(cfd, &peer, lfds);
			if (pid < 0)
				log_line("fork: %s", strerror(errno));
			else
				children[nchildren++] = pid;
			close(cfd);
		}
	}
	for (int i = 0; i < opt.nlisten; i++)
		close(lfds[i]);
	/* --count lets the children finish; SIGTERM (now or while waiting)
	 * ends them. Signals stay blocked outside ppoll(), as above. */
	bool killed = false;
	for (;;) {
		got_chld = 0;
		reap();
		if (got_term && !killed) {
			for (int i = 0; i < nchildren; i++)
				kill(children[i], SIGTERM);
			killed = true;
		}
		if (nchildren == 0)
			break;
		ppoll(NULL, 0, NULL, &empty);
	}
	if (opt.port_file != NULL)
		unlink(opt.port_file);
	if (opt.pid_file != NULL)
		unlink(opt.pid_file);
	return 0;
}
