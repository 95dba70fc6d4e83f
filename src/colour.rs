//! Colour on stderr, decided once in `main` (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`,
//! whether stderr is a terminal) and applied to finished lines as they are written:
//! Cargo's verbs (`   Compiling`, `    Finished`), cmod's own `error:`/`warning:`/`note:`
//! labels, and the compiler's diagnostics (`file:line:col: error: ...`). Build steps
//! never see it (their arguments, and so their outputs, do not depend on the terminal),
//! and stdout (JSON, paths, logs for scripts) is never coloured.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (or `CLICOLOR_FORCE` forces it).
    #[default]
    Auto,
    /// Always, even into a pipe or file.
    Always,
    /// Never.
    Never,
}

static STDERR: OnceLock<bool> = OnceLock::new();

/// Whether stderr gets colour, from the flag and the environment: `always`/`never` win;
/// under `auto` a non-empty `NO_COLOR` turns it off, then a `CLICOLOR_FORCE` other than
/// `0` turns it on, else a terminal (not `TERM=dumb`) decides.
pub fn decide(choice: ColorChoice, env: impl Fn(&str) -> Option<String>, tty: bool) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("NO_COLOR") => false,
        ColorChoice::Auto if set("CLICOLOR_FORCE") => {
            env("CLICOLOR_FORCE").is_some_and(|v| v != "0")
        }
        ColorChoice::Auto => tty && env("TERM").as_deref() != Some("dumb"),
    }
}

/// Decide for this process (once, in `main`).
pub fn init(choice: ColorChoice) {
    let on = decide(
        choice,
        |k| std::env::var(k).ok(),
        std::io::stderr().is_terminal(),
    );
    let _ = STDERR.set(on);
}

/// Whether stderr is coloured.
pub fn enabled() -> bool {
    STDERR.get().copied().unwrap_or(false)
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[1;32m";
const YELLOW: &str = "\x1b[1;33m";
const CYAN: &str = "\x1b[1;36m";
const BLUE: &str = "\x1b[1;34m";

/// `text` with its verbs, labels and diagnostics coloured (unchanged if colour is off).
pub fn paint_if_enabled(text: &str) -> std::borrow::Cow<'_, str> {
    if enabled() {
        std::borrow::Cow::Owned(paint(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `text` coloured line by line.
pub fn paint(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        paint_line(line, &mut out);
    }
    out
}

fn label_colour(label: &str) -> Option<&'static str> {
    match label {
        "error" | "fatal error" => Some(RED),
        "warning" => Some(YELLOW),
        "note" | "help" => Some(CYAN),
        _ => None,
    }
}

fn paint_line(line: &str, out: &mut String) {
    // `    Finished ...`: a capitalised verb right-aligned in 12 columns.
    let verb_end = line.find(|c: char| c != ' ').and_then(|start| {
        let end = start + line[start..].find(' ')?;
        let verb = &line[start..end];
        let capital = verb.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        (end == 12 && capital && verb.chars().all(|c| c.is_ascii_alphabetic())).then_some(end)
    });
    if let Some(end) = verb_end {
        let verb = line[..end].trim_start();
        let colour = match verb {
            "Failed" | "Damaged" | "Differs" => RED,
            "Blocking" => CYAN,
            _ => GREEN,
        };
        out.push_str(&format!(
            "{}{colour}{verb}{RESET}{}",
            &line[..end - verb.len()],
            &line[end..]
        ));
        return;
    }
    // `error: message`, `warning: ...`, `note: ...` (cmod's and clang's driver's).
    for label in ["error", "warning", "note", "help"] {
        if let Some(rest) = line.strip_prefix(label).and_then(|r| r.strip_prefix(':')) {
            let colour = label_colour(label).unwrap_or(BOLD);
            out.push_str(&format!("{colour}{label}{RESET}:{BOLD}{rest}{RESET}"));
            return;
        }
    }
    // `  = help: ...` and `  --> file:line:col`.
    if let Some(rest) = line.strip_prefix("  = help:") {
        out.push_str(&format!("  = {CYAN}help{RESET}:{rest}"));
        return;
    }
    if let Some(rest) = line.strip_prefix("  --> ") {
        out.push_str(&format!("  {BLUE}-->{RESET} {rest}"));
        return;
    }
    // The compiler's `file:line:col: error: message`.
    for label in ["fatal error", "error", "warning", "note"] {
        let marker = format!(": {label}: ");
        if let Some(at) = line.find(&marker) {
            let location = &line[..at];
            let looks_located = location.split(':').count() >= 2 && !location.contains(' ');
            if looks_located {
                let colour = label_colour(label).unwrap_or(BOLD);
                let message = &line[at + marker.len()..];
                out.push_str(&format!(
                    "{BOLD}{location}:{RESET} {colour}{label}:{RESET} {BOLD}{message}{RESET}"
                ));
                return;
            }
        }
    }
    out.push_str(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_flag_then_no_color_then_clicolor_force_then_the_terminal_decide() {
        use ColorChoice::*;
        assert!(decide(Always, env(&[("NO_COLOR", "1")]), false));
        assert!(!decide(Never, env(&[("CLICOLOR_FORCE", "1")]), true));
        assert!(!decide(
            Auto,
            env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]),
            true
        ));
        assert!(decide(
            Auto,
            env(&[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]),
            false
        ));
        assert!(!decide(Auto, env(&[("CLICOLOR_FORCE", "0")]), true));
        assert!(decide(Auto, env(&[]), true));
        assert!(!decide(Auto, env(&[("TERM", "dumb")]), true));
        assert!(!decide(Auto, env(&[]), false));
    }

    #[test]
    fn verbs_labels_and_diagnostics_are_painted_and_nothing_else() {
        assert_eq!(
            paint("    Finished 6 derivations"),
            format!("    {GREEN}Finished{RESET} 6 derivations")
        );
        assert_eq!(
            paint("      Failed 1"),
            format!("      {RED}Failed{RESET} 1")
        );
        assert_eq!(
            paint("error: bad"),
            format!("{RED}error{RESET}:{BOLD} bad{RESET}")
        );
        assert_eq!(
            paint("src/a.cpp:2:30: error: expected expression"),
            format!(
                "{BOLD}src/a.cpp:2:30:{RESET} {RED}error:{RESET} {BOLD}expected expression{RESET}"
            )
        );
        assert_eq!(
            paint("  = help: run it"),
            format!("  = {CYAN}help{RESET}: run it")
        );
        // Plain text, a code snippet and a verb not in its column stay as they are.
        for plain in [
            "    7 | int broken( { }",
            "hello world",
            "Finished early",
            "a note: here",
        ] {
            assert_eq!(paint(plain), plain);
        }
    }
}
