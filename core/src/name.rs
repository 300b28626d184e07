//! The rules a remote file name must pass, on both sides of the wire; the stricter ones for a
//! name the server is asked to create; and the one escaping of text from a peer for display.

use unicode_normalization::is_nfc;

use crate::error::{ErrorKind, Failure};

/// Longest remote name in bytes of UTF-8 (also the usual filesystem limit).
pub const MAX_NAME: usize = 255;

/// Characters of a text that [`escape`] shows before cutting it, to keep error lines readable.
const SHOWN: usize = 80;

/// The Unicode format characters (general category Cf, Unicode 16.0), as inclusive ranges.
/// They are invisible, and some reorder the text around them (bidi overrides, embeddings,
/// isolates and marks), so that a name holding one can pass for another:
/// `invoice\u{202e}gpj.exe` prints as `invoiceexe.jpg`. Kept by hand, short and explicit; a test
/// compares it with the Unicode data for every code point.
const FORMAT: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark (bidi)
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero width space, non-joiner, joiner; LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides, LRE to RLO
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // bidi isolates, deprecated format characters
    ('\u{FEFF}', '\u{FEFF}'),   // zero width no-break space (BOM)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

/// Whether `c` is a Unicode format character (general category Cf): invisible, and perhaps
/// reordering the text around it.
pub fn is_format(c: char) -> bool {
    c >= '\u{00AD}'
        && FORMAT
            .iter()
            .any(|&(first, last)| (first..=last).contains(&c))
}

/// Whether [`escape`] escapes `c`: a control character (Cc), a format character (Cf, see
/// [`is_format`]), or the line and paragraph separators U+2028 and U+2029, at which some
/// terminals break lines. None of them shows as itself, so a name holding one can pass for
/// another, or drive the terminal.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `text` shows as itself: nothing in it that [`escape`] would escape.
pub fn shows_as_itself(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

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

/// Checks the rules for a name the server is to create (an upload's, a new directory's, a
/// rename's destination), on top of [`validate`]: no character that [`escape`] escapes (no
/// bidi control, zero-width character, BOM or other format character, no line separator),
/// and in Unicode normalization form C (NFC), so that two names made this way never look
/// alike letter for letter (`café` composed, and `cafe` with a combining accent).
///
/// The server applies it unless started with `--allow-any-name`; names already on its disk
/// are listed and served whatever they hold.
pub fn check_new(name: &str) -> Result<&str, Failure> {
    let name = validate(name)?;
    let why = if let Some(c) = name.chars().find(|&c| needs_escape(c)) {
        format!(
            "contains the invisible formatting character U+{:04X}; the server refuses it in new names",
            u32::from(c)
        )
    } else if !is_nfc(name) {
        "is not in Unicode normalization form C (NFC); the server requires it of new names".into()
    } else {
        return Ok(name);
    };
    Err(Failure::new(
        ErrorKind::BadName,
        format!("name '{}' {why}", escape(name)),
    ))
}

/// Escapes what [`needs_escape`] (and only that), so that text from a peer can neither drive
/// the terminal nor pass for other text: `\n`, `\u{1b}`, `\u{202e}`. Texts longer than 80
/// characters are cut, to keep error lines readable; [`escape_full`] shows them whole.
///
/// A name cannot hold `\`, so its escaped form reads back unambiguously.
pub fn escape(text: &str) -> String {
    escape_up_to(text, SHOWN)
}

/// [`escape`], never cut: for a listing's names and paths, which a user may need whole.
pub fn escape_full(text: &str) -> String {
    escape_up_to(text, usize::MAX)
}

/// The one escaping, of at most `limit` characters of `text` (then `…`).
fn escape_up_to(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == limit {
            out.push('…');
            break;
        }
        if needs_escape(c) {
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

    #[test]
    fn the_format_list_is_exactly_unicode_category_cf() {
        use unicode_general_category::{GeneralCategory, get_general_category};
        let mut wrong = Vec::new();
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let cf = get_general_category(c) == GeneralCategory::Format;
            if is_format(c) != cf {
                wrong.push(format!("U+{:04X} (Cf: {cf})", u32::from(c)));
            }
        }
        assert!(
            wrong.is_empty(),
            "FORMAT disagrees with Unicode on {wrong:?}"
        );
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        let named = [
            '\u{202E}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{061C}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
            '\u{00AD}',
        ];
        for c in named {
            assert!(needs_escape(c), "U+{:04X}", u32::from(c));
            let shown = escape_full(&format!("a{c}b"));
            assert_eq!(shown, format!("a\\u{{{:x}}}b", u32::from(c)));
        }
        assert_eq!(escape("invoice\u{202e}gpj.exe"), "invoice\\u{202e}gpj.exe");
        for plain in ["café", "日本語", "ünï ✓", "emoji 🎉", "a b.txt", "x-y_z"] {
            assert_eq!(escape_full(plain), plain);
        }
        // Escaping twice changes nothing: the escapes are plain ASCII.
        let once = escape_full("x\u{202e}\n\u{feff}y");
        assert_eq!(escape_full(&once), once);
    }

    #[test]
    fn escape_cuts_long_texts_and_escape_full_does_not() {
        let long = "é".repeat(100);
        assert_eq!(escape(&long).chars().count(), 81);
        assert_eq!(escape_full(&long), long);
    }

    #[test]
    fn new_names_must_be_visible_and_in_nfc() {
        let nfd = "cafe\u{301}";
        for bad in [
            "invoice\u{202e}gpj.exe",
            "zero\u{200b}width",
            "\u{feff}bom",
            "isolate\u{2066}x\u{2069}",
            "mark\u{200f}",
            "line\u{2028}sep",
            nfd,
        ] {
            let err = check_new(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadName, "{bad:?}");
            assert!(!err.message.chars().any(needs_escape), "{err}");
        }
        assert!(
            check_new("a\u{202e}b")
                .unwrap_err()
                .message
                .contains("U+202E")
        );
        assert!(check_new(nfd).unwrap_err().message.contains("NFC"));
        assert!(check_new("a/b").is_err() && check_new("..").is_err());
        for ok in ["café", "日本語.txt", "ünï ✓", "emoji 🎉", ".profile"] {
            assert_eq!(check_new(ok), Ok(ok));
            assert_eq!(validate(ok), Ok(ok));
        }
        // Existing names on disk pass the plain rules, so they stay listable.
        assert!(validate("invoice\u{202e}gpj.exe").is_ok() && validate(nfd).is_ok());
    }
}
