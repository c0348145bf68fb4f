//! NDJSON to a file, rotated by size: `events.ndjson` → `events.ndjson.1` → … → `.KEEP`,
//! the oldest removed. A rotation never splits an event.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Sink, SinkRecord};

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    out: BufWriter<File>,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            out: BufWriter::with_capacity(256 * 1024, file),
            path,
            max_bytes,
            keep,
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(&self.path, self.keep));
            for n in (1..self.keep).rev() {
                let from = numbered(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.out = BufWriter::with_capacity(256 * 1024, open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

impl Sink for RotatingFile {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write(&mut self, record: &SinkRecord) -> io::Result<()> {
        let len = record.payload.len() as u64 + 1;
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(&record.payload)?;
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn record(text: &str) -> SinkRecord {
        SinkRecord {
            payload: text.as_bytes().to_vec(),
            status: Status::Ok,
            received_ms: 0,
            route: None,
            receipt: None,
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut sink = RotatingFile::open(path.clone(), 25, 2).unwrap();
        // Each line is 10 bytes: two fit in 25, the third rotates.
        for i in 0..7 {
            sink.write(&record(&format!("event-{i:03}"))).unwrap();
        }
        sink.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "event-006\n");
        assert_eq!(read(&numbered(&path, 1)), "event-004\nevent-005\n");
        assert_eq!(read(&numbered(&path, 2)), "event-002\nevent-003\n");
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "earlier-1\nearlier-2\n").unwrap();
        let mut sink = RotatingFile::open(path.clone(), 25, 1).unwrap();
        sink.write(&record("event-000")).unwrap();
        sink.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "event-000\n");
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            "earlier-1\nearlier-2\n"
        );
    }
}
