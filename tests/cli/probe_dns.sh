#!/usr/bin/env bash
# tlspolicy probe resolves host names through the DNS servers named in
# TLSPOLICY_DNS_SERVERS (here our loopback testdns), never real DNS:
# A and AAAA records, aliases, NXDOMAIN, SERVFAIL, a silent server within
# the timeout, and a malformed server list.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need openssl jq

T=$TP_TMP
tp_sandbox_config "$T/conf"
export MAIL_CONFIG=$T/conf
tp_make_cert "$T/a" mx.partner.test --san DNS:mx.partner.test
v6=0
if tp_have_ipv6; then
    tp_start_server smtp --cert "$T/a.pem" --listen 127.0.0.1:0 --listen '[::1]:0'
    [ "$(sed -n 2p "$TP_TMP/srv-smtp/port")" = "$TP_PORT" ] && v6=1
else
    tp_start_server smtp --cert "$T/a.pem"
fi
port=$TP_PORT

cat >"$T/zone" <<ZONE
mx.partner.test A 127.0.0.1
alias.partner.test CNAME mx.partner.test
dual.partner.test A 127.0.0.1
dual.partner.test AAAA ::1
nx.partner.test NXDOMAIN
sf.partner.test SERVFAIL
silent.partner.test DROP
ZONE
tp_start_dns dns "$T/zone"
export TLSPOLICY_DNS_SERVERS="127.0.0.1:$TP_DNS_PORT"
dnslog=$(tp_dns_log dns)

# run NAME ARGS...: tlspolicy ARGS, keeping $T/NAME.{out,err,rc}.
run() {
    local name=$1
    shift
    set +e
    "$TLSPOLICY" "$@" >"$T/$name.out" 2>"$T/$name.err"
    echo $? >"$T/$name.rc"
    set -e
}

run mx probe --json --timeout 5 "mx.partner.test:$port"
[ "$(cat "$T/mx.rc")" = 0 ] || fail "mx.partner.test: exit $(cat "$T/mx.rc"): $(cat "$T/mx.err")"
got=$(jq -r '[.results[].address] | join(",")' "$T/mx.out")
[ "$got" = 127.0.0.1 ] || fail "mx.partner.test: got addresses $got, want 127.0.0.1"
# Postfix sends no SNI by default, a name or not.
[ "$(jq -r '.results[0].servername' "$T/mx.out")" = null ] \
    || fail "SNI: got $(jq -r '.results[0].servername' "$T/mx.out"), want none"
grep -q ' mx.partner.test A -> NOERROR answers=1' "$dnslog" \
    || fail "testdns saw no A query for mx.partner.test: $(cat "$dnslog")"

run alias probe --json --timeout 5 "alias.partner.test:$port"
[ "$(cat "$T/alias.rc")" = 0 ] || fail "alias.partner.test: exit $(cat "$T/alias.rc"): $(cat "$T/alias.err")"
[ "$(jq -r '.results[0].address' "$T/alias.out")" = 127.0.0.1 ] \
    || fail "alias.partner.test: got $(jq -c '[.results[].address]' "$T/alias.out"), want 127.0.0.1"

if [ "$v6" = 1 ]; then
    run dual probe --json --timeout 5 "dual.partner.test:$port"
    [ "$(cat "$T/dual.rc")" = 0 ] || fail "dual.partner.test: exit $(cat "$T/dual.rc"): $(cat "$T/dual.err")"
    got=$(jq -r '[.results[].address] | sort | join(",")' "$T/dual.out")
    [ "$got" = "127.0.0.1,::1" ] || fail "dual.partner.test: got addresses $got, want 127.0.0.1 and ::1"
fi

run nx probe --timeout 5 "nx.partner.test:$port"
[ "$(cat "$T/nx.rc")" = 1 ] || fail "nx: exit $(cat "$T/nx.rc"), want 1"
grep -qF "nx.partner.test:$port: cannot resolve nx.partner.test: no such domain (NXDOMAIN)" "$T/nx.err" \
    || fail "nx: got $(cat "$T/nx.err")"

run sf probe --timeout 5 "sf.partner.test:$port"
[ "$(cat "$T/sf.rc")" = 1 ] || fail "sf: exit $(cat "$T/sf.rc"), want 1"
grep -qF "sf.partner.test:$port: cannot resolve sf.partner.test: address lookup failed: DNS server failure (SERVFAIL)" "$T/sf.err" \
    || fail "sf: got $(cat "$T/sf.err")"

# A silent DNS server holds the probe no longer than the timeout, and the
# other targets are probed all the same.
start=$(date +%s%3N)
run silent probe --timeout 2 "silent.partner.test:$port" "mx.partner.test:$port"
ms=$(( $(date +%s%3N) - start ))
[ "$(cat "$T/silent.rc")" = 1 ] || fail "silent: exit $(cat "$T/silent.rc"), want 1"
grep -qF "silent.partner.test:$port: cannot resolve silent.partner.test: address lookup timed out after 2s" "$T/silent.err" \
    || fail "silent: got $(cat "$T/silent.err")"
# A silent server never answers: the loose bound only proves the deadline.
[ "$ms" -lt 30000 ] || fail "silent: took ${ms} ms with --timeout 2: the deadline was not kept"
grep -q "mx.partner.test" "$T/silent.out" || fail "silent: mx.partner.test was not probed: $(cat "$T/silent.out")"

TLSPOLICY_DNS_SERVERS='not a server' run bad probe "mx.partner.test:$port"
[ "$(cat "$T/bad.rc")" != 0 ] || fail "bad server list: exit 0"
grep -qF 'bad DNS server list "not a server"' "$T/bad.err" || fail "bad server list: got $(cat "$T/bad.err")"
tp_note "probe resolves through TLSPOLICY_DNS_SERVERS"
