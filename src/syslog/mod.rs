//! Syslog header layer: RFC 5424, RFC 3164 and its real-world variants, or no header.
//!
//! `parse` never fails: a message it cannot read a header from is returned whole as the
//! payload with `rfc = None`, so format detection can still look at it (vendors such as
//! Symantec EDR send no `<PRI>`, MetaDefender sends bare JSON members).

use std::borrow::Cow;

use nom::{
    bytes::complete::{tag, take_while_m_n},
    character::complete::char,
    sequence::delimited,
    IResult,
};

use crate::time::{self, DefaultZone};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc {
    Rfc5424,
    Rfc3164,
    None,
}

impl Rfc {
    pub fn as_str(self) -> &'static str {
        match self {
            Rfc::Rfc5424 => "5424",
            Rfc::Rfc3164 => "3164",
            Rfc::None => "none",
        }
    }
}

/// One RFC 5424 SD-ELEMENT: `[id name="value" …]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogHeader<'a> {
    pub rfc: Rfc,
    pub priority: Option<u8>,
    /// The stamp exactly as written.
    pub timestamp_text: Option<&'a str>,
    /// The stamp in ms since the epoch (year and zone inferred where the stamp lacks them).
    pub timestamp_ms: Option<i64>,
    pub hostname: Option<&'a str>,
    /// RFC 5424 APP-NAME, or the RFC 3164 tag up to `[` or `:`.
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
}

impl<'a> SyslogHeader<'a> {
    /// No header: the whole message is payload.
    pub fn absent() -> Self {
        SyslogHeader {
            rfc: Rfc::None,
            priority: None,
            timestamp_text: None,
            timestamp_ms: None,
            hostname: None,
            app_name: None,
            procid: None,
            msgid: None,
            structured_data: Vec::new(),
        }
    }

    pub fn facility(&self) -> Option<u8> {
        self.priority.map(|p| p >> 3)
    }

    pub fn severity(&self) -> Option<u8> {
        self.priority.map(|p| p & 7)
    }
}

pub fn facility_name(code: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.get(code as usize).copied().unwrap_or("unknown")
}

pub fn severity_name(code: u8) -> &'static str {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    NAMES.get(code as usize).copied().unwrap_or("unknown")
}

/// Context for resolving incomplete stamps.
#[derive(Clone, Copy, Debug)]
pub struct TimeContext {
    pub received_ms: i64,
    pub zone: DefaultZone,
}

fn pri(input: &str) -> IResult<&str, u8> {
    let (rest, digits) = delimited(
        char('<'),
        take_while_m_n(1, 3, |c: char| c.is_ascii_digit()),
        char('>'),
    )(input)?;
    let value: u16 = digits.parse().unwrap_or(u16::MAX);
    if value > 191 {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((rest, value as u8))
}

/// Splits a message into its syslog header and payload.
pub fn parse<'a>(message: &'a str, ctx: &TimeContext) -> (SyslogHeader<'a>, &'a str) {
    let (after_pri, priority) = match pri(message) {
        Ok((rest, p)) => (rest, Some(p)),
        Err(_) => (message, None),
    };
    if let Ok((rest, _)) = tag::<_, _, nom::error::Error<&str>>("1 ")(after_pri) {
        if let Some(parsed) = parse_5424(rest, priority, ctx) {
            return parsed;
        }
    }
    if let Some(parsed) = parse_3164(after_pri, priority, ctx) {
        return parsed;
    }
    let mut header = SyslogHeader::absent();
    if priority.is_some() {
        // `<13>text`: a PRI and nothing else we can read as a header.
        header.rfc = Rfc::Rfc3164;
        header.priority = priority;
        let (app_name, procid, payload) = split_tag(after_pri);
        header.app_name = app_name;
        header.procid = procid;
        return (header, payload);
    }
    (header, message)
}

/// Next space-delimited token (RFC 5424 header fields are separated by exactly one SP).
fn token(input: &str) -> Option<(&str, &str)> {
    let end = memchr::memchr(b' ', input.as_bytes()).unwrap_or(input.len());
    if end == 0 {
        return None;
    }
    Some((&input[..end], &input[end..]))
}

fn nil(value: &str) -> Option<&str> {
    (value != "-").then_some(value)
}

fn parse_5424<'a>(
    input: &'a str,
    priority: Option<u8>,
    ctx: &TimeContext,
) -> Option<(SyslogHeader<'a>, &'a str)> {
    let (stamp, rest) = token(input)?;
    let timestamp_ms = if stamp == "-" {
        None
    } else {
        Some(time::parse_iso(stamp, &ctx.zone)?)
    };
    let rest = rest.strip_prefix(' ')?;
    let (hostname, rest) = token(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (app_name, rest) = token(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (procid, rest) = token(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (msgid, rest) = token(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (structured_data, rest) = if let Some(after) = rest.strip_prefix('-') {
        (Vec::new(), after)
    } else {
        structured_data(rest)?
    };
    let payload = match rest.strip_prefix(' ') {
        Some(msg) => msg.strip_prefix('\u{feff}').unwrap_or(msg),
        None if rest.is_empty() => rest,
        None => return None,
    };
    let header = SyslogHeader {
        rfc: Rfc::Rfc5424,
        priority,
        timestamp_text: nil(stamp),
        timestamp_ms,
        hostname: nil(hostname),
        app_name: nil(app_name),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data,
    };
    Some((header, payload))
}

/// One or more SD-ELEMENTs. Values unescape `\"`, `\\` and `\]`; other backslashes stay.
fn structured_data(mut input: &str) -> Option<(Vec<SdElement<'_>>, &str)> {
    let mut elements = Vec::new();
    while let Some(body) = input.strip_prefix('[') {
        let id_end = body.find([' ', ']'])?;
        let id = &body[..id_end];
        if id.is_empty() {
            return None;
        }
        let mut rest = &body[id_end..];
        let mut params = Vec::new();
        loop {
            if let Some(after) = rest.strip_prefix(']') {
                rest = after;
                break;
            }
            // RFC 5424 says exactly one SP; real senders add more, and VRL's example
            // puts a space after `=`. Accept both.
            rest = rest.trim_start_matches(' ');
            let eq = rest.find('=')?;
            let name = rest[..eq].trim_end();
            if name.is_empty() || name.contains([' ', ']', '"']) {
                return None;
            }
            rest = rest[eq + 1..].trim_start_matches(' ').strip_prefix('"')?;
            let (value, after) = sd_value(rest)?;
            params.push((name, value));
            rest = after;
        }
        elements.push(SdElement { id, params });
        input = rest;
    }
    (!elements.is_empty()).then_some((elements, input))
}

fn sd_value(input: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut owned: Option<String> = None;
    let mut copied_to = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let value = match owned {
                    Some(mut s) => {
                        s.push_str(&input[copied_to..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&input[..i]),
                };
                return Some((value, &input[i + 1..]));
            }
            b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&input[copied_to..i]);
                copied_to = i + 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

fn parse_3164<'a>(
    input: &'a str,
    priority: Option<u8>,
    ctx: &TimeContext,
) -> Option<(SyslogHeader<'a>, &'a str)> {
    // Some senders put a space between PRI and the stamp.
    let input = if priority.is_some() {
        input.trim_start_matches(' ')
    } else {
        input
    };
    let bytes = input.as_bytes();
    let (timestamp_ms, used) =
        if let Some((mut civil, year_written, used)) = time::parse_3164_prefix(bytes) {
            let ms = if year_written {
                ctx.zone.civil_to_ms(&civil)
            } else {
                time::infer_year(&mut civil, &ctx.zone, ctx.received_ms)
            };
            (ms, used)
        } else if let Some((civil, offset, used)) = time::parse_iso_prefix(bytes) {
            // ISO stamps in the 3164 position (rsyslog and syslog-ng templates send these).
            let ms = match offset {
                Some(offset) => civil.to_ms(offset),
                None => ctx.zone.civil_to_ms(&civil),
            };
            (ms, used)
        } else {
            return None;
        };
    let timestamp_text = &input[..used];
    let timestamp_text = timestamp_text.strip_suffix(':').unwrap_or(timestamp_text);
    let mut header = SyslogHeader {
        rfc: Rfc::Rfc3164,
        priority,
        timestamp_text: Some(timestamp_text),
        timestamp_ms,
        ..SyslogHeader::absent()
    };
    let rest = &input[used..];
    let Some(rest) = rest.strip_prefix(' ') else {
        // Nothing after the stamp, or garbage glued to it.
        return rest.is_empty().then_some((header, rest));
    };
    let rest = rest.trim_start_matches(' ');
    // A first word that is already a tag (`name:` / `name[pid]:`) means no hostname.
    if tag_end(rest).is_none() {
        if let Some((hostname, after)) = token(rest) {
            header.hostname = Some(hostname);
            let after = after.strip_prefix(' ').unwrap_or(after);
            let (app_name, procid, payload) = split_tag(after);
            header.app_name = app_name;
            header.procid = procid;
            return Some((header, payload));
        }
        return Some((header, rest));
    }
    let (app_name, procid, payload) = split_tag(rest);
    header.app_name = app_name;
    header.procid = procid;
    Some((header, payload))
}

/// If `input` starts with an RFC 3164 tag (`name:`, `name[pid]:` followed by a space or the
/// end, or `name[pid]` followed by a space), returns (name, pid, bytes used including the
/// separator). `datetime:1612…`, `CEF:0|…` and `"log_type":…` are payloads, not tags,
/// because no space follows the colon.
fn tag_end(input: &str) -> Option<(&str, Option<&str>, usize)> {
    let bytes = input.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| b == b':' || b == b'[' || b == b' ' || b == b'"')?;
    if name_end == 0 || name_end > 64 {
        return None;
    }
    let name = &input[..name_end];
    let mut i = name_end;
    let mut pid = None;
    if bytes[i] == b'[' {
        let close = memchr::memchr(b']', &bytes[i..])? + i;
        pid = Some(&input[i + 1..close]);
        i = close + 1;
        match bytes.get(i) {
            Some(b':') => i += 1,
            Some(b' ') => return Some((name, pid, i + 1)),
            None => return Some((name, pid, i)),
            _ => return None,
        }
    } else if bytes[i] == b':' {
        i += 1;
    } else {
        return None;
    }
    match bytes.get(i) {
        Some(b' ') => Some((name, pid, i + 1)),
        None => Some((name, pid, i)),
        _ => None,
    }
}

fn split_tag(input: &str) -> (Option<&str>, Option<&str>, &str) {
    match tag_end(input) {
        Some((name, pid, used)) => (Some(name), pid, &input[used..]),
        None => (None, None, input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TimeContext {
        TimeContext {
            received_ms: time::parse_iso("2017-02-01T12:00:00Z", &DefaultZone::Utc).unwrap(),
            zone: DefaultZone::Utc,
        }
    }

    #[test]
    fn symantec_prefix_without_pri() {
        let msg = "Jan 25 09:59:01 localhost lcp_sep_alert_event: INFO - ATP-Appliance CEF:0|Symantec|ATPU|";
        let (h, payload) = parse(msg, &ctx());
        assert_eq!(h.rfc, Rfc::Rfc3164);
        assert_eq!(h.priority, None);
        assert_eq!(h.hostname, Some("localhost"));
        assert_eq!(h.app_name, Some("lcp_sep_alert_event"));
        assert_eq!(payload, "INFO - ATP-Appliance CEF:0|Symantec|ATPU|");
        assert_eq!(
            h.timestamp_ms,
            time::parse_iso("2017-01-25T09:59:01Z", &DefaultZone::Utc)
        );
    }

    #[test]
    fn single_digit_day_and_missing_hostname() {
        let (h, payload) = parse("Feb 1 11:07:06 atp_incident: INFO - x", &ctx());
        assert_eq!(h.hostname, None);
        assert_eq!(h.app_name, Some("atp_incident"));
        assert_eq!(payload, "INFO - x");
    }

    #[test]
    fn rfc5424_full() {
        let msg = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appl\\\"ication\" eventID=\"1011\"] \u{feff}An application event";
        let (h, payload) = parse(msg, &ctx());
        assert_eq!(h.rfc, Rfc::Rfc5424);
        assert_eq!(h.facility(), Some(20));
        assert_eq!(h.severity(), Some(5));
        assert_eq!(h.procid, None);
        assert_eq!(h.msgid, Some("ID47"));
        assert_eq!(h.structured_data[0].params[1].1, "Appl\"ication");
        assert_eq!(payload, "An application event");
    }

    #[test]
    fn pipe_payload_is_not_a_tag() {
        let msg = "<14>Feb  4 07:07:35 pp-relay datetime:1612422455.63|Scan ID:1";
        let (h, payload) = parse(msg, &ctx());
        assert_eq!(h.hostname, Some("pp-relay"));
        assert_eq!(h.app_name, None);
        assert_eq!(payload, "datetime:1612422455.63|Scan ID:1");
    }

    #[test]
    fn headerless_payloads() {
        for msg in [
            "CEF:0|a|b|c|d|e|1|",
            "{\"a\":1}",
            "\"log_type\":\"config\"",
            "datetime:1612422455.63|Scan ID:x",
        ] {
            let (h, payload) = parse(msg, &ctx());
            assert_eq!(h.rfc, Rfc::None, "{msg}");
            assert_eq!(payload, msg);
        }
    }

    #[test]
    fn bad_pri_is_payload() {
        let (h, payload) = parse("<999>hello", &ctx());
        assert_eq!(h.rfc, Rfc::None);
        assert_eq!(payload, "<999>hello");
    }
}
