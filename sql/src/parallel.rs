//! Work split across the machine's cores, for the few large jobs a session gets (a script
//! of thousands of statements, thousands of alert conditions).

use sluice_engine::limits::PLANNING_STACK_BYTES;

/// How many cores there are to work on.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `work` done on each of `pieces`, one thread per piece (with a stack for planning, see
/// [`PLANNING_STACK_BYTES`]), in the pieces' order; `None` when a thread failed or could
/// not start.
pub(crate) fn on_each<T: Sync, R: Send>(
    pieces: &[T],
    work: impl Fn(&T) -> R + Sync,
) -> Option<Vec<R>> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = pieces
            .iter()
            .map(|piece| {
                let work = &work;
                std::thread::Builder::new()
                    .stack_size(PLANNING_STACK_BYTES)
                    .spawn_scoped(scope, move || work(piece))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.ok()?.join().ok())
            .collect()
    })
}
