//! ARG scoping: the Dockerfile reference's examples and BuildKit's rules.

mod common;

use common::{env, history, lower_ok, opts, opts_args, opts_target, target, warnings};
use kiln_frontend::graph::Base;
use kiln_frontend::lower::LowerOptions;

#[test]
fn default_values_and_build_args_in_order_of_declaration() {
    // Reference example: a variable used before its ARG takes the fallback.
    let text = "FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n";
    let g = lower_ok(text, &opts_args(&[("username", "what_user")]));
    assert_eq!(history(target(&g)), ["USER some_user", "ARG username=what_user", "USER what_user"]);
    let g = lower_ok(text, &opts());
    assert_eq!(history(target(&g)), ["USER some_user", "ARG username", "USER "]);
}

#[test]
fn env_defined_after_arg_wins() {
    let text = "FROM busybox\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nLABEL v=$CONT_IMG_VER\n";
    let g = lower_ok(text, &opts_args(&[("CONT_IMG_VER", "v2.0.1")]));
    let s = target(&g);
    assert_eq!(s.config.labels.get("v").map(String::as_str), Some("v1.0.0"));
    assert_eq!(env(s, "CONT_IMG_VER"), Some("v1.0.0"));
}

#[test]
fn env_with_arg_fallback() {
    let text = "FROM busybox\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n";
    let g = lower_ok(text, &opts_args(&[("CONT_IMG_VER", "v2.0.1")]));
    assert_eq!(env(target(&g), "CONT_IMG_VER"), Some("v2.0.1"));
    let g = lower_ok(text, &opts());
    assert_eq!(env(target(&g), "CONT_IMG_VER"), Some("v1.0.0"));
}

#[test]
fn a_later_arg_overrides_an_earlier_env_for_expansion_as_in_buildkit() {
    // BuildKit keeps one environment for expansion; the last definition wins there, while the
    // image config keeps the ENV value.
    let text = "FROM busybox\nENV X=env\nARG X\nLABEL x=$X\n";
    let g = lower_ok(text, &opts_args(&[("X", "arg")]));
    let s = target(&g);
    assert_eq!(s.config.labels.get("x").map(String::as_str), Some("arg"));
    assert_eq!(env(s, "X"), Some("env"));
}

#[test]
fn global_args_are_usable_in_from_lines() {
    let text = "ARG CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nCMD [\"/code/run-app\"]\nFROM extras:${CODE_VERSION}\nCMD [\"/code/run-extras\"]\n";
    let g = lower_ok(text, &opts());
    let refs: Vec<String> = g
        .stages
        .iter()
        .map(|s| match &s.base {
            Base::Image(i) => i.reference.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(refs, ["extras:latest"], "only the target stage is kept");
    let g = lower_ok(text, &opts_args(&[("CODE_VERSION", "2")]));
    assert!(matches!(&target(&g).base, Base::Image(i) if i.reference == "extras:2"));
}

#[test]
fn global_args_need_redeclaring_inside_a_stage() {
    let text = "ARG VERSION=latest\nFROM busybox:$VERSION\nLABEL before=\"[$VERSION]\"\nARG VERSION\nLABEL after=$VERSION\n";
    let g = lower_ok(text, &opts());
    let s = target(&g);
    assert_eq!(s.config.labels.get("before").map(String::as_str), Some("[]"));
    assert_eq!(s.config.labels.get("after").map(String::as_str), Some("latest"));
    assert_eq!(history(s)[1], "ARG VERSION=latest");
    let g = lower_ok(text, &opts_args(&[("VERSION", "1.36")]));
    let s = target(&g);
    assert!(matches!(&s.base, Base::Image(i) if i.reference == "busybox:1.36"));
    assert_eq!(s.config.labels.get("after").map(String::as_str), Some("1.36"));
}

#[test]
fn global_defaults_expand_earlier_globals_and_build_args_win() {
    let text = "ARG REG=registry.example\nARG IMAGE=$REG/app:1.0\nFROM $IMAGE\n";
    let g = lower_ok(text, &opts());
    assert!(
        matches!(&target(&g).base, Base::Image(i) if i.reference == "registry.example/app:1.0")
    );
    let g = lower_ok(text, &opts_args(&[("IMAGE", "alpine:3")]));
    assert!(matches!(&target(&g).base, Base::Image(i) if i.reference == "alpine:3"));
}

#[test]
fn arg_scope_ends_with_its_stage() {
    let text = "FROM busybox AS one\nARG SETTINGS=first\nLABEL s=$SETTINGS\nFROM busybox\nLABEL s=\"<$SETTINGS>\"\nARG SETTINGS\nLABEL t=\"<$SETTINGS>\"\n";
    let g = lower_ok(text, &opts());
    let s = target(&g);
    assert_eq!(s.config.labels.get("s").map(String::as_str), Some("<>"));
    assert_eq!(s.config.labels.get("t").map(String::as_str), Some("<>"));
    let g = lower_ok(text, &opts_args(&[("SETTINGS", "cli")]));
    assert_eq!(target(&g).config.labels.get("t").map(String::as_str), Some("<cli>"));
}

#[test]
fn a_stage_built_on_a_stage_inherits_its_args() {
    // BuildKit: ARGs declared in a stage are inherited by stages based on it (the Dockerfile
    // reference says so since BuildKit 0.17); unrelated stages do not see them.
    let g = lower_ok("FROM busybox AS base\nARG A=1\nFROM base\nLABEL a=\"<$A>\"\n", &opts());
    assert_eq!(target(&g).config.labels.get("a").map(String::as_str), Some("<1>"));
    let g = lower_ok("FROM busybox AS base\nARG A=1\nFROM busybox\nLABEL a=\"<$A>\"\n", &opts());
    assert_eq!(target(&g).config.labels.get("a").map(String::as_str), Some("<>"));
}

#[test]
fn predefined_platform_args() {
    let o = LowerOptions {
        target_platform: "linux/arm/v7".into(),
        build_platform: "linux/amd64".into(),
        ..Default::default()
    };
    let text = "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT TARGETSTAGE\nLABEL t=$TARGETPLATFORM os=$TARGETOS arch=$TARGETARCH v=$TARGETVARIANT b=$BUILDPLATFORM bos=$BUILDOS barch=$BUILDARCH bv=\"<$BUILDVARIANT>\" stage=$TARGETSTAGE\n";
    let g = lower_ok(text, &o);
    let s = target(&g);
    let l = |k: &str| s.config.labels.get(k).cloned().unwrap_or_default();
    assert_eq!(l("t"), "linux/arm/v7");
    assert_eq!((l("os"), l("arch"), l("v")), ("linux".into(), "arm".into(), "v7".into()));
    assert_eq!(l("b"), "linux/amd64");
    assert_eq!((l("bos"), l("barch"), l("bv")), ("linux".into(), "amd64".into(), "<>".into()));
    assert_eq!(l("stage"), "build");
    assert_eq!(s.platform.as_deref(), Some("linux/amd64"));

    // Without ARG they are not visible inside the stage.
    let g = lower_ok("FROM busybox\nLABEL t=\"<$TARGETPLATFORM>\"\n", &o);
    assert_eq!(target(&g).config.labels.get("t").map(String::as_str), Some("<>"));
}

#[test]
fn predefined_args_can_be_overridden_and_are_not_unused() {
    let g = lower_ok(
        "FROM busybox\nARG TARGETARCH\nLABEL a=$TARGETARCH\n",
        &opts_args(&[
            ("TARGETARCH", "riscv64"),
            ("HTTP_PROXY", "http://p"),
            ("SOURCE_DATE_EPOCH", "0"),
            ("BUILDKIT_INLINE_CACHE", "1"),
        ]),
    );
    assert_eq!(target(&g).config.labels.get("a").map(String::as_str), Some("riscv64"));
    assert!(g.warnings.is_empty(), "{:?}", warnings(&g));
}

#[test]
fn unused_build_args_warn() {
    let g = lower_ok(
        "ARG USED_GLOBAL\nFROM busybox\nARG USED\n",
        &opts_args(&[("USED", "1"), ("USED_GLOBAL", "1"), ("NOPE", "x")]),
    );
    assert_eq!(
        warnings(&g),
        [
            "warning: build argument \"NOPE\" was given but no ARG instruction of the stages built declares it; add ARG NOPE where it is needed"
        ]
    );
    // An ARG in a stage that is not built does not consume the build arg.
    let g = lower_ok(
        "FROM busybox AS a\nARG ONLY_A\nFROM busybox AS b\n",
        &opts_args(&[("ONLY_A", "1")]),
    );
    assert_eq!(g.warnings.len(), 1);
    let mut o = opts_target("a");
    o.build_args.insert("ONLY_A".into(), "1".into());
    assert!(lower_ok("FROM busybox AS a\nARG ONLY_A\nFROM busybox AS b\n", &o).warnings.is_empty());
}

#[test]
fn undefined_arg_in_from_warns() {
    let g = lower_ok("FROM busybox:${TAG:-latest}\n", &opts());
    assert!(matches!(&target(&g).base, Base::Image(i) if i.reference == "busybox:latest"));
    assert_eq!(
        warnings(&g),
        [
            "Dockerfile:1:6: warning: FROM: FROM uses $TAG, which no ARG before the first FROM declares; add ARG TAG=<default> at the top of the file"
        ]
    );
    let g = lower_ok("ARG TAG\nFROM busybox:${TAG:-latest}\n", &opts());
    assert!(g.warnings.is_empty());
}

#[test]
fn arg_defaults_see_earlier_args_and_env_but_build_args_are_taken_as_is() {
    let g = lower_ok("FROM busybox\nENV BASE=/opt\nARG DIR=$BASE/app\nWORKDIR $DIR\n", &opts());
    assert_eq!(target(&g).config.working_dir, "/opt/app");
    let g = lower_ok(
        "FROM busybox\nARG DIR=${MISSING:?unused when given}\nWORKDIR $DIR\n",
        &opts_args(&[("DIR", "/$literal")]),
    );
    assert_eq!(target(&g).config.working_dir, "/$literal");
}

#[test]
fn onbuild_triggers_see_the_child_stage_variables() {
    // onbuild-base: COPY . /app/src, ENV BUILT=yes, LABEL from=$BUILT
    let g = lower_ok("FROM onbuild-base\nLABEL after=$BUILT\n", &opts());
    let s = target(&g);
    assert_eq!(s.config.labels.get("from").map(String::as_str), Some("yes"));
    assert_eq!(s.config.labels.get("after").map(String::as_str), Some("yes"));
}
