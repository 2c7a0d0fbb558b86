# All of smtp_tls_policy_maps: list and doctor read every map in order, as
# Postfix asks them. Each claim tlspolicy makes ("shadowed by regexp:...
# line 1") is checked against the oracle: postmap -q on that map answers
# for the key, and postconf -xh says the list is what we read. Scenarios:
# regexp first, pcre first, two hash maps, a socketmap, proxy:hash, inline,
# a missing regexp file, a bare path.
. "$TP_SOURCE_DIR/tests/lib.sh"

command -v postmap >/dev/null || fail "postmap not found: install postfix (the oracle)"
command -v jq >/dev/null || fail "jq not found: install jq"
postconf -m | grep -qx pcre || fail "postconf -m lists no pcre: install postfix-pcre (the oracle)"

T=$TLSPOLICY
D=$TP_TMP/conf
mkdir -p "$D"
PIN=AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99

# conf LIST: main.cf with smtp_tls_policy_maps = LIST (as postconf -e sets it).
conf() {
    printf 'compatibility_level = 3.6\n' >"$D/main.cf"
    postconf -c "$D" -e "smtp_tls_policy_maps = $1" || fail "postconf -e failed"
}

cat >"$D/tls_policy" <<EOF
[127.0.0.2]:25 fingerprint match=$PIN
[127.0.0.3]:25 fingerprint match=$PIN
EOF
postmap -c "$D" "hash:$D/tls_policy" 2>/dev/null || true

tp_note "regexp first: its rule answers for a pinned key, and postmap agrees"
printf '# earlier policy\n/^\\[127\\.0\\.0\\.2\\]:25$/ encrypt\n' >"$D/pre"
conf 'regexp:${config_directory}/pre, hash:${config_directory}/tls_policy'
postmap -c "$D" "hash:$D/tls_policy" || fail "postmap failed"
[ "$(postmap -c "$D" -q '[127.0.0.2]:25' "regexp:$D/pre")" = encrypt ] || fail "oracle: the regexp does not answer"
postmap -c "$D" -q '[127.0.0.3]:25' "regexp:$D/pre" && fail "oracle: the regexp answers for 127.0.0.3"
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "tls_policy:1: [127.0.0.2]:25: shadowed by regexp:$D/pre line 2: pins unused" "$TP_TMP/out" ||
    fail "doctor does not report the shadowed entry: $(cat "$TP_TMP/out")"
grep -q "127.0.0.3.*shadowed" "$TP_TMP/out" && fail "doctor reports 127.0.0.3 shadowed: $(cat "$TP_TMP/out")"
grep -q "all well" "$TP_TMP/out" && fail "doctor says all well"
tp_expect_status 0 "$T" -c "$D" list --json
[ "$(jq -r '.entries[] | select(.key == "[127.0.0.2]:25") | .shadowed' "$TP_TMP/out")" = true ] ||
    fail "list --json: 127.0.0.2 not shadowed"
[ "$(jq -r '.entries[] | select(.key == "[127.0.0.3]:25") | .shadowed' "$TP_TMP/out")" = false ] ||
    fail "list --json: 127.0.0.3 shadowed"
# The list tlspolicy read is the one Postfix reads.
[ "$(jq -r '[.maps[].map] | join(", ")' "$TP_TMP/out")" = "$(postconf -c "$D" -xh smtp_tls_policy_maps)" ] ||
    fail "list --json maps: got $(jq -c '[.maps[].map]' "$TP_TMP/out"), postconf -xh says $(postconf -c "$D" -xh smtp_tls_policy_maps)"
tp_expect_status 0 "$T" -c "$D" list
grep -qF "shadowed by regexp:$D/pre line 2: pins unused" "$TP_TMP/out" || fail "list does not mark the entry: $(cat "$TP_TMP/out")"

tp_note "pcre first: if/endif and a case-sensitive flag, postmap agrees"
cat >"$D/pre.pcre" <<'EOF'
if /^\[127\.0\.0\./
/^\[127\.0\.0\.3\]:25$/	secure
endif
/^\[127\.0\.0\.2\]:25$/I	may
EOF
conf 'pcre:${config_directory}/pre.pcre hash:${config_directory}/tls_policy'
# Postfix rejects the flag I (not a pcre option): the rule is skipped.
[ "$(postmap -c "$D" -q '[127.0.0.3]:25' "pcre:$D/pre.pcre" 2>/dev/null)" = secure ] || fail "oracle: pcre does not answer"
postmap -c "$D" -q '[127.0.0.2]:25' "pcre:$D/pre.pcre" 2>/dev/null && fail "oracle: pcre answers for 127.0.0.2"
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "[127.0.0.3]:25: shadowed by pcre:$D/pre.pcre line 2: pins unused" "$TP_TMP/out" ||
    fail "doctor (pcre): $(cat "$TP_TMP/out")"
grep -q "127.0.0.2.*shadowed" "$TP_TMP/out" && fail "doctor (pcre) reports 127.0.0.2: $(cat "$TP_TMP/out")"

tp_note "two hash maps: the second is listed as a separate table, its shadowed entry named"
cat >"$D/second" <<EOF
[127.0.0.3]:25 secure
[127.0.0.4]:25 fingerprint match=$PIN
EOF
postmap -c "$D" "hash:$D/second"
conf 'hash:${config_directory}/tls_policy hash:${config_directory}/second'
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "second:1: [127.0.0.3]:25: shadowed by hash:$D/tls_policy: entry unused" "$TP_TMP/out" ||
    fail "doctor (two hash): $(cat "$TP_TMP/out")"
grep -qF "hash:$D/second is a separate table (2 entries, 1 pinned by fingerprint)" "$TP_TMP/out" ||
    fail "doctor (two hash) does not name the second table: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" list --json
[ "$(jq -r '.separate_tables[0].entries[] | select(.key == "[127.0.0.4]:25") | .pins[0].fingerprint' "$TP_TMP/out")" = "$PIN" ] ||
    fail "list --json does not list the second table's pins: $(cat "$TP_TMP/out")"
# Writes still go to the first hash map.
tp_expect_status 0 "$T" -c "$D" set '[127.0.0.9]:25' --level may
[ "$(postmap -c "$D" -q '[127.0.0.9]:25' "hash:$D/tls_policy")" = may ] || fail "set did not write the first hash map"
postmap -c "$D" -q '[127.0.0.9]:25' "hash:$D/second" && fail "set wrote the second map"

tp_note "a cdb table before ours: read from its .cdb (postmap's), as Postfix reads it"
postconf -m | grep -qx cdb || fail "postconf -m lists no cdb: install postfix-cdb (the oracle)"
postmap -c "$D" "cdb:$D/second"
[ "$(postmap -c "$D" -q '[127.0.0.3]:25' "cdb:$D/second")" = secure ] || fail "oracle: cdb"
conf 'cdb:${config_directory}/second hash:${config_directory}/tls_policy'
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "tls_policy:2: [127.0.0.3]:25: shadowed by cdb:$D/second: pins unused" "$TP_TMP/out" ||
    fail "doctor (cdb first): $(cat "$TP_TMP/out")"

tp_note "a socketmap before the table is named: it may answer first"
conf 'socketmap:inet:127.0.0.1:8000:policy, proxy:hash:${config_directory}/tls_policy'
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "warning: socketmap:inet:127.0.0.1:8000:policy cannot be evaluated here and may answer first" "$TP_TMP/out" ||
    fail "doctor (socketmap): $(cat "$TP_TMP/out")"
grep -qF "ok: hash:$D/tls_policy is listed in smtp_tls_policy_maps (map 2 of 2)" "$TP_TMP/out" ||
    fail "doctor (proxy:hash) does not find the table behind proxy: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" list
grep -qF "socketmap:inet:127.0.0.1:8000:policy cannot be evaluated here and may answer first" "$TP_TMP/out" ||
    fail "list (socketmap): $(cat "$TP_TMP/out")"

tp_note "inline first: its pair answers, as postmap -q says"
conf 'inline:{ [127.0.0.3]:25=may }, hash:${config_directory}/tls_policy'
[ "$(postmap -c "$D" -q '[127.0.0.3]:25' 'inline:{ [127.0.0.3]:25=may }')" = may ] || fail "oracle: inline"
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "[127.0.0.3]:25: shadowed by inline:{ [127.0.0.3]:25=may } line 1: pins unused" "$TP_TMP/out" ||
    fail "doctor (inline): $(cat "$TP_TMP/out")"

tp_note "nothing earlier answers: all well again"
conf 'regexp:${config_directory}/pre2, hash:${config_directory}/tls_policy'
printf '/^nothing\\.test$/ encrypt\n' >"$D/pre2"
tp_expect_status 0 "$T" -c "$D" doctor
grep -q "all well" "$TP_TMP/out" || fail "doctor: $(cat "$TP_TMP/out")"

tp_note "an earlier map Postfix cannot read is an error: its lookups fail"
conf 'regexp:${config_directory}/missing, hash:${config_directory}/tls_policy'
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "error: regexp:$D/missing: open database $D/missing" "$TP_TMP/out" ||
    fail "doctor (missing regexp): $(cat "$TP_TMP/out")"
tp_note "a bare path in the list is no map for Postfix (fatal 'expecting type:name'): an error, not the default type"
# agree.sh shows a real Postfix deferring all mail with such a list.
conf '${config_directory}/tls_policy, hash:${config_directory}/other'
printf 'other.test\tencrypt\n' >"$D/other"
postmap -c "$D" "hash:$D/other"
tp_expect_status 1 "$T" -c "$D" doctor
grep -qF "error: $D/tls_policy: smtp_tls_policy_maps: \"$D/tls_policy\" is not type:name" "$TP_TMP/out" ||
    fail "doctor (bare path): $(cat "$TP_TMP/out")"
[ "$(grep -c 'is not type:name' "$TP_TMP/out")" = 1 ] || fail "doctor says it more than once: $(cat "$TP_TMP/out")"
tp_expect_status 0 "$T" -c "$D" list
grep -q "^table: hash:$D/other" "$TP_TMP/out" || fail "list does not write the first real table: $(head -3 "$TP_TMP/out")"

echo "maps: all passed"
