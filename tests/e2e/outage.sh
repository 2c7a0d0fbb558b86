# The outage this project exists for, end to end against a real Postfix:
# two partners pinned by md5 fingerprint (one next hop [127.0.0.1]:PORT, one
# host:PORT named in /etc/hosts), their servers switch to new self-signed
# certificates, Postfix defers with "Server certificate not verified" and
# check says CRITICAL; one rotate --yes --reload repairs both entries, the
# deferred mail is delivered, and check says OK. Needs root and postfix
# (CI installs it): a missing oracle fails the test, it does not skip.
# TP_E2E_MAP_TYPE (hash by default; outage_lmdb.sh, outage_cdb.sh) is the
# type of the policy table in smtp_tls_policy_maps: the same outage and
# repair must work whatever Postfix reads.
#
# The host:PORT name must resolve through /etc/hosts (Postfix's native
# lookup), but the real file is shared by everything on the machine, and
# two runs editing it at once can destroy it. So the test runs in a mount
# namespace of its own, where a private copy is bind-mounted over
# /etc/hosts: Postfix, the test servers and tlspolicy, all started from
# here, see it; nothing outside does, and nothing needs restoring.
if [ -z "${TP_E2E_PRIVATE_HOSTS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL: ${0##*/}: a Postfix instance needs root" >&2; exit 1; }
    exec env TP_E2E_PRIVATE_HOSTS=1 unshare --mount --propagation private bash "$0" "$@"
fi
. "$TP_SOURCE_DIR/tests/lib.sh"

for c in postfix postconf postqueue sendmail postmap; do
    command -v "$c" >/dev/null || fail "$c not found: install postfix (the end-to-end oracle)"
done
[ "$(id -u)" = 0 ] || fail "a Postfix instance needs root"

T=$TLSPOLICY
MT=${TP_E2E_MAP_TYPE:-hash}
postconf -m | grep -qx "$MT" || fail "postconf -m lists no $MT: install postfix-$MT (the oracle)"
NAME=partner-mx.tlspolicy.test
cp /etc/hosts "$TP_TMP/hosts"
echo "127.0.0.1 $NAME" >>"$TP_TMP/hosts"
mount --bind "$TP_TMP/hosts" /etc/hosts || fail "cannot bind-mount a private /etc/hosts"
# Unmount before lib.sh's cleanup removes $TP_TMP (a mount point is busy).
trap 'rc=$?; umount /etc/hosts 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
getent hosts "$NAME" | grep -q '^127\.0\.0\.1' || fail "$NAME does not resolve to 127.0.0.1 through the private /etc/hosts"

tp_make_cert "$TP_TMP/a1" mx.partner-a.test
tp_make_cert "$TP_TMP/a2" mx.partner-a.test
tp_make_cert "$TP_TMP/b1" "$NAME" --ec
tp_make_cert "$TP_TMP/b2" "$NAME" --ec
cp "$TP_TMP/a1.pem" "$TP_TMP/a.live"
cp "$TP_TMP/b1.pem" "$TP_TMP/b.live"
tp_start_server a --cert "$TP_TMP/a.live" --hostname mx.partner-a.test
PA=$TP_PORT
tp_start_server b --cert "$TP_TMP/b.live" --hostname "$NAME"
PB=$TP_PORT

pf=$TP_TMP/postfix
mkdir -p "$pf"
tp_postfix_setup "$pf" \
    'smtp_tls_fingerprint_digest = md5' \
    "smtp_tls_policy_maps = $MT:\$config_directory/tls_policy" \
    "transport_maps = inline:{ partner-a.test=smtp:[127.0.0.1]:$PA, partner-b.test=smtp:$NAME:$PB }"
: >"$pf/tls_policy"

tp_note "1. pin both next hops with set --fingerprint-from; mail is delivered over verified TLS"
"$T" -c "$pf" set "[127.0.0.1]:$PA" --fingerprint-from "127.0.0.1:$PA" || fail "set [127.0.0.1]:$PA failed"
"$T" -c "$pf" set "$NAME:$PB" --fingerprint-from "$NAME:$PB" || fail "set $NAME:$PB failed"
[ "$(postmap -q "[127.0.0.1]:$PA" "$MT:$pf/tls_policy")" = "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/a1.crt" md5)" ] \
    || fail "pin for [127.0.0.1]:$PA: $(postmap -q "[127.0.0.1]:$PA" "$MT:$pf/tls_policy")"
[ "$(postmap -q "$NAME:$PB" "$MT:$pf/tls_policy")" = "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b1.crt" md5)" ] \
    || fail "pin for $NAME:$PB: $(postmap -q "$NAME:$PB" "$MT:$pf/tls_policy")"
tp_postfix_start "$pf"
tp_postfix_send "$pf" sender@client.test rcpt@partner-a.test first-a
tp_postfix_send "$pf" sender@client.test rcpt@partner-b.test first-b
tp_wait_mail a 1 30
tp_wait_mail b 1 30
grep -q "Verified TLS connection established to 127.0.0.1\[127.0.0.1\]:$PA" "$pf/maillog" \
    || fail "no verified TLS to [127.0.0.1]:$PA: $(grep -i tls "$pf/maillog" | tail -5)"
grep -q "Verified TLS connection established to $NAME\[127.0.0.1\]:$PB" "$pf/maillog" \
    || fail "no verified TLS to $NAME:$PB: $(grep -i tls "$pf/maillog" | tail -5)"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check1" || rc=$?
[ "$rc" = 0 ] || fail "check after pinning: exit $rc, want 0: $(cat "$TP_TMP/check1")"

tp_note "2. both servers switch to new self-signed certificates: mail deferred, check CRITICAL"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
tp_install_cert "$TP_TMP/b2.pem" "$TP_TMP/b.live"
tp_postfix_send "$pf" sender@client.test rcpt@partner-a.test second-a
tp_postfix_send "$pf" sender@client.test rcpt@partner-b.test second-b
tp_postfix_wait_log "$pf" "to=<rcpt@partner-a.test>.*status=deferred \(Server certificate not verified\)" 30
tp_postfix_wait_log "$pf" "to=<rcpt@partner-b.test>.*status=deferred \(Server certificate not verified\)" 30
[ "$(tp_mail_count a)" = 1 ] && [ "$(tp_mail_count b)" = 1 ] \
    || fail "unverified servers got mail: a=$(tp_mail_count a) b=$(tp_mail_count b)"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check2" || rc=$?
[ "$rc" = 2 ] || fail "check after the swap: exit $rc, want 2 (CRITICAL): $(cat "$TP_TMP/check2")"
head -1 "$TP_TMP/check2" | grep -qx "TLSPOLICY CRITICAL - 2 critical, 0 warning, 0 unknown, 0 ok" \
    || fail "check summary: $(cat "$TP_TMP/check2")"

tp_note "3. rotate --yes --reload repairs both; the deferred mail is delivered; check OK"
"$T" -c "$pf" rotate --yes --reload >"$TP_TMP/rotate" 2>&1 </dev/null || fail "rotate failed: $(cat "$TP_TMP/rotate")"
grep -q "^\[127.0.0.1\]:$PA: rotated" "$TP_TMP/rotate" || fail "rotate output: $(cat "$TP_TMP/rotate")"
grep -q "^$NAME:$PB: rotated" "$TP_TMP/rotate" || fail "rotate output: $(cat "$TP_TMP/rotate")"
[ "$(postmap -q "$NAME:$PB" "$MT:$pf/tls_policy")" = "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b2.crt" md5)" ] \
    || fail "rotated pin for $NAME:$PB: $(postmap -q "$NAME:$PB" "$MT:$pf/tls_policy")"
postqueue -c "$pf" -f
tp_wait_mail a 2 30
tp_wait_mail b 2 30
grep -l "Subject: second-a" "$(tp_server_maildir a)"/*.eml >/dev/null || fail "deferred mail for partner-a not delivered"
grep -l "Subject: second-b" "$(tp_server_maildir b)"/*.eml >/dev/null || fail "deferred mail for partner-b not delivered"
tp_postfix_wait_log "$pf" "to=<rcpt@partner-b.test>.*status=sent" 30
[ -z "$(postqueue -c "$pf" -p | grep -v 'Mail queue is empty')" ] || fail "queue not empty: $(postqueue -c "$pf" -p)"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check3" || rc=$?
[ "$rc" = 0 ] || fail "check after rotate: exit $rc, want 0: $(cat "$TP_TMP/check3")"
head -1 "$TP_TMP/check3" | grep -qx "TLSPOLICY OK - 0 critical, 0 warning, 0 unknown, 2 ok" || fail "check summary: $(cat "$TP_TMP/check3")"
echo ok
