//! Progress on a terminal: a bar of the steps done, and below it one line per running
//! step with its elapsed time (as many as run at once, `-j`), above which permanent
//! lines (`Compiling <step>`, warnings, errors) scroll, so the list of what was built
//! stays on screen when the bars are cleared.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bars of one realisation.
pub struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    /// A line per running step, by `.drv` path.
    running: HashMap<String, ProgressBar>,
}

/// Seconds with a tenth, for a running step's line: `1.2s`.
fn tenths(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
}

impl Bars {
    /// Bars for `total` steps on stderr.
    pub fn new(total: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let main = multi.add(ProgressBar::new(total as u64));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len}{wide_msg}")
        {
            main.set_style(style.progress_chars("=> "));
        }
        main.set_prefix("Building");
        Bars {
            multi,
            main,
            running: HashMap::new(),
        }
    }

    /// A permanent line above the bars.
    pub fn println(&self, line: &str) {
        let _ = self.multi.println(crate::colour::paint_if_enabled(line));
    }

    /// A step started: its own line, with a clock.
    pub fn started(&mut self, drv: String, name: &str) {
        let line = self.multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{prefix:>12} {wide_msg} {tenths:>6}") {
            line.set_style(style.with_key("tenths", tenths));
        }
        line.set_message(name.to_string());
        line.enable_steady_tick(Duration::from_millis(100));
        self.running.insert(drv, line);
        self.count_running();
    }

    /// A step ended (built, failed, checked) or was settled without running.
    pub fn ended(&mut self, drv: Option<String>) {
        if let Some(line) = drv.and_then(|d| self.running.remove(&d)) {
            line.finish_and_clear();
            self.multi.remove(&line);
        }
        self.count_running();
        self.main.inc(1);
    }

    /// The bar's message: how many steps run now.
    fn count_running(&self) {
        let n = self.running.len();
        self.main.set_message(match n {
            0 => String::new(),
            1 => ", 1 running".to_string(),
            n => format!(", {n} running"),
        });
    }

    /// Remove every bar and line.
    pub fn clear(self) {
        for line in self.running.values() {
            line.finish_and_clear();
        }
        self.main.finish_and_clear();
        let _ = self.multi.clear();
    }
}
