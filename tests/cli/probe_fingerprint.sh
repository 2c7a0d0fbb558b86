#!/usr/bin/env bash
# probe's fingerprints are Postfix's: for RSA and EC keys and md5, sha1 and
# sha256, `tlspolicy -d DIGEST probe --json` gives the certificate
# fingerprint openssl x509 -fingerprint gives, the public-key fingerprint
# of Postfix's tls_fprint.c (the DER SubjectPublicKeyInfo), and what
# posttls-finger, Postfix's own prober, prints as fingerprint= and
# pkey_fingerprint=. posttls-finger is an oracle here: missing (CI installs
# postfix) or failing, the test fails.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need openssl jq
command -v posttls-finger >/dev/null 2>&1 ||
    fail "posttls-finger not found: install postfix (the oracle)"

T=$TP_TMP
tp_sandbox_config "$T/conf"
export MAIL_CONFIG=$T/conf

for key in rsa ec; do
    opt=()
    [ "$key" = ec ] && opt=(--ec)
    tp_make_cert "$T/$key" "$key.mx.test" "${opt[@]}"
    tp_start_server "$key" --cert "$T/$key.pem"
    port=$TP_PORT
    for d in md5 sha1 sha256; do
        "$TLSPOLICY" -d "$d" probe --json "127.0.0.1:$port" >"$T/out.json" 2>"$T/err" \
            || fail "$key/$d: probe failed: $(cat "$T/err")"
        got_cert=$(jq -r '.results[0].chain[0].fingerprint' "$T/out.json")
        got_pkey=$(jq -r '.results[0].chain[0].pkey_fingerprint' "$T/out.json")
        [ "$(jq -r .digest "$T/out.json")" = "$d" ] || fail "$key/$d: JSON digest is $(jq .digest "$T/out.json")"
        want=$(tp_cert_fingerprint "$T/$key.crt" "$d")
        [ "$got_cert" = "$want" ] || fail "$key/$d: cert fingerprint: got $got_cert, want (openssl) $want"
        want=$(tp_pkey_fingerprint "$T/$key.crt" "$d")
        [ "$got_pkey" = "$want" ] || fail "$key/$d: pkey fingerprint: got $got_pkey, want (openssl) $want"
        [ "$got_cert" != "$got_pkey" ] || fail "$key/$d: cert and pkey fingerprints are equal"
        # The text output shows the same values.
        "$TLSPOLICY" -d "$d" probe "127.0.0.1:$port" >"$T/out.txt" 2>/dev/null
        grep -qF "fingerprint:      $d $got_cert" "$T/out.txt" || fail "$key/$d: text lacks $got_cert: $(cat "$T/out.txt")"
        grep -qF "pkey_fingerprint: $d $got_pkey" "$T/out.txt" || fail "$key/$d: text lacks $got_pkey"
        # posttls-finger exits 0 whatever happens: its output is the verdict.
        posttls-finger -c -l fingerprint -d "$d" "[127.0.0.1]:$port" >"$T/finger" 2>&1 ||
            fail "$key/$d: posttls-finger failed: $(cat "$T/finger")"
        grep -q "TLS connection established" "$T/finger" ||
            fail "$key/$d: posttls-finger made no TLS connection: $(cat "$T/finger")"
        want=$(sed -n 's/.*[ ,]fingerprint=\([0-9A-F:]*\).*/\1/p' "$T/finger" | head -n 1)
        [ -n "$want" ] || fail "$key/$d: no fingerprint= from posttls-finger: $(cat "$T/finger")"
        [ "$got_cert" = "$want" ] || fail "$key/$d: cert fingerprint: got $got_cert, want (posttls-finger) $want"
        want=$(sed -n 's/.*pkey_fingerprint=\([0-9A-F:]*\).*/\1/p' "$T/finger" | head -n 1)
        [ -n "$want" ] || fail "$key/$d: no pkey_fingerprint= from posttls-finger: $(cat "$T/finger")"
        [ "$got_pkey" = "$want" ] || fail "$key/$d: pkey fingerprint: got $got_pkey, want (posttls-finger) $want"
    done
done
# The pins Postfix would compare are the leaf's only; a chain must not
# change them.
"$TLSPOLICY" -d sha256 probe --json "127.0.0.1:$(tp_server_port rsa)" >"$T/a.json"
tp_start_server chain --cert "$T/rsa.pem" --chain "$T/ec.crt"
"$TLSPOLICY" -d sha256 probe --json "127.0.0.1:$TP_PORT" >"$T/b.json"
[ "$(jq -r '.results[0].chain[0].fingerprint' "$T/a.json")" = "$(jq -r '.results[0].chain[0].fingerprint' "$T/b.json")" ] \
    || fail "the leaf fingerprint changed with a chain appended"
[ "$(jq -r '.results[0].chain[1].fingerprint' "$T/b.json")" = "$(tp_cert_fingerprint "$T/ec.crt" sha256)" ] \
    || fail "chain[1] fingerprint is not the EC certificate's"
# An unknown digest is an error, not a crash or a silent default.
set +e
"$TLSPOLICY" -d nosuchdigest probe "127.0.0.1:$TP_PORT" >/dev/null 2>"$T/err"
rc=$?
set -e
[ "$rc" != 0 ] || fail "-d nosuchdigest: got exit 0"
grep -q nosuchdigest "$T/err" || fail "-d nosuchdigest: error does not name it: $(cat "$T/err")"
echo "probe_fingerprint.sh: ok"
