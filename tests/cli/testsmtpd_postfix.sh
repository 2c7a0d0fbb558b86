# A real Postfix (3.7 on Debian 12) delivers to testsmtpd over STARTTLS with
# a fingerprint pin, and defers once the server's certificate is replaced:
# the ground the end-to-end tests stand on. Needs root and postfix.
. "$TP_SOURCE_DIR/tests/lib.sh"
tp_need postmap

tp_make_cert "$TP_TMP/a" partner.test
tp_make_cert "$TP_TMP/b" partner.test --ec
cp "$TP_TMP/a.pem" "$TP_TMP/live.pem"
tp_start_server partner --cert "$TP_TMP/live.pem" --hostname mx.partner.test
port=$TP_PORT
pf="$TP_TMP/postfix"
mkdir -p "$pf"
tp_postfix_setup "$pf" \
    'smtp_tls_fingerprint_digest = md5' \
    'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
    "transport_maps = inline:{ partner.test=smtp:[127.0.0.1]:$port }"
echo "[127.0.0.1]:$port fingerprint match=$(tp_cert_fingerprint "$TP_TMP/a.crt" md5)" \
    >"$pf/tls_policy"
postmap "$pf/tls_policy"
tp_postfix_start "$pf"

tp_note "pinned certificate: delivered over verified TLS"
tp_postfix_send "$pf" sender@client.test rcpt@partner.test first
tp_postfix_wait_log "$pf" 'status=sent'
grep -q 'Verified TLS connection established to 127.0.0.1' "$pf/maillog" \
    || fail "no verified TLS connection: $(grep -i tls "$pf/maillog" | tail -3)"
tp_wait_mail partner 1
msg=$(cat "$(tp_server_maildir partner)"/*.eml)
for want in 'X-Testsmtpd-Mail-From: <sender@client.test>' \
        'X-Testsmtpd-Rcpt-To: <rcpt@partner.test>' 'Subject: first'; do
    grep -qF "$want" <<<"$msg" || fail "delivered message lacks '$want': $msg"
done
grep -q 'helo=client.tlspolicy.test messages=1 result=quit' "$(tp_server_log partner)" \
    || fail "server log: $(cat "$(tp_server_log partner)")"

tp_note "certificate replaced: mail deferred, not verified"
tp_install_cert "$TP_TMP/b.pem" "$TP_TMP/live.pem"
tp_postfix_send "$pf" sender@client.test rcpt@partner.test second
tp_postfix_wait_log "$pf" 'status=deferred \(Server certificate not verified\)'
[ "$(tp_mail_count partner)" -eq 1 ] || fail "unverified server got mail: $(tp_mail_count partner) messages"
echo ok
