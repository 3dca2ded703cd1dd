//! A readable, stable text form of a [`BuildGraph`] (what `kiln plan` prints): each stage with
//! its base, its steps (history text, and the filesystem op as compact JSON), its final config,
//! then the target and the warnings.

use std::fmt::Write as _;

use crate::graph::{Base, BuildGraph, Stage};

fn base(b: &Base) -> String {
    match b {
        Base::Scratch => "scratch".to_string(),
        Base::Stage(i) => format!("stage {i}"),
        Base::Image(img) => format!("image {} ({})", img.reference, img.id),
        Base::Named(name) => format!("build context {name:?}"),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<{e}>"))
}

fn stage(out: &mut String, index: usize, s: &Stage) {
    let name = s.name.as_deref().map_or(String::new(), |n| format!(" {n:?}"));
    let _ = writeln!(
        out,
        "stage {index}{name} (FROM on line {}, stage {} of the file) {}/{}",
        s.span.line, s.position, s.os, s.architecture
    );
    let _ = writeln!(out, "  base: {}", base(&s.base));
    if let Some(p) = &s.platform {
        let _ = writeln!(out, "  platform: {p}");
    }
    if let Some(a) = &s.author {
        let _ = writeln!(out, "  author: {a}");
    }
    for step in &s.steps {
        let _ = writeln!(out, "  line {:>3}  {}", step.span.line, json(&step.created_by));
        if let Some(op) = &step.op {
            let _ = writeln!(out, "            {}", json(op));
        }
    }
    let _ = writeln!(out, "  config: {}", json(&s.config));
}

/// The text form of `g`.
pub fn graph(g: &BuildGraph) -> String {
    let mut out = String::new();
    for (i, s) in g.stages.iter().enumerate() {
        stage(&mut out, i, s);
    }
    let _ = writeln!(out, "target: stage {}", g.target);
    for w in &g.warnings {
        let _ = writeln!(out, "{w}");
    }
    out
}
