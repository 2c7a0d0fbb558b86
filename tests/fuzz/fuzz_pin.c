/*
 * Fuzz target: tp_pin_normalize() and tp_pin_digest() on arbitrary bytes
 * (up to the first NUL). Checks that the canonical form is a fixed
 * point, keeps the digest inferred from the length, and fits its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pin = malloc(size + 1);
	char out[TP_FINGERPRINT_MAX], again[TP_FINGERPRINT_MAX];
	tp_diag d = TP_DIAG_INIT;
	const char *digest;

	if (pin == NULL)
		return 0;
	memcpy(pin, data, size);
	pin[size] = '\0';
	digest = tp_pin_digest(pin);
	if (tp_pin_normalize(out, pin, &d) == 0) {
		size_t len = strlen(out);

		if (len == 0 || len >= TP_FINGERPRINT_MAX || (len + 1) % 3 != 0)
			abort();
		if (tp_pin_normalize(again, out, NULL) != 0 || strcmp(again, out) != 0)
			abort();
		if (tp_pin_digest(out) != digest)
			abort();
		if (digest && tp_digest_size(digest) != (len + 1) / 3)
			abort();
	} else {
		if (digest != NULL || (d.status != TP_ESYNTAX && d.status != TP_ELIMIT)
		    || strncmp(d.message, "malformed fingerprint \"", 23) != 0)
			abort();
	}
	free(pin);
	return 0;
}
