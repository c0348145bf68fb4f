//! The record of which objects of one S3 source were read and delivered in full: a small
//! JSON file, replaced atomically (written aside, synced, renamed, directory synced), so a
//! crash leaves either the old record or the new one, never a torn one.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

/// One object that is done with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// What identifies this version of the object: its ETag (or size and modification time
    /// where the store gives none). A different one means the object was rewritten.
    pub version: String,
    pub size: u64,
    /// When the last of its events was delivered, ms since the epoch.
    pub done_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    bucket: String,
    objects: BTreeMap<String, Done>,
}

pub struct Checkpoint {
    path: PathBuf,
    bucket: String,
    objects: BTreeMap<String, Done>,
    dirty: bool,
}

impl Checkpoint {
    /// Loads the checkpoint, or starts an empty one when the file does not exist. A file
    /// that cannot be read, or that belongs to another bucket, is an error: reading every
    /// object again (duplicates in the SIEM) must be a decision, not an accident.
    pub fn load(path: &Path, bucket: &str) -> Result<Checkpoint, String> {
        let mut checkpoint = Checkpoint {
            path: path.to_path_buf(),
            bucket: bucket.to_string(),
            objects: BTreeMap::new(),
            dirty: false,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(checkpoint),
            Err(e) => {
                return Err(format!(
                    "cannot read the checkpoint {}: {e}",
                    path.display()
                ))
            }
        };
        let stored: Stored = serde_json::from_str(&text).map_err(|e| {
            format!(
                "the checkpoint {} is not valid ({e}); move it away to read every object again",
                path.display()
            )
        })?;
        if stored.version != VERSION {
            return Err(format!(
                "the checkpoint {} has version {}; this sluice reads version {VERSION}",
                path.display(),
                stored.version
            ));
        }
        if stored.bucket != bucket {
            return Err(format!(
                "the checkpoint {} belongs to bucket {:?}, not {bucket:?}; give this source its own checkpoint",
                path.display(),
                stored.bucket
            ));
        }
        checkpoint.objects = stored.objects;
        Ok(checkpoint)
    }

    pub fn is_done(&self, key: &str, version: &str) -> bool {
        self.objects.get(key).is_some_and(|d| d.version == version)
    }

    pub fn mark_done(&mut self, key: &str, done: Done) {
        self.objects.insert(key.to_string(), done);
        self.dirty = true;
    }

    /// Forgets objects no longer in the bucket (deleted by a lifecycle rule, say), so the
    /// file stays as small as the bucket. Only after a complete listing.
    pub fn retain_listed(&mut self, listed: &HashSet<&str>) {
        let before = self.objects.len();
        self.objects.retain(|key, _| listed.contains(key.as_str()));
        self.dirty |= self.objects.len() != before;
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Writes the file if anything changed since the last save.
    pub fn save(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let stored = Stored {
            version: VERSION,
            bucket: self.bucket.clone(),
            objects: std::mem::take(&mut self.objects),
        };
        let result = write_atomically(&self.path, &stored);
        self.objects = stored.objects;
        result?;
        self.dirty = false;
        Ok(())
    }
}

fn write_atomically(path: &Path, stored: &Stored) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let aside = dir.join(name);
    {
        let mut file = std::fs::File::create(&aside)?;
        serde_json::to_writer_pretty(&mut file, stored)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&aside, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(version: &str) -> Done {
        Done {
            version: version.into(),
            size: 10,
            done_ms: 1,
        }
    }

    #[test]
    fn survives_a_reload_and_tells_versions_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/s3-a.json");
        let mut c = Checkpoint::load(&path, "b").unwrap();
        assert!(c.is_empty());
        c.mark_done("x/1.json", done("\"e1\""));
        c.save().unwrap();
        let c = Checkpoint::load(&path, "b").unwrap();
        assert!(c.is_done("x/1.json", "\"e1\""));
        assert!(
            !c.is_done("x/1.json", "\"e2\""),
            "a rewritten object is not done"
        );
        assert!(!c.is_done("x/2.json", "\"e1\""));
        assert!(!dir.path().join("state/s3-a.json.tmp").exists());
    }

    #[test]
    fn refuses_a_corrupt_file_or_another_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = Checkpoint::load(&path, "b").err().unwrap();
        assert!(e.contains("not valid") && e.contains("move it away"), "{e}");
        let mut c = Checkpoint::load(&dir.path().join("d.json"), "b").unwrap();
        c.mark_done("k", done("v"));
        c.save().unwrap();
        let e = Checkpoint::load(&dir.path().join("d.json"), "other")
            .err()
            .unwrap();
        assert!(e.contains("belongs to bucket \"b\""), "{e}");
    }

    #[test]
    fn forgets_deleted_objects() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::load(&dir.path().join("c.json"), "b").unwrap();
        c.mark_done("keep", done("v"));
        c.mark_done("gone", done("v"));
        c.retain_listed(&HashSet::from(["keep", "new"]));
        assert_eq!(c.len(), 1);
        assert!(c.is_done("keep", "v"));
    }
}
