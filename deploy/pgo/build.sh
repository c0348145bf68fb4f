#!/usr/bin/env bash
# Builds sluice with profile-guided optimisation (PGO): an instrumented build first, then a
# training run of it on generated vendor traffic (deploy/pgo/train.py), then the release
# build again with the recorded branch and call counts. The parse path is a long chain of
# small branchy functions; laid out and inlined by how the traffic really goes through it,
# it runs about a tenth fewer instructions per event (docs/performance.md, session 25).
#
#   bash deploy/pgo/build.sh [CARGO BUILD ARGS...]   # e.g. --example throughput
#   TARGET_CPU=x86-64-v3 bash deploy/pgo/build.sh      # for CPUs with AVX2 (into target/pgo-x86-64-v3)
#
# Result: target/pgo/release/sluice (and whatever the extra arguments name, built with the
# same profile), the merged profile in target/pgo/sluice.profdata (a link to the file named
# by its content). Takes two full release builds (about 12 minutes on 2 cores; the
# instrumented one is cached for the next run). Needs llvm-profdata of rustc's own LLVM: the
# rustup component llvm-tools, added here when missing. The output of the PGO build is the
# same as the plain one's (checked by .ci/run); only its speed differs.
#
# TARGET_CPU builds for a newer CPU than rustc's default (x86-64 of 2003): x86-64-v3 (Intel
# since Haswell, AMD since Excavator/Zen; the baseline of RHEL 10) cut about 4-5 % of the
# instructions per event (docs/performance.md, session 26). On an older CPU such a binary
# exits at start-up naming the features the CPU lacks (src/native/cpu_check.c, checked
# under qemu by cpu_check.sh here), so the default stays portable.
set -euo pipefail
cd "$(dirname "$0")/../.."

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  command -v rustup >/dev/null \
    || { echo "pgo: $profdata not found, and no rustup to add it with (rustup component add llvm-tools)" >&2; exit 1; }
  rustup component add llvm-tools
  [ -x "$profdata" ] || { echo "pgo: rustup added llvm-tools, but $profdata is not there" >&2; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags="${RUSTFLAGS:-}"
out=target/pgo
if [ -n "${TARGET_CPU:-}" ]; then
  flags="$flags -Ctarget-cpu=$TARGET_CPU"
  out="target/pgo-$TARGET_CPU"
fi

echo "pgo: instrumented build ($out-generate)"
# Build scripts are instrumented too and leave profiles where -Cprofile-generate points;
# those are not used. A fixed path keeps RUSTFLAGS, and so this build, cached between runs.
unused="$PWD/$out-generate/unused-profiles"
RUSTFLAGS="$flags -Cprofile-generate=$unused" CARGO_TARGET_DIR="$out-generate" \
  cargo build --release --locked --bin sluice --example corpus
rm -rf "$unused"

echo "pgo: training run"
# A corpus with another seed than the benchmarks' (42): the same shapes, other values.
LLVM_PROFILE_FILE="$work/unused-%p.profraw" \
  "$out-generate/release/examples/corpus" 50000 7 > "$work/corpus.log"
LLVM_PROFILE_FILE="$work/train/%p.profraw" \
  python3 deploy/pgo/train.py --sluice "$out-generate/release/sluice" --corpus "$work/corpus.log"
mkdir -p "$out"
rm -f "$out"/sluice*.profdata
"$profdata" merge -o "$work/merged.profdata" "$work"/train/*.profraw
# Named by content, so that a new profile changes RUSTFLAGS, which cargo always rebuilds
# for (whether it notices a changed file behind an unchanged flag is not relied on).
profile="$PWD/$out/sluice-$(sha256sum "$work/merged.profdata" | cut -c1-16).profdata"
mv "$work/merged.profdata" "$profile"
ln -sf "$(basename "$profile")" "$out/sluice.profdata"

echo "pgo: optimised build ($out)"
RUSTFLAGS="$flags -Cprofile-use=$profile" CARGO_TARGET_DIR="$out" \
  cargo build --release --locked --bin sluice "$@"
echo "pgo: built $out/release/sluice"
