/*
 * NAME
 *	table - a policy source file tied to its database
 * SUMMARY
 *	The tp_table_* functions of tlspolicy/map.h: open (and lock) a
 *	source, hand out its tp_doc, commit edits with the write protocol
 *	of tlspolicy(1) (WRITING THE TABLE), rebuild the database, and tell
 *	whether the database holds what the source says.
 * DESCRIPTION
 *	The lock file "SOURCE.lock" serialises tlspolicy writers: it is
 *	taken before the source is read, so an update never starts from a
 *	version another writer is about to replace. Order of a commit:
 *	source first, database second: Postfix warns "database X.db is
 *	older than source file X" only when the source is newer, and a kill
 *	between the two leaves a database tp_table_db_state() reports
 *	stale, which the next run rebuilds.
 *
 *	Opening for writing also sweeps what a writer killed earlier left
 *	behind (see tp__temp_sweep()): under the lock, no live writer
 *	owns those names.
 *
 *	tp_table_commit() writes the new source and the new database to
 *	temp files (each fsynced) before it renames either, so an error
 *	while writing (a full disk) changes neither file; a kill between
 *	the two renames leaves a stale database the next run rebuilds.
 *
 *	tp_table_commit() compares the serialised document with the file
 *	on disk, not with what was loaded: an edit that restores the
 *	original bytes writes nothing, and neither does a no-op edit.
 *
 *	Lost updates: the lock keeps tlspolicy writers apart, not editors.
 *	The source's identity (device, inode, size, mtime) is recorded when
 *	it is read, and tp_table_commit() and tp_table_rebuild() refuse
 *	(TP_ECHANGED) when it is no longer the file read, checking before
 *	they write and again just before the rename. An edit in place that
 *	keeps the size within one mtime tick would go unseen; editors and
 *	scripts replace the file or change its size.
 * DIAGNOSTICS
 *	As tp_doc_load(), tp_map_write() and the safe-write protocol:
 *	TP_ENOTFOUND, TP_EIO, TP_EDB, TP_ENOMEM; TP_ETIMEOUT for a lock
 *	held too long; TP_ECHANGED for a source edited meanwhile.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "doc_internal.h"
#include "diag.h"
#include "doc_internal.h"
#include "map_backend.h"
#include "safewrite.h"

/* Which file, and which version of it, the document was read from. */
struct file_id {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct tp_table {
	tp_map_type type;
	struct file_id loaded;	/* the source as tp_table_open read it */
	char *source;
	char *db_path;
	int lock_fd;
	double lock_timeout;	/* seconds, for every lock the table takes */
	tp_doc *doc;
	tp_doc_opts doc_opts;
	unsigned int flags;		/* tp_table_open()'s */
	int db_write;			/* how the last commit wrote the db */
	size_t db_changes;
};

/* The identity of path now (a symlink followed); -1 with errno. */
static int
file_id_of(struct file_id *id, const char *path)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	id->exists = 1;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	return 0;
}

static int
file_id_equal(const struct file_id *a, const struct file_id *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino
	    && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec
	    && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * Our lock keeps other tlspolicy runs out, but not an editor: a hand
 * edit between tp_table_open() and the commit would be overwritten
 * without a word. The source must still be the file we read.
 */
static int
check_unchanged(const tp_table *t, tp_diag *diag)
{
	struct file_id now;

	if (file_id_of(&now, t->source) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "stat %s", t->source);
	if (!file_id_equal(&now, &t->loaded))
		return tp__diag_set(diag, TP_ECHANGED, NULL, 0,
				    "%s was %s by someone else since it was read: nothing written, so that change is not lost; try again",
				    t->source, t->loaded.exists ? (now.exists ? "changed" : "removed")
				    : "created");
	return TP_OK;
}

/*
 * Load the source and remember which version that was: its identity
 * before and after the read must agree, or an edit raced the read and
 * we read again.
 */
static int
load_source(tp_table *t, tp_diag *diag)
{
	struct file_id after;
	int rc = TP_OK, writing = (t->flags & TP_TABLE_WRITE) != 0;

	for (int attempt = 0; attempt < 5; attempt++) {
		if (file_id_of(&t->loaded, t->source) < 0)
			return tp__diag_errno(diag, TP_EIO, errno, "stat %s", t->source);
		tp_doc_free(t->doc);
		t->doc = NULL;
		if (t->flags & TP_TABLE_REBUILD)
			rc = tp__doc_scan(&t->doc, t->source, &t->doc_opts, diag);
		else
			rc = tp_doc_load(&t->doc, t->source, &t->doc_opts, diag);
		if (rc == TP_ENOTFOUND && writing) {
			/* A table being created: empty until the first commit. */
			if ((rc = tp_doc_parse(&t->doc, "", 0, t->source, &t->doc_opts)) < 0)
				return tp__diag_set(diag, rc, NULL, 0, "out of memory");
		}
		if (rc < 0)
			return rc;
		if (file_id_of(&after, t->source) < 0)
			return tp__diag_errno(diag, TP_EIO, errno, "stat %s", t->source);
		if (file_id_equal(&after, &t->loaded))
			return TP_OK;
	}
	return tp__diag_set(diag, TP_ECHANGED, NULL, 0,
			    "%s keeps changing while it is read", t->source);
}

static char *
concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s != NULL) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

/*
 * What a writer killed earlier left beside the source and the database.
 * Only under the lock: a live writer's temp files are never ours to take.
 * A symlinked source is written beside the file it points to.
 */
static void
sweep_temps(const tp_table *t)
{
	char *resolved;
	struct stat st;

	(void)tp__temp_sweep(t->source);
	(void)tp__temp_sweep(t->db_path);
	if (lstat(t->source, &st) == 0 && S_ISLNK(st.st_mode)
	    && (resolved = realpath(t->source, NULL)) != NULL) {
		(void)tp__temp_sweep(resolved);
		free(resolved);
	}
}

int
tp_table_open(tp_table **out, tp_map_type type, const char *source,
	      const tp_table_opts *opts, tp_diag *diag)
{
	tp_table_opts defaults = TP_TABLE_OPTS_INIT, v1;
	tp_table *t;
	char *lock_path = NULL;
	int rc;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version == 1) {
		/* Built before lock_timeout: read only what it has. */
		v1 = defaults;
		memcpy(&v1, opts, offsetof(tp_table_opts, lock_timeout));
		opts = &v1;
	} else if (opts->version != TP_TABLE_OPTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "table options version %u, want %u",
				    opts->version, TP_TABLE_OPTS_VERSION);
	if (isnan(opts->lock_timeout))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "lock timeout is not a number");
	if (tp__map_backend_get(type) == NULL)
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0, "unsupported map type");
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	t->type = type;
	t->lock_fd = -1;
	t->lock_timeout = opts->lock_timeout;
	t->doc_opts = opts->doc;
	t->flags = opts->flags;
	t->source = strdup(source);
	t->db_path = concat(source, tp_map_type_suffix(type));
	if (t->source == NULL || t->db_path == NULL) {
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		goto fail;
	}
	if (opts->flags & TP_TABLE_WRITE) {
		if ((lock_path = concat(source, ".lock")) == NULL) {
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			goto fail;
		}
		if ((rc = tp__lock_acquire(&t->lock_fd, lock_path, t->lock_timeout,
					   diag)) < 0)
			goto fail;
		sweep_temps(t);
	}
	if ((rc = load_source(t, diag)) < 0)
		goto fail;
	free(lock_path);
	*out = t;
	return TP_OK;
fail:
	free(lock_path);
	tp_table_free(t);
	return rc;
}

tp_doc *
tp_table_doc(tp_table *table)
{
	return table->doc;
}

const char *
tp_table_source(const tp_table *table)
{
	return table->source;
}

const char *
tp_table_db_path(const tp_table *table)
{
	return table->db_path;
}

tp_map_type
tp_table_type(const tp_table *table)
{
	return table->type;
}

void
tp_table_free(tp_table *table)
{
	if (table == NULL)
		return;
	tp_doc_free(table->doc);
	tp__lock_release(table->lock_fd);
	free(table->source);
	free(table->db_path);
	free(table);
}

/*
 * The records to write, read from the document in place: an array of
 * 32-bit entry indexes (the non-duplicates) instead of a copy of every
 * record's pointers, a quarter of the memory on a large table.
 */
struct doc_records {
	const tp_doc *doc;
	uint32_t *index;
};

static void
doc_record_at(const void *ctx, size_t i, tp_record *out)
{
	const struct doc_records *d = ctx;
	int dup;

	tp__doc_kv(d->doc, d->index[i], &out->key, &out->key_len, &out->value,
		   &out->value_len, &dup);
}

static void
scan_record_at(const void *ctx, size_t i, tp_record *out)
{
	tp__doc_scan_kv(ctx, i, &out->key, &out->key_len, &out->value, &out->value_len);
}

static int
doc_records(tp_table *t, struct doc_records *d, tp__records *recs, tp_diag *diag)
{
	size_t count = tp_doc_entry_count(t->doc), k = 0;

	d->doc = t->doc;
	d->index = NULL;
	recs->unique = 1;
	recs->cstrings = 1;	/* tp_doc ends every key and value with a NUL */
	if (tp__doc_is_scan(t->doc)) {
		recs->n = tp__doc_scan_count(t->doc);
		recs->at = scan_record_at;
		recs->ctx = t->doc;
		return TP_OK;
	}
	/* Documents hold fewer than 2^32 entries (tp_doc_parse's limit). */
	if ((d->index = malloc((count ? count : 1) * sizeof(*d->index))) == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < count; i++) {
		const char *kp, *vp;
		size_t kl, vl;
		int dup;

		tp__doc_kv(t->doc, i, &kp, &kl, &vp, &vl, &dup);
		if (!dup)
			d->index[k++] = (uint32_t)i;
	}
	recs->n = k;
	recs->at = doc_record_at;
	recs->ctx = d;
	return TP_OK;
}

/*
 * The records postmap would store, as an array: every entry but later
 * duplicates, in file order. The array points into the document.
 */
static int
table_records(tp_table *t, tp_record **out, size_t *n, tp_diag *diag)
{
	struct doc_records d;
	tp__records recs;
	tp_record *r;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = doc_records(t, &d, &recs, diag)) < 0)
		return rc;
	if ((r = calloc(recs.n ? recs.n : 1, sizeof(*r))) == NULL) {
		free(d.index);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	for (size_t i = 0; i < recs.n; i++)
		recs.at(recs.ctx, i, r + i);
	free(d.index);
	*out = r;
	*n = recs.n;
	return TP_OK;
}

int
tp_table_rebuild(tp_table *table, tp_diag *diag)
{
	struct doc_records d;
	tp__records recs;
	tp__map_pending p;
	int rc;

	/* A db built from what we read must be a db of what is there. */
	if ((rc = check_unchanged(table, diag)) < 0)
		return rc;
	if ((rc = doc_records(table, &d, &recs, diag)) < 0)
		return rc;
	rc = tp__map_prepare(&p, table->type, table->db_path, &recs, table->source, diag);
	free(d.index);
	if (rc < 0)
		return rc;
	rc = tp__map_install(&p, table->db_path, table->lock_timeout, diag);
	tp__map_discard(&p);
	return rc;
}

/*
 * The source is written from the document as it goes out (see
 * tp__doc_emit()), never held whole: compared with the file first,
 * chunk by chunk, then written through a buffer when it differs.
 */
struct cmp_sink {
	int fd;
	int differ, err;
	size_t have, pos;
	char buf[65536];
};

static int
cmp_fill(struct cmp_sink *c)
{
	ssize_t got;

	do
		got = read(c->fd, c->buf, sizeof(c->buf));
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		c->err = errno;
		return -1;
	}
	c->have = (size_t)got;
	c->pos = 0;
	return 0;
}

static int
cmp_put(void *ctx, const char *p, size_t n)
{
	struct cmp_sink *c = ctx;
	size_t k;

	while (n > 0) {
		if (c->pos == c->have && cmp_fill(c) < 0)
			return 1;
		if (c->have == 0 || (k = c->have - c->pos < n ? c->have - c->pos : n,
				     memcmp(c->buf + c->pos, p, k) != 0)) {
			c->differ = 1;
			return 1;
		}
		c->pos += k;
		p += k;
		n -= k;
	}
	return 0;
}

static int
count_put(void *ctx, const char *p, size_t n)
{
	(void)p;
	*(size_t *)ctx += n;
	return 0;
}

/* doc_equals_file - 1 when path holds the document's bytes; -1, errno */
static int
doc_equals_file(const tp_doc *doc, const char *path)
{
	struct cmp_sink *c;
	struct stat st;
	size_t size = 0;
	int same, fd;

	/* The sizes first: an edit almost always changes it. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0) {
		same = errno;
		close(fd);
		errno = same;
		return -1;
	}
	(void)tp__doc_emit(doc, count_put, &size);
	if ((off_t)size != st.st_size || (c = malloc(sizeof(*c))) == NULL) {
		close(fd);
		if ((off_t)size != st.st_size)
			return 0;
		errno = ENOMEM;
		return -1;
	}
	memset(c, 0, offsetof(struct cmp_sink, buf));
	c->fd = fd;
	/* All of the document matched: the same if the file ends there. */
	if (tp__doc_emit(doc, cmp_put, c) == 0 && !c->differ && !c->err &&
	    (c->pos < c->have || (cmp_fill(c) == 0 && c->have != 0)))
		c->differ = 1;
	if (c->err) {
		close(c->fd);
		errno = c->err;
		free(c);
		return -1;
	}
	same = !c->differ;
	close(c->fd);
	free(c);
	return same;
}

struct out_sink {
	int fd, err;
	size_t used;
	char buf[65536];
};

static int
out_flush(struct out_sink *o)
{
	if (o->used && tp__write_all(o->fd, o->buf, o->used) < 0) {
		o->err = errno;
		return 1;
	}
	o->used = 0;
	return 0;
}

static int
out_put(void *ctx, const char *p, size_t n)
{
	struct out_sink *o = ctx;

	if (n >= sizeof(o->buf) - o->used) {
		if (out_flush(o) != 0)
			return 1;
		if (n >= sizeof(o->buf)) {
			if (tp__write_all(o->fd, p, n) < 0) {
				o->err = errno;
				return 1;
			}
			return 0;
		}
	}
	memcpy(o->buf + o->used, p, n);
	o->used += n;
	return 0;
}

static int
write_doc(void *ctx, int fd)
{
	struct out_sink *o = malloc(sizeof(*o));
	int rc;

	if (o == NULL) {
		errno = ENOMEM;
		return -1;
	}
	o->fd = fd;
	o->err = 0;
	o->used = 0;
	rc = tp__doc_emit(ctx, out_put, o);
	if (rc == 0)
		rc = out_flush(o);
	if (rc != 0) {
		errno = o->err ? o->err : ENOMEM;
		rc = -1;
	}
	free(o);
	return rc;
}

/*
 * db_changes - the records edits changed since the source was loaded
 * (or last committed): each changed key once, with the record the
 * database must hold now (the first listing's, from before any edit)
 * and the one it gets. Keys whose record came back to what it was are
 * left out. *n is SIZE_MAX when the edits changed more than a quarter
 * of the records: a rebuild is then as cheap.
 */
struct dirty_key {
	const char *key, *old;
	size_t len, old_len, seq;
};

static int
cmp_dirty(const void *pa, const void *pb)
{
	const struct dirty_key *a = pa, *b = pb;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->key, b->key, n) : 0;

	if (c == 0)
		c = (a->len > b->len) - (a->len < b->len);
	return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

static int
db_changes(tp_table *t, tp__map_change **out, size_t *n, tp_diag *diag)
{
	size_t count = tp__doc_dirty_count(t->doc), pos = 0, k = 0, m = 0;
	struct dirty_key *d;
	tp__map_change *c;

	*out = NULL;
	*n = 0;
	if (count > tp_doc_entry_count(t->doc) / 4 + 16) {
		*n = SIZE_MAX;
		return TP_OK;
	}
	d = calloc(count ? count : 1, sizeof(*d));
	c = calloc(count ? count : 1, sizeof(*c));
	if (d == NULL || c == NULL) {
		free(d);
		free(c);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	while (k < count && tp__doc_dirty_next(t->doc, &pos, &d[k].key,
					       &d[k].len, &d[k].old,
					       &d[k].old_len)) {
		d[k].seq = k;
		k++;
	}
	qsort(d, k, sizeof(*d), cmp_dirty);
	for (size_t i = 0; i < k; i++) {
		const char *v;
		size_t vlen;
		int rc;

		if (i > 0 && d[i].len == d[i - 1].len &&
		    memcmp(d[i].key, d[i - 1].key, d[i].len) == 0)
			continue;	/* not the first listing */
		rc = tp__doc_record(t->doc, d[i].key, d[i].len, &v, &vlen);
		if (rc == TP_ENOTFOUND)
			v = NULL;
		else if (rc < 0) {
			free(d);
			free(c);
			return tp__diag_set(diag, rc, NULL, 0, "out of memory");
		}
		if ((v == NULL) == (d[i].old == NULL) &&
		    (v == NULL || (vlen == d[i].old_len &&
				   memcmp(v, d[i].old, vlen) == 0)))
			continue;	/* the record it had */
		c[m].key = d[i].key;
		c[m].key_len = d[i].len;
		c[m].value = v;
		c[m].value_len = v ? vlen : 0;
		c[m].old = d[i].old;
		c[m].old_len = d[i].old_len;
		m++;
	}
	free(d);
	*out = c;
	*n = m;
	return TP_OK;
}

int
tp_table_commit(tp_table *table, tp_diag *diag)
{
	tp__pending source = { NULL, NULL };
	tp__map_pending db;
	struct doc_records d;
	tp__records recs;
	size_t n;
	int rc = TP_OK, same;

	if (table->flags & TP_TABLE_REBUILD)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "%s was opened to rebuild its database only", table->source);
	if ((rc = check_unchanged(table, diag)) < 0)
		return rc;
	same = doc_equals_file(table->doc, table->source);
	if (same < 0)
		rc = tp__diag_errno(diag, TP_EIO, errno, "read %s", table->source);
	else if (!same)
		rc = tp__file_prepare_with(&source, table->source, write_doc,
					   table->doc, diag);
	if (rc < 0)
		return rc;
	/*
	 * Both new files are written and fsynced before either is renamed:
	 * a full disk or an I/O error while building the database leaves
	 * the old source and the old database as they were. The database
	 * is a copy of the old one with the changed records when it is
	 * there and in step with the source as loaded; else built whole.
	 */
	rc = TP__MAP_REBUILD;
	/* A database older than the source as read (or written) is out of step. */
	if (table->loaded.exists) {
		tp__map_change *changes;

		if ((rc = db_changes(table, &changes, &n, diag)) < 0)
			goto out;
		if (n != SIZE_MAX)
			rc = tp__map_prepare_update(&db, table->type,
						    table->db_path, changes, n,
						    &table->loaded.mtime,
						    table->lock_timeout, diag);
		else
			rc = TP__MAP_REBUILD;
		free(changes);
		if (rc < 0)
			goto out;
		table->db_write = TP_TABLE_DB_UPDATED;
		table->db_changes = n;
	}
	if (rc == TP__MAP_REBUILD) {
		if ((rc = doc_records(table, &d, &recs, diag)) < 0)
			goto out;
		rc = tp__map_prepare(&db, table->type, table->db_path, &recs,
				     table->source, diag);
		free(d.index);
		if (rc < 0)
			goto out;
		table->db_write = TP_TABLE_DB_REBUILT;
		table->db_changes = recs.n;
	}
	/*
	 * The db's lock before anything is renamed: when a reader (any local
	 * user can be one) keeps it past the timeout, both files stay old.
	 */
	if ((rc = tp__map_lock(&db, table->db_path, table->lock_timeout, diag)) < 0) {
		tp__map_discard(&db);
		goto out;
	}
	/* Once more, as late as can be: the window left is this check to the rename. */
	if ((rc = check_unchanged(table, diag)) < 0) {
		tp__map_discard(&db);
		goto out;
	}
	/* Source first: Postfix warns when the source is newer than the db. */
	if (source.tmp != NULL && (rc = tp__file_install(&source, diag)) < 0) {
		tp__map_discard(&db);
		goto out;
	}
	/* What is there now is what we wrote: a later commit compares with it. */
	if (source.target != NULL && file_id_of(&table->loaded, table->source) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "stat %s", table->source);
		tp__map_discard(&db);
		goto out;
	}
	rc = tp__map_install(&db, table->db_path, table->lock_timeout, diag);
	tp__map_discard(&db);
	if (rc == TP_OK) {
		/* What is on disk now is where the next commit starts. */
		tp__doc_dirty_clear(table->doc);
	}
out:
	tp__file_discard(&source);
	return rc;
}

int
tp_table_db_written(const tp_table *table, size_t *records)
{
	if (records != NULL)
		*records = table->db_changes;
	return table->db_write;
}

/* db_state: the source's records sorted by key, and what the walk found. */
struct state_walk {
	const tp__map_backend *backend;
	tp_record *recs;
	size_t n;
	size_t matched;
	int stale;
};

static int
cmp_key(const void *pa, const void *pb)
{
	const tp_record *a = pa, *b = pb;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = n ? memcmp(a->key, b->key, n) : 0;

	return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static int
state_visit(void *arg, const tp_record *raw)
{
	struct state_walk *w = arg;
	size_t extra = w->backend->nul_terminated ? 1 : 0;
	tp_record probe, *hit;

	/* A record without the NUL (or with other bytes) is not postmap's. */
	if (raw->key_len < extra || raw->value_len < extra
	    || (extra && (((const char *)raw->key)[raw->key_len - 1] != '\0'
			  || ((const char *)raw->value)[raw->value_len - 1] != '\0'))) {
		w->stale = 1;
		return 1;
	}
	probe.key = raw->key;
	probe.key_len = raw->key_len - extra;
	hit = w->n ? bsearch(&probe, w->recs, w->n, sizeof(*w->recs), cmp_key) : NULL;
	if (hit == NULL || hit->value_len != raw->value_len - extra
	    || (hit->value_len && memcmp(hit->value, raw->value, hit->value_len) != 0)) {
		w->stale = 1;
		return 1;
	}
	w->matched++;
	return 0;
}

int
tp_table_db_state(tp_table *table, tp_db_state *state, tp_diag *diag)
{
	struct state_walk w;
	struct stat st;
	int rc;

	*state = TP_DB_STALE;
	if (stat(table->db_path, &st) < 0) {
		if (errno != ENOENT)
			return tp__diag_errno(diag, TP_EIO, errno, "stat %s", table->db_path);
		*state = TP_DB_MISSING;
		return TP_OK;
	}
	memset(&w, 0, sizeof(w));
	w.backend = tp__map_backend_get(table->type);
	if ((rc = table_records(table, &w.recs, &w.n, diag)) < 0)
		return rc;
	qsort(w.recs, w.n, sizeof(*w.recs), cmp_key);
	rc = tp__map_iterate(table->type, table->db_path, table->lock_timeout,
			     state_visit, &w, diag);
	free(w.recs);
	if (rc < 0) {
		if (rc == TP_ENOTFOUND) {	/* removed since the stat */
			*state = TP_DB_MISSING;
			return TP_OK;
		}
		return rc;
	}
	/* Keys are unique on both sides: equal counts mean equal sets. */
	*state = !w.stale && w.matched == w.n ? TP_DB_IN_STEP : TP_DB_STALE;
	return TP_OK;
}
