/*
 * Every map of smtp_tls_policy_maps, asked as Postfix asks them. Real
 * postmap is the oracle: for each table below and each key, what
 * tp_maps_find() gives must equal what "postmap -q KEY TYPE:FILE"
 * prints (and whether it finds anything at all). A wrong answer here is
 * a pin judged live while an earlier map makes Postfix use another
 * policy. postmap and postfix-pcre missing: the tests fail, they do not
 * skip.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "config_internal.h"
#include "pattern.h"
#include "tlspolicy.h"

static char dir[] = "/tmp/test_maps.XXXXXX";

static void write_file(const char *name, const char *text);

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_maps.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	/* postmap -c DIR needs a main.cf before a test writes its own. */
	write_file("main.cf", "compatibility_level = 3.6\n");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *
path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
	return buf;
}

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *fp = fopen(path_in(path, sizeof(path), name), "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Single-quote s for sh. */
static void
shquote(char *out, size_t size, const char *s)
{
	size_t j = 0;

	out[j++] = '\'';
	for (; *s && j + 5 < size; s++) {
		if (*s == '\'') {
			memcpy(out + j, "'\\''", 4);
			j += 4;
		} else {
			out[j++] = *s;
		}
	}
	out[j++] = '\'';
	out[j] = 0;
}

/*
 * postmap -q KEY MAP with main.cf of DIR: 1 and the value (newline cut)
 * when found, 0 when not. A postmap that cannot run fails the test.
 */
static int
postmap_q(const char *key, const char *map, char *value, size_t size)
{
	char cmd[2048], qkey[512], qmap[1024];
	FILE *fp;
	size_t n;
	int status;

	shquote(qkey, sizeof(qkey), key);
	shquote(qmap, sizeof(qmap), map);
	snprintf(cmd, sizeof(cmd), "postmap -c %s -q %s %s 2>/dev/null", dir, qkey, qmap);
	if ((fp = popen(cmd, "r")) == NULL)
		fail_msg("cannot run postmap (is postfix installed?)");
	n = fread(value, 1, size - 1, fp);
	value[n] = 0;
	if (n > 0 && value[n - 1] == '\n')
		value[n - 1] = 0;
	status = pclose(fp);
	if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
		fail_msg("postmap failed (%d): %s (is postfix%s installed?)", status, cmd,
			 strncmp(map, "pcre:", 5) == 0 ? "-pcre" : "");
	return WEXITSTATUS(status) == 0;
}

static tp_config *
load_config(const char *main_cf)
{
	tp_config *config = NULL;

	write_file("main.cf", main_cf);
	assert_int_equal(tp_config_load(&config, dir, NULL), 0);
	return config;
}

/* Each key through tp_maps and through postmap -q on map: same answer. */
static void
compare_with_postmap(const char *map, const char *const *keys, size_t nkeys)
{
	tp_config *config = load_config("compatibility_level = 3.6\n");
	tp_maps *maps = NULL;
	tp_diag diag = TP_DIAG_INIT;
	size_t checked = 0;

	assert_int_equal(tp_maps_open_spec(&maps, map, config, &diag), 0);
	for (size_t i = 0; i < nkeys; i++) {
		char want[4096];
		int found = postmap_q(keys[i], map, want, sizeof(want));
		tp_map_answer a;

		if (tp_maps_find(maps, keys[i], &a, &diag) != 0)
			fail_msg("%s: key \"%s\": %s", map, keys[i], diag.message);
		/* postmap -q prints an empty result; maps_find calls it an error. */
		if (found && *want == 0) {
			if (a.status != TP_MAPS_ERROR)
				fail_msg("%s: key \"%s\": got status %d, want an error (empty result)",
					 map, keys[i], a.status);
		} else if (found != (a.status == TP_MAPS_FOUND)) {
			fail_msg("%s: key \"%s\": got %s \"%s\", want %s \"%s\" (postmap -q)",
				 map, keys[i], a.status == TP_MAPS_FOUND ? "found" : "not found",
				 a.value ? a.value : "", found ? "found" : "not found", want);
		} else if (found && strcmp(a.value, want) != 0) {
			fail_msg("%s: key \"%s\": got \"%s\", want \"%s\" (postmap -q)", map,
				 keys[i], a.value, want);
		}
		checked++;
	}
	assert_int_equal(checked, nkeys);
	tp_maps_free(maps);
	tp_config_free(config);
}

static const char regexp_table[] =
	"# comments and blank lines are skipped\n"
	"\n"
	"/^\\[127\\.0\\.0\\.2\\]:25$/\tencrypt\n"
	"/^(mx[0-9]+)\\.(example)\\.com$/ fingerprint match=$1:$2 $$ ${1}x\n"
	"/^CASE\\.test$/i\tsecure\n"
	"/^(a)?b\\.opt\\.test$/\tverify servername=[$1]\n"
	"/^neg\\./!/^neg\\.skip\\./\tmay\n"
	"!/\\./\tnone\n"
	"if /\\.in\\.test$/\n"
	"/^x\\./\tdane\n"
	"endif\n"
	"IF !/^keep/\n"
	"/\\.cont\\.test$/\tfingerprint\n"
	"  match=AA:BB\n"
	"ENDIF\n"
	"/(unclosed/\tmay\n"
	"/x/q\tmay\n"
	"/^(bad)\\.sub\\.test$/\tencrypt $2\n"
	"/^(y)\\.test$/\tencrypt $y\n"
	"endif\n"
	"/\\.crlf\\.test$/\tmay\r\n"
	"/^empty\\.test$/\n"
	"/@/\t$1\n"
	"/^last\\.test$/ secure\n";

static const char *const pattern_keys[] = {
	"[127.0.0.2]:25", "[127.0.0.2]:26", "mx1.example.com", "MX22.Example.COM",
	"case.test", "CASE.test", "b.opt.test", "ab.opt.test", "neg.a", "neg.skip.a",
	"nodot", "x.in.test", "x.out.test", "a.cont.test", "keep.cont.test",
	"bad.sub.test", "y.test", "a.crlf.test", "empty.test", "a@b", "last.test",
	"LAST.TEST", "other.test",
};

static void
test_maps__regexp_table_answers_as_postmap_q(void **state)
{
	char path[512], spec[600];

	(void)state;
	write_file("pre", regexp_table);
	snprintf(spec, sizeof(spec), "regexp:%s", path_in(path, sizeof(path), "pre"));
	compare_with_postmap(spec, pattern_keys, sizeof(pattern_keys) / sizeof(pattern_keys[0]));
}

static const char pcre_table[] =
	"/^\\[127\\.0\\.0\\.2\\]:25$/\tencrypt\n"
	"/^(mx\\d+)\\.(example)\\.com$/ fingerprint match=$1:$2 $$\n"
	"/^CASE\\.test$/i\tsecure\n"
	"/^(a)?b\\.opt\\.test$/\tverify servername=[$1]\n"
	"!/\\./\tnone\n"
	"if /\\.in\\.test$/\n"
	"/^x\\./\tdane\n"
	"endif\n"
	"/^last\\.test$/ secure\n"
	"/(?<name>neg)\\.a$/\tmay\n"
	"/x/X\tmay-x\n"
	"/(unclosed/\tmay\n"
	"/^(.+)\\.cont\\.test$/\tfingerprint\n"
	"  match=$1\n"
	"/a.b/s\tdotall\n";

static void
test_maps__pcre_table_answers_as_postmap_q(void **state)
{
	char path[512], spec[600];

	(void)state;
	write_file("pre.pcre", pcre_table);
	snprintf(spec, sizeof(spec), "pcre:%s", path_in(path, sizeof(path), "pre.pcre"));
	compare_with_postmap(spec, pattern_keys, sizeof(pattern_keys) / sizeof(pattern_keys[0]));
}

static void
test_maps__inline_and_static_answer_as_postmap_q(void **state)
{
	static const char *const keys[] = {
		"a.test", "A.TEST", "b.test", "\"q\"", "q", "c.test", "dup.test", "none",
	};

	(void)state;
	compare_with_postmap("inline:{ a.test=may, {b.test = fingerprint match=AA:BB}, \"q\"=secure, C.Test=encrypt, dup.test=1, DUP.test=2 }",
			     keys, sizeof(keys) / sizeof(keys[0]));
	compare_with_postmap("static:{ encrypt protocols=TLSv1.2 }", keys, 2);
}

static void
test_maps__texthash_answers_as_postmap_q_from_the_source(void **state)
{
	static const char *const keys[] = {
		"example.com", "EXAMPLE.COM", "[mx.test]:25", ".parent.test",
		"continued.test", "\"quoted\"", "missing.test",
	};
	char path[512], spec[600];

	(void)state;
	write_file("th", "# a texthash table\n"
		   "Example.COM\tfingerprint match=AA:BB\n"
		   "[mx.test]:25 secure\n"
		   ".parent.test encrypt\n"
		   "continued.test fingerprint\n"
		   "   match=CC:DD\n"
		   "\"quoted\" may\n");
	snprintf(spec, sizeof(spec), "texthash:%s", path_in(path, sizeof(path), "th"));
	compare_with_postmap(spec, keys, sizeof(keys) / sizeof(keys[0]));
}

static void
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
}

/* main.cf with "dir = DIR" and smtp_tls_policy_maps = list. */
static tp_maps *
open_list(const char *list, tp_config **config)
{
	char main_cf[4096];
	tp_maps *maps = NULL;
	tp_diag diag = TP_DIAG_INIT;

	snprintf(main_cf, sizeof(main_cf),
		 "compatibility_level = 3.6\ndir = %s\nsmtp_tls_policy_maps = %s\n", dir, list);
	*config = load_config(main_cf);
	if (tp_maps_open(&maps, *config, &diag) != 0)
		fail_msg("tp_maps_open: %s", diag.message);
	return maps;
}

static void
expect(tp_maps *maps, const char *key, tp_maps_status status, size_t index,
       const char *value, unsigned long line)
{
	tp_diag diag = TP_DIAG_INIT;
	tp_map_answer a;

	if (tp_maps_find(maps, key, &a, &diag) != 0)
		fail_msg("%s: %s", key, diag.message);
	if (a.status != status || (status != TP_MAPS_NOTFOUND && a.index != index))
		fail_msg("%s: got status %d from map %zu, want %d from map %zu", key,
			 a.status, a.index, status, index);
	if (value && (a.value == NULL || strcmp(a.value, value) != 0))
		fail_msg("%s: got \"%s\", want \"%s\"", key, a.value ? a.value : "(null)", value);
	if (status == TP_MAPS_FOUND && a.line != line)
		fail_msg("%s: got line %lu, want %lu", key, a.line, line);
}

static void
test_maps__first_map_that_answers_wins_in_list_order(void **state)
{
	tp_config *config;
	tp_maps *maps;
	const tp_map_info *info;
	size_t w;

	(void)state;
	write_file("pre", "# first\n/^\\[127\\.0\\.0\\.2\\]:25$/ encrypt\n");
	write_file("tls_policy", "[127.0.0.2]:25 fingerprint match=AA:BB\n"
		   "[127.0.0.3]:25 fingerprint match=CC:DD\n");
	write_file("second", "[127.0.0.3]:25 secure\n[127.0.0.4]:25 may\n");
	run("postmap -c %s hash:%s/tls_policy btree:%s/second", dir, dir, dir);
	maps = open_list("regexp:$dir/pre,\n    proxy:hash:${dir}/tls_policy btree:$dir/second"
			 " socketmap:inet:127.0.0.1:8000:policy", &config);
	assert_int_equal(tp_maps_count(maps), 4);
	info = tp_maps_at(maps, 1);
	assert_string_equal(info->type, "hash");
	assert_true(info->proxied);
	assert_true(info->writable && info->readable);
	assert_non_null(strstr(info->spec, "proxy:hash:/"));
	assert_non_null(strstr(info->db, "/tls_policy.db"));
	info = tp_maps_at(maps, 3);
	assert_string_equal(info->type, "socketmap");
	assert_null(info->path);
	assert_false(info->readable || info->writable);
	assert_null(tp_maps_at(maps, 4));
	assert_int_equal(tp_maps_writable(maps, &w), 0);
	assert_int_equal(w, 1);

	/* The regexp shadows the hash entry; the hash one shadows btree's. */
	expect(maps, "[127.0.0.2]:25", TP_MAPS_FOUND, 0, "encrypt", 2);
	expect(maps, "[127.0.0.3]:25", TP_MAPS_FOUND, 1, "fingerprint match=CC:DD", 0);
	expect(maps, "[127.0.0.4]:25", TP_MAPS_FOUND, 2, "may", 0);
	/* Nobody here answers: the socketmap might. */
	expect(maps, "[127.0.0.5]:25", TP_MAPS_UNKNOWN, 3, NULL, 0);
	{
		tp_map_answer a;

		/* Only the maps before our table: who shadows its entries? */
		assert_int_equal(tp_maps_find_range(maps, 0, 1, "[127.0.0.3]:25", &a, NULL), 0);
		assert_int_equal(a.status, TP_MAPS_NOTFOUND);
		assert_int_equal(tp_maps_find_range(maps, 0, 1, "[127.0.0.2]:25", &a, NULL), 0);
		assert_int_equal(a.status, TP_MAPS_FOUND);
	}
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__hash_is_read_from_the_db_not_the_source(void **state)
{
	tp_config *config;
	tp_maps *maps;
	char path[512];

	(void)state;
	write_file("tls_policy", "example.com fingerprint match=AA:BB\n");
	run("postmap -c %s hash:%s/tls_policy", dir, dir);
	maps = open_list("hash:$dir/tls_policy", &config);
	expect(maps, "EXAMPLE.com", TP_MAPS_FOUND, 0, "fingerprint match=AA:BB", 0);
	/* The source changes, postmap forgotten: Postfix still reads the old db. */
	write_file("tls_policy", "example.com fingerprint match=CC:DD\n");
	expect(maps, "example.com", TP_MAPS_FOUND, 0, "fingerprint match=AA:BB", 0);
	/* postmap rewrites the db in place; the next lookup sees it. */
	run("postmap -c %s hash:%s/tls_policy", dir, dir);
	expect(maps, "example.com", TP_MAPS_FOUND, 0, "fingerprint match=CC:DD", 0);
	/* A db renamed over the old one (as tlspolicy writes it) too. */
	write_file("tls_policy", "example.com secure\n");
	run("cd %s && cp tls_policy t2 && postmap -c %s hash:t2 && mv t2.db tls_policy.db", dir, dir);
	expect(maps, "example.com", TP_MAPS_FOUND, 0, "secure", 0);
	/* No db at all: a lookup error, as for Postfix, naming the map. */
	unlink(path_in(path, sizeof(path), "tls_policy.db"));
	{
		tp_diag diag = TP_DIAG_INIT;
		tp_map_answer a;

		assert_int_equal(tp_maps_find(maps, "example.com", &a, &diag), TP_EIO);
		assert_non_null(strstr(diag.message, "hash:"));
		assert_non_null(strstr(diag.message, "tls_policy.db: No such file"));
	}
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__nexthop_tries_parent_domains_of_a_hostname_only(void **state)
{
	tp_config *config;
	tp_maps *maps;
	tp_map_answer a;
	const char *matched;

	(void)state;
	write_file("tls_policy", ".example.com encrypt\n"
		   "example.com secure\n"
		   ".com may\n"
		   "[mx.example.com]:25 fingerprint match=AA:BB\n");
	run("postmap -c %s hash:%s/tls_policy", dir, dir);
	maps = open_list("hash:$dir/tls_policy", &config);
	assert_int_equal(tp_maps_find_nexthop(maps, "a.b.example.com", &a, &matched, NULL), 0);
	assert_int_equal(a.status, TP_MAPS_FOUND);
	assert_string_equal(a.value, "encrypt");
	assert_string_equal(matched, ".example.com");
	assert_int_equal(tp_maps_find_nexthop(maps, "example.com", &a, &matched, NULL), 0);
	assert_string_equal(a.value, "secure");
	assert_string_equal(matched, "example.com");
	assert_int_equal(tp_maps_find_nexthop(maps, "other.com", &a, &matched, NULL), 0);
	assert_string_equal(matched, ".com");
	/* Explicit next hops are looked up once: no ".example.com]:25". */
	assert_int_equal(tp_maps_find_nexthop(maps, "[mx.example.com]:25", &a, &matched, NULL), 0);
	assert_string_equal(a.value, "fingerprint match=AA:BB");
	assert_int_equal(tp_maps_find_nexthop(maps, "[mx.example.com]:26", &a, &matched, NULL), 0);
	assert_int_equal(a.status, TP_MAPS_NOTFOUND);
	assert_null(matched);
	assert_int_equal(tp_maps_find_nexthop(maps, "mx.example.com:25", &a, &matched, NULL), 0);
	assert_int_equal(a.status, TP_MAPS_NOTFOUND);
	/* An all-numeric name is not a host name: 1.2.3.com... is, 1.2.3.4 not. */
	assert_int_equal(tp_maps_find_nexthop(maps, "1.2.3.com", &a, &matched, NULL), 0);
	assert_string_equal(matched, ".com");
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__maps_postfix_cannot_use_fail_or_answer_with_errors(void **state)
{
	tp_config *config;
	tp_maps *maps;
	tp_diag diag = TP_DIAG_INIT;
	tp_map_answer a;

	(void)state;
	/* texthash with a duplicate: the SMTP client refuses the table. */
	write_file("th", "a.test may\nA.TEST encrypt\n");
	maps = open_list("texthash:$dir/th", &config);
	assert_int_equal(tp_maps_find(maps, "b.test", &a, &diag), TP_EINVALID);
	assert_non_null(strstr(diag.message, "duplicate entry"));
	tp_maps_free(maps);
	tp_config_free(config);

	/* An empty value is a lookup error for maps_find(); fail: always. */
	maps = open_list("inline:{e.test=} fail:x cidr:$dir/nope", &config);
	expect(maps, "e.test", TP_MAPS_ERROR, 0, "", 0);
	expect(maps, "f.test", TP_MAPS_ERROR, 1, NULL, 0);
	tp_maps_free(maps);
	tp_config_free(config);

	/* A missing regexp file fails; bad rules in a present one do not. */
	maps = open_list("regexp:$dir/missing", &config);
	assert_int_equal(tp_maps_find(maps, "a.test", &a, &diag), TP_EIO);
	assert_non_null(strstr(diag.message, "regexp:"));
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__cidr_is_skipped_for_names_and_unknown_for_addresses(void **state)
{
	tp_config *config;
	tp_maps *maps;

	(void)state;
	write_file("c.cidr", "192.0.2.0/24 secure\n");
	write_file("tls_policy", "a.test may\n");
	run("postmap -c %s hash:%s/tls_policy", dir, dir);
	maps = open_list("cidr:$dir/c.cidr hash:$dir/tls_policy", &config);
	expect(maps, "a.test", TP_MAPS_FOUND, 1, "may", 0);
	expect(maps, "192.0.2.1", TP_MAPS_UNKNOWN, 0, NULL, 0);
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__smtputf8_folds_utf8_keys_and_skips_invalid_ones(void **state)
{
	tp_config *config;
	tp_maps *maps;
	tp_map_answer a;

	(void)state;
	write_file("tls_policy", "\xc3\xa4x.test may\n");
	run("postmap -c %s hash:%s/tls_policy", dir, dir);
	maps = open_list("hash:$dir/tls_policy", &config);
	expect(maps, "\xc3\x84X.TEST", TP_MAPS_FOUND, 0, "may", 0);
	/* Not UTF-8: Postfix does not look it up anywhere. */
	assert_int_equal(tp_maps_find(maps, "\xff.test", &a, NULL), 0);
	assert_int_equal(a.status, TP_MAPS_NOTFOUND);
	/* A non-ASCII host name is a host name: its parents are tried. */
	assert_int_equal(tp_maps_find_nexthop(maps, "b.\xc3\xa4x.test", &a, NULL, NULL), 0);
	assert_int_equal(a.status, TP_MAPS_NOTFOUND);
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__config_policy_map_is_the_first_writable_map(void **state)
{
	tp_config *config;
	tp_map_type type;
	const char *path;
	char want[512];

	(void)state;
	/*
	 * A bare path is no map for Postfix's SMTP client (dict_open: fatal
	 * "expecting type:name"), whatever default_database_type says: it
	 * is not the table, and every lookup that reaches it fails.
	 */
	config = load_config("default_database_type = btree\n"
			     "smtp_tls_policy_maps = regexp:/x/pre, /etc/postfix/tls, hash:/y\n");
	assert_int_equal(tp_config_policy_map(config, &type, &path, NULL), 0);
	assert_int_equal(type, TP_MAP_HASH);
	assert_string_equal(path, "/y");
	{
		tp_maps *maps = NULL;
		tp_map_answer a;
		tp_diag diag = TP_DIAG_INIT;

		tp_config_free(config);
		config = load_config("smtp_tls_policy_maps = /etc/postfix/tls, hash:/y\n");
		assert_int_equal(tp_maps_open(&maps, config, &diag), 0);
		assert_int_equal(tp_maps_at(maps, 0)->writable, 0);
		assert_int_equal(tp_maps_find(maps, "example.com", &a, &diag), TP_ECONFIG);
		assert_non_null(strstr(diag.message, "\"/etc/postfix/tls\" is not type:name"));
		tp_maps_free(maps);
	}
	tp_config_free(config);
	config = load_config("smtp_tls_policy_maps = regexp:/x/pre socketmap:inet:h:1:n\n");
	assert_int_equal(tp_config_policy_map(config, &type, &path, NULL), TP_ECONFIG);
	tp_config_free(config);
	config = load_config("smtp_tls_policy_maps = proxy:hash:$config_directory/t\n");
	assert_int_equal(tp_config_policy_map(config, &type, &path, NULL), 0);
	snprintf(want, sizeof(want), "%s/t", dir);
	assert_string_equal(path, want);
	assert_int_equal(type, TP_MAP_HASH);
	tp_config_free(config);
}

static void
test_maps__open_needs_a_config_and_a_list(void **state)
{
	tp_config *config;
	tp_maps *maps = (tp_maps *)1;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	assert_int_equal(tp_maps_open(&maps, NULL, &diag), TP_EUSAGE);
	assert_null(maps);
	config = load_config("compatibility_level = 3.6\n");
	assert_int_equal(tp_maps_open(&maps, config, &diag), TP_ECONFIG);
	assert_non_null(strstr(diag.message, "smtp_tls_policy_maps is not set"));
	tp_config_free(config);
	assert_int_equal(tp_maps_open_spec(&maps, "regexp:/nonexistent", NULL, &diag), 0);
	assert_int_equal(tp_maps_count(maps), 1);
	assert_true(tp_maps_at(maps, 0)->readable);
	tp_maps_free(maps);
	tp_maps_free(NULL);
}

static void
test_maps__lmdb_and_cdb_answer_as_postmap_q(void **state)
{
	static const char *const keys[] = {
		"example.com", "EXAMPLE.COM", "[mx.test]:25", ".parent.test",
		"continued.test", "missing.test", "dup.test",
	};
	static const char *const types[] = { "lmdb", "cdb" };
	char spec[600];

	(void)state;
	write_file("t", "Example.COM\tfingerprint match=AA:BB\n[mx.test]:25 secure\n"
		   ".parent.test encrypt\ncontinued.test fingerprint\n   match=CC:DD\n"
		   "dup.test first\nDUP.test second\n");
	for (size_t i = 0; i < 2; i++) {
		run("postmap -c %s %s:%s/t 2>/dev/null", dir, types[i], dir);
		snprintf(spec, sizeof(spec), "%s:%s/t", types[i], dir);
		compare_with_postmap(spec, keys, sizeof(keys) / sizeof(keys[0]));
	}
}

/* Postfix 3.11: with redirection, hash:/t is read from t.lmdb. */
static void
test_maps__non_bdb_redirect_reads_what_postfix_reads(void **state)
{
	char main_cf[1024];
	tp_config *config = NULL;
	tp_maps *maps = NULL;
	const tp_map_info *info;
	tp_map_answer a;
	size_t w;

	(void)state;
	write_file("t", "example.com from-lmdb\n");
	run("postmap -c %s lmdb:%s/t", dir, dir);
	write_file("t", "example.com from-db\n");
	run("postmap -c %s hash:%s/t", dir, dir);
	snprintf(main_cf, sizeof(main_cf),
		 "non_bdb_migration_level = enable-redirect\ndefault_database_type = lmdb\n"
		 "smtp_tls_policy_maps = hash:%s/t\n", dir);
	config = load_config(main_cf);
	assert_int_equal(tp_maps_open(&maps, config, NULL), 0);
	info = tp_maps_at(maps, 0);
	assert_string_equal(info->type, "lmdb");
	assert_string_equal(info->redirected_from, "hash");
	assert_non_null(strstr(info->db, "/t.lmdb"));
	assert_int_equal(tp_maps_writable(maps, &w), 0);
	assert_int_equal(tp_maps_find(maps, "example.com", &a, NULL), 0);
	assert_string_equal(a.value, "from-lmdb");
	tp_maps_free(maps);
	tp_config_free(config);
	/* Redirected to Berkeley DB again: every lookup fails, as in Postfix. */
	snprintf(main_cf, sizeof(main_cf),
		 "non_bdb_migration_level = enable-redirect\n"
		 "smtp_tls_policy_maps = hash:%s/t\n", dir);
	config = load_config(main_cf);
	assert_int_equal(tp_maps_open(&maps, config, NULL), 0);
	assert_int_equal(tp_maps_writable(maps, &w), TP_ENOTFOUND);
	assert_true(tp_maps_find(maps, "example.com", &a, NULL) < 0);
	tp_maps_free(maps);
	tp_config_free(config);
}

static void
test_maps__pattern_parser_reports_what_postfix_skips(void **state)
{
	tp__pattern_table *t;
	static const char text[] =
		"/(unclosed/ x\n/a/q x\nendif\nif /a/\n/b/ $2\nbogus line\n";
	int found = 0;

	(void)state;
	assert_int_equal(tp__pattern_parse(&t, TP__PATTERN_REGEXP, 0, "pre", text, sizeof(text) - 1), 0);
	for (size_t i = 0; i < tp__pattern_warning_count(t); i++) {
		const char *w = tp__pattern_warning_at(t, i);

		found += strstr(w, "regexp map pre, line 2: unknown regexp option \"q\"") != NULL;
		found += strstr(w, "line 3: ignoring ENDIF without matching IF") != NULL;
		found += strstr(w, "line 4: IF has no matching ENDIF") != NULL;
		found += strstr(w, "line 5: out of range replacement index \"2\"") != NULL;
		found += strstr(w, "line 6: ignoring unrecognized request") != NULL;
	}
	assert_int_equal(found, 5);
	tp__pattern_free(t);
}

/* DICT_FLAG_NO_REGSUB (transport_maps): a rule with $number is skipped
 * with dict_regexp.c's and dict_pcre.c's warning, and the next answers;
 * "$$" is no substitution. */
static void
test_maps__pattern_no_regsub(void **state)
{
	static const char text[] = "/^(a)$/ x$1\n/^a$/ y$$\n";
	static const struct {
		tp__pattern_kind kind;
		unsigned flags;
		const char *value, *warning;
	} cases[] = {
		{ TP__PATTERN_REGEXP, 0, "xa", NULL },
		{ TP__PATTERN_REGEXP, TP__PATTERN_NO_REGSUB, "y$",
		  "regexp map nr, line 1: regular expression substitution is not allowed: skipping this rule" },
		{ TP__PATTERN_PCRE, TP__PATTERN_NO_REGSUB, "y$",
		  "pcre map nr, line 1: regular expression substitution is not allowed: skipping this rule" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp__pattern_table *t;
		tp_buf value = TP_BUF_INIT;
		unsigned long line = 0;

		assert_int_equal(tp__pattern_parse(&t, cases[i].kind, cases[i].flags, "nr", text,
						   sizeof(text) - 1), 0);
		assert_int_equal(tp__pattern_match(t, "a", &value, &line), 1);
		assert_string_equal(value.ptr, cases[i].value);
		assert_int_equal(line, cases[i].warning ? 2 : 1);
		assert_int_equal(tp__pattern_warning_count(t), cases[i].warning ? 1 : 0);
		if (cases[i].warning)
			assert_string_equal(tp__pattern_warning_at(t, 0), cases[i].warning);
		tp_buf_dispose(&value);
		tp__pattern_free(t);
	}
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_maps__regexp_table_answers_as_postmap_q),
		T(test_maps__pcre_table_answers_as_postmap_q),
		T(test_maps__inline_and_static_answer_as_postmap_q),
		T(test_maps__texthash_answers_as_postmap_q_from_the_source),
		T(test_maps__first_map_that_answers_wins_in_list_order),
		T(test_maps__hash_is_read_from_the_db_not_the_source),
		T(test_maps__nexthop_tries_parent_domains_of_a_hostname_only),
		T(test_maps__maps_postfix_cannot_use_fail_or_answer_with_errors),
		T(test_maps__cidr_is_skipped_for_names_and_unknown_for_addresses),
		T(test_maps__smtputf8_folds_utf8_keys_and_skips_invalid_ones),
		T(test_maps__config_policy_map_is_the_first_writable_map),
		T(test_maps__open_needs_a_config_and_a_list),
		T(test_maps__pattern_parser_reports_what_postfix_skips),
		T(test_maps__pattern_no_regsub),
		T(test_maps__lmdb_and_cdb_answer_as_postmap_q),
		T(test_maps__non_bdb_redirect_reads_what_postfix_reads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
