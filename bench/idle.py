#!/usr/bin/env python3
"""CPU that an idle `sluice run` uses: a TCP listener and the Kafka sink into a tansu broker
on loopback (deploy/dev/tansu.sh install), no events, per thread, over a fixed time.

    python3 bench/idle.py [--binary PATH] [--seconds S]

An always-on collector should cost nothing while nothing arrives. A benchmark, not a test:
nothing is asserted.
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import free_port, start_broker, start_sluice, stop_broker, thread_cpu  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", help="this sluice binary instead of building target/release/sluice")
    p.add_argument("--seconds", type=float, default=30)
    opts = p.parse_args()
    if opts.binary:
        binary = os.path.abspath(opts.binary)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/sluice")
    brokers, broker_port = start_broker(1)
    proc = None
    work = tempfile.mkdtemp(prefix="sluice-idle-")
    try:
        port, metrics_port = free_port(), free_port()
        conf = os.path.join(work, "sluice.toml")
        with open(conf, "w") as f:
            f.write(f'[[listener]]\nname = "idle"\ntransport = "tcp"\naddress = "127.0.0.1:{port}"\n'
                    f'[sink]\ntype = "kafka"\nbrokers = "{brokers}"\n'
                    f'[metrics]\naddress = "127.0.0.1:{metrics_port}"\n')
        proc = start_sluice(binary, conf, f"127.0.0.1:{metrics_port}")
        time.sleep(3)  # connected to the broker, metadata fetched
        before = thread_cpu(proc.pid)
        time.sleep(opts.seconds)
        after = thread_cpu(proc.pid)
        spent = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
        total = sum(spent.values())
        print(f"idle for {opts.seconds:.0f} s: {total:.2f} s of CPU, "
              f"{100 * total / opts.seconds:.2f} % of a core")
        for kind, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            if seconds:
                print(f"  {kind}: {seconds:.2f} s")
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        stop_broker(broker_port)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
