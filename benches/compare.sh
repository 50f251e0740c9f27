#!/usr/bin/env bash
# Side by side: encrypts and decrypts the same file with cofre and with its peers age and gpg,
# with `cp` of the file as the floor, on tmpfs.
#
#   benches/compare.sh [SIZE] [ROUNDS]
#
# SIZE, ROUNDS, COFRE_BENCH_DIR and COFRE_BENCH_WARM as in vs_cp.sh (default 1G, 5 rounds,
# /dev/shm, warming on; see there).
#
# The tools, each with a throwaway key in the work folder:
#   cp     cp IN OUT                                              (the floor)
#   cofre  cofre encrypt -k KEY -o ENC IN; cofre decrypt -o OUT ENC (release build, one key in
#          a throwaway --home)
#   age    age -r RECIPIENT -o ENC IN; age -d -i KEY -o OUT ENC (X25519 recipient from age-keygen)
#   gpg    gpg --symmetric --cipher-algo AES256 --compress-algo none, passphrase through
#          --batch --pinentry-mode loopback --passphrase, in a throwaway GNUPGHOME whose agent is
#          stopped on exit. gpg's default S2K (iterated SHA-1) is part of what it costs.
#
# Each round runs, in this order and each on its own: cp, then for each of cofre, age and gpg
# its encrypt of IN and its decrypt of what that produced, comparing the output with IN (cmp,
# untimed) and removing both files. Rounds are interleaved so that drift in the machine's load
# hits every tool alike. Before the rounds, every tool does an untimed check run on 1 MiB
# (which also starts gpg's agent). Prints, for each tool, the median wall time of encrypt and
# decrypt, the ratio of each to cp's median, how many decrypts reproduced the input, and the
# peak RSS (GNU time's %M; every command, cp included, runs under it when it is present, so
# all pay its small cost alike).
#
# Installs nothing. A missing peer (age, gpg) or GNU time is reported with the command that
# installs it, and the script goes on without it ("skipped: not installed"). A tool whose
# check run fails is skipped too, with its error. It runs `cargo build --release` in the
# repository it lives in. Exits 1 if any decrypt did not reproduce the input or a tool failed
# mid-run.
set -euo pipefail

BENCH_NAME=compare.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

trap 'echo "compare.sh: line $LINENO: a command failed (exit $?)" >&2' ERR
bench_args "$@"
command -v cmp > /dev/null || die "cmp not found; install it: apt-get install diffutils"

PEERS=(cofre age gpg)
declare -A SKIP=() VERSION=() FAILED=() CMP_OK=() CMP_BAD=()
have() { command -v "$1" > /dev/null 2>&1; }
if ! have age || ! have age-keygen; then
    SKIP[age]="skipped: not installed (apt-get install age)"
fi
if ! have gpg; then
    SKIP[gpg]="skipped: not installed (apt-get install gnupg)"
fi
bench_find_gnu_time
RSS_NOTE=
if [[ -z $GNU_TIME ]]; then
    RSS_NOTE="peak RSS skipped: GNU time (/usr/bin/time) not installed (apt-get install time)"
fi
for t in age gpg; do
    if [[ -n ${SKIP[$t]:-} ]]; then echo "$t: ${SKIP[$t]}" >&2; fi
done
if [[ -n $RSS_NOTE ]]; then echo "$RSS_NOTE" >&2; fi

bench_build
# IN, the encrypted file and the decrypted one exist at once (or IN, ENC and the warming file).
bench_need_space 3
bench_workdir cofre-compare
bench_input

# The throwaway keys.
HOME_DIR=$WORK/cofre-home
KEY=$("$COFRE" --home "$HOME_DIR" --quiet key create --description "compare.sh throwaway key")
VERSION[cofre]=$("$COFRE" --version | awk '{print $2}')
VERSION[cp]="coreutils $(cp --version | awk 'NR == 1 {print $NF}')"
if [[ -z ${SKIP[age]:-} ]]; then
    AGE_KEY=$WORK/age.key
    age-keygen -o "$AGE_KEY" 2> /dev/null
    AGE_RECIPIENT=$(age-keygen -y "$AGE_KEY")
    VERSION[age]=$(age --version 2> /dev/null | head -n 1 || true)
fi
if [[ -z ${SKIP[gpg]:-} ]]; then
    export GNUPGHOME=$WORK/gnupg
    mkdir -m 700 "$GNUPGHOME"
    GPG_PASS="compare.sh throwaway passphrase"
    VERSION[gpg]=$(gpg --version 2> /dev/null | awk 'NR == 1 {print $NF}' || true)
fi
# Runs on exit, before the work folder goes: stops the agent gpg started for GNUPGHOME.
# shellcheck disable=SC2317 # called by bench_cleanup in lib.sh
bench_cleanup_extra() {
    if [[ -n ${GNUPGHOME:-} && -d $GNUPGHOME ]] && have gpgconf; then
        gpgconf --kill gpg-agent > /dev/null 2>&1
    fi
}

# set_cmd TOOL enc|dec SRC DST: the command, as an argv in CMD (a program, so GNU time can run it).
set_cmd() {
    local tool=$1 op=$2 src=$3 dst=$4
    case $tool:$op in
        cofre:enc) CMD=("$COFRE" --home "$HOME_DIR" --quiet encrypt -k "$KEY" -o "$dst" "$src") ;;
        cofre:dec) CMD=("$COFRE" --home "$HOME_DIR" --quiet decrypt -o "$dst" "$src") ;;
        age:enc) CMD=(age -r "$AGE_RECIPIENT" -o "$dst" "$src") ;;
        age:dec) CMD=(age -d -i "$AGE_KEY" -o "$dst" "$src") ;;
        gpg:enc) CMD=(gpg --batch --yes --quiet --pinentry-mode loopback --passphrase "$GPG_PASS"
                      --symmetric --cipher-algo AES256 --compress-algo none -o "$dst" "$src") ;;
        gpg:dec) CMD=(gpg --batch --yes --quiet --pinentry-mode loopback --passphrase "$GPG_PASS"
                      -o "$dst" --decrypt "$src") ;;
        *) die "no command for $tool $op" ;;
    esac
}

# run CMD...: runs CMD with its stderr in WORK/err, under GNU time when present (peak RSS in
# WORK/rss). Its exit status goes to RC; it never fails itself, so `timed` always records.
run() {
    RC=0
    if [[ -n $GNU_TIME ]]; then
        "$GNU_TIME" -f %M -o "$WORK/rss" "$@" 2> "$WORK/err" || RC=$?
    else
        "$@" 2> "$WORK/err" || RC=$?
    fi
}
# last_rss: the peak RSS in KiB of the last `run`, 0 without GNU time.
last_rss() {
    if [[ -n $GNU_TIME ]]; then tail -n 1 "$WORK/rss"; else echo 0; fi
}
# errline: the first line of the last `run`'s stderr, for a report.
errline() { head -n 1 "$WORK/err" | cut -c 1-100; }

# Untimed check run on 1 MiB: a tool that cannot round-trip it is skipped with its error.
SMALL=$WORK/small
head -c $(( 1 << 20 )) /dev/urandom > "$SMALL"
ACTIVE=()
for t in "${PEERS[@]}"; do
    [[ -z ${SKIP[$t]:-} ]] || continue
    set_cmd "$t" enc "$SMALL" "$WORK/small.enc"; run "${CMD[@]}"
    if (( RC == 0 )); then set_cmd "$t" dec "$WORK/small.enc" "$WORK/small.out"; run "${CMD[@]}"; fi
    if (( RC != 0 )); then
        SKIP[$t]="skipped: check run failed (exit $RC): $(errline)"
    elif ! cmp -s "$SMALL" "$WORK/small.out"; then
        SKIP[$t]="skipped: check run did not decrypt to its input"
    else
        ACTIVE+=("$t")
    fi
    if [[ -n ${SKIP[$t]:-} ]]; then echo "$t: ${SKIP[$t]}" >&2; fi
    rm -f "$WORK/small.enc" "$WORK/small.out"
done
rm -f "$SMALL"

# Times per tool (T_ENC_tool, T_DEC_tool) and peak RSS in KiB (R_ENC_tool, R_DEC_tool).
# shellcheck disable=SC2034 # used through namerefs
T_CP=() R_CP=() T_ENC_cofre=() T_DEC_cofre=() T_ENC_age=() T_DEC_age=() T_ENC_gpg=() T_DEC_gpg=()
# shellcheck disable=SC2034
R_ENC_cofre=() R_DEC_cofre=() R_ENC_age=() R_DEC_age=() R_ENC_gpg=() R_DEC_gpg=()
for t in "${PEERS[@]}"; do CMP_OK[$t]=0; CMP_BAD[$t]=0; done

loadavg() { cut -d ' ' -f 1-3 /proc/loadavg 2> /dev/null || echo "?"; }
LOAD_BEFORE=$(loadavg)
echo "$(nproc) CPUs, $SIZE bytes, $ROUNDS rounds in $WORK; tools: cp ${ACTIVE[*]}" >&2
ENC=$WORK/enc OUT=$WORK/out
for (( r = 1; r <= ROUNDS; r++ )); do
    timed T_CP run cp "$IN" "$OUT"
    (( RC == 0 )) || die "cp failed: $(errline)"
    R_CP+=("$(last_rss)")
    rm -f "$OUT"
    line="round $r/$ROUNDS: cp ${T_CP[-1]}s"

    for t in "${ACTIVE[@]}"; do
        [[ -z ${FAILED[$t]:-} ]] || continue
        declare -n tenc=T_ENC_$t tdec=T_DEC_$t renc=R_ENC_$t rdec=R_DEC_$t
        set_cmd "$t" enc "$IN" "$ENC"
        timed tenc run "${CMD[@]}"
        if (( RC != 0 )); then
            FAILED[$t]="FAILED: encrypt exited $RC: $(errline)"
            unset 'tenc[-1]'
        else
            renc+=("$(last_rss)")
            set_cmd "$t" dec "$ENC" "$OUT"
            timed tdec run "${CMD[@]}"
            if (( RC != 0 )); then
                FAILED[$t]="FAILED: decrypt exited $RC: $(errline)"
                unset 'tenc[-1]' 'renc[-1]' 'tdec[-1]'
            else
                rdec+=("$(last_rss)")
                if cmp -s "$IN" "$OUT"; then
                    CMP_OK[$t]=$(( CMP_OK[$t] + 1 ))
                else
                    CMP_BAD[$t]=$(( CMP_BAD[$t] + 1 ))
                    echo "$t: round $r: decrypted output differs from the input" >&2
                fi
            fi
        fi
        if [[ -n ${FAILED[$t]:-} ]]; then echo "$t: ${FAILED[$t]}" >&2; fi
        rm -f "$ENC" "$OUT"
        if [[ -z ${FAILED[$t]:-} ]]; then line+="  $t ${tenc[-1]}s/${tdec[-1]}s"; fi
        unset -n tenc tdec renc rdec
    done
    echo "$line" >&2
done

# The table.
cp_m=$(median "${T_CP[@]}")
mib=$(awk -v s="$SIZE" 'BEGIN { printf "%.0f", s / 1048576 }')
mib_rss() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
# cell SECONDS: "0.512 s   2000 MiB/s   1.00 x cp", 32 wide.
cell() {
    awk -v t="$1" -v cp="$cp_m" -v s="$SIZE" \
        'BEGIN { printf "%7s s %6.0f MiB/s %6.2f x cp", sprintf("%.3f", t), s / 1048576 / t, t / cp }'
}
# rss_cell KIB... : "12/34 MiB"
rss_cell() {
    [[ -n $GNU_TIME ]] || { echo "-"; return; }
    local out=() k
    for k in "$@"; do out+=("$(mib_rss "$k")"); done
    local IFS=/
    echo "${out[*]} MiB"
}

status=0
echo
echo "medians of $ROUNDS interleaved rounds, $mib MiB file in $BASE, $(nproc) CPUs," \
     "load average $LOAD_BEFORE before the rounds, $(loadavg) after"
printf '%-6s  %-14s  %-32s  %-32s  %-10s  %s\n' tool version encrypt decrypt "cmp OUT IN" "peak RSS enc/dec"
printf '%-6s  %-14s  %-32s  %-32s  %-10s  %s\n' cp "${VERSION[cp]}" "$(cell "$cp_m")" "(the floor: a plain copy)" "" \
    "$(rss_cell "$(max_of "${R_CP[@]}")")"
for t in "${PEERS[@]}"; do
    if [[ -n ${SKIP[$t]:-} ]]; then
        printf '%-6s  %-14s  %s\n' "$t" "${VERSION[$t]:--}" "${SKIP[$t]}"
        continue
    fi
    # shellcheck disable=SC2178 # namerefs to this tool's arrays
    declare -n tenc=T_ENC_$t tdec=T_DEC_$t renc=R_ENC_$t rdec=R_DEC_$t
    n=$(( CMP_OK[$t] + CMP_BAD[$t] ))
    if (( n == 0 )); then
        printf '%-6s  %-14s  %s\n' "$t" "${VERSION[$t]:--}" "${FAILED[$t]}"
        status=1
    else
        check="ok $n/$n"
        (( CMP_BAD[$t] == 0 )) || { check="BAD ${CMP_BAD[$t]}/$n"; status=1; }
        printf '%-6s  %-14s  %-32s  %-32s  %-10s  %s\n' "$t" "${VERSION[$t]:--}" \
            "$(cell "$(median "${tenc[@]}")")" "$(cell "$(median "${tdec[@]}")")" "$check" \
            "$(rss_cell "$(max_of "${renc[@]}")" "$(max_of "${rdec[@]}")")"
        if [[ -n ${FAILED[$t]:-} ]]; then
            printf '%-6s  %s (medians above are of the %d rounds before)\n' "" "${FAILED[$t]}" "$n"
            status=1
        fi
    fi
    unset -n tenc tdec renc rdec
done
if [[ -n $RSS_NOTE ]]; then echo "$RSS_NOTE"; fi
exit "$status"
