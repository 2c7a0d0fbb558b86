/*
 * NAME
 *	tlspolicy/client.h - the settings Postfix's SMTP client uses for a next hop
 * SUMMARY
 *	What smtp(8) would do for one next hop, as data: the TLS security
 *	level, SNI, protocols, cipher list, OpenSSL security level, client
 *	certificate, EHLO name, address families and preference, MX
 *	address and session limits, DNS or native lookups, wrapper mode.
 *	Computed from main.cf and the policy entry as smtp_tls_policy.c,
 *	tls_client.c and tls_misc.c compute them, so a probe made with
 *	these settings sees the certificate Postfix sees.
 * DESCRIPTION
 *	tp_client_settings_new() computes the settings for the next hop
 *	key (a tlspolicy/nexthop.h form; NULL for none, as for "probe
 *	HOST") with the policy value (the right-hand side of its entry,
 *	NULL when there is none: main.cf's smtp_tls_security_level then).
 *	config NULL means Postfix's built-in defaults (no main.cf).
 *	Entry attributes override main.cf as in Postfix: protocols=
 *	replaces smtp_tls_mandatory_protocols (smtp_tls_protocols at level
 *	may), ciphers= the grade, exclude= the main.cf exclusions (the
 *	level's own, aNULL or eNULL, is always added), servername=
 *	smtp_tls_servername, enable_rpk= smtp_tls_enable_rpk. At level
 *	fingerprint without match=, smtp_tls_fingerprint_cert_match gives
 *	the pins. It returns 0, TP_ESYNTAX for a key that is no next hop,
 *	TP_ENOMEM. A value Postfix would reject is not an error here:
 *	info->valid is 0 and info->problem says why (Postfix defers the
 *	mail: "client TLS configuration problem"); so are settings that
 *	make every TLS session fail (a bad protocol list or cipher grade,
 *	an unusable client certificate, a smtp_tls_CAfile or
 *	smtp_tls_CApath OpenSSL cannot load, with which Postfix's SMTP
 *	client runs without TLS): info->tls_error says which.
 *	Free with tp_client_settings_free() (NULL is fine).
 *
 *	tp_client_settings_info() gives the settings. Strings and arrays
 *	belong to the settings object. Fields are only ever appended.
 *
 *	tp_client_settings_sni() is the SNI name Postfix sends to a server
 *	whose host name (the MX name, or the next hop's host) is
 *	server_host: NULL when none ("" and absent DANE, the default; an
 *	address literal is never sent); "hostname" gives server_host,
 *	"nexthop" the next-hop domain; else the configured name.
 *
 *	tp_client_settings_set_families() (TP_FAMILY_* bits),
 *	tp_client_settings_set_wrappermode() change one setting after the
 *	fact, for the wrapper-mode annotation of an entry and for "probe
 *	-4/-6/--wrapper" experiments.
 *
 *	tp_client_protocols_parse() reads a protocol list as Postfix's
 *	tls_proto_mask_lims() does: "!SSLv2, !SSLv3", ">=TLSv1.2",
 *	"<=TLSv1.2", "TLSv1.2:TLSv1.3" (an include list excludes every
 *	protocol it does not name). It fills the exclusion mask
 *	(TP_PROTO_* bits) and the OpenSSL version floor and ceiling (0: no
 *	bound), or returns TP_EINVALID for a name Postfix does not know.
 */
#ifndef TLSPOLICY_CLIENT_H
#define TLSPOLICY_CLIENT_H

#include "common.h"
#include "config.h"
#include "nexthop.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_client_settings tp_client_settings;

#define TP_FAMILY_IPV4 0x1
#define TP_FAMILY_IPV6 0x2

#define TP_PROTO_SSLv2 0x01
#define TP_PROTO_SSLv3 0x02
#define TP_PROTO_TLSv1 0x04
#define TP_PROTO_TLSv1_1 0x08
#define TP_PROTO_TLSv1_2 0x10
#define TP_PROTO_TLSv1_3 0x20

typedef enum tp_dns_support {
	TP_DNS_DISABLED = 0,	/* smtp_dns_support_level = disabled */
	TP_DNS_ENABLED = 1,
	TP_DNS_DNSSEC = 2
} tp_dns_support;

typedef struct tp_client_info {
	tp_level level;		/* effective security level */
	int valid;		/* Postfix accepts the entry */
	const char *problem;	/* why not, "" when valid */
	const char *tls_error;	/* every TLS session would fail: why; NULL */
	const char *servername;	/* "", "hostname", "nexthop" or a name */
	const char *protocols;	/* Postfix syntax, as configured */
	unsigned int protocols_excluded;	/* TP_PROTO_* */
	int min_version, max_version;	/* OpenSSL versions; 0: no bound */
	const char *cipher_grade;	/* "medium", ... */
	const char *cipher_exclusions;	/* "aNULL aECDSA", ... */
	const char *cipherlist;	/* the OpenSSL cipher string Postfix sets */
	int security_level;	/* OpenSSL security level Postfix sets */
	const char *groups;	/* tls_eecdh_auto_curves known to OpenSSL, ':'-joined */
	/* File names (these, ca_file, ca_path) relative to queue_directory,
	 * where Postfix's daemons work, are resolved. */
	const char *cert_file, *key_file;	/* client certificate, "" none */
	const char *eccert_file, *eckey_file;
	const char *chain_files;
	const char *helo_name;	/* smtp_helo_name, else Postfix's myhostname */
	int wrappermode;	/* TLS from the first byte (SMTPS, port 465) */
	int enable_rpk;		/* raw public keys asked for */
	unsigned int families;	/* TP_FAMILY_* from inet_protocols */
	int address_preference;	/* 0 any, 4, 6 (smtp_address_preference) */
	unsigned int mx_address_limit;	/* 0: none */
	unsigned int mx_session_limit;
	tp_dns_support dns;	/* MX lookups when not TP_DNS_DISABLED */
	int host_lookup_dns;	/* smtp_host_lookup has dns */
	int host_lookup_native;	/* ... native (/etc/hosts first) */
	int balance_inet_protocols;
	int randomize_addresses;
	const char *digest;	/* smtp_tls_fingerprint_digest */
	const char *const *pins;	/* at fingerprint level, normalised */
	size_t pin_count;
	int pins_from_main_cf;	/* smtp_tls_fingerprint_cert_match gave them */
	const char *ca_file, *ca_path;	/* smtp_tls_CAfile, smtp_tls_CApath */
	/* Where connections come from (smtp_connect_addr()): smtp_bind_address,
	 * else the one non-loopback IPv4 address inet_interfaces names; "" for
	 * the kernel's choice. A failed bind defers with bind_enforce
	 * (smtp_bind_address_enforce), else connects from the kernel's. */
	const char *bind_address;
	const char *bind_address6;	/* the same for IPv6 */
	int bind_enforce;
	const char *bind_error;	/* a value Postfix cannot read: its SMTP client
				 * stops at its first connection, every delivery
				 * stays queued (also in tls_error) */
} tp_client_info;

TP_EXTERN(int) tp_client_settings_new(tp_client_settings **out,
				      const tp_config *config, const char *key,
				      const char *value, tp_diag *diag);
TP_EXTERN(void) tp_client_settings_free(tp_client_settings *settings);
TP_EXTERN(const tp_client_info *) tp_client_settings_info(
	const tp_client_settings *settings);
TP_EXTERN(const char *) tp_client_settings_sni(
	const tp_client_settings *settings, const char *server_host);
TP_EXTERN(void) tp_client_settings_set_families(tp_client_settings *settings,
					       unsigned int families);
TP_EXTERN(void) tp_client_settings_set_wrappermode(
	tp_client_settings *settings, int on);
TP_EXTERN(int) tp_client_protocols_parse(const char *list,
					 unsigned int *excluded,
					 int *min_version, int *max_version);

#ifdef __cplusplus
}
#endif

#endif
