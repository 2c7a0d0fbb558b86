/*
 * NAME
 *	import - add or update many entries at once
 * DESCRIPTION
 *	Reads lines "KEY [--from HOST[:PORT]]... [--pin cert|pkey]
 *	[--wrapper] [LEVEL] [NAME=VALUE]..." from a file or stdin (blank
 *	lines and "#" comments skipped). Every line is checked first (key,
 *	level, attributes, pins' digest, duplicate keys), then every host of
 *	every line without pins is probed at once (--jobs, --timeout), then
 *	the table is opened (and locked) once, each line applied as set
 *	would apply it, and the table written once. A line with an error is
 *	reported with its number, and nothing is written, unless --partial:
 *	then the other lines are. --dry-run prints the change as one diff.
 *
 *	A line with --from and no match= pins pins what the hosts present,
 *	as set --fingerprint-from; with match= pins (what export writes) it
 *	pins those and records the hosts without probing. Lines that would
 *	probe one server with the same client settings (host and port,
 *	entry value, wrapper mode, SNI) share one probe.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* Longer lines are refused: no key and value of a policy table is this long. */
#define IMPORT_LINE_MAX 65536

static void
import_usage(FILE *fp)
{
	fprintf(fp,
		"usage: tlspolicy [global options] import FILE|- [--dry-run] [--partial]\n"
		"           [--jobs N] [--timeout S] [--reload] [--postfix-command PATH]\n"
		"\n"
		"Add or update many entries at once, one per line of FILE (- for stdin):\n"
		"\n"
		"  KEY [--from HOST[:PORT]]... [--pin cert|pkey] [--wrapper] [LEVEL] [NAME=VALUE]...\n"
		"\n"
		"as 'set KEY' would (--from is --fingerprint-from; LEVEL is --level,\n"
		"fingerprint when --from is given; NAME=VALUE is --attr, and match=FP|FP at\n"
		"level fingerprint gives the pins). Blank lines and # comments are skipped;\n"
		"export writes this format. The hosts of every line without match= pins\n"
		"are probed at once; then the table is read, changed and written once,\n"
		"under its lock. A line with an error is reported with its number and\n"
		"nothing is written, unless --partial.\n"
		"\n"
		"  --dry-run            print the change as one unified diff, write nothing\n"
		"  --partial            write the lines that are good even when others are not\n"
		"                       (exit status 1 still)\n"
		"  --jobs N             connections at once (default 16)\n"
		"  --timeout S          per-address probe deadline in seconds (default 30)\n"
		"  --reload             run 'postfix -c DIR reload' after writing\n"
		"  --postfix-command P  the postfix program for --reload (default: postfix)\n");
}

struct imp {
	unsigned long lineno;
	char *text;		/* the line, split in place into words */
	char *error;		/* why the line is not applied; NULL: good */
	struct set_args a;
	char *folded;		/* the key as Postfix looks it up */
	char *value;		/* probes: the entry's value, without pins */
	tp_client_settings *settings;
	tp_strarray probed, keys, specs;
	char (*norm)[TP_FINGERPRINT_MAX];
	size_t *targets;	/* the probe target of each host */
	const char **match;	/* match= of levels other than fingerprint */
	size_t nmatch;
};

struct imports {
	struct imp *v;
	size_t n, errors;
	const char *name;	/* the input, for messages */
};

static void
imp_fail(struct imports *in, struct imp *l, const char *fmt, ...) TP_CLI_PRINTF(3, 4);

static void
imp_fail(struct imports *in, struct imp *l, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	if (l->error != NULL)
		return;		/* the first error of a line is enough */
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	l->error = msg ? msg : strdup("out of memory");
	in->errors++;
}

static int
push(const char ***list, size_t *n, const char *s)
{
	const char **l = realloc(*list, (*n + 1) * sizeof(*l));

	if (l == NULL)
		return -1;
	l[(*n)++] = s;
	*list = l;
	return 0;
}

/*
 * read_lines - the input's lines (without terminators), each at most
 * IMPORT_LINE_MAX bytes: a longer one is kept as an error, its bytes
 * skipped, not held.
 */
static int
read_lines(FILE *fp, struct imports *in)
{
	char *buf = malloc(IMPORT_LINE_MAX + 2);
	size_t len = 0, alloc = 0;
	unsigned long lineno = 0;
	int c = 0, toolong = 0;

	if (buf == NULL)
		return cli_errorf("out of memory");
	while (c != EOF) {
		c = getc(fp);
		if (c != EOF && c != '\n') {
			if (len < IMPORT_LINE_MAX + 1)
				buf[len++] = (char)c;
			else
				toolong = 1;
			continue;
		}
		if (c == EOF && len == 0 && !toolong)
			break;
		lineno++;
		if (len > IMPORT_LINE_MAX)
			toolong = 1;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
		if (in->n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			struct imp *v = realloc(in->v, na * sizeof(*v));

			if (v == NULL)
				goto nomem;
			in->v = v;
			alloc = na;
		}
		memset(in->v + in->n, 0, sizeof(*in->v));
		in->v[in->n].lineno = lineno;
		if ((in->v[in->n].text = strndup(buf, toolong ? 0 : len)) == NULL)
			goto nomem;
		in->n++;
		if (toolong)
			imp_fail(in, in->v + in->n - 1,
				 "longer than %d bytes: not a policy entry", IMPORT_LINE_MAX);
		len = 0;
		toolong = 0;
	}
	if (ferror(fp)) {
		free(buf);
		return cli_errorf("read %s: %s", in->name, strerror(errno));
	}
	free(buf);
	return EX_SUCCESS;
nomem:
	free(buf);
	return cli_errorf("out of memory");
}

static int
is_sep(int c)
{
	return c == ' ' || c == '\t';
}

/* The next word of *p (split in place), NULL at the end. */
static char *
word(char **p)
{
	char *w, *s = *p;

	while (*s && is_sep((unsigned char)*s))
		s++;
	if (*s == '\0')
		return NULL;
	for (w = s; *s && !is_sep((unsigned char)*s); s++)
		;
	if (*s)
		*s++ = '\0';
	*p = s;
	return w;
}

/* parse_line - a line's words into l->a; errors recorded, not printed. */
static int
parse_line(struct imports *in, struct imp *l, const tp_doc_opts *dopts)
{
	char *p = l->text, *w, *level = NULL;
	tp_buf folded = TP_BUF_INIT;
	tp_level lv;
	int st;

	while (*p && is_sep((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;	/* blank or comment */
	l->a.key = word(&p);
	st = tp_key_fold(&folded, l->a.key, dopts);
	if (st == TP_ENOMEM)
		return -1;
	if (st != TP_OK || strpbrk(l->a.key, "\"") != NULL) {
		imp_fail(in, l, "\"%s\": not a key a policy table can hold", l->a.key);
		goto out;
	}
	if ((l->folded = strdup(folded.ptr)) == NULL)
		return -1;
	while ((w = word(&p)) != NULL) {
		const char *arg = NULL;

		if (strncmp(w, "--", 2) == 0) {
			char *eq = strchr(w, '=');

			if (eq != NULL) {
				*eq = '\0';
				arg = eq + 1;
			}
			if (strcmp(w, "--wrapper") == 0 && arg == NULL) {
				l->a.wrapper = 1;
				continue;
			}
			if (strcmp(w, "--from") != 0 && strcmp(w, "--pin") != 0) {
				imp_fail(in, l, "%s: unknown option (--from, --pin, --wrapper)", w);
				goto out;
			}
			if (arg == NULL && (arg = word(&p)) == NULL) {
				imp_fail(in, l, "%s needs a value", w);
				goto out;
			}
			if (strcmp(w, "--from") == 0) {
				if (*arg == '\0') {
					imp_fail(in, l, "--from needs a HOST[:PORT]");
					goto out;
				}
				if (push(&l->a.hosts, &l->a.nhosts, arg) != 0)
					return -1;
			} else if (strcmp(arg, "cert") && strcmp(arg, "pkey")) {
				imp_fail(in, l, "--pin %s: say cert or pkey", arg);
				goto out;
			} else
				l->a.pin_kind = arg;
			continue;
		}
		/* The value: Postfix splits it at commas too. */
		for (char *q = w, *tok; (tok = strsep(&q, ",")) != NULL;) {
			if (*tok == '\0')
				continue;
			if (strchr(tok, '=') == NULL) {
				if (level != NULL) {
					imp_fail(in, l, "\"%s\": a second level (after %s)", tok, level);
					goto out;
				}
				level = tok;
				continue;
			}
			if (tok[0] == '=') {
				imp_fail(in, l, "\"%s\": say NAME=VALUE", tok);
				goto out;
			}
			if (strncasecmp(tok, "match=", 6) == 0) {
				/* Fingerprint pins '|' apart; else the level's names. */
				if (level != NULL && strcasecmp(level, "fingerprint") != 0) {
					if (push(&l->match, &l->nmatch, tok + 6) != 0)
						return -1;
					continue;
				}
				for (char *m = tok + 6, *fp; (fp = strsep(&m, "|")) != NULL;)
					if (*fp && push(&l->a.pins, &l->a.npins, fp) != 0)
						return -1;
				continue;
			}
			if (push(&l->a.attrs, &l->a.nattrs, tok) != 0)
				return -1;
		}
	}
	if (level != NULL) {
		if (tp_level_parse(&lv, level) != 0) {
			imp_fail(in, l, "%s: unknown TLS security level", level);
			goto out;
		}
		l->a.level = level;
	}
	if (l->a.level == NULL && (l->a.nhosts > 0 || l->a.npins > 0))
		l->a.level = "fingerprint";
	if (l->a.level == NULL) {
		imp_fail(in, l, "%s: give a level, --from or match= pins", l->a.key);
		goto out;
	}
	if ((l->a.nhosts > 0 || l->a.npins > 0) && strcasecmp(l->a.level, "fingerprint") != 0) {
		imp_fail(in, l, "--from and match= pins need level fingerprint, not %s", l->a.level);
		goto out;
	}
	if (strcasecmp(l->a.level, "fingerprint") == 0 && l->a.nhosts == 0 && l->a.npins == 0) {
		imp_fail(in, l, "level fingerprint needs --from or match= pins");
		goto out;
	}
	if ((l->a.pin_kind || l->a.wrapper) && l->a.nhosts == 0) {
		imp_fail(in, l, "--pin and --wrapper go with --from");
		goto out;
	}
	l->a.nmanual = l->a.npins;
out:
	tp_buf_dispose(&folded);
	return 0;
}

static int
cmp_folded(const void *pa, const void *pb)
{
	const struct imp *a = *(const struct imp *const *)pa;
	const struct imp *b = *(const struct imp *const *)pb;
	int c = strcmp(a->folded, b->folded);

	return c ? c : (a->lineno > b->lineno) - (a->lineno < b->lineno);
}

/* Two lines for one key: which one was meant? Both refused. */
static int
find_duplicates(struct imports *in)
{
	struct imp **v = calloc(in->n ? in->n : 1, sizeof(*v));
	size_t k = 0;

	if (v == NULL)
		return -1;
	for (size_t i = 0; i < in->n; i++)
		if (in->v[i].folded != NULL)
			v[k++] = in->v + i;
	qsort(v, k, sizeof(*v), cmp_folded);
	for (size_t i = 1; i < k; i++)
		if (strcmp(v[i]->folded, v[i - 1]->folded) == 0) {
			size_t first = i - 1;

			while (first > 0 && strcmp(v[first - 1]->folded, v[i]->folded) == 0)
				first--;
			imp_fail(in, v[i], "%s: duplicate key, first on line %lu",
				 v[i]->a.key, v[first]->lineno);
			imp_fail(in, v[first], "%s: duplicate key, again on line %lu",
				 v[first]->a.key, v[i]->lineno);
		}
	free(v);
	return 0;
}

/*
 * The value an entry will have, without pins: what the probes connect
 * with (servername=, protocols=, ... decide what Postfix is shown).
 */
static int
append(char **s, const char *fmt, ...) TP_CLI_PRINTF(2, 3);

/* Append to a string of the heap (*s NULL: empty); -1 out of memory. */
static int
append(char **s, const char *fmt, ...)
{
	va_list ap;
	char *more = NULL, *both;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&more, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (*s == NULL) {
		*s = more;
		return 0;
	}
	n = asprintf(&both, "%s%s", *s, more);
	free(more);
	if (n < 0)
		return -1;
	free(*s);
	*s = both;
	return 0;
}

static int
probe_value(const tp_doc *doc, struct imp *l, char **out)
{
	size_t idx;
	tp_entry e;
	int bad = 0;

	*out = NULL;
	bad |= append(out, "fingerprint");
	if (tp_doc_find(doc, l->a.key, &idx) == 0 && tp_doc_entry_at(doc, idx, &e) == 0) {
		tp_policy *pol = NULL;

		tp_policy_parse(&pol, e.value, e.value_len, NULL);
		for (size_t i = 0; pol && i < tp_policy_attr_count(pol); i++) {
			const char *name, *value;
			int overridden = 0;

			tp_policy_attr_at(pol, i, &name, &value);
			if (strcasecmp(name, "match") == 0)
				continue;
			for (size_t j = 0; j < l->a.nattrs; j++)
				overridden |= strncasecmp(l->a.attrs[j], name, strlen(name)) == 0 &&
					      l->a.attrs[j][strlen(name)] == '=';
			if (!overridden)
				bad |= append(out, " %s=%s", name, value);
		}
		tp_policy_free(pol);
	}
	for (size_t j = 0; j < l->a.nattrs; j++)
		if (strchr(l->a.attrs[j], '=')[1] != '\0')
			bad |= append(out, " %s", l->a.attrs[j]);
	if (bad) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/*
 * host_port - "HOST", "HOST:PORT", "[HOST]:PORT" or a bare IPv6 address
 * into host (a copy, brackets off) and port (0: 25); -1 when malformed.
 */
static int
host_port(const char *spec, char **host, unsigned int *port)
{
	const char *colon, *end;
	char *stop;
	long p;

	*host = NULL;
	*port = 0;
	if (spec[0] == '[') {
		if ((end = strchr(spec, ']')) == NULL || end == spec + 1)
			return -1;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
		*host = strndup(spec + 1, (size_t)(end - spec - 1));
	} else if ((colon = strchr(spec, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
		if (colon == spec)
			return -1;
		*host = strndup(spec, (size_t)(colon - spec));
	} else {
		colon = NULL;	/* a name, or an IPv6 address without a port */
		*host = strdup(spec);
	}
	if (*host == NULL)
		return -1;
	if (colon != NULL) {
		errno = 0;
		p = strtol(colon + 1, &stop, 10);
		if (colon[1] == '\0' || *stop || errno || p < 1 || p > 65535) {
			free(*host);
			*host = NULL;
			return -1;
		}
		*port = (unsigned int)p;
	}
	return 0;
}

/*
 * One probe per distinct server and client settings: lines whose host,
 * entry value (without pins), wrapper mode and SNI for that host are the
 * same would be shown the same certificate, so they share the probe.
 */
struct probe_key {
	char *text;
	size_t target;
};

static int
find_or_add(struct probe_key **keys, size_t *n, char *text, size_t *target,
	    int *found)
{
	struct probe_key *k;

	for (size_t i = 0; i < *n; i++)
		if (strcmp((*keys)[i].text, text) == 0) {
			*target = (*keys)[i].target;
			*found = 1;
			free(text);
			return 0;
		}
	if ((k = realloc(*keys, (*n + 1) * sizeof(*k))) == NULL) {
		free(text);
		return -1;
	}
	*keys = k;
	k[*n].text = text;
	k[*n].target = SIZE_MAX;
	(*n)++;
	*found = 0;
	return 0;
}

/* Probe the hosts of every line without pins, all at once. */
static int
run_probes(struct cli *cli, struct imports *in, const tp_doc *doc, unsigned jobs,
	   double timeout, const char *digest)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *prober = NULL;
	struct probe_key *keys = NULL;
	size_t nkeys = 0, ntargets = 0, n;
	int rc = EX_FAIL;

	opts.timeout = timeout;
	opts.digest = digest;
	opts.jobs = jobs;
	cli_probe_defaults(cli, &opts);
	if (tp_prober_new(&prober, &opts, &diag) != 0)
		return cli_error(&diag);
	for (size_t i = 0; i < in->n; i++) {
		struct imp *l = in->v + i;

		if (l->error || l->a.nhosts == 0 || l->a.nmanual > 0)
			continue;
		if (probe_value(doc, l, &l->value) != 0 ||
		    (l->targets = calloc(l->a.nhosts, sizeof(*l->targets))) == NULL) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		if (tp_client_settings_new(&l->settings, cli_config(cli), l->folded, l->value,
					   &diag) != 0) {
			imp_fail(in, l, "%s", diag.message);
			continue;
		}
		tp_client_settings_set_wrappermode(l->settings, l->a.wrapper);
		for (size_t h = 0; h < l->a.nhosts && !l->error; h++) {
			tp_probe_target t = TP_PROBE_TARGET_INIT;
			const char *sni;
			char *host, *text;
			unsigned int port;
			int found;

			if (host_port(l->a.hosts[h], &host, &port) != 0) {
				imp_fail(in, l, "--from %s: say HOST, HOST:PORT or [HOST]:PORT",
					 l->a.hosts[h]);
				break;
			}
			sni = tp_client_settings_sni(l->settings, host);
			if (asprintf(&text, "%s\n%u\n%s\n%d\n%s", host, port, l->value,
				     l->a.wrapper, sni ? sni : "") < 0 ||
			    find_or_add(&keys, &nkeys, text, &l->targets[h], &found) != 0) {
				free(host);
				rc = cli_errorf("out of memory");
				goto out;
			}
			if (!found) {
				t.host = host;
				t.port = port;
				t.settings = l->settings;
				if (tp_prober_add_target(&l->targets[h], prober, &t, &diag) != 0) {
					imp_fail(in, l, "--from %s: %s", l->a.hosts[h], diag.message);
					l->targets[h] = SIZE_MAX;
				}
				keys[nkeys - 1].target = l->targets[h];
				ntargets++;
			}
			free(host);
		}
	}
	if (ntargets == 0) {
		rc = EX_SUCCESS;
		goto out;
	}
	cli_progress_start("import: probing", "addresses");
	if (tp_prober_run(prober, &diag) != 0) {
		cli_progress_end();
		rc = cli_error(&diag);
		goto out;
	}
	cli_progress_end();
	n = tp_prober_result_count(prober);
	/* Each line takes the results of its targets, shared or not. */
	for (size_t li = 0; li < in->n; li++) {
		struct imp *l = in->v + li;
		int pkey = l->a.pin_kind && strcmp(l->a.pin_kind, "pkey") == 0;

		for (size_t h = 0; l->settings && l->targets && h < l->a.nhosts; h++) {
			for (size_t i = 0; i < n && !l->error; i++) {
				const tp_probe_result *r = tp_prober_result(prober, i);
				char spec[TP_DIAG_MESSAGE_MAX], id[TP_FINGERPRINT_MAX];
				const char *fp;

				if (r->target != l->targets[h])
					continue;
				if (r->status != TP_OK || r->chain_len == 0) {
					imp_fail(in, l, "--from %s: %s%s%s: nothing pinned",
						 l->a.hosts[h], r->address ? r->address : "",
						 r->address ? ": " : "",
						 r->status != TP_OK ? r->error : "no certificate presented");
					continue;
				}
				fp = pkey ? r->chain[0].pkey_fingerprint : r->chain[0].fingerprint;
				cli_host_spec(spec, sizeof(spec), r->host, r->port);
				if (cli_key_id(id, &r->chain[0], digest) != 0
				    || (!cli_strarray_has(&l->probed, fp) && cli_strarray_push(&l->probed, fp) != 0)
				    || (!cli_strarray_has(&l->keys, id) && cli_strarray_push(&l->keys, id) != 0)
				    || (!cli_strarray_has(&l->specs, spec) && cli_strarray_push(&l->specs, spec) != 0)) {
					rc = cli_errorf("out of memory");
					goto out;
				}
			}
		}
	}
	/* A line whose hosts gave no address at all pinned nothing. */
	for (size_t li = 0; li < in->n; li++) {
		struct imp *l = in->v + li;

		if (l->settings && !l->error && l->probed.count == 0)
			imp_fail(in, l, "--from %s: no address could be probed; nothing pinned",
				 l->a.hosts[0]);
	}
	rc = EX_SUCCESS;
out:
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i].text);
	free(keys);
	tp_prober_free(prober);
	return rc;
}

/* The probed pins and hosts into the line's set arguments. */
static int
take_probed(struct imp *l)
{
	free(l->a.hosts);
	l->a.hosts = NULL;
	l->a.nhosts = 0;
	for (size_t i = 0; i < l->specs.count; i++)
		if (push(&l->a.hosts, &l->a.nhosts, l->specs.strings[i]) != 0)
			return -1;
	for (size_t i = 0; i < l->probed.count; i++)
		if (push(&l->a.pins, &l->a.npins, l->probed.strings[i]) != 0)
			return -1;
	l->a.keys = &l->keys;
	return 0;
}

static void
imp_free(struct imports *in)
{
	for (size_t i = 0; i < in->n; i++) {
		struct imp *l = in->v + i;

		free(l->text);
		free(l->error);
		free(l->folded);
		free(l->value);
		free(l->norm);
		free(l->a.pins);
		free(l->a.attrs);
		free(l->a.hosts);
		free(l->match);
		free(l->targets);
		tp_client_settings_free(l->settings);
		tp_strarray_dispose(&l->probed);
		tp_strarray_dispose(&l->keys);
		tp_strarray_dispose(&l->specs);
	}
	free(in->v);
}

int
cmd_import(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "partial", no_argument, NULL, 'p' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "reload", no_argument, NULL, 'r' },
		{ "postfix-command", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct imports in = { NULL, 0, 0, NULL };
	tp_table *table = NULL;
	tp_buf before = TP_BUF_INIT;
	tp_doc_opts dopts = cli_doc_opts(cli);
	const char *digest, *postfix_command = NULL;
	double timeout = 30;
	long jobs = 16;
	size_t added = 0, updated = 0, applied = 0;
	int ch, dry_run = 0, partial = 0, reload = 0, written = 0, rc = EX_FAIL;
	FILE *fp;

	while ((ch = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		char *end;

		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		case 'p':
			partial = 1;
			break;
		case 'j':
			jobs = strtol(optarg, &end, 10);
			if (end == optarg || *end || jobs < 1 || jobs > 1024)
				return cli_usage("import", "--jobs %s: say 1 to 1024", optarg);
			break;
		case 't':
			if ((timeout = cli_parse_seconds(optarg)) < 0)
				return cli_usage("import", "--timeout %s: say a number of seconds", optarg);
			break;
		case 'r':
			reload = 1;
			break;
		case 'P':
			postfix_command = optarg;
			break;
		case 'h':
			import_usage(stdout);
			return EX_SUCCESS;
		default:
			return cli_bad_option("import", ch, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage("import", argc == optind ? "which FILE (- for stdin)?" : "one FILE at a time");
	in.name = argv[optind];
	if ((digest = cli_checked_digest(cli)) == NULL)
		return EX_FAIL;
	if (strcmp(in.name, "-") == 0) {
		in.name = "(stdin)";
		fp = stdin;
	} else if ((fp = fopen(in.name, "r")) == NULL)
		return cli_errorf("open %s: %s", in.name, strerror(errno));
	rc = read_lines(fp, &in);
	if (fp != stdin)
		fclose(fp);
	if (rc != EX_SUCCESS)
		goto out;
	rc = EX_FAIL;
	for (size_t i = 0; i < in.n; i++)
		if (!in.v[i].error && parse_line(&in, in.v + i, &dopts) != 0) {
			rc = cli_errorf("out of memory");
			goto out;
		}
	if (find_duplicates(&in) != 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	/* Pins given by hand: the configured digest's length, or refused. */
	for (size_t i = 0; i < in.n; i++) {
		struct imp *l = in.v + i;
		size_t want = tp_digest_size(digest);

		if (l->error || l->a.nmanual == 0)
			continue;
		for (size_t k = 0; k < l->a.nmanual && !l->error; k++) {
			char norm[TP_FINGERPRINT_MAX];
			tp_diag d = TP_DIAG_INIT;

			if (tp_pin_normalize(norm, l->a.pins[k], &d) != 0)
				imp_fail(&in, l, "match=%s: %s", l->a.pins[k], d.message);
			else if ((strlen(norm) + 1) / 3 != want)
				imp_fail(&in, l, "match=%s: %zu bytes, but Postfix compares %s fingerprints (%zu bytes): it would never match",
					 l->a.pins[k], (strlen(norm) + 1) / 3, digest, want);
		}
	}
	/*
	 * One parse, under the lock, for the probes' values and the edits.
	 * The good lines are probed even when others have errors: every
	 * line's problem is reported in one run.
	 */
	if (cli_table_open(cli, dry_run ? 0 : TP_TABLE_WRITE, &table) != EX_SUCCESS)
		goto out;
	if (run_probes(cli, &in, tp_table_doc(table), (unsigned)jobs, timeout,
		       digest) != EX_SUCCESS)
		goto out;
	for (size_t i = 0; i < in.n; i++)
		if (in.v[i].error)
			cli_errorf("%s:%lu: %s", in.name, in.v[i].lineno, in.v[i].error);
	if (in.errors > 0 && !partial) {
		rc = cli_errorf("%s: %zu line%s with errors; nothing written (--partial writes the others)",
				in.name, in.errors, in.errors == 1 ? "" : "s");
		goto out;
	}
	if (dry_run && tp_doc_serialize(tp_table_doc(table), &before) != 0) {
		rc = cli_errorf("out of memory");
		goto out;
	}
	for (size_t i = 0; i < in.n; i++) {
		struct imp *l = in.v + i;
		tp_doc *doc = tp_table_doc(table);
		size_t idx, had = tp_doc_entry_count(doc);

		if (l->error || l->folded == NULL)
			continue;
		if (l->settings && take_probed(l) != 0) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		if (l->a.npins && (l->norm = calloc(l->a.npins, sizeof(*l->norm))) == NULL) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		/* Every edit of a line is checked before it; a failure here
		 * leaves the document half edited: nothing is written. */
		if (cli_set_check_pins(&l->a, digest, l->norm) != EX_SUCCESS ||
		    cli_set_apply(cli, &l->a, doc, digest, l->norm, &idx) != EX_SUCCESS ||
		    (l->nmatch > 0 && tp_doc_set_pins(doc, idx, l->match, l->nmatch) != 0) ||
		    cli_check_entry(doc, idx, tp_table_source(table)) != EX_SUCCESS) {
			rc = cli_errorf("%s:%lu: %s: cannot be applied; nothing written",
					in.name, l->lineno, l->a.key);
			goto out;
		}
		applied++;
		if (tp_doc_entry_count(doc) > had)
			added++;
		else
			updated++;
	}
	if ((rc = cli_finish_edit(table, &before, dry_run, &written)) != EX_SUCCESS)
		goto out;
	if (!dry_run && !cli->quiet)
		printf("import: %zu line%s applied (%zu added, %zu updated)%s%s; %s (%s)\n",
		       applied, applied == 1 ? "" : "s", added, updated,
		       in.errors ? ", " : "", in.errors ? "others not" : "",
		       written ? cli_written_note(table) : "nothing changed",
		       tp_table_source(table));
	rc = in.errors ? EX_FAIL : EX_SUCCESS;
	tp_table_free(table);
	table = NULL;
	if (written && reload && !dry_run) {
		int rrc = cli_reload(cli, postfix_command);

		if (rrc != EX_SUCCESS)
			rc = rrc;
	}
out:
	tp_table_free(table);
	tp_buf_dispose(&before);
	imp_free(&in);
	return rc;
}
