#!/usr/bin/env bash
# One command for the side-by-side comparison (bench/compare.py): installs syslog-ng and
# rsyslog (deploy/dev/install-test-tools.sh), builds sluice, and runs every receiver on the
# same corpus, then sluice against VRL on its CEF lines. Extra arguments go to compare.py
# (--messages, --runs, --receivers, --no-vrl). With the defaults (1,000,000 messages, 3
# runs) about 10 minutes on 2 cores, plus about 10 for the first build of the VRL crate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/dev/install-test-tools.sh >/dev/null
python3 bench/compare.py "$@"
