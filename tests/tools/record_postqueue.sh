# Records what a real Postfix lists in its queue (postqueue -j) when mail is
# deferred for TLS reasons and for others, for tests/unit/test_queue.c and
# the fuzz corpus. Run it once, by hand, as root, from a build:
#
#   TP_SOURCE_DIR=$PWD TP_TOOLS_DIR=$PWD/build/tests \
#       bash tests/tools/record_postqueue.sh tests/data/queue
#
# It writes OUTDIR/postqueue.jsonl (postqueue -j, as Postfix printed it),
# OUTDIR/maillog (the instance's log: every "status=deferred (...)" line
# names the reason the queue shows) and OUTDIR/README (the Postfix version
# and which domain stands for which failure). Everything is on loopback: a
# throwaway Postfix instance in a temp config directory, and testsmtpd
# servers behind transport_maps, one per failure:
#
#   pin.test      presents a certificate the policy table does not pin
#                 ("fingerprint match=" another certificate's digest)
#   notls.test    offers no STARTTLS, the policy says encrypt
#   refuse.test   answers STARTTLS with 454, the policy says encrypt
#   alert.test    aborts the TLS handshake with an alert, policy encrypt
#   badpol.test   the policy entry is broken (level "fingerprint" without
#                 any match=)
#   refused.test  nothing listens (connection refused)
#   b421.test     "421" banner
#   ehlo4.test    EHLO and HELO get 450
#   ok.test       a healthy server: delivered, so never in the queue
#
# (testsmtpd offers no SMTPUTF8: a UTF-8 address goes only to refused.test,
# or Postfix would bounce the message before STARTTLS.)
#
# The messages are dropped while Postfix is down and retried only after an
# hour, so the one attempt each gets is the whole story: the first message
# to a destination fails, Postfix suspends the destination, and later
# messages to it are deferred with "delivery temporarily suspended: ...".
. "$TP_SOURCE_DIR/tests/lib.sh"

out=${1:?usage: record_postqueue.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tp_make_cert "$TP_TMP/srv" mx.partner.test
tp_make_cert "$TP_TMP/other" other.partner.test
tp_start_server pin --cert "$TP_TMP/srv.pem"; P_PIN=$TP_PORT
tp_start_server notls --cert "$TP_TMP/srv.pem" --mode no-starttls; P_NOTLS=$TP_PORT
tp_start_server refuse --cert "$TP_TMP/srv.pem" --mode starttls-4xx; P_REFUSE=$TP_PORT
tp_start_server alert --cert "$TP_TMP/srv.pem" --mode tls-alert; P_ALERT=$TP_PORT
tp_start_server badpol --cert "$TP_TMP/srv.pem"; P_BADPOL=$TP_PORT
tp_start_server b421 --cert "$TP_TMP/srv.pem" --mode banner421; P_B421=$TP_PORT
tp_start_server ehlo4 --cert "$TP_TMP/srv.pem" --mode ehlo-4xx; P_EHLO4=$TP_PORT
tp_start_server ok --cert "$TP_TMP/srv.pem"; P_OK=$TP_PORT
P_DEAD=$(tp_dead_port)

pf=$TP_TMP/postfix
mkdir -p "$pf"
tp_postfix_setup "$pf" \
    'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
    "transport_maps = hash:\$config_directory/transport" \
    'initial_destination_concurrency = 1' \
    'minimal_backoff_time = 3600s' \
    'maximal_backoff_time = 4000s' \
    'queue_run_delay = 3600s'
cat >"$pf/transport" <<EOF
pin.test	smtp:[127.0.0.1]:$P_PIN
notls.test	smtp:[127.0.0.1]:$P_NOTLS
refuse.test	smtp:[127.0.0.1]:$P_REFUSE
alert.test	smtp:[127.0.0.1]:$P_ALERT
badpol.test	smtp:[127.0.0.1]:$P_BADPOL
refused.test	smtp:[127.0.0.1]:$P_DEAD
b421.test	smtp:[127.0.0.1]:$P_B421
ehlo4.test	smtp:[127.0.0.1]:$P_EHLO4
ok.test	smtp:[127.0.0.1]:$P_OK
EOF
cat >"$pf/tls_policy" <<EOF
[127.0.0.1]:$P_PIN	fingerprint match=$(tp_cert_fingerprint "$TP_TMP/other.crt")
[127.0.0.1]:$P_NOTLS	encrypt
[127.0.0.1]:$P_REFUSE	encrypt
[127.0.0.1]:$P_ALERT	encrypt
[127.0.0.1]:$P_BADPOL	fingerprint
EOF
postmap "hash:$pf/transport" "hash:$pf/tls_policy"
# The queue directories exist once Postfix has started.
tp_postfix_start "$pf"
tp_postfix_stop "$pf"

# Dropped into maildrop while Postfix is down: pickup hands them all to the
# queue manager at once when it starts.
send() {
    local from=$1 subject=$2
    shift 2
    printf 'From: %s\nSubject: %s\n\nbody\n' "${from:-MAILER-DAEMON}" "$subject" \
        | sendmail -C "$pf" -f "$from" "$@" || fail "sendmail -C $pf $* failed"
}
send sender@client.test m1 a@pin.test b@pin.test c@refused.test d@notls.test
send sender@client.test m2 e@alert.test f@refuse.test g@b421.test
send '' m3 h@badpol.test i@ehlo4.test k@ok.test
send sender@client.test m4 l@pin.test m@pin.test
send other@client.test m5 'j.ö.rg@refused.test' n+ext@refused.test
send sender@client.test m6 '"john doe"@pin.test' p@ehlo4.test
send sender@client.test m7 o@notls.test
tp_postfix_start "$pf"

# Without flushing the queue (tp_postfix_wait_log flushes it): each message
# is tried once, so the log's last word on each recipient is the queue's.
for r in a b c d e f g h i l m 'j\.ö\.rg' 'n\+ext' '"john doe"' o p; do
    tp_wait_until 120 grep -Eq "to=<$r@[a-z0-9]+\\.test>.*status=deferred" "$pf/maillog" || fail "recipient $r was not deferred"
done
tp_wait_until 120 grep -q "to=<k@ok\\.test>.*status=sent" "$pf/maillog" || fail "k@ok.test was not delivered"
no_active() { ! postqueue -c "$pf" -j | grep -q '"queue_name": "active"'; }
tp_wait_until 60 no_active || fail "messages still in the active queue"
# One held message: hold is a queue postqueue lists too.
held=$(postqueue -c "$pf" -j | grep '"o@notls.test"' | sed 's/.*"queue_id": "\([0-9A-Za-z]*\)".*/\1/')
[ -n "$held" ] || fail "message m7 not found in the queue"
postsuper -c "$pf" -h "$held" 2>/dev/null || fail "postsuper -h $held failed"
# And one forced to expire (postsuper -e): forced_expire is true until the
# next delivery attempt, an hour away.
expire=$(postqueue -c "$pf" -j | grep '"l@pin.test"' | sed 's/.*"queue_id": "\([0-9A-Za-z]*\)".*/\1/')
[ -n "$expire" ] || fail "message m4 not found in the queue"
postsuper -c "$pf" -e "$expire" 2>/dev/null || fail "postsuper -e $expire failed"

postqueue -c "$pf" -j >"$out/postqueue.jsonl" || fail "postqueue -j failed"
cp "$pf/maillog" "$out/maillog"
{
    echo "Recorded by tests/tools/record_postqueue.sh with Postfix $(postconf -h mail_version)"
    echo "on $(date -u +%Y-%m-%d); test servers on 127.0.0.1:"
    for v in PIN NOTLS REFUSE ALERT BADPOL B421 EHLO4 OK DEAD; do
        eval "echo \"  $v \$P_$v\""
    done
} >"$out/README"
echo "recorded $(wc -l <"$out/postqueue.jsonl") queue lines in $out"
