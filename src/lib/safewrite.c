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

int
tp__lock_acquire(int *fd_out, const char *path, tp_diag *diag)
{
	struct stat st;
	int fd;

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
	if (tp__flock(fd, LOCK_EX) < 0) {
		int err = errno;

		close(fd);
		return tp__diag_errno(diag, TP_EIO, err, "lock %s", path);
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
tp__temp_dir(tp_buf *tmp, const char *target, tp_diag *diag)
{
	if (temp_name(tmp, target) < 0)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	if (mkdtemp(tmp->ptr) == NULL) {
		int err = errno;

		tp_buf_dispose(tmp);
		return tp__diag_errno(diag, TP_EIO, err,
				      "create temporary directory for %s", target);
	}
	return TP_OK;
}

void
tp__temp_dir_remove(const char *dir)
{
	DIR *d;
	struct dirent *e;
	int dfd;

	if ((d = opendir(dir)) != NULL) {
		dfd = dirfd(d);
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				(void)unlinkat(dfd, e->d_name, 0);
		closedir(d);
	}
	(void)rmdir(dir);
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
tp__rename_locked(const char *tmp, const char *target, tp_diag *diag)
{
	int fd, rc;

	/*
	 * The lock is only for the benefit of readers and postmap; opening
	 * the old file read-only is enough for flock() and changes nothing.
	 */
	fd = open(target, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno != ENOENT)
		return tp__diag_errno(diag, TP_EIO, errno, "open %s", target);
	if (fd >= 0 && tp__flock(fd, LOCK_EX) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "lock %s", target);
		close(fd);
		return rc;
	}
	if (rename(tmp, target) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "rename %s to %s", tmp, target);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (fd >= 0)
		close(fd);
	return tp__fsync_dir(target, diag);
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
	/* fchown() first: it may clear set-id bits that fchmod() restores. */
	if (have_old && (st.st_uid != geteuid() || st.st_gid != getegid())
	    && fchown(fd, st.st_uid, st.st_gid) < 0
	    && !(errno == EPERM && geteuid() != 0)) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "set owner of %s", path);
		goto out;
	}
	if (fchmod(fd, have_old ? (st.st_mode & 07777) : 0644) < 0) {
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
	const char *slash = strrchr(target, '/'), *base;
	tp_buf dir = TP_BUF_INIT;
	struct dirent *e;
	size_t blen;
	int dfd, removed = 0;
	DIR *d;

	base = slash ? slash + 1 : target;
	blen = strlen(base);
	if (slash == NULL ? tp__buf_puts(&dir, ".") < 0
	    : tp__buf_put(&dir, target, slash == target ? 1 : (size_t)(slash - target)) < 0)
		return -1;
	dfd = open(dir.ptr, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tp_buf_dispose(&dir);
	if (dfd < 0)
		return -1;
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
			tp_diag *diag)
{
	int fd = -1, rc;

	if (style == TP__LOCK_FLOCK)
		return tp__rename_locked(tmp, target, diag);
	if (style == TP__LOCK_FCNTL) {
		/* fcntl() write locks need a descriptor open for writing. */
		fd = open(target, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		if (fd < 0 && errno != ENOENT && errno != EACCES && errno != EROFS
		    && errno != ELOOP)
			return tp__diag_errno(diag, TP_EIO, errno, "open %s", target);
		if (fd >= 0 && tp__lock_fd(fd, style, TP__LOCK_EXCLUSIVE) < 0) {
			rc = tp__diag_errno(diag, TP_EIO, errno, "lock %s", target);
			close(fd);
			return rc;
		}
	}
	if (rename(tmp, target) < 0) {
		rc = tp__diag_errno(diag, TP_EIO, errno, "rename %s to %s", tmp, target);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (fd >= 0)
		close(fd);
	return tp__fsync_dir(target, diag);
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
