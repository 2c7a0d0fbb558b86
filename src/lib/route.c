/*
 * NAME
 *	route - the next hop Postfix delivers a remote recipient to
 * SUMMARY
 *	What trivial-rewrite(8)'s resolve_addr() and transport_lookup() decide
 *	for a recipient in a remote domain (Postfix 3.7), so that a deferred
 *	recipient can be tied to the smtp_tls_policy_maps entry its mail
 *	met.
 * DESCRIPTION
 *	See tlspolicy/queue.h. The lookups go through tp_maps, one tp_maps per
 *	map of transport_maps and of relay_domains, because Postfix asks the
 *	partial keys (bare address, domain, parent domains) only of tables
 *	with fixed-string keys, and tp_maps has no such filter: each map is
 *	asked alone, in order, and skipped when Postfix would skip it.
 * DIAGNOSTICS
 *	TP_EINVALID, TP_EUNSUPPORTED, TP_EIO, TP_EDB, TP_ENOMEM, TP_EUSAGE.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "casefold.h"
#include "diag.h"
#include "maps_internal.h"
#include "tlspolicy/maps.h"
#include "tlspolicy/queue.h"

/* Postfix's CHARS_COMMA_SP: how lists in main.cf and next hops split. */
#define LIST_SEP ", \t\r\n"

struct map_ref {
	tp_maps *maps;		/* one map */
	const tp_map_info *info;
};

struct tp_route {
	struct map_ref *transport;	/* transport_maps, in order */
	size_t ntransport;
	int parent_style;	/* transport_maps in parent_domain_matches_subdomains */
	char *delim;		/* recipient_delimiter ("" when none) */
	int ownreq_special;	/* owner_request_special */
	char *double_bounce;	/* double_bounce_sender, folded */
	int utf8;		/* smtputf8_enable: casefold() folds UTF-8 */
	tp__folder folder;
	tp_buf folded;
	char *relayhost;
	char *default_transport;
	char *relay_transport;
	/* relay_domains: literal patterns and tables, in order. */
	char **relay_pat;	/* pattern, or NULL where relay_map[i] is a table */
	struct map_ref *relay_map;
	int *relay_neg;
	size_t nrelay;
	int relay_parent_style;	/* relay_domains in parent_domain_matches_subdomains */
	/* The last result and its storage. */
	tp_route_result result;
	char *channel, *nexthop, *key, *nexthop_split;
	const char **dests;
	size_t ndests_alloc;
	tp_buf scratch;
};

static char *
dup_default(const tp_config *config, const char *name, const char *dflt)
{
	const char *v = tp_config_get(config, name);

	return strdup(v ? v : dflt);
}

/* Does the comma/space list contain word (case-insensitively, as
 * match_parent_style() compares parameter names)? */
static int
list_has(const char *list, const char *word)
{
	size_t n = strlen(word);

	while (list && *list) {
		size_t len;

		list += strspn(list, LIST_SEP);
		len = strcspn(list, LIST_SEP);
		if (len == n && strncasecmp(list, word, n) == 0)
			return 1;
		list += len;
	}
	return 0;
}

/* A "type:name" map as Postfix tells one in a list: a colon before any
 * '/' or '{' (a bare path or a literal is not a table). */
static int
is_table(const char *s)
{
	size_t n = strcspn(s, ":/{");

	return s[n] == ':' && n > 0;
}

static int
open_one(struct map_ref *ref, const char *spec, const tp_config *config,
	 unsigned flags, tp_diag *diag)
{
	int rc = tp__maps_open_spec(&ref->maps, spec, config, flags, diag);

	if (rc < 0)
		return rc;
	ref->info = tp_maps_at(ref->maps, 0);
	return TP_OK;
}

static int
open_transport_maps(tp_route *r, const tp_config *config, tp_diag *diag)
{
	const char *list = tp_config_get(config, "transport_maps");
	char *copy, *cp, *item;
	int rc = TP_OK;

	if (list == NULL || *list == 0)
		return TP_OK;
	if ((copy = strdup(list)) == NULL)
		return TP_ENOMEM;
	cp = copy;
	while (rc == TP_OK && (item = tp__strtokq(&cp, LIST_SEP)) != NULL) {
		struct map_ref *m = realloc(r->transport, (r->ntransport + 1) * sizeof(*m));

		if (m == NULL) {
			rc = TP_ENOMEM;
			break;
		}
		r->transport = m;
		memset(&m[r->ntransport], 0, sizeof(*m));
		/* transport_pre_init() opens them with DICT_FLAG_NO_REGSUB. */
		rc = open_one(&m[r->ntransport], item, config, TP__MAPS_NO_REGSUB, diag);
		r->ntransport++;
	}
	free(copy);
	return rc;
}

/*
 * Postfix's casefold() of s[0..len) into out (replaced). Where ICU would
 * see malformed UTF-8, which casefold() copies as is around what it
 * folds, only ASCII is folded here. TP_ENOMEM, TP_ELIMIT.
 */
static int
fold(tp_route *r, tp_buf *out, const char *s, size_t len)
{
	int rc;

	tp__buf_truncate(out, 0);
	if ((rc = tp__fold_key(&r->folder, out, s, len, r->utf8, 1)) == TP_EINVALID) {
		tp__buf_truncate(out, 0);
		rc = tp__fold_key(&r->folder, out, s, len, 0, 1);
	}
	return rc;
}

static int
open_relay_domains(tp_route *r, const tp_config *config, tp_diag *diag)
{
	/* Postfix 3.7 default: $mydestination below compatibility level 2.
	 * Those domains are local and never reach this code, so an unset
	 * relay_domains is as good as empty here. */
	const char *list = tp_config_get(config, "relay_domains");
	char *copy, *cp, *item;
	int rc = TP_OK;

	if (list == NULL || *list == 0)
		return TP_OK;
	if ((copy = strdup(list)) == NULL)
		return TP_ENOMEM;
	cp = copy;
	while (rc == TP_OK && (item = tp__strtokq(&cp, LIST_SEP)) != NULL) {
		size_t i = r->nrelay;
		char **p = realloc(r->relay_pat, (i + 1) * sizeof(*p));
		struct map_ref *m;
		int *neg;

		if (p != NULL)
			r->relay_pat = p;
		m = p ? realloc(r->relay_map, (i + 1) * sizeof(*m)) : NULL;
		if (m != NULL)
			r->relay_map = m;
		neg = m ? realloc(r->relay_neg, (i + 1) * sizeof(*neg)) : NULL;
		if (neg == NULL) {
			rc = TP_ENOMEM;
			break;
		}
		r->relay_neg = neg;
		r->relay_pat[i] = NULL;
		memset(&r->relay_map[i], 0, sizeof(r->relay_map[i]));
		r->relay_neg[i] = 0;
		r->nrelay++;
		/* match_list: any number of leading '!' toggle the sense. */
		while (*item == '!') {
			r->relay_neg[i] = !r->relay_neg[i];
			item++;
		}
		if (is_table(item)) {
			/* match_list opens tables without DICT_FLAG_NO_REGSUB. */
			rc = open_one(&r->relay_map[i], item, config, 0, diag);
		} else {
			/* Names are compared folded, as match_list folds them. */
			if (fold(r, &r->folded, item, strlen(item)) < 0
			    || (r->relay_pat[i] = strdup(r->folded.ptr)) == NULL)
				rc = TP_ENOMEM;
		}
	}
	free(copy);
	return rc;
}

void
tp_route_free(tp_route *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->ntransport; i++)
		tp_maps_free(r->transport[i].maps);
	free(r->transport);
	for (size_t i = 0; i < r->nrelay; i++) {
		free(r->relay_pat[i]);
		tp_maps_free(r->relay_map[i].maps);
	}
	free(r->relay_pat);
	free(r->relay_map);
	free(r->relay_neg);
	free(r->delim);
	free(r->double_bounce);
	tp__folder_close(&r->folder);
	tp_buf_dispose(&r->folded);
	free(r->relayhost);
	free(r->default_transport);
	free(r->relay_transport);
	free(r->channel);
	free(r->nexthop);
	free(r->key);
	free(r->nexthop_split);
	free(r->dests);
	tp_buf_dispose(&r->scratch);
	free(r);
}

int
tp_route_new(tp_route **out, const tp_config *config, tp_diag *diag)
{
	tp_route *r;
	const char *pdms, *ownreq, *dbs;
	int rc;

	if (out == NULL || config == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_route_new: no result pointer or no main.cf");
	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	/* Postfix 3.7's default list: relay_domains is in it, transport_maps
	 * is not. */
	pdms = tp_config_get(config, "parent_domain_matches_subdomains");
	if (pdms == NULL)
		pdms = "debug_peer_list,fast_flush_domains,mynetworks,"
		       "permit_mx_backup_networks,qmqpd_authorized_clients,"
		       "relay_domains,smtpd_access_maps";
	r->parent_style = list_has(pdms, "transport_maps");
	r->relay_parent_style = list_has(pdms, "relay_domains");
	ownreq = tp_config_get(config, "owner_request_special");
	r->ownreq_special = ownreq == NULL || strcasecmp(ownreq, "no") != 0;
	r->utf8 = tp_config_smtputf8(config);
	r->delim = dup_default(config, "recipient_delimiter", "");
	dbs = tp_config_get(config, "double_bounce_sender");
	if (dbs == NULL)
		dbs = "double-bounce";
	if (fold(r, &r->folded, dbs, strlen(dbs)) == TP_OK)
		r->double_bounce = strdup(r->folded.ptr);
	r->relayhost = dup_default(config, "relayhost", "");
	r->default_transport = dup_default(config, "default_transport", "smtp");
	r->relay_transport = dup_default(config, "relay_transport", "relay");
	if (r->delim == NULL || r->relayhost == NULL || r->default_transport == NULL
	    || r->relay_transport == NULL || r->double_bounce == NULL) {
		tp_route_free(r);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	if ((rc = open_transport_maps(r, config, diag)) < 0
	    || (rc = open_relay_domains(r, config, diag)) < 0) {
		tp_route_free(r);
		if (rc == TP_ENOMEM)
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		return rc;
	}
	*out = r;
	return TP_OK;
}

/* Map types Postfix flags DICT_FLAG_PATTERN: maps_find() with a partial
 * key (DICT_FLAG_FIXED) passes them by. */
static int
pattern_type(const char *type)
{
	static const char *const types[] = {
		"regexp", "pcre", "cidr", "fail", "socketmap", "tcp", "randmap",
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i]) == 0)
			return 1;
	return 0;
}

enum { NOTFOUND = 0, FOUND = 1 };

/*
 * Postfix's maps_find() over maps[0..n) for key: FOUND with *value, or
 * NOTFOUND, or a negative status when the search stops at a map that
 * fails, cannot be evaluated here, or answers with what Postfix treats
 * as a lookup error. partial: a key other than the full address or "*",
 * which only fixed-string tables see.
 */
static int
find(const struct map_ref *maps, size_t n, const char *key, int partial,
     const char *what, const char **value, tp_diag *diag)
{
	*value = NULL;
	/* maps_find(): an empty key finds nothing, whatever the tables. */
	if (*key == 0)
		return NOTFOUND;
	for (size_t i = 0; i < n; i++) {
		tp_map_answer ans;
		int rc;

		if (partial && pattern_type(maps[i].info->type))
			continue;
		if ((rc = tp_maps_find(maps[i].maps, key, &ans, diag)) < 0)
			return rc;
		switch (ans.status) {
		case TP_MAPS_FOUND:
			*value = ans.value;
			return FOUND;
		case TP_MAPS_NOTFOUND:
			break;
		case TP_MAPS_UNKNOWN:
			return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0,
					    "%s: %s cannot be evaluated here (lookup of \"%s\")",
					    what, maps[i].info->spec, key);
		case TP_MAPS_ERROR:
			return tp__diag_set(diag, TP_EINVALID, NULL, 0,
					    "%s: %s answers \"%s\" with a lookup error for Postfix (the mail is deferred)",
					    what, maps[i].info->spec, key);
		}
	}
	return NOTFOUND;
}

/* Postfix's match_hostname() for one relay_domains entry. */
static int
relay_match_one(tp_route *r, size_t i, const char *name, tp_diag *diag)
{
	const char *pat = r->relay_pat[i];
	size_t nl, pl;

	if (pat == NULL) {
		const struct map_ref *m = &r->relay_map[i];
		int fixed = !pattern_type(m->info->type);

		for (const char *entry = name, *next; *entry; entry = next) {
			const char *v;
			int rc;

			if (entry == name || fixed) {
				rc = find(m, 1, entry, 0, "relay_domains", &v, diag);
				if (rc != NOTFOUND)
					return rc;
			}
			if ((next = strchr(entry + 1, '.')) == NULL)
				break;
			if (r->relay_parent_style)
				next++;
		}
		return NOTFOUND;
	}
	if (pat[0] == '/')
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0,
				    "relay_domains: file %s is not read here", pat);
	nl = strlen(name);
	pl = strlen(pat);
	if (strcmp(name, pat) == 0)
		return FOUND;
	/* Parent style replaces ".domain" rather than adding to it: there
	 * ".example.com" matches only a name ending in "..example.com". */
	if (nl > pl && strcmp(name + nl - pl, pat) == 0
	    && (r->relay_parent_style ? name[nl - pl - 1] == '.' : pat[0] == '.'))
		return FOUND;
	return NOTFOUND;
}

/* Postfix's domain_list_match(): the first entry that matches decides;
 * the domain is casefold()ed as match_list_match() folds it. */
static int
relay_match(tp_route *r, const char *domain, tp_diag *diag)
{
	char *name = NULL;
	int rc = NOTFOUND;

	if (fold(r, &r->folded, domain, strlen(domain)) < 0
	    || (name = strdup(r->folded.ptr)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < r->nrelay; i++) {
		if ((rc = relay_match_one(r, i, name, diag)) < 0)
			break;
		if (rc == FOUND) {
			rc = r->relay_neg[i] ? NOTFOUND : FOUND;
			break;
		}
	}
	free(name);
	return rc;
}

static int
set_str(char **dst, const char *s, size_t len)
{
	char *copy = strndup(s, len);

	if (copy == NULL)
		return TP_ENOMEM;
	free(*dst);
	*dst = copy;
	return TP_OK;
}

/*
 * Postfix's update_entry(): ":nexthop" keeps the transport; "transport"
 * resets the next hop to the recipient domain (or, for error and retry,
 * to a text), "transport:nexthop" sets both; ":" changes nothing, so what
 * decided the next hop before still did.
 */
static int
update_entry(tp_route *r, const char *value, const char *rcpt_domain)
{
	const char *colon = strchr(value, ':');
	size_t clen = colon ? (size_t)(colon - value) : strlen(value);
	const char *hop = colon ? colon + 1 : "";

	if (clen > 0 && set_str(&r->channel, value, clen) < 0)
		return TP_ENOMEM;
	if (clen == 0 && *hop == 0)
		return TP_OK;
	r->result.via = TP_ROUTE_VIA_TRANSPORT_MAPS;
	if (*hop)
		return set_str(&r->nexthop, hop, strlen(hop));
	if (strcmp(r->channel, "error") != 0 && strcmp(r->channel, "retry") != 0)
		return set_str(&r->nexthop, rcpt_domain, strlen(rcpt_domain));
	return set_str(&r->nexthop, "Address is undeliverable",
		       strlen("Address is undeliverable"));
}

/* Postfix's split_addr(): where the extension starts in a local part, or
 * 0 when it must not be split; TP_ENOMEM. double_bounce_sender is
 * compared with strcasecmp_utf8(), the others ASCII-only. */
static int
split_at(tp_route *r, const char *local, size_t len, size_t *at)
{
	size_t n;
	int rc;

	*at = 0;
	if ((len == 10 && strncasecmp(local, "postmaster", 10) == 0)
	    || (len == 13 && strncasecmp(local, "MAILER-DAEMON", 13) == 0))
		return TP_OK;
	if ((rc = fold(r, &r->folded, local, len)) < 0)
		return rc;
	if (strcmp(r->folded.ptr, r->double_bounce) == 0)
		return TP_OK;
	if (strchr(r->delim, '-') != NULL && r->ownreq_special) {
		if (len >= 6 && strncasecmp(local, "owner-", 6) == 0)
			return TP_OK;
		if (len > 8 && strncasecmp(local + len - 8, "-request", 8) == 0)
			return TP_OK;
	}
	for (n = 0; n < len && strchr(r->delim, local[n]) == NULL; n++)
		;
	*at = n == 0 || n == len ? 0 : n;
	return TP_OK;
}

/* smtp(8) splits its next hop with argv_split(): no grouping, unlike map
 * lists, so "{" is just a character here. */
static int
split_nexthop(tp_route *r)
{
	char *cp;
	size_t n = 0;

	free(r->nexthop_split);
	if ((r->nexthop_split = strdup(r->nexthop)) == NULL)
		return TP_ENOMEM;
	for (cp = r->nexthop_split + strspn(r->nexthop_split, LIST_SEP); *cp;
	     cp += strspn(cp, LIST_SEP)) {
		size_t len = strcspn(cp, LIST_SEP);

		if (n + 1 >= r->ndests_alloc) {
			size_t na = r->ndests_alloc ? 2 * r->ndests_alloc : 4;
			const char **d = realloc(r->dests, na * sizeof(*d));

			if (d == NULL)
				return TP_ENOMEM;
			r->dests = d;
			r->ndests_alloc = na;
		}
		r->dests[n++] = cp;
		cp += len;
		if (*cp)
			*cp++ = 0;
	}
	r->result.destinations = r->dests;
	r->result.destination_count = n;
	return TP_OK;
}

/*
 * The unquoted form of a quoted local part ("john doe"@example.com, as
 * postqueue lists it) in *out; NULL when the address has no such form.
 * TP_ENOMEM.
 */
static int
unquoted(const char *addr, const char *at, char **out)
{
	char *o;

	*out = NULL;
	if (addr[0] != '"' || at - addr < 2 || at[-1] != '"')
		return TP_OK;
	if ((*out = malloc(strlen(addr) + 1)) == NULL)
		return TP_ENOMEM;
	o = *out;
	for (const char *c = addr + 1; c < at - 1; c++) {
		if (*c == '\\' && c + 1 < at - 1)
			c++;
		*o++ = *c;
	}
	strcpy(o, at);
	return TP_OK;
}

/* quote_822_local()'s dot-string test, 8-bit clean: may the local part
 * [start, end) go unquoted? */
static int
is_dot_string(const char *start, const char *end)
{
	const char *cp;

	if (start == end || *start == '.')
		return 0;
	for (cp = start; cp < end; cp++) {
		unsigned char ch = (unsigned char)*cp;

		if ((ch == '.' && cp + 1 < end && cp[1] == '.') || ch == ' '
		    || ch < 32 || ch == 127 || strchr("()<>@,;:\\\"[]", ch) != NULL)
			return 0;
	}
	return cp[-1] != '.';
}

/*
 * Postfix's quote_822_local(): the external form of an internal address,
 * as showq prints it and as mail_addr_find() asks it first. Into
 * r->scratch; TP_ENOMEM.
 */
static int
quote_local(tp_route *r, const char *addr)
{
	const char *start = addr, *end, *colon;

	tp__buf_truncate(&r->scratch, 0);
	if (addr[0] == '@' && (colon = strchr(addr, ':')) != NULL)
		start = colon + 1;
	if ((end = strrchr(start, '@')) == NULL)
		end = start + strlen(start);
	if (is_dot_string(start, end))
		return tp__buf_puts(&r->scratch, addr);
	if (tp__buf_put(&r->scratch, addr, (size_t)(start - addr)) < 0
	    || tp__buf_putc(&r->scratch, '"') < 0)
		return TP_ENOMEM;
	for (const char *cp = start; cp < end; cp++)
		if (((*cp == '"' || *cp == '\\' || *cp == '\r')
		     && tp__buf_putc(&r->scratch, '\\') < 0)
		    || tp__buf_putc(&r->scratch, *cp) < 0)
			return TP_ENOMEM;
	if (tp__buf_putc(&r->scratch, '"') < 0 || tp__buf_puts(&r->scratch, end) < 0)
		return TP_ENOMEM;
	return TP_OK;
}

/*
 * mail_addr_find()'s find_addr() in external-first form: the quoted form
 * of the internal address addr, then addr itself when that differs.
 * *keyp is the key that answered (r->scratch or addr).
 */
static int
find_addr(tp_route *r, const char *addr, int partial, const char **value,
	  const char **keyp, tp_diag *diag)
{
	int rc;

	if (quote_local(r, addr) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	*keyp = r->scratch.ptr;
	rc = find(r->transport, r->ntransport, *keyp, partial, "transport_maps", value, diag);
	if (rc == NOTFOUND && strcmp(addr, r->scratch.ptr) != 0) {
		*keyp = addr;
		rc = find(r->transport, r->ntransport, addr, partial, "transport_maps", value, diag);
	}
	return rc;
}

/*
 * Postfix's transport_lookup() with mail_addr_find_strategy(): the full
 * address, then the address without its extension (each quoted, then
 * unquoted: the extension is cut from the unquoted form), the domain,
 * its parents, then the "*" wildcard. FOUND when an entry applied; the
 * next hop and transport are then updated.
 */
static int
transport_lookup(tp_route *r, const char *addr, const char *domain,
		 tp_diag *diag)
{
	const char *v = NULL, *keyp = addr, *at = strrchr(addr, '@');
	char *internal = NULL, *bare = NULL;
	int rc;

	if (r->ntransport == 0)
		return NOTFOUND;
	/* resolve_addr() hands over the internal form; postqueue lists the
	 * external one. */
	if (unquoted(addr, at, &internal) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (internal != NULL) {
		addr = internal;
		at = strrchr(addr, '@');
	}
	rc = find_addr(r, addr, 0, &v, &keyp, diag);
	if (rc == NOTFOUND && *r->delim) {
		size_t cut;

		if (split_at(r, addr, (size_t)(at - addr), &cut) < 0) {
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			goto done;
		}
		if (cut > 0) {
			if ((bare = malloc(cut + strlen(at) + 1)) == NULL) {
				rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
				goto done;
			}
			memcpy(bare, addr, cut);
			strcpy(bare + cut, at);
			rc = find_addr(r, bare, 1, &v, &keyp, diag);
		}
	}
	for (const char *name = domain, *next; rc == NOTFOUND && *name; name = next) {
		keyp = name;
		rc = find(r->transport, r->ntransport, name, 1, "transport_maps", &v, diag);
		if (rc != NOTFOUND || (next = strchr(name + 1, '.')) == NULL)
			break;
		if (r->parent_style)
			next++;
	}
	if (rc == NOTFOUND) {
		keyp = "*";
		rc = find(r->transport, r->ntransport, keyp, 0, "transport_maps", &v, diag);
	}
	if (rc == FOUND && (set_str(&r->key, keyp, strlen(keyp)) < 0
			    || update_entry(r, v, domain) < 0))
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
done:
	free(internal);
	free(bare);
	return rc;
}

int
tp_route_find(tp_route *r, const char *recipient, const tp_route_result **out,
	      tp_diag *diag)
{
	const char *at, *hop, *channel;
	char *addr = NULL, *domain, *colon;
	size_t dlen;
	int rc, relay;

	if (out != NULL)
		*out = NULL;
	if (r == NULL || recipient == NULL || out == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "tp_route_find: no route, recipient or result pointer");
	at = strrchr(recipient, '@');
	dlen = at ? strlen(at + 1) : 0;
	/* resolve_addr() drops one trailing dot, but not from ".." or "@.". */
	if (dlen > 1 && at[dlen] == '.' && at[dlen - 1] != '.')
		dlen--;
	if (dlen == 0 || (dlen == 1 && at[1] == '.'))
		return tp__diag_set(diag, TP_EINVALID, NULL, 0,
				    "%s: no domain: not mail for the SMTP client", recipient);
	/* The address Postfix looks up is the one without that dot. */
	if ((addr = strndup(recipient, (size_t)(at - recipient) + 1 + dlen)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	domain = addr + (at - recipient) + 1;
	memset(&r->result, 0, sizeof(r->result));
	free(r->key);
	r->key = NULL;

	if ((relay = relay_match(r, domain, diag)) < 0) {
		rc = relay;
		goto done;
	}
	channel = relay == FOUND ? r->relay_transport : r->default_transport;
	r->result.via = TP_ROUTE_VIA_DOMAIN;
	hop = domain;
	if (*r->relayhost) {
		hop = r->relayhost;
		r->result.via = TP_ROUTE_VIA_RELAYHOST;
	}
	if (set_str(&r->channel, channel, strlen(channel)) < 0
	    || set_str(&r->nexthop, hop, strlen(hop)) < 0)
		goto nomem;
	/* "transport:nexthop" in main.cf overrides relayhost and domain. */
	if ((colon = strchr(r->channel, ':')) != NULL) {
		*colon = 0;
		if (colon[1] != 0) {
			if (set_str(&r->nexthop, colon + 1, strlen(colon + 1)) < 0)
				goto nomem;
			r->result.via = TP_ROUTE_VIA_TRANSPORT;
		}
	}
	if (*r->channel == 0) {
		rc = tp__diag_set(diag, TP_EINVALID, NULL, 0,
				  "%s is empty: Postfix defers the mail (null transport is not allowed)",
				  relay == FOUND ? "relay_transport" : "default_transport");
		goto done;
	}
	if ((rc = transport_lookup(r, addr, domain, diag)) < 0)
		goto done;
	if (split_nexthop(r) < 0)
		goto nomem;
	r->result.transport = r->channel;
	r->result.nexthop = r->nexthop;
	r->result.key = r->key;
	*out = &r->result;
	rc = TP_OK;
	goto done;
nomem:
	rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
done:
	free(addr);
	return rc;
}

int
tp_route_nexthop(tp_route *r, const char *recipient, const char **nexthop,
		 tp_diag *diag)
{
	const tp_route_result *res;
	int rc;

	if (nexthop == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_route_nexthop: no result pointer");
	*nexthop = NULL;
	if ((rc = tp_route_find(r, recipient, &res, diag)) < 0)
		return rc;
	if (res->destination_count == 0)
		return tp__diag_set(diag, TP_EINVALID, NULL, 0,
				    "%s: the next hop is empty", recipient);
	*nexthop = res->destinations[0];
	return TP_OK;
}
