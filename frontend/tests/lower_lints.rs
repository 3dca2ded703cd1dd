//! Whole-file warnings (casing, stage names, secrets, redundant platform) and stage
//! suggestions when `--from` names neither a stage nor an image.

mod common;

use common::{lower_err, lower_ok, opts, warnings};

#[test]
fn file_warnings_like_buildkit_rules() {
    let g = lower_ok(
        "ARG TOKEN_X=1\nFROM busybox AS build\nrun true\nFROM --platform=$TARGETPLATFORM busybox AS Build\nENV API_KEY=x PUBLIC_KEY=y\nARG db_password\nFROM busybox AS scratch\nCOPY --from=build /a /a\n",
        &opts(),
    );
    assert_eq!(
        warnings(&g),
        [
            "Dockerfile:3:1: warning: RUN: \"run\" should be written in upper case like most instructions of this file: RUN",
            "Dockerfile:4:6: warning: FROM: --platform=$TARGETPLATFORM is what FROM uses anyway; remove the flag",
            "Dockerfile:4:44: warning: FROM: stage name \"Build\" should be lower-case: \"build\"",
            "Dockerfile:4:44: warning: FROM: duplicate stage name \"build\": references to it will use this last one; give each stage its own name",
            "Dockerfile:5:5: warning: ENV: ENV \"API_KEY\" looks like a secret: ENV values are kept in the image's history and config; pass secrets with RUN --mount=type=secret instead",
            "Dockerfile:6:5: warning: ARG: ARG \"db_password\" looks like a secret: ARG values are kept in the image's history and config; pass secrets with RUN --mount=type=secret instead",
            "Dockerfile:7:17: warning: FROM: stage name \"scratch\" is reserved (it means the empty image); choose another name",
        ]
    );
    let g = lower_ok("# check=skip=all\nFROM busybox\nenv API_TOKEN=1\n", &opts());
    assert!(warnings(&g).is_empty());
}

#[test]
fn unknown_from_lists_the_stages() {
    assert_eq!(
        lower_err("FROM busybox AS build\nFROM busybox\nCOPY --from=biuld /a /a\n", &opts()),
        "Dockerfile:3:6: COPY: image \"biuld\" not found: no such image in the local store (biuld); no stage is named \"biuld\" either (the stages are build; did you mean build?)"
    );
}
