//! Where access tokens come from, for both binaries, and what each grants.
//!
//! A token file holds one token per line; `#` starts a comment line, blank lines are skipped,
//! and a line `read-only TOKEN` grants only the verbs that change nothing. Without a file, the
//! `FERRY_TOKEN` environment variable holds one token that grants everything.

use std::io;
use std::path::Path;

/// The environment variable that holds the token when no file is named.
pub const TOKEN_VAR: &str = "FERRY_TOKEN";

/// One token and what it grants.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token, surrounding whitespace removed.
    pub secret: String,
    /// It may run verbs that change files.
    pub writes: bool,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Grant(.., writes: {})", self.writes)
    }
}

/// The tokens read, and where they came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// In the order given; may be empty.
    pub grants: Vec<Grant>,
    /// `token file '<path>'` or `FERRY_TOKEN`.
    pub source: String,
}

/// The tokens in `file` when one is named, else in `FERRY_TOKEN`; `None` when neither is
/// given. A file that cannot be read is an error naming it.
pub fn read_tokens(file: Option<&Path>) -> io::Result<Option<Tokens>> {
    let Some(path) = file else {
        return Ok(std::env::var(TOKEN_VAR).ok().map(|text| {
            let secret = text.trim().to_string();
            let grants = (!secret.is_empty())
                .then_some(Grant {
                    secret,
                    writes: true,
                })
                .into_iter()
                .collect();
            Tokens {
                grants,
                source: TOKEN_VAR.to_string(),
            }
        }));
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("reading token file '{}': {e}", path.display()),
        )
    })?;
    let source = format!("token file '{}'", path.display());
    let grants = parse(&text)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, format!("{source}: {why}")))?;
    Ok(Some(Tokens { grants, source }))
}

/// The grants in a token file's text. A line `read-only` with no token after it is an error,
/// not a token of that name granting everything.
fn parse(text: &str) -> Result<Vec<Grant>, String> {
    let mut grants = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        grants.push(match line.strip_prefix("read-only") {
            Some("") => return Err(format!("line {}: 'read-only' without a token", number + 1)),
            Some(rest) if rest.starts_with([' ', '\t']) => Grant {
                secret: rest.trim().to_string(),
                writes: false,
            },
            _ => Grant {
                secret: line.to_string(),
                writes: true,
            },
        });
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_lists_tokens_with_comments_and_read_only_lines() {
        let grants =
            parse("# the team\n  s3cret ✓ \n\nread-only  viewer\n#read-only x\nread-onlyish\n")
                .unwrap();
        assert_eq!(
            parse("one\n  read-only  \n").unwrap_err(),
            "line 2: 'read-only' without a token"
        );
        let shown: Vec<(&str, bool)> = grants
            .iter()
            .map(|g| (g.secret.as_str(), g.writes))
            .collect();
        assert_eq!(
            shown,
            [
                ("s3cret ✓", true),
                ("viewer", false),
                ("read-onlyish", true)
            ]
        );
        assert!(!format!("{:?}", grants[0]).contains("s3cret"));
    }

    #[test]
    fn a_file_is_read_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\nread-only two\n").unwrap();
        let tokens = read_tokens(Some(&path)).unwrap().unwrap();
        assert_eq!(tokens.grants.len(), 2);
        assert_eq!(tokens.source, format!("token file '{}'", path.display()));
        let err = read_tokens(Some(&dir.path().join("missing"))).unwrap_err();
        assert!(err.to_string().starts_with("reading token file '"), "{err}");
    }
}
