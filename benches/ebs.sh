#!/usr/bin/env bash
# EBS in cofre against the plain file copies it stands for, on tmpfs by default.
#
#   bash benches/ebs.sh
#
# Knobs (environment):
#   RUNS      timed runs of each command; medians are reported [5]
#   DIR       where the home and the data go [/dev/shm, so the disk is not measured]
#   SIZE_GIB  GiB of the big snapshot copied within one filesystem [8]
#   OTHER_DIR a folder on another filesystem than DIR, for the cross-filesystem copy
#             [/var/tmp]; that part is skipped if it is the same filesystem
#   WARM      1 (default) or 0: before each timed command that moves data, write and delete
#             1 GiB in DIR (untimed), so every such command starts with recently freed memory
#             (see COFRE_BENCH_WARM in vs_cp.sh)
#
# Parts (all volumes encrypted, under the region's alias/aws/ebs; source region us-east-1):
#   1. import: `volume create --from-image IN --encrypted` of a 1 GiB random file, against
#      `cp IN OUT` in the same rounds. Target: ≤ 1.2 × cp.
#   2. snapshot: `snapshot create` of a 4 GiB volume imported from a 4 GiB image (the 1 GiB
#      file four times, the first byte of each GiB changed; encrypted blocks all differ
#      anyway). Wall time including process start, with `cofre --version` as the floor.
#      Target: < 100 ms.
#   3. copy on one filesystem: `snapshot copy` to eu-west-1 of a 1 GiB and a SIZE_GIB snapshot
#      (the big volume is `volume create --size` then the 1 GiB file written SIZE_GIB times:
#      SIZE_GIB GiB of distinct stored blocks, with no SIZE_GIB image file). Blocks arrive by
#      hard link. The copy is deleted after each run so every run links every block. Target:
#      < 100 ms each.
#   4. copy across filesystems: ap-southeast-2's folder is put in OTHER_DIR (`region
#      set-path`), and the 1 GiB snapshot copied there, against `cp -r` of the source region's
#      blocks folder (only the 1 GiB volume's blocks are in it then) to OTHER_DIR. cofre syncs
#      the filesystem before it publishes the copy and cp does not, so `cp -r` + `sync -f` is
#      shown too. Everything is synced (untimed) before each timed command; page caches cannot
#      be dropped without root, so reads from DIR are from memory anyway (tmpfs) and writes go
#      through OTHER_DIR's page cache. Target: ≤ 1.1 × cp -r.
#   5. incremental: a snapshot of the 1 GiB volume copied to another region; then 1% of
#      the volume changed (`volume write` of 512 KiB at 20 block-aligned places, 10 MiB);
#      then `snapshot create` + `snapshot copy`. Bytes they add, from `du -sb` of both regions'
#      ebs folders in one call (hard links count once) before and after, as % of the volume:
#      into eu-west-1 (same filesystem, blocks linked) and into ap-southeast-2 (OTHER_DIR,
#      blocks copied). Target: ≤ 2%.
#
# Data in DIR at the peak: about max(10, SIZE_GIB + 3) GiB (part 2: the 1 GiB file, the 4 GiB
# image, its 4 GiB volume and the 1 GiB volume; part 3: the file, the 1 GiB volume, the big
# volume, and the warming GiB). Every part removes what it made before the next starts.
#
# Prints a table of medians and ratios, with MISSED next to a missed target. Exits non-zero
# if a command fails or a check fails (a bad export, a copy that did not link or copy every
# block), not if a target is missed. Installs nothing; runs `cargo build --release` in the
# repository it lives in.
set -euo pipefail

BENCH_NAME=ebs.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'echo "ebs.sh: line $LINENO: a command failed (exit $?)" >&2' ERR

RUNS=${RUNS:-5}
DIR=${DIR:-/dev/shm}
SIZE_GIB=${SIZE_GIB:-8}
OTHER_DIR=${OTHER_DIR:-/var/tmp}
WARM=${WARM:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "bad RUNS=$RUNS: give a positive integer"
[[ $SIZE_GIB =~ ^[1-9][0-9]*$ ]] || die "bad SIZE_GIB=$SIZE_GIB: give a positive integer"
[[ -d $DIR && -w $DIR ]] || die "DIR=$DIR is not a writable folder"
GIB=$((1 << 30))
BLOCK=$((512 << 10))
SIZE=$GIB # what lib.sh's warm writes
BASE=$DIR

# fstype DIR: the type of the filesystem DIR is on (ext4, tmpfs...).
fstype() { df -PT "$1" | awk 'NR == 2 { print $2 }'; }

need_gib=$(( SIZE_GIB + 3 > 10 ? SIZE_GIB + 3 : 10 ))
avail=$(( $(df -Pk "$DIR" | awk 'NR==2 {print $4}') * 1024 ))
(( avail >= need_gib * GIB )) ||
    die "$DIR has $(( avail >> 20 )) MiB free, needs $(( need_gib << 10 )) MiB; use a smaller SIZE_GIB"
mem_avail=$(awk '/^MemAvailable:/ {printf "%.0f\n", $2 * 1024}' /proc/meminfo)
if [[ $(fstype "$DIR") == tmpfs ]] && (( mem_avail < need_gib * GIB )); then
    die "$DIR is tmpfs and only $(( mem_avail >> 20 )) MiB of memory is available; needs $(( need_gib << 10 )) MiB"
fi
CROSS=1
if [[ ! -d $OTHER_DIR || ! -w $OTHER_DIR ]]; then
    echo "note: OTHER_DIR=$OTHER_DIR is not a writable folder; the cross-filesystem part is skipped" >&2
    CROSS=0
elif [[ $(stat -c %d "$OTHER_DIR") == "$(stat -c %d "$DIR")" ]]; then
    echo "note: OTHER_DIR=$OTHER_DIR is on the same filesystem as $DIR; the cross-filesystem part is skipped" >&2
    CROSS=0
fi

bench_build
bench_workdir cofre-ebs
OTHER=
bench_cleanup_extra() { if [[ -n $OTHER ]]; then rm -rf -- "$OTHER"; fi; }
if (( CROSS )); then
    OTHER=$(mktemp -d "$OTHER_DIR/cofre-ebs.XXXXXX")
fi

H=$WORK/home
SRC=us-east-1 DST=eu-west-1 FAR=ap-southeast-2
cofre() { "$COFRE" --home "$H" --quiet "$@"; }
# json_field FIELD FILE: a top-level number of a JSON object that cofre printed.
json_field() { awk -v f="\"$1\"" '$1 == f":" { gsub(/[^0-9]/, "", $2); print $2 }' "$2"; }

# clock_us: sets CLOCK to microseconds since the epoch, with no subshell (whose fork would add
# about a millisecond to figures of a few ms) when bash has EPOCHREALTIME.
if [[ -n ${EPOCHREALTIME:-} ]]; then
    clock_us() { local t=${EPOCHREALTIME/[.,]/}; CLOCK=$t; }
else
    clock_us() { CLOCK=$(now_us); }
fi
# tms VAR CMD...: runs CMD (stdout to $WORK/last) and appends its wall time in microseconds
# to array VAR. tmsw: the same after warming (for commands that move data).
tms() {
    local -n out_=$1; shift
    local t0 t1
    clock_us; t0=$CLOCK
    "$@" > "$WORK/last"
    clock_us; t1=$CLOCK
    out_+=("$(( t1 - t0 ))")
}
tmsw() { warm; tms "$@"; }
# med_ms NUM...: the median of microsecond figures, in ms (3 decimals).
med_ms() { awk -v m="$(median "$@")" 'BEGIN { printf "%.3f", m / 1000 }'; }
last() { tr -d '\n' < "$WORK/last"; }

echo "cofre $("$COFRE" --version | awk '{print $2}'), $(nproc) CPUs, RUNS=$RUNS, DIR=$DIR ($(fstype "$DIR")), work in $WORK" >&2

# ── Setup ─────────────────────────────────────────────────────────────────────────────────
IN=$WORK/in.img
echo "creating 1 GiB of random data in $IN..." >&2
head -c "$GIB" /dev/urandom > "$IN"
# The home, the regions and alias/aws/ebs in each: made untimed.
v=$(cofre volume create --size 1 --encrypted)
s=$(cofre snapshot create "$v")
c=$(cofre --region "$DST" snapshot copy "$s" --source-region "$SRC")
cofre --region "$DST" snapshot delete "$c"
cofre snapshot delete "$s"
cofre volume delete "$v"
if (( CROSS )); then
    cofre region set-path "$FAR" "$OTHER/region" > /dev/null
    # Makes ap-southeast-2's key: a copy of a tiny snapshot.
    v=$(cofre volume create --size 1 --encrypted)
    s=$(cofre snapshot create "$v")
    c=$(cofre --region "$FAR" snapshot copy "$s" --source-region "$SRC")
    cofre --region "$FAR" snapshot delete "$c"
    cofre snapshot delete "$s"
    cofre volume delete "$v"
fi

# ── 1. Import ─────────────────────────────────────────────────────────────────────────────
echo "1. import of 1 GiB vs cp..." >&2
T_CP=() T_IMP=()
V1=
for (( r = 1; r <= RUNS; r++ )); do
    tmsw T_CP cp "$IN" "$WORK/out"
    rm -f "$WORK/out"
    tmsw T_IMP cofre volume create --from-image "$IN" --encrypted
    v=$(last)
    if (( r == 1 )); then
        cofre volume export "$v" -o "$WORK/out"
        cmp -s "$IN" "$WORK/out" || die "volume $v does not export the image it was made from"
        rm -f "$WORK/out"
    fi
    if (( r < RUNS )); then cofre volume delete "$v"; else V1=$v; fi
    echo "  run $r/$RUNS: cp $(( T_CP[-1] / 1000 )) ms, import $(( T_IMP[-1] / 1000 )) ms" >&2
done

# ── 2. Snapshot of a 4 GiB volume ─────────────────────────────────────────────────────────
echo "2. snapshot of a 4 GiB volume..." >&2
IMG4=$WORK/in4.img
for k in 0 1 2 3; do
    # shellcheck disable=SC2059 # the format is the byte
    { printf "\\x$(printf %02x $((k + 0x41)))"; tail -c +2 "$IN"; } >> "$IMG4"
done
t0=$(now_us)
V4=$(cofre volume create --from-image "$IMG4" --encrypted)
IMPORT4_MS=$(( ($(now_us) - t0) / 1000 ))
rm -f "$IMG4"
T_VER=() T_SNAP=()
SNAPS4=()
for (( r = 1; r <= RUNS; r++ )); do
    tms T_VER "$COFRE" --version
    tms T_SNAP cofre snapshot create "$V4"
    SNAPS4+=("$(last)")
    echo "  run $r/$RUNS: --version $(( T_VER[-1] / 1000 )) ms, snapshot create $(( T_SNAP[-1] / 1000 )) ms" >&2
done
cofre snapshot describe "${SNAPS4[0]}" --output json > "$WORK/last"
[[ $(json_field StoredBlocks "$WORK/last") == $(( 4 * GIB / BLOCK )) ]] ||
    die "the 4 GiB snapshot does not hold $(( 4 * GIB / BLOCK )) blocks"
for s in "${SNAPS4[@]}"; do cofre snapshot delete "$s"; done
cofre volume delete "$V4"
cofre gc > /dev/null

# copy_once VAR REGION SNAP EXPECT: a timed copy of SNAP into REGION, deleted (and its blocks
# freed) after; checks every block arrived as EXPECT (Linked or Written). Before a copy that
# writes, OTHER's filesystem is synced and memory warmed, as before cp -r.
copy_once() {
    local -n acc_=$1
    local region=$2 snap=$3 expect=$4 c blocks n
    if [[ $expect == Written ]]; then sync -f "$OTHER"; warm; fi
    tms "$1" cofre --region "$region" --output json snapshot copy "$snap" --source-region "$SRC"
    blocks=$(json_field Blocks "$WORK/last")
    n=$(json_field "$expect" "$WORK/last")
    [[ -n $blocks && $blocks -gt 0 && $n == "$blocks" ]] ||
        die "copy of $snap into $region: $n of $blocks blocks $expect: $(cat "$WORK/last")"
    c=$(awk -F'"' '/"SnapshotId"/ {print $4}' "$WORK/last")
    cofre --region "$region" snapshot delete "$c"
    COPY_NOTE="copy $(( acc_[-1] / 1000 )) ms ($blocks blocks $expect)"
}
# copy_runs VAR REGION SNAP EXPECT: RUNS of copy_once.
copy_runs() {
    local r
    for (( r = 1; r <= RUNS; r++ )); do
        copy_once "$@"
        echo "  run $r/$RUNS: $COPY_NOTE" >&2
    done
}

# ── 3. Copy on one filesystem ─────────────────────────────────────────────────────────────
echo "3. copy of a 1 GiB snapshot within $DIR..." >&2
S1=$(cofre snapshot create "$V1")
T_C1=()
copy_runs T_C1 "$DST" "$S1" Linked

# ── 4. Copy across filesystems (the source region holds only the 1 GiB volume now) ──────────
T_X=() T_CPR=() T_CPRS=()
if (( CROSS )); then
    echo "4. copy of the 1 GiB snapshot to $OTHER_DIR vs cp -r..." >&2
    SRC_BLOCKS=$H/regions/$SRC/ebs/blocks
    cp_r() { cp -r "$SRC_BLOCKS" "$OTHER/cp"; }
    cp_r_sync() { cp -r "$SRC_BLOCKS" "$OTHER/cp" && sync -f "$OTHER/cp"; }
    # Interleaved rounds, so drift in the disk's speed hits all three alike.
    for (( r = 1; r <= RUNS; r++ )); do
        sync -f "$OTHER"; warm
        tms T_CPR cp_r
        rm -rf "$OTHER/cp"; sync -f "$OTHER"; warm
        tms T_CPRS cp_r_sync
        rm -rf "$OTHER/cp"
        copy_once T_X "$FAR" "$S1" Written
        echo "  run $r/$RUNS: cp -r $(( T_CPR[-1] / 1000 )) ms, cp -r + sync $(( T_CPRS[-1] / 1000 )) ms, $COPY_NOTE" >&2
    done
fi

# ── 3b. The big copy on one filesystem ────────────────────────────────────────────────────
echo "3b. copy of a $SIZE_GIB GiB snapshot within $DIR..." >&2
VB=$(cofre volume create --size "$SIZE_GIB" --encrypted)
for (( k = 0; k < SIZE_GIB; k++ )); do
    cofre volume write --offset $(( k * GIB )) "$VB" "$IN"
done
SB=$(cofre snapshot create "$VB")
cofre snapshot describe "$SB" --output json > "$WORK/last"
[[ $(json_field StoredBlocks "$WORK/last") == $(( SIZE_GIB * GIB / BLOCK )) ]] ||
    die "the $SIZE_GIB GiB snapshot does not hold $(( SIZE_GIB * GIB / BLOCK )) blocks"
T_CB=()
copy_runs T_CB "$DST" "$SB" Linked
cofre snapshot delete "$SB"
cofre volume delete "$VB"
cofre gc > /dev/null
cofre --region "$DST" gc > /dev/null

# ── 5. Incremental ────────────────────────────────────────────────────────────────────────
echo "5. incremental snapshot + copy after changing 1%..." >&2
PATCH=$WORK/patch
head -c "$BLOCK" /dev/urandom > "$PATCH"
nblocks=$(( GIB / BLOCK ))
# change_1pct: 20 block-aligned writes of 512 KiB spread over the volume (10 MiB, ~1%).
change_1pct() {
    local k
    for (( k = 0; k < 20; k++ )); do
        cofre volume write --offset $(( (k * nblocks / 20 + $1) * BLOCK )) "$V1" "$PATCH"
    done
}
# incremental REGION DIR SHIFT: a snapshot of V1 copied to REGION (whose folder is DIR), then
# 1% of V1 changed (SHIFT moves the places); prints the bytes that `snapshot create` +
# `snapshot copy` into REGION then add to SRC's and REGION's ebs folders.
incremental() {
    local region=$1 dir=$2 before after s
    s=$(cofre snapshot create "$V1")
    cofre --region "$region" snapshot copy "$s" --source-region "$SRC" > /dev/null
    change_1pct "$3"
    before=$(du -sb "$H/regions/$SRC/ebs" "$dir/ebs" | awk '{ t += $1 } END { printf "%.0f\n", t }')
    s=$(cofre snapshot create "$V1")
    cofre --region "$region" snapshot copy "$s" --source-region "$SRC" > /dev/null
    after=$(du -sb "$H/regions/$SRC/ebs" "$dir/ebs" | awk '{ t += $1 } END { printf "%.0f\n", t }')
    echo $(( after - before ))
}
INC_SAME=$(incremental "$DST" "$H/regions/$DST" 3)
INC_FAR=
if (( CROSS )); then
    INC_FAR=$(incremental "$FAR" "$OTHER/region" 5)
fi
for region in "$SRC" "$DST" "$FAR"; do
    if [[ $region == "$FAR" ]] && (( ! CROSS )); then continue; fi
    cofre --region "$region" verify > /dev/null || die "verify of $region failed at the end"
done

# ── Table ─────────────────────────────────────────────────────────────────────────────────
cp_m=$(med_ms "${T_CP[@]}") imp_m=$(med_ms "${T_IMP[@]}")
ver_m=$(med_ms "${T_VER[@]}") snap_m=$(med_ms "${T_SNAP[@]}")
c1_m=$(med_ms "${T_C1[@]}") cb_m=$(med_ms "${T_CB[@]}")
x_m='' cpr_m='' cprs_m=''
if (( CROSS )); then
    x_m=$(med_ms "${T_X[@]}") cpr_m=$(med_ms "${T_CPR[@]}") cprs_m=$(med_ms "${T_CPRS[@]}")
fi

awk -v runs="$RUNS" -v dir="$DIR" -v dirfs="$(fstype "$DIR")" \
    -v other="$OTHER_DIR" -v otherfs="$( (( CROSS )) && fstype "$OTHER_DIR" || echo -)" \
    -v cross="$CROSS" -v gib="$SIZE_GIB" -v imp4="$IMPORT4_MS" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" \
    -v cp="$cp_m" -v imp="$imp_m" -v ver="$ver_m" -v snap="$snap_m" -v c1="$c1_m" -v cb="$cb_m" \
    -v x="$x_m" -v cpr="$cpr_m" -v cprs="$cprs_m" -v inc_same="$INC_SAME" -v inc_far="$INC_FAR" \
    'function verdict(ok) { return ok ? "ok" : "MISSED" }
    BEGIN {
    printf "\nmedians of %d runs; data in %s (%s); load average at the end %s\n", runs, dir, dirfs, load
    printf "%-44s %12s  %-24s %7s  %-10s %s\n", "measure", "cofre", "baseline", "ratio", "target", ""
    printf "%-44s %10.0f ms  %-24s %6.2fx  %-10s %s\n", "1. import 1 GiB --encrypted", imp, \
        sprintf("cp %.0f ms", cp), imp / cp, "<= 1.2x", verdict(imp / cp <= 1.2)
    printf "%-44s %10.1f ms  %-24s %7s  %-10s %s\n", "2. snapshot create, 4 GiB volume", snap, \
        sprintf("--version %.1f ms", ver), "", "< 100 ms", verdict(snap < 100)
    printf "%-44s %10.1f ms  %-24s %7s  %-10s %s\n", "3. copy 1 GiB snapshot, same fs", c1, \
        "", "", "< 100 ms", verdict(c1 < 100)
    printf "%-44s %10.1f ms  %-24s %7s  %-10s %s\n", sprintf("3. copy %d GiB snapshot, same fs", gib), cb, \
        "", "", "< 100 ms", verdict(cb < 100)
    if (cross) {
        printf "%-44s %10.0f ms  %-24s %6.2fx  %-10s %s\n", \
            sprintf("4. copy 1 GiB snapshot, %s -> %s", dirfs, otherfs), x, \
            sprintf("cp -r %.0f ms", cpr), x / cpr, "<= 1.1x", verdict(x / cpr <= 1.1)
        printf "%-44s %12s  %-24s %6.2fx  %-10s %s\n", "", "", \
            sprintf("cp -r + sync %.0f ms", cprs), x / cprs, "(info)", ""
    } else {
        printf "%-44s %12s\n", "4. copy across filesystems", "skipped"
    }
    printf "%-44s %10.3f %%   %-24s %7s  %-10s %s\n", "5. 1% changed: snapshot + copy, same fs", \
        inc_same / 2^30 * 100, sprintf("%.1f KiB", inc_same / 1024), "", "<= 2%", verdict(inc_same / 2^30 * 100 <= 2)
    if (cross)
        printf "%-44s %10.3f %%   %-24s %7s  %-10s %s\n", sprintf("5. 1%% changed: snapshot + copy, -> %s", otherfs), \
            inc_far / 2^30 * 100, sprintf("%.2f MiB", inc_far / 2^20), "", "<= 2%", verdict(inc_far / 2^30 * 100 <= 2)
    printf "(import of the 4 GiB image for part 2: %d ms; page caches were not dropped: no root)\n", imp4
    }'
