//! A deterministic generator of seed-shaped messages with varied values (ids, IPs, hashes,
//! times, users), one shape per vendor, as they arrive over syslog.
// Each bench and example uses part of the generator.
#![allow(dead_code)]

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*: fast and good enough for varying field values.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| b"0123456789abcdef"[self.below(16) as usize] as char)
            .collect()
    }

    pub fn ip(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            1 + self.below(223),
            self.below(256),
            self.below(256),
            1 + self.below(254)
        )
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const USERS: &[&str] = &["Admin", "alice", "bob.smith", "svc_backup", "j.doe"];
const FILES: &[&str] = &[
    "cloudcar.exe",
    "invoice.docm",
    "shample (2).exe",
    "setup.msi",
    "report.pdf.js",
];

pub fn symantec(rng: &mut Rng) -> String {
    let user = rng.pick(USERS);
    let file = rng.pick(FILES);
    let sha = rng.hex(64);
    let ip = rng.ip();
    let uid = format!(
        "{}-{}-{}-{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(4),
        rng.hex(4),
        rng.hex(12)
    );
    let ms = rng.below(1000);
    // Symantec's json= events run from about 1 to 3 KB: a free-text remediation note of
    // varying length stands in for the fields that vary between events.
    let note_len = rng.below(1700) as usize;
    let note = words(rng, note_len);
    format!(
        "Jan 25 09:59:01 localhost lcp_sep_alert_event: INFO - ATP-Appliance CEF:0|Symantec|ATPU|3.0.0|4123|lcp_sep_alert_event|0|device_time=2017-01-25T09:18:16.{ms:03}Z device_uid={uid} internalIP={ip} internalHost=170116-012018 filePath=C:\\Users\\{user}\\Downloads fname={file} sha2={sha} md5= AVEVirusName=WS.Reputation.1 actual_action=Quarantined user_name={user} domain_name=WORKGROUP json=\"actual_action\":\"Quarantined\",\"actual_action_idx\":1,\"agent_infected\":0,\"agent_version\":\"14.0.1904.0000\",\"alert\":\"Security risk found\",\"data_source_url_domain\":\"\",\"device_ip\":\"{ip}\",\"device_name\":\"170116-042018\",\"device_time\":\"2017-01-25T09:18:16.{ms:03}Z\",\"device_uid\":\"{uid}\",\"disposition\":1,\"domain_name\":\"WORKGROUP\",\"external_ip\":\"\",\"file\":{{\"app_name\":\"{file}\",\"company_name\":\"null\",\"confidence\":119,\"detection_type\":\"Heuristic\",\"disposition\":1,\"folder\":\"C:\\Users\\{user}\\Downloads\",\"name\":\"{file}\",\"sha2\":\"{sha}\"}},\"host_name\":\"170446-012018\",\"internal_ip\":\"{ip}\",\"local_host_mac\":\"00-0c-29-cc-3e-17\",\"no_of_viruses\":1,\"sep_mid\":\"{}\",\"source\":\"Real Time Scan\",\"threat\":{{\"name\":\"WS.Reputation.1\"}},\"type_id\":4123,\"user_name\":\"{user}\",\"virus_def\":\"2017-01-23 rev. 022\",\"virus_name\":\"WS.Reputation.1\",\"remediation_note\":\"{note}\",\"sep_installed\":true}}",
        rng.hex(32)
    )
}

pub fn kata(rng: &mut Rng) -> String {
    let kind = rng.pick(&["url_web", "file_web", "file_mail"]);
    let severity = rng.pick(&["Low", "Medium", "High"]);
    format!(
        "<134>1 2024-05-01T10:00:0{}.{:03}Z kata-cn1 KATA - - - CEF:0|AO Kaspersky Lab| Kaspersky Anti Targeted Attack Platform |5.0.0-5201|{kind}| URL from web detected|{severity}|dvchost=kata-cn1 eventId={} rt=Apr 25 2025 04:59:16 src={} spt={} dst={} dpt=443 shost=ws-{} suser={} fName={} fsize={} fileHash={} request=http://evil.test/{} requestMethod=GET",
        rng.below(10), rng.below(1000), rng.next(), rng.ip(), 1024 + rng.below(60000), rng.ip(), rng.below(999),
        rng.pick(USERS), rng.pick(FILES), rng.below(1 << 20), rng.hex(32), rng.hex(8)
    )
}

/// A KATA alert near its 32 KB limit: a long request URL list in `cs1` (KATA sends what
/// the detection saw; the biggest alerts reach the cut-off).
pub fn kata_large(rng: &mut Rng) -> String {
    let base = kata(rng);
    let target = 30_000 + rng.below(2_500) as usize;
    let mut padded = String::with_capacity(target + 64);
    padded.push_str(&base);
    padded.push_str(" cs1Label=Observed URLs cs1=");
    while padded.len() < target {
        padded.push_str("http://evil.test/");
        padded.push_str(&rng.hex(16));
        padded.push(' ');
    }
    padded.truncate(padded.trim_end().len());
    padded
}

/// Panoptica findings arrive as JSON objects (S3); over syslog TCP one object a line.
pub fn panoptica(rng: &mut Rng) -> String {
    let detection = rng.pick(&["security_finding", "attack_path"]);
    let risk = if detection == "attack_path" {
        format!(
            ",\"risk_params\":{{\"risk_score\":{},\"workload\":{{\"name\":\"frontend-{}\"}}}}",
            rng.below(101),
            rng.below(50)
        )
    } else {
        String::new()
    };
    let description_len = 40 + rng.below(120) as usize;
    let description = words(rng, description_len);
    format!(
        "{{\"labels\":[\"prod\",\"team-{}\"],\"alert_id\":\"f-{}\",\"asset_id\":\"arn:aws:s3:::bucket-{}\",\"provider\":\"{}\",\"resolved\":{},\"severity\":\"{}\",\"tenant_id\":\"id-{}\",\"account_id\":\"{}\",\"description\":\"{}\",\"resource_type\":\"{}\",\"risk_category\":\"{}\",\"detection_type\":\"{detection}\",\"attack_scenario\":\"{}\",\"related_resources\":[[\"arn:aws:s3:::bucket-{}\"]],\"detection_timestamp\":\"2024-05-02T10:{:02}:30Z\",\"first_seen_timestamp\":\"2024-04-28T08:00:00Z\"{risk}}}",
        rng.below(20), rng.hex(8), rng.hex(6), rng.pick(&["AWS", "KUBE", "AZURE", "GCP"]),
        rng.below(2) == 1, rng.pick(&["Information", "Low", "Medium", "High", "Critical"]), rng.hex(6),
        100_000_000_000 + rng.below(899_999_999_999), description,
        rng.pick(&["Compute", "Data", "Identity", "Network", "Service", "Storage"]),
        rng.pick(&["Data Exposure", "Privilege Escalation", "Risky Configurations", "Vulnerable Public Workload"]),
        rng.pick(&["Publicly readable S3 bucket", "Public workload to cluster-admin", "Remote code execution via CVE-2021-44228"]),
        rng.hex(6), rng.below(60)
    )
}

/// About `len` characters of plain words.
fn words(rng: &mut Rng, len: usize) -> String {
    const WORDS: &[&str] = &[
        "scan",
        "host",
        "quarantine",
        "policy",
        "file",
        "user",
        "network",
        "alert",
        "review",
        "the",
        "was",
        "on",
    ];
    let mut text = String::with_capacity(len + 12);
    while text.len() < len {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(rng.pick(WORDS));
    }
    text
}

pub fn perception_point(rng: &mut Rng) -> String {
    format!(
        "<14>Feb  4 07:07:35 pp-relay datetime:16124{:05}.{:02}|Scan ID:000176_1_{}-{}-{}|Event:Email Scanned|IP Address:{}|Subject:Just Landed | New season femininity + Final sale reductions {}|Message ID:{}|To:{}@acme.com|From: Sender <sender{}@domain.com>|Layers:|Verdict:{}|Sample:<{}@journal.report.generator>",
        rng.below(100_000), rng.below(100), rng.hex(8), rng.hex(4), rng.hex(12), rng.ip(), rng.below(1000),
        rng.hex(40), rng.pick(USERS).replace(' ', ""), rng.below(100), rng.pick(&["CLN", "SUS", "MAL"]), rng.hex(32)
    )
}

pub fn metadefender(rng: &mut Rng) -> String {
    format!(
        "\"log_type\":\"{}\",\"device_name\":\"Cuong Ba {}\",\"device_id\":\"cuongbavuacakhia{}\",\"last_seen\":\"2022-07-15T11:19:{:02}.239Z\",\"device_group\":\"Default\",\"details\":\"OPSWAT Client (Version 7.6.586.1) Cuong Ba Installed$0\",\"type\":\"Device\",\"device_username\":\"{}\",\"timestamp\":\"2022-07-15T11:19:{:02}.239Z\"",
        rng.pick(&["added", "removed", "exempt_all", "unexempt"]), rng.below(1000), 1_657_000_000 + rng.below(1_000_000),
        rng.below(60), rng.pick(USERS), rng.below(60)
    )
}

/// Vendor shapes by name, for per-vendor measurements.
pub const VENDORS: &[&str] = &[
    "symantec_edr",
    "kaspersky_kata",
    "kaspersky_kata_32k",
    "perception_point",
    "opswat_metadefender",
    "cisco_panoptica",
];

/// One message of the named shape (see [`VENDORS`]).
pub fn vendor(name: &str, rng: &mut Rng) -> Option<String> {
    Some(match name {
        "symantec_edr" => symantec(rng),
        "kaspersky_kata" => kata(rng),
        "kaspersky_kata_32k" => kata_large(rng),
        "perception_point" => perception_point(rng),
        "opswat_metadefender" => metadefender(rng),
        "cisco_panoptica" => panoptica(rng),
        _ => return None,
    })
}

/// `count` messages of all five vendors in turn (Panoptica as one JSON object a line), with
/// one KATA alert in 200 near KATA's 32 KB limit.
pub fn mixed(count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| match i % 5 {
            _ if i % 200 == 199 => kata_large(&mut rng),
            0 => symantec(&mut rng),
            1 => kata(&mut rng),
            2 => perception_point(&mut rng),
            3 => metadefender(&mut rng),
            _ => panoptica(&mut rng),
        })
        .collect()
}
