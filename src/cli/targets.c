/*
 * NAME
 *	targets - which entries rotate and check look at, and where
 * DESCRIPTION
 *	See targets.h.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "targets.h"

static void
target_dispose(struct cli_target *t)
{
	free(t->key);
	free(t->value);
	free(t->problem);
	free(t->host_error);
	free(t->sni);
	tp_policy_free(t->policy);
	tp_strarray_dispose(&t->hosts);
	tp_strarray_dispose(&t->keys);
}

void
cli_targets_free(struct cli_targets *t)
{
	for (size_t i = 0; i < t->n; i++)
		target_dispose(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

/* Where to probe: annotation, the key's own host, or the domain's MX. */
static int
find_hosts(struct cli_target *t, const tp_entry *e)
{
	char host[512], spec[600], err[TP_DIAG_MESSAGE_MAX];
	unsigned int port;
	int kind;

	if (e->from_count > 0) {
		t->hosts_from = "annotation";
		for (size_t i = 0; i < e->from_count; i++)
			if (cli_strarray_push(&t->hosts, e->from[i]) != 0)
				return -1;
		return 0;
	}
	kind = cli_key_host(t->key, host, sizeof(host), &port);
	if (kind == 1) {
		t->hosts_from = "key";
		cli_host_spec(spec, sizeof(spec), host, port);
		return cli_strarray_push(&t->hosts, spec);
	}
	if (kind == 0 && host[0] == '.') {
		snprintf(err, sizeof(err),
			 "%s matches subdomains and names no host: record the hosts with 'tlspolicy set %s --fingerprint-from HOST'",
			 t->key, t->key);
	} else if (kind == 0) {
		/* Looked up for all targets at once by cli_targets_mx(). */
		t->hosts_from = "MX";
		t->needs_mx = 1;
		return 0;
	} else {
		snprintf(err, sizeof(err), "%s: not a next-hop form, no host to probe", t->key);
	}
	t->hosts_from = NULL;
	return (t->host_error = strdup(err)) == NULL ? -1 : 0;
}

static int
add_target(struct cli_targets *out, const tp_doc *doc,
	   size_t idx)
{
	struct cli_target *t, *v;
	tp_diag diag = TP_DIAG_INIT;
	char host[512];
	unsigned int port;
	const char *sn;
	tp_entry e;
	int rc;

	if (tp_doc_entry_at(doc, idx, &e) != 0)
		return -1;
	v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	out->v = v;
	t = &v[out->n++];
	memset(t, 0, sizeof(*t));
	t->index = idx;
	t->line = e.line;
	if ((t->key = strndup(e.key, e.key_len)) == NULL ||
	    (t->value = strndup(e.value, e.value_len)) == NULL)
		return -1;
	rc = tp_policy_parse(&t->policy, e.value, e.value_len, &diag);
	if (t->policy == NULL)
		return -1;
	t->valid = rc == 0;
	if (!t->valid && (t->problem = strdup(diag.message)) == NULL)
		return -1;
	t->kind = e.pin_kind && strcmp(e.pin_kind, "pkey") == 0 ? TP_PIN_PKEY : TP_PIN_CERT;
	for (size_t i = 0; i < e.key_count; i++)
		if (cli_strarray_push(&t->keys, e.keys[i]) != 0)
			return -1;
	if (cli_key_host(t->key, host, sizeof(host), &port) < 0)
		snprintf(host, sizeof(host), "%s", t->key);
	sn = cli_sni(tp_policy_attr(t->policy, "servername"), host);
	if (sn != NULL && (t->sni = strdup(sn)) == NULL)
		return -1;
	/* An entry Postfix rejects at another level has no pins to probe. */
	if (tp_policy_level(t->policy) != TP_LEVEL_FINGERPRINT)
		return 0;
	return find_hosts(t, &e);
}

int
cli_targets_collect(const tp_doc *doc, char **keys,
		    size_t nkeys, int include_invalid, struct cli_targets *out)
{
	size_t n = tp_doc_entry_count(doc), idx;

	out->v = NULL;
	out->n = 0;
	if (nkeys == 0) {
		for (size_t i = 0; i < n; i++) {
			tp_entry e;
			tp_policy *p = NULL;
			int rc, take;

			if (tp_doc_entry_at(doc, i, &e) != 0 || e.duplicate)
				continue;
			rc = tp_policy_parse(&p, e.value, e.value_len, NULL);
			if (p == NULL)
				goto nomem;
			take = tp_policy_level(p) == TP_LEVEL_FINGERPRINT
			    || (include_invalid && rc != 0);
			tp_policy_free(p);
			if (take && add_target(out, doc, i) != 0)
				goto nomem;
		}
		return EX_SUCCESS;
	}
	for (size_t k = 0; k < nkeys; k++) {
		struct cli_target *t;
		int dup = 0;

		if (tp_doc_find(doc, keys[k], &idx) != 0) {
			cli_targets_free(out);
			return cli_errorf("%s: no such entry", keys[k]);
		}
		for (size_t j = 0; j < out->n; j++)
			dup |= out->v[j].index == idx;
		if (dup)
			continue;
		if (add_target(out, doc, idx) != 0)
			goto nomem;
		t = &out->v[out->n - 1];
		if (tp_policy_level(t->policy) != TP_LEVEL_FINGERPRINT
		    && !(include_invalid && !t->valid)) {
			int rc = cli_errorf("%s: level %s, not fingerprint: no pins to look at",
					    keys[k], tp_level_name(tp_policy_level(t->policy)));
			cli_targets_free(out);
			return rc;
		}
	}
	return EX_SUCCESS;
nomem:
	cli_targets_free(out);
	return cli_errorf("out of memory");
}

static void
show_progress(const tp_probe_result *r, size_t done, size_t total, void *payload)
{
	(void)r;
	(void)payload;
	cli_progress_update(done, total);
}

int
cli_targets_probe(struct cli *cli, struct cli_targets *t,
		  const tp_probe_opts *opts, tp_prober **out)
{
	tp_diag diag = TP_DIAG_INIT;
	tp_prober *prober = NULL;
	size_t next = 0;
	int rc;

	tp_probe_opts local = *opts;

	*out = NULL;
	if (cli_targets_mx(t, opts->timeout) != 0)
		return cli_errorf("out of memory");
	if (local.progress == NULL)
		local.progress = show_progress;
	if (tp_prober_new(&prober, &local, &diag) != 0)
		return cli_error(&diag);
	for (size_t i = 0; i < t->n; i++) {
		struct cli_target *x = &t->v[i];

		x->first = next;
		x->count = 0;
		if (x->host_error != NULL || tp_policy_level(x->policy) != TP_LEVEL_FINGERPRINT)
			continue;
		for (size_t h = 0; h < x->hosts.count; h++) {
			if (tp_prober_add(NULL, prober, x->hosts.strings[h], x->sni, &diag) != 0) {
				/* A hand-edited annotation: say so, probe nothing of it. */
				char msg[TP_DIAG_MESSAGE_MAX + 64];

				snprintf(msg, sizeof(msg), "recorded host %s: %s",
					 x->hosts.strings[h], diag.message);
				if ((x->host_error = strdup(msg)) == NULL) {
					tp_prober_free(prober);
					return cli_errorf("out of memory");
				}
				break;
			}
			next++;
			x->count++;
		}
		if (x->host_error != NULL) {
			/* Targets already added for it are probed but ignored. */
			x->count = 0;
			continue;
		}
		x->probed = 1;
	}
	(void)cli;
	cli_progress_start("probing", "addresses");
	rc = tp_prober_run(prober, &diag);
	cli_progress_end();
	if (rc != 0) {
		tp_prober_free(prober);
		return cli_error(&diag);
	}
	*out = prober;
	return EX_SUCCESS;
}

const tp_probe_result *
cli_target_result_at(const tp_prober *prober, const struct cli_target *t,
		     size_t *cursor)
{
	size_t n = tp_prober_result_count(prober);

	for (; *cursor < n; (*cursor)++) {
		const tp_probe_result *r = tp_prober_result(prober, *cursor);

		if (r->target >= t->first + t->count)
			return NULL;
		if (r->target >= t->first) {
			(*cursor)++;
			return r;
		}
	}
	return NULL;
}

int
cli_target_pinned(const struct cli_target *t, const tp_probe_cert *leaf)
{
	for (size_t i = 0; i < tp_policy_pin_count(t->policy); i++) {
		const char *pin = tp_policy_pin_at(t->policy, i);

		if (strcmp(pin, leaf->fingerprint) == 0 ||
		    strcmp(pin, leaf->pkey_fingerprint) == 0)
			return 1;
	}
	return 0;
}

int
cli_target_eval(const struct cli_target *t, const tp_prober *prober,
		struct cli_eval *ev)
{
	const tp_probe_result *r;
	size_t cur = 0;

	memset(ev, 0, sizeof(*ev));
	ev->reachable = t->probed;
	ev->matched = t->probed;
	if (!t->probed)
		return 0;
	while ((r = cli_target_result_at(prober, t, &cur)) != NULL) {
		const tp_probe_cert *leaf;
		const char *fp;

		ev->addresses++;
		if (r->status != TP_OK || r->chain_len == 0) {
			ev->failed++;
			ev->reachable = 0;
			continue;
		}
		leaf = &r->chain[0];
		if (!cli_target_pinned(t, leaf))
			ev->matched = 0;
		fp = t->kind == TP_PIN_PKEY ? leaf->pkey_fingerprint : leaf->fingerprint;
		if (!cli_strarray_has(&ev->presented, fp) &&
		    cli_strarray_push(&ev->presented, fp) != 0)
			return -1;
	}
	return 0;
}

void
cli_eval_dispose(struct cli_eval *ev)
{
	tp_strarray_dispose(&ev->presented);
}

const char *
cli_result_label(char *buf, size_t size, const tp_probe_result *r)
{
	if (r->address == NULL || strcmp(r->host, r->address) == 0)
		cli_host_spec(buf, size, r->host, r->port);
	else
		snprintf(buf, size, "%s[%s]:%u", r->host, r->address, r->port);
	return buf;
}
