/*
 * NAME
 *	client - the settings Postfix's SMTP client uses for a next hop
 * SUMMARY
 *	See tlspolicy/client.h. Each setting follows the Postfix code that
 *	makes it: policy_create() and set_cipher_grade() in
 *	smtp_tls_policy.c (level, protocols, SNI, grade, exclusions),
 *	tls_set_ciphers() and tls_proto_mask_lims() in tls_misc.c (cipher
 *	string, protocol mask), tls_client_start() (OpenSSL security level
 *	1 where the peer is authenticated, 0 otherwise), tls_auth_enable()
 *	(which SNI name), tls_auto_eecdh_curves() (groups), smtp_addr.c
 *	and smtp_connect.c (addresses, limits, lookups).
 * DESCRIPTION
 *	Every string the info points to is copied into the settings'
 *	own list, so the config and value given may be freed afterwards.
 *
 *	Settings that make Postfix's TLS setup fail (a CA file or directory
 *	it cannot load, a protocol list it cannot parse, an unknown cipher
 *	grade, an exclusion with a '!', '+', '-' or '@' in front, a cipher
 *	list OpenSSL refuses, a client certificate it cannot load) are
 *	reported in tls_error, with Postfix's wording where it has one: at a
 *	mandatory TLS level every delivery to the next hop is then deferred.
 *	Files are read as tlspolicy's user: run as another user than root,
 *	a file only root can read is reported too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "buf.h"
#include "config_internal.h"
#include "diag.h"
#include "ossl.h"
#include "tlspolicy/client.h"
#include "tlspolicy/fingerprint.h"

#define SEPARATORS ", \t\r\n"

struct tp_client_settings {
	tp_client_info info;
	tp_strarray owned;	/* every string info points to */
	const char **pins;
	char *nexthop;		/* the next-hop domain, for SNI "nexthop" */
};

/* A copy of s kept with the settings; NULL when out of memory. */
static const char *
keep(tp_client_settings *s, const char *str)
{
	if (tp__strarray_push(&s->owned, str) != TP_OK)
		return NULL;
	return s->owned.strings[s->owned.count - 1];
}

static const char *keepf(tp_client_settings *s, const char *fmt, ...)
	TP_PRINTF(2, 3);

static const char *
keepf(tp_client_settings *s, const char *fmt, ...)
{
	char buf[TP_DIAG_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return keep(s, buf);
}

static const char *
param(const tp_config *config, const char *name)
{
	const char *v = tp_config_get(config, name);

	return v ? v : "";
}

/*
 * keep_file - a file setting as Postfix's SMTP client opens it (relative
 * to queue_directory: see tp__config_postfix_file()); list: a list of
 * files (smtp_tls_chain_files), each resolved, kept ", "-separated. A
 * list that names no file stays as it is (Postfix then loads nothing).
 */
static const char *
keep_file(tp_client_settings *s, const tp_config *config, const char *name, int list)
{
	const char *value = param(config, name), *p = value, *kept = NULL;
	tp_buf b = TP_BUF_INIT;
	char *one = NULL, *file = NULL;
	size_t n;

	if (!list) {
		if ((file = tp__config_postfix_file(config, value)) != NULL)
			kept = keep(s, file);
		free(file);
		return kept;
	}
	for (p += strspn(p, SEPARATORS); *p != '\0'; p += strspn(p, SEPARATORS)) {
		n = strcspn(p, SEPARATORS);
		if ((one = strndup(p, n)) == NULL ||
		    (file = tp__config_postfix_file(config, one)) == NULL ||
		    (b.size > 0 && tp__buf_puts(&b, ", ") != TP_OK) ||
		    tp__buf_puts(&b, file) != TP_OK)
			goto out;
		free(one);
		free(file);
		one = file = NULL;
		p += n;
	}
	kept = keep(s, b.size > 0 ? b.ptr : value);
out:
	free(one);
	free(file);
	tp_buf_dispose(&b);
	return kept;
}

/* Postfix's booleans are "yes" and "no"; anything else reads as no. */
static int
param_bool(const tp_config *config, const char *name)
{
	return strcasecmp(param(config, name), "yes") == 0;
}

static unsigned int
param_uint(const tp_config *config, const char *name, unsigned int dflt)
{
	const char *v = param(config, name);
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (*v == '\0' || *end != '\0' || n > 1000000)
		return dflt;
	return (unsigned int)n;
}

/*
 * Postfix's default myhostname (check_myhostname() in mail_params.c):
 * the node name, with ".$mydomain" (else ".localdomain") when it has no
 * dot. No DNS, on purpose: Postfix does none either.
 */
static const char *
default_myhostname(tp_client_settings *s, const tp_config *config)
{
	const char *domain = tp_config_get(config, "mydomain");
	struct utsname u;

	if (uname(&u) != 0 || u.nodename[0] == '\0')
		return keep(s, "localhost");
	if (strchr(u.nodename, '.') != NULL)
		return keep(s, u.nodename);
	return keepf(s, "%s.%s", u.nodename, domain && *domain ? domain : "localdomain");
}

/* Next token of s split on seps; NULL at the end. Writes into tok. */
static const char *
next_token(const char **s, const char *seps, char *tok, size_t size)
{
	size_t n;

	*s += strspn(*s, seps);
	if (**s == '\0')
		return NULL;
	n = strcspn(*s, seps);
	snprintf(tok, size, "%.*s", (int)n, *s);
	*s += n;
	return tok;
}

static const struct {
	const char *name;
	unsigned int bit;
} protocol_names[] = {
	{ "SSLv2", TP_PROTO_SSLv2 }, { "SSLv3", TP_PROTO_SSLv3 },
	{ "TLSv1", TP_PROTO_TLSv1 }, { "TLSv1.1", TP_PROTO_TLSv1_1 },
	{ "TLSv1.2", TP_PROTO_TLSv1_2 }, { "TLSv1.3", TP_PROTO_TLSv1_3 },
};

static const struct {
	const char *name;
	int version;
} version_names[] = {
	{ "None", 0 }, { "SSLv3", SSL3_VERSION }, { "TLSv1", TLS1_VERSION },
	{ "TLSv1.1", TLS1_1_VERSION }, { "TLSv1.2", TLS1_2_VERSION },
	{ "TLSv1.3", TLS1_3_VERSION },
};

/* parse_tls_version(): a name (case matters, as in Postfix) or hex. */
static int
parse_version(const char *tok, int *version)
{
	char *end;
	unsigned long v;

	for (size_t i = 0; i < sizeof(version_names) / sizeof(version_names[0]); i++)
		if (strcmp(tok, version_names[i].name) == 0) {
			*version = version_names[i].version;
			return 0;
		}
	v = strtoul(tok, &end, 16);
	if (*tok == '\0' || *end != '\0' || v > 0x7fffffff)
		return -1;
	*version = (int)v;
	return 0;
}

int
tp_client_protocols_parse(const char *list, unsigned int *excluded,
			  int *min_version, int *max_version)
{
	unsigned int include = 0, exclude = 0;
	const char *p = list ? list : "";
	char tok[64];

	*min_version = *max_version = 0;
	while (next_token(&p, SEPARATORS ":", tok, sizeof(tok)) != NULL) {
		const char *name = tok;
		unsigned int bit = 0;
		int neg = 0;

		if (strncmp(tok, ">=", 2) == 0 || strncmp(tok, "<=", 2) == 0) {
			if (parse_version(tok + 2, tok[0] == '>' ? min_version
							       : max_version) != 0)
				return TP_EINVALID;
			continue;
		}
		if (*name == '!') {
			neg = 1;
			name++;
		}
		for (size_t i = 0; i < sizeof(protocol_names) / sizeof(protocol_names[0]); i++)
			if (strcmp(name, protocol_names[i].name) == 0)
				bit = protocol_names[i].bit;
		if (bit == 0)
			return TP_EINVALID;
		if (neg)
			exclude |= bit;
		else
			include |= bit;
	}
	*excluded = include ? exclude | (0x3fu & ~include) : exclude;
	return 0;
}

static const struct {
	const char *grade;
	const char *param;
} grades[] = {
	{ "high", "tls_high_cipherlist" },
	{ "medium", "tls_medium_cipherlist" },
	{ "low", "tls_low_cipherlist" },
	{ "export", "tls_export_cipherlist" },
	{ "null", "tls_null_cipherlist" },
};

/* Appends " word" (or "word" first) to b, as Postfix's ADD_EXCLUDE. */
static int
add_exclude(tp_buf *b, const char *word)
{
	if (*word == '\0')
		return 0;
	if (b->size > 0 && tp__buf_putc(b, ' ') != TP_OK)
		return TP_ENOMEM;
	return tp__buf_puts(b, word);
}

/*
 * ca_error - tls_set_ca_certificate_info(): Postfix's SMTP client loads
 * smtp_tls_CAfile and smtp_tls_CApath when it starts, before anything
 * else of TLS, and runs without TLS when they do not load, whatever the
 * level needs them for. The same OpenSSL calls tell here. *why: NULL
 * when they load (or neither is set), else the reason, remembered in
 * reuse for the same names. TP_ENOMEM only.
 */
static int
ca_error(const tp_client_info *in, tp__client_reuse *reuse, const char **why)
{
	const char *file = in->ca_file, *path = in->ca_path;
	X509_STORE *store;
	tp_buf b = TP_BUF_INIT;
	int loads;

	*why = NULL;
	if (*file == '\0' && *path == '\0')
		return TP_OK;
	if (reuse->ca_file != NULL && strcmp(reuse->ca_file, file) == 0 &&
	    strcmp(reuse->ca_path, path) == 0) {
		*why = reuse->ca_error;
		return TP_OK;
	}
	ERR_clear_error();
	if ((store = X509_STORE_new()) == NULL)
		return TP_ENOMEM;
	loads = (*file == '\0' || X509_STORE_load_file(store, file) == 1) &&
		(*path == '\0' || X509_STORE_load_path(store, path) == 1);
	X509_STORE_free(store);
	ERR_clear_error();
	free(reuse->ca_file);
	free(reuse->ca_path);
	free(reuse->ca_error);
	reuse->ca_path = reuse->ca_error = NULL;
	if ((reuse->ca_file = strdup(file)) == NULL ||
	    (reuse->ca_path = strdup(path)) == NULL)
		goto nomem;
	if (loads)
		return TP_OK;
	/* Postfix's log line, and what follows from it. */
	if (tp__buf_puts(&b, "cannot load Certification Authority data") != TP_OK ||
	    (*file && tp__buf_printf(&b, ", CAfile=\"%s\"", file) != TP_OK) ||
	    (*path && tp__buf_printf(&b, ", CApath=\"%s\"", path) != TP_OK) ||
	    tp__buf_puts(&b, ": Postfix disables TLS support") != TP_OK)
		goto nomem;
	*why = reuse->ca_error = b.ptr;
	return TP_OK;
nomem:
	tp_buf_dispose(&b);
	free(reuse->ca_file);
	reuse->ca_file = NULL;	/* nothing remembered */
	return TP_ENOMEM;
}

/*
 * cert_error - tls_set_my_certificate_key_info(): the client certificates
 * load when Postfix's SMTP client starts, or it runs without TLS. In a
 * context of their own (OpenSSL keeps one certificate per algorithm and
 * has no call to take one out), made as tls_client_init() makes Postfix's
 * (security level 0); remembered in reuse for the same files. *why as
 * ca_error(). TP_ENOMEM only.
 */
static int
cert_error(const tp_client_info *in, tp__client_reuse *reuse, const char **why)
{
	tp_buf b = TP_BUF_INIT, e = TP_BUF_INIT;
	SSL_CTX *ctx;
	char *err = NULL;
	int rc;

	*why = NULL;
	if (*in->chain_files == '\0' && *in->cert_file == '\0' && *in->eccert_file == '\0')
		return TP_OK;
	if (tp__buf_printf(&b, "%s|%s|%s|%s|%s", in->chain_files, in->cert_file,
			   in->key_file, in->eccert_file, in->eckey_file) != TP_OK) {
		tp_buf_dispose(&b);
		return TP_ENOMEM;
	}
	if (reuse->certs != NULL && strcmp(reuse->certs, b.ptr) == 0) {
		tp_buf_dispose(&b);
		*why = reuse->cert_error;
		return TP_OK;
	}
	free(reuse->certs);
	free(reuse->cert_error);
	reuse->certs = reuse->cert_error = NULL;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tp_buf_dispose(&b);
		ERR_clear_error();
		*why = "cannot make a TLS context";
		return TP_OK;
	}
	SSL_CTX_set_security_level(ctx, 0);
	rc = tp__client_certs_use(ctx, in, &err);
	SSL_CTX_free(ctx);
	if (rc != TP_OK) {
		tp_buf_dispose(&b);
		return rc;
	}
	if (err != NULL) {
		rc = tp__buf_printf(&e, "%s: Postfix disables TLS support", err);
		free(err);
		if (rc != TP_OK) {
			tp_buf_dispose(&e);
			tp_buf_dispose(&b);
			return TP_ENOMEM;
		}
		reuse->cert_error = e.ptr;
	}
	reuse->certs = b.ptr;
	*why = reuse->cert_error;
	return TP_OK;
}

void
tp__client_reuse_dispose(tp__client_reuse *reuse)
{
	SSL_CTX_free(reuse->ctx);
	free(reuse->ca_file);
	free(reuse->ca_path);
	free(reuse->ca_error);
	free(reuse->certs);
	free(reuse->cert_error);
	memset(reuse, 0, sizeof(*reuse));
}

/*
 * Does Postfix's SMTP client get TLS with these CA files, cipher string
 * and client certificate? What OpenSSL refuses goes to tls_error.
 * TP_ENOMEM only.
 */
static int
openssl_check(tp_client_settings *s, SSL_CTX *ctx, tp__client_reuse *reuse)
{
	tp_client_info *in = &s->info;
	const char *why = NULL;

	if (ca_error(in, reuse, &why) != TP_OK)
		return TP_ENOMEM;
	if (why == NULL && cert_error(in, reuse, &why) != TP_OK)
		return TP_ENOMEM;
	if (why != NULL)
		return (in->tls_error = keep(s, why)) ? TP_OK : TP_ENOMEM;
	ERR_clear_error();
	if (ctx == NULL)
		return (in->tls_error = keep(s, "cannot make a TLS context")) ? TP_OK : TP_ENOMEM;
	why = "";
	SSL_CTX_set_security_level(ctx, 0);
	if (SSL_CTX_set_cipher_list(ctx, in->cipherlist) != 1)
		why = keepf(s, "error setting cipher grade: \"%s\" (cipher list \"%s\")",
			    in->cipher_grade, in->cipherlist);
	ERR_clear_error();
	if (why == NULL)
		return TP_ENOMEM;
	if (*why != '\0')
		in->tls_error = why;
	return TP_OK;
}

/* tls_auto_eecdh_curves(): the names OpenSSL knows, in order. */
static int
set_groups(tp_client_settings *s, const tp_config *config, SSL_CTX *ctx)
{
	const char *p = param(config, "tls_eecdh_auto_curves");
	tp_buf b = TP_BUF_INIT;
	char tok[64];
	int rc = TP_OK;

	ERR_clear_error();
	while (rc == TP_OK && next_token(&p, SEPARATORS, tok, sizeof(tok)) != NULL) {
		if (ctx == NULL || SSL_CTX_set1_groups_list(ctx, tok) != 1)
			continue;
		if ((b.size > 0 && tp__buf_putc(&b, ':') != TP_OK) ||
		    tp__buf_puts(&b, tok) != TP_OK)
			rc = TP_ENOMEM;
	}
	ERR_clear_error();
	if (rc == TP_OK && (s->info.groups = keep(s, b.ptr ? b.ptr : "")) == NULL)
		rc = TP_ENOMEM;
	tp_buf_dispose(&b);
	return rc;
}

static int
set_ciphers(tp_client_settings *s, const tp_config *config, const tp_policy *policy)
{
	tp_client_info *in = &s->info;
	const char *grade = tp_policy_attr(policy, "ciphers");
	const char *exclude = tp_policy_attr(policy, "exclude");
	const char *list = NULL, *p;
	tp_buf excl = TP_BUF_INIT, cl = TP_BUF_INIT;
	char tok[256];
	int mandatory = in->level > TP_LEVEL_MAY, rc = TP_ENOMEM;

	if (grade == NULL)
		grade = param(config, mandatory ? "smtp_tls_mandatory_ciphers"
						: "smtp_tls_ciphers");
	if (exclude != NULL) {
		if (add_exclude(&excl, exclude) != TP_OK)
			goto out;
	} else if (add_exclude(&excl, param(config, "smtp_tls_exclude_ciphers")) != TP_OK ||
		   (mandatory && add_exclude(&excl, param(config,
					"smtp_tls_mandatory_exclude_ciphers")) != TP_OK))
		goto out;
	if (add_exclude(&excl, in->level == TP_LEVEL_ENCRYPT ? "eNULL"
			       : mandatory ? "aNULL" : "") != TP_OK)
		goto out;
	for (size_t i = 0; i < sizeof(grades) / sizeof(grades[0]); i++)
		if (strcasecmp(grade, grades[i].grade) == 0)
			list = param(config, grades[i].param);
	if ((in->cipher_grade = keep(s, grade)) == NULL ||
	    (in->cipher_exclusions = keep(s, excl.ptr ? excl.ptr : "")) == NULL)
		goto out;
	if (list == NULL || *list == '\0') {
		in->cipherlist = "";
		if (in->tls_error == NULL &&
		    (in->tls_error = keepf(s, "invalid cipher grade: \"%s\"", grade)) == NULL)
			goto out;
		rc = TP_OK;
		goto out;
	}
	if (tp__buf_puts(&cl, list) != TP_OK)
		goto out;
	for (p = in->cipher_exclusions; next_token(&p, SEPARATORS ":", tok, sizeof(tok));) {
		if (strchr("!+-@", tok[0]) != NULL) {
			if (in->tls_error == NULL &&
			    (in->tls_error = keepf(s, "invalid unary '!+-@' in cipher exclusion: %s",
						   tok)) == NULL)
				goto out;
			continue;
		}
		if (tp__buf_printf(&cl, ":!%s", tok) != TP_OK)
			goto out;
	}
	if ((in->cipherlist = keep(s, cl.ptr)) == NULL)
		goto out;
	rc = TP_OK;
out:
	tp_buf_dispose(&excl);
	tp_buf_dispose(&cl);
	return rc;
}

static void
set_addressing(tp_client_settings *s, const tp_config *config)
{
	tp_client_info *in = &s->info;
	const char *p = param(config, "inet_protocols"), *dns;
	char tok[32];

	in->families = 0;
	while (next_token(&p, SEPARATORS, tok, sizeof(tok)) != NULL) {
		if (strcasecmp(tok, "all") == 0)
			in->families |= TP_FAMILY_IPV4 | TP_FAMILY_IPV6;
		else if (strcasecmp(tok, "ipv4") == 0)
			in->families |= TP_FAMILY_IPV4;
		else if (strcasecmp(tok, "ipv6") == 0)
			in->families |= TP_FAMILY_IPV6;
	}
	if (in->families == 0)
		in->families = TP_FAMILY_IPV4 | TP_FAMILY_IPV6;
	p = param(config, "smtp_address_preference");
	in->address_preference = strcasecmp(p, "ipv4") == 0 ? 4
	    : strcasecmp(p, "ipv6") == 0 ? 6 : 0;
	in->mx_address_limit = param_uint(config, "smtp_mx_address_limit", 5);
	in->mx_session_limit = param_uint(config, "smtp_mx_session_limit", 2);
	dns = param(config, "smtp_dns_support_level");
	if (strcasecmp(dns, "disabled") == 0)
		in->dns = TP_DNS_DISABLED;
	else if (strcasecmp(dns, "dnssec") == 0)
		in->dns = TP_DNS_DNSSEC;
	else if (*dns == '\0' && param_bool(config, "disable_dns_lookups"))
		in->dns = TP_DNS_DISABLED;
	else
		in->dns = TP_DNS_ENABLED;
	p = param(config, "smtp_host_lookup");
	while (next_token(&p, SEPARATORS, tok, sizeof(tok)) != NULL) {
		if (strcasecmp(tok, "dns") == 0)
			in->host_lookup_dns = 1;
		else if (strcasecmp(tok, "native") == 0)
			in->host_lookup_native = 1;
	}
	/* Without DNS support there is only the native lookup. */
	if (in->dns == TP_DNS_DISABLED) {
		in->host_lookup_dns = 0;
		in->host_lookup_native = 1;
	}
	if (!in->host_lookup_dns && !in->host_lookup_native)
		in->host_lookup_dns = 1;
	in->balance_inet_protocols = param_bool(config, "smtp_balance_inet_protocols");
	in->randomize_addresses = param_bool(config, "smtp_randomize_addresses");
}

/*
 * bind_error - a source address Postfix cannot read ("malformed" or
 * "bad" in its words): its SMTP client stops at the first connection.
 */
static int
bind_error(tp_client_settings *s, const char *what, const char *param, const char *value)
{
	tp_client_info *in = &s->info;

	if (in->bind_error != NULL)
		return TP_OK;
	if ((in->bind_error = keepf(s, "%s %s parameter: %s", what, param, value)) == NULL)
		return TP_ENOMEM;
	if (in->tls_error == NULL &&
	    (in->tls_error = keepf(s, "%s: Postfix's SMTP client stops", in->bind_error)) == NULL)
		return TP_ENOMEM;
	return TP_OK;
}

/* The numeric form of a single address host names (inet_interfaces item). */
static int
interface_address(const char *host, int family, char *out, size_t size, int *count)
{
	struct addrinfo hints, *res = NULL;
	int n = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	for (const struct addrinfo *a = res; a != NULL; a = a->ai_next, n++)
		if (n == 0 && getnameinfo(a->ai_addr, a->ai_addrlen, out, (socklen_t)size,
					  NULL, 0, NI_NUMERICHOST) != 0)
			*out = '\0';
	freeaddrinfo(res);
	*count += n;
	return n;
}

static int
loopback(const char *addr)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/*
 * set_source - smtp_connect_addr(): where each connection comes from. A
 * family's smtp_bind_address (smtp_bind_address6), optionally in [],
 * else, when inet_interfaces names exactly one address of the family and
 * it is not a loopback address (Postfix as a virtual host), that one;
 * else the kernel's choice (""). A value Postfix cannot read stops its
 * SMTP client (tls_error).
 */
static int
set_source(tp_client_settings *s, const tp_config *config)
{
	static const struct {
		int family;
		const char *param;
	} fams[] = { { AF_INET, "smtp_bind_address" }, { AF_INET6, "smtp_bind_address6" } };
	tp_client_info *in = &s->info;
	char addr[NI_MAXHOST], tok[NI_MAXHOST];

	in->bind_enforce = param_bool(config, "smtp_bind_address_enforce");
	for (size_t f = 0; f < 2; f++) {
		const char *value = param(config, fams[f].param), *p, *kept;
		struct addrinfo hints, *res = NULL;
		size_t len = strlen(value);
		int count = 0, one = 0;

		*addr = '\0';
		if (*value != '\0') {
			int rc = TP_OK;

			if (*value == '[' && (len < 2 || value[len - 1] != ']' ||
					      memchr(value + 1, ']', len - 2) != NULL))
				rc = bind_error(s, "malformed", fams[f].param, value);
			else {
				snprintf(addr, sizeof(addr), "%.*s", (int)(*value == '[' ? len - 2 : len),
					 value + (*value == '['));
				memset(&hints, 0, sizeof(hints));
				hints.ai_flags = AI_NUMERICHOST;
				hints.ai_socktype = SOCK_STREAM;
				if (getaddrinfo(addr, NULL, &hints, &res) != 0) {
					rc = bind_error(s, "bad", fams[f].param, value);
					*addr = '\0';
				} else
					freeaddrinfo(res);
			}
			if (rc != TP_OK)
				return TP_ENOMEM;
		} else {
			p = param(config, "inet_interfaces");
			while (count < 2 && next_token(&p, SEPARATORS, tok, sizeof(tok)) != NULL) {
				if (strcasecmp(tok, "all") == 0 || strcasecmp(tok, "loopback-only") == 0) {
					count = 2;	/* every interface, or loopback: no bind */
					break;
				}
				len = strlen(tok);
				if (*tok == '[' && len > 1 && tok[len - 1] == ']') {
					memmove(tok, tok + 1, len - 2);
					tok[len - 2] = '\0';
				}
				one = interface_address(tok, fams[f].family, addr, sizeof(addr), &count) > 0 || one;
			}
			if (count != 1 || !one || loopback(addr))
				*addr = '\0';
		}
		kept = keep(s, addr);
		if (kept == NULL)
			return TP_ENOMEM;
		if (fams[f].family == AF_INET)
			in->bind_address = kept;
		else
			in->bind_address6 = kept;
	}
	return TP_OK;
}

/* smtp_tls_fingerprint_cert_match as a match= value ("A|B"), or NULL. */
static char *
cert_match_value(const tp_config *config)
{
	const char *p = param(config, "smtp_tls_fingerprint_cert_match");
	tp_buf b = TP_BUF_INIT;
	char tok[TP_FINGERPRINT_MAX * 2];

	while (next_token(&p, SEPARATORS, tok, sizeof(tok)) != NULL)
		if ((b.size > 0 && tp__buf_putc(&b, '|') != TP_OK) ||
		    tp__buf_puts(&b, tok) != TP_OK) {
			tp_buf_dispose(&b);
			return NULL;
		}
	return b.ptr ? tp__buf_detach(&b) : strdup("");
}

/*
 * The policy as Postfix ends up with it. At fingerprint level without
 * match=, Postfix takes smtp_tls_fingerprint_cert_match: the value is
 * read again with those pins added, so every other rule still applies.
 */
static int
read_policy(tp_client_settings *s, const tp_config *config, const char *value,
	    tp_policy **policy)
{
	tp_client_info *in = &s->info;
	tp_diag d = TP_DIAG_INIT;
	char *cm = NULL, *joined = NULL;
	int rc;

	*policy = NULL;
	if (value == NULL) {
		const char *global = param(config, "smtp_tls_security_level");
		tp_level level = TP_LEVEL_NONE;

		if (*global != '\0' && tp_level_parse(&level, global) != 0) {
			in->valid = 0;
			in->problem = keepf(s, "smtp_tls_security_level = %s: invalid TLS security level",
					    global);
			return in->problem ? TP_OK : TP_ENOMEM;
		}
		if (level == TP_LEVEL_FINGERPRINT) {
			if ((cm = cert_match_value(config)) == NULL)
				return TP_ENOMEM;
			if (asprintf(&joined, "fingerprint%s%s", *cm ? " match=" : "", cm) < 0)
				joined = NULL;
			free(cm);
			if (joined == NULL)
				return TP_ENOMEM;
			rc = tp_policy_parse(policy, joined, strlen(joined), &d);
			free(joined);
			in->pins_from_main_cf = 1;
		} else {
			rc = tp_policy_parse(policy, tp_level_name(level),
					     strlen(tp_level_name(level)), &d);
		}
	} else {
		rc = tp_policy_parse(policy, value, strlen(value), &d);
		if (rc == TP_EINVALID && *policy != NULL &&
		    tp_policy_level(*policy) == TP_LEVEL_FINGERPRINT &&
		    tp_policy_pin_count(*policy) == 0) {
			if ((cm = cert_match_value(config)) == NULL)
				return TP_ENOMEM;
			if (*cm != '\0') {
				tp_policy *again = NULL;
				tp_diag d2 = TP_DIAG_INIT;
				int rc2;

				if (asprintf(&joined, "%s match=%s", value, cm) < 0) {
					free(cm);
					return TP_ENOMEM;
				}
				rc2 = tp_policy_parse(&again, joined, strlen(joined), &d2);
				free(joined);
				if (again == NULL) {
					free(cm);
					return TP_ENOMEM;
				}
				if (rc2 == 0) {
					tp_policy_free(*policy);
					*policy = again;
					rc = 0;
					in->pins_from_main_cf = 1;
				} else {
					tp_policy_free(again);
				}
			}
			free(cm);
		}
	}
	if (*policy == NULL)
		return TP_ENOMEM;
	in->level = tp_policy_level(*policy);
	in->valid = rc == 0;
	if ((in->problem = keep(s, rc == 0 ? "" : d.message)) == NULL)
		return TP_ENOMEM;
	return TP_OK;
}

/* policy_create(): SNI from the entry, else main.cf (a valid name or empty). */
static int
set_servername(tp_client_settings *s, const tp_config *config, const tp_policy *policy)
{
	tp_client_info *in = &s->info;
	const char *sni = tp_policy_attr(policy, "servername");
	tp_nexthop nh;

	if (sni == NULL) {
		sni = param(config, "smtp_tls_servername");
		if (*sni != '\0' && strcmp(sni, "hostname") != 0 &&
		    strcmp(sni, "nexthop") != 0 &&
		    (tp_nexthop_parse(&nh, sni, NULL) != 0 || nh.kind != TP_NEXTHOP_DOMAIN
		     || nh.port_given)) {
			in->valid = 0;
			in->problem = keepf(s, "\"smtp_tls_servername = %s\" specifies an invalid hostname",
					    sni);
			if (in->problem == NULL)
				return TP_ENOMEM;
		}
	}
	return (in->servername = keep(s, sni)) == NULL ? TP_ENOMEM : TP_OK;
}

/* reuse: what the calls of one delivery share (see ossl.h) */
static int
fill(tp_client_settings *s, const tp_config *config, const char *key, const char *value,
     tp__client_reuse *reuse)
{
	tp_client_info *in = &s->info;
	tp_policy *policy = NULL;
	SSL_CTX *ctx = NULL;
	const char *protocols, *rpk;
	tp_nexthop nh;
	int rc;

	if (key != NULL) {
		if ((rc = tp_nexthop_parse(&nh, key, NULL)) != 0)
			return rc;
		if ((s->nexthop = strdup(nh.ascii)) == NULL)
			return TP_ENOMEM;
	}
	if ((rc = read_policy(s, config, value, &policy)) != TP_OK)
		goto out;
	rc = TP_ENOMEM;
	if ((in->digest = keep(s, tp_config_digest(config))) == NULL)
		goto out;
	/* tls_client_init(): an unknown digest disables TLS altogether. */
	if (tp_digest_check(in->digest) != 0 &&
	    (in->tls_error = keepf(s, "smtp_tls_fingerprint_digest = \"%s\" is not a digest OpenSSL knows: Postfix disables TLS support",
				   in->digest)) == NULL)
		goto out;
	s->pins = calloc(tp_policy_pin_count(policy) + 1, sizeof(*s->pins));
	if (s->pins == NULL)
		goto out;
	for (size_t i = 0; i < tp_policy_pin_count(policy); i++)
		if ((s->pins[i] = keep(s, tp_policy_pin_at(policy, i))) == NULL)
			goto out;
	in->pins = s->pins;
	in->pin_count = tp_policy_pin_count(policy);
	if (set_servername(s, config, policy) != TP_OK)
		goto out;
	protocols = tp_policy_attr(policy, "protocols");
	if (protocols == NULL)
		protocols = param(config, in->level == TP_LEVEL_MAY ? "smtp_tls_protocols"
					  : "smtp_tls_mandatory_protocols");
	if ((in->protocols = keep(s, protocols)) == NULL)
		goto out;
	if (tp_client_protocols_parse(protocols, &in->protocols_excluded,
				      &in->min_version, &in->max_version) != 0 &&
	    (in->tls_error = keepf(s, "Invalid TLS protocol list \"%s\"", protocols)) == NULL)
		goto out;
	/* One scratch context for what only OpenSSL can tell (it is not cheap). */
	ERR_clear_error();
	if (reuse->ctx != NULL) {
		ctx = reuse->ctx;
		reuse->ctx = NULL;
	} else
		ctx = SSL_CTX_new(TLS_client_method());
	if (set_ciphers(s, config, policy) != TP_OK || set_groups(s, config, ctx) != TP_OK)
		goto out;
	/* tls_client_start(): TLS_MUST_MATCH levels get security level 1. */
	in->security_level = in->level >= TP_LEVEL_FINGERPRINT ? 1 : 0;
	if ((in->cert_file = keep_file(s, config, "smtp_tls_cert_file", 0)) == NULL ||
	    (in->key_file = keep_file(s, config, "smtp_tls_key_file", 0)) == NULL ||
	    (in->eccert_file = keep_file(s, config, "smtp_tls_eccert_file", 0)) == NULL ||
	    (in->eckey_file = keep_file(s, config, "smtp_tls_eckey_file", 0)) == NULL ||
	    (in->chain_files = keep_file(s, config, "smtp_tls_chain_files", 1)) == NULL ||
	    (in->helo_name = keep(s, param(config, "smtp_helo_name"))) == NULL ||
	    (in->ca_file = keep_file(s, config, "smtp_tls_CAfile", 0)) == NULL ||
	    (in->ca_path = keep_file(s, config, "smtp_tls_CApath", 0)) == NULL)
		goto out;
	if (*in->helo_name == '\0' && (in->helo_name = default_myhostname(s, config)) == NULL)
		goto out;
	if (in->tls_error == NULL && in->level > TP_LEVEL_NONE && openssl_check(s, ctx, reuse) != TP_OK)
		goto out;
	in->wrappermode = param_bool(config, "smtp_tls_wrappermode");
	rpk = tp_policy_attr(policy, "enable_rpk");
	in->enable_rpk = rpk ? strcasecmp(rpk, "yes") == 0
	    : param_bool(config, "smtp_tls_enable_rpk");
	set_addressing(s, config);
	if (set_source(s, config) != TP_OK)
		goto out;
	rc = TP_OK;
out:
	if (reuse->ctx == NULL)
		reuse->ctx = ctx;
	else
		SSL_CTX_free(ctx);
	tp_policy_free(policy);
	return rc;
}

int
tp_client_settings_new(tp_client_settings **out, const tp_config *config,
		       const char *key, const char *value, tp_diag *diag)
{
	tp__client_reuse reuse = { NULL, NULL, NULL, NULL, NULL, NULL };
	int rc = tp__client_settings_new_reusing(out, config, key, value, &reuse, diag);

	tp__client_reuse_dispose(&reuse);
	return rc;
}

int
tp__client_settings_new_reusing(tp_client_settings **out, const tp_config *config,
				const char *key, const char *value, tp__client_reuse *reuse,
				tp_diag *diag)
{
	tp_client_settings *s;
	tp_config *own = NULL;
	int rc;

	*out = NULL;
	if (config == NULL) {
		if ((rc = tp__config_parse(&own, "/etc/postfix", "", 0, diag)) != 0)
			return rc;
		config = own;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		tp_config_free(own);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	rc = fill(s, config, key, value, reuse);
	tp_config_free(own);
	if (rc == TP_ESYNTAX) {
		tp_nexthop nh;

		tp_client_settings_free(s);
		return tp_nexthop_parse(&nh, key, diag);
	}
	if (rc != TP_OK) {
		tp_client_settings_free(s);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	*out = s;
	return 0;
}

void
tp_client_settings_free(tp_client_settings *s)
{
	if (s == NULL)
		return;
	tp_strarray_dispose(&s->owned);
	free(s->pins);
	free(s->nexthop);
	free(s);
}

const tp_client_info *
tp_client_settings_info(const tp_client_settings *s)
{
	return &s->info;
}

const char *
tp_client_settings_sni(const tp_client_settings *s, const char *server_host)
{
	const char *sni = s->info.servername;

	if (s->info.level <= TP_LEVEL_NONE || sni == NULL || *sni == '\0')
		return NULL;
	if (strcmp(sni, "hostname") == 0)
		sni = server_host;
	else if (strcmp(sni, "nexthop") == 0)
		sni = s->nexthop;
	/* Postfix sends what it has, even an address for "hostname". */
	return sni == NULL || *sni == '\0' ? NULL : sni;
}

void
tp_client_settings_set_families(tp_client_settings *s, unsigned int families)
{
	if (families & (TP_FAMILY_IPV4 | TP_FAMILY_IPV6))
		s->info.families = families & (TP_FAMILY_IPV4 | TP_FAMILY_IPV6);
}

void
tp_client_settings_set_wrappermode(tp_client_settings *s, int on)
{
	s->info.wrappermode = on != 0;
}
