#!/bin/bash
# check benchmark, many entries behind one server: ENTRIES domains whose MX
# is the same local STARTTLS server, plus one domain whose server accepts
# the connection and never answers (a tarpit), checked by one "tlspolicy
# check --timeout T". Postfix's client would make the same conversation
# with that server for each of them, so check makes it once (one session in
# the server's log) and starts every probe at once: the run should take
# about T, not ENTRIES handshakes plus T. Side by side, the peer: a loop of
# posttls-finger over the same entries, one at a time, as a hand-written
# monitor does (posttls-finger uses the system resolver, so it is given the
# server as [127.0.0.1]:PORT; the tarpit costs it its -t timeout, T).
#
# usage: bench/check_shared.sh [BUILD_DIR] [ENTRIES] [TIMEOUT]
#   BUILD_DIR  a RelWithDebInfo build (default: build), with
#              BUILD_DIR/tlspolicy, BUILD_DIR/tests/testsmtpd, .../testdns
#   ENTRIES    default 1000; TIMEOUT (check --timeout, seconds) default 3
set -eu
build=${1:-build}
n=${2:-1000}
timeout=${3:-3}
tp="$build/tlspolicy"
smtpd="$build/tests/testsmtpd"
dns="$build/tests/testdns"
for f in "$tp" "$smtpd" "$dns"; do
	[ -x "$f" ] || { echo "missing $f: cmake --build $build first" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"
command -v posttls-finger >/dev/null || { echo "posttls-finger not found (apt-get install postfix)" >&2; exit 1; }

work=$(mktemp -d /tmp/tp-bench-shared.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key" -out "$work/crt" \
	-subj /CN=mx.bench.test -days 365 2>/dev/null
cat "$work/crt" "$work/key" >"$work/pem"
fp=$(openssl x509 -in "$work/crt" -noout -fingerprint -md5 | sed 's/^.*=//')
"$smtpd" --cert "$work/pem" --port-file "$work/port" --log "$work/server.log" 2>/dev/null &
pids+=($!)
"$smtpd" --cert "$work/pem" --port-file "$work/tarpit" --mode silent --log /dev/null 2>/dev/null &
pids+=($!)
for f in port tarpit; do
	for _ in $(seq 1 100); do [ -s "$work/$f" ] && break; sleep 0.1; done
done
port=$(cat "$work/port") tarpit=$(cat "$work/tarpit")
{
	echo 'mx.bench.test A 127.0.0.1'
	for i in $(seq 1 "$n"); do echo "d$i.bench.test MX 10 mx.bench.test"; done
	echo 'tarpit.bench.test MX 10 mx.bench.test'
} >"$work/zone"
"$dns" --zone "$work/zone" --port-file "$work/dnsport" --log /dev/null 2>/dev/null &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/dnsport" ] && break; sleep 0.1; done
export TLSPOLICY_DNS_SERVERS="127.0.0.1:$(cat "$work/dnsport")"
printf 'compatibility_level = 3.6\nsmtp_tls_fingerprint_digest = md5\nsmtp_tls_policy_maps = hash:%s/tls_policy\nqueue_directory = %s/queue\n' \
	"$work" "$work" >"$work/main.cf"
{
	for i in $(seq 1 "$n"); do printf 'd%s.bench.test:%s\tfingerprint match=%s\n' "$i" "$port" "$fp"; done
	printf 'tarpit.bench.test:%s\tfingerprint match=%s\n' "$tarpit" "$fp"
} >"$work/tls_policy"
"$tp" -c "$work" rebuild >/dev/null
echo "$((n + 1)) entries: $n behind one local STARTTLS server, 1 behind a tarpit; $(nproc) CPUs, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"

now() { date +%s.%N; }
t0=$(now)
rc=0
/usr/bin/time -f '%M' -o "$work/rss" "$tp" -c "$work" check --timeout "$timeout" >"$work/check.out" || rc=$?
t1=$(now)
head -1 "$work/check.out"
# UNKNOWN (3): the tarpit answers nothing; every other entry must be OK.
[ "$rc" = 3 ] || { echo "tlspolicy check exit $rc, want 3 (the tarpit UNKNOWN)" >&2; exit 1; }
head -1 "$work/check.out" | grep -q " 0 critical, 0 warning, 1 unknown, $n ok " \
	|| { echo "unexpected verdicts:" >&2; grep -v '^OK ' "$work/check.out" | head -5 >&2; exit 1; }
sessions=$(grep -c 'peer=.* mode=' "$work/server.log" || true)

ok=0
t2=$(now)
for i in $(seq 1 "$n"); do
	if posttls-finger -c -l fingerprint -d md5 -t "$timeout" -T "$timeout" "[127.0.0.1]:$port" 2>&1 | grep -q "fingerprint=$fp"; then
		ok=$((ok + 1))
	fi
done
posttls-finger -c -l fingerprint -d md5 -t "$timeout" -T "$timeout" "[127.0.0.1]:$tarpit" >/dev/null 2>&1 || true
t3=$(now)
[ "$ok" = "$n" ] || { echo "posttls-finger saw the pin at $ok of $n entries" >&2; exit 1; }

awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v t="$timeout" -v s="$sessions" \
	-v rss="$(tail -1 "$work/rss")" 'BEGIN {
	tc = b - a; tf = d - c
	printf "server sessions during check: %d (one conversation serves every entry)\n", s
	printf "tlspolicy check --timeout %d: %.2f s (--timeout + 1 s = %d s), peak RSS %.1f MB\n", t, tc, t + 1, rss / 1024
	printf "posttls-finger loop:        %.2f s\n", tf
	printf "ratio: check takes %.3fx the loop'"'"'s time\n", tc / tf
}'
