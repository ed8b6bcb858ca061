//! A standing query as the server keeps it: the engine's query and its three outputs, each
//! a log under `results/` — its results, its late rows and the rows it could not compute —
//! with where appending to each resumes after a restart (outputs of inputs the log already
//! holds are not appended again while the inputs are replayed).
//!
//! Subscribers name an output after the query: `NAME` is its results, `NAME.late` its late
//! rows, `NAME.errors` its failed rows. A registered query's name never holds a `.`; an
//! alert query's (`alerts:SOURCE`) may, so a name that is a query's is that query's results.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use sluice_engine::QueryId;
use sluice_engine::time::Millis;
use sluice_log::{LogConfig, StreamLog};

use crate::ServeError;

pub(super) struct Query {
    pub(super) id: QueryId,
    pub(super) results: ResultLog,
    pub(super) late: ResultLog,
    pub(super) errors: ResultLog,
}

/// One of a query's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    Results,
    Late,
    Errors,
}

impl Output {
    /// What follows the query's name in the output's name and in its log's directory.
    fn suffix(self) -> &'static str {
        match self {
            Output::Results => "",
            Output::Late => ".late",
            Output::Errors => ".errors",
        }
    }

    /// The query and the output a subscriber's name for it means.
    pub(super) fn of(name: &str) -> (&str, Output) {
        for output in [Output::Late, Output::Errors] {
            if let Some(query) = name.strip_suffix(output.suffix()) {
                return (query, output);
            }
        }
        (name, Output::Results)
    }
}

impl Query {
    /// Query `id` with its outputs' logs in `results` under `dir`, `dir.late` and
    /// `dir.errors`, opened or created.
    pub(super) fn open(
        id: QueryId,
        results: &Path,
        dir: &str,
        config: LogConfig,
    ) -> Result<Query, ServeError> {
        let open = |output: Output| ResultLog::open(results, dir, output, config);
        Ok(Query {
            id,
            results: open(Output::Results)?,
            late: open(Output::Late)?,
            errors: open(Output::Errors)?,
        })
    }

    pub(super) fn output(&self, output: Output) -> &ResultLog {
        match output {
            Output::Results => &self.results,
            Output::Late => &self.late,
            Output::Errors => &self.errors,
        }
    }

    pub(super) fn output_mut(&mut self, output: Output) -> &mut ResultLog {
        match output {
            Output::Results => &mut self.results,
            Output::Late => &mut self.late,
            Output::Errors => &mut self.errors,
        }
    }

    pub(super) fn outputs_mut(&mut self) -> [&mut ResultLog; 3] {
        [&mut self.results, &mut self.late, &mut self.errors]
    }

    /// The last stamp any output holds.
    pub(super) fn last_stamp(&self) -> Millis {
        [&self.results, &self.late, &self.errors]
            .iter()
            .map(|output| output.logged.stamp)
            .max()
            .unwrap_or_default()
    }

    /// Deletes the outputs' logs.
    pub(super) fn remove(self, results: &Path) -> Result<(), ServeError> {
        for output in [self.results, self.late, self.errors] {
            let dir = results.join(&output.dir);
            drop(output.log);
            match std::fs::remove_dir_all(dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error.into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// One output's log.
pub(super) struct ResultLog {
    /// The log's directory under `results/`.
    dir: String,
    pub(super) log: StreamLog,
    /// What the log held when the server started.
    logged: Resume,
}

impl ResultLog {
    fn open(
        results: &Path,
        dir: &str,
        output: Output,
        config: LogConfig,
    ) -> Result<ResultLog, ServeError> {
        let dir = format!("{dir}{}", output.suffix());
        let (log, _) = StreamLog::open(&results.join(&dir), 1, None, config)?;
        let logged = Resume::of(&log);
        Ok(ResultLog { dir, log, logged })
    }

    /// Appends `rows`, output of the publish stamped `stamp`, unless the log held them
    /// already when the server started.
    pub(super) fn append(
        &mut self,
        mut rows: RecordBatch,
        stamp: Millis,
    ) -> Result<(), ServeError> {
        if stamp < self.logged.stamp {
            return Ok(());
        }
        if stamp == self.logged.stamp {
            let skipped = self.logged.count.min(rows.num_rows() as u64) as usize;
            self.logged.count -= skipped as u64;
            rows = rows.slice(skipped, rows.num_rows() - skipped);
        }
        if rows.num_rows() > 0 {
            self.log.publish(&rows, stamp)?;
        }
        Ok(())
    }

    /// How many rows the log has held.
    pub(super) fn end(&self) -> u64 {
        self.log.partitions().first().map_or(0, |part| part.end())
    }
}

/// The last input stamp a result log holds results of, and how many results of it.
#[derive(Debug, Clone, Copy, Default)]
struct Resume {
    stamp: Millis,
    count: u64,
}

impl Resume {
    /// Where appending to result log `log` resumes: after its last stamp's results.
    fn of(log: &StreamLog) -> Resume {
        log.partitions().first().map_or(Resume::default(), |part| {
            let last = part
                .end()
                .checked_sub(1)
                .and_then(|offset| part.append_time(offset));
            match last {
                None => Resume::default(),
                Some(stamp) => Resume {
                    stamp,
                    count: part.end() - part.offset_at(stamp),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Output;

    #[test]
    fn an_outputs_name_is_its_querys_with_a_suffix() {
        assert_eq!(Output::of("big"), ("big", Output::Results));
        assert_eq!(Output::of("big.late"), ("big", Output::Late));
        assert_eq!(Output::of("big.errors"), ("big", Output::Errors));
        assert_eq!(Output::of("alerts:a.b"), ("alerts:a.b", Output::Results));
    }
}
