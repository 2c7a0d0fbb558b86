/*
 * The prober's API contract, without a server: options checking, target
 * bookkeeping, one result per address, deadlines on a listener that
 * never speaks, a refused port, and the trace hook. (The SMTP dialogue
 * against a real server is tested in tests/cli/probe*.sh.)
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

static void
test_probe__silent_listener_times_out_within_the_deadline(void **state)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *p;
	unsigned int port;
	int fd = listener(&port);
	char target[64], want[128];
	double t0, took;

	(void)state;
	opts.timeout = 0.5;
	opts.ehlo_name = "probe.test";
	assert_int_equal(tp_prober_new(&p, &opts, &diag), 0);
	snprintf(target, sizeof(target), "127.0.0.1:%u", port);
	for (int i = 0; i < 20; i++)
		assert_int_equal(tp_prober_add(NULL, p, target, NULL, &diag), 0);
	t0 = mono();
	assert_int_equal(tp_prober_run(p, &diag), 0);
	took = mono() - t0;
	/* 20 at once (default jobs 16: two rounds), not 20 in a row. */
	if (took < 0.9 || took > 2.0)
		fail_msg("got %.2fs for 20 silent probes with timeout 0.5 and 16 jobs, "
			 "want about 1s", took);
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
	assert_non_null(strstr(r->error, "timed out waiting for banner after 0.3s"));
	if (r->elapsed > 1.0)
		fail_msg("got %.2fs, want about 0.3s", r->elapsed);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
