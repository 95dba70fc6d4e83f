//! Reporting a realisation: JSON lines on stdout (`--message-format json`), or human
//! progress on stderr — a progress bar on a terminal, one line per step otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use cmod_store::realise::{Event, Reporter};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::MessageFormat;

/// Reports events in the chosen format.
pub struct Progress {
    format: MessageFormat,
    store_dir: PathBuf,
    bar: Mutex<Option<ProgressBar>>,
    started: Instant,
    out: Mutex<()>,
}

impl Progress {
    pub fn new(format: MessageFormat, store_dir: PathBuf) -> Progress {
        Progress {
            format,
            store_dir,
            bar: Mutex::new(None),
            started: Instant::now(),
            out: Mutex::new(()),
        }
    }

    fn abs(&self, p: &cmod_schema::StorePath) -> String {
        self.store_dir.join(p.to_string()).display().to_string()
    }

    fn outputs_json(
        &self,
        outputs: &std::collections::BTreeMap<String, cmod_schema::StorePath>,
    ) -> serde_json::Value {
        outputs
            .iter()
            .map(|(k, p)| (k.clone(), json!(self.abs(p))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Write one JSON message line to stdout.
    pub fn json_line(&self, value: serde_json::Value) {
        let _guard = self.out.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
        let _ = stdout.flush();
    }

    fn human(&self, line: &str) {
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// The summary at the end: the `finished` JSON message or a human line.
    pub fn finish(
        &self,
        success: bool,
        built: usize,
        fresh: usize,
        failed: usize,
        targets: serde_json::Value,
    ) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        match self.format {
            MessageFormat::Json => self.json_line(json!({"reason": "finished", "success": success, "built": built, "fresh": fresh, "failed": failed, "targets": targets, "elapsed_secs": secs})),
            MessageFormat::Human => {
                let verb = if success { "Finished" } else { "Failed" };
                eprintln!("{verb:>12} {} derivations ({built} built, {fresh} fresh, {failed} failed) in {secs:.2}s", built + fresh + failed);
            }
        }
    }
}

impl Reporter for Progress {
    fn event(&self, e: &Event<'_>) {
        if self.format == MessageFormat::Json {
            let v = match e {
                Event::Built {
                    drv,
                    name,
                    outputs,
                    elapsed,
                } => {
                    json!({"reason": "built", "drv": self.abs(drv), "name": name, "outputs": self.outputs_json(outputs), "elapsed_secs": elapsed.as_secs_f64()})
                }
                Event::Fresh { drv, name, outputs } => {
                    json!({"reason": "fresh", "drv": self.abs(drv), "name": name, "outputs": self.outputs_json(outputs)})
                }
                Event::Failed {
                    drv,
                    name,
                    log,
                    reason,
                } => {
                    json!({"reason": "failed", "drv": self.abs(drv), "name": name, "error": reason, "log": log})
                }
                Event::Skipped { drv, name } => {
                    json!({"reason": "skipped", "drv": self.abs(drv), "name": name})
                }
                Event::Planned { .. } | Event::Started { .. } => return,
            };
            self.json_line(v);
            if let Event::Failed { log, reason, .. } = e {
                eprintln!("error: {reason}\n{log}");
            }
            return;
        }
        match e {
            Event::Planned { total } => {
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::new(*total as u64);
                    if let Ok(style) = ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {pos}/{len} {wide_msg}",
                    ) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_prefix("Building");
                    if let Ok(mut b) = self.bar.lock() {
                        *b = Some(bar);
                    }
                }
            }
            Event::Started { name, .. } => match self.bar.lock().ok().and_then(|b| b.clone()) {
                Some(bar) => bar.set_message(name.to_string()),
                None => eprintln!("{:>12} {name}", "Compiling"),
            },
            Event::Built { .. } | Event::Fresh { .. } | Event::Skipped { .. } => {
                if let Some(bar) = self.bar.lock().ok().and_then(|b| b.clone()) {
                    bar.inc(1);
                }
            }
            Event::Failed {
                name, log, reason, ..
            } => {
                let mut text = format!("error: {reason}\n  --> while building {name}\n");
                for l in log.lines() {
                    text.push_str(l);
                    text.push('\n');
                }
                self.human(text.trim_end());
            }
        }
    }
}
