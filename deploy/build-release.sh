#!/usr/bin/env bash
# Builds tandem's release binary with profile-guided optimisation: an instrumented build, a short
# training run of benches/load.sh against it (every case, one round, tandem only), then the build
# that uses the profile. The hot path of a proxy spans hyper, tokio, rustls and tandem; laid out
# by the profile it misses the instruction cache less. Prints the binary's path last.
# Needs what load.sh needs (wrk, nginx, openssl; it says which are missing) and llvm-profdata,
# from rustup's llvm-tools component, matching the compiler's LLVM.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
[ -x "$profdata" ] || {
  echo "build-release.sh: no llvm-profdata: run: rustup component add llvm-tools" >&2
  exit 1
}

work=$root/target/pgo
profiles=$work/profiles
# --target: without it the flags would reach build scripts and proc-macros too.
CARGO_ENCODED_RUSTFLAGS="-Cprofile-generate=$profiles" \
  cargo build --locked --release --target "$host" --target-dir "$work/generate"
rm -rf "$profiles"
mkdir -p "$profiles"
# One file per tandem process, written as it exits: load.sh's config check, then one process
# per case, each stopped with SIGTERM.
LLVM_PROFILE_FILE="$profiles/tandem-%p.profraw" TANDEM="$work/generate/$host/release/tandem" \
  TANDEM_EXTRA="" bash benches/load.sh --only tandem --rounds 1 --duration 3 --idle 1000 \
  >"$work/training.txt" ||
  { echo "build-release.sh: the training run failed (see $work/training.txt)" >&2; exit 1; }
written=$(find "$profiles" -name 'tandem-*.profraw' | wc -l)
[ "$written" -gt 1 ] || {
  echo "build-release.sh: no served traffic was profiled (see $work/training.txt)" >&2
  exit 1
}
"$profdata" merge -o "$work/tandem.profdata" "$profiles"/*.profraw

CARGO_ENCODED_RUSTFLAGS="-Cprofile-use=$work/tandem.profdata" \
  cargo build --locked --release --target "$host" --target-dir "$work/use"
echo "$work/use/$host/release/tandem"
