//! The compiled search against an obviously correct reference: a backtracking matcher that
//! follows the pattern's definition directly, trying alternatives in preference order.
//!
//! For thousands of random patterns over the variables `a`, `b`, `c` and random rows (each
//! row a letter, satisfying the variable of that letter), the matches found with `AFTER MATCH
//! SKIP PAST LAST ROW` must be the same rows with the same variables; and fed row by row,
//! where the search may answer "need more", every answer it gives must be the final one.

use sluice_cep::{Binding, Found, Pattern, Program, Rows, parse_pattern};

mod common;

use common::Random;

const LETTERS: [&str; 3] = ["a", "b", "c"];

/// The rows bound so far: (row, variable, whether inside any `{- -}`, however deep).
type Path = Vec<(usize, String, bool)>;

/// What to do after a part of the pattern matched: given the next row and the path.
type Next<'a> = &'a mut dyn FnMut(usize, &mut Path) -> bool;

fn pattern(random: &mut Random, depth: u32) -> Pattern {
    let leaf = depth == 0 || random.below(3) == 0;
    if leaf {
        return match random.below(20) {
            0 => Pattern::Start,
            1 => Pattern::End,
            2 => Pattern::Empty,
            n => Pattern::Var(LETTERS[(n % 3) as usize].to_string()),
        };
    }
    let items = |random: &mut Random| -> Vec<Pattern> {
        (0..2 + random.below(2))
            .map(|_| pattern(random, depth - 1))
            .collect()
    };
    match random.below(9) {
        0 | 1 => Pattern::Concat(items(random)),
        2 => Pattern::Alt(items(random)),
        3 => Pattern::Permute(items(random)),
        4 => Pattern::Exclude(Box::new(pattern(random, depth - 1))),
        _ => {
            let (min, max) = match random.below(5) {
                0 => (0, None),
                1 => (1, None),
                2 => (0, Some(1)),
                3 => (random.below(3) as u32, None),
                _ => {
                    let min = random.below(3) as u32;
                    (min, Some(min + random.below(3) as u32))
                }
            };
            let inner = pattern(random, depth - 1);
            if matches!(inner, Pattern::Start | Pattern::End) {
                return inner;
            }
            Pattern::Repeat {
                inner: Box::new(inner),
                min,
                max,
                greedy: random.below(2) == 0,
            }
        }
    }
}

/// The reference: does `pattern` match `input` from `at`, calling `next` with the row after
/// it and the rows bound so far, trying alternatives in preference order? Rows bound inside
/// an exclusion (`excluded`) are marked so.
fn matches(
    pattern: &Pattern,
    input: &[u8],
    at: usize,
    excluded: bool,
    path: &mut Path,
    next: Next<'_>,
) -> bool {
    match pattern {
        Pattern::Empty => next(at, path),
        Pattern::Var(name) => {
            if at < input.len() && input[at] == name.as_bytes()[0] {
                path.push((at, name.clone(), excluded));
                if next(at + 1, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Pattern::Start => at == 0 && next(at, path),
        Pattern::End => at == input.len() && next(at, path),
        Pattern::Exclude(inner) => matches(inner, input, at, true, path, next),
        Pattern::Concat(items) => match items.split_first() {
            None => next(at, path),
            Some((first, rest)) => {
                let rest = Pattern::Concat(rest.to_vec());
                matches(first, input, at, excluded, path, &mut |after, path| {
                    matches(&rest, input, after, excluded, path, next)
                })
            }
        },
        Pattern::Alt(items) => items
            .iter()
            .any(|item| matches(item, input, at, excluded, path, next)),
        Pattern::Permute(items) => {
            let orders: Vec<Pattern> = permutations(items.len())
                .into_iter()
                .map(|order| Pattern::Concat(order.iter().map(|i| items[*i].clone()).collect()))
                .collect();
            matches(&Pattern::Alt(orders), input, at, excluded, path, next)
        }
        Pattern::Repeat {
            inner,
            min,
            max,
            greedy,
        } => repeat(
            inner,
            (*min, *max, *greedy),
            0,
            input,
            at,
            excluded,
            path,
            next,
        ),
    }
}

/// `inner` repeated (`quantifier`: minimum, maximum, greedy), `done` times so far; an
/// iteration past the minimum must take a row.
#[allow(clippy::too_many_arguments)]
fn repeat(
    inner: &Pattern,
    quantifier: (u32, Option<u32>, bool),
    done: u32,
    input: &[u8],
    at: usize,
    excluded: bool,
    path: &mut Path,
    next: Next<'_>,
) -> bool {
    let (min, max, greedy) = quantifier;
    if done < min {
        return matches(inner, input, at, excluded, path, &mut |after, path| {
            repeat(
                inner,
                quantifier,
                done + 1,
                input,
                after,
                excluded,
                path,
                next,
            )
        });
    }
    if max.is_some_and(|max| done >= max) {
        return next(at, path);
    }
    let again = |path: &mut Path, next: Next<'_>| {
        matches(inner, input, at, excluded, path, &mut |after, path| {
            after != at
                && repeat(
                    inner,
                    quantifier,
                    done + 1,
                    input,
                    after,
                    excluded,
                    path,
                    next,
                )
        })
    };
    // Greedy: another iteration first, then stop; reluctant: the other way round.
    if greedy {
        if again(path, next) {
            return true;
        }
        return next(at, path);
    }
    if next(at, path) {
        return true;
    }
    again(path, next)
}

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

/// The reference's matches over the whole input, skipping past each match.
fn reference_matches(pattern: &Pattern, input: &[u8]) -> Vec<(usize, Path)> {
    let mut found = Vec::new();
    let mut start = 0;
    while start < input.len() {
        let mut matched = None;
        matches(
            pattern,
            input,
            start,
            false,
            &mut Vec::new(),
            &mut |_, path| {
                matched = Some(path.clone());
                true
            },
        );
        match matched {
            Some(path) => {
                start = path.last().map_or(start + 1, |(row, _, _)| row + 1);
                found.push((found.len(), path));
            }
            None => start += 1,
        }
    }
    found
}

struct Letters<'a> {
    input: &'a [u8],
    visible: usize,
    variables: Vec<u8>,
}

impl Rows for Letters<'_> {
    fn available(&self) -> usize {
        self.visible
    }
    fn complete(&self) -> bool {
        self.visible == self.input.len()
    }
    fn holds(&mut self, variable: usize, row: usize, _path: &[Binding]) -> Option<bool> {
        Some(self.input[row] == self.variables[variable])
    }
    fn context_free(&self) -> bool {
        true
    }
    fn time(&self, row: usize) -> i64 {
        row as i64
    }
    fn future_time(&self) -> i64 {
        self.visible as i64
    }
}

/// The compiled search's matches, the rows fed one at a time.
fn streamed_matches(program: &Program, input: &[u8]) -> Vec<(usize, Path)> {
    let variables: Vec<u8> = program
        .variables()
        .iter()
        .map(|v| v.as_bytes()[0])
        .collect();
    let mut found = Vec::new();
    let mut start = 0;
    for visible in 0..=input.len() {
        let mut rows = Letters {
            input,
            visible,
            variables: variables.clone(),
        };
        while start < visible {
            match program.find(&mut rows, start, None) {
                Found::Match(path) => {
                    start = path.last().map_or(start + 1, |b| b.row + 1);
                    let path = path
                        .iter()
                        .map(|b| (b.row, program.variables()[b.variable].clone(), b.excluded))
                        .collect();
                    found.push((found.len(), path));
                }
                Found::NoMatch { .. } => start += 1,
                Found::NeedMore => break,
                Found::Abandoned => panic!("the search from row {start} was abandoned"),
            }
        }
    }
    found
}

/// Exclusions inside exclusions: every row inside any of them, however deep, is excluded,
/// over every input of up to six rows.
#[test]
fn nested_exclusions_exclude_every_row_inside() {
    let patterns = [
        r#"{- "a" {- "b"* -} "c"+ -}"#,
        r#""a" {- {- "b" -} "c" -} "a""#,
        r#"({- "a" -} | {- "b" {- "c" -} "b" -})+"#,
        r#"{- {- {- "a" -} -} "b" -} "c""#,
    ];
    let mut excluded_rows = 0;
    for text in patterns {
        let pattern = parse_pattern(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let program = Program::compile(&pattern).unwrap_or_else(|e| panic!("{text}: {e}"));
        for length in 0..=6u32 {
            for number in 0..3usize.pow(length) {
                let input: Vec<u8> = (0..length)
                    .map(|i| b"abc"[number / 3usize.pow(i) % 3])
                    .collect();
                let expected = reference_matches(&pattern, &input);
                assert_eq!(
                    streamed_matches(&program, &input),
                    expected,
                    "pattern {text}, input {}",
                    String::from_utf8_lossy(&input)
                );
                excluded_rows += expected
                    .iter()
                    .flat_map(|(_, path)| path)
                    .filter(|(_, _, excluded)| *excluded)
                    .count();
            }
        }
    }
    assert!(excluded_rows > 1_000, "only {excluded_rows} excluded rows");
}

#[test]
fn the_search_finds_what_the_reference_finds() {
    let mut compared = 0;
    for seed in 1..=3_000u64 {
        let mut random = Random(seed * 2_654_435_761);
        let pattern = pattern(&mut random, 3);
        let Ok(program) = Program::compile(&pattern) else {
            continue;
        };
        let input: Vec<u8> = (0..random.below(12))
            .map(|_| LETTERS[random.below(3) as usize].as_bytes()[0])
            .collect();
        let expected = reference_matches(&pattern, &input);
        let actual = streamed_matches(&program, &input);
        assert_eq!(
            actual,
            expected,
            "pattern {pattern}, input {}",
            String::from_utf8_lossy(&input)
        );
        compared += expected.len();
    }
    assert!(compared > 1_000, "only {compared} matches compared");
}

/// A row that satisfies none of a pattern's first variables starts no match, whatever
/// follows it: the operator skips the search there.
#[test]
fn no_match_starts_at_a_row_outside_the_first_variables() {
    let mut skipped = 0;
    for seed in 1..=3_000u64 {
        let mut random = Random(seed * 2_654_435_761);
        let pattern = pattern(&mut random, 3);
        let Ok(program) = Program::compile(&pattern) else {
            continue;
        };
        let Some(first) = program.first_variables() else {
            continue;
        };
        let variables: Vec<u8> = program
            .variables()
            .iter()
            .map(|v| v.as_bytes()[0])
            .collect();
        let input: Vec<u8> = (0..1 + random.below(11))
            .map(|_| LETTERS[random.below(3) as usize].as_bytes()[0])
            .collect();
        let mut rows = Letters {
            input: &input,
            visible: input.len(),
            variables: variables.clone(),
        };
        for start in 0..input.len() {
            let class = variables
                .iter()
                .enumerate()
                .filter(|(_, letter)| **letter == input[start])
                .fold(0u64, |class, (variable, _)| class | 1 << variable);
            if class & first == 0 {
                assert_eq!(
                    program.find(&mut rows, start, None),
                    Found::NoMatch { timed_out: None },
                    "pattern {pattern}, input {}, start {start}",
                    String::from_utf8_lossy(&input)
                );
                skipped += 1;
            }
        }
    }
    assert!(skipped > 1_000, "only {skipped} starts skipped");
}
