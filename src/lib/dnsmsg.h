/*
 * NAME
 *	dnsmsg - build DNS queries and read DNS answers, with hard bounds
 *	(internal)
 * SUMMARY
 *	The few pieces of RFC 1035 wire format the resolver handles itself,
 *	because c-ares 1.18 neither sets the AD bit in a query nor shows it
 *	in an answer, and has no TLSA parser: a query with the AD bit and an
 *	EDNS0 OPT record, and an answer read into its header flags, its
 *	question, the CNAME chain from the question's name, and the records
 *	of the type asked that belong to the end of the chain.
 * DESCRIPTION
 *	tp__dns_query_build() writes a query for name (text, a trailing dot
 *	allowed, labels of 1 to 63 bytes, 255 bytes on the wire at most) and
 *	qtype, class IN, into buf (cap bytes), with RD (recursion desired)
 *	and AD (RFC 6840 section 5.7: tell me whether you validated it) set
 *	in the header, and, when udp_size is not 0, an EDNS0 OPT record
 *	(RFC 6891) offering that UDP size with the DO bit set when dnssec
 *	is not 0 (as Postfix asks with RES_USE_DNSSEC). The id is 0: c-ares
 *	sets its own. Returns the length, or 0 when name is not a DNS name
 *	or cap is too small.
 *
 *	tp__dns_answer_parse() reads msg (len bytes, a whole DNS message)
 *	into a, which the caller disposes of with tp__dns_answer_dispose()
 *	whatever the result. It returns 0, TP_ENOMEM, or TP_EPROTOCOL with a
 *	static reason in a->why when the message is malformed: shorter than
 *	a header or longer than 65535 bytes, not a response, not exactly one
 *	question, a name that runs past the end, uses a reserved label type,
 *	a compression pointer that does not point strictly backwards, more
 *	than TP_DNS_MAX_POINTERS pointers or over 255 bytes, a record that
 *	runs past the end, fewer answer records than the header counts, a
 *	CNAME whose target runs past its RDATA, or a CNAME chain longer than
 *	TP_DNS_MAX_CNAMES (a loop). Only the header, the question and the
 *	answer section are read; the authority and additional sections are
 *	not (c-ares has checked the framing, and we need nothing there).
 *
 *	After a successful parse: a->rcode, a->ad, a->tc from the header;
 *	a->qname, a->qtype from the question; a->owner is the name whose
 *	records answer the question: the question's name, or the target of
 *	the last CNAME of the chain that starts there (class IN CNAME
 *	records of the answer section, followed as a resolver does, not
 *	when the question asks for CNAME), a->cnames how many were followed;
 *	a->rr[0..a->nrr-1] give the offset and length in msg of the RDATA of
 *	every class IN record of type a->qtype owned by a->owner, in message
 *	order. Names are compared case-insensitively; the text forms are
 *	lower case, without a trailing dot ("" for the root), with a byte
 *	that is not a printable ASCII character, or that is '.' or '\\'
 *	inside a label, written as \DDD (decimal), as in zone files.
 *
 *	tp__dns_tlsa_decode() reads the RDATA of one TLSA record (RFC 6698
 *	section 2.1) into t, pointing into rdata. It returns 0, or -1 with
 *	a static reason in *why when it is malformed: shorter than 3 bytes,
 *	no association data, or a digest of the wrong length for matching
 *	type 1 (SHA2-256, 32 bytes) or 2 (SHA2-512, 64 bytes). Usages,
 *	selectors and matching types it does not know are not malformed
 *	(RFC 7671 section 5: the caller decides what it can use).
 */
#ifndef TP_DNSMSG_INTERNAL_H
#define TP_DNSMSG_INTERNAL_H

#include <stddef.h>

#include "tlspolicy/common.h"

#define TP_DNS_MSG_MAX 65535
#define TP_DNS_NAME_WIRE_MAX 255
/* Presentation form of the longest name: every byte as \DDD. */
#define TP_DNS_NAME_TEXT_MAX (4 * TP_DNS_NAME_WIRE_MAX)
#define TP_DNS_MAX_POINTERS 64
#define TP_DNS_MAX_CNAMES 16

#define TP_DNS_T_A 1
#define TP_DNS_T_CNAME 5
#define TP_DNS_T_MX 15
#define TP_DNS_T_AAAA 28
#define TP_DNS_T_OPT 41
#define TP_DNS_T_TLSA 52
#define TP_DNS_C_IN 1

#define TP_DNS_RCODE_NOERROR 0
#define TP_DNS_RCODE_FORMERR 1
#define TP_DNS_RCODE_SERVFAIL 2
#define TP_DNS_RCODE_NXDOMAIN 3
#define TP_DNS_RCODE_NOTIMP 4
#define TP_DNS_RCODE_REFUSED 5

typedef struct tp__dns_rdata {
	size_t off;		/* in the message */
	size_t len;
} tp__dns_rdata;

typedef struct tp__dns_answer {
	unsigned int rcode;	/* the header's 4 bits */
	int ad;			/* authentic data: the server validated it */
	int tc;			/* truncated */
	unsigned int qtype;
	char qname[TP_DNS_NAME_TEXT_MAX + 1];
	char owner[TP_DNS_NAME_TEXT_MAX + 1];
	unsigned int cnames;
	tp__dns_rdata *rr;
	size_t nrr;
	const char *why;	/* static reason when parse failed */
} tp__dns_answer;

typedef struct tp__dns_tlsa {
	unsigned int usage, selector, mtype;
	const unsigned char *data;
	size_t len;
} tp__dns_tlsa;

size_t tp__dns_query_build(unsigned char *buf, size_t cap, const char *name,
			   unsigned int qtype, unsigned int udp_size, int dnssec);
int tp__dns_answer_parse(tp__dns_answer *a, const unsigned char *msg,
			 size_t len);
void tp__dns_answer_dispose(tp__dns_answer *a);
int tp__dns_tlsa_decode(tp__dns_tlsa *t, const unsigned char *rdata,
			size_t len, const char **why);

#endif
