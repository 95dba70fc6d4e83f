//! Reporting a realisation: JSON lines on stdout (`--message-format json`), or human
//! progress on stderr — a progress bar on a terminal, one line per step otherwise.

mod bars;
mod events;
mod human;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use cmod_sandbox::{Enforcement, Mode};
use cmod_store::realise::{Event, Reporter};
use serde_json::json;

pub use cmod_ops::realise::Summary;

use crate::cli::MessageFormat;
use crate::source_paths::SourceRoots;
use bars::Bars;

/// Reports events in the chosen format.
pub struct Progress {
    format: MessageFormat,
    /// The store directory as shown in messages, with a trailing `/`.
    store_prefix: String,
    /// The bars on a terminal, once the plan is known.
    bars: Mutex<Option<Bars>>,
    started: Instant,
    /// JSON lines not yet on stdout (see [`Pending`]).
    out: Mutex<Pending>,
    substituted: std::sync::atomic::AtomicUsize,
    /// Compiler warnings shown in this run (built steps' and replayed fresh ones').
    warnings: std::sync::atomic::AtomicUsize,
    /// Maps build-directory paths in failed steps' diagnostics to the user's files.
    source_roots: OnceLock<SourceRoots>,
    /// With `--timings`: the recorder, and the jobs it reports.
    timings: Option<(crate::timings::Recorder, usize)>,
    /// Where the timings report goes (the workspace root), once evaluation ended.
    report_root: OnceLock<PathBuf>,
    /// Whether the summary has been reported.
    finished: std::sync::atomic::AtomicBool,
}

/// JSON lines not yet written. `fresh` lines (thousands on a large graph, reported
/// while the first steps start) wait here and go out in one write with the next other
/// line, or once [`Pending::FLUSH_AT`] bytes are queued: one write per line cost more
/// than the rest of a no-op's report. While lines are held ([`Progress::hold_lines`]),
/// every line waits.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// Human lines (`-v`'s `Fresh` lines) held while collecting.
    human: String,
    collecting: bool,
}

impl Pending {
    const FLUSH_AT: usize = 64 * 1024;
}

impl Drop for Progress {
    /// Lines still queued (a command that ends without a last message) are not lost.
    fn drop(&mut self) {
        self.flush_json();
    }
}

impl Progress {
    pub fn new(format: MessageFormat, store_dir: PathBuf) -> Progress {
        Progress {
            format,
            store_prefix: store_dir.join("").display().to_string(),
            bars: Mutex::new(None),
            started: Instant::now(),
            out: Mutex::new(Pending::default()),
            substituted: Default::default(),
            warnings: Default::default(),
            source_roots: OnceLock::new(),
            timings: None,
            report_root: OnceLock::new(),
            finished: Default::default(),
        }
    }

    /// Reports for a command run with `run`'s options: with `--timings`, the events are
    /// recorded for the report [`Progress::finish`] writes.
    pub fn for_run(run: &crate::cli::RunOpts, store_dir: PathBuf) -> Progress {
        let mut progress = Progress::new(run.message_format, store_dir);
        if run.timings {
            let recorder = crate::timings::Recorder::new(crate::output::process_start());
            progress.timings = Some((recorder, run.settings().jobs()));
        }
        progress
    }

    /// Evaluation ended: the timings report (if asked for) counts it up to now, and is
    /// written at `workspace_root`.
    /// `scan_time` is the part of evaluation spent scanning units.
    pub fn evaluated(&self, workspace_root: &std::path::Path, scan_time: std::time::Duration) {
        if let Some((recorder, _)) = &self.timings {
            recorder.mark_evaluated(scan_time);
            let _ = self.report_root.set(workspace_root.to_path_buf());
        }
    }

    /// Show the warnings `log` holds (`count` of them) of a step that was built now
    /// (`fresh` false; a JSON `built` line carries them itself) or earlier (`fresh`:
    /// replayed, as Cargo replays cached warnings; JSON gets a `warnings` line).
    pub fn show_warnings(
        &self,
        (drv, name): (&cmod_schema::StorePath, &str),
        derivation: &cmod_schema::derivation::Derivation,
        log: &str,
        count: u32,
        fresh: bool,
    ) {
        self.warnings
            .fetch_add(count as usize, std::sync::atomic::Ordering::Relaxed);
        let shown = self.shown_log(derivation, log);
        match self.format {
            MessageFormat::Json if fresh => self.json_line(json!({
                "reason": "warnings",
                "drv": self.abs(drv),
                "name": name,
                "warnings": count,
                "log": shown,
                "fresh": true,
            })),
            MessageFormat::Json => {}
            MessageFormat::Human => {
                let plural = if count == 1 { "" } else { "s" };
                self.human(&format!(
                    "{}\nwarning: `{name}` generated {count} warning{plural}",
                    shown.trim_end()
                ));
            }
        }
    }

    /// Show failed steps' diagnostics with the user's paths for the sources under `roots`.
    pub fn set_source_roots(&self, roots: SourceRoots) {
        let _ = self.source_roots.set(roots);
    }

    /// A failed step's log as the user should see it.
    fn shown_log(&self, derivation: &cmod_schema::derivation::Derivation, log: &str) -> String {
        match self.source_roots.get() {
            Some(roots) => roots.rewrite(derivation, log),
            None => log.to_string(),
        }
    }

    fn abs(&self, p: &cmod_schema::StorePath) -> String {
        let mut s = String::with_capacity(self.store_prefix.len() + 32 + 1 + p.name().len());
        s.push_str(&self.store_prefix);
        p.append_to(&mut s);
        s
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

    fn difference_json(&self, d: &cmod_store::realise::Difference) -> serde_json::Value {
        json!({
            "output": d.output,
            "stored": self.abs(&d.stored),
            "file": d.file,
            "stored_size": d.stored_size,
            "rebuilt_size": d.rebuilt_size,
            "first_difference": d.first_difference,
            "kept": d.kept,
            "stored_corrupt": d.stored_corrupt,
        })
    }

    /// One human line per differing file of a `--check`.
    pub fn describe_difference(&self, d: &cmod_store::realise::Difference) -> String {
        cmod_ops::realise::describe_difference(d, self.abs(&d.stored))
    }

    /// Write one JSON message line to stdout.
    pub fn json_line(&self, value: serde_json::Value) {
        self.write_json(&value);
    }

    /// Write one JSON message line to stdout, serialised from `value`.
    fn write_json(&self, value: &impl serde::Serialize) {
        self.queue_json(value, false);
    }

    /// Queue one JSON line; unless it may wait (a `fresh` line), write everything
    /// queued. Lines keep their order either way.
    fn queue_json(&self, value: &impl serde::Serialize, may_wait: bool) {
        let mut pending = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if serde_json::to_writer(&mut pending.lines, value).is_err() {
            return;
        }
        pending.lines.push(b'\n');
        let full = pending.lines.len() >= Pending::FLUSH_AT;
        if !pending.collecting && (!may_wait || full) {
            crate::output::stdout_bytes(&pending.lines);
            pending.lines.clear();
        }
    }

    /// Hold every line from now on (JSON lines for stdout, `-v`'s `Fresh` lines for
    /// stderr) until [`Progress::release_lines`].
    fn hold_lines(&self) {
        self.flush_json();
        if let Ok(mut pending) = self.out.lock() {
            pending.collecting = true;
        }
    }

    /// Stop holding lines: write the held ones in one go, or drop them.
    fn release_lines(&self, write: bool) {
        let mut pending = self.out.lock().unwrap_or_else(|e| e.into_inner());
        pending.collecting = false;
        let json = std::mem::take(&mut pending.lines);
        let human = std::mem::take(&mut pending.human);
        if write && !json.is_empty() {
            crate::output::stdout_bytes(&json);
        }
        if write && !human.is_empty() {
            err!("{human}");
        }
    }

    /// A status line that waits while lines are collected.
    fn human_status(&self, line: String) {
        let mut pending = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if pending.collecting {
            pending.human.push_str(&line);
            pending.human.push('\n');
        } else {
            drop(pending);
            self.status(&line);
        }
    }

    /// Write the JSON lines still queued.
    fn flush_json(&self) {
        let mut pending = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.collecting && !pending.lines.is_empty() {
            crate::output::stdout_bytes(&pending.lines);
            pending.lines.clear();
        }
    }

    /// A line for a person (a warning, an error): above the bars on a terminal.
    fn human(&self, line: &str) {
        match self.bars.lock().ok().as_deref() {
            Some(Some(bars)) => bars.println(line),
            _ => errln!("{line}"),
        }
    }

    /// A status line (`Compiling`...), which `-q` silences.
    fn status(&self, line: &str) {
        if !crate::output::quiet() {
            self.human(line);
        }
    }

    /// Run `f` on the bars, if there are bars.
    fn with_bars(&self, f: impl FnOnce(&mut Bars)) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bars) = bars.as_mut() {
                f(bars);
            }
        }
    }

    /// `-v`: the evaluation was skipped, its input journal holding (a line on stderr, with
    /// JSON messages too: their contract is that of any no-op).
    pub fn evaluation_skipped(&self) {
        if crate::output::verbose() {
            self.status(&format!(
                "{:>12} evaluation (no input changed since the last one)",
                "Fresh"
            ));
        }
    }

    /// Whether messages are JSON lines.
    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// Whether the summary has been reported ([`Progress::finish`]).
    pub fn has_finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The summary at the end: the `finished` JSON message or a human line.
    pub fn finish(&self, summary: &Summary) {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(bars) = self.bars.lock().ok().and_then(|mut b| b.take()) {
            bars.clear();
        }
        let report = self.write_timings(summary);
        if let (Some(path), MessageFormat::Json) = (&report, self.format) {
            self.json_line(json!({"reason": "timing-report", "path": path}));
        }
        self.summarise(summary);
        if let (Some(path), MessageFormat::Human) = (&report, self.format) {
            status!("      Timing report saved to {}", path.display());
        }
    }

    /// With `--timings` (and evaluation done), write the report: its path, or `None`
    /// (a failure to write it is a warning, not the build's failure).
    fn write_timings(&self, summary: &Summary) -> Option<PathBuf> {
        let (recorder, jobs) = self.timings.as_ref()?;
        let root = self.report_root.get()?;
        let facts = crate::timings::RunFacts {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            jobs: *jobs,
            success: summary.success,
            built: summary.built,
            fresh: summary.fresh,
            failed: summary.failed,
            checked: summary.checked,
            scanned: summary.scanned,
            scans_substituted: summary.scans_substituted,
        };
        match crate::timings::write(root, &recorder.report(facts)) {
            Ok(path) => Some(path),
            Err(e) => {
                errln!(
                    "warning: cannot write the timings report under {}: {e}",
                    root.display()
                );
                None
            }
        }
    }

    /// The `finished` JSON message or the human `Finished` line.
    fn summarise(&self, summary: &Summary) {
        let secs = self.started.elapsed().as_secs_f64();
        let substituted = self.substituted.load(std::sync::atomic::Ordering::Relaxed);
        let warnings = self.warnings.load(std::sync::atomic::Ordering::Relaxed);
        let Summary {
            success,
            built,
            fresh,
            checked,
            differing,
            failed,
            targets,
            error,
            sandbox,
            scanned,
            scans_substituted,
        } = summary;
        match self.format {
            MessageFormat::Json => self.json_line(json!({
                "reason": "finished",
                "success": success,
                "built": built,
                "fresh": fresh,
                "substituted": substituted,
                "checked": checked,
                "differing": differing,
                "failed": failed,
                "targets": targets.iter().map(|(n, p)| (n.clone(), json!(p))).collect::<serde_json::Map<_, _>>(),
                "out_paths": targets.iter().map(|(_, p)| p).collect::<Vec<_>>(),
                "error": error,
                "sandbox": sandbox.map(|e| json!({
                    "mode": e.mode.as_str(),
                    "landlock_abi": e.landlock_abi,
                })),
                "scanned": scanned,
                "scans_substituted": scans_substituted,
                "warnings": warnings,
                "elapsed_secs": secs,
            })),
            MessageFormat::Human => {
                let verb = if *success { "Finished" } else { "Failed" };
                let total = built + fresh + checked + failed + substituted;
                let mut counts = format!("{built} built, {fresh} fresh");
                if substituted > 0 {
                    counts.push_str(&format!(", {substituted} substituted"));
                }
                if *checked > 0 {
                    counts.push_str(&format!(", {checked} checked ({differing} differing)"));
                }
                let isolation = sandbox
                    .map(|e| format!("; {}", describe_enforcement(&e)))
                    .unwrap_or_default();
                let warned = match warnings {
                    0 => String::new(),
                    1 => "; 1 warning".to_string(),
                    n => format!("; {n} warnings"),
                };
                let line = format!(
                    "{verb:>12} {total} derivations ({counts}, {failed} failed{warned}) in {secs:.2}s{isolation}"
                );
                // A failure's line stays under -q, as Cargo's error does.
                if *success {
                    status!("{line}");
                } else {
                    errln!("{line}");
                }
            }
        }
    }
}

/// Report lock acquisitions blocked for a second (`cmod_store::lock`), as Cargo does:
/// `Blocking waiting for file lock on <what> (<lock file>), held by process <pid>
/// (<command>)` on stderr, and with `json` also a
/// `{"reason":"waiting-for-lock","lock":...,"what":...,"holders":[{"pid":...,"command":...}]}`
/// line on stdout.
pub fn report_lock_waits(json: bool) {
    cmod_store::lock::on_wait(move |w| {
        if json {
            let holders: Vec<serde_json::Value> = w
                .holders
                .iter()
                .map(|h| json!({"pid": h.pid, "command": h.command}))
                .collect();
            let mut line = json!({
                "reason": "waiting-for-lock",
                "lock": w.path,
                "what": w.what,
                "holders": holders,
            })
            .to_string();
            line.push('\n');
            crate::output::stdout_bytes(line.as_bytes());
        }
        errln!("{}", describe_wait(w));
    });
}

/// The human line for a long lock wait.
fn describe_wait(w: &cmod_store::lock::Waiting) -> String {
    let mut line = format!(
        "{:>12} waiting for file lock on {} (`{}`)",
        "Blocking",
        w.what,
        w.path.display()
    );
    for (i, h) in w.holders.iter().enumerate() {
        line.push_str(if i == 0 { ", held by " } else { " and " });
        line.push_str(&format!("process {} (`{}`)", h.pid, h.command));
    }
    line
}

/// How the Finished line names the enforced isolation: `sandbox full, Landlock ABI 7`.
pub fn describe_enforcement(e: &Enforcement) -> String {
    match (e.mode, e.landlock_abi) {
        (Mode::Off, _) => "sandbox off".to_string(),
        (mode, Some(abi)) => format!("sandbox {mode}, Landlock ABI {abi}"),
        (mode, None) => format!("sandbox {mode}, no Landlock"),
    }
}

impl Reporter for Progress {
    fn event(&self, e: &Event<'_>) {
        if let Some((recorder, _)) = &self.timings {
            recorder.record(e);
        }
        if let Event::Warning { message } = e {
            self.human(&format!("warning: {message}"));
            return;
        }
        if let Event::Substituted { .. } = e {
            self.substituted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.format == MessageFormat::Json {
            self.json_event(e);
        } else {
            self.human_event(e);
        }
    }
}

impl Progress {
    /// `e` as a JSON line (a failure's log also on stderr).
    fn json_event(&self, e: &Event<'_>) {
        let v = match e {
            Event::Built {
                drv,
                name,
                derivation,
                outputs,
                log,
                started,
                elapsed,
                speculative,
            } => {
                let started_secs = started.saturating_duration_since(self.started);
                let warnings = cmod_store::memo::warning_count(log);
                self.warnings
                    .fetch_add(warnings as usize, std::sync::atomic::Ordering::Relaxed);
                let mut line = json!({"reason": "built", "drv": self.abs(drv), "name": name, "outputs": self.outputs_json(outputs), "started_secs": started_secs.as_secs_f64(), "elapsed_secs": elapsed.as_secs_f64(), "warnings": warnings});
                if !log.trim().is_empty() {
                    line["log"] = json!(self.shown_log(derivation, log));
                }
                if *speculative {
                    line["speculative"] = json!(true);
                }
                line
            }
            Event::Fresh { drv, name, outputs } => {
                self.fresh_line(drv, name, outputs);
                return;
            }
            Event::Failed {
                drv,
                name,
                derivation,
                log,
                reason,
            } => {
                json!({"reason": "failed", "drv": self.abs(drv), "name": name, "error": reason, "log": self.shown_log(derivation, log)})
            }
            Event::Skipped { drv, name } => {
                json!({"reason": "skipped", "drv": self.abs(drv), "name": name})
            }
            Event::Checked {
                drv,
                name,
                differences,
            } => json!({
                "reason": "checked",
                "drv": self.abs(drv),
                "name": name,
                "identical": differences.is_empty(),
                "differences": differences.iter().map(|d| self.difference_json(d)).collect::<Vec<_>>(),
            }),
            Event::Substituted {
                drv,
                name,
                outputs,
                from,
            } => {
                json!({"reason": "substituted", "drv": self.abs(drv), "name": name, "outputs": self.outputs_json(outputs), "from": from})
            }
            Event::Planned { .. } | Event::Started { .. } | Event::Warning { .. } => return,
        };
        self.json_line(v);
        if let Event::Failed {
            derivation,
            log,
            reason,
            ..
        } = e
        {
            errln!("error: {reason}\n{}", self.shown_log(derivation, log));
        }
    }

    /// A `fresh` line, queued (see [`Pending`]): the hot line of a no-op, serialised
    /// without building a JSON value, keys in the same (sorted) order as the others.
    fn fresh_line(
        &self,
        drv: &cmod_schema::StorePath,
        name: &str,
        outputs: &std::collections::BTreeMap<String, cmod_schema::StorePath>,
    ) {
        #[derive(serde::Serialize)]
        struct Fresh<'a> {
            drv: String,
            name: &'a str,
            outputs: std::collections::BTreeMap<&'a str, String>,
            reason: &'static str,
        }
        self.queue_json(
            &Fresh {
                drv: self.abs(drv),
                name,
                outputs: outputs
                    .iter()
                    .map(|(k, p)| (k.as_str(), self.abs(p)))
                    .collect(),
                reason: "fresh",
            },
            true,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmod_store::lock::{Holder, Waiting};

    #[test]
    fn a_lock_wait_names_the_lock_and_its_holders() {
        let mut w = Waiting {
            path: "/s/v1/locks/gc.lock".into(),
            what: "the store's GC lock".into(),
            holders: vec![],
        };
        assert_eq!(
            describe_wait(&w),
            "    Blocking waiting for file lock on the store's GC lock (`/s/v1/locks/gc.lock`)"
        );
        w.holders = vec![
            Holder {
                pid: 7,
                command: "cmod realise".into(),
            },
            Holder {
                pid: 9,
                command: "cmod copy".into(),
            },
        ];
        assert!(describe_wait(&w).ends_with(
            "(`/s/v1/locks/gc.lock`), held by process 7 (`cmod realise`) and process 9 (`cmod copy`)"
        ));
    }
}
