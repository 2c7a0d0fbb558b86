# The queue behind a stale pin, end to end against a real Postfix: three
# messages to a partner whose server renewed its certificate (same key)
# are deferred with "Server certificate not verified"; check counts them
# ("3 messages deferred", exit 2) in text, JSON, list and the Prometheus
# textfile; rotate --yes --reload --flush repairs the pin and asks Postfix
# to retry exactly those messages, which are delivered although Postfix's
# own retry is an hour away and the test never runs postqueue -f. A
# message deferred for another destination (its server is down) stays
# queued. Then set --flush releases the mail of an entry re-pinned by
# hand. The monitor of examples/cron runs check as nobody: as nobody it
# sees the same count. Needs root and postfix (CI installs it): a missing
# oracle fails the test, it does not skip.
#
# postqueue run by a user other than root takes -c DIR only for a
# directory the default main.cf lists in alternate_config_directories. So
# the test runs in a mount namespace of its own, where a private copy of
# /etc/postfix that lists this instance is bind-mounted over it: nothing
# outside sees it, and nothing needs restoring.
if [ -z "${TP_E2E_PRIVATE_ETC:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL: ${0##*/}: a Postfix instance needs root" >&2; exit 1; }
    exec env TP_E2E_PRIVATE_ETC=1 unshare --mount --propagation private bash "$0" "$@"
fi
. "$TP_SOURCE_DIR/tests/lib.sh"

for c in postfix postconf postqueue sendmail postmap; do
    command -v "$c" >/dev/null || fail "$c not found: install postfix (the end-to-end oracle)"
done
[ "$(id -u)" = 0 ] || fail "a Postfix instance needs root"
# Nothing in this test may release mail but tlspolicy.
export TP_POSTFIX_WAIT_FLUSH=0

T=$TLSPOLICY
tp_make_cert "$TP_TMP/a1" mx.partner-a.test
tp_make_cert "$TP_TMP/a2" mx.partner-a.test --key "$TP_TMP/a1.key"
tp_make_cert "$TP_TMP/c1" mx.partner-c.test
tp_make_cert "$TP_TMP/c2" mx.partner-c.test
cp "$TP_TMP/a1.pem" "$TP_TMP/a.live"
cp "$TP_TMP/c1.pem" "$TP_TMP/c.live"
tp_start_server a --cert "$TP_TMP/a.live" --hostname mx.partner-a.test
PA=$TP_PORT
tp_start_server c --cert "$TP_TMP/c.live" --hostname mx.partner-c.test
PC=$TP_PORT
# Partner D's server is down: a port nothing listens on.
PD=$(tp_dead_port)

pf=$TP_TMP/postfix
mkdir -p "$pf"
cp -a /etc/postfix "$TP_TMP/etc-postfix"
echo "alternate_config_directories = $pf" >>"$TP_TMP/etc-postfix/main.cf"
mount --bind "$TP_TMP/etc-postfix" /etc/postfix || fail "cannot bind-mount a private /etc/postfix"
# Unmount before lib.sh's cleanup removes $TP_TMP (a mount point is busy).
trap 'rc=$?; umount /etc/postfix 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
# Postfix retries deferred mail only after an hour here: what goes out
# within the test was released by tlspolicy.
tp_postfix_setup "$pf" \
    'smtp_tls_fingerprint_digest = sha256' \
    'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
    "transport_maps = inline:{ partner-a.test=smtp:[127.0.0.1]:$PA, partner-c.test=smtp:[127.0.0.1]:$PC, partner-d.test=smtp:[127.0.0.1]:$PD }" \
    'minimal_backoff_time = 3600s' \
    'maximal_backoff_time = 3600s' \
    'queue_run_delay = 3600s'
: >"$pf/tls_policy"
A="[127.0.0.1]:$PA" C="[127.0.0.1]:$PC"

tp_note "1. pin A and C; mail to both is delivered"
"$T" -c "$pf" set "$A" --fingerprint-from "127.0.0.1:$PA" >/dev/null || fail "set $A failed"
"$T" -c "$pf" set "$C" --fingerprint-from "127.0.0.1:$PC" >/dev/null || fail "set $C failed"
tp_postfix_start "$pf"
tp_postfix_send "$pf" sender@client.test rcpt@partner-a.test first-a
tp_postfix_send "$pf" sender@client.test rcpt@partner-c.test first-c
tp_wait_mail a 1 30
tp_wait_mail c 1 30
rc=0; "$T" -c "$pf" check >"$TP_TMP/check1" || rc=$?
[ "$rc" = 0 ] || fail "check with both pins current: exit $rc: $(cat "$TP_TMP/check1")"
head -1 "$TP_TMP/check1" | grep -q " deferred=0" || fail "check's performance data lacks deferred=0: $(head -1 "$TP_TMP/check1")"

tp_note "2. A renews its certificate: three messages deferred; one for D, whose server is down"
tp_install_cert "$TP_TMP/a2.pem" "$TP_TMP/a.live"
for i in 1 2 3; do
    tp_postfix_send "$pf" sender@client.test "rcpt$i@partner-a.test" "stuck-$i"
done
tp_postfix_send "$pf" sender@client.test rcpt@partner-d.test for-d
deferred_a() { grep -Ec "to=<rcpt[123]@partner-a\.test>.*status=deferred \((delivery temporarily suspended: )?Server certificate not verified" "$pf/maillog"; }
tp_wait_until 60 eval '[ "$(deferred_a)" -ge 3 ]' || fail "the three messages to A were not deferred: $(tail -20 "$pf/maillog")"
tp_postfix_wait_log "$pf" "to=<rcpt@partner-d.test>.*status=deferred" 60
tp_postfix_wait_deferred "$pf" 4 60
[ "$(tp_mail_count a)" = 1 ] || fail "A's renewed certificate got mail before the pin was changed"

tp_note "3. check: 3 messages deferred for A, CRITICAL; list, JSON and Prometheus say the same"
rc=0; "$T" -c "$pf" check --prometheus "$TP_TMP/tp.prom" >"$TP_TMP/check2" || rc=$?
[ "$rc" = 2 ] || fail "check with mail stuck behind A's pin: exit $rc, want 2: $(cat "$TP_TMP/check2")"
grep -F "CRITICAL $A:" "$TP_TMP/check2" | grep -q "3 messages deferred (Server certificate not verified), oldest [0-9]*[sm] ago" \
    || fail "check does not count A's deferred mail: $(cat "$TP_TMP/check2")"
grep -F "$C:" "$TP_TMP/check2" | grep -q "^OK " || fail "C is not OK: $(cat "$TP_TMP/check2")"
head -1 "$TP_TMP/check2" | grep -q " deferred=3" || fail "performance data: $(head -1 "$TP_TMP/check2")"
grep -qF "tlspolicy_deferred_messages{table=\"$pf/tls_policy\",key=\"$A\"} 3" "$TP_TMP/tp.prom" \
    || fail "Prometheus textfile: $(grep deferred "$TP_TMP/tp.prom")"
"$T" -c "$pf" check --json >"$TP_TMP/check2.json" || true
j=$TP_TMP/check2.json
[ "$(jq -r .queue_read "$j")" = true ] || fail "check --json queue_read: $(jq .queue_read "$j")"
sel="select(.key==\"$A\")|.deferred"
[ "$(jq -r ".entries[]|$sel|.messages" "$j")" = 3 ] \
    && [ "$(jq -r ".entries[]|$sel|.queue_ids|unique|length" "$j")" = 3 ] \
    && [ "$(jq -r ".entries[]|$sel|.reason" "$j")" = certificate ] \
    || fail "check --json deferred for $A: $(jq -c ".entries[]|$sel" "$j")"
[ "$(jq -r ".entries[]|select(.key==\"$C\")|.deferred.messages" "$j")" = 0 ] \
    || fail "check --json deferred for $C: $(jq -c ".entries[]|select(.key==\"$C\")|.deferred" "$j")"
# postqueue -j names the same three messages.
postqueue -c "$pf" -j | grep -c '"address": *"rcpt[123]@partner-a.test"' | grep -qx 3 \
    || fail "the queue does not hold the three messages: $(postqueue -c "$pf" -p)"
# The monitor as examples/cron runs it, as nobody, from a copy nobody can
# reach (the build tree may be in a 0700 directory).
mkdir -p "$TP_TMP/shared"
cp "$T" "$TP_TMP/shared/tlspolicy"
lib=$(ldd "$T" | awk '$1 ~ /^libtlspolicy\.so/ { print $3 }')
[ -z "$lib" ] || cp -L "$lib" "$TP_TMP/shared/"
chmod -R a+rX "$TP_TMP/shared"
rc=0
runuser -u nobody -- env LD_LIBRARY_PATH="$TP_TMP/shared" "$TP_TMP/shared/tlspolicy" -c "$pf" check \
    >"$TP_TMP/check-nobody" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -F "CRITICAL $A:" "$TP_TMP/check-nobody" | grep -q "3 messages deferred" \
    || fail "check as nobody: exit $rc: $(cat "$TP_TMP/check-nobody")"
"$T" -c "$pf" list >"$TP_TMP/list" || fail "list failed"
grep -q "queue: 3 messages deferred (Server certificate not verified)" "$TP_TMP/list" \
    || fail "list does not count A's deferred mail: $(cat "$TP_TMP/list")"

tp_note "4. rotate --yes --reload --flush: A re-pinned, its three messages delivered at once; D's stays"
"$T" -c "$pf" rotate --yes --reload --flush >"$TP_TMP/rotate" 2>&1 </dev/null \
    || fail "rotate --flush failed: $(cat "$TP_TMP/rotate")"
grep -q "^flushed: 3 deferred messages" "$TP_TMP/rotate" || fail "rotate --flush output: $(cat "$TP_TMP/rotate")"
tp_wait_mail a 4 60
for i in 1 2 3; do
    grep -l "Subject: stuck-$i" "$(tp_server_maildir a)"/*.eml >/dev/null || fail "stuck-$i was not delivered"
done
postqueue -c "$pf" -p | grep -q "rcpt@partner-d.test" || fail "the message for D left the queue: a whole-queue flush?"
grep -q "to=<rcpt@partner-d.test>.*status=sent" "$pf/maillog" && fail "D's message was delivered"
rc=0; "$T" -c "$pf" check >"$TP_TMP/check3" || rc=$?
[ "$rc" = 0 ] || fail "check after rotate --flush: exit $rc: $(cat "$TP_TMP/check3")"
head -1 "$TP_TMP/check3" | grep -q " deferred=0" || fail "performance data after the flush: $(head -1 "$TP_TMP/check3")"

tp_note "5. C moves to a new key: its message waits; set --fingerprint-from --flush re-pins and releases it"
tp_install_cert "$TP_TMP/c2.pem" "$TP_TMP/c.live"
tp_postfix_send "$pf" sender@client.test rcpt@partner-c.test second-c
tp_postfix_wait_log "$pf" "to=<rcpt@partner-c.test>.*status=deferred \(Server certificate not verified\)" 60
tp_postfix_wait_deferred "$pf" 2 60   # C's and D's
"$T" -c "$pf" set "$C" --fingerprint-from "127.0.0.1:$PC" --flush >"$TP_TMP/set" 2>&1 \
    || fail "set --flush failed: $(cat "$TP_TMP/set")"
grep -q "^flushed: 1 deferred message " "$TP_TMP/set" || fail "set --flush output: $(cat "$TP_TMP/set")"
tp_wait_mail c 2 60
postqueue -c "$pf" -p | grep -q "rcpt@partner-d.test" || fail "the message for D left the queue"

tp_note "6. --flush of migrate needs --reload"
rc=0; "$T" -c "$pf" migrate --to cdb --flush >"$TP_TMP/migrate" 2>&1 || rc=$?
[ "$rc" = 64 ] && grep -q "needs --reload" "$TP_TMP/migrate" || fail "migrate --flush without --reload: exit $rc: $(cat "$TP_TMP/migrate")"
echo ok
