/*
 * NAME
 *	map_lmdb - lmdb: maps (liblmdb)
 * SUMMARY
 *	The tp__map_backend for Postfix's lmdb: tables: the file PATH.lmdb
 *	postmap(1) writes, readable by Postfix's dict_lmdb.c.
 * DESCRIPTION
 *	File conventions as dict_lmdb.c and slmdb.c have them: one file
 *	(MDB_NOSUBDIR), no LMDB lock file (MDB_NOLOCK: Postfix locks the
 *	database file itself with fcntl(), shared around each lookup),
 *	the unnamed database, keys and values stored with a trailing NUL.
 *
 *	Writing: map.c makes a private temp directory and hands us a path in
 *	it; the records arrive in key order (sorted_input), so each is put
 *	with MDB_APPEND, which fills pages front to back. A write
 *	transaction keeps its dirty pages in memory until it commits, so we
 *	commit every LMDB_TXN_RECORDS records: the file is private until
 *	map.c renames it, so transactions in between cost no safety, and
 *	memory stays bounded whatever the table's size. The transactions run
 *	with MDB_NOSYNC; finish() syncs once (mdb_env_sync) and fsyncs.
 *	The map size (LMDB's address-space reservation, not the file size)
 *	is sized from the records, with room to spare; Postfix readers adopt
 *	the size recorded in the file when it is larger than their own.
 *
 *	Reading: MDB_RDONLY, a read transaction per lookup, and a shared
 *	fcntl() lock on the file while open_read()'s caller holds it, as
 *	Postfix's readers take it, so a postmap(1) rewriting the file in
 *	place (exclusive fcntl lock) is waited for.
 * DIAGNOSTICS
 *	TP_EDB with LMDB's message, e.g. "open database /x/t.lmdb:
 *	MDB_INVALID: File is not an LMDB file"; TP_EIO for system calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "buf.h"
#include "diag.h"
#include "map_backend.h"
#include "safewrite.h"

/* Records per write transaction: a few MB of dirty pages at most. */
#ifndef LMDB_TXN_RECORDS
#define LMDB_TXN_RECORDS 20000u
#endif
/* LMDB's page overhead per record, and the slack on the map size. */
#define LMDB_RECORD_EXTRA 64u
#define LMDB_MAP_MIN (16u << 20)	/* Postfix's lmdb_map_size default */
/* Free space below which a failed LMDB write means a full disk. */
#define LMDB_FULL_BYTES (1u << 20)

struct lmdb_handle {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cursor;
	size_t in_txn;
	int fd;			/* reader: the file, for fcntl() locks */
	char path[4096];	/* the file messages name */
	char dir[4096];		/* writer: where the file is built */
};

static int
lmdb_fail(struct lmdb_handle *h, tp_diag *diag, int err, const char *what)
{
	/*
	 * LMDB turns a short write into EIO; on a full file system that is
	 * ENOSPC, and the admin should read so (postmap reports ENOSPC too).
	 */
	if (err == EIO && h->dir[0]) {
		struct statvfs vfs;

		if (statvfs(h->dir, &vfs) == 0
		    && (uint64_t)vfs.f_bavail * vfs.f_frsize < LMDB_FULL_BYTES)
			err = ENOSPC;
	}
	if (err > 0 && err < MDB_KEYEXIST)	/* errno values */
		return tp__diag_errno(diag, TP_EIO, err, "%s %s", what, h->path);
	return tp__diag_set(diag, TP_EDB, NULL, 0, "%s %s: %s", what, h->path,
			    mdb_strerror(err));
}

static void
handle_close(struct lmdb_handle *h)
{
	if (h == NULL)
		return;
	if (h->cursor)
		mdb_cursor_close(h->cursor);
	if (h->txn)
		mdb_txn_abort(h->txn);
	if (h->env)
		mdb_env_close(h->env);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

static struct lmdb_handle *
handle_new(const char *name)
{
	struct lmdb_handle *h = calloc(1, sizeof(*h));

	if (h != NULL) {
		h->fd = -1;
		snprintf(h->path, sizeof(h->path), "%s", name);
	}
	return h;
}

static int
lmdb_create(void **out, const char *path, const char *name, size_t nrecords,
	    size_t nbytes, tp_diag *diag)
{
	struct lmdb_handle *h;
	uint64_t mapsize;
	int err;

	*out = NULL;
	if ((h = handle_new(name)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	snprintf(h->dir, sizeof(h->dir), "%s", path);
	if (strrchr(h->dir, '/') != NULL)
		*strrchr(h->dir, '/') = 0;
	/* Twice what the records need: B-tree pages are not packed full. */
	mapsize = ((uint64_t)nbytes + (uint64_t)nrecords * LMDB_RECORD_EXTRA) * 2
		  + LMDB_MAP_MIN;
	if (mapsize > SIZE_MAX)
		mapsize = SIZE_MAX;
	if ((err = mdb_env_create(&h->env)) != 0
	    || (err = mdb_env_set_mapsize(h->env, (size_t)mapsize)) != 0
	    || (err = mdb_env_open(h->env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC,
				   0600)) != 0
	    || (err = mdb_txn_begin(h->env, NULL, 0, &h->txn)) != 0
	    || (err = mdb_dbi_open(h->txn, NULL, 0, &h->dbi)) != 0) {
		int rc = lmdb_fail(h, diag, err, "error writing");

		handle_close(h);
		return rc;
	}
	*out = h;
	return TP_OK;
}

static int
lmdb_put(void *w, const void *key, size_t klen, const void *value,
	 size_t vlen, tp_diag *diag)
{
	struct lmdb_handle *h = w;
	MDB_val k = { klen, (void *)(uintptr_t)key };
	MDB_val v = { vlen, (void *)(uintptr_t)value };
	int err;

	if (klen > (size_t)mdb_env_get_maxkeysize(h->env))
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "error writing %s: key of %zu bytes is longer than LMDB allows (%d)",
				    h->path, klen, mdb_env_get_maxkeysize(h->env));
	err = mdb_put(h->txn, h->dbi, &k, &v, MDB_APPEND | MDB_NOOVERWRITE);
	if (err == MDB_KEYEXIST)
		return 1;
	if (err != 0)
		return lmdb_fail(h, diag, err, "error writing");
	if (++h->in_txn >= LMDB_TXN_RECORDS) {
		/* Commit the pages so far; the next transaction goes on. */
		err = mdb_txn_commit(h->txn);
		h->txn = NULL;
		h->in_txn = 0;
		if (err == 0)
			err = mdb_txn_begin(h->env, NULL, 0, &h->txn);
		if (err != 0)
			return lmdb_fail(h, diag, err, "error writing");
	}
	return 0;
}

static int
lmdb_finish(void *w, mode_t mode, int do_chown, uid_t uid, gid_t gid,
	    tp_diag *diag)
{
	struct lmdb_handle *h = w;
	int err, fd, rc = TP_OK;

	err = mdb_txn_commit(h->txn);
	h->txn = NULL;
	if (err == 0)
		err = mdb_env_sync(h->env, 1);
	if (err == 0)
		err = mdb_env_get_fd(h->env, &fd);
	if (err != 0) {
		rc = lmdb_fail(h, diag, err, "error writing");
		goto out;
	}
	if ((rc = tp__finish_fd(fd, h->path, mode, do_chown, uid, gid, diag)) < 0)
		goto out;
out:
	handle_close(h);
	return rc;
}

static void
lmdb_abort(void *w)
{
	handle_close(w);
}

static int
lmdb_open_read(void **out, const char *path, double lock_timeout, tp_diag *diag)
{
	struct lmdb_handle *h;
	struct stat st;
	int err, rc;

	*out = NULL;
	if ((h = handle_new(path)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if ((h->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = tp__diag_errno(diag, errno == ENOENT ? TP_ENOTFOUND : TP_EIO, errno,
				    "open database %s", path);
		handle_close(h);
		return rc;
	}
	if ((rc = tp__lock_wait(h->fd, TP__LOCK_FCNTL, TP__LOCK_SHARED, lock_timeout,
				path, diag)) < 0) {
		handle_close(h);
		return rc;
	}
	/* A map size below the file's is raised to it by LMDB. */
	if (fstat(h->fd, &st) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "stat %s", path);
		handle_close(h);
		return rc;
	}
	if ((err = mdb_env_create(&h->env)) != 0
	    || (err = mdb_env_set_mapsize(h->env, (size_t)st.st_size + LMDB_MAP_MIN)) != 0
	    || (err = mdb_env_open(h->env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY, 0)) != 0
	    || (err = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &h->txn)) != 0
	    || (err = mdb_dbi_open(h->txn, NULL, 0, &h->dbi)) != 0) {
		rc = lmdb_fail(h, diag, err, "open database");
		handle_close(h);
		return rc;
	}
	/* A lookup runs in its own transaction (see lmdb_get). */
	mdb_txn_reset(h->txn);
	*out = h;
	return TP_OK;
}

static int
lmdb_get(void *r, const void *key, size_t klen, tp_buf *value, tp_diag *diag)
{
	struct lmdb_handle *h = r;
	MDB_val k = { klen, (void *)(uintptr_t)key }, v;
	int err;

	/* A fresh snapshot: the file may have been rewritten in place. */
	if ((err = mdb_txn_renew(h->txn)) != 0)
		return lmdb_fail(h, diag, err, "error reading");
	err = klen == 0 ? MDB_NOTFOUND : mdb_get(h->txn, h->dbi, &k, &v);
	if (err == 0) {
		tp__buf_truncate(value, 0);
		if (tp__buf_put(value, v.mv_data, v.mv_size) < 0)
			err = ENOMEM;
	}
	mdb_txn_reset(h->txn);
	if (err == MDB_NOTFOUND)
		return TP_ENOTFOUND;
	if (err == ENOMEM)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return err ? lmdb_fail(h, diag, err, "error reading") : TP_OK;
}

static int
lmdb_next(void *r, tp_record *rec, tp_diag *diag)
{
	struct lmdb_handle *h = r;
	MDB_val k, v;
	int err;

	if (h->cursor == NULL) {
		if ((err = mdb_txn_renew(h->txn)) != 0
		    || (err = mdb_cursor_open(h->txn, h->dbi, &h->cursor)) != 0)
			return lmdb_fail(h, diag, err, "error reading");
	}
	err = mdb_cursor_get(h->cursor, &k, &v, MDB_NEXT);
	if (err == MDB_NOTFOUND)
		return TP_ENOTFOUND;
	if (err != 0)
		return lmdb_fail(h, diag, err, "error reading");
	rec->key = k.mv_data;
	rec->key_len = k.mv_size;
	rec->value = v.mv_data;
	rec->value_len = v.mv_size;
	return TP_OK;
}

static void
lmdb_close_read(void *r)
{
	handle_close(r);
}

static int
lmdb_reader_fd(void *r)
{
	return ((struct lmdb_handle *)r)->fd;
}

const tp__map_backend tp__map_backend_lmdb = {
	"lmdb", ".lmdb", 1, 1,
	lmdb_create, lmdb_put, lmdb_finish, lmdb_abort,
	lmdb_open_read, lmdb_get, lmdb_next, lmdb_close_read, NULL,
	lmdb_reader_fd, 0, TP__LOCK_FCNTL, 0,
	NULL, NULL, NULL, NULL,
};
