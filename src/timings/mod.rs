//! `--timings`: what a realisation did and when, recorded from the realiser's events,
//! and written as a self-contained HTML report (see [`html`]) like Cargo's: the steps on
//! a timeline per worker, the critical path, the counts, the slowest steps and the time
//! spent before the first step (evaluation: manifests, dependencies, scans).

mod html;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use cmod_schema::derivation::{Derivation, InputFrom};
use cmod_store::realise::Event;

/// How a timed step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Built,
    /// Rebuilt for `--check` and compared.
    Checked,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Built => "built",
            Outcome::Checked => "checked",
            Outcome::Failed => "failed",
        }
    }
}

/// One step that ran in this realisation.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// The `.drv` path (its store name), which other steps' inputs name.
    pub drv: String,
    pub outcome: Outcome,
    /// Seconds from the process's start to the step's start.
    pub start: f64,
    pub duration: f64,
    /// The `.drv` paths of the derivations whose outputs it uses.
    pub inputs: Vec<String>,
}

impl Step {
    pub fn end(&self) -> f64 {
        self.start + self.duration
    }
}

/// What the events said so far.
#[derive(Default)]
struct Recorded {
    /// Steps started and not yet ended: `.drv` → when, and the `.drv`s of its inputs.
    running: HashMap<String, (Instant, Vec<String>)>,
    steps: Vec<Step>,
    /// Steps whose outputs came from a substituter: (name, its URL).
    substituted: Vec<(String, String)>,
    evaluated: Option<Instant>,
    /// The part of evaluation spent scanning units.
    scan_time: Option<Duration>,
}

/// Records the events of a realisation for its report. Callable from worker threads.
pub struct Recorder {
    origin: Instant,
    recorded: Mutex<Recorded>,
}

/// What the command knows about the run as a whole, beside the events.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// The command line, as shown in the report.
    pub command: String,
    pub jobs: usize,
    pub success: bool,
    /// The counts of the `finished` message.
    pub built: usize,
    pub fresh: usize,
    pub failed: usize,
    pub checked: usize,
    /// Units scanned with clang-scan-deps, and scans taken from a substituter.
    pub scanned: usize,
    pub scans_substituted: usize,
}

/// Everything the report shows, computed.
#[derive(Debug, Clone)]
pub struct Report {
    pub facts: RunFacts,
    /// Steps whose outputs came from a substituter: (name, its URL), by name.
    pub substituted: Vec<(String, String)>,
    /// The steps that ran, by start time.
    pub steps: Vec<Step>,
    /// Each step's worker lane (same order as `steps`).
    pub lanes: Vec<usize>,
    /// The critical path: indices into `steps`, first step first.
    pub critical: Vec<usize>,
    /// Seconds from the process's start to the end of evaluation, if it was marked.
    pub evaluation: Option<f64>,
    /// Seconds of evaluation spent scanning units, if it was marked.
    pub scan: Option<f64>,
    /// Seconds from the process's start to the first step's start.
    pub first_step: Option<f64>,
    /// Seconds from the process's start to the report.
    pub wall: f64,
    /// When the run ended, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub finished_utc: String,
}

impl Recorder {
    /// A recorder whose times count from `origin` (the process's start).
    pub fn new(origin: Instant) -> Recorder {
        Recorder {
            origin,
            recorded: Mutex::new(Recorded::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note that evaluation (manifests, dependencies, scans) ended now.
    pub fn mark_evaluated(&self, scan_time: Duration) {
        let mut r = self.lock();
        r.evaluated.get_or_insert_with(Instant::now);
        r.scan_time.get_or_insert(scan_time);
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64()
    }

    /// Record one event.
    pub fn record(&self, e: &Event<'_>) {
        let mut r = self.lock();
        match e {
            Event::Started {
                drv, derivation, ..
            } => {
                let inputs = input_drvs(derivation);
                r.running.insert(drv.to_string(), (Instant::now(), inputs));
            }
            Event::Built {
                drv,
                name,
                derivation,
                started,
                elapsed,
                ..
            } => {
                // Its inputs were listed when it started.
                let inputs = match r.running.remove(&drv.to_string()) {
                    Some((_, inputs)) => inputs,
                    None => input_drvs(derivation),
                };
                r.steps.push(Step {
                    name: name.to_string(),
                    drv: drv.to_string(),
                    outcome: Outcome::Built,
                    start: self.secs(*started),
                    duration: elapsed.as_secs_f64(),
                    inputs,
                });
            }
            Event::Checked { drv, name, .. } => self.ended(&mut r, drv, name, Outcome::Checked),
            Event::Failed { drv, name, .. } => self.ended(&mut r, drv, name, Outcome::Failed),
            Event::Substituted { name, from, .. } => {
                r.substituted.push((name.to_string(), from.to_string()))
            }
            _ => {}
        }
    }

    /// A step that ended without its own timing: timed from its `Started` event, with the
    /// inputs its derivation named (a step that failed before it started, resolving its
    /// inputs, took no time).
    fn ended(&self, r: &mut Recorded, drv: &cmod_schema::StorePath, name: &str, outcome: Outcome) {
        let now = Instant::now();
        let (started, inputs) = r
            .running
            .remove(&drv.to_string())
            .unwrap_or_else(|| (now, Vec::new()));
        r.steps.push(Step {
            name: name.to_string(),
            drv: drv.to_string(),
            outcome,
            start: self.secs(started),
            duration: now.saturating_duration_since(started).as_secs_f64(),
            inputs,
        });
    }

    /// The report of what was recorded, with the run's `facts`.
    pub fn report(&self, facts: RunFacts) -> Report {
        let r = self.lock();
        let mut steps = r.steps.clone();
        steps.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.name.cmp(&b.name)));
        let lanes = assign_lanes(&steps);
        let critical = critical_path(&steps);
        Report {
            facts,
            substituted: {
                let mut s = r.substituted.clone();
                s.sort();
                s
            },
            evaluation: r.evaluated.map(|t| self.secs(t)),
            scan: r.scan_time.map(|d| d.as_secs_f64()),
            first_step: steps.first().map(|s| s.start),
            lanes,
            critical,
            steps,
            wall: self.secs(Instant::now()),
            finished_utc: utc(SystemTime::now(), false),
        }
    }
}

/// The `.drv` paths a derivation takes outputs of.
fn input_drvs(derivation: &Derivation) -> Vec<String> {
    let mut v: Vec<String> = derivation
        .inputs
        .iter()
        .filter_map(|i| match &i.from {
            InputFrom::Drv { drv, .. } => Some(drv.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A lane per step (`steps` sorted by start): the first lane free when it starts. Steps
/// of one worker never overlap, so no more lanes are used than steps ran at once, which
/// is at most the jobs.
pub fn assign_lanes(steps: &[Step]) -> Vec<usize> {
    // Clock readings of different threads: a step may start a hair before the previous
    // one of its worker is reported ended.
    const SLACK: f64 = 1e-4;
    let mut lane_ends: Vec<f64> = Vec::new();
    steps
        .iter()
        .map(
            |s| match lane_ends.iter().position(|&end| end <= s.start + SLACK) {
                Some(lane) => {
                    lane_ends[lane] = s.end();
                    lane
                }
                None => {
                    lane_ends.push(s.end());
                    lane_ends.len() - 1
                }
            },
        )
        .collect()
}

/// The longest chain of steps by total duration, each using the previous one's outputs:
/// indices into `steps` (sorted by start), first step first. Empty when nothing ran.
pub fn critical_path(steps: &[Step]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.drv.as_str(), i))
        .collect();
    // An input's step started before its dependent did: by start order, inputs come first.
    let mut longest = vec![0.0f64; steps.len()];
    let mut via: Vec<Option<usize>> = vec![None; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        let best = s
            .inputs
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .filter(|&j| j < i)
            .max_by(|&a, &b| longest[a].total_cmp(&longest[b]));
        longest[i] = s.duration + best.map_or(0.0, |j| longest[j]);
        via[i] = best;
    }
    let Some(mut at) = (0..steps.len()).max_by(|&a, &b| longest[a].total_cmp(&longest[b])) else {
        return Vec::new();
    };
    let mut path = vec![at];
    while let Some(prev) = via[at] {
        path.push(prev);
        at = prev;
    }
    path.reverse();
    path
}

/// A UTC time as `2026-12-05T14:40:15Z`, or for a file name `20261205T144015.123Z`
/// (with milliseconds: two runs in a second keep two reports).
pub fn utc(t: SystemTime, compact: bool) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if compact {
        let ms = since.subsec_millis();
        format!("{year:04}{month:02}{day:02}T{h:02}{m:02}{s:02}.{ms:03}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// Write `report` under `<root>/.cmod/timings/`: `cmod-timing-<UTC time>.html`, and a
/// copy as `cmod-timing.html` (the latest). Returns the first's path.
pub fn write(root: &Path, report: &Report) -> std::io::Result<PathBuf> {
    let dir = root.join(".cmod").join("timings");
    std::fs::create_dir_all(&dir)?;
    let page = html::render(report);
    let path = dir.join(format!("cmod-timing-{}.html", utc(SystemTime::now(), true)));
    std::fs::write(&path, &page)?;
    // The latest, replaced whole (never seen half-written).
    let latest = dir.join("cmod-timing.html");
    let tmp = dir.join(".cmod-timing.html.tmp");
    std::fs::write(&tmp, &page)?;
    std::fs::rename(&tmp, &latest)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, start: f64, duration: f64, inputs: &[&str]) -> Step {
        Step {
            name: name.into(),
            drv: format!("{name}.drv"),
            outcome: Outcome::Built,
            start,
            duration,
            inputs: inputs.iter().map(|i| format!("{i}.drv")).collect(),
        }
    }

    #[test]
    fn lanes_reuse_a_worker_once_its_step_ended() {
        let steps = [
            step("a", 0.0, 1.0, &[]),
            step("b", 0.0, 2.0, &[]),
            step("c", 1.0, 1.0, &["a"]),
            step("d", 2.0, 1.0, &["b", "c"]),
        ];
        assert_eq!(assign_lanes(&steps), vec![0, 1, 0, 0]);
    }

    #[test]
    fn the_critical_path_is_the_longest_chain_of_inputs() {
        // a(1) -> c(1) -> d(1) is 3s; b(2.5) -> d(1) is 3.5s.
        let steps = [
            step("a", 0.0, 1.0, &[]),
            step("b", 0.0, 2.5, &[]),
            step("c", 1.0, 1.0, &["a"]),
            step("d", 2.5, 1.0, &["b", "c"]),
        ];
        assert_eq!(critical_path(&steps), vec![1, 3]);
        assert!(critical_path(&[]).is_empty());
    }

    #[test]
    fn utc_times_are_civil_dates() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_395_215_042);
        assert_eq!(utc(t, false), "2026-12-04T14:40:15Z");
        assert_eq!(utc(t, true), "20261204T144015.042Z");
        assert_eq!(utc(SystemTime::UNIX_EPOCH, false), "1970-01-01T00:00:00Z");
    }
}
