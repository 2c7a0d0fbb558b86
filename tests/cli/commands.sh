
# A key postmap cannot read back as one entry is a bad argument (64), not a
# failure: empty, with whitespace, a comment, an open quote.
for k in "" "a b" "#a" "a\"b" " a"; do
    tp_expect_status 64 "$T" -c "$D" set "$k" --level may
    grep -q "not a key" "$TP_TMP/err" || fail "set [$k]: unclear error: $(cat "$TP_TMP/err")"
    cmp -s "$D/tls_policy" "$TP_TMP/pre" || fail "set [$k] wrote the table"
done
# Black-box tests of the offline commands (list, get, set, remove, rebuild,
# doctor) in a sandbox config directory. Real postmap is the oracle for what
# Postfix reads; expected files are written here by hand from the contract
# (DESIGN.md), never copied from tlspolicy's output.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
command -v jq >/dev/null || fail "jq not found: install jq"

T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D" md5
MD5A=11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00
MD5B=A0:A1:A2:A3:A4:A5:A6:A7:A8:A9:AA:AB:AC:AD:AE:AF
SHA1=01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14

# pq KEY: what Postfix itself finds for KEY (postmap -q), or "<absent>".
pq() { postmap -c "$D" -q "$1" "hash:$D/tls_policy" 2>/dev/null || echo "<absent>"; }

tp_note "a hand-written table with comments, continuations and CRLF-free layout"
cat >"$D/tls_policy" <<'EOF'
# Partners pinned by fingerprint. Keep sorted.
.example.net   encrypt

# relay at the colo
[relay.example.org]:587    fingerprint
    match=11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00
    protocols=>=TLSv1.2
example.org	may
EOF
cp "$D/tls_policy" "$TP_TMP/orig"

tp_note "rebuild writes what postmap reads"
tp_expect_status 0 "$T" -c "$D" rebuild
[ "$(pq '[relay.example.org]:587')" = "fingerprint    match=$MD5A    protocols=>=TLSv1.2" ] ||
    fail "postmap -q after rebuild: got '$(pq '[relay.example.org]:587')'"
[ "$(pq .example.net)" = "encrypt" ] || fail "postmap -q .example.net: got '$(pq .example.net)'"

tp_note "get folds the key like postmap -q and exits 1 when absent"
tp_expect_status 0 "$T" -c "$D" get EXAMPLE.ORG
[ "$(cat "$TP_TMP/out")" = "may" ] || fail "get EXAMPLE.ORG: got '$(cat "$TP_TMP/out")', want 'may'"
tp_expect_status 1 "$T" -c "$D" get nonexistent.example

tp_note "set --fingerprint replaces the pin in place; no other byte changes"
tp_expect_status 0 "$T" -c "$D" set '[relay.example.org]:587' --fingerprint "$(echo $MD5B | tr -d : | tr A-F a-f)"
cat >"$TP_TMP/want" <<'EOF'
# Partners pinned by fingerprint. Keep sorted.
.example.net   encrypt

# relay at the colo
[relay.example.org]:587    fingerprint
    match=A0:A1:A2:A3:A4:A5:A6:A7:A8:A9:AA:AB:AC:AD:AE:AF
    protocols=>=TLSv1.2
example.org	may
EOF
cmp -s "$D/tls_policy" "$TP_TMP/want" || fail "set changed more than the pin: $(diff -u "$TP_TMP/want" "$D/tls_policy")"
[ "$(pq '[relay.example.org]:587')" = "fingerprint    match=$MD5B    protocols=>=TLSv1.2" ] ||
    fail "Postfix does not see the new pin: '$(pq '[relay.example.org]:587')'"

tp_note "the classic mistake: a sha1 pin while Postfix compares md5 is refused, nothing written"
cp "$D/tls_policy" "$TP_TMP/before"
cp "$D/tls_policy.db" "$TP_TMP/before.db"
tp_expect_status 1 "$T" -c "$D" set example.com --fingerprint "$SHA1"
grep -q "md5" "$TP_TMP/err" && grep -q "sha1" "$TP_TMP/err" ||
    fail "the error should name both digests: $(cat "$TP_TMP/err")"
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "error is not one line: $(cat "$TP_TMP/err")"
cmp -s "$D/tls_policy" "$TP_TMP/before" || fail "refused set changed the source"
cmp -s "$D/tls_policy.db" "$TP_TMP/before.db" || fail "refused set changed the db"
tp_note "... unless -d says sha1 on purpose"
tp_expect_status 0 "$T" -c "$D" -d sha1 set example.com --fingerprint "$SHA1"
[ "$(pq example.com)" = "fingerprint match=$SHA1" ] || fail "-d sha1 set: postmap -q gives '$(pq example.com)'"
tp_expect_status 0 "$T" -c "$D" remove example.com

tp_note "new entry: appended, level fingerprint implied"
tp_expect_status 0 "$T" -c "$D" set Example.COM --fingerprint "$MD5A" --fingerprint "$MD5B"
[ "$(pq example.com)" != "<absent>" ] || fail "new entry not in the db"
echo "$(pq example.com)" | grep -q "^fingerprint" || fail "level not fingerprint: $(pq example.com)"
for pin in $MD5A $MD5B; do
    echo "$(pq example.com)" | grep -q "$pin" || fail "pin $pin missing: $(pq example.com)"
done
head -n 8 "$D/tls_policy" | cmp -s - "$TP_TMP/want" || fail "append touched earlier lines"

tp_note "--keep-old adds, without duplicates"
tp_expect_status 0 "$T" -c "$D" set example.com --fingerprint "$MD5A" --keep-old
n=$(echo "$(pq example.com)" | grep -o "$MD5A" | wc -l)
[ "$n" = 1 ] || fail "--keep-old duplicated a pin ($n copies): $(pq example.com)"
echo "$(pq example.com)" | grep -q "$MD5B" || fail "--keep-old dropped the old pin"

tp_note "--dry-run prints a diff that patch(1) applies to give what a real run writes"
cp "$D/tls_policy" "$TP_TMP/pre"
tp_expect_status 0 "$T" -c "$D" set example.org --level encrypt --attr servername=mx.example.org --dry-run
cmp -s "$D/tls_policy" "$TP_TMP/pre" || fail "--dry-run wrote the source"
cp "$TP_TMP/pre" "$TP_TMP/patched"
patch -s "$TP_TMP/patched" <"$TP_TMP/out" || fail "--dry-run output is not a valid diff: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" set example.org --level encrypt --attr servername=mx.example.org
cmp -s "$D/tls_policy" "$TP_TMP/patched" || fail "dry-run diff and real run differ"
[ "$(pq example.org)" = "encrypt servername=mx.example.org" ] || fail "postmap -q example.org: $(pq example.org)"

tp_note "a value Postfix would reject is not written"
cp "$D/tls_policy" "$TP_TMP/pre"
tp_expect_status 1 "$T" -c "$D" set example.org --attr cipher=high
grep -q "cipher" "$TP_TMP/err" || fail "error should name the bad attribute: $(cat "$TP_TMP/err")"
cmp -s "$D/tls_policy" "$TP_TMP/pre" || fail "rejected value was written"
tp_expect_status 1 "$T" -c "$D" set new.example --level fingerprint
[ "$(pq new.example)" = "<absent>" ] || fail "fingerprint entry without pins was written"
# A key postmap cannot read back as one entry is a bad argument (64), not a
# failure: empty, with whitespace, a comment, an open quote.
for k in "" "a b" "#a" 'a"b' " a"; do
    tp_expect_status 64 "$T" -c "$D" set "$k" --level may
    grep -q "not a key" "$TP_TMP/err" || fail "set [$k]: unclear error: $(cat "$TP_TMP/err")"
    cmp -s "$D/tls_policy" "$TP_TMP/pre" || fail "set [$k] wrote the table"
done

tp_note "remove takes the annotation comment with it"
cat >>"$D/tls_policy" <<EOF
# tlspolicy: from=mx1.partner.example:25 pin=cert
partner.example fingerprint match=$MD5A
EOF
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 0 "$T" -c "$D" remove PARTNER.example
grep -q "partner.example" "$D/tls_policy" && fail "remove left the entry or its annotation: $(cat "$D/tls_policy")"
[ "$(pq partner.example)" = "<absent>" ] || fail "removed key still in db"
tp_expect_status 1 "$T" -c "$D" remove partner.example
grep -q "no entry" "$TP_TMP/err" || fail "remove of an absent key: $(cat "$TP_TMP/err")"

tp_note "the db holds exactly postmap's records"
cp "$D/tls_policy" "$TP_TMP/pm"
postmap -c "$D" "hash:$TP_TMP/pm"
diff <(postmap -c "$D" -s "hash:$TP_TMP/pm" | sort) <(postmap -c "$D" -s "hash:$D/tls_policy" | sort) ||
    fail "db records differ from postmap's"

tp_note "list --json: pins with digests, db state, annotation"
printf '# tlspolicy: from=mx.a.example:25,[192.0.2.7]:2525 pin=pkey\na.example fingerprint match=%s|%s\n' "$MD5A" "$SHA1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" list --json
j=$TP_TMP/out
[ "$(jq -r .db_state "$j")" != "in step" ] || fail "db_state in step though the source changed by hand"
[ "$(jq -r .digest "$j")" = md5 ] || fail "digest: $(jq -r .digest "$j")"
[ "$(jq -r '.entries[] | select(.key=="a.example") | .pins | map(.digest) | join(",")' "$j")" = "md5,sha1" ] ||
    fail "pin digests: $(jq -c '.entries[] | select(.key=="a.example") | .pins' "$j")"
[ "$(jq -r '.entries[] | select(.key=="a.example") | .pins | map(.digest_matches) | join(",")' "$j")" = "true,false" ] ||
    fail "digest_matches: $(jq -c '.entries[] | select(.key=="a.example") | .pins' "$j")"
[ "$(jq -r '.entries[] | select(.key=="a.example") | .from | join(" ")' "$j")" = "mx.a.example:25 [192.0.2.7]:2525" ] ||
    fail "from: $(jq -c '.entries[] | select(.key=="a.example") | .from' "$j")"
[ "$(jq -r '.entries[] | select(.key=="a.example") | .pin_kind' "$j")" = pkey ] || fail "pin_kind"
[ "$(jq '.entries | length' "$j")" = "$(postmap -c "$D" -s "hash:$D/tls_policy" >/dev/null; grep -c '^[^#[:space:]]' "$D/tls_policy")" ] ||
    fail "entry count differs from the file's logical lines"

tp_note "list text: the pin kind beside the hosts only where there are pins"
printf '# tlspolicy: from=mx.c.example:25 pin=cert\nc.example encrypt\n' >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" list
grep -qx "  from: mx.a.example:25, \[192.0.2.7\]:2525 (pkey pins)" "$TP_TMP/out" || fail "pin kind not shown: $(cat "$TP_TMP/out")"
grep -qx "  from: mx.c.example:25" "$TP_TMP/out" || fail "an entry without pins shows a pin kind: $(grep -A3 '^c.example' "$TP_TMP/out")"

tp_note "doctor: stale db and a sha1 pin under md5 are reported, exit 1"
tp_expect_status 1 "$T" -c "$D" doctor
grep -q "^error: .*tls_policy.db is out of step" "$TP_TMP/out" || fail "doctor missed the stale db: $(cat "$TP_TMP/out")"
grep -q "^warning: .*a.example: pin $SHA1 is 20 bytes (sha1)" "$TP_TMP/out" || fail "doctor missed the sha1 pin: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" rebuild
printf 'b.example fingerprint match=%s\n' "$SHA1" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 1 "$T" -c "$D" doctor
grep -q "^error: .*b.example: no pin made with md5" "$TP_TMP/out" || fail "doctor missed an entry with no usable pin: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" remove b.example
chmod 664 "$D/tls_policy"
tp_expect_status 1 "$T" -c "$D" doctor
grep -q "^warning: .*tls_policy: writable by group" "$TP_TMP/out" || fail "doctor missed group-writable source: $(cat "$TP_TMP/out")"
chmod 644 "$D/tls_policy" "$D/tls_policy.db"
tp_expect_status 0 "$T" -c "$D" remove a.example
tp_expect_status 0 "$T" -c "$D" doctor

tp_note "list warns, like postmap, about a line it skips"
printf 'novalue.example\n' >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" list
grep -q "^tlspolicy: warning: .*line [0-9]*: expected format: key whitespace value" "$TP_TMP/err" ||
    fail "list did not warn about the line without a value: $(cat "$TP_TMP/err")"
sed -i '/^novalue.example$/d' "$D/tls_policy"

tp_note "doctor and list: a malformed pin beside a good one is a warning (Postfix ignores it)"
printf 'w.example fingerprint match=ZZ|%s\n' "$MD5A" >>"$D/tls_policy"
tp_expect_status 0 "$T" -c "$D" rebuild
tp_expect_status 1 "$T" -c "$D" doctor
grep -q '^warning: .*w.example: malformed fingerprint "ZZ"' "$TP_TMP/out" || fail "doctor missed the malformed pin: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" list --json
[ "$(jq -r '.entries[] | select(.key=="w.example") | .warnings | length' "$TP_TMP/out")" = 1 ] ||
    fail "list --json lacks the warning: $(jq -c '.entries[] | select(.key=="w.example")' "$TP_TMP/out")"
[ "$(jq -r '.entries[] | select(.key=="w.example") | .valid' "$TP_TMP/out")" = true ] || fail "w.example should stay valid"
tp_expect_status 0 "$T" -c "$D" remove w.example
tp_expect_status 0 "$T" -c "$D" doctor

tp_note "doctor: a table not in smtp_tls_policy_maps is an error"
cp "$D/tls_policy" "$TP_TMP/other"
tp_expect_status 0 "$T" -c "$D" -m "$TP_TMP/other" rebuild
tp_expect_status 1 "$T" -c "$D" -m "hash:$TP_TMP/other" doctor
grep -q "^error: hash:$TP_TMP/other is not in smtp_tls_policy_maps" "$TP_TMP/out" || fail "doctor: $(cat "$TP_TMP/out")"

tp_note "CRLF files keep CRLF on edit"
printf 'crlf.example may\r\nz.example encrypt\r\n' >"$TP_TMP/crlf"
tp_expect_status 0 "$T" -c "$D" -m "$TP_TMP/crlf" set crlf.example --level encrypt
[ "$(sed -n 1p "$TP_TMP/crlf" | od -An -c | tr -d ' \n')" = 'crlf.exampleencrypt\r\n' ] ||
    fail "CRLF lost: $(od -c "$TP_TMP/crlf" | head -3)"
cmp -s <(sed -n 2p "$TP_TMP/crlf") <(printf 'z.example encrypt\r\n') || fail "second line changed"

tp_note "usage errors exit 64, with one line"
tp_expect_status 64 "$T" frobnicate
tp_expect_status 64 "$T" -c "$D" set
tp_expect_status 64 "$T" -c "$D" set a b
tp_expect_status 64 "$T" -c "$D" set x.example --bogus
tp_expect_status 64 "$T" -c "$D" set x.example --fingerprint
tp_expect_status 64 "$T" -c "$D" set x.example --pin cert
tp_expect_status 64 "$T" -c "$D" set x.example --attr match=AA
tp_expect_status 64 "$T" -c "$D" list extra
tp_expect_status 64 "$T" -c "$D" get
tp_expect_status 64 "$T" -x list
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "usage error is not one line: $(cat "$TP_TMP/err")"

tp_note "no main.cf and no -m: a clear error that suggests -m"
tp_expect_status 1 "$T" -c "$TP_TMP/nowhere" list
grep -q -- "-m" "$TP_TMP/err" || fail "error does not suggest -m: $(cat "$TP_TMP/err")"
[ "$(wc -l <"$TP_TMP/err")" = 1 ] || fail "not one line: $(cat "$TP_TMP/err")"

tp_note "global --help and --version work after global options too"
tp_expect_status 0 "$T" -c "$D" --help
grep -q "^usage: tlspolicy" "$TP_TMP/out" || fail "-c DIR --help prints no usage"
tp_expect_status 0 "$T" -q --version
grep -q "^tlspolicy [0-9]" "$TP_TMP/out" || fail "--version: $(cat "$TP_TMP/out")"
tp_expect_status 64 "$T" --bogus

tp_note "every command has --help"
for c in list get set remove rebuild doctor probe rotate check migrate; do
    "$T" "$c" --help >"$TP_TMP/out" 2>&1 || fail "$c --help failed"
    grep -q "usage: tlspolicy" "$TP_TMP/out" || fail "$c --help prints no usage"
done
tp_note "a texthash table: the source is the table, no database is written or claimed"
TH=$TP_TMP/th
: >"$TH"
tp_expect_status 0 "$T" -m "texthash:$TH" set th.example --level encrypt
grep -qx "th.example: encrypt ($TH:1; texthash: no database)" "$TP_TMP/out" || fail "texthash set: $(cat "$TP_TMP/out")"
grep -q "postfix reload" "$TP_TMP/err" || fail "texthash set does not say a reload is needed: $(cat "$TP_TMP/err")"
[ ! -e "$TH.db" ] || fail "a texthash edit wrote $TH.db"
[ "$(postmap -q th.example "texthash:$TH")" = encrypt ] || fail "postmap -q texthash: $(postmap -q th.example "texthash:$TH")"
tp_expect_status 0 "$T" -m "texthash:$TH" remove th.example
grep -qx "th.example: removed ($TH; texthash: no database)" "$TP_TMP/out" || fail "texthash remove: $(cat "$TP_TMP/out")"

echo "commands: all passed"
