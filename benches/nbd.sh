#!/usr/bin/env bash
# cofre's NBD server (`cofre volume attach`, an encrypted volume) side by side with `qemu-nbd -f
# raw` serving a plain file, both on Unix sockets in the same tmpfs folder.
#
#   bash benches/nbd.sh [SIZE] [ROUNDS]
#
# SIZE (default 1G) and ROUNDS (default 3) as in vs_cp.sh; COFRE_BENCH_DIR chooses the folder
# (default /dev/shm); RANDOM_SECS (default 10) the length of each random-write run; BIG (default
# 4 × SIZE, 0 to skip) the size of the volume of part 4.
#
#   1. in: `nbdcopy --flush IN EXPORT`, SIZE bytes of random data into the export, made durable
#      by the final flush. nbdcopy picks its connections (4 where the server offers multi-conn).
#   2. out: `nbdcopy EXPORT null:`, every byte read (the export holds SIZE of random data: no
#      holes to skip).
#   3. random writes: 4 KiB at random offsets over the whole export, queue depth 8, a flush
#      every 16 writes, for RANDOM_SECS seconds (fio's nbd engine; without fio, qemu-img bench
#      writing 4 KiB every 1 MiB + 4 KiB with the same flush interval). Each 4 KiB write
#      changes a 512 KiB block that cofre seals anew at the flush (copy-on-write), so expect a
#      large ratio here.
#   4. memory: the cofre server's peak resident memory (VmHWM) after parts 1–3 on a SIZE volume,
#      and after `nbdcopy` out of a BIG volume served by a fresh server: it should not grow
#      with the volume.
#
# Rounds interleave the two servers. Prints medians (MiB/s, or IOPS), ratios cofre/qemu-nbd
# (time for 1–2: lower is better; IOPS for 3), the CPU time each server process spent on 1 and 2
# (which other load on the machine does not inflate the way it does wall time), the peak
# memory, and the store's size after the random writes (what the session reclaimed as it went).
# Goal: 1 and 2 within 1.5× of qemu-nbd.
# Exits non-zero if a command fails or the data read back differs. Installs nothing.
set -euo pipefail

BENCH_NAME=nbd.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'echo "nbd.sh: line $LINENO: a command failed (exit $?)" >&2' ERR

bench_args "${1:-}" "${2:-${COFRE_BENCH_ROUNDS:-3}}"
RANDOM_SECS=${RANDOM_SECS:-10}
BIG=$(to_bytes "${BIG:-$(( SIZE * 4 ))}")
for t in nbdcopy nbdinfo qemu-nbd qemu-img; do
    command -v "$t" > /dev/null || die "$t is needed (apt-get install libnbd-bin qemu-utils)"
done
HAVE_FIO=0
if command -v fio > /dev/null && fio --enghelp 2>/dev/null | grep -qx '[[:space:]]*nbd'; then HAVE_FIO=1; fi
bench_build
bench_need_space 4
bench_workdir nbd
bench_input
export COFRE_HOME=$WORK/home
"$COFRE" init > /dev/null

PIDS=()
bench_cleanup_extra() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# start_cofre VOLUME NAME: serves VOLUME on WORK/NAME.sock; sets COFRE_URI and COFRE_PID.
start_cofre() {
    "$COFRE" volume attach "$1" --nbd "unix:$WORK/$2.sock" > "$WORK/$2.uri" 2> "$WORK/$2.err" &
    COFRE_PID=$!
    PIDS+=("$COFRE_PID")
    local i
    for i in $(seq 200); do
        [[ -s $WORK/$2.uri ]] && break
        kill -0 "$COFRE_PID" 2>/dev/null || die "cofre volume attach failed: $(cat "$WORK/$2.err")"
        sleep 0.05
    done
    COFRE_URI=$(head -n 1 "$WORK/$2.uri")
    [[ -n $COFRE_URI ]] || die "cofre volume attach printed no URI"
}

# stop_cofre: SIGTERM (flush and detach), which must exit 0.
stop_cofre() {
    kill -TERM "$COFRE_PID"
    wait "$COFRE_PID" || die "cofre volume attach exited with $?: $(cat "$WORK"/*.err)"
}

# peak_rss PID: VmHWM in MiB.
peak_rss() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

VOL=$("$COFRE" -q volume create --size "$(( SIZE >> 20 ))MiB" --encrypted)
start_cofre "$VOL" cofre
PLAIN=$WORK/plain.raw
truncate -s "$SIZE" "$PLAIN"
qemu-nbd -f raw --socket="$WORK/qemu.sock" --export-name=plain --persistent --shared=16 \
    "$PLAIN" 2> "$WORK/qemu.err" &
QEMU_PID=$!
PIDS+=("$QEMU_PID")
for _ in $(seq 200); do [[ -S $WORK/qemu.sock ]] && break; sleep 0.05; done
QEMU_URI="nbd+unix:///plain?socket=$WORK/qemu.sock"
for u in "$COFRE_URI" "$QEMU_URI"; do
    echo "$u: can_multi_conn=$(nbdinfo --can multi-conn "$u" && echo yes || echo no)" >&2
done

# random_writes URI: IOPS of 4 KiB random writes with a flush every 16.
random_writes() {
    if [[ $HAVE_FIO == 1 ]]; then
        fio --name=randw --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --size="$SIZE" \
            --iodepth=8 --fsync=16 --time_based --runtime="$RANDOM_SECS" --randrepeat=0 \
            --output-format=json 2> /dev/null |
            awk '/"write" : \{/ { w = 1 } w && !done && /"iops" :/ { gsub(/[^0-9.]/, "", $3); print $3; done = 1 }'
    else
        local n=$(( RANDOM_SECS * 200 )) t0 t1
        t0=$(now_us)
        qemu-img bench -w -f raw -c "$n" -d 8 -s 4096 -S $(( (1 << 20) + 4096 )) \
            --flush-interval=16 "$1" > /dev/null
        t1=$(now_us)
        awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / ((b - a) / 1e6) }'
    fi
}

# cpu_s PID: CPU seconds (user + system) the process has used so far.
TICK=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TICK" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / t }' "/proc/$1/stat"; }

# measured WALL CPU PID CMD...: appends CMD's wall time to array WALL and the CPU time server
# PID spent meanwhile to array CPU.
measured() {
    local -n cpu_acc=$2
    local pid=$3 c0
    c0=$(cpu_s "$pid")
    timed "$1" "${@:4}"
    cpu_acc+=("$(awk -v a="$c0" -v b="$(cpu_s "$pid")" 'BEGIN { printf "%.3f", b - a }')")
}

IN_C=() IN_Q=() OUT_C=() OUT_Q=() RW_C=() RW_Q=()
CIN_C=() CIN_Q=() COUT_C=() COUT_Q=()
for r in $(seq "$ROUNDS"); do
    echo "round $r of $ROUNDS..." >&2
    measured IN_C CIN_C "$COFRE_PID" nbdcopy --flush "$IN" "$COFRE_URI"
    measured IN_Q CIN_Q "$QEMU_PID" nbdcopy --flush "$IN" "$QEMU_URI"
    measured OUT_C COUT_C "$COFRE_PID" nbdcopy "$COFRE_URI" null:
    measured OUT_Q COUT_Q "$QEMU_PID" nbdcopy "$QEMU_URI" null:
done
# The data went in and comes out intact.
cmp <(nbdcopy "$COFRE_URI" -) "$IN" || die "the volume does not read back as written"
for r in $(seq "$ROUNDS"); do
    echo "random writes, round $r of $ROUNDS ($RANDOM_SECS s each)..." >&2
    RW_C+=("$(random_writes "$COFRE_URI")")
    RW_Q+=("$(random_writes "$QEMU_URI")")
done
RSS_SMALL=$(peak_rss "$COFRE_PID")
RSS_QEMU=$(peak_rss "$QEMU_PID")
stop_cofre
STORE_MIB=$(du -sm "$COFRE_HOME/regions" | awk '{ print $1 }')
"$COFRE" -q verify > /dev/null || die "cofre verify found problems"

RSS_BIG=-
if (( BIG > 0 )); then
    echo "memory: a $(( BIG >> 20 )) MiB volume read out whole..." >&2
    BIGVOL=$("$COFRE" -q volume create --size "$(( BIG >> 20 ))MiB" --encrypted)
    for (( off = 0; off < BIG; off += SIZE )); do
        "$COFRE" -q volume write "$BIGVOL" --offset "$off" "$IN" > /dev/null
    done
    start_cofre "$BIGVOL" big
    nbdcopy "$COFRE_URI" null:
    RSS_BIG=$(peak_rss "$COFRE_PID")
    stop_cofre
fi

mib_s() { awk -v s="$SIZE" -v t="$1" 'BEGIN { printf "%.0f", s / 1048576 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
m_in_c=$(median "${IN_C[@]}") m_in_q=$(median "${IN_Q[@]}")
m_out_c=$(median "${OUT_C[@]}") m_out_q=$(median "${OUT_Q[@]}")
m_rw_c=$(median "${RW_C[@]}") m_rw_q=$(median "${RW_Q[@]}")
goal() { awk -v r="$1" 'BEGIN { if (r > 1.5) printf "  MISSED (goal ≤ 1.5×)" }'; }

echo
echo "NBD, $(( SIZE >> 20 )) MiB, medians of $ROUNDS rounds, in $BASE ($(nproc) CPUs):"
printf '%-34s %14s %14s %10s\n' "" "cofre (enc.)" "qemu-nbd raw" "ratio"
r=$(ratio "$m_in_c" "$m_in_q")
printf '%-34s %9s MiB/s %9s MiB/s %9s×%s\n' "nbdcopy --flush into the export" \
    "$(mib_s "$m_in_c")" "$(mib_s "$m_in_q")" "$r" "$(goal "$r")"
r=$(ratio "$m_out_c" "$m_out_q")
printf '%-34s %9s MiB/s %9s MiB/s %9s×%s\n' "nbdcopy out of the export" \
    "$(mib_s "$m_out_c")" "$(mib_s "$m_out_q")" "$r" "$(goal "$r")"
printf '%-34s %10s IOPS %10s IOPS %9s× as many\n' \
    "4 KiB random writes, flush /16" "$m_rw_c" "$m_rw_q" "$(ratio "$m_rw_c" "$m_rw_q")"
echo "  (times are ratios cofre/qemu-nbd, lower is better; random writes by $(
    [[ $HAVE_FIO == 1 ]] && echo "fio's nbd engine, iodepth 8" || echo "qemu-img bench, depth 8"))"
printf '%-34s %10s s    %10s s    %9s×\n' "server CPU, nbdcopy in" \
    "$(median "${CIN_C[@]}")" "$(median "${CIN_Q[@]}")" \
    "$(ratio "$(median "${CIN_C[@]}")" "$(median "${CIN_Q[@]}")")"
printf '%-34s %10s s    %10s s    %9s×\n' "server CPU, nbdcopy out" \
    "$(median "${COUT_C[@]}")" "$(median "${COUT_Q[@]}")" \
    "$(ratio "$(median "${COUT_C[@]}")" "$(median "${COUT_Q[@]}")")"
echo "  (user + system seconds of the server process alone; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "cofre server peak memory: $RSS_SMALL MiB serving $(( SIZE >> 20 )) MiB, $RSS_BIG MiB serving $(( BIG >> 20 )) MiB (qemu-nbd: $RSS_QEMU MiB)"
echo "cofre store after the random writes: $STORE_MIB MiB for a $(( SIZE >> 20 )) MiB volume"
