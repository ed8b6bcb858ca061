//! The checkpoint file: saved state in a frame that says what wrote it and whether it is
//! whole.
//!
//! Layout: the magic bytes `SLUICECK`, the format version (`u32`), the length and text of
//! the sluice version that wrote it, the length of the state (`u64`), the state (see
//! [`crate::state`]), and a CRC-32 of everything before it. Integers are little-endian.
//! Reading checks each part in turn, so a file of another kind, of a newer format, cut short
//! or damaged is refused with a message saying which, never misread. A file of an older
//! format is read with its format ([`Decoded::format`]), and what changed since is migrated
//! where it is read:
//!
//! - Format 2: pattern variables are named as the standard folds identifiers, unquoted ones
//!   in upper case (format 1 wrote them in lower case). A query's plan text names them in the
//!   steps of its pattern program, so [`migrate_plan`] folds those names in a format-1 plan
//!   to upper case before comparing it with today's (a quoted lower-case name then differs,
//!   and its query is refused rather than misread). The state itself has no names.

use crate::{EngineError, Result};

const MAGIC: &[u8; 8] = b"SLUICECK";

/// The format written today; readers take this one and every older one.
pub const FORMAT_VERSION: u32 = crate::state::FORMAT;

/// A checkpoint file's state and the format it was written in.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub format: u32,
    pub state: &'a [u8],
}

impl<'a> Decoded<'a> {
    /// A reader of the state that knows its format.
    pub fn reader(&self) -> crate::state::StateReader<'a> {
        crate::state::StateReader::of_format(self.state, self.format)
    }
}

/// A query's plan text saved in checkpoint format `format`, as today's format writes it.
pub fn migrate_plan(plan: &str, format: u32) -> String {
    if format >= 2 {
        return plan.to_string();
    }
    plan.lines()
        .map(|line| match line.rsplit_once(": row ") {
            // A step `N: row NAME`, alone on its line or after its operator's header.
            Some((before, name))
                if before
                    .rsplit(' ')
                    .next()
                    .is_some_and(|step| step.parse::<u32>().is_ok()) =>
            {
                format!("{before}: row {}", name.to_ascii_uppercase())
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if plan.ends_with('\n') { "\n" } else { "" }
}

/// Frames `state` as a checkpoint file.
pub fn encode(state: &[u8]) -> Vec<u8> {
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    let mut file = Vec::with_capacity(state.len() + 40);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&(version.len() as u32).to_le_bytes());
    file.extend_from_slice(version);
    file.extend_from_slice(&(state.len() as u64).to_le_bytes());
    file.extend_from_slice(state);
    let checksum = crc32fast::hash(&file);
    file.extend_from_slice(&checksum.to_le_bytes());
    file
}

/// The state framed in checkpoint file `file` (named `name` in errors), with its format.
pub fn decode<'a>(name: &str, file: &'a [u8]) -> Result<Decoded<'a>> {
    let damaged = |position: usize, reason: String| EngineError::Corrupt {
        file: name.to_string(),
        position: position as u64,
        reason,
    };
    if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
        return Err(damaged(0, "it is not a sluice checkpoint".into()));
    }
    let mut position = MAGIC.len();
    let mut take = |length: usize| -> Result<&'a [u8]> {
        let end = position
            .checked_add(length)
            .filter(|end| *end <= file.len());
        let Some(end) = end else {
            return Err(damaged(position, "the file ends early".into()));
        };
        let part = &file[position..end];
        position = end;
        Ok(part)
    };
    let format = u32::from_le_bytes(fixed(take(4)?));
    let version_length = u32::from_le_bytes(fixed(take(4)?)) as usize;
    let written_by = String::from_utf8_lossy(take(version_length)?).into_owned();
    if format > FORMAT_VERSION {
        return Err(EngineError::Checkpoint(format!(
            "{name} has format {format}, written by sluice {written_by}; this sluice ({}) reads formats up to {FORMAT_VERSION}",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let state_length = u64::from_le_bytes(fixed(take(8)?));
    let state_length = usize::try_from(state_length)
        .map_err(|_| damaged(MAGIC.len(), format!("a state of {state_length} bytes")))?;
    let state = take(state_length)?;
    let checksum_at = file.len() - 4.min(file.len());
    let stored = u32::from_le_bytes(fixed(take(4)?));
    if crc32fast::hash(&file[..checksum_at]) != stored {
        return Err(damaged(checksum_at, "its checksum does not match".into()));
    }
    if checksum_at + 4 != file.len() {
        return Err(damaged(checksum_at + 4, "bytes follow the checksum".into()));
    }
    Ok(Decoded { format, state })
}

/// The first `N` bytes of `bytes`, which has at least that many.
fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut value = [0; N];
    value.copy_from_slice(&bytes[..N]);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(file: &[u8]) -> String {
        match decode("cp", file) {
            Ok(_) => "decoded".into(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn state_comes_back_whole() -> Result<()> {
        let file = encode(b"state bytes");
        let decoded = decode("cp", &file)?;
        assert_eq!(
            (decoded.format, decoded.state),
            (FORMAT_VERSION, &b"state bytes"[..])
        );
        Ok(())
    }

    #[test]
    fn a_cut_or_changed_file_is_refused() {
        let file = encode(b"state bytes");
        assert_eq!(
            error(&file[..file.len() - 1]),
            "cp is damaged at byte 40: the file ends early"
        );
        let mut flipped = file.clone();
        flipped[30] ^= 1;
        assert_eq!(
            error(&flipped),
            "cp is damaged at byte 40: its checksum does not match"
        );
        assert_eq!(
            error(b"PAR1...."),
            "cp is damaged at byte 0: it is not a sluice checkpoint"
        );
    }

    #[test]
    fn format_1_plans_name_pattern_variables_in_upper_case() {
        let plan = "1: match_recognize <- [0] (k Utf8)   0: row s\n  1: row big_x\n  2: match\n";
        assert_eq!(
            migrate_plan(plan, 1),
            "1: match_recognize <- [0] (k Utf8)   0: row S\n  1: row BIG_X\n  2: match\n"
        );
        assert_eq!(migrate_plan(plan, 2), plan);
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let mut file = encode(b"x");
        file[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(
            error(&file),
            format!(
                "checkpoint: cp has format 3, written by sluice {v}; this sluice ({v}) reads formats up to 2",
                v = env!("CARGO_PKG_VERSION")
            )
        );
    }
}
