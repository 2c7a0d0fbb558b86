# import and export: many keys in one commit, probed at once against
# testsmtpd; per-line errors name the line and leave the table unwritten
# (source and db byte for byte) unless --partial; hostile input (bad keys,
# duplicate keys, an unreachable loopback host, a 10 MB line, a bad digest,
# junk options); --dry-run prints one diff; export writes what import
# reads back (same records, no probing), export --json the full state.
# postmap is the oracle for the records.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
tp_need jq

T=$TLSPOLICY
D=$TP_TMP/conf
tp_sandbox_config "$D" sha256

records() {	# the db's records, as Postfix reads them
	postmap -c "$D" -s "hash:$1" 2>/dev/null | LC_ALL=C sort
}
oracle() {	# what postmap makes of the source now
	rm -rf "$TP_TMP/oracle" && mkdir "$TP_TMP/oracle" && cp "$D/tls_policy" "$TP_TMP/oracle/tls_policy"
	postmap -c "$D" "hash:$TP_TMP/oracle/tls_policy" || fail "postmap of the source failed"
	records "$TP_TMP/oracle/tls_policy"
}
in_step() {
	[ "$(records "$D/tls_policy")" = "$(oracle)" ] || fail "$1: the db does not hold postmap's records of the source"
}
snapshot() { cp "$D/tls_policy" "$TP_TMP/snap"; cp "$D/tls_policy.db" "$TP_TMP/snap.db"; }
unchanged() {
	cmp -s "$D/tls_policy" "$TP_TMP/snap" || fail "$1: the source was written"
	cmp -s "$D/tls_policy.db" "$TP_TMP/snap.db" || fail "$1: the db was written"
	[ -z "$(find "$D" -name '*.tmp.*')" ] || fail "$1: temp files left"
}

tp_make_cert "$TP_TMP/a" mx-a.partner.test
tp_make_cert "$TP_TMP/b" mx-b.partner.test
tp_start_server a --cert "$TP_TMP/a.pem"
PA=$TP_PORT
tp_start_server b --cert "$TP_TMP/b.pem"
PB=$TP_PORT
FA=$(tp_cert_fingerprint "$TP_TMP/a.crt" sha256)
FB=$(tp_cert_fingerprint "$TP_TMP/b.crt" sha256)
DEAD=$(tp_dead_port)

cat >"$D/tls_policy" <<'EOF'
# partners
old.example	encrypt
keep.example	may
EOF
postmap -c "$D" "hash:$D/tls_policy"

tp_note "import: new keys probed at once, an existing one updated, attributes, comments skipped"
cat >"$TP_TMP/in" <<EOF
# new partners
p1.example --from 127.0.0.1:$PA
p2.example --from 127.0.0.1:$PB protocols=>=TLSv1.2
[mx.p3.example]:25 --from 127.0.0.1:$PA --from 127.0.0.1:$PB

old.example secure match=nexthop:dot-nexthop
p4.example	dane
EOF
tp_expect_status 0 "$T" -c "$D" import --jobs 4 --timeout 10 "$TP_TMP/in"
grep -q "5 lines applied (4 added, 1 updated)" "$TP_TMP/out" || fail "import summary: $(cat "$TP_TMP/out")"
[ "$(postmap -c "$D" -q p1.example "hash:$D/tls_policy")" = "fingerprint match=$FA" ] || fail "p1: $(postmap -c "$D" -q p1.example "hash:$D/tls_policy")"
[ "$(postmap -c "$D" -q p2.example "hash:$D/tls_policy")" = "fingerprint match=$FB protocols=>=TLSv1.2" ] || fail "p2: $(postmap -c "$D" -q p2.example "hash:$D/tls_policy")"
[ "$(postmap -c "$D" -q "[mx.p3.example]:25" "hash:$D/tls_policy")" = "fingerprint match=$FA|$FB" ] || fail "p3"
[ "$(postmap -c "$D" -q old.example "hash:$D/tls_policy")" = "secure match=nexthop:dot-nexthop" ] || fail "old.example not updated"
grep -q "^# tlspolicy: from=127.0.0.1:$PA,127.0.0.1:$PB pin=cert keys=" "$D/tls_policy" || fail "p3's hosts not recorded"
head -3 "$D/tls_policy" | grep -q "^# partners" || fail "the file's comment moved"
in_step "import"

tp_note "hostile input: each error names its line; nothing written"
snapshot
long=$TP_TMP/long
{ printf 'l.example encrypt '; head -c 10485760 /dev/zero | tr '\0' x; printf '\nok.example may\n'; } >"$long"
tp_expect_status 1 "$T" -c "$D" import "$long"
grep -q "$long:1: longer than 65536 bytes" "$TP_TMP/err" || fail "10 MB line: $(head -c 300 "$TP_TMP/err")"
grep -q "nothing written" "$TP_TMP/err" || fail "10 MB line: no 'nothing written'"
unchanged "a 10 MB line"
cat >"$TP_TMP/bad" <<EOF
good.example may
#hash.example may
"quoted encrypt
bad-level.example superstrong
dup.example may
DUP.example encrypt
nolevel.example
pins.example fingerprint match=AA:BB
opt.example --frob x encrypt
dead.example --from 127.0.0.1:$DEAD
fine.example --from 127.0.0.1:$PA
EOF
tp_expect_status 1 "$T" -c "$D" import --timeout 5 "$TP_TMP/bad"
for want in \
    'bad:3: ""quoted": not a key' \
    "bad:4: superstrong: unknown TLS security level" \
    "bad:5: dup.example: duplicate key, again on line 6" \
    "bad:6: DUP.example: duplicate key, first on line 5" \
    "bad:7: nolevel.example: give a level" \
    "bad:8: match=AA:BB: 2 bytes, but Postfix compares sha256" \
    "bad:9: --frob: unknown option" \
    "bad:10: --from 127.0.0.1:$DEAD"; do
	grep -qF "$want" "$TP_TMP/err" || fail "no error '$want' in: $(cat "$TP_TMP/err")"
done
grep -q "bad:1:\|bad:2:\|bad:11:" "$TP_TMP/err" && fail "good lines reported: $(cat "$TP_TMP/err")"
grep -q "8 lines with errors; nothing written" "$TP_TMP/err" || fail "summary: $(tail -1 "$TP_TMP/err")"
unchanged "hostile input"

tp_note "--dry-run: one diff, nothing written"
printf 'dry.example encrypt\nkeep.example secure\n' >"$TP_TMP/dry"
tp_expect_status 0 "$T" -c "$D" import --dry-run "$TP_TMP/dry"
grep -q '^+dry.example	encrypt' "$TP_TMP/out" || fail "dry-run diff: $(cat "$TP_TMP/out")"
grep -q '^-keep.example	may' "$TP_TMP/out" && grep -q '^+keep.example	secure' "$TP_TMP/out" || fail "dry-run diff of the update"
unchanged "--dry-run"

tp_note "--partial: the good lines written, the bad ones reported, exit 1"
tp_expect_status 1 "$T" -c "$D" import --partial --timeout 5 "$TP_TMP/bad"
[ "$(postmap -c "$D" -q good.example "hash:$D/tls_policy")" = may ] || fail "--partial: good.example not written"
[ "$(postmap -c "$D" -q fine.example "hash:$D/tls_policy")" = "fingerprint match=$FA" ] || fail "--partial: fine.example not written"
postmap -c "$D" -q dup.example "hash:$D/tls_policy" >/dev/null && fail "--partial: a duplicate key was written"
postmap -c "$D" -q dead.example "hash:$D/tls_policy" >/dev/null && fail "--partial: the unreachable one was written"
in_step "--partial"

tp_note "import - reads stdin; the db is updated in place, not rebuilt"
echo "stdin.example encrypt" | "$T" -c "$D" import - >"$TP_TMP/out" 2>&1 || fail "import -: $(cat "$TP_TMP/out")"
grep -q "db updated" "$TP_TMP/out" || fail "import -: $(cat "$TP_TMP/out")"
in_step "import -"

tp_note "export: import of it into an empty table gives the same records, no probing"
tp_expect_status 0 "$T" -c "$D" export
cp "$TP_TMP/out" "$TP_TMP/export"
grep -q "^\[mx.p3.example\]:25 --from 127.0.0.1:$PA --from 127.0.0.1:$PB fingerprint match=$FA|$FB$" "$TP_TMP/export" ||
	fail "export of p3: $(grep p3 "$TP_TMP/export")"
E=$TP_TMP/conf2
tp_sandbox_config "$E" sha256
tp_stop_server a
tp_stop_server b
tp_expect_status 0 "$T" -c "$E" import "$TP_TMP/export"
[ "$(postmap -c "$E" -s "hash:$E/tls_policy" | LC_ALL=C sort)" = "$(records "$D/tls_policy")" ] ||
	fail "import of the export holds other records"

tp_note "export --json: entries, levels, pins with digests, hosts, keys"
tp_expect_status 0 "$T" -c "$D" export --json
jq -e --arg fa "$FA" '.entries[] | select(.key == "p1.example") |
	.level == "fingerprint" and .pins[0].fingerprint == $fa and .pins[0].digest == "sha256"
	and (.annotation.from | length) == 1 and (.annotation.keys | length) == 1' "$TP_TMP/out" >/dev/null ||
	fail "export --json p1: $(jq '.entries[] | select(.key == "p1.example")' "$TP_TMP/out")"
[ "$(jq '.entries | length' "$TP_TMP/out")" = "$(grep -vc '^#' "$TP_TMP/export")" ] || fail "export --json: entry count"

tp_note "usage errors"
tp_expect_status 64 "$T" -c "$D" import
tp_expect_status 64 "$T" -c "$D" import a b
tp_expect_status 1 "$T" -c "$D" import "$TP_TMP/no-such-file"
tp_expect_status 64 "$T" -c "$D" export extra
echo "import: all passed"
