/*
 * NAME
 *	map_db - hash: and btree: maps in Berkeley DB 5.3
 * SUMMARY
 *	The tp__map_backend for Postfix's hash: (DB_HASH) and btree:
 *	(DB_BTREE) tables: the file postmap(1) writes, readable by any
 *	Postfix linked with the same libdb major.minor.
 * DESCRIPTION
 *	Writing: a private environment (DB_PRIVATE: the memory pool lives in
 *	our heap, nothing is written beside the database) whose home is the
 *	private temp directory map.c made, so libdb's undocumented read of
 *	HOME/DB_CONFIG finds nothing planted. Postfix builds with a 16 MB
 *	pool and lets the hash split as it grows (its h_nelem 4096 is
 *	ignored without a fill factor), so a large table's pages are
 *	evicted and read back all through the load. We make every bucket
 *	up front (hash_size(): 64 KB pages for large tables, at most 85%
 *	full), so the table does not split, and map.c puts the records in
 *	bucket order (hash_bucket(): libdb's default hash, which we keep):
 *	each page is filled once, front to back, and a 4 MB pool is
 *	plenty. Page layout then differs from postmap's, the records do not
 *	(any valid DB_HASH file is readable with the default hash function).
 *
 *	Reading: as dict_db.c does: an environment homed in the database's
 *	directory, DB_RDONLY, and flock(LOCK_SH) on the database file for
 *	the whole read, taken on a descriptor opened before libdb opens the
 *	file so a postmap rewriting it in place (holding LOCK_EX) is waited
 *	for. If the file was renamed over in between, we retry on the new
 *	one.
 * DIAGNOSTICS
 *	TP_EDB with libdb's message, e.g. "open database /x/t.db: Invalid
 *	argument"; TP_EIO for system calls; TP_ELIMIT for a record larger
 *	than libdb can store (4 GB).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <db.h>

#include "buf.h"
#include "diag.h"
#include "map_backend.h"
#include "safewrite.h"

#if DB_VERSION_MAJOR != 5 || DB_VERSION_MINOR != 3
#error "Postfix refuses a libdb whose major.minor differs from its own: build with 5.3"
#endif

/*
 * The largest pool we ask for: hash records arrive in bucket order and
 * btree records in key order, so pages fill front to back and a page
 * once left is not needed again; the pool only has to hold the few in
 * use.
 */
#define DB_POOL_MAX	(TP_DB_POOL_MB << 20)
#define DB_POOL_MIN	(1u << 20)
#ifndef TP_DB_POOL_MB
#define TP_DB_POOL_MB	4u
#endif
/* Hash sizing: libdb's page header, and per key/value pair two index
 * entries and two item type bytes. */
#define HASH_PAGE_HDR	26u
#define HASH_PAIR_EXTRA	6u
#ifndef TP_HASH_PGSIZE
#define TP_HASH_PGSIZE	65536u
#endif
/*
 * btree pages for a table of HASH_SMALL or more: half the pages of
 * libdb's default 4 KB, so half the page splits and page writes (a
 * rebuild of a 300k-entry table took a sixth less time). Postfix reads
 * a btree through a 128 KB cache (berkeley_db_read_buffer_size), which
 * still holds a lookup's whole path from the root many times over.
 */
#define BTREE_PGSIZE	8192u
/* Tables smaller than this keep libdb's default page size. */
#define HASH_SMALL	(1u << 20)
/* Fill the bucket pages to at most this many percent, on average. */
#define HASH_FILL_PCT	85u
/* A reader only touches a few pages. */
#define DB_POOL_READ	(256u << 10)

struct db_handle {
	DB_ENV *env;
	DB *db;
	DBC *cursor;
	int lock_fd;		/* reader: holds LOCK_SH */
	uint32_t nbuckets;	/* hash writer: buckets made up front */
	uint32_t put_flags;	/* writer: DB_NOOVERWRITE, 0 when keys are unique */
	char path[4096];
	char errmsg[512];	/* libdb's last message, for our diagnostics */
};

static void
db_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
	struct db_handle *h = env->app_private;

	(void)prefix;
	if (h != NULL)
		snprintf(h->errmsg, sizeof(h->errmsg), "%s", msg);
}

/* The library never prints: libdb's own messages land in h->errmsg. */
static int
db_fail(struct db_handle *h, tp_diag *diag, int err, const char *what)
{
	int rc;

	if (err > 0)
		rc = tp__diag_errno(diag, TP_EIO, err, "%s %s", what, h->path);
	else
		rc = tp__diag_set(diag, TP_EDB, NULL, 0, "%s %s: %s", what, h->path,
				  h->errmsg[0] ? h->errmsg : db_strerror(err));
	/* A message libdb gave belongs to this failure, not to the next one. */
	h->errmsg[0] = '\0';
	return rc;
}

static void
handle_close(struct db_handle *h)
{
	if (h == NULL)
		return;
	if (h->cursor)
		h->cursor->close(h->cursor);
	if (h->db)
		h->db->close(h->db, DB_NOSYNC);
	if (h->env)
		h->env->close(h->env, 0);
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	free(h);
}

static int
env_open(struct db_handle *h, const char *home, uint32_t pool,
	 tp_diag *diag)
{
	int err;

	if ((err = db_env_create(&h->env, 0)) != 0)
		return db_fail(h, diag, err, "create DB environment for");
	h->env->app_private = h;
	h->env->set_errcall(h->env, db_errcall);
	if ((err = h->env->set_cachesize(h->env, 0, pool, 1)) != 0)
		return db_fail(h, diag, err, "set DB cache size for");
	err = h->env->open(h->env, home, DB_CREATE | DB_INIT_MPOOL | DB_PRIVATE, 0);
	if (err != 0)
		return db_fail(h, diag, err, "open DB environment for");
	if ((err = db_create(&h->db, h->env, 0)) != 0)
		return db_fail(h, diag, err, "create DB handle for");
	return TP_OK;
}

/* path: the file named in messages (the database, not our temp file). */
static struct db_handle *
handle_new(const char *path)
{
	struct db_handle *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->lock_fd = -1;
	h->put_flags = DB_NOOVERWRITE;
	snprintf(h->path, sizeof(h->path), "%s", path);
	return h;
}

/*
 * libdb resolves a relative file name against the environment's home,
 * so it gets the base name and the home is the file's directory (as
 * dict_db.c does).
 */
static const char *
base_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int
home_of(tp_buf *home, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return tp__buf_puts(home, ".");
	if (slash == path)
		return tp__buf_puts(home, "/");
	return tp__buf_put(home, path, (size_t)(slash - path));
}

/*
 * hash_size - make every bucket up front, so the table does not split
 * while it is loaded: 2^k buckets (libdb makes a power of two) that
 * hold the records with pages HASH_FILL_PCT full at most. libdb splits
 * a bucket when one of its pages has more than h_ffactor pairs, or when
 * it needs an overflow page; h_ffactor is set above what a page can
 * hold, and h_nelem / h_ffactor is the bucket count (libdb ignores
 * h_nelem without h_ffactor, which is why postmap's 4096 does nothing).
 * A bucket that still overflows splits one bucket: a cost, no error.
 */
static int
hash_size(struct db_handle *h, size_t nrecords, size_t nbytes,
	  tp_diag *diag)
{
	uint64_t need = (uint64_t)nbytes + (uint64_t)nrecords * HASH_PAIR_EXTRA;
	uint32_t pgsize = need < HASH_SMALL ? 4096 : TP_HASH_PGSIZE;
	uint32_t ffactor = pgsize / 4, nbuckets = 2;
	uint64_t per_page = (uint64_t)(pgsize - HASH_PAGE_HDR) * HASH_FILL_PCT / 100;
	int err;

	while ((uint64_t)nbuckets * per_page < need &&
	       (uint64_t)nbuckets * 2 * ffactor <= UINT32_MAX)
		nbuckets *= 2;
	if ((err = h->db->set_pagesize(h->db, pgsize)) != 0 ||
	    (err = h->db->set_h_ffactor(h->db, ffactor)) != 0 ||
	    (err = h->db->set_h_nelem(h->db, nbuckets * ffactor)) != 0)
		return db_fail(h, diag, err, "set hash size for");
	h->nbuckets = nbuckets;
	return TP_OK;
}

/* The bucket of a key: libdb's default hash (__ham_func5, FNV-1 from 0). */
static uint32_t
hash_bucket(void *w, const void *key, size_t klen)
{
	const struct db_handle *h = w;
	const unsigned char *k = key, *e = k + klen;
	uint32_t v = 0;

	for (; k < e; k++) {
		v *= 16777619u;
		v ^= *k;
	}
	return h->nbuckets ? v & (h->nbuckets - 1) : 0;
}

/*
 * A btree being written compares keys with memcmp(), in the same order
 * as libdb's byte-at-a-time __bam_defcmp() (unsigned bytes, a prefix
 * first): the compares of a large table's inserts were a tenth of its
 * rebuild. The order is not stored in the file, so Postfix reads it with
 * the default. libdb drops prefix compression when the compare function
 * is the application's, so bt_prefix is set too, to what
 * __bam_defpfx() returns: the internal pages stay as they were.
 */
static int
bt_compare(DB *db, const DBT *a, const DBT *b)
{
	size_t n = a->size < b->size ? a->size : b->size;
	int c = n ? memcmp(a->data, b->data, n) : 0;

	(void)db;
	if (c != 0)
		return c;
	return a->size == b->size ? 0 : a->size < b->size ? -1 : 1;
}

/* bt_prefix - the bytes of b that tell it from a, sorted before it */

static size_t
bt_prefix(DB *db, const DBT *a, const DBT *b)
{
	const unsigned char *p = a->data, *q = b->data;
	size_t n = a->size < b->size ? a->size : b->size, i;

	(void)db;
	for (i = 0; i < n; i++)
		if (p[i] != q[i])
			return i + 1;
	if (a->size != b->size)
		return n + 1;
	return b->size;
}

static int
db_create_any(void **out, DBTYPE type, const char *path, const char *name,
	      size_t nrecords, size_t nbytes, tp_diag *diag)
{
	struct db_handle *h;
	tp_buf home = TP_BUF_INIT;
	uint64_t pool;
	int err, rc;

	*out = NULL;
	if ((h = handle_new(name)) == NULL || home_of(&home, path) < 0) {
		free(h);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}

	/*
	 * A small table fits the pool whole; a large one is written in
	 * storage order (see DB_POOL_MAX), so the pool stays small.
	 */
	pool = (uint64_t)nbytes * 2 + (uint64_t)nrecords * 48 + DB_POOL_MIN;
	if (pool > DB_POOL_MAX)
		pool = DB_POOL_MAX;
	rc = env_open(h, home.ptr, (uint32_t)pool, diag);
	tp_buf_dispose(&home);
	if (rc < 0)
		goto fail;
	if (type == DB_HASH && (rc = hash_size(h, nrecords, nbytes, diag)) < 0)
		goto fail;
	if (type == DB_BTREE &&
	    ((nbytes >= HASH_SMALL && (err = h->db->set_pagesize(h->db, BTREE_PGSIZE)) != 0) ||
	     (err = h->db->set_bt_compare(h->db, bt_compare)) != 0 ||
	     (err = h->db->set_bt_prefix(h->db, bt_prefix)) != 0)) {
		rc = db_fail(h, diag, err, "set key order for");
		goto fail;
	}
	err = h->db->open(h->db, NULL, base_of(path), NULL, type,
			  DB_CREATE | DB_EXCL, 0600);
	if (err != 0) {
		rc = db_fail(h, diag, err, "error writing");
		goto fail;
	}
	*out = h;
	return TP_OK;
fail:
	handle_close(h);
	return rc;
}

static int
hash_create(void **out, const char *path, const char *name, size_t nrecords,
	  size_t nbytes, tp_diag *diag)
{
	return db_create_any(out, DB_HASH, path, name, nrecords, nbytes, diag);
}

static int
btree_create(void **out, const char *path, const char *name, size_t nrecords,
	   size_t nbytes, tp_diag *diag)
{
	return db_create_any(out, DB_BTREE, path, name, nrecords, nbytes, diag);
}

static int
set_dbt(DBT *dbt, const void *data, size_t len)
{
	memset(dbt, 0, sizeof(*dbt));
	if (len > UINT32_MAX)
		return -1;
	dbt->data = (void *)(uintptr_t)data;
	dbt->size = (uint32_t)len;
	return 0;
}

static int
db_put(void *w, const void *key, size_t klen, const void *value, size_t vlen,
       tp_diag *diag)
{
	struct db_handle *h = w;
	DBT k, v;
	int err;

	if (set_dbt(&k, key, klen) < 0 || set_dbt(&v, value, vlen) < 0)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "record too large for %s", h->path);
	err = h->db->put(h->db, NULL, &k, &v, h->put_flags);
	if (err == DB_KEYEXIST)
		return 1;
	if (err != 0)
		return db_fail(h, diag, err, "error writing");
	return 0;
}

static void
db_assume_unique(void *w)
{
	((struct db_handle *)w)->put_flags = 0;
}

static int
db_finish(void *w, mode_t mode, int do_chown, uid_t uid, gid_t gid,
	  tp_diag *diag)
{
	struct db_handle *h = w;
	int err, fd, rc = TP_OK;

	if ((err = h->db->sync(h->db, 0)) != 0) {
		rc = db_fail(h, diag, err, "error writing");
		goto out;
	}
	if ((err = h->db->fd(h->db, &fd)) != 0) {
		rc = db_fail(h, diag, err, "get file descriptor of");
		goto out;
	}
	if ((rc = tp__finish_fd(fd, h->path, mode, do_chown, uid, gid, diag)) < 0)
		goto out;
	/* Everything is on disk; the close can only lose what was synced. */
	err = h->db->close(h->db, 0);
	h->db = NULL;
	if (err != 0)
		rc = db_fail(h, diag, err, "close database");
out:
	handle_close(h);
	return rc;
}

/*
 * db_open_update - open an existing database (a private copy, path) to
 * change some of its records; TP_EDB when it is not a database of this
 * type. The pool holds the few pages the changes touch.
 */
static int
db_open_update(void **out, DBTYPE type, const char *path, const char *name,
	       tp_diag *diag)
{
	struct db_handle *h;
	tp_buf home = TP_BUF_INIT;
	int err, rc;

	*out = NULL;
	if ((h = handle_new(name)) == NULL || home_of(&home, path) < 0) {
		free(h);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	rc = env_open(h, home.ptr, DB_POOL_MAX, diag);
	tp_buf_dispose(&home);
	if (rc < 0)
		goto fail;
	err = h->db->open(h->db, NULL, base_of(path), NULL, type, 0, 0);
	if (err != 0) {
		rc = db_fail(h, diag, err, "open database");
		goto fail;
	}
	*out = h;
	return TP_OK;
fail:
	handle_close(h);
	return rc;
}

static int
hash_open_update(void **out, const char *path, const char *name,
		 tp_diag *diag)
{
	return db_open_update(out, DB_HASH, path, name, diag);
}

static int
btree_open_update(void **out, const char *path, const char *name,
		  tp_diag *diag)
{
	return db_open_update(out, DB_BTREE, path, name, diag);
}

static int
db_replace(void *w, const void *key, size_t klen, const void *value,
	   size_t vlen, tp_diag *diag)
{
	struct db_handle *h = w;
	DBT k, v;
	int err;

	if (set_dbt(&k, key, klen) < 0 || set_dbt(&v, value, vlen) < 0)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "record too large for %s", h->path);
	if ((err = h->db->put(h->db, NULL, &k, &v, 0)) != 0)
		return db_fail(h, diag, err, "error writing");
	return TP_OK;
}

static int
db_del(void *w, const void *key, size_t klen, tp_diag *diag)
{
	struct db_handle *h = w;
	DBT k;
	int err;

	if (set_dbt(&k, key, klen) < 0)
		return TP_ENOTFOUND;
	err = h->db->del(h->db, NULL, &k, 0);
	if (err == DB_NOTFOUND || err == DB_KEYEMPTY)
		return TP_ENOTFOUND;
	if (err != 0)
		return db_fail(h, diag, err, "error writing");
	return TP_OK;
}

static void
db_abort(void *w)
{
	handle_close(w);
}

static int
db_open_read(void **out, DBTYPE type, const char *path, double lock_timeout,
	     tp_diag *diag)
{
	tp_buf home = TP_BUF_INIT;
	struct db_handle *h = NULL;
	int rc = TP_OK;

	*out = NULL;
	if (strlen(path) >= sizeof(((struct db_handle *)0)->path))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "path too long: %s", path);
	if (home_of(&home, path) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	/* A few tries: a writer may rename a new file in between. */
	for (int attempt = 0; attempt < 5; attempt++) {
		struct stat lock_st, db_st;
		int err, fd;

		if ((h = handle_new(path)) == NULL) {
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			break;
		}
		h->lock_fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (h->lock_fd < 0) {
			rc = errno == ENOENT
				? tp__diag_errno(diag, TP_ENOTFOUND, errno,
						 "open database %s", path)
				: tp__diag_errno(diag, TP_EIO, errno,
						 "open database %s", path);
			break;
		}
		if ((rc = tp__flock_wait(h->lock_fd, LOCK_SH, lock_timeout, path,
					 diag)) < 0)
			break;
		if ((rc = env_open(h, home.ptr, DB_POOL_READ, diag)) < 0)
			break;
		err = h->db->open(h->db, NULL, base_of(path), NULL, type, DB_RDONLY, 0);
		if (err != 0) {
			rc = db_fail(h, diag, err, "open database");
			break;
		}
		if ((err = h->db->fd(h->db, &fd)) != 0) {
			rc = db_fail(h, diag, err, "get file descriptor of");
			break;
		}
		if (fstat(h->lock_fd, &lock_st) < 0 || fstat(fd, &db_st) < 0) {
			rc = tp__diag_errno(diag, TP_EIO, errno, "stat %s", path);
			break;
		}
		if (lock_st.st_ino == db_st.st_ino && lock_st.st_dev == db_st.st_dev) {
			*out = h;
			tp_buf_dispose(&home);
			return TP_OK;
		}
		handle_close(h);
		h = NULL;
		rc = tp__diag_set(diag, TP_EIO, NULL, 0,
				  "database %s keeps changing while we open it", path);
	}
	handle_close(h);
	tp_buf_dispose(&home);
	return rc;
}

static int
hash_open_read(void **out, const char *path, double lock_timeout, tp_diag *diag)
{
	return db_open_read(out, DB_HASH, path, lock_timeout, diag);
}

static int
btree_open_read(void **out, const char *path, double lock_timeout, tp_diag *diag)
{
	return db_open_read(out, DB_BTREE, path, lock_timeout, diag);
}

static int
db_get(void *r, const void *key, size_t klen, tp_buf *value, tp_diag *diag)
{
	struct db_handle *h = r;
	DBT k, v;
	int err;

	if (set_dbt(&k, key, klen) < 0)
		return TP_ENOTFOUND;
	memset(&v, 0, sizeof(v));
	err = h->db->get(h->db, NULL, &k, &v, 0);
	if (err == DB_NOTFOUND || err == DB_KEYEMPTY)
		return TP_ENOTFOUND;
	if (err != 0)
		return db_fail(h, diag, err, "error reading");
	tp__buf_truncate(value, 0);
	if (tp__buf_put(value, v.data, v.size) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return TP_OK;
}

static int
db_next(void *r, tp_record *rec, tp_diag *diag)
{
	struct db_handle *h = r;
	DBT k, v;
	int err;

	if (h->cursor == NULL && (err = h->db->cursor(h->db, NULL, &h->cursor, 0)) != 0)
		return db_fail(h, diag, err, "error reading");
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	err = h->cursor->get(h->cursor, &k, &v, DB_NEXT);
	if (err == DB_NOTFOUND)
		return TP_ENOTFOUND;
	if (err != 0)
		return db_fail(h, diag, err, "error reading");
	rec->key = k.data;
	rec->key_len = k.size;
	rec->value = v.data;
	rec->value_len = v.size;
	return TP_OK;
}

static void
db_close_read(void *r)
{
	handle_close(r);
}

static int
db_reader_fd(void *r)
{
	return ((struct db_handle *)r)->lock_fd;
}

const tp__map_backend tp__map_backend_hash = {
	"hash", ".db", 1, 0,
	hash_create, db_put, db_finish, db_abort,
	hash_open_read, db_get, db_next, db_close_read, hash_bucket,
	db_reader_fd, 0, TP__LOCK_FLOCK, 0,
	hash_open_update, db_replace, db_del, db_assume_unique,
};

const tp__map_backend tp__map_backend_btree = {
	"btree", ".db", 1, 1,
	btree_create, db_put, db_finish, db_abort,
	btree_open_read, db_get, db_next, db_close_read, NULL,
	db_reader_fd, 0, TP__LOCK_FLOCK, 0,
	btree_open_update, db_replace, db_del, db_assume_unique,
};
