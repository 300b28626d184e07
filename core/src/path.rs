//! [`RemotePath`]: where an entry lies under the served root, as the wire carries it and as the
//! client resolves what its user types against a working directory.
//!
//! A remote path is a list of components, each a plain name ([`crate::name::validate`]). On
//! the wire it is always absolute: `/` for the root, `/photos/2024/a.jpg` below it. `.` and
//! `..` never travel: the client resolves them ([`RemotePath::resolve`]) against its working
//! directory, and `..` at the root stays at the root, so no path can climb above it.

use std::fmt;

use crate::error::{ErrorKind, Failure};
use crate::name;

/// Longest path in bytes, as the wire writes it (the usual `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Most components in a path: deep enough for any real tree, and a bound on the directory
/// handles a server opens to reach one.
pub const MAX_DEPTH: usize = 128;

/// A path under the served root, every component checked. The root is the empty path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePath {
    /// The components joined by `/`, without a leading one: empty for the root.
    text: String,
}

impl RemotePath {
    /// The root itself.
    pub fn root() -> RemotePath {
        RemotePath::default()
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.text.is_empty()
    }

    /// Parses the wire form: `/`, or `/` and components separated by single `/`s, each a
    /// plain name. Anything else (`.`, `..`, an empty component, no leading `/`) is refused:
    /// the client has resolved all of that before sending.
    pub fn from_wire(word: &str) -> Result<RemotePath, Failure> {
        let Some(rest) = word.strip_prefix('/') else {
            return Err(bad_path(word, "does not start at the root ('/')"));
        };
        if rest.is_empty() {
            return Ok(RemotePath::root());
        }
        let path = RemotePath {
            text: rest.to_string(),
        };
        path.check_bounds(word)?;
        for component in rest.split('/') {
            name::validate(component).map_err(|f| in_path(word, f))?;
        }
        Ok(path)
    }

    /// The wire form: `/` followed by the components.
    pub fn wire(&self) -> String {
        format!("/{}", self.text)
    }

    /// Resolves what a user typed against this directory: a leading `/` starts at the root;
    /// empty components and `.` are skipped; `..` goes up one, and at the root stays there;
    /// every other component must be a plain name.
    pub fn resolve(&self, typed: &str) -> Result<RemotePath, Failure> {
        let mut parts: Vec<&str> = if typed.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for component in typed.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                other => {
                    name::validate(other).map_err(|f| in_path(typed, f))?;
                    parts.push(other);
                }
            }
        }
        let path = RemotePath {
            text: parts.join("/"),
        };
        path.check_bounds(typed)?;
        Ok(path)
    }

    /// The path of `name` in this directory.
    pub fn join(&self, name: &str) -> Result<RemotePath, Failure> {
        let name = name::validate(name)?;
        let text = if self.is_root() {
            name.to_string()
        } else {
            format!("{}/{name}", self.text)
        };
        let path = RemotePath { text };
        path.check_bounds(name)?;
        Ok(path)
    }

    /// The components joined by `/`, without a leading one (`""` for the root): what a
    /// store resolves below the root's handle.
    pub fn relative(&self) -> &str {
        &self.text
    }

    /// Its components, from the root down.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.text.split('/').filter(|c| !c.is_empty())
    }

    /// The directory it is in; `None` for the root.
    pub fn parent(&self) -> Option<RemotePath> {
        if self.is_root() {
            return None;
        }
        let text = self.text.rsplit_once('/').map_or("", |(dir, _)| dir);
        Some(RemotePath {
            text: text.to_string(),
        })
    }

    /// Its last component; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components().next_back()
    }

    /// Whether `self` is `base` or lies below it.
    pub fn starts_with(&self, base: &RemotePath) -> bool {
        base.is_root()
            || self.text == base.text
            || self
                .text
                .strip_prefix(&base.text)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// How to show it to someone working in `cwd`: relative to it when it lies below it
    /// (`a/b.txt`), else absolute (`/other/b.txt`); `cwd` itself is `.`. Escaped
    /// ([`name::escape_full`]): for people, never for the wire.
    pub fn shown_from(&self, cwd: &RemotePath) -> String {
        if self == cwd {
            return ".".into();
        }
        let text = match self.text.strip_prefix(&cwd.text) {
            _ if cwd.is_root() => &self.text,
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => return self.to_string(),
        };
        name::escape_full(text)
    }

    fn check_bounds(&self, typed: &str) -> Result<(), Failure> {
        if self.text.len() + 1 > MAX_PATH {
            return Err(bad_path(typed, "is longer than 4096 bytes"));
        }
        if self.components().count() > MAX_DEPTH {
            return Err(bad_path(typed, "is more than 128 directories deep"));
        }
        Ok(())
    }
}

/// The wire form, `/a/b`, escaped for messages ([`name::escape_full`]); the wire itself
/// takes [`RemotePath::wire`].
impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", name::escape_full(&self.text))
    }
}

fn bad_path(typed: &str, why: &str) -> Failure {
    Failure::new(
        ErrorKind::BadName,
        format!("path '{}' {why}", name::escape(typed)),
    )
}

/// A component's failure, told as the path's.
fn in_path(typed: &str, component: Failure) -> Failure {
    if !typed.contains('/') {
        return component;
    }
    Failure::new(
        ErrorKind::BadName,
        format!("path '{}': {}", name::escape(typed), component.message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(dir: &str) -> RemotePath {
        RemotePath::root().resolve(dir).unwrap()
    }

    #[test]
    fn the_wire_form_is_absolute_and_strict() {
        for ok in ["/", "/a", "/a b/ünï ✓/c.txt", "/..hidden/x"] {
            assert_eq!(RemotePath::from_wire(ok).unwrap().wire(), ok);
        }
        for bad in [
            "", "a", "a/b", "//", "/a/", "/a//b", "/.", "/a/..", "/a/./b", "/a\\b", "/a\nb",
        ] {
            let err = RemotePath::from_wire(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadName, "{bad:?}");
            assert!(!err.message.chars().any(char::is_control), "{err}");
        }
    }

    #[test]
    fn typed_paths_resolve_against_the_working_directory_and_never_climb_out() {
        let cwd = at("photos/2024");
        let cases = [
            ("a.jpg", "/photos/2024/a.jpg"),
            ("./a.jpg", "/photos/2024/a.jpg"),
            ("../2023/b.jpg", "/photos/2023/b.jpg"),
            ("/docs", "/docs"),
            ("..", "/photos"),
            ("../../../../..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("a//b/", "/photos/2024/a/b"),
            ("", "/photos/2024"),
            ("/", "/"),
        ];
        for (typed, wire) in cases {
            assert_eq!(cwd.resolve(typed).unwrap().wire(), wire, "{typed}");
        }
        assert!(cwd.resolve("a/b\\c").is_err());
        assert!(cwd.resolve("x\x1b[2J").is_err());
    }

    #[test]
    fn lengths_and_depths_are_bounded() {
        let deep = "d/".repeat(MAX_DEPTH + 1);
        assert!(RemotePath::root().resolve(&deep).is_err());
        assert!(RemotePath::root().resolve(&"d/".repeat(MAX_DEPTH)).is_ok());
        let long = format!("/{}", vec!["n".repeat(255); 17].join("/"));
        assert!(RemotePath::from_wire(&long).is_err());
    }

    #[test]
    fn parents_names_and_how_paths_are_shown() {
        let p = at("a/b/c.txt");
        assert_eq!(p.file_name(), Some("c.txt"));
        assert_eq!(p.parent().unwrap(), at("a/b"));
        assert_eq!(at("a").parent().unwrap(), RemotePath::root());
        assert_eq!(RemotePath::root().parent(), None);
        assert_eq!(at("a/b").join("x y").unwrap().wire(), "/a/b/x y");
        assert!(at("a").join("..").is_err());
        assert_eq!(p.shown_from(&RemotePath::root()), "a/b/c.txt");
        assert_eq!(p.shown_from(&at("a")), "b/c.txt");
        assert_eq!(p.shown_from(&at("ab")), "/a/b/c.txt");
        assert_eq!(at("a").shown_from(&at("a")), ".");
        assert!(p.starts_with(&at("a")) && !p.starts_with(&at("a/b/c")));
        assert!(!at("ab/c").starts_with(&at("a")));
    }

    #[test]
    fn paths_are_shown_escaped_but_travel_as_they_are() {
        let p = at("d\u{2067}x/invoice\u{202e}gpj.exe");
        assert_eq!(p.wire(), "/d\u{2067}x/invoice\u{202e}gpj.exe");
        assert_eq!(p.to_string(), "/d\\u{2067}x/invoice\\u{202e}gpj.exe");
        assert_eq!(
            p.shown_from(&RemotePath::root()),
            "d\\u{2067}x/invoice\\u{202e}gpj.exe"
        );
        assert_eq!(p.shown_from(&at("d\u{2067}x")), "invoice\\u{202e}gpj.exe");
        assert_eq!(p.shown_from(&at("e")), p.to_string());
    }
}
