/*
 * NAME
 *	resolver - MX, address and TLSA lookups with c-ares
 * SUMMARY
 *	See tlspolicy/resolver.h for the contract.
 * DESCRIPTION
 *	One c-ares channel per resolver, driven by our own poll() loop in
 *	tp_resolver_run(): MX lookups are a phase of their own (rotate and
 *	check need a domain's MX hosts before they know what to probe), so
 *	nothing is gained by sharing the probe engine's loop, and a loop of
 *	our own keeps c-ares out of every other module.
 *
 *	Each lookup is a small state machine: an MX query, then, when the
 *	domain has no MX records, an A and an AAAA query of the domain
 *	itself (the implicit MX); or, for a host, one ares_getaddrinfo()
 *	(/etc/hosts, then DNS, AF_UNSPEC); or one TLSA query. Every
 *	outstanding c-ares request is counted in "pending"; the loop runs
 *	until none is left. The run's deadline is ours: when it passes,
 *	ares_cancel() ends every request at once (ARES_ECANCELLED) and
 *	those lookups time out. c-ares's own per-try timeout is a quarter
 *	of the run's, so a lost UDP datagram is retried within it.
 *
 *	ARES_FLAG_NOCHECKRESP: a SERVFAIL or REFUSED answer ends the lookup
 *	with that answer. Without it c-ares 1.18 tries the other servers
 *	and then reports only "Could not contact DNS servers", which hides
 *	the one fact an administrator needs (the domain's servers fail);
 *	a recursive resolver's SERVFAIL is rarely cured by asking another.
 *
 *	The search list is emptied (ARES_OPT_DOMAINS with none): a policy
 *	key is a fully qualified domain and must never be completed with
 *	the local domain.
 *
 *	DNSSEC: c-ares 1.18 neither sets the AD bit in a query nor shows it
 *	in an answer, so the MX, implicit-MX address and TLSA queries are
 *	built by dnsmsg.c (AD set, EDNS0 with the DO bit, as Postfix asks
 *	at smtp_dns_support_level = dnssec) and sent with ares_send(),
 *	which still gives us c-ares's retries, server rotation and TCP
 *	after a truncated UDP answer; dnsmsg.c reads the answers (the AD
 *	bit, the rcode, the CNAME chain, the records of the type asked).
 *	MX records are still read by ares_parse_mx_reply(), as before.
 *	ares_send() in c-ares 1.18 keeps the query id it is given, so we
 *	draw each one at random (RAND_bytes: an off-path spoofer must
 *	guess it) and unique among ours in the run (c-ares matches answers
 *	by id first: two outstanding queries with one id would leave one
 *	unanswered until a retry). We
 *	do not validate signatures: like Postfix, we trust the AD bit of
 *	the configured resolver, which must be a validating one on a
 *	trusted path (a local one). Host lookups stay with
 *	ares_getaddrinfo() (/etc/hosts first), which hides the AD bit.
 * DIAGNOSTICS
 *	Per-lookup errors are in the results, "name: what".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <ares.h>
#include <openssl/rand.h>

#include "diag.h"
#include "dnsmsg.h"
#include "hostport.h"
#include "tlspolicy/resolver.h"

#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63
#define ERROR_MAX 512
/* EDNS0 UDP payload size we offer (the DNS flag day 2020 value). */
#define EDNS_UDP_SIZE 1232

enum lookup_phase {
	LP_MX,		/* MX query outstanding */
	LP_IMPLICIT,	/* no MX: A and AAAA queries of the domain outstanding */
	LP_ADDR,	/* host address lookup outstanding */
	LP_TLSA,	/* TLSA query outstanding */
	LP_DONE
};

struct mx_entry {
	char *name;
	unsigned int preference;
	size_t seq;		/* order received, for a stable sort */
};

struct lookup {
	tp_resolve_result res;
	tp_resolver *resolver;
	enum lookup_phase phase;
	char *name;
	tp_mx_host *hosts;
	char **host_names;
	char **addresses;
	/* The implicit MX: the MX answer's AD bit; per family (A, AAAA). */
	int mx_ad;
	int fam_done[2], fam_status[2], fam_ad[2];
	size_t fam_count[2];
	const char *fam_why[2];
	unsigned int qid[2];	/* outstanding: [0] MX, TLSA or A, [1] AAAA */
	/* TLSA */
	tp_tlsa_record *tlsa;
	unsigned char *tlsa_data;
	char *owner;
	char error[ERROR_MAX];
};

struct tp_resolver {
	tp_resolver_opts opts;
	unsigned char qid_used[65536 / 8];	/* ids of our outstanding queries */
	char *servers;
	ares_channel channel;
	struct lookup **lookups;
	size_t count;
	size_t alloc;
	size_t pending;		/* outstanding c-ares requests */
	size_t next_start;	/* lookups[next_start..] are not started yet */
	int ran;
	int oom;
	int ares_inited;	/* ares_library_init() to undo */
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lookup_fail(struct lookup *l, int status, const char *fmt, ...)
	TP_PRINTF(3, 4);

/* Ends the lookup with an error: fmt names the lookup first. */
static void
lookup_fail(struct lookup *l, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->error, sizeof(l->error), fmt, ap);
	va_end(ap);
	l->res.status = status;
	l->res.error = l->error;
	l->phase = LP_DONE;
}

/* A c-ares failure status as our one-line error; what: "MX", "address". */
static void
lookup_ares_fail(struct lookup *l, int status, const char *what)
{
	switch (status) {
	case ARES_ETIMEOUT:
	case ARES_ECANCELLED:	/* our deadline passed: tp_resolver_run() */
		lookup_fail(l, TP_ETIMEOUT, "%s: %s lookup timed out after %gs",
			    l->name, what, l->resolver->opts.timeout);
		break;
	case ARES_ENOTFOUND:
		lookup_fail(l, TP_EDNS, "%s: no such domain (NXDOMAIN)", l->name);
		break;
	case ARES_ESERVFAIL:
		lookup_fail(l, TP_EDNS,
			    "%s: %s lookup failed: DNS server failure (SERVFAIL)",
			    l->name, what);
		break;
	case ARES_EREFUSED:
		lookup_fail(l, TP_EDNS, "%s: %s lookup failed: query refused (REFUSED)",
			    l->name, what);
		break;
	case ARES_ENOMEM:
		l->resolver->oom = 1;
		lookup_fail(l, TP_ENOMEM, "%s: %s lookup failed: out of memory",
			    l->name, what);
		break;
	default:
		lookup_fail(l, TP_EDNS, "%s: %s lookup failed: %s", l->name, what,
			    ares_strerror(status));
		break;
	}
}

static char *
lower_dup(const char *s)
{
	size_t len = strlen(s);
	char *d;

	if (len > 0 && s[len - 1] == '.')
		len--;
	d = malloc(len + 1);
	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	d[len] = '\0';
	return d;
}

static int
mx_entry_cmp(const void *a, const void *b)
{
	const struct mx_entry *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
set_single_host(struct lookup *l, const char *name, unsigned int preference)
{
	l->hosts = calloc(1, sizeof(*l->hosts));
	l->host_names = calloc(1, sizeof(*l->host_names));
	if (l->hosts == NULL || l->host_names == NULL ||
	    (l->host_names[0] = lower_dup(name)) == NULL)
		return TP_ENOMEM;
	l->hosts[0].name = l->host_names[0];
	l->hosts[0].preference = preference;
	l->res.hosts = l->hosts;
	l->res.host_count = 1;
	return 0;
}

/* Postfix's valid_ipv4_hostaddr(): leading zeros pass, "0.x.y.z" does
 * not unless all zero. */
static int
valid_ipv4_hostaddr(const char *addr)
{
	int in_byte = 0, byte_count = 0, byte_val = 0;

	for (const char *cp = addr; *cp; cp++) {
		if (*cp >= '0' && *cp <= '9') {
			if (!in_byte) {
				in_byte = 1;
				byte_val = 0;
				byte_count++;
			}
			if ((byte_val = byte_val * 10 + (*cp - '0')) > 255)
				return 0;
		} else if (*cp == '.') {
			if (!in_byte || cp[1] == 0)
				return 0;
			if (byte_count == 1 && byte_val == 0 && addr[strspn(addr, "0.")])
				return 0;
			in_byte = 0;
		} else {
			return 0;
		}
	}
	return byte_count == 4;
}

/* Postfix's valid_ipv6_hostaddr(), which is not inet_pton(). */
static int
valid_ipv6_hostaddr(const char *addr)
{
	const char *cp = addr;
	int null_field = 0, field = 0;
	size_t len = 0;

	for (;;) {
		switch (*cp) {
		case 0:
			return field >= 2 && !(len == 0 && null_field != field - 1);
		case '.':
			return field >= 2 && field <= 6 && valid_ipv4_hostaddr(cp - len);
		case ':':
			if (field == 0 && len == 0 && isalnum((unsigned char)cp[1]))
				return 0;
			if (++field > 7)
				return 0;
			len = 0;
			if (*++cp == ':') {
				if (null_field > 0)
					return 0;
				null_field = field;
			}
			break;
		default:
			len = strspn(cp, "0123456789abcdefABCDEF");
			if (len == 0 || len > 4)
				return 0;
			cp += len;
			break;
		}
	}
}

/* Postfix's valid_rr_name(): an address passes where a name belongs, as
 * mailers tolerate it; a malformed name is dropped (DNS_INVAL). */
static int
valid_rr_name(const char *name)
{
	if (*name && (strchr(name, ':') ? valid_ipv6_hostaddr(name)
				       : valid_ipv4_hostaddr(name)))
		return 1;
	return tp__valid_hostname(name, 1);
}

/*
 * Keep the MX hosts of a reply as dns_get_answer() does: any null MX
 * (root target) makes it a null MX, whatever else the reply holds; a
 * record whose target valid_rr_name() refuses is dropped, and with
 * nothing left the lookup fails. Then sorted by preference (stable),
 * at most max_hosts. A name listed twice stays twice: smtp(8) looks it
 * up for each record, and its addresses count twice against
 * smtp_mx_address_limit. Returns TP_ENOMEM or 0.
 */
static int
take_mx_hosts(struct lookup *l, const struct ares_mx_reply *mx)
{
	size_t n = 0, i, kept = 0, max = l->resolver->opts.max_hosts;
	struct mx_entry *v;
	const char *invalid = NULL;

	for (const struct ares_mx_reply *m = mx; m != NULL; m = m->next) {
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			lookup_fail(l, TP_EDNS, "%s: null MX: the domain accepts no mail", l->name);
			return 0;
		}
		n++;
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL)
		return TP_ENOMEM;
	n = 0;
	for (const struct ares_mx_reply *m = mx; m != NULL; m = m->next) {
		if (!valid_rr_name(m->host)) {
			if (invalid == NULL)
				invalid = m->host;
			continue;
		}
		v[n].name = lower_dup(m->host);
		if (v[n].name == NULL)
			goto nomem;
		v[n].preference = m->priority;
		v[n].seq = n;
		n++;
	}
	if (n == 0 && invalid != NULL) {
		free(v);
		lookup_fail(l, TP_EDNS, "%s: MX lookup failed: malformed domain name in MX record: %.100s",
			    l->name, invalid);
		return 0;
	}
	qsort(v, n, sizeof(*v), mx_entry_cmp);
	l->hosts = calloc(n ? n : 1, sizeof(*l->hosts));
	l->host_names = calloc(n ? n : 1, sizeof(*l->host_names));
	if (l->hosts == NULL || l->host_names == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		if (kept == max) {
			l->res.omitted++;
			free(v[i].name);
		} else {
			l->host_names[kept] = v[i].name;
			l->hosts[kept].name = v[i].name;
			l->hosts[kept].preference = v[i].preference;
			kept++;
		}
		v[i].name = NULL;
	}
	free(v);
	l->res.hosts = l->hosts;
	l->res.host_count = kept;
	l->res.status = TP_OK;
	l->phase = LP_DONE;
	return 0;
nomem:
	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return TP_ENOMEM;
}

static const char *
kind_what(tp_resolve_kind kind)
{
	return kind == TP_RESOLVE_MX ? "MX" : kind == TP_RESOLVE_TLSA ? "TLSA"
					      : "address";
}

/*
 * Sends our own query for name and qtype: AD bit, EDNS0 with DO. The
 * callback runs whatever happens (c-ares calls it even when sending
 * fails), so pending is counted first.
 */
static void
send_query(struct lookup *l, const char *name, unsigned int qtype,
	   ares_callback cb)
{
	tp_resolver *r = l->resolver;
	unsigned char q[TP_DNS_NAME_WIRE_MAX + 32], rnd[2];
	size_t n = tp__dns_query_build(q, sizeof(q), name, qtype, EDNS_UDP_SIZE, 1);
	unsigned int id = 0, slot = qtype == TP_DNS_T_AAAA;

	/* A random id not in use by another of our queries (64 draws). */
	for (int i = 0; i < 64; i++) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			lookup_fail(l, TP_EIO, "%s: %s lookup failed: no random bytes for a query id",
				    l->name, kind_what(l->res.kind));
			return;
		}
		id = (unsigned int)rnd[0] << 8 | rnd[1];
		if (!(r->qid_used[id / 8] & (1u << (id % 8))))
			break;
	}
	r->qid_used[id / 8] |= (unsigned char)(1u << (id % 8));
	l->qid[slot] = id;
	q[0] = rnd[0];
	q[1] = rnd[1];
	r->pending++;
	if (n == 0) {
		/* Cannot happen: names are checked when they are added. */
		cb(l, ARES_EBADNAME, 0, NULL, 0);
		return;
	}
	ares_send(r->channel, q, (int)n, cb, l);
}

/* The query in slot of l has its answer (or has failed): its id is free. */
static void
query_done(struct lookup *l, unsigned int slot)
{
	unsigned int id = l->qid[slot];

	l->resolver->qid_used[id / 8] &= (unsigned char)~(1u << (id % 8));
	l->resolver->pending--;
}

/*
 * Reads the answer of one of our queries into a (disposed of by the
 * caller) and returns a c-ares status for it, as ares_query() would:
 * ARES_SUCCESS for NOERROR (with or without records), ARES_ENOTFOUND
 * for NXDOMAIN, ARES_ESERVFAIL and so on for the other rcodes,
 * ARES_EBADRESP with a->why for a malformed answer, or the status
 * c-ares gave (a timeout, a cancellation).
 */
static int
answer_read(tp__dns_answer *a, int status, const unsigned char *abuf, int alen)
{
	int rc;

	memset(a, 0, sizeof(*a));
	if (status != ARES_SUCCESS)
		return status;
	if (abuf == NULL || alen < 0) {
		a->why = "no answer";
		return ARES_EBADRESP;
	}
	rc = tp__dns_answer_parse(a, abuf, (size_t)alen);
	if (rc == TP_ENOMEM)
		return ARES_ENOMEM;
	if (rc != 0)
		return ARES_EBADRESP;
	switch (a->rcode) {
	case TP_DNS_RCODE_NOERROR:
		return ARES_SUCCESS;
	case TP_DNS_RCODE_FORMERR:
		return ARES_EFORMERR;
	case TP_DNS_RCODE_SERVFAIL:
		return ARES_ESERVFAIL;
	case TP_DNS_RCODE_NXDOMAIN:
		return ARES_ENOTFOUND;
	case TP_DNS_RCODE_NOTIMP:
		return ARES_ENOTIMP;
	case TP_DNS_RCODE_REFUSED:
		return ARES_EREFUSED;
	default:
		a->why = "unknown response code";
		return ARES_EBADRESP;
	}
}

static void
lookup_malformed(struct lookup *l, const char *why)
{
	lookup_fail(l, TP_EDNS, "%s: %s lookup failed: malformed reply (%s)",
		    l->name, kind_what(l->res.kind), why ? why : "?");
}

static void implicit_a_cb(void *arg, int status, int timeouts,
			  unsigned char *abuf, int alen);
static void implicit_aaaa_cb(void *arg, int status, int timeouts,
			     unsigned char *abuf, int alen);

static void
mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	struct ares_mx_reply *mx = NULL;
	tp__dns_answer a;

	(void)timeouts;
	query_done(l, 0);
	if (l->phase != LP_MX)
		return;
	status = answer_read(&a, status, abuf, alen);
	if (status == ARES_SUCCESS) {
		status = ares_parse_mx_reply(abuf, alen, &mx);
		if (status == ARES_SUCCESS) {
			if (take_mx_hosts(l, mx) != 0) {
				l->resolver->oom = 1;
				lookup_fail(l, TP_ENOMEM, "%s: MX lookup failed: out of memory", l->name);
			} else if (l->res.status == TP_OK) {
				l->res.secure = a.ad;
			}
			ares_free_data(mx);
		} else if (status == ARES_EBADRESP) {
			lookup_fail(l, TP_EDNS, "%s: MX lookup failed: malformed reply", l->name);
		} else if (status == ARES_ENODATA) {
			/* No MX records (a CNAME alone, say): NODATA. */
			l->mx_ad = a.ad;
			l->phase = LP_IMPLICIT;
			send_query(l, l->name, TP_DNS_T_A, implicit_a_cb);
			send_query(l, l->name, TP_DNS_T_AAAA, implicit_aaaa_cb);
		} else {
			lookup_ares_fail(l, status, "MX");
		}
	} else if (status == ARES_EBADRESP) {
		lookup_malformed(l, a.why);
	} else {
		lookup_ares_fail(l, status, "MX");
	}
	tp__dns_answer_dispose(&a);
}

/* No answer yet, records, or no records (NODATA, NXDOMAIN)? */
static int
implicit_settled(int status)
{
	return status == ARES_SUCCESS || status == ARES_ENOTFOUND;
}

/*
 * One of the implicit MX's address answers (fam 0: A, 1: AAAA). When
 * both are in: the domain is its own MX host when either has records;
 * secure when the MX answer and both address answers had the AD bit.
 */
static void
implicit_answer(struct lookup *l, int fam, int status, const unsigned char *abuf,
		int alen)
{
	tp__dns_answer a;

	query_done(l, (unsigned int)fam);
	if (l->phase != LP_IMPLICIT)
		return;
	status = answer_read(&a, status, abuf, alen);
	l->fam_done[fam] = 1;
	l->fam_status[fam] = status;
	l->fam_ad[fam] = implicit_settled(status) && a.ad;
	l->fam_count[fam] = status == ARES_SUCCESS ? a.nrr : 0;
	l->fam_why[fam] = a.why;
	tp__dns_answer_dispose(&a);
	if (!l->fam_done[0] || !l->fam_done[1])
		return;
	if (l->fam_count[0] > 0 || l->fam_count[1] > 0) {
		if (set_single_host(l, l->name, 0) != 0) {
			l->resolver->oom = 1;
			lookup_fail(l, TP_ENOMEM, "%s: MX lookup failed: out of memory", l->name);
			return;
		}
		l->res.implicit = 1;
		l->res.secure = l->mx_ad && l->fam_ad[0] && l->fam_ad[1];
		l->res.status = TP_OK;
		l->phase = LP_DONE;
		return;
	}
	for (fam = 0; fam < 2; fam++) {
		if (implicit_settled(l->fam_status[fam]))
			continue;
		if (l->fam_status[fam] == ARES_EBADRESP)
			lookup_fail(l, TP_EDNS, "%s: MX lookup failed: malformed address reply (%s)",
				    l->name, l->fam_why[fam] ? l->fam_why[fam] : "?");
		else
			lookup_ares_fail(l, l->fam_status[fam], "MX");
		return;
	}
	lookup_fail(l, TP_EDNS, "%s: no MX, A or AAAA records", l->name);
}

static void
implicit_a_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	implicit_answer(arg, 0, status, abuf, alen);
}

static void
implicit_aaaa_cb(void *arg, int status, int timeouts, unsigned char *abuf,
		 int alen)
{
	(void)timeouts;
	implicit_answer(arg, 1, status, abuf, alen);
}

/*
 * Keeps the TLSA records of an answer (none for NXDOMAIN): every
 * record whose RDATA decodes, whatever its usage, selector and
 * matching type; the others are counted in tlsa_skipped.
 */
static int
take_tlsa(struct lookup *l, const tp__dns_answer *a, const unsigned char *msg,
	  int have_records)
{
	size_t n = have_records ? a->nrr : 0, kept = 0, total = 0, off = 0;
	tp__dns_tlsa t;
	const char *why;

	if ((l->owner = strdup(a->owner)) == NULL)
		return TP_ENOMEM;
	l->res.owner = l->owner;
	for (size_t i = 0; i < n; i++)
		if (tp__dns_tlsa_decode(&t, msg + a->rr[i].off, a->rr[i].len, &why) == 0)
			total += t.len;
	l->tlsa = calloc(n ? n : 1, sizeof(*l->tlsa));
	l->tlsa_data = malloc(total ? total : 1);
	if (l->tlsa == NULL || l->tlsa_data == NULL)
		return TP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (tp__dns_tlsa_decode(&t, msg + a->rr[i].off, a->rr[i].len, &why) != 0) {
			l->res.tlsa_skipped++;
			continue;
		}
		memcpy(l->tlsa_data + off, t.data, t.len);
		l->tlsa[kept].usage = t.usage;
		l->tlsa[kept].selector = t.selector;
		l->tlsa[kept].mtype = t.mtype;
		l->tlsa[kept].data = l->tlsa_data + off;
		l->tlsa[kept].len = t.len;
		off += t.len;
		kept++;
	}
	l->res.tlsa = l->tlsa;
	l->res.tlsa_count = kept;
	return 0;
}

static void
tlsa_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	tp__dns_answer a;

	(void)timeouts;
	query_done(l, 0);
	if (l->phase != LP_TLSA)
		return;
	status = answer_read(&a, status, abuf, alen);
	if (status == ARES_SUCCESS || status == ARES_ENOTFOUND) {
		/* NODATA and NXDOMAIN: no records, not an error. */
		if (take_tlsa(l, &a, abuf, status == ARES_SUCCESS) != 0) {
			l->resolver->oom = 1;
			lookup_fail(l, TP_ENOMEM, "%s: TLSA lookup failed: out of memory", l->name);
		} else {
			l->res.secure = a.ad;
			l->res.status = TP_OK;
			l->phase = LP_DONE;
		}
	} else if (status == ARES_EBADRESP) {
		lookup_malformed(l, a.why);
	} else {
		lookup_ares_fail(l, status, "TLSA");
	}
	tp__dns_answer_dispose(&a);
}

static void
start_addr_lookup(struct lookup *l, ares_addrinfo_callback cb)
{
	struct ares_addrinfo_hints hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = ARES_AI_NOSORT;
	l->resolver->pending++;
	ares_getaddrinfo(l->resolver->channel, l->name, NULL, &hints, cb, l);
}

static int
take_addresses(struct lookup *l, const struct ares_addrinfo *ai)
{
	size_t n = 0, kept = 0;
	char text[INET6_ADDRSTRLEN];

	for (const struct ares_addrinfo_node *p = ai->nodes; p; p = p->ai_next)
		n++;
	l->addresses = calloc(n ? n : 1, sizeof(*l->addresses));
	if (l->addresses == NULL)
		return TP_ENOMEM;
	for (const struct ares_addrinfo_node *p = ai->nodes; p; p = p->ai_next) {
		const void *a;
		size_t j;

		if (p->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)(const void *)p->ai_addr)->sin_addr;
		else if (p->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)(const void *)p->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(p->ai_family, a, text, sizeof(text)) == NULL)
			continue;
		for (j = 0; j < kept; j++)
			if (strcmp(l->addresses[j], text) == 0)
				break;
		if (j < kept)
			continue;
		if ((l->addresses[kept] = strdup(text)) == NULL)
			return TP_ENOMEM;
		kept++;
	}
	l->res.addresses = (const char *const *)l->addresses;
	l->res.address_count = kept;
	return 0;
}

static void
addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct lookup *l = arg;

	(void)timeouts;
	l->resolver->pending--;
	if (l->phase != LP_ADDR) {
		ares_freeaddrinfo(ai);
		return;
	}
	if (status == ARES_SUCCESS && ai != NULL) {
		if (take_addresses(l, ai) != 0) {
			l->resolver->oom = 1;
			lookup_fail(l, TP_ENOMEM, "%s: address lookup failed: out of memory", l->name);
		} else if (l->res.address_count == 0) {
			lookup_fail(l, TP_EDNS, "%s: no A or AAAA records", l->name);
		} else {
			l->res.status = TP_OK;
			l->phase = LP_DONE;
		}
	} else if (status == ARES_ENODATA) {
		lookup_fail(l, TP_EDNS, "%s: no A or AAAA records", l->name);
	} else {
		lookup_ares_fail(l, status, "address");
	}
	ares_freeaddrinfo(ai);
}

/* Is name a DNS name we may look up? (An IP literal passes for hosts.) */
static int
check_name(const char *name, int is_host, tp_diag *diag)
{
	size_t len = strlen(name), label = 0;
	unsigned char a6[16];

	if (is_host && strchr(name, ':') != NULL && inet_pton(AF_INET6, name, a6) == 1)
		return 0;
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "\"%s\": empty domain name", name);
	if (len > NAME_MAX_LEN)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "%.64s...: domain name longer than %d bytes",
				    name, NAME_MAX_LEN);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
						    "%s: empty label in domain name", name);
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: not a DNS name (internationalised names must be in xn-- form)",
					    name);
		if (++label > LABEL_MAX_LEN)
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: label longer than %d bytes",
					    name, LABEL_MAX_LEN);
	}
	return 0;
}

static int
add_lookup(size_t *out_index, tp_resolver *r, const char *name,
	   tp_resolve_kind kind, tp_diag *diag)
{
	int is_host = kind == TP_RESOLVE_HOST;
	struct lookup *l;
	size_t len;
	int rc;

	if (out_index)
		*out_index = 0;
	if (r == NULL || name == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "no resolver or no name");
	if (r->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "%s: resolver has already run", name);
	if (kind == TP_RESOLVE_MX && name[0] == '.')
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "%s: pattern, not a destination", name);
	if ((rc = check_name(name, is_host, diag)) != 0)
		return rc;
	if (r->count == r->alloc) {
		size_t n = r->alloc ? 2 * r->alloc : 16;
		struct lookup **v = realloc(r->lookups, n * sizeof(*v));

		if (v == NULL)
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		r->lookups = v;
		r->alloc = n;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL || (l->name = strdup(name)) == NULL) {
		free(l);
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	}
	len = strlen(l->name);
	if (len > 1 && l->name[len - 1] == '.')
		l->name[len - 1] = '\0';
	l->resolver = r;
	l->phase = kind == TP_RESOLVE_HOST ? LP_ADDR :
		   kind == TP_RESOLVE_TLSA ? LP_TLSA : LP_MX;
	l->res.index = r->count;
	l->res.kind = kind;
	l->res.name = l->name;
	l->res.status = TP_ETIMEOUT;
	l->res.error = "";
	r->lookups[r->count] = l;
	if (out_index)
		*out_index = r->count;
	r->count++;
	return 0;
}

int
tp_resolver_add_mx(size_t *out_index, tp_resolver *r, const char *domain,
		   tp_diag *diag)
{
	return add_lookup(out_index, r, domain, TP_RESOLVE_MX, diag);
}

int
tp_resolver_add_host(size_t *out_index, tp_resolver *r, const char *host,
		     tp_diag *diag)
{
	return add_lookup(out_index, r, host, TP_RESOLVE_HOST, diag);
}

int
tp_resolver_add_tlsa(size_t *out_index, tp_resolver *r, const char *host,
		     unsigned int port, tp_diag *diag)
{
	char name[NAME_MAX_LEN + 32];
	unsigned char a[16];
	size_t len;
	int rc;

	if (out_index)
		*out_index = 0;
	if (r == NULL || host == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "no resolver or no host");
	if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "%s: an IP address has no TLSA records", host);
	if ((rc = check_name(host, 0, diag)) != 0)
		return rc;
	if (port == 0 || port > 65535)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "%s: port %u is not 1 to 65535", host, port);
	len = strlen(host);
	if (host[len - 1] == '.')
		len--;
	/* RFC 7672 section 2.2.3: _PORT._tcp.HOST; check_name bounds it. */
	snprintf(name, sizeof(name), "_%u._tcp.%.*s", port, (int)len, host);
	return add_lookup(out_index, r, name, TP_RESOLVE_TLSA, diag);
}

int
tp_resolver_new(tp_resolver **out, const tp_resolver_opts *opts, tp_diag *diag)
{
	static const tp_resolver_opts defaults = TP_RESOLVER_OPTS_INIT;
	tp_resolver_opts v1;
	struct ares_options ao;
	tp_resolver *r;
	int rc, optmask;
	double per_try;

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version == 1) {
		/* Built before lookups: read only what it has. */
		v1 = defaults;
		memcpy(&v1, opts, offsetof(tp_resolver_opts, lookups));
		opts = &v1;
	} else if (opts->version != TP_RESOLVER_OPTS_VERSION)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "resolver options version %u, want %u",
				    opts->version, TP_RESOLVER_OPTS_VERSION);
	if (opts->lookups != NULL &&
	    (opts->lookups[0] == '\0' || strlen(opts->lookups) > 2 ||
	     strspn(opts->lookups, "fb") != strlen(opts->lookups) ||
	     (opts->lookups[1] != '\0' && opts->lookups[0] == opts->lookups[1])))
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "bad host lookup order \"%s\" (want fb, bf, f or b)",
				    opts->lookups);
	if (!(opts->timeout > 0) || opts->timeout > 86400)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0,
				    "DNS timeout must be positive, got %g", opts->timeout);
	if (opts->servers != NULL && opts->servers[0] == '\0')
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "empty DNS server list");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	r->opts = *opts;
	r->opts.lookups = NULL;	/* c-ares keeps its own copy */
	if (r->opts.max_hosts == 0)
		r->opts.max_hosts = TP_RESOLVER_MAX_HOSTS;
	if (opts->servers) {
		if ((r->servers = strdup(opts->servers)) == NULL) {
			free(r);
			return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
		}
		r->opts.servers = r->servers;
	}
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		free(r->servers);
		free(r);
		return tp__diag_set(diag, TP_EDNS, NULL, 0, "c-ares: %s",
				    ares_strerror(rc));
	}
	r->ares_inited = 1;
	memset(&ao, 0, sizeof(ao));
	per_try = r->opts.timeout * 1000.0 / 4.0;
	ao.timeout = per_try < 100 ? 100 : per_try > 5000 ? 5000 : (int)per_try;
	ao.tries = 3;
	ao.ndomains = 0;
	ao.domains = NULL;
	/* c-ares copies it; the default is /etc/hosts, then DNS. */
	ao.lookups = (char *)(opts->lookups ? opts->lookups : "fb");
	ao.flags = ARES_FLAG_NOCHECKRESP;
	optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
		  ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
	rc = ares_init_options(&r->channel, &ao, optmask);
	if (rc != ARES_SUCCESS) {
		r->channel = NULL;
		tp_resolver_free(r);
		return tp__diag_set(diag, rc == ARES_ENOMEM ? TP_ENOMEM : TP_EDNS,
				    NULL, 0, "cannot set up the DNS resolver: %s",
				    ares_strerror(rc));
	}
	if (r->servers &&
	    (rc = ares_set_servers_ports_csv(r->channel, r->servers)) != ARES_SUCCESS) {
		int status = rc == ARES_ENOMEM ? TP_ENOMEM : TP_EUSAGE;

		tp__diag_set(diag, status, NULL, 0,
			     "bad DNS server list \"%s\": %s (want ADDR[:PORT],...)",
			     r->servers, ares_strerror(rc));
		tp_resolver_free(r);
		return status;
	}
	*out = r;
	return 0;
}

/*
 * At most this many c-ares requests outstanding: a thousand queries sent
 * in one burst overflow a resolver's socket buffer (the kernel drops
 * UDP datagrams it has no room for), and every lost one costs a retry
 * a quarter of the run's timeout later, or the lookup. Loopback answers
 * come back in well under a millisecond, so the cap costs no time.
 */
#define MAX_IN_FLIGHT 64

static void
start_lookups(tp_resolver *r)
{
	while (r->next_start < r->count && r->pending < MAX_IN_FLIGHT) {
		struct lookup *l = r->lookups[r->next_start++];

		if (l->phase == LP_MX) {
			send_query(l, l->name, TP_DNS_T_MX, mx_cb);
		} else if (l->phase == LP_TLSA) {
			send_query(l, l->name, TP_DNS_T_TLSA, tlsa_cb);
		} else if (l->phase == LP_ADDR) {
			start_addr_lookup(l, addr_cb);
		}
	}
}

int
tp_resolver_run(tp_resolver *r, tp_diag *diag)
{
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	double deadline;
	int cancelled = 0;

	if (r == NULL)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "no resolver");
	if (r->ran)
		return tp__diag_set(diag, TP_EUSAGE, NULL, 0, "resolver has already run");
	r->ran = 1;
	deadline = now() + r->opts.timeout;
	start_lookups(r);
	while (r->pending > 0 || (!cancelled && r->next_start < r->count)) {
		struct timeval tvmax, tvbuf, *tv;
		double left = deadline - now(), wait;
		unsigned int ubits;
		int nfds = 0, n, ms;

		if (left <= 0) {
			if (cancelled)
				break;	/* c-ares did not call back: cannot happen */
			cancelled = 1;
			ares_cancel(r->channel);
			continue;
		}
		ubits = (unsigned int)ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			/* c-ares's own macros shift a signed 1 into the sign bit. */
			if (ubits & (1u << i))
				ev |= POLLIN;
			if (ubits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev) {
				pfd[nfds].fd = socks[i];
				pfd[nfds].events = ev;
				pfd[nfds].revents = 0;
				nfds++;
			}
		}
		tvmax.tv_sec = (time_t)left;
		tvmax.tv_usec = (suseconds_t)((left - (double)tvmax.tv_sec) * 1e6);
		tv = ares_timeout(r->channel, &tvmax, &tvbuf);
		wait = (double)tv->tv_sec * 1000.0 + (double)tv->tv_usec / 1000.0;
		ms = (int)ceil(wait);
		n = poll(pfd, (nfds_t)nfds, ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return tp__diag_errno(diag, TP_EIO, errno, "poll");
		}
		if (n == 0) {
			ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			if (!cancelled)
				start_lookups(r);
			continue;
		}
		for (int i = 0; i < nfds; i++) {
			ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rfd = pfd[i].fd;
			if (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP))
				wfd = pfd[i].fd;
			if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
				ares_process_fd(r->channel, rfd, wfd);
		}
		if (!cancelled)
			start_lookups(r);
	}
	/* Lookups the deadline left unstarted read as timed out. */
	for (size_t i = 0; i < r->count; i++)
		if (r->lookups[i]->phase != LP_DONE)
			lookup_ares_fail(r->lookups[i], ARES_ETIMEOUT,
					 kind_what(r->lookups[i]->res.kind));
	if (r->oom)
		return tp__diag_set(diag, TP_ENOMEM, NULL, 0, "out of memory");
	return 0;
}

size_t
tp_resolver_result_count(const tp_resolver *r)
{
	return r ? r->count : 0;
}

const tp_resolve_result *
tp_resolver_result(const tp_resolver *r, size_t i)
{
	if (r == NULL || i >= r->count)
		return NULL;
	return &r->lookups[i]->res;
}

static void
lookup_free(struct lookup *l)
{
	if (l == NULL)
		return;
	if (l->host_names)
		for (size_t i = 0; i < l->res.host_count; i++)
			free(l->host_names[i]);
	if (l->addresses)
		for (size_t i = 0; i < l->res.address_count; i++)
			free(l->addresses[i]);
	free(l->host_names);
	free(l->hosts);
	free(l->addresses);
	free(l->tlsa);
	free(l->tlsa_data);
	free(l->owner);
	free(l->name);
	free(l);
}

void
tp_resolver_free(tp_resolver *r)
{
	if (r == NULL)
		return;
	/* Outstanding requests call back with ARES_EDESTRUCTION. */
	if (r->channel)
		ares_destroy(r->channel);
	if (r->ares_inited)
		ares_library_cleanup();
	for (size_t i = 0; i < r->count; i++)
		lookup_free(r->lookups[i]);
	free(r->lookups);
	free(r->servers);
	free(r);
}
