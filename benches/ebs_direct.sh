#!/usr/bin/env bash
# Uploading an image through the EBS direct APIs from boto3 with 8 threads: cofre (every block
# checked, encrypted and persisted, the trail written) against moto's server (in memory), side
# by side in the same run (issue 15, Performance).
#
#   benches/ebs_direct.sh [SIZE] [ROUNDS]      SIZE default 1G, ROUNDS default 3
#
# Each round uploads SIZE bytes of random data to a fresh snapshot on each server (cofre with
# Encrypted=true; moto ignores it), interleaved (cofre, moto, cofre, …), timing StartSnapshot to
# CompleteSnapshot in benches/ebs_direct.py; medians and the ratio moto/cofre are printed, and
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

# cofre: its first start prints the root's access key, read through a fifo (never a file).
mkfifo "$WORK/cofre.out"
"$COFRE" --home "$WORK/home" serve --listen 127.0.0.1:0 > "$WORK/cofre.out" 2> "$WORK/cofre.log" &
PIDS+=($!)
exec {fd}< "$WORK/cofre.out"
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
cat <&"$fd" > /dev/null &
PORT=$(( 20000 + RANDOM % 20000 ))
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO_URL=http://127.0.0.1:$PORT
for _ in $(seq 50); do curl -s "$MOTO_URL" > /dev/null && break; sleep 0.2; done

run() { # run NAME URL KEY SECRET ENCRYPTED -> seconds
    AWS_ACCESS_KEY_ID=$3 AWS_SECRET_ACCESS_KEY=$4 "$VENV/bin/python" \
        "$(dirname "${BASH_SOURCE[0]}")/ebs_direct.py" "$2" "$SIZE" 8 "$5" | awk '/^seconds/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
C=() M=()
echo "uploading $(( SIZE >> 20 )) MiB with 8 threads, $ROUNDS rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
for r in $(seq "$ROUNDS"); do
    C+=("$(run cofre "$COFRE_URL" "$COFRE_KEY" "$COFRE_SECRET" 1)")
    M+=("$(run moto "$MOTO_URL" testing testing 0)")
    echo "round $r: cofre ${C[-1]} s, moto ${M[-1]} s" >&2
done
c=$(printf '%s\n' "${C[@]}" | median)
m=$(printf '%s\n' "${M[@]}" | median)
"$COFRE" --home "$WORK/home" --output json verify | grep -q '"Problems": \[\]' || die "cofre verify found problems"
awk -v c="$c" -v m="$m" -v s="$SIZE" 'BEGIN {
    printf "cofre  median %.2f s  %.0f MiB/s  (encrypted, persisted, audited; verify clean)\n", c, s / 1048576 / c
    printf "moto   median %.2f s  %.0f MiB/s  (in memory)\n", m, s / 1048576 / m
    printf "cofre is %.2fx moto (issue 15 goal: at least 3x)\n", m / c
}'
