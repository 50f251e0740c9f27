#!/usr/bin/env bash
# In-process KMS Encrypt requests per second, each answered once its trail record is synced
# (benches/trail.rs), on this tree and on another git revision, and the ratio between them.
#
#   benches/trail.sh [BASE_REV] [-- TRAIL_ARGS...]     (default BASE_REV: main)
#
# TRAIL_ARGS go to benches/trail.rs (default: --threads 1,4,16 --seconds 2 --rounds 5
# --dirs $TMPDIR,/dev/shm). BASE_REV is exported with `git archive` into a temporary folder
# (the repository is only read), given this tree's benches/trail.rs, and built with its own
# target dir ($COFRE_BENCH_BASE_TARGET, else $CARGO_TARGET_DIR-base, else target-base here).
# Both are built first, then run one after the other, base first. Installs nothing.
set -euo pipefail

BENCH_NAME=trail.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_REV=main
if [[ ${1:-} != "" && $1 != "--" ]]; then
    BASE_REV=$1
    shift
fi
[[ ${1:-} == "--" ]] && shift
ARGS=("$@")
git -C "$REPO" rev-parse --verify --quiet "$BASE_REV^{commit}" >/dev/null \
    || die "no revision $BASE_REV in $REPO"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cofre-trail-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/base"
git -C "$REPO" archive "$BASE_REV" | tar -x -C "$WORK/base"
cp "$REPO/benches/trail.rs" "$WORK/base/benches/trail.rs"
grep -q '^name = "trail"' "$WORK/base/Cargo.toml" \
    || printf '\n[[bench]]\nname = "trail"\nharness = false\n' >>"$WORK/base/Cargo.toml"
BASE_TARGET=${COFRE_BENCH_BASE_TARGET:-${CARGO_TARGET_DIR:-$REPO/target}-base}

# build DIR TARGET: builds benches/trail.rs of the tree in DIR.
build() {
    echo "building the bench in $1 ..." >&2
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --quiet --bench trail --no-run) \
        || die "the bench does not build in $1"
}
# bench DIR TARGET OUT: runs benches/trail.rs of the tree in DIR, its table into OUT.
bench() {
    echo "measuring $1 ..." >&2
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --quiet --bench trail -- "${ARGS[@]}") >"$3" \
        || die "the bench failed in $1"
}
AFTER_TARGET=${CARGO_TARGET_DIR:-$REPO/target}
build "$WORK/base" "$BASE_TARGET"
build "$REPO" "$AFTER_TARGET"
bench "$WORK/base" "$BASE_TARGET" "$WORK/before.tsv"
bench "$REPO" "$AFTER_TARGET" "$WORK/after.tsv"

echo "before: $BASE_REV ($(git -C "$REPO" rev-parse --short "$BASE_REV")); after: this tree"
printf '%-12s %7s %12s %12s %7s\n' dir threads "before/s" "after/s" ratio
join -t $'\t' \
    <(tail -n +2 "$WORK/before.tsv" | awk -F'\t' '{ print $1 ":" $2 "\t" $3 }' | sort) \
    <(tail -n +2 "$WORK/after.tsv" | awk -F'\t' '{ print $1 ":" $2 "\t" $3 }' | sort) \
    | sort -t: -k1,1 -k2,2n \
    | awk -F'\t' '{ split($1, k, ":"); printf "%-12s %7s %12.0f %12.0f %6.1fx\n", k[1], k[2], $2, $3, $3 / $2 }'
echo "runs (req/s), before:"; tail -n +2 "$WORK/before.tsv"
echo "runs (req/s), after:"; tail -n +2 "$WORK/after.tsv"
