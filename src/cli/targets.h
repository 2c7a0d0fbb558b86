/*
 * NAME
 *	targets - which entries rotate and check look at, and where
 * DESCRIPTION
 *	cli_targets_collect() takes the winning fingerprint-level entries of
 *	doc (duplicates are never used by Postfix), or those named by keys
 *	(a named key that is absent, or not at level fingerprint and valid,
 *	is an error: printed, EX_FAIL). With include_invalid, entries Postfix
 *	would reject are taken too, whatever their level. For each it finds
 *	the hosts to probe: the annotation's from= list; else the host of a
 *	"[host]:port", "[host]" or "host:port" key (port 25 by default);
 *	else the MX hosts of a bare domain (cli_mx_hosts). When none can be
 *	found, host_error says why. The SNI is the entry's servername=.
 *
 *	cli_targets_probe() adds every host of every target with hosts to
 *	one prober and runs it: all at once, opts->jobs connections at a
 *	time. cli_target_result_at() walks a target's results afterwards.
 *
 *	cli_target_eval() reads the results of one target against its pins:
 *	reachable (every address answered), matched (every address presents
 *	a pinned leaf, by certificate or public-key fingerprint, as Postfix
 *	compares) and the fingerprints of the target's pin kind presented
 *	now, each once.
 */
#ifndef TP_CLI_TARGETS_H
#define TP_CLI_TARGETS_H

#include "cli.h"

struct cli_target {
	size_t index;		/* entry index in the doc collected from */
	char *key;		/* folded, as Postfix looks it up */
	char *value;		/* as collected: rotate re-checks it under the lock */
	unsigned long line;
	tp_policy *policy;
	int valid;		/* Postfix accepts the value */
	char *problem;		/* why not, when !valid */
	tp_pin_kind kind;	/* annotation pin=, else cert */
	tp_strarray keys;	/* annotation keys=: public keys of the pinned certs */
	tp_strarray hosts;	/* HOST:PORT to probe */
	const char *hosts_from;	/* "annotation", "key", "MX" */
	char *host_error;	/* no hosts: why */
	char *sni;		/* NULL: the host name */
	size_t first, count;	/* prober targets */
	int probed;
	int needs_mx;		/* bare domain: hosts come from cli_targets_mx() */
};

struct cli_targets {
	struct cli_target *v;
	size_t n;
};

struct cli_eval {
	int reachable;
	int matched;
	size_t failed;		/* addresses that could not be probed */
	size_t addresses;
	tp_strarray presented;	/* leaf fingerprints of the pin kind, each once */
};

/*
 * cli_targets_mx() looks up, all at once, the MX hosts of every target
 * that needs them (a bare domain with no recorded hosts) and fills its
 * hosts with "mxhost:25", or host_error with why not (no such domain,
 * null MX, timeout, ...): RFC 5321's fallback to the domain's own address
 * when it has no MX is the resolver's. Returns -1 only when out of memory.
 */
int cli_targets_mx(struct cli_targets *t, double timeout);

int cli_targets_collect(const tp_doc *doc, char **keys,
			size_t nkeys, int include_invalid,
			struct cli_targets *out);
void cli_targets_free(struct cli_targets *t);
int cli_targets_probe(struct cli *cli, struct cli_targets *t,
		      const tp_probe_opts *opts, tp_prober **out);
const tp_probe_result *cli_target_result_at(const tp_prober *prober,
					    const struct cli_target *t,
					    size_t *cursor);
/* Is fp (either fingerprint of a leaf) among the target's pins? */
int cli_target_pinned(const struct cli_target *t, const tp_probe_cert *leaf);
int cli_target_eval(const struct cli_target *t, const tp_prober *prober,
		    struct cli_eval *ev);
void cli_eval_dispose(struct cli_eval *ev);
/* "host[address]:port", or "address:port" when the host is the address. */
const char *cli_result_label(char *buf, size_t size, const tp_probe_result *r);

#endif
