/* HOST[:PORT] parsing: the forms tlspolicy(1) takes, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "hostport.h"

static const struct hp_case {
	const char *input;
	int want_rc;
	const char *want_host;	/* or a fragment of the error */
	unsigned int want_port;
	int want_family;
} cases[] = {
	{ "mx.example.com", 0, "mx.example.com", 25, AF_UNSPEC },
	{ "mx.example.com:587", 0, "mx.example.com", 587, AF_UNSPEC },
	{ "MX.Example.COM.", 0, "MX.Example.COM", 25, AF_UNSPEC },
	{ "192.0.2.1:25", 0, "192.0.2.1", 25, AF_INET },
	{ "192.0.2.1", 0, "192.0.2.1", 25, AF_INET },
	{ "[192.0.2.1]:2525", 0, "192.0.2.1", 2525, AF_INET },
	{ "[2001:db8::1]:25", 0, "2001:db8::1", 25, AF_INET6 },
	{ "[2001:db8::1]", 0, "2001:db8::1", 25, AF_INET6 },
	{ "[::1]:65535", 0, "::1", 65535, AF_INET6 },
	{ "2001:db8::1", 0, "2001:db8::1", 25, AF_INET6 },
	{ "[mx.example.com]:25", 0, "mx.example.com", 25, AF_UNSPEC },
	{ "localhost", 0, "localhost", 25, AF_UNSPEC },
	{ "_smtp.x-y.example", 0, "_smtp.x-y.example", 25, AF_UNSPEC },
	{ "", TP_ESYNTAX, "empty host", 0, 0 },
	{ ":25", TP_ESYNTAX, "empty host", 0, 0 },
	{ "mx:", TP_ESYNTAX, "bad port", 0, 0 },
	{ "mx:0", TP_ESYNTAX, "bad port", 0, 0 },
	{ "mx:65536", TP_ESYNTAX, "bad port", 0, 0 },
	{ "mx:123456", TP_ESYNTAX, "bad port", 0, 0 },
	{ "mx:smtp", TP_ESYNTAX, "bad port", 0, 0 },
	{ "mx:+25", TP_ESYNTAX, "bad port", 0, 0 },
	{ "2001:db8::1:25x", TP_ESYNTAX, "needs brackets", 0, 0 },
	{ "[2001:db8::1", TP_ESYNTAX, "missing ']'", 0, 0 },
	{ "[2001:db8::1]25", TP_ESYNTAX, "expected ':PORT'", 0, 0 },
	{ "[]:25", TP_ESYNTAX, "empty host", 0, 0 },
	{ "mx..example", TP_ESYNTAX, "empty label", 0, 0 },
	{ ".example", TP_ESYNTAX, "empty label", 0, 0 },
	{ "-mx.example", TP_ESYNTAX, "'-'", 0, 0 },
	{ "mx-.example", TP_ESYNTAX, "'-'", 0, 0 },
	{ "mx example", TP_ESYNTAX, "bad character", 0, 0 },
	{ "mx\r\nQUIT", TP_ESYNTAX, "bad character", 0, 0 },
	{ "10.1", TP_ESYNTAX, "bad IPv4 address", 0, 0 },
	{ "256.1.1.1", TP_ESYNTAX, "bad IPv4 address", 0, 0 },
	{ "[fe80::1%eth0]:25", TP_ESYNTAX, "bad character", 0, 0 },
	{ "a234567890123456789012345678901234567890123456789012345678901234.x",
	  TP_ESYNTAX, "longer than 63", 0, 0 },
};

static void
test_hostport__table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hp_case *c = &cases[i];
		tp_diag diag = TP_DIAG_INIT;
		tp__hostport hp;
		int rc = tp__hostport_parse(&hp, c->input, &diag);

		if (rc != c->want_rc)
			fail_msg("\"%s\": got rc %d (%s), want %d", c->input, rc,
				 diag.message, c->want_rc);
		if (rc != 0) {
			if (strstr(diag.message, c->want_host) == NULL)
				fail_msg("\"%s\": got error \"%s\", want it to say \"%s\"",
					 c->input, diag.message, c->want_host);
			continue;
		}
		if (strcmp(hp.host, c->want_host) != 0 || hp.port != c->want_port ||
		    hp.family != c->want_family)
			fail_msg("\"%s\": got host \"%s\" port %u family %d, "
				 "want \"%s\" %u %d", c->input, hp.host, hp.port,
				 hp.family, c->want_host, c->want_port, c->want_family);
	}
}

static void
test_hostport__names_up_to_253_bytes(void **state)
{
	char name[300];
	tp__hostport hp;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	assert_int_equal(tp__hostport_parse(&hp, name, &diag), 0);
	assert_int_equal(strlen(hp.host), 253);
	name[253] = 'a';
	name[254] = '\0';
	assert_int_equal(tp__hostport_parse(&hp, name, &diag), TP_ESYNTAX);
	assert_non_null(strstr(diag.message, "longer than 253"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostport__table),
		cmocka_unit_test(test_hostport__names_up_to_253_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
