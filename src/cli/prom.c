/*
 * NAME
 *	prom - check's node_exporter textfile
 * DESCRIPTION
 *	See prom.h. The library's safe-write code is internal, so this is a
 *	small version of it for one file that nothing else writes: no lock
 *	(node_exporter only reads, and reads whole files thanks to rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "prom.h"

#define LAST_SUCCESS "tlspolicy_last_success_timestamp_seconds"

/* A last-success sample of the previous file. */
struct prev {
	char *table, *key, *value;
};

struct prevs {
	struct prev *v;
	size_t n;
};

static void
prevs_free(struct prevs *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].table);
		free(p->v[i].key);
		free(p->v[i].value);
	}
	free(p->v);
}

/* One label value after its opening quote; *s ends past the closing one. */
static char *
parse_value(const char **s)
{
	const char *p = *s;
	char *out = malloc(strlen(p) + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (; *p && *p != '"'; p++) {
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		p++;
		if (*p == 'n')
			*o++ = '\n';
		else if (*p == '\\' || *p == '"')
			*o++ = *p;
		else
			break;
	}
	if (*p != '"') {
		free(out);
		return NULL;
	}
	*o = '\0';
	*s = p + 1;
	return out;
}

/* 'NAME{table="T",key="K"} VALUE': 0 and the sample, -1 if not one. */
static int
parse_sample(const char *line, struct prev *out)
{
	const char *s = line + strlen(LAST_SUCCESS);
	char *end;

	memset(out, 0, sizeof(*out));
	if (*s++ != '{')
		return -1;
	while (*s != '}') {
		size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
		char **slot = NULL, *v;

		if (n == 5 && strncmp(s, "table", 5) == 0)
			slot = &out->table;
		else if (n == 3 && strncmp(s, "key", 3) == 0)
			slot = &out->key;
		if (n == 0 || s[n] != '=' || s[n + 1] != '"')
			goto bad;
		s += n + 2;
		if ((v = parse_value(&s)) == NULL)
			goto bad;
		if (slot != NULL && *slot == NULL)
			*slot = v;
		else
			free(v);
		if (*s == ',')
			s++;
		else if (*s != '}')
			goto bad;
	}
	s++;
	if (*s++ != ' ' || out->table == NULL || out->key == NULL)
		goto bad;
	errno = 0;
	(void)strtod(s, &end);
	if (end == s || errno || (*end && *end != ' ' && *end != '\n'))
		goto bad;
	if ((out->value = strndup(s, (size_t)(end - s))) == NULL)
		goto bad;
	return 0;
bad:
	free(out->table);
	free(out->key);
	memset(out, 0, sizeof(*out));
	return -1;
}

/* The previous file's last-success samples; ENOENT: none. */
static int
read_prev(const char *path, struct prevs *out)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	out->v = NULL;
	out->n = 0;
	if (fp == NULL) {
		if (errno != ENOENT)
			cli_warnf("%s: %s; last success times not kept", path, strerror(errno));
		return 0;
	}
	while ((len = getline(&line, &cap, fp)) > 0) {
		struct prev p, *v;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (strncmp(line, LAST_SUCCESS "{", sizeof(LAST_SUCCESS)) != 0
		    || parse_sample(line, &p) != 0)
			continue;
		if ((v = realloc(out->v, (out->n + 1) * sizeof(*v))) == NULL) {
			free(p.table);
			free(p.key);
			free(p.value);
			break;
		}
		out->v = v;
		out->v[out->n++] = p;
	}
	free(line);
	fclose(fp);
	return 0;
}

static const char *
prev_value(const struct prevs *p, const char *table, const char *key)
{
	for (size_t i = p->n; i-- > 0;)
		if (strcmp(p->v[i].table, table) == 0 && strcmp(p->v[i].key, key) == 0)
			return p->v[i].value;
	return NULL;
}

/* A label value as the text format wants it. */
static void
put_label(FILE *fp, const char *name, const char *v)
{
	fprintf(fp, "%s=\"", name);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(fp, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", fp);
		else
			fputc(*v, fp);
	}
	fputc('"', fp);
}

static void
put_head(FILE *fp, const char *name, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void
put_sample_start(FILE *fp, const char *name, const char *table, const char *key)
{
	fprintf(fp, "%s{", name);
	put_label(fp, "table", table);
	if (key != NULL) {
		fputc(',', fp);
		put_label(fp, "key", key);
	}
	fputs("} ", fp);
}

static void
write_metrics(FILE *fp, const char *table, const struct cli_prom_entry *e,
	      size_t n, int check_status, time_t now, const struct prevs *prev)
{
	size_t expiring = 0, succeeded = 0;

	for (size_t i = 0; e != NULL && i < n; i++) {
		expiring += e[i].not_after != 0;
		succeeded += e[i].probe_ok || prev_value(prev, table, e[i].key) != NULL;
	}
	if (e != NULL && n > 0) {
		put_head(fp, "tlspolicy_entry_status",
			 "Pin check of a TLS policy table entry: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
		for (size_t i = 0; i < n; i++) {
			put_sample_start(fp, "tlspolicy_entry_status", table, e[i].key);
			fprintf(fp, "%d\n", e[i].status);
		}
	}
	if (expiring > 0) {
		put_head(fp, "tlspolicy_pin_expiry_days",
			 "Days until the pinned certificate the entry's servers present expires (the earliest; negative when expired).");
		for (size_t i = 0; i < n; i++)
			if (e[i].not_after != 0) {
				put_sample_start(fp, "tlspolicy_pin_expiry_days", table, e[i].key);
				fprintf(fp, "%.3f\n", difftime(e[i].not_after, now) / 86400.0);
			}
		put_head(fp, "tlspolicy_pinned_cert_not_after_seconds",
			 "Expiry (notAfter) of the pinned certificate the entry's servers present, Unix time (the earliest).");
		for (size_t i = 0; i < n; i++)
			if (e[i].not_after != 0) {
				put_sample_start(fp, "tlspolicy_pinned_cert_not_after_seconds", table, e[i].key);
				fprintf(fp, "%lld\n", (long long)e[i].not_after);
			}
	}
	if (e != NULL && n > 0 && e[0].deferred >= 0) {
		put_head(fp, "tlspolicy_deferred_messages",
			 "Messages in Postfix's queue deferred with a TLS failure for the entry (postqueue -j).");
		for (size_t i = 0; i < n; i++) {
			put_sample_start(fp, "tlspolicy_deferred_messages", table, e[i].key);
			fprintf(fp, "%ld\n", e[i].deferred);
		}
	}
	if (e == NULL ? prev->n > 0 : succeeded > 0) {
		put_head(fp, LAST_SUCCESS,
			 "Unix time of the last check that probed every address of the entry with success.");
		for (size_t i = 0; e == NULL && i < prev->n; i++) {
			put_sample_start(fp, LAST_SUCCESS, prev->v[i].table, prev->v[i].key);
			fprintf(fp, "%s\n", prev->v[i].value);
		}
		for (size_t i = 0; e != NULL && i < n; i++) {
			const char *old = prev_value(prev, table, e[i].key);

			if (!e[i].probe_ok && old == NULL)
				continue;
			put_sample_start(fp, LAST_SUCCESS, table, e[i].key);
			if (e[i].probe_ok)
				fprintf(fp, "%lld\n", (long long)now);
			else
				fprintf(fp, "%s\n", old);
		}
	}
	put_head(fp, "tlspolicy_check_status",
		 "Result of the last check, its exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
	put_sample_start(fp, "tlspolicy_check_status", table, NULL);
	fprintf(fp, "%d\n", check_status);
	put_head(fp, "tlspolicy_check_timestamp_seconds", "Unix time of the last check.");
	put_sample_start(fp, "tlspolicy_check_timestamp_seconds", table, NULL);
	fprintf(fp, "%lld\n", (long long)now);
}

static int
fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		while ((rc = fsync(fd)) != 0 && errno == EINTR)
			;
		/* Some file systems cannot fsync a directory: not our error. */
		if (rc != 0 && (errno == EINVAL || errno == EROFS))
			rc = 0;
		close(fd);
	}
	free(copy);
	return rc;
}

int
cli_prom_write(const char *path, const char *table,
	       const struct cli_prom_entry *entries, size_t n,
	       int check_status, time_t now)
{
	struct prevs prev;
	struct stat st;
	size_t len = strlen(path);
	char *tmp = malloc(len + 16);
	mode_t mode = 0644;
	FILE *fp = NULL;
	int fd = -1, rc = -1, err;

	if (tmp == NULL)
		return cli_errorf("out of memory"), -1;
	/* Not *.prom: node_exporter must not read it half-written. */
	snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
	read_prev(path, &prev);
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		mode = st.st_mode & 07777;
	if ((fd = mkstemp(tmp)) < 0) {
		err = errno;
		free(tmp);
		prevs_free(&prev);
		return cli_errorf("cannot create a temporary file beside %s: %s", path,
				  strerror(err)), -1;
	}
	if (fchmod(fd, mode) != 0 || (fp = fdopen(fd, "w")) == NULL)
		goto fail;
	fd = -1;
	write_metrics(fp, table, entries, n, check_status, now, &prev);
	if (fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0)
		goto fail;
	if (fclose(fp) != 0) {
		fp = NULL;
		goto fail;
	}
	fp = NULL;
	if (rename(tmp, path) != 0)
		goto fail;
	if (fsync_dir(path) != 0)
		goto fail_renamed;
	rc = 0;
	goto out;
fail:
	err = errno;
	if (fp != NULL)
		fclose(fp);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	cli_errorf("error writing %s: %s", path, strerror(err));
	goto out;
fail_renamed:
	cli_errorf("error writing %s: fsync of its directory: %s", path, strerror(errno));
out:
	free(tmp);
	prevs_free(&prev);
	return rc;
}
