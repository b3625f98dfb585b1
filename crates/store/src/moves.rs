//! The record of a moving commit in flight (`ROOT/ovl.moves/<container id>`): which container's
//! upperdir was renamed into which new layer dir. It is written (and synced) before the rename
//! and removed once the container is gone or has its upperdir back, so that a command after a
//! crash in between can give the upperdir back or finish the commit (ovl's own; Docker has no
//! such operation and ignores the directory).

use std::fs;
use std::path::PathBuf;

use crate::fsutil;
use crate::ids::{is_hex64, is_layer_dir_id};
use crate::{DataRoot, Error, Result};

/// The directory of the records, at the root beside `ovl.lock`.
const MOVES_DIR: &str = "ovl.moves";

/// One moving commit in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRecord {
    pub container_id: String,
    /// The container's layer dir, whose `diff/` moved.
    pub mount_id: String,
    /// The new layer's dir, which holds that `diff/` now.
    pub cache_id: String,
    /// The reference the commit tags its image with, if any (`REPO:TAG` as the user gave it).
    pub reference: Option<String>,
}

impl DataRoot {
    fn moves_dir(&self) -> PathBuf {
        self.root().join(MOVES_DIR)
    }

    /// Writes the record of a move, durably, before the move.
    pub fn record_move(&self, record: &MoveRecord) -> Result<()> {
        check(record)?;
        let dir = self.moves_dir();
        fsutil::create_dir_mode(&dir, 0o700)?;
        let text = format!(
            "{}\n{}\n{}\n",
            record.mount_id,
            record.cache_id,
            record.reference.as_deref().unwrap_or_default()
        );
        fsutil::write_atomic(&dir.join(&record.container_id), text.as_bytes(), 0o600)?;
        fsutil::sync_dir(self.root())
    }

    /// Removes the record of the container's move (and the directory once it is empty).
    pub fn forget_move(&self, container_id: &str) -> Result<()> {
        let dir = self.moves_dir();
        let path = dir.join(container_id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(fsutil::io_error("removing", &path)(err)),
        }
        fsutil::sync_dir(&dir)?;
        if fs::remove_dir(&dir).is_ok() {
            fsutil::sync_dir(self.root())?;
        }
        Ok(())
    }

    /// The records of moves a crash interrupted; none when the directory does not exist. The
    /// temp file of a record whose write a crash cut short is removed (no move follows an
    /// unwritten record). A name or content that is not a record is an error naming it.
    pub fn interrupted_moves(&self) -> Result<Vec<MoveRecord>> {
        let dir = self.moves_dir();
        if !fsutil::real_dir(&dir)? {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).map_err(fsutil::io_error("reading", &dir))? {
            let entry = entry.map_err(fsutil::io_error("reading", &dir))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                fs::remove_file(&path).map_err(fsutil::io_error("removing", &path))?;
                continue;
            }
            let text = fsutil::read_optional(&path)?.unwrap_or_default();
            let mut lines = text.lines();
            let record = MoveRecord {
                container_id: entry.file_name().to_string_lossy().into_owned(),
                mount_id: lines.next().unwrap_or_default().to_string(),
                cache_id: lines.next().unwrap_or_default().to_string(),
                reference: lines
                    .next()
                    .filter(|line| !line.is_empty())
                    .map(str::to_string),
            };
            check(&record).map_err(|_| Error::InvalidId {
                what: "record of an interrupted commit --rm",
                value: path.display().to_string(),
            })?;
            records.push(record);
        }
        Ok(records)
    }
}

fn check(record: &MoveRecord) -> Result<()> {
    let valid = is_hex64(&record.container_id)
        && is_layer_dir_id(&record.mount_id)
        && is_layer_dir_id(&record.cache_id);
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidId {
            what: "move record",
            value: format!(
                "{} {} {}",
                record.container_id, record.mount_id, record.cache_id
            ),
        })
    }
}
