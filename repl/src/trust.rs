//! Whom `ferry` trusts: the server's identity, checked after the TLS handshake and before
//! anything is sent, against what the user gave (`--fingerprint`), what the server wrote
//! beside its port file, or what was pinned on first contact, as ssh's known_hosts.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_core::identity::Fingerprint;

/// The file of pinned identities in the user's data directory.
pub const KNOWN_SERVERS: &str = "known_servers";

/// What a new server gets on first contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstContact {
    /// The user is asked at the terminal; yes pins it.
    Ask,
    /// Pinned without asking (`--accept-new`).
    Accept,
    /// Refused, with its fingerprint shown (a script, `-c`).
    Refuse,
}

/// The identity a connection must present.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Exactly this one, from `source` (`--fingerprint`, or the file beside the port file).
    Exactly {
        /// The fingerprint.
        fingerprint: Fingerprint,
        /// Where it came from, for messages.
        source: String,
    },
    /// The one pinned for `key` (`HOST:PORT`) in `file`; a server not pinned yet gets `first`.
    Pinned {
        /// The server as the user named it, with its port.
        key: String,
        /// The known_servers file; `None` when there is no home to keep one in.
        file: Option<PathBuf>,
        /// What happens on first contact.
        first: FirstContact,
    },
}

impl Expect {
    /// Pinning in the user's known_servers file.
    pub fn pinned(key: String, first: FirstContact) -> Expect {
        Expect::Pinned {
            key,
            file: ferry_core::dirs::user_file(KNOWN_SERVERS),
            first,
        }
    }

    /// Checks the identity `presented` by the server at `at`; `ask` puts a question to the
    /// user and says whether they answered yes. An error means nothing may be sent.
    pub fn check(
        &self,
        presented: &Fingerprint,
        ask: &mut dyn FnMut(&str) -> bool,
    ) -> anyhow::Result<()> {
        match self {
            Expect::Exactly {
                fingerprint,
                source,
            } if fingerprint == presented => Ok(()),
            Expect::Exactly {
                fingerprint,
                source,
            } => bail!(
                "the server's identity is {presented}, not {fingerprint} as {source} says; \
                 nothing was sent"
            ),
            Expect::Pinned { key, file, first } => {
                // A key is one word on its line of the file.
                if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    bail!("'{}' cannot be pinned", ferry_core::name::escape(key));
                }
                let pinned = match file {
                    Some(file) => lookup(file, key)?,
                    None => None,
                };
                match pinned {
                    Some(pin) if pin == *presented => Ok(()),
                    Some(pin) => bail!(changed(key, &pin, presented, file.as_deref())),
                    None => first_contact(key, presented, file.as_deref(), *first, ask),
                }
            }
        }
    }
}

/// The loud refusal of a server whose identity is not the one pinned.
fn changed(
    key: &str,
    pinned: &Fingerprint,
    presented: &Fingerprint,
    file: Option<&Path>,
) -> String {
    let file = file.map_or(String::new(), |f| format!(" in '{}'", f.display()));
    format!(
        "WARNING: THE IDENTITY OF {key} HAS CHANGED: pinned {pinned}{file}, presented \
         {presented}. Someone may be intercepting the connection, or the server's identity was \
         replaced. Nothing was sent. If the change is expected, remove the line for {key} from \
         the file and connect again"
    )
}

fn first_contact(
    key: &str,
    presented: &Fingerprint,
    file: Option<&Path>,
    first: FirstContact,
    ask: &mut dyn FnMut(&str) -> bool,
) -> anyhow::Result<()> {
    match first {
        FirstContact::Refuse => bail!(
            "the server at {key} is not known here; its identity is {presented}. Compare it with \
             the one ferryd printed when it started, then connect with --fingerprint {presented} \
             (or --accept-new to pin whatever it presents)"
        ),
        FirstContact::Ask => {
            let question = format!(
                "The server at {key} is not known here. Its identity is\n  {presented}\nCompare \
                 it with the one ferryd printed when it started. Trust it and remember it? \
                 [yes/no] "
            );
            if !ask(&question) {
                bail!("the server at {key} is not trusted; nothing was sent");
            }
        }
        FirstContact::Accept => {}
    }
    match file {
        Some(file) => pin(file, key, presented),
        // Trusted for this session only: there is nowhere to remember it.
        None => Ok(()),
    }
}

/// The fingerprint pinned for `key` in `file`, if any.
fn lookup(file: &Path, key: &str) -> anyhow::Result<Option<Fingerprint>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading '{}'", file.display())),
    };
    let found = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(k, _)| *k == key)
        .map(|(_, fp)| {
            Fingerprint::parse(fp)
                .with_context(|| format!("'{}': the line for {key} is damaged", file.display()))
        });
    found.transpose()
}

/// Adds `key`'s fingerprint to `file`, creating it (and its directory) private to the user.
fn pin(file: &Path, key: &str, fingerprint: &Fingerprint) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating '{}'", dir.display()))?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("opening '{}'", file.display()))?;
    // One write, so that two clients pinning at once never interleave a line.
    out.write_all(format!("{key} {fingerprint}\n").as_bytes())
        .with_context(|| format!("writing '{}'", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(seed: &[u8]) -> Fingerprint {
        Fingerprint::of(seed)
    }

    #[test]
    fn a_pin_is_kept_and_a_change_refused_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry/known_servers");
        let expect = |first| Expect::Pinned {
            key: "host:7000".into(),
            file: Some(file.clone()),
            first,
        };
        let mut never = |_: &str| -> bool { panic!("asked") };
        let refused = expect(FirstContact::Refuse).check(&fp(b"a"), &mut never);
        let text = refused.unwrap_err().to_string();
        assert!(
            text.contains(fp(b"a").as_str()) && text.contains("--fingerprint"),
            "{text}"
        );
        assert!(!file.exists(), "nothing pinned");
        let mut no = |_: &str| false;
        assert!(expect(FirstContact::Ask).check(&fp(b"a"), &mut no).is_err());
        let mut yes = |q: &str| q.contains(fp(b"a").as_str());
        expect(FirstContact::Ask)
            .check(&fp(b"a"), &mut yes)
            .unwrap();
        expect(FirstContact::Refuse)
            .check(&fp(b"a"), &mut never)
            .unwrap();
        let changed = expect(FirstContact::Accept).check(&fp(b"b"), &mut never);
        let text = changed.unwrap_err().to_string();
        assert!(
            text.starts_with("WARNING: THE IDENTITY OF host:7000 HAS CHANGED"),
            "{text}"
        );
        assert!(text.contains(fp(b"a").as_str()) && text.contains(fp(b"b").as_str()));
        let other = Expect::Pinned {
            key: "other:7000".into(),
            file: Some(file.clone()),
            first: FirstContact::Accept,
        };
        other.check(&fp(b"c"), &mut never).unwrap();
        let lines = std::fs::read_to_string(&file).unwrap();
        assert_eq!(lines.lines().count(), 2, "{lines}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_key_that_is_not_one_word_is_never_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_servers");
        let mut never = |_: &str| -> bool { panic!("asked") };
        for key in ["a b:1", "a\nother:1 SHA256:x", ""] {
            let expect = Expect::Pinned {
                key: key.into(),
                file: Some(file.clone()),
                first: FirstContact::Accept,
            };
            let text = expect.check(&fp(b"a"), &mut never).unwrap_err().to_string();
            assert!(text.contains("cannot be pinned"), "{text}");
        }
        assert!(!file.exists());
    }

    #[test]
    fn an_exact_fingerprint_is_compared_and_named_when_wrong() {
        let expect = Expect::Exactly {
            fingerprint: fp(b"a"),
            source: "--fingerprint".into(),
        };
        let mut never = |_: &str| -> bool { panic!("asked") };
        expect.check(&fp(b"a"), &mut never).unwrap();
        let text = expect.check(&fp(b"b"), &mut never).unwrap_err().to_string();
        assert!(
            text.contains("not") && text.contains("as --fingerprint says"),
            "{text}"
        );
    }
}
