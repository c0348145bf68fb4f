#!/usr/bin/env python3
"""Checks that two `sluice parse` outputs of the same input hold the same events, apart
from what depends on when they ran: `metadata.logged_time` (the receive time), and `time`
with `time_dt` where an event had no time of its own and took the receive time. .ci/run
uses it to hold the profile-guided build to the plain build's output.

    python3 deploy/pgo/same_output.py EXPECTED.ndjson ACTUAL.ndjson
"""
import json, sys


def comparable(line):
    event = json.loads(line)
    logged = event.get("metadata", {}).pop("logged_time", None)
    if logged is not None and event.get("time") == logged:
        event.pop("time")
        event.pop("time_dt", None)
    return event


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        expected = f.readlines()
    with open(sys.argv[2]) as f:
        actual = f.readlines()
    if len(expected) != len(actual):
        raise SystemExit(f"{len(expected)} events against {len(actual)}")
    for number, (e, a) in enumerate(zip(expected, actual), 1):
        if comparable(e) != comparable(a):
            raise SystemExit(f"event {number} differs:\n  {e.strip()[:400]}\n  {a.strip()[:400]}")
    print(f"same_output: {len(expected)} events the same")


if __name__ == "__main__":
    main()
