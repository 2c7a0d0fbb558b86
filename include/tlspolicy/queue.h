/*
 * NAME
 *	tlspolicy/queue.h - Postfix's mail queue: what is deferred, why, and
 *	where it goes
 * SUMMARY
 *	A stale pin shows first in the queue: mail to one partner piles up,
 *	deferred with "Server certificate not verified". This module reads the
 *	queue through Postfix's own interface (postqueue -j), tells TLS
 *	failures from other delay reasons by the texts Postfix's SMTP client
 *	writes, and routes each recipient to the next hop the SMTP client
 *	delivers to, the name it looks up in smtp_tls_policy_maps.
 * DESCRIPTION
 *	tp_queue_parse() reads the output of "postqueue -c DIR -j": one JSON
 *	object per line, members queue_name, queue_id, arrival_time,
 *	message_size, forced_expire, sender, recipients (objects with address
 *	and, when deferred, delay_reason); other members are ignored, as
 *	postqueue(1) asks. A line that is not a JSON object, gives a member
 *	of the wrong type (a string member that is not a string, a number
 *	that is not a non-negative integer, a recipient without an address),
 *	has no queue_id, or a queue_id that is not a Postfix queue file name
 *	(1 to 255 letters, digits and '_': it may end up on a postqueue or
 *	postsuper command line) is counted as malformed and skipped; it never
 *	fails the parse. So is a line longer than TP_QUEUE_LINE_MAX bytes
 *	(4 MiB, room for some 20,000 recipients with their reasons): it is
 *	skipped without being held in memory. Blank lines are ignored; a last
 *	line without a newline is parsed like the others (a truncated last
 *	line then counts as malformed). A line with a duplicate member name
 *	is malformed (Postfix never writes one, and which copy counts would be
 *	a guess).
 *	tp_queue_new(), tp_queue_feed() and tp_queue_end() do the same on
 *	text that arrives in pieces (a pipe from postqueue), holding at most
 *	one line at a time; tp_queue_parse() is the three in one call.
 *	tp_queue_feed() after tp_queue_end() is TP_EUSAGE.
 *	Free with tp_queue_free() (NULL is fine).
 *
 *	tp_queue_count() and tp_queue_at() give the messages in input order;
 *	a tp_queue_message and everything it points to belong to the queue.
 *	Every string exposed is valid UTF-8 without control characters: C0,
 *	DEL and C1 controls (which JSON can carry escaped) become '?', as
 *	Postfix itself prints them. Absent members are "" for strings, -1 for
 *	arrival_time and message_size, 0 for forced_expire; delay_reason is
 *	NULL when the recipient has none (not tried yet, or in delivery). A
 *	recipient may be listed more than once: Postfix lists each record of
 *	the message's defer log, then the recipients not in it.
 *	Each recipient's tls is tp_queue_tls_failure() of its delay_reason.
 *	tp_queue_malformed() counts the lines skipped;
 *	tp_queue_first_malformed() says why the first was skipped (NULL when
 *	none), and its line number (from 1) when line is not NULL.
 *
 *	tp_queue_tls_failure() classifies one delay reason by the texts
 *	Postfix's SMTP client (3.7 to 3.12) writes, after any number of
 *	"delivery temporarily suspended: " prefixes (the queue manager's, for
 *	mail behind a destination that just failed). Only the client's own
 *	words count: a remote server's reply ("host H said: ...", "host H
 *	refused to talk to me: ...") is TP_QUEUE_TLS_NONE whatever it says.
 *	- TP_QUEUE_TLS_CERT: "Server certificate not verified": the server
 *	  presented a certificate that does not match the policy (a pin that
 *	  does not match, a CA or name check that fails, DANE).
 *	- TP_QUEUE_TLS_NOT_OFFERED: "TLS is required, but was not offered by
 *	  host H".
 *	- TP_QUEUE_TLS_REFUSED: "TLS is required, but host H refused to start
 *	  TLS: REPLY" (STARTTLS rejected).
 *	- TP_QUEUE_TLS_HANDSHAKE: "Cannot start TLS: handshake failure".
 *	- TP_QUEUE_TLS_STARTTLS_LOST: "lost connection with H while receiving
 *	  the STARTTLS response", "conversation with H timed out while
 *	  receiving the STARTTLS response".
 *	- TP_QUEUE_TLS_POLICY: "client TLS configuration problem" (a policy
 *	  entry or TLS setting Postfix rejects, e.g. level fingerprint without
 *	  a match) and "Temporary lookup error" (smtp_tls_policy_maps could
 *	  not be read).
 *	- TP_QUEUE_TLS_DANE: "TLSA lookup error for H:P", "no TLSA records
 *	  found", "TLSA records unusable".
 *	- TP_QUEUE_TLS_LOCAL: "TLS is required, but our TLS engine is
 *	  unavailable", "TLS is required, but unavailable".
 *	- TP_QUEUE_TLS_NONE: anything else (connection refused, timeouts,
 *	  4xx replies, DNS), and NULL.
 *	tp_queue_tls_name() names a class ("none", "certificate",
 *	"not-offered", "refused", "handshake", "starttls-lost", "policy",
 *	"dane", "local"); NULL for a value outside the enum.
 *
 *	tp_route_new() reads from config what trivial-rewrite(8) uses to route
 *	mail for a remote domain: transport_maps (each map opened as
 *	tp_maps_open_spec() opens one), parent_domain_matches_subdomains,
 *	recipient_delimiter, relayhost, default_transport, relay_transport,
 *	relay_domains; Postfix 3.7's defaults where main.cf is silent. Free
 *	with tp_route_free() (NULL is fine).
 *	tp_route_find() routes one recipient address (as postqueue -j lists
 *	it) as trivial-rewrite's resolve and transport lookup do:
 *	- the starting point is relay_transport for a domain in relay_domains
 *	  (literal domains, "!" exclusions and lookup tables; a "/file" entry
 *	  is TP_EUNSUPPORTED), else default_transport; the next hop is
 *	  relayhost when set, else the recipient domain (one trailing dot
 *	  removed); a transport written "transport:nexthop" in main.cf sets
 *	  the next hop;
 *	- transport_maps then override it: the full address (as listed, then
 *	  without the quotes of a quoted local part), the address
 *	  without its extension (recipient_delimiter; not for owner-*,
 *	  *-request, postmaster, MAILER-DAEMON, nor here for a quoted local
 *	  part), the domain, then its parent
 *	  domains as ".example.com" (or as "example.com" when
 *	  parent_domain_matches_subdomains lists transport_maps; Postfix
 *	  3.7's default does not), then "*". Only the full address and "*"
 *	  are asked of regexp, pcre, cidr, socketmap and tcp tables, as
 *	  Postfix asks them. A result "transport:nexthop" sets both; an empty
 *	  nexthop means the recipient domain (for error and retry, the text
 *	  "Address is undeliverable"); ":nexthop" keeps the transport; a
 *	  "[host]:port" is kept as written.
 *	The result belongs to route and is valid until the next call:
 *	transport (e.g. "smtp", "relay", "error"), nexthop (the next hop as
 *	the queue manager hands it to the delivery agent, possibly a list),
 *	destinations (nexthop split as smtp(8) splits it on commas and
 *	whitespace: each is a name the SMTP client looks up in
 *	smtp_tls_policy_maps, e.g. "example.com", "[127.0.0.1]:2525",
 *	"relay.example.net:587"), via (what decided the next hop: an entry
 *	":" answers but changes nothing) and key (the transport_maps key that
 *	answered, else NULL). For a transport that is not smtp(8) (error,
 *	local, lmtp, ...) nexthop is whatever that transport takes, e.g. the
 *	error text; which master.cf services run smtp(8) is not read here.
 *	tp_route_nexthop() is tp_route_find() reduced to the first
 *	destination, the one the SMTP client tries first.
 *	Not modelled, because none of it changes the next hop of mail that
 *	went out over SMTP and came back with a TLS failure, or because it
 *	depends on more than main.cf and the maps: local, virtual alias and
 *	virtual mailbox domains (mydestination and friends: such mail never
 *	reaches the SMTP client), sender_dependent_relayhost_maps and
 *	sender_dependent_default_transport_maps (they need the sender; the
 *	route is per recipient), content_filter and FILTER actions,
 *	smtp_fallback_relay (tried after the destinations), master.cf "-o"
 *	overrides of a transport, address rewriting (canonical, virtual
 *	aliases: postqueue already lists the rewritten recipient), and
 *	regexp or pcre transport rules with $1 substitution (Postfix skips
 *	them in transport_maps; tp_maps substitutes).
 * DIAGNOSTICS
 *	tp_queue_parse(), tp_queue_new(), tp_queue_feed(), tp_queue_end():
 *	TP_ENOMEM; TP_EUSAGE (out or q NULL, text NULL with len > 0, feeding
 *	an ended queue). Malformed input is never an error.
 *	tp_route_new(): TP_EUSAGE (config NULL); TP_ENOMEM.
 *	tp_route_find(), tp_route_nexthop(): TP_EINVALID for an address
 *	without a domain (local mail) or for a lookup Postfix treats as an
 *	error (an empty result, a fail: table: Postfix defers the mail);
 *	TP_EUNSUPPORTED when a table that cannot be evaluated here
 *	(socketmap, ldap, ...) or a "/file" in relay_domains is reached
 *	before an answer; TP_EIO, TP_EDB when a map cannot be read (Postfix
 *	defers the mail too); TP_ENOMEM; TP_EUSAGE.
 */
#ifndef TLSPOLICY_QUEUE_H
#define TLSPOLICY_QUEUE_H

#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest postqueue -j line read; longer ones are skipped as malformed. */
#define TP_QUEUE_LINE_MAX (4u * 1024 * 1024)

/* Values are never renumbered; new ones are added at the end. */
typedef enum tp_queue_tls {
	TP_QUEUE_TLS_NONE = 0,		/* not a TLS failure, or no reason */
	TP_QUEUE_TLS_CERT = 1,		/* Server certificate not verified */
	TP_QUEUE_TLS_NOT_OFFERED = 2,	/* TLS required, STARTTLS not offered */
	TP_QUEUE_TLS_REFUSED = 3,	/* TLS required, STARTTLS rejected */
	TP_QUEUE_TLS_HANDSHAKE = 4,	/* Cannot start TLS: handshake failure */
	TP_QUEUE_TLS_STARTTLS_LOST = 5,	/* closed or stalled at STARTTLS */
	TP_QUEUE_TLS_POLICY = 6,	/* policy entry rejected, or unreadable */
	TP_QUEUE_TLS_DANE = 7,		/* TLSA lookup failed or unusable */
	TP_QUEUE_TLS_LOCAL = 8		/* our own TLS engine unavailable */
} tp_queue_tls;

typedef struct tp_queue tp_queue;

typedef struct tp_queue_recipient {
	const char *address;
	const char *delay_reason;	/* NULL when none */
	tp_queue_tls tls;		/* tp_queue_tls_failure(delay_reason) */
} tp_queue_recipient;

typedef struct tp_queue_message {
	const char *queue_name;		/* "deferred", "active", "hold", ... */
	const char *queue_id;
	long long arrival_time;		/* seconds since the epoch; -1 absent */
	long long message_size;		/* bytes; -1 absent */
	int forced_expire;		/* postsuper -e/-f */
	const char *sender;
	const tp_queue_recipient *recipients;
	size_t recipient_count;
	unsigned long line;		/* input line, from 1 */
} tp_queue_message;

TP_EXTERN(int) tp_queue_parse(tp_queue **out, const char *text, size_t len,
			      tp_diag *diag);
TP_EXTERN(int) tp_queue_new(tp_queue **out, tp_diag *diag);
TP_EXTERN(int) tp_queue_feed(tp_queue *q, const char *text, size_t len,
			     tp_diag *diag);
TP_EXTERN(int) tp_queue_end(tp_queue *q, tp_diag *diag);
TP_EXTERN(void) tp_queue_free(tp_queue *q);
TP_EXTERN(size_t) tp_queue_count(const tp_queue *q);
TP_EXTERN(const tp_queue_message *) tp_queue_at(const tp_queue *q, size_t i);
TP_EXTERN(size_t) tp_queue_malformed(const tp_queue *q);
TP_EXTERN(const char *) tp_queue_first_malformed(const tp_queue *q,
						 unsigned long *line);
TP_EXTERN(tp_queue_tls) tp_queue_tls_failure(const char *delay_reason);
TP_EXTERN(const char *) tp_queue_tls_name(tp_queue_tls tls);

typedef struct tp_route tp_route;

typedef enum tp_route_via {
	TP_ROUTE_VIA_DOMAIN = 0,	/* the recipient domain */
	TP_ROUTE_VIA_RELAYHOST = 1,	/* relayhost */
	TP_ROUTE_VIA_TRANSPORT = 2,	/* default_transport or relay_transport's :nexthop */
	TP_ROUTE_VIA_TRANSPORT_MAPS = 3	/* a transport_maps entry (key) */
} tp_route_via;

typedef struct tp_route_result {
	const char *transport;		/* "smtp", "relay", "error", ... */
	const char *nexthop;		/* as the delivery agent gets it */
	const char *const *destinations;	/* nexthop split as smtp(8) splits it */
	size_t destination_count;
	tp_route_via via;
	const char *key;		/* transport_maps key that answered, else NULL */
} tp_route_result;

TP_EXTERN(int) tp_route_new(tp_route **out, const tp_config *config,
			    tp_diag *diag);
TP_EXTERN(void) tp_route_free(tp_route *route);
TP_EXTERN(int) tp_route_find(tp_route *route, const char *recipient,
			     const tp_route_result **out, tp_diag *diag);
TP_EXTERN(int) tp_route_nexthop(tp_route *route, const char *recipient,
				const char **nexthop, tp_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
