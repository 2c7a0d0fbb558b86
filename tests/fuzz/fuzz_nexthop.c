/*
 * Fuzz target: policy keys read as next hops (tp_nexthop_parse) and
 * protocol lists (tp_client_protocols_parse). A key that parses must be
 * usable as is (an A-label host of safe characters, a port in 1..65535)
 * and parse to the same next hop when written back in its canonical
 * form; a refusal says why. A protocol list that parses gives an
 * exclusion mask of known protocols only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_key(const char *in)
{
	tp_nexthop nh, again;
	tp_diag diag = TP_DIAG_INIT;
	char text[TP_NEXTHOP_HOST_MAX + 32];

	if (tp_nexthop_parse(&nh, in, &diag) != 0) {
		if (diag.message[0] == '\0')
			abort();	/* every refusal says why */
		return;
	}
	if (nh.port < 1 || nh.port > 65535 || nh.ascii[0] == '\0' ||
	    strlen(nh.ascii) > 253 || (nh.kind == TP_NEXTHOP_ADDRESS) != (nh.family != 0))
		abort();
	for (const char *p = nh.ascii; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '[' || *p == ']')
			abort();
	switch (nh.kind) {
	case TP_NEXTHOP_DOMAIN:
		snprintf(text, sizeof(text), "%s:%u", nh.host, nh.port);
		break;
	case TP_NEXTHOP_HOST:
		snprintf(text, sizeof(text), "[%s]:%u", nh.host, nh.port);
		break;
	case TP_NEXTHOP_ADDRESS:
		snprintf(text, sizeof(text), nh.family == 6 ? "[ipv6:%s]:%u" : "[%s]:%u",
			 nh.host, nh.port);
		break;
	case TP_NEXTHOP_PATTERN:
		snprintf(text, sizeof(text), ".%s", nh.host);
		break;
	}
	if (tp_nexthop_parse(&again, text, &diag) != 0 || again.kind != nh.kind ||
	    strcmp(again.ascii, nh.ascii) != 0 ||
	    (nh.kind != TP_NEXTHOP_PATTERN && again.port != nh.port))
		abort();
}

static void
check_protocols(const char *in)
{
	unsigned int excluded = 0;
	int min = 0, max = 0;

	if (tp_client_protocols_parse(in, &excluded, &min, &max) == 0 &&
	    (excluded & ~0x3fu) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[2048];

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	check_key(in);
	check_protocols(in);
	return 0;
}
