/*
 * The prober's API contract: options checking, target bookkeeping, one
 * result per address, deadlines on a listener that never speaks, many at
 * once (seen in the order of events, not the clock), a refused port, the
 * trace hook, scripted SMTP dialogues, and whole TLS handshakes with a
 * server in a child process: the chain, verification, SNI, and the client
 * settings (protocols, exclusions, wrapper mode) taking effect. (More
 * misbehaving servers are in tests/cli/probe*.sh.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tlspolicy.h"

/* A loopback listener that accepts into its backlog and never speaks. */
static int
listener(unsigned int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A scripted server in a child process: accepts one connection, then for
 * each step sends its bytes (when not NULL) and reads one line (when
 * read_line), and at the end reads until the client closes.
 */
struct script_step {
	const char *send;
	int read_line;
};

static pid_t
scripted_server(unsigned int *port, const struct script_step *steps, size_t n)
{
	int lfd = listener(port);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = accept(lfd, NULL, NULL);
		char c;

		if (fd < 0)
			_exit(1);
		for (size_t i = 0; i < n; i++) {
			if (steps[i].send != NULL &&
			    write(fd, steps[i].send, strlen(steps[i].send)) < 0)
				_exit(1);
			while (steps[i].read_line && read(fd, &c, 1) == 1 && c != '\n')
				;
		}
		while (read(fd, &c, 1) > 0)
			;
		_exit(0);
	}
	close(lfd);
	return pid;
}

static void
probe_scripted(const struct script_step *steps, size_t n, int want_status,
	       const char *want_error)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *p;
	unsigned int port;
	pid_t pid = scripted_server(&port, steps, n);
	char target[64];
	const tp_probe_result *r;

	opts.timeout = 5;
	opts.ehlo_name = "probe.test";
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	assert_int_equal(tp_prober_run(p, &diag), 0);
	r = tp_prober_result(p, 0);
	if (r->status != want_status || strstr(r->error, want_error) == NULL)
		fail_msg("got status %d error \"%s\", want %d \"...%s\"", r->status,
			 r->error, want_status, want_error);
	tp_prober_free(p);
	waitpid(pid, NULL, 0);
}

static void
test_probe__plaintext_after_starttls_reply_is_refused(void **state)
{
	/* CVE-2011-0411: bytes after the 220 must not count as TLS-protected. */
	const struct script_step steps[] = {
		{ "220 mx ESMTP\r\n", 1 },
		{ "250-mx\r\n250 STARTTLS\r\n", 1 },
		{ "220 go ahead\r\n250 injected\r\n", 0 },
	};

	(void)state;
	probe_scripted(steps, 3, TP_EPROTOCOL, ": unexpected data after STARTTLS reply");
}

static void
test_probe__reply_sent_early_is_read_as_the_next_reply(void **state)
{
	/* Banner and EHLO reply in one write, before our EHLO: still parsed. */
	const struct script_step steps[] = {
		{ "220 mx ESMTP\r\n250-mx\r\n250 8BITMIME\r\n", 1 },
	};

	(void)state;
	probe_scripted(steps, 1, TP_EPROTOCOL, ": no STARTTLS in EHLO reply");
}

static void
test_probe__inconsistent_codes_and_multiline_replies(void **state)
{
	const struct script_step bad[] = { { "220-a\r\n250 b\r\n", 0 } };
	const struct script_step ok_then_5xx[] = {
		{ "220-mx\r\n220-more\r\n220 ESMTP\r\n", 1 },
		{ "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", 1 },
		{ "554-5.7.0 no\r\n554 5.7.0 TLS for you\r\n", 0 },
	};

	(void)state;
	probe_scripted(bad, 1, TP_EPROTOCOL, ": inconsistent reply codes in banner");
	probe_scripted(ok_then_5xx, 3, TP_EPROTOCOL,
		       ": STARTTLS rejected: 554-5.7.0 no 5.7.0 TLS for you");
}

static void
test_probe__options_are_checked(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *p = (tp_prober *)&opts;

	(void)state;
	opts.digest = "nosuchdigest";
	assert_int_equal(tp_prober_new(&p, &opts, &diag), TP_EUNSUPPORTED);
	assert_null(p);
	assert_non_null(strstr(diag.message, "nosuchdigest"));
	opts.digest = NULL;
	opts.timeout = 0;
	assert_int_equal(tp_prober_new(&p, &opts, &diag), TP_EUSAGE);
	opts.timeout = 30;
	opts.ehlo_name = "evil\r\nRCPT TO:<x>";
	assert_int_equal(tp_prober_new(&p, &opts, &diag), TP_EUSAGE);
	opts.ehlo_name = NULL;
	opts.version = 99;
	assert_int_equal(tp_prober_new(&p, &opts, &diag), TP_EUSAGE);
	/* NULL options: the defaults. */
	assert_int_equal(tp_prober_new(&p, NULL, &diag), 0);
	assert_int_equal(tp_prober_result_count(p), 0);
	assert_null(tp_prober_result(p, 0));
	tp_prober_free(p);
	tp_prober_free(NULL);
}

static void
test_probe__targets_are_parsed_and_indexed(void **state)
{
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *p;
	size_t idx = 99;

	(void)state;
	assert_int_equal(tp_prober_new(&p, NULL, &diag), 0);
	assert_int_equal(tp_prober_add(&idx, p, "mx.example.com:587", NULL, &diag), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(tp_prober_add(&idx, p, "[2001:db8::1]:25", "mx.example.com", &diag), 0);
	assert_int_equal(idx, 1);
	assert_int_equal(tp_prober_add(&idx, p, "mx:99999", NULL, &diag), TP_ESYNTAX);
	assert_non_null(strstr(diag.message, "bad port"));
	assert_int_equal(tp_prober_add(&idx, p, "mx", "bad name", &diag), TP_EUSAGE);
	assert_int_equal(idx, 1);
	tp_prober_free(p);
}

/* Counts connects started before the first timeout: how many ran at once. */
struct overlap_log {
	int started;
	int before_first_timeout;
	int timed_out;
};

static void
overlap_cb(const char *line, void *payload)
{
	struct overlap_log *log = payload;

	if (strstr(line, ": queued -> connect") != NULL)
		log->started++;
	if (strstr(line, ": failed: timed out") != NULL && log->timed_out++ == 0)
		log->before_first_timeout = log->started;
}

static void
test_probe__silent_listener_times_out_within_the_deadline(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	struct overlap_log log = { 0, 0, 0 };
	tp_prober *p;
	unsigned int port;
	int fd = listener(&port);
	char target[64], want[128];
	double t0, took;

	(void)state;
	opts.timeout = 0.5;
	opts.ehlo_name = "probe.test";
	opts.trace = overlap_cb;
	opts.trace_payload = &log;
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	for (int i = 0; i < 20; i++)
		assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	t0 = mono();
	assert_int_equal(tp_prober_run(p, &diag), 0);
	took = mono() - t0;
	/*
	 * 20 at once (default jobs 16: two rounds), not 20 in a row: told by
	 * the order of events, which a loaded machine does not change. The
	 * deadline is a lower bound the clock can be trusted with.
	 */
	if (log.before_first_timeout != 16 || log.started != 20 || log.timed_out != 20)
		fail_msg("got %d connects before the first timeout (%d started, %d timed out), "
			 "want 16 of 20 at once", log.before_first_timeout, log.started,
			 log.timed_out);
	if (took < 1.0)
		fail_msg("20 probes in two rounds of a 0.5s deadline took %.2fs", took);
	assert_int_equal(tp_prober_result_count(p), 20);
	snprintf(want, sizeof(want), "127.0.0.1[127.0.0.1]:%u: timed out waiting for "
		 "banner after 0.5s", port);
	for (size_t i = 0; i < 20; i++) {
		const tp_probe_result *r = tp_prober_result(p, i);

		assert_int_equal(r->target, i);
		assert_int_equal(r->status, TP_ETIMEOUT);
		assert_string_equal(r->step, "banner");
		assert_string_equal(r->error, want);
		assert_null(r->chain);
	}
	/* A prober runs once and takes no targets after. */
	assert_int_equal(tp_prober_run(p, &diag), TP_EUSAGE);
	assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), TP_EUSAGE);
	tp_prober_free(p);
	close(fd);
}

static void
test_probe__step_deadline_is_separate_from_the_address_deadline(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *p;
	unsigned int port;
	int fd = listener(&port);
	char target[64];
	const tp_probe_result *r;

	(void)state;
	opts.timeout = 10;
	opts.step_timeout = 0.3;
	opts.ehlo_name = "probe.test";
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	assert_int_equal(tp_prober_run(p, &diag), 0);
	r = tp_prober_result(p, 0);
	/* The step's deadline fired, not the address's 10 s. */
	assert_non_null(strstr(r->error, "timed out waiting for banner after 0.3s"));
	if (r->elapsed < 0.3)
		fail_msg("timed out after %.2fs, before the 0.3s deadline", r->elapsed);
	tp_prober_free(p);
	close(fd);
}

struct trace_log {
	int lines;
	int saw_transition;
};

static void
trace_cb(const char *line, void *payload)
{
	struct trace_log *log = payload;

	log->lines++;
	if (strstr(line, ": queued -> connect") != NULL)
		log->saw_transition = 1;
}

static void
test_probe__refused_port_is_a_connect_error_and_traced(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	struct trace_log log = { 0, 0 };
	tp_prober *p;
	unsigned int port;
	int fd = listener(&port);
	char target[64], want[128];
	const tp_probe_result *r;

	(void)state;
	close(fd);		/* nothing listens there now */
	opts.trace = trace_cb;
	opts.trace_payload = &log;
	opts.ehlo_name = "probe.test";
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	assert_int_equal(tp_prober_run(p, &diag), 0);
	r = tp_prober_result(p, 0);
	snprintf(want, sizeof(want), "127.0.0.1[127.0.0.1]:%u: connect: Connection refused",
		 port);
	assert_int_equal(r->status, TP_ECONNECT);
	assert_string_equal(r->error, want);
	assert_string_equal(r->address, "127.0.0.1");
	assert_int_equal(r->port, port);
	assert_true(log.saw_transition);
	tp_prober_free(p);
}

struct progress_log {
	const tp_probe_result *seen[8];
	size_t calls;
	int bad;
	char why[200];
};

static void
progress_cb(const tp_probe_result *r, size_t done, size_t total, void *payload)
{
	struct progress_log *log = payload;

	if (log->bad)
		return;
	if (log->calls >= 8 || done != log->calls + 1 || total != 6
	    || strcmp(r->step, "queued") == 0) {
		snprintf(log->why, sizeof(log->why),
			 "call %zu: got done %zu of %zu, step %s; want done %zu of 6, a final step",
			 log->calls + 1, done, total, r->step, log->calls + 1);
		log->bad = 1;
		return;
	}
	for (size_t i = 0; i < log->calls; i++)
		if (log->seen[i] == r) {
			snprintf(log->why, sizeof(log->why), "result reported twice");
			log->bad = 1;
		}
	log->seen[log->calls++] = r;
}

static void
never_called(const tp_probe_result *r, size_t done, size_t total, void *payload)
{
	(void)r, (void)done, (void)total, (void)payload;
	fail_msg("progress called for version 1 options, which have no such field");
}

static void
test_probe__progress_reports_each_result_once_when_final(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	struct progress_log log;
	tp_prober *p;
	unsigned int silent, refused;
	int fd = listener(&silent), gone = listener(&refused);
	char target[64];

	(void)state;
	close(gone);		/* refused at once; the other one times out */
	memset(&log, 0, sizeof(log));
	opts.timeout = 0.3;
	opts.ehlo_name = "probe.test";
	opts.jobs = 2;		/* queued ones must not be reported early */
	opts.progress = progress_cb;
	opts.progress_payload = &log;
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(target, sizeof(target), "127.0.0.1:%u", i % 2 ? silent : refused);
		assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	}
	assert_int_equal(tp_prober_run(p, &diag), 0);
	if (log.bad)
		fail_msg("%s", log.why);
	if (log.calls != 6)
		fail_msg("got %zu progress calls, want 6 (one per result)", log.calls);
	for (size_t i = 0; i < 6; i++) {
		int found = 0;

		for (size_t k = 0; k < 6; k++)
			found |= log.seen[k] == tp_prober_result(p, i);
		if (!found)
			fail_msg("result %zu was never reported", i);
	}
	tp_prober_free(p);

	/* Options of version 1 end before the progress fields. */
	opts.version = 1;
	opts.progress = never_called;
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%u", refused);
	assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	assert_int_equal(tp_prober_run(p, &diag), 0);
	assert_int_equal(tp_prober_result(p, 0)->status, TP_ECONNECT);
	tp_prober_free(p);
	close(fd);
}

/* ---- whole TLS handshakes against a server in a child process ---- */

struct tls_server {
	EVP_PKEY *key;
	X509 *cert;
	char cert_path[64];
	int sni_pipe[2];	/* the child writes the SNI it saw */
};

/*
 * A self-signed certificate for mx.test, written to a temp file (the CA
 * file). EC P-256: an RSA key takes long to make under valgrind.
 */
static void
make_cert(struct tls_server *s)
{
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	FILE *fp;
	int fd;

	s->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(s->key);
	s->cert = X509_new();
	assert_non_null(s->cert);
	X509_set_version(s->cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(s->cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(s->cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(s->cert), 86400L * 30);
	X509_set_pubkey(s->cert, s->key);
	name = X509_get_subject_name(s->cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mx.test", -1, -1, 0);
	X509_set_issuer_name(s->cert, name);
	X509V3_set_ctx(&v3, s->cert, s->cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:mx.test");
	assert_non_null(ext);
	X509_add_ext(s->cert, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(s->cert, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(s->cert, s->key, EVP_sha256()) > 0);
	snprintf(s->cert_path, sizeof(s->cert_path), "/tmp/tp-probe-ca.XXXXXX");
	fd = mkstemp(s->cert_path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	PEM_write_X509(fp, s->cert);
	fclose(fp);
}

static void
free_cert(struct tls_server *s)
{
	unlink(s->cert_path);
	X509_free(s->cert);
	EVP_PKEY_free(s->key);
}

static void
send_str(int fd, const char *text)
{
	if (write(fd, text, strlen(text)) < 0)
		_exit(1);
}

/* Read one line from a plaintext socket (the command), up to \n. */
static void
read_line(int fd)
{
	char c;

	while (read(fd, &c, 1) == 1 && c != '\n')
		;
}

/*
 * Serves one connection: STARTTLS (or, with wrapper, TLS first), the
 * handshake, the SNI seen written to the pipe ("-" for none, "!" when
 * the handshake failed), then waits for the client to go.
 */
static pid_t
tls_server_start(struct tls_server *s, unsigned int *port, int wrapper, int tls13)
{
	int lfd = listener(port);
	pid_t pid;

	assert_int_equal(pipe(s->sni_pipe), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		int fd = accept(lfd, NULL, NULL);
		const char *sni;
		SSL *ssl;
		char c;

		if (ctx == NULL || fd < 0 || SSL_CTX_use_certificate(ctx, s->cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, s->key) != 1)
			_exit(1);
		if (tls13)
			SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
		if (!wrapper) {
			send_str(fd, "220 mx.test ESMTP\r\n");
			read_line(fd);
			send_str(fd, "250-mx.test\r\n250 STARTTLS\r\n");
			read_line(fd);
			send_str(fd, "220 go ahead\r\n");
		}
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1) {
			if (write(s->sni_pipe[1], "!", 1) < 0)
				_exit(1);
			_exit(0);
		}
		sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		if (write(s->sni_pipe[1], sni ? sni : "-", sni ? strlen(sni) : 1) < 0)
			_exit(1);
		close(s->sni_pipe[1]);
		while (SSL_read(ssl, &c, 1) > 0)
			;
		_exit(0);
	}
	close(lfd);
	close(s->sni_pipe[1]);
	return pid;
}

static void
tls_server_seen(struct tls_server *s, pid_t pid, char *sni, size_t size)
{
	ssize_t n = read(s->sni_pipe[0], sni, size - 1);

	sni[n > 0 ? n : 0] = '\0';
	close(s->sni_pipe[0]);
	waitpid(pid, NULL, 0);
}

static const tp_probe_result *
probe_one(tp_prober **p, const tp_probe_opts *opts, unsigned int port, const char *servername)
{
	tp_diag diag = TP_DIAG_INIT;
	char target[64];

	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	assert_int_equal(tp_prober_new(p, opts, &diag), 0);
	assert_int_equal(tp_prober_add(NULL, *p, target, servername, &diag), 0);
	assert_int_equal(tp_prober_run(*p, &diag), 0);
	return tp_prober_result(*p, 0);
}

static void
test_probe__a_whole_handshake_gives_the_chain_verification_and_sni(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	struct tls_server srv;
	const tp_probe_result *r;
	unsigned char *der = NULL;
	char want_fp[TP_FINGERPRINT_MAX], want_pk[TP_FINGERPRINT_MAX], sni[256];
	unsigned int port;
	tp_prober *p;
	pid_t pid;
	int len;

	(void)state;
	make_cert(&srv);
	len = i2d_X509(srv.cert, &der);
	assert_true(len > 0);
	assert_int_equal(tp_fingerprint_der(want_fp, der, (size_t)len, "sha256", TP_PIN_CERT, NULL), 0);
	assert_int_equal(tp_fingerprint_der(want_pk, der, (size_t)len, "sha256", TP_PIN_PKEY, NULL), 0);
	OPENSSL_free(der);
	opts.timeout = 10;
	opts.ehlo_name = "probe.test";
	opts.ca_file = srv.cert_path;

	/* Postfix's default: no SNI. The chain, and it verifies against its CA. */
	pid = tls_server_start(&srv, &port, 0, 0);
	r = probe_one(&p, &opts, port, NULL);
	tls_server_seen(&srv, pid, sni, sizeof(sni));
	if (r->status != TP_OK)
		fail_msg("handshake: %s", r->error);
	assert_string_equal(sni, "-");
	assert_null(r->servername);
	assert_int_equal(r->chain_len, 1);
	assert_string_equal(r->chain[0].fingerprint, want_fp);
	assert_string_equal(r->chain[0].pkey_fingerprint, want_pk);
	assert_string_equal(r->chain[0].subject, "CN=mx.test");
	assert_true(r->verified);
	assert_false(r->tls_failed);
	assert_non_null(r->tls_version);
	tp_prober_free(p);

	/* A servername is sent, and the leaf matches it. */
	pid = tls_server_start(&srv, &port, 0, 0);
	r = probe_one(&p, &opts, port, "mx.test");
	tls_server_seen(&srv, pid, sni, sizeof(sni));
	assert_int_equal(r->status, TP_OK);
	assert_string_equal(sni, "mx.test");
	assert_string_equal(r->servername, "mx.test");
	assert_true(r->name_matches);
	tp_prober_free(p);
	free_cert(&srv);
}

static void
test_probe__client_settings_decide_the_handshake(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_client_settings *settings;
	tp_diag diag = TP_DIAG_INIT;
	struct tls_server srv;
	const tp_probe_result *r;
	char sni[256];
	unsigned int port;
	tp_prober *p;
	pid_t pid;

	(void)state;
	make_cert(&srv);
	opts.timeout = 10;
	opts.ehlo_name = "probe.test";

	/* protocols=TLSv1.2: the session is TLS 1.2. */
	assert_int_equal(tp_client_settings_new(&settings, NULL, NULL,
						"encrypt protocols=TLSv1.2", &diag), 0);
	opts.settings = settings;
	pid = tls_server_start(&srv, &port, 0, 0);
	r = probe_one(&p, &opts, port, NULL);
	tls_server_seen(&srv, pid, sni, sizeof(sni));
	if (r->status != TP_OK || strcmp(r->tls_version, "TLSv1.2") != 0)
		fail_msg("protocols=TLSv1.2: got %s %s", r->tls_version ? r->tls_version : "-", r->error);
	tp_prober_free(p);
	tp_client_settings_free(settings);

	/* TLS 1.2 without ECDSA authentication against an ECDSA-only server:
	 * no shared cipher, a TLS failure as Postfix would have it. */
	assert_int_equal(tp_client_settings_new(&settings, NULL, NULL,
						"encrypt protocols=TLSv1.2 exclude=aECDSA", &diag), 0);
	opts.settings = settings;
	pid = tls_server_start(&srv, &port, 0, 0);
	r = probe_one(&p, &opts, port, NULL);
	tls_server_seen(&srv, pid, sni, sizeof(sni));
	assert_int_not_equal(r->status, TP_OK);
	assert_true(r->tls_failed);
	assert_string_equal(sni, "!");
	tp_prober_free(p);
	tp_client_settings_free(settings);

	/* <=TLSv1.2 against a TLS 1.3-only server: refused, a TLS failure. */
	assert_int_equal(tp_client_settings_new(&settings, NULL, NULL,
						"encrypt protocols=<=TLSv1.2", &diag), 0);
	opts.settings = settings;
	pid = tls_server_start(&srv, &port, 0, 1);
	r = probe_one(&p, &opts, port, NULL);
	tls_server_seen(&srv, pid, sni, sizeof(sni));
	assert_true(r->tls_failed);
	assert_non_null(strstr(r->error, "TLS handshake"));
	tp_prober_free(p);
	tp_client_settings_free(settings);

	/* Wrapper mode: TLS from the first byte. */
	assert_int_equal(tp_client_settings_new(&settings, NULL, NULL, "encrypt", &diag), 0);
	tp_client_settings_set_wrappermode(settings, 1);
	opts.settings = settings;
	pid = tls_server_start(&srv, &port, 1, 0);
	r = probe_one(&p, &opts, port, NULL);
	tls_server_seen(&srv, pid, sni, sizeof(sni));
	if (r->status != TP_OK)
		fail_msg("wrapper mode: %s", r->error);
	assert_true(r->wrappermode);
	assert_int_equal(r->chain_len, 1);
	tp_prober_free(p);
	tp_client_settings_free(settings);
	free_cert(&srv);
}

static void
test_probe__explicit_addresses_and_families(void **state)
{
	tp_probe_target t = TP_PROBE_TARGET_INIT;
	tp_client_settings *v6only;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *p;
	unsigned int port;
	int fd = listener(&port);
	const tp_probe_result *r;

	(void)state;
	close(fd);
	assert_int_equal(tp_client_settings_new(&v6only, NULL, NULL, "encrypt", &diag), 0);
	tp_client_settings_set_families(v6only, TP_FAMILY_IPV6);
	assert_int_equal(tp_prober_new(&p, NULL, &diag), 0);
	/* A name connected to at an address given: the label keeps both. */
	t.host = "mx.example.test";
	t.address = "127.0.0.1";
	t.port = port;
	assert_int_equal(tp_prober_add_target(NULL, p, &t, &diag), 0);
	/* An IPv4 literal with IPv6 only in use: no address, nothing sent. */
	t.host = "127.0.0.1";
	t.address = NULL;
	t.settings = v6only;
	assert_int_equal(tp_prober_add_target(NULL, p, &t, &diag), 0);
	t.address = "not-an-address";
	assert_int_equal(tp_prober_add_target(NULL, p, &t, &diag), TP_ESYNTAX);
	t.version = 99;
	assert_int_equal(tp_prober_add_target(NULL, p, &t, &diag), TP_EUSAGE);
	tp_client_settings_free(v6only);	/* copied when added */
	assert_int_equal(tp_prober_run(p, &diag), 0);
	assert_int_equal(tp_prober_result_count(p), 2);
	r = tp_prober_result(p, 0);
	assert_int_equal(r->status, TP_ECONNECT);
	assert_string_equal(r->host, "mx.example.test");
	assert_string_equal(r->address, "127.0.0.1");
	r = tp_prober_result(p, 1);
	assert_int_equal(r->status, TP_EDNS);
	assert_non_null(strstr(r->error, "inet_protocols"));
	tp_prober_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe__options_are_checked),
		cmocka_unit_test(test_probe__targets_are_parsed_and_indexed),
		cmocka_unit_test(test_probe__silent_listener_times_out_within_the_deadline),
		cmocka_unit_test(test_probe__step_deadline_is_separate_from_the_address_deadline),
		cmocka_unit_test(test_probe__refused_port_is_a_connect_error_and_traced),
		cmocka_unit_test(test_probe__progress_reports_each_result_once_when_final),
		cmocka_unit_test(test_probe__plaintext_after_starttls_reply_is_refused),
		cmocka_unit_test(test_probe__reply_sent_early_is_read_as_the_next_reply),
		cmocka_unit_test(test_probe__inconsistent_codes_and_multiline_replies),
		cmocka_unit_test(test_probe__a_whole_handshake_gives_the_chain_verification_and_sni),
		cmocka_unit_test(test_probe__client_settings_decide_the_handshake),
		cmocka_unit_test(test_probe__explicit_addresses_and_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
