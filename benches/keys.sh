#!/usr/bin/env bash
# What a request costs as the keys of a region grow: a whole-process `cofre encrypt -k KEY` of a
# 4 KiB file, and `cofre key describe KEY`, in regions holding 1, 1,000 and 10,000 keys (a tenth
# of them with automatic rotation on), timed in one interleaved run.
#
#   benches/keys.sh [MAX_KEYS] [ROUNDS]    (defaults 10000 and 31; env COFRE_BENCH_DIR as vs_cp.sh)
#
# Prints the median time of each command per region size and its ratio to the 1-key region
# (the target: at most 1.2× with 10,000 keys). Keys are made with `cofre key create`, two
# processes at a time, so filling the largest region is part of what it measures too. Installs
# nothing. It runs `cargo build --release` in the repository it lives in.
set -euo pipefail

BENCH_NAME=keys.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAX=${1:-10000}
ROUNDS=${2:-31}
[[ $MAX =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "usage: keys.sh [MAX_KEYS] [ROUNDS]"
SIZE=4096
WARM=0
BASE=${COFRE_BENCH_DIR:-/dev/shm}
[[ -d $BASE && -w $BASE ]] || die "$BASE is not a writable folder; set COFRE_BENCH_DIR"
bench_build
bench_workdir cofre-keys
bench_input

SIZES=(1)
(( MAX >= 1000 )) && SIZES+=(1000)
(( MAX > 1 && MAX != 1000 )) && SIZES+=("$MAX")

# make_region N: a home with N keys; prints the id of the one the requests name.
make_region() {
    local n=$1 home=$WORK/home-$1 key t0 t1
    "$COFRE" --home "$home" init --account 111122223333 >/dev/null
    key=$("$COFRE" --home "$home" key create --description "the key requests name")
    t0=$(now_us)
    if (( n > 1 )); then
        seq 2 "$n" | xargs -P 2 -n 50 sh -c '
            for i; do "$0" --home "$1" key create --description "filler $i" > /dev/null; done
        ' "$COFRE" "$home"
    fi
    t1=$(now_us)
    "$COFRE" --home "$home" key list --output json 2>/dev/null \
        | grep -o '"KeyId": *"[^"]*"' | head -n $(( n / 10 )) | cut -d'"' -f4 \
        | while read -r id; do "$COFRE" --home "$home" key rotation enable "$id" > /dev/null; done
    echo "region with $n keys made in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s" >&2
    echo "$key"
}

declare -A KEY
for n in "${SIZES[@]}"; do
    KEY[$n]=$(make_region "$n")
done

# time_us VAR CMD...: runs CMD, appends its wall time in microseconds to array VAR.
time_us() {
    local -n into=$1; shift
    local t0
    t0=$(now_us)
    "$@"
    into+=("$(( $(now_us) - t0 ))")
}

encrypt() { "$COFRE" --home "$WORK/home-$1" --quiet encrypt -k "${KEY[$1]}" -f -o "$WORK/out-$1" "$IN"; }
describe() { "$COFRE" --home "$WORK/home-$1" key describe "${KEY[$1]}" > /dev/null; }

for n in "${SIZES[@]}"; do
    encrypt "$n"; describe "$n"   # warm up: page cache, the index of the region
    declare -a "enc_$n=()" "desc_$n=()"
done
for ((r = 0; r < ROUNDS; r++)); do
    for n in "${SIZES[@]}"; do
        time_us "enc_$n" encrypt "$n"
        time_us "desc_$n" describe "$n"
    done
done

printf '%-28s %10s %10s %8s\n' "request" "keys" "median ms" "× 1 key"
for what in enc desc; do
    label=$([[ $what == enc ]] && echo "cofre encrypt (4 KiB)" || echo "cofre key describe")
    declare -n base="${what}_1"
    b=$(median "${base[@]}")
    for n in "${SIZES[@]}"; do
        declare -n acc="${what}_$n"
        m=$(median "${acc[@]}")
        printf '%-28s %10s %10.2f %8.2f\n' "$label" "$n" "$(awk -v m="$m" 'BEGIN { print m / 1000 }')" \
            "$(awk -v m="$m" -v b="$b" 'BEGIN { printf "%.2f", m / b }')"
    done
done
