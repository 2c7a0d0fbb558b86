/*
 * NAME
 *	doctor - the outage checklist, automated and offline
 * DESCRIPTION
 *	Checks what went wrong by hand in the outage this project exists for,
 *	and its cousins: the configured digest against the pins' lengths, the
 *	db present and holding what the source says, the table actually
 *	listed in smtp_tls_policy_maps, entries Postfix would reject,
 *	duplicate keys, lines postmap skips, unsafe permissions, a db older
 *	than its source by mtime (Postfix warns at every open), what killed
 *	runs left, a db Postfix cannot read, a table this user cannot write,
 *	CA files or a client certificate that leave Postfix without TLS.
 *	One line per finding; exit 1 when there is any warning or error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct findings {
	unsigned errors;
	unsigned warnings;
	int quiet;
	tp_strarray said;	/* a finding reached from two checks is said once */
};

static void finding(struct findings *f, const char *kind, const char *fmt, ...)
	TP_CLI_PRINTF(3, 4);

static void
finding(struct findings *f, const char *kind, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		text = NULL;
	if (text != NULL && strcmp(kind, "ok") != 0) {
		if (cli_strarray_has(&f->said, text)) {
			free(text);
			return;
		}
		(void)cli_strarray_push(&f->said, text);
	}
	if (strcmp(kind, "error") == 0)
		f->errors++;
	else if (strcmp(kind, "warning") == 0)
		f->warnings++;
	else if (f->quiet) {
		free(text);
		return;
	}
	printf("%s: %s\n", kind, text ? text : "(out of memory)");
	free(text);
}

static void
doctor_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] doctor\n"
		"\n"
		"Check the policy table and its configuration without touching the network:\n"
		"the configured digest against the pins' lengths, the .db present and in\n"
		"step with the source (by content), the table listed in smtp_tls_policy_maps,\n"
		"entries Postfix would reject, duplicate keys, lines postmap skips,\n"
		"files writable by group or others or owned by someone else, a .db older\n"
		"than its source (Postfix warns), temporary files killed runs left, and\n"
		"whether this user can write the table.\n"
		"Every map of smtp_tls_policy_maps is read in order, as Postfix asks them:\n"
		"entries an earlier map answers for are reported (their pins are unused),\n"
		"maps that cannot be evaluated here are named, and the entries of other\n"
		"hash:, btree: or texthash: tables are checked too.\n"
		"One line per finding (ok:, warning:, error:). Exit status 0 when all is\n"
		"well, 1 when there is any warning or error.\n");
}

static void
check_permissions(struct findings *f, const char *source, const char *db)
{
	struct stat ss, ds;
	int have_source = stat(source, &ss) == 0, have_db = stat(db, &ds) == 0;

	if (have_source && (ss.st_mode & (S_IWGRP | S_IWOTH)))
		finding(f, "warning", "%s: writable by %s (mode %04o): anyone who can write it decides where mail goes unencrypted",
			source, ss.st_mode & S_IWOTH ? "others" : "group",
			(unsigned)(ss.st_mode & 07777));
	if (have_db && (ds.st_mode & (S_IWGRP | S_IWOTH)))
		finding(f, "warning", "%s: writable by %s (mode %04o)", db,
			ds.st_mode & S_IWOTH ? "others" : "group",
			(unsigned)(ds.st_mode & 07777));
	if (have_source && have_db && ss.st_uid != ds.st_uid)
		finding(f, "warning", "%s: owned by uid %lu, but its source %s by uid %lu (postmap gives the db the source's owner)",
			db, (unsigned long)ds.st_uid, source, (unsigned long)ss.st_uid);
	if (have_source && !(ss.st_mode & (S_IWGRP | S_IWOTH))
	    && (!have_db || (!(ds.st_mode & (S_IWGRP | S_IWOTH)) && ss.st_uid == ds.st_uid)))
		finding(f, "ok", "permissions of %s%s", source, have_db ? " and its db" : "");
}

/*
 * Postfix compares modification times (whole seconds) at every open and
 * logs "database X is older than source file Y" when the source is newer
 * (and was changed over 100 seconds ago), whatever the db holds.
 */
static void
check_db_age(struct findings *f, const char *source, const char *db)
{
	struct stat ss, ds;

	if (stat(source, &ss) == 0 && stat(db, &ds) == 0 && ss.st_mtime > ds.st_mtime)
		finding(f, "warning", "database %s is older than source file %s: Postfix logs this at every open; run 'tlspolicy rebuild'",
			db, source);
}

static void
human_size(char *buf, size_t size, unsigned long long n)
{
	if (n >= 1024 * 1024)
		snprintf(buf, size, "%.1f MB", (double)n / (1024 * 1024));
	else if (n >= 1024)
		snprintf(buf, size, "%.1f KB", (double)n / 1024);
	else
		snprintf(buf, size, "%llu bytes", n);
}

/* "BASE.tmp.XXXXXX", six letters or digits: the names writers use. */
static int
temp_name(const char *name, const char *base)
{
	size_t blen = strlen(base);
	const char *x = name + blen + 5;

	if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0
	    || strlen(x) != 6)
		return 0;
	for (int i = 0; i < 6; i++)
		if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z')
		      || (x[i] >= '0' && x[i] <= '9')))
			return 0;
	return 1;
}

/*
 * What a killed writer left beside target: temp files, and temp
 * directories of the db with what libdb wrote in them. Reported with
 * their size (a killed rebuild of a large table leaves tens of MB); the
 * next writing command removes them.
 */
static void
check_temps(struct findings *f, const char *target)
{
	const char *slash = strrchr(target, '/'), *base = slash ? slash + 1 : target;
	char *dir = slash ? strndup(target, slash == target ? 1 : (size_t)(slash - target))
			  : strdup(".");
	struct dirent *e;
	DIR *d;

	if (dir == NULL || (d = opendir(dir)) == NULL) {
		free(dir);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		unsigned long long bytes = 0;
		char path[4096], size[32];
		struct stat st;

		if (!temp_name(e->d_name, base)
		    || (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path)
		    || lstat(path, &st) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			bytes = (unsigned long long)st.st_size;
		} else if (S_ISDIR(st.st_mode)) {
			DIR *sub = opendir(path);
			struct dirent *se;

			while (sub != NULL && (se = readdir(sub)) != NULL) {
				struct stat ist;

				if (fstatat(dirfd(sub), se->d_name, &ist, AT_SYMLINK_NOFOLLOW) == 0
				    && S_ISREG(ist.st_mode))
					bytes += (unsigned long long)ist.st_size;
			}
			if (sub != NULL)
				closedir(sub);
		} else {
			continue;
		}
		human_size(size, sizeof(size), bytes);
		finding(f, "warning", "%s: %s left by a tlspolicy run that was killed (or is writing now); the next writing command removes it",
			path, size);
	}
	closedir(d);
	free(dir);
}

/*
 * Root can write any table (as its owner, see cli_table_open); another
 * user needs the directory (lock file, temp files, renames) and an
 * existing lock file. Said here in plain words, rather than learnt from
 * "open lock file ...: Permission denied" at the first set.
 */
static void
check_writable(struct findings *f, const char *source)
{
	if (geteuid() != 0 && !cli_table_writable(source))
		finding(f, "warning", "%s is not writable by uid %lu: set, remove, rebuild and rotate need root or the table's owner",
			source, (unsigned long)geteuid());
}

/*
 * What Postfix's SMTP client sets up once for every TLS delivery (CA
 * files, client certificates): when it fails, Postfix runs without TLS,
 * and every delivery whose level needs TLS is deferred. A source address
 * it cannot read stops it altogether.
 */
static void
check_client_tls(struct findings *f, const tp_config *config)
{
	tp_client_settings *settings = NULL;
	tp_diag diag = TP_DIAG_INIT;
	const char *why, *stops;

	if (tp_client_settings_new(&settings, config, NULL, "fingerprint", &diag) != 0) {
		finding(f, "error", "%s", diag.message);
		return;
	}
	if ((stops = tp_client_settings_info(settings)->bind_error) != NULL)
		finding(f, "error", "Postfix's SMTP client stops at its first connection (%s): no mail leaves through it",
			stops);
	/* The bind error is in tls_error too, unless another came first. */
	if ((why = tp_client_settings_info(settings)->tls_error) != NULL &&
	    (stops == NULL || strncmp(why, stops, strlen(stops)) != 0))
		finding(f, "error", "Postfix's SMTP client cannot set up TLS (%s): every delivery that needs TLS is deferred (\"TLS is required, but our TLS engine is unavailable\")",
			why);
	tp_client_settings_free(settings);
}

/*
 * An entry Postfix never uses because an earlier map of
 * smtp_tls_policy_maps answers for its key. A map that cannot be read
 * is reported once (*unreadable), as Postfix fails every lookup there.
 */
static int
check_shadow(struct findings *f, struct cli_maps *cm, size_t index,
	     const char *source, const tp_entry *e, int pinned, int *unreadable)
{
	struct cli_shadow sh;
	char text[TP_DIAG_MESSAGE_MAX + 256];

	if (cli_maps_shadow(cm, index, e->key, &sh) < 0) {
		if (!*unreadable)
			finding(f, "error", "%s: Postfix's TLS policy lookups fail there, and mail for every destination that reaches it is deferred",
				sh.message);
		*unreadable = 1;
		return 0;
	}
	if (!sh.found)
		return 0;
	finding(f, "warning", "%s:%lu: %.*s: %s: %s", source, e->line, (int)e->key_len,
		e->key, cli_shadow_text(cm, &sh, text, sizeof(text)),
		pinned ? "pins unused" : "entry unused");
	return 1;
}

/*
 * no_trust_anchors - Postfix's SMTP client verifies levels verify and
 * secure with smtp_tls_CAfile, smtp_tls_CApath or
 * smtp_tls_trust_anchor_file (else an entry's tafile=), and with none of
 * them trusts nothing: tls_append_default_CA adds the system's CAs only
 * beside main.cf's.
 */
static int
no_trust_anchors(const tp_config *config)
{
	static const char *const params[] = {
		"smtp_tls_CAfile", "smtp_tls_CApath", "smtp_tls_trust_anchor_file",
	};

	if (config == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const char *v = tp_config_get(config, params[i]);

		if (v != NULL && *v != '\0')
			return 0;
	}
	return 1;
}

static void
check_entries(struct findings *f, const tp_doc *doc, const char *source,
	      const char *digest, struct cli_maps *cm, int no_anchors)
{
	size_t want = tp_digest_size(digest), fingerprint_entries = 0, bad = 0;
	size_t unanchored = 0;
	tp_entry first_unanchored = { 0 };
	int unreadable = 0;

	for (size_t i = 0; i < tp_doc_warning_count(doc); i++) {
		const tp_doc_warning *w = tp_doc_warning_at(doc, i);

		finding(f, "warning", "%s:%lu: postmap skips this line: %s", source,
			w->line, w->message);
	}
	for (size_t i = 0; i < tp_doc_entry_count(doc); i++) {
		tp_entry e;
		tp_policy *policy = NULL;
		tp_diag diag = TP_DIAG_INIT;
		int rc;

		if (tp_doc_entry_at(doc, i, &e) != 0)
			continue;
		if (e.duplicate) {
			size_t first;

			tp_doc_find(doc, e.key, &first);
			tp_entry fe;
			if (tp_doc_entry_at(doc, first, &fe) == 0)
				finding(f, "warning", "%s:%lu: %.*s: shadowed by line %lu (same key after case folding); Postfix uses line %lu",
					source, e.line, (int)e.key_len, e.key, fe.line, fe.line);
			bad++;
			continue;
		}
		rc = tp_policy_parse(&policy, e.value, e.value_len, &diag);
		if (policy == NULL)
			return;
		bad += (size_t)check_shadow(f, cm, cm->table, source, &e,
					    tp_policy_pin_count(policy) > 0, &unreadable);
		for (size_t w = 0; w < tp_policy_warning_count(policy); w++) {
			finding(f, "warning", "%s:%lu: %.*s: %s", source, e.line,
				(int)e.key_len, e.key, tp_policy_warning_at(policy, w));
			bad++;
		}
		if (rc != 0) {
			finding(f, "error", "%s:%lu: %.*s: Postfix would reject this entry and defer its mail: %s",
				source, e.line, (int)e.key_len, e.key, diag.message);
			bad++;
		} else if ((tp_policy_level(policy) == TP_LEVEL_VERIFY ||
			    tp_policy_level(policy) == TP_LEVEL_SECURE) &&
			   tp_policy_attr(policy, "tafile") == NULL) {
			if (unanchored++ == 0)
				first_unanchored = e;
		} else if (tp_policy_level(policy) == TP_LEVEL_FINGERPRINT) {
			size_t matching = 0, n = tp_policy_pin_count(policy);

			fingerprint_entries++;
			for (size_t p = 0; p < n; p++) {
				const char *pin = tp_policy_pin_at(policy, p);
				size_t bytes = (strlen(pin) + 1) / 3;
				const char *guess = tp_pin_digest(pin);

				if (bytes == want) {
					matching++;
					continue;
				}
				/* One mismatched pin among good ones is dead weight;
				 * no good pin at all is the outage, reported below. */
				finding(f, "warning",
					"%s:%lu: %.*s: pin %s is %zu bytes (%s), but Postfix compares %s fingerprints (%zu bytes): it never matches",
					source, e.line, (int)e.key_len, e.key, pin, bytes,
					guess ? guess : "no known digest", digest, want);
			}
			if (matching == 0 && n > 0) {
				finding(f, "error", "%s:%lu: %.*s: no pin made with %s: every delivery is deferred with \"Server certificate not verified\"",
					source, e.line, (int)e.key_len, e.key, digest);
				bad++;
			}
		}
		tp_policy_free(policy);
	}
	if (unanchored > 0 && no_anchors) {
		finding(f, "error", "%s:%lu: %.*s%s: level verify or secure, but Postfix's SMTP client trusts no CA (smtp_tls_CAfile, smtp_tls_CApath and smtp_tls_trust_anchor_file are empty): every such delivery is deferred",
			source, first_unanchored.line, (int)first_unanchored.key_len, first_unanchored.key,
			unanchored > 1 ? " and others" : "");
		bad++;
	}
	if (bad == 0)
		finding(f, "ok", "%s: %zu entries (%zu pinned by fingerprint), all valid for Postfix with digest %s",
			source, tp_doc_entry_count(doc), fingerprint_entries, digest);
}

/*
 * The rest of smtp_tls_policy_maps: maps before the table that cannot be
 * evaluated here, and other tables (their pins are neither rotated nor
 * checked unless named with -m; their entries can be shadowed too).
 */
static void
check_maps(struct findings *f, struct cli *cli, struct cli_maps *cm,
	   const char *written)
{
	for (size_t i = 0; cm->maps && i < tp_maps_count(cm->maps); i++) {
		const tp_map_info *info = tp_maps_at(cm->maps, i);
		tp_doc_opts opts = cli_doc_opts(cli);
		tp_diag d = TP_DIAG_INIT;
		size_t pinned = 0;
		int unreadable = 0;
		tp_doc *doc = NULL;

		if (i < cm->table && !info->readable)
			finding(f, "warning", "%s cannot be evaluated here and may answer first: the entries of %s may be unused",
				info->spec, written);
		/* A map whose every lookup fails (a bare path, a missing file)
		 * defers the mail of every destination that reaches it. */
		if (info->readable && i != cm->table) {
			tp_map_answer a;

			if (tp_maps_find_range(cm->maps, i, i + 1, "doctor.invalid", &a, &d) < 0 &&
			    d.status != TP_ENOMEM) {
				finding(f, "error", "%s: Postfix's TLS policy lookups fail there, and mail for every destination that reaches it is deferred",
					d.message);
				continue;
			}
			d = (tp_diag)TP_DIAG_INIT;
		}
		if (i == cm->table || !info->path
		    || !(info->writable || strcmp(info->type, "texthash") == 0))
			continue;
		if (tp_doc_load(&doc, info->path, &opts, &d) != 0) {
			finding(f, "error", "%s: %s", info->spec, d.message);
			continue;
		}
		for (size_t k = 0; k < tp_doc_entry_count(doc); k++) {
			tp_entry e;
			tp_policy *policy = NULL;

			if (tp_doc_entry_at(doc, k, &e) != 0 || e.duplicate)
				continue;
			(void)tp_policy_parse(&policy, e.value, e.value_len, NULL);
			if (policy && tp_policy_pin_count(policy) > 0)
				pinned++;
			(void)check_shadow(f, cm, i, info->path, &e,
					   policy && tp_policy_pin_count(policy) > 0,
					   &unreadable);
			tp_policy_free(policy);
		}
		finding(f, pinned ? "warning" : "ok",
			"%s is a separate table (%zu entries, %zu pinned by fingerprint): tlspolicy writes %s; check it with -m %s:%s",
			info->spec, tp_doc_entry_count(doc), pinned, written, info->type, info->path);
		tp_doc_free(doc);
	}
}

/*
 * Another database of the same source (SOURCE.db beside SOURCE.lmdb,
 * say, after a migration or with non_bdb_migration_level redirecting)
 * that holds other records than the one Postfix reads: whoever runs
 * postmap on the wrong one, or reads it, is misled.
 */
/* The state of the database of source in type; -1 when it cannot be read. */
static int
db_state_as(struct cli *cli, tp_map_type type, const char *source, tp_db_state *state)
{
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_table *t = NULL;
	int rc;

	opts.doc = cli_doc_opts(cli);
	rc = tp_table_open(&t, type, source, &opts, NULL) == 0
	     && tp_table_db_state(t, state, NULL) == 0 ? 0 : -1;
	tp_table_free(t);
	return rc;
}

static void
check_other_dbs(struct findings *f, struct cli *cli, tp_table *table,
		tp_db_state state)
{
	static const tp_map_type others[] = { TP_MAP_HASH, TP_MAP_LMDB, TP_MAP_CDB };
	const char *mine = tp_map_type_suffix(tp_table_type(table));
	const char *source = tp_table_source(table);

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		const char *sfx = tp_map_type_suffix(others[i]);
		tp_db_state ostate;
		char path[8192];
		struct stat st;

		if (strcmp(sfx, mine) == 0)
			continue;
		snprintf(path, sizeof(path), "%s%s", source, sfx);
		if (stat(path, &st) != 0)
			continue;
		/* A .db is hash or btree: whichever reads it. */
		if (db_state_as(cli, others[i], source, &ostate) < 0
		    && (others[i] != TP_MAP_HASH
			|| db_state_as(cli, TP_MAP_BTREE, source, &ostate) < 0)) {
			finding(f, "warning", "%s: not a database Postfix can read, beside %s, which Postfix reads",
				path, tp_table_db_path(table));
			continue;
		}
		if (ostate != state || state != TP_DB_IN_STEP)
			finding(f, "warning", "%s and %s hold different records: Postfix reads %s (%s:%s); remove the other one, or rebuild it if something else reads it",
				path, tp_table_db_path(table), tp_table_db_path(table),
				tp_map_type_name(tp_table_type(table)), source);
	}
}

static int
doctor(struct cli *cli, int argc, char **argv, struct findings *fp)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct findings *f = fp;
	tp_table *table = NULL;
	tp_config *config;
	tp_db_state state;
	tp_diag diag = TP_DIAG_INIT;
	const char *digest, *type_name;
	struct cli_maps cm = { NULL, SIZE_MAX };
	char written[8192];
	int ch, no_anchors;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		if (ch == 'h') {
			doctor_usage(stdout);
			return EX_SUCCESS;
		}
		return cli_bad_option("doctor", ch, argv);
	}
	if (optind != argc)
		return cli_usage("doctor", "unexpected argument \"%s\"", argv[optind]);

	config = cli_config(cli);
	if (config == NULL)
		finding(f, cli->map_spec ? "warning" : "error", "%s", cli->config_diag.message);
	else
		finding(f, "ok", "%s/main.cf read", tp_config_dir(config));
	no_anchors = no_trust_anchors(config);
	digest = cli_digest(cli);
	if (tp_digest_check(digest) != 0) {
		finding(f, "error", "smtp_tls_fingerprint_digest = \"%s\": not a digest OpenSSL knows; Postfix cannot check any pin",
			digest);
		return EX_FAIL;
	}
	finding(f, "ok", "fingerprint digest %s (%s)", digest,
		cli->digest_opt ? "-d" : config ? "smtp_tls_fingerprint_digest" : "Postfix default, no main.cf");
	if (config) {
		const char *level = tp_config_get(config, "smtp_tls_security_level");
		tp_level lv;

		check_client_tls(f, config);
		if (no_anchors && tp_level_parse(&lv, level) == TP_OK &&
		    (lv == TP_LEVEL_VERIFY || lv == TP_LEVEL_SECURE))
			finding(f, "error", "smtp_tls_security_level = %s, but Postfix's SMTP client trusts no CA (smtp_tls_CAfile, smtp_tls_CApath and smtp_tls_trust_anchor_file are empty): every delivery without a policy entry is deferred",
				level);
	}
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		return EX_FAIL;
	type_name = tp_map_type_name(tp_table_type(table));
	snprintf(written, sizeof(written), "%s:%s", type_name, tp_table_source(table));
	cli_maps_open(cli, type_name, tp_table_source(table), &cm);
	if (config) {
		const char *maps = tp_config_get(config, "smtp_tls_policy_maps");

		if (cm.table != SIZE_MAX)
			finding(f, "ok", "%s is listed in smtp_tls_policy_maps (map %zu of %zu)",
				written, cm.table + 1, tp_maps_count(cm.maps));
		else
			finding(f, "error", "%s is not in smtp_tls_policy_maps (= %s): Postfix does not read it",
				written, maps && *maps ? maps : "empty");
	}
	check_maps(f, cli, &cm, written);
	check_entries(f, tp_table_doc(table), tp_table_source(table), digest, &cm, no_anchors);
	state = TP_DB_STALE;
	if (tp_table_type(table) == TP_MAP_TEXTHASH)
		;	/* no database: the source is what Postfix reads */
	else if (tp_table_db_state(table, &state, &diag) != 0) {
		int fd = open(tp_table_db_path(table), O_RDONLY | O_CLOEXEC);

		/* Readable, but not as the map type: corrupt, or another type's. */
		if (fd >= 0 && diag.status != TP_ETIMEOUT)
			finding(f, "error", "%s is not a %s: database Postfix can read (%s): run 'tlspolicy rebuild'",
				tp_table_db_path(table), type_name, diag.message);
		else
			finding(f, "error", "%s", diag.message);
		if (fd >= 0)
			close(fd);
	} else if (state == TP_DB_IN_STEP)
		finding(f, "ok", "%s holds what %s says", tp_table_db_path(table),
			tp_table_source(table));
	else
		finding(f, "error", "%s is %s: Postfix does not see the source's current entries; run 'tlspolicy rebuild'",
			tp_table_db_path(table), cli_db_state_name(state));
	if (tp_table_type(table) == TP_MAP_TEXTHASH)
		finding(f, "ok", "texthash:%s has no database: Postfix reads the source when a process starts, so changes need 'postfix reload' (--reload)",
			tp_table_source(table));
	else
		check_other_dbs(f, cli, table, state);
	if (tp_table_type(table) != TP_MAP_TEXTHASH)
		check_db_age(f, tp_table_source(table), tp_table_db_path(table));
	check_permissions(f, tp_table_source(table), tp_table_db_path(table));
	check_writable(f, tp_table_source(table));
	{
		/* A symlinked source is written beside the file it points to. */
		char *real = realpath(tp_table_source(table), NULL);

		check_temps(f, tp_table_source(table));
		if (real != NULL && strcmp(real, tp_table_source(table)) != 0)
			check_temps(f, real);
		free(real);
		/* A texthash table's "db" is its source: checked above. */
		if (tp_table_type(table) != TP_MAP_TEXTHASH)
			check_temps(f, tp_table_db_path(table));
	}
	cli_maps_close(&cm);
	tp_table_free(table);
	if (f->errors || f->warnings) {
		printf("doctor: %u error%s, %u warning%s\n", f->errors, f->errors == 1 ? "" : "s",
		       f->warnings, f->warnings == 1 ? "" : "s");
		return EX_FAIL;
	}
	if (!cli->quiet)
		printf("doctor: all well\n");
	return EX_SUCCESS;
}

int
cmd_doctor(struct cli *cli, int argc, char **argv)
{
	struct findings f = { 0, 0, cli->quiet, TP_STRARRAY_INIT };
	int rc = doctor(cli, argc, argv, &f);

	tp_strarray_dispose(&f.said);
	return rc;
}
