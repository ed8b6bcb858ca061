//! The distinct tests alerts make, numbered ([`TestTable`]), and their results over the
//! rows of one partition, as bitmaps ([`Masks`]): a test is made the first time an alert of
//! the partition asks for it, and every other alert making it (`kind = 'flat'`,
//! `rooms >= 2`, a city, a budget are shared by thousands) only ANDs its words.

use std::collections::HashMap;

use crate::conjuncts::Conjunct;

/// Every distinct test, by number, in order of first use.
#[derive(Default)]
pub struct TestTable {
    tests: Vec<Conjunct>,
    numbers: HashMap<Conjunct, u32>,
}

impl TestTable {
    /// The number of `test`, numbering it when it is new.
    pub fn number(&mut self, test: Conjunct) -> u32 {
        let next = self.tests.len() as u32;
        *self.numbers.entry(test.clone()).or_insert_with(|| {
            self.tests.push(test);
            next
        })
    }

    pub fn get(&self, number: u32) -> Option<&Conjunct> {
        self.tests.get(number as usize)
    }

    pub fn len(&self) -> usize {
        self.tests.len()
    }
}

/// The results of tests over the current partition, by test number: each is the test's
/// words (bit `i` for the partition's `i`-th position) while its generation is the
/// current one.
#[derive(Default)]
pub struct Masks {
    /// By test number: where its words are.
    made: Vec<MadeMask>,
    words: Vec<u64>,
    /// By number of a test that bounds the column the partition's rows are in order of:
    /// the positions within its bounds.
    ranges: Vec<FoundRange>,
    generation: u32,
    /// The current partition's positions.
    size: usize,
}

/// Where a test's words start in [`Masks`]'s, for the partition of `generation`.
#[derive(Debug, Clone, Copy, Default)]
struct MadeMask {
    generation: u32,
    start: u32,
}

/// The positions within a test's bounds, for the partition of `generation`.
#[derive(Debug, Clone, Default)]
struct FoundRange {
    generation: u32,
    range: std::ops::Range<u32>,
}

impl Masks {
    /// Forgets the results of the partition before; the next ones are over `size`
    /// positions, for tests numbered below `tests`.
    pub fn start(&mut self, size: usize, tests: usize) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Generation 0 is never current: results of 2^32 partitions ago stay unused.
            self.made.iter_mut().for_each(|made| made.generation = 0);
            self.ranges
                .iter_mut()
                .for_each(|found| found.generation = 0);
            self.generation = 1;
        }
        self.made.resize(tests, MadeMask::default());
        self.ranges.resize(tests, FoundRange::default());
        self.words.clear();
        self.size = size;
    }

    /// The positions test `number` passes, made by `make` (which clears the bits of the
    /// positions it fails, given all set) when not made for this partition yet.
    pub fn get(&mut self, number: u32, make: impl FnOnce(&mut [u64])) -> &[u64] {
        let width = self.size.div_ceil(64);
        let at = match self.made.get(number as usize) {
            Some(&MadeMask { generation, start }) if generation == self.generation => {
                start as usize
            }
            _ => {
                let at = self.words.len();
                self.words.resize(at + width, 0);
                let words = self.words.get_mut(at..).unwrap_or_default();
                set_positions(words, 0..self.size);
                make(words);
                if let Some(made) = self.made.get_mut(number as usize) {
                    *made = MadeMask {
                        generation: self.generation,
                        start: at as u32,
                    };
                }
                at
            }
        };
        self.words.get(at..at + width).unwrap_or_default()
    }

    /// The positions within the bounds of test `number`, found by `find` when not found
    /// for this partition yet.
    pub fn range(
        &mut self,
        number: u32,
        find: impl FnOnce() -> std::ops::Range<usize>,
    ) -> std::ops::Range<usize> {
        match self.ranges.get_mut(number as usize) {
            Some(FoundRange { generation, range }) if *generation == self.generation => {
                range.start as usize..range.end as usize
            }
            Some(FoundRange { generation, range }) => {
                let found = find();
                *generation = self.generation;
                *range = found.start as u32..found.end as u32;
                found
            }
            None => find(),
        }
    }
}

/// Sets the bits of `positions` in `words` (bit `i` of word `w` is position `64 w + i`),
/// and clears the others.
pub fn set_positions(words: &mut [u64], positions: std::ops::Range<usize>) {
    for (at, word) in words.iter_mut().enumerate() {
        // The bits of `positions` within this word's 64.
        let from = positions.start.saturating_sub(at * 64).min(64);
        let to = positions.end.saturating_sub(at * 64).min(64);
        *word = match from < to {
            true => (u64::MAX >> (64 - (to - from))) << from,
            false => 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_set_across_words() {
        let mut words = [u64::MAX; 3];
        set_positions(&mut words, 62..130);
        assert_eq!(words, [0b11 << 62, u64::MAX, 0b11]);
        set_positions(&mut words, 5..5);
        assert_eq!(words, [0, 0, 0]);
    }

    #[test]
    fn a_test_is_made_once_per_partition() {
        let mut masks = Masks::default();
        let mut made = 0;
        masks.start(70, 2);
        let first = masks
            .get(1, |w| {
                made += 1;
                w[0] &= 0b101;
            })
            .to_vec();
        assert_eq!(first, [0b101, 0b11_1111]);
        assert_eq!(masks.get(1, |_| made += 1), [0b101, 0b11_1111]);
        assert_eq!(masks.get(0, |_| made += 1), [u64::MAX, 0b11_1111]);
        assert_eq!(made, 2);
        masks.start(3, 2);
        assert_eq!(masks.get(1, |_| made += 1), [0b111]);
        assert_eq!(made, 3);
    }

    #[test]
    fn equal_tests_share_a_number() {
        let mut table = TestTable::default();
        let rooms = Conjunct::Int {
            column: 3,
            low: 2,
            high: i64::MAX,
        };
        let kind = Conjunct::Symbol {
            column: 2,
            symbol: 7,
        };
        assert_eq!(table.number(rooms.clone()), 0);
        assert_eq!(table.number(kind.clone()), 1);
        assert_eq!(table.number(rooms.clone()), 0);
        assert_eq!(table.get(1), Some(&kind));
        assert_eq!(table.len(), 2);
    }
}
