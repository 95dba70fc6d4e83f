//! The `--timings` report as one self-contained HTML page: inline CSS and SVG, no
//! script, nothing fetched. The same data is embedded as JSON
//! (`<script type="application/json" id="cmod-timings">`) for tools.

use std::fmt::Write;

use serde_json::json;

use super::{Report, Step};

/// Pixels of the timeline's time axis, and of one worker lane.
const WIDTH: f64 = 1100.0;
const LANE: f64 = 24.0;
const LABELS: f64 = 70.0;

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.command { font-family: monospace; color: #555; }
table { border-collapse: collapse; } td, th { padding: 2px 12px 2px 0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.counts td:first-child { color: #555; } .summary { display: flex; gap: 64px; }
svg text { font: 11px monospace; }
rect.built { fill: #8fb8de; } rect.checked { fill: #b5a2d8; } rect.failed { fill: #e07a6f; }
svg rect { stroke: #fff; stroke-width: 1; }
rect.evaluation { fill: #d9d9d9; } rect.critical { stroke: #c0392b; stroke-width: 2; }
ol.critical li { font-family: monospace; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }
";

/// The page.
pub fn render(r: &Report) -> String {
    let mut page = String::with_capacity(16 * 1024 + r.steps.len() * 400);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<title>cmod build timings</title><style>");
    page.push_str(STYLE);
    page.push_str("</style></head><body>\n");
    let _ = writeln!(
        page,
        "<h1>cmod build timings</h1><div class=\"command\">{}</div><div>Finished {}</div>",
        escape(&r.facts.command),
        r.finished_utc
    );
    summary(&mut page, r);
    timeline(&mut page, r);
    critical(&mut page, r);
    slowest(&mut page, r);
    every_step(&mut page, r);
    substituted(&mut page, r);
    data(&mut page, r);
    page.push_str("</body></html>\n");
    page
}

/// Escape text for HTML content and attributes.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The counts and the times of the phases.
fn summary(page: &mut String, r: &Report) {
    let f = &r.facts;
    let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.2}s"));
    let building = match (r.first_step, r.steps.iter().map(Step::end).reduce(f64::max)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rows = [
        (
            "result",
            (if f.success { "success" } else { "failed" }).to_string(),
        ),
        ("total-time", format!("{:.2}s", r.wall)),
        ("evaluation-time", secs(r.evaluation)),
        ("scan-time", secs(r.scan)),
        ("first-step-at", secs(r.first_step)),
        ("build-time", secs(building)),
        ("jobs", f.jobs.to_string()),
        (
            "lanes",
            r.lanes.iter().max().map_or(0, |l| l + 1).to_string(),
        ),
        ("built", f.built.to_string()),
        ("fresh", f.fresh.to_string()),
        ("substituted", r.substituted.len().to_string()),
        ("failed", f.failed.to_string()),
        ("checked", f.checked.to_string()),
        ("scanned", f.scanned.to_string()),
        ("scans-substituted", f.scans_substituted.to_string()),
    ];
    let label = |k: &str| match k {
        "result" => "Result",
        "total-time" => "Total time",
        "evaluation-time" => "Evaluation (manifests, dependencies, module scans)",
        "scan-time" => "of which module scans",
        "first-step-at" => "First step started at",
        "build-time" => "Building (first step to last)",
        "jobs" => "Jobs (-j)",
        "lanes" => "Workers busy at once (max)",
        "built" => "Built",
        "fresh" => "Fresh (already in the store)",
        "substituted" => "Substituted (from a cache)",
        "failed" => "Failed",
        "checked" => "Checked (--check)",
        "scanned" => "Units scanned (clang-scan-deps)",
        _ => "Scans from a cache",
    };
    // Times on the left, counts on the right.
    page.push_str("<h2>Summary</h2><div class=\"summary\">");
    for half in [&rows[..8], &rows[8..]] {
        page.push_str("<table class=\"counts\">\n");
        for (key, value) in half {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td class=\"num\" id=\"{key}\">{value}</td></tr>",
                label(key)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</div>\n");
}

/// The steps on their worker lanes, on one time axis from the process's start; the
/// evaluation as a grey band above them.
fn timeline(page: &mut String, r: &Report) {
    let end = r
        .steps
        .iter()
        .map(Step::end)
        .fold(r.wall, f64::max)
        .max(1e-3);
    let scale = WIDTH / end;
    let lanes = r.lanes.iter().max().map_or(0, |l| l + 1);
    let height = LANE * (lanes as f64 + 2.0) + 20.0;
    page.push_str("<h2>Timeline</h2><div class=\"legend\">");
    for (class, what) in [
        ("built", "built"),
        ("failed", "failed"),
        ("checked", "checked"),
        ("evaluation", "evaluation"),
    ] {
        let _ = write!(page, "<svg width=\"12\" height=\"12\"><rect class=\"{class}\" width=\"12\" height=\"12\"/></svg> {what} ");
    }
    page.push_str("; a red outline marks the critical path</div>\n");
    let _ = writeln!(
        page,
        "<svg id=\"timeline\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        WIDTH + LABELS + 10.0
    );
    if let Some(eval) = r.evaluation {
        let _ = writeln!(page, "<text x=\"0\" y=\"16\">evaluate</text><rect class=\"evaluation\" x=\"{LABELS}\" y=\"4\" width=\"{:.1}\" height=\"{}\"><title>evaluation {eval:.2}s</title></rect>", eval * scale, LANE - 6.0);
    }
    for lane in 0..lanes {
        let y = LANE * (lane as f64 + 1.0) + 16.0;
        let _ = writeln!(page, "<text x=\"0\" y=\"{y}\">worker {}</text>", lane + 1);
    }
    axis(page, end, scale, LANE * (lanes as f64 + 1.0) + 14.0);
    for (i, s) in r.steps.iter().enumerate() {
        bar(page, r, i, s, scale);
    }
    page.push_str("</svg>\n");
}

/// One step's bar, labelled with its name where it fits.
fn bar(page: &mut String, r: &Report, i: usize, s: &Step, scale: f64) {
    let lane = r.lanes.get(i).copied().unwrap_or(0);
    let y = LANE * (lane as f64 + 1.0) + 4.0;
    let x = LABELS + s.start * scale;
    let w = (s.duration * scale).max(1.0);
    let critical = if r.critical.contains(&i) {
        " critical"
    } else {
        ""
    };
    let name = escape(&s.name);
    let _ = write!(
        page,
        "<g class=\"step\" data-lane=\"{lane}\"><rect class=\"{}{critical}\" x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\"><title>{name}: {:.2}s from {:.2}s ({})</title></rect>",
        s.outcome.as_str(),
        LANE - 6.0,
        s.duration,
        s.start,
        s.outcome.as_str()
    );
    // About 7 pixels a character of the 11px monospace font.
    let fits = (w / 7.0) as usize;
    if fits >= 4 {
        let shown: String = s.name.chars().take(fits - 1).collect();
        let _ = write!(
            page,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 3.0,
            y + 13.0,
            escape(&shown)
        );
    }
    page.push_str("</g>\n");
}

/// Ticks along the time axis at `y`.
fn axis(page: &mut String, end: f64, scale: f64, y: f64) {
    let step = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|s| end / s <= 12.0)
    .unwrap_or(1800.0);
    let mut t = 0.0;
    while t <= end + 1e-9 {
        let x = LABELS + t * scale;
        let _ = write!(
            page,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{y}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\">{t:.1}s</text>",
            y + 14.0
        );
        t += step;
    }
}

/// The critical path, first step first.
fn critical(page: &mut String, r: &Report) {
    if r.critical.is_empty() {
        let _ = writeln!(
            page,
            "<h2>Critical path</h2><p>No step ran in this build: every one was already in the store (or substituted).</p><ol class=\"critical\" id=\"critical-path\"></ol>"
        );
        return;
    }
    let total: f64 = r.critical.iter().map(|&i| r.steps[i].duration).sum();
    let _ = writeln!(
        page,
        "<h2>Critical path</h2><p>The longest chain of steps, each using the previous one's output: {} step(s), {total:.2}s. Faster builds come from shortening it, not from more jobs.</p><ol class=\"critical\" id=\"critical-path\">",
        r.critical.len()
    );
    for &i in &r.critical {
        let s = &r.steps[i];
        let _ = writeln!(
            page,
            "<li data-name=\"{0}\">{0} ({1:.2}s)</li>",
            escape(&s.name),
            s.duration
        );
    }
    page.push_str("</ol>\n");
}

/// The twenty slowest steps.
fn slowest(page: &mut String, r: &Report) {
    let mut order: Vec<usize> = (0..r.steps.len()).collect();
    order.sort_by(|&a, &b| r.steps[b].duration.total_cmp(&r.steps[a].duration));
    page.push_str("<h2>Slowest steps</h2><table id=\"slowest\"><tr><th>Step</th><th>Time</th><th>Outcome</th></tr>\n");
    for &i in order.iter().take(20) {
        let s = &r.steps[i];
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{:.2}s</td><td>{}</td></tr>",
            escape(&s.name),
            s.duration,
            s.outcome.as_str()
        );
    }
    page.push_str("</table>\n");
}

/// Every step that ran, by start time.
fn every_step(page: &mut String, r: &Report) {
    page.push_str("<h2>Every step</h2><table id=\"steps\"><tr><th>Step</th><th>Start</th><th>Time</th><th>Worker</th><th>Outcome</th></tr>\n");
    for (i, s) in r.steps.iter().enumerate() {
        let _ = writeln!(
            page,
            "<tr class=\"{}\"><td>{}</td><td class=\"num\">{:.2}s</td><td class=\"num\">{:.2}s</td><td class=\"num\">{}</td><td>{}</td></tr>",
            s.outcome.as_str(),
            escape(&s.name),
            s.start,
            s.duration,
            r.lanes.get(i).map_or(0, |l| l + 1),
            s.outcome.as_str()
        );
    }
    page.push_str("</table>\n");
}

/// The steps whose outputs were downloaded instead of built (not on the timeline: their
/// downloads are not timed one by one).
fn substituted(page: &mut String, r: &Report) {
    if r.substituted.is_empty() {
        return;
    }
    page.push_str(
        "<h2>Substituted</h2><table id=\"substituted\"><tr><th>Step</th><th>From</th></tr>\n",
    );
    for (name, from) in &r.substituted {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(from)
        );
    }
    page.push_str("</table>\n");
}

/// The report's data as JSON, for tools (`</` escaped so it cannot end the element).
fn data(page: &mut String, r: &Report) {
    let f = &r.facts;
    let steps: Vec<serde_json::Value> = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "name": s.name, "drv": s.drv, "outcome": s.outcome.as_str(),
                "start_secs": s.start, "elapsed_secs": s.duration,
                "lane": r.lanes.get(i), "inputs": s.inputs,
            })
        })
        .collect();
    let critical: Vec<&str> = r
        .critical
        .iter()
        .map(|&i| r.steps[i].name.as_str())
        .collect();
    let value = json!({
        "command": f.command, "success": f.success, "jobs": f.jobs,
        "built": f.built, "fresh": f.fresh, "substituted": r.substituted.len(),
        "substituted_steps": r.substituted.iter().map(|(name, from)| json!({"name": name, "from": from})).collect::<Vec<_>>(),
        "failed": f.failed, "checked": f.checked, "scanned": f.scanned,
        "scans_substituted": f.scans_substituted, "wall_secs": r.wall,
        "evaluation_secs": r.evaluation, "scan_secs": r.scan, "first_step_secs": r.first_step,
        "critical_path": critical, "steps": steps,
    });
    let text = value.to_string().replace("</", "<\\/");
    let _ = writeln!(
        page,
        "<script type=\"application/json\" id=\"cmod-timings\">{text}</script>"
    );
}
