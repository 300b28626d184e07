//! Where an access token comes from, for both binaries: a named file, else `FERRY_TOKEN`.

use std::io;
use std::path::Path;

/// The environment variable that holds the token when no file is named.
pub const TOKEN_VAR: &str = "FERRY_TOKEN";

/// A token as read, and where it came from (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The token, surrounding whitespace (a final newline) removed; may be empty.
    pub text: String,
    /// `token file '<path>'` or `FERRY_TOKEN`.
    pub source: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(.. from {})", self.source)
    }
}

/// The token in `file` when one is named, else in `FERRY_TOKEN`; `None` when neither is
/// given. A file that cannot be read is an error naming it.
pub fn read_token(file: Option<&Path>) -> io::Result<Option<Secret>> {
    let (text, source) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("reading token file '{}': {e}", path.display()),
                )
            })?;
            (text, format!("token file '{}'", path.display()))
        }
        None => match std::env::var(TOKEN_VAR) {
            Ok(text) => (text, TOKEN_VAR.to_string()),
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(Secret {
        text: text.trim().to_string(),
        source,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_trimmed_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret ✓\n").unwrap();
        let secret = read_token(Some(&path)).unwrap().unwrap();
        assert_eq!(secret.text, "s3cret ✓");
        assert_eq!(secret.source, format!("token file '{}'", path.display()));
        assert!(!format!("{secret:?}").contains("s3cret"));
        let err = read_token(Some(&dir.path().join("missing"))).unwrap_err();
        assert!(err.to_string().starts_with("reading token file '"), "{err}");
    }
}
