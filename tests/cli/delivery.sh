# The delivery model (tlspolicy/delivery.h) through the example program
# examples/postfix-servers, against a loopback DNS server and test SMTP
# servers: which servers Postfix's SMTP client tries for a key and in which
# order (MX preference, the domain itself without MX, no MX for [host] or
# with DNS disabled, smtp_address_preference, inet_protocols,
# smtp_balance_inet_protocols), which it never reaches
# (smtp_mx_address_limit, shuffled groups cut by it), and the verdicts of
# Postfix's failover: one match after failures delivers (WARNING), none
# defers (CRITICAL), nothing probed is UNKNOWN.
. "$TP_SOURCE_DIR/tests/lib.sh"

X=$TP_BINARY_DIR/examples/postfix-servers
[ -x "$X" ] || fail "$X not built"
D=$TP_TMP/conf
tp_sandbox_config "$D"

tp_make_cert "$TP_TMP/a" mx-a.test
tp_make_cert "$TP_TMP/b" mx-b.test
FA=$(tp_cert_fingerprint "$TP_TMP/a.crt")
# One port on several loopback addresses: a on .1, .2, .3; b on .4, .5.
tp_start_server a --cert "$TP_TMP/a.pem" --listen 127.0.0.1:0 --listen 127.0.0.2:0 --listen 127.0.0.3:0
P=$TP_PORT
tp_start_server b --cert "$TP_TMP/b.pem" --listen "127.0.0.4:$P" --listen "127.0.0.5:$P"

v6=0
tp_have_ipv6 && v6=1
cat >"$TP_TMP/zone" <<EOF
three.test MX 30 mx3.three.test
three.test MX 10 mx1.three.test
three.test MX 20 mx2.three.test
mx1.three.test A 127.0.0.4
mx2.three.test A 127.0.0.2
mx3.three.test A 127.0.0.1
bare.test A 127.0.0.3
null.test MX 0 .
mixnull.test MX 10 mx1.three.test
mixnull.test MX 20 .
inv.test MX 10 bad-.inv.test
inv.test MX 20 mx2.three.test
bad-.inv.test A 127.0.0.1
dup.test MX 10 mx.dup.test
dup.test MX 20 MX.dup.test
dup.test MX 30 mx1.three.test
mx.dup.test A 127.0.0.1
mx.dup.test A 127.0.0.2
tie.test MX 10 t1.tie.test
tie.test MX 10 t2.tie.test
tie.test MX 10 t3.tie.test
t1.tie.test A 127.0.0.1
t2.tie.test A 127.0.0.2
t3.tie.test A 127.0.0.3
dual.test MX 10 mx.dual.test
mx.dual.test A 127.0.0.1
mx.dual.test AAAA ::1
many6.test MX 10 v6a.many6.test
many6.test MX 20 v6b.many6.test
many6.test MX 30 v6c.many6.test
many6.test MX 40 v6d.many6.test
many6.test MX 50 v4.many6.test
v6a.many6.test AAAA ::1
v6b.many6.test AAAA ::1
v6c.many6.test AAAA ::1
v6d.many6.test AAAA ::1
v4.many6.test A 127.0.0.1
host.test A 127.0.0.5
host.test MX 10 mx1.three.test
EOF
tp_start_dns dns "$TP_TMP/zone"
export TLSPOLICY_DNS_SERVERS
TLSPOLICY_DNS_SERVERS=$(tp_dns_servers dns)

# run KEY VALUE [WANT_STATUS]: the example's output in $TP_TMP/out.
run() {
    local want=${3:-} rc=0
    "$X" -c "$D" -t 5 "$1" "$2" >"$TP_TMP/out" 2>"$TP_TMP/err" || rc=$?
    [ -z "$want" ] || [ "$rc" = "$want" ] ||
        fail "$1: exit $rc, want $want: $(cat "$TP_TMP/out" "$TP_TMP/err")"
}
servers() { grep '^server ' "$TP_TMP/out" | sed 's/^server \([^ ]*\) pref \([0-9]*\) tried \([a-z]*\): \([a-z A-Z]*\).*/\1 \2 \3 \4/'; }
expect_servers() {
    local want
    want=$(printf '%s\n' "$@")
    [ "$(servers)" = "$want" ] || fail "servers: got
$(servers)
want
$want
($(cat "$TP_TMP/out"))"
}

tp_note "MX hosts by preference, on the key's port; the first matches, the backups do not: WARNING"
run "three.test:$P" "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b.crt")" 1
grep -qx "key three.test:$P: servers from MX" "$TP_TMP/out" || fail "servers_from: $(cat "$TP_TMP/out")"
expect_servers "mx1.three.test[127.0.0.4]:$P 10 yes match" \
    "mx2.three.test[127.0.0.2]:$P 20 yes mismatch" "mx3.three.test[127.0.0.1]:$P 30 yes mismatch"
grep -q "1 of 3 servers Postfix tries present a pinned certificate: mail goes to the first, and is deferred whenever Postfix reaches another" "$TP_TMP/out" ||
    fail "backups unpinned: $(cat "$TP_TMP/out")"
run "three.test:$P" "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b.crt")|$FA" 0
grep -q "^verdict: OK: 3 servers present a pinned certificate or key" "$TP_TMP/out" || fail "all pinned: $(cat "$TP_TMP/out")"

tp_note "... the first fails and a later one matches: Postfix delivers after a detour: WARNING"
run "three.test:$P" "fingerprint match=$FA" 1
grep -q "^verdict: WARNING.*2 of 3 servers Postfix tries present a pinned certificate: mail gets through after the failing ones are tried" "$TP_TMP/out" ||
    fail "detour: $(cat "$TP_TMP/out")"
grep -q "mx1.three.test\[127.0.0.4\]:$P presents .*Server certificate not verified" "$TP_TMP/out" ||
    fail "detour: the failing server is not named: $(cat "$TP_TMP/out")"

tp_note "... smtp_mx_address_limit = 1: only the first is tried, and it fails: CRITICAL"
printf 'smtp_mx_address_limit = 1\n' >>"$D/main.cf"
run "three.test:$P" "fingerprint match=$FA" 2
expect_servers "mx1.three.test[127.0.0.4]:$P 10 yes mismatch" \
    "mx2.three.test[127.0.0.2]:$P 20 no not probed" "mx3.three.test[127.0.0.1]:$P 30 no not probed"

tp_note "... a shuffled group cut by the limit: its members are only maybe tried"
sed -i 's/^smtp_mx_address_limit = .*/smtp_mx_address_limit = 2/' "$D/main.cf"
run "tie.test:$P" "fingerprint match=$FA" 0
expect_servers "t1.tie.test[127.0.0.1]:$P 10 maybe match" "t2.tie.test[127.0.0.2]:$P 10 maybe match" \
    "t3.tie.test[127.0.0.3]:$P 10 maybe match"
printf 'smtp_randomize_addresses = no\n' >>"$D/main.cf"
run "tie.test:$P" "fingerprint match=$FA" 0
expect_servers "t1.tie.test[127.0.0.1]:$P 10 yes match" "t2.tie.test[127.0.0.2]:$P 10 yes match" \
    "t3.tie.test[127.0.0.3]:$P 10 no not probed"
sed -i '/^smtp_mx_address_limit/d; /^smtp_randomize_addresses/d' "$D/main.cf"

tp_note "no MX records: the domain itself; a null MX: no server, UNKNOWN"
run "bare.test:$P" "fingerprint match=$FA" 0
grep -qx "key bare.test:$P: servers from host (no MX records)" "$TP_TMP/out" || fail "implicit MX: $(cat "$TP_TMP/out")"
expect_servers "bare.test[127.0.0.3]:$P 0 yes match"
run "null.test:$P" "fingerprint match=$FA" 3
grep -q "^error: null.test: null MX" "$TP_TMP/out" || fail "null MX: $(cat "$TP_TMP/out")"
tp_note "... also beside other MX records (dns_get_answer: DNS_NULLMX)"
run "mixnull.test:$P" "fingerprint match=$FA" 3
grep -q "^error: mixnull.test: null MX" "$TP_TMP/out" || fail "null MX among others: $(cat "$TP_TMP/out")"

tp_note "an MX target valid_rr_name() refuses is dropped, the others stay"
run "inv.test:$P" "fingerprint match=$FA" 0
expect_servers "mx2.three.test[127.0.0.2]:$P 20 yes match"

tp_note "a host named by two MX records is tried for each: its addresses count twice against smtp_mx_address_limit"
printf 'smtp_mx_address_limit = 4\nsmtp_randomize_addresses = no\n' >>"$D/main.cf"
run "dup.test:$P" "fingerprint match=$FA" 0
expect_servers "mx.dup.test[127.0.0.1]:$P 10 yes match" "mx.dup.test[127.0.0.2]:$P 10 yes match" \
    "mx.dup.test[127.0.0.1]:$P 20 yes match" "mx.dup.test[127.0.0.2]:$P 20 yes match" \
    "mx1.three.test[127.0.0.4]:$P 30 no not probed"
sed -i '/^smtp_mx_address_limit/d; /^smtp_randomize_addresses/d' "$D/main.cf"

tp_note "[host]: the host's own address, never its MX"
run "[host.test]:$P" "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b.crt")" 0
expect_servers "host.test[127.0.0.5]:$P 0 yes match"
tp_note "... and with DNS disabled, a domain is a host too"
printf 'smtp_dns_support_level = disabled\n' >>"$D/main.cf"
run "host.test:$P" "fingerprint match=$(tp_cert_fingerprint "$TP_TMP/b.crt")" 0
grep -qx "key host.test:$P: servers from host" "$TP_TMP/out" || fail "DNS disabled: $(cat "$TP_TMP/out")"
expect_servers "host.test[127.0.0.5]:$P 0 yes match"
sed -i '/^smtp_dns_support_level/d' "$D/main.cf"

tp_note "an address, with its family in use or not (inet_protocols)"
run "[127.0.0.2]:$P" "fingerprint match=$FA" 0
expect_servers "127.0.0.2[127.0.0.2]:$P 0 yes match"
printf 'inet_protocols = ipv6\n' >>"$D/main.cf"
run "[127.0.0.2]:$P" "fingerprint match=$FA" 3
sed -i '/^inet_protocols/d' "$D/main.cf"

if [ "$v6" = 1 ]; then
    tp_start_server a6 --cert "$TP_TMP/a.pem" --listen "[::1]:$P"
    tp_note "IPv4 and IPv6: both, the preferred family first; inet_protocols = ipv4: no AAAA"
    run "dual.test:$P" "fingerprint match=$FA" 0
    expect_servers "mx.dual.test[127.0.0.1]:$P 10 yes match" "mx.dual.test[::1]:$P 10 yes match"
    printf 'smtp_address_preference = ipv6\n' >>"$D/main.cf"
    run "dual.test:$P" "fingerprint match=$FA" 0
    expect_servers "mx.dual.test[::1]:$P 10 yes match" "mx.dual.test[127.0.0.1]:$P 10 yes match"
    printf 'inet_protocols = ipv4\n' >>"$D/main.cf"
    run "dual.test:$P" "fingerprint match=$FA" 0
    expect_servers "mx.dual.test[127.0.0.1]:$P 10 yes match"
    sed -i '/^inet_protocols/d; /^smtp_address_preference/d' "$D/main.cf"
    run "[ipv6:::1]:$P" "fingerprint match=$FA" 0
    expect_servers "::1[::1]:$P 0 yes match"

    tp_note "smtp_balance_inet_protocols: four AAAA and one A under a limit of 2 keep one of each"
    # (Four MX hosts on ::1, the one IPv6 loopback address.)
    printf 'smtp_mx_address_limit = 2\n' >>"$D/main.cf"
    run "many6.test:$P" "fingerprint match=$FA" 0
    expect_servers "v6a.many6.test[::1]:$P 10 yes match" "v4.many6.test[127.0.0.1]:$P 50 yes match"
    printf 'smtp_balance_inet_protocols = no\n' >>"$D/main.cf"
    run "many6.test:$P" "fingerprint match=$FA" 0
    expect_servers "v6a.many6.test[::1]:$P 10 yes match" "v6b.many6.test[::1]:$P 20 yes match" \
        "v6c.many6.test[::1]:$P 30 no not probed" "v6d.many6.test[::1]:$P 40 no not probed" \
        "v4.many6.test[127.0.0.1]:$P 50 no not probed"
    sed -i '/^smtp_mx_address_limit/d; /^smtp_address_preference/d; /^smtp_balance_inet_protocols/d' "$D/main.cf"
else
    tp_note "no ::1 on lo: IPv6 cases not run"
fi

tp_note "a .domain pattern names no server"
run ".three.test" "fingerprint match=$FA" 3
grep -q "^error: .three.test matches the next hops below three.test and names no server" "$TP_TMP/out" ||
    fail "pattern: $(cat "$TP_TMP/out")"

tp_note "a key that is no next hop: UNKNOWN, nothing probed"
run "bad key" "fingerprint match=$FA" 3
grep -q "^error: bad key: not a next-hop form Postfix looks up" "$TP_TMP/out" || fail "bad key: $(cat "$TP_TMP/out")"

tp_note "no pins to check at other levels; the value from the table when none is given"
run "three.test:$P" "may" 0
grep -q "^verdict: OK: level may: no pins to check" "$TP_TMP/out" || fail "may: $(cat "$TP_TMP/out")"
printf '[127.0.0.2]:%s\tfingerprint match=%s\n' "$P" "$FA" >"$D/tls_policy"
postmap "$D/tls_policy"
"$X" -c "$D" -t 5 "[127.0.0.2]:$P" >"$TP_TMP/out" 2>"$TP_TMP/err" || fail "value from the table: $(cat "$TP_TMP/out" "$TP_TMP/err")"
expect_servers "127.0.0.2[127.0.0.2]:$P 0 yes match"

tp_note "usage"
rc=0; "$X" >/dev/null 2>&1 || rc=$?
[ "$rc" = 64 ] || fail "no key: exit $rc, want 64"
echo ok
