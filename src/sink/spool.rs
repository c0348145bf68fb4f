//! The disk spool: where events wait, in order, while Kafka cannot take them, and across a
//! restart or a crash of sluice.
//!
//! A directory of append-only segment files, `00000000000000000001.seg`, … Each record is
//! `[body length: u32 LE][CRC-32 of the body: u32 LE][body]`; the body holds the topic, the
//! key, the headers, the receive time, the dead-letter flag and the payload. A segment is
//! deleted once every record in it was read back and acknowledged, so after a crash the
//! records of undeleted segments are sent again: at least once, and the duplicates are the
//! acknowledged records of the segment being replayed.
//!
//! Opening a spool checks every record. A record cut short by a crash (a torn write), or
//! one whose checksum does not match, ends its segment there: the file is truncated to its
//! last good record and the bytes dropped are reported, never fatal.
//!

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When appended records are forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// After every record: nothing acknowledged to the pipeline is lost in a power cut.
    Always,
    /// At most this long after a record was written.
    Every(Duration),
    /// Left to the kernel: survives a crash of sluice, not of the machine.
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolRecord {
    pub topic: String,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub received_ms: i64,
    pub dead_letter: bool,
    pub payload: Vec<u8>,
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub records: u64,
    /// Bytes cut from segment ends: torn or corrupt records.
    pub dropped_bytes: u64,
}

#[derive(Debug)]
pub enum AppendError {
    /// The spool holds `max_bytes` already.
    Full,
    Io(io::Error),
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Receive time of its first record (ms since the epoch).
    first_received_ms: i64,
    bytes: u64,
    records: u64,
    read: u64,
    acked: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: Fsync,
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    reader: Option<(u64, BufReader<File>)>,
    last_sync: Instant,
    unsynced: bool,
}

const HEADER: usize = 8;
/// Larger bodies cannot have been written by sluice (messages are capped at 16 MiB).
const MAX_BODY: u32 = 64 * 1024 * 1024;

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn encode(record: &SpoolRecord) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + record.payload.len());
    let put_str16 = |body: &mut Vec<u8>, s: &str| {
        let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize - 1)];
        body.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        body.extend_from_slice(bytes);
    };
    put_str16(&mut body, &record.topic);
    match &record.key {
        Some(k) => put_str16(&mut body, k),
        None => body.extend_from_slice(&u16::MAX.to_le_bytes()),
    }
    body.push(record.headers.len().min(255) as u8);
    for (name, value) in record.headers.iter().take(255) {
        put_str16(&mut body, name);
        put_str16(&mut body, value);
    }
    body.extend_from_slice(&record.received_ms.to_le_bytes());
    body.push(record.dead_letter as u8);
    body.extend_from_slice(&record.payload);
    let mut framed = Vec::with_capacity(HEADER + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    framed.extend_from_slice(&body);
    framed
}

fn decode(body: &[u8]) -> Option<SpoolRecord> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let part = body.get(at..at + n)?;
        at += n;
        Some(part)
    };
    fn u16_of(b: &[u8]) -> u16 {
        u16::from_le_bytes([b[0], b[1]])
    }
    // u16::MAX marks "no key"; encode never writes it as a length, so it is not one here.
    let str16 = |len: u16| (len != u16::MAX).then_some(len as usize);
    let len = str16(u16_of(take(2)?))?;
    let topic = String::from_utf8(take(len)?.to_vec()).ok()?;
    let key = match u16_of(take(2)?) {
        u16::MAX => None,
        len => Some(String::from_utf8(take(len as usize)?.to_vec()).ok()?),
    };
    let count = take(1)?[0] as usize;
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let len = str16(u16_of(take(2)?))?;
        let name = String::from_utf8(take(len)?.to_vec()).ok()?;
        let len = str16(u16_of(take(2)?))?;
        let value = String::from_utf8(take(len)?.to_vec()).ok()?;
        headers.push((name, value));
    }
    let received_ms = i64::from_le_bytes(take(8)?.try_into().ok()?);
    // Encode writes 0 or 1; any other byte is corruption, not a flag.
    let dead_letter = match take(1)?[0] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let payload = body[at..].to_vec();
    Some(SpoolRecord {
        topic,
        key,
        headers,
        received_ms,
        dead_letter,
        payload,
    })
}

/// Reads one framed record; `Ok(None)` at a clean end, `Err` on a torn or corrupt record.
fn read_record(reader: &mut impl Read) -> Result<Option<(SpoolRecord, u64)>, ()> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match reader.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().unwrap());
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
    if len > MAX_BODY {
        return Err(());
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).map_err(|_| ())?;
    if crc32fast::hash(&body) != crc {
        return Err(());
    }
    let record = decode(&body).ok_or(())?;
    Ok(Some((record, HEADER as u64 + len as u64)))
}

/// The records a segment's bytes hold, up to the first torn or corrupt one, and how many
/// bytes they take (what `open` keeps of a segment). Every record re-encodes to exactly
/// those bytes.
pub fn scan(data: &[u8]) -> (Vec<SpoolRecord>, usize) {
    let mut reader = data;
    let mut records = Vec::new();
    let mut good = 0usize;
    while let Ok(Some((record, size))) = read_record(&mut reader) {
        records.push(record);
        good += size as usize;
    }
    (records, good)
}

/// The framed bytes of one record, as a segment stores it.
pub fn encode_record(record: &SpoolRecord) -> Vec<u8> {
    encode(record)
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, checking and repairing every segment.
    pub fn open(dir: &Path, max_bytes: u64, fsync: Fsync) -> io::Result<(Spool, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = segment_path(dir, id);
            let file_len = fs::metadata(&path)?.len();
            let mut reader = BufReader::new(File::open(&path)?);
            let (mut good, mut records) = (0u64, 0u64);
            let mut first_received_ms = 0;
            while let Ok(Some((record, size))) = read_record(&mut reader) {
                if records == 0 {
                    first_received_ms = record.received_ms;
                }
                good += size;
                records += 1;
            }
            if good < file_len {
                recovery.dropped_bytes += file_len - good;
                OpenOptions::new().write(true).open(&path)?.set_len(good)?;
            }
            if records == 0 {
                fs::remove_file(&path)?;
                continue;
            }
            recovery.segments += 1;
            recovery.records += records;
            segments.push_back(Segment {
                id,
                first_received_ms,
                bytes: good,
                records,
                read: 0,
                acked: 0,
            });
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8)
                .clamp(64 << 10, 64 << 20)
                .min(max_bytes.max(1)),
            fsync,
            segments,
            writer: None,
            reader: None,
            last_sync: Instant::now(),
            unsynced: false,
        };
        Ok((spool, recovery))
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Records written and not yet read back.
    pub fn unread(&self) -> u64 {
        self.segments.iter().map(|s| s.records - s.read).sum()
    }

    /// Records not yet acknowledged (read or not).
    pub fn outstanding(&self) -> u64 {
        self.segments.iter().map(|s| s.records - s.acked).sum()
    }

    /// Receive time of the oldest event still in the spool, at segment granularity: the
    /// first event of the oldest segment (delivered or not), so an upper bound on the age of
    /// what waits. `None` when the spool is empty.
    pub fn oldest_received_ms(&self) -> Option<i64> {
        self.segments.front().map(|s| s.first_received_ms)
    }

    /// Whether `segment` is still in the spool.
    pub fn contains(&self, segment: u64) -> bool {
        self.segments.iter().any(|s| s.id == segment)
    }

    pub fn is_empty(&self) -> bool {
        self.outstanding() == 0
    }

    pub fn append(&mut self, record: &SpoolRecord) -> Result<(), AppendError> {
        let framed = encode(record);
        if self.bytes() + framed.len() as u64 > self.max_bytes {
            return Err(AppendError::Full);
        }
        let rotate = match self.segments.back() {
            None => true,
            Some(last) => {
                self.writer.is_none() || last.bytes + framed.len() as u64 > self.segment_bytes
            }
        };
        if rotate {
            self.sync().map_err(AppendError::Io)?;
            let id = self.segments.back().map(|s| s.id + 1).unwrap_or(1);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&self.dir, id))
                .map_err(AppendError::Io)?;
            self.writer = Some(BufWriter::new(file));
            self.segments.push_back(Segment {
                id,
                first_received_ms: record.received_ms,
                bytes: 0,
                records: 0,
                read: 0,
                acked: 0,
            });
        }
        let writer = self.writer.as_mut().expect("a segment is open for writing");
        writer.write_all(&framed).map_err(AppendError::Io)?;
        let last = self.segments.back_mut().expect("the segment just written");
        last.bytes += framed.len() as u64;
        last.records += 1;
        self.unsynced = true;
        match self.fsync {
            Fsync::Always => self.sync().map_err(AppendError::Io)?,
            Fsync::Every(d) if self.last_sync.elapsed() >= d => {
                self.sync().map_err(AppendError::Io)?
            }
            _ => {
                // Readers see what was written without waiting for the disk.
                if let Some(w) = self.writer.as_mut() {
                    w.flush().map_err(AppendError::Io)?;
                }
            }
        }
        Ok(())
    }

    /// Writes buffered records out and, unless the policy is `Never`, to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
            if self.unsynced && self.fsync != Fsync::Never {
                w.get_ref().sync_data()?;
            }
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The oldest unread record and the segment it came from (for [`Spool::ack`]).
    pub fn read_next(&mut self) -> io::Result<Option<(u64, SpoolRecord)>> {
        loop {
            let Some(segment) = self.segments.iter().find(|s| s.read < s.records) else {
                return Ok(None);
            };
            let id = segment.id;
            let skip = segment.read;
            if self.reader.as_ref().map(|(rid, _)| *rid) != Some(id) {
                if let Some(w) = self.writer.as_mut() {
                    w.flush()?;
                }
                let mut reader = BufReader::new(File::open(segment_path(&self.dir, id))?);
                for _ in 0..skip {
                    if read_record(&mut reader).ok().flatten().is_none() {
                        break;
                    }
                }
                self.reader = Some((id, reader));
            }
            let (_, reader) = self.reader.as_mut().expect("reader just opened");
            match read_record(reader) {
                Ok(Some((record, _))) => {
                    let segment = self.segment_mut(id).expect("segment exists");
                    segment.read += 1;
                    return Ok(Some((id, record)));
                }
                _ => {
                    // What the writer wrote but the reader cannot see is not possible
                    // after the flush above; treat the rest of the segment as lost.
                    let segment = self.segment_mut(id).expect("segment exists");
                    let lost = segment.records - segment.read;
                    segment.read = segment.records;
                    segment.acked += lost;
                    self.reader = None;
                    self.collect(id)?;
                }
            }
        }
    }

    fn segment_mut(&mut self, id: u64) -> Option<&mut Segment> {
        self.segments.iter_mut().find(|s| s.id == id)
    }

    /// One record of `segment` is done with (delivered, or ended for good).
    pub fn ack(&mut self, segment: u64) -> io::Result<()> {
        if let Some(s) = self.segment_mut(segment) {
            s.acked = (s.acked + 1).min(s.records);
        }
        self.collect(segment)
    }

    /// Deletes `segment` when all of it was read and acknowledged. The segment being
    /// written is closed first (the next record starts a new one), so that a spool that
    /// has drained shrinks to nothing.
    fn collect(&mut self, segment: u64) -> io::Result<()> {
        let Some(pos) = self.segments.iter().position(|s| s.id == segment) else {
            return Ok(());
        };
        let s = &self.segments[pos];
        if s.acked >= s.records && s.read >= s.records {
            if pos == self.segments.len() - 1 && self.writer.is_some() {
                self.sync()?;
                self.writer = None;
            }
            fs::remove_file(segment_path(&self.dir, segment))?;
            self.segments.remove(pos);
            if self.reader.as_ref().map(|(id, _)| *id) == Some(segment) {
                self.reader = None;
            }
        }
        Ok(())
    }

    /// Drops the oldest segment (the full-spool policy `drop_oldest`); returns how many of
    /// its records had not been read back. (Records read and not yet acknowledged are with
    /// the producer already and end as delivered or dropped there.)
    pub fn drop_oldest(&mut self) -> io::Result<u64> {
        let Some(oldest) = self.segments.front() else {
            return Ok(0);
        };
        let (id, lost) = (oldest.id, oldest.records - oldest.read);
        if self.segments.len() == 1 {
            self.sync()?;
            self.writer = None;
        }
        if self.reader.as_ref().map(|(rid, _)| *rid) == Some(id) {
            self.reader = None;
        }
        fs::remove_file(segment_path(&self.dir, id))?;
        self.segments.pop_front();
        Ok(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> SpoolRecord {
        SpoolRecord {
            topic: "sluice.events".into(),
            key: (i % 2 == 0).then(|| format!("host-{i}")),
            headers: vec![("sluice-grammar".into(), "kaspersky_kata".into())],
            received_ms: 1_700_000_000_000 + i as i64,
            dead_letter: i % 5 == 0,
            payload: format!("{{\"n\":{i}}}").into_bytes(),
        }
    }

    fn drain(spool: &mut Spool) -> Vec<SpoolRecord> {
        let mut out = Vec::new();
        while let Some((segment, r)) = spool.read_next().unwrap() {
            spool.ack(segment).unwrap();
            out.push(r);
        }
        out
    }

    #[test]
    fn records_come_back_in_order_and_segments_go_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), 1 << 30, Fsync::Never).unwrap();
        spool.segment_bytes = 200; // several segments
        for i in 0..50 {
            spool.append(&record(i)).unwrap();
        }
        assert!(spool.segments.len() > 5);
        assert_eq!(spool.unread(), 50);
        let got = drain(&mut spool);
        assert_eq!(got, (0..50).map(record).collect::<Vec<_>>());
        // Every segment is gone, the one being written too.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(spool.is_empty());
    }

    #[test]
    fn unacknowledged_records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut spool, _) = Spool::open(dir.path(), 1 << 30, Fsync::Always).unwrap();
            for i in 0..10 {
                spool.append(&record(i)).unwrap();
            }
            // Read three; acknowledge two; then "crash".
            for _ in 0..3 {
                spool.read_next().unwrap();
            }
        }
        let (mut spool, recovery) = Spool::open(dir.path(), 1 << 30, Fsync::Always).unwrap();
        assert_eq!(
            recovery,
            Recovery {
                segments: 1,
                records: 10,
                dropped_bytes: 0
            }
        );
        // At least once: everything of the undeleted segment comes again.
        assert_eq!(drain(&mut spool), (0..10).map(record).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut spool, _) = Spool::open(dir.path(), 1 << 30, Fsync::Always).unwrap();
            for i in 0..5 {
                spool.append(&record(i)).unwrap();
            }
        }
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        // Half of the last record made it to disk.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
        let (mut spool, recovery) = Spool::open(dir.path(), 1 << 30, Fsync::Always).unwrap();
        assert_eq!(recovery.records, 4);
        assert_eq!(recovery.dropped_bytes, encode(&record(4)).len() as u64 - 7);
        assert_eq!(drain(&mut spool), (0..4).map(record).collect::<Vec<_>>());
        // And the spool takes new records after the repaired end.
        spool.append(&record(9)).unwrap();
        assert_eq!(drain(&mut spool), vec![record(9)]);
    }

    #[test]
    fn a_corrupt_record_ends_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut spool, _) = Spool::open(dir.path(), 1 << 30, Fsync::Always).unwrap();
            for i in 0..3 {
                spool.append(&record(i)).unwrap();
            }
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let second = encode(&record(0)).len() + HEADER + 3;
        bytes[second] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (mut spool, recovery) = Spool::open(dir.path(), 1 << 30, Fsync::Never).unwrap();
        assert_eq!(recovery.records, 1);
        assert_eq!(drain(&mut spool), vec![record(0)]);
    }

    #[test]
    fn full_and_drop_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let size = |i| encode(&record(i)).len() as u64;
        let (mut spool, _) = Spool::open(dir.path(), (0..4).map(size).sum(), Fsync::Never).unwrap();
        spool.segment_bytes = size(0) + size(1);
        for i in 0..4 {
            spool.append(&record(i)).unwrap();
        }
        assert!(matches!(spool.append(&record(4)), Err(AppendError::Full)));
        assert_eq!(spool.drop_oldest().unwrap(), 2);
        spool.append(&record(4)).unwrap();
        let got: Vec<i64> = drain(&mut spool)
            .iter()
            .map(|r| r.received_ms - 1_700_000_000_000)
            .collect();
        assert_eq!(got, vec![2, 3, 4]);
    }

    #[test]
    fn a_dead_letter_flag_encode_never_writes_ends_the_segment() {
        // Found by the spool fuzz target: a record whose checksum matches but whose flag
        // byte is 0xff was accepted, and re-encoded to other bytes than it was read from.
        let mut framed = encode_record(&record(1));
        let flag_at = framed.len() - record(1).payload.len() - 1;
        assert_eq!(framed[flag_at], 0);
        framed[flag_at] = 0xff;
        let body = framed[HEADER..].to_vec();
        framed[4..HEADER].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let mut data = encode_record(&record(0));
        let first = data.len();
        data.extend_from_slice(&framed);
        let (records, good) = scan(&data);
        assert_eq!(records, vec![record(0)]);
        assert_eq!(good, first);
        // The fuzzer's input itself.
        let crash: [u8; 48] = [
            0x28, 0, 0, 0, 0x4d, 0xb1, 0x6b, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0x01, 0, 0, 0x0c,
            0xc2, 0xb8, 0x3c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        let (records, good) = scan(&crash);
        let reencoded: Vec<u8> = records.iter().flat_map(encode_record).collect();
        assert_eq!(reencoded, crash[..good]);
    }

    #[test]
    fn any_bytes_as_a_segment_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x1234_5678u64;
        for round in 0..200 {
            let len = (round * 37) % 300;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
            let (mut spool, _) = Spool::open(dir.path(), 1 << 20, Fsync::Never).unwrap();
            drain(&mut spool);
        }
    }
}
