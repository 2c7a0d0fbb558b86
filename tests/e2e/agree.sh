# tlspolicy's verdict is Postfix's, against the real thing on both ends: a
# real Postfix partner (smtpd with STARTTLS on loopback addresses, an RSA
# and an ECDSA certificate, tls_server_sni_maps for a second name, services
# with other certificates, a TLS 1.3-only one, an SMTPS one), a real
# Postfix client sending to it, and a DNS server of ours for the MX records,
# all in a network namespace of the test's own (port 25 and 53 are free
# there, and nothing leaves it). For each scenario the test pins with
# `set --fingerprint-from` (or by hand, for the ways people get it wrong),
# sends mail, waits for what Postfix did, and asserts:
#   - check agrees with Postfix: delivered -> exit 0 or 1, deferred -> 2;
#   - where set pinned, Postfix verified exactly that certificate;
#   - the cipher list and SNI tlspolicy uses are the ones Postfix logged
#     (smtp_tls_loglevel 2);
#   - probe shows the leaf posttls-finger shows with the same SNI,
#     protocols and ciphers.
# It prints the agreement as N/N. Needs root, postfix and posttls-finger
# (CI installs them): a missing oracle fails the test, it does not skip.
if [ -z "${TP_E2E_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL: ${0##*/}: a network namespace and Postfix need root" >&2; exit 1; }
    exec env TP_E2E_NETNS=1 unshare --net --mount --propagation private bash "$0" "$@"
fi
. "$TP_SOURCE_DIR/tests/lib.sh"

for c in postfix postconf postqueue postsuper sendmail postmap posttls-finger ip jq; do
    command -v "$c" >/dev/null || fail "$c not found: install postfix, iproute2, jq"
done
T=$TLSPOLICY

ip link set lo up || fail "cannot bring up lo in the test's network namespace"
# The namespace's own resolver and hosts file, seen by Postfix, the test
# servers and tlspolicy alike; the real files are not touched.
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' >"$TP_TMP/resolv.conf"
cp /etc/hosts "$TP_TMP/hosts"
mount --bind "$TP_TMP/resolv.conf" /etc/resolv.conf || fail "cannot bind-mount a private /etc/resolv.conf"
mount --bind "$TP_TMP/hosts" /etc/hosts || fail "cannot bind-mount a private /etc/hosts"
trap 'rc=$?; umount /etc/resolv.conf /etc/hosts /etc/ssl/certs 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
unset TLSPOLICY_DNS_SERVERS

# ---- certificates (Postfix's chain files: the key, then the certificate)
chain() { cat "$TP_TMP/$1.key" "$TP_TMP/$1.crt" >"$TP_TMP/$1.chain"; }
tp_make_cert "$TP_TMP/rsa" mx.partner.test
tp_make_cert "$TP_TMP/ec" mx.partner.test --ec
tp_make_cert "$TP_TMP/sni" sni.partner.test --ec
tp_make_cert "$TP_TMP/other" other.partner.test
# A CA-issued certificate for the next hop s18.test (level secure's match).
tp_make_ca "$TP_TMP/ca18" "Test Root CA"
tp_make_cert "$TP_TMP/s18" s18.test --ca "$TP_TMP/ca18" --san DNS:s18.test
for c in rsa ec sni other s18; do chain "$c"; done
fp() { tp_cert_fingerprint "$TP_TMP/$1.crt" "${2:-sha256}"; }

# ---- DNS: MX records for the domains whose next hop Postfix looks up
cat >"$TP_TMP/zone" <<EOF
sni.partner.test A 127.0.0.13
s3.test MX 10 sni.partner.test
mx7.partner.test A 127.0.0.17
s7.test MX 10 mx7.partner.test
s7.test A 127.0.0.18
mxa.partner.test A 127.0.0.21
mxb.partner.test A 127.0.0.22
s11.test MX 10 mxa.partner.test
s11.test MX 20 mxb.partner.test
mx18.partner.test A 127.0.0.26
s18.test MX 10 mx18.partner.test
EOF
tp_start_dns dns "$TP_TMP/zone" --port 53

# ---- the partner: a real Postfix smtpd, accepting and discarding mail
pp=$TP_TMP/partner
mkdir -p "$pp"
tp_postfix_setup "$pp" \
    'myhostname = mx.partner.test' 'inet_interfaces = all' 'inet_protocols = all' \
    'mynetworks = 127.0.0.0/8 [::1]/128' 'smtpd_relay_restrictions = permit_mynetworks, reject' \
    'default_transport = discard' 'relay_transport = discard' \
    'smtpd_tls_security_level = may' 'smtpd_tls_loglevel = 1' \
    "smtpd_tls_chain_files = $TP_TMP/rsa.chain, $TP_TMP/ec.chain" \
    "tls_server_sni_maps = hash:$pp/sni"
printf 'sni.partner.test %s\n' "$TP_TMP/sni.chain" >"$pp/sni"
postmap -c "$pp" -F "hash:$pp/sni" || fail "postmap -F of the SNI table failed"
svc() { printf '%s inet n - n - - smtpd%s\n' "$1" "${2:-}" >>"$pp/master.cf"; }
svc 127.0.0.2:25
svc 127.0.0.12:25
svc 127.0.0.13:25
svc 127.0.0.14:25
svc 127.0.0.24:25
svc 127.0.0.15:25 ' -o smtpd_tls_protocols=>=TLSv1.3 -o smtpd_tls_mandatory_protocols=>=TLSv1.3'
svc 127.0.0.17:2525 " -o smtpd_tls_chain_files=$TP_TMP/other.chain"
svc 127.0.0.18:2525
svc '[::1]:2526'
svc 127.0.0.19:25
svc 127.0.0.20:25
svc 127.0.0.21:25
svc 127.0.0.22:25 " -o smtpd_tls_chain_files=$TP_TMP/other.chain"
svc 127.0.0.23:25
svc 127.0.0.4:465 ' -o smtpd_tls_wrappermode=yes'
svc 127.0.0.26:25 " -o smtpd_tls_chain_files=$TP_TMP/s18.chain"
# A partner that lets one client address in, as partner links with pins often do.
svc 127.0.0.27:25 ' -o mynetworks=127.0.0.5/32 -o smtpd_delay_reject=no -o smtpd_client_restrictions=permit_mynetworks,reject'
tp_postfix_start "$pp"

# ---- the client: a real Postfix sending through DNS, pins in its table
pc=$TP_TMP/client
mkdir -p "$pc"
transports='s1.test=smtp:[127.0.0.2]:25, s2.test=smtp:[127.0.0.12]:25, s2b.test=smtp:[127.0.0.24]:25,
  s4.test=smtp:[127.0.0.14]:25, s4b.test=smtp:[127.0.0.24]:25, s6.test=smtp:[127.0.0.15]:25,
  s7.test=smtp:s7.test:2525, s8.test=smtp:[ipv6:::1]:2526, s9.test=smtp:[127.0.0.19]:25,
  s10.test=smtp:[127.0.0.20]:25, s12.test=smtp:[127.0.0.23]:25, s13.test=smtps:[127.0.0.4]:465,
  s19.test=smtp:[127.0.0.27]:25'
tp_postfix_setup "$pc" \
    'inet_interfaces = 127.0.0.1' 'inet_protocols = all' \
    'smtp_dns_support_level = enabled' 'smtp_host_lookup = dns' \
    'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
    'smtp_tls_loglevel = 2' 'smtp_tls_session_cache_database =' \
    "transport_maps = inline:{ $(tr '\n' ' ' <<<"$transports") }"
printf 'smtps unix - - n - - smtp -o smtp_tls_wrappermode=yes -o smtp_tls_security_level=encrypt\n' >>"$pc/master.cf"
: >"$pc/tls_policy"
postmap "$pc/tls_policy"
tp_postfix_start "$pc"

agreed=0
total=0
disagreements=""

# deliver RCPT: send a message and wait for Postfix's first verdict on it,
# "sent" or "deferred" (the reason in $TP_TMP/why); the queue is emptied
# after, so a deferred message does not come back in a later scenario.
deliver() {
    local rcpt=$1 from i line
    from=$(wc -l <"$pc/maillog" 2>/dev/null || echo 0)
    echo "$from" >"$TP_TMP/mark"
    tp_postfix_send "$pc" sender@client.test "$rcpt"
    for i in $(seq 1 40); do
        line=$(tail -n +"$((from + 1))" "$pc/maillog" | grep -E "to=<$rcpt>.*status=(sent|deferred|bounced)" | head -n 1 || true)
        if [ -n "$line" ]; then
            sed 's/.*status=[a-z]* //' <<<"$line" >"$TP_TMP/why"
            postsuper -c "$pc" -d ALL >/dev/null 2>&1 || true
            sed 's/.*status=\([a-z]*\).*/\1/' <<<"$line"
            return 0
        fi
        postqueue -c "$pc" -f >/dev/null 2>&1 || true
        sleep 0.5
    done
    tail -n 20 "$pc/maillog" >&2
    fail "no delivery verdict for $rcpt within 20 s"
}
# since_mark: the client's log lines since the last deliver, as a file
# (a pipe into grep -q or head would die of SIGPIPE under pipefail).
since_mark() {
    tail -n +"$(( $(cat "$TP_TMP/mark") + 1 ))" "$pc/maillog" >"$TP_TMP/since"
    echo "$TP_TMP/since"
}

# judge NAME KEY RCPT WANT: deliver, check KEY, and record whether check
# agrees with what Postfix did; WANT (sent or deferred) is what the
# scenario is built to produce, so a scenario that stops testing what it
# says fails too.
judge() {
    local name=$1 key=$2 rcpt=$3 want=$4 got rc=0
    got=$(deliver "$rcpt")
    [ "$got" = "$want" ] || fail "$name: Postfix $got ($(cat "$TP_TMP/why")), the scenario wants $want"
    "$T" -c "$pc" check --json "$key" >"$TP_TMP/check.json" 2>"$TP_TMP/check.err" || rc=$?
    total=$((total + 1))
    if { [ "$got" = sent ] && { [ "$rc" = 0 ] || [ "$rc" = 1 ]; }; } ||
       { [ "$got" = deferred ] && [ "$rc" = 2 ]; }; then
        agreed=$((agreed + 1))
        tp_note "$name: Postfix $got, check exit $rc: agree"
    else
        disagreements="$disagreements
  $name: Postfix $got ($(cat "$TP_TMP/why")), check exit $rc: $(jq -c '[.entries[].reasons[]]' "$TP_TMP/check.json" 2>/dev/null || cat "$TP_TMP/check.json")"
        tp_note "$name: Postfix $got, check exit $rc: DISAGREE"
    fi
    same_settings "$name" "$key"
}

# same_settings NAME KEY: the cipher list and SNI of check's probe are the
# ones Postfix logged for its connection (when it made one), and every
# certificate Postfix logged (its fingerprint, per server) is the one check
# saw at that server.
same_settings() {
    local name=$1 key=$2 logged ours addr port fpr seen log
    log=$(since_mark)
    # No entries: check judged the configuration, and Postfix made no connection.
    [ "$(jq '.entries | length' "$TP_TMP/check.json")" -gt 0 ] || return 0
    logged=$(sed -n 's/.*: TLS cipher list "\(.*\)"$/\1/p;T;q' "$log")
    ours=$(jq -r '.entries[0].cipherlist' "$TP_TMP/check.json")
    [ -z "$logged" ] || [ "$logged" = "$ours" ] ||
        fail "$name: Postfix used cipher list '$logged', tlspolicy '$ours'"
    logged=$(sed -n 's/.*: SNI hostname: \(.*\)$/\1/p;T;q' "$log")
    ours=$(jq -r '[.entries[0].servers[]|select(.servername!=null)|.servername][0] // ""' "$TP_TMP/check.json")
    [ "$logged" = "$ours" ] || fail "$name: Postfix sent SNI '$logged', tlspolicy '$ours'"
    sed -n 's/.*\[\([^]]*\)\]:\([0-9]*\): subject_CN=.*[ ,]fingerprint=\([0-9A-F:]*\).*/\1 \2 \3/p' "$log" |
        sort -u >"$TP_TMP/postfix-saw"
    [ -s "$TP_TMP/postfix-saw" ] || grep -q 'Cannot start TLS\|TLS is required\|smtp_connect_addr: bind' "$log" ||
        fail "$name: Postfix logged no certificate and no TLS failure: $(tail -n 5 "$log")"
    # Below level fingerprint check has no pins to compare and probes nothing.
    [ "$(jq -r '.entries[0].level' "$TP_TMP/check.json")" = fingerprint ] || return 0
    while read -r addr port fpr; do
        seen=$(jq -r --arg a "$addr" --argjson p "$port" \
            '[.entries[0].servers[]|select(.address==$a and .port==$p)|.fingerprint][0] // "none"' "$TP_TMP/check.json")
        [ "$seen" = "$fpr" ] || fail "$name: at $addr:$port Postfix saw $fpr, check $seen"
    done <"$TP_TMP/postfix-saw"
}

# verified ADDR:PORT: Postfix verified the pinned certificate there.
verified() {
    grep -q "Verified TLS connection established to [^ ]*\[$1\]:$2" "$(since_mark)" ||
        fail "no verified TLS to $1:$2: $(grep -iE 'tls|verif' "$TP_TMP/since" | tail -n 5)"
}

# finger NAME ADDR:PORT [tlspolicy probe options] -- [posttls-finger options]:
# the leaf both see, with the same settings.
finger() {
    local name=$1 target=$2 pargs=() fargs=() ours theirs host dest
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do pargs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    fargs=("$@")
    "$T" -c "$pc" -d sha256 probe --json --timeout 10 "${pargs[@]}" "$target" >"$TP_TMP/probe.json" 2>"$TP_TMP/probe.err" ||
        fail "$name: probe $target failed: $(cat "$TP_TMP/probe.err")"
    ours=$(jq -r '.results[0].chain[0].fingerprint' "$TP_TMP/probe.json")
    host=${target%:*}
    host=${host#[}
    host=${host%]}
    case $host in
        *:*) dest="[ipv6:$host]:${target##*:}" ;;
        *) dest="[$host]:${target##*:}" ;;
    esac
    posttls-finger -c -l fingerprint -d sha256 "${fargs[@]}" "$dest" >"$TP_TMP/finger" 2>&1 || true
    theirs=$(sed -n 's/.*[ ,]fingerprint=\([0-9A-F:]*\).*/\1/p' "$TP_TMP/finger" | head -n 1)
    [ -n "$theirs" ] || fail "$name: posttls-finger saw no certificate: $(cat "$TP_TMP/finger")"
    [ "$ours" = "$theirs" ] || fail "$name: probe saw $ours, posttls-finger $theirs"
}

# finger_fails NAME ADDR:PORT PROTOCOLS: neither gets TLS with these protocols.
finger_fails() {
    "$T" -c "$pc" probe --json --timeout 10 --protocols "$3" "$2" >"$TP_TMP/probe.json" 2>"$TP_TMP/probe.err" &&
        fail "$1: probe --protocols '$3' got TLS: $(cat "$TP_TMP/probe.json")"
    jq -e '.results[0].ok == false' "$TP_TMP/probe.json" >/dev/null || fail "$1: probe: $(cat "$TP_TMP/probe.json")"
    posttls-finger -c -l fingerprint -d sha256 -p "$3" "[${2%:*}]:${2##*:}" >"$TP_TMP/finger" 2>&1 || true
    grep -q 'fingerprint=' "$TP_TMP/finger" && fail "$1: posttls-finger -p '$3' got TLS: $(cat "$TP_TMP/finger")"
    grep -qi 'handshake\|Cannot start TLS\|SSL_connect error' "$TP_TMP/finger" || fail "$1: posttls-finger: $(cat "$TP_TMP/finger")"
}

tp_note "S1: no SNI by default: the partner's default certificate is the one pinned and verified"
"$T" -c "$pc" set '[127.0.0.2]:25' --fingerprint-from 127.0.0.2:25 || fail "S1: set failed"
judge S1 '[127.0.0.2]:25' rcpt@s1.test sent
verified 127.0.0.2 25
finger S1 127.0.0.2:25

tp_note "S2: SNI from main.cf's smtp_tls_servername: the SNI certificate"
postconf -c "$pc" -e 'smtp_tls_servername = sni.partner.test'
"$T" -c "$pc" set '[127.0.0.12]:25' --fingerprint-from 127.0.0.12:25 || fail "S2: set failed"
[ "$(postmap -q '[127.0.0.12]:25' "hash:$pc/tls_policy")" = "fingerprint match=$(fp sni)" ] ||
    fail "S2: set did not pin the SNI certificate: $(postmap -q '[127.0.0.12]:25' "hash:$pc/tls_policy")"
judge S2 '[127.0.0.12]:25' rcpt@s2.test sent
verified 127.0.0.12 25
finger S2 127.0.0.12:25 --servername sni.partner.test -- -s sni.partner.test

tp_note "S2b: the same, pinned from a probe that sent no SNI (the old mistake): deferred, CRITICAL"
"$T" -c "$pc" set '[127.0.0.24]:25' --fingerprint "$(fp ec)" || fail "S2b: set failed"
judge S2b '[127.0.0.24]:25' rcpt@s2b.test deferred
postconf -c "$pc" -X smtp_tls_servername

tp_note "S3: servername=hostname in the entry: SNI is the MX host's name"
"$T" -c "$pc" set s3.test --fingerprint-from sni.partner.test --attr servername=hostname || fail "S3: set failed"
[ "$(postmap -q s3.test "hash:$pc/tls_policy")" = "fingerprint match=$(fp sni) servername=hostname" ] ||
    fail "S3: $(postmap -q s3.test "hash:$pc/tls_policy")"
judge S3 s3.test rcpt@s3.test sent
verified 127.0.0.13 25
finger S3 127.0.0.13:25 --servername sni.partner.test -- -s sni.partner.test

tp_note "S4: exclude=aECDSA (TLS 1.2): the partner shows its RSA certificate"
"$T" -c "$pc" set '[127.0.0.14]:25' --fingerprint-from 127.0.0.14:25 --attr exclude=aECDSA \
    --attr 'protocols=<=TLSv1.2' || fail "S4: set failed"
[ "$(postmap -q '[127.0.0.14]:25' "hash:$pc/tls_policy")" = "fingerprint match=$(fp rsa) exclude=aECDSA protocols=<=TLSv1.2" ] ||
    fail "S4: set did not pin the RSA certificate: $(postmap -q '[127.0.0.14]:25' "hash:$pc/tls_policy")"
judge S4 '[127.0.0.14]:25' rcpt@s4.test sent
verified 127.0.0.14 25
finger S4 127.0.0.14:25 --exclude aECDSA --protocols '<=TLSv1.2' -- -p '<=TLSv1.2' \
    -o "tls_medium_cipherlist=$(postconf -dh tls_medium_cipherlist):!aECDSA"

tp_note "S4b: the same entry pinned with what a plain probe sees (ECDSA): deferred, CRITICAL"
"$T" -c "$pc" set '[127.0.0.24]:25' --fingerprint "$(fp ec)" --attr exclude=aECDSA \
    --attr 'protocols=<=TLSv1.2' || fail "S4b: set failed"
judge S4b '[127.0.0.24]:25' rcpt@s4b.test deferred

tp_note "S5: smtp_tls_mandatory_protocols <=TLSv1.2 against a TLS 1.3-only server: no TLS, deferred, CRITICAL"
postconf -c "$pc" -e 'smtp_tls_mandatory_protocols = <=TLSv1.2'
postfix -c "$pc" reload >/dev/null 2>&1
"$T" -c "$pc" set '[127.0.0.15]:25' --fingerprint-from 127.0.0.15:25 2>"$TP_TMP/err" &&
    fail "S5: set pinned a server Postfix cannot talk TLS to"
grep -q "TLS handshake" "$TP_TMP/err" || fail "S5: set's error: $(cat "$TP_TMP/err")"
"$T" -c "$pc" set '[127.0.0.15]:25' --fingerprint "$(fp ec)" || fail "S5: set failed"
judge S5 '[127.0.0.15]:25' rcpt@s6.test deferred
jq -e '.entries[0].reasons[]|select(.text|test("no TLS with Postfix.s settings"))' "$TP_TMP/check.json" >/dev/null ||
    fail "S5: check does not name the TLS failure: $(cat "$TP_TMP/check.json")"
finger_fails S5 127.0.0.15:25 '<=TLSv1.2'
postconf -c "$pc" -X smtp_tls_mandatory_protocols
postfix -c "$pc" reload >/dev/null 2>&1

tp_note "S6: domain:port goes through MX (mx7, another certificate), not the domain's A record"
"$T" -c "$pc" set s7.test:2525 --fingerprint-from mx7.partner.test:2525 || fail "S6: set failed"
[ "$(postmap -q s7.test:2525 "hash:$pc/tls_policy")" = "fingerprint match=$(fp other)" ] ||
    fail "S6: $(postmap -q s7.test:2525 "hash:$pc/tls_policy")"
judge S6 s7.test:2525 rcpt@s7.test sent
verified 127.0.0.17 2525
finger S6 127.0.0.17:2525

tp_note "S6b: pinned from the A record's server (the old rule): deferred, CRITICAL"
"$T" -c "$pc" set s7.test:2525 --fingerprint-from 127.0.0.18:2525 || fail "S6b: set failed"
judge S6b s7.test:2525 rcpt@s7.test deferred

tp_note "S7: [ipv6:::1]:2526"
"$T" -c "$pc" set '[ipv6:::1]:2526' --fingerprint-from '[::1]:2526' || fail "S7: set failed"
judge S7 '[ipv6:::1]:2526' rcpt@s8.test sent
verified ::1 2526
finger S7 '[::1]:2526' -- 

tp_note "S8: a pin made with sha1 while Postfix compares md5: deferred, CRITICAL"
postconf -c "$pc" -e 'smtp_tls_fingerprint_digest = md5'
postfix -c "$pc" reload >/dev/null 2>&1
printf '[127.0.0.20]:25\tfingerprint match=%s\n' "$(fp ec sha1)" >>"$pc/tls_policy"
"$T" -c "$pc" rebuild || fail "S8: rebuild failed"
judge S8 '[127.0.0.20]:25' rcpt@s10.test deferred
finger S8 127.0.0.20:25
jq -e '.entries[0].reasons[]|select(.text|test("is sha1, but Postfix compares md5"))' "$TP_TMP/check.json" >/dev/null ||
    fail "S8: check does not name the digest: $(cat "$TP_TMP/check.json")"

tp_note "S9: the same entry re-pinned by set, with md5: delivered"
"$T" -c "$pc" set '[127.0.0.20]:25' --fingerprint-from 127.0.0.20:25 || fail "S9: set failed"
[ "$(postmap -q '[127.0.0.20]:25' "hash:$pc/tls_policy")" = "fingerprint match=$(fp ec md5)" ] ||
    fail "S9: $(postmap -q '[127.0.0.20]:25' "hash:$pc/tls_policy")"
judge S9 '[127.0.0.20]:25' rcpt@s10.test sent
verified 127.0.0.20 25
postconf -c "$pc" -X smtp_tls_fingerprint_digest
postfix -c "$pc" reload >/dev/null 2>&1
"$T" -c "$pc" set '[127.0.0.20]:25' --fingerprint-from 127.0.0.20:25 || fail "S9: set failed"

tp_note "S10: the first MX fails verification, the second matches: Postfix delivers after it: agree (WARNING)"
"$T" -c "$pc" set s11.test --fingerprint-from mxb.partner.test || fail "S10: set failed"
judge S10 s11.test rcpt@s11.test sent
grep -q "verification failed for mxa.partner.test\[127.0.0.21\]:25" "$(since_mark)" ||
    fail "S10: Postfix did not try the first MX and fail: $(grep -i mxa "$TP_TMP/since" | tail -n 3)"
verified 127.0.0.22 25
[ "$(jq -r '.entries[0].status' "$TP_TMP/check.json")" = WARNING ] ||
    fail "S10: want WARNING for a partial match: $(cat "$TP_TMP/check.json")"
finger S10 127.0.0.21:25
finger S10 127.0.0.22:25

tp_note "S11: a stale .db that still holds the right pin: Postfix delivers; check WARNING (stale .db)"
"$T" -c "$pc" set '[127.0.0.23]:25' --fingerprint-from 127.0.0.23:25 || fail "S11: set failed"
cp "$pc/tls_policy" "$TP_TMP/policy.good"
sed -i "s/^\(\[127.0.0.23\]:25\).*/\1\tfingerprint match=$(fp rsa)/" "$pc/tls_policy"
judge S11 '[127.0.0.23]:25' rcpt@s12.test sent
finger S11 127.0.0.23:25
[ "$(jq -r '.entries[0].status' "$TP_TMP/check.json")" = WARNING ] ||
    fail "S11: want WARNING for a stale .db: $(cat "$TP_TMP/check.json")"

tp_note "S12: a stale .db with the wrong pin, the source right: Postfix defers; check CRITICAL"
"$T" -c "$pc" rebuild || fail "S12: rebuild failed"
cp "$TP_TMP/policy.good" "$pc/tls_policy"
judge S12 '[127.0.0.23]:25' rcpt@s12.test deferred
"$T" -c "$pc" rebuild || fail "S12: rebuild failed"

tp_note "S13: wrapper mode (SMTPS, port 465) through a transport with smtp_tls_wrappermode = yes"
"$T" -c "$pc" set '[127.0.0.4]:465' --fingerprint-from 127.0.0.4:465 --wrapper || fail "S13: set failed"
judge S13 '[127.0.0.4]:465' rcpt@s13.test sent
verified 127.0.0.4 465
finger S13 127.0.0.4:465 --wrapper -- -w

tp_note "S14: a regexp map before the table answers first, with a pin the server does not present: deferred, CRITICAL, shadowing named"
printf '# answers before tls_policy\n/^\\[127\\.0\\.0\\.23\\]:25$/\tfingerprint match=%s\n' "$(fp rsa)" >"$pc/pre"
postconf -c "$pc" -e 'smtp_tls_policy_maps = regexp:$config_directory/pre, hash:$config_directory/tls_policy'
postfix -c "$pc" reload >/dev/null 2>&1
judge S14 '[127.0.0.23]:25' rcpt@s12.test deferred
jq -e --arg w "regexp:$pc/pre line 2" '.entries[0] | .judged_where == $w and any(.reasons[]; .text|test("shadowed by regexp:.* which Postfix asks first: pins of hash:.* unused"))' \
    "$TP_TMP/check.json" >/dev/null || fail "S14: check does not judge the regexp's answer: $(cat "$TP_TMP/check.json")"

tp_note "S14b: the regexp answers encrypt: delivered without the pins; check WARNING (pins unused)"
printf '/^\\[127\\.0\\.0\\.23\\]:25$/\tencrypt\n' >"$pc/pre"
postfix -c "$pc" reload >/dev/null 2>&1   # regexp tables are read when a process starts
judge S14b '[127.0.0.23]:25' rcpt@s12.test sent
[ "$(jq -r '.entries[0].status' "$TP_TMP/check.json")" = WARNING ] ||
    fail "S14b: want WARNING for pins an earlier map makes unused: $(cat "$TP_TMP/check.json")"
postconf -c "$pc" -e 'smtp_tls_policy_maps = hash:$config_directory/tls_policy'
postfix -c "$pc" reload >/dev/null 2>&1

tp_note "S17: client certificates in two chain files (RSA, ECDSA), as Postfix's docs show them: Postfix delivers; check agrees"
# The client's own certificates: Postfix loads them when its SMTP client
# starts, and runs without TLS when they do not load.
tp_make_cert "$TP_TMP/crsa" client.test
tp_make_cert "$TP_TMP/cec" client.test --ec
for c in crsa cec; do chain "$c"; done
postconf -c "$pc" -e "smtp_tls_chain_files = $TP_TMP/crsa.chain, $TP_TMP/cec.chain"
postfix -c "$pc" reload >/dev/null 2>&1
judge S17 '[127.0.0.2]:25' rcpt@s1.test sent
verified 127.0.0.2 25

tp_note "S17b: a chain file with the certificate before its key: Postfix runs without TLS and defers; check CRITICAL, naming it"
cat "$TP_TMP/crsa.crt" "$TP_TMP/crsa.key" >"$TP_TMP/crsa.certfirst"
postconf -c "$pc" -e "smtp_tls_chain_files = $TP_TMP/crsa.certfirst"
postfix -c "$pc" reload >/dev/null 2>&1
judge S17b '[127.0.0.2]:25' rcpt@s1.test deferred
grep -q 'TLS is required, but our TLS engine is unavailable' "$TP_TMP/why" ||
    fail "S17b: Postfix deferred for another reason: $(cat "$TP_TMP/why")"
grep -q "error loading chain from $TP_TMP/crsa.certfirst: key not first" "$pc/maillog" ||
    fail "S17b: Postfix's log does not say why: $(grep -i 'chain\|certif' "$pc/maillog" | tail -n 3)"
jq -e '.entries[0].reasons[]|select(.text|test("crsa.certfirst: key not first"))' "$TP_TMP/check.json" >/dev/null ||
    fail "S17b: check does not name the chain file: $(cat "$TP_TMP/check.json")"

tp_note "S17c: a relative chain file name: Postfix opens it from queue_directory, and delivers; check agrees"
cp "$TP_TMP/cec.chain" "$(postconf -c "$pc" -hx queue_directory)/client.chain"
postconf -c "$pc" -e "smtp_tls_chain_files = client.chain"
postfix -c "$pc" reload >/dev/null 2>&1
judge S17c '[127.0.0.2]:25' rcpt@s1.test sent
verified 127.0.0.2 25
postconf -c "$pc" -X smtp_tls_chain_files
postfix -c "$pc" reload >/dev/null 2>&1

tp_note "S18: check's advice that level secure would need no pins holds only with CAs Postfix verifies with"
# The system's CA store is our CA alone, for Postfix and tlspolicy alike
# (a tmpfs over /etc/ssl/certs in the test's mount namespace). Without
# smtp_tls_CAfile or smtp_tls_CApath Postfix trusts no CA: level secure
# defers, whatever the system trusts.
mount -t tmpfs tmpfs /etc/ssl/certs || fail "S18: cannot mount a private /etc/ssl/certs"
cp "$TP_TMP/ca18.crt" /etc/ssl/certs/ca-certificates.crt
openssl rehash /etc/ssl/certs 2>/dev/null || fail "S18: openssl rehash failed"
"$T" -c "$pc" set s18.test --fingerprint-from 127.0.0.26:25 >/dev/null || fail "S18: set failed"
judge S18 s18.test rcpt@s18.test sent
jq -e '.entries[0].reasons[]|select(.text|test("CA-valid for s18.test by the system.s CAs, which Postfix does not use"))' \
    "$TP_TMP/check.json" >/dev/null || fail "S18: no system-CA advice: $(cat "$TP_TMP/check.json")"
jq -e '.entries[0].reasons[]|select(.text|test("level secure would need no pins"))' "$TP_TMP/check.json" >/dev/null &&
    fail "S18: level secure advised while Postfix trusts no CA: $(cat "$TP_TMP/check.json")"
"$T" -c "$pc" set s18.test --level secure >/dev/null || fail "S18: set --level secure failed"
got=$(deliver rcpt@s18.test)
[ "$got" = deferred ] || fail "S18: Postfix $got at level secure without CA settings: $(cat "$TP_TMP/why")"
"$T" -c "$pc" doctor >"$TP_TMP/doctor.out" 2>&1 && fail "S18: doctor found nothing: $(cat "$TP_TMP/doctor.out")"
grep -q "s18.test: level verify or secure, but Postfix's SMTP client trusts no CA" "$TP_TMP/doctor.out" ||
    fail "S18: doctor does not say why: $(cat "$TP_TMP/doctor.out")"
tp_note "S18b: with smtp_tls_CAfile naming that CA, the advice is given, and level secure delivers"
postconf -c "$pc" -e 'smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt'
postfix -c "$pc" reload >/dev/null 2>&1
got=$(deliver rcpt@s18.test)
[ "$got" = sent ] || fail "S18b: Postfix $got at level secure with the CA: $(cat "$TP_TMP/why")"
"$T" -c "$pc" doctor >"$TP_TMP/doctor.out" 2>&1 || true
grep -q "trusts no CA" "$TP_TMP/doctor.out" && fail "S18b: doctor: $(cat "$TP_TMP/doctor.out")"
"$T" -c "$pc" set s18.test --fingerprint-from 127.0.0.26:25 >/dev/null || fail "S18b: set failed"
judge S18b s18.test rcpt@s18.test sent
jq -e '.entries[0].reasons[]|select(.text=="every server'"'"'s certificate is CA-valid for s18.test: level secure would need no pins")' \
    "$TP_TMP/check.json" >/dev/null || fail "S18b: no secure advice: $(cat "$TP_TMP/check.json")"
postconf -c "$pc" -X smtp_tls_CAfile
postfix -c "$pc" reload >/dev/null 2>&1
umount /etc/ssl/certs

tp_note "S19: smtp_bind_address, and a partner that lets only that address in: Postfix delivers; check agrees"
postconf -c "$pc" -e 'smtp_bind_address = 127.0.0.5'
postfix -c "$pc" reload >/dev/null 2>&1
# set probes as Postfix connects: from that address, or the partner refuses it.
"$T" -c "$pc" set '[127.0.0.27]:25' --fingerprint-from 127.0.0.27:25 >/dev/null 2>"$TP_TMP/set.err" ||
    fail "S19: set failed: $(cat "$TP_TMP/set.err")"
judge S19 '[127.0.0.27]:25' rcpt@s19.test sent
verified 127.0.0.27 25
[ "$(jq -r '.entries[0].bind_address' "$TP_TMP/check.json")" = 127.0.0.5 ] ||
    fail "S19: check does not show the source address: $(cat "$TP_TMP/check.json")"
# From any other address the partner gives no TLS (what a probe that does
# not bind would see).
posttls-finger -c -l fingerprint -d sha256 '[127.0.0.27]:25' >"$TP_TMP/finger" 2>&1 || true
grep -q 'fingerprint=' "$TP_TMP/finger" && fail "S19: the partner let another client address in: $(cat "$TP_TMP/finger")"
grep -q ' 554 ' "$TP_TMP/finger" || fail "S19: posttls-finger was not refused: $(cat "$TP_TMP/finger")"
tp_note "S19b: a source address that cannot be bound, with smtp_bind_address_enforce: Postfix defers; check CRITICAL"
postconf -c "$pc" -e 'smtp_bind_address = 192.0.2.1' 'smtp_bind_address_enforce = yes'
postfix -c "$pc" reload >/dev/null 2>&1
judge S19b '[127.0.0.27]:25' rcpt@s19.test deferred
grep -q 'server configuration error' "$TP_TMP/why" || fail "S19b: Postfix deferred for another reason: $(cat "$TP_TMP/why")"
jq -e '.entries[0].servers[0].error|test("bind 192.0.2.1")' "$TP_TMP/check.json" >/dev/null ||
    fail "S19b: check does not say why: $(cat "$TP_TMP/check.json")"
postconf -c "$pc" -X smtp_bind_address smtp_bind_address_enforce
postfix -c "$pc" reload >/dev/null 2>&1

tp_note "S16: a CA file Postfix cannot load: its SMTP client runs without TLS and defers pinned mail; check CRITICAL"
postconf -c "$pc" -e "smtp_tls_CAfile = $TP_TMP/no-such-ca.pem"
postfix -c "$pc" reload >/dev/null 2>&1   # the SMTP client loads its CAs when it starts
judge S16 '[127.0.0.2]:25' rcpt@s1.test deferred
grep -q 'TLS is required, but our TLS engine is unavailable' "$TP_TMP/why" ||
    fail "S16: Postfix deferred for another reason: $(cat "$TP_TMP/why")"
jq -e '.entries[0].reasons[]|select(.text|test("cannot load Certification Authority data"))' "$TP_TMP/check.json" >/dev/null ||
    fail "S16: check does not name the CA file: $(cat "$TP_TMP/check.json")"
"$T" -c "$pc" doctor >"$TP_TMP/doctor.out" 2>&1 && fail "S16: doctor found nothing: $(cat "$TP_TMP/doctor.out")"
grep -q "^error: Postfix's SMTP client cannot set up TLS (cannot load Certification Authority data" "$TP_TMP/doctor.out" ||
    fail "S16: doctor: $(cat "$TP_TMP/doctor.out")"

tp_note "S16b: a CA directory that does not exist: OpenSSL only notes it, Postfix delivers; check agrees"
postconf -c "$pc" -X smtp_tls_CAfile
postconf -c "$pc" -e "smtp_tls_CApath = $TP_TMP/no-such-ca-dir"
postfix -c "$pc" reload >/dev/null 2>&1
judge S16b '[127.0.0.2]:25' rcpt@s1.test sent
verified 127.0.0.2 25
postconf -c "$pc" -X smtp_tls_CApath
postfix -c "$pc" reload >/dev/null 2>&1

tp_note "S15: a bare path in smtp_tls_policy_maps: Postfix's SMTP client stops (fatal), the mail stays queued; check CRITICAL"
# Postfix never gets as far as a status= line (master throttles the dying
# smtp service): its fatal error and the message still queued are the verdict.
postconf -c "$pc" -e 'smtp_tls_policy_maps = $config_directory/tls_policy'
postfix -c "$pc" reload >/dev/null 2>&1
wc -l <"$pc/maillog" >"$TP_TMP/mark"
tp_postfix_send "$pc" sender@client.test rcpt@s12.test
tp_wait_until 30 grep -q 'expecting "type:name" form' "$pc/maillog" ||
    fail "S15: Postfix did not refuse the bare path: $(tail -n 5 "$pc/maillog")"
grep -q 'to=<rcpt@s12.test>.*status=sent' "$(since_mark)" && fail "S15: Postfix delivered with a bare path"
[ -n "$(postqueue -c "$pc" -p | grep -v 'Mail queue is empty')" ] || fail "S15: the message left the queue"
rc=0; "$T" -c "$pc" check --json '[127.0.0.23]:25' >"$TP_TMP/check.json" 2>"$TP_TMP/check.err" || rc=$?
total=$((total + 1))
if [ "$rc" = 2 ]; then
    agreed=$((agreed + 1))
    tp_note "S15: Postfix deferred (fatal), check exit $rc: agree"
else
    disagreements="$disagreements
  S15: Postfix deferred (fatal), check exit $rc: $(cat "$TP_TMP/check.json")"
    tp_note "S15: Postfix deferred (fatal), check exit $rc: DISAGREE"
fi
jq -e '.status == "CRITICAL" and (.summary | test("is not type:name"))' "$TP_TMP/check.json" >/dev/null ||
    fail "S15: check does not name the bare path: $(cat "$TP_TMP/check.json")"
postsuper -c "$pc" -d ALL >/dev/null 2>&1 || true
postconf -c "$pc" -e 'smtp_tls_policy_maps = hash:$config_directory/tls_policy'
postfix -c "$pc" reload >/dev/null 2>&1

tp_note "agreement: $agreed/$total"
echo "check agrees with Postfix in $agreed/$total scenarios"
[ "$agreed" = "$total" ] || fail "check disagrees with Postfix:$disagreements"
[ "$total" -ge 12 ] || fail "only $total scenarios ran"
echo ok
