/*
 * NAME
 *	hostport - parse HOST[:PORT] probe targets (internal)
 * SUMMARY
 *	The forms tlspolicy(1) takes for a host: "mx.example.com",
 *	"mx.example.com:587", "192.0.2.1:25", "[2001:db8::1]:25", "[mx.example.com]:25"; the
 *	port defaults to 25.
 * DESCRIPTION
 *	tp__hostport_parse() fills out from s and returns 0, or TP_ESYNTAX
 *	with a message naming s and what is wrong. out->host is the host
 *	without brackets and without a trailing dot; out->family is AF_INET
 *	or AF_INET6 for an IP address literal, AF_UNSPEC for a host name.
 *	A bare IPv6 address without brackets is accepted (port 25) when
 *	the whole string is one; otherwise a host name must be made of
 *	labels of letters, digits, '-' and '_' (1 to 63 bytes, not starting
 *	or ending with '-'), 253 bytes at most, and not be all digits and
 *	dots unless it is a dotted-quad IPv4 address (getaddrinfo would
 *	read "10.1" as 10.0.0.1). Ports are decimal, 1 to 65535.
 */
#ifndef TP_HOSTPORT_INTERNAL_H
#define TP_HOSTPORT_INTERNAL_H

#include "tlspolicy/common.h"

#define TP_HOST_MAX 253

typedef struct tp__hostport {
	char host[TP_HOST_MAX + 1];
	unsigned int port;
	int family;		/* AF_INET, AF_INET6, or AF_UNSPEC for a name */
} tp__hostport;

int tp__hostport_parse(tp__hostport *out, const char *s, tp_diag *diag);
/* A decimal port, 1 to 65535, of len bytes at p: 0, or -1. */
int tp__port_digits(unsigned int *out, const char *p, size_t len);
/*
 * What is wrong with name as a host name (labels of letters, digits, '-'
 * and '_', 1 to 63 bytes, not starting or ending with '-'; 253 bytes at
 * most), NULL when nothing; *all_numeric says whether it is digits and
 * dots only, which each caller judges (a bad IPv4 address, a numeric
 * name Postfix refuses).
 */
const char *tp__hostname_problem(const char *name, int *all_numeric);
/*
 * Postfix's valid_hostname(): labels of ASCII letters, digits, '_' and
 * inner '-', 63 bytes each, 255 in all, not all digits; with wildcard
 * (its DO_WILDCARD) the first label may be "*". Map keys, policy
 * attributes and MX targets are judged by it, so it is Postfix's to the
 * byte, not tp__hostname_problem()'s stricter rule for what we connect to.
 */
int tp__valid_hostname(const char *name, int wildcard);

#endif
