/*
 * NAME
 *	targets - the entries check and rotate look at, through the library's
 *	delivery model
 * DESCRIPTION
 *	cli_targets_collect() takes the winning fingerprint-level entries of
 *	the table's document (duplicates are never used by Postfix), or
 *	those named by keys (a named key that is absent, or not at level
 *	fingerprint, is an error: printed, EX_FAIL). With include_invalid,
 *	entries Postfix would reject are taken too, whatever their level.
 *	With effective (main.cf's smtp_tls_policy_maps, cli_maps_open()),
 *	each entry is judged by the value Postfix really uses for its key:
 *	the database's (which may be stale), or what another map or entry
 *	answers first (judged_from "map", judged_where naming it; maps_note
 *	says so, with the state it warrants); without, by the source's
 *	value.
 *
 *	cli_targets_run() hands every entry to one tp_delivery (the model
 *	of Postfix's SMTP client: servers in Postfix's order, its TLS
 *	settings), runs it (all lookups and probes at once, opts->jobs
 *	connections at a time) with a progress display, and keeps it in
 *	t->delivery; entry i is key t->v[i].dindex there.
 */
#ifndef TP_CLI_TARGETS_H
#define TP_CLI_TARGETS_H

#include "cli.h"

struct cli_target {
	size_t index;		/* entry index in the doc collected from */
	char *key;		/* folded, as Postfix looks it up */
	char *value;		/* the source's value */
	char *judged;		/* the value judged (Postfix's, or the source's) */
	const char *judged_from; /* "source", "database", "map" */
	char *judged_where;	/* "map": which one, e.g. "regexp:/etc/postfix/pre line 1" */
	char *maps_note;	/* what the other maps do to the entry, or NULL */
	tp_state maps_state;	/* ... and how bad it is */
	int db_differs;		/* the database holds another value, or none */
	unsigned long line;
	tp_pin_kind kind;	/* annotation pin=, else cert */
	tp_strarray keys;	/* annotation keys=: public keys of the pinned certs */
	tp_strarray hosts;	/* annotation from= */
	int wrappermode;	/* annotation wrappermode=yes */
	char *next;		/* annotation next=: the candidate held down */
	time_t since;		/* ... since=, 0 when none */
	tp_strarray old;	/* annotation old=: pins kept until old-until= */
	time_t old_until;	/* 0 when none */
	size_t dindex;		/* key index in the delivery */
};

struct cli_targets {
	struct cli_target *v;
	size_t n;
	tp_delivery *delivery;
};

int cli_targets_collect(tp_table *table, char **keys, size_t nkeys,
			int include_invalid, struct cli_maps *effective,
			struct cli_targets *out);
int cli_targets_run(struct cli *cli, struct cli_targets *t,
		    const tp_delivery_opts *opts);
void cli_targets_free(struct cli_targets *t);
const tp_delivery_key *cli_target_key(const struct cli_targets *t, size_t i);
/* "host[address]:port", or "address:port" when the host is the address. */
const char *cli_server_label(char *buf, size_t size, const tp_server *s);
/* The fingerprint of the pin kind a server's leaf presents. */
const char *cli_server_fingerprint(const tp_server *s, tp_pin_kind kind);

#endif
