#!/usr/bin/env bash
# A build for a newer CPU (TARGET_CPU, see build.sh) run on older ones, emulated by
# qemu-user: it must stop with exit status 1 and name the features the CPU lacks
# (src/native/cpu_check.c), not die on SIGILL; on a CPU that has them it must run; and the
# default build must run on the oldest CPU emulated. A debug build is enough: the check is
# the same C object in every profile, and what it guards against (Rust code of that build
# using AVX before main's first line) happens in both.
#
#   bash deploy/pgo/cpu_check.sh     # installs qemu-user when missing (Debian)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v qemu-x86_64 >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
fi
cargo build --quiet --bin sluice
RUSTFLAGS="${RUSTFLAGS:-} -Ctarget-cpu=x86-64-v3" CARGO_TARGET_DIR=target/cpu-check \
  cargo build --quiet --bin sluice
plain=target/debug/sluice
v3=target/cpu-check/debug/sluice
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# CPU model, binary, expected exit status, text the error must hold, text it must not.
expect() {
  local cpu=$1 binary=$2 status=$3 holds=$4 absent=$5 got=0
  qemu-x86_64 -cpu "$cpu" "$binary" --version >"$work/out" 2>"$work/err" || got=$?
  grep -v "TCG doesn't support" "$work/err" >"$work/said" || true
  local verdict=ok
  if [ "$got" != "$status" ]; then verdict="exit $got, expected $status"; fi
  if [ -n "$holds" ] && ! grep -qF -- "$holds" "$work/said"; then verdict="no \"$holds\""; fi
  if [ -n "$absent" ] && grep -qF -- "$absent" "$work/said"; then verdict="says \"$absent\""; fi
  echo "cpu_check: $binary on $cpu: $verdict: $(cat "$work/said" "$work/out" | head -c 300)"
  [ "$verdict" = ok ] || failed=1
}
expect Nehalem "$plain" 0 "" "lacks"
expect Nehalem "$v3" 1 "lacks (movbe, xsave, avx, f16c, fma, avx2, bmi1, bmi2, lzcnt)" ""
# Sandy Bridge has AVX but not AVX2: only what it lacks is named.
expect SandyBridge "$v3" 1 "lacks (movbe, f16c, fma, avx2, bmi1, bmi2, lzcnt)" ""
expect Haswell "$v3" 0 "" "lacks"
exit "$failed"
