//! Failed builds: the message names file:line:col and the instruction, the exit code is 1, and
//! nothing is tagged. Usage errors exit with 2.

mod common;

use common::*;

/// Builds `dockerfile` in a fresh context holding `files`; returns (exit code, stderr).
fn failing_build(
    env: &Env,
    dockerfile: &str,
    files: &[(&str, &str)],
    extra: &[&str],
) -> (Option<i32>, String) {
    let ctx = env.path("ctx");
    let _ = std::fs::remove_dir_all(&ctx);
    write_files(&ctx, files);
    write_files(&ctx, &[("Dockerfile", dockerfile)]);
    let mut args = vec!["build", "-t", "should-not-exist:1"];
    args.extend_from_slice(extra);
    let ctx_str = ctx.to_str().unwrap().to_string();
    args.push(&ctx_str);
    let out = env.kiln(&args);
    (out.status.code(), stderr(&out))
}

struct Case {
    name: &'static str,
    dockerfile: &'static str,
    files: &'static [(&'static str, &'static str)],
    extra: &'static [&'static str],
    /// Text the error must start with (after `error: `).
    prefix: &'static str,
    /// Texts the error must contain.
    contains: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown instruction",
        dockerfile: "FROM scratch\nFOO bar\n",
        files: &[],
        extra: &[],
        prefix: "Dockerfile:2:1:",
        contains: &["FOO"],
    },
    Case {
        name: "RUN on an image without a shell",
        dockerfile: "FROM scratch\nCOPY a /\n  RUN echo hi\n",
        files: &[("a", "a")],
        extra: &[],
        prefix: "Dockerfile:3:3: RUN:",
        contains: &["/bin/sh", "No such file"],
    },
    Case {
        name: "unknown flag",
        dockerfile: "FROM scratch\nCOPY --bogus=1 a /\n",
        files: &[("a", "a")],
        extra: &[],
        prefix: "Dockerfile:2:6: COPY:",
        contains: &["--bogus"],
    },
    Case {
        name: "missing COPY source",
        dockerfile: "FROM scratch\n\nCOPY missing.txt /dest/\n",
        files: &[],
        extra: &[],
        prefix: "Dockerfile:3:1: COPY:",
        contains: &["missing.txt"],
    },
    Case {
        name: "source excluded by .dockerignore",
        dockerfile: "FROM scratch\nCOPY secret.txt /\n",
        files: &[("secret.txt", "s"), (".dockerignore", "secret.txt\n")],
        extra: &[],
        prefix: "Dockerfile:2:1: COPY:",
        contains: &["secret.txt", ".dockerignore"],
    },
    Case {
        name: "source outside the context",
        dockerfile: "FROM scratch\nCOPY ../outside.txt /\n",
        files: &[],
        extra: &[],
        prefix: "Dockerfile:2:1: COPY:",
        contains: &["outside"],
    },
    Case {
        name: "unknown stage or image in --from",
        dockerfile: "FROM scratch AS one\nCOPY a /\nFROM scratch\nCOPY --from=nope /a /\n",
        files: &[("a", "a")],
        extra: &[],
        prefix: "Dockerfile:4:",
        contains: &["nope"],
    },
    Case {
        name: "unknown base image",
        dockerfile: "FROM nosuchimage:1\n",
        files: &[],
        extra: &[],
        prefix: "Dockerfile:1:6: FROM:",
        contains: &["nosuchimage"],
    },
    Case {
        name: "unknown --target",
        dockerfile: "FROM scratch AS alpha\nFROM scratch AS beta\n",
        files: &[],
        extra: &["--target", "gamma"],
        prefix: "",
        contains: &["gamma", "alpha", "beta"],
    },
    Case {
        name: "wildcard sources need a directory destination",
        dockerfile: "FROM scratch\nCOPY a b /file\n",
        files: &[("a", "a"), ("b", "b")],
        extra: &[],
        prefix: "Dockerfile:2:",
        contains: &["/"],
    },
    Case {
        name: "chown to an unknown user name",
        dockerfile: "FROM scratch\nCOPY --chown=nobody a /\n",
        files: &[("a", "a")],
        extra: &[],
        prefix: "Dockerfile:2:1: COPY:",
        contains: &["nobody", "/etc/passwd"],
    },
];

#[test]
fn every_error_names_the_line_and_instruction_and_tags_nothing() {
    let env = Env::new();
    let mut failures = Vec::new();
    for case in CASES {
        let (code, err) = failing_build(&env, case.dockerfile, case.files, case.extra);
        let message = err.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or("").to_string();
        let ok = code == Some(1)
            && message.starts_with(case.prefix)
            && case.contains.iter().all(|c| message.contains(c));
        if !ok {
            failures.push(format!(
                "{}: exit {code:?}, message {message:?}\nfull stderr:\n{err}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
    let images = env.kiln_ok(&["images"]);
    assert!(!images.contains("should-not-exist"), "a failed build tagged an image:\n{images}");
}

#[test]
fn usage_errors_exit_with_2() {
    let env = Env::new();
    let missing = env.path("no-such-dir");
    let cases: Vec<Vec<&str>> = vec![
        vec!["build", "--no-such-flag", "."],
        vec!["build"],
        vec!["build", missing.to_str().unwrap()],
        vec!["build", "-t", "Bad:Name", "."],
        vec!["build", "--output", "type=docker,dest=x", "."],
    ];
    for args in cases {
        let out = env.kiln(&args);
        assert_eq!(out.status.code(), Some(2), "kiln {args:?}: {}", stderr(&out));
    }
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = env.kiln(&["build", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no Containerfile or Dockerfile"), "{}", stderr(&out));
}

#[test]
fn help_is_available_for_every_command() {
    let env = Env::new();
    for cmd in [
        vec!["--help"],
        vec!["build", "--help"],
        vec!["images", "--help"],
        vec!["inspect", "--help"],
        vec!["rmi", "--help"],
    ] {
        let out = env.kiln(&cmd);
        assert!(out.status.success(), "{cmd:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: kiln"), "{cmd:?}");
    }
}
