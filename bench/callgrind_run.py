#!/usr/bin/env python3
"""Instructions per message of the whole `sluice run` process (every thread: listener,
framing, queues, parse workers, sink), under callgrind, TCP in and a file out.

    python3 bench/callgrind_run.py [--messages N] [--sink file|null] [--no-raw-data]

Runs sluice twice under `valgrind --tool=callgrind`, with N and 2N lines of the generated
five-vendor corpus sent over one loopback TCP connection, and divides the difference of
the two totals by N: start-up and shutdown cancel out. Instruction counts are steady on a
noisy machine where timings are not. The in-memory cost of the same lines
(`bash bench/callgrind.sh`, `examples/throughput`) is the parse share; the rest is the
ingest path. Needs valgrind; a benchmark, nothing is asserted.
"""
import argparse, glob, os, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import count_lines  # noqa: E402
from ingest import free_port  # noqa: E402


def lines_written(path):
    return count_lines(path) if os.path.exists(path) else 0


def total_instructions(binary, corpus, count, work, opts):
    port = free_port()
    out = os.path.join(work, f"events.{count}.ndjson")
    if os.path.exists(out):
        os.remove(out)  # the file sink appends
    sink = f'type = "file"\npath = "{out}"\n' if opts.sink == "file" else 'type = "null"\n'
    raw = "raw_data = false\n" if opts.no_raw_data else ""
    conf = os.path.join(work, f"sluice.{count}.toml")
    with open(conf, "w") as f:
        # The metrics exporter stays on, as in production: it is what the counters cost.
        f.write(f'[general]\n{raw}[[listener]]\nname = "bench"\ntransport = "tcp"\n'
                f'address = "127.0.0.1:{port}"\n[sink]\n{sink}'
                f'[metrics]\naddress = "127.0.0.1:{free_port()}"\n')
    profile = os.path.join(work, f"callgrind.{count}.out")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}",
                             binary, "run", "--config", conf, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1)
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise SystemExit("sluice did not start listening under valgrind")
            time.sleep(0.2)
    with sock, open(corpus, "rb") as f:
        for _, line in zip(range(count), f):
            sock.sendall(line)
    if opts.sink == "file":
        # Bounded wait for the last event; the file sink flushes its buffer at shutdown,
        # so this waits for the count to stop growing rather than for every line.
        last, since = -1, time.time()
        while time.time() - since < 5 and time.time() < deadline + 600:
            now = lines_written(out)
            if now != last:
                last, since = now, time.time()
            time.sleep(0.5)
    else:
        time.sleep(10)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    if opts.sink == "file" and lines_written(out) != count:
        raise SystemExit(f"{lines_written(out)} of {count} events written; not measured")
    total = 0
    for path in glob.glob(profile + "*"):
        with open(path) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total += int(line.split()[1])
                    break
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--sink", choices=["file", "null"], default="file")
    p.add_argument("--no-raw-data", action="store_true")
    opts = p.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/sluice")
    with tempfile.TemporaryDirectory(prefix="sluice-cg-") as work:
        corpus = os.path.join(work, "corpus.log")
        with open(corpus, "wb") as f:
            subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "corpus", "--",
                            str(2 * opts.messages)], cwd=ROOT, stdout=f, check=True)
        one = total_instructions(binary, corpus, opts.messages, work, opts)
        two = total_instructions(binary, corpus, 2 * opts.messages, work, opts)
    per = (two - one) / opts.messages
    raw = ", raw_data off" if opts.no_raw_data else ""
    print(f"sluice run, tcp → {opts.sink}{raw}: {one:,} instructions for {opts.messages} messages, "
          f"{two:,} for {2 * opts.messages}: {per:,.0f} per message")


if __name__ == "__main__":
    main()
