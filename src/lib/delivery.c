/*
 * NAME
 *	delivery - what Postfix's SMTP client does for a policy key
 * SUMMARY
 *	See tlspolicy/delivery.h. The server list follows smtp_connect.c
 *	(smtp_connect_inet: MX lookup unless the next hop is bracketed or
 *	DNS is off; at most smtp_mx_address_limit addresses) and
 *	smtp_addr.c (smtp_domain_addr, smtp_host_addr: sort by preference,
 *	address family preference, smtp_balance_inet_proto). The outcome
 *	of a server follows tls_dane.c's fingerprint matching (certificate
 *	or public-key digest; only the key with raw public keys).
 * DESCRIPTION
 *	A run has three phases, each for all keys at once: MX lookups
 *	(one resolver run), address lookups of every host found (a second
 *	resolver run, each name asked once however many keys share it),
 *	then one prober run over every server Postfix may try. Each key
 *	keeps its hosts (name, preference, port) between the phases.
 *
 *	Strings the results point to live in the delivery's string list;
 *	server arrays are per key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "diag.h"
#include "hostport.h"
#include "ossl.h"
#include "tlspolicy/delivery.h"
#include "tlspolicy/fingerprint.h"
#include "tlspolicy/resolver.h"

/* A host whose addresses are wanted, in Postfix's order. */
struct want_host {
	const char *name;
	unsigned int preference;
	unsigned int port;
	size_t lookup;		/* index in the delivery's name list */
	size_t tlsa;		/* index in the delivery's TLSA list, or SIZE_MAX */
};

struct dkey {
	tp_delivery_key pub;
	tp_client_settings *settings;
	const char *value;	/* NULL: no entry */
	tp_strarray recorded;	/* annotation hosts, HOST:PORT */
	struct want_host *hosts;
	size_t nhosts;
	size_t mx_lookup;	/* resolver index, or SIZE_MAX */
	const char *unvouched;	/* why its hosts get no TLSA lookup; NULL */
	tp_server *servers;
	size_t nservers;
	size_t *probe_index;	/* per server: its result in the prober */
	const char **unused;	/* recorded hosts Postfix does not use */
	size_t nunused;
	int bad_key;		/* no next hop: no servers */
};

/* A server's TLSA records, looked up once for every key that needs them. */
struct tlsa_query {
	const char *name;
	unsigned int port;
	size_t lookup;		/* resolver index, or SIZE_MAX when refused */
	const char *error;	/* refused by the resolver: why */
};

/* A name looked up once for every key that needs it. */
struct name {
	const char *name;
	size_t lookup;		/* resolver index, or SIZE_MAX when refused */
	const char *error;	/* refused by the resolver: why */
};

struct tp_delivery {
	tp_delivery_opts opts;
	const tp_config *config;
	struct dkey *keys;
	size_t nkeys;
	struct name *names;
	size_t nnames;
	struct tlsa_query *tlsas;
	size_t ntlsas;
	tp_strarray owned;	/* strings results point to */
	tp_resolver *mx, *addr;
	tp_prober *prober;
	const char *digest;
	tp__client_reuse settings_reuse;	/* shared by the keys' client settings */
	int ran;
};

struct tp_verdict_impl {
	tp_verdict pub;
	tp_reason *reasons;
	size_t n;
	tp_strarray texts;
};

static const char *
keep(tp_delivery *d, const char *s)
{
	if (tp__strarray_push(&d->owned, s) != TP_OK)
		return NULL;
	return d->owned.strings[d->owned.count - 1];
}

static const char *keepf(tp_delivery *d, const char *fmt, ...) TP_PRINTF(2, 3);

static const char *
keepf(tp_delivery *d, const char *fmt, ...)
{
	char buf[TP_DIAG_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return keep(d, buf);
}

int
tp_delivery_new(tp_delivery **out, const tp_config *config,
		const tp_delivery_opts *opts, tp_diag *diag)
{
	static const tp_delivery_opts defaults = TP_DELIVERY_OPTS_INIT;
	tp_delivery *d;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version < 1 || opts->version > TP_DELIVERY_OPTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "delivery options version %u, want 1 to %u",
				    opts->version, TP_DELIVERY_OPTS_VERSION);
	if (!(opts->timeout > 0))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "timeout must be positive");
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	/* A version 1 caller's struct ends before dane. */
	if (opts->version == 1)
		memcpy(&d->opts, opts, offsetof(tp_delivery_opts, dane));
	else
		d->opts = *opts;
	d->config = config;
	if ((opts->dns_servers && (d->opts.dns_servers = keep(d, opts->dns_servers)) == NULL) ||
	    (opts->ehlo_name && (d->opts.ehlo_name = keep(d, opts->ehlo_name)) == NULL)) {
		tp_delivery_free(d);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	*out = d;
	return 0;
}

int
tp_delivery_add(size_t *out_index, tp_delivery *d, const char *key,
		const char *value, const tp_delivery_hints *hints, tp_diag *diag)
{
	struct dkey *v, *k;
	tp_diag kd = TP_DIAG_INIT;
	int rc, bad;

	if (d->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "cannot add a key after the run");
	if (hints != NULL && hints->version != TP_DELIVERY_HINTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "delivery hints version %u, want %u",
				    hints->version, TP_DELIVERY_HINTS_VERSION);
	v = realloc(d->keys, (d->nkeys + 1) * sizeof(*v));
	if (v == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	d->keys = v;
	k = &v[d->nkeys];
	memset(k, 0, sizeof(*k));
	k->mx_lookup = SIZE_MAX;
	if (key == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "no key");
	/* A key that is no next hop is never looked up: said per key. */
	bad = tp_nexthop_parse(&k->pub.nexthop, key, &kd) != 0;
	if ((rc = tp__client_settings_new_reusing(&k->settings, d->config, bad ? NULL : key,
						  value, &d->settings_reuse, diag)) != 0)
		return rc;
	d->nkeys++;		/* from here on, tp_delivery_free() frees k */
	if ((k->pub.key = keep(d, key)) == NULL ||
	    (value && (k->value = keep(d, value)) == NULL) ||
	    (bad && (k->pub.error = keepf(d, "%s: not a next-hop form Postfix looks up (%s)",
					  key, kd.message)) == NULL))
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	k->bad_key = bad;
	k->pub.settings = k->settings;
	if (hints != NULL) {
		for (size_t i = 0; i < hints->host_count; i++)
			if (tp__strarray_push(&k->recorded, hints->hosts[i]) != TP_OK)
				return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		if (hints->wrappermode)
			tp_client_settings_set_wrappermode(k->settings, 1);
	}
	if (out_index != NULL)
		*out_index = d->nkeys - 1;
	return 0;
}

static int
want_host(struct dkey *k, const char *name, unsigned int pref, unsigned int port)
{
	struct want_host *v = realloc(k->hosts, (k->nhosts + 1) * sizeof(*v));

	if (v == NULL)
		return TP_ENOMEM;
	k->hosts = v;
	v[k->nhosts].name = name;
	v[k->nhosts].preference = pref;
	v[k->nhosts].port = port;
	v[k->nhosts].lookup = SIZE_MAX;
	v[k->nhosts].tlsa = SIZE_MAX;
	k->nhosts++;
	return TP_OK;
}

/* The index of name in the delivery's name list, added when new. */
static int
name_index(tp_delivery *d, const char *name, size_t *index)
{
	struct name *v;

	for (size_t i = 0; i < d->nnames; i++)
		if (strcasecmp(d->names[i].name, name) == 0) {
			*index = i;
			return TP_OK;
		}
	if ((v = realloc(d->names, (d->nnames + 1) * sizeof(*v))) == NULL)
		return TP_ENOMEM;
	d->names = v;
	v[d->nnames].name = name;
	v[d->nnames].lookup = SIZE_MAX;
	v[d->nnames].error = NULL;
	*index = d->nnames++;
	return TP_OK;
}

/* The index of the TLSA query for name and port, added when new. */
static int
tlsa_index(tp_delivery *d, const char *name, unsigned int port, size_t *index)
{
	struct tlsa_query *v;

	for (size_t i = 0; i < d->ntlsas; i++)
		if (d->tlsas[i].port == port && strcasecmp(d->tlsas[i].name, name) == 0) {
			*index = i;
			return TP_OK;
		}
	if ((v = realloc(d->tlsas, (d->ntlsas + 1) * sizeof(*v))) == NULL)
		return TP_ENOMEM;
	d->tlsas = v;
	v[d->ntlsas].name = name;
	v[d->ntlsas].port = port;
	v[d->ntlsas].lookup = SIZE_MAX;
	v[d->ntlsas].error = NULL;
	*index = d->ntlsas++;
	return TP_OK;
}

/* c-ares' lookup order for smtp_host_lookup. */
static const char *
lookup_order(const tp_client_info *in)
{
	if (in->host_lookup_dns && in->host_lookup_native)
		return "bf";
	return in->host_lookup_dns ? "b" : "fb";
}

static int
new_resolver(tp_delivery *d, tp_resolver **out, tp_diag *diag)
{
	tp_resolver_opts ro = TP_RESOLVER_OPTS_INIT;

	ro.timeout = d->opts.timeout;
	ro.servers = d->opts.dns_servers;
	ro.lookups = d->nkeys ? lookup_order(tp_client_settings_info(d->keys[0].settings))
	    : NULL;
	return tp_resolver_new(out, &ro, diag);
}

/* Phase 1: where each key's servers come from; MX lookups started. */
static int
plan_hosts(tp_delivery *d, tp_diag *diag)
{
	size_t mx = 0;
	int rc;

	for (size_t i = 0; i < d->nkeys; i++) {
		struct dkey *k = &d->keys[i];
		const tp_nexthop *nh = &k->pub.nexthop;
		const tp_client_info *in = tp_client_settings_info(k->settings);

		if (k->bad_key)
			continue;
		switch (nh->kind) {
		case TP_NEXTHOP_PATTERN:
			if (k->recorded.count == 0) {
				k->pub.error = keepf(d, "%s matches the next hops below %s and names no server itself: record the hosts with 'tlspolicy set %s --fingerprint-from HOST'",
						     k->pub.key, nh->host, k->pub.key);
				if (k->pub.error == NULL)
					return TP_ENOMEM;
				break;
			}
			k->pub.servers_from = "recorded hosts";
			for (size_t h = 0; h < k->recorded.count; h++) {
				tp__hostport hp;
				const char *name;

				if (tp__hostport_parse(&hp, k->recorded.strings[h], NULL) != 0) {
					k->pub.error = keepf(d, "recorded host \"%s\" is no HOST:PORT",
							     k->recorded.strings[h]);
					if (k->pub.error == NULL)
						return TP_ENOMEM;
					break;
				}
				if ((name = keep(d, hp.host)) == NULL ||
				    want_host(k, name, 0, hp.port) != TP_OK)
					return TP_ENOMEM;
			}
			break;
		case TP_NEXTHOP_ADDRESS:
			k->pub.servers_from = "address";
			if (want_host(k, nh->ascii, 0, nh->port) != TP_OK)
				return TP_ENOMEM;
			break;
		case TP_NEXTHOP_HOST:
			k->pub.servers_from = "host";
			if (want_host(k, nh->ascii, 0, nh->port) != TP_OK)
				return TP_ENOMEM;
			break;
		case TP_NEXTHOP_DOMAIN:
			if (in->dns == TP_DNS_DISABLED) {
				/* smtp_connect_inet(): no MX lookup without DNS. */
				k->pub.servers_from = "host";
				if (want_host(k, nh->ascii, 0, nh->port) != TP_OK)
					return TP_ENOMEM;
				break;
			}
			k->pub.servers_from = "MX";
			if (d->mx == NULL && (rc = new_resolver(d, &d->mx, diag)) != 0)
				return rc;
			if (tp_resolver_add_mx(&k->mx_lookup, d->mx, nh->ascii, NULL) != 0) {
				k->mx_lookup = SIZE_MAX;
				k->pub.error = keepf(d, "%s: cannot look up MX hosts", nh->ascii);
				if (k->pub.error == NULL)
					return TP_ENOMEM;
				break;
			}
			mx++;
			break;
		}
	}
	if (mx > 0 && (rc = tp_resolver_run(d->mx, diag)) != 0)
		return rc;
	/* The MX hosts, by preference, on the next hop's port. */
	for (size_t i = 0; i < d->nkeys; i++) {
		struct dkey *k = &d->keys[i];
		const tp_resolve_result *r;

		if (k->mx_lookup == SIZE_MAX)
			continue;
		r = tp_resolver_result(d->mx, k->mx_lookup);
		if (r->status != TP_OK) {
			if ((k->pub.error = keep(d, r->error)) == NULL)
				return TP_ENOMEM;
			continue;
		}
		if (r->implicit)
			k->pub.servers_from = "host (no MX records)";
		k->pub.mx_secure = r->secure;
		/*
		 * RFC 7672 section 2.2.1; Postfix's dane_init() and
		 * tls_dane_resolve() with smtp_tls_force_insecure_host_tlsa_lookup
		 * = no: a forged, unsigned MX answer could otherwise send us to a
		 * host in a zone the forger signs, TLSA records and all. Names
		 * the next hop gives are the administrator's. For a domain
		 * without MX records mx_secure also covers its address answers,
		 * the only host addresses whose AD bit the resolver sees.
		 */
		if (!r->secure)
			k->unvouched = r->implicit
			    ? "the domain's MX and address answers are not DNSSEC-validated: no TLSA lookup"
			    : "the MX answer is not DNSSEC-validated: no TLSA lookup";
		for (size_t h = 0; h < r->host_count; h++) {
			const char *name = keep(d, r->hosts[h].name);

			if (name == NULL || want_host(k, name, r->hosts[h].preference,
						      k->pub.nexthop.port) != TP_OK)
				return TP_ENOMEM;
		}
	}
	return TP_OK;
}

/* Phase 2: addresses of every host, each name looked up once. */
static int
lookup_addresses(tp_delivery *d, tp_diag *diag)
{
	size_t wanted = 0;
	int rc;

	for (size_t i = 0; i < d->nkeys; i++) {
		struct dkey *k = &d->keys[i];

		for (size_t h = 0; h < k->nhosts; h++) {
			tp__hostport hp;
			char spec[TP_HOST_MAX + 16];

			/* An address is its own address: no lookup. */
			snprintf(spec, sizeof(spec), strchr(k->hosts[h].name, ':')
				 ? "[%s]" : "%s", k->hosts[h].name);
			if (tp__hostport_parse(&hp, spec, NULL) == 0 && hp.family != 0)
				continue;
			if (name_index(d, k->hosts[h].name, &k->hosts[h].lookup) != TP_OK)
				return TP_ENOMEM;
			/* DANE: TLSA records name servers, never addresses. */
			if (d->opts.dane && k->unvouched == NULL &&
			    tp_client_settings_info(k->settings)->level == TP_LEVEL_FINGERPRINT &&
			    tlsa_index(d, k->hosts[h].name, k->hosts[h].port, &k->hosts[h].tlsa) != TP_OK)
				return TP_ENOMEM;
		}
	}
	for (size_t n = 0; n < d->ntlsas; n++) {
		tp_diag nd = TP_DIAG_INIT;

		if (d->addr == NULL && (rc = new_resolver(d, &d->addr, diag)) != 0)
			return rc;
		if (tp_resolver_add_tlsa(&d->tlsas[n].lookup, d->addr, d->tlsas[n].name,
					 d->tlsas[n].port, &nd) != 0) {
			if (nd.status == TP_ENOMEM)
				return TP_ENOMEM;
			d->tlsas[n].lookup = SIZE_MAX;
			if ((d->tlsas[n].error = keep(d, nd.message)) == NULL)
				return TP_ENOMEM;
			continue;
		}
		wanted++;
	}
	for (size_t n = 0; n < d->nnames; n++) {
		tp_diag nd = TP_DIAG_INIT;

		if (d->addr == NULL && (rc = new_resolver(d, &d->addr, diag)) != 0)
			return rc;
		if (tp_resolver_add_host(&d->names[n].lookup, d->addr, d->names[n].name, &nd) != 0) {
			if (nd.status == TP_ENOMEM)
				return TP_ENOMEM;
			d->names[n].lookup = SIZE_MAX;
			if ((d->names[n].error = keep(d, nd.message)) == NULL)
				return TP_ENOMEM;
			continue;
		}
		wanted++;
	}
	if (wanted > 0 && (rc = tp_resolver_run(d->addr, diag)) != 0)
		return rc;
	return TP_OK;
}

static int
is_v6(const char *address)
{
	return address != NULL && strchr(address, ':') != NULL;
}

static int
add_server(const tp_delivery *d, struct dkey *k, const struct want_host *h,
	   const char *address, const char *error)
{
	tp_server *v = realloc(k->servers, (k->nservers + 1) * sizeof(*v));
	tp_server *s;

	if (v == NULL)
		return TP_ENOMEM;
	k->servers = v;
	s = &v[k->nservers++];
	memset(s, 0, sizeof(*s));
	s->host = h->name;
	s->address = address;
	s->port = h->port;
	s->preference = h->preference;
	s->error = error;
	if (h->tlsa != SIZE_MAX) {
		const struct tlsa_query *q = &d->tlsas[h->tlsa];
		const tp_resolve_result *r = q->lookup == SIZE_MAX ? NULL
		    : tp_resolver_result(d->addr, q->lookup);

		if (r == NULL)
			s->tlsa_error = q->error;
		else if (r->status != TP_OK)
			s->tlsa_error = r->error;
		else {
			s->tlsa = r->tlsa;
			s->tlsa_count = r->tlsa_count;
			s->tlsa_secure = r->secure;
		}
	} else
		s->tlsa_error = k->unvouched;
	return TP_OK;
}

/* dns_rr_compare_pref_*(): preference, then the preferred family. */
static int
server_before(const tp_server *a, const tp_server *b, int family_pref)
{
	if (a->preference != b->preference)
		return a->preference < b->preference;
	if (family_pref == 0 || a->address == NULL || b->address == NULL)
		return 0;
	return is_v6(a->address) != is_v6(b->address) &&
	       is_v6(a->address) == (family_pref == 6);
}

/*
 * smtp_balance_inet_proto(): when both families are present and the
 * limit cuts the list, keep a share of each, in list order.
 */
static void
balance(struct dkey *k, unsigned int limit)
{
	size_t v4 = 0, v6 = 0, keep4, keep6, n = 0;

	for (size_t i = 0; i < k->nservers; i++)
		if (k->servers[i].address != NULL)
			is_v6(k->servers[i].address) ? v6++ : v4++;
	if (limit == 0 || v4 == 0 || v6 == 0 || v4 + v6 <= limit)
		return;
	if (v6 <= limit / 2) {
		keep6 = v6;
		keep4 = limit - keep6;
	} else if (v4 <= limit / 2) {
		keep4 = v4;
		keep6 = limit - keep4;
	} else {
		size_t first_v4 = 0;

		for (size_t i = 0; i < k->nservers; i++)
			if (k->servers[i].address != NULL) {
				first_v4 = !is_v6(k->servers[i].address);
				break;
			}
		keep4 = (limit + first_v4) / 2;
		keep6 = limit - keep4;
	}
	for (size_t i = 0; i < k->nservers; i++) {
		tp_server *s = &k->servers[i];
		size_t *left = is_v6(s->address) ? &keep6 : &keep4;

		if (s->address == NULL)
			continue;
		if (*left > 0) {
			(*left)--;
			k->servers[n++] = *s;
		}
	}
	/* Failed lookups stay at the end, for their errors. */
	for (size_t i = 0; i < k->nservers; i++)
		if (k->servers[i].address == NULL && n < k->nservers)
			k->servers[n++] = k->servers[i];
	k->nservers = n;
}

/* Phase 3: each key's servers in Postfix's order, and which it tries. */
static int
build_servers(tp_delivery *d, struct dkey *k)
{
	const tp_client_info *in = tp_client_settings_info(k->settings);
	unsigned int limit = in->mx_address_limit;
	size_t n, usable = 0;

	for (size_t h = 0; h < k->nhosts; h++) {
		const struct want_host *w = &k->hosts[h];
		const struct name *nm = w->lookup == SIZE_MAX ? NULL : &d->names[w->lookup];
		const tp_resolve_result *r;
		size_t before = k->nservers;

		if (nm == NULL) {
			/* An address: itself, if its family is in use. */
			if (!(in->families & (is_v6(w->name) ? TP_FAMILY_IPV6 : TP_FAMILY_IPV4))) {
				if (add_server(d, k, w, NULL, keepf(d, "%s: address family not in use (inet_protocols)",
								 w->name)) != TP_OK)
					return TP_ENOMEM;
				continue;
			}
			if (add_server(d, k, w, w->name, NULL) != TP_OK)
				return TP_ENOMEM;
			continue;
		}
		if (nm->lookup == SIZE_MAX) {
			if (add_server(d, k, w, NULL, nm->error) != TP_OK)
				return TP_ENOMEM;
			continue;
		}
		r = tp_resolver_result(d->addr, nm->lookup);
		if (r->status != TP_OK) {
			if (add_server(d, k, w, NULL, r->error) != TP_OK)
				return TP_ENOMEM;
			continue;
		}
		for (size_t a = 0; a < r->address_count; a++) {
			unsigned int fam = is_v6(r->addresses[a]) ? TP_FAMILY_IPV6 : TP_FAMILY_IPV4;

			if (!(in->families & fam))
				continue;
			if (add_server(d, k, w, r->addresses[a], NULL) != TP_OK)
				return TP_ENOMEM;
		}
		if (k->nservers == before &&
		    add_server(d, k, w, NULL, keepf(d, "%s: no address of a family in use (inet_protocols)",
						 w->name)) != TP_OK)
			return TP_ENOMEM;
	}
	/* A stable insertion sort: the lists are short. */
	for (size_t i = 1; i < k->nservers; i++) {
		tp_server s = k->servers[i];
		size_t j = i;

		while (j > 0 && server_before(&s, &k->servers[j - 1], in->address_preference)) {
			k->servers[j] = k->servers[j - 1];
			j--;
		}
		k->servers[j] = s;
	}
	if (in->balance_inet_protocols)
		balance(k, limit);
	n = k->nservers;
	for (size_t i = 0; i < n; i++) {
		tp_server *s = &k->servers[i];

		if (s->address == NULL) {
			s->tried = TP_TRY_NO;
			continue;
		}
		s->tried = limit == 0 || usable < limit ? TP_TRY_YES : TP_TRY_NO;
		usable++;
	}
	/*
	 * Postfix shuffles each preference group (smtp_randomize_addresses):
	 * a group the limit cuts may be tried by any of its members.
	 */
	if (in->randomize_addresses && limit > 0) {
		/* The one group the cut can fall in: the last server tried's. */
		const tp_server *last = NULL;
		int cut = 0;

		for (size_t i = 0; i < n; i++)
			if (k->servers[i].tried == TP_TRY_YES)
				last = &k->servers[i];
		for (size_t i = 0; last != NULL && i < n; i++)
			cut |= k->servers[i].address != NULL && k->servers[i].tried == TP_TRY_NO &&
			       k->servers[i].preference == last->preference;
		for (size_t i = 0; cut && i < n; i++)
			if (k->servers[i].address != NULL &&
			    k->servers[i].preference == last->preference)
				k->servers[i].tried = TP_TRY_MAYBE;
	}
	if (k->nservers == 0 && k->pub.error == NULL &&
	    (k->pub.error = keepf(d, "%s: no servers found", k->pub.key)) == NULL)
		return TP_ENOMEM;
	k->pub.servers = k->servers;
	k->pub.server_count = k->nservers;
	return TP_OK;
}

/* Recorded hosts (the annotation) that are none of Postfix's servers. */
static int
compare_recorded(struct dkey *k)
{
	if (k->pub.nexthop.kind == TP_NEXTHOP_PATTERN || k->recorded.count == 0)
		return TP_OK;
	for (size_t r = 0; r < k->recorded.count; r++) {
		tp__hostport hp;
		int used = 0;
		const char **v;

		if (tp__hostport_parse(&hp, k->recorded.strings[r], NULL) != 0)
			continue;
		for (size_t i = 0; i < k->nservers && !used; i++) {
			const tp_server *s = &k->servers[i];

			used = s->port == hp.port &&
			       ((s->host && strcasecmp(s->host, hp.host) == 0) ||
				(s->address && strcasecmp(s->address, hp.host) == 0));
		}
		if (used)
			continue;
		if ((v = realloc(k->unused, (k->nunused + 1) * sizeof(*v))) == NULL)
			return TP_ENOMEM;
		k->unused = v;
		v[k->nunused++] = k->recorded.strings[r];
	}
	k->pub.recorded_unused = k->unused;
	k->pub.recorded_unused_count = k->nunused;
	return TP_OK;
}

static void
match_server(tp_server *s, const tp_client_info *in)
{
	const tp_probe_result *r = s->probe;
	const tp_probe_cert *leaf;

	if (r->status != TP_OK || r->chain_len == 0) {
		s->outcome = r->tls_failed ? TP_OUTCOME_TLS_FAILED : TP_OUTCOME_UNREACHABLE;
		s->error = r->error;
		return;
	}
	leaf = &r->chain[0];
	s->outcome = TP_OUTCOME_MISMATCH;
	for (size_t i = 0; i < in->pin_count; i++) {
		if (strcmp(in->pins[i], leaf->pkey_fingerprint) == 0) {
			s->outcome = TP_OUTCOME_MATCH;
			s->pin = in->pins[i];
			s->by_pkey = 1;
			return;
		}
		/* A raw public key has no certificate to match. */
		if (!in->enable_rpk && strcmp(in->pins[i], leaf->fingerprint) == 0) {
			s->outcome = TP_OUTCOME_MATCH;
			s->pin = in->pins[i];
			return;
		}
	}
}

/*
 * What makes two probes the same conversation: the server (host,
 * address, port) and everything Postfix's client settings change in the
 * SMTP and TLS exchange. Entries that differ only in their pins (the
 * common case: many domains behind one provider's MX) share one probe.
 */
static int
conn_signature(tp_buf *b, const struct dkey *k, const tp_server *s)
{
	const tp_client_info *in = tp_client_settings_info(k->settings);
	const char *sni = tp_client_settings_sni(k->settings, s->host);

	if (in->servername && strcmp(in->servername, "nexthop") == 0)
		sni = k->pub.nexthop.ascii;
	b->size = 0;
	/* With DANE the next hop is a reference name too. */
	return tp__buf_printf(b, "%s|%s|%s|%u|%s|%s|%s|%s|%u|%d|%d|%d|%d|%u|%d|%s|%s|%s|%s|%s|%s",
			      s->tlsa_secure && s->tlsa_count ? k->pub.nexthop.ascii : "",
			      s->host, s->address, s->port, sni ? sni : "",
			      in->cipherlist ? in->cipherlist : "", in->groups ? in->groups : "",
			      in->helo_name ? in->helo_name : "", in->protocols_excluded,
			      in->min_version, in->max_version, in->security_level,
			      in->wrappermode, in->families, in->address_preference,
			      in->cert_file ? in->cert_file : "", in->key_file ? in->key_file : "",
			      in->eccert_file ? in->eccert_file : "",
			      in->eckey_file ? in->eckey_file : "",
			      in->chain_files ? in->chain_files : "",
			      in->tls_error ? in->tls_error : "");
}

/* Signatures seen, for probing each conversation once (open addressing). */
struct sigset {
	char **sig;
	size_t *index;
	size_t size;		/* a power of two, at least twice the entries */
};

static size_t
sig_hash(const char *s)
{
	size_t h = 1469598103934665603u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

/* The slot for sig: where it is, or the empty one where it belongs. */
static size_t
sig_slot(const struct sigset *set, const char *sig)
{
	size_t i = sig_hash(sig) & (set->size - 1);

	while (set->sig[i] != NULL && strcmp(set->sig[i], sig) != 0)
		i = (i + 1) & (set->size - 1);
	return i;
}

static void
sigset_dispose(struct sigset *set)
{
	for (size_t i = 0; set->sig && i < set->size; i++)
		free(set->sig[i]);
	free(set->sig);
	free(set->index);
}

/*
 * Phase 4: probe every server Postfix may try, of fingerprint entries,
 * each distinct conversation once, all of them at once (up to jobs).
 */
static int
probe_servers(tp_delivery *d, tp_diag *diag)
{
	tp_probe_opts po = TP_PROBE_OPTS_INIT;
	struct sigset set = { NULL, NULL, 0 };
	tp_buf sig = TP_BUF_INIT;
	size_t total = 0, added = 0;
	int rc = TP_ENOMEM;

	po.timeout = d->opts.timeout;
	po.jobs = d->opts.jobs;
	po.dns_servers = d->opts.dns_servers;
	po.trace = d->opts.trace;
	po.trace_payload = d->opts.trace_payload;
	po.progress = d->opts.progress;
	po.progress_payload = d->opts.progress_payload;
	po.ehlo_name = d->opts.ehlo_name;
	po.digest = d->digest;
	for (size_t i = 0; i < d->nkeys; i++)
		total += d->keys[i].nservers;
	for (set.size = 16; set.size < 2 * total; set.size *= 2)
		;
	if ((set.sig = calloc(set.size, sizeof(*set.sig))) == NULL ||
	    (set.index = calloc(set.size, sizeof(*set.index))) == NULL) {
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		goto out;
	}
	if ((rc = tp_prober_new(&d->prober, &po, diag)) != 0)
		goto out;
	for (size_t i = 0; i < d->nkeys; i++) {
		struct dkey *k = &d->keys[i];
		const tp_client_info *in = tp_client_settings_info(k->settings);

		if (in->level != TP_LEVEL_FINGERPRINT || k->nservers == 0)
			continue;
		if ((k->probe_index = calloc(k->nservers, sizeof(*k->probe_index))) == NULL) {
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			goto out;
		}
		for (size_t j = 0; j < k->nservers; j++) {
			tp_probe_target t = TP_PROBE_TARGET_INIT;
			tp_server *s = &k->servers[j];
			size_t slot;

			if (s->address == NULL || s->tried == TP_TRY_NO)
				continue;
			if (conn_signature(&sig, k, s) != TP_OK) {
				rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
				goto out;
			}
			slot = sig_slot(&set, sig.ptr);
			if (set.sig[slot] != NULL) {
				k->probe_index[j] = set.index[slot];
				continue;
			}
			t.host = s->host;
			t.address = s->address;
			t.port = s->port;
			t.settings = k->settings;
			t.nexthop = k->pub.nexthop.ascii;
			/* Postfix uses TLSA records only when DNSSEC vouches for them. */
			if (s->tlsa_secure && s->tlsa_count > 0) {
				t.tlsa = s->tlsa;
				t.tlsa_count = s->tlsa_count;
			}
			if (tp_prober_add_target(&k->probe_index[j], d->prober, &t, diag) != 0) {
				rc = diag ? diag->status : TP_EUSAGE;
				if (rc != TP_ENOMEM) {
					/* A name Postfix took that we cannot probe. */
					s->error = keep(d, diag ? diag->message : "cannot probe");
					s->outcome = TP_OUTCOME_UNREACHABLE;
					rc = 0;
					continue;
				}
				goto out;
			}
			if ((set.sig[slot] = strdup(sig.ptr)) == NULL) {
				rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
				goto out;
			}
			set.index[slot] = k->probe_index[j];
			added++;
		}
	}
	if (added > 0 && (rc = tp_prober_run(d->prober, diag)) != 0)
		goto out;
	for (size_t i = 0; i < d->nkeys; i++) {
		struct dkey *k = &d->keys[i];
		const tp_client_info *in = tp_client_settings_info(k->settings);

		if (in->level != TP_LEVEL_FINGERPRINT)
			continue;
		for (size_t j = 0; j < k->nservers; j++) {
			tp_server *s = &k->servers[j];

			if (s->address == NULL || s->tried == TP_TRY_NO ||
			    s->outcome == TP_OUTCOME_UNREACHABLE)
				continue;
			s->probe = tp_prober_result(d->prober, k->probe_index[j]);
			if (s->probe != NULL)
				match_server(s, in);
			s->dane = s->probe != NULL && s->probe->dane == 1;
		}
	}
	rc = 0;
out:
	tp_buf_dispose(&sig);
	sigset_dispose(&set);
	return rc;
}

int
tp_delivery_run(tp_delivery *d, tp_diag *diag)
{
	int rc;

	if (d->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "a delivery runs only once");
	d->ran = 1;
	d->digest = "sha256";
	if (d->config != NULL && tp_digest_check(tp_config_digest(d->config)) == 0)
		d->digest = tp_config_digest(d->config);
	if ((rc = plan_hosts(d, diag)) != 0 || (rc = lookup_addresses(d, diag)) != 0)
		return rc == TP_ENOMEM ? tp__diag_set(diag, rc, NULL, 0, "out of memory") : rc;
	for (size_t i = 0; i < d->nkeys; i++)
		if (build_servers(d, &d->keys[i]) != TP_OK ||
		    compare_recorded(&d->keys[i]) != TP_OK)
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return probe_servers(d, diag);
}

size_t
tp_delivery_count(const tp_delivery *d)
{
	return d ? d->nkeys : 0;
}

const tp_delivery_key *
tp_delivery_key_at(const tp_delivery *d, size_t i)
{
	return d && i < d->nkeys ? &d->keys[i].pub : NULL;
}

void
tp_delivery_free(tp_delivery *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nkeys; i++) {
		tp_client_settings_free(d->keys[i].settings);
		tp_strarray_dispose(&d->keys[i].recorded);
		free(d->keys[i].hosts);
		free(d->keys[i].servers);
		free(d->keys[i].probe_index);
		free(d->keys[i].unused);
	}
	free(d->keys);
	free(d->names);
	free(d->tlsas);
	tp_resolver_free(d->mx);
	tp_resolver_free(d->addr);
	tp_prober_free(d->prober);
	tp__client_reuse_dispose(&d->settings_reuse);
	tp_strarray_dispose(&d->owned);
	free(d);
}

/* ---- verdicts ---- */

static const int severity[] = {
	[TP_STATE_OK] = 0, [TP_STATE_UNKNOWN] = 1,
	[TP_STATE_WARNING] = 2, [TP_STATE_CRITICAL] = 3,
};

int
tp_state_worse(tp_state a, tp_state b)
{
	return severity[a] > severity[b];
}

const char *
tp_state_name(tp_state state)
{
	switch (state) {
	case TP_STATE_OK:
		return "OK";
	case TP_STATE_WARNING:
		return "WARNING";
	case TP_STATE_CRITICAL:
		return "CRITICAL";
	case TP_STATE_UNKNOWN:
		return "UNKNOWN";
	}
	return "UNKNOWN";
}

const char *
tp_outcome_name(tp_outcome outcome)
{
	switch (outcome) {
	case TP_OUTCOME_NOT_PROBED:
		return "not probed";
	case TP_OUTCOME_MATCH:
		return "match";
	case TP_OUTCOME_MISMATCH:
		return "mismatch";
	case TP_OUTCOME_TLS_FAILED:
		return "TLS failed";
	case TP_OUTCOME_UNREACHABLE:
		return "unreachable";
	}
	return "?";
}

int
tp_verdict_add(tp_verdict *pub, tp_state state, const char *text)
{
	struct tp_verdict_impl *v = (struct tp_verdict_impl *)(void *)pub;
	tp_reason *r;
	size_t at;

	if (tp__strarray_push(&v->texts, text) != TP_OK)
		return TP_ENOMEM;
	if ((r = realloc(v->reasons, (v->n + 1) * sizeof(*r))) == NULL)
		return TP_ENOMEM;
	v->reasons = r;
	/* Worst first; among equals, in the order given. */
	for (at = v->n; at > 0 && tp_state_worse(state, r[at - 1].state); at--)
		r[at] = r[at - 1];
	r[at].state = state;
	r[at].text = v->texts.strings[v->texts.count - 1];
	v->n++;
	v->pub.reasons = v->reasons;
	v->pub.reason_count = v->n;
	if (tp_state_worse(state, v->pub.state))
		v->pub.state = state;
	return TP_OK;
}

static int verdict_addf(tp_verdict *v, tp_state state, const char *fmt, ...)
	TP_PRINTF(3, 4);

static int
verdict_addf(tp_verdict *v, tp_state state, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return tp_verdict_add(v, state, buf);
}

void
tp_verdict_free(tp_verdict *pub)
{
	struct tp_verdict_impl *v = (struct tp_verdict_impl *)(void *)pub;

	if (v == NULL)
		return;
	free(v->reasons);
	tp_strarray_dispose(&v->texts);
	free(v);
}

static const char *
iso_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
	return buf;
}

/* "host[address]:port", or "address:port" when the host is the address. */
static const char *
server_label(char *buf, size_t size, const tp_server *s)
{
	if (s->address == NULL || strcmp(s->host, s->address) == 0)
		snprintf(buf, size, is_v6(s->host) ? "[%s]:%u" : "%s:%u", s->host, s->port);
	else
		snprintf(buf, size, "%s[%s]:%u", s->host, s->address, s->port);
	return buf;
}

static int
judge_pins(tp_verdict *v, const tp_client_info *in)
{
	size_t want = tp_digest_size(in->digest), usable = 0;
	int rc = TP_OK;

	if (want == 0)
		return TP_OK;	/* the digest error is in tls_error */
	for (size_t i = 0; i < in->pin_count; i++)
		usable += (strlen(in->pins[i]) + 1) / 3 == want;
	for (size_t i = 0; i < in->pin_count && rc == TP_OK; i++) {
		const char *pd = tp_pin_digest(in->pins[i]);

		if ((strlen(in->pins[i]) + 1) / 3 != want)
			rc = verdict_addf(v, usable ? TP_STATE_WARNING : TP_STATE_CRITICAL,
					  "pin %s is %s, but Postfix compares %s fingerprints: it never matches%s",
					  in->pins[i], pd ? pd : "of no known digest", in->digest,
					  usable ? "" : "; no pin can match, every delivery is deferred");
	}
	return rc;
}

/*
 * Postfix tries the servers in order and delivers to the first that
 * verifies; a TLS failure or a mismatch only moves it to the next. So
 * failures are CRITICAL when nothing matches (the mail is deferred) and
 * WARNING when something does (deliveries are slowed, or fail when
 * Postfix picks the failing servers at random).
 */
static int
judge_servers(tp_verdict *v, const tp_delivery_key *k, const tp_client_info *in,
	      const tp_verdict_opts *o)
{
	char label[TP_HOST_MAX + 80], date[32];
	size_t maybe_matched = 0;
	tp_state fail, lost;
	int rc = TP_OK, first_matches = -1;

	for (size_t i = 0; i < k->server_count; i++) {
		const tp_server *s = &k->servers[i];

		if (s->tried == TP_TRY_NO && s->address != NULL)
			continue;
		if (first_matches < 0)
			first_matches = s->tried == TP_TRY_YES && s->outcome == TP_OUTCOME_MATCH;
		v->servers++;
		if (s->address == NULL) {
			v->unreachable++;
			continue;
		}
		switch (s->outcome) {
		case TP_OUTCOME_MATCH:
			v->matched++;
			maybe_matched += s->tried == TP_TRY_MAYBE;
			break;
		case TP_OUTCOME_MISMATCH:
			v->mismatched++;
			break;
		case TP_OUTCOME_TLS_FAILED:
			v->tls_failed++;
			break;
		case TP_OUTCOME_NOT_PROBED:
		case TP_OUTCOME_UNREACHABLE:
			v->unreachable++;
			break;
		}
	}
	fail = v->matched > 0 ? TP_STATE_WARNING : TP_STATE_CRITICAL;
	lost = v->matched > 0 ? TP_STATE_WARNING : TP_STATE_UNKNOWN;
	for (size_t i = 0; i < k->server_count && rc == TP_OK; i++) {
		const tp_server *s = &k->servers[i];
		const tp_probe_cert *leaf;
		double days;

		if (s->tried == TP_TRY_NO && s->address != NULL)
			continue;
		server_label(label, sizeof(label), s);
		if (s->address == NULL) {
			rc = verdict_addf(v, lost, "%s", s->error ? s->error : label);
			continue;
		}
		switch (s->outcome) {
		case TP_OUTCOME_NOT_PROBED:
		case TP_OUTCOME_UNREACHABLE:
			rc = verdict_addf(v, lost, "%s", s->error ? s->error : "not probed");
			break;
		case TP_OUTCOME_TLS_FAILED:
			rc = verdict_addf(v, fail, "%s: no TLS with Postfix's settings (%s): Postfix defers mail for this server",
					  label, s->error ? s->error : "?");
			break;
		case TP_OUTCOME_MISMATCH:
			leaf = &s->probe->chain[0];
			rc = verdict_addf(v, fail, "%s presents %s cert %s (%s, issuer %s, until %s), not pinned: Postfix defers mail for this server (Server certificate not verified)%s",
					  label, in->digest, leaf->fingerprint, leaf->subject,
					  leaf->issuer, iso_time(date, sizeof(date), leaf->not_after),
					  in->enable_rpk ? "; with raw public keys only public-key pins can match" : "");
			break;
		case TP_OUTCOME_MATCH:
			leaf = &s->probe->chain[0];
			if (v->first_expiry == 0 || leaf->not_after < v->first_expiry)
				v->first_expiry = leaf->not_after;
			days = difftime(leaf->not_after, o->now) / 86400.0;
			if (leaf->not_after < o->now)
				rc = verdict_addf(v, TP_STATE_WARNING, "%s: pinned certificate %s expired on %s (Postfix still accepts it at this level; expect it to be replaced)",
						  label, leaf->subject, iso_time(date, sizeof(date), leaf->not_after));
			else if (o->critical_days >= 0 && days < (double)o->critical_days)
				rc = verdict_addf(v, TP_STATE_CRITICAL, "%s: pinned certificate %s expires in %ld day%s (%s)",
						  label, leaf->subject, (long)days, (long)days == 1 ? "" : "s",
						  iso_time(date, sizeof(date), leaf->not_after));
			else if (days < (double)o->warn_days)
				rc = verdict_addf(v, TP_STATE_WARNING, "%s: pinned certificate %s expires in %ld day%s (%s)",
						  label, leaf->subject, (long)days, (long)days == 1 ? "" : "s",
						  iso_time(date, sizeof(date), leaf->not_after));
			break;
		}
	}
	if (rc != TP_OK)
		return rc;
	if (v->matched > 0 && v->matched < v->servers)
		rc = verdict_addf(v, TP_STATE_WARNING, "%zu of %zu servers Postfix tries present a pinned certificate: %s%s",
				  v->matched, v->servers,
				  first_matches ? "mail goes to the first, and is deferred whenever Postfix reaches another"
				  : "mail gets through after the failing ones are tried",
				  maybe_matched == v->matched ? ", and only from servers Postfix picks at random at smtp_mx_address_limit" : "");
	else if (v->matched == 0 && v->servers > 0 && v->mismatched + v->tls_failed == 0)
		rc = verdict_addf(v, TP_STATE_UNKNOWN, "no server could be probed");
	return rc;
}

int
tp_delivery_verdict(tp_verdict **out, const tp_delivery *d, size_t i,
		    const tp_verdict_opts *opts, tp_diag *diag)
{
	static const tp_verdict_opts defaults = TP_VERDICT_OPTS_INIT;
	const tp_delivery_key *k = tp_delivery_key_at(d, i);
	const tp_client_info *in;
	struct tp_verdict_impl *v;
	tp_verdict_opts o;
	char date[32];
	int rc = TP_OK;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (k == NULL || opts->version != TP_VERDICT_OPTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "bad key index or options version");
	o = *opts;
	if (o.now == 0)
		o.now = time(NULL);
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	v->pub.state = TP_STATE_OK;
	in = tp_client_settings_info(k->settings);
	if (!in->valid)
		rc = verdict_addf(&v->pub, TP_STATE_CRITICAL,
				  "Postfix would reject this entry (%s): mail to it is deferred (client TLS configuration problem)",
				  in->problem);
	else if (in->level != TP_LEVEL_FINGERPRINT)
		rc = verdict_addf(&v->pub, TP_STATE_OK, "level %s: no pins to check",
				  tp_level_name(in->level));
	else {
		if (in->tls_error != NULL)
			rc = verdict_addf(&v->pub, TP_STATE_CRITICAL,
					  "Postfix cannot set up TLS (%s): mail to it is deferred",
					  in->tls_error);
		if (rc == TP_OK)
			rc = judge_pins(&v->pub, in);
		if (rc == TP_OK && in->enable_rpk)
			rc = verdict_addf(&v->pub, TP_STATE_WARNING,
					  "raw public keys are asked for (enable_rpk): certificate pins never match, only public-key pins do");
		if (rc == TP_OK && k->error != NULL)
			rc = verdict_addf(&v->pub, TP_STATE_UNKNOWN, "%s", k->error);
		if (rc == TP_OK)
			rc = judge_servers(&v->pub, k, in, &o);
		for (size_t r = 0; rc == TP_OK && r < k->recorded_unused_count; r++)
			rc = verdict_addf(&v->pub, TP_STATE_OK,
					  "pins were taken from %s, which is not among the servers Postfix uses for %s",
					  k->recorded_unused[r], k->key);
		if (rc == TP_OK && v->pub.state == TP_STATE_OK && v->pub.matched > 0)
			rc = verdict_addf(&v->pub, TP_STATE_OK,
					  "%zu server%s present%s a pinned certificate or key; the first expires %s",
					  v->pub.matched, v->pub.matched == 1 ? "" : "s",
					  v->pub.matched == 1 ? "s" : "",
					  iso_time(date, sizeof(date), v->pub.first_expiry));
	}
	if (rc != TP_OK) {
		tp_verdict_free(&v->pub);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	*out = &v->pub;
	return 0;
}
