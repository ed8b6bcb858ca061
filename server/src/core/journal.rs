//! The catalog journal, `catalog.jsonl`: one JSON line for each statement that changed the
//! catalog and each standing query registered or cancelled, with the stamp of the latest
//! publish fed before it. Read on start; appended to and synced as things happen.

use std::io::Write;

use serde::{Deserialize, Serialize};
use sluice_engine::time::Millis;

use super::{Core, internal};
use crate::ServeError;

/// The journal's file in the data directory.
const JOURNAL_FILE: &str = "catalog.jsonl";

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum CatalogEntry {
    Statement {
        sql: String,
        /// The stamp of the latest publish when it ran.
        #[serde(default)]
        at: Millis,
    },
    Register {
        name: String,
        sql: String,
        #[serde(default)]
        at: Millis,
        /// The result log's directory; the name when absent.
        #[serde(default)]
        dir: Option<String>,
    },
    Cancel {
        name: String,
        #[serde(default)]
        at: Millis,
    },
}

impl CatalogEntry {
    pub(super) fn at(&self) -> Millis {
        match self {
            CatalogEntry::Statement { at, .. }
            | CatalogEntry::Register { at, .. }
            | CatalogEntry::Cancel { at, .. } => *at,
        }
    }
}

impl Core {
    /// The journal's entries, in the order they were written; none when there is no
    /// journal yet.
    pub(super) fn read_journal(&self) -> Result<Vec<CatalogEntry>, ServeError> {
        let catalog = self.data_dir.join(JOURNAL_FILE);
        let text = match std::fs::read_to_string(&catalog) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error.into()),
        };
        let mut entries = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: CatalogEntry = serde_json::from_str(line)
                .map_err(|e| internal(format!("{} is unreadable: {e}", catalog.display())))?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Appends `entry` to the journal and syncs it; nothing while replaying.
    pub(super) fn remember(&mut self, entry: CatalogEntry) -> Result<(), ServeError> {
        if self.replaying {
            return Ok(());
        }
        let path = self.data_dir.join(JOURNAL_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut line = serde_json::to_string(&entry).map_err(internal)?;
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        self.journal_entries += 1;
        Ok(())
    }
}
