//! Bounded random inputs: parsing and lowering return errors, never panic, and every span of a
//! parsed file points inside it.

mod common;

use common::{FakeResolver, opts};
use kiln_frontend::lower::lower;
use kiln_frontend::syntax::parse;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const KEYWORDS: &[&str] = &[
    "FROM busybox",
    "RUN",
    "ADD",
    "FROM scratch AS a",
    "COPY",
    "ENV",
    "ARG",
    "LABEL",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "VOLUME",
    "CMD",
    "ENTRYPOINT",
    "HEALTHCHECK",
    "ONBUILD",
    "STOPSIGNAL",
    "SHELL",
];

const TOKENS: &[&str] = &[
    "FROM",
    "from",
    "RUN",
    "CMD",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "VOLUME",
    "SHELL",
    "ONBUILD",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "MAINTAINER",
    "ENTRYPOINT",
    "AS",
    "scratch",
    "busybox",
    "alpine:3",
    "onbuild-base",
    "$X",
    "${X:-y}",
    "${",
    "}",
    "\"",
    "'",
    "\\",
    "`",
    "[",
    "]",
    ",",
    "=",
    "--from=0",
    "--chown=1",
    "--chmod=7",
    "--link",
    "--platform=linux/arm64",
    "--mount=type=cache",
    "--mount=type=secret,id=x",
    "--mount=type=bind,from=0,target=/t",
    "--mount=target=$X,type=tmpfs,size=1k",
    "--mount=\"a=b\",ro",
    "--network=none",
    "--security=insecure",
    "--checksum=sha256:00",
    "--unpack=false",
    "--exclude=[",
    "--chmod=u+x",
    "https://e.com/a.tgz",
    "git@h:r.git#main:sub",
    "#!/bin/sh",
    "--interval=1s",
    "NONE",
    "<<EOF",
    "<<-EOF",
    "<<'E'",
    "EOF",
    "E",
    "\tEOF",
    "# escape=`",
    "# syntax=x",
    "# check=skip=all",
    "#",
    "80/tcp",
    "/a",
    "a b",
    " ",
    " ",
    "\t",
    "\n",
    "\n",
    "\n",
    "\r\n",
    "é",
    "\u{feff}",
    "[\"a\"]",
    "[1]",
    "--",
    "-",
    ":",
    "/",
    ".",
    "..",
    "0755",
];

#[test]
fn random_token_soup_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let resolver = FakeResolver::default();
    let mut parsed = 0;
    for _ in 0..1500 {
        let n = 1 + rng.next() % 8;
        let mut text = String::new();
        for _ in 0..n {
            if !rng.next().is_multiple_of(4) {
                text.push_str(rng.pick(KEYWORDS));
                text.push(' ');
            }
            for _ in 0..rng.next() % 7 {
                text.push_str(rng.pick(TOKENS));
                if rng.next().is_multiple_of(2) {
                    text.push(' ');
                }
            }
            text.push('\n');
        }
        let lines = text.lines().count().max(1) as u32 + 1;
        match parse("Dockerfile", &text) {
            Ok(df) => {
                parsed += 1;
                for i in &df.instructions {
                    assert!(i.span.line >= 1 && i.span.end_line <= lines, "{text:?}: {:?}", i.span);
                    assert!(i.keyword_span.line >= 1, "{text:?}");
                }
                for w in &df.warnings {
                    let _ = w.render(&text);
                }
                match lower(&df, &opts(), &resolver) {
                    Ok(g) => {
                        let _ = kiln_frontend::show::graph(&g);
                    }
                    Err(e) => {
                        let _ = e.render(&text);
                    }
                }
            }
            Err(e) => {
                let _ = e.render(&text);
            }
        }
    }
    assert!(parsed > 100, "the generator should produce parseable files too ({parsed})");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.next() % 200;
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 128) as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(df) = parse("Dockerfile", &text) {
            let _ = lower(&df, &opts(), &FakeResolver::default());
        }
    }
}
