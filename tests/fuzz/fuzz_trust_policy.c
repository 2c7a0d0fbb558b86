/*
 * Fuzz target: trust policies (tp_trust_policy_parse), as rotate --trust
 * and check --trust take them from the command line. A policy that
 * parses names at least one item, and a hold period that is positive and
 * bounded; a refusal says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	tp_trust_policy p;
	tp_diag diag = TP_DIAG_INIT;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (tp_trust_policy_parse(&p, s, &diag) != 0) {
		if (diag.message[0] == '\0')
			abort();
	} else if (p.flags == 0 ||
		   (p.flags & ~(unsigned int)(TP_TRUST_SAME_KEY | TP_TRUST_PKIX | TP_TRUST_DANE |
					      TP_TRUST_HOLD | TP_TRUST_TOFU)) != 0 ||
		   ((p.flags & TP_TRUST_HOLD) != 0) != (p.hold_seconds > 0) ||
		   p.hold_seconds > 10 * 366 * 86400.0) {
		abort();
	}
	free(s);
	return 0;
}
