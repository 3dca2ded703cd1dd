//! Named build contexts (`--build-context NAME=VALUE`) in lowering: what `FROM NAME`,
//! `COPY --from=NAME`, `RUN --mount=from=NAME` and a stage named NAME become for each kind.

mod common;

use common::{lower_err, lower_ok, opts, target};
use kiln_frontend::graph::{Base, CopySource, MountSource, Op, RunMount};
use kiln_frontend::lower::{LowerOptions, NamedContext};

fn with(named: &[(&str, NamedContext)]) -> LowerOptions {
    let mut o = opts();
    o.named_contexts = named.iter().map(|(n, c)| (n.to_string(), c.clone())).collect();
    o
}

fn copy_from(s: &kiln_frontend::graph::Stage) -> Vec<CopySource> {
    s.steps
        .iter()
        .filter_map(|st| match &st.op {
            Some(Op::Copy(c)) => Some(c.from.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn files_contexts_become_named_sources() {
    let text = "FROM extra\nCOPY --from=extra /a /b\nRUN --mount=from=extra,target=/m true\n";
    let g = lower_ok(text, &with(&[("extra", NamedContext::Files)]));
    let t = target(&g);
    assert_eq!(t.base, Base::Named("extra".into()));
    assert_eq!(t.config.working_dir, "/");
    assert_eq!(copy_from(t), [CopySource::Named("extra".into())]);
    let Some(Op::Run(run)) = &t.steps[1].op else { panic!("RUN expected") };
    assert!(
        matches!(&run.mounts[0], RunMount::Bind { from: MountSource::Named(n), .. } if n == "extra"),
        "{:?}",
        run.mounts
    );
}

#[test]
fn image_contexts_are_resolved_by_their_reference() {
    // `FROM alpine` and its familiar spellings mean the named context `alpine`.
    for from in ["alpine", "alpine:latest", "docker.io/library/alpine", "Alpine"] {
        let text = format!("FROM {from}\nCOPY --from=alpine /x /y\n");
        let named = [("alpine", NamedContext::Image("nginx:1.27".into()))];
        let g = lower_ok(&text, &with(&named));
        let t = target(&g);
        let Base::Image(img) = &t.base else { panic!("{from}: image base expected") };
        assert_eq!(img.reference, "nginx:1.27", "{from}");
        assert_eq!(t.config.stop_signal, "SIGQUIT", "{from}: the image config");
        assert!(matches!(&copy_from(t)[0], CopySource::Image(i) if i.reference == "nginx:1.27"));
    }
    // A tag is part of the name: alpine:edge is not the context `alpine`.
    let named = [("alpine", NamedContext::Image("x".into()))];
    let err = lower_err("FROM alpine:edge\n", &with(&named));
    assert!(err.contains("image \"alpine:edge\" not found"), "{err}");
}

#[test]
fn stage_contexts_point_at_stages_and_replace_stages_of_their_name() {
    let text = "FROM golang:1.22 AS build
RUN make
FROM scratch AS deps
COPY a /a
FROM scratch
COPY --from=out /bin /bin
COPY --from=deps / /deps
";
    let named = [("out", NamedContext::Stage("build".into())), ("deps", NamedContext::Files)];
    let g = lower_ok(text, &with(&named));
    let t = target(&g);
    // `out` is the stage `build`; `deps` replaces the stage `deps`, whose COPY is never run.
    let froms = copy_from(t);
    let CopySource::Stage(build) = froms[0] else { panic!("{froms:?}") };
    assert_eq!(g.stages[build].name.as_deref(), Some("build"));
    let CopySource::Stage(deps) = froms[1] else { panic!("{froms:?}") };
    assert_eq!(g.stages[deps].base, Base::Named("deps".into()));
    assert!(g.stages[deps].steps.is_empty());

    let err = lower_err("FROM scratch\n", &with(&[("x", NamedContext::Stage("nope".into()))]));
    assert_eq!(err, "--build-context x=target:nope: no stage is named \"nope\"");
}
