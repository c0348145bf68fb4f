#!/usr/bin/env bash
# Where `sluice run`'s CPU goes while it takes the generated corpus over one loopback TCP
# connection into the null sink: `perf record -e cpu-clock` (hardware counters do not work
# on this VM) on the running process, then the hottest symbols per thread.
#
#   bash bench/perf_ingest.sh [LINES] [BINARY]     # default 300000 lines, target/release/sluice
#
# The corpus is sent in 1 MiB socket writes (the cheapest sender) and recording stops once
# sluice counted every line written. Needs perf (Debian: linux-perf). A profile, not a
# test: nothing is asserted. The perf.data stays in the printed directory for
# `perf report -i DIR/perf.data`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
lines=${1:-300000}
binary=${2:-}
if [ -z "$binary" ]; then
  cargo build --release --quiet --bin sluice
  binary=target/release/sluice
fi
cargo build --release --quiet --example corpus
work=$(mktemp -d)
target/release/examples/corpus "$lines" > "$work/corpus.log"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/sluice.toml" <<EOF
[general]
queue_capacity = 65536
[[listener]]
name = "bench"
transport = "tcp"
address = "127.0.0.1:$port"
[sink]
type = "null"
[metrics]
address = "127.0.0.1:$metrics"
EOF
"$binary" run --config "$work/sluice.toml" --log-level error &
sluice=$!
trap 'kill "$sluice" 2>/dev/null || true' EXIT
python3 - "$port" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
        break
    except OSError:
        time.sleep(0.1)
EOF
perf record -F 2000 -e cpu-clock -g -p "$sluice" -o "$work/perf.data" 2>/dev/null &
recorder=$!
sleep 0.5
python3 - "$work/corpus.log" "$port" "$metrics" <<'EOF'
import socket, sys, time, urllib.request
corpus, port, metrics = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(corpus, "rb").read()
with socket.create_connection(("127.0.0.1", port)) as s:
    view = memoryview(data)
    for i in range(0, len(view), 1 << 20):
        s.sendall(view[i:i + (1 << 20)])
lines = data.count(b"\n")
written = 0
for _ in range(1200):  # at most two minutes
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read().decode()
    written = sum(float(l.split()[-1]) for l in text.splitlines()
                  if l.startswith("sluice_events_written_total"))
    if written >= lines:
        break
    time.sleep(0.1)
print(f"{int(written)} of {lines} lines written")
EOF
kill -INT "$recorder"
wait "$recorder" 2>/dev/null || true
perf report -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$'
perf report -i "$work/perf.data" --no-children --sort comm,sym --stdio -g none 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | head -40
rm -f "$work/corpus.log"
echo "perf data: $work/perf.data"
