# tlspolicy migrate against a real Postfix instance in a sandbox config
# directory: a partner pinned in a hash: table gets mail over verified TLS;
# migrate --to lmdb --reload writes the .lmdb, changes only
# smtp_tls_policy_maps (postconf -n before and after), reloads, and mail is
# still delivered with the pins; then --to cdb likewise, with --remove-old.
# A Postfix without the type (postconf -m not listing it) is refused with
# nothing changed. Needs root and postfix, postfix-lmdb, postfix-cdb: a
# missing oracle fails the test.
. "$TP_SOURCE_DIR/tests/lib.sh"

for c in postfix postconf postqueue sendmail postmap; do
    command -v "$c" >/dev/null || fail "$c not found: install postfix (the end-to-end oracle)"
done
[ "$(id -u)" = 0 ] || fail "a Postfix instance needs root"
for t in lmdb cdb; do
    postconf -m | grep -qx "$t" || fail "postconf -m lists no $t: install postfix-$t (the oracle)"
done

T=$TLSPOLICY
tp_make_cert "$TP_TMP/a" mx.partner-a.test
tp_start_server a --cert "$TP_TMP/a.pem" --hostname mx.partner-a.test
PA=$TP_PORT
pf=$TP_TMP/postfix
mkdir -p "$pf"
tp_postfix_setup "$pf" \
    'smtp_tls_fingerprint_digest = sha256' \
    'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
    "transport_maps = inline:{ partner-a.test=smtp:[127.0.0.1]:$PA }"
: >"$pf/tls_policy"
"$T" -c "$pf" set "[127.0.0.1]:$PA" --fingerprint-from "127.0.0.1:$PA" || fail "set failed"
PIN="fingerprint match=$(tp_cert_fingerprint "$TP_TMP/a.crt" sha256)"
tp_postfix_start "$pf"

# delivered N SUBJECT: send a message and wait until the partner has N.
delivered() {
    tp_postfix_send "$pf" sender@client.test rcpt@partner-a.test "$2"
    tp_wait_mail a "$1" 30
    grep -l "Subject: $2" "$(tp_server_maildir a)"/*.eml >/dev/null || fail "mail '$2' not delivered"
}
delivered 1 before-migrate
verified=$(grep -c "Verified TLS connection established to 127.0.0.1\[127.0.0.1\]:$PA" "$pf/maillog")
[ "$verified" -ge 1 ] || fail "no verified TLS before migrate: $(grep -i tls "$pf/maillog" | tail -3)"

tp_note "a Postfix without lmdb: migrate refuses and changes nothing"
cat >"$TP_TMP/postconf-nolmdb" <<'EOF'
#!/bin/sh
# postconf, except that -m does not list lmdb (a Postfix built without it).
for a in "$@"; do [ "$a" = -m ] && { postconf "$@" | grep -vx lmdb; exit 0; }; done
exec postconf "$@"
EOF
chmod +x "$TP_TMP/postconf-nolmdb"
postconf -c "$pf" -n >"$TP_TMP/n0"
tp_expect_status 1 "$T" -c "$pf" migrate --to lmdb --postconf-command "$TP_TMP/postconf-nolmdb"
grep -q "no lmdb: support" "$TP_TMP/err" || fail "refusal does not say why: $(cat "$TP_TMP/err")"
[ ! -e "$pf/tls_policy.lmdb" ] || fail "a refused migrate wrote tls_policy.lmdb"
postconf -c "$pf" -n | cmp -s - "$TP_TMP/n0" || fail "a refused migrate changed main.cf"

tp_note "--dry-run says what it would do and writes nothing"
tp_expect_status 0 "$T" -c "$pf" migrate --to lmdb --dry-run
grep -qF "smtp_tls_policy_maps = lmdb:\$config_directory/tls_policy" "$TP_TMP/out" || fail "dry run: $(cat "$TP_TMP/out")"
[ ! -e "$pf/tls_policy.lmdb" ] || fail "--dry-run wrote tls_policy.lmdb"
postconf -c "$pf" -n | cmp -s - "$TP_TMP/n0" || fail "--dry-run changed main.cf"

tp_note "migrate --to lmdb --reload: only smtp_tls_policy_maps changes, mail still verified"
tp_expect_status 0 "$T" -c "$pf" migrate --to lmdb --reload
postconf -c "$pf" -n >"$TP_TMP/n1"
diff "$TP_TMP/n0" "$TP_TMP/n1" >"$TP_TMP/d1" || true
[ "$(grep -c '^[<>]' "$TP_TMP/d1")" = 2 ] || fail "main.cf changes beyond the map: $(cat "$TP_TMP/d1")"
grep -qx '> smtp_tls_policy_maps = lmdb:$config_directory/tls_policy' "$TP_TMP/d1" || fail "new map setting: $(cat "$TP_TMP/d1")"
[ "$(postmap -q "[127.0.0.1]:$PA" "lmdb:$pf/tls_policy")" = "$PIN" ] || fail "lmdb table: $(postmap -q "[127.0.0.1]:$PA" "lmdb:$pf/tls_policy")"
[ -e "$pf/tls_policy.db" ] || fail "the old .db was removed without --remove-old"
# The .db now differs from what Postfix reads: remove the pin from it by
# hand; the mail must still go out verified (Postfix reads the .lmdb).
postmap -c "$pf" -d "[127.0.0.1]:$PA" "hash:$pf/tls_policy"
delivered 2 after-lmdb
[ "$(grep -c "Verified TLS connection established to 127.0.0.1\[127.0.0.1\]:$PA" "$pf/maillog")" -gt "$verified" ] ||
    fail "no verified TLS after migrating to lmdb: $(grep -i tls "$pf/maillog" | tail -3)"
tp_expect_status 1 "$T" -c "$pf" doctor
grep -q "tls_policy.db and .*tls_policy.lmdb hold different records: Postfix reads .*tls_policy.lmdb" "$TP_TMP/out" ||
    fail "doctor does not flag the differing .db: $(cat "$TP_TMP/out")"

tp_note "migrate --to cdb --reload --remove-old"
verified=$(grep -c "Verified TLS connection established to 127.0.0.1\[127.0.0.1\]:$PA" "$pf/maillog")
tp_expect_status 0 "$T" -c "$pf" migrate --to cdb --reload --remove-old
postconf -c "$pf" -n >"$TP_TMP/n2"
diff "$TP_TMP/n1" "$TP_TMP/n2" >"$TP_TMP/d2" || true
[ "$(grep -c '^[<>]' "$TP_TMP/d2")" = 2 ] || fail "main.cf changes beyond the map: $(cat "$TP_TMP/d2")"
grep -qx '> smtp_tls_policy_maps = cdb:$config_directory/tls_policy' "$TP_TMP/d2" || fail "new map setting: $(cat "$TP_TMP/d2")"
[ ! -e "$pf/tls_policy.lmdb" ] || fail "--remove-old left tls_policy.lmdb"
[ "$(postmap -q "[127.0.0.1]:$PA" "cdb:$pf/tls_policy")" = "$PIN" ] || fail "cdb table"
delivered 3 after-cdb
[ "$(grep -c "Verified TLS connection established to 127.0.0.1\[127.0.0.1\]:$PA" "$pf/maillog")" -gt "$verified" ] ||
    fail "no verified TLS after migrating to cdb"
tp_expect_status 0 "$T" -c "$pf" migrate --to cdb
grep -q "already cdb" "$TP_TMP/out" || fail "second migrate: $(cat "$TP_TMP/out")"
echo "migrate: all passed"
