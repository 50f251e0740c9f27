#!/usr/bin/env bash
# CopySnapshot through `cofre serve`'s EC2 Query API (boto3, sent to the destination region as
# `aws ec2 copy-snapshot --source-region` does) of an encrypted SIZE snapshot from us-east-1 to
# eu-west-1 on one filesystem (issue 15, Performance: under 200 ms for 8 GiB, as on the CLI).
#
#   benches/ec2_copy.sh [SIZE] [ROUNDS]      SIZE default 8G, ROUNDS default 5
#
# Fills a SIZE volume with random data (`volume write` from /dev/urandom: every block stored),
# snapshots it, then times ROUNDS copies; after each, the copy is deleted and eu-west-1
# collected (`cofre gc`), so every copy links every block again. A first copy, not timed, makes
# eu-west-1's EBS default key. Prints each copy's milliseconds (the request as boto3 sees it)
# and the median. Environment: COFRE_BENCH_DIR (the home's folder, default the cargo target
# folder: a real disk), COFRE_BENCH_VENV (a venv with boto3, default TARGET/server-bench-venv,
# made on first use), COFRE_BENCH_BIN (a binary to measure instead of building).
set -euo pipefail
BENCH_NAME=ec2_copy.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE=$(to_bytes "${1:-8G}")
ROUNDS=${2:-5}
bench_build
VENV=${COFRE_BENCH_VENV:-$TARGET/server-bench-venv}
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    echo "making a venv with boto3 in $VENV (pip, once)..." >&2
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q boto3 || die "cannot make $VENV"
fi
BASE=${COFRE_BENCH_DIR:-$TARGET}
bench_need_space 2
bench_workdir ec2-copy-bench
PIDS=()
bench_cleanup_extra() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
HOME_DIR=$WORK/home
cofre() { "$COFRE" --home "$HOME_DIR" -q "$@"; }
bench_serve "$HOME_DIR"
export AWS_ACCESS_KEY_ID=$COFRE_KEY AWS_SECRET_ACCESS_KEY=$COFRE_SECRET
copy() { "$VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/ec2_copy.py" "$COFRE_URL" "$1"; }

echo "filling a $(( SIZE >> 20 )) MiB encrypted volume with random data..." >&2
VOL=$(cofre volume create --size "$(( SIZE >> 20 ))MiB" --encrypted)
head -c "$SIZE" /dev/urandom | cofre volume write "$VOL" --offset 0 -
SNAP=$(cofre snapshot create "$VOL")
BLOCKS=$(( SIZE / (512 << 10) ))

# A first copy makes eu-west-1's aws/ebs key; then each timed copy starts from an empty region.
uncopy() {
    cofre --region eu-west-1 snapshot delete "$1"
    cofre --region eu-west-1 gc > /dev/null
}
first=$(copy "$SNAP" | awk '{print $4}')
uncopy "$first"
T=()
echo "copying $BLOCKS blocks, $ROUNDS rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
for r in $(seq "$ROUNDS"); do
    read -r _ ms _ id < <(copy "$SNAP")
    [[ $(cofre --region eu-west-1 --output json snapshot describe "$id") == *completed* ]] \
        || die "copy $id is not completed"
    T+=("$ms")
    echo "round $r: $ms ms" >&2
    uncopy "$id"
done
m=$(median "${T[@]}")
echo "CopySnapshot of $(( SIZE >> 20 )) MiB ($BLOCKS blocks) over the EC2 API: median $m ms (goal: under 200 ms for 8 GiB)"
