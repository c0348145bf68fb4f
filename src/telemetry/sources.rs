//! Per-source health: when each source (grammar + reporting host) was last seen, and how
//! much it sent. Sources are labels, so their number is capped: past the limit, new ones
//! are counted together as `other` and a warning says so once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::event::Node;
use metrics::{counter, gauge, Counter, Gauge};

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
    let text = |path: &[&str]| event.pointer(path).and_then(Node::as_str);
    let found = text(&["device", "hostname"])
        .or(text(&["device", "ip"]))
        .or(text(&["sluice", "syslog", "hostname"]))
        .or_else(|| {
            text(&["sluice", "received", "peer"])
                .map(|p| p.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(p))
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

/// One worker's handles, so a known source costs a hash lookup and two atomic updates.
pub struct SourceMetrics {
    tracker: Arc<SourceTracker>,
    /// grammar → host → handles: looked up by borrowed names, no allocation per message.
    handles: HashMap<String, HashMap<String, Handles>>,
    tracked: usize,
}

impl SourceMetrics {
    pub fn new(tracker: Arc<SourceTracker>) -> SourceMetrics {
        SourceMetrics {
            tracker,
            handles: HashMap::new(),
            tracked: 0,
        }
    }

    /// Records one event of `grammar`; a heartbeat event (`sluice.heartbeat`) also moves the
    /// source's last-heartbeat time.
    pub fn seen(&mut self, grammar: &str, event: &Node<'_>, now_seconds: f64) {
        let host = reporting_host(event);
        let heartbeat = event
            .pointer(&["sluice", "heartbeat"])
            .and_then(Node::as_bool)
            == Some(true);
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
        handles.messages.increment(1);
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
}
