/*
 * Policy keys read as Postfix reads a next-hop destination (transport(5),
 * host_port.c): which forms take an MX lookup, which name a host or an
 * address, ports and service names, the ipv6: tag, IDN, and what is no
 * next hop at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tlspolicy.h"

static const struct nh_case {
	const char *key;
	int want_rc;
	tp_nexthop_kind kind;
	const char *host;	/* or a fragment of the error */
	const char *ascii;
	unsigned int port;
	int port_given;
	int family;
} cases[] = {
	/* Unbracketed: MX lookup of the domain, port 25 or the one given. */
	{ "example.com", 0, TP_NEXTHOP_DOMAIN, "example.com", "example.com", 25, 0, 0 },
	{ "example.com:587", 0, TP_NEXTHOP_DOMAIN, "example.com", "example.com", 587, 1, 0 },
	{ "example.com:", 0, TP_NEXTHOP_DOMAIN, "example.com", "example.com", 25, 0, 0 },
	{ "example.com.", 0, TP_NEXTHOP_DOMAIN, "example.com", "example.com", 25, 0, 0 },
	{ "example.com:submission", 0, TP_NEXTHOP_DOMAIN, "example.com", "example.com", 587, 1, 0 },
	{ "example.com:smtps", 0, TP_NEXTHOP_DOMAIN, "example.com", "example.com", 465, 1, 0 },
	/* Service names are case-sensitive, as in Postfix (keys are folded). */
	{ "example.com:SMTP", TP_ESYNTAX, 0, "bad port", NULL, 0, 0, 0 },
	/* Brackets: the host's own addresses, no MX lookup. */
	{ "[mx.example.com]", 0, TP_NEXTHOP_HOST, "mx.example.com", "mx.example.com", 25, 0, 0 },
	{ "[mx.example.com]:2525", 0, TP_NEXTHOP_HOST, "mx.example.com", "mx.example.com", 2525, 1, 0 },
	{ "[mx.example.com]:", 0, TP_NEXTHOP_HOST, "mx.example.com", "mx.example.com", 25, 0, 0 },
	/* Addresses, IPv6 with or without RFC 5321's tag (any case). */
	{ "[192.0.2.1]", 0, TP_NEXTHOP_ADDRESS, "192.0.2.1", "192.0.2.1", 25, 0, 4 },
	{ "[192.0.2.1]:26", 0, TP_NEXTHOP_ADDRESS, "192.0.2.1", "192.0.2.1", 26, 1, 4 },
	{ "192.0.2.1:26", 0, TP_NEXTHOP_ADDRESS, "192.0.2.1", "192.0.2.1", 26, 1, 4 },
	{ "[ipv6:2001:db8::1]:25", 0, TP_NEXTHOP_ADDRESS, "2001:db8::1", "2001:db8::1", 25, 1, 6 },
	{ "[IPv6:::1]:2525", 0, TP_NEXTHOP_ADDRESS, "::1", "::1", 2525, 1, 6 },
	{ "[2001:db8::1]", 0, TP_NEXTHOP_ADDRESS, "2001:db8::1", "2001:db8::1", 25, 0, 6 },
	/* A parent-domain pattern names no destination. */
	{ ".example.com", 0, TP_NEXTHOP_PATTERN, "example.com", "example.com", 25, 0, 0 },
	/* Internationalised names: A-labels for DNS and SNI. */
	{ "b\xc3\xbc" "cher.example", 0, TP_NEXTHOP_DOMAIN, "b\xc3\xbc" "cher.example",
	  "xn--bcher-kva.example", 25, 0, 0 },
	{ "[m\xc3\xbcnchen.example]:25", 0, TP_NEXTHOP_HOST, "m\xc3\xbcnchen.example",
	  "xn--mnchen-3ya.example", 25, 1, 0 },
	/* Not next hops. */
	{ "", TP_ESYNTAX, 0, "empty next hop", NULL, 0, 0, 0 },
	{ "[mx.example.com", TP_ESYNTAX, 0, "missing \"]\"", NULL, 0, 0, 0 },
	{ "[mx.example.com]25", TP_ESYNTAX, 0, "garbage after \"]\"", NULL, 0, 0, 0 },
	{ "[ipv6:192.0.2.1]", TP_ESYNTAX, 0, "malformed IPv6 address", NULL, 0, 0, 0 },
	{ "[ipv6:mx.example.com]", TP_ESYNTAX, 0, "malformed IPv6 address", NULL, 0, 0, 0 },
	{ "2001:db8::1", TP_ESYNTAX, 0, "", NULL, 0, 0, 0 },
	{ "example.com:+25", TP_ESYNTAX, 0, "bad port", NULL, 0, 0, 0 },
	{ "example.com:0", TP_ESYNTAX, 0, "bad port", NULL, 0, 0, 0 },
	{ "example.com:65536", TP_ESYNTAX, 0, "bad port", NULL, 0, 0, 0 },
	{ "example.com:nosuchservice", TP_ESYNTAX, 0, "bad port", NULL, 0, 0, 0 },
	{ ":25", TP_ESYNTAX, 0, "missing host", NULL, 0, 0, 0 },
	{ "[]:25", TP_ESYNTAX, 0, "missing host", NULL, 0, 0, 0 },
	{ "qu\\ote.test", TP_ESYNTAX, 0, "bad character", NULL, 0, 0, 0 },
	{ "mx..example", TP_ESYNTAX, 0, "empty label", NULL, 0, 0, 0 },
	{ "-mx.example", TP_ESYNTAX, 0, "'-'", NULL, 0, 0, 0 },
	{ "10.1", TP_ESYNTAX, 0, "numeric host name", NULL, 0, 0, 0 },
	{ "bad\xff" "utf8.example", TP_ESYNTAX, 0, "internationalised", NULL, 0, 0, 0 },
};

static void
test_nexthop__every_form_postfix_reads(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct nh_case *c = &cases[i];
		tp_diag diag = TP_DIAG_INIT;
		tp_nexthop nh;
		int rc = tp_nexthop_parse(&nh, c->key, &diag);

		if (rc != c->want_rc)
			fail_msg("\"%s\": got rc %d (%s), want %d", c->key, rc, diag.message,
				 c->want_rc);
		if (rc != 0) {
			if (strstr(diag.message, c->host) == NULL)
				fail_msg("\"%s\": got error \"%s\", want \"...%s...\"", c->key,
					 diag.message, c->host);
			continue;
		}
		if (nh.kind != c->kind || strcmp(nh.host, c->host) != 0 ||
		    strcmp(nh.ascii, c->ascii) != 0 || nh.port != c->port ||
		    nh.port_given != c->port_given || nh.family != c->family)
			fail_msg("\"%s\": got kind %d host \"%s\" ascii \"%s\" port %u%s family %d, "
				 "want kind %d host \"%s\" ascii \"%s\" port %u%s family %d",
				 c->key, nh.kind, nh.host, nh.ascii, nh.port,
				 nh.port_given ? " (given)" : "", nh.family, c->kind, c->host,
				 c->ascii, c->port, c->port_given ? " (given)" : "", c->family);
	}
}

static void
test_nexthop__a_null_diag_is_fine_and_errors_name_the_key(void **state)
{
	tp_diag diag = TP_DIAG_INIT;
	tp_nexthop nh;

	(void)state;
	assert_int_equal(tp_nexthop_parse(&nh, "[x", NULL), TP_ESYNTAX);
	assert_int_equal(tp_nexthop_parse(&nh, NULL, &diag), TP_ESYNTAX);
	assert_int_equal(tp_nexthop_parse(&nh, "[mx.example.com]junk", &diag), TP_ESYNTAX);
	assert_non_null(strstr(diag.message, "[mx.example.com]junk"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nexthop__every_form_postfix_reads),
		cmocka_unit_test(test_nexthop__a_null_diag_is_fine_and_errors_name_the_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
