//! Colour on a terminal: errors in red, plain when the stream is not a terminal or `NO_COLOR`
//! is set (<https://no-color.org>: any value but the empty string).

use std::ffi::OsString;

/// Whether, and how, to colour what goes to one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paint {
    color: bool,
}

impl Paint {
    /// Colour when `is_terminal`, unless the environment's `NO_COLOR` says otherwise.
    pub fn new(is_terminal: bool) -> Paint {
        Paint::with(is_terminal, std::env::var_os("NO_COLOR"))
    }

    /// Colour when `is_terminal` and `no_color` (the variable's value) is unset or empty.
    pub fn with(is_terminal: bool, no_color: Option<OsString>) -> Paint {
        Paint {
            color: is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// An error line, red when colouring.
    pub fn error(self, line: &str) -> String {
        if self.color {
            format!("\x1b[31m{line}\x1b[0m")
        } else {
            line.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_only_on_a_terminal_without_no_color() {
        let red = "\x1b[31merror: x\x1b[0m";
        assert_eq!(Paint::with(true, None).error("error: x"), red);
        assert_eq!(Paint::with(true, Some("".into())).error("error: x"), red);
        assert_eq!(
            Paint::with(true, Some("1".into())).error("error: x"),
            "error: x"
        );
        assert_eq!(Paint::with(false, None).error("error: x"), "error: x");
    }
}
