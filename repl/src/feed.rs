//! Feeding input files into their streams, interleaved by event time.
//!
//! Each file's rows keep their file order. Across files, the next rows fed are always those of
//! the file whose next row has the earliest event time (the earlier `--input` on ties), taken
//! as a run for as long as they stay earliest; so several files replay the way their streams
//! would have arrived live. Files of streams without event time are fed first, whole. After
//! each run the stream's watermark follows from the rows fed so far.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::input::{self, RowError, RowReader};
use sluice_engine::time::millis;
use sluice_engine::{Changes, StreamDef};

use crate::CliError;

/// One input: a `--input NAME=PATH`, or a Kafka table's topic.
pub struct InputFile {
    pub stream: Arc<StreamDef>,
    pub source: InputSource,
}

/// Where an input's rows come from.
pub enum InputSource {
    File(PathBuf),
    /// Rows read by `reader`, named `name` in messages.
    Reader {
        name: String,
        reader: Box<dyn RowReader>,
    },
}

/// A run of rows to feed into a stream.
pub struct Run {
    pub stream: String,
    pub rows: Changes,
}

/// What the caller hears about as input is read.
pub enum Event {
    Rows(Run),
    Rejected {
        stream: String,
        path: String,
        error: RowError,
    },
}

struct Cursor {
    stream: Arc<StreamDef>,
    path: String,
    reader: Box<dyn RowReader>,
    batch: Option<Changes>,
    /// Event time of each row of `batch` (the same for all rows without event time).
    keys: Vec<i64>,
    position: usize,
}

/// Reads the inputs and yields their rows in replay order.
pub struct Feed {
    cursors: Vec<Cursor>,
    pending: Vec<Event>,
}

impl Feed {
    pub fn open(inputs: Vec<InputFile>) -> Result<Self, CliError> {
        let mut cursors = Vec::new();
        for input in inputs {
            let (path, reader) = match input.source {
                InputSource::File(file) => {
                    let path = file.display().to_string();
                    let reader =
                        input::open(&file, &input.stream).map_err(|source| CliError::Input {
                            path: path.clone(),
                            source,
                        })?;
                    (path, reader)
                }
                InputSource::Reader { name, reader } => (name, reader),
            };
            cursors.push(Cursor {
                stream: input.stream,
                path,
                reader,
                batch: None,
                keys: Vec::new(),
                position: 0,
            });
        }
        Ok(Feed {
            cursors,
            pending: Vec::new(),
        })
    }

    /// The next run of rows or rejected row, or `None` when every file is read.
    pub fn next_event(&mut self) -> Result<Option<Event>, CliError> {
        loop {
            if let Some(event) = self.pending.pop() {
                return Ok(Some(event));
            }
            for index in 0..self.cursors.len() {
                self.fill(index)?;
            }
            if !self.pending.is_empty() {
                self.pending.reverse();
                continue;
            }
            let heads: Vec<(i64, usize)> = self
                .cursors
                .iter()
                .enumerate()
                .filter(|(_, c)| c.batch.is_some())
                .map(|(index, c)| (c.keys[c.position], index))
                .collect();
            let Some(&(_, first)) = heads.iter().min() else {
                return Ok(None);
            };
            let bound = heads.iter().filter(|(_, i)| *i != first).min().copied();
            let cursor = &mut self.cursors[first];
            let start = cursor.position;
            let mut end = start + 1;
            while end < cursor.keys.len() && bound.is_none_or(|b| (cursor.keys[end], first) < b) {
                end += 1;
            }
            cursor.position = end;
            let Some(batch) = &cursor.batch else {
                continue;
            };
            let rows = batch.slice(start, end - start);
            if end == cursor.keys.len() {
                cursor.batch = None;
            }
            return Ok(Some(Event::Rows(Run {
                stream: cursor.stream.name.clone(),
                rows,
            })));
        }
    }

    /// Loads the next non-empty batch of cursor `index` if it has none, queueing rejections.
    fn fill(&mut self, index: usize) -> Result<(), CliError> {
        let cursor = &mut self.cursors[index];
        while cursor.batch.is_none() {
            let decoded = cursor
                .reader
                .next_batch()
                .map_err(|source| CliError::Input {
                    path: cursor.path.clone(),
                    source,
                })?;
            let Some(decoded) = decoded else {
                return Ok(());
            };
            for error in decoded.errors {
                self.pending.push(Event::Rejected {
                    stream: cursor.stream.name.clone(),
                    path: cursor.path.clone(),
                    error,
                });
            }
            if decoded.rows.num_rows() == 0 {
                continue;
            }
            cursor.keys = event_times(&cursor.stream, &decoded.rows.rows).map_err(|source| {
                CliError::Input {
                    path: cursor.path.clone(),
                    source,
                }
            })?;
            cursor.position = 0;
            cursor.batch = Some(decoded.rows);
        }
        Ok(())
    }
}

/// Each row's event time in milliseconds; `i64::MIN` where there is none.
fn event_times(
    stream: &StreamDef,
    rows: &RecordBatch,
) -> Result<Vec<i64>, sluice_engine::EngineError> {
    let Some(time) = &stream.event_time else {
        return Ok(vec![i64::MIN; rows.num_rows()]);
    };
    let complete = stream.complete(rows)?;
    let millis = millis(complete.column(time.column))?;
    Ok((0..millis.len())
        .map(|row| {
            if millis.is_valid(row) {
                millis.value(row)
            } else {
                i64::MIN
            }
        })
        .collect())
}
