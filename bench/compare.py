#!/usr/bin/env python3
"""Side-by-side: the same seed-shaped corpus (all five vendors; Symantec json= events of
1-3 KB, one KATA alert in 200 near its 32 KB limit) sent on loopback into sluice (full
parse, OCSF, NDJSON to a file), syslog-ng (raw, no parsing, to a file; and its closest
parsing: syslog + kv/csv/json parsers with format-json) and rsyslog (raw, to a file), one
receiver at a time:

  - TCP, one connection: every receiver;
  - UDP, one datagram a line: sluice, syslog-ng raw, rsyslog raw; what the receiver lost
    is counted (lines written against lines sent);
  - TLS, one connection: sluice against syslog-ng raw;
  - Kafka: sluice over TCP into a real broker on loopback (tansu), events/s and the p50/p99
    latency from accepting a message to the broker's acknowledgement.

Prints messages/s and the receiver's CPU time per message, and the ratio of messages per
receiver CPU-second against syslog-ng's raw ingest on the same transport. Then, on the CEF
lines of the same corpus, sluice's library against Vector's VRL (bench/vrl-compare:
parse_syslog + parse_cef + parse_json + JSON encoding), one thread, in memory.

    bash bench/compare.sh                 # installs what it needs, then runs this
    python3 bench/compare.py [--messages N] [--runs R] [--receivers sluice/tcp,syslog-ng-raw/udp,...]
                             [--output file|pipe] [--no-vrl] [--binary PATH] [--workers N]

The TCP and TLS sender is a near-free one (the corpus in 1 MiB socket writes), so the
receivers, not the sender, set the pace; on 2 cores the sender still shares the machine,
which is why CPU seconds per message are the figure to compare. With `--output pipe` each
receiver writes into a FIFO that this script reads and counts instead of a file: on a VM
that hands freed memory back to its host, filling the page cache costs whoever writes
most (docs/performance.md), and the FIFO keeps that out of the receivers' CPU figures.
The UDP sender is Python, one sendto a line, and does not wait for anyone: a receiver
slower than it loses datagrams, and the table says how many. TCP and TLS runs check that
all lines were written. A benchmark: nothing is asserted about speed.
"""
import argparse, fcntl, os, shutil, socket, ssl, statistics, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSYSLOG = os.path.join(ROOT, "target/e2e-tools/rsyslog")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import certificates, free_port, metric, proc_stats, quantile, remove_at_exit, start_broker, stop_broker  # noqa: E402

RECEIVERS = ("sluice/tcp,syslog-ng-raw/tcp,syslog-ng-parse/tcp,rsyslog-raw/tcp,"
             "sluice/udp,syslog-ng-raw/udp,rsyslog-raw/udp,sluice/tls,syslog-ng-raw/tls,sluice-kafka/tcp")


def syslog_ng_config(port, out, parse, transport, tls, driver="file"):
    # Flow control on (lossless, as sluice is): a full destination holds the sender back.
    extra = ""
    if transport == "udp":
        extra = " so-rcvbuf(33554432)"
    elif transport == "tls":
        extra = f' tls(cert-file("{tls[0]}") key-file("{tls[1]}") peer-verify(optional-untrusted))'
    source = (f'network(ip("127.0.0.1") port({port}) transport("{transport}") log-msg-size(65536) '
              f'log-iw-size(100000) max-connections(10){extra}{" flags(no-parse)" if not parse else ""})')
    if not parse:
        body = f'destination d {{ {driver}("{out}" template("${{MSG}}\\n")); }};\nlog {{ source(s); destination(d); flags(flow-control); }};'
    else:
        # The nearest syslog-ng 3.38 comes to sluice's work without a CEF parser: syslog
        # header parsing, the CEF header split on "|", key=value extension pairs, the
        # embedded JSON, Perception Point's key:value pairs, MetaDefender's members; then
        # every name-value pair out as one JSON object per line.
        body = f'''
parser p_cef_header {{ csv-parser(columns("cef.version", "cef.vendor", "cef.product", "cef.device_version", "cef.signature", "cef.name", "cef.severity", "cef.extension") delimiters("|") flags(greedy)); }};
parser p_cef_ext {{ kv-parser(prefix("cef.ext.") template("${{cef.extension}}")); }};
parser p_cef_json {{ json-parser(prefix("cef.json.") template("${{cef.ext.json}}")); }};
parser p_pipe {{ kv-parser(prefix("pipe.") pair-separator("|") value-separator(":") template("${{PROGRAM}}:${{MSG}}")); }};
parser p_members {{ json-parser(prefix("json.") template("{{${{MSG}}}}")); }};
destination d {{ {driver}("{out}" template("$(format-json --scope rfc5424 --scope nv-pairs --key ISODATE)\\n")); }};
log {{
  source(s);
  # A parser that fails drops the message from its channel; the next channel (in the end
  # one with no parser) takes it, so every line is written, parsed as far as it went.
  junction {{
    channel {{ filter {{ message('^"' type(pcre)); }}; parser(p_members); flags(final); }};
    channel {{
      filter {{ message('CEF:' type(string) flags(substring)); }};
      parser(p_cef_header); parser(p_cef_ext);
      junction {{ channel {{ parser(p_cef_json); flags(final); }}; channel {{ flags(final); }}; }};
      flags(final);
    }};
    channel {{ parser(p_pipe); flags(final); }};
    channel {{ flags(final); }};
  }};
  destination(d);
  flags(flow-control);
}};'''
    return f'@version: 3.38\noptions {{ stats-freq(0); flush-lines(1000); keep-hostname(yes); }};\nsource s {{ {source}; }};\n{body}\n'


def rsyslog_config(port, out, work, transport):
    module, options = ("imudp", ' rcvbufSize="32m"') if transport == "udp" else ("imptcp", "")
    return f'''global(workDirectory="{work}" maxMessageSize="65536")
module(load="{module}")
input(type="{module}" port="{port}" address="127.0.0.1"{options})
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{out}" template="raw")
'''


def send(port, data, transport):
    if transport == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        for line in data.split(b"\n"):
            if line:
                try:
                    s.send(line)
                except ConnectionRefusedError:
                    pass  # an ICMP error from an earlier datagram: the receiver counts losses
        s.close()
        return
    s = socket.create_connection(("127.0.0.1", port))
    if transport == "tls":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        s = context.wrap_socket(s)
    view = memoryview(data)
    for i in range(0, len(view), 1 << 20):
        s.sendall(view[i:i + (1 << 20)])
    if transport == "tls":
        try:
            s = s.unwrap()  # close_notify, so the receiver sees a clean end of stream
        except (ssl.SSLError, OSError):
            pass  # the receiver closed first; what was sent is counted at the receiver
    s.close()


def wait_for_port(port, proc, what, transport, metrics_address=None):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if metrics_address:
                metric(metrics_address, "sluice_build_info")
                return
            if transport == "udp":
                # Nothing to connect to: the bound port shows in /proc/net/udp.
                with open("/proc/net/udp") as f:
                    if f":{port:04X} " in f.read():
                        return
                raise OSError("not bound yet")
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += chunk.count(b"\n")
    return n


class PipeReader(threading.Thread):
    """Reads a receiver's output from a FIFO, counting lines and bytes, until the receiver
    closes it. Nothing reaches the page cache, so no receiver pays for first touching the
    memory it would fill (on this VM, several times the cost of the write itself)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.lines, self.bytes = path, 0, 0

    def run(self):
        fd = os.open(self.path, os.O_RDONLY)  # blocks until the receiver opens it
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # fewer wake-ups on both sides
        except OSError:
            pass
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            self.lines += chunk.count(b"\n")
            self.bytes += len(chunk)
        os.close(fd)

    def finish(self):
        """Waits for the end of the output; a receiver that never opened the FIFO gets a
        writer of ours, so the reader always ends."""
        if self.is_alive():
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # the receiver has it open (or the reader is past its open)
        self.join(timeout=120)


def run_once(receiver, binary, data, lines, work, output="file", workers=None):
    name, transport = receiver.split("/")
    port = free_port()
    out = os.path.join(work, f"{name}.out")
    if os.path.exists(out):
        os.remove(out)
    reader = None
    if output == "pipe" and name != "sluice-kafka":
        os.mkfifo(out)
        reader = PipeReader(out)
        reader.start()
    # Write back every dirty page first, so one receiver's output is not flushed to disk
    # (in kernel time) while the next one runs.
    os.sync()
    tls = certificates(work) if transport == "tls" else None
    metrics_address, broker_port = None, None
    if name.startswith("sluice"):
        metrics_address = f"127.0.0.1:{free_port()}"
        conf = os.path.join(work, "sluice.toml")
        listener = f'[[listener]]\nname = "bench"\ntransport = "{transport}"\naddress = "127.0.0.1:{port}"\n'
        if transport == "udp":
            listener += "receive_buffer_bytes = 33554432\n"
        if name == "sluice-spread":
            listener += "sender_order = false\n"  # the one sender's datagrams on every worker
        if tls:
            listener += f'[listener.tls]\ncert = "{tls[0]}"\nkey = "{tls[1]}"\n'
        if name == "sluice-kafka":
            brokers, broker_port = start_broker(1)
            sink = f'[sink]\ntype = "kafka"\nbrokers = "{brokers}"\n'
        else:
            sink = f'[sink]\ntype = "file"\npath = "{out}"\n'
        with open(conf, "w") as f:
            general = "queue_capacity = 65536\n" + (f"workers = {workers}\n" if workers else "")
            f.write(f'[general]\n{general}{listener}{sink}[metrics]\naddress = "{metrics_address}"\n')
        cmd = [binary, "run", "--config", conf, "--log-level", "warn"]
        env = None
    elif name.startswith("syslog-ng"):
        conf = os.path.join(work, "syslog-ng.conf")
        with open(conf, "w") as f:
            f.write(syslog_ng_config(port, out, name == "syslog-ng-parse", transport, tls,
                                     "pipe" if reader else "file"))
        cmd = ["syslog-ng", "-F", "--no-caps", "-f", conf, "-R", os.path.join(work, "sng.persist"),
               "-p", os.path.join(work, "sng.pid"), "-c", os.path.join(work, "sng.ctl")]
        env = None
    else:
        conf = os.path.join(work, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(rsyslog_config(port, out, work, transport))  # omfile writes into a FIFO too
        cmd = [os.path.join(RSYSLOG, "usr/sbin/rsyslogd"), "-n", "-i", os.path.join(work, "rsyslog.pid"),
               "-f", conf, "-M", os.path.join(RSYSLOG, "usr/lib/x86_64-linux-gnu/rsyslog")]
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(RSYSLOG, "usr/lib/x86_64-linux-gnu"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    latency = {}
    try:
        wait_for_port(port, proc, receiver, transport, metrics_address)
        user0, kernel0, _ = proc_stats(proc.pid)
        t0 = time.time()
        send(port, data, transport)
        # Done when the output stops growing for 2 s (sluice: when it counted every line,
        # written or, for UDP, dropped by the kernel).
        counter = "sluice_events_delivered_total" if name == "sluice-kafka" else "sluice_events_written_total"
        last_size, stable_since, end = -1, time.time(), time.time()
        while True:
            if metrics_address:
                done = metric(metrics_address, counter)
                if done + metric(metrics_address, "sluice_udp_datagrams_dropped_total") >= lines:
                    end = time.time()
                    break
                size = done
            elif reader:
                size = reader.lines
            else:
                size = os.path.getsize(out) if os.path.exists(out) else 0
            if size != last_size:
                last_size, stable_since, end = size, time.time(), time.time()
            elif time.time() - stable_since > 2:
                break
            time.sleep(0.05)
        user1, kernel1, rss = proc_stats(proc.pid)
        if name == "sluice-kafka":
            written = int(metric(metrics_address, counter))
            for q in (0.5, 0.99):
                latency[q] = quantile(metrics_address, "sluice_kafka_delivery_seconds", q) * 1000
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if broker_port:
            stop_broker(broker_port)
    out_bytes = 0
    if reader:
        reader.finish()
        written, out_bytes = reader.lines, reader.bytes
    elif name != "sluice-kafka":
        written = count_lines(out)
        out_bytes = os.path.getsize(out) if os.path.exists(out) else 0
    user, kernel = user1 - user0, kernel1 - kernel0
    cpu = user + kernel
    return {"msg_per_s": written / (end - t0), "cpu_s": cpu, "us_cpu_per_msg": cpu / max(written, 1) * 1e6,
            "us_user_per_msg": user / max(written, 1) * 1e6, "us_kernel_per_msg": kernel / max(written, 1) * 1e6,
            "out_bytes_per_msg": out_bytes / max(written, 1),
            "rss_mb": rss / 1e6, "written": written, "lost": lines - written,
            "p50_ms": latency.get(0.5), "p99_ms": latency.get(0.99)}


WORK_DONE = {"sluice": "full parse, OCSF JSON",
             "sluice-spread": "full parse, OCSF JSON, sender_order = false", "sluice-kafka": "full parse, OCSF JSON, to Kafka (zstd, acks=all)",
             "syslog-ng-raw": "none (flags(no-parse))", "syslog-ng-parse": "syslog + csv/kv/json parsers, format-json",
             "rsyslog-raw": "none (%rawmsg%)"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--receivers", default=RECEIVERS, help=f"receiver/transport list (default {RECEIVERS})")
    p.add_argument("--output", choices=["file", "pipe"], default="file",
                   help="where receivers write: a file each (default), or a FIFO that this script reads "
                        "and counts, which takes the page cache out of the CPU figures")
    p.add_argument("--no-vrl", action="store_true", help="skip sluice vs VRL (its first build takes about 10 minutes)")
    p.add_argument("--binary", help="run this sluice binary instead of building target/release/sluice "
                                    "(to compare two builds: alternate runs of each)")
    p.add_argument("--workers", type=int, help="sluice's parse worker threads (general.workers; default one per core)")
    args = p.parse_args()
    receivers = args.receivers.split(",")
    for receiver in receivers:
        name, _, transport = receiver.partition("/")
        if name not in WORK_DONE or transport not in ("tcp", "udp", "tls"):
            raise SystemExit(f"unknown receiver {receiver!r}; known: {RECEIVERS}")
    if any(r.startswith("syslog-ng") for r in receivers) and not shutil.which("syslog-ng"):
        raise SystemExit("syslog-ng not found: apt-get install syslog-ng-core (bench/compare.sh does)")
    if any(r.startswith("rsyslog") for r in receivers) and not os.path.exists(os.path.join(RSYSLOG, "usr/sbin/rsyslogd")):
        raise SystemExit("rsyslogd not found: deploy/dev/install-test-tools.sh")
    if args.binary:
        binary = os.path.abspath(args.binary)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "sluice"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/sluice")
    work = tempfile.mkdtemp(prefix="sluice-compare-")
    corpus = os.path.join(work, "corpus.log")
    remove_at_exit(corpus)
    with open(corpus, "wb") as f:
        subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "corpus", "--", str(args.messages)],
                       cwd=ROOT, stdout=f, check=True)
    with open(corpus, "rb") as f:
        data = f.read()
    lines = data.count(b"\n")
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            rmem_max = int(f.read())
    except OSError:
        rmem_max = 0
    print(f"corpus: {lines} lines, {len(data)} bytes ({len(data) / lines:.1f} B/line), {os.cpu_count()} cores, "
          f"{args.runs} runs per receiver (min / median / max); UDP receive buffers capped at "
          f"net.core.rmem_max = {rmem_max} bytes for every receiver; output: "
          + ("a FIFO per receiver, read and counted by this script" if args.output == "pipe" else "a file per receiver")
          + f"; sluice parse workers: {args.workers or 'one per core'}")
    results = {}
    for receiver in receivers:
        runs = []
        for _ in range(args.runs):
            r = run_once(receiver, binary, data, lines, work, args.output, args.workers)
            if r["written"] != lines and not receiver.endswith("/udp"):
                raise SystemExit(f"{receiver}: wrote {r['written']} of {lines} lines")
            runs.append(r)
            out = os.path.join(work, f"{receiver.split('/')[0]}.out")
            if os.path.exists(out):
                os.remove(out)
        results[receiver] = runs
        print(f"  {receiver}: done", file=sys.stderr, flush=True)

    def span(runs, key, fmt):
        values = sorted(r[key] for r in runs)
        return " / ".join(fmt.format(v) for v in (values[0], statistics.median(values), values[-1]))

    def ratio(theirs, ours):
        # CPU time comes in clock ticks (10 ms): a short run can read zero for a receiver.
        if theirs is None:
            return "–"
        if not theirs or not ours:
            return "– (too short to measure CPU)"
        return f"{theirs / ours:.2f}×"

    print("| receiver | transport | work done | msg/s | µs CPU/msg | user / kernel µs/msg (medians) | out B/msg "
          "| msgs per CPU-s vs syslog-ng raw, same transport | lost (median) | peak RSS MB | p50 / p99 ms to ack |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for receiver, runs in results.items():
        name, transport = receiver.split("/")
        raw = results.get(f"syslog-ng-raw/{transport}")
        base = statistics.median(r["us_cpu_per_msg"] for r in raw) if raw else None
        median = statistics.median(r["us_cpu_per_msg"] for r in runs)
        lost = statistics.median(r["lost"] for r in runs)
        ack = "–"
        if runs[0]["p50_ms"] is not None:
            ack = f"{span(runs, 'p50_ms', '{:.0f}')} ; {span(runs, 'p99_ms', '{:.0f}')}"
        print(f"| {name} | {transport} | {WORK_DONE[name]} | {span(runs, 'msg_per_s', '{:,.0f}')} | "
              f"{span(runs, 'us_cpu_per_msg', '{:.2f}')} | "
              f"{statistics.median(r['us_user_per_msg'] for r in runs):.2f} / "
              f"{statistics.median(r['us_kernel_per_msg'] for r in runs):.2f} | "
              f"{statistics.median(r['out_bytes_per_msg'] for r in runs):,.0f} | {ratio(base, median)} | "
              f"{lost:,.0f} ({lost / lines:.1%}) | {span(runs, 'rss_mb', '{:.0f}')} | {ack} |")
    for receiver in (r for r in results if r.startswith("sluice/")):
        ours = statistics.median(r["us_cpu_per_msg"] for r in results[receiver])
        transport = receiver.split("/")[1]
        for peer in (r for r in results if not r.startswith("sluice") and r.endswith("/" + transport)):
            theirs = statistics.median(r["us_cpu_per_msg"] for r in results[peer])
            print(f"sluice vs {peer}: {ratio(theirs, ours)} the messages per receiver CPU-second")
    if not args.no_vrl:
        # Parse + normalise, one thread, no I/O: sluice's library against Vector's VRL on
        # the CEF lines of the same corpus (bench/vrl-compare).
        crate = os.path.join(ROOT, "bench/vrl-compare")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=crate, check=True)
        subprocess.run([os.path.join(crate, "target/release/vrl-compare"), corpus, str(args.runs)], check=True)
    print(f"work dir (configurations; the corpus is removed at exit): {work}")


if __name__ == "__main__":
    main()
