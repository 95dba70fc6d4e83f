//! Events for a person on stderr: `Compiling` lines (and on a terminal the bars, see
//! [`super::bars`]), warnings, failures; `-q` and `-v` choose how much.

use std::io::IsTerminal;

use cmod_store::realise::Event;

use super::{Bars, Progress};

impl Progress {
    /// A step started: its `Compiling` line (and with `-v` its command line), and on a
    /// terminal its running line.
    fn started(
        &self,
        drv: &cmod_schema::StorePath,
        name: &str,
        derivation: &cmod_schema::derivation::Derivation,
    ) {
        let verb = match derivation.kind {
            cmod_schema::derivation::StepKind::Generate => "Generating",
            _ => "Compiling",
        };
        self.status(&format!("{verb:>12} {name}"));
        if crate::output::verbose() {
            self.status(&format!("{:>12} `{}`", "Running", command_line(derivation)));
        }
        self.with_bars(|b| b.started(drv.to_string(), name));
    }

    /// `e` for a person: on a terminal, the bars (see [`Bars`]) under permanent lines;
    /// else one line per step. `-q` shows only warnings and errors; `-v` also the
    /// fresh steps and each built step's time.
    pub(super) fn human_event(&self, e: &Event<'_>) {
        match e {
            Event::Planned { total } => {
                if std::io::stderr().is_terminal() && !crate::output::quiet() {
                    if let Ok(mut b) = self.bars.lock() {
                        *b = Some(Bars::new(*total));
                    }
                }
            }
            Event::Started {
                drv,
                name,
                derivation,
            } => self.started(drv, name, derivation),
            Event::Checked {
                drv,
                name,
                differences,
            } => {
                for d in differences.iter() {
                    self.human(&format!(
                        "{:>12} {name}: {}",
                        "Differs",
                        self.describe_difference(d)
                    ));
                }
                self.with_bars(|b| b.ended(Some(drv.to_string())));
            }
            Event::Substituted {
                drv, name, from, ..
            } => {
                self.status(&format!("{:>12} {name} from {from}", "Substituted"));
                // Its running line, if one was shown, goes.
                self.with_bars(|b| b.ended(Some(drv.to_string())));
            }
            Event::Warning { .. } => {}
            Event::Built {
                drv,
                name,
                derivation,
                log,
                elapsed,
                ..
            } => {
                let count = cmod_store::memo::warning_count(log);
                if count > 0 {
                    self.show_warnings((drv, name), derivation, log, count, false);
                }
                if crate::output::verbose() {
                    let secs = elapsed.as_secs_f64();
                    self.status(&format!("{:>12} {name} in {secs:.2}s", "Built"));
                }
                self.with_bars(|b| b.ended(Some(drv.to_string())));
            }
            Event::Fresh { name, .. } => {
                if crate::output::verbose() {
                    self.human_status(format!("{:>12} {name}", "Fresh"));
                }
                self.with_bars(|b| b.ended(None));
            }
            Event::Skipped { .. } => self.with_bars(|b| b.ended(None)),
            Event::Failed {
                drv,
                name,
                derivation,
                log,
                reason,
            } => {
                self.with_bars(|b| b.ended(Some(drv.to_string())));
                let mut text = format!("error: {reason}\n  --> while building {name}\n");
                for l in self.shown_log(derivation, log).lines() {
                    text.push_str(l);
                    text.push('\n');
                }
                self.human(text.trim_end());
            }
        }
    }
}

/// A step's command line as `-v` shows it: the toolchain program (`c++`, `ar`) and its
/// arguments, quoted where a shell would need it (`@builddir@` is the step's build
/// directory, as `cmod show-derivation` shows).
fn command_line(derivation: &cmod_schema::derivation::Derivation) -> String {
    let tool = match derivation.tool {
        cmod_schema::derivation::Tool::Cxx => "c++",
        cmod_schema::derivation::Tool::Ar => "ar",
        cmod_schema::derivation::Tool::Program => derivation.program_input().unwrap_or("run"),
    };
    let mut line = tool.to_string();
    for arg in &derivation.args {
        line.push(' ');
        let plain = arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=+/.,:@%".contains(c));
        if plain && !arg.is_empty() {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', "'\\''"));
            line.push('\'');
        }
    }
    line
}
