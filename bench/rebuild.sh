#!/bin/bash
# Rebuild benchmark: postmap vs tlspolicy rebuild on the same 300k-entry
# table, side by side on the same machine, RUNS times (postmap then
# tlspolicy in each round). Prints every round, then the medians of wall
# time, cpu time (user+sys) and peak RSS of each and their ratios, and
# checks both databases hold the same records.
#
# usage: bench/rebuild.sh [BUILD_DIR] [ENTRIES] [RUNS] [TYPE]
#   BUILD_DIR  a RelWithDebInfo build (default: build-rel), with
#              BUILD_DIR/tlspolicy and BUILD_DIR/tests/gen_policy
#   ENTRIES    default 300000
#   RUNS       default 5
#   TYPE       hash (default), btree, lmdb or cdb: postmap TYPE:A against
#              tlspolicy -m TYPE:B rebuild
set -eu
build=${1:-build-rel}
n=${2:-300000}
runs=${3:-5}
type=${4:-hash}
case $type in hash | btree) sfx=db ;; lmdb | cdb) sfx=$type ;; *) echo "TYPE: hash, btree, lmdb or cdb" >&2; exit 1 ;; esac
tp="$build/tlspolicy"
gen="$build/tests/gen_policy"
for f in "$tp" "$gen"; do
	[ -x "$f" ] || { echo "missing $f: cmake --build $build first" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"
command -v postmap >/dev/null || { echo "postmap not found (apt-get install postfix)" >&2; exit 1; }
command -v db5.3_dump >/dev/null || { echo "db5.3_dump not found (apt-get install db5.3-util)" >&2; exit 1; }
command -v mdb_dump >/dev/null || { echo "mdb_dump not found (apt-get install lmdb-utils)" >&2; exit 1; }
command -v cdb >/dev/null || { echo "cdb not found (apt-get install tinycdb)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d /tmp/tp-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf 'compatibility_level = 3.6\n' >"$work/main.cf"
"$gen" bench 1 "$n" "$work/pm"
cp "$work/pm" "$work/tp"
src_bytes=$(stat -c %s "$work/pm")
echo "table: $n entries, $src_bytes bytes, type $type; $(nproc) CPUs, $(uname -sr)"

measure() {	# label, command...: prints "label seconds kbytes"
	local label=$1
	shift
	sync
	/usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" 2>"$work/err" || {
		cat "$work/err" >&2
		exit 1
	}
	echo "$label $(cat "$work/time")"
}

echo "round  postmap wall/cpu/MB  tlspolicy wall/cpu/MB  load"
: >"$work/pm.all"
: >"$work/tp.all"
for r in $(seq 1 "$runs"); do
	rm -f "$work/pm.$sfx" "$work/tp.$sfx"	# each round builds a new db, as the first
	pm=$(measure postmap postmap -c "$work" "$type:$work/pm")
	tpr=$(measure tlspolicy "$tp" -c "$work" -m "$type:$work/tp" rebuild)
	echo "$pm" >>"$work/pm.all"
	echo "$tpr" >>"$work/tp.all"
	read -r _ a b c d <<<"$pm"
	read -r _ e f g h <<<"$tpr"
	awk -v r="$r" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" -v f="$f" -v g="$g" -v h="$h" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
		printf "%5d  %5.2f %5.2f %6.1f    %5.2f %5.2f %6.1f     %s\n", r, a, c + d, b / 1024, e, g + h, f / 1024, l
	}'
done

dump() {	# the records of a db, one per line, sorted
	case $type in
	hash | btree) db5.3_dump -p "$1" | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - ;;
	lmdb) mdb_dump -n -p "$1" | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - ;;
	cdb) cdb -d "$1" ;;
	esac | LC_ALL=C sort
}
if [ "$(dump "$work/pm.$sfx" | md5sum)" != "$(dump "$work/tp.$sfx" | md5sum)" ]; then
	echo "FAIL: the databases hold different records" >&2
	exit 1
fi
echo "same records: yes ($(dump "$work/tp.$sfx" | wc -l) records)"
median() {	# file, field: the median of that field ($2 wall, $3 KB, $4+$5 cpu)
	awk -v f="$2" '{ print (f == "cpu") ? $4 + $5 : $f }' "$1" | sort -g | awk '{ v[NR] = $1 } END {
		print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	}'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (wall times are only comparable on a quiet machine)"
awk -v ps="$(median "$work/pm.all" 2)" -v pk="$(median "$work/pm.all" 3)" -v pc="$(median "$work/pm.all" cpu)" \
    -v ts="$(median "$work/tp.all" 2)" -v tk="$(median "$work/tp.all" 3)" -v tc="$(median "$work/tp.all" cpu)" -v n="$runs" \
    -v sb="$src_bytes" 'BEGIN {
	printf "medians of %d runs:\n", n
	printf "postmap    %6.2f s wall  %6.2f s cpu  %7.1f MB peak RSS\n", ps, pc, pk / 1024
	printf "tlspolicy  %6.2f s wall  %6.2f s cpu  %7.1f MB peak RSS\n", ts, tc, tk / 1024
	printf "ratio      %6.2fx wall  %6.2fx cpu (target <= 0.50x)  peak %.2fx the source (target <= 2.5x)\n", ts / ps, tc / pc, tk * 1024 / sb
}'
