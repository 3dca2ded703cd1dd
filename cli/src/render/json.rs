//! JSON lines progress: one object per event on stderr, documented in docs/PROGRESS.md.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use kiln_builder::events::{Event, EventSink, ProgressState};
use serde_json::{Value, json};

use super::{Summary, Tally};

/// JSON-lines progress on stderr.
pub struct Json {
    started: Instant,
    tally: Mutex<Tally>,
}

impl Json {
    /// A JSON renderer whose `t` fields count from now.
    pub fn new() -> Self {
        Json { started: Instant::now(), tally: Mutex::new(Tally::default()) }
    }

    fn write(&self, value: Value) {
        let _ = writeln!(std::io::stderr().lock(), "{value}");
    }

    /// Writes a `pushed` object.
    pub fn pushed(&self, name: &str, digest: &str) {
        let t = self.started.elapsed().as_secs_f64();
        self.write(json!({ "type": "pushed", "t": t, "name": name, "digest": digest }));
    }

    /// Writes the final `summary` object.
    pub fn finish(&self, summary: &Summary) {
        let tally = self.tally.lock().map(|t| t.clone()).unwrap_or_default();
        self.write(json!({
            "type": "summary",
            "t": self.started.elapsed().as_secs_f64(),
            "duration": summary.started.elapsed().as_secs_f64(),
            "steps_run": tally.ran,
            "steps_cached": tally.cached,
            "image_id": summary.image_id,
            "manifest_digest": summary.manifest_digest,
            "size": summary.size,
            "names": summary.names,
            "outputs": tally.outputs,
        }));
    }
}

/// The JSON object for `event`, without the `t` field.
pub fn object(event: &Event) -> Value {
    match event {
        Event::StepStarted { vertex, stage, index, total, text } => json!({
            "type": "step_started", "vertex": vertex, "stage": stage, "index": index,
            "total": total, "text": text,
        }),
        Event::StepDone { vertex, duration, cached } => json!({
            "type": "step_done", "vertex": vertex, "duration": duration.as_secs_f64(),
            "cached": cached,
        }),
        Event::StepLog { vertex, line } => json!({ "type": "log", "vertex": vertex, "line": line }),
        Event::Warning(message) => json!({ "type": "warning", "message": message }),
        Event::Notice(message) => json!({ "type": "notice", "message": message }),
        Event::ImageWritten { manifest_digest, config_digest, names } => json!({
            "type": "image", "manifest_digest": manifest_digest, "image_id": config_digest,
            "names": names,
        }),
        Event::OutputWritten { description } => {
            json!({ "type": "output", "description": description })
        }
        Event::Progress(p) => {
            let mut o = json!({
                "type": "progress", "task": p.task.name(), "id": p.id, "vertex": p.vertex,
                "current": p.current, "total": p.total,
            });
            let (state, reason) = match &p.state {
                ProgressState::Running => ("running", None),
                ProgressState::Done => ("done", None),
                ProgressState::Skipped(why) => ("skipped", Some(why)),
            };
            o["state"] = json!(state);
            if let Some(why) = reason {
                o["reason"] = json!(why);
            }
            o
        }
    }
}

impl EventSink for Json {
    fn emit(&self, event: Event) {
        if let Ok(mut t) = self.tally.lock() {
            t.count(&event);
        }
        let mut value = object(&event);
        if let Some(map) = value.as_object_mut() {
            map.insert("t".into(), json!(self.started.elapsed().as_secs_f64()));
        }
        self.write(value);
    }
}
