//! Live progress for a terminal: one spinner line per running step with its elapsed time and
//! last output line, and one byte bar per transfer (pull, push), context hashing or layer
//! compression; a finished step or transfer collapses into one line above the live area.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_builder::events::{Event, EventSink, Progress, ProgressState, Task};

use super::transfers::{line, title};
use super::{Summary, Tally};

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{bar:24}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec:>11} {elapsed:>4}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn unknown_total_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {prefix} {decimal_bytes} {decimal_bytes_per_sec:>11} {elapsed:>4}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Terminal progress on stderr.
pub struct Tty {
    multi: MultiProgress,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bars: HashMap<usize, (ProgressBar, String)>,
    transfers: HashMap<(Task, String), (ProgressBar, Instant)>,
    tally: Tally,
}

fn running_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Tty {
    /// A terminal renderer drawing on stderr.
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        Tty { multi, state: Mutex::new(State::default()) }
    }

    fn println(&self, line: &str) {
        // MultiProgress prints above the bars (or plainly when hidden).
        let _ = self.multi.println(line);
    }

    fn clear(&self) {
        if let Ok(mut state) = self.state.lock() {
            for (_, (bar, _)) in state.bars.drain() {
                bar.finish_and_clear();
            }
            for (_, (bar, _)) in state.transfers.drain() {
                bar.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }

    /// Removes the live area and prints the summary.
    pub fn finish(&self, summary: &Summary) {
        self.clear();
        let tally = self.state.lock().map(|s| s.tally.clone()).unwrap_or_default();
        for line in summary.lines(&tally) {
            eprintln!("{line}");
        }
    }

    /// Prints where the image was pushed.
    pub fn pushed(&self, name: &str, digest: &str) {
        self.println(&format!("Pushed {name}@{digest}"));
    }

    /// A byte bar for `p`, made on its first report, moved, and collapsed at its end.
    fn transfer(&self, mut state: std::sync::MutexGuard<'_, State>, p: Progress) {
        let key = (p.task, p.id.clone());
        if p.state == ProgressState::Running {
            let (bar, _) = state.transfers.entry(key).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(p.total));
                bar.set_style(if p.total == 0 { unknown_total_style() } else { bytes_style() });
                bar.set_prefix(title(&p));
                if p.total == 0 {
                    bar.enable_steady_tick(Duration::from_millis(100));
                }
                (bar, Instant::now())
            });
            bar.set_position(p.current);
            return;
        }
        let started = match state.transfers.remove(&key) {
            Some((bar, started)) => {
                bar.finish_and_clear();
                self.multi.remove(&bar);
                started
            }
            None => Instant::now(),
        };
        drop(state);
        self.println(&format!("✔ {}", line(&p, started.elapsed())));
    }

    /// Removes the live area after a failure.
    pub fn abort(&self) {
        self.clear();
    }
}

impl EventSink for Tty {
    fn emit(&self, event: Event) {
        let Ok(mut state) = self.state.lock() else { return };
        state.tally.count(&event);
        match event {
            Event::StepStarted { vertex, stage, index, total, text } => {
                let title = format!("[{stage} {index}/{total}] {text}");
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(running_style());
                bar.set_prefix(title.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                state.bars.insert(vertex, (bar, title));
            }
            Event::StepLog { vertex, line } => {
                if let Some((bar, _)) = state.bars.get(&vertex) {
                    bar.set_message(line);
                }
            }
            Event::StepDone { vertex, duration, cached } => {
                if let Some((bar, title)) = state.bars.remove(&vertex) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    let how = if cached {
                        "CACHED".to_string()
                    } else {
                        format!("{:.1}s", duration.as_secs_f64())
                    };
                    drop(state);
                    self.println(&format!("✔ {title}  {how}"));
                }
            }
            Event::Warning(message) => {
                drop(state);
                self.println(&format!("WARNING: {message}"));
            }
            Event::Notice(message) => {
                drop(state);
                self.println(&format!("NOTE: {message}"));
            }
            Event::Progress(p) => self.transfer(state, p),
            Event::ImageWritten { .. } | Event::OutputWritten { .. } => {}
        }
    }
}
