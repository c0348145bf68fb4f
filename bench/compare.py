#!/usr/bin/env python3
"""Side-by-side: the same seed-shaped corpus sent over one loopback TCP connection into
sluice (full parse, OCSF, NDJSON to a file), syslog-ng (raw, no parsing, to a file; and its
closest parsing: syslog + kv/csv/json parsers with format-json) and rsyslog (raw, to a
file), one receiver at a time. Prints messages/s and the receiver's CPU time per message,
and the ratio of messages per receiver CPU-second against syslog-ng's raw ingest. Then,
on the CEF lines of the same corpus, sluice's library against Vector's VRL (bench/vrl-compare:
parse_syslog + parse_cef + parse_json + JSON encoding), one thread, in memory.

    bash bench/compare.sh                 # installs what it needs, then runs this
    python3 bench/compare.py [--messages N] [--runs R] [--receivers sluice,syslog-ng-raw,...]

The sender is a near-free one (the corpus in 1 MiB socket writes), so the receivers, not
the sender, set the pace; on 2 cores the sender still shares the machine, which is why CPU
seconds per message are the figure to compare. Every run checks that all lines were
written. A benchmark: nothing is asserted about speed.
"""
import argparse, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSYSLOG = os.path.join(ROOT, "target/e2e-tools/rsyslog")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import free_port, metric, proc_stats  # noqa: E402


def syslog_ng_config(port, out, parse):
    # Flow control on (lossless, as sluice is): a full destination holds the sender back.
    source = (f'network(ip("127.0.0.1") port({port}) transport("tcp") log-msg-size(65536) '
              f'log-iw-size(100000) max-connections(10){" flags(no-parse)" if not parse else ""})')
    if not parse:
        body = f'destination d {{ file("{out}" template("${{MSG}}\\n")); }};\nlog {{ source(s); destination(d); flags(flow-control); }};'
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
destination d {{ file("{out}" template("$(format-json --scope rfc5424 --scope nv-pairs --key ISODATE)\\n")); }};
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


def rsyslog_config(port, out, work):
    return f'''global(workDirectory="{work}" maxMessageSize="65536")
module(load="imptcp")
input(type="imptcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{out}" template="raw")
'''


def send(port, data):
    s = socket.create_connection(("127.0.0.1", port))
    view = memoryview(data)
    for i in range(0, len(view), 1 << 20):
        s.sendall(view[i:i + (1 << 20)])
    s.close()


def wait_for_port(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
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


def run_once(receiver, binary, data, lines, work):
    port = free_port()
    out = os.path.join(work, f"{receiver}.out")
    if os.path.exists(out):
        os.remove(out)
    metrics_address = None
    if receiver == "sluice":
        metrics_address = f"127.0.0.1:{free_port()}"
        conf = os.path.join(work, "sluice.toml")
        with open(conf, "w") as f:
            f.write(f'[[listener]]\nname = "bench"\ntransport = "tcp"\naddress = "127.0.0.1:{port}"\n'
                    f'[sink]\ntype = "file"\npath = "{out}"\n[metrics]\naddress = "{metrics_address}"\n')
        cmd = [binary, "run", "--config", conf, "--log-level", "warn"]
        env = None
    elif receiver.startswith("syslog-ng"):
        conf = os.path.join(work, "syslog-ng.conf")
        with open(conf, "w") as f:
            f.write(syslog_ng_config(port, out, parse=receiver == "syslog-ng-parse"))
        cmd = ["syslog-ng", "-F", "--no-caps", "-f", conf, "-R", os.path.join(work, "sng.persist"),
               "-p", os.path.join(work, "sng.pid"), "-c", os.path.join(work, "sng.ctl")]
        env = None
    else:
        conf = os.path.join(work, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(rsyslog_config(port, out, work))
        cmd = [os.path.join(RSYSLOG, "usr/sbin/rsyslogd"), "-n", "-i", os.path.join(work, "rsyslog.pid"),
               "-f", conf, "-M", os.path.join(RSYSLOG, "usr/lib/x86_64-linux-gnu/rsyslog")]
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(RSYSLOG, "usr/lib/x86_64-linux-gnu"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_for_port(port, proc, receiver)
        cpu0, _ = proc_stats(proc.pid)
        t0 = time.time()
        send(port, data)
        # Done when the output stops growing for 2 s (sluice: when it counted every line).
        last_size, stable_since, end = -1, time.time(), time.time()
        while True:
            if metrics_address and metric(metrics_address, "sluice_events_written_total") >= lines:
                end = time.time()
                break
            size = os.path.getsize(out) if os.path.exists(out) else 0
            if size != last_size:
                last_size, stable_since, end = size, time.time(), time.time()
            elif time.time() - stable_since > 2:
                break
            time.sleep(0.05)
        cpu1, rss = proc_stats(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    written = count_lines(out)
    cpu = cpu1 - cpu0
    return {"msg_per_s": written / (end - t0), "cpu_s": cpu, "us_cpu_per_msg": cpu / max(written, 1) * 1e6,
            "rss_mb": rss / 1e6, "written": written}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--receivers", default="sluice,syslog-ng-raw,syslog-ng-parse,rsyslog-raw")
    p.add_argument("--no-vrl", action="store_true", help="skip sluice vs VRL (its first build takes about 10 minutes)")
    args = p.parse_args()
    receivers = args.receivers.split(",")
    if any(r.startswith("syslog-ng") for r in receivers) and not shutil.which("syslog-ng"):
        raise SystemExit("syslog-ng not found: apt-get install syslog-ng-core (bench/compare.sh does)")
    if "rsyslog-raw" in receivers and not os.path.exists(os.path.join(RSYSLOG, "usr/sbin/rsyslogd")):
        raise SystemExit("rsyslogd not found: deploy/dev/install-test-tools.sh")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "sluice"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/sluice")
    work = tempfile.mkdtemp(prefix="sluice-compare-")
    corpus = os.path.join(work, "corpus.log")
    with open(corpus, "wb") as f:
        subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "corpus", "--", str(args.messages)],
                       cwd=ROOT, stdout=f, check=True)
    with open(corpus, "rb") as f:
        data = f.read()
    lines = data.count(b"\n")
    print(f"corpus: {lines} lines, {len(data)} bytes ({len(data) / lines:.1f} B/line), one TCP connection, "
          f"{os.cpu_count()} cores, {args.runs} runs per receiver (min / median / max)")
    results = {}
    for receiver in receivers:
        runs = []
        for _ in range(args.runs):
            r = run_once(receiver, binary, data, lines, work)
            if r["written"] != lines:
                raise SystemExit(f"{receiver}: wrote {r['written']} of {lines} lines")
            runs.append(r)
            os.remove(os.path.join(work, f"{receiver}.out"))
        results[receiver] = runs
    def span(runs, key, fmt):
        values = sorted(r[key] for r in runs)
        return " / ".join(fmt.format(v) for v in (values[0], statistics.median(values), values[-1]))
    raw = results.get("syslog-ng-raw")
    base = statistics.median(r["us_cpu_per_msg"] for r in raw) if raw else None
    print("| receiver | work done | msg/s | µs CPU/msg | msgs per CPU-s vs syslog-ng raw | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    work_done = {"sluice": "full parse, OCSF JSON", "syslog-ng-raw": "none (flags(no-parse))",
                 "syslog-ng-parse": "syslog + csv/kv/json parsers, format-json", "rsyslog-raw": "none (%rawmsg%)"}
    for receiver, runs in results.items():
        median = statistics.median(r["us_cpu_per_msg"] for r in runs)
        print(f"| {receiver} | {work_done[receiver]} | {span(runs, 'msg_per_s', '{:,.0f}')} | "
              f"{span(runs, 'us_cpu_per_msg', '{:.2f}')} | {f'{base / median:.2f}×' if base else '–'} | "
              f"{span(runs, 'rss_mb', '{:.0f}')} |")
    if "sluice" in results:
        ours = statistics.median(r["us_cpu_per_msg"] for r in results["sluice"])
        for peer in (r for r in results if r != "sluice"):
            theirs = statistics.median(r["us_cpu_per_msg"] for r in results[peer])
            print(f"sluice vs {peer}: {theirs / ours:.2f}× the messages per receiver CPU-second")
    if not args.no_vrl:
        # Parse + normalise, one thread, no I/O: sluice's library against Vector's VRL on
        # the CEF lines of the same corpus (bench/vrl-compare).
        crate = os.path.join(ROOT, "bench/vrl-compare")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=crate, check=True)
        subprocess.run([os.path.join(crate, "target/release/vrl-compare"), corpus, str(args.runs)], check=True)
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
