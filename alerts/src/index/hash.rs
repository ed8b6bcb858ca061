//! Hashing: FNV-1a hashes of values, the same for a literal and for a row holding that
//! value, and of numeric cells; and a pass-through hasher for hash maps whose keys are
//! hashes already.

use crate::predicate::{ColumnRef, Family, Lit, Views};

pub(super) fn cell_hash(cell: i64) -> u64 {
    value_hash(5, &cell.to_le_bytes())
}

/// The hash of a value, the same for a literal and for a row holding that value (FNV-1a
/// over the value's bytes, tagged by type).
pub(super) fn value_hash(tag: u8, bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in std::iter::once(tag).chain(bytes.iter().copied()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub(super) fn lit_hash(lit: &Lit) -> u64 {
    match lit {
        Lit::Int(v) => value_hash(1, &v.to_le_bytes()),
        Lit::Float(v) => value_hash(2, &v.to_bits().to_le_bytes()),
        Lit::Str(v) => value_hash(3, v.as_bytes()),
        Lit::Bool(v) => value_hash(4, &[u8::from(*v)]),
    }
}

/// The hash of the value of `column` at `row`; `None` when it is NULL.
pub(super) fn row_hash(views: &Views, column: ColumnRef, row: usize) -> Option<u64> {
    Some(match column.family {
        Family::Int => value_hash(1, &views.int(column.column, row)?.to_le_bytes()),
        Family::Float => value_hash(2, &views.float(column.column, row)?.to_bits().to_le_bytes()),
        Family::Str => value_hash(3, views.str(column.column, row)?.as_bytes()),
        Family::Bool => value_hash(4, &[u8::from(views.bool(column.column, row)?)]),
    })
}

/// Adds `value` to the hash `hash` of the values before it (order matters).
fn mix(hash: u64, value: u64) -> u64 {
    (hash.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = mix(self.0, u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}
