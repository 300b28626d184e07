//! The rules a remote file name must pass, on both sides of the wire.

use crate::error::{ErrorKind, Failure};

/// Longest remote name in bytes of UTF-8 (also the usual filesystem limit).
pub const MAX_NAME: usize = 255;

/// Checks that `name` is one plain path component: not empty, not `.` or `..`, no `/`, `\`,
/// NUL or other control character, at most [`MAX_NAME`] bytes.
///
/// The error names the rule that failed, with the name escaped so it prints safely.
pub fn validate(name: &str) -> Result<&str, Failure> {
    let why = if name.is_empty() {
        "is empty"
    } else if name == "." || name == ".." {
        "is not a file name"
    } else if name.len() > MAX_NAME {
        "is longer than 255 bytes"
    } else if name.contains(['/', '\\']) {
        "contains a path separator"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(name);
    };
    Err(Failure::new(
        ErrorKind::BadName,
        format!("name '{}' {why}", escape(name)),
    ))
}

/// Escapes control characters (and only those), so that a name from a peer cannot drive the
/// terminal; long names are cut to keep error lines readable.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        if i == 80 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in [
            "a.txt",
            "my file.txt",
            "ünïcødé ✓",
            "..hidden",
            ".profile",
            "a..b",
            &"é".repeat(127),
        ] {
            assert_eq!(validate(ok), Ok(ok));
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "x".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            "a\0b",
            "new\nline",
            "tab\t",
            "\x1b[31m",
            &long,
        ] {
            let err = validate(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadName, "{bad:?}");
            assert!(!err.message.chars().any(char::is_control), "{err}");
        }
        assert!(validate(&"é".repeat(128)).is_err(), "256 bytes of UTF-8");
    }

    #[test]
    fn escape_neutralises_terminal_sequences() {
        assert_eq!(escape("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
