//! Finding the preferred match that starts at a row.
//!
//! A depth-first search over the program's choices, in preference order, with an explicit
//! stack (matches may span many rows). An iteration beyond a quantifier's minimum must take a
//! row, so an empty iteration cannot repeat forever; when the
//! conditions do not depend on the match so far, it remembers the rows at which a variable
//! step has already failed, so no state is explored twice.

use std::collections::HashSet;

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
}

struct Choice {
    pc: usize,
    row: usize,
    path: usize,
    visited: usize,
    excluded: bool,
}

impl Program {
    /// The preferred match starting at row `start`; a match may span at most `within`
    /// milliseconds of event time.
    pub fn find(&self, rows: &mut impl Rows, start: usize, within: Option<i64>) -> Found {
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
        let mut stack: Vec<Choice> = Vec::new();
        let mut path: Vec<Binding> = Vec::new();
        // The choices on the current path: (pc, row).
        let mut visited: Vec<(usize, usize)> = Vec::new();
        let mut dead: HashSet<(usize, usize)> = HashSet::new();
        let mut need_more = false;
        let mut timed_out: Option<Vec<Binding>> = None;
        let (mut pc, mut row, mut excluded) = (0, start, false);
        loop {
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
                                    excluded,
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
                    visited.push((pc, row));
                    stack.push(Choice {
                        pc: second,
                        row,
                        path: path.len(),
                        visited: visited.len(),
                        excluded,
                    });
                    pc = first;
                    true
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
                    excluded = true;
                    pc += 1;
                    true
                }
                Inst::ExcludeEnd => {
                    excluded = false;
                    pc += 1;
                    true
                }
                Inst::Match => {
                    if need_more {
                        return Found::NeedMore;
                    }
                    return Found::Match(path);
                }
            };
            if advanced {
                continue;
            }
            let Some(choice) = stack.pop() else {
                if need_more {
                    return Found::NeedMore;
                }
                return Found::NoMatch { timed_out };
            };
            pc = choice.pc;
            row = choice.row;
            excluded = choice.excluded;
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
                .map(|v| v.chars().next().unwrap_or(' '))
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
    fn empty_iterations_end() -> Result<()> {
        assert_eq!(find("(a*)* b", "aab", true, 0)?, "a0 a1 b2");
        assert_eq!(find("(a?)+", "", true, 0)?, "");
        assert_eq!(find("^ a", "ba", true, 1)?, "none");
        Ok(())
    }
}
