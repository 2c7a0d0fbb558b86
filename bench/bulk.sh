#!/bin/bash
# Bulk benchmark (issue 13): the costs of working on many entries at once,
# and of a one-entry change on a large table, against the full rebuild.
#
#   1. set: one `set` on a 300k-entry table against `postmap` of it
#      (target: at most 0.25x postmap's time; peak RSS at most 2.5x the
#      source's size). The db is postmap's, so the set writes it
#      incrementally (a copy with the changed record).
#   2. rotate: `rotate --yes --trust tofu` of 1000 entries of a 100k-entry
#      table whose servers (local testsmtpd) now present a new
#      certificate, against one `rebuild` of that table (target: at most
#      3x): 2a with a server address of its own for each entry (1000
#      handshakes on both ends, the worst case), 2b with the 1000 entries
#      behind 4 servers (a hosting provider's new certificate, shared by
#      its customers' domains: one probe per server).
#   3. import: `import` of 1000 new keys, each probed on a local testsmtpd,
#      into a 100k-entry table, against one `rebuild` (target: at most 3x).
#   4. the edits alone: `import` of 1000 keys with their pins given (no
#      probes), what rotate's write of 1000 new pins costs.
#
# Each figure is the median of RUNS runs (default 3), under /usr/bin/time
# (wall, user+sys, peak RSS); every result is checked (the db holds the
# records postmap makes of the source).
#
# usage: bench/bulk.sh [BUILD_DIR] [RUNS]
#   BUILD_DIR  a RelWithDebInfo build (default: build), with
#              BUILD_DIR/tlspolicy, tests/gen_policy and tests/testsmtpd
set -eu
build=${1:-build}
runs=${2:-3}
tp="$build/tlspolicy"
gen="$build/tests/gen_policy"
smtpd="$build/tests/testsmtpd"
dns="$build/tests/testdns"
for f in "$tp" "$gen" "$smtpd" "$dns"; do
	[ -x "$f" ] || { echo "missing $f: cmake --build $build first" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"
for t in postmap db5.3_dump /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "$t not found (postfix, db5.3-util, time)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tp-bench-bulk.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
echo "$(nproc) CPUs, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"

# measure LABEL CMD...: appends "LABEL wall KB user sys" to $work/all
measure() {
	local label=$1
	shift
	sync
	/usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
		echo "FAIL: $*" >&2
		cat "$work/err" "$work/out" >&2
		exit 1
	}
	echo "$label $(cat "$work/time")" >>"$work/all"
}
median() {	# label, field (2 wall, 3 KB, cpu)
	awk -v l="$1" -v f="$2" '$1 == l { print (f == "cpu") ? $4 + $5 : $f }' "$work/all" |
		sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
records() {
	db5.3_dump -p "$1" | sed -n '/^HEADER=END$/,/^DATA=END$/p' | sed '1d;$d' | paste - - | LC_ALL=C sort | md5sum
}
same_as_postmap() {	# DIR: the table's db holds the records postmap makes of its source
	mkdir -p "$work/oracle"
	cp "$1/tls_policy" "$work/oracle/tls_policy"
	postmap -c "$1" "hash:$work/oracle/tls_policy"
	[ "$(records "$1/tls_policy.db")" = "$(records "$work/oracle/tls_policy.db")" ] ||
		{ echo "FAIL: $1: the db holds other records than postmap makes" >&2; exit 1; }
}
conf() {	# DIR: main.cf for a table there
	mkdir -p "$1"
	printf 'compatibility_level = 3.6\nsmtp_tls_fingerprint_digest = sha256\nsmtp_tls_policy_maps = hash:%s/tls_policy\n' "$1" >"$1/main.cf"
}

# 1. set on 300k entries against postmap
d=$work/set
conf "$d"
"$gen" bench 1 300000 "$d/tls_policy"
size=$(stat -c %s "$d/tls_policy")
for r in $(seq 1 "$runs"); do
	rm -f "$d/tls_policy.db"
	measure postmap postmap -c "$d" "hash:$d/tls_policy"
	level=encrypt; [ $((r % 2)) = 0 ] && level=may
	measure set "$tp" -c "$d" set bench-set.example --level $level
	grep -q "db updated" "$work/out" || { echo "FAIL: set did not update the db incrementally: $(cat "$work/out")" >&2; exit 1; }
done
same_as_postmap "$d"

# Servers for rotate and import: 4 local STARTTLS servers, cert A, then B.
for c in a b; do
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/$c.key" -out "$work/$c.crt" \
		-subj "/CN=bench-$c.test" -days 365 2>/dev/null
	cat "$work/$c.crt" "$work/$c.key" >"$work/$c.pem"
done
cp "$work/a.pem" "$work/live.pem"
ports=()
for i in 1 2 3 4; do
	"$smtpd" --cert "$work/live.pem" --port-file "$work/port$i" --log /dev/null 2>/dev/null &
	pids+=($!)
done
for i in 1 2 3 4; do
	for _ in $(seq 1 100); do [ -s "$work/port$i" ] && break; sleep 0.1; done
	ports+=("$(cat "$work/port$i")")
done
fpa=$(openssl x509 -in "$work/a.crt" -noout -fingerprint -sha256 | sed 's/^.*=//')

# rotate_runs LABEL REBUILD_LABEL DIR KEY...: RUNS times, DIR's table is
# DIR/base plus the keys pinned to cert A, rebuilt (REBUILD_LABEL), and,
# its servers presenting cert B, rotated (LABEL); every key must rotate.
rotate_runs() {
	local label=$1 rlabel=$2 dir=$3 k r
	shift 3
	for r in $(seq 1 "$runs"); do
		cp "$work/a.pem" "$work/live.pem"
		{
			cat "$dir/base"
			for k in "$@"; do printf '%s\tfingerprint match=%s\n' "$k" "$fpa"; done
		} >"$dir/tls_policy"
		measure "$rlabel" "$tp" -c "$dir" rebuild
		cp "$work/b.pem" "$work/live.pem"
		measure "$label" "$tp" -c "$dir" rotate --yes --trust tofu --jobs 32 --timeout 30 "$@"
	done
	[ "$(grep -c ": rotated" "$work/out" || true)" = $# ] ||
		{ echo "FAIL: $label: rotated $(grep -c ": rotated" "$work/out") of $# entries" >&2; exit 1; }
	same_as_postmap "$dir"
}

# 2a. rotate of 1000 of 100k entries against one rebuild. The 1000 next
# hops are [127.3.S.A]:PORT (no DNS): 63 more testsmtpd, each listening on
# 16 loopback addresses with one port, present cert A, then B; rotate is
# given the 1000 keys.
d=$work/rot
conf "$d"
"$gen" bench 2 99000 "$d/base"
keys=()
for s in $(seq 0 62); do
	args=()
	for a in $(seq 1 16); do args+=(--listen "127.3.$s.$a:0"); done
	"$smtpd" --cert "$work/live.pem" "${args[@]}" --port-file "$work/rport$s" --log /dev/null 2>/dev/null &
	pids+=($!)
done
for s in $(seq 0 62); do
	for _ in $(seq 1 200); do [ -s "$work/rport$s" ] && break; sleep 0.1; done
	p=$(head -n 1 "$work/rport$s")
	for a in $(seq 1 16); do keys+=("[127.3.$s.$a]:$p"); done
done
keys=("${keys[@]:0:1000}")
rotate_runs rotate rebuild "$d" "${keys[@]}"

# 2b. rotate of 1000 entries behind the 4 servers above, against one
# rebuild: a hosting provider's new certificate, shared by many of its
# customers' domains. The keys are hostedN.bench.test:PORT, their MX
# (testdns) one name for 127.0.0.1; each server is probed once for all
# its entries.
{
	echo 'mx.bench.test A 127.0.0.1'
	for i in $(seq 1 1000); do echo "hosted$i.bench.test MX 10 mx.bench.test"; done
} >"$work/zone"
"$dns" --zone "$work/zone" --port-file "$work/dnsport" --log /dev/null 2>/dev/null &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/dnsport" ] && break; sleep 0.1; done
export TLSPOLICY_DNS_SERVERS="127.0.0.1:$(cat "$work/dnsport")"
d=$work/hosted
conf "$d"
"$gen" bench 4 99000 "$d/base"
hkeys=()
for i in $(seq 1 1000); do hkeys+=("hosted$i.bench.test:${ports[$((i % 4))]}"); done
rotate_runs hosted rebuild3 "$d" "${hkeys[@]}"

# 3. import of 1000 keys into 100k entries against one rebuild
d=$work/imp
conf "$d"
"$gen" bench 3 100000 "$d/base"
cp "$work/a.pem" "$work/live.pem"
for i in $(seq 1 1000); do
	echo "imp$i.bench.test --from 127.0.0.1:${ports[$((i % 4))]}"
done >"$work/import"
for r in $(seq 1 "$runs"); do
	cp "$d/base" "$d/tls_policy"
	measure rebuild2 "$tp" -c "$d" rebuild
	measure import "$tp" -c "$d" import --jobs 32 --timeout 10 "$work/import"
done
[ "$(grep -c "^imp[0-9]*.bench.test" "$d/tls_policy")" = 1000 ] || { echo "FAIL: import did not add 1000 entries" >&2; exit 1; }
same_as_postmap "$d"

# 4. The edits alone: import of 1000 keys with their pins given (no probe),
# what rotate's write of 1000 new pins costs: one parse, 1000 edits, one
# incremental write.
for i in $(seq 1 1000); do
	echo "pin$i.bench.test fingerprint match=$fpa"
done >"$work/pins"
for r in $(seq 1 "$runs"); do
	cp "$d/base" "$d/tls_policy"
	"$tp" -c "$d" rebuild >/dev/null
	measure edits "$tp" -c "$d" import "$work/pins"
done
same_as_postmap "$d"

awk -v size="$size" \
    -v pw="$(median postmap 2)" -v pc="$(median postmap cpu)" -v pk="$(median postmap 3)" \
    -v sw="$(median set 2)" -v sc="$(median set cpu)" -v sk="$(median set 3)" \
    -v bw="$(median rebuild 2)" -v bc="$(median rebuild cpu)" \
    -v rw="$(median rotate 2)" -v rc="$(median rotate cpu)" -v rk="$(median rotate 3)" \
    -v b3w="$(median rebuild3 2)" -v b3c="$(median rebuild3 cpu)" \
    -v hw="$(median hosted 2)" -v hc="$(median hosted cpu)" -v hk="$(median hosted 3)" \
    -v b2w="$(median rebuild2 2)" -v b2c="$(median rebuild2 cpu)" \
    -v iw="$(median import 2)" -v ic="$(median import cpu)" -v ik="$(median import 3)" \
    -v ew="$(median edits 2)" -v ec="$(median edits cpu)" -v ek="$(median edits 3)" -v n="$runs" 'BEGIN {
	printf "medians of %d runs (wall s / cpu s / peak RSS MB)\n", n
	printf "set, 300k entries (%.1f MB source)\n", size / 1048576
	printf "  postmap    %6.2f / %6.2f / %6.1f\n", pw, pc, pk / 1024
	printf "  set        %6.2f / %6.2f / %6.1f\n", sw, sc, sk / 1024
	printf "  ratio      %6.2fx wall  %6.2fx cpu (target <= 0.25x); RSS %.2fx the source (target <= 2.5x)\n", sw / pw, sc / pc, sk * 1024 / size
	printf "rotate of 1000 entries, each its own server, 100k-entry table\n"
	printf "  rebuild    %6.2f / %6.2f\n", bw, bc
	printf "  rotate     %6.2f / %6.2f / %6.1f\n", rw, rc, rk / 1024
	printf "  ratio      %6.2fx wall  %6.2fx cpu (target <= 3x)\n", rw / bw, rc / bc
	printf "rotate of 1000 entries behind 4 servers (one probe each), 100k-entry table\n"
	printf "  rebuild    %6.2f / %6.2f\n", b3w, b3c
	printf "  rotate     %6.2f / %6.2f / %6.1f\n", hw, hc, hk / 1024
	printf "  ratio      %6.2fx wall  %6.2fx cpu (target <= 3x)\n", hw / b3w, hc / b3c
	printf "import of 1000 keys, 100k-entry table\n"
	printf "  rebuild    %6.2f / %6.2f\n", b2w, b2c
	printf "  import     %6.2f / %6.2f / %6.1f\n", iw, ic, ik / 1024
	printf "  ratio      %6.2fx wall  %6.2fx cpu (target <= 3x)\n", iw / b2w, ic / b2c
	printf "1000 edits, pins given (no probes), 100k-entry table\n"
	printf "  import     %6.2f / %6.2f / %6.1f\n", ew, ec, ek / 1024
	printf "  ratio      %6.2fx wall  %6.2fx cpu of the rebuild above\n", ew / b2w, ec / b2c
}'
