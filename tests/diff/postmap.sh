#!/bin/bash
# Differential test: tlspolicy rebuild against real postmap, the oracle.
#
# For hundreds of generated awkward sources (gen_policy awkward), run
# postmap on one copy and "tlspolicy rebuild" on another, both with the
# same main.cf (smtputf8_enable yes and no; hash, btree, lmdb and cdb),
# and compare:
#   - the record sets, raw bytes, sorted (page layout may differ; records
#     must not): db5.3_dump -p for hash and btree, mdb_dump -p for lmdb,
#     cdb -d (tinycdb) for cdb; and for cdb the files themselves, byte
#     for byte (our writer lays out the file as postmap's tinycdb does);
#   - what Postfix reads back, postmap -s of both databases (not cdb:
#     Debian's postmap cannot list a cdb table; postmap -q still reads it);
#   - the warnings (postmap's words, "postmap:" -> "tlspolicy:");
#   - the exit status;
#   - tlspolicy get against postmap -q for a few keys.
# A missing oracle is a failure, not a skip.
set -u
: "${TLSPOLICY:?}" "${TP_TOOLS_DIR:?}"
N=${TP_DIFF_FILES:-320}
SEED=${TP_DIFF_SEED:-20261128}

for tool in postmap db5.3_dump mdb_dump cdb; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
		echo "FAIL: $tool not found: install postfix, postfix-lmdb, postfix-cdb, db5.3-util, lmdb-utils and tinycdb (the oracle)" >&2
		exit 1
	fi
done
export PATH="$PATH:/usr/sbin"
for t in lmdb cdb; do
	postconf -m | grep -qx "$t" || { echo "FAIL: postconf -m lists no $t: install postfix-$t (the oracle)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tp-diff.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/conf-utf8" "$work/conf-ascii"
# compatibility_level keeps postmap from warning about legacy defaults.
printf 'compatibility_level = 3.6\nsmtputf8_enable = yes\n' >"$work/conf-utf8/main.cf"
printf 'compatibility_level = 3.6\nsmtputf8_enable = no\n' >"$work/conf-ascii/main.cf"
"$TP_TOOLS_DIR/gen_policy" awkward "$SEED" "$N" "$work/src" || { echo "FAIL: generator" >&2; exit 1; }

records() {	# TYPE DB: the record set of a db, one record per line, raw bytes escaped
	case $1 in
	hash | btree)
		db5.3_dump -p "$2" | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - | LC_ALL=C sort ;;
	lmdb)	# mdb_dump wants a lock file; keep it out of the table's directory
		cp "$2" "$work/dump.lmdb" && mdb_dump -n -p "$work/dump.lmdb" |
			sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - | LC_ALL=C sort
		rm -f "$work/dump.lmdb" "$work/dump.lmdb-lock" ;;
	cdb)	# +klen,dlen:key->data, bytes as they are
		cdb -d "$2" | LC_ALL=C sort ;;
	esac
}

fail=0
failed_files=()
report() {
	fail=$((fail + 1))
	failed_files+=("$1")
	if [ "$fail" -le 5 ]; then
		echo "--- FAIL $1: $2"
		[ -n "${3:-}" ] && diff "$3" "$4" | head -20
	fi
}

checked=0
for ((i = 0; i < N; i++)); do
	types=(hash btree lmdb cdb)
	type=${types[i % 4]}
	if (((i / 4) % 2)); then conf=conf-ascii; else conf=conf-utf8; fi
	c="$work/$conf"
	d="$work/run"
	rm -rf "$d"
	mkdir -p "$d/pm" "$d/tp"
	cp "$work/src/$i" "$d/pm/t"
	cp "$work/src/$i" "$d/tp/t"
	# Same relative name in both runs, so the warnings read the same.
	(cd "$d/pm" && postmap -c "$c" "$type:t" 2>"$d/pm.err")
	pm_rc=$?
	(cd "$d/tp" && "$TLSPOLICY" -c "$c" -m "$type:t" rebuild 2>"$d/tp.err")
	tp_rc=$?
	what="file $i ($type, $conf, seed $SEED)"
	if [ "$pm_rc" != "$tp_rc" ]; then
		report "$i" "$what: exit status postmap $pm_rc, tlspolicy $tp_rc" "$d/pm.err" "$d/tp.err"
		continue
	fi
	[ "$pm_rc" = 0 ] || continue
	case $type in hash | btree) sfx=db ;; *) sfx=$type ;; esac
	records "$type" "$d/pm/t.$sfx" >"$d/pm.rec"
	records "$type" "$d/tp/t.$sfx" >"$d/tp.rec"
	if ! cmp -s "$d/pm.rec" "$d/tp.rec"; then
		report "$i" "$what: records differ (< postmap, > tlspolicy)" "$d/pm.rec" "$d/tp.rec"
		continue
	fi
	# Our cdb writer lays the file out as tinycdb does for postmap: the
	# same records in the same order make the same file.
	if [ "$type" = cdb ] && ! cmp -s "$d/pm/t.cdb" "$d/tp/t.cdb"; then
		report "$i" "$what: the cdb files differ (same records)"
		continue
	fi
	sed 's/^postmap: /tlspolicy: /' "$d/pm.err" >"$d/pm.warn"
	if ! cmp -s "$d/pm.warn" "$d/tp.err"; then
		report "$i" "$what: warnings differ (< postmap, > tlspolicy)" "$d/pm.warn" "$d/tp.err"
		continue
	fi
	if ((i % 5 == 0)); then
		if [ "$type" = cdb ]; then
			# No postmap -s for cdb: the keys from the source, as cdb -d has them.
			cdb -d "$d/pm/t.cdb" | sed -E 's/^\+[0-9]+,[0-9]+:(.*)->(.*)$/\1\t\2/' >"$d/pm.s"
		else
			postmap -c "$c" -s "$type:$d/pm/t" 2>&1 | LC_ALL=C sort >"$d/pm.s"
			postmap -c "$c" -s "$type:$d/tp/t" 2>&1 | LC_ALL=C sort >"$d/tp.s"
			if ! cmp -s "$d/pm.s" "$d/tp.s"; then
				report "$i" "$what: postmap -s differs" "$d/pm.s" "$d/tp.s"
				continue
			fi
		fi
		# A few keys, looked up both ways (upper-cased: both must fold).
		bad=
		while IFS=$'\t' read -r key _; do
			[ -n "$key" ] || continue
			ukey=$(printf '%s' "$key" | tr 'a-z' 'A-Z')
			want=$(postmap -c "$c" -q "$ukey" "$type:$d/pm/t" 2>/dev/null); wrc=$?
			got=$("$TLSPOLICY" -q -c "$c" -m "$type:$d/tp/t" get "$ukey" 2>/dev/null); grc=$?
			if [ "$want" != "$got" ] || [ "$wrc" != "$grc" ]; then
				bad="get $ukey: postmap -q [$wrc] '$want', tlspolicy [$grc] '$got'"
				break
			fi
		done < <(head -5 "$d/pm.s")
		if [ -n "$bad" ]; then
			report "$i" "$what: $bad"
			continue
		fi
	fi
	checked=$((checked + 1))
done

# Nothing compared means nothing tested.
if [ "$checked" -lt $((N / 2)) ]; then
	echo "FAIL: only $checked of $N files were compared" >&2
	fail=$((fail + 1))
fi
if [ "$fail" -gt 0 ]; then
	echo "FAIL: $fail of $N files differ from postmap: ${failed_files[*]:0:20}"
	echo "replay: TP_DIFF_SEED=$SEED TP_DIFF_FILES=$N; gen_policy awkward $SEED $N DIR"
	exit 1
fi
echo "ok: $checked of $N sources give postmap's records, warnings and lookups"
