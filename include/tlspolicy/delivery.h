/*
 * NAME
 *	tlspolicy/delivery.h - what Postfix's SMTP client does for a policy key
 * SUMMARY
 *	The delivery model: for each policy key, the servers Postfix's
 *	smtp(8) would try, in its order and within its limits, probed with
 *	the settings it would use (tlspolicy/client.h), and the verdict of
 *	what they present against the pins Postfix would compare. check,
 *	rotate and set --fingerprint-from ask it, and so can any program:
 *	no Postfix rule lives in the command line tool.
 * DESCRIPTION
 *	A tp_delivery is one run over many keys: tp_delivery_new() with
 *	main.cf (NULL: Postfix's defaults) and opts (NULL:
 *	TP_DELIVERY_OPTS_INIT); tp_delivery_add() for each key;
 *	tp_delivery_run() once; then the results. Everything happens at
 *	once: all MX lookups, then all address lookups, then all probes
 *	(opts.jobs connections at a time), so a run takes about the
 *	slowest server's time, never the sum.
 *
 *	tp_delivery_add() takes the key (folded, as Postfix looks it up),
 *	the value Postfix finds for it (NULL: none; main.cf's
 *	smtp_tls_security_level then), and optional hints: hosts, the
 *	HOST:PORT list an entry's annotation records (used only when the
 *	key names no destination, as ".example.com" does; for any other key
 *	Postfix's own servers are probed and the recorded hosts are only
 *	compared with them), and wrappermode (the annotation's
 *	wrappermode=yes: the transport speaks SMTPS). A key that is no next
 *	hop (Postfix never looks it up) is taken, with no servers and that
 *	reason as its error. TP_EUSAGE after tp_delivery_run().
 *
 *	tp_delivery_run() finds every key's servers the way smtp_connect.c
 *	and smtp_addr.c do: a domain through its MX hosts (its own
 *	addresses without MX records; no MX lookup with DNS disabled),
 *	"[host]" through the host's addresses, an address as itself; A and
 *	AAAA per inet_protocols, from DNS or /etc/hosts per
 *	smtp_host_lookup; sorted by MX preference with
 *	smtp_address_preference, IPv4 and IPv6 balanced
 *	(smtp_balance_inet_protocols); the first smtp_mx_address_limit are
 *	tried. Where Postfix shuffles equal preferences
 *	(smtp_randomize_addresses) and the limit cuts such a group, its
 *	members are "maybe" tried. With opts.dane (options version 2), it
 *	also looks up the TLSA records of every server tried by name
 *	("_25._tcp.HOST") that DNSSEC names (as Postfix, RFC 7672 section
 *	2.2.1: not the hosts of an MX answer without the AD bit, nor a
 *	domain without MX records whose answers lack it); mx_secure and tlsa_secure say whether the MX and
 *	TLSA answers were DNSSEC-validated (the resolver's AD bit, trusted
 *	as Postfix trusts it at smtp_dns_support_level = dnssec). Then it
 *	probes every server that is or may be tried, each distinct
 *	conversation once; servers with validated TLSA records get
 *	OpenSSL's DANE check in the handshake, as Postfix's client does at
 *	the dane levels, and dane says whether a record matched. Version 1
 *	options keep working. It returns 0 when the run took place, whatever each
 *	key's outcome; TP_ENOMEM, TP_EIO (poll) or TP_EUSAGE (run twice)
 *	otherwise.
 *
 *	tp_delivery_key_at() gives key i's result (valid until
 *	tp_delivery_free()): the parsed next hop, the settings used, where
 *	the servers came from, why there are none (error), and the servers
 *	in Postfix's order. Each server says whether Postfix tries it, its
 *	probe result (NULL when not probed) and the outcome against the
 *	pins:
 *	  TP_OUTCOME_MATCH	a pin equals the leaf's certificate or
 *				public-key fingerprint (with raw public
 *				keys, only the public-key fingerprint)
 *	  TP_OUTCOME_MISMATCH	no pin matches: Postfix logs "Server
 *				certificate not verified" and tries the
 *				next server
 *	  TP_OUTCOME_TLS_FAILED	no TLS with Postfix's settings (STARTTLS not
 *				offered or refused, handshake failure):
 *				Postfix tries the next server
 *	  TP_OUTCOME_UNREACHABLE no answer, or no SMTP: nothing is known
 *	  TP_OUTCOME_NOT_PROBED	beyond smtp_mx_address_limit, or not at
 *				level fingerprint
 *
 *	tp_delivery_verdict() rates key i as a monitor should, with opts
 *	(NULL: TP_VERDICT_OPTS_INIT), into *out (free with
 *	tp_verdict_free()):
 *	  CRITICAL  Postfix would reject the entry; no pin has the
 *		    configured digest's length (none can ever match); no
 *		    server Postfix tries presents a pinned certificate
 *		    while one at least answered (the mail is deferred);
 *		    a pinned certificate expires within critical_days
 *	  WARNING   some servers Postfix tries match and some do not, or
 *		    could not be probed (some deliveries are slowed or
 *		    depend on which server answers); a pinned certificate
 *		    expires within warn_days or has expired (Postfix does
 *		    not check expiry at this level: expect a replacement);
 *		    a pin made with another digest beside good ones;
 *		    certificate pins with raw public keys
 *	  UNKNOWN   no server could be probed (DNS failure, no answer)
 *	  OK	    every server Postfix tries presents a pinned certificate
 *	The reasons say why, each with its own state, worst first. The
 *	caller may add reasons of its own (tp_verdict_add(): a stale
 *	database, a map answering first), which can only raise the state.
 *	Severity is CRITICAL > WARNING > UNKNOWN > OK (Nagios);
 *	tp_state_worse() compares, tp_state_name() names.
 */
#ifndef TLSPOLICY_DELIVERY_H
#define TLSPOLICY_DELIVERY_H

#include <time.h>

#include "client.h"
#include "common.h"
#include "config.h"
#include "nexthop.h"
#include "probe.h"
#include "resolver.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_delivery tp_delivery;

typedef struct tp_delivery_opts {
	unsigned int version;
	double timeout;		/* seconds per address; also the DNS deadline */
	unsigned int jobs;	/* connections at once; 0: 16 */
	const char *dns_servers; /* "ADDR[:PORT],..."; NULL: resolv.conf */
	tp_probe_trace_cb trace;
	void *trace_payload;
	tp_probe_progress_cb progress;
	void *progress_payload;
	const char *ehlo_name;	/* NULL: each key's smtp_helo_name */
	/* Version 2. */
	int dane;		/* look up TLSA records, check validated ones */
} tp_delivery_opts;

#define TP_DELIVERY_OPTS_VERSION 2
#define TP_DELIVERY_OPTS_INIT \
	{ TP_DELIVERY_OPTS_VERSION, 30.0, 16, NULL, NULL, NULL, NULL, NULL, NULL, 0 }

typedef struct tp_delivery_hints {
	unsigned int version;
	const char *const *hosts; /* HOST:PORT recorded with the pins */
	size_t host_count;
	int wrappermode;	/* SMTPS: TLS from the first byte */
} tp_delivery_hints;

#define TP_DELIVERY_HINTS_VERSION 1
#define TP_DELIVERY_HINTS_INIT { TP_DELIVERY_HINTS_VERSION, NULL, 0, 0 }

typedef enum tp_try {
	TP_TRY_YES = 0,		/* within smtp_mx_address_limit */
	TP_TRY_MAYBE = 1,	/* a shuffled group straddles the limit */
	TP_TRY_NO = 2		/* beyond the limit: Postfix never connects */
} tp_try;

typedef enum tp_outcome {
	TP_OUTCOME_NOT_PROBED = 0,
	TP_OUTCOME_MATCH = 1,
	TP_OUTCOME_MISMATCH = 2,
	TP_OUTCOME_TLS_FAILED = 3,
	TP_OUTCOME_UNREACHABLE = 4
} tp_outcome;

typedef struct tp_server {
	const char *host;	/* MX host, or the next hop's host */
	const char *address;	/* numeric; NULL when it did not resolve */
	unsigned int port;
	unsigned int preference; /* MX preference; 0 without MX */
	tp_try tried;
	const tp_probe_result *probe; /* NULL when not probed */
	tp_outcome outcome;
	const char *pin;	/* TP_OUTCOME_MATCH: the pin that matched */
	int by_pkey;		/* ... as a public-key fingerprint */
	const char *error;	/* why not probed or not reachable; NULL */
	/* DANE: the server's TLSA records, looked up with opts.dane. */
	int tlsa_secure;	/* DNSSEC-validated (AD bit) */
	size_t tlsa_count;	/* records found */
	int dane;		/* a validated TLSA record matched in the handshake */
	const tp_tlsa_record *tlsa; /* the records */
	const char *tlsa_error;	/* the lookup failed, or was not made (an
				 * unvalidated MX answer named the host): why;
				 * NULL */
} tp_server;

typedef struct tp_delivery_key {
	const char *key;
	tp_nexthop nexthop;
	const tp_client_settings *settings;
	const char *servers_from; /* "MX", "host", "address", "recorded hosts" */
	const char *error;	/* why there are no servers; NULL */
	const tp_server *servers; /* in Postfix's order */
	size_t server_count;
	const char *const *recorded_unused; /* recorded hosts Postfix does not use */
	size_t recorded_unused_count;
	int mx_secure;		/* the MX lookup was DNSSEC-validated */
} tp_delivery_key;

typedef enum tp_state {
	TP_STATE_OK = 0,
	TP_STATE_WARNING = 1,
	TP_STATE_CRITICAL = 2,
	TP_STATE_UNKNOWN = 3
} tp_state;

typedef struct tp_reason {
	tp_state state;
	const char *text;
} tp_reason;

typedef struct tp_verdict {
	tp_state state;
	const tp_reason *reasons; /* worst first */
	size_t reason_count;
	size_t servers;		/* tried or maybe tried */
	size_t matched, mismatched, tls_failed, unreachable;
	time_t first_expiry;	/* earliest not_after of a matching leaf; 0 none */
} tp_verdict;

typedef struct tp_verdict_opts {
	unsigned int version;
	long warn_days;		/* default 30 */
	long critical_days;	/* default -1: never CRITICAL for expiry */
	time_t now;		/* 0: time(NULL) */
} tp_verdict_opts;

#define TP_VERDICT_OPTS_VERSION 1
#define TP_VERDICT_OPTS_INIT { TP_VERDICT_OPTS_VERSION, 30, -1, 0 }

TP_EXTERN(int) tp_delivery_new(tp_delivery **out, const tp_config *config,
			       const tp_delivery_opts *opts, tp_diag *diag);
TP_EXTERN(int) tp_delivery_add(size_t *out_index, tp_delivery *d,
			       const char *key, const char *value,
			       const tp_delivery_hints *hints, tp_diag *diag);
TP_EXTERN(int) tp_delivery_run(tp_delivery *d, tp_diag *diag);
TP_EXTERN(size_t) tp_delivery_count(const tp_delivery *d);
TP_EXTERN(const tp_delivery_key *) tp_delivery_key_at(const tp_delivery *d,
						      size_t i);
TP_EXTERN(void) tp_delivery_free(tp_delivery *d);

TP_EXTERN(int) tp_delivery_verdict(tp_verdict **out, const tp_delivery *d,
				   size_t i, const tp_verdict_opts *opts,
				   tp_diag *diag);
TP_EXTERN(int) tp_verdict_add(tp_verdict *v, tp_state state,
			      const char *text);
TP_EXTERN(void) tp_verdict_free(tp_verdict *v);
TP_EXTERN(int) tp_state_worse(tp_state a, tp_state b);
TP_EXTERN(const char *) tp_state_name(tp_state state);
TP_EXTERN(const char *) tp_outcome_name(tp_outcome outcome);

#ifdef __cplusplus
}
#endif

#endif
