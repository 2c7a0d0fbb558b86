/*
 * NAME
 *	tlspolicy/maps.h - every map of smtp_tls_policy_maps, as Postfix asks them
 * SUMMARY
 *	Opens the maps main.cf lists in smtp_tls_policy_maps (or one map
 *	named by the caller) and answers lookups the way Postfix's SMTP
 *	client does: the first map in order that answers wins, so an
 *	earlier regexp, pcre, socketmap or second hash map can make every
 *	pin of a later table dead.
 * DESCRIPTION
 *	tp_maps_open() reads smtp_tls_policy_maps from config (expanded as
 *	tp_config_get() expands it) and opens each map in order, split as
 *	Postfix splits the list (commas and whitespace; "{...}" kept whole).
 *	"proxy:" is stripped and remembered (proxymap(8) serves the same
 *	file); a bare path is not a map there (Postfix's SMTP client stops
 *	with a fatal error, "expecting type:name"): it is kept as a map
 *	whose every lookup fails with TP_ECONFIG. TP_ECONFIG when the parameter is
 *	empty; TP_EUSAGE (config NULL). Opening never fails because a map
 *	file is missing or broken: tp_maps_find() reports that when the map
 *	is reached, as Postfix does.
 *	tp_maps_open_spec() does the same for one map named by the caller
 *	("-m TYPE:PATH", or a bare path), for callers without main.cf;
 *	config (may be NULL) gives smtputf8_enable and default_database_type
 *	(without it: UTF-8 folding on, hash). Free with tp_maps_free()
 *	(NULL is fine).
 *
 *	tp_maps_count() and tp_maps_at() describe the maps in order; the
 *	tp_map_info and its strings belong to maps. readable: lookups in it
 *	can be evaluated here (hash, btree, lmdb, cdb, texthash, regexp,
 *	pcre, inline, static, fail, and cidr for keys that are not IP
 *	addresses); writable: tlspolicy can maintain it (hash, btree, lmdb,
 *	cdb, texthash). Anything else (socketmap, tcp, ldap, mysql, pgsql,
 *	sqlite, memcache, unionmap, ... and types Postfix does not know) is
 *	not readable: a
 *	lookup that reaches it stops there with TP_MAPS_UNKNOWN, because
 *	Postfix may get an answer from it first. db: the file Postfix reads
 *	for the map: PATH.db for hash and btree, PATH.lmdb, PATH.cdb, the
 *	source itself for texthash, regexp and pcre; NULL when there is none.
 *	With Postfix 3.11's non_bdb_migration_level redirecting hash: and
 *	btree: (see tp_config_effective_type()), type is the type Postfix
 *	reads and redirected_from the type written in main.cf; a map
 *	redirected to a Berkeley DB type again fails every lookup, as in
 *	Postfix.
 *	tp_maps_writable() gives the index of the first writable map, the
 *	one tlspolicy writes when no map is named; TP_ENOTFOUND when none.
 *
 *	tp_maps_find() is Postfix's maps_find(): key, exactly as given,
 *	through each map in order until one answers. Each map type sees the
 *	key as Postfix gives it: fixed-string tables (hash, btree, texthash,
 *	inline, lmdb, cdb) get it case-folded (full UTF-8 folding with smtputf8_enable,
 *	else ASCII); pattern tables (regexp, pcre) get it as is. With
 *	smtputf8_enable a key that is not valid UTF-8 finds nothing, as in
 *	Postfix. hash, btree, lmdb and cdb are read from the database (not
 *	the source: a stale .db is what Postfix reads), with Postfix's
 *	trailing-NUL conventions and its readers' lock around each lookup
 *	(flock for hash and btree, fcntl for lmdb, none for cdb); each database is
 *	opened once per tp_maps and opened again only when it was replaced
 *	or rewritten. texthash is read from the source (once), regexp and
 *	pcre tables are compiled once, with Postfix's rules: if/endif, "!"
 *	negation, /flags (regexp: i m x; pcre: i m s x A E U), $1
 *	substitution in the result. out->value belongs to maps and stays
 *	valid until the next lookup or tp_maps_free().
 *	out->status says what happened:
 *	- TP_MAPS_NOTFOUND: no map answers;
 *	- TP_MAPS_FOUND: map out->index answers with out->value;
 *	- TP_MAPS_UNKNOWN: map out->index, reached before any answer, cannot
 *	  be evaluated here;
 *	- TP_MAPS_ERROR: map out->index answers with what Postfix treats as
 *	  a failed lookup (an empty value, a value that is not UTF-8 with
 *	  smtputf8_enable, a fail: map): Postfix's SMTP client then defers
 *	  the destination's mail ("policy table lookup error"); out->value is
 *	  the value when there is one, else NULL.
 *	out->line is the source line of regexp, pcre and texthash answers
 *	(the first line of the rule or entry) and the position, from 1, of
 *	the name=value pair of an inline: answer; 0 otherwise.
 *	A map that cannot be read (a missing or corrupt database, a missing
 *	regexp file; not a regexp rule that does not compile: Postfix skips
 *	it) fails the lookup: TP_EIO or TP_EDB with the map named, as Postfix logs a lookup error and defers the mail;
 *	texthash with a duplicate key is TP_EINVALID (Postfix's SMTP client
 *	refuses the whole table). TP_ENOMEM.
 *	tp_maps_find_range() does the same with maps [first, last) only
 *	(last past the end means all): "does an earlier map answer?".
 *
 *	tp_maps_find_nexthop() is the TLS policy lookup of Postfix's SMTP
 *	client for a next-hop destination (smtp_tls_policy.c): the key as
 *	given, then, when it is a valid host name (letters, digits, '-',
 *	'_', not all numeric; non-ASCII names converted to A-labels with
 *	smtputf8_enable), its parent domains ".b.com", ".com" in turn, each
 *	through all maps, until an answer (TP_MAPS_FOUND or TP_MAPS_ERROR),
 *	or a map that cannot be evaluated (TP_MAPS_UNKNOWN). "[host]:port",
 *	"[host]" and "host:port" are looked up once. *matched_key (when
 *	matched_key is not NULL) is the form that answered or stopped the
 *	search, owned by maps like out->value; NULL with TP_MAPS_NOTFOUND.
 * DIAGNOSTICS
 *	TP_EUSAGE for a NULL config or a malformed map name; TP_ECONFIG for
 *	an empty smtp_tls_policy_maps; TP_EIO, TP_EDB, TP_EINVALID when a
 *	map cannot be read; TP_ENOMEM.
 */
#ifndef TLSPOLICY_MAPS_H
#define TLSPOLICY_MAPS_H

#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_maps tp_maps;

typedef struct tp_map_info {
	const char *spec;	/* as written in main.cf, e.g. "regexp:/etc/postfix/pre" */
	const char *type;	/* "hash", "regexp", "socketmap", ... (after proxy:) */
	const char *path;	/* file, or NULL when the type has none (inline:, socketmap:, ...) */
	int proxied;		/* written as proxy:TYPE:... */
	int readable;		/* tlspolicy can evaluate lookups in it */
	int writable;		/* tlspolicy can maintain it */
	const char *db;		/* the file Postfix reads, or NULL */
	const char *redirected_from; /* "hash"/"btree" when non_bdb_migration_level moved it, else NULL */
} tp_map_info;

typedef enum tp_maps_status {
	TP_MAPS_NOTFOUND = 0,	/* no map answers */
	TP_MAPS_FOUND = 1,	/* map index answers with value */
	TP_MAPS_UNKNOWN = 2,	/* map index cannot be evaluated here; it may answer first */
	TP_MAPS_ERROR = 3	/* map index answers with a lookup error for Postfix */
} tp_maps_status;

typedef struct tp_map_answer {
	tp_maps_status status;
	size_t index;		/* the map that answered or cannot be evaluated */
	const char *value;	/* owned by maps, valid until the next lookup */
	unsigned long line;	/* regexp/pcre/texthash line, inline position; else 0 */
} tp_map_answer;

TP_EXTERN(int) tp_maps_open(tp_maps **out, const tp_config *config,
			    tp_diag *diag);
TP_EXTERN(int) tp_maps_open_spec(tp_maps **out, const char *spec,
				 const tp_config *config, tp_diag *diag);
TP_EXTERN(void) tp_maps_free(tp_maps *maps);
TP_EXTERN(size_t) tp_maps_count(const tp_maps *maps);
TP_EXTERN(const tp_map_info *) tp_maps_at(const tp_maps *maps, size_t i);
TP_EXTERN(int) tp_maps_writable(const tp_maps *maps, size_t *index);
TP_EXTERN(int) tp_maps_find(tp_maps *maps, const char *key,
			    tp_map_answer *out, tp_diag *diag);
TP_EXTERN(int) tp_maps_find_range(tp_maps *maps, size_t first, size_t last,
				  const char *key, tp_map_answer *out,
				  tp_diag *diag);
TP_EXTERN(int) tp_maps_find_nexthop(tp_maps *maps, const char *nexthop,
				    tp_map_answer *out,
				    const char **matched_key, tp_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
