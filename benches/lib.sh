# shellcheck shell=bash disable=SC2034 # sets variables for the scripts that source it
# Helpers shared by the benchmark scripts in benches/ (vs_cp.sh, compare.sh). Source it after
# `set -euo pipefail`; it defines functions and runs nothing.
#
# The usual order in a script:
#   bench_args "$@"          SIZE, ROUNDS, WARM, BASE from the arguments and COFRE_BENCH_* env
#   bench_build              REPO, TARGET, COFRE: `cargo build --release` of the repository
#                            (or COFRE_BENCH_BIN, a binary to measure instead: no build)
#   bench_need_space N       dies unless BASE has N × SIZE + 64 MiB free
#   bench_find_gnu_time      GNU_TIME: /usr/bin/time if it is GNU time, else empty
#   bench_workdir PREFIX     WORK: a fresh folder in BASE, removed on exit
#   bench_input              IN: SIZE bytes of random data in WORK
# then time commands with `timed VAR CMD...` and summarise them with `median`.

# die MSG...: prints "SCRIPT: MSG" to stderr and exits 1 (SCRIPT: BENCH_NAME, else $0's name).
die() { echo "${BENCH_NAME:-${0##*/}}: $*" >&2; exit 1; }

# to_bytes SIZE: bytes, from a number with an optional K/M/G suffix (powers of 1024; a trailing
# B or iB is allowed).
to_bytes() {
    local s=${1^^}
    s=${s%IB}; s=${s%B}
    case $s in
        *K) echo $(( ${s%K} << 10 )) ;;
        *M) echo $(( ${s%M} << 20 )) ;;
        *G) echo $(( ${s%G} << 30 )) ;;
        *[!0-9]* | '') die "bad size $1: use bytes or a number with K, M or G (e.g. 1G, 512M)" ;;
        *) echo "$s" ;;
    esac
}

# bench_args [SIZE] [ROUNDS]: sets SIZE (bytes), ROUNDS, WARM and BASE, from the arguments, else
# COFRE_BENCH_SIZE, COFRE_BENCH_ROUNDS, COFRE_BENCH_WARM and COFRE_BENCH_DIR, else 1G, 5, 1 and
# /dev/shm.
bench_args() {
    SIZE=$(to_bytes "${1:-${COFRE_BENCH_SIZE:-1G}}")
    ROUNDS=${2:-${COFRE_BENCH_ROUNDS:-5}}
    WARM=${COFRE_BENCH_WARM:-1}
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad round count $ROUNDS: give a positive integer"
    BASE=${COFRE_BENCH_DIR:-/dev/shm}
    [[ -d $BASE && -w $BASE ]] || die "$BASE is not a writable folder; set COFRE_BENCH_DIR"
}

# bench_build: `cargo build --release` in the repository holding this file; sets REPO, TARGET
# (CARGO_TARGET_DIR if set, else REPO/target) and COFRE.
bench_build() {
    REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    TARGET=${CARGO_TARGET_DIR:-target}
    [[ $TARGET == /* ]] || TARGET=$REPO/$TARGET
    if [[ -n ${COFRE_BENCH_BIN:-} ]]; then
        # A binary given (say, of an earlier commit, for a before/after): no build.
        COFRE=$COFRE_BENCH_BIN
    else
        echo "building cofre (cargo build --release)..." >&2
        (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
        COFRE=$TARGET/release/cofre
    fi
    [[ -x $COFRE ]] || die "no binary at $COFRE"
}

# bench_need_space N: dies unless BASE has room for N files of SIZE bytes, plus 64 MiB.
bench_need_space() {
    local avail need
    avail=$(( $(df -Pk "$BASE" | awk 'NR==2 {print $4}') * 1024 ))
    need=$(( SIZE * $1 + (64 << 20) ))
    (( avail >= need )) || die "$BASE has $(( avail >> 20 )) MiB free, needs $(( need >> 20 )) MiB; use a smaller SIZE"
}

# bench_find_gnu_time: sets GNU_TIME to /usr/bin/time if that is GNU time, else to ''. Prints
# nothing; the caller says what it does without it. Nothing is installed.
bench_find_gnu_time() {
    GNU_TIME=
    if [[ -x /usr/bin/time ]] && /usr/bin/time --version 2>&1 | grep -q GNU; then
        GNU_TIME=/usr/bin/time
    fi
}

# bench_workdir PREFIX: makes WORK=BASE/PREFIX.XXXXXX and removes it on exit. A script with more
# to clean up defines bench_cleanup_extra, which runs first.
bench_workdir() {
    WORK=$(mktemp -d "$BASE/$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    if declare -F bench_cleanup_extra > /dev/null; then bench_cleanup_extra || true; fi
    rm -rf -- "$WORK"
}

# bench_input: writes SIZE random bytes to IN=WORK/in.img.
bench_input() {
    IN=$WORK/in.img
    echo "creating $SIZE bytes of random data in $IN..." >&2
    head -c "$SIZE" /dev/urandom > "$IN"
    [[ $(stat -c %s "$IN") -eq $SIZE ]] || die "could not write $SIZE bytes to $IN"
}

# now_us: microseconds since the epoch (bash 5's EPOCHREALTIME, else date).
now_us() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        echo "$t"
    else
        echo $(( $(date +%s%N) / 1000 ))
    fi
}

# warm: writes and deletes SIZE bytes, so the next command gets recently freed memory (see
# COFRE_BENCH_WARM in vs_cp.sh). Does nothing unless WARM is 1.
warm() {
    [[ $WARM == 1 ]] || return 0
    head -c "$SIZE" /dev/zero > "$WORK/warm"
    rm -f "$WORK/warm"
}

# timed VAR CMD...: warms, runs CMD, appends its wall time in seconds to array VAR.
timed() {
    local -n acc=$1; shift
    local t0 t1
    warm
    t0=$(now_us)
    "$@"
    t1=$(now_us)
    acc+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e6 }')")
}

# median NUM...: the median, with 3 decimals.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# max_of NUM...: the largest (integers).
max_of() { printf '%s\n' "$@" | sort -n | tail -n 1; }

# bench_serve HOME: starts `cofre serve` on a free loopback port with the home HOME (made on
# first start, which prints the root's access key: read through a fifo, never a file). Sets
# COFRE_URL, COFRE_KEY, COFRE_SECRET and COFRE_PID, and adds the PID to PIDS (the caller kills
# PIDS when it exits). The server's log is WORK/cofre.log.
bench_serve() {
    local line kv fd
    mkfifo "$WORK/cofre.out"
    "$COFRE" --home "$1" serve --listen 127.0.0.1:0 > "$WORK/cofre.out" 2> "$WORK/cofre.log" &
    COFRE_PID=$!
    PIDS+=("$COFRE_PID")
    exec {fd}< "$WORK/cofre.out"
    COFRE_URL=""
    while IFS= read -r -t 60 -u "$fd" line; do
        if [[ $line == export\ * ]]; then
            for kv in ${line#export }; do
                case $kv in
                    AWS_ACCESS_KEY_ID=*) COFRE_KEY=${kv#*=} ;;
                    AWS_SECRET_ACCESS_KEY=*) COFRE_SECRET=${kv#*=} ;;
                esac
            done
        fi
        [[ $line == listening\ on\ * ]] && COFRE_URL=${line#listening on } && break
    done
    [[ -n $COFRE_URL && -n ${COFRE_KEY:-} ]] || die "cofre serve did not start: $(tail -n 5 "$WORK/cofre.log")"
    cat <&"$fd" > /dev/null &
}
