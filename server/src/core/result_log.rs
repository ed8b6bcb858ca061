//! A standing query as the server keeps it: the engine's query, its result log under
//! `results/`, and where appending results resumes after a restart (results of inputs the
//! log already holds are not appended again while the inputs are replayed).

use sluice_engine::QueryId;
use sluice_engine::time::Millis;
use sluice_log::StreamLog;

pub(super) struct Query {
    pub(super) id: QueryId,
    /// The result log's directory under `results/`.
    pub(super) dir: String,
    pub(super) log: StreamLog,
    /// What the result log held when the server started: results of earlier inputs are
    /// not appended again while the inputs are replayed.
    pub(super) logged: Resume,
}

/// The last input stamp a result log holds results of, and how many results of it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Resume {
    pub(super) stamp: Millis,
    pub(super) count: u64,
}

impl Resume {
    /// Where appending to result log `log` resumes: after its last stamp's results.
    pub(super) fn of(log: &StreamLog) -> Resume {
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
