/*
 * NAME
 *	map_cdb - cdb: maps (tinycdb)
 * SUMMARY
 *	The tp__map_backend for Postfix's cdb: tables: the file PATH.cdb
 *	postmap(1) writes, readable by Postfix's dict_cdb.c.
 * DESCRIPTION
 *	File conventions as dict_cdb.c has them: keys and values without a
 *	trailing NUL (postmap's default for a new cdb); readers take no lock
 *	(a cdb file never changes: it is only ever replaced by rename, which
 *	is what map.c does); a reader tries the key with a NUL first, then
 *	without, as Postfix does.
 *
 *	Writing: tinycdb's cdb_make_*() into the file map.c opened in its
 *	private temp directory; the records are made unique by map.c (first
 *	wins), so cdb_make_add() is enough. tinycdb keeps 16 bytes per
 *	record in memory until cdb_make_finish() writes the hash tables.
 * DIAGNOSTICS
 *	TP_EIO with errno text; TP_EDB for a file tinycdb cannot read;
 *	TP_ELIMIT for a table past cdb's 4 GB.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cdb.h>

#include "buf.h"
#include "diag.h"
#include "map_backend.h"
#include "safewrite.h"

struct cdb_handle {
	struct cdb_make make;
	struct cdb cdb;
	int fd;
	int initialised;	/* cdb (reader) set up */
	unsigned cptr;		/* reader: iteration position */
	char path[4096];
};

static struct cdb_handle *
handle_new(const char *name)
{
	struct cdb_handle *h = calloc(1, sizeof(*h));

	if (h != NULL) {
		h->fd = -1;
		snprintf(h->path, sizeof(h->path), "%s", name);
	}
	return h;
}

static void
handle_close(struct cdb_handle *h)
{
	if (h == NULL)
		return;
	if (h->initialised)
		cdb_free(&h->cdb);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

static int
tcdb_create(void **out, const char *path, const char *name, size_t nrecords,
	   size_t nbytes, tp_diag *diag)
{
	struct cdb_handle *h;
	int rc;

	(void)nrecords;
	*out = NULL;
	/* cdb offsets are 32 bits: a table past 4 GB cannot be written. */
	if ((uint64_t)nbytes + (uint64_t)nrecords * 24 + 2048 > UINT32_MAX)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "error writing %s: a cdb file cannot hold 4 GB", name);
	if ((h = handle_new(name)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	h->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (h->fd < 0 || cdb_make_start(&h->make, h->fd) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", name);
		handle_close(h);
		return rc;
	}
	*out = h;
	return TP_OK;
}

static int
tcdb_put(void *w, const void *key, size_t klen, const void *value, size_t vlen,
	tp_diag *diag)
{
	struct cdb_handle *h = w;

	if (klen > UINT32_MAX || vlen > UINT32_MAX)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0, "record too large for %s", h->path);
	if (cdb_make_add(&h->make, key, (unsigned)klen, value, (unsigned)vlen) < 0)
		return tp__diag_errno(diag, errno == ENOMEM ? TP_ENOMEM : TP_EIO, errno,
				      "error writing %s", h->path);
	return 0;
}

static int
tcdb_finish(void *w, mode_t mode, int do_chown, uid_t uid, gid_t gid,
	   tp_diag *diag)
{
	struct cdb_handle *h = w;
	int rc;

	if (cdb_make_finish(&h->make) < 0)
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", h->path);
	else
		rc = tp__finish_fd(h->fd, h->path, mode, do_chown, uid, gid, diag);
	handle_close(h);
	return rc;
}

static void
tcdb_abort(void *w)
{
	struct cdb_handle *h = w;

	/* tinycdb frees its record lists only in cdb_make_finish(); the
	 * file it completes is a temp file map.c removes. */
	if (h != NULL)
		(void)cdb_make_finish(&h->make);
	handle_close(h);
}

static int
tcdb_open_read(void **out, const char *path, double lock_timeout, tp_diag *diag)
{
	struct cdb_handle *h;
	int rc;

	(void)lock_timeout;	/* Postfix's readers of this type take no lock */
	*out = NULL;
	if ((h = handle_new(path)) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if ((h->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = tp__diag_errno(diag, errno == ENOENT ? TP_ENOTFOUND : TP_EIO, errno,
				    "open database %s", path);
		handle_close(h);
		return rc;
	}
	if (cdb_init(&h->cdb, h->fd) != 0) {
		rc = tp__diag_set(diag, TP_EDB, NULL, 0, "open database %s: not a cdb file", path);
		handle_close(h);
		return rc;
	}
	h->initialised = 1;
	cdb_seqinit(&h->cptr, &h->cdb);
	*out = h;
	return TP_OK;
}

static int
tcdb_get(void *r, const void *key, size_t klen, tp_buf *value, tp_diag *diag)
{
	struct cdb_handle *h = r;
	const void *data;
	int found;

	if (klen > UINT32_MAX)
		return TP_ENOTFOUND;
	found = cdb_find(&h->cdb, key, (unsigned)klen);
	if (found < 0)
		return tp__diag_set(diag, TP_EDB, NULL, 0, "error reading %s: corrupt cdb file", h->path);
	if (found == 0)
		return TP_ENOTFOUND;
	if ((data = cdb_getdata(&h->cdb)) == NULL)
		return tp__diag_set(diag, TP_EDB, NULL, 0, "error reading %s: corrupt cdb file", h->path);
	tp__buf_truncate(value, 0);
	if (tp__buf_put(value, data, cdb_datalen(&h->cdb)) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return TP_OK;
}

static int
tcdb_next(void *r, tp_record *rec, tp_diag *diag)
{
	struct cdb_handle *h = r;
	int rc = cdb_seqnext(&h->cptr, &h->cdb);

	if (rc == 0)
		return TP_ENOTFOUND;
	if (rc < 0 || (rec->key = cdb_getkey(&h->cdb)) == NULL
	    || (rec->value = cdb_getdata(&h->cdb)) == NULL)
		return tp__diag_set(diag, TP_EDB, NULL, 0, "error reading %s: corrupt cdb file", h->path);
	rec->key_len = cdb_keylen(&h->cdb);
	rec->value_len = cdb_datalen(&h->cdb);
	return TP_OK;
}

static void
tcdb_close_read(void *r)
{
	handle_close(r);
}

static int
tcdb_reader_fd(void *r)
{
	return ((struct cdb_handle *)r)->fd;
}

const tp__map_backend tp__map_backend_cdb = {
	"cdb", ".cdb", 0, 0,
	tcdb_create, tcdb_put, tcdb_finish, tcdb_abort,
	tcdb_open_read, tcdb_get, tcdb_next, tcdb_close_read, NULL,
	tcdb_reader_fd, 1, TP__LOCK_NONE, 0,
	NULL, NULL, NULL,	/* a constant database: always built whole */
	NULL,
};
