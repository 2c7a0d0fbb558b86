#!/bin/bash
# Rebuild benchmark: postmap vs tlspolicy rebuild on the same 300k-entry
# table, in one run, same machine. Prints wall time and peak RSS of each
# and the ratios, and checks both databases hold the same records.
#
# usage: bench/rebuild.sh [BUILD_DIR] [ENTRIES]
#   BUILD_DIR  a RelWithDebInfo build (default: build-rel), with
#              BUILD_DIR/tlspolicy and BUILD_DIR/tests/gen_policy
#   ENTRIES    default 300000
set -eu
build=${1:-build-rel}
n=${2:-300000}
tp="$build/tlspolicy"
gen="$build/tests/gen_policy"
for f in "$tp" "$gen"; do
	[ -x "$f" ] || { echo "missing $f: cmake --build $build first" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"
command -v postmap >/dev/null || { echo "postmap not found (apt-get install postfix)" >&2; exit 1; }
command -v db5.3_dump >/dev/null || { echo "db5.3_dump not found (apt-get install db5.3-util)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d /tmp/tp-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf 'compatibility_level = 3.6\n' >"$work/main.cf"
"$gen" bench 1 "$n" "$work/pm"
cp "$work/pm" "$work/tp"
echo "table: $n entries, $(stat -c %s "$work/pm") bytes; $(nproc) CPUs, $(uname -sr)"

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

pm=$(measure postmap postmap -c "$work" "hash:$work/pm")
tpr=$(measure tlspolicy "$tp" -c "$work" -m "hash:$work/tp" rebuild)

records() {
	db5.3_dump -p "$1" | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - | LC_ALL=C sort | md5sum
}
if [ "$(records "$work/pm.db")" != "$(records "$work/tp.db")" ]; then
	echo "FAIL: the databases hold different records" >&2
	exit 1
fi
echo "same records: yes ($(db5.3_dump -p "$work/tp.db" | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - | wc -l) records)"
read -r _ pm_s pm_kb pm_u pm_y <<<"$pm"
read -r _ tp_s tp_kb tp_u tp_y <<<"$tpr"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (wall times are only comparable on a quiet machine)"
awk -v ps="$pm_s" -v pk="$pm_kb" -v pc="$pm_u $pm_y" -v ts="$tp_s" -v tk="$tp_kb" -v tc="$tp_u $tp_y" 'BEGIN {
	split(pc, a, " "); split(tc, b, " ")
	printf "postmap    %6.2f s wall  %6.2f s cpu  %7.1f MB peak RSS\n", ps, a[1] + a[2], pk / 1024
	printf "tlspolicy  %6.2f s wall  %6.2f s cpu  %7.1f MB peak RSS\n", ts, b[1] + b[2], tk / 1024
	printf "ratio      %6.2fx wall  %6.2fx cpu (target <= 0.60x)  peak %.1f MB (target <= 100 MB)\n", ts / ps, (b[1] + b[2]) / (a[1] + a[2]), tk / 1024
}'
