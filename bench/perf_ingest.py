#!/usr/bin/env python3
"""Where `sluice run`'s CPU goes while it takes the generated corpus over one loopback TCP
connection into the null sink (or, with `--sink file`, an NDJSON file; with `--sink kafka`, a tansu broker on loopback):
`perf record -e cpu-clock` (hardware counters do not work on this VM) on the running
process, then the hottest symbols per thread.

    python3 bench/perf_ingest.py [--messages N] [--binary PATH] [--sink null|file|kafka] [--compression C]

The corpus goes in 1 MiB socket writes (the cheapest sender), and recording stops once
sluice counted every line written. Needs perf (Debian: linux-perf). A profile, not a test:
nothing is asserted. perf.data stays in the printed directory for `perf report -i`.
"""
import argparse, os, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import free_port, metric, send_in_mib_writes, sh, start_broker, start_sluice, stop_broker  # noqa: E402


def report(data, sort, rows):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio",
                          "-g", "none"], capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if l.strip() and not l.startswith("#")]
    print("\n".join(lines[:rows]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=300000, help="corpus lines")
    p.add_argument("--binary", help="profile this sluice binary instead of building target/release/sluice")
    p.add_argument("--sink", choices=["null", "file", "kafka"], default="null",
                   help="file: NDJSON into a file in the work directory (removed at the end); "
                        "kafka: a tansu broker on loopback (deploy/dev/tansu.sh install)")
    p.add_argument("--compression", default="zstd", help="kafka: none, gzip, snappy, lz4, zstd")
    opts = p.parse_args()
    if subprocess.run(["sh", "-c", "command -v perf"], capture_output=True).returncode != 0:
        raise SystemExit("perf not found: apt-get install linux-perf")
    if opts.binary:
        binary = os.path.abspath(opts.binary)
    else:
        sh("cargo", "build", "--release", "--quiet", "--bin", "sluice", cwd=ROOT)
        binary = os.path.join(ROOT, "target/release/sluice")
    work = tempfile.mkdtemp(prefix="sluice-perf-")
    with open(os.path.join(work, "corpus.log"), "wb") as f:
        sh("cargo", "run", "--release", "--quiet", "--example", "corpus", "--", str(opts.messages),
           cwd=ROOT, stdout=f)
    with open(os.path.join(work, "corpus.log"), "rb") as f:
        data = f.read()
    os.remove(os.path.join(work, "corpus.log"))
    port, metrics_address = free_port(), f"127.0.0.1:{free_port()}"
    conf = os.path.join(work, "sluice.toml")
    broker_port, counted = None, "sluice_events_written_total"
    sink = '[sink]\ntype = "null"\n'
    if opts.sink == "kafka":
        brokers, broker_port = start_broker(1)
        sink = f'[sink]\ntype = "kafka"\nbrokers = "{brokers}"\ncompression = "{opts.compression}"\n'
        counted = "sluice_events_delivered_total"
    elif opts.sink == "file":
        sink = f'[sink]\ntype = "file"\npath = "{os.path.join(work, "events.ndjson")}"\n'
    with open(conf, "w") as f:
        f.write(f'[general]\nqueue_capacity = 65536\n[[listener]]\nname = "bench"\ntransport = "tcp"\n'
                f'address = "127.0.0.1:{port}"\n{sink}[metrics]\naddress = "{metrics_address}"\n')
    proc = start_sluice(binary, conf, metrics_address)
    perf_data = os.path.join(work, "perf.data")
    recorder = subprocess.Popen(["perf", "record", "-F", "2000", "-e", "cpu-clock", "-g", "-p", str(proc.pid),
                                 "-o", perf_data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port)) as s:
            send_in_mib_writes(s, data)
        lines, written = data.count(b"\n"), 0
        deadline = time.time() + 120
        while written < lines and time.time() < deadline:
            written = metric(metrics_address, counted)
            time.sleep(0.1)
        print(f"{int(written)} of {lines} lines written")
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        proc.terminate()
        proc.wait(timeout=60)
        if broker_port:
            stop_broker(broker_port)
        if os.path.exists(os.path.join(work, "events.ndjson")):
            os.remove(os.path.join(work, "events.ndjson"))
    report(perf_data, "comm", 10)
    report(perf_data, "comm,sym", 40)
    print(f"perf data: {perf_data}")


if __name__ == "__main__":
    main()
