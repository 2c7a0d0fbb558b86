/*
 * Fuzz target: HOST[:PORT] parsing. Whatever parses must be usable as
 * is (a non-empty host of safe characters, a port in 1..65535) and must
 * parse to the same thing again when written back as HOST:PORT (or
 * [HOST]:PORT for IPv6).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hostport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[600], again[TP_HOST_MAX + 16];
	tp__hostport hp, hp2;
	tp_diag diag = TP_DIAG_INIT;

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (tp__hostport_parse(&hp, in, &diag) != 0) {
		if (diag.message[0] == '\0')
			abort();	/* every refusal says why */
		return 0;
	}
	if (hp.host[0] == '\0' || hp.port < 1 || hp.port > 65535 ||
	    strlen(hp.host) > TP_HOST_MAX)
		abort();
	for (const char *p = hp.host; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '[' || *p == ']' || *p == '%')
			abort();
	snprintf(again, sizeof(again), hp.family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 hp.host, hp.port);
	if (tp__hostport_parse(&hp2, again, &diag) != 0 ||
	    strcmp(hp.host, hp2.host) != 0 || hp.port != hp2.port ||
	    hp.family != hp2.family)
		abort();
	return 0;
}
