#!/usr/bin/env bash
# Asymmetric keys at file scale, each against a baseline timed in the same run:
#
#   `cofre sign KEY IN` (ECDSA P-256 over SHA-256)      vs  `openssl dgst -sha256 IN` (the
#                                                           hashing floor) and `sha256sum IN`
#   `cofre verify --pubkey PEM IN SIG` (offline)        vs  the same
#   `cofre encrypt --recipient-pubkey PEM` (ECDH P-384) vs  `cofre encrypt -k KEY` (symmetric)
#   `cofre decrypt` of the public-key file              vs  `cofre decrypt` of the -k file
#
#   benches/asym.sh [SIZE] [ROUNDS]      (env: COFRE_BENCH_SIZE, _ROUNDS, _DIR, _WARM as vs_cp.sh)
#
# Rounds are interleaved; prints the median of each and the ratios. Installs nothing; needs
# sha256sum (coreutils) and openssl. It runs `cargo build --release` in the repository it lives in.
set -euo pipefail

BENCH_NAME=asym.sh
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_args "$@"
bench_build
bench_need_space 4
bench_workdir cofre-asym
bench_input
HOME_DIR=$WORK/home
cofre() { "$COFRE" --home "$HOME_DIR" --quiet "$@"; }
verify_quietly() { cofre verify "$@" >/dev/null; }
sha256_quietly() { sha256sum "$@" >/dev/null; }
openssl_quietly() { openssl dgst -sha256 "$@" >/dev/null; }

SIGNER=$(cofre key create --spec ECC_NIST_P256 --usage SIGN_VERIFY)
AGREE=$(cofre key create --spec ECC_NIST_P384 --usage KEY_AGREEMENT)
SYM=$(cofre key create)
cofre key public-key "$SIGNER" -o "$WORK/sign.pem" >/dev/null
cofre key public-key "$AGREE" -o "$WORK/agree.pem" >/dev/null

# References for the verify and decrypt runs, checked once.
cofre sign "$SIGNER" "$IN" -o "$WORK/ref.sig"
cofre verify --pubkey "$WORK/sign.pem" "$IN" "$WORK/ref.sig" >/dev/null
cofre encrypt --recipient-pubkey "$WORK/agree.pem" -o "$WORK/pub.cofre" "$IN"
cofre encrypt -k "$SYM" -o "$WORK/sym.cofre" "$IN"
cofre decrypt -o "$WORK/out" "$WORK/pub.cofre" && cmp -s "$IN" "$WORK/out" ||
    die "the public-key file does not decrypt to the input"
rm -f "$WORK/out"

echo "cofre $("$COFRE" --version | awk '{print $2}'), $(nproc) CPUs, $SIZE bytes, $ROUNDS rounds in $WORK" >&2
T_OSSL=() T_SHA=() T_SIGN=() T_VER=() T_ENCK=() T_ENCP=() T_DECK=() T_DECP=()
for (( r = 1; r <= ROUNDS; r++ )); do
    timed T_OSSL openssl_quietly "$IN"
    timed T_SHA sha256_quietly "$IN"
    timed T_SIGN cofre sign "$SIGNER" "$IN" -o "$WORK/sig" -f
    timed T_VER verify_quietly --pubkey "$WORK/sign.pem" "$IN" "$WORK/ref.sig"
    timed T_ENCK cofre encrypt -k "$SYM" -o "$WORK/out" "$IN"
    rm -f "$WORK/out"
    timed T_ENCP cofre encrypt --recipient-pubkey "$WORK/agree.pem" -o "$WORK/out" "$IN"
    rm -f "$WORK/out"
    timed T_DECK cofre decrypt -o "$WORK/out" "$WORK/sym.cofre"
    rm -f "$WORK/out"
    timed T_DECP cofre decrypt -o "$WORK/out" "$WORK/pub.cofre"
    rm -f "$WORK/out"
    echo "round $r/$ROUNDS done" >&2
done

ossl=$(median "${T_OSSL[@]}") sha=$(median "${T_SHA[@]}") sign=$(median "${T_SIGN[@]}") ver=$(median "${T_VER[@]}")
enck=$(median "${T_ENCK[@]}") encp=$(median "${T_ENCP[@]}")
deck=$(median "${T_DECK[@]}") decp=$(median "${T_DECP[@]}")
awk -v ossl="$ossl" -v sha="$sha" -v sign="$sign" -v ver="$ver" -v enck="$enck" -v encp="$encp" \
    -v deck="$deck" -v decp="$decp" -v size="$SIZE" -v rounds="$ROUNDS" 'BEGIN {
    printf "medians of %d rounds, %.0f MiB\n", rounds, size / 1048576
    printf "  openssl dgst -sha256            %7.3f s\n", ossl
    printf "  sha256sum                       %7.3f s\n", sha
    printf "  cofre sign (P-256)              %7.3f s  %.2fx openssl dgst, %.2fx sha256sum\n", sign, sign / ossl, sign / sha
    printf "  cofre verify --pubkey (offline) %7.3f s  %.2fx openssl dgst, %.2fx sha256sum\n", ver, ver / ossl, ver / sha
    printf "  cofre encrypt -k (symmetric)    %7.3f s\n", enck
    printf "  cofre encrypt --recipient-pubkey%7.3f s  %.2fx encrypt -k\n", encp, encp / enck
    printf "  cofre decrypt (symmetric)       %7.3f s\n", deck
    printf "  cofre decrypt (ECDH recipient)  %7.3f s  %.2fx decrypt of the -k file\n", decp, decp / deck
}'
