#!/usr/bin/env python3
"""Scaling curves of a release `sluice run` (TCP or TLS listener, file sink on loopback):

  1. connections: with 1, 10, 100, 1,000 and 10,000 open connections, of which one sends
     the corpus and the others stay idle: sluice's resident memory before and after the
     idle ones connect (kB per idle connection), then the active one's messages/s and CPU
     per message while the idle ones stay open;
  2. message size: 200 B to 32 KB KATA-shaped CEF alerts (the biggest KATA sends), messages/s,
     MB/s and CPU per message over one connection.

Per-vendor parse cost is bench/callgrind.sh (instruction counts per event).

    python3 bench/scaling.py [--messages N] [--max-connections 10000] [--sizes 200,1024,...]
                             [--transport tcp|tls]

With --transport tls every connection completes its handshake before it goes idle, so the
memory per idle connection includes rustls's session state and buffers.

A benchmark, not a test: nothing is asserted about speed; each run checks that every
message sent was written. Needs a file-descriptor limit above the largest connection count
(it raises its own soft limit to the hard one; sluice inherits it).
"""
import argparse, os, resource, socket, ssl, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import certificates, free_port, metric, proc_stats, remove_at_exit, start_sluice  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_listener(binary, work, out, transport):
    port, metrics_port = free_port(), free_port()
    metrics_address = f"127.0.0.1:{metrics_port}"
    conf = os.path.join(work, "sluice.toml")
    tls = ""
    if transport == "tls":
        cert, key = certificates(work)
        tls = f'[listener.tls]\ncert = "{cert}"\nkey = "{key}"\n'
    with open(conf, "w") as f:
        f.write(f'[limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n'
                f'[[listener]]\nname = "bench"\ntransport = "{transport}"\naddress = "127.0.0.1:{port}"\n'
                f'idle_timeout = "1h"\n{tls}[sink]\ntype = "file"\npath = "{out}"\n'
                f'[metrics]\naddress = "{metrics_address}"\n')
    return start_sluice(binary, conf, metrics_address), port, metrics_address


def client_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(port, context):
    s = socket.create_connection(("127.0.0.1", port))
    return context.wrap_socket(s) if context else s


def wait_written(metrics_address, expected, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        written = metric(metrics_address, "sluice_events_written_total")
        if written >= expected:
            return time.time()
        time.sleep(0.02)
    raise SystemExit(f"only {written} of {expected} written within {timeout} s")


def wait_connections(metrics_address, expected, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metric(metrics_address, "sluice_connections_open") >= expected:
            return
        time.sleep(0.05)
    raise SystemExit(f"sluice did not report {expected} open connections")


def send(port, data, context):
    s = connect(port, context)
    view = memoryview(data)
    for i in range(0, len(view), 1 << 20):
        s.sendall(view[i:i + (1 << 20)])
    if context:
        try:
            s = s.unwrap()  # close_notify: a clean end of stream
        except (ssl.SSLError, OSError):
            pass
    s.close()


def measure(binary, work, data, lines, idle, transport="tcp"):
    out = os.path.join(work, "events.ndjson")
    if os.path.exists(out):
        os.remove(out)
    proc, port, metrics_address = start_listener(binary, work, out, transport)
    context = client_context() if transport == "tls" else None
    sockets = []
    try:
        time.sleep(0.5)
        before = rss_kb(proc.pid)
        for _ in range(idle):
            # TLS: wrap_socket returns after the handshake, so sluice holds a live session.
            sockets.append(connect(port, context))
        if idle:
            wait_connections(metrics_address, idle)
        time.sleep(0.5)
        after = rss_kb(proc.pid)
        user0, kernel0, _ = proc_stats(proc.pid)
        t0 = time.time()
        send(port, data, context)
        end = wait_written(metrics_address, lines)
        user1, kernel1, peak = proc_stats(proc.pid)
        still_open = metric(metrics_address, "sluice_connections_open")
    finally:
        for s in sockets:
            s.close()
        proc.terminate()
        proc.wait(timeout=60)
    seconds = end - t0
    return {"idle": idle, "rss_before_kb": before, "rss_idle_kb": after,
            "kb_per_idle": (after - before) / idle if idle else 0.0, "msg_per_s": lines / seconds,
            "mb_per_s": len(data) / seconds / 1e6, "us_cpu_per_msg": (user1 + kernel1 - user0 - kernel0) / lines * 1e6,
            "peak_rss_mb": peak / 1e6, "idle_still_open": int(still_open)}


def kata_line(size, i):
    head = (f"<134>1 2024-05-01T10:00:00.{i % 1000:03d}Z kata-cn1 KATA - - - CEF:0|AO Kaspersky Lab| Kaspersky Anti "
            f"Targeted Attack Platform |5.0.0-5201|url_web| URL from web detected|High|dvchost=kata-cn1 eventId={i} "
            f"rt=Apr 25 2025 04:59:16 src=10.0.{i % 250}.{i % 200} dst=203.0.113.{i % 250} dpt=443 "
            f"request=http://evil.test/{i:08x}")
    line = head + " cs1Label=Observed URLs cs1="
    n = 0
    while len(line) < size:
        line += f"http://evil.test/{i:08x}/{n:06x} "
        n += 1
    return line[:max(size, len(head))].rstrip()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=100_000, help="corpus lines for the connection curve")
    p.add_argument("--max-connections", type=int, default=10_000)
    p.add_argument("--sizes", default="200,1024,4096,16384,32768")
    p.add_argument("--size-megabytes", type=int, default=100, help="bytes sent per message-size point")
    p.add_argument("--transport", choices=("tcp", "tls"), default="tcp",
                   help="listener of the connection curve (the message-size curve is TCP)")
    p.add_argument("--binary", help="run this sluice binary instead of building target/release/sluice")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.max_connections + 100:
        raise SystemExit(f"file-descriptor hard limit {hard} is below {args.max_connections} connections")
    if args.binary:
        binary = os.path.abspath(args.binary)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "sluice"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/sluice")
    work = tempfile.mkdtemp(prefix="sluice-scaling-")
    remove_at_exit(os.path.join(work, "events.ndjson"))
    corpus = subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "corpus", "--", str(args.messages)],
                            cwd=ROOT, check=True, capture_output=True).stdout
    lines = corpus.count(b"\n")
    print(f"## Connections ({args.transport}): {lines} mixed lines ({len(corpus) / lines:.0f} B/line) over one active connection, "
          f"with the others idle; {os.cpu_count()} cores")
    print("| connections | RSS before MB | RSS with idle ones MB | kB per idle connection | msg/s | µs CPU/msg "
          "| peak RSS MB | open at the end |")
    print("|---|---|---|---|---|---|---|---|")
    counts = [c for c in (1, 10, 100, 1000, 10_000) if c <= args.max_connections]
    for connections in counts:
        r = measure(binary, work, corpus, lines, connections - 1, args.transport)
        print(f"| {connections:,} | {r['rss_before_kb'] / 1024:.1f} | {r['rss_idle_kb'] / 1024:.1f} | "
              f"{r['kb_per_idle']:.1f} | {r['msg_per_s']:,.0f} | {r['us_cpu_per_msg']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r['idle_still_open']:,} |", flush=True)
    print()
    print(f"## Message size: KATA-shaped CEF alerts, about {args.size_megabytes} MB per point, one connection")
    print("| bytes/message | messages | msg/s | MB/s | µs CPU/msg | µs CPU/KB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        count = max(1000, args.size_megabytes * 1_000_000 // size)
        data = "".join(kata_line(size, i) + "\n" for i in range(count)).encode()
        r = measure(binary, work, data, count, 0)
        per_line = len(data) / count
        print(f"| {per_line:,.0f} | {count:,} | {r['msg_per_s']:,.0f} | {r['mb_per_s']:.1f} | {r['us_cpu_per_msg']:.1f} | "
              f"{r['us_cpu_per_msg'] / per_line * 1024:.2f} | {r['peak_rss_mb']:.0f} |", flush=True)
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
