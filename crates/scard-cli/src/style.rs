//! Colour for people: only when the output goes to a terminal, `NO_COLOR` is not set
//! (<https://no-color.org>) and `TERM` is not `dumb`. Pipes, files and `--json` get plain text.

use std::io::IsTerminal;

/// What a word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// Passed, verified, eligible.
    Good,
    /// Failed, refused.
    Bad,
    /// Skipped, not applicable.
    Quiet,
}

/// Whether standard output gets colour.
pub(crate) fn stdout() -> bool {
    wanted(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

/// Whether standard error gets colour.
pub(crate) fn stderr() -> bool {
    wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

fn wanted(
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    // no-color.org: set and not empty means no colour.
    let refused = no_color.is_some_and(|v| !v.is_empty());
    terminal && !refused && term.is_none_or(|t| t != "dumb")
}

/// `text` in the tone's colour (SGR, ECMA-48 §8.3.117) when `on`, else unchanged. Padding
/// must be applied before: the escape codes have no width on screen.
pub(crate) fn paint(text: &str, tone: Tone, on: bool) -> String {
    if !on {
        return text.to_owned();
    }
    let sgr = match tone {
        Tone::Good => "32",
        Tone::Bad => "1;31",
        Tone::Quiet => "2",
    };
    format!("\u{1b}[{sgr}m{text}\u{1b}[0m")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_that_wants_it() {
        assert!(wanted(true, None, Some(OsStr::new("xterm-256color"))));
        assert!(wanted(true, Some(OsStr::new("")), None));
        assert!(!wanted(false, None, Some(OsStr::new("xterm"))));
        assert!(!wanted(true, Some(OsStr::new("1")), Some(OsStr::new("xterm"))));
        assert!(!wanted(true, None, Some(OsStr::new("dumb"))));
    }

    #[test]
    fn paint_wraps_only_when_on() {
        assert_eq!(paint("pass  ", Tone::Good, false), "pass  ");
        assert_eq!(paint("fail", Tone::Bad, true), "\u{1b}[1;31mfail\u{1b}[0m");
        assert_eq!(paint("skip", Tone::Quiet, true), "\u{1b}[2mskip\u{1b}[0m");
    }
}
