//! Consumer groups' committed offsets: per group, the next offset to read of each stream
//! partition, kept in `<group>.json` and replaced atomically (written beside, synced, then
//! renamed over) on each commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::partition::sync_dir;
use crate::{LogError, Result};

pub struct GroupOffsets {
    path: PathBuf,
    /// By stream, then partition.
    offsets: BTreeMap<String, BTreeMap<usize, u64>>,
}

impl GroupOffsets {
    /// The offsets `group` has committed, kept in `dir`.
    pub fn open(dir: &Path, group: &str) -> Result<GroupOffsets> {
        if group.is_empty()
            || group.len() > 63
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || group.starts_with('.')
        {
            return Err(LogError::Invalid(format!(
                "group name '{group}' may use only letters, digits, '-', '_' and '.' (at most 63)"
            )));
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{group}.json"));
        let offsets = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LogError::Invalid(format!("{} is unreadable: {e}", path.display())))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error.into()),
        };
        Ok(GroupOffsets { path, offsets })
    }

    /// The committed next offset of a stream partition, if any.
    pub fn get(&self, stream: &str, partition: usize) -> Option<u64> {
        self.offsets.get(stream)?.get(&partition).copied()
    }

    /// Durably commits `offset` as the next to read of a stream partition.
    pub fn commit(&mut self, stream: &str, partition: usize, offset: u64) -> Result<()> {
        self.offsets
            .entry(stream.to_string())
            .or_default()
            .insert(partition, offset);
        let bytes =
            serde_json::to_vec(&self.offsets).map_err(|e| LogError::Invalid(e.to_string()))?;
        let temporary = self.path.with_extension("json.new");
        let file = {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file
        };
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopening_and_names_are_checked() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut group = GroupOffsets::open(dir.path(), "billing")?;
        assert_eq!(group.get("orders", 0), None);
        group.commit("orders", 0, 17)?;
        group.commit("orders", 2, 4)?;
        group.commit("orders", 0, 20)?;
        let group = GroupOffsets::open(dir.path(), "billing")?;
        assert_eq!(
            (
                group.get("orders", 0),
                group.get("orders", 1),
                group.get("orders", 2)
            ),
            (Some(20), None, Some(4))
        );
        for bad in ["", "../x", ".hidden", "a b"] {
            assert!(
                GroupOffsets::open(dir.path(), bad).is_err(),
                "{bad:?} was accepted"
            );
        }
        Ok(())
    }
}
