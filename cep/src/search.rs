//! Finding the preferred match that starts at a row.
//!
//! A depth-first search over the program's choices, in preference order, with an explicit
//! stack (matches may span many rows). An iteration beyond a quantifier's minimum must take a
//! row, so an empty iteration cannot repeat forever; when the
//! conditions do not depend on the match so far, it remembers the rows at which a variable
//! step has already failed, and the states (instruction, row, exclusion, loops entered at the
//! row) from which every way on has been tried, so no state is explored twice: the search is
//! then bounded by instructions × rows × those loop sets, not exponential in the alternatives.
//! (It starts noting them after its first thousand steps: shorter searches gain nothing.)
//! (A state explored while the answer waited for more rows is skipped too: the search's
//! answer is then "need more" whatever it finds there.)
//!
//! When conditions read the match so far (`LAST(A.price)`, `SUM(A.x)`), states cannot be
//! shared and the search may branch exponentially; it is then abandoned after
//! [`MAX_SEARCH_STEPS`] steps from one row ([`Found::Abandoned`]): no match starts there,
//! and the operator reports the row on the query's error output. The same rows always take
//! the same steps, so results stay deterministic.

use std::collections::HashSet;

use sluice_engine::limits::MAX_SEARCH_STEPS;

use crate::program::{Inst, Program};

/// A row bound to a variable in a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub row: usize,
    pub variable: usize,
    /// Inside `{- -}`: left out of `ALL ROWS PER MATCH` output.
    pub excluded: bool,
}

/// The rows a search runs over, numbered from 0 in partition order (row 0 is the partition's
/// first row, where `^` matches).
pub trait Rows {
    /// How many rows there are now.
    fn available(&self) -> usize;
    /// Whether no more rows will come.
    fn complete(&self) -> bool;
    /// Whether `row` satisfies `variable` after the rows bound so far (`path`); `None` when
    /// that depends on rows that have not come yet.
    fn holds(&mut self, variable: usize, row: usize, path: &[Binding]) -> Option<bool>;
    /// Whether [`Rows::holds`] ignores `path` (conditions independent of the match so far).
    fn context_free(&self) -> bool;
    /// The row's event time.
    fn time(&self, row: usize) -> i64;
    /// No row still to come is earlier than this (the watermark).
    fn future_time(&self) -> i64;
}

/// What a search at a row found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The preferred match: its rows, in order (empty for an empty match).
    Match(Vec<Binding>),
    /// No match starts at the row. `timed_out` holds the preferred partial match that the
    /// `WITHIN` bound cut off, if any.
    NoMatch { timed_out: Option<Vec<Binding>> },
    /// Rows still to come may decide the search.
    NeedMore,
    /// The search took more than [`MAX_SEARCH_STEPS`] steps: no match starts at the row,
    /// and the row is reported as one the query could not compute.
    Abandoned,
}

/// Steps a search takes before it starts noting the states it has explored: short searches,
/// the usual ones, cannot repeat many states and would only pay for the notes.
const MEMOIZE_AFTER_STEPS: u64 = 1_000;

struct Choice {
    pc: usize,
    row: usize,
    path: usize,
    visited: usize,
    /// How many `{- -}` the search is inside.
    exclusion: u32,
}

/// What the search backtracks to: the other way of a choice, or the note that every way on
/// from a state has been tried (when the search backtracks past it without a match).
enum Backtrack {
    Choice(Choice),
    /// Every way on from the split at `pc` and `row` has been tried; `context` is how many
    /// choices were on the path when the search reached it.
    Explored {
        pc: usize,
        row: usize,
        exclusion: u32,
        context: usize,
    },
}

/// Where a search is, as far as the rest of it can tell when conditions are context-free:
/// the instruction, the row, how many exclusions it is inside, and the loops entered at this row
/// (their `Progress` checks still need a row to be taken).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    pc: usize,
    row: usize,
    exclusion: u32,
    entered_here: Vec<usize>,
}

impl State {
    /// The state at the split `pc` and `row`, with `visited` the choices on the path there.
    fn of(pc: usize, row: usize, exclusion: u32, visited: &[(usize, usize)]) -> State {
        State {
            pc,
            row,
            exclusion,
            entered_here: visited
                .iter()
                .filter(|(_, at)| *at == row)
                .map(|(at_pc, _)| *at_pc)
                .collect(),
        }
    }
}

impl Program {
    /// The preferred match starting at row `start`; a match may span at most `within`
    /// milliseconds of event time.
    pub fn find(&self, rows: &mut impl Rows, start: usize, within: Option<i64>) -> Found {
        self.find_counting(rows, start, within).0
    }

    /// [`Program::find`], and how many instructions the search stepped through.
    fn find_counting(
        &self,
        rows: &mut impl Rows,
        start: usize,
        within: Option<i64>,
    ) -> (Found, u64) {
        let context_free = rows.context_free();
        let start_time = within.map(|_| rows.time(start.min(rows.available().saturating_sub(1))));
        // Whether rows still to come could extend a match from `start`.
        let open_ended = |rows: &dyn RowsInfo| {
            !rows.complete()
                && match (within, start_time) {
                    (Some(bound), Some(first)) => rows.future_time().saturating_sub(first) <= bound,
                    _ => true,
                }
        };
        let mut stack: Vec<Backtrack> = Vec::new();
        // Context-free: states every way on from which has been tried, and their
        // instructions and rows, looked up first (the state takes a little making).
        let mut explored: HashSet<State> = HashSet::new();
        let mut explored_at: HashSet<(usize, usize)> = HashSet::new();
        let mut path: Vec<Binding> = Vec::new();
        // The choices on the current path: (pc, row).
        let mut visited: Vec<(usize, usize)> = Vec::new();
        let mut dead: HashSet<(usize, usize)> = HashSet::new();
        let mut need_more = false;
        let mut timed_out: Option<Vec<Binding>> = None;
        let (mut pc, mut row, mut exclusion) = (0, start, 0u32);
        let mut steps: u64 = 0;
        loop {
            steps += 1;
            if !context_free && steps > MAX_SEARCH_STEPS {
                // No match starts here (see the module documentation).
                return (Found::Abandoned, steps);
            }
            let advanced = match self.insts[pc] {
                Inst::Row(variable) => {
                    if context_free && dead.contains(&(pc, row)) {
                        false
                    } else if row >= rows.available() {
                        if open_ended(rows) {
                            need_more = true;
                        } else if within.is_some() && !rows.complete() && !path.is_empty() {
                            timed_out.get_or_insert_with(|| path.clone());
                        }
                        false
                    } else if let (Some(bound), Some(first)) = (within, start_time)
                        && rows.time(row).saturating_sub(first) > bound
                    {
                        if !path.is_empty() {
                            timed_out.get_or_insert_with(|| path.clone());
                        }
                        false
                    } else {
                        match rows.holds(variable, row, &path) {
                            Some(true) => {
                                path.push(Binding {
                                    row,
                                    variable,
                                    excluded: exclusion > 0,
                                });
                                row += 1;
                                pc += 1;
                                true
                            }
                            Some(false) => {
                                if context_free {
                                    dead.insert((pc, row));
                                }
                                false
                            }
                            None => {
                                need_more = true;
                                false
                            }
                        }
                    }
                }
                Inst::Split(first, second) => {
                    let memoize = context_free && steps > MEMOIZE_AFTER_STEPS;
                    let seen = memoize
                        && explored_at.contains(&(pc, row))
                        && explored.contains(&State::of(pc, row, exclusion, &visited));
                    if seen {
                        false
                    } else {
                        if memoize {
                            stack.push(Backtrack::Explored {
                                pc,
                                row,
                                exclusion,
                                context: visited.len(),
                            });
                        }
                        visited.push((pc, row));
                        stack.push(Backtrack::Choice(Choice {
                            pc: second,
                            row,
                            path: path.len(),
                            visited: visited.len(),
                            exclusion,
                        }));
                        pc = first;
                        true
                    }
                }
                Inst::Jump(target) => {
                    pc = target;
                    true
                }
                Inst::Progress(split) => {
                    let entered = visited.iter().rev().find(|(at_pc, _)| *at_pc == split);
                    pc += 1;
                    entered.is_none_or(|(_, at)| *at < row)
                }
                Inst::Start => {
                    let at_start = row == 0;
                    pc += 1;
                    at_start
                }
                Inst::End => {
                    if row < rows.available() {
                        false
                    } else if rows.complete() {
                        pc += 1;
                        true
                    } else {
                        need_more = true;
                        false
                    }
                }
                Inst::ExcludeStart => {
                    exclusion += 1;
                    pc += 1;
                    true
                }
                Inst::ExcludeEnd => {
                    exclusion = exclusion.saturating_sub(1);
                    pc += 1;
                    true
                }
                Inst::Match => {
                    if need_more {
                        return (Found::NeedMore, steps);
                    }
                    return (Found::Match(path), steps);
                }
            };
            if advanced {
                continue;
            }
            let choice = loop {
                match stack.pop() {
                    Some(Backtrack::Choice(choice)) => break Some(choice),
                    Some(Backtrack::Explored {
                        pc,
                        row,
                        exclusion,
                        context,
                    }) => {
                        explored_at.insert((pc, row));
                        explored.insert(State::of(
                            pc,
                            row,
                            exclusion,
                            &visited[..context.min(visited.len())],
                        ));
                    }
                    None => break None,
                }
            };
            let Some(choice) = choice else {
                if need_more {
                    return (Found::NeedMore, steps);
                }
                return (Found::NoMatch { timed_out }, steps);
            };
            pc = choice.pc;
            row = choice.row;
            exclusion = choice.exclusion;
            path.truncate(choice.path);
            visited.truncate(choice.visited);
        }
    }
}

/// The parts of [`Rows`] the search's closures read.
trait RowsInfo {
    fn complete(&self) -> bool;
    fn future_time(&self) -> i64;
}

impl<R: Rows> RowsInfo for R {
    fn complete(&self) -> bool {
        Rows::complete(self)
    }

    fn future_time(&self) -> i64 {
        Rows::future_time(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Result, parse_pattern};

    /// Rows given as letters: a row satisfies variable `v` if its letter is `v`'s first
    /// letter; times are the row numbers.
    struct Letters {
        letters: Vec<char>,
        variables: Vec<char>,
        complete: bool,
    }

    impl Rows for Letters {
        fn available(&self) -> usize {
            self.letters.len()
        }
        fn complete(&self) -> bool {
            self.complete
        }
        fn holds(&mut self, variable: usize, row: usize, _path: &[Binding]) -> Option<bool> {
            Some(self.letters[row] == self.variables[variable])
        }
        fn context_free(&self) -> bool {
            true
        }
        fn time(&self, row: usize) -> i64 {
            row as i64
        }
        fn future_time(&self) -> i64 {
            self.letters.len() as i64
        }
    }

    fn find(pattern: &str, input: &str, complete: bool, start: usize) -> Result<String> {
        let program = Program::compile(&parse_pattern(pattern)?)?;
        let mut rows = Letters {
            letters: input.chars().collect(),
            variables: program
                .variables()
                .iter()
                .map(|v| v.chars().next().map_or(' ', |c| c.to_ascii_lowercase()))
                .collect(),
            complete,
        };
        Ok(match program.find(&mut rows, start, None) {
            Found::Match(path) => path
                .iter()
                .map(|b| format!("{}{}", rows.letters[b.row], b.row))
                .collect::<Vec<_>>()
                .join(" "),
            Found::NoMatch { .. } => "none".into(),
            Found::NeedMore => "more".into(),
            Found::Abandoned => "abandoned".into(),
        })
    }

    #[test]
    fn greedy_and_reluctant_quantifiers() -> Result<()> {
        assert_eq!(find("a b+ c", "abbbc", true, 0)?, "a0 b1 b2 b3 c4");
        assert_eq!(find("a b* ", "abbb", true, 0)?, "a0 b1 b2 b3");
        assert_eq!(find("a b*?", "abbb", true, 0)?, "a0");
        assert_eq!(find("a b{1,2}", "abbb", true, 0)?, "a0 b1 b2");
        assert_eq!(find("a b{1,2}?", "abbb", true, 0)?, "a0 b1");
        assert_eq!(find("a | a b", "ab", true, 0)?, "a0");
        assert_eq!(find("a b | a", "ab", true, 0)?, "a0 b1");
        assert_eq!(find("(a | b)* c", "xabc", true, 1)?, "a1 b2 c3");
        Ok(())
    }

    #[test]
    fn waits_for_rows_that_could_change_the_answer() -> Result<()> {
        // b+ could take more b's.
        assert_eq!(find("a b+", "abb", false, 0)?, "more");
        assert_eq!(find("a b+", "abb", true, 0)?, "a0 b1 b2");
        assert_eq!(find("a b+", "abbc", false, 0)?, "a0 b1 b2");
        // A reluctant quantifier is decided at once.
        assert_eq!(find("a b+?", "ab", false, 0)?, "a0 b1");
        assert_eq!(find("a $", "a", false, 0)?, "more");
        assert_eq!(find("a c", "ab", false, 0)?, "none");
        Ok(())
    }

    #[test]
    fn alternatives_that_reach_the_same_state_are_explored_once() -> Result<()> {
        let steps = |pattern: &str, letters: String, variables: Vec<char>| -> Result<u64> {
            let program = Program::compile(&parse_pattern(pattern)?)?;
            let mut rows = Letters {
                letters: letters.chars().collect(),
                variables,
                complete: true,
            };
            let (found, steps) = program.find_counting(&mut rows, 0, None);
            assert!(matches!(found, Found::NoMatch { timed_out: None }));
            Ok(steps)
        };
        // 2^24 ways to bind the a's, none followed by c: each state is stepped through once.
        let alternatives = format!("{} c", "(a | a)".repeat(24));
        let stepped = steps(&alternatives, "a".repeat(30), vec!['a', 'c'])?;
        assert!(stepped <= MEMOIZE_AFTER_STEPS + 24 * 8, "{stepped} steps");
        // Reluctant quantifiers with no way to finish: about instructions x rows steps.
        let stepped = steps("a+? b*? c", "a".repeat(1_000), vec!['a', 'b', 'c'])?;
        assert!(
            stepped <= MEMOIZE_AFTER_STEPS + 10 * 1_001,
            "{stepped} steps"
        );
        Ok(())
    }

    /// [`Letters`] whose conditions count as reading the match.
    struct ReadingTheMatch(Letters);

    impl Rows for ReadingTheMatch {
        fn available(&self) -> usize {
            self.0.available()
        }
        fn complete(&self) -> bool {
            Rows::complete(&self.0)
        }
        fn holds(&mut self, variable: usize, row: usize, path: &[Binding]) -> Option<bool> {
            self.0.holds(variable, row, path)
        }
        fn context_free(&self) -> bool {
            false
        }
        fn time(&self, row: usize) -> i64 {
            self.0.time(row)
        }
        fn future_time(&self) -> i64 {
            Rows::future_time(&self.0)
        }
    }

    #[test]
    fn a_search_whose_conditions_read_the_match_is_abandoned_past_its_budget() -> Result<()> {
        let pattern = format!("{} c", "(a | a)".repeat(24));
        let program = Program::compile(&parse_pattern(&pattern)?)?;
        let mut rows = ReadingTheMatch(Letters {
            letters: "a".repeat(30).chars().collect(),
            variables: vec!['a', 'c'],
            complete: true,
        });
        let (found, steps) = program.find_counting(&mut rows, 0, None);
        assert_eq!(found, Found::Abandoned);
        assert_eq!(steps, MAX_SEARCH_STEPS + 1);
        // Within the budget, the same search finds its match.
        let mut rows = ReadingTheMatch(Letters {
            letters: format!("{}c", "a".repeat(24)).chars().collect(),
            variables: vec!['a', 'c'],
            complete: true,
        });
        let (found, _) = program.find_counting(&mut rows, 0, None);
        assert!(matches!(found, Found::Match(path) if path.len() == 25));
        Ok(())
    }

    #[test]
    fn empty_iterations_end() -> Result<()> {
        assert_eq!(find("(a*)* b", "aab", true, 0)?, "a0 a1 b2");
        assert_eq!(find("(a?)+", "", true, 0)?, "");
        assert_eq!(find("^ a", "ba", true, 1)?, "none");
        Ok(())
    }
}
