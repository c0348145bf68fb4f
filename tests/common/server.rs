//! A real `sluice run` process for tests: started from a config on loopback port 0, its
//! bound addresses read from its JSON logs, its events read from stdout, its metrics
//! scraped over HTTP, and stopped with SIGTERM. Every wait is bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Sluice {
    child: Child,
    pub dir: tempfile::TempDir,
    pub listeners: HashMap<String, SocketAddr>,
    /// None when started with the metrics endpoint off.
    pub metrics: Option<SocketAddr>,
    stdout: Option<ChildStdout>,
    readers: Vec<JoinHandle<()>>,
    events: Arc<Mutex<Vec<Value>>>,
    logs: Arc<Mutex<Vec<Value>>>,
}

pub struct Stopped {
    pub status: ExitStatus,
    pub events: Vec<Value>,
    pub logs: Vec<Value>,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Sluice {
    /// Starts `sluice run --config` with `config` (TOML) and reads its stdout at once.
    pub fn start(config: &str) -> Sluice {
        Sluice::start_with(config, &[], true)
    }

    /// `read_stdout: false` leaves the events in the pipe until [`Sluice::read_stdout`]
    /// (a stalled consumer, for back-pressure tests).
    pub fn start_with(config: &str, args: &[&str], read_stdout: bool) -> Sluice {
        Sluice::launch(config, "127.0.0.1:0", args, read_stdout)
    }

    /// As [`Sluice::start`], with no metrics endpoint (`--metrics ""`).
    pub fn start_without_metrics(config: &str) -> Sluice {
        Sluice::launch(config, "", &[], true)
    }

    fn launch(config: &str, metrics_arg: &str, args: &[&str], read_stdout: bool) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--log-format", "json", "--metrics", metrics_arg])
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let log_sink = logs.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "message": line }));
                log_sink.lock().unwrap().push(value);
            }
        });
        let started = Instant::now();
        loop {
            if logs
                .lock()
                .unwrap()
                .iter()
                .any(|l| l["message"] == "sluice is running")
            {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                stderr_reader.join().unwrap();
                panic!(
                    "sluice exited at start with {status}:\n{}",
                    dump(&logs.lock().unwrap())
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "sluice did not start in time:\n{}",
                dump(&logs.lock().unwrap())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut listeners = HashMap::new();
        let mut metrics = None;
        for l in logs.lock().unwrap().iter() {
            let address = l["address"].as_str().and_then(|a| a.parse().ok());
            match l["message"].as_str() {
                Some("listening") => {
                    listeners.insert(
                        l["listener"].as_str().unwrap().to_string(),
                        address.unwrap(),
                    );
                }
                Some("serving /metrics, /healthz and /readyz") => metrics = address,
                _ => {}
            }
        }
        assert!(
            metrics.is_some() || metrics_arg.is_empty(),
            "no metrics address in the logs"
        );
        let mut sluice = Sluice {
            stdout: child.stdout.take(),
            child,
            dir,
            listeners,
            metrics,
            readers: vec![stderr_reader],
            events: Arc::new(Mutex::new(Vec::new())),
            logs,
        };
        if read_stdout {
            sluice.read_stdout();
        }
        sluice
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .listeners
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener:?}: {:?}", self.listeners))
    }

    pub fn read_stdout(&mut self) {
        let Some(stdout) = self.stdout.take() else {
            return;
        };
        let events = self.events.clone();
        self.readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A last line without its newline is a write the process was stopped in the
                // middle of (a shutdown past its deadline): not an event. Every complete
                // line must be one.
                if line.last() != Some(&b'\n') {
                    break;
                }
                let value: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "stdout line is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                });
                events.lock().unwrap().push(value);
            }
        }));
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until at least `n` events arrived (or the timeout passed) and returns them all.
    pub fn wait_events(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let started = Instant::now();
        while self.events.lock().unwrap().len() < n && started.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.events()
    }

    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics.expect("started with metrics"), path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn scrape(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body
    }

    /// The value of a metric with these labels (summed over any other labels); 0 if absent.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.scrape(), name, labels)
    }

    /// Waits until the metric reaches `at_least` (bounded), and returns its last value.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        let started = Instant::now();
        loop {
            let value = self.metric(name, labels);
            if value >= at_least || started.elapsed() > Duration::from_secs(20) {
                return value;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// SIGTERM, then wait (bounded) for the exit; returns everything it wrote.
    pub fn stop(mut self) -> Stopped {
        self.signal(libc::SIGTERM);
        self.read_stdout();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("sluice did not stop within 60 s:\n{}", dump(&self.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        Stopped {
            status,
            events: self.events(),
            logs: self.logs(),
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dump(logs: &[Value]) -> String {
    logs.iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    sluice::telemetry::http::probe(address, path, Duration::from_secs(10)).unwrap()
}

/// Sums the samples of `name` whose labels include all of `labels`.
pub fn metric_value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Sends `bytes` over one TCP connection and closes it.
pub fn tcp_send(address: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    // Wait for sluice to close its side, so the frames are read before we return.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

pub fn udp_send(address: SocketAddr, datagrams: &[&[u8]]) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in datagrams {
        socket.send_to(d, address).unwrap();
    }
}

/// The raw text of each event, in order.
pub fn raw(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["raw_data"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Asserts that sluice closes `stream` from its side (within 10 s) without sending anything.
pub fn assert_closed_by_sluice(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(stream.read(&mut [0u8; 8]).unwrap_or(0), 0);
}

/// The first non-empty line of a seed file in tests/seeds (a vendor's own example).
pub fn seed_line(file: &str) -> String {
    let path = super::repo_root().join("tests/seeds").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .to_string()
}

/// `sluice run --config PATH` must refuse to start: exit status 1, `expected` on stderr.
pub fn assert_start_fails(config: &std::path::Path, expected: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--metrics", "", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expected), "{stderr}");
}
