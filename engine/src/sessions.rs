//! What the `SESSION` window operators share: open sessions by key and start, finding those
//! a row's proto-session overlaps or touches, and taking those the watermark has ended.

use std::collections::{BTreeMap, HashMap};

use crate::time::Millis;

/// A session's end (its last row's time plus the gap).
pub(crate) trait Ends {
    fn end(&self) -> Millis;
}

/// Open sessions by key, then by start.
pub(crate) type OpenSessions<S> = HashMap<Box<[u8]>, BTreeMap<Millis, S>>;

/// The starts of the sessions `[start, end)` overlaps or touches (as in Flink, `[a, b)` and
/// `[b, c)` merge).
pub(crate) fn touching<S: Ends>(
    sessions: &BTreeMap<Millis, S>,
    start: Millis,
    end: Millis,
) -> Vec<Millis> {
    sessions
        .range(..=end)
        .filter(|(_, session)| session.end() >= start)
        .map(|(session_start, _)| *session_start)
        .collect()
}

/// Takes the sessions the watermark has reached (their end at or before it), as `(key,
/// start, session)` ordered by end, then start, then key; drops keys left with none.
pub(crate) fn take_ended<S: Ends>(
    open: &mut OpenSessions<S>,
    watermark: Millis,
) -> Vec<(Box<[u8]>, Millis, S)> {
    let mut ended = Vec::new();
    for (key, sessions) in open.iter_mut() {
        let starts: Vec<Millis> = sessions
            .iter()
            .filter(|(_, session)| session.end() <= watermark)
            .map(|(start, _)| *start)
            .collect();
        for start in starts {
            if let Some(session) = sessions.remove(&start) {
                ended.push((key.clone(), start, session));
            }
        }
    }
    open.retain(|_, sessions| !sessions.is_empty());
    ended.sort_by(|a, b| (a.2.end(), a.1, &a.0).cmp(&(b.2.end(), b.1, &b.0)));
    ended
}
