#!/bin/bash
# check benchmark: the same N pinned entries checked by "tlspolicy check"
# (all probes at once) and by a loop of posttls-finger (one at a time, what
# a hand-written monitor does), in one run, against local testsmtpd
# servers. Prints both wall times and the ratio, and checks both saw the
# pinned fingerprint at every entry.
#
# usage: bench/check.sh [BUILD_DIR] [ENTRIES] [SERVERS]
#   BUILD_DIR  a RelWithDebInfo build (default: build), with
#              BUILD_DIR/tlspolicy, BUILD_DIR/tests/testsmtpd and .../testdns
#   ENTRIES    default 200; SERVERS (testsmtpd instances) default 4
set -eu
build=${1:-build}
n=${2:-200}
nsrv=${3:-4}
tp="$build/tlspolicy"
smtpd="$build/tests/testsmtpd"
for f in "$tp" "$smtpd"; do
	[ -x "$f" ] || { echo "missing $f: cmake --build $build first" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"
command -v posttls-finger >/dev/null || { echo "posttls-finger not found (apt-get install postfix)" >&2; exit 1; }

work=$(mktemp -d /tmp/tp-bench-check.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key" -out "$work/crt" \
	-subj /CN=bench.test -days 365 2>/dev/null
cat "$work/crt" "$work/key" >"$work/pem"
fp=$(openssl x509 -in "$work/crt" -noout -fingerprint -md5 | sed 's/^.*=//')
ports=()
for i in $(seq 1 "$nsrv"); do
	"$smtpd" --cert "$work/pem" --port-file "$work/port$i" --log /dev/null 2>/dev/null &
	pids+=($!)
done
for i in $(seq 1 "$nsrv"); do
	for _ in $(seq 1 100); do [ -s "$work/port$i" ] && break; sleep 0.1; done
	ports+=("$(cat "$work/port$i")")
done
printf 'compatibility_level = 3.6\nsmtp_tls_fingerprint_digest = md5\nsmtp_tls_policy_maps = hash:%s/tls_policy\nqueue_directory = %s/queue\n' \
	"$work" "$work" >"$work/main.cf"
targets=()
# Each key is a domain:port whose MX is the local server, as Postfix
# resolves it; the test DNS server answers.
{
	echo 'mx.bench.test A 127.0.0.1'
	for i in $(seq 1 "$n"); do echo "d$i.bench.test MX 10 mx.bench.test"; done
} >"$work/zone"
"$build/tests/testdns" --zone "$work/zone" --port-file "$work/dnsport" --log /dev/null 2>/dev/null &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/dnsport" ] && break; sleep 0.1; done
export TLSPOLICY_DNS_SERVERS="127.0.0.1:$(cat "$work/dnsport")"
for i in $(seq 1 "$n"); do
	port=${ports[$(( i % nsrv ))]}
	printf 'd%s.bench.test:%s\tfingerprint match=%s\n' "$i" "$port" "$fp"
done >"$work/tls_policy"
for i in $(seq 1 "$n"); do targets[$i]="[127.0.0.1]:${ports[$(( i % nsrv ))]}"; done
"$tp" -c "$work" rebuild >/dev/null
echo "$n entries over $nsrv local STARTTLS servers; $(nproc) CPUs, $(uname -sr)"

now() { date +%s.%N; }
t0=$(now)
rc=0
"$tp" -c "$work" check --jobs 32 --timeout 10 >"$work/check.out" || rc=$?
t1=$(now)
head -1 "$work/check.out"
[ "$rc" = 0 ] || { echo "tlspolicy check exit $rc" >&2; exit 1; }

ok=0
t2=$(now)
for i in $(seq 1 "$n"); do
	if posttls-finger -c -l fingerprint -d md5 "${targets[$i]}" 2>&1 | grep -q "fingerprint=$fp"; then
		ok=$((ok + 1))
	fi
done
t3=$(now)
echo "posttls-finger loop: $ok of $n entries presented the pinned fingerprint"
[ "$ok" = "$n" ] || { echo "posttls-finger did not see the pin everywhere" >&2; exit 1; }

awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
	tc = b - a; tf = d - c
	printf "tlspolicy check --jobs 32: %.2f s\n", tc
	printf "posttls-finger loop:       %.2f s\n", tf
	printf "ratio: check takes %.3fx the loop'"'"'s time (%.1fx faster)\n", tc / tf, tf / tc
}'
