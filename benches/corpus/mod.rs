//! A deterministic generator of seed-shaped messages with varied values (ids, IPs, hashes,
//! times, users), one shape per vendor, as they arrive over syslog.

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
    format!(
        "Jan 25 09:59:01 localhost lcp_sep_alert_event: INFO - ATP-Appliance CEF:0|Symantec|ATPU|3.0.0|4123|lcp_sep_alert_event|0|device_time=2017-01-25T09:18:16.{ms:03}Z device_uid={uid} internalIP={ip} internalHost=170116-012018 filePath=C:\\Users\\{user}\\Downloads fname={file} sha2={sha} md5= AVEVirusName=WS.Reputation.1 actual_action=Quarantined user_name={user} domain_name=WORKGROUP json=\"actual_action\":\"Quarantined\",\"actual_action_idx\":1,\"agent_infected\":0,\"agent_version\":\"14.0.1904.0000\",\"alert\":\"Security risk found\",\"data_source_url_domain\":\"\",\"device_ip\":\"{ip}\",\"device_name\":\"170116-042018\",\"device_time\":\"2017-01-25T09:18:16.{ms:03}Z\",\"device_uid\":\"{uid}\",\"disposition\":1,\"domain_name\":\"WORKGROUP\",\"external_ip\":\"\",\"file\":{{\"app_name\":\"{file}\",\"company_name\":\"null\",\"confidence\":119,\"detection_type\":\"Heuristic\",\"disposition\":1,\"folder\":\"C:\\Users\\{user}\\Downloads\",\"name\":\"{file}\",\"sha2\":\"{sha}\"}},\"host_name\":\"170446-012018\",\"internal_ip\":\"{ip}\",\"local_host_mac\":\"00-0c-29-cc-3e-17\",\"no_of_viruses\":1,\"sep_mid\":\"{}\",\"source\":\"Real Time Scan\",\"threat\":{{\"name\":\"WS.Reputation.1\"}},\"type_id\":4123,\"user_name\":\"{user}\",\"virus_def\":\"2017-01-23 rev. 022\",\"virus_name\":\"WS.Reputation.1\",\"sep_installed\":true}}",
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

/// `count` messages, the four syslog-delivered shapes in turn.
pub fn mixed(count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| match i % 4 {
            0 => symantec(&mut rng),
            1 => kata(&mut rng),
            2 => perception_point(&mut rng),
            _ => metadefender(&mut rng),
        })
        .collect()
}
