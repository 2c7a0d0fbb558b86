# The outage this project exists for, end to end against a real Postfix:
# two partners pinned by md5 fingerprint (one next hop [127.0.0.1]:PORT, one
# host:PORT named in /etc/hosts). Both servers switch certificates and
# Postfix defers with "Server certificate not verified"; check says
# CRITICAL and names what rotate would do about each. Partner A renewed
# with the same key, so the nightly job of examples/cron repairs it
# unattended and its mail is delivered. Partner B has a new key with no
# evidence to trust it: the nightly job refuses it (the table is untouched)
# until the administrator accepts the fingerprint the partner confirmed.
# Then someone on the path presents a new self-signed certificate for A:
# the nightly job refuses it too, mail waits in the queue rather than going
# to the impostor, and flows again once the real server is back. Needs
# root and postfix (CI installs it): a missing oracle fails the test, it
# does not skip.
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
tp_make_cert "$TP_TMP/a2" mx.partner-a.test --key "$TP_TMP/a1.key"
tp_make_cert "$TP_TMP/evil" mx.partner-a.test
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
# Retries only when the test asks (postqueue -f), as after an hour's
# backoff: with seconds of it, the two deferred messages take turns in
# the active queue, and on a loaded machine neither the wait for both
# deferred nor check's count of them found them there together.
tp_postfix_setup "$pf" \
    'minimal_backoff_time = 1h' \
    'maximal_backoff_time = 1h' \
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

# The nightly job exactly as examples/cron/tlspolicy runs it, against this
# instance's configuration directory.
nightly() {
    local cmd
    cmd=$(sed -n 's/^[0-9* ]*root *\(tlspolicy .*rotate.*\)$/\1/p' "$TP_SOURCE_DIR/examples/cron/tlspolicy")
    [ -n "$cmd" ] || fail "no root rotate job in examples/cron/tlspolicy"
    set -- ${cmd#tlspolicy }
    "$T" -c "$pf" "$@" </dev/null
}
policy() { postmap -q "$1" "$MT:$pf/tls_policy"; }
pin_of() { echo "fingerprint match=$(tp_cert_fingerprint "$1" md5)"; }
A="[127.0.0.1]:$PA" B="$NAME:$PB"

tp_note "2. A renews with the same key, B with a new one: mail deferred, check CRITICAL naming what rotate would do"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
tp_install_cert "$TP_TMP/b2.pem" "$TP_TMP/b.live"
tp_postfix_send "$pf" sender@client.test rcpt@partner-a.test second-a
tp_postfix_send "$pf" sender@client.test rcpt@partner-b.test second-b
tp_postfix_wait_log "$pf" "to=<rcpt@partner-a.test>.*status=deferred \(Server certificate not verified\)" 30
tp_postfix_wait_log "$pf" "to=<rcpt@partner-b.test>.*status=deferred \(Server certificate not verified\)" 30
tp_postfix_wait_deferred "$pf" 2
[ "$(tp_mail_count a)" = 1 ] && [ "$(tp_mail_count b)" = 1 ] \
    || fail "unverified servers got mail: a=$(tp_mail_count a) b=$(tp_mail_count b)"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check2" || rc=$?
[ "$rc" = 2 ] || fail "check after the swap: exit $rc, want 2 (CRITICAL): $(cat "$TP_TMP/check2")"
head -1 "$TP_TMP/check2" | grep -q "^TLSPOLICY CRITICAL - 2 critical, 0 warning, 0 unknown, 0 ok | critical=2 warning=0 unknown=0 ok=0 deferred=2$" \
    || fail "check summary: $(cat "$TP_TMP/check2")"
FA2=$(tp_cert_fingerprint "$TP_TMP/a2.crt" md5) FB2=$(tp_cert_fingerprint "$TP_TMP/b2.crt" md5)
grep -F "$A" "$TP_TMP/check2" | grep -qF "rotate would pin $FA2: same public key" \
    || fail "check does not say rotate would pin A's renewal: $(cat "$TP_TMP/check2")"
grep -F "$B" "$TP_TMP/check2" | grep -qF "rotate refuses $FB2" \
    || fail "check does not say rotate refuses B's new key: $(cat "$TP_TMP/check2")"
for k in "$A" "$B"; do
    grep -F "CRITICAL $k:" "$TP_TMP/check2" | grep -qF "1 message deferred (Server certificate not verified)" \
        || fail "check does not count $k's deferred message: $(cat "$TP_TMP/check2")"
done

tp_note "3. the nightly job pins A's renewal and refuses B's new key; A's mail is delivered, B's waits"
rc=0; nightly >"$TP_TMP/rotate" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "nightly rotate with a refused key: exit $rc, want 1: $(cat "$TP_TMP/rotate")"
grep -qF "$B: not rotated: $FB2 presented: no evidence" "$TP_TMP/rotate" \
    || fail "nightly rotate does not explain B's refusal: $(cat "$TP_TMP/rotate")"
[ "$(policy "$A")" = "$(pin_of "$TP_TMP/a2.crt")" ] || fail "A not re-pinned: $(policy "$A")"
[ "$(policy "$B")" = "$(pin_of "$TP_TMP/b1.crt")" ] || fail "B's refused key was pinned: $(policy "$B")"
postqueue -c "$pf" -f
tp_wait_mail a 2 30
grep -l "Subject: second-a" "$(tp_server_maildir a)"/*.eml >/dev/null || fail "deferred mail for partner-a not delivered"
tp_postfix_wait_log "$pf" "to=<rcpt@partner-b.test>.*status=deferred \(Server certificate not verified\)" 30
[ "$(tp_mail_count b)" = 1 ] || fail "B's unconfirmed server got mail"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check3" || rc=$?
[ "$rc" = 2 ] || fail "check with B still broken: exit $rc, want 2: $(cat "$TP_TMP/check3")"
head -1 "$TP_TMP/check3" | grep -q "^TLSPOLICY CRITICAL - 1 critical, 0 warning, 0 unknown, 1 ok " \
    || fail "check summary: $(cat "$TP_TMP/check3")"

tp_note "4. the partner confirms B's fingerprint: rotate --accept repairs it; the deferred mail is delivered; check OK"
"$T" -c "$pf" rotate "$B" --accept "$FB2" --yes --reload >"$TP_TMP/accept" 2>&1 </dev/null \
    || fail "rotate --accept failed: $(cat "$TP_TMP/accept")"
grep -q "^$NAME:$PB: rotated" "$TP_TMP/accept" || fail "rotate --accept output: $(cat "$TP_TMP/accept")"
[ "$(policy "$B")" = "$(pin_of "$TP_TMP/b2.crt")" ] || fail "B not re-pinned: $(policy "$B")"
postqueue -c "$pf" -f
tp_wait_mail b 2 30
grep -l "Subject: second-b" "$(tp_server_maildir b)"/*.eml >/dev/null || fail "deferred mail for partner-b not delivered"
tp_postfix_wait_log "$pf" "to=<rcpt@partner-b.test>.*status=sent" 30
tp_postfix_wait_empty "$pf" 30
rc=0; "$T" -c "$pf" check >"$TP_TMP/check4" || rc=$?
[ "$rc" = 0 ] || fail "check after rotate: exit $rc, want 0: $(cat "$TP_TMP/check4")"
head -1 "$TP_TMP/check4" | grep -q "^TLSPOLICY OK - 0 critical, 0 warning, 0 unknown, 2 ok | critical=0 warning=0 unknown=0 ok=2 deferred=0 first_expiry_days=" || fail "check summary: $(cat "$TP_TMP/check4")"

tp_note "5. an impostor answers for A: the nightly job refuses it, the mail waits, and flows once the real server is back"
tp_install_cert "$TP_TMP/evil.pem" "$TP_TMP/a.live"
tp_postfix_send "$pf" sender@client.test rcpt@partner-a.test third-a
tp_postfix_wait_log "$pf" "to=<rcpt@partner-a.test>.*status=deferred \(Server certificate not verified\)" 30
rc=0; nightly >"$TP_TMP/rotate5" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "nightly rotate facing an impostor: exit $rc, want 1: $(cat "$TP_TMP/rotate5")"
grep -qF "$A: not rotated: $(tp_cert_fingerprint "$TP_TMP/evil.crt" md5) presented: no evidence" "$TP_TMP/rotate5" \
    || fail "nightly rotate does not explain the refusal: $(cat "$TP_TMP/rotate5")"
[ "$(policy "$A")" = "$(pin_of "$TP_TMP/a2.crt")" ] || fail "the impostor's key was pinned: $(policy "$A")"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check5" || rc=$?
[ "$rc" = 2 ] || fail "check facing an impostor: exit $rc, want 2: $(cat "$TP_TMP/check5")"
grep -F "$A" "$TP_TMP/check5" | grep -qF "rotate refuses" || fail "check does not name the refusal: $(cat "$TP_TMP/check5")"
[ "$(tp_mail_count a)" = 2 ] || fail "the impostor got mail"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
postqueue -c "$pf" -f
tp_wait_mail a 3 30
grep -l "Subject: third-a" "$(tp_server_maildir a)"/*.eml >/dev/null || fail "mail for partner-a not delivered once the real server is back"
rc=0; nightly >"$TP_TMP/rotate6" 2>&1 || rc=$?
[ "$rc" = 0 ] && [ ! -s "$TP_TMP/rotate6" ] || fail "nightly rotate with nothing to do: exit $rc, output: $(cat "$TP_TMP/rotate6")"
echo ok
