/*
 * Trust policies as rotate --trust and check --trust take them: the
 * items, hold= durations and their units, and every way a policy can be
 * wrong, each refused with a message naming what to say instead. (What
 * the evidence is for real certificates is tested against live servers
 * in tests/cli/trust.sh.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tlspolicy.h"

static const struct policy_case {
	const char *list;
	int want_rc;
	unsigned int flags;
	double hold_seconds;
	const char *error;	/* a fragment of the message */
} cases[] = {
	{ TP_TRUST_DEFAULT, 0, TP_TRUST_SAME_KEY | TP_TRUST_PKIX | TP_TRUST_DANE, 0, NULL },
	{ "tofu", 0, TP_TRUST_TOFU, 0, NULL },
	{ "same-key, hold=7d", 0, TP_TRUST_SAME_KEY | TP_TRUST_HOLD, 7 * 86400, NULL },
	{ "hold=90", 0, TP_TRUST_HOLD, 90, NULL },
	{ "hold=30m", 0, TP_TRUST_HOLD, 1800, NULL },
	{ "hold=12h", 0, TP_TRUST_HOLD, 43200, NULL },
	{ "hold=2w", 0, TP_TRUST_HOLD, 14 * 86400, NULL },
	{ "pkix,,dane,", 0, TP_TRUST_PKIX | TP_TRUST_DANE, 0, NULL },
	{ "", TP_EINVALID, 0, 0, "empty" },
	{ ",", TP_EINVALID, 0, 0, "empty" },
	{ "sometimes", TP_EINVALID, 0, 0, "unknown item \"sometimes\"" },
	{ "PKIX", TP_EINVALID, 0, 0, "unknown item" },
	{ "same-keys", TP_EINVALID, 0, 0, "unknown item" },
	{ "hold", TP_EINVALID, 0, 0, "unknown item" },
	{ "hold=", TP_EINVALID, 0, 0, "unknown item" },
	{ "hold=soon", TP_EINVALID, 0, 0, "bad duration \"soon\"" },
	{ "hold=0", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=-1d", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=1.5d", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=1e9", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=0x10", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=7dd", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=7y", TP_EINVALID, 0, 0, "bad duration" },
	{ "hold=11000d", TP_EINVALID, 0, 0, "at most ten years" },
	{ "hold=999999999999999d", TP_EINVALID, 0, 0, "bad duration" },
};

static void
test_policies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct policy_case *c = &cases[i];
		tp_trust_policy p;
		tp_diag diag = TP_DIAG_INIT;
		int rc = tp_trust_policy_parse(&p, c->list, &diag);

		if (rc != c->want_rc)
			fail_msg("\"%s\": rc %d, want %d (%s)", c->list, rc, c->want_rc, diag.message);
		if (rc != 0) {
			if (strstr(diag.message, c->error) == NULL)
				fail_msg("\"%s\": message \"%s\" lacks \"%s\"", c->list, diag.message, c->error);
			continue;
		}
		if (p.flags != c->flags || p.hold_seconds != c->hold_seconds)
			fail_msg("\"%s\": flags %#x hold %g, want %#x hold %g", c->list, p.flags,
				 p.hold_seconds, c->flags, c->hold_seconds);
	}
}

/* NULL is no policy, not the default: a caller must say what it trusts. */
static void
test_null(void **state)
{
	tp_trust_policy p;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_trust_policy_parse(&p, NULL, &diag), TP_EINVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
