# The library's view of a live Postfix queue against Postfix's own word.
#
# 1. Mail deferred for TLS reasons (a pin that does not match, no
#    STARTTLS, STARTTLS refused) and others (connection refused, 421),
#    several recipients per message: what tp_queue parses from a live
#    "postqueue -j" (through tests/tools/queue_dump) must be, recipient by
#    recipient, the reason of the maillog's last "status=deferred (...)"
#    line, classified as the server behind it fails; and where Postfix
#    connected (relay=127.0.0.1[127.0.0.1]:PORT), the route must name
#    that server's next hop, [127.0.0.1]:PORT.
# 2. Routing: with smtp_tls_security_level = fingerprint and nothing to
#    match, Postfix's SMTP client logs "TLS policy lookup for DEST/HOST:
#    client TLS configuration problem" for every destination it looks up
#    in the policy table, before connecting anywhere. For recipients
#    routed by transport_maps (hash, regexp, inline, full address,
#    extension, quoted local part with an extension, double_bounce_sender
#    (never split), ".parent", "*", parent_domain_matches_subdomains, a
#    regexp rule with $1, which trivial-rewrite skips), relayhost,
#    relay_domains (".domain" in and out of parent style, a UTF-8 name
#    matched after casefold()) and relay_transport, the destinations
#    tp_route_find gives must be the ones Postfix looked up, in order.
#
# Domain next hops are looked up in /etc/hosts (no DNS in tests), so the
# test runs in a mount namespace of its own with a private copy
# bind-mounted over /etc/hosts, as tests/e2e/outage.sh does. Needs root
# and postfix: without them it is skipped.
if [ -z "${TP_QUEUE_PRIVATE_HOSTS:-}" ] && [ "$(id -u)" = 0 ]; then
    exec env TP_QUEUE_PRIVATE_HOSTS=1 unshare --mount --propagation private bash "$0" "$@"
fi
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need postmap postsuper unshare

DUMP=$TP_TOOLS_DIR/queue_dump
[ -x "$DUMP" ] || fail "$DUMP not built"

# ---- 1. deferred mail: reasons and next hops ----
tp_note "1. deferred for TLS and other reasons: the parsed queue agrees with the maillog"
tp_make_cert "$TP_TMP/srv" mx.partner.test
tp_make_cert "$TP_TMP/other" other.partner.test
tp_start_server pin --cert "$TP_TMP/srv.pem"; P_PIN=$TP_PORT
tp_start_server notls --cert "$TP_TMP/srv.pem" --mode no-starttls; P_NOTLS=$TP_PORT
tp_start_server refuse --cert "$TP_TMP/srv.pem" --mode starttls-4xx; P_REFUSE=$TP_PORT
tp_start_server b421 --cert "$TP_TMP/srv.pem" --mode banner421; P_B421=$TP_PORT
P_DEAD=$(tp_dead_port)

pf=$TP_TMP/pfa
mkdir -p "$pf"
tp_postfix_setup "$pf" \
    'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
    'transport_maps = hash:$config_directory/transport' \
    'initial_destination_concurrency = 1' \
    'minimal_backoff_time = 3600s' \
    'maximal_backoff_time = 4000s' \
    'queue_run_delay = 3600s'
printf '%s\n' "pin.test smtp:[127.0.0.1]:$P_PIN" "notls.test smtp:[127.0.0.1]:$P_NOTLS" \
    "refuse.test smtp:[127.0.0.1]:$P_REFUSE" "b421.test smtp:[127.0.0.1]:$P_B421" \
    "refused.test smtp:[127.0.0.1]:$P_DEAD" >"$pf/transport"
printf '%s\n' "[127.0.0.1]:$P_PIN fingerprint match=$(tp_cert_fingerprint "$TP_TMP/other.crt")" \
    "[127.0.0.1]:$P_NOTLS encrypt" "[127.0.0.1]:$P_REFUSE encrypt" >"$pf/tls_policy"
postmap "hash:$pf/transport" "hash:$pf/tls_policy"
# Dropped while Postfix is down (it must have run once for its queue
# directories), so the queue manager sees them all at once; retried only
# after an hour, so each is tried once and the log has the last word.
tp_postfix_start "$pf"
tp_postfix_stop "$pf"
send() {
    printf 'Subject: %s\n\nbody\n' "$1" | sendmail -C "$pf" -f sender@client.test "${@:2}" \
        || fail "sendmail -C $pf ${*:2} failed"
}
send m1 a@pin.test b@pin.test c@refused.test d@notls.test
send m2 e@refuse.test f@b421.test g@pin.test
send m3 h@notls.test i@refused.test
tp_postfix_start "$pf"
for r in a b c d e f g h i; do
    tp_wait_until 120 grep -Eq "to=<$r@[a-z0-9]+\\.test>.*status=deferred" "$pf/maillog" \
        || fail "recipient $r was not deferred: $(tail -n 5 "$pf/maillog")"
done
no_active() { ! postqueue -c "$pf" -j | grep -q '"queue_name": "active"'; }
tp_wait_until 60 no_active || fail "messages still in the active queue"

postqueue -c "$pf" -j >"$TP_TMP/queue.jsonl" || fail "postqueue -j failed"
"$DUMP" -c "$pf" <"$TP_TMP/queue.jsonl" >"$TP_TMP/dump" || fail "queue_dump failed"
[ "$(tail -n 1 "$TP_TMP/dump")" = "malformed 0" ] || fail "malformed lines in live postqueue -j: $(tail -n 1 "$TP_TMP/dump")"
[ "$(grep -c . "$TP_TMP/dump")" = 10 ] || fail "want 9 recipients; dump: $(cat "$TP_TMP/dump")"
tls=0
while IFS=$'\t' read -r qid addr class reason dests; do
    [ "$qid" != "malformed 0" ] || continue
    # The maillog's last status line for this queue file and recipient.
    logline=$(grep -F " $qid: to=<$addr>, " "$pf/maillog" | grep 'status=deferred (' | tail -n 1)
    want=$(printf '%s\n' "$logline" | sed 's/.* status=deferred (\(.*\))$/\1/')
    [ "$reason" = "$want" ] || fail "$qid $addr: parsed reason '$reason', maillog '$want'"
    case $addr in
        *@pin.test) wclass=certificate port=$P_PIN ;;
        *@notls.test) wclass=not-offered port=$P_NOTLS ;;
        *@refuse.test) wclass=refused port=$P_REFUSE ;;
        *@b421.test) wclass=none port=$P_B421 ;;
        *@refused.test) wclass=none port=$P_DEAD ;;
        *) fail "unexpected recipient $addr" ;;
    esac
    [ "$class" = "$wclass" ] || fail "$addr ($reason): class $class, want $wclass"
    [ "$class" = none ] || tls=$((tls + 1))
    [ "$dests" = "[127.0.0.1]:$port" ] || fail "$addr: routed to '$dests', want [127.0.0.1]:$port"
    # Where Postfix itself connected, it is the same server.
    case $logline in
        *" relay=none,"*) ;;
        *) relay=$(printf '%s\n' "$logline" | sed 's/.* relay=\([^,]*\),.*/\1/')
           [ "$relay" = "127.0.0.1[127.0.0.1]:$port" ] || fail "$addr: Postfix connected to $relay, route says [127.0.0.1]:$port" ;;
    esac
done <"$TP_TMP/dump"
[ "$tls" = 6 ] || fail "want 6 recipients deferred for TLS, got $tls: $(cat "$TP_TMP/dump")"
tp_postfix_stop "$pf"

# ---- 2. routing: the destinations Postfix looks up ----
tp_note "2. routing: tp_route_find gives the destinations Postfix's SMTP client looks up"
hosts="plain.test a.b.parent.test other.test relayed.test sub.relayed.test relay.test"
cp /etc/hosts "$TP_TMP/hosts"
# Not 127.0.0.1: Postfix's own address on port 25 is a mail loop, found
# before the policy lookup.
echo "127.0.0.2 $hosts" >>"$TP_TMP/hosts"
mount --bind "$TP_TMP/hosts" /etc/hosts || fail "cannot bind-mount a private /etc/hosts"
# Unmount before lib.sh's cleanup removes $TP_TMP (a mount point is busy).
trap 'rc=$?; umount /etc/hosts 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
getent hosts relay.test | grep -q '^127\.0\.0\.2' || fail "relay.test does not resolve through the private /etc/hosts"

pf=$TP_TMP/pfb
mkdir -p "$pf"
# No server listens on these ports: an invalid TLS policy stops the
# client before it connects.
tp_postfix_setup "$pf" \
    'smtp_tls_security_level = fingerprint' \
    'relayhost = [127.0.0.1]:10025' \
    'recipient_delimiter = +-' \
    'double_bounce_sender = no-bounce' \
    $'relay_domains = relayed.test, .reldot.test, b\xc3\xbccher.test' \
    'relay_transport = relay:[127.0.0.1]:10026' \
    'transport_maps = hash:$config_directory/transport, regexp:$config_directory/transport.re' \
    'minimal_backoff_time = 3600s' \
    'maximal_backoff_time = 4000s' \
    'queue_run_delay = 3600s'
cat >"$pf/transport" <<'EOF'
full@c.test	smtp:[127.0.0.1]:10001
ext@c.test	smtp:[127.0.0.1]:10002
c.test	smtp:[127.0.0.1]:10003
.parent.test	smtp:relay.test:10004
plain.test	smtp
keep.test	:[127.0.0.1]:10005
noop.test	:
list.test	smtp:[127.0.0.1]:10006,[127.0.0.1]:10007
"john..doe"@quoted.test	smtp:[127.0.0.1]:10012
jim..bo@quoted.test	smtp:[127.0.0.1]:10013
no@c.test	smtp:[127.0.0.1]:10014
double@c.test	smtp:[127.0.0.1]:10015
EOF
cat >"$pf/transport.re" <<'EOF'
/^re@regex\.test$/	smtp:[127.0.0.1]:10008
/^domain-only\.test$/	smtp:[127.0.0.1]:10009
/^(.*)@regsub\.test$/	smtp:[$1.example]
/@regsub\.test$/	smtp:[127.0.0.1]:10011
EOF
postmap "hash:$pf/transport"

# One message per round: each next hop gets one delivery, so no
# recipient waits behind a suspended destination without a lookup.
route_round() {
    local round=$1 from r
    shift
    from=$(($(wc -l <"$pf/maillog") + 1))
    printf 'Subject: %s\n\nbody\n' "$round" | sendmail -C "$pf" -f sender@client.test "$@" \
        || fail "sendmail -C $pf failed"
    for r in "$@"; do
        tp_wait_until 120 sh -c 'tail -n "+$1" "$2" | grep -qF "to=<$3>, "' - "$from" "$pf/maillog" "$r" \
            || fail "$round: no delivery attempt for $r: $(tail -n 5 "$pf/maillog")"
    done
    # Postfix's lookups per smtp(8) process (postfix/smtp, and
    # postfix/relay/smtp for relay_transport), in order; each delivery
    # attempt's lookups precede its recipients' status lines.
    tail -n "+$from" "$pf/maillog" | awk '
        match($0, /postfix\/(relay\/)?smtp\[[0-9]+\]: /) {
            pid = substr($0, RSTART, RLENGTH)
            rest = substr($0, RSTART + RLENGTH)
            if (rest ~ /^warning: TLS policy lookup for /) {
                sub(/^warning: TLS policy lookup for /, "", rest)
                sub(/\/[^\/]*: client TLS configuration problem$/, "", rest)
                if (done[pid]) { dests[pid] = ""; done[pid] = 0 }
                dests[pid] = dests[pid] (dests[pid] == "" ? "" : " ") rest
            } else if (match(rest, /: to=<[^>]*>, /)) {
                print substr(rest, RSTART + 6, RLENGTH - 9) "\t" dests[pid]
                done[pid] = 1
            }
        }' | sort >"$TP_TMP/postfix.$round"
    "$DUMP" -c "$pf" --route "$@" | cut -f 1,3 | sort >"$TP_TMP/route.$round"
    if ! diff -u "$TP_TMP/postfix.$round" "$TP_TMP/route.$round" >"$TP_TMP/diff.$round"; then
        cat "$TP_TMP/diff.$round" >&2
        fail "$round: destinations differ (- Postfix, + tp_route_find)"
    fi
    tp_note "$round: $(wc -l <"$TP_TMP/route.$round") recipients routed as Postfix routes them"
}

tp_postfix_start "$pf"
route_round r1 full@c.test ext+x@c.test other@c.test u@a.b.parent.test u@parent.test \
    u@plain.test u@keep.test u@noop.test u@list.test re@regex.test u@domain-only.test \
    u@other.test u@relayed.test u@sub.relayed.test u@reldot.test u@sub.reldot.test \
    u@regsub.test '"john..doe+ext"@quoted.test' '"jim..bo+ext"@quoted.test' \
    no-bounce@c.test double-bounce@c.test $'u@B\xc3\x9cCHER.test'
grep -q 'transport\.re, line 3: regular expression substitution is not allowed: skipping this rule' \
    "$pf/maillog" || fail "r1: Postfix did not skip the \$1 rule of transport.re"

# Round 2: "parent" matches its subdomains (and relay_domains loses
# that), and a "*" wildcard with no next hop sends the rest to their own
# domain, over relayhost.
postconf -c "$pf" -e 'parent_domain_matches_subdomains = transport_maps' \
    'transport_maps = hash:$config_directory/transport, inline:{ parent2.test=smtp:[127.0.0.1]:10010, *=smtp }' \
    || fail "postconf -e failed"
postfix -c "$pf" reload >/dev/null 2>&1 || fail "postfix reload failed"
route_round r2 u@x.parent2.test v@a.b.parent.test v@other.test v@sub.relayed.test \
    v@relayed.test full@c.test

# Round 3: relay_domains out of parent style, without the "*" that hides
# it: "relayed.test" no longer matches its subdomains, and ".reldot.test"
# now does (in parent style it matched neither the domain nor these).
postconf -c "$pf" -e 'transport_maps = hash:$config_directory/transport' \
    || fail "postconf -e failed"
postfix -c "$pf" reload >/dev/null 2>&1 || fail "postfix reload failed"
route_round r3 w@relayed.test w@sub.relayed.test w@reldot.test w@sub.reldot.test
echo "queue_record: all passed"
