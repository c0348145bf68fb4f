#!/usr/bin/env bash
# One command for the side-by-side comparison (bench/compare.py): installs syslog-ng and
# rsyslog (deploy/dev/install-test-tools.sh), builds sluice, and runs every receiver on the
# same corpus. Extra arguments go to compare.py (--messages, --runs, --receivers).
# About 10 minutes on 2 cores with the defaults (1,000,000 messages, 3 runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/dev/install-test-tools.sh >/dev/null
python3 bench/compare.py "$@"
