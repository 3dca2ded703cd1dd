//! Shared helpers for the expand_* integration tests.

#![allow(dead_code)]

use std::collections::HashMap;

/// The environment most tables expand against.
pub fn env() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
        ("AB", "a b"),
        ("SP", " lead and trail "),
        ("STAR", "a*b"),
        ("FILE", "archive.tar.gz"),
        ("DOLLAR", "$PWD"),
        ("Q", "'q'"),
        ("NL", "a\nb"),
        ("URL", "http://example.com/a/b"),
        ("TARGETARCH", "arm"),
        ("TARGETVARIANT", "v7"),
    ])
}

/// Looks names up in `env()`.
pub fn lookup(name: &str) -> Option<String> {
    env().get(name).map(|v| v.to_string())
}
