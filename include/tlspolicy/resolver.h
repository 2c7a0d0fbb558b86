/*
 * NAME
 *	tlspolicy/resolver.h - MX, address and TLSA lookups for policy keys
 * SUMMARY
 *	A resolver looks up many names at once: the MX hosts of bare
 *	domain keys (what rotate and check probe when an entry records no
 *	host), the addresses of host names, and the TLSA records of SMTP
 *	servers (DANE, RFC 7672), each with whether the resolver vouched
 *	for the answer with the DNSSEC AD bit. It uses c-ares with its
 *	own poll() loop in the calling thread, and the DNS servers of
 *	/etc/resolv.conf or those named in opts.servers (which is how the
 *	tests point it at their loopback DNS server: they never use real
 *	DNS).
 * DESCRIPTION
 *	tp_resolver_new() makes a resolver with a copy of opts (NULL:
 *	TP_RESOLVER_OPTS_INIT). opts.servers, when not NULL, is a
 *	comma-separated list of "ADDR[:PORT]" ("127.0.0.1:5353",
 *	"[::1]:5353", port 53 by default) used instead of the system's
 *	servers. opts.timeout bounds the whole of tp_resolver_run(), all
 *	lookups together. opts.max_hosts caps the MX hosts kept per domain
 *	(0: TP_RESOLVER_MAX_HOSTS). opts.lookups says where host addresses
 *	come from, in order: 'f' /etc/hosts, 'b' DNS ("fb" by default, as
 *	Postfix's smtp_host_lookup = native; "b" is smtp_host_lookup = dns,
 *	"bf" is "dns, native"). Version 1 options (without lookups) are
 *	accepted. TP_EUSAGE for a bad server list or lookups string, a
 *	timeout <= 0 or a bad options version; TP_EDNS when c-ares cannot
 *	be set up (e.g. no usable resolver configuration).
 *
 *	tp_resolver_add_mx() adds a mail domain (a bare domain key:
 *	"example.com"; a trailing dot is accepted and dropped) and stores
 *	its index (0, 1, ... in the order of all adds) in *out_index when
 *	not NULL. A key starting with '.' (".example.com") is a Postfix
 *	parent-domain pattern that matches the subdomains' next hops; it
 *	names no destination, so it has no MX hosts to look up:
 *	TP_EUSAGE, ".example.com: pattern, not a destination". Callers
 *	(rotate, check) need a recorded host (the from= annotation) for
 *	such an entry and should report it as unresolvable otherwise.
 *	tp_resolver_add_host() adds a host name whose IPv4 and IPv6
 *	addresses are wanted (/etc/hosts first, then DNS, as
 *	getaddrinfo); an IP address literal is its own address. Both:
 *	TP_ESYNTAX for something that is not a DNS name (empty, a label
 *	over 63 bytes, a name over 253, a byte other than letter, digit,
 *	'-', '_', '.'; internationalised names must be given in their
 *	A-label form, "xn--..."), TP_EUSAGE after tp_resolver_run().
 *
 *	tp_resolver_run() runs every lookup concurrently and returns when
 *	all are done or opts.timeout has passed, so the run takes about
 *	the slowest server's time, never the sum. It returns 0 when the
 *	run took place, whatever the outcome of each lookup (see
 *	tp_resolve_result.status); a negative status only for a failure
 *	of the run itself (TP_ENOMEM, TP_EIO from poll(), TP_EUSAGE when
 *	called twice).
 *
 *	For an MX lookup, the hosts are the MX targets sorted by
 *	preference, ties in the order the server gave them, a name in two
 *	records kept twice (smtp(8) looks it up for each, and its addresses
 *	count twice against smtp_mx_address_limit), at most max_hosts of
 *	the most preferred (omitted says how many more there were). When the domain has no MX records but has
 *	A or AAAA records, the one host is the domain itself with
 *	preference 0 and implicit set (RFC 5321 section 5.1). Errors, each
 *	a one-line message naming the domain, status TP_EDNS unless said:
 *	  "example.com: null MX: the domain accepts no mail" (any MX "."
 *	    in the answer, with other MX records or not, as Postfix's
 *	    dns_get_answer() has it)
 *	  "example.com: MX lookup failed: malformed domain name in MX
 *	    record: NAME" (every target is one Postfix's valid_rr_name()
 *	    refuses; such targets among good ones are dropped)
 *	  "example.com: no MX, A or AAAA records"
 *	  "example.com: no such domain (NXDOMAIN)"
 *	  "example.com: MX lookup failed: DNS server failure (SERVFAIL)"
 *	  "example.com: MX lookup timed out after 5s" (TP_ETIMEOUT)
 *	  "example.com: MX lookup failed: <c-ares reason>"
 *	MX host names are lower-cased, without a trailing dot; their
 *	addresses are not looked up: add them as
 *	hosts, or give them to the probe engine.
 *
 *	For a host lookup, addresses holds its numeric addresses
 *	(duplicates dropped); errors read "mx.example.com: address lookup
 *	failed: ...", "mx.example.com: address lookup timed out after 5s".
 *
 *	tp_resolver_add_tlsa() adds a TLSA lookup for the SMTP server host
 *	on TCP port (RFC 7672 section 2.2.3: "_25._tcp.mx.example.com"; the
 *	result's name is that query name). TP_EUSAGE for an IP address
 *	(it has no TLSA records), a port outside 1..65535 or after
 *	tp_resolver_run(); TP_ESYNTAX as for the other adds. CNAMEs are
 *	followed as a resolver does: the records are those of the name at
 *	the end of the chain, which is owner (the query name itself when
 *	there is no CNAME). tlsa[0..tlsa_count-1] are the records in the
 *	order of the answer, data the association data (a certificate or
 *	public key, or its SHA2-256 or SHA2-512 digest), usage, selector
 *	and mtype as published: records with values this library does not
 *	know are kept, for the caller to decide what it can use (RFC 7671
 *	section 5). Malformed records (RDATA shorter than 3 bytes, no
 *	association data, a digest whose length does not fit matching type
 *	1 or 2) are skipped and counted in tlsa_skipped. No records (NODATA)
 *	and no such name (NXDOMAIN) are not errors: status TP_OK with
 *	tlsa_count 0, and secure says whether that denial was validated.
 *	Errors: "_25._tcp.mx.example.com: TLSA lookup failed: DNS server
 *	failure (SERVFAIL)" (also REFUSED and the other rcodes), "...: TLSA
 *	lookup failed: malformed reply (what)", "...: TLSA lookup timed out
 *	after 5s" (TP_ETIMEOUT); status TP_EDNS unless said.
 *
 *	DNSSEC: every MX, implicit-MX address and TLSA query sets the AD bit
 *	in its header and carries an EDNS0 OPT record with the DO bit, as
 *	Postfix asks at smtp_dns_support_level = dnssec, and secure is the
 *	AD bit of the answer that decided the result: for MX hosts, of the
 *	MX answer; for an implicit MX, of the MX answer (no MX records) and
 *	both the A and AAAA answers; for TLSA, of the TLSA answer, for
 *	NODATA and NXDOMAIN too. The library does not check signatures: it
 *	trusts the AD bit of the configured resolver, as Postfix does, so
 *	that resolver must validate and be reached over a trusted path (a
 *	validating resolver on the same host). A failed lookup has secure
 *	0. Host lookups go through getaddrinfo-style resolution
 *	(/etc/hosts first), which does not show the AD bit: their secure
 *	is always 0. The implicit-MX check is a DNS lookup of its own (it
 *	does not consult /etc/hosts).
 *
 *	tp_resolver_result_count() and tp_resolver_result() give the
 *	results, one per add, in the order added. Results and everything
 *	they point to belong to the resolver and live until
 *	tp_resolver_free(), which accepts NULL.
 */
#ifndef TLSPOLICY_RESOLVER_H
#define TLSPOLICY_RESOLVER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_resolver tp_resolver;

typedef struct tp_resolver_opts {
	unsigned int version;
	double timeout;		/* seconds for the whole run */
	const char *servers;	/* "ADDR[:PORT],..."; NULL: /etc/resolv.conf */
	unsigned int max_hosts;	/* MX hosts kept per domain; 0: 64 */
	/* Since version 2: */
	const char *lookups;	/* host lookups: "fb" (default), "b", "bf" */
} tp_resolver_opts;

#define TP_RESOLVER_OPTS_VERSION 2
#define TP_RESOLVER_OPTS_INIT { TP_RESOLVER_OPTS_VERSION, 10.0, NULL, 0, NULL }
#define TP_RESOLVER_MAX_HOSTS 64

typedef enum tp_resolve_kind {
	TP_RESOLVE_MX = 1,	/* tp_resolver_add_mx() */
	TP_RESOLVE_HOST = 2,	/* tp_resolver_add_host() */
	TP_RESOLVE_TLSA = 3	/* tp_resolver_add_tlsa() */
} tp_resolve_kind;

/* One TLSA record (RFC 6698 section 2.1), owned by the resolver. */
typedef struct tp_tlsa_record {
	unsigned int usage;	/* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
	unsigned int selector;	/* 0 certificate, 1 SubjectPublicKeyInfo */
	unsigned int mtype;	/* 0 full, 1 SHA2-256, 2 SHA2-512 */
	const unsigned char *data;
	size_t len;
} tp_tlsa_record;

typedef struct tp_mx_host {
	const char *name;	/* "mx1.example.com" */
	unsigned int preference;
} tp_mx_host;

typedef struct tp_resolve_result {
	size_t index;		/* from tp_resolver_add_*() */
	tp_resolve_kind kind;
	const char *name;	/* as added, without a trailing dot */
	int status;		/* TP_OK or a negative tp_status */
	const char *error;	/* one line; "" when status is TP_OK */
	/* TP_RESOLVE_MX */
	const tp_mx_host *hosts; /* by preference */
	size_t host_count;
	size_t omitted;		/* MX hosts beyond max_hosts, dropped */
	int implicit;		/* no MX: the domain itself (RFC 5321 5.1) */
	/* TP_RESOLVE_HOST */
	const char *const *addresses; /* numeric IPv4/IPv6 */
	size_t address_count;
	/* Added with TLSA (appended: results are library-allocated). */
	int secure;		/* the deciding answer had the AD bit */
	/* TP_RESOLVE_TLSA */
	const tp_tlsa_record *tlsa; /* in answer order */
	size_t tlsa_count;
	size_t tlsa_skipped;	/* malformed records, not in tlsa */
	const char *owner;	/* the records' name, after CNAMEs; else NULL */
} tp_resolve_result;

TP_EXTERN(int) tp_resolver_new(tp_resolver **out, const tp_resolver_opts *opts,
			       tp_diag *diag);
TP_EXTERN(int) tp_resolver_add_mx(size_t *out_index, tp_resolver *resolver,
				  const char *domain, tp_diag *diag);
TP_EXTERN(int) tp_resolver_add_host(size_t *out_index, tp_resolver *resolver,
				    const char *host, tp_diag *diag);
TP_EXTERN(int) tp_resolver_add_tlsa(size_t *out_index, tp_resolver *resolver,
				    const char *host, unsigned int port,
				    tp_diag *diag);
TP_EXTERN(int) tp_resolver_run(tp_resolver *resolver, tp_diag *diag);
TP_EXTERN(size_t) tp_resolver_result_count(const tp_resolver *resolver);
TP_EXTERN(const tp_resolve_result *) tp_resolver_result(
	const tp_resolver *resolver, size_t i);
TP_EXTERN(void) tp_resolver_free(tp_resolver *resolver);

#ifdef __cplusplus
}
#endif

#endif
