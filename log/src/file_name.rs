//! Names as file names: a stream, query, alert or output name becomes one path component
//! that stays inside its directory and belongs to that name alone.
//!
//! ASCII lower-case letters, digits, `_` and `-` stand for themselves; every other byte of
//! the name's UTF-8 is written `%XX` (upper-case hex). So a name can never be `.`, `..`, hold
//! a `/`, or start a hidden file; two different names never give the same file name, even on
//! a file system that ignores case (upper-case letters are encoded too); and `.` never occurs,
//! so a suffix such as `.late` or `.3` after an encoded name cannot be mistaken for part of
//! another name. Names are at most 63 bytes (checked where they are defined), so an encoded
//! name is at most 189 bytes and leaves room for suffixes under the usual 255-byte limit.

use std::fmt::Write;

/// `name` encoded as one file-name component; see the module documentation.
pub fn file_name(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-' {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(file_name("clicks_2024-q1"), "clicks_2024-q1");
    }

    #[test]
    fn path_characters_are_encoded() {
        assert_eq!(file_name("../../x"), "%2E%2E%2F%2E%2E%2Fx");
        assert_eq!(file_name("/etc/passwd"), "%2Fetc%2Fpasswd");
        assert_eq!(file_name(".."), "%2E%2E");
        assert_eq!(file_name("x/../v"), "x%2F%2E%2E%2Fv");
        assert_eq!(file_name("v.late"), "v%2Elate");
    }

    #[test]
    fn case_and_unicode_are_kept_apart() {
        assert_eq!(file_name("Ab"), "%41b");
        assert_ne!(file_name("Ab"), file_name("ab"));
        assert_eq!(file_name("é"), "%C3%A9");
        assert_eq!(file_name("%41b"), "%2541b");
    }
}
