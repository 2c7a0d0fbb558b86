# check and rotate on bare-domain keys with no recorded hosts: the MX hosts
# are looked up (through our loopback DNS server, never real DNS) and probed
# on port 25, as Postfix's SMTP client would deliver. A domain without MX
# falls back to its own address (RFC 5321); null MX, NXDOMAIN and a silent
# DNS server make the entry UNKNOWN with the reason, without hiding others.
. "$TP_SOURCE_DIR/tests/lib.sh"
command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
[ "$(id -u)" = 0 ] || fail "needs root: the MX host listens on port 25"

T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D"
printf 'compatibility_level = 3.6\nsmtp_tls_policy_maps = hash:$config_directory/tls_policy\n' >"$D/main.cf"

# Port 25 on a loopback address of our own, picked at random so parallel
# runs and anything on 127.0.0.1:25 do not collide.
mxaddr=127.0.$((RANDOM % 200 + 20)).$((RANDOM % 200 + 20))
tp_make_cert "$TP_TMP/a" mx.partner.test >/dev/null
tp_make_cert "$TP_TMP/b" mx.partner.test >/dev/null
cp "$TP_TMP/a.pem" "$TP_TMP/live.pem"
tp_start_server mx --cert "$TP_TMP/live.pem" --listen "$mxaddr:25"

cat >"$TP_TMP/zone" <<EOF
partner.test MX 20 mx2.partner.test
partner.test MX 10 mx1.partner.test
mx1.partner.test A $mxaddr
mx2.partner.test CNAME mx1.partner.test
nomx.test A $mxaddr
null.test MX 0 .
slow.test DROP
EOF
tp_start_dns z "$TP_TMP/zone"
export TLSPOLICY_DNS_SERVERS=127.0.0.1:$TP_DNS_PORT

pin_a=$(tp_cert_fingerprint "$TP_TMP/a.crt" sha256)
pin_b=$(tp_cert_fingerprint "$TP_TMP/b.crt" sha256)
cat >"$D/tls_policy" <<EOF
partner.test fingerprint match=$pin_a
nomx.test fingerprint match=$pin_a
EOF
"$T" -c "$D" rebuild

tp_note "check resolves the MX hosts (preference order, CNAME target) and says OK"
rc=0
"$T" -c "$D" check --timeout 5 --json >"$TP_TMP/out" || rc=$?
[ "$rc" = 0 ] || fail "check exit $rc, want 0: $(cat "$TP_TMP/out")"
grep -q "partner.test" "$(tp_dns_log z)" || fail "no MX query reached the test DNS server"
grep -Eq "mx1.partner.test (A|AAAA)" "$(tp_dns_log z)" || fail "MX host mx1 was not resolved: $(cat "$(tp_dns_log z)")"

tp_note "the partner replaces its certificate: check is CRITICAL, rotate repairs via MX"
tp_install_cert "$TP_TMP/b.pem" "$TP_TMP/live.pem"
rc=0
"$T" -c "$D" check --timeout 5 partner.test >"$TP_TMP/out" || rc=$?
[ "$rc" = 2 ] || fail "check after the swap: exit $rc, want 2 (CRITICAL): $(cat "$TP_TMP/out")"
rc=0
# The pins were written by hand (no keys= to recognise a renewal by):
# what is tested here is where rotate looks, so trust on first use.
"$T" -c "$D" rotate --yes --trust tofu --timeout 5 >"$TP_TMP/out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "rotate exit $rc: $(cat "$TP_TMP/out")"
for k in partner.test nomx.test; do
    v=$(postmap -c "$D" -q "$k" "hash:$D/tls_policy")
    [ "$v" = "fingerprint match=$pin_b" ] || fail "$k after rotate: Postfix reads '$v', want the new pin"
done
rc=0
"$T" -c "$D" check --timeout 5 >"$TP_TMP/out" || rc=$?
[ "$rc" = 0 ] || fail "check after rotate: exit $rc: $(cat "$TP_TMP/out")"

tp_note "null MX, NXDOMAIN and a silent DNS server: UNKNOWN with the reason, within the deadline"
cat >>"$D/tls_policy" <<EOF
null.test fingerprint match=$pin_b
gone.test fingerprint match=$pin_b
slow.test fingerprint match=$pin_b
EOF
"$T" -c "$D" rebuild
start=$(date +%s)
rc=0
"$T" -c "$D" check --timeout 3 --json >"$TP_TMP/out" || rc=$?
took=$(( $(date +%s) - start ))
[ "$rc" = 3 ] || fail "check with unresolvable domains: exit $rc, want 3 (UNKNOWN): $(cat "$TP_TMP/out")"
[ "$took" -le 10 ] || fail "check took ${took}s with --timeout 3: the silent DNS server was not bounded"
text=$("$T" -c "$D" check --timeout 3 2>&1 || true)
echo "$text" | grep -q "^UNKNOWN null.test: .*null MX" || fail "null MX not reported: $text"
echo "$text" | grep -q "^UNKNOWN gone.test: .*NXDOMAIN" || fail "NXDOMAIN not reported: $text"
echo "$text" | grep -Eq "^UNKNOWN slow.test: .*timed out" || fail "DNS timeout not reported: $text"
echo "$text" | grep -q "^OK partner.test: " || fail "the good entry was hidden by the bad ones: $text"

tp_note "rotate leaves unresolvable entries untouched and exits 1"
cp "$D/tls_policy" "$TP_TMP/before"
rc=0
"$T" -c "$D" rotate --yes --timeout 3 >"$TP_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "rotate with unresolvable domains: exit $rc, want 1: $(cat "$TP_TMP/out")"
cmp -s "$D/tls_policy" "$TP_TMP/before" || fail "rotate changed the table though nothing was stale"
echo "mx: all passed"
