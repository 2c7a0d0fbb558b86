# doctor reports, one line each and with exit 1, what an administrator
# would otherwise learn from Postfix's logs or a failed command:
#   - a db older than its source by mtime, in Postfix's words ("database
#     X is older than source file Y"), although its records are in step;
#   - temporary files and directories a killed run left, with their size;
#   - a db Postfix cannot read (garbage, or a btree: file at a hash: name),
#     saying "run 'tlspolicy rebuild'", which repairs it;
#   - for a user other than root, "TABLE is not writable by uid N"; and
#     set as that user says the same instead of only "open lock file ...:
#     Permission denied".
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D"
tp_sandbox_config "$D"
S=$D/tls_policy
printf 'a.example may\nb.example encrypt\n' >"$S"
"$T" -c "$D" rebuild || fail "rebuild failed"

# doctor_says WANT...: doctor exits 1 and prints each line WANT (grep -F -x).
doctor_says() {
    local w
    tp_expect_status 1 "$T" -c "$D" doctor
    for w in "$@"; do
        grep -Fqx -- "$w" "$TP_TMP/out" || fail "doctor does not say '$w': $(cat "$TP_TMP/out")"
    done
}
tp_expect_status 0 "$T" -c "$D" doctor

tp_note "a db older than its source by mtime: Postfix's warning"
touch -d '-1 hour' "$S.db"
doctor_says "warning: database $S.db is older than source file $S: Postfix logs this at every open; run 'tlspolicy rebuild'" \
    "ok: $S.db holds what $S says"
"$T" -c "$D" rebuild || fail "rebuild failed"
tp_expect_status 0 "$T" -c "$D" doctor

tp_note "what a killed run left, with its size"
head -c 3145728 /dev/zero >"$S.tmp.Ab12Cd"
mkdir "$S.db.tmp.Zz9Yy8"
head -c 1536000 /dev/zero >"$S.db.tmp.Zz9Yy8/tls_policy.db"
doctor_says "warning: $S.tmp.Ab12Cd: 3.0 MB left by a tlspolicy run that was killed (or is writing now); the next writing command removes it" \
    "warning: $S.db.tmp.Zz9Yy8: 1.5 MB left by a tlspolicy run that was killed (or is writing now); the next writing command removes it"
"$T" -c "$D" rebuild || fail "rebuild failed"
tp_expect_status 0 "$T" -c "$D" doctor

tp_note "a db Postfix cannot read: run 'tlspolicy rebuild'"
cp "$S.db" "$TP_TMP/good.db"
head -c 8192 /dev/urandom >"$S.db"
doctor_says "error: $S.db is not a hash: database Postfix can read (open database $S.db: Invalid argument): run 'tlspolicy rebuild'"
mkdir "$TP_TMP/bt" && cp "$S" "$TP_TMP/bt/tls_policy"
postmap -c "$D" "btree:$TP_TMP/bt/tls_policy" || fail "postmap btree: failed"
cp "$TP_TMP/bt/tls_policy.db" "$S.db"
doctor_says "error: $S.db is not a hash: database Postfix can read (open database $S.db: Invalid argument): run 'tlspolicy rebuild'"
"$T" -c "$D" rebuild || fail "rebuild over a btree db failed"
[ "$(postmap -c "$D" -q b.example "hash:$S")" = encrypt ] || fail "rebuild did not repair the db"
tp_expect_status 0 "$T" -c "$D" doctor

tp_note "a user who cannot write the table is told so, by doctor and by set"
TN=$(tp_tlspolicy_for_others)
chmod 755 "$D"
tp_expect_status 1 runuser -u nobody -- "$TN" -c "$D" doctor
grep -Fqx "warning: $S is not writable by uid $(id -u nobody): set, remove, rebuild and rotate need root or the table's owner" "$TP_TMP/out" ||
    fail "doctor as nobody: $(cat "$TP_TMP/out")"
tp_expect_status 1 runuser -u nobody -- "$TN" -c "$D" set c.example --level may
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "set as nobody: want one line, got: $(cat "$TP_TMP/err")"
grep -Fq "tlspolicy: $S is not writable by uid $(id -u nobody): run this as root or as the table's owner (open lock file $S.lock: Permission denied)" "$TP_TMP/err" ||
    fail "set as nobody: $(cat "$TP_TMP/err")"

tp_note "what Postfix's SMTP client cannot start with: client certificates, a source address"
cp "$D/main.cf" "$TP_TMP/main.cf.saved"
tp_make_cert "$TP_TMP/client" client.test --ec
cat "$TP_TMP/client.crt" "$TP_TMP/client.key" >"$TP_TMP/client.certfirst"
printf 'smtp_tls_chain_files = %s\n' "$TP_TMP/client.certfirst" >>"$D/main.cf"
doctor_says "error: Postfix's SMTP client cannot set up TLS (error loading chain from $TP_TMP/client.certfirst: key not first: Postfix disables TLS support): every delivery that needs TLS is deferred (\"TLS is required, but our TLS engine is unavailable\")"
cat "$TP_TMP/client.key" "$TP_TMP/client.crt" >"$TP_TMP/client.chain"
printf 'smtp_tls_chain_files = %s\n' "$TP_TMP/client.chain" >>"$D/main.cf"
tp_expect_status 0 "$T" -c "$D" doctor
printf 'smtp_bind_address = mail.example.com\n' >>"$D/main.cf"
doctor_says "error: Postfix's SMTP client stops at its first connection (bad smtp_bind_address parameter: mail.example.com): no mail leaves through it"
grep -q "cannot set up TLS" "$TP_TMP/out" && fail "doctor calls a bad source address a TLS problem: $(cat "$TP_TMP/out")"
printf 'smtp_bind_address = [192.0.2.1]\n' >>"$D/main.cf"
tp_expect_status 0 "$T" -c "$D" doctor
cp "$TP_TMP/main.cf.saved" "$D/main.cf"

tp_note "levels verify and secure with no CA Postfix trusts: every such delivery is deferred"
printf 'v.example verify\nt.example secure tafile=/etc/postfix/ta.pem\n' >>"$S"
"$T" -c "$D" rebuild || fail "rebuild failed"
doctor_says "error: $S:$(grep -n '^v.example' "$S" | cut -d: -f1): v.example: level verify or secure, but Postfix's SMTP client trusts no CA (smtp_tls_CAfile, smtp_tls_CApath and smtp_tls_trust_anchor_file are empty): every such delivery is deferred"
printf 'smtp_tls_security_level = secure\n' >>"$D/main.cf"
doctor_says "error: smtp_tls_security_level = secure, but Postfix's SMTP client trusts no CA (smtp_tls_CAfile, smtp_tls_CApath and smtp_tls_trust_anchor_file are empty): every delivery without a policy entry is deferred"
printf 'smtp_tls_trust_anchor_file = /etc/postfix/ta.pem\n' >>"$D/main.cf"
"$T" -c "$D" doctor >"$TP_TMP/out" 2>&1 || true
grep -q "trusts no CA" "$TP_TMP/out" && fail "doctor ignores smtp_tls_trust_anchor_file: $(cat "$TP_TMP/out")"
cp "$TP_TMP/main.cf.saved" "$D/main.cf"
