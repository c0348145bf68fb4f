//! NDJSON to a file, rotated by size: `events.ndjson` → `events.ndjson.1` → … → `.KEEP`,
//! the oldest removed. A rotation never splits an event.
//!
//! A delivery's text is written as it is, in as few `write` calls as rotation allows:
//! deliveries are a quarter MiB or more, so a buffer of the file's own would only copy.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::{write_from, Delivery, Sink};

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    out: File,
    size: u64,
    /// Bytes of the current delivery's text already written (after an error).
    done: usize,
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
            out: file,
            path,
            max_bytes,
            keep,
            size,
            done: 0,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
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
        self.out = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Writes the delivery's text from `done` up to `end`.
    fn write_up_to(&mut self, text: &[u8], end: usize) -> io::Result<()> {
        write_from(&mut self.out, &text[..end], &mut self.done, &mut self.size)
    }
}

impl Sink for RotatingFile {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write(&mut self, delivery: &Delivery) -> io::Result<()> {
        let text = delivery.text();
        if self.max_bytes > 0 {
            // Runs of whole lines that fit the current file; a line already begun (before
            // an error) is finished in the file it began in.
            for record in delivery.records() {
                let line = delivery.line(record);
                if line.end <= self.done || line.start < self.done {
                    continue;
                }
                let run = (line.start - self.done) as u64;
                let len = line.len() as u64;
                if self.size + run > 0 && self.size + run + len > self.max_bytes {
                    self.write_up_to(text, line.start)?;
                    self.rotate()?;
                }
            }
        }
        self.write_up_to(text, text.len())?;
        self.done = 0;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn delivery(lines: &[String]) -> Delivery {
        let mut delivery = Delivery::new();
        for line in lines {
            delivery.push_payload(line.as_bytes(), Status::Ok, 0, None, None);
        }
        delivery
    }

    fn record(text: &str) -> Delivery {
        delivery(&[text.to_string()])
    }

    /// Seven 10-byte lines into files of 25 bytes, keeping two old ones: two lines fit in
    /// a file, the third rotates, whether each event comes alone or all in one delivery.
    #[test]
    fn rotates_by_size_and_keeps_the_newest_whether_events_come_alone_or_together() {
        let lines: Vec<String> = (0..7).map(|i| format!("event-{i:03}")).collect();
        for together in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("events.ndjson");
            let mut sink = RotatingFile::open(path.clone(), 25, 2).unwrap();
            if together {
                sink.write(&delivery(&lines)).unwrap();
            } else {
                for line in &lines {
                    sink.write(&record(line)).unwrap();
                }
            }
            sink.flush().unwrap();
            let read = |p: &Path| std::fs::read_to_string(p).unwrap();
            assert_eq!(read(&path), "event-006\n", "together: {together}");
            assert_eq!(read(&numbered(&path, 1)), "event-004\nevent-005\n");
            assert_eq!(read(&numbered(&path, 2)), "event-002\nevent-003\n");
            assert!(!numbered(&path, 3).exists());
        }
    }

    #[test]
    fn an_event_longer_than_the_rotation_size_has_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut sink = RotatingFile::open(path.clone(), 25, 3).unwrap();
        let long = "x".repeat(40);
        let lines = ["a".to_string(), long.clone(), "b".to_string()];
        sink.write(&delivery(&lines)).unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "b\n");
        assert_eq!(read(&numbered(&path, 1)), format!("{long}\n"));
        assert_eq!(read(&numbered(&path, 2)), "a\n");
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
