#include <time.h>

#include "cli.h"
#include "json.h"

int
cli_jset(json_t *obj, const char *key, json_t *value)
{
	return value == NULL || json_object_set_new(obj, key, value) != 0 ? -1 : 0;
}

json_t *
cli_jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
candidate_json(const tp_candidate *c)
{
	const tp_evidence *ev = &c->ev;
	json_t *o = json_object(), *e = json_object();
	char since[32];
	int bad = o == NULL || e == NULL;

	if (bad) {
		json_decref(o);
		json_decref(e);
		return NULL;
	}
	bad |= cli_jset(o, "fingerprint", json_string(c->fingerprint));
	bad |= cli_jset(o, "key_id", cli_jstr(c->key_id));
	bad |= cli_jset(o, "subject", cli_jstr(c->leaf ? c->leaf->subject : NULL));
	bad |= cli_jset(o, "issuer", cli_jstr(c->leaf ? c->leaf->issuer : NULL));
	bad |= cli_jset(o, "trusted", json_boolean(c->trusted));
	bad |= cli_jset(o, "why", cli_jstr(c->why));
	bad |= cli_jset(o, "evidence", e);
	bad |= cli_jset(e, "same_key", json_boolean(ev->same_key));
	bad |= cli_jset(e, "pkix", json_boolean(ev->pkix));
	bad |= cli_jset(e, "pkix_name", cli_jstr(ev->pkix ? ev->pkix_name : NULL));
	bad |= cli_jset(e, "pkix_why_not", cli_jstr(ev->pkix ? NULL : ev->pkix_why));
	bad |= cli_jset(e, "dane", json_boolean(ev->dane));
	bad |= cli_jset(e, "dane_why_not", cli_jstr(ev->dane ? NULL : ev->dane_why));
	bad |= cli_jset(e, "consistent", json_boolean(ev->consistent));
	bad |= cli_jset(e, "seen_at", json_integer((json_int_t)ev->seen_at));
	bad |= cli_jset(e, "servers", json_integer((json_int_t)ev->servers));
	bad |= cli_jset(e, "held", json_boolean(ev->held));
	bad |= cli_jset(e, "held_since", ev->seen_since
			? json_string(cli_iso_time(since, sizeof(since), ev->seen_since))
			: json_null());
	bad |= cli_jset(e, "accepted", json_boolean(ev->accepted));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
cli_candidates_json(const tp_trust_result *tr)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && tr != NULL && i < tr->count; i++)
		if (json_array_append_new(a, candidate_json(&tr->candidates[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}
