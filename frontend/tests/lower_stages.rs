//! Stages: names, bases, `COPY --from`, `--target` pruning, platforms and ONBUILD triggers.

mod common;

use common::{FakeResolver, history, lower_ok, opts, opts_target, target};
use kiln_frontend::graph::{Base, CopySource, Op};
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::syntax::parse;

const MULTI: &str = "\
FROM golang:1.22 AS build
ENV CGO_ENABLED=0
WORKDIR /src
COPY . .

FROM alpine:3 AS unused
RUN echo never built

FROM build AS test
COPY tests/ /src/tests/

FROM scratch AS final
COPY --from=build /src/app /app
COPY --from=0 /src/VERSION /VERSION
CMD [\"/app\"]
";

fn copy_sources(s: &kiln_frontend::graph::Stage) -> Vec<CopySource> {
    s.steps
        .iter()
        .filter_map(|st| match &st.op {
            Some(Op::Copy(c)) => Some(c.from.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn last_stage_is_the_default_target_and_unneeded_stages_are_pruned() {
    let g = lower_ok(MULTI, &opts());
    let names: Vec<Option<&str>> = g.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("build"), Some("final")]);
    let positions: Vec<usize> = g.stages.iter().map(|s| s.position).collect();
    assert_eq!(positions, [0, 3]);
    assert_eq!(g.target, 1);
    let fin = target(&g);
    assert_eq!(fin.base, Base::Scratch);
    assert_eq!(copy_sources(fin), [CopySource::Stage(0), CopySource::Stage(0)]);
    assert_eq!(fin.span.line, 12);
}

#[test]
fn target_selects_a_stage_and_keeps_its_base_chain() {
    let g = lower_ok(MULTI, &opts_target("TEST"));
    let names: Vec<Option<&str>> = g.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("build"), Some("test")]);
    let t = target(&g);
    assert_eq!(t.base, Base::Stage(0));
    // The stage starts from the earlier stage's final config.
    assert_eq!(t.config.env_get("CGO_ENABLED"), Some("0"));
    assert_eq!(t.config.working_dir, "/src");
    assert_eq!(t.config.env_get("GOPATH"), Some("/go"));
    assert_eq!((t.os.as_str(), t.architecture.as_str()), ("linux", "amd64"));
    assert_eq!(history(t), ["COPY tests/ /src/tests/"]);

    let g = lower_ok(MULTI, &opts_target("build"));
    assert_eq!(g.stages.len(), 1);
    assert_eq!(g.target, 0);
}

#[test]
fn only_needed_base_images_are_resolved_with_the_target_platform() {
    let df = parse("Dockerfile", MULTI).unwrap();
    let r = FakeResolver::default();
    lower(&df, &opts(), &r).unwrap();
    assert_eq!(*r.calls.borrow(), [("golang:1.22".to_string(), Some("linux/amd64".to_string()))]);

    let r = FakeResolver::default();
    let o = LowerOptions::default();
    lower(&df, &o, &r).unwrap();
    assert_eq!(
        *r.calls.borrow(),
        [("golang:1.22".to_string(), None)],
        "no target platform: the host's"
    );
}

#[test]
fn from_platform_is_expanded_and_passed_to_the_resolver() {
    let df = parse("Dockerfile", "FROM --platform=$BUILDPLATFORM arm-image AS b\nFROM --platform=linux/arm64/v8 scratch\nCOPY --from=b / /\n").unwrap();
    let r = FakeResolver::default();
    let o = LowerOptions {
        build_platform: "linux/arm64".into(),
        target_platform: "linux/amd64".into(),
        ..Default::default()
    };
    let g = lower(&df, &o, &r).unwrap();
    assert_eq!(*r.calls.borrow(), [("arm-image".to_string(), Some("linux/arm64".to_string()))]);
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/arm64"));
    assert_eq!(g.stages[0].architecture, "arm64");
    let t = target(&g);
    assert_eq!(t.platform.as_deref(), Some("linux/arm64"));
    assert_eq!((t.os.as_str(), t.architecture.as_str()), ("linux", "arm64"));
}

#[test]
fn stage_names_are_case_insensitive() {
    let g =
        lower_ok("FROM busybox AS Builder\nFROM scratch\nCOPY --from=BUILDER /bin /bin\n", &opts());
    assert_eq!(g.stages[0].name.as_deref(), Some("builder"));
    assert_eq!(copy_sources(target(&g)), [CopySource::Stage(0)]);
    let g = lower_ok("FROM busybox AS Builder\nFROM BUILDER\n", &opts());
    assert_eq!(target(&g).base, Base::Stage(0));
}

#[test]
fn copy_from_an_image_goes_through_the_resolver() {
    let g = lower_ok("FROM scratch\nCOPY --from=tools:1 /bin/tool /tool\n", &opts());
    match &copy_sources(target(&g))[0] {
        CopySource::Image(i) => {
            assert_eq!((i.reference.as_str(), i.id.as_str()), ("tools:1", "sha256:tools:1"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn copy_from_index_and_duplicate_names() {
    let text = "FROM busybox AS a\nFROM busybox AS a\nFROM busybox AS c\nFROM scratch\nCOPY --from=a /x /x\nCOPY --from=2 /y /y\n";
    let g = lower_ok(text, &opts());
    let positions: Vec<usize> = g.stages.iter().map(|s| s.position).collect();
    assert_eq!(positions, [1, 2, 3], "the later stage named a wins, as in BuildKit");
    assert_eq!(copy_sources(target(&g)), [CopySource::Stage(0), CopySource::Stage(1)]);
}

#[test]
fn stages_not_built_may_hold_unsupported_instructions() {
    let g = lower_ok(
        "FROM busybox AS never\nRUN make\nADD https://x/y /y\nFROM scratch\nCOPY a /a\n",
        &opts(),
    );
    assert_eq!(g.stages.len(), 1);
}

#[test]
fn image_onbuild_triggers_run_first_and_are_cleared() {
    let g = lower_ok("FROM onbuild-base\nONBUILD COPY x /y\nCOPY more /more\n", &opts());
    let s = target(&g);
    assert_eq!(
        history(s),
        ["COPY . /app/src", "ENV BUILT=yes", "LABEL from=yes", "COPY more /more"]
    );
    assert!(s.steps[..3].iter().all(|st| st.span == s.span), "trigger steps point at FROM");
    assert_eq!(s.config.on_build, ["COPY x /y"], "inherited triggers are cleared, own ones kept");
}

#[test]
fn stage_onbuild_triggers_run_in_the_child_stage() {
    let text = "FROM busybox AS base\nONBUILD LABEL child=yes\nONBUILD COPY --from=assets /a /a\nFROM busybox AS assets\nFROM base\nLABEL own=1\n";
    let g = lower_ok(text, &opts());
    let names: Vec<Option<&str>> = g.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("base"), Some("assets"), None]);
    let s = target(&g);
    assert_eq!(history(s), ["LABEL child=yes", "COPY /a /a", "LABEL own=1"]);
    assert_eq!(copy_sources(s), [CopySource::Stage(1)]);
    assert!(s.config.on_build.is_empty());
    assert_eq!(g.stages[0].config.on_build, ["LABEL child=yes", "COPY --from=assets /a /a"]);
}

#[test]
fn image_trigger_copy_from_pulls_in_the_stage_it_names() {
    let text = "FROM busybox AS tools\nLABEL t=1\nFROM busybox AS other\nFROM onbuild-copyfrom\n";
    let g = lower_ok(text, &opts());
    let names: Vec<Option<&str>> = g.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("tools"), None]);
    assert_eq!(copy_sources(target(&g)), [CopySource::Stage(0)]);
}

#[test]
fn target_stage_in_the_middle_drops_later_stages() {
    let text = "FROM busybox AS a\nFROM a AS b\nFROM b AS c\nFROM scratch AS d\n";
    let g = lower_ok(text, &opts_target("c"));
    let names: Vec<Option<&str>> = g.stages.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(names, [Some("a"), Some("b"), Some("c")]);
    assert_eq!(g.stages[1].base, Base::Stage(0));
    assert_eq!(g.stages[2].base, Base::Stage(1));
    assert_eq!(g.target, 2);
}

#[test]
fn stage_config_os_comes_from_the_image() {
    let g = lower_ok("FROM arm-image\n", &opts());
    let s = target(&g);
    assert_eq!(s.architecture, "arm64");
    assert_eq!(
        s.config.env_get("PATH"),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );
}
