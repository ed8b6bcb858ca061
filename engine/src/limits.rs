//! The limits on what sluice accepts, so that nothing it accepts can exhaust the stack,
//! memory or file handles, at definition time or when the catalog is replayed on restart.
//! `docs/limits.md` lists them for users, with why each is where it is.

/// Bytes in a name of a stream, table, view, alert, query or consumer group (PostgreSQL's
/// identifier limit). Names become file names (`sluice_log::file_name`), at most three bytes
/// per byte.
pub const MAX_NAME_BYTES: usize = 63;

/// Partitions of one durable stream: each holds open files.
pub const MAX_PARTITIONS: usize = 256;

/// Windows one row belongs to: `HOP` size over slide, `CUMULATE` size over step.
pub const MAX_WINDOWS_PER_ROW: i64 = 500;

/// Nesting of one statement's expressions, such as a chain of `AND`s or `+`s, and of its
/// queries: planning walks them recursively.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Tokens (words, numbers, operators) in one statement: about 4 to 8 MB of SQL. The
/// parser builds chains such as `1+1+...` without recursion, as deep as they are long, and
/// dropping them recurses: this bounds that.
pub const MAX_STATEMENT_TOKENS: usize = 1_000_000;

/// Views planned on views, counting the statement's own query.
pub const MAX_VIEW_DEPTH: usize = 64;

/// Nesting of a `MATCH_RECOGNIZE` `PATTERN`'s groups and quantifiers.
pub const MAX_PATTERN_DEPTH: usize = 64;

/// Steps a `MATCH_RECOGNIZE` search may take from one row when its conditions read the match
/// so far (searches over context-free conditions share their states and need no budget);
/// past it, no match starts at that row, and the row goes to the error output. At most about
/// a millisecond of work (`docs/limits.md`); a match of a thousand rows takes some 2 000.
pub const MAX_SEARCH_STEPS: u64 = 4_000;

/// The stack of every thread that parses or plans a statement: room for the deepest
/// statement the limits above accept, many times over.
pub const PLANNING_STACK_BYTES: usize = 256 << 20;

/// Runs `work` on a new thread with a stack of [`PLANNING_STACK_BYTES`] and returns its
/// result, or the error of starting the thread; a panic in `work` comes back as a panic here.
pub fn with_planning_stack<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("sluice-plan".into())
            .stack_size(PLANNING_STACK_BYTES)
            .spawn_scoped(scope, work)?;
        match handle.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
