#!/usr/bin/env bash
# Where single instructions stall: `perf record` of one thread parsing, normalising and
# serialising the generated corpus (examples/throughput), then, for each of the hottest
# functions, its hottest instructions and their share of that function's samples.
#
#   bash bench/hot_instructions.sh [MESSAGES] [FUNCTIONS]   # defaults: 200000, 12
#
# An instruction holding a third or more of a function's samples right after a wide load
# from the stack (movups/movdqa/movdqu N(%rsp)) is usually a load the CPU could not
# forward from its store buffer: data written by narrower stores a few instructions
# before. Callgrind does not show these (it counts instructions, not cycles); see
# docs/performance.md, "Stalls that instruction counts do not show". A profile, not a
# test: nothing is asserted. Needs perf (Debian: linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
messages=${1:-200000}
functions=${2:-12}
cargo build --release --quiet --example throughput
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
perf record -q -o "$work/perf.data" -F 4999 taskset -c 1 target/release/examples/throughput "$messages" | tail -1
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | awk -v most="$functions" '/^ +[0-9.]+%/ && $2 == "[.]" && n < most {
      n++; pct = $1; $1 = ""; $2 = ""; sub(/^ +/, ""); sub(/ +(- +- *)?$/, ""); print pct "\t" $0 }' \
  > "$work/functions"
while IFS=$'\t' read -r share symbol; do
  echo "== $share $symbol"
  perf annotate -i "$work/perf.data" --stdio -s "$symbol" 2>/dev/null \
    | awk '/^ +[0-9]+\.[0-9]+ +:/ && $1 + 0 >= 5 { print "   " $0 }' | sort -rn | awk 'NR <= 3'
  true
done < "$work/functions"
