/*
 * MX and address lookups against our own loopback DNS server
 * (tests/tools/testdns), never real DNS: every resolver here is given
 * servers = "127.0.0.1:PORT" of the server this file starts.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tlspolicy.h"

static char tmpdir[] = "/tmp/tp-resolver.XXXXXX";
static char servers[64];
static char log_path[256];
static pid_t dns_pid = -1;

static const char zone_text[] =
	"# MX order: preference first, ties as the server sends them\n"
	"mx.test MX 20 mx-c.mx.test\n"
	"mx.test MX 10 mx-a.mx.test\n"
	"mx.test MX 20 mx-b.mx.test\n"
	"mx.test MX 30 MX-A.mx.test.\n"
	"mx-a.mx.test A 127.0.0.1\n"
	"mx-b.mx.test A 127.0.0.2\n"
	"mx-c.mx.test AAAA ::1\n"
	"dual.test A 127.0.0.4\n"
	"dual.test AAAA ::1\n"
	"implicit4.test A 127.0.0.2\n"
	"implicit6.test AAAA ::1\n"
	"# nomail.test exists (a name below it) but has no MX, A or AAAA\n"
	"www.nomail.test A 127.0.0.5\n"
	"null.test MX 0 .\n"
	"nullplus.test MX 0 .\n"
	"nullplus.test MX 10 mx-a.mx.test\n"
	"nx.test NXDOMAIN\n"
	"sf.test SERVFAIL\n"
	"drop.test DROP\n"
	"dropmx.test MX 10 mx-a.mx.test\n"
	"# an MX target that is an alias (RFC 2181 forbids it; it happens)\n"
	"cname-target.test MX 10 alias.cname-target.test\n"
	"alias.cname-target.test CNAME real.cname-target.test\n"
	"real.cname-target.test A 127.0.0.3\n"
	"# a domain that is an alias of another mail domain\n"
	"cname-domain.test CNAME mx.test\n";

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
start_dns(void **state)
{
	char zone[256], port_file[256], bin[512];
	const char *bindir = getenv("TP_BINARY_DIR");
	FILE *f;
	int port = 0;

	(void)state;
	if (bindir == NULL) {
		fprintf(stderr, "TP_BINARY_DIR is not set (run through ctest)\n");
		return -1;
	}
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(zone, sizeof(zone), "%s/zone", tmpdir);
	snprintf(port_file, sizeof(port_file), "%s/port", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/log", tmpdir);
	snprintf(bin, sizeof(bin), "%s/tests/testdns", bindir);
	f = fopen(zone, "w");
	if (f == NULL)
		return -1;
	fputs(zone_text, f);
	/* 100 MX hosts: over 512 bytes (TC, then TCP) and over the cap. */
	for (int i = 1; i <= 100; i++)
		fprintf(f, "many.test MX %d host%d.many.test\n", i, i);
	/* Twenty silent domains for the concurrency test. */
	for (int i = 0; i < 20; i++)
		fprintf(f, "silent%d.test DROP\n", i);
	fclose(f);

	dns_pid = fork();
	if (dns_pid < 0)
		return -1;
	if (dns_pid == 0) {
		/* Die with the test, and hold no ctest pipe open if it crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execl(bin, "testdns", "--zone", zone, "--port-file", port_file,
		      "--log", log_path, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 100 && port == 0; i++) {
		f = fopen(port_file, "r");
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (port == 0)
			usleep(100000);
	}
	if (port == 0) {
		fprintf(stderr, "testdns did not start\n");
		return -1;
	}
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
	return 0;
}

static int
stop_dns(void **state)
{
	char cmd[300];

	(void)state;
	if (dns_pid > 0) {
		kill(dns_pid, SIGTERM);
		waitpid(dns_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A resolver on the test server; timeout in seconds. */
static tp_resolver *
resolver(double timeout, unsigned int max_hosts)
{
	tp_resolver_opts opts = TP_RESOLVER_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = NULL;

	opts.servers = servers;
	opts.timeout = timeout;
	opts.max_hosts = max_hosts;
	if (tp_resolver_new(&r, &opts, &d) != 0)
		fail_msg("tp_resolver_new: %s", d.message);
	return r;
}

/* Looks up one MX domain; the caller frees *out. */
static const tp_resolve_result *
lookup_mx(tp_resolver **out, const char *domain)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = resolver(5, 0);

	if (tp_resolver_add_mx(NULL, r, domain, &d) != 0)
		fail_msg("add %s: %s", domain, d.message);
	if (tp_resolver_run(r, &d) != 0)
		fail_msg("run: %s", d.message);
	*out = r;
	return tp_resolver_result(r, 0);
}

/* "name/pref name/pref ..." for got-vs-want messages. */
static const char *
hosts_text(const tp_resolve_result *res)
{
	static char buf[4096];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < res->host_count && off < sizeof(buf) - 300; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s/%u",
					i ? " " : "", res->hosts[i].name,
					res->hosts[i].preference);
	return buf;
}

static void
expect_hosts(const char *domain, const char *want, int want_implicit)
{
	tp_resolver *r;
	const tp_resolve_result *res = lookup_mx(&r, domain);

	if (res->status != TP_OK)
		fail_msg("%s: got status %d (%s), want OK", domain, res->status,
			 res->error);
	if (strcmp(hosts_text(res), want) != 0)
		fail_msg("%s: got hosts \"%s\", want \"%s\"", domain,
			 hosts_text(res), want);
	assert_int_equal(res->implicit, want_implicit);
	assert_string_equal(res->error, "");
	assert_int_equal(res->kind, TP_RESOLVE_MX);
	tp_resolver_free(r);
}

static void
expect_error(const char *domain, int want_status, const char *want_error)
{
	tp_resolver *r;
	const tp_resolve_result *res = lookup_mx(&r, domain);

	if (res->status != want_status || strcmp(res->error, want_error) != 0)
		fail_msg("%s: got %d \"%s\", want %d \"%s\"", domain, res->status,
			 res->error, want_status, want_error);
	assert_int_equal(res->host_count, 0);
	tp_resolver_free(r);
}

static void
test_resolver__mx_hosts_sorted_by_preference_ties_in_order_received(void **state)
{
	(void)state;
	/* mx-a also appears at 30 in upper case: a duplicate, dropped. */
	expect_hosts("mx.test", "mx-a.mx.test/10 mx-c.mx.test/20 mx-b.mx.test/20", 0);
	expect_hosts("MX.Test.", "mx-a.mx.test/10 mx-c.mx.test/20 mx-b.mx.test/20", 0);
}

static void
test_resolver__no_mx_falls_back_to_the_domain_with_an_address(void **state)
{
	(void)state;
	expect_hosts("implicit4.test", "implicit4.test/0", 1);
	expect_hosts("implicit6.test", "implicit6.test/0", 1);
}

static void
test_resolver__no_mx_and_no_address_is_an_error(void **state)
{
	(void)state;
	expect_error("nomail.test", TP_EDNS, "nomail.test: no MX, A or AAAA records");
}

static void
test_resolver__null_mx_says_the_domain_accepts_no_mail(void **state)
{
	(void)state;
	expect_error("null.test", TP_EDNS, "null.test: null MX: the domain accepts no mail");
	/* A "." among real MX hosts is not a null MX: it is skipped. */
	expect_hosts("nullplus.test", "mx-a.mx.test/10", 0);
}

static void
test_resolver__nxdomain_and_servfail_name_the_domain(void **state)
{
	(void)state;
	expect_error("nx.test", TP_EDNS, "nx.test: no such domain (NXDOMAIN)");
	expect_error("absent.test", TP_EDNS, "absent.test: no such domain (NXDOMAIN)");
	expect_error("sf.test", TP_EDNS,
		     "sf.test: MX lookup failed: DNS server failure (SERVFAIL)");
}

static void
test_resolver__silent_server_times_out_within_the_deadline(void **state)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = resolver(1.0, 0);
	const tp_resolve_result *res;
	double t0, elapsed;

	(void)state;
	assert_int_equal(tp_resolver_add_mx(NULL, r, "drop.test", &d), 0);
	t0 = now();
	assert_int_equal(tp_resolver_run(r, &d), 0);
	elapsed = now() - t0;
	res = tp_resolver_result(r, 0);
	assert_int_equal(res->status, TP_ETIMEOUT);
	assert_string_equal(res->error, "drop.test: MX lookup timed out after 1s");
	if (elapsed < 0.9 || elapsed > 2.0)
		fail_msg("run took %.2fs, want about the 1s timeout", elapsed);
	tp_resolver_free(r);
}

static void
test_resolver__many_domains_finish_in_about_one_timeout(void **state)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = resolver(1.5, 0);
	char name[64];
	size_t idx_mx, idx_nx, idx_host;
	double t0, elapsed;

	(void)state;
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "silent%d.test", i);
		assert_int_equal(tp_resolver_add_mx(NULL, r, name, &d), 0);
	}
	assert_int_equal(tp_resolver_add_mx(&idx_mx, r, "mx.test", &d), 0);
	assert_int_equal(tp_resolver_add_mx(&idx_nx, r, "nx.test", &d), 0);
	assert_int_equal(tp_resolver_add_host(&idx_host, r, "mx-b.mx.test", &d), 0);
	assert_int_equal(idx_mx, 20);
	assert_int_equal(idx_host, 22);
	t0 = now();
	assert_int_equal(tp_resolver_run(r, &d), 0);
	elapsed = now() - t0;
	/* 20 silent domains one after the other would take 30s. */
	if (elapsed < 1.4 || elapsed > 3.0)
		fail_msg("run took %.2fs, want about the 1.5s timeout", elapsed);
	assert_int_equal(tp_resolver_result_count(r), 23);
	for (size_t i = 0; i < 20; i++) {
		const tp_resolve_result *res = tp_resolver_result(r, i);

		assert_int_equal(res->index, i);
		assert_int_equal(res->status, TP_ETIMEOUT);
	}
	assert_int_equal(tp_resolver_result(r, idx_mx)->status, TP_OK);
	assert_int_equal(tp_resolver_result(r, idx_mx)->host_count, 3);
	assert_int_equal(tp_resolver_result(r, idx_nx)->status, TP_EDNS);
	assert_int_equal(tp_resolver_result(r, idx_host)->status, TP_OK);
	assert_string_equal(tp_resolver_result(r, idx_host)->addresses[0], "127.0.0.2");
	assert_null(tp_resolver_result(r, 23));
	tp_resolver_free(r);
}

static void
test_resolver__cname_mx_target_and_cname_domain(void **state)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r;
	const tp_resolve_result *res;

	(void)state;
	/* The MX target is kept as named; its address follows the alias. */
	expect_hosts("cname-target.test", "alias.cname-target.test/10", 0);
	r = resolver(5, 0);
	assert_int_equal(tp_resolver_add_host(NULL, r, "alias.cname-target.test", &d), 0);
	assert_int_equal(tp_resolver_run(r, &d), 0);
	res = tp_resolver_result(r, 0);
	assert_int_equal(res->status, TP_OK);
	assert_int_equal(res->kind, TP_RESOLVE_HOST);
	assert_int_equal(res->address_count, 1);
	assert_string_equal(res->addresses[0], "127.0.0.3");
	tp_resolver_free(r);
	/* A domain that is an alias has its target's MX hosts. */
	expect_hosts("cname-domain.test",
		     "mx-a.mx.test/10 mx-c.mx.test/20 mx-b.mx.test/20", 0);
}

static void
test_resolver__host_addresses_from_dns_hosts_file_and_literals(void **state)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = resolver(2, 0);
	const tp_resolve_result *res;
	int have4 = 0, have6 = 0;

	(void)state;
	assert_int_equal(tp_resolver_add_host(NULL, r, "dual.test", &d), 0);
	assert_int_equal(tp_resolver_add_host(NULL, r, "localhost", &d), 0);
	assert_int_equal(tp_resolver_add_host(NULL, r, "192.0.2.7", &d), 0);
	assert_int_equal(tp_resolver_add_host(NULL, r, "2001:db8::1", &d), 0);
	assert_int_equal(tp_resolver_add_host(NULL, r, "nx.test", &d), 0);
	assert_int_equal(tp_resolver_add_host(NULL, r, "drop.test", &d), 0);
	assert_int_equal(tp_resolver_run(r, &d), 0);

	res = tp_resolver_result(r, 0);
	assert_int_equal(res->status, TP_OK);
	for (size_t i = 0; i < res->address_count; i++) {
		have4 += strcmp(res->addresses[i], "127.0.0.4") == 0;
		have6 += strcmp(res->addresses[i], "::1") == 0;
	}
	if (res->address_count != 2 || have4 != 1 || have6 != 1)
		fail_msg("dual.test: got %zu addresses, want 127.0.0.4 and ::1",
			 res->address_count);
	res = tp_resolver_result(r, 1);	/* /etc/hosts */
	assert_int_equal(res->status, TP_OK);
	assert_string_equal(res->addresses[0], "127.0.0.1");
	res = tp_resolver_result(r, 2);
	assert_int_equal(res->status, TP_OK);
	assert_int_equal(res->address_count, 1);
	assert_string_equal(res->addresses[0], "192.0.2.7");
	res = tp_resolver_result(r, 3);
	assert_int_equal(res->status, TP_OK);
	assert_string_equal(res->addresses[0], "2001:db8::1");
	res = tp_resolver_result(r, 4);
	assert_int_equal(res->status, TP_EDNS);
	assert_string_equal(res->error, "nx.test: no such domain (NXDOMAIN)");
	res = tp_resolver_result(r, 5);
	assert_int_equal(res->status, TP_ETIMEOUT);
	assert_string_equal(res->error, "drop.test: address lookup timed out after 2s");
	tp_resolver_free(r);
}

static void
test_resolver__mx_hosts_are_capped_and_big_answers_come_over_tcp(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;
	char line[512];
	int tc = 0, tcp = 0;
	FILE *f;

	(void)state;
	res = lookup_mx(&r, "many.test");
	assert_int_equal(res->status, TP_OK);
	assert_int_equal(res->host_count, TP_RESOLVER_MAX_HOSTS);
	assert_int_equal(res->omitted, 100 - TP_RESOLVER_MAX_HOSTS);
	assert_string_equal(res->hosts[0].name, "host1.many.test");
	assert_int_equal(res->hosts[63].preference, 64);
	tp_resolver_free(r);

	r = resolver(5, 3);
	assert_int_equal(tp_resolver_add_mx(NULL, r, "many.test", NULL), 0);
	assert_int_equal(tp_resolver_run(r, NULL), 0);
	res = tp_resolver_result(r, 0);
	assert_int_equal(res->host_count, 3);
	assert_int_equal(res->omitted, 97);
	tp_resolver_free(r);

	/* The server saw the UDP answer truncated and the TCP retry. */
	f = fopen(log_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		tc += strstr(line, "udp many.test MX -> NOERROR answers=0 tc") != NULL;
		tcp += strstr(line, "tcp many.test MX -> NOERROR answers=100") != NULL;
	}
	fclose(f);
	if (tc == 0 || tcp == 0)
		fail_msg("testdns log: %d truncated UDP answers, %d TCP answers; want both",
			 tc, tcp);
}

static void
test_resolver__patterns_and_bad_names_are_refused_when_added(void **state)
{
	static const struct {
		const char *name;
		int status;
		const char *message;
	} cases[] = {
		{ ".example.com", TP_EUSAGE, ".example.com: pattern, not a destination" },
		{ "", TP_ESYNTAX, "\"\": empty domain name" },
		{ "a..b", TP_ESYNTAX, "a..b: empty label in domain name" },
		{ "[mx.example.com]", TP_ESYNTAX,
		  "[mx.example.com]: not a DNS name (internationalised names must be in xn-- form)" },
		{ "b\xc3\xbc" "cher.de", TP_ESYNTAX,
		  "b\xc3\xbc" "cher.de: not a DNS name (internationalised names must be in xn-- form)" },
		{ "a.0123456789012345678901234567890123456789012345678901234567890123.com",
		  TP_ESYNTAX,
		  "a.0123456789012345678901234567890123456789012345678901234567890123.com: label longer than 63 bytes" },
	};
	tp_resolver *r = resolver(5, 0);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_diag d = TP_DIAG_INIT;
		size_t idx = 99;
		int rc = tp_resolver_add_mx(&idx, r, cases[i].name, &d);

		if (rc != cases[i].status || strcmp(d.message, cases[i].message) != 0)
			fail_msg("add \"%s\": got %d \"%s\", want %d \"%s\"", cases[i].name,
				 rc, d.message, cases[i].status, cases[i].message);
		assert_int_equal(idx, 0);
	}
	assert_int_equal(tp_resolver_result_count(r), 0);
	/* xn-- names and a trailing dot are fine. */
	assert_int_equal(tp_resolver_add_mx(NULL, r, "xn--bcher-kva.de.", NULL), 0);
	assert_string_equal(tp_resolver_result(r, 0)->name, "xn--bcher-kva.de");
	tp_resolver_free(r);
}

static void
test_resolver__options_and_call_order_are_checked(void **state)
{
	tp_resolver_opts opts = TP_RESOLVER_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = (tp_resolver *)&opts;

	(void)state;
	opts.servers = "not an address";
	assert_int_equal(tp_resolver_new(&r, &opts, &d), TP_EUSAGE);
	assert_null(r);
	assert_non_null(strstr(d.message, "bad DNS server list \"not an address\""));
	opts.servers = "";
	assert_int_equal(tp_resolver_new(&r, &opts, &d), TP_EUSAGE);
	opts.servers = servers;
	opts.timeout = 0;
	assert_int_equal(tp_resolver_new(&r, &opts, &d), TP_EUSAGE);
	opts.timeout = 5;
	opts.version = 99;
	assert_int_equal(tp_resolver_new(&r, &opts, &d), TP_EUSAGE);
	opts.version = TP_RESOLVER_OPTS_VERSION;
	/* Several servers, IPv6 syntax included. */
	opts.servers = "[::1]:1,127.0.0.1:2";
	assert_int_equal(tp_resolver_new(&r, &opts, &d), 0);
	tp_resolver_free(r);

	r = resolver(5, 0);
	assert_int_equal(tp_resolver_run(r, &d), 0);	/* nothing to do */
	assert_int_equal(tp_resolver_run(r, &d), TP_EUSAGE);
	assert_int_equal(tp_resolver_add_mx(NULL, r, "mx.test", &d), TP_EUSAGE);
	tp_resolver_free(r);
	tp_resolver_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolver__mx_hosts_sorted_by_preference_ties_in_order_received),
		cmocka_unit_test(test_resolver__no_mx_falls_back_to_the_domain_with_an_address),
		cmocka_unit_test(test_resolver__no_mx_and_no_address_is_an_error),
		cmocka_unit_test(test_resolver__null_mx_says_the_domain_accepts_no_mail),
		cmocka_unit_test(test_resolver__nxdomain_and_servfail_name_the_domain),
		cmocka_unit_test(test_resolver__silent_server_times_out_within_the_deadline),
		cmocka_unit_test(test_resolver__many_domains_finish_in_about_one_timeout),
		cmocka_unit_test(test_resolver__cname_mx_target_and_cname_domain),
		cmocka_unit_test(test_resolver__host_addresses_from_dns_hosts_file_and_literals),
		cmocka_unit_test(test_resolver__mx_hosts_are_capped_and_big_answers_come_over_tcp),
		cmocka_unit_test(test_resolver__patterns_and_bad_names_are_refused_when_added),
		cmocka_unit_test(test_resolver__options_and_call_order_are_checked),
	};

	return cmocka_run_group_tests(tests, start_dns, stop_dns);
}
