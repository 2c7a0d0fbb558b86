/*
 * NAME
 *	hostport - parse HOST[:PORT] probe targets
 * SUMMARY
 *	See hostport.h. Validation is strict on purpose: what we accept here
 *	goes to getaddrinfo() and, for names, into the TLS SNI extension.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "diag.h"
#include "hostport.h"

int
tp__port_digits(unsigned int *out, const char *p, size_t len)
{
	unsigned int port = 0;

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

static int
is_label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

const char *
tp__hostname_problem(const char *name, int *all_numeric)
{
	size_t len = strlen(name), label = 0;

	*all_numeric = 1;
	if (len == 0)
		return "empty host name";
	if (len > TP_HOST_MAX)
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
		if (!is_label_char(c))
			return "bad character in host name";
		if (c < '0' || c > '9')
			*all_numeric = 0;
		if (++label > 63)
			return "host name label longer than 63 bytes";
	}
	return NULL;
}

int
tp__valid_hostname(const char *name, int wildcard)
{
	size_t label = 0, count = 0;
	int non_numeric = 0;
	const char *cp;

	for (cp = name; *cp; cp++) {
		unsigned char ch = (unsigned char)*cp;
		int digit = ch >= '0' && ch <= '9';

		if (digit || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
			if (label++ == 0)
				count++;
			if (label > 63)
				return 0;
			if (!digit)
				non_numeric = 1;
		} else if (wildcard && ch == '*') {
			if (label || count || (cp[1] && cp[1] != '.'))
				return 0;
			count++;
			label++;
			non_numeric = 1;
		} else if (ch == '.') {
			if (label == 0 || cp[1] == 0)
				return 0;
			label = 0;
		} else if (ch == '-') {
			non_numeric = 1;
			if (++label == 1 || cp[1] == 0 || cp[1] == '.')
				return 0;
		} else {
			return 0;
		}
	}
	return cp > name && non_numeric && (size_t)(cp - name) <= 255;
}

/* Classify host (already copied into out->host); a reason on failure. */
static const char *
classify(tp__hostport *out, int bracketed)
{
	unsigned char addr[sizeof(struct in6_addr)];
	size_t len = strlen(out->host);
	const char *why;
	int all_numeric;

	if (inet_pton(AF_INET6, out->host, addr) == 1) {
		out->family = AF_INET6;
		return bracketed ? NULL : "IPv6 address needs brackets";
	}
	if (inet_pton(AF_INET, out->host, addr) == 1) {
		out->family = AF_INET;
		return NULL;
	}
	out->family = AF_UNSPEC;
	/* "mx.example.com." names the same host; SNI must not have the dot. */
	if (len > 1 && out->host[len - 1] == '.')
		out->host[len - 1] = '\0';
	if ((why = tp__hostname_problem(out->host, &all_numeric)) != NULL)
		return why;
	/* Not an address above, so digits and dots are a bad one. */
	return all_numeric ? "bad IPv4 address" : NULL;
}

int
tp__hostport_parse(tp__hostport *out, const char *s, tp_diag *diag)
{
	const char *host, *colon, *why;
	size_t hlen;
	int bracketed = 0;

	memset(out, 0, sizeof(*out));
	out->port = 25;
	if (s == NULL || *s == '\0')
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0, "empty host");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "\"%s\": missing ']'", s);
		host = s + 1;
		hlen = (size_t)(close - host);
		bracketed = 1;
		colon = close[1] ? close + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "\"%s\": expected ':PORT' after ']'", s);
	} else {
		host = s;
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Several colons: a bare IPv6 address, or a mistake. */
			unsigned char addr[sizeof(struct in6_addr)];

			if (strlen(s) <= TP_HOST_MAX &&
			    inet_pton(AF_INET6, s, addr) == 1) {
				strcpy(out->host, s);
				out->family = AF_INET6;
				return 0;
			}
			return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
					    "\"%s\": an IPv6 address needs brackets: "
					    "[ADDRESS]:PORT", s);
		}
		hlen = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (colon != NULL &&
	    tp__port_digits(&out->port, colon + 1, strlen(colon + 1)) != 0)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "\"%s\": bad port (want 1 to 65535)", s);
	if (hlen == 0)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "\"%s\": empty host", s);
	if (hlen > TP_HOST_MAX)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0,
				    "\"%.40s...\": host name longer than 253 bytes", s);
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if ((why = classify(out, bracketed)) != NULL)
		return tp__diag_set(diag, TP_ESYNTAX, NULL, 0, "\"%s\": %s", s, why);
	return 0;
}
