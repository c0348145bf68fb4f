#!/usr/bin/env python3
"""Ingest benchmark: drives a release `sluice run` over loopback TCP, UDP and TLS with
syslog-ng's loggen (and, for TCP, a near-free `cat`-style sender), and reports messages/s,
MB/s, sluice's CPU seconds and µs of CPU per message (also split into user and kernel
time, and per kind of thread, sluice's and librdkafka's; with `--sink file` the bytes
written per message), and its peak RSS.

    python3 bench/ingest.py [--messages N] [--connections C] [--sink null|file|kafka] [--runs R]
    python3 bench/ingest.py --sink kafka --partitions 3 --compression zstd [--rate MSG_PER_S]
    python3 bench/ingest.py --sink kafka --cases tcp:cat --kafka-property queue.buffering.max.kbytes=65536
    python3 bench/ingest.py --sink file --cases tcp:cat [--no-raw-data] [--queue-capacity N]

With `--sink kafka` it starts a tansu broker on loopback (deploy/dev/tansu.sh install) and
also reports the latency from receiving a message to the broker's acknowledgement (p50 and
p99, interpolated within sluice's histogram buckets).

The loggen cases need loggen (deploy/dev/install-test-tools.sh). A benchmark, not a test: nothing is
asserted about speed; every run checks that each message sent was counted.
"""
import argparse, atexit, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def remove_at_exit(*paths):
    """Removes `paths` when the script ends, also after an error. The corpus and the
    receivers' output take hundreds of megabytes a run (a 1,000,000-line corpus is about
    1 GB), and work directories left behind once filled this machine's disk; the small
    results and configurations stay."""
    def remove():
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
    atexit.register(remove)


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def stat_cpu(path):
    """(name, user seconds, kernel seconds) from a /proc .../stat file."""
    with open(path) as f:
        name, rest = f.read().split("(", 1)[1].rsplit(")", 1)
    fields = rest.split()
    ticks = os.sysconf("SC_CLK_TCK")
    return name, int(fields[11]) / ticks, int(fields[12]) / ticks


def proc_stats(pid):
    _, user, kernel = stat_cpu(f"/proc/{pid}/stat")
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    return user, kernel, rss


def thread_cpu(pid):
    """CPU seconds (user + kernel) per thread name, summed over threads of one name."""
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, user, kernel = stat_cpu(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:
            continue  # the thread ended
        # Worker threads are numbered (sluice-parse-0, rdk:broker1): one row per kind.
        kind = name.rstrip("0123456789").rstrip("-")
        seconds[kind] = seconds.get(kind, 0.0) + user + kernel
    return seconds


def metric(address, name, labels=()):
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        if series.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels):
            total += float(value)
    return total


def quantile(address, name, q):
    """The q-quantile of a Prometheus histogram, interpolated within its bucket."""
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    buckets = []
    for line in body.splitlines():
        if line.startswith(name + "_bucket{"):
            series, value = line.rsplit(" ", 1)
            le = series.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return float("nan")


def start_sluice(binary, conf, metrics_address):
    """`sluice run --config conf`, once its metrics endpoint answers."""
    proc = subprocess.Popen([binary, "run", "--config", conf, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while True:
        try:
            metric(metrics_address, "sluice_build_info")
            return proc
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"sluice did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)


# Ports this process has handed out: the kernel may offer a closed one again, and two
# asked for in a row (a listener's and the metrics address) must differ, or the receiver
# fails to start and the run is lost.
_GIVEN_PORTS = set()


def free_port():
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port
    raise SystemExit("no unused loopback port in 100 tries")


def certificates(directory):
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
       "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def start_broker(partitions):
    port = free_port()
    out = subprocess.run(["bash", os.path.join(ROOT, "deploy/dev/tansu.sh"), "start", str(port)],
                         check=True, capture_output=True, text=True)
    sh("bash", os.path.join(ROOT, "deploy/dev/tansu.sh"), "topic", "sluice.events", str(partitions), str(port))
    sh("bash", os.path.join(ROOT, "deploy/dev/tansu.sh"), "topic", "sluice.deadletter", "1", str(port))
    return out.stdout.strip(), port


def stop_broker(port):
    subprocess.run(["bash", os.path.join(ROOT, "deploy/dev/tansu.sh"), "stop", str(port)], check=False)


def kafka_property(text):
    """argparse type for KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def send_in_mib_writes(sock, data):
    """The whole of `data` in 1 MiB socket writes: the cheapest sender ("cat")."""
    view = memoryview(data)
    for i in range(0, len(view), 1 << 20):
        sock.sendall(view[i:i + (1 << 20)])


LOGGEN_LINE_BYTES = 8191


def loggen_udp_datagrams(corpus):
    """How many datagrams `loggen -D -R corpus` sends: one per 8,191 bytes of each line."""
    with open(corpus, "rb") as f:
        return sum(max(1, -(-len(line.rstrip(b"\n")) // LOGGEN_LINE_BYTES)) for line in f)


def run_once(binary, corpus, corpus_bytes, lines, transport, sender, connections, sink, work, opts):
    port, metrics_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    metrics_address = f"127.0.0.1:{metrics_port}"
    config = [f"[general]\nqueue_capacity = {opts.queue_capacity}\n"]
    if opts.no_raw_data:
        config.append("raw_data = false\n")
    config.append(f'[[listener]]\nname = "bench"\ntransport = "{transport}"\naddress = "{address}"\n')
    if transport == "udp":
        config.append("receive_buffer_bytes = 33554432\n")
    if transport == "tls":
        cert, key = certificates(work)
        config.append(f'[listener.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    out_path = os.path.join(work, "events.ndjson")
    if os.path.exists(out_path):
        os.remove(out_path)  # the file sink appends
    # Write back every dirty page first (the corpus, the last run's output), so that
    # writeback does not run, in kernel time, during this run.
    os.sync()
    broker_port = None
    if sink == "kafka":
        brokers, broker_port = start_broker(opts.partitions)
        config.append(f'[sink]\ntype = "kafka"\nbrokers = "{brokers}"\ncompression = "{opts.compression}"\n')
        if opts.kafka_property:
            config.append("[sink.properties]\n" + "".join(
                f'"{k}" = "{v}"\n' for k, v in opts.kafka_property))
    elif sink == "file":
        config.append(f'[sink]\ntype = "file"\npath = "{out_path}"\n')
    else:
        config.append('[sink]\ntype = "null"\n')
    config.append(f'[metrics]\naddress = "{metrics_address}"\n')
    conf = os.path.join(work, "sluice.toml")
    with open(conf, "w") as f:
        f.write("".join(config))
    proc = start_sluice(binary, conf, metrics_address)
    user0, kernel0, _ = proc_stats(proc.pid)
    threads0 = thread_cpu(proc.pid)
    # loggen reads its input in 8,191-byte pieces: over UDP each piece is a datagram of its
    # own (a 32 KB KATA line arrives as four), while TCP and TLS carry the bytes intact.
    per_connection = loggen_udp_datagrams(corpus) if (sender, transport) == ("loggen", "udp") else lines
    expected = per_connection * connections
    t0 = time.time()
    if sender == "cat":
        # One socket per connection, whole corpus in 1 MiB writes: the cheapest sender.
        with open(corpus, "rb") as f:
            data = f.read()
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        for s in socks:
            send_in_mib_writes(s, data)
            s.close()
    else:
        mode = {"tcp": ["-i", "-S"], "udp": ["-i", "-D"], "tls": ["-U"]}[transport]
        sh("loggen", *mode, "-R", corpus, "-d", f"--active-connections={connections}",
           "-r", str(opts.rate or 100000000), "-I", "3600", "127.0.0.1", str(port),
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sent_done = time.time()
    # Done when everything sent is written (or, for UDP, written + dropped by the kernel).
    last, stable_since = -1, time.time()
    while True:
        written = metric(metrics_address, "sluice_events_delivered_total" if sink == "kafka" else "sluice_events_written_total")
        dropped = metric(metrics_address, "sluice_udp_datagrams_dropped_total")
        if written + dropped >= expected:
            break
        if written != last:
            last, stable_since = written, time.time()
        elif time.time() - stable_since > 15:
            break
        time.sleep(0.01)
    t1 = time.time()
    user1, kernel1, rss = proc_stats(proc.pid)
    threads1 = thread_cpu(proc.pid)
    user, kernel = user1 - user0, kernel1 - kernel0
    latency = {}
    if sink == "kafka":
        for q in (0.5, 0.99):
            latency[q] = quantile(metrics_address, "sluice_kafka_delivery_seconds", q)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    # Read after the shutdown flushed the sink's buffer.
    out_bytes = os.path.getsize(out_path) if sink == "file" else 0
    if broker_port:
        stop_broker(broker_port)
    seconds = t1 - t0
    return {
        "transport": transport, "sender": sender, "connections": connections, "sink": sink,
        "sent": expected, "written": int(written), "kernel_dropped": int(dropped),
        "seconds": seconds, "msg_per_s": written / seconds,
        "mb_per_s": corpus_bytes * connections * (written / expected) / seconds / 1e6,
        "cpu_s": user + kernel, "us_cpu_per_msg": (user + kernel) / max(written, 1) * 1e6,
        "us_user_per_msg": user / max(written, 1) * 1e6, "us_kernel_per_msg": kernel / max(written, 1) * 1e6,
        "out_bytes_per_msg": out_bytes / max(written, 1),
        "thread_us_per_msg": {k: (v - threads0.get(k, 0.0)) / max(written, 1) * 1e6
                              for k, v in sorted(threads1.items())},
        "peak_rss_mb": rss / 1e6, "sender_s": sent_done - t0,
        "p50_ms": latency.get(0.5, float("nan")) * 1000, "p99_ms": latency.get(0.99, float("nan")) * 1000,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200_000, help="corpus lines (sent once per connection)")
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--sink", choices=["null", "file", "kafka"], default="null")
    p.add_argument("--partitions", type=int, default=1, help="kafka: partitions of sluice.events")
    p.add_argument("--compression", default="zstd", help="kafka: none, gzip, snappy, lz4, zstd")
    p.add_argument("--kafka-property", action="append", default=[], metavar="KEY=VALUE", type=kafka_property,
                   help="kafka: a librdkafka property for sluice's producer (repeatable), "
                        "e.g. compression.level=1")
    p.add_argument("--rate", type=int, default=0, help="loggen messages/s per connection (0: as fast as it can)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cases", default="tcp:cat,tcp:loggen,tls:loggen,udp:loggen")
    p.add_argument("--queue-capacity", type=int, default=65536, help="sluice's general.queue_capacity")
    p.add_argument("--no-raw-data", action="store_true", help="run sluice with general.raw_data = false")
    p.add_argument("--binary", help="run this sluice binary instead of building target/release/sluice "
                   "(to compare two builds: alternate runs of each)")
    args = p.parse_args()
    if "loggen" in args.cases and not shutil.which("loggen"):
        raise SystemExit("loggen not found: run deploy/dev/install-test-tools.sh")
    if args.binary:
        binary = os.path.abspath(args.binary)
    else:
        sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
        binary = os.path.join(ROOT, "target/release/sluice")
    work = tempfile.mkdtemp(prefix="sluice-bench-")
    corpus = os.path.join(work, "corpus.log")
    remove_at_exit(corpus, os.path.join(work, "events.ndjson"))
    with open(corpus, "wb") as f:
        sh("cargo", "run", "--release", "--quiet", "--example", "corpus", "--", str(args.messages), cwd=ROOT, stdout=f)
    corpus_bytes = os.path.getsize(corpus)
    kafka = (f" ({args.partitions} partitions, {args.compression}"
             + "".join(f", {k}={v}" for k, v in args.kafka_property) + ")") if args.sink == "kafka" else ""
    raw = "; raw_data off" if args.no_raw_data else ""
    print(f"corpus: {args.messages} lines, {corpus_bytes} bytes ({corpus_bytes / args.messages:.1f} B/line); "
          f"{os.cpu_count()} cores; sink {args.sink}{kafka}; {args.runs} runs per case (min / median / max){raw}")
    if "udp:loggen" in args.cases.split(","):
        print(f"udp:loggen sends {loggen_udp_datagrams(corpus)} datagrams a connection: loggen cuts lines "
              f"into {LOGGEN_LINE_BYTES}-byte pieces, and each piece of a longer line is a message of its own")
    print("| transport | sender | conns | msg/s | MB/s | sluice CPU s | µs CPU/msg | user / kernel µs/msg (medians) | out B/msg | peak RSS MB | written / sent (kernel drops) | p50 / p99 ms to ack |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        transport, sender = case.split(":")
        results = [run_once(binary, corpus, corpus_bytes, args.messages, transport, sender,
                            args.connections, args.sink, work, args) for _ in range(args.runs)]
        def span(key, fmt):
            values = sorted(r[key] for r in results)
            return " / ".join(fmt.format(v) for v in (values[0], statistics.median(values), values[-1]))
        def median(key):
            return statistics.median(r[key] for r in results)
        r = results[-1]
        # Acknowledgement latency exists only for the Kafka sink.
        ack = f"{span('p50_ms', '{:.1f}')} ; {span('p99_ms', '{:.1f}')}" if args.sink == "kafka" else "–"
        print(f"| {transport} | {sender} | {args.connections} | {span('msg_per_s', '{:,.0f}')} | {span('mb_per_s', '{:.1f}')} "
              f"| {span('cpu_s', '{:.2f}')} | {span('us_cpu_per_msg', '{:.1f}')} "
              f"| {median('us_user_per_msg'):.2f} / {median('us_kernel_per_msg'):.2f} | {median('out_bytes_per_msg'):,.0f} "
              f"| {span('peak_rss_mb', '{:.0f}')} "
              f"| {r['written']} / {r['sent']} ({r['kernel_dropped']}) | {ack} |", flush=True)
        kinds = sorted({k for r in results for k in r["thread_us_per_msg"]})
        print("|  | CPU µs/msg per thread (medians): " + ", ".join(
            f"{k} {statistics.median(r['thread_us_per_msg'].get(k, 0.0) for r in results):.2f}"
            for k in kinds) + " |", flush=True)
        with open(os.path.join(work, "results.jsonl"), "a") as f:
            for result in results:
                f.write(json.dumps(result) + "\n")
    print(f"raw results: {work}/results.jsonl")


if __name__ == "__main__":
    main()
