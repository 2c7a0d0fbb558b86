/*
 * Small helpers shared by the commands: option errors, digest checks,
 * unified diffs for --dry-run, and running "postfix reload".
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int
cli_bad_option(const char *command, int ch, char **argv)
{
	const char *opt = optind > 0 ? argv[optind - 1] : "?";

	if (ch == ':')
		return cli_usage(command, "option %s needs an argument", opt);
	if (optopt && optopt != '?')
		return cli_usage(command, "unknown option -%c", optopt);
	return cli_usage(command, "unknown option %s", opt);
}

const char *
cli_checked_digest(struct cli *cli)
{
	const char *digest = cli_digest(cli);

	if (tp_digest_check(digest) != 0) {
		if (cli->digest_opt)
			cli_errorf("-d %s: digest unknown to OpenSSL", digest);
		else
			cli_errorf("%s/main.cf: smtp_tls_fingerprint_digest = \"%s\" is not a digest OpenSSL knows; Postfix cannot use it either",
				   tp_config_dir(cli->config), digest);
		return NULL;
	}
	return digest;
}

int
cli_digest_equal(const char *a, const char *b)
{
	/* Names differ ("sha256", "SHA2-256"); the output size tells the
	 * digests Postfix can use apart, and is what a pin's length shows. */
	return strcasecmp(a, b) == 0
	    || (tp_digest_size(a) != 0 && tp_digest_size(a) == tp_digest_size(b));
}

const char *
cli_db_state_name(tp_db_state state)
{
	switch (state) {
	case TP_DB_IN_STEP:
		return "in step";
	case TP_DB_MISSING:
		return "missing";
	case TP_DB_STALE:
		return "out of step with the source";
	}
	return "unknown";
}

struct lines {
	const char **start;
	size_t *len;
	uint32_t *id;		/* equal lines, equal ids (intern_lines) */
	size_t n;
};

static int
split_lines(struct lines *l, const char *s, size_t len)
{
	size_t cap = 16;

	l->n = 0;
	l->start = malloc(cap * sizeof(*l->start));
	l->len = malloc(cap * sizeof(*l->len));
	if (!l->start || !l->len)
		return -1;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - s) + 1 : len;

		if (l->n == cap) {
			cap *= 2;
			const char **ns = realloc(l->start, cap * sizeof(*ns));
			if (!ns)
				return -1;
			l->start = ns;
			size_t *nlen = realloc(l->len, cap * sizeof(*nlen));
			if (!nlen)
				return -1;
			l->len = nlen;
		}
		l->start[l->n] = s + i;
		l->len[l->n++] = end - i;
		i = end;
	}
	return 0;
}

static uint64_t
line_hash(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037u;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211u;
	return h;
}

/*
 * Give every line of a and b a number, the same for equal lines: each
 * line is hashed and compared with the first of its hash once, so the
 * whole costs about the bytes of both texts, and the diff then compares
 * numbers. (Comparing the lines themselves at every cell of the LCS
 * table cost cells times line length: minutes for a table of long,
 * alike lines.)
 */
static int
intern_lines(struct lines *a, struct lines *b)
{
	struct slot {
		uint64_t hash;
		const char *s;
		size_t len;
		uint32_t id;
	} *slots;
	struct lines *both[2] = { a, b };
	size_t total = a->n + b->n, size = 16, mask;
	uint32_t next = 0;

	if (total > UINT32_MAX / 2)
		return -1;
	while (size < 2 * total)
		size *= 2;
	mask = size - 1;
	if ((slots = calloc(size, sizeof(*slots))) == NULL)
		return -1;
	for (int k = 0; k < 2; k++) {
		struct lines *l = both[k];

		if ((l->id = malloc((l->n ? l->n : 1) * sizeof(*l->id))) == NULL) {
			free(slots);
			return -1;
		}
		for (size_t i = 0; i < l->n; i++) {
			uint64_t h = line_hash(l->start[i], l->len[i]);
			size_t at = (size_t)h & mask;

			/* Open addressing; the table is at most half full. */
			while (slots[at].s != NULL
			       && !(slots[at].hash == h && slots[at].len == l->len[i]
				    && memcmp(slots[at].s, l->start[i], l->len[i]) == 0))
				at = (at + 1) & mask;
			if (slots[at].s == NULL)
				slots[at] = (struct slot){ h, l->start[i], l->len[i], next++ };
			l->id[i] = slots[at].id;
		}
	}
	free(slots);
	return 0;
}

static int
same_line(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
	return a->id[i] == b->id[j];
}

static void
put_line(FILE *fp, char tag, const struct lines *l, size_t i)
{
	fputc(tag, fp);
	fwrite(l->start[i], 1, l->len[i], fp);
	if (l->len[i] == 0 || l->start[i][l->len[i] - 1] != '\n')
		fputs("\n\\ No newline at end of file\n", fp);
}

/* An edit script step: 0 both, 1 only in a, 2 only in b. */
struct op {
	int kind;
	size_t ai, bi;
};

#define DIFF_CONTEXT 3
/* Beyond this many cells of the LCS table (64 MB), one replace hunk is shown. */
#define DIFF_MAX_CELLS ((size_t)16 * 1024 * 1024)

/*
 * Do the (m + 1) * (n + 1) cells of the LCS table fit DIFF_MAX_CELLS?
 * Asked without multiplying: the product of two line counts overflows a
 * 32-bit size_t at 65536 lines each, and a wrapped product would pass
 * the test and size the table far too small.
 */
static int
diff_cells_fit(size_t m, size_t n)
{
	return m < DIFF_MAX_CELLS && n < DIFF_MAX_CELLS
	    && n + 1 <= DIFF_MAX_CELLS / (m + 1);
}

int
cli_print_diff(FILE *fp, const char *label, const char *a, size_t alen,
	       const char *b, size_t blen)
{
	struct lines la = { 0 }, lb = { 0 };
	struct op *ops = NULL;
	size_t nops = 0, pre = 0, sa, sb, m, n;
	unsigned *lcs = NULL;
	int rc = 0;

	if (alen == blen && memcmp(a, b, alen) == 0)
		return 0;
	if (split_lines(&la, a, alen) != 0 || split_lines(&lb, b, blen) != 0
	    || intern_lines(&la, &lb) != 0)
		goto nomem;
	while (pre < la.n && pre < lb.n && same_line(&la, pre, &lb, pre))
		pre++;
	sa = la.n;
	sb = lb.n;
	while (sa > pre && sb > pre && same_line(&la, sa - 1, &lb, sb - 1)) {
		sa--;
		sb--;
	}
	m = sa - pre;
	n = sb - pre;
	/* At most every line of both, plus one: no overflow for real texts. */
	if (la.n + lb.n >= SIZE_MAX / sizeof(*ops)
	    || (ops = malloc((la.n + lb.n + 1) * sizeof(*ops))) == NULL)
		goto nomem;
	for (size_t i = 0; i < pre; i++)
		ops[nops++] = (struct op){ 0, i, i };
	if (diff_cells_fit(m, n)
	    && (lcs = calloc((m + 1) * (n + 1), sizeof(*lcs))) != NULL) {
		/* Longest common subsequence of the middle, then walk it. */
		for (size_t i = m; i-- > 0;)
			for (size_t j = n; j-- > 0;)
				lcs[i * (n + 1) + j] = same_line(&la, pre + i, &lb, pre + j)
				    ? lcs[(i + 1) * (n + 1) + j + 1] + 1
				    : (lcs[(i + 1) * (n + 1) + j] > lcs[i * (n + 1) + j + 1]
					   ? lcs[(i + 1) * (n + 1) + j] : lcs[i * (n + 1) + j + 1]);
		size_t i = 0, j = 0;
		while (i < m || j < n) {
			if (i < m && j < n && same_line(&la, pre + i, &lb, pre + j)) {
				ops[nops++] = (struct op){ 0, pre + i, pre + j };
				i++, j++;
			} else if (i < m && (j == n || lcs[(i + 1) * (n + 1) + j] >= lcs[i * (n + 1) + j + 1])) {
				/* Removals before additions, as diff -u shows them. */
				ops[nops++] = (struct op){ 1, pre + i, pre + j };
				i++;
			} else {
				ops[nops++] = (struct op){ 2, pre + i, pre + j };
				j++;
			}
		}
	} else {
		for (size_t i = 0; i < m; i++)
			ops[nops++] = (struct op){ 1, pre + i, pre };
		for (size_t j = 0; j < n; j++)
			ops[nops++] = (struct op){ 2, sa, pre + j };
	}
	for (size_t i = sa, j = sb; i < la.n; i++, j++)
		ops[nops++] = (struct op){ 0, i, j };

	fprintf(fp, "--- %s\n+++ %s (new)\n", label, label);
	for (size_t k = 0; k < nops;) {
		size_t first, last, ca = 0, cb = 0;

		while (k < nops && ops[k].kind == 0)
			k++;
		if (k == nops)
			break;
		/* A hunk: from DIFF_CONTEXT before this change to DIFF_CONTEXT
		 * after the last change closer than 2*DIFF_CONTEXT to the next. */
		first = k > DIFF_CONTEXT ? k - DIFF_CONTEXT : 0;
		last = k;
		for (size_t z = k, run = 0; z < nops; z++) {
			if (ops[z].kind != 0) {
				last = z;
				run = 0;
			} else if (++run > 2 * DIFF_CONTEXT)
				break;
		}
		last = last + DIFF_CONTEXT < nops ? last + DIFF_CONTEXT : nops - 1;
		for (size_t z = first; z <= last; z++) {
			ca += ops[z].kind != 2;
			cb += ops[z].kind != 1;
		}
		fprintf(fp, "@@ -%zu,%zu +%zu,%zu @@\n",
			ca ? ops[first].ai + 1 : ops[first].ai, ca,
			cb ? ops[first].bi + 1 : ops[first].bi, cb);
		for (size_t z = first; z <= last; z++) {
			if (ops[z].kind == 0)
				put_line(fp, ' ', &la, ops[z].ai);
			else if (ops[z].kind == 1)
				put_line(fp, '-', &la, ops[z].ai);
			else
				put_line(fp, '+', &lb, ops[z].bi);
		}
		k = last + 1;
	}
	goto out;
nomem:
	rc = cli_errorf("out of memory showing the changes to %s", label);
out:
	free(lcs);
	free(ops);
	free(la.start);
	free(la.len);
	free(la.id);
	free(lb.start);
	free(lb.len);
	free(lb.id);
	return rc;
}

int
cli_postfix_program(struct cli *cli, const char *name, char *path,
		    size_t pathsize, char *why, size_t whysize)
{
	tp_config *config = cli_config(cli);
	const char *cmddir = config ? tp_config_get(config, "command_directory") : NULL;

	if (cmddir == NULL || *cmddir == '\0')
		cmddir = "/usr/sbin";
	if (cmddir[0] != '/') {
		snprintf(why, whysize, "command_directory = %s is not an absolute path", cmddir);
		return -1;
	}
	if ((size_t)snprintf(path, pathsize, "%s/%s", cmddir, name) >= pathsize) {
		snprintf(why, whysize, "command_directory = %.200s... is too long", cmddir);
		return -1;
	}
	return 0;
}

int
cli_reload(struct cli *cli, const char *command)
{
	const char *dir = cli->config_dir;
	char path[4096], why[512];
	tp_config *config = cli_config(cli);
	/* A --postfix-command without a slash is looked up in Postfix's PATH. */
	struct cli_run_opts o = { 1, 0, 0, 0, NULL, NULL };
	struct cli_run_result r;

	if (dir == NULL)
		dir = config ? tp_config_dir(config) : "/etc/postfix";
	if (command == NULL) {
		/* Postfix's own, by absolute path: not whatever PATH finds first. */
		if (cli_postfix_program(cli, "postfix", path, sizeof(path), why, sizeof(why)) < 0)
			return cli_errorf("%s/main.cf: %s; cannot run postfix reload", dir, why);
		command = path;
	}
	/* Reloading Postfix is root's job, whoever's table was written. */
	if (cli_regain_root(cli) != EX_SUCCESS)
		return EX_FAIL;
	{
		const char *argv[] = { command, "-c", dir, "reload", NULL };

		if (cli_run(argv, &o, &r) == 0)
			return EX_SUCCESS;
	}
	if (!r.ran)
		return cli_errorf("%s", r.err);
	if (r.exited)
		return cli_errorf("%s -c %s reload failed (exit status %d)", command,
				  dir, r.code);
	return cli_errorf("%s -c %s reload killed by signal %d", command, dir, r.code);
}

const char *
cli_dns_servers(void)
{
	const char *s = getenv("TLSPOLICY_DNS_SERVERS");

	return s != NULL && s[0] != '\0' ? s : NULL;
}

const char *
cli_iso_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
	return buf;
}

time_t
cli_parse_iso(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return 0;
	return timegm(&tm);
}

time_t
cli_now(void)
{
	const char *s = getenv("TLSPOLICY_NOW");
	char *end;
	long long secs;
	time_t t;

	if (s == NULL || *s == '\0')
		return time(NULL);
	if ((t = cli_parse_iso(s)) != 0)
		return t;
	secs = strtoll(s, &end, 10);
	if (end != s && *end == '\0' && secs > 0)
		return (time_t)secs;
	cli_warnf("TLSPOLICY_NOW=%s: neither an ISO time (2026-11-29T12:00:00Z) nor seconds; using the clock", s);
	return time(NULL);
}

void
cli_probe_defaults(struct cli *cli, tp_probe_opts *opts)
{
	opts->dns_servers = cli_dns_servers();
	if (cli->verbose)
		opts->trace = cli_trace_to_stderr;
}

void
cli_delivery_defaults(struct cli *cli, tp_delivery_opts *opts)
{
	opts->dns_servers = cli_dns_servers();
	/* check and rotate weigh DANE evidence: TLSA records are wanted. */
	opts->dane = 1;
	if (cli->verbose)
		opts->trace = cli_trace_to_stderr;
}

int
cli_key_id(char out[TP_FINGERPRINT_MAX], const tp_probe_cert *leaf,
	   const char *probe_digest)
{
	if (probe_digest != NULL && strcasecmp(probe_digest, "sha256") == 0) {
		memcpy(out, leaf->pkey_fingerprint, sizeof(leaf->pkey_fingerprint));
		return 0;
	}
	return tp_fingerprint_der(out, leaf->der, leaf->der_len, "sha256",
				  TP_PIN_PKEY, NULL) == 0 ? 0 : -1;
}

int
cli_finish_edit(tp_table *table, const tp_buf *before, int dry_run,
		int *written)
{
	tp_buf after = TP_BUF_INIT;
	tp_diag diag = TP_DIAG_INIT;
	int rc;

	*written = 0;
	if (dry_run) {
		if (tp_doc_serialize(tp_table_doc(table), &after) != 0)
			return cli_errorf("out of memory");
		rc = cli_print_diff(stdout, tp_table_source(table),
				    before->ptr ? before->ptr : "", before->size,
				    after.ptr ? after.ptr : "", after.size);
		tp_buf_dispose(&after);
		return rc;
	}
	if (tp_table_commit(table, &diag) != 0)
		return cli_error(&diag);
	*written = 1;
	/* texthash: no database; Postfix reads the source at process start. */
	if (tp_table_type(table) == TP_MAP_TEXTHASH)
		cli_notef("texthash:%s: Postfix reads it when a process starts: the change takes effect with 'postfix reload' (--reload)",
			  tp_table_source(table));
	return EX_SUCCESS;
}
