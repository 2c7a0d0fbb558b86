/*
 * NAME
 *	config - what Postfix's main.cf says about TLS policy
 * SUMMARY
 *	Reads DIR/main.cf the way Postfix's configuration loader does and
 *	expands parameter values the way postconf -x does, for the few
 *	parameters tlspolicy needs.
 * DESCRIPTION
 *	Logical lines follow the same rules as any Postfix table: a line that
 *	starts with whitespace continues the previous one, a line whose first
 *	non-blank byte is '#' is a comment (even inside a continued value),
 *	blank lines are ignored. Each logical line is "name = value"; a later
 *	setting of the same name wins, as in Postfix.
 *
 *	Expansion handles $name, ${name}, $(name), $$, ${name?value},
 *	${name:value}, ${name?{a}:{b}} and the relational form Postfix uses
 *	for its compatibility defaults, ${{x} <level {3.6} ? {a} : {b}} (and
 *	==, !=, <, <=, >, >= with or without "level"). Unknown parameters
 *	expand to the empty string, as in Postfix. A value that nests macros
 *	deeper than Postfix allows (a loop: a = $b, b = $a) makes the load
 *	fail with TP_ECONFIG, as it stops Postfix.
 *
 *	Built-in defaults matter for the parameters main.cf usually leaves
 *	out: compatibility_level (0), smtputf8_enable and
 *	smtp_tls_fingerprint_digest (Postfix 3.6+ compatibility expressions),
 *	config_directory (the directory read), and the map types of Postfix
 *	3.11's non-Berkeley-DB migration: default_database_type (hash),
 *	default_cache_db_type (btree), non_bdb_migration_level (disable),
 *	as Debian builds them (a build without Berkeley DB has lmdb or cdb;
 *	main.cf then says so or the admin runs postconf -e).
 * DIAGNOSTICS
 *	TP_ENOTFOUND: no main.cf. TP_EIO: it cannot be read. TP_ECONFIG: a
 *	macro loop; no file-backed map in smtp_tls_policy_maps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "diag.h"
#include "config_internal.h"
#include "tlspolicy/config.h"
#include "tlspolicy/maps.h"

#define CONFIG_DEFAULT_DIR "/etc/postfix"
/* Postfix's own limit (mac_expand.c): past it, every Postfix program
 * that reads main.cf stops with "macro processing error". */
#define CONFIG_EXPAND_DEPTH 100
/*
 * Depth alone does not bound the work: "a = $b$b", "b = $c$c", ... doubles
 * at each level (2^32 lookups, found by fuzzing), and "b = $a$a...$a"
 * with a 1 MB $a made 200 MB. One tp_config_get() has one budget for the
 * whole expansion, nested values and groups included: this many
 * parameter lookups, and this many bytes appended to any buffer, checked
 * before every append. Past either, the rest expands to nothing (Postfix
 * itself gives up on such a main.cf). The result is therefore at most
 * TP__CONFIG_EXPAND_OUTPUT bytes, and so is the copying that made it.
 */
#define CONFIG_EXPAND_LOOKUPS 10000
/* The load-time search for macro loops (check_nesting()): one budget
 * for all the parameters it expands. */
#define CONFIG_NESTING_LOOKUPS 100000

struct param {
	char *name;
	char *value;
};

struct tp_config {
	char *dir;
	char *path;		/* DIR/main.cf, for messages */
	struct param *params;
	size_t nparams;
	/* name -> index + 1 of its setting in effect (the last): a lookup in
	 * an expansion is one probe, not a walk of every setting. */
	uint32_t *index;
	size_t index_size;	/* a power of two */
	/* Expanded values handed out by tp_config_get, owned here. */
	struct param *expanded;
	size_t nexpanded;
	char *policy_map_path;
};

/* One expansion (one tp_config_get) and what it may still spend. */
struct expansion {
	const tp_config *config;
	size_t lookups_left;
	size_t bytes_left;
	size_t lookups_done;
	int nested;		/* CONFIG_EXPAND_DEPTH was passed */
	const char *name;	/* the last name looked up, name_len bytes */
	size_t name_len;
};

/* Postfix 3.6+ defaults, as "postconf -d" prints them. */
static const struct {
	const char *name;
	const char *value;
} builtin_defaults[] = {
	{ "compatibility_level", "0" },
	{ "smtputf8_enable", "${{$compatibility_level} <level {1} ? {no} : {yes}}" },
	{ "smtp_tls_fingerprint_digest",
	  "${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}" },
	{ "smtp_tls_policy_maps", "" },
	/* Where the running Postfix keeps its queue and master.pid. */
	{ "queue_directory", "/var/spool/postfix" },
	/* What the SMTP client does for a next hop (client.c), as in 3.7. */
	{ "smtp_tls_security_level", "" },
	{ "smtp_tls_servername", "" },
	{ "smtp_tls_protocols", ">=TLSv1" },
	{ "smtp_tls_mandatory_protocols", ">=TLSv1" },
	{ "smtp_tls_ciphers", "medium" },
	{ "smtp_tls_mandatory_ciphers", "medium" },
	{ "smtp_tls_exclude_ciphers", "" },
	{ "smtp_tls_mandatory_exclude_ciphers", "" },
	{ "tls_high_cipherlist", "aNULL:-aNULL:HIGH:@STRENGTH" },
	{ "tls_medium_cipherlist", "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH" },
	{ "tls_low_cipherlist", "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH" },
	{ "tls_export_cipherlist",
	  "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH" },
	{ "tls_null_cipherlist", "eNULL:!aNULL" },
	{ "tls_eecdh_auto_curves", "X25519 X448 prime256v1 secp521r1 secp384r1" },
	{ "smtp_tls_cert_file", "" },
	{ "smtp_tls_key_file", "$smtp_tls_cert_file" },
	{ "smtp_tls_eccert_file", "" },
	{ "smtp_tls_eckey_file", "$smtp_tls_eccert_file" },
	{ "smtp_tls_chain_files", "" },
	{ "smtp_tls_CAfile", "" },
	{ "smtp_tls_CApath", "" },
	{ "smtp_tls_fingerprint_cert_match", "" },
	{ "smtp_tls_wrappermode", "no" },
	{ "smtp_tls_enable_rpk", "no" },
	{ "smtp_helo_name", "$myhostname" },
	{ "inet_protocols", "all" },
	{ "inet_interfaces", "all" },
	{ "smtp_bind_address", "" },
	{ "smtp_bind_address6", "" },
	{ "smtp_bind_address_enforce", "no" },
	{ "smtp_address_preference", "any" },
	{ "smtp_mx_address_limit", "5" },
	{ "smtp_mx_session_limit", "2" },
	{ "smtp_host_lookup", "dns" },
	{ "smtp_dns_support_level", "" },
	{ "disable_dns_lookups", "no" },
	{ "smtp_balance_inet_protocols", "yes" },
	{ "smtp_randomize_addresses", "yes" },
	/* What a bare path given to postmap or -m means (not in main.cf). */
	{ "default_database_type", "hash" },
	/* Postfix 3.11: where hash: and btree: go when redirected. */
	{ "default_cache_db_type", "btree" },
	{ "non_bdb_migration_level", "disable" },
};

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v'
	    || c == '\f';
}

static int
is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	    || (c >= '0' && c <= '9') || c == '_';
}

static size_t
name_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;	/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3u;
	return (size_t)h;
}

/* index_find - the slot for name: its setting's, or the empty one */
static size_t
index_find(const tp_config *config, const char *name, size_t len)
{
	size_t mask = config->index_size - 1, h;

	for (h = name_hash(name, len) & mask; config->index[h]; h = (h + 1) & mask) {
		const char *n = config->params[config->index[h] - 1].name;

		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return h;
	}
	return h;
}

/* build_index - every name once, at its last setting (later ones win) */
static int
build_index(tp_config *config)
{
	size_t size = 16;

	if (config->nparams >= UINT32_MAX / 2)
		return TP_ENOMEM;
	while (size < 2 * config->nparams)
		size *= 2;
	if ((config->index = calloc(size, sizeof(*config->index))) == NULL)
		return TP_ENOMEM;
	config->index_size = size;
	for (size_t i = 0; i < config->nparams; i++) {
		const char *name = config->params[i].name;

		config->index[index_find(config, name, strlen(name))] = (uint32_t)i + 1;
	}
	return TP_OK;
}

static const char *
raw_value(const tp_config *config, const char *name, size_t len)
{
	/* tp__config_parse() built the index: a config has one. */
	uint32_t set = config->index[index_find(config, name, len)];

	if (set != 0)
		return config->params[set - 1].value;
	if (len == strlen("config_directory")
	    && memcmp(name, "config_directory", len) == 0)
		return config->dir;
	for (size_t i = 0; i < sizeof(builtin_defaults) / sizeof(builtin_defaults[0]); i++)
		if (strlen(builtin_defaults[i].name) == len
		    && memcmp(builtin_defaults[i].name, name, len) == 0)
			return builtin_defaults[i].value;
	return NULL;
}

static int expand(struct expansion *x, const char *s, size_t len,
		  tp_buf *out, int depth);

/*
 * Append s[0..n) to out if the budget allows; otherwise spend it all, so
 * the rest of the expansion stops, and append nothing. TP_ENOMEM only.
 */
static int
put(struct expansion *x, tp_buf *out, const char *s, size_t n)
{
	if (n > x->bytes_left) {
		x->bytes_left = 0;
		x->lookups_left = 0;
		return 0;
	}
	x->bytes_left -= n;
	return tp__buf_put(out, s, n) != 0 ? TP_ENOMEM : 0;
}

/* Index just past the group that opens at s[0] ('{' or '(') and closes
 * with its match, honouring nesting; len when unterminated. */
static size_t
group_end(const char *s, size_t len)
{
	char open = s[0], close = open == '{' ? '}' : ')';
	int level = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == open)
			level++;
		else if (s[i] == close && --level == 0)
			return i + 1;
	}
	return len;
}

static size_t
skip_space(const char *s, size_t i, size_t len)
{
	while (i < len && is_space((unsigned char)s[i]))
		i++;
	return i;
}

/* Compare Postfix compatibility levels: "3.6" < "3.10", "2" == "2.0". */
static int
compare_levels(const char *a, const char *b)
{
	while (*a || *b) {
		char *ea, *eb;
		unsigned long na = strtoul(a, &ea, 10), nb = strtoul(b, &eb, 10);

		if (na != nb)
			return na < nb ? -1 : 1;
		a = *ea == '.' ? ea + 1 : ea;
		b = *eb == '.' ? eb + 1 : eb;
		if (ea == a && *a && *a != '.')
			break;
		if (eb == b && *b && *b != '.')
			break;
	}
	return 0;
}

static int
relation_holds(const char *op, size_t oplen, const char *a, const char *b)
{
	int cmp;
	int level = oplen > 5 && memcmp(op + oplen - 5, "level", 5) == 0;
	size_t n = level ? oplen - 5 : oplen;

	if (level) {
		cmp = compare_levels(a, b);
	} else {
		char *ea, *eb;
		long na = strtol(a, &ea, 10), nb = strtol(b, &eb, 10);

		if (*a && *b && !*ea && !*eb)
			cmp = na < nb ? -1 : na > nb;
		else
			cmp = strcmp(a, b) < 0 ? -1 : strcmp(a, b) > 0;
	}
	if (n == 2 && memcmp(op, "==", 2) == 0)
		return cmp == 0;
	if (n == 2 && memcmp(op, "!=", 2) == 0)
		return cmp != 0;
	if (n == 2 && memcmp(op, "<=", 2) == 0)
		return cmp <= 0;
	if (n == 2 && memcmp(op, ">=", 2) == 0)
		return cmp >= 0;
	if (n == 1 && op[0] == '<')
		return cmp < 0;
	if (n == 1 && op[0] == '>')
		return cmp > 0;
	return 0;
}

/* Expand the inside of "{...}" group at s (s[0] == '{') into out. */
static int
expand_group(struct expansion *x, const char *s, size_t glen, tp_buf *out,
	     int depth)
{
	size_t b = 1, e = glen > 1 && s[glen - 1] == '}' ? glen - 1 : glen;

	/* Postfix trims whitespace just inside the braces. */
	while (b < e && is_space((unsigned char)s[b]))
		b++;
	while (e > b && is_space((unsigned char)s[e - 1]))
		e--;
	return expand(x, s + b, e - b, out, depth + 1);
}

/* ${{a} OP {b} ? {t} : {f}} with body = the text between "${" and "}". */
static int
expand_relation(struct expansion *x, const char *body, size_t len,
		tp_buf *out, int depth)
{
	tp_buf a = TP_BUF_INIT, b = TP_BUF_INIT;
	size_t i = 0, g, op, oplen;
	const char *t = NULL, *f = NULL;
	size_t tlen = 0, flen = 0;
	int rc = TP_ENOMEM;

	g = group_end(body, len);
	if (expand_group(x, body, g, &a, depth) != 0)
		goto out;
	i = skip_space(body, g, len);
	op = i;
	while (i < len && !is_space((unsigned char)body[i]) && body[i] != '{')
		i++;
	oplen = i - op;
	i = skip_space(body, i, len);
	if (i >= len || body[i] != '{')
		goto syntax;
	g = i + group_end(body + i, len - i);
	if (expand_group(x, body + i, g - i, &b, depth) != 0)
		goto out;
	i = skip_space(body, g, len);
	if (i < len && body[i] == '?') {
		i = skip_space(body, i + 1, len);
		if (i < len && body[i] == '{') {
			t = body + i;
			tlen = group_end(t, len - i);
			i = skip_space(body, i + tlen, len);
		}
	}
	if (i < len && body[i] == ':') {
		i = skip_space(body, i + 1, len);
		if (i < len && body[i] == '{') {
			f = body + i;
			flen = group_end(f, len - i);
		}
	}
	if (relation_holds(body + op, oplen, a.ptr ? a.ptr : "", b.ptr ? b.ptr : ""))
		rc = t ? expand_group(x, t, tlen, out, depth) : 0;
	else
		rc = f ? expand_group(x, f, flen, out, depth) : 0;
	goto out;
syntax:
	/* Postfix reports a syntax error; an empty expansion is the safe reading. */
	rc = 0;
out:
	tp_buf_dispose(&a);
	tp_buf_dispose(&b);
	return rc;
}

/* ${name}, ${name?x}, ${name:x}, ${name?{x}:{y}}: body is the inside. */
static int
expand_named(struct expansion *x, const char *body, size_t len,
	     tp_buf *out, int depth)
{
	size_t n = 0;
	const char *value;
	tp_buf v = TP_BUF_INIT;
	int rc, set;

	while (n < len && is_name_char((unsigned char)body[n]))
		n++;
	if (x->lookups_left == 0)
		return 0;
	x->lookups_left--;
	x->lookups_done++;
	x->name = body;
	x->name_len = n;
	value = raw_value(x->config, body, n);
	if (value && (rc = expand(x, value, strlen(value), &v, depth + 1)) != 0) {
		tp_buf_dispose(&v);
		return rc;
	}
	set = v.size > 0;
	if (n == len) {
		rc = v.size ? put(x, out, v.ptr, v.size) : 0;
	} else if (body[n] == '?' || body[n] == ':') {
		const char *rest = body + n + 1;
		size_t rlen = len - n - 1;
		int want = body[n] == '?';

		if (body[n] == '?' && rlen > 0 && rest[0] == '{') {
			/* ${name?{a}:{b}} */
			size_t g = group_end(rest, rlen), i = skip_space(rest, g, rlen);

			if (set)
				rc = expand_group(x, rest, g, out, depth);
			else if (i < rlen && rest[i] == ':') {
				i = skip_space(rest, i + 1, rlen);
				rc = i < rlen && rest[i] == '{'
				    ? expand_group(x, rest + i,
						   group_end(rest + i, rlen - i), out, depth)
				    : 0;
			} else
				rc = 0;
		} else if (set == want) {
			rc = expand(x, rest, rlen, out, depth + 1);
		} else
			rc = 0;
	} else
		rc = 0;
	tp_buf_dispose(&v);
	return rc;
}

static int
expand(struct expansion *x, const char *s, size_t len, tp_buf *out,
       int depth)
{
	size_t i = 0;
	int rc;

	if (tp__buf_grow(out, 0) != 0)
		return TP_ENOMEM;
	if (depth > CONFIG_EXPAND_DEPTH) {
		x->nested = 1;
		x->lookups_left = 0;
	}
	if (x->lookups_left == 0)
		return 0;
	while (i < len) {
		size_t start = i;

		while (i < len && s[i] != '$')
			i++;
		if (i > start && (rc = put(x, out, s + start, i - start)) != 0)
			return rc;
		if (i >= len)
			break;
		i++;
		if (i < len && s[i] == '$') {
			if ((rc = put(x, out, "$", 1)) != 0)
				return rc;
			i++;
		} else if (i < len && (s[i] == '{' || s[i] == '(')) {
			size_t g = group_end(s + i, len - i);
			const char *body = s + i + 1;
			size_t blen = g >= 2 ? g - 2 : 0;

			if (blen > 0 && body[0] == '{')
				rc = expand_relation(x, body, blen, out, depth);
			else
				rc = expand_named(x, body, blen, out, depth);
			if (rc != 0)
				return rc;
			i += g;
		} else {
			size_t n = i;

			while (n < len && is_name_char((unsigned char)s[n]))
				n++;
			if ((rc = expand_named(x, s + i, n - i, out, depth)) != 0)
				return rc;
			i = n;
		}
	}
	return 0;
}

static int
add_param(tp_config *config, const char *line, size_t len)
{
	size_t n = 0, v;
	struct param *params;
	char *name, *value;

	while (n < len && !is_space((unsigned char)line[n]) && line[n] != '=')
		n++;
	v = skip_space(line, n, len);
	/* Postfix ignores (with a warning) a line that is not name = value. */
	if (n == 0 || v >= len || line[v] != '=')
		return 0;
	v = skip_space(line, v + 1, len);
	while (len > v && is_space((unsigned char)line[len - 1]))
		len--;
	name = strndup(line, n);
	value = strndup(line + v, len - v);
	params = realloc(config->params, (config->nparams + 1) * sizeof(*params));
	if (name == NULL || value == NULL || params == NULL) {
		free(name);
		free(value);
		if (params)
			config->params = params;
		return TP_ENOMEM;
	}
	config->params = params;
	params[config->nparams].name = name;
	params[config->nparams].value = value;
	config->nparams++;
	return 0;
}

/* Split main.cf text into logical lines and record each name = value. */
static int
parse_main_cf(tp_config *config, const char *text, size_t len)
{
	tp_buf logical = TP_BUF_INIT;
	size_t i = 0;
	int rc = 0;

	while (i < len && rc == 0) {
		size_t start = i, end, p;

		while (i < len && text[i] != '\n')
			i++;
		end = i;
		if (i < len)
			i++;
		p = skip_space(text, start, end);
		if (p == end || text[p] == '#')
			continue;
		if (p == start && logical.size > 0) {
			rc = add_param(config, logical.ptr, logical.size);
			tp__buf_truncate(&logical, 0);
		}
		/* A continuation whose logical line has not started is dropped, as Postfix does. */
		if (p != start && logical.size == 0)
			continue;
		if (rc == 0 && tp__buf_put(&logical, text + start, end - start) != 0)
			rc = TP_ENOMEM;
	}
	if (rc == 0 && logical.size > 0)
		rc = add_param(config, logical.ptr, logical.size);
	tp_buf_dispose(&logical);
	return rc;
}

static int
read_file(const char *path, tp_buf *out, tp_diag *diag)
{
	FILE *fp = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (fp == NULL)
		return tp__diag_errno(diag, errno == ENOENT ? TP_ENOTFOUND : TP_EIO,
				      errno, "open %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (tp__buf_put(out, chunk, n) != 0) {
			fclose(fp);
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		}
	if (ferror(fp)) {
		int err = errno;

		fclose(fp);
		return tp__diag_errno(diag, TP_EIO, err, "error reading %s", path);
	}
	fclose(fp);
	return 0;
}

/* Read by the library without a built-in default (route.c, maps.c,
 * queue and migration code), and myhostname, which the defaults of
 * others name; with builtin_defaults, every parameter tlspolicy reads,
 * each once. */
static const char *const read_without_default[] = {
	"command_directory", "default_transport", "mydomain", "myhostname",
	"owner_request_special", "parent_domain_matches_subdomains",
	"recipient_delimiter", "relay_domains", "relay_transport", "relayhost",
	"transport_maps",
};

/*
 * nested - TP_ECONFIG when the value of name nests macros past Postfix's
 * limit, spending at most *budget lookups; TP_ENOMEM; else TP_OK.
 */
static int
nested(const tp_config *config, const char *name, size_t *budget, tp_diag *diag)
{
	const char *raw = raw_value(config, name, strlen(name));
	struct expansion x = { config, *budget, TP__CONFIG_EXPAND_OUTPUT, 0, 0, NULL, 0 };
	tp_buf v = TP_BUF_INIT;
	int rc;

	if (raw == NULL)
		return TP_OK;
	rc = expand(&x, raw, strlen(raw), &v, 0);
	tp_buf_dispose(&v);
	if (rc != 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	/* Not x.lookups_left: a value past the output limit zeroes it. */
	*budget -= x.lookups_done < *budget ? x.lookups_done : *budget;
	if (!x.nested)
		return TP_OK;
	return tp__diag_set(diag, TP_ECONFIG, config->path, 0,
			    "unreasonable macro call nesting: \"%.*s\" in the value of %s (Postfix stops on this main.cf: macro processing error)",
			    (int)(x.name_len > 200 ? 200 : x.name_len),
			    x.name ? x.name : "", name);
}

/*
 * A parameter whose value nests macros past Postfix's limit (a loop:
 * a = $b, b = $a) stops postconf and every Postfix program that reads
 * it, so it stops us too, rather than our reading it as empty. Checked:
 * the parameters tlspolicy reads, as Postfix stops only for the
 * parameters it knows (a loop among parameters nothing uses is left
 * alone by Postfix too). One budget for all, so a large main.cf cannot
 * make this slow. TP_ECONFIG, or TP_ENOMEM.
 */
static int
check_nesting(const tp_config *config, tp_diag *diag)
{
	size_t budget = CONFIG_NESTING_LOOKUPS;
	int rc;

	for (size_t i = 0; i < sizeof(builtin_defaults) / sizeof(builtin_defaults[0]); i++)
		if ((rc = nested(config, builtin_defaults[i].name, &budget, diag)) != 0)
			return rc;
	for (size_t i = 0; i < sizeof(read_without_default) / sizeof(read_without_default[0]); i++)
		if ((rc = nested(config, read_without_default[i], &budget, diag)) != 0)
			return rc;
	return TP_OK;
}

int
tp__config_parse(tp_config **out, const char *dir, const char *text,
		 size_t len, tp_diag *diag)
{
	tp_config *config;
	int rc;

	*out = NULL;
	if ((config = calloc(1, sizeof(*config))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	config->dir = strdup(dir);
	if (config->dir == NULL
	    || asprintf(&config->path, "%s/main.cf", dir) < 0) {
		config->path = NULL;
		tp_config_free(config);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	if ((rc = parse_main_cf(config, text, len)) != 0) {
		tp_config_free(config);
		return tp__diag_set(diag, rc, NULL, 0, "out of memory");
	}
	if (build_index(config) != TP_OK) {
		tp_config_free(config);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	if ((rc = check_nesting(config, diag)) != TP_OK) {
		tp_config_free(config);
		return rc;
	}
	*out = config;
	return 0;
}

int
tp_config_load(tp_config **out, const char *dir, tp_diag *diag)
{
	tp_buf text = TP_BUF_INIT, path = TP_BUF_INIT;
	int rc;

	*out = NULL;
	if (dir == NULL || !*dir) {
		dir = getenv("MAIL_CONFIG");
		if (dir == NULL || !*dir)
			dir = CONFIG_DEFAULT_DIR;
	}
	if (tp__buf_printf(&path, "%s/main.cf", dir) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if ((rc = read_file(path.ptr, &text, diag)) == 0)
		rc = tp__config_parse(out, dir, text.ptr ? text.ptr : "", text.size, diag);
	tp_buf_dispose(&text);
	tp_buf_dispose(&path);
	return rc;
}

void
tp_config_free(tp_config *config)
{
	if (config == NULL)
		return;
	for (size_t i = 0; i < config->nparams; i++) {
		free(config->params[i].name);
		free(config->params[i].value);
	}
	for (size_t i = 0; i < config->nexpanded; i++) {
		free(config->expanded[i].name);
		free(config->expanded[i].value);
	}
	free(config->params);
	free(config->index);
	free(config->expanded);
	free(config->policy_map_path);
	free(config->dir);
	free(config->path);
	free(config);
}

const char *
tp_config_dir(const tp_config *config)
{
	return config->dir;
}

const char *
tp_config_get(const tp_config *config, const char *name)
{
	/* Expanded values are cached in the config so the pointer stays valid
	 * until tp_config_free; the cache is logically const. */
	tp_config *self = (tp_config *)(uintptr_t)config;
	struct expansion x = { config, CONFIG_EXPAND_LOOKUPS, TP__CONFIG_EXPAND_OUTPUT, 0, 0, NULL, 0 };
	const char *raw;
	tp_buf v = TP_BUF_INIT;
	struct param *expanded;

	for (size_t i = 0; i < config->nexpanded; i++)
		if (strcmp(config->expanded[i].name, name) == 0)
			return config->expanded[i].value;
	if ((raw = raw_value(config, name, strlen(name))) == NULL)
		return NULL;
	if (expand(&x, raw, strlen(raw), &v, 0) != 0)
		goto nomem;
	expanded = realloc(self->expanded, (self->nexpanded + 1) * sizeof(*expanded));
	if (expanded == NULL)
		goto nomem;
	self->expanded = expanded;
	expanded[self->nexpanded].name = strdup(name);
	if (expanded[self->nexpanded].name == NULL)
		goto nomem;
	expanded[self->nexpanded].value = tp__buf_detach(&v);
	return expanded[self->nexpanded++].value;
nomem:
	tp_buf_dispose(&v);
	return NULL;
}

/*
 * Kept for callers of the first API: the first map tlspolicy can write,
 * found by tp_maps, which knows every map of the list.
 */
int
tp_config_policy_map(const tp_config *config, tp_map_type *type,
		     const char **path, tp_diag *diag)
{
	tp_config *self = (tp_config *)(uintptr_t)config;
	const char *maps_value = tp_config_get(config, "smtp_tls_policy_maps");
	const tp_map_info *info;
	tp_maps *maps;
	size_t index;
	int rc;

	if (maps_value == NULL || !*maps_value)
		return tp__diag_set(diag, TP_ECONFIG, config->path, 0,
				    "smtp_tls_policy_maps is not set; name the table with -m TYPE:PATH");
	if ((rc = tp_maps_open(&maps, config, diag)) < 0)
		return rc;
	if (tp_maps_writable(maps, &index) < 0) {
		tp_maps_free(maps);
		return tp__diag_set(diag, TP_ECONFIG, config->path, 0,
				    "no hash: or btree: table in smtp_tls_policy_maps = %s; name the table with -m TYPE:PATH",
				    maps_value);
	}
	info = tp_maps_at(maps, index);
	free(self->policy_map_path);
	self->policy_map_path = strdup(info->path);
	rc = tp_map_type_parse(type, info->type);
	tp_maps_free(maps);
	if (self->policy_map_path == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (rc < 0)
		return tp__diag_set(diag, TP_EUNSUPPORTED, config->path, 0,
				    "map type is not supported");
	*path = self->policy_map_path;
	return 0;
}

const char *
tp_config_digest(const tp_config *config)
{
	const char *digest = tp_config_get(config, "smtp_tls_fingerprint_digest");

	/* Only NULL when out of memory; an empty value stays empty so the
	 * caller reports it, as Postfix would refuse it. */
	return digest ? digest : "";
}

int
tp_config_smtputf8(const tp_config *config)
{
	const char *v = tp_config_get(config, "smtputf8_enable");

	return v && (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0
		     || strcmp(v, "1") == 0);
}

int
tp_config_nbdb_level(const tp_config *config)
{
	const char *v = tp_config_get(config, "non_bdb_migration_level");

	if (v == NULL || strcmp(v, "disable") == 0)
		return TP_NBDB_DISABLE;
	if (strcmp(v, "enable-redirect") == 0)
		return TP_NBDB_REDIRECT;
	if (strcmp(v, "enable-reindex") == 0)
		return TP_NBDB_REINDEX;
	return TP_NBDB_INVALID;
}

const char *
tp_config_effective_type(const tp_config *config, const char *type)
{
	const char *to;
	int level = config ? tp_config_nbdb_level(config) : TP_NBDB_DISABLE;

	/* nbdb_map_leg_type(): only the legacy types move, and only redirected. */
	if (level != TP_NBDB_REDIRECT && level != TP_NBDB_REINDEX)
		return type;
	if (strcmp(type, "hash") == 0)
		to = tp_config_get(config, "default_database_type");
	else if (strcmp(type, "btree") == 0)
		to = tp_config_get(config, "default_cache_db_type");
	else
		return type;
	return to ? to : type;
}

char *
tp__config_postfix_file(const tp_config *config, const char *name)
{
	const char *queue = tp_config_get(config, "queue_directory");
	tp_buf b = TP_BUF_INIT;

	if (*name == '\0' || *name == '/' || queue == NULL || *queue == '\0')
		return strdup(name);
	if (tp__buf_printf(&b, "%s/%s", queue, name) != TP_OK) {
		tp_buf_dispose(&b);
		return NULL;
	}
	return b.ptr;
}
