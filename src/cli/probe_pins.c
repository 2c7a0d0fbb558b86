/*
 * NAME
 *	probe_pins - what live servers present, as pins (set --fingerprint-from)
 * DESCRIPTION
 *	cli_probe_pins() probes every address of every host at once and
 *	collects the leaf fingerprints of one kind, each once, in the order
 *	the addresses answered in (target order, then address order), and
 *	the public keys of those leaves (recorded as keys=). Any
 *	address that cannot be probed fails the whole call: a pin set made
 *	from some of a partner's MX addresses would defer mail at the others.
 *
 *	cli_host_spec() writes the HOST:PORT form the annotation keeps
 *	("mx.example.com:25", "[2001:db8::1]:25") for a probe result, so
 *	rotate and check probe exactly what set probed.
 *
 *	The probes connect with the client settings of the entry being
 *	written (tlspolicy/client.h): the certificate pinned is the one
 *	Postfix will be shown.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

int
cli_strarray_push(tp_strarray *a, const char *s)
{
	char **l = realloc(a->strings, (a->count + 1) * sizeof(*l));

	if (l == NULL)
		return -1;
	a->strings = l;
	if ((l[a->count] = strdup(s)) == NULL)
		return -1;
	a->count++;
	return 0;
}

int
cli_strarray_has(const tp_strarray *a, const char *s)
{
	for (size_t i = 0; i < a->count; i++)
		if (strcmp(a->strings[i], s) == 0)
			return 1;
	return 0;
}

void
cli_host_spec(char *buf, size_t size, const char *host, unsigned int port)
{
	if (strchr(host, ':') != NULL)
		snprintf(buf, size, "[%s]:%u", host, port);
	else
		snprintf(buf, size, "%s:%u", host, port);
}

void
cli_trace_to_stderr(const char *line, void *payload)
{
	(void)payload;
	cli_notef("%s", line);
}

int
cli_probe_pins(struct cli *cli, const char *key, const char *value, int wrappermode,
	       const char *const *hosts, size_t nhosts, const char *pin_kind,
	       double timeout, const char *digest, tp_strarray *pins,
	       tp_strarray *keys, tp_strarray *specs)
{
	tp_probe_opts opts = TP_PROBE_OPTS_INIT;
	tp_diag diag = TP_DIAG_INIT;
	tp_client_settings *settings = NULL;
	tp_prober *prober = NULL;
	int pkey = pin_kind != NULL && strcmp(pin_kind, "pkey") == 0;
	size_t failed = 0, n;
	int rc = EX_FAIL;

	/* Connect as Postfix will for this entry, or the pins are not its. */
	if (tp_client_settings_new(&settings, cli_config(cli), key, value, &diag) != 0)
		return diag.status == TP_ESYNTAX ? cli_usage("set", "%s", diag.message)
		    : cli_error(&diag);
	tp_client_settings_set_wrappermode(settings, wrappermode);
	opts.timeout = timeout;
	opts.digest = digest;
	opts.settings = settings;
	cli_probe_defaults(cli, &opts);
	if (tp_prober_new(&prober, &opts, &diag) != 0) {
		rc = cli_error(&diag);
		goto out;
	}
	for (size_t i = 0; i < nhosts; i++)
		if (tp_prober_add(NULL, prober, hosts[i], NULL, &diag) != 0) {
			rc = cli_usage("set", "--fingerprint-from %s: %s", hosts[i],
				       diag.message);
			goto out;
		}
	if (tp_prober_run(prober, &diag) != 0) {
		rc = cli_error(&diag);
		goto out;
	}
	n = tp_prober_result_count(prober);
	for (size_t i = 0; i < n; i++) {
		const tp_probe_result *r = tp_prober_result(prober, i);
		char spec[TP_DIAG_MESSAGE_MAX], id[TP_FINGERPRINT_MAX];
		const char *fp;

		if (r->status != TP_OK || r->chain_len == 0) {
			cli_errorf("--fingerprint-from %s: %s", r->target_spec,
				   r->status != TP_OK ? r->error : "no certificate presented");
			failed++;
			continue;
		}
		fp = pkey ? r->chain[0].pkey_fingerprint : r->chain[0].fingerprint;
		cli_host_spec(spec, sizeof(spec), r->host, r->port);
		if (cli_key_id(id, &r->chain[0], digest) != 0
		    || (!cli_strarray_has(pins, fp) && cli_strarray_push(pins, fp) != 0)
		    || (!cli_strarray_has(keys, id) && cli_strarray_push(keys, id) != 0)
		    || (!cli_strarray_has(specs, spec) && cli_strarray_push(specs, spec) != 0)) {
			rc = cli_errorf("out of memory");
			goto out;
		}
		if (cli->verbose)
			fprintf(stderr, "tlspolicy: %s[%s]:%u presents %s %s %s (%s), SNI %s\n",
				r->host, r->address, r->port, digest,
				pkey ? "pkey" : "cert", fp, r->chain[0].subject,
				r->servername ? r->servername : "(none)");
	}
	if (failed) {
		rc = cli_errorf("--fingerprint-from: %zu of %zu address%s could not be probed; nothing written",
				failed, n, n == 1 ? "" : "es");
		goto out;
	}
	rc = EX_SUCCESS;
out:
	if (rc != EX_SUCCESS) {
		tp_strarray_dispose(pins);
		tp_strarray_dispose(keys);
		tp_strarray_dispose(specs);
	}
	tp_prober_free(prober);
	tp_client_settings_free(settings);
	return rc;
}
