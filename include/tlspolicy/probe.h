/*
 * NAME
 *	tlspolicy/probe.h - what an SMTP server presents after STARTTLS
 * SUMMARY
 *	A prober connects to every address of every target added, speaks
 *	SMTP up to STARTTLS, does the TLS handshake and records the chain
 *	the server presents with its fingerprints (computed as Postfix
 *	does, see fingerprint.h). All probes run at once, up to opts.jobs
 *	connections, in one poll() loop over non-blocking sockets in the
 *	calling thread.
 * DESCRIPTION
 *	tp_prober_new() makes a prober with a copy of opts (NULL: defaults,
 *	TP_PROBE_OPTS_INIT). TP_EUNSUPPORTED for a digest OpenSSL does not
 *	know, TP_EUSAGE for a negative timeout, a bad options version or a
 *	malformed opts.dns_servers, TP_ETLS when no TLS context can be made,
 *	TP_EDNS when the resolver cannot be set up. opts.dns_servers, when
 *	not NULL, is a comma-separated "ADDR[:PORT]" list of DNS servers
 *	used instead of /etc/resolv.conf (see tlspolicy/resolver.h).
 *
 *	Every connection is made the way Postfix's SMTP client makes it,
 *	with the settings of a tp_client_settings (tlspolicy/client.h): the
 *	SNI rule (none by default), protocols, cipher list, OpenSSL
 *	security level, groups, client certificate, EHLO name, address
 *	families and preference, and wrapper mode (TLS from the first byte,
 *	for SMTPS on port 465, instead of STARTTLS). opts.settings are the
 *	defaults; NULL means Postfix's built-in defaults for a next hop at
 *	level fingerprint (no main.cf).
 *
 *	tp_prober_add_target() adds a target described by t: a host name
 *	(every address is probed) or, with t->address, one numeric address
 *	connected to under that host name (what the delivery model does
 *	with the servers it has found); t->port (0: 25); t->settings (NULL:
 *	opts.settings) and t->nexthop (the next-hop domain, for SNI
 *	"nexthop"). The settings are read when the target is added; they
 *	need not outlive the call. With t->tlsa (target version 2), the
 *	server's TLSA records, the handshake also runs OpenSSL's DANE
 *	verification as Postfix's client does at the dane levels (RFC
 *	7672: usages DANE-TA(2) and DANE-EE(3) only, no name checks for
 *	DANE-EE, the host and the next hop as reference names for DANE-TA):
 *	the result's dane is 1 when a record matched, 0 when none did, -1
 *	when no record was usable (or none given). Give only records whose
 *	lookup was DNSSEC-validated: the probe takes them as they are. Then
 *	verified is DANE's verdict instead of the CA store's. The records
 *	are copied. TP_ESYNTAX for a malformed host or address, TP_EUSAGE
 *	for a bad t->version or after tp_prober_run().
 *
 *	tp_prober_add() adds a target, HOST[:PORT] as in "mx.example.com",
 *	"mx.example.com:587", "192.0.2.1:25", "[2001:db8::1]:25" (port 25
 *	by default), with the default settings, and stores its index (0, 1,
 *	... in the order added) in *out_index when out_index is not NULL.
 *	servername, when not NULL, is the TLS SNI name for this target,
 *	overriding opts.servername and the settings; otherwise SNI follows
 *	the settings (Postfix's default: none). TP_ESYNTAX for a malformed
 *	target, TP_EUSAGE after tp_prober_run().
 *
 *	tp_prober_run() resolves every target (every IPv4 and IPv6 address:
 *	/etc/hosts, then DNS through opts.dns_servers) and probes every
 *	address; it returns when all are done. The deadline of one address (opts.timeout, from its
 *	connect to QUIT) and of each step (opts.step_timeout) hold whatever
 *	the server does; an address waiting for a free job slot is not yet
 *	on the clock. Name resolution happens first, all names at once,
 *	within one step timeout (opts.step_timeout, else opts.timeout). It
 *	returns 0 when the run took place, whatever the outcome
 *	of each probe (see tp_probe_result.status): a negative status only
 *	for a failure of the run itself (TP_ENOMEM, TP_EIO from poll(),
 *	TP_EUSAGE when called twice).
 *
 *	tp_prober_result_count() and tp_prober_result() give the results,
 *	grouped by target in the order added, then in address order. Every
 *	target has at least one result: one with address NULL and status
 *	TP_EDNS when its name did not resolve. Results, and everything they
 *	point to, belong to the prober and live until tp_prober_free().
 *
 *	Each failed result has a one-line error naming host, address, port
 *	and step, e.g. "mx.example.com[192.0.2.1]:25: no STARTTLS in EHLO
 *	reply", with status TP_ECONNECT (refused, unreachable, closed by
 *	the peer), TP_ETIMEOUT, TP_EPROTOCOL (refusal or malformed reply),
 *	TP_ELIMIT (a reply line over 2048 bytes or a reply over 64 KB),
 *	TP_ETLS (handshake failure), TP_EDNS (resolution). tls_failed is set
 *	when the server answered but TLS could not be had with these
 *	settings: STARTTLS not offered or refused, a failed handshake, no
 *	certificate, settings Postfix cannot use (among them a source
 *	address that cannot be bound with smtp_bind_address_enforce =
 *	yes, which defers at any level). At a mandatory level
 *	Postfix defers the mail for such a server ("TLS is required, but
 *	was not offered", "Cannot start TLS: handshake failure"); the other
 *	failures say nothing about TLS. Text that comes from the server
 *	(replies, certificate names) is made valid UTF-8 without controls.
 *
 *	opts.trace, when set, receives one line per event, for -v: state
 *	transitions ("mx[192.0.2.1]:25: banner -> EHLO") and the SMTP
 *	dialogue ("<<< 220 ..." / ">>> EHLO ..."). It runs inside
 *	tp_prober_run() and must not call back into the prober.
 *
 *	opts.progress, when set, is called once per address (per result)
 *	when its result is final, with how many are final so far (done,
 *	1..total) and how many results the run has (total, known once the
 *	names are resolved): for a progress display. An address whose name
 *	did not resolve is final from the start. Like trace, it runs inside
 *	tp_prober_run() and must not call back into the prober, except
 *	to read the result it is given.
 *
 *	opts.version is TP_PROBE_OPTS_VERSION (3); a caller built with
 *	version 1 or 2 options (no progress fields, no settings) keeps
 *	working.
 *
 *	tp_prober_free() frees the prober and all results; NULL is fine.
 */
#ifndef TLSPOLICY_PROBE_H
#define TLSPOLICY_PROBE_H

#include <time.h>

#include "client.h"
#include "common.h"
#include "fingerprint.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_prober tp_prober;

typedef void (*tp_probe_trace_cb)(const char *line, void *payload);
struct tp_probe_result;
typedef void (*tp_probe_progress_cb)(const struct tp_probe_result *result,
				     size_t done, size_t total, void *payload);

typedef struct tp_probe_opts {
	unsigned int version;
	double timeout;		/* seconds for one address, connect to QUIT */
	double step_timeout;	/* seconds for one step; 0: same as timeout */
	const char *ehlo_name;	/* NULL: this host's FQDN */
	const char *servername;	/* SNI for every target; NULL: the settings' */
	const char *digest;	/* fingerprint digest; NULL: "sha256" */
	unsigned int jobs;	/* connections at once; 0: 16 */
	const char *ca_file;	/* for "verified"; NULL: system CA store */
	const char *ca_path;
	tp_probe_trace_cb trace;
	void *trace_payload;
	const char *dns_servers;	/* "ADDR[:PORT],..."; NULL: resolv.conf */
	/* Since version 2: */
	tp_probe_progress_cb progress;	/* one call per final result */
	void *progress_payload;
	/* Since version 3: */
	const tp_client_settings *settings; /* defaults for every target; NULL: Postfix's */
} tp_probe_opts;

#define TP_PROBE_OPTS_VERSION 3
#define TP_PROBE_OPTS_INIT \
	{ TP_PROBE_OPTS_VERSION, 30.0, 0.0, NULL, NULL, NULL, 16, NULL, NULL, \
	  NULL, NULL, NULL, NULL, NULL, NULL }

typedef struct tp_tlsa_record tp_tlsa_record; /* tlspolicy/resolver.h */

typedef struct tp_probe_target {
	unsigned int version;
	const char *host;	/* name (or address) of the server */
	const char *address;	/* numeric address to connect to; NULL: every address of host */
	unsigned int port;	/* 0: 25 */
	const tp_client_settings *settings; /* NULL: opts.settings */
	const char *nexthop;	/* next-hop domain, for SNI "nexthop" */
	/* Version 2: DANE. */
	const tp_tlsa_record *tlsa; /* the server's validated TLSA records */
	size_t tlsa_count;
} tp_probe_target;

#define TP_PROBE_TARGET_VERSION 2
#define TP_PROBE_TARGET_INIT { TP_PROBE_TARGET_VERSION, NULL, NULL, 0, NULL, NULL, NULL, 0 }

/* One certificate as the server presented it. */
typedef struct tp_probe_cert {
	const char *subject;	/* RFC 2253 form, e.g. "CN=mx.example.com,O=X" */
	const char *issuer;
	time_t not_before;
	time_t not_after;
	const unsigned char *der;
	size_t der_len;
	char fingerprint[TP_FINGERPRINT_MAX];	/* of the DER certificate */
	char pkey_fingerprint[TP_FINGERPRINT_MAX]; /* of the DER SubjectPublicKeyInfo */
} tp_probe_cert;

typedef struct tp_probe_result {
	size_t target;		/* index from tp_prober_add() */
	const char *target_spec; /* the HOST[:PORT] string added */
	const char *host;	/* without brackets */
	const char *address;	/* numeric; NULL when resolution failed */
	unsigned int port;
	const char *servername;	/* SNI sent; NULL when none */
	int status;		/* TP_OK or a negative tp_status */
	const char *error;	/* one line; "" when status is TP_OK */
	const char *step;	/* where it ended: "done", "banner", ... */
	double elapsed;		/* seconds from connect to the end */
	const char *tls_version; /* e.g. "TLSv1.3"; NULL before TLS */
	const char *cipher;
	const tp_probe_cert *chain; /* leaf first, as presented */
	size_t chain_len;
	/* For information only: Postfix's fingerprint level checks neither. */
	int verified;		/* chain verifies against the CA store */
	const char *verify_error; /* why not; "" when verified */
	int name_matches;	/* leaf matches the SNI name or host */
	/* Added last; results are the prober's, so older callers are fine. */
	int tls_failed;		/* answered, but no TLS with these settings */
	int wrappermode;	/* TLS from the first byte (SMTPS) */
	int dane;		/* TLSA records given: 1 matched, 0 not; -1 none usable */
} tp_probe_result;

TP_EXTERN(int) tp_prober_new(tp_prober **out, const tp_probe_opts *opts,
			     tp_diag *diag);
TP_EXTERN(int) tp_prober_add(size_t *out_index, tp_prober *prober,
			     const char *target, const char *servername,
			     tp_diag *diag);
TP_EXTERN(int) tp_prober_add_target(size_t *out_index, tp_prober *prober,
				    const tp_probe_target *t, tp_diag *diag);
TP_EXTERN(int) tp_prober_run(tp_prober *prober, tp_diag *diag);
TP_EXTERN(size_t) tp_prober_result_count(const tp_prober *prober);
TP_EXTERN(const tp_probe_result *) tp_prober_result(const tp_prober *prober,
						    size_t i);
TP_EXTERN(void) tp_prober_free(tp_prober *prober);

#ifdef __cplusplus
}
#endif

#endif
