//! The firings of a batch ([`Matches`]: in order of row, then of alert) and the k-way
//! merge that makes them from each shape's: a row's firings found through each shape, each
//! in order of alert, merged into one list in which an alert found through two shapes
//! appears once.

/// An alert's number in the index.
pub type AlertId = u32;

/// The firings of a batch: row `rows[i]` made alert `alerts[i]` true; in order of row,
/// then of alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    pub rows: Vec<u32>,
    pub alerts: Vec<AlertId>,
}

impl Matches {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The firings as (row, alert).
    pub fn pairs(&self) -> impl Iterator<Item = (usize, AlertId)> + '_ {
        self.rows
            .iter()
            .zip(&self.alerts)
            .map(|(&row, &id)| (row as usize, id))
    }
}

/// One shape's firings with any on a batch: where each row's are, and the alerts.
#[derive(Clone, Copy)]
struct ShapeFirings<'a> {
    spans: &'a [(usize, usize)],
    alerts: &'a [AlertId],
}

/// The firings, by row then by alert, each once: each row's merged over the shapes.
/// `by_row` holds per shape the alerts fired, each row's together in order of alert, and
/// `spans` per shape where each row's are; `counts` by alert the rows it has fired on.
pub(super) fn merge_over_shapes(
    spans: &[Vec<(usize, usize)>],
    by_row: &[Vec<AlertId>],
    rows: usize,
    counts: &mut [u64],
) -> Matches {
    let shapes: Vec<ShapeFirings> = spans
        .iter()
        .zip(by_row)
        .filter(|(_, sorted)| !sorted.is_empty())
        .map(|(spans, sorted)| ShapeFirings {
            spans: spans.as_slice(),
            alerts: sorted.as_slice(),
        })
        .collect();
    let total = shapes.iter().map(|shape| shape.alerts.len()).sum();
    let mut fired = Matches {
        rows: Vec::with_capacity(total),
        alerts: Vec::with_capacity(total),
    };
    fn of_row<'a>(shape: &ShapeFirings<'a>, row: usize) -> &'a [AlertId] {
        let (start, end) = shape.spans.get(row).copied().unwrap_or_default();
        shape.alerts.get(start..end).unwrap_or_default()
    }
    let mut heads: Vec<&[AlertId]> = Vec::with_capacity(shapes.len());
    for row in 0..rows {
        let before = fired.alerts.len();
        match shapes.as_slice() {
            [only] => fired.alerts.extend_from_slice(of_row(only, row)),
            _ => {
                heads.clear();
                heads.extend(
                    shapes
                        .iter()
                        .map(|shape| of_row(shape, row))
                        .filter(|slice| !slice.is_empty()),
                );
                merge_by_alert(&mut heads, &mut fired.alerts, counts);
            }
        }
        let added = fired.alerts.len() - before;
        fired.rows.resize(fired.rows.len() + added, row as u32);
    }
    fired
}

/// Adds the alerts of one row's firings in `heads` (each in order of alert) to `fired`, in
/// order of alert; an alert found through keys of two shapes is added once, and counted
/// once in `counts`.
fn merge_by_alert(heads: &mut Vec<&[AlertId]>, fired: &mut Vec<AlertId>, counts: &mut [u64]) {
    let row_start = fired.len();
    while let [first, rest @ ..] = heads.as_slice() {
        let mut next = first;
        let mut at = 0;
        for (other, head) in rest.iter().enumerate() {
            if head.first() < next.first() {
                next = head;
                at = other + 1;
            }
        }
        let Some((&id, left)) = next.split_first() else {
            heads.swap_remove(at);
            continue;
        };
        // The run of this head's alerts below every other head's first goes at once.
        let bound = heads
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != at)
            .filter_map(|(_, head)| head.first().copied())
            .min()
            .unwrap_or(AlertId::MAX);
        if fired.len() > row_start && fired.last() == Some(&id) {
            if let Some(count) = counts.get_mut(id as usize) {
                *count = count.saturating_sub(1);
            }
        } else {
            fired.push(id);
        }
        // Runs are short when shapes interleave: a scan beats bisection, and is no slower
        // than the copy for a long one.
        let length = left.iter().take_while(|&&other| other < bound).count();
        let (run, after) = left.split_at(length);
        fired.extend_from_slice(run);
        heads[at] = after;
        if heads[at].is_empty() {
            heads.swap_remove(at);
        }
    }
}
