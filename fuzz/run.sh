#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (seconds, default 60) with seeds from the
# repo's test inputs. Fails on the first crash. Needs cargo-fuzz; the stable toolchain is
# allowed nightly flags through RUSTC_BOOTSTRAP (cargo-fuzz passes -Zsanitizer).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
export RUSTC_BOOTSTRAP=1
targets=(syslog_header cef pipe json parse_all framing spool records)
cargo fuzz build -O 2>&1 | tail -3
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  # Seed with every test input line.
  i=0
  for f in ../tests/seeds/*; do
    while IFS= read -r line; do
      printf '%s' "$line" > "corpus/$target/seed-$i"; i=$((i + 1))
    done < "$f"
  done
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run -O "$target" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 2>&1 | tail -4
done
echo "fuzz: all targets ran ${seconds}s without a crash"
