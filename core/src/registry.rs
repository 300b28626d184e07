//! [`Registry`]: the verbs by name and alias, sorted, with the nearest name for a slip.

use crate::verb::Verb;
use crate::words::{self, Args, UsageError};

/// The registered verbs, sorted by name.
#[derive(Debug)]
pub struct Registry {
    verbs: Vec<&'static Verb>,
}

impl Registry {
    /// Builds a registry, sorted by name.
    ///
    /// # Panics
    /// On two verbs sharing a name or an alias (ignoring case), naming both modules.
    pub fn new(verbs: impl IntoIterator<Item = &'static Verb>) -> Registry {
        let mut verbs: Vec<&'static Verb> = verbs.into_iter().collect();
        verbs.sort_by_key(|v| v.name.to_ascii_uppercase());
        let mut names: Vec<(String, &'static Verb)> = verbs
            .iter()
            .flat_map(|&v| {
                std::iter::once(v.name)
                    .chain(v.aliases.iter().copied())
                    .map(move |n| (n.to_ascii_uppercase(), v))
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in names.windows(2) {
            if pair[0].0 == pair[1].0 {
                panic!(
                    "verb name {} is registered twice: by {} ({}) and by {} ({})",
                    pair[0].0, pair[0].1.module, pair[0].1.name, pair[1].1.module, pair[1].1.name
                );
            }
        }
        Registry { verbs }
    }

    /// The verb called `name`, ignoring case; aliases are not names (the wire carries names).
    pub fn find(&self, name: &str) -> Option<&'static Verb> {
        self.verbs
            .iter()
            .copied()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// The verb a request names, for the server: as [`Registry::find`], but never a verb
    /// that runs on the client alone.
    pub fn served(&self, name: &str) -> Option<&'static Verb> {
        self.find(name).filter(|v| !v.local)
    }

    /// The verb a user means by `word`: its name or one of its aliases, ignoring case.
    pub fn lookup(&self, word: &str) -> Option<&'static Verb> {
        self.find(word).or_else(|| {
            self.verbs
                .iter()
                .copied()
                .find(|v| v.aliases.iter().any(|a| a.eq_ignore_ascii_case(word)))
        })
    }

    /// The verb name nearest to a word that names no verb, if one is near enough to be a
    /// slip (one edit in a short word, two in a longer one); with `aliases`, aliases count
    /// too (a user may type them; the wire carries names only). Names and aliases of fewer
    /// than three letters are never suggested: any short word would be near them.
    pub fn suggest(&self, word: &str, aliases: bool) -> Option<&'static str> {
        let word = word.to_ascii_uppercase();
        let len = word.chars().count();
        let allowed = if len <= 4 { 1 } else { 2 };
        self.verbs
            .iter()
            // On the wire (no aliases), only the verbs a server serves.
            .filter(|v| aliases || !v.local)
            .flat_map(|v| {
                let aliases = if aliases { v.aliases } else { &[] };
                std::iter::once(v.name).chain(aliases.iter().copied())
            })
            // Bounded work whatever the word's length: a distance is only computed between
            // words whose lengths are within the allowed edits.
            .filter(|name| name.len() >= 3 && name.len().abs_diff(len) <= allowed)
            .map(|name| {
                let distance = strsim::damerau_levenshtein(&word, &name.to_ascii_uppercase());
                (distance, name)
            })
            .filter(|&(distance, _)| distance <= allowed)
            .min_by_key(|&(distance, _)| distance)
            .map(|(_, name)| name)
    }

    /// The message for a word that names no verb on the wire, with the nearest name when one
    /// is near.
    pub fn unknown(&self, word: &str) -> String {
        let shown = crate::name::escape(word);
        match self.suggest(word, false) {
            Some(near) => format!("unknown verb '{shown}'; did you mean {near}?"),
            None => format!("unknown verb '{shown}'"),
        }
    }

    /// The message for a word that names no verb at the prompt or in a script: the nearest
    /// name or alias when one is near, else a pointer to HELP.
    pub fn unknown_to_user(&self, word: &str) -> String {
        let shown = crate::name::escape(word);
        match self.suggest(word, true) {
            Some(near) => format!("unknown verb '{shown}'; did you mean {near}?"),
            None => format!("unknown verb '{shown}'; HELP lists them"),
        }
    }

    /// Every verb, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &'static Verb> + '_ {
        self.verbs.iter().copied()
    }

    /// True when a session can run on these verbs: there are some, and LOGOUT, which ends
    /// every session (the client sends it at the end of a script and on Ctrl-D), is one.
    pub fn is_usable(&self) -> bool {
        self.find("LOGOUT").is_some()
    }

    /// Reads a command line: its verb (by name or alias) and its arguments, checked against
    /// the verb's parameters and flags. `None` for a line without words.
    pub fn parse(&self, line: &str) -> Result<Option<Args>, UsageError> {
        let words = words::split(line)?;
        let Some((first, rest)) = words.split_first() else {
            return Ok(None);
        };
        let verb = self
            .lookup(first)
            .ok_or_else(|| UsageError(self.unknown_to_user(first)))?;
        verb.parse(rest).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verb::Reply;
    use crate::{Args, ClientCtx, Failure, Flow, ServerCtx};

    fn client(_: &mut ClientCtx, _: &Args) -> anyhow::Result<Flow> {
        Ok(Flow::Continue)
    }

    fn server(_: &mut ServerCtx<'_>, _: &[String]) -> Result<Reply, Failure> {
        Ok(Reply::Done)
    }

    const fn verb(
        name: &'static str,
        aliases: &'static [&'static str],
        module: &'static str,
    ) -> Verb {
        Verb {
            name,
            aliases,
            ..Verb::new(client, server, module)
        }
    }

    static ZED: Verb = verb("ZED", &["z"], "a::zed");
    static ALPHA: Verb = verb("ALPHA", &["al", "?"], "a::alpha");
    static LOGOUT: Verb = verb("LOGOUT", &["quit"], "a::logout");
    static ALPHA_AGAIN: Verb = verb("alpha", &[], "b::alpha");
    static CLASH: Verb = verb("BETA", &["Z"], "b::beta");

    #[test]
    fn sorted_by_name_and_found_in_any_case_by_name_or_alias() {
        let registry = Registry::new([&ZED, &ALPHA, &LOGOUT]);
        let names: Vec<_> = registry.iter().map(|v| v.name).collect();
        assert_eq!(names, ["ALPHA", "LOGOUT", "ZED"]);
        assert_eq!(registry.find("zEd").unwrap().module, "a::zed");
        assert!(registry.find("z").is_none(), "the wire knows names only");
        assert_eq!(registry.lookup("Z").unwrap().name, "ZED");
        assert_eq!(registry.lookup("?").unwrap().name, "ALPHA");
        assert!(registry.is_usable());
        assert!(!Registry::new([&ZED]).is_usable());
    }

    #[test]
    #[should_panic(expected = "registered twice: by a::alpha (ALPHA) and by b::alpha (alpha)")]
    fn a_duplicate_name_panics_naming_both_modules() {
        Registry::new([&ALPHA, &ZED, &ALPHA_AGAIN]);
    }

    #[test]
    #[should_panic(expected = "verb name Z is registered twice")]
    fn an_alias_clashing_with_another_panics_too() {
        Registry::new([&ZED, &CLASH]);
    }

    #[test]
    fn a_near_miss_gets_a_suggestion_and_a_far_one_does_not() {
        let registry = Registry::new([&ZED, &ALPHA, &LOGOUT]);
        assert_eq!(registry.suggest("alhpa", false), Some("ALPHA"));
        assert_eq!(registry.suggest("logot", false), Some("LOGOUT"));
        assert_eq!(registry.suggest("qit", true), Some("quit"));
        assert_eq!(
            registry.suggest("qit", false),
            None,
            "the wire knows names only"
        );
        assert_eq!(registry.suggest("frobnicate", true), None);
        // One letter is one edit from `?` and `z`, which are never suggested.
        assert_eq!(registry.suggest("x", true), None);
        assert_eq!(registry.suggest(&"A".repeat(60_000), true), None);
        assert_eq!(
            registry.unknown("LOGUOT"),
            "unknown verb 'LOGUOT'; did you mean LOGOUT?"
        );
        assert_eq!(registry.unknown("quti"), "unknown verb 'quti'");
        assert_eq!(
            registry.unknown_to_user("quti"),
            "unknown verb 'quti'; did you mean quit?"
        );
        assert_eq!(registry.unknown("x\x1b"), "unknown verb 'x\\u{1b}'");
    }

    #[test]
    fn a_line_is_read_into_its_verb_and_arguments() {
        let registry = Registry::new([&ZED, &ALPHA, &LOGOUT]);
        assert_eq!(registry.parse("  # nothing").unwrap(), None);
        assert_eq!(
            registry.parse("quit").unwrap().unwrap().verb().name,
            "LOGOUT"
        );
        let err = registry.parse("alpah").unwrap_err().0;
        assert_eq!(err, "unknown verb 'alpah'; did you mean ALPHA?");
        let err = registry.parse("frob").unwrap_err().0;
        assert_eq!(err, "unknown verb 'frob'; HELP lists them");
        assert_eq!(registry.parse("ZED 'x").unwrap_err().0, "unbalanced quotes");
        assert!(
            registry
                .parse("ZED x")
                .unwrap_err()
                .0
                .starts_with("usage: ZED")
        );
    }
}
