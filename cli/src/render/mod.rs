//! Renders builder events: `--progress=auto|tty|plain|json|quiet`.
//!
//! `auto` is `tty` when stderr is a terminal, else `plain`. Everything goes to stderr except
//! what scripts read: the image id on stdout at the end (the only output of `quiet`).

mod json;
mod plain;
mod transfers;
mod tty;

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use kiln_builder::events::{Event, EventSink};

pub use json::Json;
pub use plain::Plain;
pub use tty::Tty;

/// The progress styles the user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// `tty` on a terminal, else `plain`.
    Auto,
    /// Live progress lines for a terminal.
    Tty,
    /// One line per event, BuildKit style, for CI logs.
    Plain,
    /// One JSON object per line (see docs/PROGRESS.md).
    Json,
    /// Nothing but the image id on stdout.
    Quiet,
}

/// Counts kept by every renderer for the final summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Steps that ran.
    pub ran: usize,
    /// Steps that came from the cache.
    pub cached: usize,
    /// `--output`s written, described.
    pub outputs: Vec<String>,
    /// Warnings seen.
    pub warnings: usize,
}

impl Tally {
    fn count(&mut self, event: &Event) {
        match event {
            Event::StepDone { cached: true, .. } => self.cached += 1,
            Event::StepDone { cached: false, .. } => self.ran += 1,
            Event::OutputWritten { description } => self.outputs.push(description.clone()),
            Event::Warning(_) => self.warnings += 1,
            _ => {}
        }
    }
}

/// The renderer chosen for a build.
pub enum Renderer {
    /// Human-readable lines.
    Plain(Plain),
    /// Live terminal display.
    Tty(Tty),
    /// JSON lines.
    Json(Json),
    /// Silent.
    Quiet(Mutex<Tally>),
}

impl Renderer {
    /// The renderer for `progress`.
    pub fn new(progress: Progress) -> Renderer {
        let progress = match progress {
            Progress::Auto if std::io::stderr().is_terminal() => Progress::Tty,
            Progress::Auto => Progress::Plain,
            other => other,
        };
        match progress {
            Progress::Tty => Renderer::Tty(Tty::new()),
            Progress::Json => Renderer::Json(Json::new()),
            Progress::Quiet => Renderer::Quiet(Mutex::new(Tally::default())),
            _ => Renderer::Plain(Plain::new()),
        }
    }

    /// Ends the display and prints the summary of a successful build.
    pub fn finish(&self, summary: &Summary) {
        match self {
            Renderer::Plain(p) => p.finish(summary),
            Renderer::Tty(t) => t.finish(summary),
            Renderer::Json(j) => j.finish(summary),
            Renderer::Quiet(_) => {}
        }
    }

    /// Reports that the image was pushed to `name` as `digest` (`Pushed NAME@DIGEST`).
    pub fn pushed(&self, name: &str, digest: &str) {
        match self {
            Renderer::Plain(_) => eprintln!("Pushed {name}@{digest}"),
            Renderer::Tty(t) => t.pushed(name, digest),
            Renderer::Json(j) => j.pushed(name, digest),
            Renderer::Quiet(_) => {}
        }
    }

    /// Ends the display after a failure (the error itself is printed by `main`).
    pub fn abort(&self) {
        if let Renderer::Tty(t) = self {
            t.abort();
        }
    }
}

impl EventSink for Renderer {
    fn emit(&self, event: Event) {
        match self {
            Renderer::Plain(p) => p.emit(event),
            Renderer::Tty(t) => t.emit(event),
            Renderer::Json(j) => j.emit(event),
            Renderer::Quiet(tally) => {
                if let Ok(mut t) = tally.lock() {
                    t.count(&event);
                }
            }
        }
    }
}

/// What a finished build reports.
#[derive(Debug, Clone)]
pub struct Summary {
    /// When the build started.
    pub started: Instant,
    /// Image config digest.
    pub image_id: String,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Compressed size of the layers.
    pub size: u64,
    /// Names given with `-t`.
    pub names: Vec<String>,
}

impl Summary {
    /// The summary line(s), shared by the text renderers.
    fn lines(&self, tally: &Tally) -> Vec<String> {
        let mut lines = vec![format!(
            "built in {:.2}s: {} steps run, {} cached; image {} ({}), manifest {}",
            self.started.elapsed().as_secs_f64(),
            tally.ran,
            tally.cached,
            short_id(&self.image_id),
            human_size(self.size),
            short_id(&self.manifest_digest),
        )];
        if !self.names.is_empty() {
            lines.push(format!("tagged {}", self.names.join(", ")));
        }
        for output in &tally.outputs {
            lines.push(format!("wrote {output}"));
        }
        lines
    }
}

/// `sha256:0123456789ab` (12 hex digits).
pub fn short_id(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// `1.5MB`-style sizes (decimal units, as docker prints).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes}B"),
        _ if value >= 100.0 => format!("{value:.0}{}", UNITS[unit]),
        _ if value >= 10.0 => format!("{value:.1}{}", UNITS[unit]),
        _ => format!("{value:.2}{}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_061_000), "1.06MB");
        assert_eq!(human_size(15_400_000), "15.4MB");
        assert_eq!(human_size(254_000_000), "254MB");
    }
}
