/*
 * NAME
 *	stuck - the mail deferred behind the table's entries (stuck.h)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "stuck.h"

/*
 * The last line of what a program wrote on stderr, for a message:
 * postqueue's warnings come first, its fatal error last.
 */
static void
last_line(char *dst, size_t size, const char *text, size_t len)
{
	size_t start, n = 0;

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	for (start = len; start > 0 && text[start - 1] != '\n'; start--)
		;
	while (start + n < len && n + 1 < size) {
		unsigned char c = (unsigned char)text[start + n];

		/* ASCII only: it may end up in JSON, which takes valid UTF-8. */
		dst[n++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
}

/* The queue reader takes postqueue's output; only memory stops it. */
static int
feed_queue(void *ctx, const char *p, size_t n)
{
	tp_diag d = TP_DIAG_INIT;

	return tp_queue_feed(ctx, p, n, &d) == TP_ENOMEM ? -1 : 0;
}

/*
 * Run command_directory/NAME with args (no shell), its standard output
 * fed to q when q is not NULL, killed after timeout seconds (30 when
 * 0). 0 when it exits 0; else 1 with why (the last line of its standard
 * error, or how it ended), or TP_ENOMEM.
 */
static int
run_postfix(struct cli *cli, const char *name, const char *const args[],
	    double timeout, tp_queue *q, char *why, size_t whysize)
{
	char path[4096], err[1100];
	const char *argv[8];
	struct cli_run_opts o = { 0, 1, 1, timeout > 0 ? timeout : 30,
				  q ? feed_queue : NULL, q };
	struct cli_run_result r;
	size_t argc = 0;

	if (cli_postfix_program(cli, name, path, sizeof(path), why, whysize) < 0)
		return 1;
	argv[argc++] = path;
	for (size_t i = 0; args[i] != NULL && argc + 1 < sizeof(argv) / sizeof(argv[0]); i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	if (cli_run(argv, &o, &r) == 0)
		return 0;
	if (r.out_failed)
		return TP_ENOMEM;
	if (!r.ran)
		snprintf(err, sizeof(err), "%s", r.err);
	else if (r.timed_out)
		snprintf(err, sizeof(err), "%.300s did not finish within %.0f s", path, o.timeout);
	else if (r.errlen > 0)
		snprintf(err, sizeof(err), "%s", r.err);
	else
		snprintf(err, sizeof(err), "%.300s exited with status %d", path,
			 r.exited ? r.code : 128 + r.code);
	last_line(why, whysize, err, strlen(err));
	return 1;
}

/*
 * Next hop -> entry index (SIZE_MAX: none of ours), so a queue of many
 * messages to few destinations costs few policy lookups.
 */
struct dest_cache {
	struct dest_slot { char *dest; size_t entry; } *slots;
	size_t size, used;
};

static size_t
hash_str(const char *s)
{
	size_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct dest_slot *
cache_slot(struct dest_cache *c, const char *dest)
{
	size_t i;

	if (c->used * 2 >= c->size) {
		struct dest_cache bigger = { NULL, c->size ? c->size * 2 : 64, 0 };

		if ((bigger.slots = calloc(bigger.size, sizeof(*bigger.slots))) == NULL)
			return NULL;
		for (size_t k = 0; k < c->size; k++) {
			if (c->slots[k].dest == NULL)
				continue;
			for (i = hash_str(c->slots[k].dest) & (bigger.size - 1);
			     bigger.slots[i].dest != NULL; i = (i + 1) & (bigger.size - 1))
				;
			bigger.slots[i] = c->slots[k];
		}
		free(c->slots);
		bigger.used = c->used;
		*c = bigger;
	}
	for (i = hash_str(dest) & (c->size - 1); c->slots[i].dest != NULL;
	     i = (i + 1) & (c->size - 1))
		if (strcmp(c->slots[i].dest, dest) == 0)
			return &c->slots[i];
	return &c->slots[i];
}

static void
cache_free(struct dest_cache *c)
{
	for (size_t i = 0; i < c->size; i++)
		free(c->slots[i].dest);
	free(c->slots);
}

/* The entry of ours that Postfix's policy lookup of dest answers with. */
static int
entry_for(struct cli_stuck *s, struct cli_maps *maps, struct dest_cache *cache,
	  const char *dest, size_t *entry)
{
	struct dest_slot *slot = cache_slot(cache, dest);
	const char *matched = NULL;
	tp_map_answer a;
	tp_diag d = TP_DIAG_INIT;
	int rc;

	if (slot == NULL)
		return TP_ENOMEM;
	if (slot->dest != NULL) {
		*entry = slot->entry;
		return 0;
	}
	*entry = SIZE_MAX;
	memset(&a, 0, sizeof(a));
	rc = tp_maps_find_nexthop(maps->maps, dest, &a, &matched, &d);
	if (rc == TP_ENOMEM)
		return rc;
	/* A failed lookup answers with no entry of ours. */
	if (rc == 0 && a.status == TP_MAPS_FOUND && a.index == maps->table && matched != NULL) {
		for (size_t i = 0; i < s->n && *entry == SIZE_MAX; i++)
			if (strcasecmp(s->v[i].key, matched) == 0)
				*entry = i;
		if (*entry == SIZE_MAX) {
			struct cli_stuck_entry *v = realloc(s->v, (s->n + 1) * sizeof(*v));

			if (v == NULL)
				return TP_ENOMEM;
			s->v = v;
			memset(&v[s->n], 0, sizeof(v[s->n]));
			if ((v[s->n].key = strdup(matched)) == NULL)
				return TP_ENOMEM;
			*entry = s->n++;
		}
	}
	if ((slot->dest = strdup(dest)) == NULL)
		return TP_ENOMEM;
	slot->entry = *entry;
	cache->used++;
	return 0;
}

static int
count_message(struct cli_stuck *s, struct cli_maps *maps, tp_route *route,
	      struct dest_cache *cache, const tp_queue_message *m)
{
	int tls = 0, unrouted = 0, policy = 0;

	for (size_t r = 0; r < m->recipient_count; r++) {
		const tp_queue_recipient *rcpt = &m->recipients[r];
		const tp_route_result *res;
		tp_diag d = TP_DIAG_INIT;
		int rc;

		if (rcpt->tls == TP_QUEUE_TLS_NONE)
			continue;
		if (rcpt->tls == TP_QUEUE_TLS_POLICY && !policy) {
			policy = 1;
			if (cli_strarray_push(&s->policy_ids, m->queue_id) != 0)
				return TP_ENOMEM;
		}
		tls = 1;
		rc = route ? tp_route_find(route, rcpt->address, &res, &d) : 1;	/* no route: not counted */
		if (rc == TP_ENOMEM)
			return rc;
		if (rc != 0) {
			unrouted = 1;
			continue;
		}
		for (size_t k = 0; k < res->destination_count; k++) {
			struct cli_stuck_entry *e;
			size_t entry;

			if ((rc = entry_for(s, maps, cache, res->destinations[k], &entry)) != 0)
				return rc;
			if (entry == SIZE_MAX)
				continue;
			e = &s->v[entry];
			/* Messages come one at a time: counted already if it is the last. */
			if (e->ids.count > 0 && strcmp(e->ids.strings[e->ids.count - 1], m->queue_id) == 0)
				continue;
			if (cli_strarray_push(&e->ids, m->queue_id) != 0)
				return TP_ENOMEM;
			e->messages++;
			if (m->arrival_time >= 0 &&
			    (e->oldest == 0 || (time_t)m->arrival_time < e->oldest)) {
				e->oldest = (time_t)m->arrival_time;
				e->tls = rcpt->tls;
			} else if (e->messages == 1)
				e->tls = rcpt->tls;
		}
	}
	s->tls_messages += (size_t)tls;
	s->unrouted += (size_t)unrouted;
	return 0;
}

/*
 * Is the Postfix of config running? As postfix(1) tells, by the master's
 * pid file. Without a master postqueue reads the queue files itself
 * after seconds of retries, and only as root: not worth it for a queue
 * nothing delivers from.
 */
static int
master_running(tp_config *config, char *why, size_t size)
{
	const char *qdir = tp_config_get(config, "queue_directory");
	char path[4096], buf[64];
	long pid;
	ssize_t n;
	int fd;

	if (qdir == NULL || qdir[0] != '/') {
		snprintf(why, size, "queue_directory is not an absolute path");
		return 0;
	}
	snprintf(path, sizeof(path), "%s/pid/master.pid", qdir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		/* Mode 0600, root's: a monitor running as nobody asks postqueue. */
		if (errno == EACCES)
			return 1;
		snprintf(why, size, "Postfix is not running (%.300s: %s)", path, strerror(errno));
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 1 || (kill((pid_t)pid, 0) < 0 && errno != EPERM)) {
		snprintf(why, size, "Postfix is not running (%.300s names no live process)", path);
		return 0;
	}
	return 1;
}

int
cli_stuck_read(struct cli *cli, struct cli_maps *maps, double timeout,
	       struct cli_stuck *out)
{
	static const char *const args_tail[] = { "-j", NULL };
	tp_config *config = cli_config(cli);
	const char *args[4];
	struct dest_cache cache = { NULL, 0, 0 };
	tp_queue *q = NULL;
	tp_route *route = NULL;
	tp_diag d = TP_DIAG_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	if (config == NULL) {
		snprintf(out->why, sizeof(out->why), "no main.cf");
		return EX_SUCCESS;
	}
	if (!master_running(config, out->why, sizeof(out->why)))
		return EX_SUCCESS;
	args[0] = "-c";
	args[1] = tp_config_dir(config);
	args[2] = args_tail[0];
	args[3] = NULL;
	if (tp_queue_new(&q, &d) != 0)
		return cli_error(&d);
	rc = run_postfix(cli, "postqueue", args, timeout, q, out->why, sizeof(out->why));
	if (rc == TP_ENOMEM || (rc == 0 && tp_queue_end(q, &d) == TP_ENOMEM)) {
		tp_queue_free(q);
		return cli_errorf("out of memory reading the mail queue");
	}
	if (rc != 0) {
		tp_queue_free(q);
		return EX_SUCCESS;
	}
	out->available = 1;
	/* Our table is not in smtp_tls_policy_maps: no mail waits for it. */
	if (maps->maps == NULL || maps->table == SIZE_MAX) {
		tp_queue_free(q);
		return EX_SUCCESS;
	}
	if (tp_route_new(&route, config, &d) == TP_ENOMEM)
		rc = TP_ENOMEM;
	for (size_t i = 0; rc == 0 && i < tp_queue_count(q); i++) {
		const tp_queue_message *m = tp_queue_at(q, i);

		/* Held mail is not retried; incoming mail was not tried yet. */
		if (strcmp(m->queue_name, "deferred") != 0 && strcmp(m->queue_name, "active") != 0)
			continue;
		rc = count_message(out, maps, route, &cache, m);
	}
	cache_free(&cache);
	tp_route_free(route);
	tp_queue_free(q);
	if (rc != 0) {
		cli_stuck_free(out);
		return cli_errorf("out of memory reading the mail queue");
	}
	return EX_SUCCESS;
}

const struct cli_stuck_entry *
cli_stuck_find(const struct cli_stuck *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->v[i].key, key) == 0)
			return &s->v[i];
	return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
cli_stuck_flush(struct cli *cli, const struct cli_stuck *s, char *const *keys,
		size_t nkeys, double timeout, int report, size_t *flushed)
{
	const char **ids = NULL;
	size_t nids = 0, total = 0, done = 0, failed = 0;
	char why[512];
	int rc = EX_SUCCESS;

	if (!s->available) {
		cli_warnf("--flush: the mail queue cannot be read (%s): nothing flushed", s->why);
		return EX_FAIL;
	}
	for (size_t i = 0; i < s->n; i++)
		total += s->v[i].ids.count;
	total += s->policy_ids.count;
	if (total > 0 && (ids = calloc(total, sizeof(*ids))) == NULL)
		return cli_errorf("out of memory");
	for (size_t i = 0; i < s->n; i++) {
		size_t k = 0;

		for (; k < nkeys && strcasecmp(keys[k], s->v[i].key) != 0; k++)
			;
		if (nkeys > 0 && k == nkeys)
			continue;
		for (size_t j = 0; j < s->v[i].ids.count; j++)
			ids[nids++] = s->v[i].ids.strings[j];
	}
	for (size_t j = 0; nkeys == 0 && j < s->policy_ids.count; j++)
		ids[nids++] = s->policy_ids.strings[j];
	/* A message for two repaired entries is asked for once. */
	qsort(ids, nids, sizeof(*ids), cmp_str);
	for (size_t i = 0; i < nids; i++) {
		const char *args[] = { "-c", tp_config_dir(cli_config(cli)), "-i", ids[i], NULL };

		if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
			continue;
		if (run_postfix(cli, "postqueue", args, timeout, NULL, why, sizeof(why)) != 0) {
			if (failed++ == 0)
				cli_errorf("postqueue -i %s: %s", ids[i], why);
			rc = EX_FAIL;
			continue;
		}
		done++;
	}
	free(ids);
	if (report && !cli->quiet)
		printf("flushed: %zu deferred message%s asked to be retried now (postqueue -i)%s\n",
		       done, done == 1 ? "" : "s",
		       failed ? "; some could not be asked" : "");
	if (flushed != NULL)
		*flushed = done;
	return rc;
}

int
cli_stuck_release(struct cli *cli, char *const *keys, size_t nkeys, double timeout,
		  int report, size_t *flushed)
{
	struct cli_maps maps = { NULL, SIZE_MAX };
	struct cli_stuck s;
	tp_table *table = NULL;
	int rc;

	if (flushed != NULL)
		*flushed = 0;
	/* The table as written now: its database answers Postfix's lookups. */
	if (cli_table_open(cli, 0, &table) != EX_SUCCESS)
		return EX_FAIL;
	cli_maps_open(cli, tp_map_type_name(tp_table_type(table)), tp_table_source(table), &maps);
	tp_table_free(table);
	rc = cli_stuck_read(cli, &maps, timeout, &s);
	if (rc == EX_SUCCESS)
		rc = cli_stuck_flush(cli, &s, keys, nkeys, timeout, report, flushed);
	cli_stuck_free(&s);
	cli_maps_close(&maps);
	return rc;
}

void
cli_stuck_free(struct cli_stuck *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		tp_strarray_dispose(&s->v[i].ids);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
	tp_strarray_dispose(&s->policy_ids);
}

const char *
cli_stuck_age(char *buf, size_t size, long long seconds)
{
	if (seconds < 0)
		seconds = 0;
	if (seconds < 60)
		snprintf(buf, size, "%llds", seconds);
	else if (seconds < 3600)
		snprintf(buf, size, "%lldm", seconds / 60);
	else if (seconds < 86400)
		snprintf(buf, size, "%lldh%lldm", seconds / 3600, seconds % 3600 / 60);
	else
		snprintf(buf, size, "%lldd%lldh", seconds / 86400, seconds % 86400 / 3600);
	return buf;
}

/* Postfix's words for what keeps the mail, as its delay reasons say. */
const char *
cli_stuck_reason(tp_queue_tls tls)
{
	switch (tls) {
	case TP_QUEUE_TLS_CERT:
		return "Server certificate not verified";
	case TP_QUEUE_TLS_NOT_OFFERED:
		return "TLS not offered";
	case TP_QUEUE_TLS_REFUSED:
		return "STARTTLS refused";
	case TP_QUEUE_TLS_HANDSHAKE:
		return "TLS handshake failure";
	case TP_QUEUE_TLS_STARTTLS_LOST:
		return "connection lost at STARTTLS";
	case TP_QUEUE_TLS_POLICY:
		return "TLS policy problem";
	case TP_QUEUE_TLS_DANE:
		return "TLSA lookup problem";
	case TP_QUEUE_TLS_LOCAL:
		return "our TLS engine unavailable";
	case TP_QUEUE_TLS_NONE:
		break;
	}
	return "TLS failure";
}

const char *
cli_stuck_words(char *buf, size_t size, const struct cli_stuck_entry *e, time_t now)
{
	char age[32];

	if (e->oldest != 0)
		snprintf(buf, size, "%zu message%s deferred (%s), oldest %s ago",
			 e->messages, e->messages == 1 ? "" : "s", cli_stuck_reason(e->tls),
			 cli_stuck_age(age, sizeof(age), (long long)(now - e->oldest)));
	else
		snprintf(buf, size, "%zu message%s deferred (%s)",
			 e->messages, e->messages == 1 ? "" : "s", cli_stuck_reason(e->tls));
	return buf;
}
