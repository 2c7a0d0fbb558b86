/*
 * main.cf: which table, which digest, SMTPUTF8 on or off. Real postconf is
 * the oracle: for each main.cf below, what we compute must equal what
 * "postconf -c DIR -xh PARAM" prints. A wrong digest here is the classic
 * outage (pins made with the wrong digest never match).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tlspolicy.h"

static char tmpdir[] = "/tmp/tp_config_XXXXXX";

/*
 * Postfix reads a file changed in the last second or two again every
 * 0.3 s until it is older ("pausing to let main.cf cool down",
 * load_file.c): 1.5-2 s for every postconf run on a fresh main.cf. The
 * oracle needs the file as it is, not its age: a minute old it is.
 */
static void
cool_down(const char *path)
{
	struct timespec t[2];

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &t[0]), 0);
	t[0].tv_sec -= 60;
	t[1] = t[0];
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void
write_main_cf(const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	cool_down(path);
}

/* postconf's expanded value, whitespace runs folded to one space. */
static char *
postconf(const char *param)
{
	char cmd[512], buf[4096];
	size_t n, j = 0;
	FILE *fp;
	char *out;

	snprintf(cmd, sizeof(cmd), "postconf -c %s -xh %s 2>/dev/null", tmpdir, param);
	fp = popen(cmd, "r");
	if (fp == NULL)
		fail_msg("cannot run postconf (is postfix installed?)");
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	if (pclose(fp) != 0)
		fail_msg("postconf failed: is postfix installed? (%s)", cmd);
	buf[n] = '\0';
	out = malloc(n + 1);
	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		int space = buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n';

		if (space && (j == 0 || out[j - 1] == ' '))
			continue;
		out[j++] = space ? ' ' : buf[i];
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
	return out;
}

static char *
folded(const char *s)
{
	char *out = malloc(strlen(s) + 1);
	size_t j = 0;

	assert_non_null(out);
	for (; *s; s++) {
		int space = *s == ' ' || *s == '\t' || *s == '\n';

		if (space && (j == 0 || out[j - 1] == ' '))
			continue;
		out[j++] = space ? ' ' : *s;
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
	return out;
}

static const char *const main_cf_cases[] = {
	"",
	"compatibility_level = 3.6\n",
	"compatibility_level = 2\n",
	"compatibility_level = 3.10\n",
	"compatibility_level=0\nsmtputf8_enable=yes\n",
	"compatibility_level = 3.6\nsmtputf8_enable = no\n",
	"smtp_tls_fingerprint_digest = sha1\n",
	"compatibility_level = 3.6\nsmtp_tls_fingerprint_digest = md5\n",
	"compatibility_level = 3.6\n# smtp_tls_fingerprint_digest = md5\n",
	"d = sha512\nsmtp_tls_fingerprint_digest = $d\n",
	"d = sha512\nsmtp_tls_fingerprint_digest = ${d}\n",
	"d = sha384\nsmtp_tls_fingerprint_digest = $(d)\n",
	"smtp_tls_fingerprint_digest = ${undefined_thing?sha1}${compatibility_level:sha224}\n",
	"compatibility_level = 3.6\nsmtp_tls_fingerprint_digest = ${compatibility_level?{sha1}:{md5}}\n",
	"compatibility_level = 3.7\nsmtp_tls_fingerprint_digest = ${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}\n",
	"compatibility_level = 3.5\nsmtp_tls_fingerprint_digest = ${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}\n",
	"compatibility_level = 3.6\nsmtp_tls_fingerprint_digest = ${{$compatibility_level} == {3.6} ? {sha1} : {md5}}\n",
	"smtp_tls_fingerprint_digest =\n    sha256\n",
	"smtp_tls_fingerprint_digest = md5\nsmtp_tls_fingerprint_digest = sha1\n",
	"smtp_tls_policy_maps = hash:${config_directory}/tls_policy\n",
	"smtp_tls_policy_maps = hash:$config_directory/tls_policy\n",
	"smtp_tls_policy_maps =\n   hash:/etc/postfix/a,\n# commented out\n   btree:/etc/postfix/b\n",
	"smtp_tls_policy_maps = inline:{ x=may, y=encrypt } btree:/x/y\n",
	"dir = /srv/pf\nsmtp_tls_policy_maps = texthash:$dir/a, proxy:hash:$dir/b\n",
	"smtp_tls_policy_maps = $$literal hash:/a\n",
};

static void
test_config__effective_values_equal_postconf(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(main_cf_cases) / sizeof(main_cf_cases[0]); i++) {
		tp_config *config = NULL;
		tp_diag diag = TP_DIAG_INIT;
		static const char *const params[] = {
			"smtp_tls_fingerprint_digest", "smtputf8_enable",
			"smtp_tls_policy_maps", "compatibility_level",
		};

		write_main_cf(main_cf_cases[i]);
		assert_int_equal(tp_config_load(&config, tmpdir, &diag), 0);
		for (size_t p = 0; p < sizeof(params) / sizeof(params[0]); p++) {
			char *want = postconf(params[p]);
			const char *got_raw = tp_config_get(config, params[p]);
			char *got = folded(got_raw ? got_raw : "");

			if (strcmp(got, want) != 0)
				fail_msg("main.cf case %zu, %s: got \"%s\", want \"%s\" (postconf)",
					 i, params[p], got, want);
			free(got);
			free(want);
		}
		{
			char *want = postconf("smtp_tls_fingerprint_digest");

			if (strcmp(tp_config_digest(config), want) != 0)
				fail_msg("case %zu digest: got %s, want %s", i,
					 tp_config_digest(config), want);
			free(want);
			want = postconf("smtputf8_enable");
			if (tp_config_smtputf8(config) != (strcmp(want, "yes") == 0))
				fail_msg("case %zu smtputf8: got %d, postconf says %s", i,
					 tp_config_smtputf8(config), want);
			free(want);
		}
		tp_config_free(config);
	}
}

static void
test_config__first_file_backed_policy_map_is_the_table(void **state)
{
	static const struct {
		const char *main_cf;
		int status;
		tp_map_type type;
		const char *path;	/* a leading "@" stands for the config directory */
	} cases[] = {
		{ "smtp_tls_policy_maps = hash:${config_directory}/tls_policy\n", 0,
		  TP_MAP_HASH, "@/tls_policy" },
		{ "smtp_tls_policy_maps = inline:{ x=may, y=encrypt } btree:/x/y\n", 0,
		  TP_MAP_BTREE, "/x/y" },
		{ "smtp_tls_policy_maps = regexp:/a, proxy:hash:/srv/b hash:/c\n", 0,
		  TP_MAP_HASH, "/srv/b" },
		{ "smtp_tls_policy_maps = pcre:/p texthash:/a, hash:/c\n", 0,
		  TP_MAP_TEXTHASH, "/a" },
		{ "smtp_tls_policy_maps = lmdb:/l\n", 0, TP_MAP_LMDB, "/l" },
		/* A bare path is no map for Postfix's SMTP client (fatal). */
		{ "default_database_type = cdb\nsmtp_tls_policy_maps = /etc/postfix/t\n", TP_ECONFIG,
		  TP_MAP_HASH, NULL },
		/* Postfix 3.11: hash: and btree: read as the default types. */
		{ "non_bdb_migration_level = enable-redirect\ndefault_database_type = lmdb\n"
		  "smtp_tls_policy_maps = hash:/r\n", 0, TP_MAP_LMDB, "/r" },
		{ "non_bdb_migration_level = enable-reindex\ndefault_database_type = cdb\n"
		  "default_cache_db_type = lmdb\nsmtp_tls_policy_maps = btree:/r\n", 0,
		  TP_MAP_LMDB, "/r" },
		{ "non_bdb_migration_level = disable\ndefault_database_type = lmdb\n"
		  "smtp_tls_policy_maps = hash:/r\n", 0, TP_MAP_HASH, "/r" },
		/* Redirected to Berkeley DB again: Postfix fails the map. */
		{ "non_bdb_migration_level = enable-redirect\nsmtp_tls_policy_maps = hash:/r\n",
		  TP_ECONFIG, TP_MAP_HASH, NULL },
		{ "smtp_tls_policy_maps = /etc/postfix/tls_policy\n", TP_ECONFIG,
		  TP_MAP_HASH, NULL },
		{ "smtp_tls_policy_maps = ldap:/etc/postfix/ldap.cf\n", TP_ECONFIG,
		  TP_MAP_HASH, NULL },
		{ "smtp_tls_security_level = may\n", TP_ECONFIG, TP_MAP_HASH, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_config *config = NULL;
		tp_diag diag = TP_DIAG_INIT;
		tp_map_type type = TP_MAP_LAST;
		const char *path = NULL;
		char want[512];
		int rc;

		write_main_cf(cases[i].main_cf);
		assert_int_equal(tp_config_load(&config, tmpdir, &diag), 0);
		rc = tp_config_policy_map(config, &type, &path, &diag);
		if (rc != cases[i].status)
			fail_msg("case %zu: got status %d, want %d", i, rc, cases[i].status);
		if (rc == 0) {
			if (cases[i].path[0] == '@')
				snprintf(want, sizeof(want), "%s%s", tmpdir, cases[i].path + 1);
			else
				snprintf(want, sizeof(want), "%s", cases[i].path);
			if (type != cases[i].type || strcmp(path, want) != 0)
				fail_msg("case %zu: got %d:%s, want %d:%s", i, (int)type,
					 path, (int)cases[i].type, want);
		} else if (strstr(diag.message, "-m") == NULL) {
			fail_msg("case %zu: error \"%s\" does not suggest -m", i, diag.message);
		}
		tp_config_free(config);
	}
}

/*
 * Postfix 3.11's non_bdb_migration_level, as NON_BERKELEYDB_README
 * describes it: "disable" (the default), "enable-redirect" (hash: is
 * read as $default_database_type:, btree: as $default_cache_db_type:),
 * "enable-reindex" (the same, and reindexing); other types untouched.
 * Postfix 3.7's postconf does not know these parameters, so the README
 * is the oracle here.
 */
static void
test_config__non_bdb_migration_level_redirects_hash_and_btree(void **state)
{
	static const struct {
		const char *main_cf;
		int level;
		const char *hash, *btree, *regexp;
	} cases[] = {
		{ "", TP_NBDB_DISABLE, "hash", "btree", "regexp" },
		{ "default_database_type = lmdb\n", TP_NBDB_DISABLE, "hash", "btree", "regexp" },
		{ "non_bdb_migration_level = disable\ndefault_database_type = cdb\n",
		  TP_NBDB_DISABLE, "hash", "btree", "regexp" },
		{ "non_bdb_migration_level = enable-redirect\ndefault_database_type = lmdb\n"
		  "default_cache_db_type = lmdb\n", TP_NBDB_REDIRECT, "lmdb", "lmdb", "regexp" },
		{ "non_bdb_migration_level = enable-reindex\ndefault_database_type = cdb\n",
		  TP_NBDB_REINDEX, "cdb", "btree", "regexp" },
		{ "t = lmdb\nlevel = enable-redirect\nnon_bdb_migration_level = $level\n"
		  "default_database_type = ${t}\n", TP_NBDB_REDIRECT, "lmdb", "btree", "regexp" },
		{ "non_bdb_migration_level = redirect\ndefault_database_type = lmdb\n",
		  TP_NBDB_INVALID, "hash", "btree", "regexp" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_config *config = NULL;

		write_main_cf(cases[i].main_cf);
		assert_int_equal(tp_config_load(&config, tmpdir, NULL), 0);
		if (tp_config_nbdb_level(config) != cases[i].level)
			fail_msg("case %zu: level %d, want %d", i, tp_config_nbdb_level(config),
				 cases[i].level);
		if (strcmp(tp_config_effective_type(config, "hash"), cases[i].hash) != 0
		    || strcmp(tp_config_effective_type(config, "btree"), cases[i].btree) != 0
		    || strcmp(tp_config_effective_type(config, "regexp"), cases[i].regexp) != 0)
			fail_msg("case %zu: hash -> %s, btree -> %s, regexp -> %s; want %s, %s, %s", i,
				 tp_config_effective_type(config, "hash"),
				 tp_config_effective_type(config, "btree"),
				 tp_config_effective_type(config, "regexp"),
				 cases[i].hash, cases[i].btree, cases[i].regexp);
		tp_config_free(config);
	}
	assert_string_equal(tp_config_effective_type(NULL, "hash"), "hash");
}

static void
test_config__missing_main_cf_is_not_found_and_names_the_file(void **state)
{
	tp_config *config = NULL;
	tp_diag diag = TP_DIAG_INIT;
	char dir[300];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/nonexistent", tmpdir);
	assert_int_equal(tp_config_load(&config, dir, &diag), TP_ENOTFOUND);
	assert_null(config);
	assert_non_null(strstr(diag.message, "nonexistent/main.cf"));
	assert_non_null(strstr(diag.message, "No such file"));
}

static void
test_config__mail_config_environment_names_the_directory(void **state)
{
	tp_config *config = NULL;

	(void)state;
	write_main_cf("compatibility_level = 3.6\n");
	setenv("MAIL_CONFIG", tmpdir, 1);
	assert_int_equal(tp_config_load(&config, NULL, NULL), 0);
	assert_string_equal(tp_config_dir(config), tmpdir);
	assert_string_equal(tp_config_digest(config), "sha256");
	unsetenv("MAIL_CONFIG");
	tp_config_free(config);
}

/*
 * A macro loop reached from a parameter tlspolicy reads stops Postfix
 * ("unreasonable macro call nesting", then "macro processing error"):
 * the load fails and says which. A loop among parameters nothing reads
 * is left alone, as Postfix leaves it (tests/cli/macro_loop.sh holds
 * both to postconf).
 */
static void
test_config__a_macro_loop_postfix_stops_on_fails_the_load(void **state)
{
	tp_config *config = NULL;
	tp_diag diag = TP_DIAG_INIT;

	(void)state;
	write_main_cf("a = $b x\nb = $a y\nsmtp_tls_fingerprint_digest = $a\n");
	assert_int_equal(tp_config_load(&config, tmpdir, &diag), TP_ECONFIG);
	assert_null(config);
	if (strstr(diag.message, "unreasonable macro call nesting") == NULL
	    || strstr(diag.message, "smtp_tls_fingerprint_digest") == NULL)
		fail_msg("message: %s", diag.message);

	write_main_cf("a = $b x\nb = $a y\nsmtp_helo_name = mx.example\n");
	assert_int_equal(tp_config_load(&config, tmpdir, NULL), 0);
	assert_string_equal(tp_config_get(config, "smtp_helo_name"), "mx.example");
	tp_config_free(config);

	/* A later setting wins: the loop is not in effect. */
	write_main_cf("relayhost = $relayhost\nrelayhost = [mx.example]\n");
	assert_int_equal(tp_config_load(&config, tmpdir, NULL), 0);
	assert_string_equal(tp_config_get(config, "relayhost"), "[mx.example]");
	tp_config_free(config);
}

/*
 * One budget over the whole expansion: a 1 MB main.cf whose values repeat
 * a large one ("b = $a$a...$a", in groups, in a relation, one level
 * further down) expands to at most 1 MB, not to hundreds. The small
 * values after it are still right.
 */
static void
test_config__a_huge_expansion_is_capped_at_1_mb_in_all(void **state)
{
	static const char *const names[] = { "b", "c", "d", "e", "f" };
	size_t big = 600 * 1024, len;
	char *text, *p;
	tp_config *config = NULL;

	(void)state;
	text = malloc(big + 4096);
	assert_non_null(text);
	p = text;
	p += sprintf(p, "a = ");
	memset(p, 'x', big);
	p += big;
	p += sprintf(p, "\nb =");
	for (int i = 0; i < 200; i++)
		p += sprintf(p, " $a");
	p += sprintf(p, "\nc = ${a}${a}${a}${a}${a}${a}${a}${a}\n");
	p += sprintf(p, "d = ${{$a} == {$a} ? {$a $a $a $a} : {no}}\n");
	p += sprintf(p, "e = ${a?{$a$a$a$a$a}:{no}} $b\n");
	p += sprintf(p, "f = $e $e $e\n");
	p += sprintf(p, "compatibility_level = 3.6\n");
	write_main_cf(text);
	free(text);
	assert_int_equal(tp_config_load(&config, tmpdir, NULL), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v = tp_config_get(config, names[i]);

		assert_non_null(v);
		len = strlen(v);
		if (len > (1u << 20))
			fail_msg("%s expands to %zu bytes, want at most 1 MB", names[i], len);
	}
	assert_string_equal(tp_config_digest(config), "sha256");
	tp_config_free(config);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config__effective_values_equal_postconf),
		cmocka_unit_test(test_config__first_file_backed_policy_map_is_the_table),
		cmocka_unit_test(test_config__non_bdb_migration_level_redirects_hash_and_btree),
		cmocka_unit_test(test_config__missing_main_cf_is_not_found_and_names_the_file),
		cmocka_unit_test(test_config__mail_config_environment_names_the_directory),
		cmocka_unit_test(test_config__a_macro_loop_postfix_stops_on_fails_the_load),
		cmocka_unit_test(test_config__a_huge_expansion_is_capped_at_1_mb_in_all),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
