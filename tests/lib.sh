# tests/lib.sh - shared helpers for the script tests (tests/cli, tests/e2e, ...)
#
# Source it first thing:   . "$TP_SOURCE_DIR/tests/lib.sh"
# It turns on `set -euo pipefail`, creates a scratch directory $TP_TMP that is
# removed at exit (kept when TP_KEEP_TMP=1, for debugging), and stops every
# test server started with tp_start_server or tp_start_dns when the script exits, however it
# exits. ctest provides TLSPOLICY, TP_SOURCE_DIR, TP_BINARY_DIR, TP_TOOLS_DIR.
#
# Conventions: functions are named tp_*, except fail and skip. Exit status 77
# means "skipped" to ctest (SKIP_RETURN_CODE).

set -euo pipefail

: "${TP_TOOLS_DIR:?TP_TOOLS_DIR is not set (run the test through ctest)}"
TESTSMTPD="$TP_TOOLS_DIR/testsmtpd"
TESTDNS="$TP_TOOLS_DIR/testdns"

TP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tp-test.XXXXXX")
TP_SERVERS=()   # names of the servers started, for the exit trap
TP_PIDS=()      # other background children of the script, killed by the exit trap

# fail MESSAGE...
#   Prints "FAIL: MESSAGE" (with the script name) to stderr and exits 1.
#   Use for every failed expectation: the message should say got and want.
fail() {
    echo "FAIL: ${0##*/}: $*" >&2
    exit 1
}

# skip MESSAGE...
#   Prints "SKIP: MESSAGE" and exits 77, which ctest reports as skipped.
skip() {
    echo "SKIP: ${0##*/}: $*" >&2
    exit 77
}

# tp_asan_build BINARY: true when BINARY is built with AddressSanitizer.
# grep reads all of its input: with -q it may exit first, and under
# pipefail the writer's SIGPIPE would make an ASan build look plain.
tp_asan_build() {
    ldd "$1" 2>/dev/null | grep asan >/dev/null || nm -D "$1" 2>/dev/null | grep __asan_init >/dev/null
}

# tp_note MESSAGE...
#   Progress message on stderr (shown by ctest --output-on-failure).
tp_note() {
    echo "--- $*" >&2
}

# tp_need COMMAND...
#   Skips the test (exit 77) when one of the commands is not installed.
tp_need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
    done
}

# tp_have_ipv6
#   True when the loopback interface has ::1 (so [::1] tests can run).
tp_have_ipv6() {
    ip -6 addr show lo 2>/dev/null | grep -q 'inet6 ::1/128'
}

# tp_wait_until SECONDS COMMAND [ARGS...]
#   Runs COMMAND every 0.1 s until it succeeds (return 0) or SECONDS pass
#   (return 1). Example: tp_wait_until 5 test -s "$file"
tp_wait_until() {
    local limit=$(( $1 * 10 )) i=0
    shift
    until "$@"; do
        i=$((i + 1))
        [ "$i" -lt "$limit" ] || return 1
        sleep 0.1
    done
}

# tp_expect_status WANT COMMAND [ARGS...]
#   Runs COMMAND with no input, stdout to $TP_TMP/out and stderr to
#   $TP_TMP/err, and fails unless it exits WANT, showing both.
tp_expect_status() {
    local want=$1 got=0
    shift
    "$@" >"$TP_TMP/out" 2>"$TP_TMP/err" </dev/null || got=$?
    [ "$got" = "$want" ] || fail "$*: exit $got, want $want; stdout: $(cat "$TP_TMP/out"); stderr: $(cat "$TP_TMP/err")"
}

# tp_sandbox_config DIR [DIGEST]
#   Writes DIR/main.cf for a sandbox Postfix config: compatibility level
#   3.6, the policy table hash:DIR/tls_policy, a queue directory of its own
#   (no Postfix running there), and smtp_tls_fingerprint_digest
#   = DIGEST when given (else Postfix's default for 3.6, sha256).
tp_sandbox_config() {
    mkdir -p "$1"
    {
        echo 'compatibility_level = 3.6'
        [ -z "${2:-}" ] || echo "smtp_tls_fingerprint_digest = $2"
        echo 'smtp_tls_policy_maps = hash:${config_directory}/tls_policy'
        # No Postfix runs here: check and list must not read the machine's queue.
        echo 'queue_directory = ${config_directory}/queue'
    } >"$1/main.cf"
    tp_cool_down "$1/main.cf"
}

# tp_cool_down FILE...
#   Dates FILE a minute back. Postfix (postconf, postmap, postfix) reads
#   a main.cf changed in the last second or two again every 0.3 s until
#   it is older ("pausing to let main.cf cool down"): 1.5-2 s per command
#   on a fresh file. Its age is nothing a test checks.
tp_cool_down() {
    touch -d '-1 minute' "$@"
}

# tp_dead_port
#   Prints a loopback TCP port nothing listens on, for "connection
#   refused" cases.
tp_dead_port() {
    local p i
    for i in $(seq 1 100); do
        p=$(( RANDOM % 20000 + 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    fail "tp_dead_port: every port tried answered"
}

# tp_make_cert PREFIX CN [OPTIONS]
#   Makes a self-signed certificate and its key:
#     PREFIX.crt (certificate), PREFIX.key (key), PREFIX.pem (both, the
#     form testsmtpd --cert takes so one rename swaps both).
#   Options:
#     --ec            EC P-256 key (default RSA 2048)
#     --days N        valid from now for N days (default 365; 1 = expiring
#                     soon)
#     --not-before T  --not-after T   explicit validity, T as
#                     YYYYMMDDHHMMSSZ (e.g. an already expired certificate:
#                     --not-before 20200101000000Z --not-after 20210101000000Z)
#     --san NAMES     subjectAltName, e.g. DNS:mx.test,IP:127.0.0.1
#     --key FILE      reuse this private key (a renewal with the same public
#                     key) instead of making a new one; --ec is then ignored
#     --ca PREFIX     issued by the CA made with tp_make_ca PREFIX instead of
#                     self-signed (with --san, the names it is for)
#   The files are written with temp + rename, so PREFIX may be the files a
#   running server uses (see also tp_install_cert).
tp_make_cert() {
    local prefix=$1 cn=$2 keyalg=rsa days=365 nb="" na="" san="" reuse="" ca=""
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
            --ec) keyalg=ec ;;
            --days) days=$2; shift ;;
            --not-before) nb=$2; shift ;;
            --not-after) na=$2; shift ;;
            --san) san=$2; shift ;;
            --key) reuse=$2; shift ;;
            --ca) ca=$2; shift ;;
            *) fail "tp_make_cert: unknown option $1" ;;
        esac
        shift
    done
    local work
    work=$(mktemp -d "$TP_TMP/cert.XXXXXX")
    if [ -n "$reuse" ]; then
        cp "$reuse" "$work/key" || fail "tp_make_cert: cannot read key $reuse"
    elif [ "$keyalg" = ec ]; then
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -out "$work/key" 2>/dev/null || fail "tp_make_cert: EC key generation failed"
    else
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
            -out "$work/key" 2>/dev/null || fail "tp_make_cert: RSA key generation failed"
    fi
    local ext=()
    [ -n "$san" ] && ext=(-addext "subjectAltName=$san")
    if [ -n "$ca" ]; then
        openssl req -new -key "$work/key" -out "$work/csr" -subj "/CN=$cn" "${ext[@]}" \
            2>"$work/err" || fail "tp_make_cert: openssl req: $(cat "$work/err")"
        printf 'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n%s\n' \
            "${san:+subjectAltName = $san}" >"$work/ext"
        openssl x509 -req -in "$work/csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
            -CAserial "$work/serial" -days "$days" -extfile "$work/ext" -out "$work/crt" \
            2>"$work/err" || fail "tp_make_cert: openssl x509 -req: $(cat "$work/err")"
    elif [ -z "$nb$na" ]; then
        openssl req -new -x509 -key "$work/key" -out "$work/crt" -days "$days" \
            -subj "/CN=$cn" "${ext[@]}" 2>"$work/err" \
            || fail "tp_make_cert: openssl req: $(cat "$work/err")"
    else
        # OpenSSL 3.0's req/x509 cannot set a start date; `openssl ca`
        # can, self-signing with a throwaway CA database.
        [ -n "$nb" ] || nb=$(date -u +%Y%m%d%H%M%SZ)
        [ -n "$na" ] || fail "tp_make_cert: --not-before needs --not-after"
        mkdir "$work/ca"
        : >"$work/ca/index"
        cat >"$work/ca.cnf" <<EOF
[ ca ]
default_ca = tp
[ tp ]
database = $work/ca/index
new_certs_dir = $work/ca
serial = $work/ca/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
EOF
        openssl rand -hex 8 >"$work/ca/serial"
        openssl req -new -key "$work/key" -out "$work/csr" -subj "/CN=$cn" \
            "${ext[@]}" 2>"$work/err" || fail "tp_make_cert: openssl req: $(cat "$work/err")"
        openssl ca -batch -config "$work/ca.cnf" -selfsign -keyfile "$work/key" \
            -in "$work/csr" -out "$work/crt" -startdate "$nb" -enddate "$na" \
            -notext 2>"$work/err" || fail "tp_make_cert: openssl ca: $(cat "$work/err")"
    fi
    cat "$work/crt" "$work/key" >"$work/pem"
    mv -f "$work/key" "$prefix.key"
    mv -f "$work/crt" "$prefix.crt"
    mv -f "$work/pem" "$prefix.pem"
    rm -rf "$work"
}

# tp_make_ca PREFIX CN
#   Makes a self-signed CA (RSA, basicConstraints CA:TRUE, 365 days):
#   PREFIX.crt and PREFIX.key; tp_make_cert --ca PREFIX issues from it, and
#   PREFIX.crt is what --ca-file or smtp_tls_CAfile names.
tp_make_ca() {
    openssl req -new -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" \
        -days 365 -subj "/CN=$2" -addext 'basicConstraints=critical,CA:TRUE' \
        -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>"$1.err" ||
        fail "tp_make_ca: openssl req: $(cat "$1.err")"
}

# tp_cert_fingerprint CERTFILE [DIGEST]
#   Prints the certificate fingerprint (DIGEST default sha256) the way
#   Postfix and tlspolicy print it: upper-case hex pairs joined by ':'.
tp_cert_fingerprint() {
    openssl x509 -in "$1" -noout -fingerprint "-${2:-sha256}" | sed 's/^.*=//'
}

# tp_pkey_fingerprint CERTFILE [DIGEST]
#   Prints the public-key fingerprint: digest of the DER SubjectPublicKeyInfo
#   (what Postfix calls pkey_fingerprint).
tp_pkey_fingerprint() {
    openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER \
        | openssl dgst "-${2:-sha256}" -c | sed 's/^.*= *//' | tr a-f A-F
}

# tp_install_cert SRCFILE DESTFILE
#   Replaces DESTFILE by a copy of SRCFILE atomically (copy + rename), so a
#   running testsmtpd never reads a half-written file. Use with the .pem
#   (cert+key) a server was started with: the next connection presents the
#   new certificate.
tp_install_cert() {
    cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# tp_start_server NAME [TESTSMTPD OPTIONS...]
#   Starts testsmtpd in the background with its files in $TP_TMP/srv-NAME/:
#   port (port file), pid, log (--log), mail/ (--maildir); pass --cert etc.
#   yourself. Waits (10 s at most) until it listens, then sets TP_PORT to
#   its (first) port. Stopped automatically at exit. Examples:
#     tp_start_server a --cert "$TP_TMP/a.pem"
#     tp_start_server bad --cert "$TP_TMP/a.pem" --mode silent
#     tp_start_server v6 --cert "$TP_TMP/a.pem" --listen '[::1]:0'
tp_start_server() {
    local name=$1
    shift
    local dir="$TP_TMP/srv-$name"
    mkdir -p "$dir/mail"
    rm -f "$dir/port"
    "$TESTSMTPD" --port-file "$dir/port" --pid-file "$dir/pid" --log "$dir/log" \
        --maildir "$dir/mail" "$@" 2>>"$dir/stderr" &
    echo $! >"$dir/bgpid"
    TP_SERVERS+=("$name")
    if ! tp_wait_until 10 test -s "$dir/port"; then
        cat "$dir/stderr" >&2 || true
        fail "testsmtpd $name did not start"
    fi
    TP_PORT=$(head -n 1 "$dir/port")
}

# tp_server_port NAME    prints the (first) port of server NAME.
# tp_server_log NAME     prints the path of its log file.
# tp_server_maildir NAME prints the path of its mail directory.
tp_server_port() { head -n 1 "$TP_TMP/srv-$1/port"; }
tp_server_log() { echo "$TP_TMP/srv-$1/log"; }
tp_server_maildir() { echo "$TP_TMP/srv-$1/mail"; }

# tp_mail_count NAME
#   Prints how many messages server NAME has saved.
tp_mail_count() {
    find "$TP_TMP/srv-$1/mail" -name '*.eml' | wc -l
}

# tp_wait_mail NAME COUNT [SECONDS]
#   Waits until server NAME has saved at least COUNT messages (default 10 s);
#   fails the test otherwise.
tp_wait_mail() {
    tp_wait_until "${3:-10}" _tp_mail_at_least "$1" "$2" \
        || fail "server $1: got $(tp_mail_count "$1") messages, want $2"
}
_tp_mail_at_least() { [ "$(tp_mail_count "$1")" -ge "$2" ]; }

# tp_stop_server NAME
#   Stops server NAME (SIGTERM, waits for it to exit; its connections end).
tp_stop_server() {
    local dir="$TP_TMP/srv-$1" pid
    [ -f "$dir/bgpid" ] || return 0
    pid=$(cat "$dir/bgpid")
    rm -f "$dir/bgpid"
    _tp_kill_child TERM "$pid"
    wait "$pid" 2>/dev/null || true
}

# _tp_kill_child SIGNAL PID: signal PID if it is still a child of this
# shell. A server that ended by itself (--count 1) was reaped, and with
# pid_max 32768 its pid soon belongs to another process, another test's
# ctest for one: a blind kill at exit took a whole test run down.
_tp_kill_child() {
    local ppid
    ppid=$(ps -o ppid= -p "$2" 2>/dev/null | tr -d ' ')
    if [ -n "$ppid" ] && { [ "$ppid" = "$$" ] || [ "$ppid" = "$BASHPID" ]; }; then
        kill "-$1" "$2" 2>/dev/null || true
    fi
}

# ---- a loopback DNS server (tests never use real DNS) ----

# tp_start_dns NAME ZONEFILE [TESTDNS OPTIONS...]
#   Starts testdns in the background, authoritative for ZONEFILE (lines
#   "NAME TYPE VALUE": A, AAAA, CNAME, MX "PREF HOST", TLSA "USAGE
#   SELECTOR MTYPE HEX", RAW "TYPE HEX"; or "NAME SERVFAIL", "NAME
#   NXDOMAIN", "NAME DROP", and "NAME SECURE" for answers with the DNSSEC
#   AD bit; see tests/tools/testdns.c), on 127.0.0.1
#   UDP and TCP, with its files in $TP_TMP/srv-dns-NAME/: port, pid, log
#   (one line per query). Waits (10 s at most) until it listens, then sets
#   TP_DNS_PORT. Stopped automatically at exit, like tp_start_server. Point
#   the CLI at it with TLSPOLICY_DNS_SERVERS=127.0.0.1:$TP_DNS_PORT (or
#   "$(tp_dns_servers NAME)"). Example:
#     printf '%s\n' 'partner.test MX 10 mx.partner.test' \
#       'mx.partner.test A 127.0.0.1' >"$TP_TMP/zone"
#     tp_start_dns dns "$TP_TMP/zone"
tp_start_dns() {
    local name=$1 zone=$2
    shift 2
    local dir="$TP_TMP/srv-dns-$name"
    mkdir -p "$dir"
    rm -f "$dir/port"
    "$TESTDNS" --zone "$zone" --port-file "$dir/port" --pid-file "$dir/pid" \
        --log "$dir/log" "$@" 2>>"$dir/stderr" &
    echo $! >"$dir/bgpid"
    TP_SERVERS+=("dns-$name")
    if ! tp_wait_until 10 test -s "$dir/port"; then
        cat "$dir/stderr" >&2 || true
        fail "testdns $name did not start"
    fi
    TP_DNS_PORT=$(head -n 1 "$dir/port")
}

# tp_dns_servers NAME  prints "127.0.0.1:PORT" of DNS server NAME, the
#                      syntax of TLSPOLICY_DNS_SERVERS.
# tp_dns_log NAME      prints the path of its query log.
# tp_stop_dns NAME     stops it (SIGTERM, waits for it to exit).
tp_dns_servers() { echo "127.0.0.1:$(head -n 1 "$TP_TMP/srv-dns-$1/port")"; }
tp_dns_log() { echo "$TP_TMP/srv-dns-$1/log"; }
tp_stop_dns() { tp_stop_server "dns-$1"; }

# tp_reload_dns NAME
#   Makes DNS server NAME read its zone file again (SIGHUP) and waits until
#   it has; a zone file it cannot read fails the test. Edit the zone with
#   temp + rename, then call this.
tp_reload_dns() {
    local dir="$TP_TMP/srv-dns-$1" before
    before=$(grep -c 'zone reloaded' "$dir/log" || true)
    kill -HUP "$(cat "$dir/bgpid")" || fail "testdns $1 is not running"
    tp_wait_until 5 _tp_dns_reloaded "$dir" "$before" \
        || fail "testdns $1 did not reload its zone: $(tail -n 1 "$dir/stderr" 2>/dev/null)"
}
_tp_dns_reloaded() { [ "$(grep -c 'zone reloaded' "$1/log" || true)" -gt "$2" ]; }

# ---- a throwaway Postfix instance (root only) ----

TP_POSTFIX_DIRS=()  # instances started, stopped by the exit trap

# tp_postfix_setup DIR [MAIN.CF SETTINGS...]
#   Creates a Postfix instance in DIR (made traversable by user postfix):
#   DIR/main.cf, DIR/master.cf (Debian's, with no smtpd listening and
#   chroot off), queue DIR/queue, data DIR/data, log DIR/maillog; no DNS
#   (smtp_host_lookup = native: /etc/hosts names work), no local delivery,
#   retries within seconds. Each extra argument is a "name = value" applied
#   with postconf -e afterwards, e.g.
#     tp_postfix_setup "$d" 'smtp_tls_fingerprint_digest = md5' \
#       'smtp_tls_policy_maps = hash:$config_directory/tls_policy' \
#       "transport_maps = inline:{ partner.test=smtp:[127.0.0.1]:$port }"
#   Skips the test (77) when postfix is not installed or we are not root.
tp_postfix_setup() {
    local dir=$1 kv
    shift
    tp_need postfix postconf postqueue sendmail
    [ "$(id -u)" = 0 ] || skip "a Postfix instance needs root"
    mkdir -p "$dir/data" "$dir/queue"
    # Postfix's daemons run as user postfix: the path must be traversable
    # (mktemp -d makes $TP_TMP 0700).
    chmod 755 "$TP_TMP" "$dir"
    chown postfix "$dir/data"
    sed -e 's/^smtp\( *\)inet/#smtp\1inet/' /etc/postfix/master.cf >"$dir/master.cf"
    printf '%s\n' \
        'compatibility_level = 3.6' \
        "queue_directory = $dir/queue" \
        "data_directory = $dir/data" \
        "maillog_file = $dir/maillog" \
        "maillog_file_prefixes = /var, /dev/stdout, $dir" \
        'myhostname = client.tlspolicy.test' \
        'mydestination =' \
        'local_transport = error:no local delivery in tests' \
        'inet_interfaces = loopback-only' \
        'inet_protocols = ipv4' \
        'smtp_dns_support_level = disabled' \
        'smtp_host_lookup = native' \
        'minimal_backoff_time = 1s' \
        'maximal_backoff_time = 5s' \
        'queue_run_delay = 1s' \
        'smtp_tls_loglevel = 1' \
        'smtp_connect_timeout = 5s' >"$dir/main.cf"
    postconf -c "$dir" -F '*/*/chroot = n' >/dev/null || fail "postconf -c $dir -F failed"
    for kv in "$@"; do
        postconf -c "$dir" -e "$kv" || fail "postconf -c $dir -e '$kv' failed"
    done
}

# tp_postfix_start DIR   starts the instance (stopped automatically at exit).
# tp_postfix_stop DIR    stops it.
tp_postfix_start() {
    postfix -c "$1" start >"$1/start.out" 2>&1 \
        || fail "postfix -c $1 start: $(cat "$1/start.out")"
    TP_POSTFIX_DIRS+=("$1")
}
tp_postfix_stop() {
    postfix -c "$1" stop >/dev/null 2>&1 || true
}

# tp_postfix_send DIR FROM TO [SUBJECT]
#   Injects a small message with sendmail -C DIR.
tp_postfix_send() {
    printf 'From: %s\nTo: %s\nSubject: %s\n\nbody\n' "$2" "$3" "${4:-test}" \
        | sendmail -C "$1" -f "$2" "$3" || fail "sendmail -C $1 $3 failed"
}

# tp_postfix_wait_log DIR PATTERN [SECONDS]
#   Waits (default 20 s) until DIR/maillog has a line matching the grep -E
#   PATTERN, flushing the queue each second (not with
#   TP_POSTFIX_WAIT_FLUSH=0: a test of what releases the mail); fails the
#   test with the log's tail otherwise.
tp_postfix_wait_log() {
    local dir=$1 pat=$2 secs=${3:-20} i=0
    until grep -Eq -- "$pat" "$dir/maillog" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt "$secs" ]; then
            tail -n 20 "$dir/maillog" >&2 2>/dev/null || true
            fail "postfix $dir: no log line /$pat/ within $secs s"
        fi
        [ "${TP_POSTFIX_WAIT_FLUSH:-1}" = 0 ] || postqueue -c "$dir" -f >/dev/null 2>&1 || true
        sleep 1
    done
}

# tp_postfix_wait_empty DIR [SECS]: the queue is empty. qmgr removes a
# message only after the smtp agent logged status=sent, so a test that
# saw the delivery still polls here rather than asserting at once.
tp_postfix_wait_empty() {
    local dir=$1 secs=${2:-20} i=0
    until [ "$(postqueue -c "$dir" -p 2>&1)" = "Mail queue is empty" ]; do
        i=$((i + 1))
        [ "$i" -le "$secs" ] || fail "postfix $dir: queue not empty after $secs s: $(postqueue -c "$dir" -p)"
        sleep 1
    done
}

# ---- running as another user (root only) ----

# tp_tlspolicy_for_others
#   Copies the tlspolicy under test, with the libtlspolicy it is linked
#   with, to $TP_TMP/shared/ and prints the path of a wrapper there that
#   runs it. Use it for runs as another user (runuser -u nobody -- ...):
#   the build tree may be where that user cannot go (a checkout under
#   /root, or in a 0700 directory). Makes $TP_TMP traversable (mktemp -d
#   makes it 0700).
tp_tlspolicy_for_others() {
    local dir=$TP_TMP/shared lib
    if [ ! -x "$dir/tlspolicy-run" ]; then
        chmod 755 "$TP_TMP"
        mkdir -p "$dir"
        cp "$TLSPOLICY" "$dir/tlspolicy"
        lib=$(ldd "$TLSPOLICY" | awk '$1 ~ /^libtlspolicy\.so/ { print $3 }')
        [ -n "$lib" ] && [ -f "$lib" ] || fail "tp_tlspolicy_for_others: no libtlspolicy in ldd $TLSPOLICY"
        cp -L "$lib" "$dir/$(basename "$lib")"
        # The binary's RUNPATH names the build tree; LD_LIBRARY_PATH comes first.
        printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s/tlspolicy "$@"\n' "$dir" "$dir" >"$dir/tlspolicy-run"
        chmod -R a+rX "$dir"
        chmod 755 "$dir/tlspolicy-run"
    fi
    echo "$dir/tlspolicy-run"
}

# tp_postfix_wait_deferred DIR COUNT [SECS]: COUNT messages sit in the
# deferred queue. The smtp agent logs status=deferred before qmgr moves the
# message there, and postqueue lists a delay reason only from then on.
tp_postfix_wait_deferred() {
    local dir=$1 want=$2 secs=${3:-30} i=0
    until [ "$(postqueue -c "$dir" -j 2>/dev/null | grep -c '"queue_name": *"deferred"')" -ge "$want" ]; do
        i=$((i + 1))
        [ "$i" -le "$secs" ] || fail "postfix $dir: fewer than $want deferred messages after $secs s: $(postqueue -c "$dir" -p)"
        sleep 1
    done
}

# ---- small file systems (root only) ----

TP_MOUNTS=()  # tmpfs mounted by tp_mount_tmpfs, unmounted by the exit trap

# tp_mount_tmpfs DIR SIZE
#   Mounts a tmpfs of SIZE (e.g. 4m) on DIR (created), unmounted at exit
#   however the script exits. Skips the test (77) when not root; fails it
#   when root cannot mount (CI runs as root: the test must not vanish).
tp_mount_tmpfs() {
    [ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root"
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || fail "mount -t tmpfs on $1 failed"
    TP_MOUNTS+=("$1")
}

# _tp_cleanup [STATUS]
#   The exit trap: stops what the test started, removes $TP_TMP, exits
#   with STATUS (default: the status the script was exiting with). A
#   trap of a test's own that runs something first must pass the status
#   on, since under set -e nothing in a trap may fail:
#     trap 'rc=$?; umount /etc/hosts 2>/dev/null || true; _tp_cleanup "$rc"' EXIT
_tp_cleanup() {
    local rc=${1:-$?} name
    for name in "${TP_PIDS[@]}"; do
        _tp_kill_child TERM "$name"
    done
    for name in "${TP_POSTFIX_DIRS[@]}"; do
        tp_postfix_stop "$name"
    done
    for name in "${TP_SERVERS[@]}"; do
        tp_stop_server "$name"
    done
    for name in "${TP_MOUNTS[@]}"; do
        umount "$name" 2>/dev/null || umount -l "$name" 2>/dev/null || true
    done
    if [ "${TP_KEEP_TMP:-0}" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "${TP_KEEP_TMP_ON_FAIL:-}" ]; }; then
        echo "kept $TP_TMP" >&2
    else
        rm -rf "$TP_TMP"
    fi
    exit "$rc"
}
trap _tp_cleanup EXIT
