/*
 * NAME
 *	tlspolicy/common.h - status codes, diagnostics and buffers
 * SUMMARY
 *	Every libtlspolicy function returns 0 (TP_OK) or a negative tp_status.
 *	Details of a failure go to a caller-owned tp_diag, never to a global:
 *	the library is thread-safe as long as threads do not share objects.
 *	The library never prints and never exits.
 * DESCRIPTION
 *	tp_strerror() names a status; it never returns NULL.
 *
 *	tp_diag carries the status, the file and line concerned (empty and 0
 *	when none) and a one-line message, e.g. for "tls_policy:12: unknown
 *	TLS security level "fingerprnt"". A NULL tp_diag pointer is accepted
 *	everywhere and means "caller does not want details".
 *	tp_diag_format() writes "file:line: message" (or "file: message", or
 *	"message") into buf and returns buf.
 *
 *	tp_buf is a growable byte buffer the library fills for the caller;
 *	ptr is NUL-terminated when not NULL. The caller releases it with
 *	tp_buf_dispose(), which accepts an empty buffer.
 *
 *	tp_strarray is a list of strings owned by the caller after a call
 *	fills it; tp_strarray_dispose() frees the strings and the list.
 */
#ifndef TLSPOLICY_COMMON_H
#define TLSPOLICY_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TP_EXTERN(type) extern __attribute__((visibility("default"))) type
#else
#define TP_EXTERN(type) extern type
#endif

/* Values are never renumbered; new ones go before TP_STATUS_LAST. */
typedef enum tp_status {
	TP_OK = 0,
	TP_ENOMEM = -1,		/* out of memory */
	TP_EIO = -2,		/* a system call failed; the message has errno text */
	TP_ESYNTAX = -3,	/* malformed input */
	TP_EINVALID = -4,	/* well-formed, but Postfix would reject it */
	TP_ENOTFOUND = -5,	/* no such key, file or host */
	TP_EDB = -6,		/* Berkeley DB reported an error */
	TP_ECONFIG = -7,	/* main.cf does not say what we need */
	TP_ECONNECT = -8,	/* could not connect, or the peer closed */
	TP_ETIMEOUT = -9,	/* a deadline passed */
	TP_EPROTOCOL = -10,	/* the SMTP server misbehaved or refused */
	TP_ETLS = -11,		/* TLS handshake or certificate problem */
	TP_EDNS = -12,		/* name resolution failed */
	TP_ELIMIT = -13,	/* a size cap was reached */
	TP_EUNSUPPORTED = -14,	/* map type or digest not supported */
	TP_EUSAGE = -15,	/* bad argument from the caller */
	TP_ECHANGED = -16,	/* a file changed since it was read */
	TP_STATUS_LAST = -17	/* sentinel: one past the last status */
} tp_status;

TP_EXTERN(const char *) tp_strerror(int status);

#define TP_DIAG_FILE_MAX 1024
#define TP_DIAG_MESSAGE_MAX 1024

typedef struct tp_diag {
	int status;
	unsigned long line;
	char file[TP_DIAG_FILE_MAX];
	char message[TP_DIAG_MESSAGE_MAX];
} tp_diag;

#define TP_DIAG_INIT { 0, 0, "", "" }

TP_EXTERN(void) tp_diag_clear(tp_diag *diag);
TP_EXTERN(const char *) tp_diag_format(const tp_diag *diag, char *buf,
				       size_t size);

typedef struct tp_buf {
	char *ptr;
	size_t size;
	size_t asize;
} tp_buf;

#define TP_BUF_INIT { NULL, 0, 0 }

TP_EXTERN(void) tp_buf_dispose(tp_buf *buf);

typedef struct tp_strarray {
	char **strings;
	size_t count;
} tp_strarray;

#define TP_STRARRAY_INIT { NULL, 0 }

TP_EXTERN(void) tp_strarray_dispose(tp_strarray *array);

#ifdef __cplusplus
}
#endif

#endif
