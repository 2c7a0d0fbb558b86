/*
 * NAME
 *	maps - every map of smtp_tls_policy_maps, asked as Postfix asks them
 * SUMMARY
 *	The tp_maps_* functions of tlspolicy/maps.h: Postfix's maps_find()
 *	and the SMTP client's TLS policy lookup, over every map type whose
 *	answer can be computed here, so that tlspolicy judges the value
 *	Postfix really uses rather than the one in its own table.
 * DESCRIPTION
 *	The list is split as maps_create() splits it (mystrtokq() on commas
 *	and whitespace, "{...}" whole), each element at its first ':' as
 *	dict_open() does; "proxy:" is taken off first.
 *
 *	Maps are opened lazily, at the first lookup that reaches them, and
 *	kept: a database stays open (its lock taken only around each
 *	lookup, and the file opened again when it was replaced or rewritten
 *	since), texthash is read once, regexp and pcre tables are compiled
 *	once. A map that cannot be opened is remembered as such and fails
 *	every lookup that reaches it, like Postfix's surrogate tables.
 *
 *	What each map type sees, as Postfix's dict layer gives it: with
 *	smtputf8_enable, a key that is not UTF-8 is not looked up at all;
 *	fixed-string tables (hash, btree, texthash, inline, static) get the
 *	key case-folded (dict_utf8.c casefold(), or lowercase() without
 *	SMTPUTF8: the SMTP client opens its policy maps with
 *	DICT_FLAG_FOLD_FIX), pattern tables get it as it is. A found value
 *	that is empty, or not UTF-8 with smtputf8_enable, is a lookup error
 *	for Postfix (maps_find(), dict_utf8.c), reported as TP_MAPS_ERROR.
 *
 *	inline: is parsed as dict_inline.c does (balanced braces, items
 *	split like the list, an item in braces taken whole, "name = value"
 *	with quotes kept in the name; a later duplicate replaces an earlier
 *	one). texthash: is the source as postmap reads it; a duplicate key
 *	makes the SMTP client refuse the table (it opens it without
 *	DICT_FLAG_DUP_WARN), so every lookup that reaches it fails.
 *	cidr: matches only IP addresses, which no next-hop key is, so it is
 *	skipped for any other key and cannot be evaluated for an address.
 * DIAGNOSTICS
 *	Messages name the map as written in main.cf, then what failed:
 *	"hash:/etc/postfix/tls_policy: open database
 *	/etc/postfix/tls_policy.db: No such file or directory".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <unicode/uidna.h>

#include "buf.h"
#include "casefold.h"
#include "diag.h"
#include "hostport.h"
#include "map_backend.h"
#include "maps_internal.h"
#include "pattern.h"
#include "safewrite.h"
#include "tlspolicy/document.h"
#include "tlspolicy/maps.h"

#define ISSPACE(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' \
		    || (c) == '\v' || (c) == '\f')
/* Postfix's CHARS_COMMA_SP. */
#define LIST_SEP ", \t\r\n"

enum map_kind {
	K_DB,			/* hash, btree: the database file */
	K_TEXTHASH,
	K_PATTERN,		/* regexp, pcre */
	K_INLINE,
	K_STATIC,
	K_FAIL,
	K_CIDR,
	K_UNKNOWN		/* cannot be evaluated here */
};

/* A texthash key, pointing into the document (never edited here). */
struct tkey {
	const char *key;
	size_t len;
	unsigned long line;
	const char *value;
	size_t value_len;
};

struct pair {
	char *key;		/* folded */
	char *value;
};

struct map {
	tp_map_info info;
	enum map_kind kind;
	int loaded;		/* tried to open: error or data below */
	int load_status;	/* < 0: every lookup fails with it */
	char *load_message;
	/* K_DB */
	tp_map_type db_type;
	void *reader;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	/* K_TEXTHASH */
	tp_doc *doc;
	struct tkey *keys;	/* sorted by key */
	size_t nkeys;
	/* K_PATTERN */
	tp__pattern_kind pattern_kind;
	tp__pattern_table *pattern;
	/* K_INLINE */
	struct pair *pairs;
	size_t npairs;
	/* K_STATIC */
	char *static_value;
};

struct tp_maps {
	struct map *maps;
	size_t n, cap;		/* maps in use, allocated */
	int utf8;
	unsigned flags;		/* TP__MAPS_* */
	tp_doc_opts doc_opts;
	tp_buf folded;
	tp_buf value;
	tp_buf matched;
};

/*
 * Postfix types without a tlspolicy backend (postconf -m and the
 * client-only ones). Types with one (hash, btree, lmdb, cdb, texthash:
 * tp_map_type_parse() knows them) need no row here.
 */
static const struct {
	const char *name;
	enum map_kind kind;
	int has_path;		/* the name is a file (or a client's config file) */
} types[] = {
	{ "regexp", K_PATTERN, 1 },
	{ "pcre", K_PATTERN, 1 },
	{ "inline", K_INLINE, 0 },
	{ "static", K_STATIC, 0 },
	{ "fail", K_FAIL, 0 },
	{ "cidr", K_CIDR, 1 },
	{ "dbm", K_UNKNOWN, 1 },
	{ "sdbm", K_UNKNOWN, 1 },
	{ "ldap", K_UNKNOWN, 1 },
	{ "mysql", K_UNKNOWN, 1 },
	{ "pgsql", K_UNKNOWN, 1 },
	{ "sqlite", K_UNKNOWN, 1 },
	{ "memcache", K_UNKNOWN, 1 },
};

static int
has_path_type(const char *type)
{
	tp_map_type t;

	if (tp_map_type_parse(&t, type) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i].name) == 0)
			return types[i].has_path;
	return 0;
}

static char *
strndup_or_null(const char *s, size_t n)
{
	return s ? strndup(s, n) : NULL;
}

static void
map_clear(struct map *m)
{
	const tp__map_backend *b;

	free((char *)m->info.spec);
	free((char *)m->info.type);
	free((char *)m->info.path);
	free((char *)m->info.db);
	free((char *)m->info.redirected_from);
	free(m->load_message);
	if (m->reader && (b = tp__map_backend_get(m->db_type)) != NULL)
		b->close_read(m->reader);
	tp_doc_free(m->doc);
	free(m->keys);
	tp__pattern_free(m->pattern);
	for (size_t i = 0; i < m->npairs; i++) {
		free(m->pairs[i].key);
		free(m->pairs[i].value);
	}
	free(m->pairs);
	free(m->static_value);
}

/* Postfix's balpar(): length of the balanced "{...}" at s, 0 if none. */
static size_t
balpar(const char *s)
{
	int level = 1;

	if (*s != '{')
		return 0;
	for (const char *cp = s + 1; *cp; cp++) {
		if (*cp == '}') {
			if (--level == 0)
				return (size_t)(cp - s + 1);
		} else if (*cp == '{') {
			level++;
		}
	}
	return 0;
}

static void
trim(char **s)
{
	char *p = *s;
	size_t n;

	while (ISSPACE(*p))
		p++;
	n = strlen(p);
	while (n > 0 && ISSPACE(p[n - 1]))
		p[--n] = 0;
	*s = p;
}

/* Postfix's extpar(EXTPAR_FLAG_STRIP): the inside of "{...}", or an error. */
static const char *
extpar(char **bp)
{
	char *cp = *bp;
	size_t len = balpar(cp);
	const char *err = NULL;

	if (len == 0) {
		err = "missing '}'";
		cp += 1;
	} else {
		if (cp[len] != 0)
			err = "syntax error after '}'";
		cp += 1;
		cp[len - 2] = 0;
	}
	trim(&cp);
	*bp = cp;
	return err;
}

/* Postfix's split_qnameval(). */
static const char *
split_qnameval(char *buf, char **pkey, char **pvalue)
{
	int in_quotes = 0;
	char *key = buf, *end, *value;

	while (*key && ISSPACE(*key))
		key++;
	if (*key == 0)
		return "no key found; expected format: key = value";
	for (end = key; *end; end++) {
		if (*end == '\\') {
			if (*++end == 0)
				break;
		} else if (ISSPACE(*end) || *end == '=') {
			if (!in_quotes)
				break;
		} else if (*end == '"') {
			in_quotes = !in_quotes;
		}
	}
	if (in_quotes)
		return "unbalanced '\"'";
	value = end;
	while (ISSPACE(*value))
		value++;
	if (*value != '=')
		return "missing '=' after attribute name";
	*end = 0;
	do
		value++;
	while (ISSPACE(*value));
	trim(&value);
	*pkey = key;
	*pvalue = value;
	return NULL;
}

static int
fold(tp_maps *maps, tp_buf *out, const char *key)
{
	return tp_key_fold(out, key, &maps->doc_opts);
}

static int
load_fail(struct map *m, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
load_fail(struct map *m, int status, const char *fmt, ...)
{
	va_list ap;
	char buf[TP_DIAG_MESSAGE_MAX];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(m->load_message);
	m->load_message = strdup(buf);
	m->load_status = status;
	return status;
}

static int
inline_load(tp_maps *maps, struct map *m, const char *name)
{
	char *copy, *cp, *item;
	size_t len = balpar(name);
	const char *err = NULL;
	tp_buf k = TP_BUF_INIT;
	int rc = TP_OK;

	if (maps->utf8 && !tp__allascii(name, strlen(name))
	    && !tp__utf8_valid(name, strlen(name)))
		return load_fail(m, TP_EINVALID, "bad UTF-8 syntax: \"inline:%s\"; need \"inline:{name=value...}\"", name);
	if (len == 0 || name[len] != 0 || len == 2)
		return load_fail(m, TP_EINVALID, "bad syntax: \"inline:%s\"; need \"inline:{name=value...}\"", name);
	if ((copy = strndup(name + 1, len - 2)) == NULL)
		return TP_ENOMEM;
	cp = copy;
	while ((item = tp__strtokq(&cp, LIST_SEP)) != NULL) {
		char *key, *value;
		struct pair *pairs;
		size_t i;

		if (item[0] == '{' && (err = extpar(&item)) != NULL)
			break;
		if ((err = split_qnameval(item, &key, &value)) != NULL)
			break;
		if ((rc = fold(maps, &k, key)) == TP_EINVALID) {
			err = "malformed UTF-8 or invalid codepoint";
			break;
		}
		if (rc < 0)
			break;
		/* dict_ht.c: a later pair replaces an earlier one. */
		for (i = 0; i < m->npairs && strcmp(m->pairs[i].key, k.ptr) != 0; i++)
			;
		if (i == m->npairs) {
			if ((pairs = realloc(m->pairs, (m->npairs + 1) * sizeof(*pairs))) == NULL) {
				rc = TP_ENOMEM;
				break;
			}
			m->pairs = pairs;
			m->pairs[i].key = NULL;
			m->pairs[i].value = NULL;
			m->npairs++;
		}
		free(m->pairs[i].key);
		free(m->pairs[i].value);
		m->pairs[i].key = strdup(k.ptr);
		m->pairs[i].value = strdup(value);
		if (m->pairs[i].key == NULL || m->pairs[i].value == NULL) {
			rc = TP_ENOMEM;
			break;
		}
	}
	free(copy);
	tp_buf_dispose(&k);
	if (rc == TP_ENOMEM)
		return rc;
	if (err != NULL || m->npairs == 0)
		return load_fail(m, TP_EINVALID, "%s: \"inline:%s\"; need \"inline:{name=value...}\"",
				 err ? err : "empty table", name);
	return TP_OK;
}

/* Make one map from an element of the list ("proxy:" and all). */
static int
map_init(tp_maps *maps, struct map *m, const char *spec, size_t len,
	 const char *default_type, const tp_config *config)
{
	const char *p = spec, *colon, *name;
	size_t plen = len, tlen;
	enum map_kind kind = K_UNKNOWN;
	int has_path = 0;

	memset(m, 0, sizeof(*m));
	m->info.spec = strndup(spec, len);
	while (plen > 6 && memcmp(p, "proxy:", 6) == 0) {
		m->info.proxied = 1;
		p += 6;
		plen -= 6;
	}
	colon = memchr(p, ':', plen);
	if (colon == NULL && default_type == NULL) {
		/*
		 * In main.cf's list a bare path is no map: Postfix's dict_open()
		 * stops the SMTP client with a fatal error, so every lookup fails.
		 */
		m->info.type = strdup("");
		m->info.path = strndup(p, plen);
		m->kind = K_FAIL;
		m->loaded = 1;
		m->info.readable = 1;	/* its answer is known: failure */
		if (m->info.spec == NULL || m->info.type == NULL || m->info.path == NULL)
			return TP_ENOMEM;
		return load_fail(m, TP_ECONFIG,
				 "smtp_tls_policy_maps: \"%s\" is not type:name (Postfix: \"open dictionary: expecting type:name form\", fatal for its SMTP client): write %s:%s",
				 m->info.spec, "hash", m->info.path) == TP_ENOMEM ? TP_ENOMEM : TP_OK;
	}
	if (colon == NULL) {
		/* A bare path, as postmap takes it: default_database_type. */
		m->info.type = strdup(default_type);
		name = p;
	} else {
		m->info.type = strndup(p, (size_t)(colon - p));
		name = colon + 1;
	}
	tlen = plen - (size_t)(name - p);
	if (m->info.spec == NULL || m->info.type == NULL)
		return TP_ENOMEM;
	/* Postfix 3.11 non_bdb_migration_level: hash: and btree: redirected. */
	if (config != NULL) {
		const char *to = tp_config_effective_type(config, m->info.type);

		if (to != m->info.type && strcmp(to, m->info.type) != 0) {
			m->info.redirected_from = m->info.type;
			m->info.type = strdup(to);
			if (m->info.type == NULL)
				return TP_ENOMEM;
		} else if (to != m->info.type) {
			/* nbdb_map_leg_type(): a legacy target is an error. */
			m->info.redirected_from = strdup(m->info.type);
			if (m->info.redirected_from == NULL)
				return TP_ENOMEM;
			m->kind = K_FAIL;
			m->loaded = 1;
			if (has_path_type(m->info.type))
				m->info.path = strndup(name, tlen);
			return load_fail(m, TP_ECONFIG,
					 "non_bdb_migration_level redirects %s: to %s:, a Berkeley DB type again: Postfix fails this map (mapping from '%s' to legacy type '%s')",
					 m->info.type, to, m->info.type, to) == TP_ENOMEM ? TP_ENOMEM : TP_OK;
		}
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(m->info.type, types[i].name) == 0) {
			kind = types[i].kind;
			has_path = types[i].has_path;
		}
	/* A type with a backend: a database, or (texthash) its source. */
	if (tp_map_type_parse(&m->db_type, m->info.type) == 0) {
		kind = tp__map_backend_get(m->db_type)->no_db ? K_TEXTHASH : K_DB;
		has_path = 1;
	}
	m->kind = kind;
	if (has_path && (m->info.path = strndup_or_null(name, tlen)) == NULL)
		return TP_ENOMEM;
	if (tlen == 0) {
		/* dict_open(): "expecting type:name"; every lookup fails. */
		m->kind = K_FAIL;
		m->loaded = 1;
		return load_fail(m, TP_EINVALID, "open dictionary: expecting \"type:name\" form instead of \"%.*s\"",
				 (int)len, spec) == TP_ENOMEM ? TP_ENOMEM : TP_OK;
	}
	switch (kind) {
	case K_DB:
		m->info.readable = m->info.writable = 1;
		if (asprintf((char **)&m->info.db, "%s%s", m->info.path,
			     tp_map_type_suffix(m->db_type)) < 0) {
			m->info.db = NULL;
			return TP_ENOMEM;
		}
		break;
	case K_TEXTHASH:
	case K_PATTERN:
		/* A texthash source is ours to edit; a pattern table is not. */
		m->info.writable = kind == K_TEXTHASH;
		m->info.readable = 1;
		m->pattern_kind = strcmp(m->info.type, "pcre") == 0 ? TP__PATTERN_PCRE
								 : TP__PATTERN_REGEXP;
		if ((m->info.db = strdup(m->info.path)) == NULL)
			return TP_ENOMEM;
		break;
	case K_INLINE: {
		char *n = strndup(name, tlen);
		int rc;

		if (n == NULL)
			return TP_ENOMEM;
		m->info.readable = 1;
		m->loaded = 1;
		rc = inline_load(maps, m, n);
		free(n);
		return rc == TP_ENOMEM ? rc : TP_OK;
	}
	case K_STATIC: {
		char *n = strndup(name, tlen), *v = n;
		const char *err;

		if (n == NULL)
			return TP_ENOMEM;
		m->info.readable = 1;
		m->loaded = 1;
		if (v[0] == '{' && (err = extpar(&v)) != NULL)
			(void)load_fail(m, TP_EINVALID, "bad static:name syntax: %s in \"%s\"", err, n);
		else
			m->static_value = strdup(v);
		free(n);
		if (m->static_value == NULL && m->load_status == 0)
			return TP_ENOMEM;
		break;
	}
	case K_FAIL:
		m->info.readable = 1;
		m->loaded = 1;
		break;
	case K_CIDR:
		m->info.readable = 1;
		break;
	case K_UNKNOWN:
		break;
	}
	return TP_OK;
}

static int
maps_new(tp_maps **out, const tp_config *config)
{
	tp_maps *maps = calloc(1, sizeof(*maps));
	tp_doc_opts opts = TP_DOC_OPTS_INIT;

	*out = NULL;
	if (maps == NULL)
		return TP_ENOMEM;
	/* Without main.cf, what the CLI assumes too: SMTPUTF8 on. */
	maps->utf8 = config ? tp_config_smtputf8(config) : 1;
	opts.utf8 = maps->utf8;
	maps->doc_opts = opts;
	*out = maps;
	return TP_OK;
}

static const char *
default_type(const tp_config *config)
{
	const char *t = config ? tp_config_get(config, "default_database_type") : NULL;

	return t && *t ? t : "hash";
}

static int
maps_add(tp_maps *maps, const char *spec, size_t len, const char *dtype,
	 const tp_config *config)
{
	int rc;

	/* Doubling: a 1 MB list of maps is not a quadratic copy. */
	if (maps->n == maps->cap) {
		size_t cap = maps->cap ? 2 * maps->cap : 4;
		struct map *m;

		if (cap > SIZE_MAX / sizeof(*m) ||
		    (m = realloc(maps->maps, cap * sizeof(*m))) == NULL)
			return TP_ENOMEM;
		maps->maps = m;
		maps->cap = cap;
	}
	rc = map_init(maps, &maps->maps[maps->n], spec, len, dtype, config);
	maps->n++;	/* counted even on failure: tp_maps_free clears it */
	return rc;
}

int
tp_maps_open(tp_maps **out, const tp_config *config, tp_diag *diag)
{
	const char *list, *dtype;
	char *copy, *cp, *item;
	tp_maps *maps;
	int rc = TP_OK;

	*out = NULL;
	if (config == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_maps_open: no main.cf given");
	list = tp_config_get(config, "smtp_tls_policy_maps");
	if (list == NULL || strspn(list, LIST_SEP) == strlen(list))
		return tp__diag_set(diag, TP_ECONFIG, NULL, 0,
				    "%s/main.cf: smtp_tls_policy_maps is not set",
				    tp_config_dir(config));
	if ((copy = strdup(list)) == NULL || maps_new(&maps, config) < 0) {
		free(copy);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	/* No default type in main.cf's list: a bare path is an error there. */
	dtype = NULL;
	cp = copy;
	while (rc == TP_OK && (item = tp__strtokq(&cp, LIST_SEP)) != NULL)
		rc = maps_add(maps, item, strlen(item), dtype, config);
	free(copy);
	if (rc < 0) {
		tp_maps_free(maps);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	*out = maps;
	return TP_OK;
}

int
tp_maps_open_spec(tp_maps **out, const char *spec, const tp_config *config,
		  tp_diag *diag)
{
	return tp__maps_open_spec(out, spec, config, 0, diag);
}

int
tp__maps_open_spec(tp_maps **out, const char *spec, const tp_config *config,
		   unsigned flags, tp_diag *diag)
{
	tp_maps *maps;
	int rc;

	*out = NULL;
	if (spec == NULL || *spec == 0)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "no map named");
	if (maps_new(&maps, config) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	maps->flags = flags;
	if ((rc = maps_add(maps, spec, strlen(spec), default_type(config), config)) < 0) {
		tp_maps_free(maps);
		return tp__diag_set(diag, rc, NULL, 0, "out of memory");
	}
	*out = maps;
	return TP_OK;
}

void
tp_maps_free(tp_maps *maps)
{
	if (maps == NULL)
		return;
	for (size_t i = 0; i < maps->n; i++)
		map_clear(&maps->maps[i]);
	free(maps->maps);
	tp_buf_dispose(&maps->folded);
	tp_buf_dispose(&maps->value);
	tp_buf_dispose(&maps->matched);
	free(maps);
}

size_t
tp_maps_count(const tp_maps *maps)
{
	return maps ? maps->n : 0;
}

const tp_map_info *
tp_maps_at(const tp_maps *maps, size_t i)
{
	return maps && i < maps->n ? &maps->maps[i].info : NULL;
}

int
tp_maps_writable(const tp_maps *maps, size_t *index)
{
	for (size_t i = 0; i < maps->n; i++)
		if (maps->maps[i].info.writable) {
			*index = i;
			return TP_OK;
		}
	return TP_ENOTFOUND;
}

/* ---- lookups ---- */

static int
map_error(const struct map *m, tp_diag *diag, int status)
{
	char msg[TP_DIAG_MESSAGE_MAX];

	if (diag == NULL)
		return status;
	snprintf(msg, sizeof(msg), "%s", diag->message);
	return tp__diag_set(diag, status, NULL, 0, "%s: %s", m->info.spec, msg);
}

static int
db_open(struct map *m, tp_diag *diag)
{
	const tp__map_backend *b = tp__map_backend_get(m->db_type);
	struct stat st;
	int rc;

	/* tp_maps has no options (yet): the library's lock timeout. */
	if ((rc = b->open_read(&m->reader, m->info.db, TP_LOCK_TIMEOUT_DEFAULT, diag)) < 0) {
		m->reader = NULL;
		/* No database is a lookup error for Postfix, not an absent key. */
		return rc == TP_ENOTFOUND ? TP_EIO : rc;
	}
	if (fstat(b->reader_fd(m->reader), &st) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "stat %s", m->info.db);
		b->close_read(m->reader);
		m->reader = NULL;
		return rc;
	}
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	m->mtime = st.st_mtim;
	m->size = st.st_size;
	return TP_OK;	/* locked (shared), as open_read leaves it */
}

/*
 * Lock the open database for one lookup, and open it again if it is not
 * the file Postfix would open now: renamed over (tlspolicy, postmap -i
 * into a new file) or rewritten in place (postmap holds LOCK_EX while it
 * truncates and refills the file; once we hold LOCK_SH it is done, and
 * its mtime or size moved).
 */
static int
db_lock(struct map *m, tp_diag *diag)
{
	const tp__map_backend *b = tp__map_backend_get(m->db_type);
	struct stat now, path_st;

	if (m->reader != NULL) {
		int fd = b->reader_fd(m->reader);

		int rc = tp__lock_wait(fd, b->lock_style, TP__LOCK_SHARED,
				       TP_LOCK_TIMEOUT_DEFAULT, m->info.db, diag);

		if (rc < 0)
			return rc;
		if (fstat(fd, &now) == 0 && stat(m->info.db, &path_st) == 0
		    && path_st.st_dev == m->dev && path_st.st_ino == m->ino
		    && now.st_size == m->size && now.st_mtim.tv_sec == m->mtime.tv_sec
		    && now.st_mtim.tv_nsec == m->mtime.tv_nsec)
			return TP_OK;
		b->close_read(m->reader);
		m->reader = NULL;
	}
	return db_open(m, diag);
}

static void
db_unlock(struct map *m)
{
	const tp__map_backend *b = tp__map_backend_get(m->db_type);

	if (m->reader != NULL)
		(void)tp__lock_fd(b->reader_fd(m->reader), b->lock_style, TP__LOCK_UNLOCK);
}

static int
read_all(const char *path, tp_buf *out, tp_diag *diag)
{
	FILE *fp = fopen(path, "rb");
	char chunk[16384];
	size_t n;
	int rc = TP_OK;

	if (fp == NULL)
		return tp__diag_errno(diag, TP_EIO, errno, "open database %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (tp__buf_put(out, chunk, n) < 0) {
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			break;
		}
	if (rc == TP_OK && ferror(fp))
		rc = tp__diag_errno(diag, TP_EIO, errno, "read %s", path);
	fclose(fp);
	if (rc == TP_OK && tp__buf_put(out, "", 0) < 0)
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return rc;
}

static int
cmp_tkey(const void *pa, const void *pb)
{
	const struct tkey *a = pa, *b = pb;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->key, b->key, n) : 0;

	return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int
texthash_load(tp_maps *maps, struct map *m, tp_diag *diag)
{
	tp_diag d = TP_DIAG_INIT;
	size_t count;
	int rc;

	rc = tp_doc_load(&m->doc, m->info.path, &maps->doc_opts, &d);
	if (rc == TP_ENOMEM)
		return tp__diag_set(diag, rc, NULL, 0, "out of memory");
	if (rc < 0)
		return load_fail(m, TP_EIO, "%s", d.message);
	count = tp_doc_entry_count(m->doc);
	if ((m->keys = calloc(count ? count : 1, sizeof(*m->keys))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < count; i++) {
		tp_entry e;

		if (tp_doc_entry_at(m->doc, i, &e) < 0)
			continue;
		if (e.duplicate)
			return load_fail(m, TP_EINVALID,
					 "%s, line %lu: duplicate entry: \"%.*s\": Postfix's SMTP client refuses the whole table",
					 m->info.path, e.line, (int)e.key_len, e.key);
		m->keys[m->nkeys].key = e.key;
		m->keys[m->nkeys].len = e.key_len;
		m->keys[m->nkeys].line = e.line;
		m->keys[m->nkeys].value = e.value;
		m->keys[m->nkeys].value_len = e.value_len;
		m->nkeys++;
	}
	qsort(m->keys, m->nkeys, sizeof(*m->keys), cmp_tkey);
	return TP_OK;
}

static int
pattern_load(const tp_maps *maps, struct map *m, tp_diag *diag)
{
	tp_buf text = TP_BUF_INIT;
	tp_diag d = TP_DIAG_INIT;
	int rc;

	if ((rc = read_all(m->info.path, &text, &d)) < 0) {
		tp_buf_dispose(&text);
		if (rc == TP_ENOMEM)
			return tp__diag_set(diag, rc, NULL, 0, "out of memory");
		return load_fail(m, rc, "%s", d.message);
	}
	rc = tp__pattern_parse(&m->pattern, m->pattern_kind,
			       maps->flags & TP__MAPS_NO_REGSUB ? TP__PATTERN_NO_REGSUB : 0,
			       m->info.path, text.ptr, text.size);
	tp_buf_dispose(&text);
	if (rc < 0)
		return tp__diag_set(diag, rc, NULL, 0, "out of memory");
	return TP_OK;
}

/* What map m answers for key (folded: fixed-string form): 1, 0, < 0. */
static int
map_lookup(tp_maps *maps, struct map *m, const char *key, const char *folded,
	   tp_map_answer *out, tp_diag *diag)
{
	int rc;

	if (!m->loaded) {
		m->loaded = 1;
		if (m->kind == K_TEXTHASH)
			rc = texthash_load(maps, m, diag);
		else if (m->kind == K_PATTERN)
			rc = pattern_load(maps, m, diag);
		else if (m->kind == K_CIDR && access(m->info.path, R_OK) < 0)
			rc = load_fail(m, TP_EIO, "open %s: %s", m->info.path, strerror(errno));
		else
			rc = TP_OK;
		if (rc == TP_ENOMEM) {
			m->loaded = 0;
			return rc;
		}
	}
	if (m->load_status < 0)
		return map_error(m, diag, tp__diag_set(diag, m->load_status, NULL, 0, "%s",
						       m->load_message ? m->load_message : "cannot open"));
	tp__buf_truncate(&maps->value, 0);
	switch (m->kind) {
	case K_DB: {
		const tp__map_backend *b = tp__map_backend_get(m->db_type);

		if ((rc = db_lock(m, diag)) < 0)
			return map_error(m, diag, rc);
		rc = tp__map_get(b, m->reader, folded, &maps->value, diag);
		db_unlock(m);
		if (rc == TP_ENOTFOUND)
			return 0;
		return rc < 0 ? map_error(m, diag, rc) : 1;
	}
	case K_TEXTHASH: {
		struct tkey probe, *hit;

		probe.key = folded;
		probe.len = strlen(folded);
		hit = m->nkeys ? bsearch(&probe, m->keys, m->nkeys, sizeof(*m->keys), cmp_tkey)
			       : NULL;
		if (hit == NULL)
			return 0;
		out->line = hit->line;
		return tp__buf_put(&maps->value, hit->value, hit->value_len) < 0 ? TP_ENOMEM : 1;
	}
	case K_PATTERN:
		rc = tp__pattern_match(m->pattern, key, &maps->value, &out->line);
		return rc;
	case K_INLINE:
		for (size_t i = 0; i < m->npairs; i++)
			if (strcmp(m->pairs[i].key, folded) == 0) {
				out->line = i + 1;
				return tp__buf_puts(&maps->value, m->pairs[i].value) < 0
					   ? TP_ENOMEM : 1;
			}
		return 0;
	case K_STATIC:
		return tp__buf_puts(&maps->value, m->static_value) < 0 ? TP_ENOMEM : 1;
	case K_FAIL:
		return 2;
	case K_CIDR: {
		unsigned char a[16];

		/* dict_cidr.c: only an address can match. */
		if (inet_pton(AF_INET, key, a) == 1 || inet_pton(AF_INET6, key, a) == 1)
			return 3;
		return 0;
	}
	case K_UNKNOWN:
		return 3;
	}
	return 0;
}

int
tp_maps_find_range(tp_maps *maps, size_t first, size_t last, const char *key,
		   tp_map_answer *out, tp_diag *diag)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->status = TP_MAPS_NOTFOUND;
	if (maps == NULL || key == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_maps_find: no maps or no key");
	if (last > maps->n)
		last = maps->n;
	/* maps_find(): an empty key is never looked up. */
	if (*key == 0)
		return TP_OK;
	rc = fold(maps, &maps->folded, key);
	if (rc == TP_EINVALID)
		return TP_OK;	/* dict_utf8.c: a non-UTF-8 key finds nothing */
	if (rc < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	for (size_t i = first; i < last; i++) {
		struct map *m = &maps->maps[i];

		out->line = 0;
		rc = map_lookup(maps, m, key, maps->folded.ptr, out, diag);
		if (rc == TP_ENOMEM)
			return tp__diag_set(diag, rc, NULL, 0, "out of memory");
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		out->index = i;
		if (rc == 3) {
			out->status = TP_MAPS_UNKNOWN;
			out->line = 0;
			return TP_OK;
		}
		if (rc == 2) {	/* fail: */
			out->status = TP_MAPS_ERROR;
			out->line = 0;
			return TP_OK;
		}
		out->value = maps->value.ptr ? maps->value.ptr : "";
		/* maps_find() and dict_utf8.c: lookup errors, not answers. */
		if (maps->value.size == 0
		    || (maps->utf8 && !tp__allascii(out->value, maps->value.size)
			&& !tp__utf8_valid(out->value, maps->value.size)))
			out->status = TP_MAPS_ERROR;
		else
			out->status = TP_MAPS_FOUND;
		return TP_OK;
	}
	out->line = 0;
	return TP_OK;
}

int
tp_maps_find(tp_maps *maps, const char *key, tp_map_answer *out, tp_diag *diag)
{
	return tp_maps_find_range(maps, 0, SIZE_MAX, key, out, diag);
}

/* valid_utf8_hostname(): non-ASCII names via UTS #46 to A-labels. */
static int
valid_utf8_hostname(int utf8, const char *name)
{
	size_t len = strlen(name);

	if (*name == 0)
		return 0;
	if (utf8 && !tp__allascii(name, len)) {
		UErrorCode err = U_ZERO_ERROR;
		UIDNAInfo info = UIDNA_INFO_INITIALIZER;
		char buf[1024];
		UIDNA *idna;
		int32_t n;

		if (!tp__utf8_valid(name, len) || len > INT32_MAX)
			return 0;
		idna = uidna_openUTS46(UIDNA_NONTRANSITIONAL_TO_ASCII, &err);
		if (U_FAILURE(err))
			return 0;
		n = uidna_nameToASCII_UTF8(idna, name, (int32_t)len, buf,
					   (int32_t)sizeof(buf) - 1, &info, &err);
		uidna_close(idna);
		if (U_FAILURE(err) || info.errors != 0 || n < 0)
			return 0;
		buf[n] = 0;
		return tp__valid_hostname(buf, 0);
	}
	return tp__valid_hostname(name, 0);
}

int
tp_maps_find_nexthop(tp_maps *maps, const char *nexthop, tp_map_answer *out,
		     const char **matched_key, tp_diag *diag)
{
	const char *site;
	int rc, parents;

	if (matched_key)
		*matched_key = NULL;
	if (maps == NULL || nexthop == NULL) {
		memset(out, 0, sizeof(*out));
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "tp_maps_find_nexthop: no maps or no next hop");
	}
	tp__buf_truncate(&maps->matched, 0);
	if (tp__buf_puts(&maps->matched, nexthop) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	/*
	 * smtp_tls_policy.c: [host]:port, [host] and host:port are explicit
	 * next hops, looked up once; a domain also through its parents.
	 */
	parents = valid_utf8_hostname(maps->utf8, nexthop);
	site = maps->matched.ptr;
	for (;;) {
		if ((rc = tp_maps_find(maps, site, out, diag)) < 0)
			return rc;
		if (out->status != TP_MAPS_NOTFOUND || !parents
		    || (site = strchr(site + 1, '.')) == NULL)
			break;
	}
	if (matched_key && out->status != TP_MAPS_NOTFOUND)
		*matched_key = site;
	return TP_OK;
}
