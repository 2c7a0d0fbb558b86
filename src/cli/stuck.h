/*
 * NAME
 *	stuck - the mail deferred behind the table's entries, and its release
 * DESCRIPTION
 *	A stale pin shows first in the mail queue. cli_stuck_read() asks
 *	Postfix for its queue ("postqueue -c DIR -j", the program from
 *	main.cf's command_directory, with a clean environment and a
 *	deadline), keeps the recipients of deferred and active messages
 *	whose delay reason is a TLS failure of Postfix's SMTP client
 *	(tp_queue_tls_failure), routes each one as trivial-rewrite does
 *	(tp_route_find: transport_maps, relayhost, ...) to its next hops,
 *	and looks each next hop up in smtp_tls_policy_maps as the SMTP
 *	client does (tp_maps_find_nexthop: parent domains included). A
 *	message counts for an entry of our table when that lookup answers
 *	with it: per entry, the messages (each once), the oldest arrival
 *	and the queue ids.
 *
 *	When the queue cannot be read (no main.cf, no postqueue, Postfix
 *	not running, the deadline passed) s->available is 0 and s->why
 *	says why; that is no error: check and list then say nothing of the
 *	queue, and --json says why.
 *
 *	cli_stuck_find() gives an entry's record (key as folded, compared
 *	without case), NULL when no message waits for it.
 *
 *	cli_stuck_flush() asks Postfix to retry now exactly the messages
 *	waiting for the entries named (when nkeys is 0: for every entry,
 *	and every message deferred because Postfix's TLS policy lookup
 *	failed, "Temporary lookup error", whatever its destination), each once
 *	("postqueue -c DIR -i ID"), never the whole queue; with report it
 *	prints how many ("flushed: N deferred messages ..."), and *flushed
 *	(when not NULL) is that number. EX_SUCCESS, or EX_FAIL when the
 *	queue could not be read or a postqueue run failed (printed).
 *	cli_stuck_release() is --flush after a write: it reads the table
 *	and the queue afresh (Postfix now looks the keys up in the new
 *	database) and flushes the messages of keys.
 *
 *	cli_stuck_age() words a number of seconds as "45s", "12m", "3h12m",
 *	"2d4h". cli_stuck_reason() words a failure class as Postfix's delay
 *	reasons do ("Server certificate not verified"); cli_stuck_words()
 *	an entry's record: "3 messages deferred (Server certificate not
 *	verified), oldest 2h5m ago".
 */
#ifndef TP_CLI_STUCK_H
#define TP_CLI_STUCK_H

#include "cli.h"

struct cli_stuck_entry {
	char *key;		/* the policy key that answered, folded */
	size_t messages;
	time_t oldest;		/* arrival of the oldest message */
	tp_queue_tls tls;	/* the oldest message's failure */
	tp_strarray ids;	/* queue ids */
};

struct cli_stuck {
	int available;		/* the queue was read */
	char why[512];		/* when not */
	size_t tls_messages;	/* messages with a TLS failure, for any entry */
	size_t unrouted;	/* ... whose route or policy lookup failed */
	struct cli_stuck_entry *v;
	size_t n;
	tp_strarray policy_ids;	/* messages deferred because a policy lookup failed */
};

int cli_stuck_read(struct cli *cli, struct cli_maps *maps, double timeout,
		   struct cli_stuck *out);
const struct cli_stuck_entry *cli_stuck_find(const struct cli_stuck *s,
					     const char *key);
int cli_stuck_flush(struct cli *cli, const struct cli_stuck *s,
		    char *const *keys, size_t nkeys, double timeout, int report,
		    size_t *flushed);
int cli_stuck_release(struct cli *cli, char *const *keys, size_t nkeys,
		      double timeout, int report, size_t *flushed);
void cli_stuck_free(struct cli_stuck *s);
const char *cli_stuck_age(char *buf, size_t size, long long seconds);
const char *cli_stuck_reason(tp_queue_tls tls);
const char *cli_stuck_words(char *buf, size_t size, const struct cli_stuck_entry *e,
			    time_t now);

#endif
