//! Helpers shared by the integration tests: parsing/lowering shorthands and an in-memory
//! image resolver driven by a table.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use kiln_frontend::ContainerConfig;
use kiln_frontend::Diagnostic;
use kiln_frontend::graph::{BuildGraph, ImageResolver, ResolvedImage, Stage};
use kiln_frontend::lower::{LowerOptions, lower};
use kiln_frontend::syntax::{Dockerfile, parse};

/// Images known to the tests: reference → (config JSON, os, architecture).
const IMAGES: &[(&str, &str, &str, &str)] = &[
    (
        "alpine:3",
        r#"{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]}"#,
        "linux",
        "amd64",
    ),
    ("busybox", r#"{"Cmd":["sh"],"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("nopath", r#"{"Env":["LANG=C.UTF-8"],"Cmd":["run"]}"#, "linux", "amd64"),
    (
        "node:20",
        r#"{"Env":["PATH=/usr/bin","NODE_VERSION=20.1"],"WorkingDir":"/home/node","User":"node","Entrypoint":["docker-entrypoint.sh"],"Cmd":["node"],"Labels":{"maintainer":"node"},"ExposedPorts":{"3000/tcp":{}}}"#,
        "linux",
        "amd64",
    ),
    (
        "onbuild-base",
        r#"{"Env":["PATH=/bin"],"OnBuild":["COPY . /app/src","ENV BUILT=yes","LABEL from=$BUILT"]}"#,
        "linux",
        "amd64",
    ),
    (
        "onbuild-copyfrom",
        r#"{"OnBuild":["COPY --from=tools /bin/tool /usr/bin/tool"]}"#,
        "linux",
        "amd64",
    ),
    ("onbuild-run", r#"{"OnBuild":["RUN make"]}"#, "linux", "amd64"),
    ("onbuild-bad", r#"{"OnBuild":["COPY onlyone"]}"#, "linux", "amd64"),
    ("arm-image", r#"{}"#, "linux", "arm64"),
    ("tools:1", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("registry.example/app:1.0", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("busybox:latest", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("busybox:1.36", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("base:latest", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("base:2", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("extras:latest", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    ("extras:2", r#"{"Env":["PATH=/bin"]}"#, "linux", "amd64"),
    (
        "debian:bookworm-slim",
        r#"{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}"#,
        "linux",
        "amd64",
    ),
    (
        "python:3.12-slim",
        r#"{"Env":["PATH=/usr/local/bin:/usr/bin:/bin","LANG=C.UTF-8","PYTHON_VERSION=3.12.4"],"Cmd":["python3"]}"#,
        "linux",
        "amd64",
    ),
    (
        "nginx:1.27",
        r#"{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin","NGINX_VERSION=1.27.0"],"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"}"#,
        "linux",
        "amd64",
    ),
    (
        "golang:1.22",
        r#"{"Env":["PATH=/usr/local/go/bin:/bin","GOPATH=/go"],"WorkingDir":"/go"}"#,
        "linux",
        "amd64",
    ),
];

/// Resolves from [`IMAGES`] and records every call.
#[derive(Default)]
pub struct FakeResolver {
    pub calls: RefCell<Vec<(String, Option<String>)>>,
}

impl ImageResolver for FakeResolver {
    fn resolve(&self, reference: &str, platform: Option<&str>) -> Result<ResolvedImage, String> {
        self.calls.borrow_mut().push((reference.to_string(), platform.map(str::to_string)));
        let Some((_, json, os, arch)) = IMAGES.iter().find(|(r, ..)| *r == reference) else {
            return Err(format!("no such image in the local store ({reference})"));
        };
        let config: ContainerConfig = serde_json::from_str(json).expect("test config JSON");
        Ok(ResolvedImage {
            reference: reference.to_string(),
            id: format!("sha256:{reference}"),
            config,
            os: os.to_string(),
            architecture: arch.to_string(),
        })
    }
}

/// Options for a linux/amd64 build.
pub fn opts() -> LowerOptions {
    LowerOptions {
        target_platform: "linux/amd64".into(),
        build_platform: "linux/amd64".into(),
        ..Default::default()
    }
}

/// Options with `--build-arg`s.
pub fn opts_args(args: &[(&str, &str)]) -> LowerOptions {
    let mut o = opts();
    o.build_args =
        args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    o
}

/// Options with `--target`.
pub fn opts_target(t: &str) -> LowerOptions {
    LowerOptions { target: Some(t.to_string()), ..opts() }
}

/// Parses, panicking with the diagnostic on failure.
pub fn parse_ok(text: &str) -> Dockerfile {
    match parse("Dockerfile", text) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}\n--- input ---\n{text}"),
    }
}

/// The parse error's display text.
pub fn parse_err(text: &str) -> String {
    match parse("Dockerfile", text) {
        Ok(d) => panic!("expected a parse error, got {:#?}", d.instructions),
        Err(e) => e.to_string(),
    }
}

/// Parses and lowers.
pub fn try_lower(text: &str, options: &LowerOptions) -> Result<BuildGraph, Diagnostic> {
    let df = parse("Dockerfile", text)?;
    lower(&df, options, &FakeResolver::default())
}

/// Parses and lowers, panicking on failure.
pub fn lower_ok(text: &str, options: &LowerOptions) -> BuildGraph {
    match try_lower(text, options) {
        Ok(g) => g,
        Err(e) => panic!("lowering failed: {e}\n--- input ---\n{text}"),
    }
}

/// The lowering error's display text.
pub fn lower_err(text: &str, options: &LowerOptions) -> String {
    match try_lower(text, options) {
        Ok(g) => panic!("expected an error, got {g:#?}"),
        Err(e) => e.to_string(),
    }
}

/// The target stage.
pub fn target(g: &BuildGraph) -> &Stage {
    &g.stages[g.target]
}

/// `created_by` of every step of a stage.
pub fn history(s: &Stage) -> Vec<String> {
    s.steps.iter().map(|st| st.created_by.clone()).collect()
}

/// Warnings as display strings.
pub fn warnings(g: &BuildGraph) -> Vec<String> {
    g.warnings.iter().map(ToString::to_string).collect()
}

/// The value of `key` in the target's final env.
pub fn env<'a>(s: &'a Stage, key: &str) -> Option<&'a str> {
    s.config.env_get(key)
}
