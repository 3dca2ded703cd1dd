//! Byte progress of pulls, pushes, context hashing and layer compression, as the text
//! renderers show it: `pull sha256:0123456789ab 1.05MB / 3.40MB`, then
//! `pull sha256:0123456789ab 3.40MB DONE 0.41s`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kiln_builder::events::{Progress, ProgressState, Task};

use super::{human_size, short_id};

/// How often a running item gets a line in `plain` output.
const PLAIN_INTERVAL: Duration = Duration::from_secs(1);

/// The name of an item as shown: blob digests shortened, other ids as they are.
fn item(p: &Progress) -> String {
    let id = if p.id.starts_with("sha256:") { short_id(&p.id) } else { p.id.clone() };
    let prefix = p.vertex.map(|v| format!("#{v} ")).unwrap_or_default();
    format!("{prefix}{} {id}", p.task.name())
}

/// `1.05MB / 3.40MB`, or `1.05MB` when the total is not known.
fn amount(p: &Progress) -> String {
    if p.total == 0 {
        human_size(p.current)
    } else {
        format!("{} / {}", human_size(p.current), human_size(p.total))
    }
}

/// The line for a report; `elapsed` is how long the item has been under way.
pub fn line(p: &Progress, elapsed: Duration) -> String {
    match &p.state {
        ProgressState::Running => format!("{} {}", item(p), amount(p)),
        ProgressState::Done => format!(
            "{} {} DONE {:.2}s",
            item(p),
            human_size(p.current.max(p.total)),
            elapsed.as_secs_f64()
        ),
        ProgressState::Skipped(why) => format!("{} skipped: {why}", item(p)),
    }
}

/// The title of a byte bar (`pull sha256:0123456789ab`).
pub fn title(p: &Progress) -> String {
    item(p)
}

/// When each item started and last got a line.
#[derive(Default)]
pub struct Transfers {
    items: HashMap<(Task, String), (Instant, Instant)>,
}

impl Transfers {
    /// The line `plain` prints for `p`, if any: a running item at most once a second (not at
    /// its start), and always its end (after which it is forgotten).
    pub fn plain_line(&mut self, p: &Progress) -> Option<String> {
        let now = Instant::now();
        let key = (p.task, p.id.clone());
        match p.state {
            ProgressState::Running => {
                let (_, last) = self.items.entry(key).or_insert((now, now));
                if now.duration_since(*last) < PLAIN_INTERVAL {
                    return None;
                }
                *last = now;
                Some(line(p, Duration::ZERO))
            }
            _ => {
                let started = self.items.remove(&key).map(|(s, _)| s).unwrap_or(now);
                Some(line(p, now.duration_since(started)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(task: Task, id: &str, current: u64, total: u64, state: ProgressState) -> Progress {
        Progress { vertex: None, task, id: id.into(), current, total, state }
    }

    #[test]
    fn lines_name_the_work_the_item_and_the_bytes() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let p = report(Task::Pull, &digest, 1_050_000, 3_400_000, ProgressState::Running);
        assert_eq!(line(&p, Duration::ZERO), "pull sha256:abababababab 1.05MB / 3.40MB");
        let p = report(Task::Push, &digest, 3_400_000, 3_400_000, ProgressState::Done);
        assert_eq!(
            line(&p, Duration::from_millis(410)),
            "push sha256:abababababab 3.40MB DONE 0.41s"
        );
        let p = report(Task::Push, &digest, 0, 10, ProgressState::Skipped("already exists".into()));
        assert_eq!(line(&p, Duration::ZERO), "push sha256:abababababab skipped: already exists");
        let p = Progress {
            vertex: Some(4),
            ..report(Task::Hash, "context", 2_000_000, 0, ProgressState::Running)
        };
        assert_eq!(line(&p, Duration::ZERO), "#4 hash context 2.00MB");
    }

    #[test]
    fn plain_shows_the_end_of_every_item_but_not_every_step() {
        let mut t = Transfers::default();
        let running = report(Task::Compress, "sha256:00", 0, 100, ProgressState::Running);
        assert_eq!(t.plain_line(&running), None);
        assert_eq!(t.plain_line(&Progress { current: 50, ..running.clone() }), None);
        let done = t.plain_line(&Progress { current: 100, state: ProgressState::Done, ..running });
        let done = done.unwrap();
        assert!(done.starts_with("compress sha256:00 100B DONE "), "{done}");
        assert!(t.items.is_empty());
    }
}
