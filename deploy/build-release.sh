#!/usr/bin/env bash
# Builds tandem's release binary with profile-guided optimisation: an instrumented build, a short
# training run of benches/load.sh against it (every case, one round, tandem only), then the build
# that uses the profile. The hot path of a proxy spans hyper, tokio, rustls and tandem; laid out
# by the profile it misses the instruction cache less. Prints the binary's path last.
# Needs what load.sh needs (wrk, nginx, openssl; it says which are missing) and llvm-profdata,
# from rustup's llvm-tools component, matching the compiler's LLVM.
set -euo pipefail

cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
[ -x "$profdata" ] || {
  echo "build-release.sh: no llvm-profdata: run: rustup component add llvm-tools" >&2
  exit 1
}

work=target/pgo
profiles=$work/profiles
rm -rf "$profiles"
mkdir -p "$profiles"
profiles=$(cd "$profiles" && pwd)

RUSTFLAGS="-Cprofile-generate=$profiles" cargo build --release --target-dir "$work/generate"
# Each tandem process writes its counts into $profiles as it exits.
TANDEM="$work/generate/release/tandem" \
  bash benches/load.sh --only tandem --rounds 1 --duration 3 --idle 1000 >"$work/training.txt"
ls "$profiles"/*.profraw >/dev/null 2>&1 || {
  echo "build-release.sh: the training run left no profile (see $work/training.txt)" >&2
  exit 1
}
"$profdata" merge -o "$work/tandem.profdata" "$profiles"/*.profraw

RUSTFLAGS="-Cprofile-use=$(pwd)/$work/tandem.profdata" cargo build --release --target-dir "$work/use"
echo "$work/use/release/tandem"
