/*
 * NAME
 *	nexthop - the next-hop destination a policy key names
 * SUMMARY
 *	See tlspolicy/nexthop.h. The rules are those of Postfix's
 *	host_port() (brackets, "ipv6:" tag, "host:" meaning the default
 *	port), valid_hostname() and filter_known_tcp_port().
 * DESCRIPTION
 *	Host names are checked as Postfix's valid_hostname() checks them
 *	(letters, digits, '-' and '_'; labels of 1 to 63 bytes that neither
 *	start nor end with '-'; an all-numeric name is no host name), after
 *	conversion to A-labels when they are not ASCII.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <unicode/uidna.h>

#include "casefold.h"
#include "diag.h"
#include "tlspolicy/nexthop.h"

/* Postfix's known_tcp_ports default. */
static const struct {
	const char *name;
	unsigned int port;
} known_ports[] = {
	{ "lmtp", 24 }, { "smtp", 25 }, { "smtps", 465 },
	{ "submissions", 465 }, { "submission", 587 },
};

static int
parse_port(unsigned int *out, const char *p)
{
	unsigned int port = 0;
	size_t len = strlen(p);

	for (size_t i = 0; i < sizeof(known_ports) / sizeof(known_ports[0]); i++)
		if (strcmp(p, known_ports[i].name) == 0) {
			*out = known_ports[i].port;
			return 0;
		}
	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		port = port * 10 + (unsigned int)(p[i] - '0');
	}
	if (port == 0 || port > 65535)
		return -1;
	*out = port;
	return 0;
}

/* NULL for a name Postfix's valid_hostname() accepts, else why not. */
static const char *
check_hostname(const char *name)
{
	size_t len = strlen(name), label = 0;
	int all_numeric = 1;

	if (len == 0)
		return "empty host name";
	if (len > 253)
		return "host name longer than 253 bytes";
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "empty label in host name";
			if (name[i - 1] == '-' || name[i - label] == '-')
				return "host name label starts or ends with '-'";
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return "bad character in host name";
		if (c < '0' || c > '9')
			all_numeric = 0;
		if (++label > 63)
			return "host name label longer than 63 bytes";
	}
	return all_numeric ? "numeric host name that is no IPv4 address" : NULL;
}

/* The A-label form of a UTF-8 domain; NULL for a name IDNA refuses. */
static const char *
to_ascii(const char *name, char *out, size_t size)
{
	UErrorCode err = U_ZERO_ERROR;
	UIDNAInfo info = UIDNA_INFO_INITIALIZER;
	UIDNA *idna;
	int32_t n;

	if (!tp__utf8_valid(name, strlen(name)))
		return NULL;
	idna = uidna_openUTS46(UIDNA_NONTRANSITIONAL_TO_ASCII | UIDNA_CHECK_BIDI,
			       &err);
	if (U_FAILURE(err))
		return NULL;
	n = uidna_nameToASCII_UTF8(idna, name, -1, out, (int32_t)size - 1,
				   &info, &err);
	uidna_close(idna);
	if (U_FAILURE(err) || info.errors != 0 || n <= 0 || (size_t)n >= size)
		return NULL;
	out[n] = '\0';
	return out;
}

static int
is_address(const char *s, int *family)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = 4;
		return 1;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = 6;
		return 1;
	}
	return 0;
}

int
tp_nexthop_parse(tp_nexthop *out, const char *key, tp_diag *diag)
{
	const char *host, *port = NULL, *why;
	size_t hlen;
	int bracketed = 0, ipv6_tag = 0;

	memset(out, 0, sizeof(*out));
	out->port = 25;
	if (key == NULL || *key == '\0')
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0, "empty next hop");
	if (key[0] == '[') {
		const char *close;

		host = key + 1;
		if (strncasecmp(host, "ipv6:", 5) == 0) {
			host += 5;
			ipv6_tag = 1;
		}
		if ((close = strchr(host, ']')) == NULL)
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: missing \"]\"", key);
		if (close[1] != '\0' && close[1] != ':')
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: garbage after \"]\"", key);
		hlen = (size_t)(close - host);
		port = close[1] == ':' ? close + 2 : NULL;
		bracketed = 1;
	} else {
		/* Postfix splits at the rightmost ':' (split_at_right). */
		const char *colon = strrchr(key, ':');

		host = key;
		hlen = colon ? (size_t)(colon - key) : strlen(key);
		port = colon ? colon + 1 : NULL;
	}
	if (hlen == 0)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "%s: missing host information", key);
	if (hlen >= sizeof(out->host))
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "%.60s...: host name too long", key);
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (port != NULL && *port != '\0') {
		if (parse_port(&out->port, port) != 0)
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: bad port \"%s\" (want 1 to 65535, or smtp, submission, submissions, smtps, lmtp)",
					    key, port);
		out->port_given = 1;
	}
	if (is_address(out->host, &out->family)) {
		if (ipv6_tag && out->family != 6)
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: malformed IPv6 address", key);
		if (out->family == 6 && !bracketed)
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%s: an IPv6 address needs brackets: [ipv6:ADDRESS]:PORT",
					    key);
		out->kind = TP_NEXTHOP_ADDRESS;
		strcpy(out->ascii, out->host);
		return 0;
	}
	if (ipv6_tag)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "%s: malformed IPv6 address", key);
	out->kind = bracketed ? TP_NEXTHOP_HOST : TP_NEXTHOP_DOMAIN;
	if (!bracketed && out->host[0] == '.') {
		out->kind = TP_NEXTHOP_PATTERN;
		memmove(out->host, out->host + 1, hlen);
		hlen--;
	}
	/* "mx.example.com." names the same host; DNS and SNI want it bare. */
	if (hlen > 1 && out->host[hlen - 1] == '.')
		out->host[--hlen] = '\0';
	if (tp__allascii(out->host, hlen)) {
		if (hlen >= sizeof(out->ascii))
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "%.60s...: host name longer than 253 bytes", key);
		strcpy(out->ascii, out->host);
	} else if (to_ascii(out->host, out->ascii, sizeof(out->ascii)) == NULL) {
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "%s: not a valid internationalised domain name", key);
	}
	if ((why = check_hostname(out->ascii)) != NULL)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0, "%s: %s", key, why);
	return 0;
}
