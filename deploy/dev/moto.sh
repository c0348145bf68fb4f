#!/usr/bin/env bash
# A real S3 API server on loopback for development and the end-to-end tests: moto in server
# mode (PyPI `moto[server]`), in memory. It accepts any credentials and does not check
# request signatures.
#
#   deploy/dev/moto.sh install            # into target/e2e-tools/moto (idempotent)
#   deploy/dev/moto.sh start [PORT]       # default 19000; prints the endpoint URL
#   deploy/dev/moto.sh bucket NAME [PORT] # creates a bucket
#   deploy/dev/moto.sh stop [PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="$PWD/target/e2e-tools"
venv="$tools/moto"

case "${1:-}" in
  install)
    if [ ! -x "$venv/bin/moto_server" ]; then
      mkdir -p "$tools"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
    fi
    "$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'
    ;;
  start)
    port="${2:-19000}"
    [ -x "$venv/bin/moto_server" ] || { echo "moto is not installed: $0 install" >&2; exit 1; }
    log="$tools/moto-$port.log"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
    echo $! > "$tools/moto-$port.pid"
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "http://127.0.0.1:$port"; exit 0; }
      sleep 0.1
    done
    echo "moto did not start; see $log" >&2
    exit 1
    ;;
  bucket)
    port="${3:-19000}"
    "$venv/bin/python" - "$2" "$port" <<'PY'
import sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/{sys.argv[1]}", method="PUT")
urllib.request.urlopen(request).read()
PY
    ;;
  stop)
    port="${2:-19000}"
    pidfile="$tools/moto-$port.pid"
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  *)
    sed -n 2,10p "$0"
    exit 2
    ;;
esac
