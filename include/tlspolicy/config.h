/*
 * NAME
 *	tlspolicy/config.h - what Postfix's main.cf says about TLS policy
 * SUMMARY
 *	Finds the config directory, reads main.cf (continuation lines,
 *	comments, $name and ${name} expansion) and answers: which policy
 *	table, which fingerprint digest, whether SMTPUTF8 is on.
 * DESCRIPTION
 *	tp_config_load() reads DIR/main.cf; dir NULL means $MAIL_CONFIG,
 *	else /etc/postfix. TP_ENOTFOUND when there is no main.cf, TP_EIO
 *	when it cannot be read. Free with tp_config_free() (NULL is fine).
 *
 *	tp_config_get() returns the expanded value of a parameter set in
 *	main.cf or built into Postfix's defaults that matter here
 *	(config_directory, compatibility_level, smtputf8_enable,
 *	smtp_tls_fingerprint_digest, smtp_tls_policy_maps); NULL otherwise.
 *
 *	tp_config_policy_map() gives the first file-backed map (hash:,
 *	btree:, lmdb:, cdb:) of smtp_tls_policy_maps; a bare path there is
 *	no map for Postfix and is not taken. TP_ECONFIG with a
 *	message suggesting -m when there is none.
 *
 *	tp_config_digest() is the effective smtp_tls_fingerprint_digest:
 *	the configured one, or md5 below compatibility_level 3.6 and sha256
 *	from 3.6 on (possibly "" when main.cf sets it to an empty value:
 *	check it with tp_digest_check()). tp_config_smtputf8() is the
 *	effective smtputf8_enable.
 *
 *	tp_config_nbdb_level() reads Postfix 3.11's non_bdb_migration_level:
 *	TP_NBDB_DISABLE (the default), TP_NBDB_REDIRECT (enable-redirect),
 *	TP_NBDB_REINDEX (enable-reindex), TP_NBDB_INVALID for anything else.
 *	tp_config_effective_type() is the map type Postfix opens for a map
 *	written as type: with redirection on (either enable- level), hash
 *	becomes default_database_type and btree default_cache_db_type;
 *	otherwise, and for every other type, type itself. The result may
 *	still be hash or btree: Postfix then fails the map ("mapping from
 *	'hash' to legacy type 'hash'"). config NULL: type.
 */
#ifndef TLSPOLICY_CONFIG_H
#define TLSPOLICY_CONFIG_H

#include "common.h"
#include "map.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_config tp_config;

TP_EXTERN(int) tp_config_load(tp_config **out, const char *dir,
			      tp_diag *diag);
TP_EXTERN(void) tp_config_free(tp_config *config);
TP_EXTERN(const char *) tp_config_dir(const tp_config *config);
TP_EXTERN(const char *) tp_config_get(const tp_config *config,
				      const char *name);
TP_EXTERN(int) tp_config_policy_map(const tp_config *config,
				    tp_map_type *type, const char **path,
				    tp_diag *diag);
TP_EXTERN(const char *) tp_config_digest(const tp_config *config);
TP_EXTERN(int) tp_config_smtputf8(const tp_config *config);

/* Postfix 3.11's non_bdb_migration_level (NON_BERKELEYDB_README). */
enum {
	TP_NBDB_INVALID = -1,	/* a value Postfix does not know */
	TP_NBDB_DISABLE = 0,
	TP_NBDB_REDIRECT = 1,	/* enable-redirect */
	TP_NBDB_REINDEX = 2	/* enable-reindex: redirect, and reindex */
};
TP_EXTERN(int) tp_config_nbdb_level(const tp_config *config);
TP_EXTERN(const char *) tp_config_effective_type(const tp_config *config,
						 const char *type);

#ifdef __cplusplus
}
#endif

#endif
