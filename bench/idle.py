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
from ingest import free_port, start_broker, start_sluice, stop_broker  # noqa: E402


def ticks(pid):
    """Clock ticks (user + kernel) of each thread of `pid`, summed by thread name."""
    by_name = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        by_name[name] = by_name.get(name, 0) + int(fields[11]) + int(fields[12])
    return by_name


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
        before = ticks(proc.pid)
        time.sleep(opts.seconds)
        after = ticks(proc.pid)
        hz = os.sysconf("SC_CLK_TCK")
        spent = {name: after[name] - before.get(name, 0) for name in after}
        total = sum(spent.values())
        print(f"idle for {opts.seconds:.0f} s: {total} ticks of 1/{hz} s, "
              f"{100 * total / hz / opts.seconds:.2f} % of a core")
        for name, n in sorted(spent.items(), key=lambda kv: -kv[1]):
            if n:
                print(f"  {name}: {n} ticks")
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        stop_broker(broker_port)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
