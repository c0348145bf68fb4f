//! Per-source health: when each source (grammar + reporting host) was last seen, and how
//! much it sent. Sources are labels, so their number is capped: past the limit, new ones
//! are counted together as `other` and a warning says so once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::event::Node;
use metrics::{counter, gauge, Counter, Gauge};
use rustc_hash::FxHashMap;

pub const OTHER: &str = "other";

pub struct SourceTracker {
    limit: usize,
    admitted: Mutex<HashSet<(String, String)>>,
    warned: AtomicBool,
}

impl SourceTracker {
    pub fn new(limit: usize) -> Arc<SourceTracker> {
        Arc::new(SourceTracker {
            limit,
            admitted: Mutex::new(HashSet::new()),
            warned: AtomicBool::new(false),
        })
    }

    /// The `source` label for this grammar and host: the host while under the limit.
    fn label(&self, grammar: &str, host: &str) -> String {
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        let key = (grammar.to_string(), host.to_string());
        if admitted.contains(&key) {
            return host.to_string();
        }
        if admitted.len() < self.limit {
            admitted.insert(key);
            return host.to_string();
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                limit = self.limit,
                "more sources than general.max_sources; further ones are counted as source=\"other\""
            );
        }
        OTHER.to_string()
    }
}

/// The reporting host of an event: the device it names, else the syslog hostname, else the
/// sender's address.
pub fn reporting_host<'e>(event: &'e Node<'_>) -> &'e str {
    // Each object is found once and the later candidates only when needed: this runs for
    // every event.
    let text = |node: Option<&'e Node<'_>>, key: &str| node?.get(key)?.as_str();
    let device = event.get("device");
    let found = text(device, "hostname")
        .or_else(|| text(device, "ip"))
        .or_else(|| {
            let sluice = event.get("sluice");
            text(sluice.and_then(|s| s.get("syslog")), "hostname").or_else(|| {
                text(sluice.and_then(|s| s.get("received")), "peer")
                    .map(|p| p.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(p))
            })
        });
    match found {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => "unknown",
    }
}

/// The series of one source.
struct Handles {
    last_seen: Gauge,
    messages: Counter,
    /// Registered at the source's first heartbeat: a source that sends none has no series.
    last_heartbeat: Option<Gauge>,
    label: String,
}

/// One worker's handles. Events of one source usually come in runs (a connection carries
/// one device), so a run is counted locally and published once: at the next source, at a
/// heartbeat, or at the end of the batch (`flush`).
pub struct SourceMetrics {
    tracker: Arc<SourceTracker>,
    /// grammar → host → handles: looked up by borrowed names, no allocation per message.
    handles: FxHashMap<String, FxHashMap<String, Handles>>,
    tracked: usize,
    run: Run,
}

/// The source of the latest events and how many of them are not yet published.
#[derive(Default)]
struct Run {
    grammar: String,
    host: String,
    count: u64,
}

impl SourceMetrics {
    pub fn new(tracker: Arc<SourceTracker>) -> SourceMetrics {
        SourceMetrics {
            tracker,
            handles: FxHashMap::default(),
            tracked: 0,
            run: Run::default(),
        }
    }

    /// Records one event of `grammar`; a heartbeat (`heartbeat`, the event's
    /// `sluice.heartbeat`) also moves the source's last-heartbeat time. Counts reach the metrics at `flush` at the latest.
    pub fn seen(&mut self, grammar: &str, heartbeat: bool, event: &Node<'_>, now_seconds: f64) {
        let host = reporting_host(event);
        if !heartbeat && self.run.count > 0 && self.run.grammar == grammar && self.run.host == host
        {
            self.run.count += 1;
            return;
        }
        self.flush(now_seconds);
        if heartbeat {
            self.publish(grammar, host, 1, true, now_seconds);
        } else {
            self.run.grammar.clear();
            self.run.grammar.push_str(grammar);
            self.run.host.clear();
            self.run.host.push_str(host);
            self.run.count = 1;
        }
    }

    /// Publishes the events counted but not yet published; `now_seconds` is their
    /// last-seen time.
    pub fn flush(&mut self, now_seconds: f64) {
        if self.run.count == 0 {
            return;
        }
        let run = std::mem::take(&mut self.run);
        self.publish(&run.grammar, &run.host, run.count, false, now_seconds);
        // Keep the strings' buffers for the next run.
        self.run = Run { count: 0, ..run };
    }

    fn publish(
        &mut self,
        grammar: &str,
        host: &str,
        count: u64,
        heartbeat: bool,
        now_seconds: f64,
    ) {
        let known = self.handles.get_mut(grammar).and_then(|h| h.get_mut(host));
        let handles = match known {
            Some(handles) => handles,
            None => {
                // Bounded like the labels: a flood of hosts must not grow this map.
                if self.tracked >= self.tracker.limit * 2 {
                    self.handles.clear();
                    self.tracked = 0;
                }
                let label = self.tracker.label(grammar, host);
                let handles = Handles {
                    last_seen: gauge!("sluice_source_last_seen_timestamp_seconds", "grammar" => grammar.to_string(), "source" => label.clone()),
                    messages: counter!("sluice_source_messages_total", "grammar" => grammar.to_string(), "source" => label.clone()),
                    last_heartbeat: None,
                    label,
                };
                self.tracked += 1;
                self.handles
                    .entry(grammar.to_string())
                    .or_default()
                    .entry(host.to_string())
                    .or_insert(handles)
            }
        };
        handles.last_seen.set(now_seconds);
        handles.messages.increment(count);
        if heartbeat {
            handles
                .last_heartbeat
                .get_or_insert_with(|| {
                    gauge!("sluice_source_last_heartbeat_timestamp_seconds", "grammar" => grammar.to_string(), "source" => handles.label.clone())
                })
                .set(now_seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_comes_from_the_device_then_syslog_then_peer() {
        assert_eq!(
            reporting_host(&Node::from(json!({"device": {"hostname": "kata-1"}}))),
            "kata-1"
        );
        assert_eq!(
            reporting_host(&Node::from(
                json!({"sluice": {"syslog": {"hostname": "relay"}, "received": {"peer": "10.0.0.1:514"}}})
            )),
            "relay"
        );
        assert_eq!(
            reporting_host(&Node::from(
                json!({"sluice": {"received": {"peer": "[::1]:40000"}}})
            )),
            "::1"
        );
        assert_eq!(reporting_host(&Node::from(json!({}))), "unknown");
    }

    #[test]
    fn sources_past_the_limit_are_other() {
        let tracker = SourceTracker::new(2);
        assert_eq!(tracker.label("g", "a"), "a");
        assert_eq!(tracker.label("g", "b"), "b");
        assert_eq!(tracker.label("g", "c"), OTHER);
        assert_eq!(tracker.label("g", "a"), "a");
    }

    #[test]
    fn runs_of_one_source_are_published_at_the_next_source_a_heartbeat_or_flush() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut metrics = SourceMetrics::new(SourceTracker::new(10));
        let event = |host: &str| Node::from(json!({"device": {"hostname": host}}));
        let count = |host: &str| {
            let wanted =
                format!("sluice_source_messages_total{{grammar=\"g\",source=\"{host}\"}} ");
            handle
                .render()
                .lines()
                .find_map(|line| line.strip_prefix(wanted.as_str()).map(str::to_string))
        };
        metrics::with_local_recorder(&recorder, || {
            for host in ["a", "a", "a", "b"] {
                metrics.seen("g", false, &event(host), 100.0);
            }
            // The run of `a` was published when `b` came; `b` waits for the next one.
            assert_eq!(count("a").as_deref(), Some("3"));
            assert_eq!(count("b"), None);
            metrics.seen("g", true, &event("a"), 101.0);
            assert_eq!(count("b").as_deref(), Some("1"));
            assert_eq!(count("a").as_deref(), Some("4"));
            metrics.seen("g", false, &event("a"), 102.0);
            metrics.flush(102.0);
            metrics.flush(103.0);
            assert_eq!(count("a").as_deref(), Some("5"));
        });
        let scrape = handle.render();
        assert!(
            scrape.contains(
                "sluice_source_last_heartbeat_timestamp_seconds{grammar=\"g\",source=\"a\"} 101"
            ),
            "{scrape}"
        );
        assert!(
            scrape.contains(
                "sluice_source_last_seen_timestamp_seconds{grammar=\"g\",source=\"a\"} 102"
            ),
            "{scrape}"
        );
    }
}
