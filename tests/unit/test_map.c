/*
 * The map writer, reader and safe-write protocol. db5.3_dump is the
 * oracle for the bytes on disk: when it is missing the tests fail, they
 * do not skip.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cdb.h>

#include "buf.h"
#include "map_backend.h"
#include "safewrite.h"
#include "tlspolicy.h"

static char dir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_map.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
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

#define REC(k, v) { k, sizeof(k) - 1, v, sizeof(v) - 1 }

static const tp_record sample[] = {
	REC("example.com", "fingerprint match=AA:BB"),
	REC("[mx.example.net]:25", "secure"),
	REC(".example.org", "encrypt"),
	REC("a", ""),
};

/* Entries in the directory other than the ones named (NULL-terminated). */
static int
stray_files(const char *const *expected)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int stray = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		int known = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;

		for (size_t i = 0; !known && expected[i]; i++)
			known = strcmp(e->d_name, expected[i]) == 0;
		if (!known) {
			print_message("stray file: %s\n", e->d_name);
			stray++;
		}
	}
	closedir(d);
	return stray;
}

static void
assert_lookup(tp_map_type type, const char *db, const char *key, const char *want)
{
	tp_buf v = TP_BUF_INIT;
	tp_diag d = TP_DIAG_INIT;
	int rc = tp_map_lookup(type, db, key, &v, &d);

	if (want == NULL) {
		if (rc != TP_ENOTFOUND)
			fail_msg("lookup %s: got %d (%s), want not found", key, rc,
				 v.ptr ? v.ptr : "");
	} else {
		if (rc != 0)
			fail_msg("lookup %s: got %d (%s), want \"%s\"", key, rc,
				 d.message, want);
		assert_string_equal(v.ptr, want);
	}
	tp_buf_dispose(&v);
}

static void
round_trip(tp_map_type type)
{
	char db[512];
	tp_diag d = TP_DIAG_INIT;

	path_in(db, sizeof(db), "t.db");
	if (tp_map_write(type, db, sample, 4, NULL, &d) != 0)
		fail_msg("write: %s", d.message);
	for (size_t i = 0; i < 4; i++)
		assert_lookup(type, db, sample[i].key, sample[i].value);
	assert_lookup(type, db, "example", NULL);
	assert_lookup(type, db, "EXAMPLE.COM", NULL);	/* lookups do not fold */
	assert_lookup(type, db, "", NULL);
	/* Written again over itself: same records, nothing else left over. */
	assert_int_equal(tp_map_write(type, db, sample, 2, NULL, &d), 0);
	assert_lookup(type, db, sample[0].key, sample[0].value);
	assert_lookup(type, db, "a", NULL);
	assert_int_equal(stray_files((const char *[]){ "t.db", NULL }), 0);
}

static void
test_map__hash_round_trip(void **state)
{
	(void)state;
	round_trip(TP_MAP_HASH);
}

static void
test_map__btree_round_trip(void **state)
{
	(void)state;
	round_trip(TP_MAP_BTREE);
}

static void
test_map__lmdb_round_trip(void **state)
{
	(void)state;
	round_trip(TP_MAP_LMDB);
}

static void
test_map__cdb_round_trip(void **state)
{
	(void)state;
	round_trip(TP_MAP_CDB);
}

/* Output of a shell command (its status must be 0). */
static void
command_output(const char *cmd, tp_buf *out)
{
	char line[1024];
	FILE *fp = popen(cmd, "r");

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp))
		tp__buf_puts(out, line);
	if (pclose(fp) != 0)
		fail_msg("%s failed (lmdb-utils, tinycdb installed?)", cmd);
}

/*
 * The bytes on disk: lmdb with a trailing NUL on keys and values (what
 * postmap writes, see mdb_dump), cdb without (cdb -d), as Postfix's
 * dict_lmdb.c and dict_cdb.c write them.
 */
static void
test_map__lmdb_has_trailing_nul_and_cdb_none_like_postmap(void **state)
{
	char db[512], cmd[1200];
	tp_buf out = TP_BUF_INIT;

	(void)state;
	path_in(db, sizeof(db), "t.lmdb");
	assert_int_equal(tp_map_write(TP_MAP_LMDB, db, sample, 2, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "mdb_dump -n -p '%s' 2>&1 && rm -f '%s-lock'", db, db);
	command_output(cmd, &out);
	assert_non_null(strstr(out.ptr, " example.com\\00\n fingerprint match=AA:BB\\00\n"));
	tp_buf_dispose(&out);
	path_in(db, sizeof(db), "t.cdb");
	assert_int_equal(tp_map_write(TP_MAP_CDB, db, sample, 2, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "cdb -d '%s' 2>&1", db);
	command_output(cmd, &out);
	assert_non_null(strstr(out.ptr, "+11,23:example.com->fingerprint match=AA:BB\n"));
	tp_buf_dispose(&out);
}

struct counter {
	size_t n;
};

static int
count_record(void *arg, const tp_record *rec)
{
	(void)rec;
	((struct counter *)arg)->n++;
	return 0;
}

/* More records than one lmdb write transaction holds; every first one kept. */
static void
test_map__large_lmdb_and_cdb_tables_keep_every_first_record(void **state)
{
	enum { N = 50000 };
	static const tp_map_type types[] = { TP_MAP_LMDB, TP_MAP_CDB };
	tp_record *recs = calloc(N + 1, sizeof(*recs));
	char (*keys)[24] = calloc(N, sizeof(*keys));
	char db[512];

	(void)state;
	assert_non_null(recs);
	assert_non_null(keys);
	for (size_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu.example", (i * 7919) % N);
		recs[i].key = keys[i];
		recs[i].key_len = strlen(keys[i]);
		recs[i].value = i % 2 ? "odd" : "even";
		recs[i].value_len = strlen(recs[i].value);
	}
	/* A later duplicate of the first key: the first wins. */
	recs[N] = recs[0];
	recs[N].value = "late";
	recs[N].value_len = 4;
	for (size_t t = 0; t < 2; t++) {
		tp_diag d = TP_DIAG_INIT;
		struct counter c = { 0 };

		path_in(db, sizeof(db), t ? "big.cdb" : "big.lmdb");
		if (tp_map_write(types[t], db, recs, N + 1, NULL, &d) != 0)
			fail_msg("write %s: %s", db, d.message);
		assert_int_equal(tp__map_iterate(types[t], db, TP_LOCK_TIMEOUT_DEFAULT,
						 count_record, &c, NULL), 0);
		assert_int_equal(c.n, N);
		assert_lookup(types[t], db, keys[0], "even");
		assert_lookup(types[t], db, keys[N - 1], "odd");
		assert_lookup(types[t], db, "k50000.example", NULL);
	}
	free(recs);
	free(keys);
}

/* The whole of a file, into out. */
static void
slurp(const char *path, tp_buf *out)
{
	char chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(tp__buf_put(out, chunk, (size_t)n), 0);
	assert_int_equal(n, 0);
	close(fd);
}

/* Key order as tp_map_write() sorts (bytes, then length). */
static int
by_key(const void *a_in, const void *b_in)
{
	const tp_record *a = a_in, *b = b_in;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);

	return c != 0 ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/*
 * Our cdb writer lays the file out itself (in 1 MB writes) where tinycdb's
 * cdb_make_*() write 4 KB at a time: the same records, put in the same
 * order, must make the same bytes, whatever crosses a 1 MB boundary. The
 * oracle is tinycdb itself, the library Postfix's cdb: tables read and
 * postmap writes with: records of every size (empty, binary, one of 3 MB,
 * larger than the writer's buffer), 40000 of them spread over the 256
 * hash tables, and an empty table. The keys are distinct and given in
 * the order tp_map_write() sorts them into, so tinycdb gets that order.
 */
static void
test_map__cdb_file_is_tinycdbs_byte_for_byte(void **state)
{
	enum { N = 40000, HUGE = 3 << 20 };
	tp_record *recs = calloc(N, sizeof(*recs));
	char (*keys)[32] = calloc(N, sizeof(*keys));
	char *huge = malloc(HUGE), db[512], ref[512];
	static const char binary[] = { 'b', '\0', '\377', '\n', 'x' };

	(void)state;
	assert_non_null(recs);
	assert_non_null(keys);
	assert_non_null(huge);
	memset(huge, 'v', HUGE);
	for (size_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key%zu.example", i * 2654435761u % 1000003);
		recs[i].key = keys[i];
		recs[i].key_len = strlen(keys[i]);
		/* Values from 0 to 3000 bytes, so records straddle the buffer's
		 * 1 MB boundaries at every offset. */
		recs[i].value = huge;
		recs[i].value_len = (i * 37) % 3001;
	}
	recs[7].value = binary;
	recs[7].value_len = sizeof(binary);
	recs[N / 2].value_len = HUGE;
	qsort(recs, N, sizeof(*recs), by_key);
	for (size_t n = 0; n <= N; n += N) {
		tp_buf ours = TP_BUF_INIT, theirs = TP_BUF_INIT;
		struct cdb_make cm;
		tp_diag d = TP_DIAG_INIT;
		int fd;

		path_in(db, sizeof(db), n ? "ours.cdb" : "empty.cdb");
		path_in(ref, sizeof(ref), n ? "tinycdb.cdb" : "tinycdb-empty.cdb");
		if (tp_map_write(TP_MAP_CDB, db, recs, n, NULL, &d) != 0)
			fail_msg("write %s: %s", db, d.message);
		fd = open(ref, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(cdb_make_start(&cm, fd), 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(cdb_make_add(&cm, recs[i].key, (unsigned)recs[i].key_len,
						      recs[i].value, (unsigned)recs[i].value_len), 0);
		assert_int_equal(cdb_make_finish(&cm), 0);
		close(fd);
		slurp(db, &ours);
		slurp(ref, &theirs);
		if (ours.size != theirs.size || memcmp(ours.ptr, theirs.ptr, ours.size) != 0)
			fail_msg("%zu records: our cdb (%zu bytes) is not tinycdb's (%zu bytes)",
				 n, ours.size, theirs.size);
		tp_buf_dispose(&ours);
		tp_buf_dispose(&theirs);
	}
	free(recs);
	free(keys);
	free(huge);
}

/* db5.3_dump -p: the raw records, NULs printed as \00. */
static void
dump(const char *db, tp_buf *out)
{
	char cmd[600], line[512];
	FILE *fp;
	int in_data = 0;

	snprintf(cmd, sizeof(cmd), "db5.3_dump -p '%s' 2>&1", db);
	fp = popen(cmd, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		if (strcmp(line, "HEADER=END\n") == 0)
			in_data = 1;
		else if (strcmp(line, "DATA=END\n") == 0)
			in_data = 0;
		else if (in_data)
			tp__buf_puts(out, line);
	}
	if (pclose(fp) != 0)
		fail_msg("db5.3_dump failed (is db5.3-util installed?): %s",
			 out->ptr ? out->ptr : "");
}

static void
test_map__keys_and_values_carry_a_trailing_nul_like_postmap(void **state)
{
	char db[512];
	tp_buf out = TP_BUF_INIT;
	const tp_record recs[] = {
		REC("example.com", "may"),
		REC("[b]:25", "secure match=x"),
	};

	(void)state;
	for (int t = 0; t <= TP_MAP_BTREE; t++) {
		path_in(db, sizeof(db), "t.db");
		assert_int_equal(tp_map_write((tp_map_type)t, db, recs, 2, NULL, NULL), 0);
		tp__buf_truncate(&out, 0);
		dump(db, &out);
		if (strstr(out.ptr, " example.com\\00\n may\\00\n") == NULL
		    || strstr(out.ptr, " [b]:25\\00\n secure match=x\\00\n") == NULL)
			fail_msg("%s: got dump\n%s", tp_map_type_name((tp_map_type)t), out.ptr);
		assert_int_equal(unlink(db), 0);
	}
	tp_buf_dispose(&out);
}

static void
test_map__first_duplicate_wins(void **state)
{
	char db[512];
	tp_buf out = TP_BUF_INIT;
	const tp_record recs[] = {
		REC("dup", "first"),
		REC("b", "x"),
		REC("dup", "second"),
		REC("a", "y"),
		REC("dup", "third"),
	};

	(void)state;
	for (int t = 0; t <= TP_MAP_BTREE; t++) {
		path_in(db, sizeof(db), "t.db");
		assert_int_equal(tp_map_write((tp_map_type)t, db, recs, 5, NULL, NULL), 0);
		assert_lookup((tp_map_type)t, db, "dup", "first");
		tp__buf_truncate(&out, 0);
		dump(db, &out);
		assert_null(strstr(out.ptr, "second"));
		assert_null(strstr(out.ptr, "third"));
		assert_int_equal(unlink(db), 0);
	}
	tp_buf_dispose(&out);
}

/*
 * A table large enough for the presized, bucket-ordered hash path (over
 * 1 MB of records), with duplicate keys: every key stored once, with
 * its first value and the trailing NULs, in both map types.
 */
#define BIG_N 24000
#define BIG_DUP 3000	/* records BIG_N - BIG_DUP.. repeat earlier keys */

struct big_walk {
	unsigned char seen[BIG_N];
	size_t n;
	int bad;
	size_t nul;	/* 1: records stored with a trailing NUL (not cdb) */
};

static void
big_record(size_t i, char *k, size_t ksize, char *v, size_t vsize)
{
	size_t key = i < BIG_N - BIG_DUP ? i : (i * 7) % (BIG_N - BIG_DUP);

	snprintf(k, ksize, "[mx%zu.example%zu.com]:25", key, key % 97);
	snprintf(v, vsize, "fingerprint match=%0*zu", (int)(20 + i % 40), i);
}

static int
big_visit(void *arg, const tp_record *r)
{
	struct big_walk *w = arg;
	char k[64], v[128];
	unsigned long key;

	w->n++;
	if (sscanf(r->key, "[mx%lu.", &key) != 1 || key >= BIG_N - BIG_DUP ||
	    w->seen[key]++) {
		w->bad = 1;
		return 0;
	}
	big_record(key, k, sizeof(k), v, sizeof(v));
	if (r->key_len != strlen(k) + w->nul || memcmp(r->key, k, r->key_len) != 0 ||
	    r->value_len != strlen(v) + w->nul || memcmp(r->value, v, r->value_len) != 0)
		w->bad = 1;
	return 0;
}

static void
test_map__large_table_stores_every_first_record(void **state)
{
	static char keys[BIG_N][64], vals[BIG_N][128];
	static tp_record recs[BIG_N];
	static struct big_walk w;
	tp_diag d = TP_DIAG_INIT;
	size_t bytes = 0;
	char db[512];

	(void)state;
	for (size_t i = 0; i < BIG_N; i++) {
		big_record(i, keys[i], sizeof(keys[i]), vals[i], sizeof(vals[i]));
		recs[i].key = keys[i];
		recs[i].key_len = strlen(keys[i]);
		recs[i].value = vals[i];
		recs[i].value_len = strlen(vals[i]);
		bytes += recs[i].key_len + recs[i].value_len + 2;
	}
	assert_true(bytes > (1u << 20));
	for (int t = 0; t < TP_MAP_TEXTHASH; t++) {
		path_in(db, sizeof(db), "t.db");
		if (tp_map_write((tp_map_type)t, db, recs, BIG_N, NULL, &d) != 0)
			fail_msg("write: %s", d.message);
		memset(&w, 0, sizeof(w));
		w.nul = t != TP_MAP_CDB;
		assert_int_equal(tp__map_iterate((tp_map_type)t, db, TP_LOCK_TIMEOUT_DEFAULT,
						 big_visit, &w, &d), 0);
		if (w.bad || w.n != BIG_N - BIG_DUP)
			fail_msg("%s: got %zu records (bad: %d), want %d",
				 tp_map_type_name((tp_map_type)t), w.n, w.bad,
				 BIG_N - BIG_DUP);
		assert_lookup((tp_map_type)t, db, keys[5], vals[5]);
		assert_int_equal(unlink(db), 0);
	}
}

static void
test_map__lookup_finds_keys_written_without_nul(void **state)
{
	char db[512];
	void *w;
	tp_buf v = TP_BUF_INIT;
	const tp__map_backend *b = tp__map_backend_get(TP_MAP_HASH);

	(void)state;
	/* Older tables (and other writers) may lack the NUL; Postfix reads both. */
	path_in(db, sizeof(db), "raw.db");
	assert_int_equal(b->create(&w, db, db, 1, 10, NULL), 0);
	assert_int_equal(b->put(w, "k", 1, "v", 1, NULL), 0);
	assert_int_equal(b->put(w, "k", 1, "again", 5, NULL), 1);
	assert_int_equal(b->finish(w, 0644, 0, 0, 0, NULL), 0);
	assert_int_equal(tp_map_lookup(TP_MAP_HASH, db, "k", &v, NULL), 0);
	assert_string_equal(v.ptr, "v");
	tp_buf_dispose(&v);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void
test_map__new_db_takes_mode_from_the_source_and_old_db_keeps_its_own(void **state)
{
	static const struct {
		mode_t source, want;
	} cases[] = {
		{ 0640, 0640 }, { 0600, 0600 }, { 0666, 0644 }, { 0755, 0644 },
		{ 0604, 0604 },
	};
	char src[512], db[512];

	(void)state;
	path_in(src, sizeof(src), "src");
	path_in(db, sizeof(db), "src.db");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = open(src, O_CREAT | O_WRONLY, 0600);

		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(chmod(src, cases[i].source), 0);
		unlink(db);
		assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 1, src, NULL), 0);
		if (mode_of(db) != cases[i].want)
			fail_msg("source %04o: got db mode %04o, want %04o",
				 (unsigned)cases[i].source, (unsigned)mode_of(db),
				 (unsigned)cases[i].want);
	}
	/* postmap rewrites an existing db in place: its mode stays. */
	assert_int_equal(chmod(db, 0600), 0);
	assert_int_equal(chmod(src, 0644), 0);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 1, src, NULL), 0);
	assert_int_equal(mode_of(db), 0600);
}

static void
test_map__new_db_takes_owner_from_a_non_root_source(void **state)
{
	char src[512], db[512];
	struct stat st;
	int fd;

	(void)state;
	if (geteuid() != 0)
		skip();
	path_in(src, sizeof(src), "owned");
	path_in(db, sizeof(db), "owned.db");
	fd = open(src, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chown(src, 65534, 65533), 0);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 1, src, NULL), 0);
	assert_int_equal(stat(db, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65533);
	/* An existing db keeps its owner even when the source changes hands. */
	assert_int_equal(chown(src, 0, 0), 0);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 2, src, NULL), 0);
	assert_int_equal(stat(db, &st), 0);
	assert_int_equal(st.st_uid, 65534);
}

/*
 * A file size limit makes writes fail with EFBIG, as a full disk fails
 * them with ENOSPC, even for root.
 */
static void
with_small_fsize(struct rlimit *old)
{
	struct rlimit lim;

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, old), 0);
	lim = *old;
	lim.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void
test_map__failed_write_leaves_old_files_and_no_temp(void **state)
{
	char db[512], src[512];
	tp_record big[64];
	tp_diag d = TP_DIAG_INIT;
	struct rlimit old;
	static char value[2000];
	char keys[64][8];
	tp_buf data = TP_BUF_INIT;

	(void)state;
	memset(value, 'v', sizeof(value) - 1);
	for (int i = 0; i < 64; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		big[i] = (tp_record){ keys[i], strlen(keys[i]), value, sizeof(value) - 1 };
	}
	path_in(db, sizeof(db), "t.db");
	path_in(src, sizeof(src), "t");
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
	assert_int_equal(tp__file_replace(src, "old\n", 4, NULL), 0);

	with_small_fsize(&old);
	assert_int_not_equal(tp_map_write(TP_MAP_HASH, db, big, 64, NULL, &d), 0);
	print_message("db error: %s\n", d.message);
	assert_non_null(strstr(d.message, "t.db"));
	for (int i = 0; i < 16000; i++)
		tp__buf_putc(&data, 'x');
	assert_int_equal(tp__file_replace(src, data.ptr, data.size, &d), TP_EIO);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	{
		char want[600];

		snprintf(want, sizeof(want), "error writing %s: File too large", src);
		assert_string_equal(d.message, want);
	}
	tp_buf_dispose(&data);

	assert_lookup(TP_MAP_HASH, db, "example.com", sample[0].value);
	assert_int_equal(stray_files((const char *[]){ "t.db", "t", NULL }), 0);
}

static void
test_map__unwritable_directory_is_a_clean_error(void **state)
{
	char sub[512], db[512];
	tp_diag d = TP_DIAG_INIT;

	(void)state;
	if (geteuid() == 0)
		skip();	/* root writes anywhere; the rlimit test covers root */
	path_in(sub, sizeof(sub), "ro");
	assert_int_equal(mkdir(sub, 0555), 0);
	path_in(db, sizeof(db), "ro/t.db");
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, &d), TP_EIO);
	assert_non_null(strstr(d.message, "Permission denied"));
}

static void
test_map__lock_file_symlink_is_not_followed(void **state)
{
	char lock[512], victim[512];
	tp_diag d = TP_DIAG_INIT;
	int fd;

	(void)state;
	path_in(lock, sizeof(lock), "src.lock");
	path_in(victim, sizeof(victim), "victim");
	assert_int_equal(symlink(victim, lock), 0);
	assert_int_equal(tp__lock_acquire(&fd, lock, TP_LOCK_TIMEOUT_DEFAULT, &d), TP_EIO);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(d.message, "symbolic link"));
	assert_int_equal(access(victim, F_OK), -1);	/* not created through it */
}

static void
test_map__db_symlink_is_replaced_not_written_through(void **state)
{
	char db[512], victim[512];
	struct stat st;
	int fd;

	(void)state;
	path_in(db, sizeof(db), "t.db");
	path_in(victim, sizeof(victim), "victim");
	fd = open(victim, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(symlink(victim, db), 0);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
	assert_int_equal(lstat(db, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 4);
}

static void
make_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int
file_is(const char *path, const char *text)
{
	char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strcmp(buf, text) == 0;
}

/*
 * Whoever can write the table's directory can swap our temp directory
 * for a symbolic link (or another directory) between its creation and
 * its removal; the removal must then empty nothing but what we made.
 */
static void
test_map__temp_dir_removal_leaves_a_swapped_in_directory_alone(void **state)
{
	char target[512], victim[512], moved[512], f1[600], f2[600], f3[600];

	(void)state;
	path_in(target, sizeof(target), "t.db");
	path_in(victim, sizeof(victim), "victim");
	path_in(moved, sizeof(moved), "moved");
	assert_int_equal(mkdir(victim, 0755), 0);
	snprintf(f1, sizeof(f1), "%s/t.db", victim);
	snprintf(f2, sizeof(f2), "%s/__db.t.db", victim);
	snprintf(f3, sizeof(f3), "%s/precious", victim);
	make_file(f1, "keep", 0644);
	make_file(f2, "keep", 0644);
	make_file(f3, "keep", 0644);
	for (int how = 0; how < 2; how++) {
		tp__tmpdir d;

		assert_int_equal(tp__temp_dir(&d, target, NULL), 0);
		assert_int_equal(rename(d.path.ptr, moved), 0);
		if (how == 0)
			assert_int_equal(symlink(victim, d.path.ptr), 0);
		else
			assert_int_equal(rename(victim, d.path.ptr), 0);
		{
			char swapped[512];

			snprintf(swapped, sizeof(swapped), "%s", d.path.ptr);
			tp__temp_dir_remove(&d);
			assert_null(d.path.ptr);
			if (how == 1)	/* the real directory back where it was */
				assert_int_equal(rename(swapped, victim), 0);
			else
				assert_int_equal(unlink(swapped), 0);
		}
		if (!file_is(f1, "keep") || !file_is(f2, "keep") || !file_is(f3, "keep"))
			fail_msg("%s swapped in: its files were removed",
				 how == 0 ? "a symbolic link" : "another directory");
		assert_int_equal(rmdir(moved), 0);
	}
	/* Our own directory goes, with what libdb left in it. */
	{
		tp__tmpdir d;
		char inside[600];

		assert_int_equal(tp__temp_dir(&d, target, NULL), 0);
		snprintf(inside, sizeof(inside), "%s/__db.t.db", d.path.ptr);
		make_file(inside, "x", 0600);
		tp__temp_dir_remove(&d);
		assert_int_equal(stray_files((const char *[]){ "victim", NULL }), 0);
	}
}

/* Set-uid, set-gid and sticky bits never reach the new files. */
static void
test_map__set_id_bits_are_not_copied_to_new_files(void **state)
{
	char src[512], db[512];

	(void)state;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	make_file(src, "a b\n", 06755);
	assert_int_equal(tp__file_replace(src, "c d\n", 4, NULL), 0);
	if (mode_of(src) != 0755)
		fail_msg("source of mode 6755 rewritten with mode %04o, want 0755",
			 (unsigned)mode_of(src));
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
	assert_int_equal(chmod(db, 03640), 0);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 2, NULL, NULL), 0);
	if (mode_of(db) != 0640)
		fail_msg("db of mode 3640 rewritten with mode %04o, want 0640",
			 (unsigned)mode_of(db));
}

/*
 * A db that is a symbolic link is replaced by a new db: it takes its
 * mode and owner from the source, as a new db does, not from whatever
 * the link points to.
 */
static void
test_map__symlinked_db_does_not_lend_its_target_mode_or_owner(void **state)
{
	char src[512], db[512], victim[512];
	struct stat st;

	(void)state;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	path_in(victim, sizeof(victim), "shadow");
	make_file(src, "a b\n", 0644);
	make_file(victim, "secret", 0600);
	if (geteuid() == 0)
		assert_int_equal(chown(victim, 65534, 65534), 0);
	assert_int_equal(symlink(victim, db), 0);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, src, NULL), 0);
	assert_int_equal(lstat(db, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	if ((st.st_mode & 07777) != 0644)
		fail_msg("db made over a link to a 0600 file has mode %04o, want the source's 0644",
			 (unsigned)(st.st_mode & 07777));
	assert_int_equal(st.st_uid, geteuid());
	assert_true(file_is(victim, "secret"));
}

/*
 * A symbolic link as source is a file managed elsewhere: the file it
 * points to is replaced (beside itself, keeping its mode), the link
 * stays, and the db is beside the link, where Postfix looks for it.
 */
static void
test_map__symlinked_source_rewrites_its_target_and_keeps_the_link(void **state)
{
	char src[512], real_dir[512], real[600], db[512], tmp[700];
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_table *t;
	struct stat st;
	size_t idx;

	(void)state;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	path_in(real_dir, sizeof(real_dir), "managed");
	assert_int_equal(mkdir(real_dir, 0755), 0);
	snprintf(real, sizeof(real), "%s/tls_policy", real_dir);
	make_file(real, "old.example may\n", 0640);
	assert_int_equal(symlink(real, src), 0);
	/* A temp a killed writer left beside the target is swept too. */
	snprintf(tmp, sizeof(tmp), "%s.tmp.AbCd12", real);
	make_file(tmp, "stale", 0600);
	opts.flags = TP_TABLE_WRITE;
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, &d), 0);
	assert_int_equal(tp_doc_append(tp_table_doc(t), "new.example", "encrypt", &idx), 0);
	if (tp_table_commit(t, &d) != 0)
		fail_msg("commit: %s", d.message);
	tp_table_free(t);
	assert_int_equal(lstat(src, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_true(file_is(real, "old.example may\nnew.example\tencrypt\n")
		    || file_is(real, "old.example may\nnew.example encrypt\n"));
	assert_int_equal(mode_of(real), 0640);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_lookup(TP_MAP_HASH, db, "new.example", "encrypt");
	assert_int_equal(stray_files((const char *[]){ "policy", "policy.db", "policy.lock",
						     "managed", NULL }), 0);
}

/*
 * A child holds a lock on path; we wait until it has it. It creates
 * "released" just before it lets go, so whatever we run afterwards can
 * tell whether it waited.
 */
static pid_t
hold_lock(const char *path, int op)
{
	int pipefd[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char marker[512];
		int fd = open(path, O_RDONLY);

		if (fd < 0 || flock(fd, op) < 0)
			_exit(1);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		usleep(300 * 1000);
		path_in(marker, sizeof(marker), "released");
		close(open(marker, O_CREAT | O_WRONLY, 0644));
		_exit(0);
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	return pid;
}

static void
reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_map__lookup_waits_while_a_writer_holds_the_db(void **state)
{
	char db[512], marker[512];
	pid_t pid;

	(void)state;
	path_in(db, sizeof(db), "t.db");
	path_in(marker, sizeof(marker), "released");
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
	pid = hold_lock(db, LOCK_EX);
	assert_lookup(TP_MAP_HASH, db, "example.com", sample[0].value);
	assert_int_equal(access(marker, F_OK), 0);
	reap(pid);
}

static void
test_map__write_waits_while_a_reader_holds_the_db(void **state)
{
	char db[512], marker[512];
	pid_t pid;

	(void)state;
	path_in(db, sizeof(db), "t.db");
	path_in(marker, sizeof(marker), "released");
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
	pid = hold_lock(db, LOCK_SH);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 1, NULL, NULL), 0);
	assert_int_equal(access(marker, F_OK), 0);
	reap(pid);
	assert_lookup(TP_MAP_HASH, db, "a", NULL);
}

static void
test_map__lock_file_queues_writers(void **state)
{
	char lock[512], marker[512];
	pid_t pid;
	int fd;

	(void)state;
	path_in(lock, sizeof(lock), "src.lock");
	path_in(marker, sizeof(marker), "released");
	close(open(lock, O_CREAT | O_WRONLY, 0600));
	pid = hold_lock(lock, LOCK_EX);
	assert_int_equal(tp__lock_acquire(&fd, lock, TP_LOCK_TIMEOUT_DEFAULT, NULL), 0);
	assert_int_equal(access(marker, F_OK), 0);
	tp__lock_release(fd);
	reap(pid);
}

/*
 * A child holds a lock on path (opened read-only: any user who can read
 * a file can lock it) until we close *release. Returns its pid.
 */
static pid_t
hold_lock_until(const char *path, int op, int *release)
{
	int ready[2], go[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* LOCK_EX|LOCK_NB stands for an fcntl() write lock (lmdb's). */
		int fcntl_lock = op == (LOCK_EX | LOCK_NB);
		int fd = open(path, fcntl_lock ? O_RDWR : O_RDONLY);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

		close(go[1]);
		if (fd < 0 || (fcntl_lock ? fcntl(fd, F_SETLKW, &fl) : flock(fd, op)) < 0
		    || write(ready[1], "x", 1) != 1)
			_exit(1);
		(void)read(go[0], &c, 1);	/* EOF: the parent let go */
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release = go[1];
	return pid;
}

/*
 * Any local user can hold a lock on the world-readable db (or, if they
 * can read it, on the lock file): every lock wait gives up after the
 * timeout with TP_ETIMEOUT and names the file and the holder.
 */
static void
test_map__a_lock_held_too_long_is_a_timeout_naming_file_and_holder(void **state)
{
	char lock[512], db[512], src[512], holder[64], want[700];
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_buf v = TP_BUF_INIT;
	tp_table *t;
	tp_db_state st;
	int release, fd;
	size_t idx;
	pid_t pid;

	(void)state;
	path_in(lock, sizeof(lock), "policy.lock");
	path_in(db, sizeof(db), "policy.db");
	path_in(src, sizeof(src), "policy");
	make_file(src, "old.example may\n", 0644);
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
	make_file(lock, "", 0600);

	/* The table lock: tp__lock_acquire and tp_table_open. */
	pid = hold_lock_until(lock, LOCK_EX, &release);
	snprintf(holder, sizeof(holder), "by pid %ld (", (long)pid);
	assert_int_equal(tp__lock_acquire(&fd, lock, 0.2, &d), TP_ETIMEOUT);
	assert_int_equal(fd, -1);
	snprintf(want, sizeof(want), "%s is still locked after 0.2 s, %s", lock, holder);
	if (strncmp(d.message, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", d.message, want);
	opts.flags = TP_TABLE_WRITE;
	opts.lock_timeout = 0;
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, &d), TP_ETIMEOUT);
	close(release);
	reap(pid);

	/* A reader's LOCK_SH on the db: a commit gives up, nothing renamed. */
	opts.lock_timeout = 0.1;
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, &d), 0);
	assert_int_equal(tp_doc_append(tp_table_doc(t), "new.example", "encrypt", &idx), 0);
	pid = hold_lock_until(db, LOCK_SH, &release);
	assert_int_equal(tp_table_commit(t, &d), TP_ETIMEOUT);
	snprintf(want, sizeof(want), "%s is still locked after 0.1 s, by pid %ld (", db, (long)pid);
	if (strncmp(d.message, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", d.message, want);
	assert_true(file_is(src, "old.example may\n"));
	assert_lookup(TP_MAP_HASH, db, "example.com", sample[0].value);
	close(release);
	reap(pid);

	/* A writer's LOCK_EX on the db: readers give up. */
	pid = hold_lock_until(db, LOCK_EX, &release);
	assert_int_equal(tp_table_db_state(t, &st, &d), TP_ETIMEOUT);
	assert_int_equal(tp_map_lookup_timed(TP_MAP_HASH, db, "a", &v, 0, &d), TP_ETIMEOUT);
	assert_non_null(strstr(d.message, "still locked after 0 s, by pid"));
	close(release);
	reap(pid);

	/* Once let go, the same table commits. */
	if (tp_table_commit(t, &d) != 0)
		fail_msg("commit: %s", d.message);
	assert_lookup(TP_MAP_HASH, db, "new.example", "encrypt");
	tp_table_free(t);
	tp_buf_dispose(&v);
}

/*
 * lmdb: readers and writers lock with fcntl(), as Postfix's do: a write
 * lock held too long makes a lookup give up too, naming the holder; a
 * cdb file is never locked (it is only ever replaced), so nothing waits.
 */
static void
test_map__an_lmdb_lock_held_too_long_is_a_timeout_and_cdb_never_waits(void **state)
{
	char db[512];
	tp_diag d = TP_DIAG_INIT;
	tp_buf v = TP_BUF_INIT;
	int release;
	pid_t pid;

	(void)state;
	path_in(db, sizeof(db), "t.lmdb");
	assert_int_equal(tp_map_write(TP_MAP_LMDB, db, sample, 4, NULL, NULL), 0);
	pid = hold_lock_until(db, LOCK_EX | LOCK_NB, &release);
	assert_int_equal(tp_map_lookup_timed(TP_MAP_LMDB, db, "a", &v, 0.1, &d), TP_ETIMEOUT);
	print_message("%s\n", d.message);
	assert_non_null(strstr(d.message, "is still locked after 0.1 s, by pid"));
	assert_int_equal(tp__map_write(TP_MAP_LMDB, db, sample, 2, NULL, 0.1, &d), TP_ETIMEOUT);
	close(release);
	reap(pid);
	assert_lookup(TP_MAP_LMDB, db, "example.com", sample[0].value);

	path_in(db, sizeof(db), "t.cdb");
	assert_int_equal(tp_map_write(TP_MAP_CDB, db, sample, 4, NULL, NULL), 0);
	pid = hold_lock_until(db, LOCK_EX, &release);
	if (tp__map_write(TP_MAP_CDB, db, sample, 2, NULL, 0, &d) != 0)
		fail_msg("cdb write with the file locked: %s", d.message);
	close(release);
	reap(pid);
	tp_buf_dispose(&v);
}

/* The old db's lock is not taken through a symbolic link. */
static void
test_map__a_symlinked_db_is_not_locked_through_the_link(void **state)
{
	char db[512], victim[512];
	tp_diag d = TP_DIAG_INIT;
	int release;
	pid_t pid;

	(void)state;
	path_in(db, sizeof(db), "t.db");
	path_in(victim, sizeof(victim), "elsewhere");
	make_file(victim, "not ours", 0644);
	assert_int_equal(symlink(victim, db), 0);
	pid = hold_lock_until(victim, LOCK_EX, &release);
	if (tp__map_write(TP_MAP_HASH, db, sample, 4, NULL, 0, &d) != 0)
		fail_msg("write over a link to a locked file: %s", d.message);
	close(release);
	reap(pid);
	assert_true(file_is(victim, "not ours"));
	assert_lookup(TP_MAP_HASH, db, "a", "");
}

/*
 * The lock keeps tlspolicy writers apart, not an editor: a hand edit
 * made after the table was read is not overwritten; the commit writes
 * nothing and says so. Without an edit, commits go on working.
 */
static void
test_map__a_hand_edit_after_open_is_not_overwritten(void **state)
{
	static const char *const edits[] = { "replace", "in place", "remove", "create" };
	char src[512], db[512], other[600];
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_table *t;
	size_t idx;

	(void)state;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	snprintf(other, sizeof(other), "%s.new", src);
	opts.flags = TP_TABLE_WRITE;
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		int creating = strcmp(edits[i], "create") == 0;

		unlink(src);
		if (!creating)
			make_file(src, "old.example may\n", 0644);
		assert_int_equal(tp_map_write(TP_MAP_HASH, db, sample, 4, NULL, NULL), 0);
		assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, &d), 0);
		/* Meanwhile, someone edits the source. */
		if (strcmp(edits[i], "replace") == 0) {
			make_file(other, "old.example may\nhand.example secure\n", 0644);
			assert_int_equal(rename(other, src), 0);
		} else if (strcmp(edits[i], "in place") == 0) {
			FILE *fp = fopen(src, "a");

			assert_non_null(fp);
			fputs("hand.example secure\n", fp);
			fclose(fp);
		} else if (strcmp(edits[i], "remove") == 0) {
			assert_int_equal(unlink(src), 0);
		} else {
			make_file(src, "hand.example secure\n", 0644);
		}
		assert_int_equal(tp_doc_append(tp_table_doc(t), "new.example", "encrypt", &idx), 0);
		if (tp_table_commit(t, &d) != TP_ECHANGED)
			fail_msg("%s: a hand edit after open was overwritten (%s)", edits[i], d.message);
		print_message("%s: %s\n", edits[i], d.message);
		assert_non_null(strstr(d.message, src));
		assert_non_null(strstr(d.message, "nothing written"));
		assert_int_equal(tp_table_rebuild(t, NULL), TP_ECHANGED);
		tp_table_free(t);
		if (strcmp(edits[i], "remove") == 0)
			assert_int_equal(access(src, F_OK), -1);
		else
			assert_true(file_is(src, creating ? "hand.example secure\n"
					    : "old.example may\nhand.example secure\n"));
		assert_lookup(TP_MAP_HASH, db, "new.example", NULL);
		assert_lookup(TP_MAP_HASH, db, "example.com", sample[0].value);
	}
	/* No edit: a commit, and a second one from the same table, work. */
	make_file(src, "old.example may\n", 0644);
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, &d), 0);
	assert_int_equal(tp_doc_append(tp_table_doc(t), "new.example", "encrypt", &idx), 0);
	if (tp_table_commit(t, &d) != 0)
		fail_msg("commit: %s", d.message);
	assert_int_equal(tp_doc_append(tp_table_doc(t), "newer.example", "may", &idx), 0);
	if (tp_table_commit(t, &d) != 0)
		fail_msg("second commit: %s", d.message);
	assert_int_equal(tp_table_rebuild(t, &d), 0);
	tp_table_free(t);
	assert_lookup(TP_MAP_HASH, db, "newer.example", "may");
}

/*
 * A table opened to rebuild only (what `tlspolicy rebuild` does) reads
 * the source's records and warnings without a document: the database it
 * writes holds what a full open would write, for every type, and it
 * refuses to write the source.
 */
static void
test_map__a_table_opened_to_rebuild_writes_the_same_records(void **state)
{
	static const tp_map_type types[] = { TP_MAP_HASH, TP_MAP_BTREE, TP_MAP_LMDB, TP_MAP_CDB };
	static const char source[] =
		"# partners\n"
		"Example.COM fingerprint\n"
		"    match=AA:BB\n"
		"example.com may\n"
		"alias: v\n"
		" indented first\n"
		"[mx.example.net]:25 secure   \n"
		"k\n";
	char src[512], db[600];
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_db_state st;
	tp_table *t;
	size_t idx;

	(void)state;
	path_in(src, sizeof(src), "policy");
	make_file(src, source, 0644);
	opts.flags = TP_TABLE_WRITE | TP_TABLE_REBUILD;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		snprintf(db, sizeof(db), "%s%s", src, tp_map_type_suffix(types[i]));
		unlink(db);
		assert_int_equal(tp_table_open(&t, types[i], src, &opts, &d), 0);
		/* The warnings a document would have, in postmap's words. */
		assert_int_equal(tp_doc_entry_count(tp_table_doc(t)), 0);
		assert_int_equal(tp_doc_warning_count(tp_table_doc(t)), 3);
		assert_non_null(strstr(tp_doc_warning_at(tp_table_doc(t), 0)->message,
				       "duplicate entry: \"example.com\""));
		assert_int_equal(tp_doc_warning_at(tp_table_doc(t), 0)->line, 4);
		assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
		assert_int_equal(st, TP_DB_MISSING);
		if (tp_table_rebuild(t, &d) != 0)
			fail_msg("rebuild %s: %s", tp_map_type_name(types[i]), d.message);
		assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
		assert_int_equal(st, TP_DB_IN_STEP);
		/* Not a document: nothing to edit or write back. */
		assert_int_not_equal(tp_doc_append(tp_table_doc(t), "new.example", "may", &idx), 0);
		assert_int_equal(tp_table_commit(t, &d), TP_EUSAGE);
		assert_non_null(strstr(d.message, "rebuild"));
		tp_table_free(t);
		assert_true(file_is(src, source));
		assert_lookup(types[i], db, "example.com", "fingerprint    match=AA:BB");
		assert_lookup(types[i], db, "alias:", "v indented first");
		assert_lookup(types[i], db, "[mx.example.net]:25", "secure");
		assert_lookup(types[i], db, "k", NULL);
		/* A full open agrees that this database is the source's. */
		opts.flags = TP_TABLE_WRITE;
		assert_int_equal(tp_table_open(&t, types[i], src, &opts, &d), 0);
		assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
		assert_int_equal(st, TP_DB_IN_STEP);
		tp_table_free(t);
		opts.flags = TP_TABLE_WRITE | TP_TABLE_REBUILD;
	}
}

static void
test_map__file_replace_keeps_mode_and_replaces_whole(void **state)
{
	char src[512];
	struct stat st1, st2;
	FILE *fp;
	char buf[64] = "";

	(void)state;
	path_in(src, sizeof(src), "policy");
	assert_int_equal(tp__file_replace(src, "a b\n", 4, NULL), 0);
	assert_int_equal(mode_of(src), 0644);
	assert_int_equal(chmod(src, 0640), 0);
	assert_int_equal(stat(src, &st1), 0);
	assert_int_equal(tp__file_replace(src, "c d\n", 4, NULL), 0);
	assert_int_equal(stat(src, &st2), 0);
	assert_int_equal(st2.st_mode & 07777, 0640);
	assert_int_not_equal(st1.st_ino, st2.st_ino);	/* renamed, not rewritten */
	fp = fopen(src, "r");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "c d\n");
	assert_int_equal(stray_files((const char *[]){ "policy", NULL }), 0);
}

static void
test_map__spec_parse(void **state)
{
	static const struct {
		const char *spec;
		int rc;
		tp_map_type type;
		const char *path;
	} cases[] = {
		{ "hash:/etc/postfix/tls_policy", 0, TP_MAP_HASH, "/etc/postfix/tls_policy" },
		{ "btree:tp", 0, TP_MAP_BTREE, "tp" },
		{ "/etc/postfix/tls_policy", 0, TP_MAP_HASH, "/etc/postfix/tls_policy" },
		{ "./odd:name", 0, TP_MAP_HASH, "./odd:name" },
		{ "lmdb:/x", 0, TP_MAP_LMDB, "/x" },
		{ "cdb:/x", 0, TP_MAP_CDB, "/x" },
		{ "texthash:/x", 0, TP_MAP_TEXTHASH, "/x" },
		{ "dbm:/x", TP_EUNSUPPORTED, TP_MAP_HASH, NULL },
		{ "bogus:/x", TP_EUSAGE, TP_MAP_HASH, NULL },
		{ "hash:", TP_EUSAGE, TP_MAP_HASH, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tp_buf path = TP_BUF_INIT;
		tp_map_type type;
		tp_diag d = TP_DIAG_INIT;
		int rc = tp_map_spec_parse(&type, &path, cases[i].spec, &d);

		if (rc != cases[i].rc)
			fail_msg("%s: got %d (%s), want %d", cases[i].spec, rc,
				 d.message, cases[i].rc);
		if (rc == 0) {
			assert_int_equal(type, cases[i].type);
			assert_string_equal(path.ptr, cases[i].path);
		} else {
			assert_true(d.message[0] != '\0');
		}
		tp_buf_dispose(&path);
	}
}

static void
test_map__table_commit_writes_source_then_db_in_step(void **state)
{
	char src[512], db[512];
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_table *t;
	tp_db_state st;
	struct stat s1, s2, sd;
	tp_diag d = TP_DIAG_INIT;
	size_t idx;
	FILE *fp;

	(void)state;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	/* Without TP_TABLE_WRITE a missing source is an error. */
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, NULL, &d), TP_ENOTFOUND);
	opts.flags = TP_TABLE_WRITE;
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, &d), 0);
	assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
	assert_int_equal(st, TP_DB_MISSING);
	assert_int_equal(tp_doc_append(tp_table_doc(t), "Example.COM", "secure", &idx), 0);
	if (tp_table_commit(t, &d) != 0)
		fail_msg("commit: %s", d.message);
	assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
	assert_int_equal(st, TP_DB_IN_STEP);
	assert_lookup(TP_MAP_HASH, db, "example.com", "secure");
	/* Source first, then db: the db is never older than the source. */
	assert_int_equal(stat(src, &s1), 0);
	assert_int_equal(stat(db, &sd), 0);
	assert_true(sd.st_mtim.tv_sec > s1.st_mtim.tv_sec
		    || (sd.st_mtim.tv_sec == s1.st_mtim.tv_sec
			&& sd.st_mtim.tv_nsec >= s1.st_mtim.tv_nsec));
	/* Nothing changed: the source is not rewritten. */
	assert_int_equal(tp_table_commit(t, NULL), 0);
	assert_int_equal(stat(src, &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);
	tp_table_free(t);

	/* Someone edits the source by hand: the db is stale, by content. */
	fp = fopen(src, "a");
	assert_non_null(fp);
	fputs("other.example may\n", fp);
	fclose(fp);
	assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, NULL, &d), 0);
	assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
	assert_int_equal(st, TP_DB_STALE);
	assert_int_equal(tp_table_rebuild(t, NULL), 0);
	assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
	assert_int_equal(st, TP_DB_IN_STEP);
	/* A db with one record too many is stale too. */
	{
		const tp_record recs[] = {
			REC("example.com", "secure"), REC("other.example", "may"), REC("x", "y"),
		};

		assert_int_equal(tp_map_write(TP_MAP_HASH, db, recs, 3, NULL, NULL), 0);
		assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
		assert_int_equal(st, TP_DB_STALE);
	}
	tp_table_free(t);
	tp_table_free(NULL);
	assert_int_equal(stray_files((const char *[]){ "policy", "policy.db", "policy.lock", NULL }), 0);
}

/*
 * Incremental commits: a table edited a few entries at a time gets a
 * copy of its db with only the changed records; after every commit the
 * db holds exactly the records real postmap makes from the source (the
 * oracle), and the commit says it updated rather than rebuilt. Sources
 * with duplicates, continued records, upper case and annotations.
 */
static unsigned long inc_rnd = 20261129;

static unsigned
inc_next(unsigned n)
{
	inc_rnd = inc_rnd * 6364136223846793005ul + 1442695040888963407ul;
	return (unsigned)((inc_rnd >> 33) % n);
}

/* The sorted db5.3_dump records of db (hash or btree). */
static void
sorted_dump(const char *db, tp_buf *out)
{
	char cmd[1400];
	FILE *fp;
	char line[4096];

	snprintf(cmd, sizeof(cmd),
		 "db5.3_dump -p '%s' | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - | LC_ALL=C sort",
		 db);
	tp__buf_truncate(out, 0);
	assert_non_null(fp = popen(cmd, "r"));
	while (fgets(line, sizeof(line), fp))
		tp__buf_puts(out, line);
	assert_int_equal(pclose(fp), 0);
}

/* What postmap makes of src, as type, in dir/oracle. */
static void
postmap_records(const char *type, const char *src, tp_buf *out)
{
	char cmd[2048], copy[512], cf[512];
	FILE *fp;

	path_in(cf, sizeof(cf), "main.cf");
	assert_non_null(fp = fopen(cf, "w"));
	fputs("compatibility_level = 3.6\n", fp);
	fclose(fp);
	path_in(copy, sizeof(copy), "oracle");
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s' && rm -f '%s.db' && PATH=$PATH:/usr/sbin postmap -c '%s' %s:'%s' 2>/dev/null",
		 src, copy, copy, dir, type, copy);
	if (system(cmd) != 0)
		fail_msg("postmap failed (is postfix installed?): %s", cmd);
	snprintf(cmd, sizeof(cmd), "%s.db", copy);
	sorted_dump(cmd, out);
}

static void
inc_edit(tp_doc *doc, int round)
{
	static const char *const pins[] = { "AA:BB", "CC:DD" };
	static const char *const hosts[] = { "mx.example:25" };
	size_t n = tp_doc_entry_count(doc), i = n ? inc_next((unsigned)n) : 0, idx;
	char key[64];

	switch (n ? inc_next(7) : 4) {
	case 0:
		assert_int_equal(tp_doc_set_level(doc, i, inc_next(2) ? "encrypt" : "fingerprint"), 0);
		break;
	case 1:
		(void)tp_doc_set_pins(doc, i, pins, 1 + inc_next(2));
		break;
	case 2:
		(void)tp_doc_set_attr(doc, i, "protocols", inc_next(2) ? ">=TLSv1.2" : NULL);
		break;
	case 3:
		(void)tp_doc_set_annotation(doc, i, hosts, 1, "cert");
		break;
	case 4:
		snprintf(key, sizeof(key), "New%d-%u.Example", round, inc_next(1000));
		assert_int_equal(tp_doc_append(doc, key, "may", &idx), 0);
		break;
	case 5: {
		tp_entry e;

		/* A later duplicate of an existing key: no record changes. */
		assert_int_equal(tp_doc_entry_at(doc, i, &e), 0);
		snprintf(key, sizeof(key), "%.*s", (int)e.key_len, e.key);
		assert_int_equal(tp_doc_append(doc, key, "dane", &idx), 0);
		break;
	}
	default:
		assert_int_equal(tp_doc_remove(doc, i), 0);
	}
}

static void
test_map__commit_updates_a_copy_of_the_db_as_postmap_would_build_it(void **state)
{
	static const tp_map_type types[] = { TP_MAP_HASH, TP_MAP_BTREE };
	char src[512], db[512];
	tp_buf got = TP_BUF_INIT, want = TP_BUF_INIT;
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	struct stat st;
	size_t changed;
	FILE *fp;

	(void)state;
	opts.flags = TP_TABLE_WRITE;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	for (size_t t = 0; t < 2; t++) {
		const char *tname = tp_map_type_name(types[t]);
		tp_table *tab;

		assert_non_null(fp = fopen(src, "w"));
		for (int i = 0; i < 400; i++) {
			if (i % 9 == 0)
				fprintf(fp, "# tlspolicy: from=h%d.example:25 pin=cert\n", i);
			if (i % 13 == 0)
				fprintf(fp, "D%d.Example\tfingerprint\n  match=%02X:01\n  match=%02X:02\n",
					i, i & 0xff, i & 0xff);
			else
				fprintf(fp, "d%d.example\t%s\n", i % 350, i % 2 ? "may" : "encrypt");
		}
		fclose(fp);
		/* The db as postmap made it: updated in place of a rebuild. */
		postmap_records(tname, src, &want);
		{
			char cmd[2048];

			snprintf(cmd, sizeof(cmd), "cp '%s/oracle.db' '%s' && chmod 640 '%s'", dir, db, db);
			assert_int_equal(system(cmd), 0);
		}
		for (int round = 0; round < 12; round++) {
			int nedits = 1 + (int)inc_next(6);

			assert_int_equal(tp_table_open(&tab, types[t], src, &opts, &d), 0);
			for (int k = 0; k < nedits; k++)
				inc_edit(tp_table_doc(tab), round);
			/* Twice from one table: the second starts where the first left. */
			if (tp_table_commit(tab, &d) != 0)
				fail_msg("%s round %d: commit: %s", tname, round, d.message);
			assert_int_equal(tp_table_db_written(tab, &changed), TP_TABLE_DB_UPDATED);
			assert_true(changed <= (size_t)nedits);
			inc_edit(tp_table_doc(tab), round);
			if (tp_table_commit(tab, &d) != 0)
				fail_msg("%s round %d: commit: %s", tname, round, d.message);
			assert_int_equal(tp_table_db_written(tab, &changed), TP_TABLE_DB_UPDATED);
			tp_table_free(tab);
			postmap_records(tname, src, &want);
			sorted_dump(db, &got);
			if (strcmp(got.ptr ? got.ptr : "", want.ptr ? want.ptr : "") != 0)
				fail_msg("%s round %d: records differ from postmap's\ngot:\n%s\nwant:\n%s",
					 tname, round, got.ptr, want.ptr);
			/* The db keeps its mode. */
			assert_int_equal(stat(db, &st), 0);
			assert_int_equal(st.st_mode & 07777, 0640);
		}
		assert_int_equal(unlink(db), 0);
	}
	tp_buf_dispose(&got);
	tp_buf_dispose(&want);
}

/* open, one edit, commit: how was the db written? */
static int
edit_and_commit(tp_map_type type, const char *src, const char *level)
{
	tp_table_opts opts = TP_TABLE_OPTS_INIT;
	tp_diag d = TP_DIAG_INIT;
	tp_table *t;
	size_t idx, n;
	int how;

	opts.flags = TP_TABLE_WRITE;
	assert_int_equal(tp_table_open(&t, type, src, &opts, &d), 0);
	assert_int_equal(tp_doc_find(tp_table_doc(t), "b.example", &idx), 0);
	assert_int_equal(tp_doc_set_level(tp_table_doc(t), idx, level), 0);
	if (tp_table_commit(t, &d) != 0)
		fail_msg("commit: %s", d.message);
	how = tp_table_db_written(t, &n);
	tp_table_free(t);
	return how;
}

static void
assert_db_in_step(tp_map_type type, const char *src)
{
	tp_table *t;
	tp_db_state st;

	assert_int_equal(tp_table_open(&t, type, src, NULL, NULL), 0);
	assert_int_equal(tp_table_db_state(t, &st, NULL), 0);
	assert_int_equal(st, TP_DB_IN_STEP);
	tp_table_free(t);
}

static void
test_map__commit_rebuilds_a_db_missing_foreign_older_or_out_of_step(void **state)
{
	char src[512], db[512];
	const tp_record other[] = { REC("a.example", "may"), REC("b.example", "may") };
	const tp_record wrong[] = { REC("a.example", "may"), REC("b.example", "dane") };
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	FILE *fp;

	(void)state;
	path_in(src, sizeof(src), "policy");
	path_in(db, sizeof(db), "policy.db");
	assert_non_null(fp = fopen(src, "w"));
	fputs("a.example may\nb.example encrypt\nc.example secure\n", fp);
	fclose(fp);
	/* Missing: built whole; then in step: updated. */
	assert_int_equal(edit_and_commit(TP_MAP_HASH, src, "may"), TP_TABLE_DB_REBUILT);
	assert_int_equal(edit_and_commit(TP_MAP_HASH, src, "encrypt"), TP_TABLE_DB_UPDATED);
	assert_db_in_step(TP_MAP_HASH, src);
	/* Foreign: a btree file where a hash one belongs. */
	assert_int_equal(unlink(db), 0);
	assert_int_equal(tp_map_write(TP_MAP_BTREE, db, other, 2, NULL, NULL), 0);
	assert_int_equal(edit_and_commit(TP_MAP_HASH, src, "may"), TP_TABLE_DB_REBUILT);
	assert_db_in_step(TP_MAP_HASH, src);
	/* Not a database at all. */
	assert_non_null(fp = fopen(db, "w"));
	fputs("garbage", fp);
	fclose(fp);
	assert_int_equal(edit_and_commit(TP_MAP_HASH, src, "encrypt"), TP_TABLE_DB_REBUILT);
	assert_db_in_step(TP_MAP_HASH, src);
	/* Older than the source (a source edited after the last postmap). */
	assert_int_equal(utimensat(AT_FDCWD, db, old, 0), 0);
	assert_int_equal(edit_and_commit(TP_MAP_HASH, src, "may"), TP_TABLE_DB_REBUILT);
	assert_db_in_step(TP_MAP_HASH, src);
	/* Newer, but the changed key's record is not the source's. */
	assert_int_equal(tp_map_write(TP_MAP_HASH, db, wrong, 2, NULL, NULL), 0);
	assert_int_equal(edit_and_commit(TP_MAP_HASH, src, "encrypt"), TP_TABLE_DB_REBUILT);
	assert_db_in_step(TP_MAP_HASH, src);
	/* cdb, a constant database, is always built whole. */
	assert_int_equal(edit_and_commit(TP_MAP_CDB, src, "may"), TP_TABLE_DB_REBUILT);
	assert_int_equal(edit_and_commit(TP_MAP_CDB, src, "encrypt"), TP_TABLE_DB_REBUILT);
	assert_db_in_step(TP_MAP_CDB, src);
	/* Many changes at once: rebuilt, as cheap. */
	{
		tp_table_opts opts = TP_TABLE_OPTS_INIT;
		tp_table *t;
		size_t n;

		opts.flags = TP_TABLE_WRITE;
		assert_int_equal(tp_table_open(&t, TP_MAP_HASH, src, &opts, NULL), 0);
		for (int i = 0; i < 40; i++) {
			char key[32];

			snprintf(key, sizeof(key), "n%d.example", i);
			assert_int_equal(tp_doc_append(tp_table_doc(t), key, "may", NULL), 0);
		}
		assert_int_equal(tp_table_commit(t, NULL), 0);
		assert_int_equal(tp_table_db_written(t, &n), TP_TABLE_DB_REBUILT);
		assert_int_equal(n, 43);
		tp_table_free(t);
		assert_db_in_step(TP_MAP_HASH, src);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define T_NEW_TYPES \
		T(test_map__lmdb_round_trip), \
		T(test_map__cdb_round_trip), \
		T(test_map__lmdb_has_trailing_nul_and_cdb_none_like_postmap), \
		T(test_map__large_lmdb_and_cdb_tables_keep_every_first_record), \
		T(test_map__cdb_file_is_tinycdbs_byte_for_byte),
		T(test_map__hash_round_trip),
		T(test_map__btree_round_trip),
		T_NEW_TYPES
		T(test_map__keys_and_values_carry_a_trailing_nul_like_postmap),
		T(test_map__first_duplicate_wins),
		T(test_map__large_table_stores_every_first_record),
		T(test_map__lookup_finds_keys_written_without_nul),
		T(test_map__new_db_takes_mode_from_the_source_and_old_db_keeps_its_own),
		T(test_map__new_db_takes_owner_from_a_non_root_source),
		T(test_map__failed_write_leaves_old_files_and_no_temp),
		T(test_map__unwritable_directory_is_a_clean_error),
		T(test_map__lock_file_symlink_is_not_followed),
		T(test_map__db_symlink_is_replaced_not_written_through),
		T(test_map__temp_dir_removal_leaves_a_swapped_in_directory_alone),
		T(test_map__set_id_bits_are_not_copied_to_new_files),
		T(test_map__symlinked_db_does_not_lend_its_target_mode_or_owner),
		T(test_map__symlinked_source_rewrites_its_target_and_keeps_the_link),
		T(test_map__lookup_waits_while_a_writer_holds_the_db),
		T(test_map__write_waits_while_a_reader_holds_the_db),
		T(test_map__lock_file_queues_writers),
		T(test_map__a_lock_held_too_long_is_a_timeout_naming_file_and_holder),
		T(test_map__a_symlinked_db_is_not_locked_through_the_link),
		T(test_map__an_lmdb_lock_held_too_long_is_a_timeout_and_cdb_never_waits),
		T(test_map__a_hand_edit_after_open_is_not_overwritten),
		T(test_map__a_table_opened_to_rebuild_writes_the_same_records),
		T(test_map__file_replace_keeps_mode_and_replaces_whole),
		T(test_map__spec_parse),
		T(test_map__table_commit_writes_source_then_db_in_step),
		T(test_map__commit_updates_a_copy_of_the_db_as_postmap_would_build_it),
		T(test_map__commit_rebuilds_a_db_missing_foreign_older_or_out_of_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
