/*
 * Fuzz target: a DNS answer as a TLSA lookup reads it. The input is the
 * whole message a server (or a spoofer) sends: header, question, answer
 * section with CNAME chains and compressed names. Checks that every
 * record found lies inside the message, that the names fit their
 * buffers, that TLSA RDATA decodes within its record, and that a query
 * for the name read back is well formed; aborts when one breaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tp__dns_answer a;
	unsigned char q[512];
	int rc = tp__dns_answer_parse(&a, data, size);

	if (rc != 0) {
		if (rc == TP_EPROTOCOL && a.why == NULL)
			abort();
		tp__dns_answer_dispose(&a);
		return 0;
	}
	if (strlen(a.qname) > TP_DNS_NAME_TEXT_MAX ||
	    strlen(a.owner) > TP_DNS_NAME_TEXT_MAX ||
	    a.cnames > TP_DNS_MAX_CNAMES || a.rcode > 15 || size < 12)
		abort();
	if (a.cnames == 0 && strcmp(a.qname, a.owner) != 0)
		abort();
	for (size_t i = 0; i < a.nrr; i++) {
		tp__dns_tlsa t;
		const char *why = NULL;

		if (a.rr[i].off > size || a.rr[i].len > size - a.rr[i].off)
			abort();
		if (tp__dns_tlsa_decode(&t, data + a.rr[i].off, a.rr[i].len, &why) == 0) {
			if (t.data != data + a.rr[i].off + 3 || t.len + 3 != a.rr[i].len ||
			    t.usage > 255 || t.selector > 255 || t.mtype > 255 ||
			    (t.mtype == 1 && t.len != 32) || (t.mtype == 2 && t.len != 64))
				abort();
		} else if (why == NULL) {
			abort();
		}
	}
	if (strchr(a.qname, '\\') == NULL) {
		size_t n = tp__dns_query_build(q, sizeof(q), a.qname, TP_DNS_T_TLSA, 1232, 1);

		/* Every name read back as plain text can be asked for again. */
		if (n < 12 + 1 + 4 + 11 || q[3] != 0x20 || q[5] != 1 || q[11] != 1)
			abort();
	}
	tp__dns_answer_dispose(&a);
	return 0;
}
