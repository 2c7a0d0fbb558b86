/*
 * NAME
 *	tlspolicy/trust.h - whether a new certificate may be pinned unattended
 * SUMMARY
 *	A pin is a trust decision. When a server Postfix tries presents a
 *	certificate its pins do not match (a candidate), this module
 *	gathers the evidence for it and applies a trust policy, so that an
 *	unattended rotate pins a renewal, a CA-vouched or DANE-vouched key,
 *	and never an attacker's self-signed one.
 * DESCRIPTION
 *	Evidence for a candidate (tp_evidence):
 *	  same_key    its public key is one the entry pins (pkey pins), one
 *		      recorded with the cert pins (the annotation's keys=),
 *		      or that of a certificate another server still presents
 *		      and the pins match: a renewal;
 *	  pkix	      the chain the server presented verifies against the CA
 *		      store (opts.ca_file/ca_path, else main.cf's
 *		      smtp_tls_CAfile/smtp_tls_CApath as Postfix loads
 *		      them, relative names from queue_directory, with
 *		      the system's for tls_append_default_CA = yes;
 *		      else the system's)
 *		      and the leaf is for the next hop as Postfix's secure
 *		      level matches (nexthop, dot-nexthop: the domain or a
 *		      name below it), or for the MX host when its MX lookup
 *		      was DNSSEC-validated (verify level with trusted DNS);
 *	  dane	      a DNSSEC-validated TLSA record of the server matched in
 *		      the handshake (OpenSSL's DANE, as Postfix matches),
 *		      never for the hosts of an MX answer that was not
 *		      DNSSEC-validated (RFC 7672 section 2.2.1);
 *	  consistent  every server Postfix tries presents it (a candidate
 *		      seen at one of two addresses may be a partial attack);
 *	  held	      it has been presented on every run since the
 *		      annotation's since= for at least the policy's hold
 *		      period (next= names the candidate being held);
 *	  accepted    the administrator named its fingerprint (--accept).
 *
 *	A trust policy (tp_trust_policy_parse()) is a comma-separated list
 *	of same-key, pkix, dane, hold=DURATION (seconds, or with a unit: 30m,
 *	12h, 7d) and tofu (trust on first use: anything). A candidate is
 *	trusted when it was accepted, or has the evidence of an item of the
 *	policy; hold= also needs it consistent. TP_TRUST_DEFAULT is
 *	"same-key,pkix,dane", what an unattended run must use unless tofu is
 *	named. TP_EINVALID for an unknown item or duration.
 *
 *	tp_trust_new() makes an evaluator with opts (NULL:
 *	TP_TRUST_OPTS_INIT), loading the CA store once for all keys;
 *	tp_trust_evaluate() gives the candidates of key i of a delivery run
 *	(tlspolicy/delivery.h), each once, in the order the servers present
 *	them, with the evidence and the decision; hints carry what the entry
 *	records (pin kind, keys=, next=/since=, the fingerprints accepted).
 *	why says, in one line, what made a candidate trusted, or why not and
 *	what to do ("confirm the fingerprint with the partner, then tlspolicy
 *	rotate KEY --accept FP"). all_pkix and all_dane advise: when every
 *	server probed is CA-valid for the next hop (the domain or a name
 *	below it, as smtp_tls_secure_cert_match; never the MX host's name),
 *	level secure would need no pins, if those CAs are the ones Postfix
 *	verifies with (ca_source: with no smtp_tls_CAfile or
 *	smtp_tls_CApath Postfix trusts no CA at all); when every one
 *	matches validated TLSA records, dane-only would not either.
 *	Results belong to *out; free with tp_trust_result_free().
 *	tp_trust_free() accepts NULL.
 */
#ifndef TLSPOLICY_TRUST_H
#define TLSPOLICY_TRUST_H

#include <time.h>

#include "common.h"
#include "delivery.h"
#include "fingerprint.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_TRUST_SAME_KEY 0x01
#define TP_TRUST_PKIX 0x02
#define TP_TRUST_DANE 0x04
#define TP_TRUST_HOLD 0x08
#define TP_TRUST_TOFU 0x10
#define TP_TRUST_DEFAULT "same-key,pkix,dane"

typedef struct tp_trust_policy {
	unsigned int flags;	/* TP_TRUST_* */
	double hold_seconds;	/* with TP_TRUST_HOLD */
} tp_trust_policy;

typedef struct tp_trust tp_trust;

/* Whose CAs the pkix evidence is weighed with (tp_trust_result's ca_source). */
typedef enum tp_ca_source {
	TP_CA_POSTFIX,		/* main.cf's smtp_tls_CAfile, smtp_tls_CApath:
				 * what Postfix's SMTP client verifies with */
	TP_CA_POSTFIX_AND_SYSTEM,	/* ... and the system's (tls_append_default_CA) */
	TP_CA_GIVEN,		/* opts' ca_file, ca_path */
	TP_CA_SYSTEM		/* main.cf names none: the system's, which
				 * Postfix's SMTP client then does not use */
} tp_ca_source;

typedef struct tp_trust_opts {
	unsigned int version;
	tp_trust_policy policy;
	const char *ca_file;	/* NULL: main.cf's smtp_tls_CAfile, else the system's */
	const char *ca_path;
	time_t now;		/* 0: time(NULL) */
} tp_trust_opts;

#define TP_TRUST_OPTS_VERSION 1
#define TP_TRUST_OPTS_INIT \
	{ TP_TRUST_OPTS_VERSION, { TP_TRUST_SAME_KEY | TP_TRUST_PKIX | TP_TRUST_DANE, 0 }, \
	  NULL, NULL, 0 }

typedef struct tp_trust_hints {
	unsigned int version;
	tp_pin_kind kind;	/* the entry's pin kind */
	const char *const *keys; /* recorded key ids (sha256 SPKI, or the pins' digest) */
	size_t key_count;
	const char *held;	/* next=: the candidate being held, or NULL */
	time_t held_since;	/* since= */
	const char *const *accepted; /* fingerprints the administrator named */
	size_t accepted_count;
} tp_trust_hints;

#define TP_TRUST_HINTS_VERSION 1
#define TP_TRUST_HINTS_INIT { TP_TRUST_HINTS_VERSION, TP_PIN_CERT, NULL, 0, NULL, 0, NULL, 0 }

typedef struct tp_evidence {
	int same_key;
	int pkix;
	const char *pkix_name;	/* the name the leaf is valid for */
	const char *pkix_why;	/* why not, e.g. "self-signed certificate" */
	int dane;
	const char *dane_why;	/* why not, e.g. "no DNSSEC-validated TLSA records" */
	int consistent;
	size_t seen_at;		/* servers presenting it */
	size_t servers;		/* servers probed with a certificate */
	int held;
	time_t seen_since;	/* held: since when; 0 when not held */
	int accepted;
} tp_evidence;

typedef struct tp_candidate {
	const char *fingerprint; /* of the pin kind, in the configured digest */
	const char *key_id;	/* sha256 of the SubjectPublicKeyInfo; NULL:
				 * unreadable here, so refused */
	const tp_probe_cert *leaf; /* as one server presented it */
	tp_evidence ev;
	int trusted;
	const char *why;
} tp_candidate;

typedef struct tp_trust_result {
	const tp_candidate *candidates;
	size_t count;
	/* Advice: of all the servers probed with a certificate, */
	int all_pkix;		/* each is CA-valid for the next hop: "secure" needs no pins */
	const char *pkix_name;	/* ... for this name */
	int all_dane;		/* each matches validated TLSA: "dane-only" needs no pins */
	tp_ca_source ca_source;	/* the CAs all_pkix counted: "secure" needs no pins
				 * only when they are Postfix's (TP_CA_POSTFIX*) */
} tp_trust_result;

TP_EXTERN(int) tp_trust_policy_parse(tp_trust_policy *out, const char *list,
				     tp_diag *diag);
TP_EXTERN(int) tp_trust_new(tp_trust **out, const tp_config *config,
			    const tp_trust_opts *opts, tp_diag *diag);
TP_EXTERN(int) tp_trust_evaluate(tp_trust_result **out, tp_trust *t,
				 const tp_delivery *d, size_t i,
				 const tp_trust_hints *hints, tp_diag *diag);
TP_EXTERN(void) tp_trust_result_free(tp_trust_result *result);
TP_EXTERN(void) tp_trust_free(tp_trust *t);

#ifdef __cplusplus
}
#endif

#endif
