//! Renders builder events for a terminal or a CI log (plain lines, BuildKit style).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use kiln_builder::events::{Event, EventSink};

/// Plain-text progress on stderr: `#N [stage i/n] INSTRUCTION` and `#N DONE 0.1s`.
pub struct Plain {
    started: Instant,
    counts: Mutex<(usize, usize)>,
}

impl Plain {
    /// A renderer that starts its clock now.
    pub fn new() -> Self {
        Plain { started: Instant::now(), counts: Mutex::new((0, 0)) }
    }

    /// Prints the summary line.
    pub fn finish(&self) {
        let (ran, cached) = self.counts.lock().map(|c| *c).unwrap_or_default();
        eprintln!(
            "Finished in {:.2}s: {ran} steps run, {cached} cached",
            self.started.elapsed().as_secs_f64()
        );
    }
}

impl EventSink for Plain {
    fn emit(&self, event: Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::StepStarted { vertex, stage, index, total, text } => {
                writeln!(err, "#{vertex} [{stage} {index}/{total}] {text}")
            }
            Event::StepDone { vertex, duration, cached } => {
                if let Ok(mut c) = self.counts.lock() {
                    if cached { c.1 += 1 } else { c.0 += 1 }
                }
                if cached {
                    writeln!(err, "#{vertex} CACHED")
                } else {
                    writeln!(err, "#{vertex} DONE {:.2}s", duration.as_secs_f64())
                }
            }
            Event::StepLog { vertex, line } => writeln!(err, "#{vertex} {line}"),
            Event::Warning(message) => writeln!(err, "WARNING: {message}"),
            Event::ImageWritten { manifest_digest, config_digest, names } => {
                let _ = writeln!(err, "writing image {config_digest} (manifest {manifest_digest})");
                names.iter().try_for_each(|n| writeln!(err, "naming to {n}"))
            }
            Event::OutputWritten { description } => writeln!(err, "exported {description}"),
        };
    }
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
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}{}", UNITS[unit]).replace(".000", "")
    }
}
