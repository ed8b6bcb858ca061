//! A pattern compiled to instructions for a backtracking search.
//!
//! `Split(a, b)` tries `a` first and `b` if that fails, which is how preference is encoded:
//! a greedy quantifier splits towards another iteration first, a reluctant one towards
//! leaving, an alternation towards its left alternative. Bounded quantifiers are unrolled;
//! `PERMUTE` becomes the alternation of its orders.

use std::fmt;

use crate::{CepError, Pattern, Result};

/// The most instructions a compiled pattern may have (bounded quantifiers and `PERMUTE`
/// multiply the pattern's size).
const MAX_INSTRUCTIONS: usize = 100_000;
/// The most items `PERMUTE` may list (their orders are all tried).
const MAX_PERMUTED: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inst {
    /// Consume one row that satisfies variable `n`.
    Row(usize),
    /// Try the first target, then the second.
    Split(usize, usize),
    Jump(usize),
    /// `^`: only at the partition's first row.
    Start,
    /// `$`: only after the partition's last row.
    End,
    /// Fails unless a row was consumed since the path last passed the `Split` at the given
    /// instruction: an iteration beyond a quantifier's minimum must take a row.
    Progress(usize),
    /// Rows consumed until the matching `ExcludeEnd` are excluded from the output.
    ExcludeStart,
    ExcludeEnd,
    Match,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) insts: Vec<Inst>,
    /// The pattern's variables; `Inst::Row(n)` names `variables[n]`.
    variables: Vec<String>,
}

impl Program {
    pub fn compile(pattern: &Pattern) -> Result<Self> {
        let mut program = Program {
            insts: Vec::new(),
            variables: pattern.variables(),
        };
        program.emit_pattern(pattern)?;
        program.insts.push(Inst::Match);
        Ok(program)
    }

    /// The pattern's variables, in order of first appearance.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Whether the pattern reads where the partition starts (`^`).
    pub fn anchored_at_start(&self) -> bool {
        self.insts.contains(&Inst::Start)
    }

    /// The variables a match's first row can be bound to, as a bit per variable; `None` when
    /// a match may take no row (the pattern's end, or `$`, is reachable without one).
    pub fn first_variables(&self) -> Option<u64> {
        let mut seen = vec![false; self.insts.len()];
        let mut next = vec![0];
        let mut first = 0u64;
        while let Some(pc) = next.pop() {
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            match self.insts[pc] {
                Inst::Row(variable) if variable < 64 => first |= 1 << variable,
                Inst::Split(a, b) => next.extend([a, b]),
                Inst::Jump(to) => next.push(to),
                Inst::Start | Inst::Progress(_) | Inst::ExcludeStart | Inst::ExcludeEnd => {
                    next.push(pc + 1)
                }
                Inst::Row(_) | Inst::End | Inst::Match => return None,
            }
        }
        Some(first)
    }

    fn push(&mut self, inst: Inst) -> Result<usize> {
        if self.insts.len() >= MAX_INSTRUCTIONS {
            return Err(CepError::Invalid(format!(
                "the pattern compiles to more than {MAX_INSTRUCTIONS} steps: use smaller \
                 bounded quantifiers"
            )));
        }
        self.insts.push(inst);
        Ok(self.insts.len() - 1)
    }

    fn emit_pattern(&mut self, pattern: &Pattern) -> Result<()> {
        match pattern {
            Pattern::Empty => {}
            Pattern::Var(name) => {
                let index = self
                    .variables
                    .iter()
                    .position(|v| v == name)
                    .unwrap_or_default();
                self.push(Inst::Row(index))?;
            }
            Pattern::Start => {
                self.push(Inst::Start)?;
            }
            Pattern::End => {
                self.push(Inst::End)?;
            }
            Pattern::Concat(items) => {
                for item in items {
                    self.emit_pattern(item)?;
                }
            }
            Pattern::Alt(items) => self.emit_alternatives(items)?,
            Pattern::Permute(items) => {
                if items.len() > MAX_PERMUTED {
                    return Err(CepError::Invalid(format!(
                        "PERMUTE lists {} items; at most {MAX_PERMUTED} are allowed",
                        items.len()
                    )));
                }
                let orders: Vec<Pattern> = permutations(items.len())
                    .into_iter()
                    .map(|order| Pattern::Concat(order.iter().map(|i| items[*i].clone()).collect()))
                    .collect();
                self.emit_alternatives(&orders)?;
            }
            Pattern::Exclude(inner) => {
                self.push(Inst::ExcludeStart)?;
                self.emit_pattern(inner)?;
                self.push(Inst::ExcludeEnd)?;
            }
            Pattern::Repeat {
                inner,
                min,
                max,
                greedy,
            } => {
                for _ in 0..*min {
                    self.emit_pattern(inner)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit_pattern(inner)?;
                        self.push(Inst::Progress(split))?;
                        self.push(Inst::Jump(split))?;
                        let exit = self.insts.len();
                        self.insts[split] = ordered(*greedy, split + 1, exit);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            let split = self.push(Inst::Split(0, 0))?;
                            splits.push(split);
                            self.emit_pattern(inner)?;
                            self.push(Inst::Progress(split))?;
                        }
                        let exit = self.insts.len();
                        for split in splits {
                            self.insts[split] = ordered(*greedy, split + 1, exit);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn emit_alternatives(&mut self, items: &[Pattern]) -> Result<()> {
        let mut jumps = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if index + 1 == items.len() {
                self.emit_pattern(item)?;
                break;
            }
            let split = self.push(Inst::Split(0, 0))?;
            self.emit_pattern(item)?;
            jumps.push(self.push(Inst::Jump(0))?);
            self.insts[split] = Inst::Split(split + 1, self.insts.len());
        }
        let end = self.insts.len();
        for jump in jumps {
            self.insts[jump] = Inst::Jump(end);
        }
        Ok(())
    }
}

/// A split preferring `more` when greedy, else `exit`.
fn ordered(greedy: bool, more: usize, exit: usize) -> Inst {
    if greedy {
        Inst::Split(more, exit)
    } else {
        Inst::Split(exit, more)
    }
}

/// Every order of `0..n`, in lexicographic order.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for first in 0..n {
        for rest in permutations(n - 1) {
            let mut order = vec![first];
            order.extend(rest.into_iter().map(|i| if i >= first { i + 1 } else { i }));
            out.push(order);
        }
    }
    out
}

impl fmt::Display for Program {
    /// One instruction per line, as `EXPLAIN` shows a compiled pattern.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, inst) in self.insts.iter().enumerate() {
            match inst {
                Inst::Row(v) => writeln!(f, "{index:>3}: row {}", self.variables[*v])?,
                Inst::Split(a, b) => writeln!(f, "{index:>3}: try {a}, else {b}")?,
                Inst::Jump(t) => writeln!(f, "{index:>3}: jump {t}")?,
                Inst::Progress(split) => {
                    writeln!(f, "{index:>3}: fail unless a row was taken since {split}")?
                }
                Inst::Start => writeln!(f, "{index:>3}: partition start")?,
                Inst::End => writeln!(f, "{index:>3}: partition end")?,
                Inst::ExcludeStart => writeln!(f, "{index:>3}: exclude from output")?,
                Inst::ExcludeEnd => writeln!(f, "{index:>3}: include in output")?,
                Inst::Match => writeln!(f, "{index:>3}: match")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_pattern;

    fn first(pattern: &str) -> Result<Option<u64>> {
        Ok(Program::compile(&parse_pattern(pattern)?)?.first_variables())
    }

    #[test]
    fn first_variables_are_those_a_match_can_begin_with() -> Result<()> {
        // Variables are numbered in order of appearance.
        assert_eq!(first("A B+ C")?, Some(0b001));
        assert_eq!(first("A? B")?, Some(0b011));
        assert_eq!(first("A | B C")?, Some(0b011));
        assert_eq!(first("^ {- A -} B")?, Some(0b001));
        assert_eq!(first("PERMUTE(A, B) C")?, Some(0b011));
        assert_eq!(first("A*")?, None);
        assert_eq!(first("A?? B*")?, None);
        assert_eq!(first("$")?, None);
        Ok(())
    }

    #[test]
    fn permutations_come_in_listing_order() {
        assert_eq!(
            permutations(3),
            vec![
                vec![0, 1, 2],
                vec![0, 2, 1],
                vec![1, 0, 2],
                vec![1, 2, 0],
                vec![2, 0, 1],
                vec![2, 1, 0]
            ]
        );
    }

    #[test]
    fn compiles_preference_into_splits() -> Result<()> {
        let program = Program::compile(&parse_pattern("A B+? | C")?)?;
        assert_eq!(
            program.to_string(),
            "  0: try 1, else 8\n  1: row A\n  2: row B\n  3: try 7, else 4\n  4: row B\n  \
             5: fail unless a row was taken since 3\n  6: jump 3\n  7: jump 9\n  8: row C\n  \
             9: match\n"
        );
        Ok(())
    }
}
