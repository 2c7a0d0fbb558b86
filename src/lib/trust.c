/*
 * NAME
 *	trust - whether a new certificate may be pinned unattended
 * SUMMARY
 *	See tlspolicy/trust.h. The evidence is gathered from a delivery run
 *	(the servers Postfix tries and what they presented); PKIX is checked
 *	here, offline, on the chain each server sent, so the probe stays a
 *	probe of what Postfix sees at level fingerprint (no SNI, no name
 *	checks); DANE comes from the handshake (OpenSSL matched the TLSA
 *	records there, as Postfix does).
 * DESCRIPTION
 *	Name matching follows Postfix's "secure" level defaults
 *	(smtp_tls_secure_cert_match = nexthop, dot-nexthop): the next-hop
 *	domain or any name below it; plus the MX host name when the MX
 *	lookup was DNSSEC-validated, as Postfix's "verify" level trusts it
 *	with smtp_dns_support_level = dnssec. Wildcards match one label, as
 *	OpenSSL's X509_check_host() does by default.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "config_internal.h"
#include "diag.h"
#include "ossl.h"
#include "tlspolicy/trust.h"

/*
 * Leaves parsed lately, with their sha256 ids: entries behind one server
 * (a hosting provider's many domains) are evaluated with the same leaf,
 * and parsing it is most of an evaluation's cost (OpenSSL 3 decodes the
 * public key through its provider decoders). Found by the DER bytes.
 */
#define LEAF_MEMO 16

struct leaf_memo {
	unsigned char *der;
	size_t der_len;
	X509 *x;
	char id[TP_FINGERPRINT_MAX];	/* sha256 of the SubjectPublicKeyInfo */
	char cert256[TP_FINGERPRINT_MAX];	/* sha256 of the certificate */
};

struct tp_trust {
	tp_trust_opts opts;
	X509_STORE *store;
	tp_ca_source ca_source;	/* whose CAs store holds */
	struct leaf_memo leaves[LEAF_MEMO];
	size_t next_leaf;
};

static void
leaf_memo_clear(struct leaf_memo *m)
{
	free(m->der);
	X509_free(m->x);
	memset(m, 0, sizeof(*m));
}

struct result {
	tp_trust_result pub;
	tp_candidate *v;
	size_t n;
	tp_strarray texts;
};

static const struct {
	const char *name;
	unsigned int flag;
} policy_items[] = {
	{ "same-key", TP_TRUST_SAME_KEY },
	{ "pkix", TP_TRUST_PKIX },
	{ "dane", TP_TRUST_DANE },
	{ "tofu", TP_TRUST_TOFU },
};

/*
 * "30", "30s", "15m", "12h", "7d", "2w" as seconds: whole numbers only
 * (no exponents, hex or fractions strtod would take), positive, and at
 * most ten years; -1 otherwise.
 */
static double
parse_duration(const char *s, size_t len)
{
	double v = 0, unit = 1;
	size_t i = 0;

	while (i < len && i < 12 && s[i] >= '0' && s[i] <= '9')
		v = v * 10 + (s[i++] - '0');
	if (i == 0 || i == 12)
		return -1;
	if (i < len) {
		if (i + 1 != len)
			return -1;
		switch (s[i]) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case 'w':
			unit = 7 * 86400;
			break;
		default:
			return -1;
		}
	}
	v *= unit;
	return v > 0 && v <= 10 * 366 * 86400.0 ? v : -1;
}

int
tp_trust_policy_parse(tp_trust_policy *out, const char *list, tp_diag *diag)
{
	const char *p = list ? list : "";

	out->flags = 0;
	out->hold_seconds = 0;
	while (*p) {
		size_t n;
		int known = 0;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		for (size_t i = 0; i < sizeof(policy_items) / sizeof(policy_items[0]); i++)
			if (strlen(policy_items[i].name) == n &&
			    strncmp(p, policy_items[i].name, n) == 0) {
				out->flags |= policy_items[i].flag;
				known = 1;
			}
		if (!known && n > 5 && strncmp(p, "hold=", 5) == 0) {
			double secs = parse_duration(p + 5, n - 5);

			if (secs < 0)
				return tp__diag_set(diag, TP_EINVALID, NULL, 0,
						    "trust policy: bad duration \"%.*s\" (say 30m, 12h, 7d; at most ten years)",
						    (int)(n - 5), p + 5);
			out->flags |= TP_TRUST_HOLD;
			out->hold_seconds = secs;
			known = 1;
		}
		if (!known)
			return tp__diag_set(diag, TP_EINVALID, NULL, 0,
					    "trust policy: unknown item \"%.*s\" (say same-key, pkix, dane, hold=DURATION, tofu)",
					    (int)n, p);
		p += n;
	}
	if (out->flags == 0)
		return tp__diag_set(diag, TP_EINVALID, NULL, 0,
				    "trust policy: empty (say same-key, pkix, dane, hold=DURATION, tofu)");
	return 0;
}

void
tp__ca_store_default(X509_STORE *store)
{
	X509_LOOKUP *lu;

	if ((lu = X509_STORE_add_lookup(store, X509_LOOKUP_file())) != NULL)
		(void)X509_LOOKUP_load_file(lu, NULL, X509_FILETYPE_DEFAULT);
	if ((lu = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir())) != NULL)
		(void)X509_LOOKUP_add_dir(lu, NULL, X509_FILETYPE_DEFAULT);
	ERR_clear_error();
}

int
tp_trust_new(tp_trust **out, const tp_config *config, const tp_trust_opts *opts,
	     tp_diag *diag)
{
	static const tp_trust_opts defaults = TP_TRUST_OPTS_INIT;
	const char *file, *path, *append;
	char *own_file = NULL, *own_path = NULL;
	tp_trust *t;
	int loaded;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version != TP_TRUST_OPTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "trust options version %u, want %u",
				    opts->version, TP_TRUST_OPTS_VERSION);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	t->opts = *opts;
	file = opts->ca_file;
	path = opts->ca_path;
	/*
	 * Postfix's own CA settings for verify and secure, when none given,
	 * as its SMTP client loads them (tls_set_ca_certificate_info(): the
	 * system's as well with tls_append_default_CA = yes, and only then).
	 */
	t->ca_source = file || path ? TP_CA_GIVEN : TP_CA_SYSTEM;
	if (file == NULL && path == NULL && config != NULL) {
		file = tp_config_get(config, "smtp_tls_CAfile");
		path = tp_config_get(config, "smtp_tls_CApath");
		append = tp_config_get(config, "tls_append_default_CA");
		if ((file && *file && (file = own_file = tp__config_postfix_file(config, file)) == NULL) ||
		    (path && *path && (path = own_path = tp__config_postfix_file(config, path)) == NULL)) {
			free(own_file);
			free(t);
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		}
		file = file && *file ? file : NULL;
		path = path && *path ? path : NULL;
		if (file || path)
			t->ca_source = append && strcasecmp(append, "yes") == 0
			    ? TP_CA_POSTFIX_AND_SYSTEM : TP_CA_POSTFIX;
	}
	ERR_clear_error();
	if ((t->store = X509_STORE_new()) == NULL) {
		free(own_file);
		free(own_path);
		free(t);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	loaded = (file == NULL && path == NULL) ||
		 X509_STORE_load_locations(t->store, file, path) == 1;
	if (!loaded)
		tp__diag_set(diag, TP_EIO, file ? file : path, 0,
			     "cannot load the CA %s", file ? "file" : "directory");
	else if (t->ca_source == TP_CA_SYSTEM || t->ca_source == TP_CA_POSTFIX_AND_SYSTEM)
		tp__ca_store_default(t->store);
	ERR_clear_error();
	free(own_file);
	free(own_path);
	if (!loaded) {
		tp_trust_free(t);
		return TP_EIO;
	}
	*out = t;
	return 0;
}

void
tp_trust_free(tp_trust *t)
{
	if (t == NULL)
		return;
	X509_STORE_free(t->store);
	for (size_t i = 0; i < LEAF_MEMO; i++)
		leaf_memo_clear(&t->leaves[i]);
	free(t);
}

void
tp_trust_result_free(tp_trust_result *pub)
{
	struct result *r = (struct result *)(void *)pub;

	if (r == NULL)
		return;
	free(r->v);
	tp_strarray_dispose(&r->texts);
	free(r);
}

static const char *keepf(struct result *r, const char *fmt, ...) TP_PRINTF(2, 3);

static const char *
keepf(struct result *r, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (tp__strarray_push(&r->texts, buf) != TP_OK)
		return NULL;
	return r->texts.strings[r->texts.count - 1];
}

static X509 *
der_x509(const tp_probe_cert *c)
{
	const unsigned char *p = c->der;

	return d2i_X509(NULL, &p, (long)c->der_len);
}

/* The leaf parsed, with its ids; NULL when it cannot be read (or memory). */
static const struct leaf_memo *
leaf_of(tp_trust *t, const tp_probe_cert *leaf)
{
	struct leaf_memo *m;

	for (size_t i = 0; i < LEAF_MEMO; i++) {
		m = &t->leaves[i];
		if (m->x != NULL && m->der_len == leaf->der_len &&
		    memcmp(m->der, leaf->der, leaf->der_len) == 0)
			return m;
	}
	m = &t->leaves[t->next_leaf];
	t->next_leaf = (t->next_leaf + 1) % LEAF_MEMO;
	leaf_memo_clear(m);
	if ((m->x = der_x509(leaf)) == NULL ||
	    tp__fingerprint_x509(m->id, m->x, "sha256", TP_PIN_PKEY, NULL) != 0 ||
	    tp__fingerprint_x509(m->cert256, m->x, "sha256", TP_PIN_CERT, NULL) != 0 ||
	    (m->der = malloc(leaf->der_len)) == NULL) {
		leaf_memo_clear(m);
		return NULL;
	}
	memcpy(m->der, leaf->der, leaf->der_len);
	m->der_len = leaf->der_len;
	return m;
}

/* The names the leaf is for (SANs, else the CN), for the message. */
static void
leaf_names(X509 *leaf, char *buf, size_t size)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && used + 2 < size; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *s;
		int len;

		if (g->type != GEN_DNS)
			continue;
		s = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		used += (size_t)snprintf(buf + used, size - used, "%s%.*s", used ? ", " : "",
					 len, (const char *)s);
	}
	GENERAL_NAMES_free(gens);
	if (used == 0)
		(void)X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName,
						buf, (int)size);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

/*
 * PKIX: the server's chain verifies to the store, and the leaf is for
 * the next hop (or a name below it), or for the MX host when DNS said
 * so securely.
 */
static void
check_pkix(tp_trust *t, struct result *r, const tp_delivery_key *k, const tp_server *s,
	   tp_evidence *ev, int *for_nexthop)
{
	const tp_probe_result *pr = s->probe;
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	const struct leaf_memo *m = leaf_of(t, &pr->chain[0]);
	X509 *leaf = m != NULL && X509_up_ref(m->x) ? m->x : NULL;
	char names[512], dot[TP_NEXTHOP_ASCII_MAX + 2];
	const char *candidates[3];
	size_t nc = 0, nexthop_names;

	*for_nexthop = 0;
	ERR_clear_error();
	if (chain == NULL || ctx == NULL || leaf == NULL) {
		ev->pkix_why = "the certificate cannot be read";
		goto out;
	}
	for (size_t i = 1; i < pr->chain_len; i++) {
		X509 *x = der_x509(&pr->chain[i]);

		if (x != NULL && !sk_X509_push(chain, x))
			X509_free(x);
	}
	if (X509_STORE_CTX_init(ctx, t->store, leaf, chain) != 1) {
		ev->pkix_why = "cannot set up verification";
		goto out;
	}
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), t->opts.now);
	if (X509_verify_cert(ctx) != 1) {
		ev->pkix_why = keepf(r, "not CA-valid (%s)",
				     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	switch (k->nexthop.kind) {
	case TP_NEXTHOP_DOMAIN:
		candidates[nc++] = k->nexthop.ascii;
		snprintf(dot, sizeof(dot), ".%s", k->nexthop.ascii);
		candidates[nc++] = dot;	/* dot-nexthop: any name below */
		if (k->mx_secure && s->host != NULL)
			candidates[nc++] = s->host;
		break;
	case TP_NEXTHOP_HOST:
		candidates[nc++] = k->nexthop.ascii;
		break;
	case TP_NEXTHOP_ADDRESS:
	case TP_NEXTHOP_PATTERN:
		break;
	}
	nexthop_names = k->nexthop.kind == TP_NEXTHOP_DOMAIN ? 2 : nc;
	for (size_t i = 0; i < nc; i++)
		if (X509_check_host(leaf, candidates[i], 0, 0, NULL) == 1) {
			ev->pkix = 1;
			*for_nexthop = i < nexthop_names;
			ev->pkix_name = keepf(r, "%s", candidates[i][0] == '.'
					      ? candidates[i] + 1 : candidates[i]);
			goto out;
		}
	leaf_names(leaf, names, sizeof(names));
	ev->pkix_why = nc == 0 ? keepf(r, "CA-valid, but %s names no host to check it against",
					k->key)
	    : keepf(r, "CA-valid, but for %s, not %s%s", names[0] ? names : "no name",
		    k->nexthop.ascii, k->mx_secure ? "" : " (the MX name counts only when DNSSEC says so)");
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
}

/* What check_pkix() found for each server of a key, found once. */
struct pkix_seen {
	int done;
	int pkix;
	int for_nexthop;	/* the name matched is the next hop's, not the MX host's */
	const char *why, *name;
};

static void
pkix_of(tp_trust *t, struct result *r, const tp_delivery_key *k, size_t j,
	struct pkix_seen *seen, tp_evidence *ev)
{
	if (!seen[j].done) {
		tp_evidence e;
		int for_nexthop;

		memset(&e, 0, sizeof(e));
		check_pkix(t, r, k, &k->servers[j], &e, &for_nexthop);
		seen[j] = (struct pkix_seen){ 1, e.pkix, for_nexthop, e.pkix_why, e.pkix_name };
	}
	ev->pkix = seen[j].pkix;
	ev->pkix_why = seen[j].why;
	ev->pkix_name = seen[j].name;
}

static int
in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; s != NULL && i < n; i++)
		if (list[i] != NULL && strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/*
 * Was the leaf named by the administrator: its certificate or public
 * key, in the digest the accepted fingerprint's length implies, so any
 * digest --accept documents works, not only the configured one.
 */
static int
accepted(const tp_trust_hints *h, const tp_probe_cert *leaf, const struct leaf_memo *m)
{
	for (size_t i = 0; i < h->accepted_count; i++) {
		char norm[TP_FINGERPRINT_MAX], fp[TP_FINGERPRINT_MAX];
		const char *digest;

		if (tp_pin_normalize(norm, h->accepted[i], NULL) != 0)
			continue;
		if (strcmp(norm, leaf->fingerprint) == 0 || strcmp(norm, leaf->pkey_fingerprint) == 0 ||
		    strcmp(norm, m->id) == 0 || strcmp(norm, m->cert256) == 0)
			return 1;
		if ((digest = tp_pin_digest(norm)) == NULL)
			continue;
		/* A digest OpenSSL refuses (md5 in FIPS mode) matches nothing. */
		if ((tp__fingerprint_x509(fp, m->x, digest, TP_PIN_CERT, NULL) == 0 &&
		     strcmp(norm, fp) == 0) ||
		    (tp__fingerprint_x509(fp, m->x, digest, TP_PIN_PKEY, NULL) == 0 &&
		     strcmp(norm, fp) == 0))
			return 1;
	}
	ERR_clear_error();
	return 0;
}

static int
same_key(const tp_trust_hints *h, const tp_client_info *in, const tp_delivery_key *k,
	 const tp_probe_cert *leaf, const char *key_id)
{
	if (in_list(h->keys, h->key_count, key_id) ||
	    in_list(h->keys, h->key_count, leaf->pkey_fingerprint) ||
	    in_list(in->pins, in->pin_count, leaf->pkey_fingerprint))
		return 1;
	/* Another server still shows a pinned certificate with this key. */
	for (size_t i = 0; i < k->server_count; i++) {
		const tp_server *s = &k->servers[i];

		if (s->outcome == TP_OUTCOME_MATCH && s->probe != NULL && s->probe->chain_len > 0 &&
		    strcmp(s->probe->chain[0].pkey_fingerprint, leaf->pkey_fingerprint) == 0)
			return 1;
	}
	return 0;
}

static const char *
iso(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
	return buf;
}

static void
decide(tp_trust *t, struct result *r, const tp_delivery_key *k, tp_candidate *c)
{
	const tp_trust_policy *p = &t->opts.policy;
	const tp_evidence *ev = &c->ev;
	char since[32];

	c->trusted = 1;
	if (ev->accepted)
		c->why = "accepted by the administrator (--accept)";
	else if ((p->flags & TP_TRUST_SAME_KEY) && ev->same_key)
		c->why = "same public key as the pinned certificate (a renewal)";
	else if ((p->flags & TP_TRUST_PKIX) && ev->pkix)
		c->why = keepf(r, "valid for %s from a trusted CA", ev->pkix_name);
	else if ((p->flags & TP_TRUST_DANE) && ev->dane)
		c->why = "matches the server's DNSSEC-validated TLSA records";
	else if ((p->flags & TP_TRUST_HOLD) && ev->consistent && ev->held)
		c->why = keepf(r, "presented by every server on every run since %s",
			       iso(since, sizeof(since), ev->seen_since));
	else if (p->flags & TP_TRUST_TOFU)
		c->why = "trusted on first use (--trust tofu)";
	else {
		char hold[160] = "";

		c->trusted = 0;
		if ((p->flags & TP_TRUST_HOLD) && ev->consistent)
			snprintf(hold, sizeof(hold), "; held since %s, trusted once held %.0f s",
				 iso(since, sizeof(since), ev->seen_since ? ev->seen_since
				     : t->opts.now), p->hold_seconds);
		else if ((p->flags & TP_TRUST_HOLD))
			snprintf(hold, sizeof(hold), "; not held: not every server presents it");
		c->why = keepf(r, "no evidence to trust it unattended (%s; %s; %s; seen at %zu of %zu server%s%s): confirm the fingerprint with the partner, then tlspolicy rotate %s --accept %s",
			       ev->same_key ? "same public key" : "a new public key",
			       ev->pkix ? "CA-valid" : ev->pkix_why ? ev->pkix_why : "not CA-valid",
			       ev->dane ? "DANE" : ev->dane_why ? ev->dane_why : "no DANE",
			       ev->seen_at, ev->servers, ev->servers == 1 ? "" : "s", hold,
			       k->key, c->fingerprint);
	}
}

int
tp_trust_evaluate(tp_trust_result **out, tp_trust *t, const tp_delivery *d, size_t i,
		  const tp_trust_hints *hints, tp_diag *diag)
{
	static const tp_trust_hints no_hints = TP_TRUST_HINTS_INIT;
	const tp_delivery_key *k = tp_delivery_key_at(d, i);
	const tp_client_info *in;
	struct result *r;
	struct pkix_seen *seen = NULL;
	size_t servers = 0;
	time_t now;

	*out = NULL;
	if (hints == NULL)
		hints = &no_hints;
	if (k == NULL || hints->version != TP_TRUST_HINTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "bad key index or hints version");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	now = t->opts.now ? t->opts.now : time(NULL);
	t->opts.now = now;
	in = tp_client_settings_info(k->settings);
	if ((seen = calloc(k->server_count ? k->server_count : 1, sizeof(*seen))) == NULL)
		goto nomem;
	for (size_t j = 0; j < k->server_count; j++) {
		const tp_server *s = &k->servers[j];

		if (s->probe != NULL && s->probe->status == TP_OK && s->probe->chain_len > 0)
			servers++;
	}
	for (size_t j = 0; j < k->server_count; j++) {
		const tp_server *s = &k->servers[j];
		const tp_probe_cert *leaf;
		tp_candidate *c = NULL, *v;
		const struct leaf_memo *m;
		const char *fp;

		if (s->outcome != TP_OUTCOME_MISMATCH)
			continue;
		leaf = &s->probe->chain[0];
		fp = hints->kind == TP_PIN_PKEY ? leaf->pkey_fingerprint : leaf->fingerprint;
		for (size_t n = 0; n < r->n; n++)
			if (strcmp(r->v[n].fingerprint, fp) == 0)
				c = &r->v[n];
		if (c != NULL) {
			c->ev.seen_at++;
			/* One server's evidence is enough for PKIX and DANE. */
			if (!c->ev.pkix)
				pkix_of(t, r, k, j, seen, &c->ev);
			if (s->dane && c->key_id != NULL) {
				c->ev.dane = 1;
				c->ev.dane_why = NULL;
			}
			continue;
		}
		m = leaf_of(t, leaf);
		if ((v = realloc(r->v, (r->n + 1) * sizeof(*v))) == NULL)
			goto nomem;
		r->v = v;
		c = &v[r->n++];
		memset(c, 0, sizeof(*c));
		c->leaf = leaf;
		c->fingerprint = fp;
		c->ev.seen_at = 1;
		c->ev.servers = servers;
		/*
		 * No evidence can be weighed (memory, most likely), yet the
		 * server presents it: a candidate all the same, refused below,
		 * never one silently passed over.
		 */
		if (m == NULL) {
			c->ev.pkix_why = c->ev.dane_why = "the certificate cannot be read";
			continue;
		}
		if ((c->key_id = keepf(r, "%s", m->id)) == NULL)
			goto nomem;
		c->ev.same_key = same_key(hints, in, k, leaf, m->id);
		c->ev.accepted = accepted(hints, leaf, m);
		pkix_of(t, r, k, j, seen, &c->ev);
		c->ev.dane = s->dane;
		if (!c->ev.dane)
			c->ev.dane_why = s->tlsa_error ? s->tlsa_error
			    : s->tlsa_count == 0 ? "no TLSA records"
			    : !s->tlsa_secure ? "TLSA records not DNSSEC-validated"
			    : "the TLSA records do not match";
	}
	/* Advice: would a level without pins do, for every server? */
	r->pub.all_pkix = r->pub.all_dane = servers > 0;
	r->pub.ca_source = t->ca_source;
	for (size_t j = 0; j < k->server_count && servers > 0; j++) {
		const tp_server *s = &k->servers[j];
		tp_evidence ev;

		if (s->probe == NULL || s->probe->status != TP_OK || s->probe->chain_len == 0)
			continue;
		memset(&ev, 0, sizeof(ev));
		if (r->pub.all_pkix) {
			pkix_of(t, r, k, j, seen, &ev);
			/*
			 * Level secure matches only the next hop and names below
			 * it (smtp_tls_secure_cert_match), never the MX host.
			 */
			r->pub.all_pkix = ev.pkix && seen[j].for_nexthop;
			if (ev.pkix)
				r->pub.pkix_name = ev.pkix_name;
		}
		r->pub.all_dane &= s->dane;
	}
	for (size_t n = 0; n < r->n; n++) {
		tp_candidate *c = &r->v[n];

		c->ev.consistent = c->ev.seen_at == c->ev.servers;
		if (hints->held != NULL && strcmp(hints->held, c->fingerprint) == 0 &&
		    hints->held_since > 0) {
			c->ev.seen_since = hints->held_since;
			c->ev.held = difftime(now, hints->held_since) >= t->opts.policy.hold_seconds;
		}
		if (c->key_id == NULL) {
			c->trusted = 0;
			c->why = keepf(r, "the certificate cannot be read here (out of memory?), so nothing can vouch for it: run again");
		} else
			decide(t, r, k, c);
		if (c->why == NULL)
			goto nomem;
	}
	free(seen);
	r->pub.candidates = r->v;
	r->pub.count = r->n;
	*out = &r->pub;
	return 0;
nomem:
	free(seen);
	tp_trust_result_free(&r->pub);
	return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
}
