/*
 * Fuzz target: tp_policy_parse_for() on arbitrary bytes, as three Postfix
 * versions read them. Besides memory safety, checks what callers rely
 * on: a policy always comes back, every pin is in canonical form, and an
 * accepted fingerprint entry without a usable pin carries a warning.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(tp_policy *p, int rc)
{
	char again[TP_FINGERPRINT_MAX];
	const char *name, *value;

	if (p == NULL)
		abort();
	if (rc != 0 && rc != TP_EINVALID)
		abort();
	for (size_t i = 0; i < tp_policy_pin_count(p); i++) {
		const char *pin = tp_policy_pin_at(p, i);

		if (tp_pin_normalize(again, pin, NULL) != 0 || strcmp(again, pin) != 0)
			abort();
	}
	for (size_t i = 0; i < tp_policy_attr_count(p); i++)
		if (tp_policy_attr_at(p, i, &name, &value) != 0
		    || tp_policy_attr(p, name) == NULL)
			abort();
	for (size_t i = 0; i < tp_policy_warning_count(p); i++)
		if (tp_policy_warning_at(p, i) == NULL)
			abort();
	if (rc == 0 && tp_policy_level(p) == TP_LEVEL_UNKNOWN)
		abort();
	/*
	 * Postfix can accept a fingerprint entry none of whose pins we can
	 * normalise (pre-3.6 text pins, pins longer than any digest): then
	 * the admin must at least be warned that nothing will ever match.
	 */
	if (rc == 0 && tp_policy_level(p) == TP_LEVEL_FINGERPRINT
	    && tp_policy_pin_count(p) == 0 && tp_policy_warning_count(p) == 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const versions[] = { NULL, "3.7.11", "3.5.0" };

	for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
		tp_policy *p = NULL;
		tp_diag d = TP_DIAG_INIT;
		int rc = tp_policy_parse_for(&p, (const char *)data, size,
					     versions[v], &d);

		check(p, rc);
		tp_policy_free(p);
	}
	return 0;
}
