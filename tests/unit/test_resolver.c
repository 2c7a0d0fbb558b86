/*
 * MX, address and TLSA lookups against our own loopback DNS server
 * (tests/tools/testdns), never real DNS: every resolver here is given
 * servers = "127.0.0.1:PORT" of the server this file starts. Names the
 * zone marks SECURE get the DNSSEC AD bit, as from a validating
 * resolver; the others never do.
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dnsmsg.h"
#include "tlspolicy.h"

#define D1 "3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a3d1a"	/* SHA2-256 */
#define D2 "c0ffeeababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab"	/* SHA2-512 */
#define D3 "0000000000000000000000000000000000000000000000000000000000000000"

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
	"nulllast.test MX 10 mx-a.mx.test\n"
	"nulllast.test MX 20 .\n"
	"# dns_get_rr() drops an MX record whose target valid_rr_name()\n"
	"# refuses; an IP address passes, digits that are none do not\n"
	"inv.test MX 10 bad-.inv.test\n"
	"inv.test MX 20 mx-a.mx.test\n"
	"inv.test MX 30 -bad.inv.test\n"
	"inv.test MX 40 1.2.3\n"
	"inv.test MX 50 127.0.0.1\n"
	"inv.test MX 60 mx_u.inv.test\n"
	"inv.test MX 70 a(b.inv.test\n"
	"allinv.test MX 10 bad-.inv.test\n"
	"nx.test NXDOMAIN\n"
	"sf.test SERVFAIL\n"
	"drop.test DROP\n"
	"dropmx.test MX 10 mx-a.mx.test\n"
	"# an MX target that is an alias (RFC 2181 forbids it; it happens)\n"
	"cname-target.test MX 10 alias.cname-target.test\n"
	"alias.cname-target.test CNAME real.cname-target.test\n"
	"real.cname-target.test A 127.0.0.3\n"
	"# a domain that is an alias of another mail domain\n"
	"cname-domain.test CNAME mx.test\n"
	"# DNSSEC: the same MX and implicit MX, validated\n"
	"sec.test MX 10 mx-a.mx.test\n"
	"sec.test SECURE\n"
	"implicitsec.test A 127.0.0.2\n"
	"implicitsec.test SECURE\n"
	"# DANE: TLSA records with and without the AD bit\n"
	"_25._tcp.mx.secure.test TLSA 3 1 1 " D1 "\n"
	"_25._tcp.mx.secure.test TLSA 2 0 2 " D2 "\n"
	"_25._tcp.mx.secure.test SECURE\n"
	"_587._tcp.mx.secure.test TLSA 3 0 1 " D3 "\n"
	"_587._tcp.mx.secure.test SECURE\n"
	"_25._tcp.mx.insecure.test TLSA 3 1 1 " D1 "\n"
	"# NODATA: the name has a TXT record, no TLSA\n"
	"_25._tcp.nodata.secure.test RAW 16 0474657374\n"
	"_25._tcp.nodata.secure.test SECURE\n"
	"_25._tcp.nodata.insecure.test RAW 16 0474657374\n"
	"# NXDOMAIN: no records at all (SECURE alone makes nothing exist)\n"
	"_25._tcp.nx.secure.test SECURE\n"
	"# aliases of the secure TLSA name: secure, and one insecure link\n"
	"_25._tcp.alias.test CNAME tlsa.hop.test\n"
	"_25._tcp.alias.test SECURE\n"
	"tlsa.hop.test CNAME _25._tcp.mx.secure.test\n"
	"tlsa.hop.test SECURE\n"
	"_25._tcp.alias-insecure.test CNAME tlsa.hop.test\n"
	"_25._tcp.sf.test SERVFAIL\n"
	"_25._tcp.sf.test SECURE\n"
	"_25._tcp.silent.test DROP\n"
	"# malformed RDATA is skipped, unknown parameters are kept\n"
	"_25._tcp.bad.test TLSA 3 1 1 " D1 "\n"
	"_25._tcp.bad.test TLSA 3 1 1 00112233445566778899aabbccddeeff\n"
	"_25._tcp.bad.test TLSA 3 1 2 " D1 "\n"
	"_25._tcp.bad.test RAW 52 0301\n"
	"_25._tcp.bad.test TLSA 3 1 0 -\n"
	"_25._tcp.bad.test TLSA 4 2 9 abcd\n";

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
	/* None of these names is SECURE in the zone. */
	assert_int_equal(res->secure, 0);
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
	/* mx-a also appears at 30 in upper case: kept, as smtp(8) keeps
	 * it (dns_get_answer() and smtp_addr_list() drop no duplicate). */
	expect_hosts("mx.test", "mx-a.mx.test/10 mx-c.mx.test/20 mx-b.mx.test/20 mx-a.mx.test/30", 0);
	expect_hosts("MX.Test.", "mx-a.mx.test/10 mx-c.mx.test/20 mx-b.mx.test/20 mx-a.mx.test/30", 0);
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
	/* dns_get_answer(): a null MX among real MX hosts still makes the
	 * answer DNS_NULLMX, wherever it comes in the reply. */
	expect_error("nullplus.test", TP_EDNS, "nullplus.test: null MX: the domain accepts no mail");
	expect_error("nulllast.test", TP_EDNS, "nulllast.test: null MX: the domain accepts no mail");
}

static void
test_resolver__mx_targets_postfix_refuses_are_dropped(void **state)
{
	(void)state;
	expect_hosts("inv.test", "mx-a.mx.test/20 127.0.0.1/50 mx_u.inv.test/60", 0);
	expect_error("allinv.test", TP_EDNS,
		     "allinv.test: MX lookup failed: malformed domain name in MX record: bad-.inv.test");
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
	assert_int_equal(tp_resolver_result(r, idx_mx)->host_count, 4);
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
		     "mx-a.mx.test/10 mx-c.mx.test/20 mx-b.mx.test/20 mx-a.mx.test/30", 0);
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

/* Looks up the TLSA records of host:port; the caller frees *out. */
static const tp_resolve_result *
lookup_tlsa(tp_resolver **out, const char *host, unsigned int port)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = resolver(5, 0);
	const tp_resolve_result *res;

	if (tp_resolver_add_tlsa(NULL, r, host, port, &d) != 0)
		fail_msg("add TLSA %s:%u: %s", host, port, d.message);
	if (tp_resolver_run(r, &d) != 0)
		fail_msg("run: %s", d.message);
	*out = r;
	res = tp_resolver_result(r, 0);
	assert_int_equal(res->kind, TP_RESOLVE_TLSA);
	return res;
}

static void
expect_ok(const tp_resolve_result *res)
{
	if (res->status != TP_OK)
		fail_msg("%s: got status %d (%s), want OK", res->name, res->status,
			 res->error);
	assert_string_equal(res->error, "");
}

/* Hex of a record's association data, for comparisons. */
static const char *
hex(const tp_tlsa_record *t)
{
	static char buf[1024];

	buf[0] = '\0';
	for (size_t i = 0; i < t->len && 2 * i + 2 < sizeof(buf); i++)
		snprintf(buf + 2 * i, 3, "%02x", t->data[i]);
	return buf;
}

/* How many lines of the test server's log contain all of a and b. */
static int
log_count(const char *a, const char *b)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(log_path, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, a) != NULL && strstr(line, b) != NULL;
	fclose(f);
	return n;
}

static void
test_resolver__tlsa_records_found_with_the_ad_bit_are_secure(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;

	(void)state;
	res = lookup_tlsa(&r, "mx.secure.test", 25);
	expect_ok(res);
	assert_string_equal(res->name, "_25._tcp.mx.secure.test");
	assert_string_equal(res->owner, "_25._tcp.mx.secure.test");
	assert_int_equal(res->secure, 1);
	assert_int_equal(res->tlsa_count, 2);
	assert_int_equal(res->tlsa_skipped, 0);
	assert_int_equal(res->tlsa[0].usage, 3);
	assert_int_equal(res->tlsa[0].selector, 1);
	assert_int_equal(res->tlsa[0].mtype, 1);
	assert_int_equal(res->tlsa[0].len, 32);
	assert_string_equal(hex(&res->tlsa[0]), D1);
	assert_int_equal(res->tlsa[1].usage, 2);
	assert_int_equal(res->tlsa[1].selector, 0);
	assert_int_equal(res->tlsa[1].mtype, 2);
	assert_int_equal(res->tlsa[1].len, 64);
	assert_string_equal(hex(&res->tlsa[1]), D2);
	tp_resolver_free(r);

	/* The port is part of the name; a trailing dot and case are fine. */
	res = lookup_tlsa(&r, "MX.Secure.test.", 587);
	expect_ok(res);
	assert_string_equal(res->name, "_587._tcp.MX.Secure.test");
	assert_string_equal(res->owner, "_587._tcp.mx.secure.test");
	assert_int_equal(res->secure, 1);
	assert_int_equal(res->tlsa_count, 1);
	assert_int_equal(res->tlsa[0].selector, 0);
	assert_string_equal(hex(&res->tlsa[0]), D3);
	tp_resolver_free(r);
}

static void
test_resolver__tlsa_records_without_the_ad_bit_are_not_secure_though_asked(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;

	(void)state;
	res = lookup_tlsa(&r, "mx.insecure.test", 25);
	expect_ok(res);
	assert_int_equal(res->tlsa_count, 1);
	assert_string_equal(hex(&res->tlsa[0]), D1);
	assert_int_equal(res->secure, 0);
	tp_resolver_free(r);
	/* The query asked for the AD bit, with EDNS0; the server gave none. */
	if (log_count("udp _25._tcp.mx.insecure.test TLSA -> NOERROR answers=1 edns want-ad id=",
		      "") == 0)
		fail_msg("testdns log has no TLSA query asking for AD for mx.insecure.test");
	assert_int_equal(log_count("_25._tcp.mx.insecure.test TLSA", " ad id="), 0);
	assert_int_not_equal(log_count("_25._tcp.mx.secure.test TLSA", "want-ad ad id="), 0);
}

static void
test_resolver__tlsa_nodata_and_nxdomain_are_no_records_secure_or_not(void **state)
{
	static const struct {
		const char *host;
		int secure;
	} cases[] = {
		{ "nodata.secure.test", 1 },
		{ "nodata.insecure.test", 0 },
		{ "nx.secure.test", 1 },
		{ "nx.insecure.test", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_resolver *r;
		const tp_resolve_result *res = lookup_tlsa(&r, cases[i].host, 25);

		expect_ok(res);
		assert_int_equal(res->tlsa_count, 0);
		assert_int_equal(res->tlsa_skipped, 0);
		if (res->secure != cases[i].secure)
			fail_msg("%s: got secure %d, want %d", res->name, res->secure,
				 cases[i].secure);
		tp_resolver_free(r);
	}
	assert_int_not_equal(log_count("_25._tcp.nx.secure.test TLSA -> NXDOMAIN", " ad id="), 0);
	assert_int_not_equal(log_count("_25._tcp.nodata.secure.test TLSA -> NOERROR answers=0",
				       " ad id="), 0);
}

static void
test_resolver__tlsa_follows_cnames_and_records_the_owner(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;

	(void)state;
	res = lookup_tlsa(&r, "alias.test", 25);
	expect_ok(res);
	assert_string_equal(res->name, "_25._tcp.alias.test");
	assert_string_equal(res->owner, "_25._tcp.mx.secure.test");
	assert_int_equal(res->tlsa_count, 2);
	assert_string_equal(hex(&res->tlsa[0]), D1);
	assert_int_equal(res->secure, 1);
	tp_resolver_free(r);
	/* One link of the chain is not validated: the answer is not either. */
	res = lookup_tlsa(&r, "alias-insecure.test", 25);
	expect_ok(res);
	assert_string_equal(res->owner, "_25._tcp.mx.secure.test");
	assert_int_equal(res->tlsa_count, 2);
	assert_int_equal(res->secure, 0);
	tp_resolver_free(r);
}

static void
test_resolver__tlsa_servfail_and_timeout_are_errors(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;
	tp_diag d = TP_DIAG_INIT;

	(void)state;
	res = lookup_tlsa(&r, "sf.test", 25);
	assert_int_equal(res->status, TP_EDNS);
	assert_string_equal(res->error,
			    "_25._tcp.sf.test: TLSA lookup failed: DNS server failure (SERVFAIL)");
	assert_int_equal(res->secure, 0);
	assert_int_equal(res->tlsa_count, 0);
	assert_null(res->owner);
	tp_resolver_free(r);

	r = resolver(1, 0);
	assert_int_equal(tp_resolver_add_tlsa(NULL, r, "silent.test", 25, &d), 0);
	assert_int_equal(tp_resolver_run(r, &d), 0);
	res = tp_resolver_result(r, 0);
	assert_int_equal(res->status, TP_ETIMEOUT);
	assert_string_equal(res->error, "_25._tcp.silent.test: TLSA lookup timed out after 1s");
	assert_int_equal(res->secure, 0);
	tp_resolver_free(r);
}

static void
test_resolver__malformed_tlsa_rdata_is_skipped_and_unknown_parameters_kept(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;

	(void)state;
	res = lookup_tlsa(&r, "bad.test", 25);
	expect_ok(res);
	/* Short digests for types 1 and 2, 2 bytes of RDATA, no data. */
	assert_int_equal(res->tlsa_skipped, 4);
	assert_int_equal(res->tlsa_count, 2);
	assert_int_equal(res->tlsa[0].mtype, 1);
	assert_string_equal(hex(&res->tlsa[0]), D1);
	assert_int_equal(res->tlsa[1].usage, 4);
	assert_int_equal(res->tlsa[1].selector, 2);
	assert_int_equal(res->tlsa[1].mtype, 9);
	assert_string_equal(hex(&res->tlsa[1]), "abcd");
	assert_int_equal(res->secure, 0);
	tp_resolver_free(r);
}

static void
test_resolver__tlsa_arguments_are_checked_when_added(void **state)
{
	static const struct {
		const char *host;
		unsigned int port;
		int status;
		const char *message;
	} cases[] = {
		{ "mx.example.com", 0, TP_EUSAGE, "mx.example.com: port 0 is not 1 to 65535" },
		{ "mx.example.com", 65536, TP_EUSAGE, "mx.example.com: port 65536 is not 1 to 65535" },
		{ "192.0.2.1", 25, TP_EUSAGE, "192.0.2.1: an IP address has no TLSA records" },
		{ "2001:db8::1", 25, TP_EUSAGE, "2001:db8::1: an IP address has no TLSA records" },
		{ "", 25, TP_ESYNTAX, "\"\": empty domain name" },
		{ "a..b", 25, TP_ESYNTAX, "a..b: empty label in domain name" },
	};
	char longname[300];
	tp_resolver *r = resolver(5, 0);
	tp_diag d = TP_DIAG_INIT;
	size_t idx = 99;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		idx = 99;
		tp_diag_clear(&d);
		rc = tp_resolver_add_tlsa(&idx, r, cases[i].host, cases[i].port, &d);
		if (rc != cases[i].status || strcmp(d.message, cases[i].message) != 0)
			fail_msg("add TLSA \"%s\" %u: got %d \"%s\", want %d \"%s\"",
				 cases[i].host, cases[i].port, rc, d.message,
				 cases[i].status, cases[i].message);
		assert_int_equal(idx, 0);
	}
	/* 250 bytes is a name; with "_25._tcp." it is too long. */
	memset(longname, 'a', 250);
	for (size_t i = 63; i < 250; i += 64)
		longname[i] = '.';
	longname[250] = '\0';
	assert_int_equal(tp_resolver_add_tlsa(NULL, r, longname, 25, &d), TP_ESYNTAX);
	assert_non_null(strstr(d.message, "longer than 253 bytes"));
	assert_int_equal(tp_resolver_result_count(r), 0);
	assert_int_equal(tp_resolver_add_tlsa(&idx, r, "mx.secure.test", 25, &d), 0);
	assert_int_equal(tp_resolver_add_mx(&idx, r, "mx.test", &d), 0);
	assert_int_equal(idx, 1);
	assert_int_equal(tp_resolver_run(r, &d), 0);
	assert_int_equal(tp_resolver_add_tlsa(NULL, r, "mx.secure.test", 25, &d), TP_EUSAGE);
	assert_int_equal(tp_resolver_result(r, 0)->tlsa_count, 2);
	assert_int_equal(tp_resolver_result(r, 1)->host_count, 4);
	tp_resolver_free(r);
}

static void
test_resolver__mx_results_are_secure_only_with_the_ad_bit(void **state)
{
	tp_resolver *r;
	const tp_resolve_result *res;

	(void)state;
	res = lookup_mx(&r, "sec.test");
	expect_ok(res);
	assert_int_equal(res->host_count, 1);
	assert_int_equal(res->implicit, 0);
	assert_int_equal(res->secure, 1);
	tp_resolver_free(r);
	res = lookup_mx(&r, "mx.test");
	expect_ok(res);
	assert_int_equal(res->secure, 0);
	tp_resolver_free(r);
	/* The implicit MX: the MX and the address answers decide. */
	res = lookup_mx(&r, "implicitsec.test");
	expect_ok(res);
	assert_int_equal(res->implicit, 1);
	assert_int_equal(res->secure, 1);
	tp_resolver_free(r);
	res = lookup_mx(&r, "implicit4.test");
	expect_ok(res);
	assert_int_equal(res->implicit, 1);
	assert_int_equal(res->secure, 0);
	tp_resolver_free(r);
	/* The MX query asked, with EDNS0, and only sec.test got the AD bit. */
	assert_int_not_equal(log_count("sec.test MX -> NOERROR answers=1 edns want-ad ad id=", ""), 0);
	assert_int_not_equal(log_count("implicitsec.test A -> NOERROR answers=1 edns want-ad ad id=", ""), 0);
	assert_int_equal(log_count(" mx.test MX", " ad id="), 0);
}

/* Sends query q (n bytes) over UDP to the test server; the answer length. */
static size_t
udp_exchange(const unsigned char *q, size_t n, unsigned char *ans, size_t cap)
{
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ssize_t got;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(strchr(servers, ':') + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(sendto(fd, q, n, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)n);
	got = recv(fd, ans, cap, 0);
	close(fd);
	if (got < 12)
		fail_msg("no answer from the test server");
	return (size_t)got;
}

static void
test_resolver__test_server_gives_ad_only_when_asked_and_honours_edns(void **state)
{
	unsigned char q[512], ans[8192];
	size_t n, alen;
	tp__dns_answer a;

	(void)state;
	/* AD asked in the header, no OPT record. */
	n = tp__dns_query_build(q, sizeof(q), "_25._tcp.mx.secure.test", TP_DNS_T_TLSA, 0, 0);
	alen = udp_exchange(q, n, ans, sizeof(ans));
	assert_int_equal(tp__dns_answer_parse(&a, ans, alen), 0);
	assert_int_equal(a.ad, 1);
	assert_int_equal(a.nrr, 2);
	assert_int_equal(ans[10] << 8 | ans[11], 0);	/* no OPT back */
	tp__dns_answer_dispose(&a);
	/* Not asked: neither AD nor DO. */
	q[3] = 0;
	alen = udp_exchange(q, n, ans, sizeof(ans));
	assert_int_equal(tp__dns_answer_parse(&a, ans, alen), 0);
	assert_int_equal(a.ad, 0);
	tp__dns_answer_dispose(&a);
	/* Asked by the DO bit alone; the OPT record comes back, DO echoed. */
	n = tp__dns_query_build(q, sizeof(q), "_25._tcp.mx.secure.test", TP_DNS_T_TLSA, 1232, 1);
	q[3] = 0;
	alen = udp_exchange(q, n, ans, sizeof(ans));
	assert_int_equal(tp__dns_answer_parse(&a, ans, alen), 0);
	assert_int_equal(a.ad, 1);
	tp__dns_answer_dispose(&a);
	assert_int_equal(ans[10] << 8 | ans[11], 1);
	assert_int_equal(ans[alen - 11], 0);
	assert_int_equal(ans[alen - 10] << 8 | ans[alen - 9], TP_DNS_T_OPT);
	assert_int_equal(ans[alen - 4] & 0x80, 0x80);	/* DO */

	/* 100 MX records (about 4 KB): truncated in 512 and 1232 bytes,
	 * whole in 8192. */
	n = tp__dns_query_build(q, sizeof(q), "many.test", TP_DNS_T_MX, 0, 0);
	alen = udp_exchange(q, n, ans, sizeof(ans));
	assert_true(alen <= 512);
	assert_int_equal(ans[2] & 0x02, 0x02);
	n = tp__dns_query_build(q, sizeof(q), "many.test", TP_DNS_T_MX, 1232, 0);
	alen = udp_exchange(q, n, ans, sizeof(ans));
	assert_int_equal(ans[2] & 0x02, 0x02);
	assert_int_equal(ans[10] << 8 | ans[11], 1);	/* OPT even then */
	n = tp__dns_query_build(q, sizeof(q), "many.test", TP_DNS_T_MX, 8192, 0);
	alen = udp_exchange(q, n, ans, sizeof(ans));
	assert_true(alen > 1232 && alen <= 8192);
	assert_int_equal(ans[2] & 0x02, 0);
	assert_int_equal(tp__dns_answer_parse(&a, ans, alen), 0);
	assert_int_equal(a.nrr, 100);
	assert_int_equal(a.ad, 0);
	tp__dns_answer_dispose(&a);
}

static void
test_resolver__concurrent_queries_have_distinct_random_ids(void **state)
{
	tp_diag d = TP_DIAG_INIT;
	tp_resolver *r = resolver(5, 0);
	char line[1024];
	unsigned int ids[40] = { 0 };
	int seen[40] = { 0 };
	FILE *f;

	(void)state;
	/* c-ares 1.18 sends the id it is given and matches answers by it. */
	for (unsigned int port = 1000; port < 1040; port++)
		assert_int_equal(tp_resolver_add_tlsa(NULL, r, "ids.test", port, &d), 0);
	assert_int_equal(tp_resolver_run(r, &d), 0);
	for (size_t i = 0; i < 40; i++) {
		const tp_resolve_result *res = tp_resolver_result(r, i);

		expect_ok(res);
		assert_int_equal(res->tlsa_count, 0);
	}
	tp_resolver_free(r);
	/* A retry repeats its query's id; two names never share one. */
	f = fopen(log_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		const char *id = strstr(line, " id="), *name = strstr(line, " _10");
		unsigned int port, n;

		if (id == NULL || name == NULL || strstr(line, "._tcp.ids.test TLSA") == NULL ||
		    sscanf(name, " _%u._tcp", &port) != 1 || port < 1000 || port >= 1040)
			continue;
		n = (unsigned int)atoi(id + 4);
		for (size_t i = 0; i < 40; i++)
			if (seen[i] && ids[i] == n && i != port - 1000)
				fail_msg("_%zu._tcp.ids.test and _%u._tcp.ids.test had one id, %u",
					 i + 1000, port, n);
		seen[port - 1000] = 1;
		ids[port - 1000] = n;
	}
	fclose(f);
	for (size_t i = 0; i < 40; i++)
		if (!seen[i])
			fail_msg("testdns logged no query for _%zu._tcp.ids.test", i + 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolver__mx_hosts_sorted_by_preference_ties_in_order_received),
		cmocka_unit_test(test_resolver__no_mx_falls_back_to_the_domain_with_an_address),
		cmocka_unit_test(test_resolver__no_mx_and_no_address_is_an_error),
		cmocka_unit_test(test_resolver__null_mx_says_the_domain_accepts_no_mail),
		cmocka_unit_test(test_resolver__mx_targets_postfix_refuses_are_dropped),
		cmocka_unit_test(test_resolver__nxdomain_and_servfail_name_the_domain),
		cmocka_unit_test(test_resolver__silent_server_times_out_within_the_deadline),
		cmocka_unit_test(test_resolver__many_domains_finish_in_about_one_timeout),
		cmocka_unit_test(test_resolver__cname_mx_target_and_cname_domain),
		cmocka_unit_test(test_resolver__host_addresses_from_dns_hosts_file_and_literals),
		cmocka_unit_test(test_resolver__mx_hosts_are_capped_and_big_answers_come_over_tcp),
		cmocka_unit_test(test_resolver__patterns_and_bad_names_are_refused_when_added),
		cmocka_unit_test(test_resolver__options_and_call_order_are_checked),
		cmocka_unit_test(test_resolver__tlsa_records_found_with_the_ad_bit_are_secure),
		cmocka_unit_test(test_resolver__tlsa_records_without_the_ad_bit_are_not_secure_though_asked),
		cmocka_unit_test(test_resolver__tlsa_nodata_and_nxdomain_are_no_records_secure_or_not),
		cmocka_unit_test(test_resolver__tlsa_follows_cnames_and_records_the_owner),
		cmocka_unit_test(test_resolver__tlsa_servfail_and_timeout_are_errors),
		cmocka_unit_test(test_resolver__malformed_tlsa_rdata_is_skipped_and_unknown_parameters_kept),
		cmocka_unit_test(test_resolver__tlsa_arguments_are_checked_when_added),
		cmocka_unit_test(test_resolver__mx_results_are_secure_only_with_the_ad_bit),
		cmocka_unit_test(test_resolver__test_server_gives_ad_only_when_asked_and_honours_edns),
		cmocka_unit_test(test_resolver__concurrent_queries_have_distinct_random_ids),
	};

	return cmocka_run_group_tests(tests, start_dns, stop_dns);
}
