#!/usr/bin/env bash
# One command for the side-by-side comparison (bench/compare.py): installs syslog-ng and
# rsyslog (deploy/dev/install-test-tools.sh), builds sluice, and runs every receiver on the
# same corpus over TCP, UDP and TLS, sluice into a real Kafka broker (tansu), then sluice
# against VRL on the corpus's CEF lines. Extra arguments go to compare.py (--messages,
# --runs, --receivers, --output file|pipe, --no-vrl, --binary, --workers). With the defaults (1,000,000
# messages, 3 runs) about 20 minutes on 2 cores, plus about 10 for the first build of the
# VRL crate. The profile-guided build that the container image ships: `bash
# deploy/pgo/build.sh`, then `bash bench/compare.sh --binary target/pgo/release/sluice`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/dev/install-test-tools.sh >/dev/null
bash deploy/dev/tansu.sh install >/dev/null      # the Kafka row's broker
# Let every UDP receiver have the 32 MiB buffer it asks for (best effort: a container may
# not allow it; compare.py prints the cap in force, which applies to all receivers alike).
if [ "$(cat /proc/sys/net/core/rmem_max)" -lt 33554432 ]; then
  sysctl -q -w net.core.rmem_max=33554432 2>/dev/null || echo "note: cannot raise net.core.rmem_max" >&2
fi
python3 bench/compare.py "$@"
