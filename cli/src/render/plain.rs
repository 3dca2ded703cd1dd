//! Plain progress for CI logs: `#N [stage i/n] INSTRUCTION`, output lines prefixed `#N`,
//! `#N DONE 0.12s` or `#N CACHED`; byte progress as `pull sha256:0123456789ab 1.05MB / 3.40MB`
//! at most once a second per item, and its end (see [`super::transfers`]).

use std::io::Write;
use std::sync::Mutex;

use kiln_builder::events::{Event, EventSink};

use super::transfers::Transfers;
use super::{Summary, Tally};

/// Plain-text progress on stderr.
pub struct Plain {
    tally: Mutex<Tally>,
    transfers: Mutex<Transfers>,
}

impl Plain {
    /// A plain renderer.
    pub fn new() -> Self {
        Plain { tally: Mutex::new(Tally::default()), transfers: Mutex::new(Transfers::default()) }
    }

    /// Prints the summary.
    pub fn finish(&self, summary: &Summary) {
        let tally = self.tally.lock().map(|t| t.clone()).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        for line in summary.lines(&tally) {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// The line a plain renderer prints for `event` (`None` for events it does not show).
pub fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::StepStarted { vertex, stage, index, total, text } => {
            format!("#{vertex} [{stage} {index}/{total}] {text}")
        }
        Event::StepDone { vertex, cached: true, .. } => format!("#{vertex} CACHED"),
        Event::StepDone { vertex, duration, cached: false } => {
            format!("#{vertex} DONE {:.2}s", duration.as_secs_f64())
        }
        Event::StepLog { vertex, line } => format!("#{vertex} {line}"),
        Event::Warning(message) => format!("WARNING: {message}"),
        Event::Notice(message) => format!("NOTE: {message}"),
        Event::ImageWritten { .. } | Event::OutputWritten { .. } | Event::Progress(_) => {
            return None;
        }
    })
}

impl EventSink for Plain {
    fn emit(&self, event: Event) {
        if let Ok(mut t) = self.tally.lock() {
            t.count(&event);
        }
        let text = match &event {
            Event::Progress(p) => self.transfers.lock().ok().and_then(|mut t| t.plain_line(p)),
            other => line(other),
        };
        if let Some(text) = text {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}
