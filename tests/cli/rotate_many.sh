# rotate of 18 entries, each behind its own server with its own key: more
# leaves than the trust evaluation keeps parsed (16), so its memo of leaves
# wraps around. Every other server renews its certificate with the same
# key, the rest with a new key. The default trust policy (same-key, pkix,
# dane) must pin exactly the same-key renewals, each with its own server's
# new fingerprint and its own key in keys=, and refuse the others. Once
# with sha256 pins (the key ids are then the probe's public-key
# fingerprints) and once with md5 (they are worked out on their own).
# postmap -q is the oracle for what Postfix reads.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"

T=$TLSPOLICY
N=18
declare -a P
for i in $(seq 1 $N); do
    tp_make_cert "$TP_TMP/old$i" "mx$i.many.test" --ec
    if [ $((i % 2)) = 0 ]; then
        tp_make_cert "$TP_TMP/new$i" "mx$i.many.test" --ec --key "$TP_TMP/old$i.key" --days 90
    else
        tp_make_cert "$TP_TMP/new$i" "mx$i.many.test" --ec
    fi
    cp "$TP_TMP/old$i.pem" "$TP_TMP/live$i.pem"
    tp_start_server "s$i" --cert "$TP_TMP/live$i.pem"
    P[i]=$TP_PORT
done

for digest in sha256 md5; do
    D=$TP_TMP/conf-$digest
    tp_sandbox_config "$D" "$digest"
    tp_note "$digest: $N entries pinned to their servers' certificates"
    : >"$D/tls_policy"
    for i in $(seq 1 $N); do
        cp "$TP_TMP/old$i.pem" "$TP_TMP/live$i.pem"
        tp_expect_status 0 "$T" -c "$D" set "[127.0.0.1]:${P[i]}" --fingerprint-from "127.0.0.1:${P[i]}"
    done
    for i in $(seq 1 $N); do
        tp_install_cert "$TP_TMP/new$i.pem" "$TP_TMP/live$i.pem"
    done

    tp_note "$digest: the even servers renewed with the same key, the odd ones with a new key"
    # Exit 1: the new keys are refused; the same-key renewals are written.
    tp_expect_status 1 "$T" -c "$D" rotate --yes
    for i in $(seq 1 $N); do
        key="[127.0.0.1]:${P[i]}"
        got=$(postmap -c "$D" -q "$key" "hash:$D/tls_policy") || fail "postmap -q $key failed"
        if [ $((i % 2)) = 0 ]; then
            want="fingerprint match=$(tp_cert_fingerprint "$TP_TMP/new$i.crt" "$digest")"
            [ "$got" = "$want" ] || fail "$digest: $key (same key) has '$got', want '$want'"
            id=$(tp_pkey_fingerprint "$TP_TMP/new$i.crt" sha256)
            grep -B1 -F "$key	" "$D/tls_policy" | grep -qF "keys=$id" ||
                fail "$digest: $key: keys= is not its own key $id: $(grep -B1 -F "$key	" "$D/tls_policy")"
        else
            want="fingerprint match=$(tp_cert_fingerprint "$TP_TMP/old$i.crt" "$digest")"
            [ "$got" = "$want" ] || fail "$digest: $key (new key) has '$got', want the old pin '$want'"
            fp=$(tp_cert_fingerprint "$TP_TMP/new$i.crt" "$digest")
            grep -qF "$key: not rotated: $fp presented: no evidence to trust it unattended (a new public key;" "$TP_TMP/err" ||
                fail "$digest: $key (new key) is not refused with its own candidate $fp: $(cat "$TP_TMP/err")"
        fi
    done
    # Each refused entry is named once, and no same-key renewal among them.
    for i in $(seq 2 2 $N); do
        grep -F "[127.0.0.1]:${P[i]}:" "$TP_TMP/err" &&
            fail "$digest: a same-key renewal reported as not rotated: $(cat "$TP_TMP/err")"
    done
    true
done
