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
 *	Writing: the file tinycdb's cdb_make_add() and cdb_make_finish()
 *	write, byte for byte, into the file map.c opened in its private temp
 *	directory, in larger pieces (see the writer below); the records are
 *	made unique by map.c (first wins). 8 bytes per record stay in memory
 *	until the hash tables are written. Reading is tinycdb's.
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

/*
 * The writer lays the file out as tinycdb's cdb_make_*() do, byte for
 * byte (records from offset 2048 in put order, then the 256 hash tables,
 * each of twice its bucket's records, slots placed in put order by
 * (hash >> 8) % size with linear probing, then the header), but writes it
 * in 1 MB pieces: tinycdb writes 4 KB at a time, and on a 32 MB table
 * those 8000 writes and the fsync of the pages they leave cost more than
 * everything else in the write (docs/performance.md).
 */
#define CDB_HEADER	2048
#define CDB_OUT_BUF	(1u << 20)

struct cdb_slot {
	uint32_t hval;
	uint32_t rpos;
};
_Static_assert(sizeof(struct cdb_slot) == 8, "a cdb hash table slot is 8 bytes");

struct cdb_out {
	unsigned char *buf;	/* CDB_OUT_BUF bytes; used of them filled */
	size_t used;
	uint32_t pos;		/* file offset of the next byte put */
	struct cdb_slot *recs;	/* every record, in put order */
	size_t nrecs;
	size_t cap;
	uint32_t count[256];	/* records per bucket (hash & 255) */
};

struct cdb_handle {
	struct cdb_out out;
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
	free(h->out.buf);
	free(h->out.recs);
	free(h);
}

static void
put_u32le(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static int
out_flush(struct cdb_handle *h, tp_diag *diag)
{
	if (tp__write_all(h->fd, h->out.buf, h->out.used) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "error writing %s", h->path);
	h->out.used = 0;
	return TP_OK;
}

/* Appends len bytes at the file's end; the caller checked that pos + len
 * stays below 4 GB. */
static int
out_put(struct cdb_handle *h, const void *data, size_t len, tp_diag *diag)
{
	const unsigned char *p = data;

	h->out.pos += (uint32_t)len;
	while (len > 0) {
		size_t n = CDB_OUT_BUF - h->out.used;

		if (n > len)
			n = len;
		memcpy(h->out.buf + h->out.used, p, n);
		h->out.used += n;
		p += n;
		len -= n;
		if (h->out.used == CDB_OUT_BUF && out_flush(h, diag) != TP_OK)
			return TP_EIO;
	}
	return TP_OK;
}

static int
tcdb_create(void **out, const char *path, const char *name, size_t nrecords,
	   size_t nbytes, tp_diag *diag)
{
	struct cdb_handle *h;
	int rc;

	*out = NULL;
	/* cdb offsets are 32 bits: a table past 4 GB cannot be written. */
	if ((uint64_t)nbytes + (uint64_t)nrecords * 24 + CDB_HEADER > UINT32_MAX)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "error writing %s: a cdb file cannot hold 4 GB", name);
	if ((h = handle_new(name)) == NULL
	    || (h->out.buf = calloc(1, CDB_OUT_BUF)) == NULL
	    || (h->out.recs = malloc((nrecords ? nrecords : 1) * sizeof(*h->out.recs))) == NULL) {
		handle_close(h);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	h->out.cap = nrecords ? nrecords : 1;
	/* The header's place, written last. */
	h->out.used = CDB_HEADER;
	h->out.pos = CDB_HEADER;
	h->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (h->fd < 0) {
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
	unsigned char lens[8];
	uint32_t hval;

	if (klen > UINT32_MAX - 8 || vlen > UINT32_MAX - 8 - klen
	    || UINT32_MAX - h->out.pos < 8 + klen + vlen)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "error writing %s: a cdb file cannot hold 4 GB", h->path);
	if (h->out.nrecs == h->out.cap) {
		size_t cap = h->out.cap * 2;
		struct cdb_slot *r = cap > SIZE_MAX / sizeof(*r) ? NULL
			: realloc(h->out.recs, cap * sizeof(*r));

		if (r == NULL)
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		h->out.recs = r;
		h->out.cap = cap;
	}
	hval = cdb_hash(key, (unsigned)klen);
	h->out.recs[h->out.nrecs++] = (struct cdb_slot){hval, h->out.pos};
	h->out.count[hval & 255]++;
	put_u32le(lens, (uint32_t)klen);
	put_u32le(lens + 4, (uint32_t)vlen);
	if (out_put(h, lens, sizeof(lens), diag) != TP_OK
	    || out_put(h, key, klen, diag) != TP_OK
	    || out_put(h, value, vlen, diag) != TP_OK)
		return TP_EIO;
	return 0;
}

/* The 256 hash tables after the records, then the header at offset 0. */
static int
write_tables(struct cdb_handle *h, tp_diag *diag)
{
	struct cdb_out *o = &h->out;
	unsigned char header[CDB_HEADER];
	size_t start[256], max = 0, at = 0;
	struct cdb_slot *byb = NULL, *table = NULL;
	ssize_t n;
	int rc = TP_ENOMEM;

	/* The tables (two 8-byte slots a record) must end below 4 GB too. */
	if ((UINT32_MAX - o->pos) / 16 < o->nrecs)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0,
				    "error writing %s: a cdb file cannot hold 4 GB", h->path);
	for (int t = 0; t < 256; t++) {
		start[t] = at;
		at += o->count[t];
		if (max < o->count[t])
			max = o->count[t];
	}
	/* Records grouped by bucket, each bucket in put order. */
	if ((byb = malloc((o->nrecs ? o->nrecs : 1) * sizeof(*byb))) == NULL
	    || (table = malloc((2 * max + 1) * sizeof(*table))) == NULL)
		goto out;
	for (size_t i = 0; i < o->nrecs; i++)
		byb[start[o->recs[i].hval & 255]++] = o->recs[i];
	free(o->recs);
	o->recs = NULL;
	rc = TP_EIO;
	at = 0;
	for (int t = 0; t < 256; t++) {
		uint32_t len = 2 * o->count[t];

		put_u32le(header + 8 * t, o->pos);
		put_u32le(header + 8 * t + 4, len);
		if (len == 0)
			continue;
		memset(table, 0, len * sizeof(*table));
		for (uint32_t i = 0; i < o->count[t]; i++, at++) {
			uint32_t hi = (byb[at].hval >> 8) % len;

			while (table[hi].rpos != 0)
				if (++hi == len)
					hi = 0;
			table[hi] = byb[at];
		}
		/* In place: a slot is the file's 8 bytes once packed. */
		for (uint32_t i = 0; i < len; i++) {
			struct cdb_slot v = table[i];
			unsigned char *p = (unsigned char *)&table[i];

			put_u32le(p, v.hval);
			put_u32le(p + 4, v.rpos);
		}
		if (out_put(h, table, (size_t)len * 8, diag) != TP_OK)
			goto out;
	}
	if (out_flush(h, diag) != TP_OK)
		goto out;
	if ((n = pwrite(h->fd, header, sizeof(header), 0)) != (ssize_t)sizeof(header)) {
		rc = tp__diag_errno(diag, TP_EIO, n < 0 ? errno : ENOSPC, "error writing %s", h->path);
		goto out;
	}
	rc = TP_OK;
out:
	if (rc == TP_ENOMEM)
		tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	free(byb);
	free(table);
	return rc;
}

static int
tcdb_finish(void *w, mode_t mode, int do_chown, uid_t uid, gid_t gid,
	   tp_diag *diag)
{
	struct cdb_handle *h = w;
	int rc = write_tables(h, diag);

	if (rc == TP_OK)
		rc = tp__finish_fd(h->fd, h->path, mode, do_chown, uid, gid, diag);
	handle_close(h);
	return rc;
}

static void
tcdb_abort(void *w)
{
	/* The file is a temp file map.c removes. */
	handle_close(w);
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
