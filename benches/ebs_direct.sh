#!/usr/bin/env bash
# Uploading an image through the EBS direct APIs from boto3 with 8 threads: cofre (every block
# checked, encrypted and persisted, the trail written) against moto's server (in memory), side
# by side in the same run (issue 15, Performance).
#
#   benches/ebs_direct.sh [SIZE] [ROUNDS]      SIZE default 1G, ROUNDS default 3
#
# Each round uploads SIZE bytes of random data to a fresh snapshot on each server (cofre with
# Encrypted=true; moto ignores it), interleaved (cofre, moto, cofre, …), timing StartSnapshot to
# CompleteSnapshot in benches/ebs_direct.py; medians and the ratio moto/cofre are printed, with
# the CPU seconds each server process and the client spent (which other load on the machine
# does not inflate the way it does wall time), and
# cofre's store is verified at the end (`cofre verify`). Environment: COFRE_BENCH_DIR (cofre's
# home, default the cargo target folder: a real disk), COFRE_BENCH_VENV (a venv with boto3 and
# moto[server]; default TARGET/server-bench-venv, made on first use), CARGO_TARGET_DIR.
set -euo pipefail
BENCH_NAME=ebs_direct.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${1:-1G}")
ROUNDS=${2:-3}
bench_build
VENV=${COFRE_BENCH_VENV:-$TARGET/server-bench-venv}
if [[ ! -x $VENV/bin/moto_server ]]; then
    echo "making a venv with boto3 and moto[server] in $VENV (pip, once)..." >&2
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q boto3 'moto[server]' || die "cannot make $VENV"
fi
BASE=${COFRE_BENCH_DIR:-$TARGET}
WORK=$(mktemp -d "$BASE/ebs-direct-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

bench_serve "$WORK/home"
PORT=$(( 20000 + RANDOM % 20000 ))
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 &
MOTO_PID=$!
PIDS+=($MOTO_PID)
MOTO_URL=http://127.0.0.1:$PORT
for _ in $(seq 50); do curl -s "$MOTO_URL" > /dev/null && break; sleep 0.2; done

CLK=$(getconf CLK_TCK)
cpu() { awk -v t="$CLK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
# run URL KEY SECRET ENCRYPTED SERVER_PID -> "seconds server-cpu-seconds client-cpu-seconds"
run() {
    local before out
    before=$(cpu "$5")
    out=$(AWS_ACCESS_KEY_ID=$2 AWS_SECRET_ACCESS_KEY=$3 "$VENV/bin/python" \
        "$(dirname "${BASH_SOURCE[0]}")/ebs_direct.py" "$1" "$SIZE" 8 "$4")
    awk -v b="$before" -v a="$(cpu "$5")" '/^seconds/ {printf "%s %.2f %s\n", $2, a - b, $4}' <<< "$out"
}
# col N ROW...: the median of column N of the rows.
col() { local n=$1; shift; median $(printf '%s\n' "$@" | awk -v n="$n" '{print $n}'); }
C=() M=()
echo "uploading $(( SIZE >> 20 )) MiB with 8 threads, $ROUNDS rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
for r in $(seq "$ROUNDS"); do
    C+=("$(run "$COFRE_URL" "$COFRE_KEY" "$COFRE_SECRET" 1 "$COFRE_PID")")
    M+=("$(run "$MOTO_URL" testing testing 0 "$MOTO_PID")")
    echo "round $r (seconds, server CPU, client CPU): cofre ${C[-1]}, moto ${M[-1]}" >&2
done
c=$(col 1 "${C[@]}") m=$(col 1 "${M[@]}")
cs=$(col 2 "${C[@]}") ms=$(col 2 "${M[@]}") cc=$(col 3 "${C[@]}") mc=$(col 3 "${M[@]}")
"$COFRE" --home "$WORK/home" --output json verify | grep -q '"Problems": \[\]' || die "cofre verify found problems"
awk -v c="$c" -v m="$m" -v s="$SIZE" -v cs="$cs" -v ms="$ms" -v cc="$cc" -v mc="$mc" 'BEGIN {
    printf "cofre  median %.2f s  %.0f MiB/s  server CPU %.2f s, client CPU %.2f s  (encrypted, persisted, audited; verify clean)\n", c, s / 1048576 / c, cs, cc
    printf "moto   median %.2f s  %.0f MiB/s  server CPU %.2f s, client CPU %.2f s  (in memory)\n", m, s / 1048576 / m, ms, mc
    printf "cofre is %.2fx moto in time (issue 15 goal: at least 3x), %.2fx in server CPU\n", m / c, ms / cs
}'
