//! Routing of events to Kafka: the topic and the key by template over event fields, the
//! headers, and the dead-letter decision. Templates are compiled once at start-up.
//!
//! A template is text with placeholders: `siem.{sluice.grammar}`. A placeholder is one or
//! more dotted paths into the event separated by `|`, the first present one wins:
//! `{device.hostname|sluice.syslog.hostname}`. A placeholder with no value becomes
//! `unknown` in a topic; a key with no value at all is no key (the producer spreads such
//! events over the partitions).

use serde_json::Value;

use crate::event::Node;
use crate::Status;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Vec<Vec<String>>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed {{ in template {text:?}"))?
                + open;
            let inner = &rest[open + 1..close];
            let alternatives: Vec<Vec<String>> = inner
                .split('|')
                .map(|path| {
                    path.trim()
                        .split('.')
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            if alternatives
                .iter()
                .any(|p| p.iter().any(|segment| segment.is_empty()))
            {
                return Err(format!(
                    "empty field path in {{{inner}}} of template {text:?}"
                ));
            }
            parts.push(Part::Field(alternatives));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched }} in template {text:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    fn lookup<'v, 'a>(event: &'v Node<'a>, path: &[String]) -> Option<&'v Node<'a>> {
        match event.pointer(path)? {
            Node::Null => None,
            Node::Str(s) if s.is_empty() => None,
            v => Some(v),
        }
    }

    /// The rendered text and whether every placeholder had a value.
    fn render(&self, event: &Node<'_>) -> (String, bool) {
        let mut out = String::new();
        let mut complete = true;
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(alternatives) => {
                    match alternatives.iter().find_map(|p| Self::lookup(event, p)) {
                        Some(Node::Str(s)) => out.push_str(s),
                        Some(v) => out.push_str(&String::from_utf8_lossy(&v.to_json_vec())),
                        None => {
                            complete = false;
                            out.push_str("unknown");
                        }
                    }
                }
            }
        }
        (out, complete)
    }

    /// A Kafka topic name: characters outside `[A-Za-z0-9._-]` become `_`.
    pub fn topic(&self, event: &Node<'_>) -> String {
        let (text, _) = self.render(event);
        let mut topic: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(249)
            .collect();
        if topic.is_empty() {
            topic.push_str("unknown");
        }
        topic
    }

    /// A message key, or none when the template's fields are all absent.
    pub fn key(&self, event: &Node<'_>) -> Option<String> {
        let has_field = self.parts.iter().any(|p| matches!(p, Part::Field(_)));
        let (text, complete) = self.render(event);
        (complete || !has_field).then_some(text)
    }
}

/// Where one event goes, decided by the parse worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub topic: String,
    pub key: Option<String>,
    pub dead_letter: bool,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Clone, Debug)]
pub struct Router {
    topic: Template,
    key: Template,
    dead_letter_topic: String,
    dead_letter_partial: bool,
}

impl Router {
    pub fn new(
        topic: &str,
        key: &str,
        dead_letter_topic: &str,
        dead_letter_partial: bool,
    ) -> Result<Router, String> {
        Ok(Router {
            topic: Template::parse(topic)?,
            key: Template::parse(key)?,
            dead_letter_topic: dead_letter_topic.to_string(),
            dead_letter_partial,
        })
    }

    pub fn is_dead_letter(&self, status: Status) -> bool {
        match status {
            Status::Ok => false,
            Status::Partial => self.dead_letter_partial,
            Status::Unrecognised | Status::Failed => true,
        }
    }

    pub fn route(&self, event: &Node<'_>, status: Status) -> Route {
        let dead_letter = self.is_dead_letter(status);
        let field = |path: &[&str]| event.pointer(path).and_then(Node::as_str);
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            (
                "sluice-schema-version",
                field(&["sluice", "schema_version"])
                    .unwrap_or("")
                    .to_string(),
            ),
            ("sluice-parse-status", status.as_str().to_string()),
        ];
        if let Some(g) = field(&["sluice", "grammar"]) {
            headers.push(("sluice-grammar", g.to_string()));
        }
        if let Some(class) = event.get("class_uid").and_then(Node::as_i64) {
            headers.push(("ocsf-class-uid", class.to_string()));
        }
        Route {
            topic: if dead_letter {
                self.dead_letter_topic.clone()
            } else {
                self.topic.topic(event)
            },
            key: self.key.key(event),
            dead_letter,
            headers,
        }
    }
}

/// The dead-letter record: the message as received (exact bytes in base64, and as text),
/// why it was not normalised, where it came from, and the Base Event sluice made of it.
pub fn dead_letter_record(event: &Value, raw: &[u8]) -> Value {
    use base64::Engine;
    let sluice = &event["sluice"];
    serde_json::json!({
        "schema_version": sluice["schema_version"],
        "status": sluice["parse"]["status"],
        "errors": sluice["parse"]["errors"],
        "received": sluice["received"],
        "received_time": event["metadata"]["logged_time"],
        "raw_base64": base64::engine::general_purpose::STANDARD.encode(raw),
        "raw_text": String::from_utf8_lossy(raw),
        "event": event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_fields_with_fallbacks() {
        let event = Node::from(
            json!({"sluice": {"grammar": "kaspersky_kata", "syslog": {"hostname": "kata-1"}}, "class_uid": 2004}),
        );
        let t = Template::parse("siem.{sluice.grammar}").unwrap();
        assert_eq!(t.topic(&event), "siem.kaspersky_kata");
        let t = Template::parse("ocsf-{class_uid}").unwrap();
        assert_eq!(t.topic(&event), "ocsf-2004");
        let k = Template::parse("{device.hostname|sluice.syslog.hostname}").unwrap();
        assert_eq!(k.key(&event).as_deref(), Some("kata-1"));
        let k = Template::parse("{device.hostname}").unwrap();
        assert_eq!(k.key(&event), None);
        let t = Template::parse("siem.{device.vendor}/x y").unwrap();
        assert_eq!(t.topic(&event), "siem.unknown_x_y");
        assert_eq!(
            Template::parse("sluice.events").unwrap().topic(&event),
            "sluice.events"
        );
    }

    #[test]
    fn template_errors() {
        assert!(Template::parse("siem.{sluice.grammar").is_err());
        assert!(Template::parse("siem.}").is_err());
        assert!(Template::parse("{a..b}").is_err());
    }

    #[test]
    fn failed_and_unrecognised_go_to_the_dead_letter_topic() {
        let router = Router::new(
            "sluice.events",
            "{sluice.syslog.hostname}",
            "sluice.deadletter",
            false,
        )
        .unwrap();
        let event =
            Node::from(json!({"sluice": {"schema_version": "1", "parse": {"status": "failed"}}}));
        let route = router.route(&event, Status::Failed);
        assert!(route.dead_letter);
        assert_eq!(route.topic, "sluice.deadletter");
        assert!(!router.route(&event, Status::Partial).dead_letter);
        let strict = Router::new("t", "k", "dlq", true).unwrap();
        assert!(strict.route(&event, Status::Partial).dead_letter);
    }
}
