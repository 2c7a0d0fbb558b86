/*
 * NAME
 *	map - write and read the indexed table Postfix uses
 * SUMMARY
 *	The record policy and file handling shared by every map type (see
 *	tlspolicy/map.h); the storage itself is a tp__map_backend.
 * DESCRIPTION
 *	tp_map_write() builds the whole database in a private temp
 *	directory beside db_path, then renames it over db_path holding
 *	flock(LOCK_EX) on the old file. Unlike postmap, which truncates and
 *	rewrites the live file in place, a reader never sees a half-built
 *	table, and a kill leaves the old one untouched.
 *
 *	Mode and owner follow postmap: an existing database keeps its own
 *	(postmap rewrites it in place, so they never change), permission
 *	bits only; a new one, or one replacing a symbolic link, gets
 *	0644 narrowed by mode_from's group and other bits (postmap's umask
 *	022 | (~source_mode & 077)), and, when we run as root, mode_from's
 *	owner and group unless that is root (postmap switches to the
 *	source's owner before it creates the file).
 *
 *	Duplicates: the first record with a key wins. Backends that like
 *	sorted input (btree) get the records in key order, stably sorted
 *	so the first of equal keys is still the one kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "map_backend.h"
#include "safewrite.h"

/* Postfix map types we know by name but do not write (yet). */
static const char *const other_types[] = {
	"dbm", "sdbm", "inline", "static",
	"regexp", "pcre", "cidr", "tcp", "socketmap", "ldap", "mysql",
	"pgsql", "sqlite", "memcache", "proxy", "unix", "nis", "nisplus",
	"netinfo", "environ", "fail", "randmap", "pipemap", "unionmap",
};

const tp__map_backend *
tp__map_backend_get(tp_map_type type)
{
	switch (type) {
	case TP_MAP_HASH:
		return &tp__map_backend_hash;
	case TP_MAP_BTREE:
		return &tp__map_backend_btree;
	case TP_MAP_LMDB:
		return &tp__map_backend_lmdb;
	case TP_MAP_CDB:
		return &tp__map_backend_cdb;
	case TP_MAP_TEXTHASH:
		return &tp__map_backend_texthash;
	case TP_MAP_LAST:
		break;
	}
	return NULL;
}

int
tp_map_type_parse(tp_map_type *out, const char *name)
{
	for (int t = 0; t < TP_MAP_LAST; t++) {
		if (strcmp(name, tp__map_backend_get((tp_map_type)t)->name) == 0) {
			*out = (tp_map_type)t;
			return TP_OK;
		}
	}
	for (size_t i = 0; i < sizeof(other_types) / sizeof(other_types[0]); i++)
		if (strcmp(name, other_types[i]) == 0)
			return TP_EUNSUPPORTED;
	return TP_EUSAGE;
}

const char *
tp_map_type_name(tp_map_type type)
{
	const tp__map_backend *b = tp__map_backend_get(type);

	return b ? b->name : "unknown";
}

const char *
tp_map_type_suffix(tp_map_type type)
{
	const tp__map_backend *b = tp__map_backend_get(type);

	return b ? b->suffix : "";
}

int
tp_map_spec_parse(tp_map_type *type, tp_buf *path, const char *spec,
		  tp_diag *diag)
{
	const char *colon = strchr(spec, ':');
	const char *p = spec;
	int rc;

	*type = TP_MAP_HASH;
	/* "TYPE:" is a word before the colon; "./a:b" or "/x:y" are paths. */
	if (colon != NULL && colon > spec && strspn(spec, "abcdefghijklmnopqrstuvwxyz0123456789_")
	    == (size_t)(colon - spec)) {
		char name[32];
		size_t len = (size_t)(colon - spec);

		if (len >= sizeof(name))
			return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
					    "unknown map type in \"%s\"", spec);
		memcpy(name, spec, len);
		name[len] = '\0';
		rc = tp_map_type_parse(type, name);
		if (rc == TP_EUNSUPPORTED)
			return tp__diag_set(diag, rc, NULL, 0,
					    "map type \"%s\" is not supported: use hash, btree, lmdb, cdb or texthash",
					    name);
		if (rc < 0)
			return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
					    "unknown map type \"%s\" in \"%s\"", name, spec);
		p = colon + 1;
	}
	if (*p == '\0')
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "no file name in map \"%s\"", spec);
	tp__buf_truncate(path, 0);
	if (tp__buf_puts(path, p) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return TP_OK;
}

static int
cmp_record(const tp_record *a, const tp_record *b)
{
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = n ? memcmp(a->key, b->key, n) : 0;

	if (c != 0)
		return c;
	/* With the NUL appended a shorter key sorts first too. */
	return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/*
 * A stable sort of record indexes by key (equal keys keep file order,
 * so the first stays first). qsort() is neither stable nor, in C11,
 * given a context pointer; a merge sort is both, and reentrant.
 */
static int
cmp_index(const tp__records *recs, size_t a, size_t b)
{
	tp_record ra, rb;

	recs->at(recs->ctx, a, &ra);
	recs->at(recs->ctx, b, &rb);
	return cmp_record(&ra, &rb);
}

/*
 * Each index sorts with its key's first 12 bytes as big-endian numbers
 * (NUL-padded: a shorter key still sorts first), so most comparisons
 * touch neither record: fetching two records' keys for each of a
 * 300k-entry table's 5 million comparisons was a quarter of a btree
 * rebuild (cache misses), and 8 bytes left many ties between keys like
 * "[mx123.example.com]:25". Equal prefixes compare whole keys. 16 bytes
 * an index: record indexes are 32 bits (tp__map_prepare()).
 */
struct sort_key {
	uint64_t hi;		/* bytes 0-7 */
	uint32_t lo;		/* bytes 8-11 */
	uint32_t idx;
};

static uint64_t
key_prefix(const char *key, size_t len, size_t from, size_t n)
{
	uint64_t p = 0;

	for (size_t i = from; i < from + n; i++)
		p = p << 8 | (i < len ? (unsigned char)key[i] : 0);
	return p;
}

static int
cmp_sort_key(const tp__records *recs, const struct sort_key *a, const struct sort_key *b)
{
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return cmp_index(recs, a->idx, b->idx);
}

static void
merge_sort(struct sort_key *v, struct sort_key *tmp, size_t n, const tp__records *recs)
{
	size_t i, j, k, mid;

	if (n < 2)
		return;
	mid = n / 2;
	merge_sort(v, tmp, mid, recs);
	merge_sort(v + mid, tmp, n - mid, recs);
	if (cmp_sort_key(recs, &v[mid - 1], &v[mid]) <= 0)
		return;
	memcpy(tmp, v, n * sizeof(*v));
	for (i = 0, j = mid, k = 0; i < mid && j < n;)
		v[k++] = cmp_sort_key(recs, &tmp[j], &tmp[i]) < 0 ? tmp[j++] : tmp[i++];
	while (i < mid)
		v[k++] = tmp[i++];
	while (j < n)
		v[k++] = tmp[j++];
}

static int
put_record(const tp__map_backend *b, void *w, const tp_record *r, int cstrings,
	   tp_buf *kbuf, tp_buf *vbuf, tp_diag *diag)
{
	size_t extra = b->nul_terminated ? 1 : 0;

	/* A document's records are C strings already: no copy needed. */
	if (cstrings || !extra)
		return b->put(w, r->key, r->key_len + extra, r->value,
			      r->value_len + extra, diag);
	/* Copies: records point into the caller's memory, not NUL-terminated. */
	tp__buf_truncate(kbuf, 0);
	tp__buf_truncate(vbuf, 0);
	if (tp__buf_put(kbuf, r->key, r->key_len) < 0
	    || tp__buf_put(vbuf, r->value, r->value_len) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return b->put(w, kbuf->ptr, kbuf->size + extra, vbuf->ptr,
		      vbuf->size + extra, diag);
}

/*
 * bucket_order - record indexes in the backend's storage order: a
 * counting sort on bucket(), stable, so of equal keys (one bucket) the
 * first is still put first and wins.
 */
static int
bucket_order(const tp__map_backend *b, void *w, const tp__records *recs,
	     size_t n, uint32_t **out, tp_buf *kbuf, tp_diag *diag)
{
	uint32_t *bucket = malloc(n * sizeof(*bucket)), max = 0;
	uint32_t *order = malloc(n * sizeof(*order));
	size_t *start = NULL, i;
	int rc = TP_OK;

	if (bucket == NULL || order == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		tp_record r;

		recs->at(recs->ctx, i, &r);
		if (recs->cstrings) {
			bucket[i] = b->bucket(w, r.key, r.key_len + (b->nul_terminated ? 1 : 0));
			if (bucket[i] > max)
				max = bucket[i];
			continue;
		}
		tp__buf_truncate(kbuf, 0);
		if (tp__buf_put(kbuf, r.key, r.key_len) < 0)
			goto nomem;
		/* The key as stored: with its NUL when the backend adds one. */
		bucket[i] = b->bucket(w, kbuf->ptr,
				      kbuf->size + (b->nul_terminated ? 1 : 0));
		if (bucket[i] > max)
			max = bucket[i];
	}
	if ((start = calloc((size_t)max + 2, sizeof(*start))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
		start[bucket[i] + 1]++;
	for (i = 1; i <= (size_t)max + 1; i++)
		start[i] += start[i - 1];
	for (i = 0; i < n; i++)
		order[start[bucket[i]]++] = (uint32_t)i;
	*out = order;
	order = NULL;
	goto done;
nomem:
	rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
done:
	free(bucket);
	free(order);
	free(start);
	return rc;
}

static void
new_db_attrs(const struct stat *src, mode_t *mode, int *do_chown, uid_t *uid,
	     gid_t *gid)
{
	*mode = 0644 & ~(mode_t)(022 | (~src->st_mode & 077));
	*do_chown = geteuid() == 0 && src->st_uid != 0;
	*uid = src->st_uid;
	*gid = src->st_gid;
}

int
tp__map_prepare(tp__map_pending *p, tp_map_type type, const char *db_path,
		const tp__records *recs, const char *mode_from, tp_diag *diag)
{
	size_t n = recs->n;
	const tp__map_backend *b = tp__map_backend_get(type);
	tp_buf kbuf = TP_BUF_INIT, vbuf = TP_BUF_INIT;
	uint32_t *order = NULL;
	struct sort_key *sorted = NULL;
	size_t nbytes = 0, prev = 0;
	const char *base;
	struct stat st;
	mode_t mode = 0644;
	int do_chown = 0, have_old = 0, rc;
	uid_t uid = 0;
	gid_t gid = 0;
	void *w = NULL;

	p->dir = (tp__tmpdir){ TP_BUF_INIT, 0, 0 };
	p->file = (tp_buf)TP_BUF_INIT;
	p->lock_fd = -1;
	if (b == NULL)
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0, "unsupported map type");
	p->lock_style = b->lock_style;
	p->no_db = b->no_db;
	if (b->no_db)
		return TP_OK;	/* the source is the table: nothing to build */
	if (n > UINT32_MAX)
		return tp__diag_set(diag, TP_ELIMIT, NULL, 0, "too many records for %s", db_path);
	/*
	 * lstat: a db that is a symbolic link is replaced by a new file, so
	 * it is a new db; the mode and owner of whatever the link points to
	 * (/etc/shadow?) are not ours to copy.
	 */
	if (lstat(db_path, &st) == 0) {
		if (S_ISREG(st.st_mode))
			have_old = 1;
		else if (!S_ISLNK(st.st_mode))
			return tp__diag_set(diag, TP_EIO, NULL, 0,
					    "%s is not a regular file", db_path);
	} else if (errno != ENOENT) {
		return tp__diag_errno(diag, TP_EIO, errno, "stat %s", db_path);
	}
	if (have_old) {
		/* Permission bits only, as for the source: no set-id bits. */
		mode = st.st_mode & 0777;
		do_chown = st.st_uid != geteuid() || st.st_gid != getegid();
		uid = st.st_uid;
		gid = st.st_gid;
		if (do_chown && geteuid() != 0)
			do_chown = 0;	/* cannot give it away; keep ours */
	} else if (mode_from != NULL) {
		if (stat(mode_from, &st) == 0)
			new_db_attrs(&st, &mode, &do_chown, &uid, &gid);
		else if (errno != ENOENT)
			return tp__diag_errno(diag, TP_EIO, errno, "stat %s", mode_from);
	}

	for (size_t i = 0; i < n; i++) {
		tp_record r;

		recs->at(recs->ctx, i, &r);
		nbytes += r.key_len + r.value_len + 2;
	}
	/*
	 * Key order: for backends that like it, and to find duplicates for
	 * those that cannot refuse one (cdb) when the records may have some.
	 */
	if ((b->sorted_input || (b->unique_puts && !recs->unique)) && n > 1) {
		struct sort_key *tmp = malloc(n * sizeof(*tmp));

		if ((sorted = malloc(n * sizeof(*sorted))) == NULL || tmp == NULL) {
			free(tmp);
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			goto out;
		}
		tp__huge_pages(sorted, n * sizeof(*sorted));
		tp__huge_pages(tmp, n * sizeof(*tmp));
		for (size_t i = 0; i < n; i++) {
			tp_record r;

			recs->at(recs->ctx, i, &r);
			sorted[i].hi = key_prefix(r.key, r.key_len, 0, 8);
			sorted[i].lo = (uint32_t)key_prefix(r.key, r.key_len, 8, 4);
			sorted[i].idx = (uint32_t)i;
		}
		merge_sort(sorted, tmp, n, recs);
		free(tmp);
	}

	if ((rc = tp__temp_dir(&p->dir, db_path, diag)) < 0)
		goto out;
	base = strrchr(db_path, '/');
	base = base ? base + 1 : db_path;
	if (tp__buf_printf(&p->file, "%s/%s", p->dir.path.ptr, base) < 0) {
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		goto out;
	}
	if ((rc = b->create(&w, p->file.ptr, db_path, n, nbytes, diag)) < 0)
		goto out;
	/* The sorted loop below skips later duplicates itself. */
	if (b->assume_unique != NULL && (recs->unique || sorted != NULL))
		b->assume_unique(w);
	if (b->bucket != NULL && n > 1 &&
	    (rc = bucket_order(b, w, recs, n, &order, &kbuf, diag)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t at = order ? order[i] : sorted ? sorted[i].idx : i;
		tp_record r;

		recs->at(recs->ctx, at, &r);
		/* Sorted: an equal neighbour before us already won. */
		if (sorted && i > 0 && !recs->unique && cmp_index(recs, prev, at) == 0)
			continue;
		prev = at;
		if ((rc = put_record(b, w, &r, recs->cstrings, &kbuf, &vbuf, diag)) < 0)
			goto out;
	}
	rc = b->finish(w, mode, do_chown, uid, gid, diag);
	w = NULL;
out:
	if (w != NULL)
		b->abort(w);
	if (rc < 0)
		tp__map_discard(p);
	free(order);
	free(sorted);
	tp_buf_dispose(&kbuf);
	tp_buf_dispose(&vbuf);
	return rc;
}

/* copy_fd - all of in (from its start) to out; -1 with errno */
static int
copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t got;

	for (;;) {
		got = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
		if (got > 0)
			continue;
		if (got == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != ENOSYS && errno != EINVAL &&
		    errno != EOPNOTSUPP)
			return -1;
		break;		/* not here: copy through user space */
	}
	while ((got = read(in, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (tp__write_all(out, buf, (size_t)got) < 0)
			return -1;
	}
	return 0;
}

/*
 * copy_db - the database as it is, into the private directory: read
 * under the lock Postfix's readers take, so a postmap rewriting it in
 * place is waited for. TP__MAP_REBUILD when there is no database, or
 * it is older than not_before.
 */
static int
copy_db(tp__map_pending *p, const tp__map_backend *b, const char *db_path,
	const struct timespec *not_before, double lock_timeout,
	struct stat *st, tp_diag *diag)
{
	const char *base;
	int in, out = -1, rc = TP_OK;

	/* A symbolic link is replaced by a whole new file, never followed. */
	if ((in = open(db_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)) < 0)
		return errno == ENOENT || errno == ELOOP ? TP__MAP_REBUILD :
		       tp__diag_errno(diag, TP_EIO, errno, "open database %s", db_path);
	if (b->lock_style != TP__LOCK_NONE &&
	    (rc = tp__lock_wait(in, b->lock_style, TP__LOCK_SHARED, lock_timeout,
				db_path, diag)) < 0)
		goto out;
	if (fstat(in, st) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "stat %s", db_path);
		goto out;
	}
	if (!S_ISREG(st->st_mode) || (not_before != NULL &&
	    (st->st_mtim.tv_sec < not_before->tv_sec ||
	     (st->st_mtim.tv_sec == not_before->tv_sec &&
	      st->st_mtim.tv_nsec < not_before->tv_nsec)))) {
		rc = TP__MAP_REBUILD;
		goto out;
	}
	if ((rc = tp__temp_dir(&p->dir, db_path, diag)) < 0)
		goto out;
	base = strrchr(db_path, '/');
	base = base ? base + 1 : db_path;
	if (tp__buf_printf(&p->file, "%s/%s", p->dir.path.ptr, base) < 0) {
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		goto out;
	}
	out = open(p->file.ptr, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0 || copy_fd(in, out) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", db_path);
		goto out;
	}
	if (close(out) < 0) {
		out = -1;
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", db_path);
		goto out;
	}
	out = -1;
out:
	if (out >= 0)
		close(out);
	close(in);
	return rc;
}

/* The record stored for key now is exactly old (NULL: none)? */
static int
record_is(const tp__map_backend *b, void *w, const tp_buf *k,
	  const char *old, size_t oldlen, tp_buf *cur, tp_diag *diag)
{
	size_t extra = b->nul_terminated ? 1 : 0;
	int rc = b->get(w, k->ptr, k->size + extra, cur, diag);

	if (rc == TP_ENOTFOUND)
		return old == NULL;
	if (rc < 0)
		return rc;
	return old != NULL && cur->size == oldlen + extra &&
	       memcmp(cur->ptr, old, oldlen) == 0 &&
	       (!extra || cur->ptr[oldlen] == '\0');
}

int
tp__map_prepare_update(tp__map_pending *p, tp_map_type type,
		       const char *db_path, const tp__map_change *changes,
		       size_t n, const struct timespec *not_before,
		       double lock_timeout, tp_diag *diag)
{
	const tp__map_backend *b = tp__map_backend_get(type);
	tp_buf kbuf = TP_BUF_INIT, vbuf = TP_BUF_INIT;
	size_t extra;
	struct stat st;
	int do_chown, rc;
	void *w = NULL;
	tp_diag quiet = TP_DIAG_INIT;

	p->dir = (tp__tmpdir){ TP_BUF_INIT, 0, 0 };
	p->file = (tp_buf)TP_BUF_INIT;
	p->lock_fd = -1;
	if (b == NULL || b->no_db || b->open_update == NULL)
		return TP__MAP_REBUILD;
	p->lock_style = b->lock_style;
	p->no_db = 0;
	extra = b->nul_terminated ? 1 : 0;
	if ((rc = copy_db(p, b, db_path, not_before, lock_timeout, &st, diag)) != TP_OK)
		goto out;
	/* Not a database of this type: rebuilt whole, as postmap would. */
	if (b->open_update(&w, p->file.ptr, db_path, &quiet) < 0) {
		w = NULL;
		rc = TP__MAP_REBUILD;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const tp__map_change *c = changes + i;

		tp__buf_truncate(&kbuf, 0);
		if (tp__buf_put(&kbuf, c->key, c->key_len) < 0) {
			rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
			goto out;
		}
		/* Out of step with the source as loaded: rebuilt whole. */
		if ((rc = record_is(b, w, &kbuf, c->old, c->old_len, &vbuf,
				    &quiet)) <= 0) {
			rc = TP__MAP_REBUILD;
			goto out;
		}
		if (c->value == NULL) {
			rc = b->del(w, kbuf.ptr, kbuf.size + extra, diag);
		} else {
			tp__buf_truncate(&vbuf, 0);
			if (tp__buf_put(&vbuf, c->value, c->value_len) < 0) {
				rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
				goto out;
			}
			rc = b->replace(w, kbuf.ptr, kbuf.size + extra, vbuf.ptr,
					vbuf.size + extra, diag);
		}
		if (rc < 0)
			goto out;
	}
	/* Permission bits and owner kept, as in tp__map_prepare(). */
	do_chown = (st.st_uid != geteuid() || st.st_gid != getegid()) &&
		   geteuid() == 0;
	rc = b->finish(w, st.st_mode & 0777, do_chown, st.st_uid, st.st_gid,
		       diag);
	w = NULL;
out:
	if (w != NULL)
		b->abort(w);
	if (rc != TP_OK)
		tp__map_discard(p);
	tp_buf_dispose(&kbuf);
	tp_buf_dispose(&vbuf);
	return rc;
}

int
tp__map_lock(tp__map_pending *p, const char *db_path, double lock_timeout,
	     tp_diag *diag)
{
	if (p->no_db || p->lock_fd >= 0)
		return TP_OK;
	return tp__target_lock(&p->lock_fd, db_path, p->lock_style, lock_timeout, diag);
}

int
tp__map_install(tp__map_pending *p, const char *db_path, double lock_timeout,
		tp_diag *diag)
{
	int rc;

	if (p->no_db)
		return TP_OK;
	if ((rc = tp__map_lock(p, db_path, lock_timeout, diag)) < 0)
		return rc;
	rc = tp__rename_over(p->file.ptr, db_path, diag);
	/* Readers waited for the rename and its fsync; now they may go on. */
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->lock_fd = -1;
	return rc;
}

void
tp__map_discard(tp__map_pending *p)
{
	/*
	 * The one cleanup path: nothing of ours is left behind. libdb
	 * creates "__db.NAME" and renames it to NAME, so a failure half way
	 * can leave either: the private directory goes with its contents.
	 */
	tp__temp_dir_remove(&p->dir);
	tp_buf_dispose(&p->file);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->lock_fd = -1;
}

static void
array_at(const void *ctx, size_t i, tp_record *out)
{
	*out = ((const tp_record *)ctx)[i];
}

int
tp__map_write(tp_map_type type, const char *db_path, const tp_record *records,
	      size_t n, const char *mode_from, double lock_timeout, tp_diag *diag)
{
	tp__records recs = { n, array_at, records, 0, 0 };
	tp__map_pending p;
	int rc;

	if ((rc = tp__map_prepare(&p, type, db_path, &recs, mode_from, diag)) < 0)
		return rc;
	rc = tp__map_install(&p, db_path, lock_timeout, diag);
	tp__map_discard(&p);
	return rc;
}

int
tp_map_write(tp_map_type type, const char *db_path, const tp_record *records,
	     size_t n, const char *mode_from, tp_diag *diag)
{
	return tp__map_write(type, db_path, records, n, mode_from,
			     TP_LOCK_TIMEOUT_DEFAULT, diag);
}

int
tp_map_lookup(tp_map_type type, const char *db_path, const char *key,
	      tp_buf *value, tp_diag *diag)
{
	return tp_map_lookup_timed(type, db_path, key, value,
				   TP_LOCK_TIMEOUT_DEFAULT, diag);
}

int
tp_map_lookup_timed(tp_map_type type, const char *db_path, const char *key,
		    tp_buf *value, double lock_timeout, tp_diag *diag)
{
	const tp__map_backend *b = tp__map_backend_get(type);
	void *r;
	int rc;

	if (b == NULL)
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0, "unsupported map type");
	if ((rc = b->open_read(&r, db_path, lock_timeout, diag)) < 0) {
		/* No database is an error, as for Postfix, not an absent key. */
		if (rc == TP_ENOTFOUND) {
			rc = TP_EIO;
			if (diag)
				diag->status = rc;
		}
		return rc;
	}
	rc = tp__map_get(b, r, key, value, diag);
	b->close_read(r);
	if (rc == TP_ENOTFOUND)
		tp__diag_set(diag, rc, NULL, 0, "%s: not found in %s", key, db_path);
	return rc;
}

int
tp__map_get(const tp__map_backend *b, void *r, const char *key, tp_buf *value,
	    tp_diag *diag)
{
	size_t klen = strlen(key);
	int rc;

	/*
	 * As dict_db.c, dict_lmdb.c and dict_cdb.c read a table whose writer
	 * they do not know: the NUL-terminated form first, then the bare one.
	 */
	rc = b->get(r, key, klen + 1, value, diag);
	if (rc == TP_ENOTFOUND)
		rc = b->get(r, key, klen, value, diag);
	/* Postfix copies the value as a C string: up to its first NUL. */
	if (rc == TP_OK)
		tp__buf_truncate(value, strlen(value->ptr));
	return rc;
}

int
tp__map_iterate(tp_map_type type, const char *db_path, double lock_timeout,
		int (*fn)(void *arg, const tp_record *rec), void *arg,
		tp_diag *diag)
{
	const tp__map_backend *b = tp__map_backend_get(type);
	tp_record rec;
	void *r;
	int rc;

	if (b == NULL)
		return tp__diag_set(diag, TP_EUNSUPPORTED, NULL, 0, "unsupported map type");
	if ((rc = b->open_read(&r, db_path, lock_timeout, diag)) < 0)
		return rc;
	while ((rc = b->next(r, &rec, diag)) == TP_OK)
		if ((rc = fn(arg, &rec)) != 0)
			break;
	b->close_read(r);
	return rc == TP_ENOTFOUND ? TP_OK : rc;
}
