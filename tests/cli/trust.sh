# What an unattended rotate may pin (tlspolicy/trust.h): with the default
# policy (same-key,pkix,dane) it pins a renewal with the same key, a new
# key a trusted CA issued for the next hop (or a name below it), and one
# DNSSEC-validated TLSA records vouch for (DANE-EE, DANE-TA), and refuses,
# writing nothing, a new self-signed key (what an attacker on the path
# would show), a TLSA match without the AD bit or on a host an insecure MX
# answer names (RFC 7672 2.2.1), a CA-valid certificate for
# another name, and a candidate only one of two servers shows; --trust tofu and --accept FP pin
# them; hold= pins a candidate every server has shown on every run for the
# period (the clock set with the TLSPOLICY_NOW test hook); --keep-old=D
# keeps the old pins until a later run past D; check says, in rotate's
# words, what it would do, and advises level secure where the certificates
# are CA-valid. Servers are testsmtpd, names come from a loopback DNS
# server, the CA is made here.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
command -v jq >/dev/null || fail "jq not found: install jq"
T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D"
pq() { postmap -c "$D" -q "$1" "hash:$D/tls_policy" 2>/dev/null || echo "<absent>"; }
snapshot() { cp "$D/tls_policy" "$TP_TMP/src.snap"; cp "$D/tls_policy.db" "$TP_TMP/db.snap"; }
unchanged() {
    cmp -s "$D/tls_policy" "$TP_TMP/src.snap" || fail "$1: source written: $(diff "$TP_TMP/src.snap" "$D/tls_policy")"
    cmp -s "$D/tls_policy.db" "$TP_TMP/db.snap" || fail "$1: db written"
}
fp() { tp_cert_fingerprint "$TP_TMP/$1.crt"; }

tp_make_ca "$TP_TMP/ca" "Test CA"
tp_make_cert "$TP_TMP/self1" mx.trust.test
tp_make_cert "$TP_TMP/renewed" mx.trust.test --days 400 --key "$TP_TMP/self1.key"
tp_make_cert "$TP_TMP/attacker" mx.trust.test
tp_make_cert "$TP_TMP/caleaf" mx.ca.test --ca "$TP_TMP/ca" --san DNS:mx.ca.test
tp_make_cert "$TP_TMP/caother" other.example --ca "$TP_TMP/ca" --san DNS:other.example
[ "$(tp_pkey_fingerprint "$TP_TMP/renewed.crt")" = "$(tp_pkey_fingerprint "$TP_TMP/self1.crt")" ] ||
    fail "test broken: the renewal has another key"

# One server per case, each starting with self1; live files are swapped.
for n in same ca other self two1 two2 hold keep dane insec danet camx; do cp "$TP_TMP/self1.pem" "$TP_TMP/$n.live"; done
tp_start_server same --cert "$TP_TMP/same.live"
PSAME=$TP_PORT
tp_start_server ca --cert "$TP_TMP/ca.live"
PCA=$TP_PORT
tp_start_server other --cert "$TP_TMP/other.live"
POTHER=$TP_PORT
tp_start_server self --cert "$TP_TMP/self.live"
PSELF=$TP_PORT
tp_start_server two1 --cert "$TP_TMP/two1.live" --listen 127.0.0.2:0
PTWO=$TP_PORT
tp_start_server two2 --cert "$TP_TMP/two2.live" --listen "127.0.0.3:$PTWO"
tp_start_server hold --cert "$TP_TMP/hold.live"
PHOLD=$TP_PORT
tp_start_server keep --cert "$TP_TMP/keep.live"
PKEEP=$TP_PORT
tp_start_server dane --cert "$TP_TMP/dane.live"
PDANE=$TP_PORT
tp_start_server insec --cert "$TP_TMP/insec.live"
PINSEC=$TP_PORT
tp_start_server danet --cert "$TP_TMP/danet.live"
PDANET=$TP_PORT
tp_start_server camx --cert "$TP_TMP/camx.live"
PCAMX=$TP_PORT
tp_make_cert "$TP_TMP/camxleaf" mx.hosting.example --ca "$TP_TMP/ca" --san DNS:mx.hosting.example
# DANE: records for the certificates the servers will switch to.
tp_make_cert "$TP_TMP/danenew" mx.trust.test
tp_make_cert "$TP_TMP/dtaleaf" mx.trust.test --ca "$TP_TMP/ca" --san DNS:mx.trust.test
cat "$TP_TMP/dtaleaf.pem" "$TP_TMP/ca.crt" >"$TP_TMP/dtachain.pem"
spki256() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
cert256() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
cat >"$TP_TMP/zone" <<EOF
mx.trust.test A 127.0.0.1
same.test MX 10 mx.trust.test
ca.test MX 10 mx.ca.test
mx.ca.test A 127.0.0.1
other.test MX 10 mx.trust.test
self.test MX 10 mx.trust.test
two.test MX 10 mx1.two.test
two.test MX 10 mx2.two.test
mx1.two.test A 127.0.0.2
mx2.two.test A 127.0.0.3
hold.test MX 10 mx.trust.test
keep.test MX 10 mx.trust.test
dane.test MX 10 mx.trust.test
insec.test MX 10 mx.trust.test
insec.test SECURE
danet.test MX 10 mx.trust.test
danet.test SECURE
camx.test MX 10 mx.hosting.example
mx.hosting.example A 127.0.0.1
_$PDANE._tcp.mx.trust.test TLSA 3 1 1 $(spki256 "$TP_TMP/danenew.crt")
_$PDANE._tcp.mx.trust.test SECURE
_$PINSEC._tcp.mx.trust.test TLSA 3 1 1 $(spki256 "$TP_TMP/danenew.crt")
_$PDANET._tcp.mx.trust.test TLSA 2 0 1 $(cert256 "$TP_TMP/ca.crt")
_$PDANET._tcp.mx.trust.test SECURE
EOF
tp_start_dns dns "$TP_TMP/zone"
export TLSPOLICY_DNS_SERVERS
TLSPOLICY_DNS_SERVERS=$(tp_dns_servers dns)

: >"$D/tls_policy"
for k in "same.test:$PSAME" "ca.test:$PCA" "other.test:$POTHER" "self.test:$PSELF" \
         "hold.test:$PHOLD" "keep.test:$PKEEP" "dane.test:$PDANE" "insec.test:$PINSEC" "danet.test:$PDANET" "camx.test:$PCAMX"; do
    tp_expect_status 0 "$T" -c "$D" set "$k" --fingerprint-from "mx.trust.test:${k##*:}"
done
tp_expect_status 0 "$T" -c "$D" set "two.test:$PTWO" --fingerprint-from "127.0.0.2:$PTWO"
tp_expect_status 0 "$T" -c "$D" rotate --yes
grep -qx "all pins current" "$TP_TMP/out" || fail "not all current at the start: $(cat "$TP_TMP/out" "$TP_TMP/err")"

tp_note "a renewal with the same key: pinned unattended"
tp_install_cert "$TP_TMP/renewed.pem" "$TP_TMP/same.live"
tp_expect_status 0 "$T" -c "$D" rotate --yes "same.test:$PSAME"
grep -q "trusted: same public key as the pinned certificate (a renewal)" "$TP_TMP/out" || fail "same key: $(cat "$TP_TMP/out")"
[ "$(pq "same.test:$PSAME")" = "fingerprint match=$(fp renewed)" ] || fail "same key not pinned: $(pq "same.test:$PSAME")"

tp_note "a next certificate the partner announced, pinned ahead with set --add: no rotation needed when it goes live"
tp_make_cert "$TP_TMP/announced" mx.trust.test
tp_expect_status 0 "$T" -c "$D" set "same.test:$PSAME" --add --fingerprint "$(fp announced)"
[ "$(pq "same.test:$PSAME")" = "fingerprint match=$(fp renewed)|$(fp announced)" ] || fail "set --add: $(pq "same.test:$PSAME")"
tp_install_cert "$TP_TMP/announced.pem" "$TP_TMP/same.live"
tp_expect_status 0 "$T" -c "$D" rotate --yes "same.test:$PSAME"
grep -qx "all pins current" "$TP_TMP/out" || fail "the announced certificate needed a rotation: $(cat "$TP_TMP/out" "$TP_TMP/err")"
tp_expect_status 0 "$T" -c "$D" check "same.test:$PSAME"

tp_note "a new self-signed key (an attacker's): refused, nothing written, what to do said"
tp_install_cert "$TP_TMP/attacker.pem" "$TP_TMP/self.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes "self.test:$PSELF"
grep -qF "self.test:$PSELF: not rotated: $(fp attacker) presented: no evidence to trust it unattended (a new public key; not CA-valid (self-signed certificate); the MX answer is not DNSSEC-validated: no TLSA lookup; seen at 1 of 1 server): confirm the fingerprint with the partner, then tlspolicy rotate self.test:$PSELF --accept $(fp attacker)" "$TP_TMP/err" ||
    fail "self-signed new key: $(cat "$TP_TMP/err")"
unchanged "a self-signed new key"
grep -q "^self.test:$PSELF .*: NOT ROTATED$" "$TP_TMP/out" && grep -q "REFUSED: no evidence" "$TP_TMP/out" ||
    fail "the plan does not show the refused candidate: $(cat "$TP_TMP/out")"
tp_note "... --json: the same plan and evidence, machine-readable"
tp_expect_status 1 "$T" -c "$D" rotate --yes --json "self.test:$PSELF"
j=$TP_TMP/out
[ "$(jq -r '.written' "$j")" = false ] && [ "$(jq -r '.exit' "$j")" = 1 ] || fail "rotate --json: $(cat "$j")"
[ "$(jq -r '.entries[0].action' "$j")" = refused ] || fail "rotate --json action: $(cat "$j")"
[ "$(jq -r '.entries[0].candidates[0].fingerprint' "$j")" = "$(fp attacker)" ] || fail "rotate --json candidate: $(cat "$j")"
[ "$(jq -r '.entries[0].candidates[0] | [.trusted, .evidence.same_key, .evidence.pkix, .evidence.consistent, .evidence.accepted] | join(" ")' "$j")" = "false false false true false" ] ||
    fail "rotate --json evidence: $(jq -c '.entries[0].candidates' "$j")"
jq -r '.entries[0].candidates[0].evidence.pkix_why_not' "$j" | grep -q "self-signed" || fail "rotate --json pkix_why_not: $(cat "$j")"
[ "$(jq -r '.entries[0].old_pins[0]' "$j")" = "$(fp self1)" ] && [ "$(jq -r '.entries[0].new_pins' "$j")" = null ] ||
    fail "rotate --json pins: $(cat "$j")"
unchanged "rotate --json of a refused candidate"
tp_note "... check says CRITICAL in the same words"
tp_expect_status 2 "$T" -c "$D" check "self.test:$PSELF"
grep -qF "rotate refuses $(fp attacker): no evidence to trust it unattended" "$TP_TMP/out" || fail "check: $(cat "$TP_TMP/out")"
tp_expect_status 2 "$T" -c "$D" check --json "self.test:$PSELF"
[ "$(jq -r '.entries[0].candidates[0] | [.fingerprint, .trusted] | join(" ")' "$TP_TMP/out")" = "$(fp attacker) false" ] ||
    fail "check --json candidates: $(jq -c '.entries[0].candidates' "$TP_TMP/out")"
tp_note "... --accept with the fingerprint confirmed out of band pins it (any digest, or the key)"
tp_expect_status 1 "$T" -c "$D" rotate --yes --accept "$(tp_cert_fingerprint "$TP_TMP/self1.crt" md5)" "self.test:$PSELF"
unchanged "--accept of another fingerprint"
# Whatever the configured digest (sha256 here), as the partner may read it out.
for acc in "$(fp attacker)" "$(tp_cert_fingerprint "$TP_TMP/attacker.crt" sha1)" \
           "$(tp_cert_fingerprint "$TP_TMP/attacker.crt" md5 | tr -d : | tr A-F a-f)" \
           "$(tp_cert_fingerprint "$TP_TMP/attacker.crt" sha512)" \
           "$(tp_pkey_fingerprint "$TP_TMP/attacker.crt" sha1)" "$(tp_pkey_fingerprint "$TP_TMP/attacker.crt" sha384)"; do
    tp_expect_status 1 "$T" -c "$D" rotate --dry-run --accept "$acc" "self.test:$PSELF"
    grep -q "trusted: accepted by the administrator (--accept)" "$TP_TMP/out" || fail "--accept $acc: $(cat "$TP_TMP/out" "$TP_TMP/err")"
done
unchanged "rotate --dry-run --accept in other digests"
tp_expect_status 0 "$T" -c "$D" rotate --yes --accept "$(tp_pkey_fingerprint "$TP_TMP/attacker.crt" | tr -d : | tr A-F a-f)" "self.test:$PSELF"
grep -q "trusted: accepted by the administrator" "$TP_TMP/out" || fail "--accept: $(cat "$TP_TMP/out")"
[ "$(pq "self.test:$PSELF")" = "fingerprint match=$(fp attacker)" ] || fail "--accept not pinned: $(pq "self.test:$PSELF")"
tp_expect_status 64 "$T" -c "$D" rotate --accept zz

tp_note "a new key from a trusted CA for a name below the next hop: pinned with --ca-file; not without"
tp_install_cert "$TP_TMP/caleaf.pem" "$TP_TMP/ca.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes "ca.test:$PCA"
grep -q "not CA-valid" "$TP_TMP/err" || fail "CA not trusted without --ca-file: $(cat "$TP_TMP/err")"
unchanged "a CA the store does not know"
tp_expect_status 1 "$T" -c "$D" rotate --dry-run --json --ca-file "$TP_TMP/ca.crt" "ca.test:$PCA"
j=$TP_TMP/out
[ "$(jq -r '.entries[0] | [.action, .written, (.new_pins|join("|"))] | join(" ")' "$j")" = "rotate false $(fp caleaf)" ] ||
    fail "rotate --dry-run --json: $(cat "$j")"
[ "$(jq -r '.entries[0].candidates[0] | [.trusted, .evidence.pkix, .evidence.pkix_name] | join(" ")' "$j")" = "true true ca.test" ] ||
    fail "rotate --dry-run --json evidence: $(jq -c '.entries[0].candidates' "$j")"
unchanged "rotate --dry-run --json"
tp_expect_status 0 "$T" -c "$D" rotate --yes --ca-file "$TP_TMP/ca.crt" "ca.test:$PCA"
grep -q "trusted: valid for ca.test from a trusted CA" "$TP_TMP/out" || fail "pkix: $(cat "$TP_TMP/out")"
[ "$(pq "ca.test:$PCA")" = "fingerprint match=$(fp caleaf)" ] || fail "pkix not pinned: $(pq "ca.test:$PCA")"
tp_note "... main.cf's smtp_tls_CAfile counts, and check advises level secure"
printf 'smtp_tls_CAfile = %s\n' "$TP_TMP/ca.crt" >>"$D/main.cf"
tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA"
grep -q "CA-valid for ca.test: level secure would need no pins" "$TP_TMP/out" || fail "no advice: $(cat "$TP_TMP/out")"

tp_note "a CA-valid certificate for the MX host's name: pinned only when the MX answer was DNSSEC-validated"
tp_install_cert "$TP_TMP/camxleaf.pem" "$TP_TMP/camx.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes --ca-file "$TP_TMP/ca.crt" "camx.test:$PCAMX"
grep -qF "the MX name counts only when DNSSEC says so" "$TP_TMP/err" || fail "MX name without DNSSEC: $(cat "$TP_TMP/err")"
unchanged "a certificate for the MX name, MX not validated"
echo "camx.test SECURE" >>"$TP_TMP/zone"
tp_reload_dns dns
tp_expect_status 0 "$T" -c "$D" rotate --yes --ca-file "$TP_TMP/ca.crt" "camx.test:$PCAMX"
grep -q "trusted: valid for mx.hosting.example from a trusted CA" "$TP_TMP/out" || fail "MX name with DNSSEC: $(cat "$TP_TMP/out")"
[ "$(pq "camx.test:$PCAMX")" = "fingerprint match=$(fp camxleaf)" ] || fail "not pinned: $(pq "camx.test:$PCAMX")"
# Level secure matches the next hop and names below it, never the MX name.
tp_expect_status 0 "$T" -c "$D" check --ca-file "$TP_TMP/ca.crt" "camx.test:$PCAMX"
grep -q "level secure" "$TP_TMP/out" && fail "secure advised for a certificate valid only for the MX name: $(cat "$TP_TMP/out")"

tp_note "a CA-valid certificate for another name: refused"
tp_install_cert "$TP_TMP/caother.pem" "$TP_TMP/other.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes "other.test:$POTHER"
grep -qF "CA-valid, but for other.example, not other.test" "$TP_TMP/err" || fail "another name: $(cat "$TP_TMP/err")"
unchanged "a CA-valid certificate for another name"
sed -i '/^smtp_tls_CAfile/d' "$D/main.cf"

tp_note "without CA settings the system's CAs are rotate's evidence, but not Postfix's: no secure advice"
# OpenSSL's defaults honour SSL_CERT_FILE and SSL_CERT_DIR: our CA as
# the system store, once as the file, once as a hashed directory.
# Postfix's SMTP client trusts no CA without smtp_tls_CAfile or
# smtp_tls_CApath (tests/e2e/agree.sh S18: level secure defers).
tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA"
grep -q "CA-valid for ca.test" "$TP_TMP/out" && fail "CA-valid without any store knowing the CA: $(cat "$TP_TMP/out")"
SSL_CERT_FILE=$TP_TMP/ca.crt tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA"
grep -qF "CA-valid for ca.test by the system's CAs, which Postfix does not use: level secure would need smtp_tls_CAfile or smtp_tls_CApath, then no pins" "$TP_TMP/out" ||
    fail "default CA file: $(cat "$TP_TMP/out")"
mkdir "$TP_TMP/certdir" && cp "$TP_TMP/ca.crt" "$TP_TMP/certdir/" && openssl rehash "$TP_TMP/certdir"
SSL_CERT_FILE=/nonexistent SSL_CERT_DIR=$TP_TMP/certdir tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA"
grep -qF "CA-valid for ca.test by the system's CAs, which Postfix does not use" "$TP_TMP/out" ||
    fail "default CA directory: $(cat "$TP_TMP/out")"
tp_note "... --ca-file's CAs: advice that names them as not Postfix's"
tp_expect_status 0 "$T" -c "$D" check --ca-file "$TP_TMP/ca.crt" "ca.test:$PCA"
grep -qF "CA-valid for ca.test by the CAs given: level secure would need no pins if smtp_tls_CAfile or smtp_tls_CApath holds them" "$TP_TMP/out" ||
    fail "--ca-file advice: $(cat "$TP_TMP/out")"
tp_note "... main.cf's CAs with tls_append_default_CA = yes: the system's count too, as Postfix appends them"
tp_make_ca "$TP_TMP/otherca" "Other CA"
printf 'smtp_tls_CAfile = %s\n' "$TP_TMP/otherca.crt" >>"$D/main.cf"
SSL_CERT_FILE=$TP_TMP/ca.crt tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA"
grep -q "CA-valid" "$TP_TMP/out" && fail "the system's CAs counted without tls_append_default_CA: $(cat "$TP_TMP/out")"
printf 'tls_append_default_CA = yes\n' >>"$D/main.cf"
SSL_CERT_FILE=$TP_TMP/ca.crt tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA"
grep -qF "CA-valid for ca.test: level secure would need no pins" "$TP_TMP/out" ||
    fail "tls_append_default_CA = yes: $(cat "$TP_TMP/out")"
sed -i '/^smtp_tls_CAfile/d; /^tls_append_default_CA/d' "$D/main.cf"
tp_note "... a relative smtp_tls_CAfile is read from queue_directory, as Postfix's SMTP client reads it"
mkdir "$TP_TMP/queue" && cp "$TP_TMP/ca.crt" "$TP_TMP/queue/relative-ca.pem"
printf 'queue_directory = %s\nsmtp_tls_CAfile = relative-ca.pem\n' "$TP_TMP/queue" >>"$D/main.cf"
(cd / && tp_expect_status 0 "$T" -c "$D" check "ca.test:$PCA")
grep -qF "CA-valid for ca.test: level secure would need no pins" "$TP_TMP/out" ||
    fail "relative smtp_tls_CAfile: $(cat "$TP_TMP/out")"
sed -i '/^queue_directory/d; /^smtp_tls_CAfile/d' "$D/main.cf"

tp_note "validated TLSA records of a host an insecure MX answer names: refused (a forged MX could name any signed zone); no dane-only advice"
tp_install_cert "$TP_TMP/danenew.pem" "$TP_TMP/dane.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes "dane.test:$PDANE"
grep -qF "no evidence to trust it unattended (a new public key; not CA-valid (self-signed certificate); the MX answer is not DNSSEC-validated: no TLSA lookup;" "$TP_TMP/err" ||
    fail "DANE behind an insecure MX: $(cat "$TP_TMP/out" "$TP_TMP/err")"
unchanged "validated TLSA records behind an insecure MX answer"
tp_expect_status 2 "$T" -c "$D" check "dane.test:$PDANE"
grep -q "dane-only" "$TP_TMP/out" && fail "dane-only advised behind an insecure MX: $(cat "$TP_TMP/out")"

tp_note "a new key DNSSEC-validated TLSA records vouch for (DANE-EE 3 1 1), MX validated: pinned unattended; check advises dane-only"
echo "dane.test SECURE" >>"$TP_TMP/zone"
tp_reload_dns dns
tp_expect_status 2 "$T" -c "$D" check "dane.test:$PDANE"
grep -qF "rotate would pin $(fp danenew): matches the server's DNSSEC-validated TLSA records" "$TP_TMP/out" || fail "check with DANE: $(cat "$TP_TMP/out")"
grep -q "level dane-only would need no pins" "$TP_TMP/out" || fail "no dane-only advice: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rotate --yes --json "dane.test:$PDANE"
[ "$(jq -r '.entries[0].candidates[0] | [.trusted, .evidence.dane] | join(" ")' "$TP_TMP/out")" = "true true" ] ||
    fail "DANE evidence: $(jq -c '.entries[0].candidates' "$TP_TMP/out")"
[ "$(pq "dane.test:$PDANE")" = "fingerprint match=$(fp danenew)" ] || fail "DANE-vouched key not pinned: $(pq "dane.test:$PDANE")"

tp_note "the same TLSA match without the AD bit: refused, nothing written"
tp_install_cert "$TP_TMP/danenew.pem" "$TP_TMP/insec.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes "insec.test:$PINSEC"
grep -q "TLSA records not DNSSEC-validated" "$TP_TMP/err" || fail "TLSA without AD: $(cat "$TP_TMP/err")"
unchanged "a TLSA match without the AD bit"

tp_note "a new key from a CA a validated DANE-TA(2) record names, for the MX host: pinned unattended"
tp_install_cert "$TP_TMP/dtachain.pem" "$TP_TMP/danet.live"
tp_expect_status 0 "$T" -c "$D" rotate --yes "danet.test:$PDANET"
grep -q "trusted: matches the server's DNSSEC-validated TLSA records" "$TP_TMP/out" || fail "DANE-TA: $(cat "$TP_TMP/out")"
[ "$(pq "danet.test:$PDANET")" = "fingerprint match=$(fp dtaleaf)" ] || fail "DANE-TA key not pinned: $(pq "danet.test:$PDANET")"

tp_note "a candidate one of two servers shows: refused; --trust tofu pins it beside the old"
tp_install_cert "$TP_TMP/attacker.pem" "$TP_TMP/two1.live"
snapshot
tp_expect_status 1 "$T" -c "$D" rotate --yes "two.test:$PTWO"
grep -q "seen at 1 of 2 servers" "$TP_TMP/err" || fail "one of two: $(cat "$TP_TMP/err")"
unchanged "a candidate one of two servers shows"
tp_expect_status 1 "$T" -c "$D" rotate --yes --trust hold=1s "two.test:$PTWO"
grep -q "not held: not every server presents it" "$TP_TMP/err" || fail "hold of an inconsistent candidate: $(cat "$TP_TMP/err")"
unchanged "hold= of an inconsistent candidate"
tp_expect_status 0 "$T" -c "$D" rotate --yes --trust tofu "two.test:$PTWO"
pins_sorted() { pq "$1" | sed 's/^fingerprint match=//' | tr '|' '\n' | sort | tr '\n' ' '; }
[ "$(pins_sorted "two.test:$PTWO")" = "$(printf '%s\n' "$(fp self1)" "$(fp attacker)" | sort | tr '\n' ' ')" ] ||
    fail "tofu: $(pq "two.test:$PTWO")"

tp_note "hold=1d: held on the first run (recorded), pinned once a day has passed"
tp_install_cert "$TP_TMP/attacker.pem" "$TP_TMP/hold.live"
now=$(date -u +%s)
TLSPOLICY_NOW=$now tp_expect_status 1 "$T" -c "$D" rotate --yes --trust same-key,hold=1d "hold.test:$PHOLD"
grep -q "held since $(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ), trusted once held 86400 s" "$TP_TMP/err" || fail "hold: $(cat "$TP_TMP/err")"
grep -q "^# tlspolicy: .* next=$(fp attacker) since=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)$" "$D/tls_policy" ||
    fail "hold not recorded: $(grep -B1 "^hold.test" "$D/tls_policy")"
[ "$(pq "hold.test:$PHOLD")" = "fingerprint match=$(fp self1)" ] || fail "held candidate pinned early"
TLSPOLICY_NOW=$((now + 3600)) tp_expect_status 1 "$T" -c "$D" rotate --yes --trust same-key,hold=1d "hold.test:$PHOLD"
grep -q "since=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)" "$D/tls_policy" || fail "since= moved on a second run"
TLSPOLICY_NOW=$((now + 86400 + 60)) tp_expect_status 0 "$T" -c "$D" rotate --yes --trust same-key,hold=1d "hold.test:$PHOLD"
grep -q "trusted: presented by every server on every run since" "$TP_TMP/out" || fail "held: $(cat "$TP_TMP/out")"
[ "$(pq "hold.test:$PHOLD")" = "fingerprint match=$(fp attacker)" ] || fail "held candidate not pinned: $(pq "hold.test:$PHOLD")"
grep -B1 "^hold.test" "$D/tls_policy" | grep -q 'next=' && fail "next= left after the pin: $(grep -B1 "^hold.test" "$D/tls_policy")"
tp_note "... a candidate that changes starts its hold again"
tp_install_cert "$TP_TMP/renewed.pem" "$TP_TMP/hold.live"
TLSPOLICY_NOW=$now tp_expect_status 1 "$T" -c "$D" rotate --yes --trust hold=1d "hold.test:$PHOLD"
tp_install_cert "$TP_TMP/self1.pem" "$TP_TMP/hold.live"
TLSPOLICY_NOW=$((now + 86400 * 2)) tp_expect_status 1 "$T" -c "$D" rotate --yes --trust hold=1d "hold.test:$PHOLD"
grep -q "since=$(date -u -d "@$((now + 86400 * 2))" +%Y-%m-%dT%H:%M:%SZ)" "$D/tls_policy" || fail "a new candidate kept the old since=: $(grep -B1 "^hold.test" "$D/tls_policy")"
tp_install_cert "$TP_TMP/attacker.pem" "$TP_TMP/hold.live"
tp_expect_status 0 "$T" -c "$D" rotate --yes "hold.test:$PHOLD"
grep -B1 "^hold.test" "$D/tls_policy" | grep -q 'next=' && fail "next= left once the candidate is gone: $(grep -B1 "^hold.test" "$D/tls_policy")"

tp_note "--keep-old=7d: the old pin stays beside the new one until a run after 7 days"
tp_install_cert "$TP_TMP/renewed.pem" "$TP_TMP/keep.live"
TLSPOLICY_NOW=$now tp_expect_status 0 "$T" -c "$D" rotate --yes --keep-old=7d "keep.test:$PKEEP"
[ "$(pq "keep.test:$PKEEP")" = "fingerprint match=$(fp self1)|$(fp renewed)" ] || fail "--keep-old=7d: $(pq "keep.test:$PKEEP")"
grep -q "^# tlspolicy: .*old=$(fp self1) old-until=$(date -u -d "@$((now + 7 * 86400))" +%Y-%m-%dT%H:%M:%SZ)" "$D/tls_policy" ||
    fail "old-until not recorded: $(grep -B1 "^keep.test" "$D/tls_policy")"
TLSPOLICY_NOW=$((now + 86400)) tp_expect_status 0 "$T" -c "$D" rotate --yes "keep.test:$PKEEP"
grep -qx "all pins current" "$TP_TMP/out" || fail "old pin removed early: $(cat "$TP_TMP/out")"
TLSPOLICY_NOW=$((now + 8 * 86400)) tp_expect_status 0 "$T" -c "$D" rotate --yes "keep.test:$PKEEP"
grep -q "keep.test:$PKEEP: old pins removed, 1 pin" "$TP_TMP/out" || fail "old pin not removed: $(cat "$TP_TMP/out")"
[ "$(pq "keep.test:$PKEEP")" = "fingerprint match=$(fp renewed)" ] || fail "after old-until: $(pq "keep.test:$PKEEP")"
grep -B1 "^keep.test" "$D/tls_policy" | grep -q 'old' && fail "old= left: $(grep -B1 "^keep.test" "$D/tls_policy")"

tp_note "... to a new key with --keep-old=1d: once the old pin expires, its key leaves keys= and no longer passes as a renewal"
later=$((now + 10 * 86400))
tp_install_cert "$TP_TMP/attacker.pem" "$TP_TMP/keep.live"
TLSPOLICY_NOW=$later tp_expect_status 0 "$T" -c "$D" rotate --yes --keep-old=1d --accept "$(fp attacker)" "keep.test:$PKEEP"
[ "$(pq "keep.test:$PKEEP")" = "fingerprint match=$(fp renewed)|$(fp attacker)" ] || fail "--keep-old=1d: $(pq "keep.test:$PKEEP")"
TLSPOLICY_NOW=$((later + 2 * 86400)) tp_expect_status 0 "$T" -c "$D" rotate --yes "keep.test:$PKEEP"
[ "$(pq "keep.test:$PKEEP")" = "fingerprint match=$(fp attacker)" ] || fail "old pin not removed: $(pq "keep.test:$PKEEP")"
grep -B1 "^keep.test" "$D/tls_policy" | grep -q " keys=$(tp_pkey_fingerprint "$TP_TMP/attacker.crt")\( \|\$\)" ||
    fail "keys= after the old pin expired: $(grep -B1 "^keep.test" "$D/tls_policy")"
tp_install_cert "$TP_TMP/self1.pem" "$TP_TMP/keep.live"
snapshot
TLSPOLICY_NOW=$((later + 3 * 86400)) tp_expect_status 1 "$T" -c "$D" rotate --yes "keep.test:$PKEEP"
grep -qF "no evidence to trust it unattended (a new public key;" "$TP_TMP/err" || fail "the retired key passed: $(cat "$TP_TMP/out" "$TP_TMP/err")"
unchanged "the key of an expired pin"

tp_note "usage"
tp_expect_status 64 "$T" -c "$D" rotate --trust sometimes
tp_expect_status 64 "$T" -c "$D" rotate --trust hold=soon
tp_expect_status 64 "$T" -c "$D" rotate --keep-old=forever
echo ok
