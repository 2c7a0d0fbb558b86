/*
 * NAME
 *	dnsmsg - build DNS queries and read DNS answers, with hard bounds
 * SUMMARY
 *	See dnsmsg.h for the contract.
 * DESCRIPTION
 *	Everything here reads bytes a DNS server (or anyone who can spoof
 *	one) chose, so every read is bounded by the message length, every
 *	loop by a count: a name by 255 wire bytes and TP_DNS_MAX_POINTERS
 *	compression pointers, each pointing before the labels that led to
 *	it (so a pointer can never lead back to where it was read: no
 *	loops); the answer section by the header's count, which must fit in
 *	the message (11 bytes a record at least) before anything is
 *	allocated; a CNAME chain by TP_DNS_MAX_CNAMES links.
 * DIAGNOSTICS
 *	A static reason in tp__dns_answer.why, or from tp__dns_tlsa_decode().
 */
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"

#define HEADER_LEN 12
#define RR_FIXED_LEN 10		/* type, class, ttl, rdlength */
#define RR_MIN_LEN (1 + RR_FIXED_LEN)

static unsigned int
get16(const unsigned char *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

/*
 * A walk over the labels of one name. seg is where the current run of
 * labels began: a pointer must point before it.
 */
struct name_iter {
	const unsigned char *msg;
	size_t len;
	size_t pos;		/* next length byte */
	size_t seg;
	size_t end;		/* offset after the name where it started */
	size_t wire;		/* wire bytes so far, the final 0 included */
	unsigned int hops;
	int jumped;
};

static void
name_iter_init(struct name_iter *it, const unsigned char *msg, size_t len,
	       size_t off)
{
	memset(it, 0, sizeof(*it));
	it->msg = msg;
	it->len = len;
	it->pos = off;
	it->seg = off;
	it->wire = 1;
}

/*
 * The next label: 1 with its offset and length, 0 at the end of the
 * name (it->end is then set), -1 with *why for a malformed name.
 */
static int
name_next(struct name_iter *it, size_t *label, size_t *label_len,
	  const char **why)
{
	for (;;) {
		unsigned int l;

		if (it->pos >= it->len) {
			*why = "name runs past the end of the message";
			return -1;
		}
		l = it->msg[it->pos];
		if ((l & 0xc0) == 0xc0) {
			size_t target;

			if (it->pos + 1 >= it->len) {
				*why = "name runs past the end of the message";
				return -1;
			}
			target = (size_t)(l & 0x3f) << 8 | it->msg[it->pos + 1];
			if (target >= it->seg) {
				*why = "compression pointer does not point backwards";
				return -1;
			}
			if (++it->hops > TP_DNS_MAX_POINTERS) {
				*why = "too many compression pointers in a name";
				return -1;
			}
			if (!it->jumped) {
				it->end = it->pos + 2;
				it->jumped = 1;
			}
			it->pos = target;
			it->seg = target;
			continue;
		}
		if (l & 0xc0) {
			*why = "reserved label type in a name";
			return -1;
		}
		if (l == 0) {
			if (!it->jumped)
				it->end = it->pos + 1;
			return 0;
		}
		if (it->len - it->pos - 1 < l) {
			*why = "name runs past the end of the message";
			return -1;
		}
		it->wire += 1 + l;
		if (it->wire > TP_DNS_NAME_WIRE_MAX) {
			*why = "name longer than 255 bytes";
			return -1;
		}
		*label = it->pos + 1;
		*label_len = l;
		it->pos += 1 + l;
		return 1;
	}
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * Reads the name at off: *end is the offset after it; out, when not
 * NULL, gets its text (TP_DNS_NAME_TEXT_MAX + 1 bytes). 0 or -1.
 */
static int
name_read(const unsigned char *msg, size_t len, size_t off, size_t *end,
	  char *out, const char **why)
{
	struct name_iter it;
	size_t label, llen, o = 0;
	int rc;

	name_iter_init(&it, msg, len, off);
	while ((rc = name_next(&it, &label, &llen, why)) == 1) {
		if (out == NULL)
			continue;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < llen; i++) {
			unsigned char c = lower(msg[label + i]);

			if (c < 0x21 || c > 0x7e || c == '.' || c == '\\') {
				out[o++] = '\\';
				out[o++] = (char)('0' + c / 100);
				out[o++] = (char)('0' + c / 10 % 10);
				out[o++] = (char)('0' + c % 10);
			} else {
				out[o++] = (char)c;
			}
		}
	}
	if (rc < 0)
		return -1;
	if (out)
		out[o] = '\0';
	*end = it.end;
	return 0;
}

/* Are the (already checked) names at a and b equal, ignoring case? */
static int
name_equal(const unsigned char *msg, size_t len, size_t a, size_t b)
{
	struct name_iter x, y;
	const char *why;

	if (a == b)
		return 1;
	name_iter_init(&x, msg, len, a);
	name_iter_init(&y, msg, len, b);
	for (;;) {
		size_t xl = 0, xn = 0, yl = 0, yn = 0;
		int rx = name_next(&x, &xl, &xn, &why);
		int ry = name_next(&y, &yl, &yn, &why);

		if (rx < 0 || ry < 0 || rx != ry)
			return 0;
		if (rx == 0)
			return 1;
		if (xn != yn)
			return 0;
		for (size_t i = 0; i < xn; i++)
			if (lower(msg[xl + i]) != lower(msg[yl + i]))
				return 0;
	}
}

size_t
tp__dns_query_build(unsigned char *buf, size_t cap, const char *name,
		    unsigned int qtype, unsigned int udp_size, int dnssec)
{
	size_t nlen = strlen(name), pos = HEADER_LEN, need;
	const char *p = name, *end;

	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--;
	if (nlen > TP_DNS_NAME_WIRE_MAX - 2)
		return 0;
	need = HEADER_LEN + (nlen ? nlen + 2 : 1) + 4 + (udp_size ? 11 : 0);
	if (cap < need || qtype > 0xffff || udp_size > 0xffff)
		return 0;
	memset(buf, 0, HEADER_LEN);
	buf[2] = 0x01;		/* RD */
	buf[3] = 0x20;		/* AD: RFC 6840 section 5.7 */
	buf[5] = 1;		/* one question */
	buf[11] = udp_size ? 1 : 0;
	end = name + nlen;
	while (p < end) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t l = dot ? (size_t)(dot - p) : (size_t)(end - p);

		if (l == 0 || l > 63)
			return 0;
		buf[pos++] = (unsigned char)l;
		memcpy(buf + pos, p, l);
		pos += l;
		p += l;
		if (p < end)
			p++;	/* the dot */
		if (dot != NULL && p == end)
			return 0;	/* "a..": an empty last label */
	}
	buf[pos++] = 0;
	buf[pos++] = (unsigned char)(qtype >> 8);
	buf[pos++] = (unsigned char)qtype;
	buf[pos++] = 0;
	buf[pos++] = TP_DNS_C_IN;
	if (udp_size) {
		buf[pos++] = 0;		/* root */
		buf[pos++] = 0;
		buf[pos++] = TP_DNS_T_OPT;
		buf[pos++] = (unsigned char)(udp_size >> 8);
		buf[pos++] = (unsigned char)udp_size;
		buf[pos++] = 0;		/* extended rcode */
		buf[pos++] = 0;		/* version */
		buf[pos++] = dnssec ? 0x80 : 0;	/* DO */
		buf[pos++] = 0;
		buf[pos++] = 0;		/* no options */
		buf[pos++] = 0;
	}
	return pos;
}

struct rrinfo {
	size_t owner;
	unsigned int type, rclass;
	size_t rdoff, rdlen;
};

static int
answer_fail(tp__dns_answer *a, const char *why)
{
	a->why = why;
	return TP_EPROTOCOL;
}

int
tp__dns_answer_parse(tp__dns_answer *a, const unsigned char *msg, size_t len)
{
	struct rrinfo *v;
	size_t pos, an, cur, i;
	const char *why = NULL;

	memset(a, 0, sizeof(*a));
	if (len < HEADER_LEN)
		return answer_fail(a, "shorter than a DNS header");
	if (len > TP_DNS_MSG_MAX)
		return answer_fail(a, "longer than 65535 bytes");
	if (!(msg[2] & 0x80))
		return answer_fail(a, "not a response");
	a->tc = (msg[2] & 0x02) != 0;
	a->ad = (msg[3] & 0x20) != 0;
	a->rcode = msg[3] & 0x0f;
	if (get16(msg + 4) != 1)
		return answer_fail(a, "not exactly one question");
	an = get16(msg + 6);
	if (name_read(msg, len, HEADER_LEN, &pos, a->qname, &why) < 0)
		return answer_fail(a, why);
	if (len - pos < 4)
		return answer_fail(a, "question runs past the end of the message");
	a->qtype = get16(msg + pos);
	pos += 4;
	if (an > (len - pos) / RR_MIN_LEN)
		return answer_fail(a, "fewer answer records than the header says");
	v = calloc(an ? an : 1, sizeof(*v));
	a->rr = calloc(an ? an : 1, sizeof(*a->rr));
	if (v == NULL || a->rr == NULL) {
		free(v);
		return TP_ENOMEM;
	}
	for (i = 0; i < an; i++) {
		v[i].owner = pos;
		if (name_read(msg, len, pos, &pos, NULL, &why) < 0)
			goto bad;
		if (len - pos < RR_FIXED_LEN) {
			why = "fewer answer records than the header says";
			goto bad;
		}
		v[i].type = get16(msg + pos);
		v[i].rclass = get16(msg + pos + 2);
		v[i].rdlen = get16(msg + pos + 8);
		pos += RR_FIXED_LEN;
		if (v[i].rdlen > len - pos) {
			why = "record runs past the end of the message";
			goto bad;
		}
		v[i].rdoff = pos;
		pos += v[i].rdlen;
	}
	/* The CNAME chain from the question's name, as a resolver follows it. */
	cur = HEADER_LEN;
	while (a->qtype != TP_DNS_T_CNAME) {
		size_t end;

		for (i = 0; i < an; i++)
			if (v[i].type == TP_DNS_T_CNAME && v[i].rclass == TP_DNS_C_IN &&
			    name_equal(msg, len, v[i].owner, cur))
				break;
		if (i == an)
			break;
		if (a->cnames == TP_DNS_MAX_CNAMES) {
			why = "CNAME chain too long (a loop?)";
			goto bad;
		}
		if (name_read(msg, len, v[i].rdoff, &end, NULL, &why) < 0)
			goto bad;
		if (end != v[i].rdoff + v[i].rdlen) {
			why = "CNAME RDATA is not one name";
			goto bad;
		}
		cur = v[i].rdoff;
		a->cnames++;
	}
	if (name_read(msg, len, cur, &pos, a->owner, &why) < 0)
		goto bad;
	for (i = 0; i < an; i++)
		if (v[i].type == a->qtype && v[i].rclass == TP_DNS_C_IN &&
		    name_equal(msg, len, v[i].owner, cur)) {
			a->rr[a->nrr].off = v[i].rdoff;
			a->rr[a->nrr].len = v[i].rdlen;
			a->nrr++;
		}
	free(v);
	return 0;
bad:
	free(v);
	return answer_fail(a, why);
}

void
tp__dns_answer_dispose(tp__dns_answer *a)
{
	free(a->rr);
	a->rr = NULL;
	a->nrr = 0;
}

int
tp__dns_tlsa_decode(tp__dns_tlsa *t, const unsigned char *rdata, size_t len,
		    const char **why)
{
	memset(t, 0, sizeof(*t));
	if (len < 3) {
		*why = "TLSA RDATA shorter than 3 bytes";
		return -1;
	}
	t->usage = rdata[0];
	t->selector = rdata[1];
	t->mtype = rdata[2];
	t->data = rdata + 3;
	t->len = len - 3;
	if (t->len == 0) {
		*why = "TLSA record without association data";
		return -1;
	}
	if ((t->mtype == 1 && t->len != 32) || (t->mtype == 2 && t->len != 64)) {
		*why = "TLSA digest of the wrong length for its matching type";
		return -1;
	}
	return 0;
}
