/*
 * NAME
 *	testdns - small authoritative DNS server for the test suite
 * SYNOPSIS
 *	testdns --zone FILE [--listen ADDR] [--port N] [--port-file FILE]
 *		[--pid-file FILE] [--log FILE]
 * DESCRIPTION
 *	Answers A, AAAA, MX, CNAME and TLSA queries (and any type given as
 *	raw RDATA) from a zone file on one loopback address, over UDP and
 *	over TCP on the same port (a UDP answer over 512 bytes, or over the
 *	size a query's EDNS0 OPT record offers, is sent empty with the TC
 *	bit, and the client asks again over TCP, as RFC 1035 says). It
 *	plays a validating resolver for DNSSEC: names marked SECURE get the
 *	AD bit (see ZONE FILE); nothing is signed. The tests point the
 *	resolver at it: they never use real DNS. It stays in the
 *	foreground and exits on SIGTERM or SIGINT; SIGHUP reads the zone
 *	file again (a bad file keeps the old zone).
 *
 *	--zone FILE	the zone (see ZONE FILE). Required.
 *	--listen ADDR	127.0.0.1 (default), any 127.0.0.0/8 address, or ::1.
 *	--port N	port to bind (default 0: a free one, the same for UDP
 *			and TCP).
 *	--port-file FILE  write the port, one line, once both sockets are
 *			bound: written to FILE.tmp then renamed, so a test can
 *			wait for FILE to appear. Removed at exit.
 *	--pid-file FILE	write the pid (atomically; removed at exit).
 *	--log FILE	append one line per query:
 *			  testdns: udp|tcp NAME TYPE -> RCODE answers=N [tc] [drop]
 *			    [edns] [want-ad] [ad] id=ID
 *			edns: the query had an OPT record; want-ad: it asked
 *			for the AD bit (AD or DO set); ad: the answer has the
 *			AD bit; ID: the query id. Default: no log.
 * ZONE FILE
 *	One record a line, "NAME TYPE [VALUE]", fields separated by blanks;
 *	names are case-insensitive, a trailing dot optional; '#' starts a
 *	comment line. Types:
 *	  NAME A 127.0.0.1
 *	  NAME AAAA ::1
 *	  NAME MX PREF HOST	(HOST "." for a null MX, RFC 7505)
 *	  NAME CNAME TARGET	(followed within the zone for other types)
 *	  NAME TLSA USAGE SELECTOR MTYPE HEX
 *				(RFC 6698; the three numbers 0 to 255, HEX the
 *				association data, any length, "-" for none: a
 *				test can publish a malformed record)
 *	  NAME RAW TYPE HEX	a record of type number TYPE (1 to 65535, not
 *				CNAME or OPT) with HEX as its RDATA ("-":
 *				empty), sent as it is
 *	and behaviours for every query of NAME:
 *	  NAME SERVFAIL		answer SERVFAIL
 *	  NAME NXDOMAIN		answer NXDOMAIN
 *	  NAME DROP		never answer (the client times out)
 *	  NAME SECURE		answers about NAME are DNSSEC-validated: they
 *				carry the AD bit when the query asks for it
 *				(the AD bit or the EDNS0 DO bit set, RFC 6840
 *				section 5.7), for every type, NODATA and
 *				NXDOMAIN included (not SERVFAIL). An answer
 *				that follows CNAMEs has the AD bit only when
 *				every name of the chain is SECURE. Other names
 *				never get the AD bit. SECURE alone does not
 *				make a name exist.
 *	A name with no line at all, and no name below it, is NXDOMAIN; a
 *	name with lines but none of the type asked, or with names below it
 *	only, is NOERROR with no answer (NODATA). At most
 *	MAX_RECORDS lines, each under LINE_MAX bytes.
 * EDNS0
 *	A query may carry an OPT record (RFC 6891) as its first additional
 *	record: the answer then carries one too (UDP size UDP_EDNS_MAX,
 *	the DO bit echoed), and a UDP answer may be as large as the query
 *	offers (512 bytes at least, UDP_EDNS_MAX at most). Without an OPT
 *	record the 512-byte limit holds.
 * LIMITS
 *	Memory is bounded: a fixed record table, at most MAX_CLIENTS TCP
 *	connections (closed after IDLE_SECONDS of silence), one query of at
 *	most 512 bytes buffered per connection. Malformed queries (short,
 *	not a query, not one question, compressed or overlong names) are
 *	ignored; so is an additional record that is not a well-formed OPT
 *	record.
 * EXIT STATUS
 *	0 after SIGTERM/SIGINT, 1 on a startup error, 2 on a usage error.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECORDS 4096
#define MAX_CLIENTS 8
#define IDLE_SECONDS 30
#define NAME_LEN 256
#define QUERY_MAX 512
#define UDP_MAX 512
#define TCP_MAX 65535
#define CNAME_DEPTH 8
#define LINE_MAX 8192
#define UDP_EDNS_MAX 65507	/* the most a UDP datagram holds */

enum rtype {
	RT_A = 1,
	RT_CNAME = 5,
	RT_MX = 15,
	RT_AAAA = 28,
	RT_OPT = 41,
	RT_TLSA = 52,
	/* behaviours, not DNS types (above 65535) */
	RT_SERVFAIL = 0x10001,
	RT_NXDOMAIN = 0x10002,
	RT_DROP = 0x10003,
	RT_SECURE = 0x10004
};

struct record {
	char name[NAME_LEN];	/* lower case, no trailing dot */
	unsigned int type;	/* enum rtype, or any type number (RAW) */
	unsigned int pref;
	unsigned char addr[16];
	char target[NAME_LEN];
	unsigned char *data;	/* TLSA and RAW: the whole RDATA */
	size_t dlen;
};

struct client {
	int fd;
	time_t last;
	size_t len;
	unsigned char buf[2 + QUERY_MAX];
};

static struct record *zone;
static size_t nzone;
static const char *zone_file;
static FILE *log_fp;
static volatile sig_atomic_t stop_flag, reload_flag;
static unsigned char reply[2 + TCP_MAX];

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_flag = 1;
	else
		stop_flag = 1;
}

static void
usage(void)
{
	fprintf(stderr, "usage: testdns --zone FILE [--listen ADDR] [--port N] "
		"[--port-file FILE] [--pid-file FILE] [--log FILE]\n");
	exit(2);
}

/* Lower-cases name into out without a trailing dot; -1 when too long. */
static int
norm_name(const char *name, char *out)
{
	size_t len = strlen(name);

	if (len > 1 && name[len - 1] == '.')
		len--;
	if (len == 1 && name[0] == '.')
		len = 0;
	if (len >= NAME_LEN - 1)
		return -1;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[len] = '\0';
	return 0;
}

static void
free_zone(struct record *z, size_t n)
{
	if (z == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(z[i].data);
	free(z);
}

/*
 * RDATA from prefix (plen bytes) and hex ("-": nothing) into r->data;
 * -1 for a bad hex string or no memory.
 */
static int
set_data(struct record *r, const unsigned char *prefix, size_t plen,
	 const char *hex)
{
	size_t hlen = strcmp(hex, "-") == 0 ? 0 : strlen(hex);

	if (hlen % 2 != 0 || plen + hlen / 2 > 65535)
		return -1;
	r->data = malloc(plen + hlen / 2 + 1);
	if (r->data == NULL)
		return -1;
	if (plen > 0)
		memcpy(r->data, prefix, plen);
	r->dlen = plen;
	for (size_t i = 0; i < hlen; i += 2) {
		unsigned int v;
		char two[3] = { hex[i], hex[i + 1], '\0' };

		if (!isxdigit((unsigned char)two[0]) || !isxdigit((unsigned char)two[1]) ||
		    sscanf(two, "%2x", &v) != 1)
			return -1;
		r->data[r->dlen++] = (unsigned char)v;
	}
	return 0;
}

/* A decimal number from lo to hi in *out; -1 when it is not. */
static int
number(const char *s, unsigned long lo, unsigned long hi, unsigned int *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	v = strtoul(s, &end, 10);
	if (*end || v < lo || v > hi)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

/* Reads the zone; on error prints "FILE:LINE: what" and returns -1. */
static int
load_zone(const char *path)
{
	struct record *z;
	size_t n = 0;
	unsigned long lineno = 0;
	char line[LINE_MAX];
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "testdns: %s: %s\n", path, strerror(errno));
		return -1;
	}
	z = calloc(MAX_RECORDS, sizeof(*z));
	if (z == NULL) {
		fclose(f);
		fprintf(stderr, "testdns: out of memory\n");
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *tok[7], *save = NULL, *p;
		int nt = 0;
		struct record *r;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "testdns: %s:%lu: line longer than %d bytes\n",
				path, lineno, LINE_MAX - 2);
			goto bad;
		}
		for (p = strtok_r(line, " \t\r\n", &save); p && nt < 7;
		     p = strtok_r(NULL, " \t\r\n", &save))
			tok[nt++] = p;
		if (nt == 0 || tok[0][0] == '#')
			continue;
		if (n == MAX_RECORDS) {
			fprintf(stderr, "testdns: %s:%lu: more than %d records\n",
				path, lineno, MAX_RECORDS);
			goto bad;
		}
		if (nt < 2)
			goto syntax;
		r = &z[n];
		if (norm_name(tok[0], r->name) < 0)
			goto syntax;
		if (strcasecmp(tok[1], "A") == 0 && nt == 3) {
			r->type = RT_A;
			if (inet_pton(AF_INET, tok[2], r->addr) != 1)
				goto syntax;
		} else if (strcasecmp(tok[1], "AAAA") == 0 && nt == 3) {
			r->type = RT_AAAA;
			if (inet_pton(AF_INET6, tok[2], r->addr) != 1)
				goto syntax;
		} else if (strcasecmp(tok[1], "CNAME") == 0 && nt == 3) {
			r->type = RT_CNAME;
			if (norm_name(tok[2], r->target) < 0)
				goto syntax;
		} else if (strcasecmp(tok[1], "MX") == 0 && nt == 4) {
			char *end;
			unsigned long pref = strtoul(tok[2], &end, 10);

			if (*end || end == tok[2] || pref > 65535)
				goto syntax;
			r->type = RT_MX;
			r->pref = (unsigned int)pref;
			if (norm_name(tok[3], r->target) < 0)
				goto syntax;
		} else if (strcasecmp(tok[1], "TLSA") == 0 && nt == 6) {
			unsigned int u, sel, m;
			unsigned char prefix[3];

			if (number(tok[2], 0, 255, &u) < 0 || number(tok[3], 0, 255, &sel) < 0 ||
			    number(tok[4], 0, 255, &m) < 0)
				goto syntax;
			prefix[0] = (unsigned char)u;
			prefix[1] = (unsigned char)sel;
			prefix[2] = (unsigned char)m;
			r->type = RT_TLSA;
			if (set_data(r, prefix, 3, tok[5]) < 0) {
				n++;	/* freed with the rest */
				goto syntax;
			}
		} else if (strcasecmp(tok[1], "RAW") == 0 && nt == 4) {
			if (number(tok[2], 1, 65535, &r->type) < 0 ||
			    r->type == RT_CNAME || r->type == RT_OPT)
				goto syntax;
			if (set_data(r, NULL, 0, tok[3]) < 0) {
				n++;
				goto syntax;
			}
		} else if (strcasecmp(tok[1], "SECURE") == 0 && nt == 2) {
			r->type = RT_SECURE;
		} else if (strcasecmp(tok[1], "SERVFAIL") == 0 && nt == 2) {
			r->type = RT_SERVFAIL;
		} else if (strcasecmp(tok[1], "NXDOMAIN") == 0 && nt == 2) {
			r->type = RT_NXDOMAIN;
		} else if (strcasecmp(tok[1], "DROP") == 0 && nt == 2) {
			r->type = RT_DROP;
		} else {
			goto syntax;
		}
		n++;
	}
	fclose(f);
	free_zone(zone, nzone);
	zone = z;
	nzone = n;
	return 0;
syntax:
	fprintf(stderr, "testdns: %s:%lu: want NAME A|AAAA|CNAME|MX VALUE, "
		"NAME TLSA USAGE SELECTOR MTYPE HEX, NAME RAW TYPE HEX or "
		"NAME SERVFAIL|NXDOMAIN|DROP|SECURE\n", path, lineno);
bad:
	fclose(f);
	free_zone(z, n);
	return -1;
}

static int
write_file_atomic(const char *path, const char *content)
{
	char tmp[4096];
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	fputs(content, f);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Reads the question name at q[off]; returns the offset after it or 0. */
static size_t
read_qname(const unsigned char *q, size_t len, size_t off, char *out)
{
	size_t o = 0;

	for (;;) {
		unsigned int l;

		if (off >= len)
			return 0;
		l = q[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > len || o + l + 1 >= NAME_LEN)
			return 0;	/* compression pointer or too long */
		if (o)
			out[o++] = '.';
		for (unsigned int i = 0; i < l; i++) {
			unsigned char c = q[off + i];

			out[o++] = (char)(c == '.' || c < 0x21 || c > 0x7e ? '?'
					  : tolower(c));
		}
		off += l;
	}
	out[o] = '\0';
	return off;
}

struct out {
	unsigned char *p;
	size_t len, cap;
	int overflow;
};

static void
put(struct out *o, const void *data, size_t n)
{
	if (o->len + n > o->cap) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, data, n);
	o->len += n;
}

static void
put16(struct out *o, unsigned int v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	put(o, b, 2);
}

static void
put_name(struct out *o, const char *name)
{
	const char *p = name;

	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		unsigned char lb = (unsigned char)(l > 63 ? 63 : l);

		put(o, &lb, 1);
		put(o, p, lb);
		p += l;
		if (*p == '.')
			p++;
	}
	put(o, "", 1);
}

static void
put_record(struct out *o, const char *owner, const struct record *r)
{
	size_t rdlen_at;

	put_name(o, owner);
	put16(o, r->type);
	put16(o, 1);		/* IN */
	put16(o, 0);
	put16(o, 60);		/* TTL */
	rdlen_at = o->len;
	put16(o, 0);
	switch (r->data ? 0 : r->type) {
	case RT_A:
		put(o, r->addr, 4);
		break;
	case RT_AAAA:
		put(o, r->addr, 16);
		break;
	case RT_MX:
		put16(o, r->pref);
		put_name(o, r->target);
		break;
	case RT_CNAME:
		put_name(o, r->target);
		break;
	default:
		put(o, r->data, r->dlen);	/* TLSA, RAW */
		break;
	}
	if (!o->overflow) {
		size_t rdlen = o->len - rdlen_at - 2;

		o->p[rdlen_at] = (unsigned char)(rdlen >> 8);
		o->p[rdlen_at + 1] = (unsigned char)rdlen;
	}
}

static const struct record *
find(const char *name, unsigned int type)
{
	for (size_t i = 0; i < nzone; i++)
		if (zone[i].type == type && strcmp(zone[i].name, name) == 0)
			return &zone[i];
	return NULL;
}

/*
 * Does a record owned by name make qname exist? Its own name, or a name
 * below it (qname is then an empty non-terminal: NODATA, not NXDOMAIN).
 */
static int
name_exists(const char *name, const char *qname)
{
	size_t n = strlen(name), q = strlen(qname);

	if (n == q)
		return strcmp(name, qname) == 0;
	return q == 0 || (n > q && name[n - q - 1] == '.' &&
			  strcmp(name + n - q, qname) == 0);
}

static const char *
type_name(unsigned int t)
{
	static char buf[16];

	switch (t) {
	case RT_A: return "A";
	case RT_AAAA: return "AAAA";
	case RT_MX: return "MX";
	case RT_CNAME: return "CNAME";
	case RT_TLSA: return "TLSA";
	default:
		snprintf(buf, sizeof(buf), "TYPE%u", t);
		return buf;
	}
}

/*
 * Reads the EDNS0 OPT record of a query: 1 with the UDP size it offers
 * and its DO bit when the first additional record is one, else 0.
 */
static int
read_opt(const unsigned char *q, size_t qlen, size_t off, unsigned int *udp_size,
	 int *do_bit)
{
	unsigned int arcount = (unsigned int)q[10] << 8 | q[11];

	/* Root name, type, class (the size), TTL, RDLENGTH: 11 bytes. */
	if (arcount == 0 || off + 11 > qlen || q[off] != 0 ||
	    ((unsigned int)q[off + 1] << 8 | q[off + 2]) != RT_OPT)
		return 0;
	*udp_size = (unsigned int)q[off + 3] << 8 | q[off + 4];
	*do_bit = (q[off + 7] & 0x80) != 0;
	return 1;
}

/* Is name marked SECURE? */
static int
is_secure(const char *name)
{
	return find(name, RT_SECURE) != NULL;
}

/*
 * Answers query q into out (capacity cap: what the transport allows
 * without EDNS0); returns the reply length, or 0 for no reply
 * (malformed query, or DROP).
 */
static size_t
answer(const unsigned char *q, size_t qlen, unsigned char *outp, size_t cap,
       const char *proto)
{
	char qname[NAME_LEN], cur[NAME_LEN];
	size_t qend, ancount = 0, hdr_end;
	unsigned int qtype, qclass, rcode = 0, udp_size = 0;
	struct out o = { outp, 0, cap, 0 };
	int exists = 0, tc = 0, edns, do_bit = 0, want_ad, ad;

	if (qlen < 12 || (q[2] & 0x80) || ((q[2] >> 3) & 0x0f) != 0 ||
	    q[4] != 0 || q[5] != 1)
		return 0;
	qend = read_qname(q, qlen, 12, qname);
	if (qend == 0 || qend + 4 > qlen)
		return 0;
	qtype = (unsigned int)q[qend] << 8 | q[qend + 1];
	qclass = (unsigned int)q[qend + 2] << 8 | q[qend + 3];
	qend += 4;
	edns = read_opt(q, qlen, qend, &udp_size, &do_bit);
	if (edns && cap == UDP_MAX)
		cap = udp_size < UDP_MAX ? UDP_MAX : udp_size > UDP_EDNS_MAX ?
		      UDP_EDNS_MAX : udp_size;
	/* RFC 6840 section 5.7: the AD bit or the DO bit asks for AD. */
	want_ad = (q[3] & 0x20) != 0 || do_bit;
	ad = want_ad && is_secure(qname);
	for (size_t i = 0; i < nzone; i++)
		if (zone[i].type != RT_SECURE && name_exists(zone[i].name, qname))
			exists = 1;
	if (find(qname, RT_DROP)) {
		if (log_fp)
			fprintf(log_fp, "testdns: %s %s %s -> - answers=0 drop%s%s id=%u\n",
				proto, qname[0] ? qname : ".", type_name(qtype),
				edns ? " edns" : "", want_ad ? " want-ad" : "",
				(unsigned int)q[0] << 8 | q[1]);
		return 0;
	}
	if (find(qname, RT_SERVFAIL))
		rcode = 2;
	else if (find(qname, RT_NXDOMAIN) || !exists)
		rcode = 3;
	else if (qclass != 1)
		rcode = 5;	/* REFUSED */
	if (rcode == 2 || rcode == 5)
		ad = 0;

	/* Header and question; room kept for the OPT record. */
	o.cap = edns ? cap - 11 : cap;
	put(&o, q, 2);
	{
		unsigned char flags[2] = { (unsigned char)(0x84 | (q[2] & 0x01)),
					   (unsigned char)rcode };

		put(&o, flags, 2);
	}
	put16(&o, 1);
	put16(&o, 0);		/* ancount, patched below */
	put16(&o, 0);
	put16(&o, edns ? 1 : 0);
	put(&o, q + 12, qend - 12);
	hdr_end = o.len;

	if (rcode == 0) {
		snprintf(cur, sizeof(cur), "%s", qname);
		for (int depth = 0; depth < CNAME_DEPTH; depth++) {
			const struct record *cn = qtype != RT_CNAME ? find(cur, RT_CNAME) : NULL;

			if (cn) {
				put_record(&o, cur, cn);
				ancount++;
				snprintf(cur, sizeof(cur), "%s", cn->target);
				ad = ad && is_secure(cur);
				continue;
			}
			for (size_t i = 0; i < nzone; i++)
				if (zone[i].type == qtype &&
				    strcmp(zone[i].name, cur) == 0) {
					put_record(&o, cur, &zone[i]);
					ancount++;
				}
			break;
		}
		if (o.overflow) {
			/* Too big for this transport: empty answer, TC set. */
			o.len = hdr_end;
			o.overflow = 0;
			outp[2] |= 0x02;
			ancount = 0;
			tc = 1;
		}
	}
	if (ad)
		outp[3] |= 0x20;
	if (edns) {
		unsigned char opt[11] = { 0, 0, RT_OPT,
					  (unsigned char)(UDP_EDNS_MAX >> 8),
					  (unsigned char)UDP_EDNS_MAX & 0xff,
					  0, 0, (unsigned char)(do_bit ? 0x80 : 0), 0,
					  0, 0 };

		o.cap = cap;
		put(&o, opt, sizeof(opt));
	}
	outp[6] = (unsigned char)(ancount >> 8);
	outp[7] = (unsigned char)ancount;
	if (log_fp)
		fprintf(log_fp, "testdns: %s %s %s -> %s answers=%zu%s%s%s%s id=%u\n",
			proto, qname[0] ? qname : ".", type_name(qtype),
			rcode == 0 ? "NOERROR" : rcode == 2 ? "SERVFAIL" :
			rcode == 3 ? "NXDOMAIN" : "REFUSED", ancount, tc ? " tc" : "",
			edns ? " edns" : "", want_ad ? " want-ad" : "", ad ? " ad" : "",
			(unsigned int)q[0] << 8 | q[1]);
	return o.len;
}

static void
serve_udp(int fd)
{
	unsigned char q[QUERY_MAX];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	ssize_t n = recvfrom(fd, q, sizeof(q), MSG_TRUNC, (struct sockaddr *)&peer, &plen);
	size_t rlen;

	if (n < 0 || (size_t)n > sizeof(q))
		return;
	rlen = answer(q, (size_t)n, reply, UDP_MAX, "udp");
	if (rlen > 0)
		(void)sendto(fd, reply, rlen, 0, (struct sockaddr *)&peer, plen);
}

static void
client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* Reads from a TCP client and answers each complete query. */
static void
serve_tcp(struct client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

	if (n <= 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)n;
	c->last = time(NULL);
	while (c->len >= 2) {
		size_t qlen = (size_t)c->buf[0] << 8 | c->buf[1], rlen, off = 0;

		if (qlen < 12 || qlen > QUERY_MAX) {
			client_close(c);
			return;
		}
		if (c->len < 2 + qlen)
			return;
		rlen = answer(c->buf + 2, qlen, reply + 2, TCP_MAX, "tcp");
		if (rlen > 0) {
			reply[0] = (unsigned char)(rlen >> 8);
			reply[1] = (unsigned char)rlen;
			while (off < rlen + 2) {
				ssize_t w = send(c->fd, reply + off, rlen + 2 - off,
						 MSG_NOSIGNAL);

				if (w <= 0) {
					client_close(c);
					return;
				}
				off += (size_t)w;
			}
		}
		memmove(c->buf, c->buf + 2 + qlen, c->len - 2 - qlen);
		c->len -= 2 + qlen;
	}
}

/* Binds UDP and TCP sockets to addr on the same port. */
static int
bind_both(const char *addr, unsigned int port, int *udp, int *tcp,
	  unsigned int *bound)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		int fam, one = 1;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
			fam = AF_INET;
			((struct sockaddr_in *)&ss)->sin_family = AF_INET;
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
			sl = sizeof(struct sockaddr_in);
		} else if (inet_pton(AF_INET6, addr,
				     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
			fam = AF_INET6;
			((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
			sl = sizeof(struct sockaddr_in6);
		} else {
			fprintf(stderr, "testdns: %s: not an IP address\n", addr);
			return -1;
		}
		*udp = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		*tcp = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (*udp < 0 || *tcp < 0) {
			perror("testdns: socket");
			return -1;
		}
		setsockopt(*tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(*udp, (struct sockaddr *)&ss, sl) < 0) {
			fprintf(stderr, "testdns: bind udp %s:%u: %s\n", addr, port,
				strerror(errno));
			return -1;
		}
		sl = sizeof(ss);
		getsockname(*udp, (struct sockaddr *)&ss, &sl);
		*bound = fam == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
					: ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		if (bind(*tcp, (struct sockaddr *)&ss, sl) == 0 && listen(*tcp, 16) == 0)
			return 0;
		if (port != 0) {
			fprintf(stderr, "testdns: bind tcp %s:%u: %s\n", addr, port,
				strerror(errno));
			return -1;
		}
		close(*udp);
		close(*tcp);	/* the UDP port is taken for TCP: try another */
	}
	fprintf(stderr, "testdns: no port free for both UDP and TCP\n");
	return -1;
}

int
main(int argc, char **argv)
{
	const char *listen_addr = "127.0.0.1", *port_file = NULL, *pid_file = NULL;
	const char *log_file = NULL;
	unsigned int port = 0, bound;
	struct client clients[MAX_CLIENTS];
	struct sigaction sa;
	sigset_t block, orig;
	int udp, tcp;
	char text[32];

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (val == NULL)
			usage();
		if (strcmp(opt, "--zone") == 0)
			zone_file = val;
		else if (strcmp(opt, "--listen") == 0)
			listen_addr = val;
		else if (strcmp(opt, "--port") == 0)
			port = (unsigned int)strtoul(val, NULL, 10);
		else if (strcmp(opt, "--port-file") == 0)
			port_file = val;
		else if (strcmp(opt, "--pid-file") == 0)
			pid_file = val;
		else if (strcmp(opt, "--log") == 0)
			log_file = val;
		else
			usage();
		i++;
	}
	if (zone_file == NULL || port > 65535)
		usage();
	if (strncmp(listen_addr, "127.", 4) != 0 && strcmp(listen_addr, "::1") != 0) {
		fprintf(stderr, "testdns: %s: only loopback addresses\n", listen_addr);
		return 2;
	}
	if (load_zone(zone_file) < 0)
		return 1;
	if (log_file) {
		log_fp = fopen(log_file, "a");
		if (log_fp == NULL) {
			fprintf(stderr, "testdns: %s: %s\n", log_file, strerror(errno));
			return 1;
		}
		setvbuf(log_fp, NULL, _IOLBF, 0);
	}

	/* Signals are only delivered inside ppoll(): no race with the flags. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &orig);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (bind_both(listen_addr, port, &udp, &tcp, &bound) < 0)
		return 1;
	if (pid_file) {
		snprintf(text, sizeof(text), "%ld\n", (long)getpid());
		if (write_file_atomic(pid_file, text) < 0) {
			fprintf(stderr, "testdns: %s: %s\n", pid_file, strerror(errno));
			return 1;
		}
	}
	if (port_file) {
		snprintf(text, sizeof(text), "%u\n", bound);
		if (write_file_atomic(port_file, text) < 0) {
			fprintf(stderr, "testdns: %s: %s\n", port_file, strerror(errno));
			return 1;
		}
	}
	if (log_fp)
		fprintf(log_fp, "testdns[%ld]: listening on %s port %u\n",
			(long)getpid(), listen_addr, bound);
	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;

	while (!stop_flag) {
		struct pollfd pfd[2 + MAX_CLIENTS];
		int map[2 + MAX_CLIENTS];
		nfds_t n = 0;
		struct timespec ts = { 1, 0 };
		time_t t = time(NULL);

		if (reload_flag) {
			reload_flag = 0;
			if (load_zone(zone_file) == 0 && log_fp)
				fprintf(log_fp, "testdns: zone reloaded\n");
		}
		pfd[n].fd = udp;
		pfd[n++].events = POLLIN;
		pfd[n].fd = tcp;
		pfd[n++].events = POLLIN;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (clients[i].fd >= 0 && t - clients[i].last > IDLE_SECONDS)
				client_close(&clients[i]);
			if (clients[i].fd >= 0) {
				map[n] = i;
				pfd[n].fd = clients[i].fd;
				pfd[n++].events = POLLIN;
			}
		}
		if (ppoll(pfd, n, &ts, &orig) < 0)
			continue;	/* EINTR: a signal, checked above */
		if (pfd[0].revents)
			serve_udp(udp);
		if (pfd[1].revents & POLLIN) {
			int fd = accept4(tcp, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				struct timeval tv = { 2, 0 };
				int slot = -1;

				for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
					if (clients[i].fd < 0)
						slot = i;
				if (slot < 0) {
					close(fd);	/* full: the client retries */
				} else {
					setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
					clients[slot].fd = fd;
					clients[slot].len = 0;
					clients[slot].last = t;
				}
			}
		}
		for (nfds_t k = 2; k < n; k++)
			if (pfd[k].revents && clients[map[k]].fd == pfd[k].fd)
				serve_tcp(&clients[map[k]]);
	}
	if (port_file)
		unlink(port_file);
	if (pid_file)
		unlink(pid_file);
	free(zone);
	return 0;
}
