#!/usr/bin/env bash
# `cofre serve` against moto's server: KMS Encrypt of 16 bytes over HTTP on loopback, replayed by
# wrk, with throughput, latency, memory and the audit trail checked (issue 14, Performance).
#
#   benches/server.sh [--seconds N | --long] [--runs N] [--connections N] [--threads N]
#                     [--shm] [--no-moto] [--profile] [--json]
#
#   --seconds N      length of each wrk run (default 10); --long is --seconds 60, the
#                    "memory stays flat over a 60-second run" check
#   --runs N         rounds (default 3); medians are reported
#   --connections N  wrk connections (default 16); --threads N wrk threads (default 2)
#   --shm            also a cofre whose home is on /dev/shm (tmpfs: fsync costs nothing there),
#                    reported on its own line as cofre-shm; the main figure is the one on disk
#   --no-moto        cofre only
#   --profile        after the rounds, per cofre server, two more wrk runs (not counted): one
#                    under `perf record --call-graph dwarf` (the top cofre, hyper and system-call
#                    entries by inclusive on-CPU time), one under `strace -c -w -f` (system calls
#                    per request, and the wall time spent in them)
#   --json           a machine-readable summary on stdout (the table goes to stderr)
#
# Environment: COFRE_BENCH_DIR, the folder on a real disk for cofre's home (default: the cargo
# target folder; refused if it is tmpfs, since the audit record's fsync is part of what is
# measured); COFRE_BENCH_VENV, a venv with boto3 and moto[server] (default TARGET/server-bench-venv,
# made on first use); CARGO_TARGET_DIR as cargo uses it.
#
# What one measurement is. Each server is started once, on a fresh home (cofre: `cofre --home H
# serve --listen 127.0.0.1:0`, whose first start makes an access key for the account root and
# prints it as `export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=…`, read here through a fifo so
# the secret never lands in a file; moto: `moto_server -H 127.0.0.1 -p PORT`, credentials
# "testing"). A symmetric key is made on each with boto3. Then, per run, benches/sign_request.py
# signs ONE Encrypt request (16 random bytes, SigV4 by botocore, service kms) with a fresh
# X-Amz-Date, sends it once and checks the answer decrypts back to the plaintext, and writes a wrk
# Lua script that replays those exact bytes (SigV4 accepts a signature for 15 minutes and cofre
# does not refuse repeats); `wrk -t THREADS -c CONNECTIONS -d N --latency` replays it. moto does
# not check signatures, but gets the same signed request. Rounds interleave the servers (cofre,
# [cofre-shm,] moto; then again) so drift in the machine's load hits all alike.
#
# What is checked, per run (any failure marks the run FAILED and the script exits 1 after the
# table): wrk printed no "Non-2xx or 3xx responses" line and no socket errors (a benchmark of
# errors is worthless); for cofre, the Encrypt records added to the trail (`cofre audit log
# --event Encrypt --output json`, one JSON line per event) are at least the requests wrk
# completed (each answer is sent only after its record is written) and at most that plus
# CONNECTIONS (requests in flight when wrk stopped are recorded but not counted by wrk); no
# Encrypt in the trail failed (`audit log --errors`); and at the end `cofre audit verify` passes.
#
# What is reported, per server: the medians over the runs of requests/s, p50 and p99 latency
# (wrk --latency), the ratio of cofre's to moto's, and each server's RSS (ps -o rss) sampled 1 s
# into, half-way through and 1 s before the end of every run, so growth within a run and across
# runs shows. Also the load average before and after: this machine is shared, and other work on
# its 2 cores lowers every figure. The goal of issue 14 is printed beside cofre's figures.
#
# Installs what is missing: wrk (apt-get install -y wrk, with sudo unless root) and the venv
# (python3 -m venv, pip install boto3 'moto[server]'); runs `cargo build --release`.
set -euo pipefail

BENCH_NAME=server.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'echo "server.sh: line $LINENO: a command failed (exit $?)" >&2' ERR

SECONDS_PER_RUN=10 RUNS=3 CONNECTIONS=16 THREADS=2 SHM=0 MOTO=1 PROFILE=0 JSON=0
PLAINTEXT_BYTES=16
while (($#)); do
    case $1 in
        --seconds) SECONDS_PER_RUN=${2:?--seconds takes a number}; shift ;;
        --long) SECONDS_PER_RUN=60 ;;
        --runs) RUNS=${2:?--runs takes a number}; shift ;;
        --connections) CONNECTIONS=${2:?--connections takes a number}; shift ;;
        --threads) THREADS=${2:?--threads takes a number}; shift ;;
        --shm) SHM=1 ;;
        --no-moto) MOTO=0 ;;
        --profile) PROFILE=1 ;;
        --json) JSON=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
for v in SECONDS_PER_RUN RUNS CONNECTIONS THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "bad ${v,,} ${!v}: give a positive integer"
done
((SECONDS_PER_RUN >= 3)) || die "--seconds must be at least 3 (RSS is sampled at 1 s, half-way and 1 s before the end)"
((THREADS <= CONNECTIONS)) || die "--threads must not exceed --connections (wrk needs a connection per thread)"

# Everything but the JSON summary goes to stderr when --json is given.
if ((JSON)); then exec 3>&1 1>&2; else exec 3>&1; fi
as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

# --- tools -----------------------------------------------------------------------------------
if ! command -v wrk > /dev/null; then
    echo "installing wrk (apt-get install -y wrk)..."
    as_root apt-get install -y wrk > /dev/null 2>&1 ||
        { as_root apt-get update > /dev/null && as_root apt-get install -y wrk > /dev/null; } ||
        die "could not install wrk: run apt-get install wrk"
fi
command -v wrk > /dev/null || die "wrk is not on PATH after installing it"

bench_build
VENV=${COFRE_BENCH_VENV:-$TARGET/server-bench-venv}
PY=$VENV/bin/python
PROBE='import boto3, botocore.auth, moto.server, flask'
if ! "$PY" -c "$PROBE" > /dev/null 2>&1; then
    echo "making a venv with boto3 and moto[server] in $VENV (pip, once)..."
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed: install python3-venv, or set COFRE_BENCH_VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check boto3 'moto[server]' ||
        die "pip install boto3 'moto[server]' into $VENV failed"
    "$PY" -c "$PROBE" || die "$VENV cannot import boto3 and moto.server after installing them"
fi
SIGN=$REPO/benches/sign_request.py
MOTO_VERSION=$("$PY" -c 'import moto; print(moto.__version__)')
WRK_VERSION=$(wrk --version 2>&1 | head -n 1 | awk '{print $2}' || true)

# --- work folders ----------------------------------------------------------------------------
BASE=${COFRE_BENCH_DIR:-$TARGET}
mkdir -p "$BASE"
[[ -d $BASE && -w $BASE ]] || die "$BASE is not a writable folder; set COFRE_BENCH_DIR"
[[ $(stat -f -c %T "$BASE") != tmpfs ]] ||
    die "$BASE is on tmpfs: the audit record's fsync is part of the measurement, so give a folder on a disk in COFRE_BENCH_DIR (use --shm for a tmpfs run beside it)"
bench_workdir server-bench
SHM_WORK=
declare -A PID=() ENDPOINT=() KEY=() REGION=() AKID=() SECRET=() HOME_OF=() LOG=()
bench_cleanup_extra() {
    local s
    for s in "${!PID[@]}"; do
        kill "${PID[$s]}" 2> /dev/null || true
    done
    for s in "${!PID[@]}"; do
        wait "${PID[$s]}" 2> /dev/null || true
    done
    if [[ -n $SHM_WORK ]]; then rm -rf -- "$SHM_WORK"; fi
}

SERVERS=(cofre)
if ((SHM)); then
    SHM_WORK=$(mktemp -d /dev/shm/server-bench.XXXXXX)
    SERVERS+=(cofre-shm)
fi
((MOTO)) && SERVERS+=(moto)

# start_cofre NAME FOLDER: `cofre serve` on a new home in FOLDER; reads its access key, region
# and endpoint from the lines it prints.
start_cofre() {
    local name=$1 home=$2/home-$1 fifo=$WORK/$1.stdout line fd
    mkfifo "$fifo"
    env -u COFRE_PRINCIPAL -u COFRE_HOME "$COFRE" --home "$home" serve --listen 127.0.0.1:0 \
        > "$fifo" 2> "$WORK/$name.log" &
    PID[$name]=$! HOME_OF[$name]=$home LOG[$name]=$WORK/$name.log
    exec {fd}< "$fifo"
    while IFS= read -r -t 60 -u "$fd" line; do
        case $line in
            export\ *)
                local kv
                for kv in ${line#export }; do
                    case $kv in
                        AWS_ACCESS_KEY_ID=*) AKID[$name]=${kv#*=} ;;
                        AWS_SECRET_ACCESS_KEY=*) SECRET[$name]=${kv#*=} ;;
                        AWS_REGION=*) REGION[$name]=${kv#*=} ;;
                    esac
                done
                ;;
            listening\ on\ *) ENDPOINT[$name]=${line#listening on }; break ;;
        esac
    done
    # It prints nothing more; drain it anyway, so a late line never blocks it.
    cat <&"$fd" > /dev/null &
    exec {fd}<&-
    [[ -n ${ENDPOINT[$name]:-} && -n ${AKID[$name]:-} && -n ${SECRET[$name]:-} ]] ||
        die "$name: cofre serve did not print its access key and endpoint: $(tail -n 5 "$WORK/$name.log")"
    REGION[$name]=${REGION[$name]:-us-east-1}
}

# start_moto: moto's server on a free loopback port; waits until it answers.
start_moto() {
    local port
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$WORK/moto.log" 2>&1 &
    PID[moto]=$! ENDPOINT[moto]=http://127.0.0.1:$port LOG[moto]=$WORK/moto.log
    AKID[moto]=testing SECRET[moto]=testing REGION[moto]=us-east-1
}

# as_client NAME CMD...: CMD with NAME's credentials in the environment (not on the command line).
as_client() {
    local name=$1; shift
    AWS_ACCESS_KEY_ID=${AKID[$name]} AWS_SECRET_ACCESS_KEY=${SECRET[$name]} \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        env -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_DEFAULT_PROFILE "$@"
}

# cofre_of NAME ARGS...: the cofre CLI on NAME's home and region.
cofre_of() {
    local name=$1; shift
    env -u COFRE_PRINCIPAL "$COFRE" --home "${HOME_OF[$name]}" --region "${REGION[$name]}" "$@"
}

# trail_encrypts NAME [--errors]: how many Encrypt events NAME's trail holds.
trail_encrypts() {
    local name=$1; shift
    cofre_of "$name" --output json audit log --event Encrypt "$@" | grep -c '"eventName":"Encrypt"' || true
}

rss_kib() { ps -o rss= -p "$1" 2> /dev/null | tr -d ' ' || true; }

# ms VALUE: wrk's latency (123.45us, 1.23ms, 1.02s, 1.5m) in milliseconds.
ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f < 0) { print "nan"; exit 1 }
        printf "%.3f", n * f }'
}

echo "starting the servers..."
start_cofre cofre "$WORK"
((SHM)) && start_cofre cofre-shm "$SHM_WORK"
((MOTO)) && start_moto
for s in "${SERVERS[@]}"; do
    tries=0
    until KEY[$s]=$(as_client "$s" "$PY" "$SIGN" create-key "${ENDPOINT[$s]}" "${REGION[$s]}" 2> "$WORK/$s.key.err"); do
        kill -0 "${PID[$s]}" 2> /dev/null || die "$s exited: $(tail -n 5 "${LOG[$s]}")"
        ((++tries < 60)) || die "$s: could not create a key: $(cat "$WORK/$s.key.err")"
        sleep 0.5
    done
    echo "  $s on ${ENDPOINT[$s]} (pid ${PID[$s]}), key ${KEY[$s]}"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RPS=() P50=() P99=() REQS=() RSS=() TRAIL=() STATUS=()
FAILURES=0
fail() { echo "  FAILED: $*"; FAILURES=$((FAILURES + 1)); }

# run NAME ROUND: one wrk run against NAME; appends its figures to the arrays above.
run() {
    local name=$1 round=$2 lua=$WORK/$1.$2.lua out=$WORK/$1.$2.wrk before=0 after
    as_client "$name" "$PY" "$SIGN" wrk-script "${ENDPOINT[$name]}" "${REGION[$name]}" "${KEY[$name]}" \
        "$PLAINTEXT_BYTES" "$lua" > /dev/null || die "$name: the signed request was not answered as it should be"
    [[ $name == cofre* ]] && before=$(trail_encrypts "$name")
    local pid=${PID[$name]} half=$((SECONDS_PER_RUN / 2))
    (
        sleep 1; a=$(rss_kib "$pid")
        sleep $((half - 1)); b=$(rss_kib "$pid")
        sleep $((SECONDS_PER_RUN - half - 1)); c=$(rss_kib "$pid")
        echo "$a $b $c" > "$WORK/$name.$round.rss"
    ) &
    local sampler=$!
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s" --latency -s "$lua" "${ENDPOINT[$name]}/" > "$out" 2>&1 ||
        { cat "$out"; die "$name: wrk failed"; }
    wait "$sampler"
    local reqs rps p50 p99 status=ok
    reqs=$(awk '/ requests in / {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(ms "$(awk '$1 == "99%" {print $2}' "$out")")
    [[ -n $reqs && -n $rps && $p50 != nan && $p99 != nan ]] || { cat "$out"; die "$name: could not read wrk's output"; }
    if grep -q 'Non-2xx' "$out"; then
        fail "$name run $round: $(grep 'Non-2xx' "$out" | sed 's/^ *//')"; status=errors
    fi
    if grep -q 'Socket errors' "$out"; then
        fail "$name run $round: $(grep 'Socket errors' "$out" | sed 's/^ *//')"; status=errors
    fi
    kill -0 "${PID[$name]}" 2> /dev/null || { fail "$name exited during run $round: $(tail -n 5 "${LOG[$name]}")"; status=crashed; }
    local trail=-
    if [[ $name == cofre* && $status != crashed ]]; then
        sleep 0.5 # requests wrk left in flight finish
        after=$(trail_encrypts "$name")
        trail=$((after - before))
        if ((trail < reqs || trail > reqs + CONNECTIONS)); then
            fail "$name run $round: $trail Encrypt records in the trail for $reqs requests completed"; status=trail
        fi
    fi
    RPS[$name]+=" $rps" P50[$name]+=" $p50" P99[$name]+=" $p99" REQS[$name]+=" $reqs" TRAIL[$name]+=" $trail"
    RSS[$name]+=" $(tr ' ' / < "$WORK/$name.$round.rss")" STATUS[$name]+=" $status"
    printf '  %-9s run %d: %9.1f req/s  p50 %7.3f ms  p99 %8.3f ms  %8d requests  trail %-8s RSS KiB %s  %s\n' \
        "$name" "$round" "$rps" "$p50" "$p99" "$reqs" "$trail" "$(tr ' ' / < "$WORK/$name.$round.rss")" "$status"
}

echo "$RUNS rounds of ${SECONDS_PER_RUN} s: wrk -t $THREADS -c $CONNECTIONS --latency, Encrypt of $PLAINTEXT_BYTES bytes (load average $LOAD_BEFORE, $(nproc) cores)"
for ((r = 1; r <= RUNS; r++)); do
    for s in "${SERVERS[@]}"; do run "$s" "$r"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# Trail integrity and refusals, after all the load.
for s in "${SERVERS[@]}"; do
    [[ $s == cofre* ]] || continue
    errs=$(trail_encrypts "$s" --errors)
    ((errs == 0)) || fail "$s: $errs Encrypt events in the trail failed or were refused"
    cofre_of "$s" audit verify > "$WORK/$s.verify" 2>&1 || fail "$s: cofre audit verify: $(tail -n 3 "$WORK/$s.verify")"
done

# --- profile ---------------------------------------------------------------------------------
# profile NAME: one more wrk run on NAME (not counted above) under `perf record --call-graph
# dwarf`, then one under `strace -c -w -f`; appends to PROFILE_TOP the top cofre/hyper/kernel entry
# points by inclusive time, and the system calls per request (calls / Encrypt records added).
PROFILE_TOP=
profile() {
    local name=$1 p=${PID[$1]} dur=$((SECONDS_PER_RUN < 10 ? SECONDS_PER_RUN : 10)) lua=$WORK/$1.profile.lua
    as_client "$name" "$PY" "$SIGN" wrk-script "${ENDPOINT[$name]}" "${REGION[$name]}" "${KEY[$name]}" \
        "$PLAINTEXT_BYTES" "$lua" > /dev/null
    if command -v perf > /dev/null; then
        echo "profiling $name for $dur s with perf record --call-graph dwarf..."
        perf record -q --call-graph dwarf,16384 -F 199 -p "$p" -o "$WORK/$name.perf" -- sleep "$dur" 2> "$WORK/$name.perf.err" &
        local prof=$! rps
        rps=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "${dur}s" -s "$lua" "${ENDPOINT[$name]}/" 2>&1 | awk '/^Requests\/sec:/ {print $2}')
        wait "$prof" || true
        PROFILE_TOP+="$name, perf (on-CPU samples only, inclusive %; $rps req/s while sampled):"$'\n'
        PROFILE_TOP+=$(perf report -i "$WORK/$name.perf" --children --sort symbol --stdio -g none 2> /dev/null |
            grep -E '^ +[0-9.]+%' | grep -E 'cofre::|hyper::proto::h1::dispatch::Dispatcher.*poll_(read|write|flush)|__x64_sys_' |
            head -n 30 | sed -E 's/^ +([0-9.]+%) +[0-9.]+% +\[[a-z.]\] +/  \1  /; s/[ -]+$//' | cut -c1-150 || true)$'\n'
    fi
    if command -v strace > /dev/null; then
        local before after
        before=$(trail_encrypts "$name")
        echo "counting $name's system calls for $dur s with strace -c -w -f..."
        # Traced from before wrk starts until after its last request, so every request is counted.
        timeout -s INT $((dur + 2)) strace -c -w -f -p "$p" -o "$WORK/$name.strace" 2> /dev/null &
        local prof=$!
        sleep 0.5
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${dur}s" -s "$lua" "${ENDPOINT[$name]}/" > /dev/null 2>&1 || true
        wait "$prof" || true
        after=$(trail_encrypts "$name")
        PROFILE_TOP+="$name, strace -c -w -f ($((after - before)) requests while traced; per request: calls, and wall time inside them summed over threads):"$'\n'
        PROFILE_TOP+=$(awk -v n=$((after - before)) '$1 ~ /^[0-9.]+$/ && NF >= 5 && n > 0 {
                printf "  %-16s %6.2f calls  %8.3f ms\n", $NF, $4 / n, $2 * 1000 / n }' "$WORK/$name.strace" |
            head -n 16)$'\n'
    fi
    if ! command -v perf > /dev/null && ! command -v strace > /dev/null; then
        PROFILE_TOP+="no profiler: apt-get install linux-perf strace"$'\n'
    fi
}
if ((PROFILE)); then
    for s in "${SERVERS[@]}"; do
        [[ $s == cofre* ]] && profile "$s"
    done
fi

# --- report ----------------------------------------------------------------------------------
# shellcheck disable=SC2086 # the figure lists are space-separated on purpose
med() { median $1; }
# shellcheck disable=SC2086
rss_range() { # first and last sample, and the largest, over all runs
    local all
    all=$(tr '/' ' ' <<< "$1")
    set -- $all
    echo "${1}" "${!#}" "$(max_of "$@")"
}
echo
echo "cofre serve vs moto $MOTO_VERSION, Encrypt of $PLAINTEXT_BYTES bytes, wrk $WRK_VERSION -t $THREADS -c $CONNECTIONS, $RUNS x ${SECONDS_PER_RUN} s (medians)"
printf '%-10s %12s %10s %10s %14s %14s %14s\n' server req/s p50_ms p99_ms rss_first_KiB rss_last_KiB rss_max_KiB
for s in "${SERVERS[@]}"; do
    read -r first last max <<< "$(rss_range "${RSS[$s]}")"
    printf '%-10s %12.1f %10.3f %10.3f %14d %14d %14d\n' "$s" "$(med "${RPS[$s]}")" "$(med "${P50[$s]}")" \
        "$(med "${P99[$s]}")" "$first" "$last" "$max"
done
RATIO=null
if ((MOTO)); then
    RATIO=$(awk -v a="$(med "${RPS[cofre]}")" -v b="$(med "${RPS[moto]}")" 'BEGIN { printf "%.1f", a / b }')
    echo "cofre/moto requests/s: ${RATIO}x"
fi
GOAL=$(awk -v r="$(med "${RPS[cofre]}")" -v p="$(med "${P99[cofre]}")" \
    'BEGIN { print ((r >= 20000 && p < 5) ? "met" : "not met") }')
echo "issue 14's goal (>= 20000 req/s and p99 < 5 ms, cofre on disk): $GOAL"
echo "load average before $LOAD_BEFORE, after $LOAD_AFTER ($(nproc) cores, shared)"
if [[ -n $PROFILE_TOP ]]; then
    echo
    echo "where cofre's time went (--profile; the tracers slow the server, so these runs are not counted):"
    printf '%s' "$PROFILE_TOP"
fi
((FAILURES == 0)) || echo "$FAILURES check(s) FAILED: see above"

if ((JSON)); then
    # json_list "a b c": [a,b,c]
    json_list() { local IFS=,; local -a v; read -ra v <<< "$1"; echo "[${v[*]}]"; }
    json_slist() { local out='' x; for x in $1; do out+=${out:+,}\"$x\"; done; echo "[$out]"; }
    {
        printf '{"benchmark":"kms-encrypt-%dB","seconds":%d,"runs":%d,"connections":%d,"threads":%d,' \
            "$PLAINTEXT_BYTES" "$SECONDS_PER_RUN" "$RUNS" "$CONNECTIONS" "$THREADS"
        printf '"wrk":"%s","moto_version":"%s","cores":%d,"load_before":"%s","load_after":"%s",' \
            "$WRK_VERSION" "$MOTO_VERSION" "$(nproc)" "$LOAD_BEFORE" "$LOAD_AFTER"
        printf '"servers":{'
        sep=
        for s in "${SERVERS[@]}"; do
            rss_json=$(for x in ${RSS[$s]}; do printf '[%s]\n' "${x//\//,}"; done | paste -sd, -)
            printf '%s"%s":{"requests_per_s":%s,"p50_ms":%s,"p99_ms":%s,' "$sep" "$s" \
                "$(med "${RPS[$s]}")" "$(med "${P50[$s]}")" "$(med "${P99[$s]}")"
            printf '"runs":{"requests_per_s":%s,"p50_ms":%s,"p99_ms":%s,"requests":%s,"trail_encrypts":%s,"rss_kib":[%s],"status":%s}}' \
                "$(json_list "${RPS[$s]# }")" "$(json_list "${P50[$s]# }")" "$(json_list "${P99[$s]# }")" \
                "$(json_list "${REQS[$s]# }")" "$(t=${TRAIL[$s]# }; json_list "${t//-/null}")" \
                "$rss_json" "$(json_slist "${STATUS[$s]}")"
            sep=,
        done
        printf '},"cofre_over_moto_requests":%s,"goal_met":%s,"failures":%d}\n' "$RATIO" \
            "$([[ $GOAL == met ]] && echo true || echo false)" "$FAILURES"
    } >&3
fi
((FAILURES == 0)) || exit 1
