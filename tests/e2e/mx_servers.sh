# The servers Postfix's SMTP client tries for an MX domain are the ones the
# delivery model (examples/postfix-servers) says it tries, for the answers
# where they used to differ: a null MX beside a real MX record (Postfix
# bounces, 5.1.0, and connects nowhere; the model reports the null MX), an
# MX target valid_rr_name() refuses (dropped, the other MX host tried;
# alone, a bounce), and a host named by two MX records (tried for each,
# its addresses counting twice against smtp_mx_address_limit, so the
# MX 30 host is never tried). A real Postfix client looks the MX records up through a
# DNS server of ours on 127.0.0.1:53 and finds nothing listening on the MX
# hosts: its "connect to HOST[ADDR]:25" lines, in order, are the servers
# it tried. All in a network and mount namespace of the test's own, as
# tests/e2e/agree.sh does. Needs root and postfix.
if [ -z "${TP_E2E_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL: ${0##*/}: a network namespace and Postfix need root" >&2; exit 1; }
    exec env TP_E2E_NETNS=1 unshare --net --mount --propagation private bash "$0" "$@"
fi
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need postfix postconf sendmail ip

X=$TP_BINARY_DIR/examples/postfix-servers
[ -x "$X" ] || fail "$X not built"

ip link set lo up || fail "cannot bring up lo in the test's network namespace"
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' >"$TP_TMP/resolv.conf"
mount --bind "$TP_TMP/resolv.conf" /etc/resolv.conf || fail "cannot bind-mount a private /etc/resolv.conf"
trap 'rc=$?; umount /etc/resolv.conf 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
unset TLSPOLICY_DNS_SERVERS

cat >"$TP_TMP/zone" <<EOF
mixnull.test MX 10 mx.good.test
mixnull.test MX 20 .
inv.test MX 10 bad-.inv.test
inv.test MX 20 mx.good.test
bad-.inv.test A 127.0.0.9
mx.good.test A 127.0.0.10
allinv.test MX 10 bad-.inv.test
dup.test MX 10 mx.dup.test
dup.test MX 20 mx.dup.test
dup.test MX 30 mx3.dup.test
mx.dup.test A 127.0.0.11
mx.dup.test A 127.0.0.12
mx3.dup.test A 127.0.0.13
EOF
tp_start_dns dns "$TP_TMP/zone" --port 53

pc=$TP_TMP/client
mkdir -p "$pc"
tp_postfix_setup "$pc" \
    'inet_interfaces = 127.0.0.1' \
    'smtp_dns_support_level = enabled' 'smtp_host_lookup = dns' \
    'smtp_mx_address_limit = 4' 'smtp_randomize_addresses = no' \
    'minimal_backoff_time = 3600s' 'maximal_backoff_time = 4000s' \
    'queue_run_delay = 3600s'
tp_postfix_start "$pc"

# Postfix's verdict on one recipient, and the servers it connected to
# for it ("HOST[ADDR]:PORT" lines, in order) in $TP_TMP/postfix.DOMAIN.
postfix_tries() {
    local domain=$1 from pid
    from=$(($(wc -l <"$pc/maillog" 2>/dev/null || echo 0) + 1))
    tp_postfix_send "$pc" sender@client.test "u@$domain"
    tp_wait_until 60 sh -c 'tail -n "+$1" "$2" | grep -Eq "to=<u@$3>, .*status=(deferred|bounced)"' \
        - "$from" "$pc/maillog" "$domain" \
        || fail "$domain: no verdict from Postfix: $(tail -n 5 "$pc/maillog")"
    tail -n "+$from" "$pc/maillog" >"$TP_TMP/log.$domain"
    # The connect lines carry no queue id: the smtp(8) process that
    # gave the verdict, since the message was sent.
    pid=$(grep -E "to=<u@$domain>, " "$TP_TMP/log.$domain" | grep -o 'postfix/smtp\[[0-9]*\]' | head -n 1)
    grep -F "$pid: connect to " "$TP_TMP/log.$domain" | grep -o 'connect to [^ ]*:[0-9]*:' |
        sed 's/^connect to //; s/:$//' >"$TP_TMP/postfix.$domain" || true
    grep -E "to=<u@$domain>, " "$TP_TMP/log.$domain" | sed 's/.*status=\([a-z]*\).*/\1/' | head -n 1
}
# The model's servers Postfix tries for DOMAIN, as postfix_tries lists them
# (a pin, so that a domain without servers is UNKNOWN).
PIN=$(printf '00:%.0s' $(seq 1 31))00
model_tries() {
    local rc=0
    "$X" -c "$pc" -t 5 "$1" "fingerprint match=$PIN" >"$TP_TMP/model.out.$1" 2>&1 || rc=$?
    grep '^server .* tried yes' "$TP_TMP/model.out.$1" | awk '{ print $2 }' >"$TP_TMP/model.$1"
    echo "$rc"
}
# model_refuses DOMAIN ERROR: the model has no server for DOMAIN (exit 3,
# UNKNOWN) and says why, its line starting "error: ERROR".
model_refuses() {
    local rc
    rc=$(model_tries "$1")
    [ "$rc" = 3 ] && grep -q "^error: $2" "$TP_TMP/model.out.$1" \
        || fail "$1: model exit $rc: $(cat "$TP_TMP/model.out.$1")"
}
compare() {
    diff -u "$TP_TMP/postfix.$1" "$TP_TMP/model.$1" >&2 ||
        fail "$1: servers differ (- Postfix, + model): $(cat "$TP_TMP/model.out.$1")"
}

tp_note "a null MX beside a real MX: Postfix bounces without connecting; the model says null MX"
v=$(postfix_tries mixnull.test)
[ "$v" = bounced ] || fail "mixnull.test: Postfix $v, want bounced: $(cat "$TP_TMP/log.mixnull.test")"
grep -q 'to=<u@mixnull.test>, .*dsn=5\.1\.0, status=bounced .*nullMX' "$TP_TMP/log.mixnull.test" \
    || fail "mixnull.test: no 5.1.0 bounce: $(cat "$TP_TMP/log.mixnull.test")"
model_refuses mixnull.test 'mixnull.test: null MX'
compare mixnull.test

tp_note "an MX target with a misplaced hyphen: dropped by both, the other MX host tried"
v=$(postfix_tries inv.test)
[ "$v" = deferred ] || fail "inv.test: Postfix $v, want deferred: $(cat "$TP_TMP/log.inv.test")"
grep -q 'malformed domain name in resource data of MX record for inv.test: bad-.inv.test' \
    "$TP_TMP/log.inv.test" || fail "inv.test: Postfix did not drop bad-.inv.test: $(cat "$TP_TMP/log.inv.test")"
[ "$(cat "$TP_TMP/postfix.inv.test")" = "mx.good.test[127.0.0.10]:25" ] \
    || fail "inv.test: Postfix tried '$(cat "$TP_TMP/postfix.inv.test")', want mx.good.test[127.0.0.10]:25"
model_tries inv.test >/dev/null
compare inv.test
tp_note "... and with no other MX host, Postfix bounces (DNS_INVAL, 5.4.4); the model has no server"
v=$(postfix_tries allinv.test)
[ "$v" = bounced ] && grep -q 'to=<u@allinv.test>, .*dsn=5\.4\.4, status=bounced' "$TP_TMP/log.allinv.test" \
    || fail "allinv.test: Postfix $v, want a 5.4.4 bounce: $(cat "$TP_TMP/log.allinv.test")"
model_refuses allinv.test 'allinv.test: MX lookup failed: malformed domain name'
compare allinv.test

tp_note "a host named by MX 10 and MX 20: tried for each, the MX 30 host beyond smtp_mx_address_limit"
v=$(postfix_tries dup.test)
[ "$v" = deferred ] || fail "dup.test: Postfix $v, want deferred: $(cat "$TP_TMP/log.dup.test")"
[ "$(wc -l <"$TP_TMP/postfix.dup.test")" = 4 ] \
    || fail "dup.test: Postfix tried $(cat "$TP_TMP/postfix.dup.test"), want 4 servers: $(cat "$TP_TMP/log.dup.test")"
model_tries dup.test >/dev/null
compare dup.test
echo "mx_servers: all passed"
