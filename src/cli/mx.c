/*
 * NAME
 *	mx - the hosts a bare-domain key sends mail to
 * DESCRIPTION
 *	See cli_targets_mx() in targets.h. All lookups run at once in one
 *	resolver, so a table of many domains costs about one DNS round trip,
 *	and one dead domain costs at most the timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "targets.h"

int
cli_targets_mx(struct cli_targets *t, double timeout)
{
	tp_resolver_opts opts = TP_RESOLVER_OPTS_INIT;
	tp_resolver *resolver = NULL;
	tp_diag diag = TP_DIAG_INIT;
	size_t *slot = NULL, wanted = 0;
	int rc = 0;

	for (size_t i = 0; i < t->n; i++)
		wanted += t->v[i].needs_mx && t->v[i].host_error == NULL;
	if (wanted == 0)
		return 0;
	opts.servers = cli_dns_servers();
	if (timeout > 0)
		opts.timeout = timeout;
	if ((slot = calloc(t->n, sizeof(*slot))) == NULL)
		return -1;
	if (tp_resolver_new(&resolver, &opts, &diag) != 0) {
		/* Nothing can be looked up: say why for each entry concerned. */
		for (size_t i = 0; i < t->n; i++)
			if (t->v[i].needs_mx && t->v[i].host_error == NULL
			    && (t->v[i].host_error = strdup(diag.message)) == NULL)
				rc = -1;
		goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct cli_target *x = &t->v[i];

		slot[i] = (size_t)-1;
		if (!x->needs_mx || x->host_error != NULL)
			continue;
		tp_diag_clear(&diag);
		if (tp_resolver_add_mx(&slot[i], resolver, x->key, &diag) != 0) {
			slot[i] = (size_t)-1;
			if ((x->host_error = strdup(diag.message)) == NULL)
				rc = -1;
		}
	}
	if (tp_resolver_run(resolver, &diag) != 0) {
		for (size_t i = 0; i < t->n; i++)
			if (slot[i] != (size_t)-1
			    && (t->v[i].host_error = strdup(diag.message)) == NULL)
				rc = -1;
		goto out;
	}
	for (size_t i = 0; i < t->n && rc == 0; i++) {
		struct cli_target *x = &t->v[i];
		const tp_resolve_result *r;

		if (slot[i] == (size_t)-1)
			continue;
		r = tp_resolver_result(resolver, slot[i]);
		if (r == NULL || r->status != 0) {
			x->host_error = strdup(r ? r->error : "MX lookup failed");
			rc = x->host_error ? 0 : -1;
			continue;
		}
		for (size_t h = 0; h < r->host_count && rc == 0; h++) {
			char spec[600];

			cli_host_spec(spec, sizeof(spec), r->hosts[h].name, 25);
			rc = cli_strarray_push(&x->hosts, spec);
		}
	}
out:
	tp_resolver_free(resolver);
	free(slot);
	return rc;
}
