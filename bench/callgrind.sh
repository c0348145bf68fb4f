#!/usr/bin/env bash
# Instructions per parsed event, per vendor shape, under callgrind: parse + normalise +
# serialise of generated messages (examples/vendor_cost.rs). Instruction counts are stable
# on a noisy machine where timings are not, so regressions show in docs/performance.md.
#
#   bash bench/callgrind.sh [N]      # N messages per vendor (default 400; 32 KB KATA: N/10)
#
# Each shape runs twice, with N and 2N messages; the difference divided by N is the cost of
# one event without warm-up (first-use allocations). Only parse_and_serialise is counted:
# generating the messages is not. Needs valgrind.
#
# Compare two builds at the same N: the messages differ from one N to another. For a change
# of a few hundred instructions use N >= 1000: a one-off cost (a fresh allocator page, a
# cache filled on first use) lands in one of the two runs and, divided by a small N, can
# move one shape's figure by a few thousand (seen: Perception Point at N = 200).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
n=${1:-400}
# VENDOR_COST=PATH counts another build of the example, e.g. the profile-guided one:
# `bash deploy/pgo/build.sh --example vendor_cost`, then
# VENDOR_COST=target/pgo/release/examples/vendor_cost.
if [ -n "${VENDOR_COST:-}" ]; then
  bin=$VENDOR_COST
else
  cargo build --release --quiet --example vendor_cost
  bin=target/release/examples/vendor_cost
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
instructions() { # vendor count → "instructions bytes"
  local out="$work/cg.$1.$2"
  local bytes
  bytes=$(valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect='vendor_cost::parse_and_serialise' "$bin" "$1" "$2" 2>/dev/null)
  echo "$(awk '/^summary:/ {print $2}' "$out") $bytes"
}
echo "| vendor shape | bytes/event | instructions/event | instructions/byte |"
echo "|---|---|---|---|"
for vendor in $("$bin" --list); do
  count=$n
  [ "$vendor" = kaspersky_kata_32k ] && count=$(( n / 10 > 0 ? n / 10 : 1 ))
  read -r i1 b1 < <(instructions "$vendor" "$count")
  read -r i2 b2 < <(instructions "$vendor" $(( 2 * count )))
  awk -v v="$vendor" -v n="$count" -v i1="$i1" -v i2="$i2" -v b1="$b1" -v b2="$b2" 'BEGIN {
    per = (i2 - i1) / n; bytes = (b2 - b1) / n;
    printf "| %s | %.0f | %.0f | %.1f |\n", v, bytes, per, per / bytes }'
done
