#!/usr/bin/env bash
# Times `cofre encrypt` and `cofre decrypt` of a file against `cp` of the same file, on tmpfs.
#
#   benches/vs_cp.sh [SIZE] [ROUNDS]
#
# SIZE    bytes of test data, with an optional K/M/G suffix (powers of 1024) [env COFRE_BENCH_SIZE,
#         default 1G]
# ROUNDS  interleaved rounds, at least 1 [env COFRE_BENCH_ROUNDS, default 5]
# COFRE_BENCH_DIR  where the data goes [default /dev/shm, so the disk is not measured]
# COFRE_BENCH_WARM 1 (default) or 0: before each timed command, write and delete SIZE bytes
#         (untimed). In a VM with free page reporting (virtio-balloon) or DAMON reclaim, memory
#         freed by the previous command is handed back to the host after a moment and
#         faulting it in again is slow, so tmpfs timings (cp's as much as cofre's) can swing
#         by 2x depending on what ran before. Warming gives every command the same, recently
#         freed memory.
#
# Each round runs, in this order and each on its own: `cp IN OUT`, `cofre encrypt -o OUT IN`,
# `cofre decrypt -o OUT REF` (REF: IN encrypted once beforehand), the redirect mode
# `cofre encrypt < IN > OUT` and the pipe mode `cat IN | cofre encrypt > OUT`, removing every
# output once timed. Rounds are interleaved so
# that drift in the machine's load hits every command alike. Prints the median wall time of
# each, the ratios to cp, and the peak RSS of cofre in the redirect and pipe modes (GNU time's
# %M; without GNU time, polled from /proc/PID/status VmHWM).
#
# About RSS: with `< IN`, stdin is the regular file itself, which cofre may memory-map; the
# pages of a mapped tmpfs file count in RSS although they are the file's own (shared) pages,
# not memory cofre allocated. The pipe mode's RSS is cofre's own working memory.
#
# Installs nothing. It runs `cargo build --release` in the repository it lives in.
set -euo pipefail

BENCH_NAME=vs_cp.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_args "$@"
bench_build

# IN, REF (IN encrypted) and one output exist at once: about 3 × SIZE.
bench_need_space 3

# Peak RSS: GNU time if present, else poll /proc. Nothing is installed.
bench_find_gnu_time
if [[ -z $GNU_TIME ]]; then
    echo "note: GNU time (/usr/bin/time) not found; pipe peak RSS is polled from /proc/PID/status" \
         "(VmHWM), which may miss a late peak. For exact figures install it: apt-get install time" >&2
fi

bench_workdir cofre-vs-cp
bench_input
HOME_DIR=$WORK/home
KEY=$("$COFRE" --home "$HOME_DIR" --quiet key create --description "vs_cp.sh throwaway key")

cofre() { "$COFRE" --home "$HOME_DIR" --quiet "$@"; }

# rss_encrypt MODE OUT: `cofre encrypt` from IN to stdout redirected to OUT, with stdin the file
# itself (MODE=redirect) or a pipe fed by cat (MODE=pipe). Peak RSS of cofre, in KiB, goes to
# LAST_RSS_KIB.
rss_encrypt() {
    local mode=$1 out=$2 rssfile=$WORK/rss
    local cmd=("$COFRE" --home "$HOME_DIR" --quiet encrypt -k "$KEY")
    if [[ -n $GNU_TIME ]]; then
        if [[ $mode == pipe ]]; then
            # shellcheck disable=SC2002 # the pipe is what this mode measures
            cat "$IN" | "$GNU_TIME" -f %M -o "$rssfile" "${cmd[@]}" > "$out"
        else
            "$GNU_TIME" -f %M -o "$rssfile" "${cmd[@]}" < "$IN" > "$out"
        fi
        LAST_RSS_KIB=$(tail -n 1 "$rssfile")
    else
        if [[ $mode == pipe ]]; then
            "${cmd[@]}" < <(cat "$IN") > "$out" &
        else
            "${cmd[@]}" < "$IN" > "$out" &
        fi
        local pid=$! peak=0 hwm
        while kill -0 "$pid" 2>/dev/null; do
            hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $hwm ]] && (( hwm > peak )) && peak=$hwm
            sleep 0.02
        done
        wait "$pid"
        LAST_RSS_KIB=$peak
    fi
}

T_CP=() T_ENC=() T_DEC=() T_REDIR=() T_PIPE=() RSS_REDIR=() RSS_PIPE=()
echo "cofre $("$COFRE" --version | awk '{print $2}'), $(nproc) CPUs, $SIZE bytes, $ROUNDS rounds in $WORK" >&2

# A reference encrypted file for the decrypt runs, made once and checked once. It stays for the
# whole run, so every timed command starts with the same files present (IN and REF) and writes
# one new file of about SIZE bytes, removed before the next command.
REF=$WORK/ref.cofre
cofre encrypt -k "$KEY" -o "$REF" "$IN"
cofre decrypt -o "$WORK/out" "$REF"
cmp -s "$IN" "$WORK/out" || die "decrypted output differs from the input"
rm -f "$WORK/out"

for (( r = 1; r <= ROUNDS; r++ )); do
    timed T_CP cp "$IN" "$WORK/out"
    rm -f "$WORK/out"

    timed T_ENC cofre encrypt -k "$KEY" -o "$WORK/out" "$IN"
    rm -f "$WORK/out"

    timed T_DEC cofre decrypt -o "$WORK/out" "$REF"
    rm -f "$WORK/out"

    for mode in redirect pipe; do
        LAST_RSS_KIB=0
        if [[ $mode == redirect ]]; then
            timed T_REDIR rss_encrypt redirect "$WORK/out"
            RSS_REDIR+=("$LAST_RSS_KIB")
        else
            timed T_PIPE rss_encrypt pipe "$WORK/out"
            RSS_PIPE+=("$LAST_RSS_KIB")
        fi
        if (( r == 1 )); then
            cofre decrypt < "$WORK/out" | cmp -s "$IN" - ||
                die "$mode mode output does not decrypt to the input"
        fi
        rm -f "$WORK/out"
    done

    printf 'round %d/%d: cp %ss  encrypt %ss  decrypt %ss  redirect %ss (RSS %d MiB)  pipe %ss (RSS %d MiB)\n' \
        "$r" "$ROUNDS" "${T_CP[-1]}" "${T_ENC[-1]}" "${T_DEC[-1]}" \
        "${T_REDIR[-1]}" $(( RSS_REDIR[-1] / 1024 )) "${T_PIPE[-1]}" $(( RSS_PIPE[-1] / 1024 )) >&2
done

cp_m=$(median "${T_CP[@]}")
enc_m=$(median "${T_ENC[@]}")
dec_m=$(median "${T_DEC[@]}")
redir_m=$(median "${T_REDIR[@]}")
pipe_m=$(median "${T_PIPE[@]}")
rss_redir=$(max_of "${RSS_REDIR[@]}")
rss_pipe=$(max_of "${RSS_PIPE[@]}")
rss_how=$([[ -n $GNU_TIME ]] && echo "GNU time %M" || echo "polled VmHWM")

awk -v size="$SIZE" -v rounds="$ROUNDS" -v cp="$cp_m" -v enc="$enc_m" -v dec="$dec_m" \
    -v redir="$redir_m" -v pipe="$pipe_m" -v rr="$rss_redir" -v rp="$rss_pipe" \
    -v how="$rss_how" 'BEGIN {
    mib = size / 1048576
    printf "\nmedians of %d interleaved rounds, %.0f MiB file on tmpfs\n", rounds, mib
    printf "  %-30s %7.3f s  %6.0f MiB/s\n", "cp IN OUT", cp, mib / cp
    printf "  %-30s %7.3f s  %6.0f MiB/s  %5.2f x cp\n", "cofre encrypt -o OUT IN", enc, mib / enc, enc / cp
    printf "  %-30s %7.3f s  %6.0f MiB/s  %5.2f x cp\n", "cofre decrypt -o OUT REF", dec, mib / dec, dec / cp
    printf "  %-30s %7.3f s  %6.0f MiB/s  %5.2f x cp\n", "cofre encrypt < IN > OUT", redir, mib / redir, redir / cp
    printf "  %-30s %7.3f s  %6.0f MiB/s  %5.2f x cp\n", "cat IN | cofre encrypt > OUT", pipe, mib / pipe, pipe / cp
    printf "ratios: encrypt/cp %.2f  decrypt/cp %.2f  redirect/cp %.2f  pipe/cp %.2f\n", \
        enc / cp, dec / cp, redir / cp, pipe / cp
    printf "peak RSS (max over rounds, %s): redirect %.1f MiB, pipe %.1f MiB\n", how, rr / 1024, rp / 1024
}'
