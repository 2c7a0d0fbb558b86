/*
 * NAME
 *	safewrite - lock files and whole-file replacement
 * SUMMARY
 *	See safewrite.h. The lock file is never removed: unlinking a lock
 *	file while another process waits on it lets a third process lock a
 *	new inode, and both would then write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "safewrite.h"

int
tp__flock(int fd, int op)
{
	int rc;

	while ((rc = flock(fd, op)) < 0 && errno == EINTR)
		continue;
	return rc;
}

int
tp__write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* write() of a regular file returns 0 only when full. */
			errno = ENOSPC;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
close_checked(int fd)
{
	/*
	 * On Linux the descriptor is gone even when close() fails with EINTR;
	 * retrying could close a descriptor another thread just opened.
	 */
	if (close(fd) < 0 && errno != EINTR)
		return -1;
	return 0;
}

/*
 * Who holds a lock on the file open at fd, from /proc/locks: "pid 1234
 * (postmap)", "pid 1 (a), pid 2 (b)", or "" when Linux does not say.
 * The pid is the process that took the lock; it may have passed the
 * descriptor on, so this is a lead, not a proof.
 */
static void
lock_holders(int fd, char *out, size_t size)
{
	char line[512];
	struct stat st;
	size_t used = 0;
	int shown = 0;
	FILE *fp;

	out[0] = '\0';
	if (fstat(fd, &st) < 0 || (fp = fopen("/proc/locks", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL && shown < 3) {
		unsigned int maj, min;
		unsigned long long ino;
		long pid;
		char comm[64] = "", path[64];
		const char *p = strchr(line, ':');
		int n;

		/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->". */
		if (p == NULL || strstr(line, "->") != NULL
		    || sscanf(p + 1, " %*s %*s %*s %ld %x:%x:%llu", &pid, &maj, &min, &ino) != 4
		    || maj != major(st.st_dev) || min != minor(st.st_dev)
		    || ino != (unsigned long long)st.st_ino || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		{
			FILE *cf = fopen(path, "re");

			if (cf != NULL) {
				if (fgets(comm, sizeof(comm), cf) != NULL)
					comm[strcspn(comm, "\n")] = '\0';
				fclose(cf);
			}
		}
		/* Gone: whoever it started has the descriptor, and the lock. */
		n = snprintf(out + used, size - used, "%spid %ld (%s)", shown ? ", " : "",
			     pid, comm[0] ? comm : "exited; a process it started holds the lock");
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
		shown++;
	}
	fclose(fp);
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One try without waiting: 0, or -1 with errno (EWOULDBLOCK: held). */
static int
lock_try(int fd, int style, int op)
{
	struct flock fl;
	int rc;

	if (style == TP__LOCK_FLOCK)
		return tp__flock(fd, (op == TP__LOCK_SHARED ? LOCK_SH : LOCK_EX) | LOCK_NB);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = op == TP__LOCK_SHARED ? F_RDLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;	/* start 0, length 0: the whole file */
	while ((rc = fcntl(fd, F_SETLK, &fl)) < 0 && errno == EINTR)
		continue;
	if (rc < 0 && (errno == EACCES || errno == EAGAIN))
		errno = EWOULDBLOCK;	/* POSIX lets fcntl say "held" either way */
	return rc;
}

int
tp__lock_wait(int fd, int style, int op, double timeout, const char *path,
	      tp_diag *diag)
{
	double deadline, left, pause = 0.001;
	char holders[256];

	if (style == TP__LOCK_NONE || op == TP__LOCK_UNLOCK)
		return tp__lock_fd(fd, style, op) < 0
		    ? tp__diag_errno(diag, TP_EIO, errno, "unlock %s", path) : TP_OK;
	if (timeout < 0) {
		if (tp__lock_fd(fd, style, op) < 0)
			return tp__diag_errno(diag, TP_EIO, errno, "lock %s", path);
		return TP_OK;
	}
	/*
	 * Neither flock() nor fcntl() can be given a deadline, and a library
	 * must not play with alarms: try without blocking, and sleep a
	 * little longer each time (1 ms, doubling, at most 100 ms) until the
	 * deadline.
	 */
	deadline = now_seconds() + timeout;
	for (;;) {
		if (lock_try(fd, style, op) == 0)
			return TP_OK;
		if (errno != EWOULDBLOCK)
			return tp__diag_errno(diag, TP_EIO, errno, "lock %s", path);
		left = deadline - now_seconds();
		if (left <= 0)
			break;
		{
			double d = pause < left ? pause : left;
			struct timespec ts;

			ts.tv_sec = (time_t)d;
			ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				continue;
		}
		if (pause < 0.1)
			pause *= 2;
	}
	lock_holders(fd, holders, sizeof(holders));
	return tp__diag_set(diag, TP_ETIMEOUT, NULL, 0,
			    "%s is still locked after %g s, by %s",
			    path, timeout, holders[0] ? holders : "another process (see /proc/locks)");
}

int
tp__flock_wait(int fd, int op, double timeout, const char *path, tp_diag *diag)
{
	return tp__lock_wait(fd, TP__LOCK_FLOCK,
			     op == LOCK_SH ? TP__LOCK_SHARED : TP__LOCK_EXCLUSIVE,
			     timeout, path, diag);
}

int
tp__lock_acquire(int *fd_out, const char *path, double timeout, tp_diag *diag)
{
	struct stat st;
	int fd, rc;

	*fd_out = -1;
	/* O_NOFOLLOW: a symlink planted at the lock path fails with ELOOP. */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
		  0600);
	if (fd < 0) {
		if (errno == ELOOP)
			return tp__diag_set(diag, TP_EIO, NULL, 0,
					    "lock file %s is a symbolic link: refusing to follow it",
					    path);
		return tp__diag_errno(diag, TP_EIO, errno, "open lock file %s", path);
	}
	if (fstat(fd, &st) < 0) {
		int err = errno;

		close(fd);
		return tp__diag_errno(diag, TP_EIO, err, "stat lock file %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return tp__diag_set(diag, TP_EIO, NULL, 0,
				    "lock file %s is not a regular file", path);
	}
	if ((rc = tp__flock_wait(fd, LOCK_EX, timeout, path, diag)) < 0) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return TP_OK;
}

void
tp__lock_release(int fd)
{
	if (fd >= 0)
		(void)close(fd);
}

static int
temp_name(tp_buf *tmp, const char *target)
{
	tp_buf_dispose(tmp);
	return tp__buf_printf(tmp, "%s.tmp.XXXXXX", target);
}

int
tp__temp_file(int *fd_out, tp_buf *tmp, const char *target, tp_diag *diag)
{
	int fd;

	*fd_out = -1;
	if (temp_name(tmp, target) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	/* mkostemp() opens with O_CREAT|O_EXCL: it never follows a symlink. */
	fd = mkostemp(tmp->ptr, O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		tp_buf_dispose(tmp);
		return tp__diag_errno(diag, TP_EIO, err,
				      "create temporary file for %s", target);
	}
	*fd_out = fd;
	return TP_OK;
}

int
tp__temp_dir(tp__tmpdir *d, const char *target, tp_diag *diag)
{
	struct stat st;

	*d = (tp__tmpdir){ TP_BUF_INIT, 0, 0 };
	if (temp_name(&d->path, target) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (mkdtemp(d->path.ptr) == NULL) {
		int err = errno;

		tp_buf_dispose(&d->path);
		return tp__diag_errno(diag, TP_EIO, err,
				      "create temporary directory for %s", target);
	}
	/*
	 * Remember which directory is ours. Someone who can write the
	 * table's directory could swap another in at this name between
	 * mkdtemp() and lstat(): then it is not a 0700 directory of our
	 * uid, and we leave it alone.
	 */
	if (lstat(d->path.ptr, &st) < 0 || !S_ISDIR(st.st_mode)
	    || st.st_uid != geteuid() || (st.st_mode & 07777) != 0700) {
		tp_buf_dispose(&d->path);
		return tp__diag_set(diag, TP_EIO, NULL, 0,
				    "temporary directory for %s was replaced while we made it",
				    target);
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	return TP_OK;
}

/* The parent directory of path, opened (O_DIRECTORY); -1 with errno. */
static int
open_parent(const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	tp_buf dir = TP_BUF_INIT;
	int fd;

	*base = slash ? slash + 1 : path;
	if (slash == NULL ? tp__buf_puts(&dir, ".") < 0
	    : tp__buf_put(&dir, path, slash == path ? 1 : (size_t)(slash - path)) < 0) {
		errno = ENOMEM;
		return -1;
	}
	fd = open(dir.ptr, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tp_buf_dispose(&dir);
	return fd;
}

void
tp__temp_dir_remove(tp__tmpdir *d)
{
	const char *base;
	struct dirent *e;
	struct stat st;
	int pfd, dfd;
	DIR *dp;

	if (d->path.ptr == NULL)
		return;
	/*
	 * Through descriptors, never following a link: whoever can write
	 * the table's directory may have put a symbolic link to another
	 * directory at our name, and emptying that one as root would be
	 * theirs to enjoy. Only the directory we made (same dev and inode)
	 * is emptied; it is 0700, so all in it is ours.
	 */
	if ((pfd = open_parent(d->path.ptr, &base)) < 0)
		goto out;
	dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		goto close_parent;
	if (fstat(dfd, &st) < 0 || st.st_dev != d->dev || st.st_ino != d->ino
	    || (dp = fdopendir(dfd)) == NULL) {
		close(dfd);
		goto close_parent;
	}
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		/* One level: we make no subdirectories, so leave any alone. */
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
		    && !S_ISDIR(st.st_mode))
			(void)unlinkat(dfd, e->d_name, 0);
	}
	closedir(dp);
	(void)unlinkat(pfd, base, AT_REMOVEDIR);
close_parent:
	close(pfd);
out:
	tp_buf_dispose(&d->path);
	d->dev = 0;
	d->ino = 0;
}

int
tp__fsync_dir(const char *path, tp_diag *diag)
{
	tp_buf dir = TP_BUF_INIT;
	const char *slash = strrchr(path, '/');
	int fd, rc = TP_OK;

	if (slash == NULL)
		rc = tp__buf_puts(&dir, ".");
	else if (slash == path)
		rc = tp__buf_puts(&dir, "/");
	else
		rc = tp__buf_put(&dir, path, (size_t)(slash - path));
	if (rc < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	fd = open(dir.ptr, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "open directory %s", dir.ptr);
	} else {
		/* Some file systems cannot fsync a directory: EINVAL is no loss. */
		if (fsync(fd) < 0 && errno != EINVAL)
			rc = tp__diag_errno(diag, TP_EIO, errno, "fsync directory %s",
					    dir.ptr);
		close(fd);
	}
	tp_buf_dispose(&dir);
	return rc;
}

int
tp__target_lock(int *fd_out, const char *target, int style, double timeout,
		tp_diag *diag)
{
	int fd, rc;

	*fd_out = -1;
	if (style == TP__LOCK_NONE)
		return TP_OK;	/* readers take none (cdb): nothing to wait for */
	/*
	 * The lock is only for the benefit of readers and postmap; a file
	 * opened read-only is enough for flock() and changes nothing, a
	 * write lock of fcntl() needs it open for writing (a file we may not
	 * open so is renamed over without it). A symbolic link at target is
	 * replaced, not locked through: the file it points to is none of
	 * ours (ELOOP: no lock to take).
	 */
	fd = open(target, (style == TP__LOCK_FCNTL ? O_RDWR : O_RDONLY) | O_CLOEXEC
		  | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP
		    || (style == TP__LOCK_FCNTL && (errno == EACCES || errno == EROFS)))
			return TP_OK;
		return tp__diag_errno(diag, TP_EIO, errno, "open %s", target);
	}
	if ((rc = tp__lock_wait(fd, style, TP__LOCK_EXCLUSIVE, timeout, target, diag)) < 0) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return TP_OK;
}

int
tp__rename_over(const char *tmp, const char *target, tp_diag *diag)
{
	if (rename(tmp, target) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "rename %s to %s", tmp, target);
	return tp__fsync_dir(target, diag);
}

int
tp__rename_locked(const char *tmp, const char *target, double timeout,
		  tp_diag *diag)
{
	int fd, rc;

	if ((rc = tp__target_lock(&fd, target, TP__LOCK_FLOCK, timeout, diag)) < 0)
		return rc;
	rc = tp__rename_over(tmp, target, diag);
	/* Closed after the rename and its fsync: readers wait for both. */
	if (fd >= 0)
		close(fd);
	return rc;
}

struct bytes {
	const void *data;
	size_t len;
};

static int
write_bytes(void *ctx, int fd)
{
	const struct bytes *b = ctx;

	return tp__write_all(fd, b->data, b->len);
}

int
tp__file_prepare(tp__pending *p, const char *path, const void *data,
		 size_t len, tp_diag *diag)
{
	struct bytes b = { data, len };

	return tp__file_prepare_with(p, path, write_bytes, &b, diag);
}

int
tp__file_prepare_with(tp__pending *p, const char *path_in,
		      tp__file_writer writer, void *ctx, tp_diag *diag)
{
	tp_buf tmp = TP_BUF_INIT;
	char *resolved = NULL;
	const char *path = path_in;
	struct stat st;
	int have_old, fd = -1, rc;

	p->tmp = NULL;
	p->target = NULL;
	/*
	 * A symlinked source (a file managed elsewhere) stays a symlink: the
	 * file it points to is replaced, beside itself.
	 */
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		if ((resolved = realpath(path, NULL)) == NULL)
			return tp__diag_errno(diag, TP_EIO, errno,
					      "resolve symbolic link %s", path);
		path = resolved;
	}
	if (stat(path, &st) == 0) {
		have_old = 1;
		if (!S_ISREG(st.st_mode)) {
			rc = tp__diag_set(diag, TP_EIO, NULL, 0,
					  "%s is not a regular file", path);
			goto out;
		}
	} else if (errno == ENOENT) {
		have_old = 0;
	} else {
		rc = tp__diag_errno(diag, TP_EIO, errno, "stat %s", path);
		goto out;
	}
	if ((rc = tp__temp_file(&fd, &tmp, path, diag)) < 0)
		goto out;
	if (writer(ctx, fd) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", path);
		goto out;
	}
	if (have_old && (st.st_uid != geteuid() || st.st_gid != getegid())
	    && fchown(fd, st.st_uid, st.st_gid) < 0
	    && !(errno == EPERM && geteuid() != 0)) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "set owner of %s", path);
		goto out;
	}
	/*
	 * Permission bits only: a set-uid, set-gid or sticky bit on a policy
	 * table is a mistake or a trap (a set-gid file keeps its group's
	 * privileges), never something to carry into the new file.
	 */
	if (fchmod(fd, have_old ? (st.st_mode & 0777) : 0644) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "set mode of %s", path);
		goto out;
	}
	if (fsync(fd) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", path);
		goto out;
	}
	rc = close_checked(fd);
	fd = -1;
	if (rc < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "error writing %s", path);
		goto out;
	}
	if (resolved == NULL && (resolved = strdup(path)) == NULL) {
		rc = tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		goto out;
	}
	p->tmp = tmp.ptr;	/* ownership moves to p */
	p->target = resolved;
	return TP_OK;
out:
	if (fd >= 0)
		close(fd);
	if (tmp.ptr)
		(void)unlink(tmp.ptr);
	tp_buf_dispose(&tmp);
	free(resolved);
	return rc;
}

int
tp__file_install(tp__pending *p, tp_diag *diag)
{
	int rc;

	if (rename(p->tmp, p->target) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "rename %s to %s", p->tmp,
				      p->target);
	free(p->tmp);		/* renamed: nothing to clean up */
	p->tmp = NULL;
	rc = tp__fsync_dir(p->target, diag);
	return rc;
}

void
tp__file_discard(tp__pending *p)
{
	if (p->tmp != NULL)
		(void)unlink(p->tmp);
	free(p->tmp);
	free(p->target);
	p->tmp = NULL;
	p->target = NULL;
}

int
tp__file_replace(const char *path, const void *data, size_t len,
		 tp_diag *diag)
{
	tp__pending p;
	int rc;

	if ((rc = tp__file_prepare(&p, path, data, len, diag)) < 0)
		return rc;
	rc = tp__file_install(&p, diag);
	tp__file_discard(&p);
	return rc;
}

/* NAME is "BASE.tmp.XXXXXX", the suffix as mkstemp()/mkdtemp() make it? */
static int
is_temp_name(const char *name, const char *base, size_t blen)
{
	const char *suffix;

	if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0)
		return 0;
	suffix = name + blen + 5;
	if (strlen(suffix) != 6)
		return 0;
	for (int i = 0; i < 6; i++)
		if (!((suffix[i] >= 'a' && suffix[i] <= 'z')
		      || (suffix[i] >= 'A' && suffix[i] <= 'Z')
		      || (suffix[i] >= '0' && suffix[i] <= '9')))
			return 0;
	return 1;
}

/*
 * Empty and remove the temp directory NAME (relative to dfd) if it holds
 * nothing but what we put there: BASE or libdb's "__db.BASE", regular
 * files. Works through descriptors, never following a symlink.
 */
static int
sweep_dir(int dfd, const char *name, const char *base)
{
	char libdb_name[NAME_MAX + 1];
	struct dirent *e;
	DIR *d;
	int sub, foreign = 0;

	sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return 0;
	if ((d = fdopendir(sub)) == NULL) {
		close(sub);
		return 0;
	}
	snprintf(libdb_name, sizeof(libdb_name), "__db.%s", base);
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((strcmp(e->d_name, base) != 0 && strcmp(e->d_name, libdb_name) != 0)
		    || fstatat(sub, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
		    || !S_ISREG(st.st_mode)
		    || unlinkat(sub, e->d_name, 0) < 0)
			foreign = 1;
	}
	closedir(d);
	if (foreign)
		return 0;
	return unlinkat(dfd, name, AT_REMOVEDIR) == 0;
}

int
tp__temp_sweep(const char *target)
{
	const char *base;
	struct dirent *e;
	size_t blen;
	int dfd, removed = 0;
	DIR *d;

	if ((dfd = open_parent(target, &base)) < 0)
		return -1;
	blen = strlen(base);
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (!is_temp_name(e->d_name, base, blen)
		    || fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* Never a symlink: we make none, and unlinking it is not ours to do. */
		if (S_ISREG(st.st_mode))
			removed += unlinkat(dfd, e->d_name, 0) == 0;
		else if (S_ISDIR(st.st_mode))
			removed += sweep_dir(dfd, e->d_name, base);
	}
	closedir(d);
	return removed;
}

int
tp__lock_fd(int fd, int style, int op)
{
	struct flock fl;
	int rc;

	switch (style) {
	case TP__LOCK_FLOCK:
		return tp__flock(fd, op == TP__LOCK_SHARED ? LOCK_SH
				 : op == TP__LOCK_EXCLUSIVE ? LOCK_EX : LOCK_UN);
	case TP__LOCK_FCNTL:
		memset(&fl, 0, sizeof(fl));
		fl.l_type = op == TP__LOCK_SHARED ? F_RDLCK
			    : op == TP__LOCK_EXCLUSIVE ? F_WRLCK : F_UNLCK;
		fl.l_whence = SEEK_SET;	/* start 0, length 0: the whole file */
		while ((rc = fcntl(fd, F_SETLKW, &fl)) < 0 && errno == EINTR)
			continue;
		return rc;
	default:
		return 0;
	}
}

int
tp__rename_locked_style(const char *tmp, const char *target, int style,
			double timeout, tp_diag *diag)
{
	int fd, rc;

	if ((rc = tp__target_lock(&fd, target, style, timeout, diag)) < 0)
		return rc;
	rc = tp__rename_over(tmp, target, diag);
	if (fd >= 0)
		close(fd);
	return rc;
}

int
tp__finish_fd(int fd, const char *path, mode_t mode, int do_chown, uid_t uid,
	      gid_t gid, tp_diag *diag)
{
	if (do_chown && fchown(fd, uid, gid) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "set owner of %s", path);
	if (fchmod(fd, mode) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "set mode of %s", path);
	if (fsync(fd) < 0)
		return tp__diag_errno(diag, TP_EIO, errno, "error writing %s", path);
	return TP_OK;
}
