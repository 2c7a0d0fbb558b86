/*
 * JSON output shared by the commands (jansson). Every builder returns
 * NULL when out of memory, and cli_jset fails on a NULL value, so one
 * "bad |=" per field catches it.
 */
#ifndef TP_CLI_JSON_H
#define TP_CLI_JSON_H

#include <jansson.h>

#include <tlspolicy.h>

/* json_object_set_new, failing (-1) when value is NULL or memory runs out. */
int cli_jset(json_t *obj, const char *key, json_t *value);

/* A string, or null for NULL. */
json_t *cli_jstr(const char *s);

/*
 * The candidates of a trust evaluation: fingerprint, key id, whether it
 * is trusted and why, and each piece of evidence with the reason it is
 * missing. An empty array for NULL.
 */
json_t *cli_candidates_json(const tp_trust_result *tr);

#endif
