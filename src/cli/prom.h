/*
 * NAME
 *	prom - check's node_exporter textfile (Prometheus text format)
 * DESCRIPTION
 *	cli_prom_write() replaces the file at path, atomically (temp file
 *	beside it, fsync, rename, fsync of the directory; mode 0644, or the
 *	old file's), with these gauges, labelled table="SOURCE" and, per
 *	entry, key="KEY" (label values escaped as the format says:
 *	backslash, double quote, newline):
 *	  tlspolicy_entry_status		0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
 *	  tlspolicy_pin_expiry_days		days until the pinned certificate
 *						presented expires (earliest; < 0:
 *						expired); absent when none was seen
 *	  tlspolicy_pinned_cert_not_after_seconds  the same as a Unix time
 *	  tlspolicy_last_success_timestamp_seconds  when every address of
 *						the entry was last probed with
 *						success: now, else the previous
 *						file's value, else absent
 *	  tlspolicy_deferred_messages		messages in Postfix's queue deferred
 *						with a TLS failure for the entry
 *						(absent when the queue was not read)
 *	  tlspolicy_check_status		the run's exit status (0-3)
 *	  tlspolicy_check_timestamp_seconds	when it ran
 *	entries == NULL (the run failed before it had entries): every
 *	last-success sample of the previous file is kept as it was.
 * DIAGNOSTICS
 *	Prints the error and returns -1; the old file is then untouched. A
 *	previous file that cannot be read is a warning (values not kept).
 */
#ifndef TP_CLI_PROM_H
#define TP_CLI_PROM_H

#include <time.h>

struct cli_prom_entry {
	const char *key;
	int status;		/* 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN */
	time_t not_after;	/* of the pinned certificate; 0: none seen */
	int probe_ok;		/* every address probed, a certificate seen */
	long deferred;		/* messages deferred for it; -1: queue not read */
};

int cli_prom_write(const char *path, const char *table,
		   const struct cli_prom_entry *entries, size_t n,
		   int check_status, time_t now);

#endif
