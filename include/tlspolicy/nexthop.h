/*
 * NAME
 *	tlspolicy/nexthop.h - the next-hop destination a policy key names
 * SUMMARY
 *	A TLS policy key is the next-hop destination as Postfix's SMTP
 *	client looks it up: a recipient domain, or a transport or relayhost
 *	next hop written verbatim. tp_nexthop_parse() reads one the way
 *	Postfix's host_port() and smtp_connect.c read a destination, and
 *	says how Postfix finds its servers.
 * DESCRIPTION
 *	Forms, and what Postfix does with each (transport(5)):
 *	  example.com, example.com:587
 *		TP_NEXTHOP_DOMAIN: the MX hosts of the domain (its own
 *		addresses when it has no MX), on port 25 or the port given;
 *		with DNS lookups disabled in main.cf, the domain's addresses.
 *	  [mx.example.com], [mx.example.com]:587
 *		TP_NEXTHOP_HOST: the host's own addresses, no MX lookup.
 *	  [192.0.2.1], [192.0.2.1]:25, [ipv6:2001:db8::1]:25, [2001:db8::1]
 *		TP_NEXTHOP_ADDRESS: that address ("ipv6:" is RFC 5321's tag,
 *		any case). An unbracketed IPv4 address is an address too.
 *	  .example.com
 *		TP_NEXTHOP_PATTERN: a parent-domain pattern; it matches the
 *		next hops below example.com and names no destination itself.
 *	The port is decimal (1 to 65535) or one of Postfix's known service
 *	names (smtp 25, submission 587, smtps and submissions 465, lmtp 24);
 *	"host:" with nothing after the colon is the default port, 25.
 *
 *	host keeps the name as written (without brackets, "ipv6:" or a
 *	trailing dot); ascii is the same in A-label form ("xn--...") for
 *	DNS and SNI: an internationalised domain is converted with UTS #46
 *	(nontransitional), as Postfix's midna_domain does.
 *
 *	tp_nexthop_parse() returns 0, or TP_ESYNTAX with a one-line message
 *	naming the key and what is wrong (missing "]", garbage after "]",
 *	malformed IPv6 address, bad port, not a valid host name).
 */
#ifndef TLSPOLICY_NEXTHOP_H
#define TLSPOLICY_NEXTHOP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_nexthop_kind {
	TP_NEXTHOP_DOMAIN = 0,	/* MX lookup (when DNS is on) */
	TP_NEXTHOP_HOST = 1,	/* [name]: the host's addresses */
	TP_NEXTHOP_ADDRESS = 2,	/* an IP address */
	TP_NEXTHOP_PATTERN = 3	/* .example.com: names no destination */
} tp_nexthop_kind;

/* Long enough for a domain of U-labels (each up to 4 bytes a character). */
#define TP_NEXTHOP_HOST_MAX 1024
#define TP_NEXTHOP_ASCII_MAX 254

typedef struct tp_nexthop {
	tp_nexthop_kind kind;
	char host[TP_NEXTHOP_HOST_MAX];	/* as written, no brackets */
	char ascii[TP_NEXTHOP_ASCII_MAX]; /* A-label form; for an address, the address */
	unsigned int port;		/* 25 unless given */
	int port_given;
	int family;			/* 4 or 6 for an address, else 0 */
} tp_nexthop;

TP_EXTERN(int) tp_nexthop_parse(tp_nexthop *out, const char *key,
				tp_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
