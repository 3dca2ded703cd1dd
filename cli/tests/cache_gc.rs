//! `kiln cache du|prune|check`: pruning keeps tagged images, check finds corruption, and a
//! build killed with SIGKILL at any moment leaves a consistent cache.

mod common;

use common::*;
use serde_json::Value;

fn json(env: &Env, args: &[&str]) -> Value {
    serde_json::from_str(&env.kiln_ok(args)).unwrap_or_else(|e| panic!("kiln {args:?}: {e}"))
}

fn two_images(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = env.path("a");
    write_files(
        &a,
        &[("Dockerfile", "FROM scratch\nCOPY f /f\nCOPY g /g\n"), ("f", "f1"), ("g", "g1")],
    );
    let b = env.path("b");
    write_files(&b, &[("Dockerfile", "FROM scratch\nCOPY h /h\n"), ("h", "h1")]);
    env.kiln_ok(&["build", "--progress", "quiet", "-t", "keep:1", a.to_str().unwrap()]);
    env.kiln_ok(&["build", "--progress", "quiet", b.to_str().unwrap()]);
    (a, b)
}

#[test]
fn du_counts_and_prune_all_keeps_tagged_images() {
    let env = Env::new();
    let (a, b) = two_images(&env);
    let usage = json(&env, &["cache", "du", "--json"]);
    assert_eq!(usage["records"], 3);
    // keep:1 has 2 layers + config + manifest; the untagged build's layer is cache-only, and its
    // config and manifest are unreferenced.
    assert_eq!(usage["images"]["count"], 4, "{usage:#}");
    assert_eq!(usage["cache_layers"]["count"], 1, "{usage:#}");
    assert_eq!(usage["unreferenced"]["count"], 2, "{usage:#}");
    assert!(env.kiln_ok(&["cache", "du"]).contains("build cache layers"));

    let report = json(&env, &["cache", "prune", "--all", "--json"]);
    assert_eq!(report["records"], 3);
    assert_eq!(report["blobs"]["count"], 3, "{report:#}");
    let usage = json(&env, &["cache", "du", "--json"]);
    assert_eq!(usage["records"], 0);
    assert_eq!(usage["images"]["count"], 4);
    // The tagged image still exports and reads fine.
    let out = env.path("out");
    env.kiln_ok(&[
        "build",
        "--progress",
        "quiet",
        "-t",
        "keep:1",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        a.to_str().unwrap(),
    ]);
    assert_eq!(skopeo_manifest(&out, "1")["layers"].as_array().unwrap().len(), 2);
    let _ = b;
}

#[test]
fn prune_by_age_and_by_size() {
    let env = Env::new();
    two_images(&env);
    // Nothing is older than a day.
    let report = json(&env, &["cache", "prune", "--filter", "until=24h", "--json"]);
    assert_eq!(report["records"], 0);
    assert_eq!(report["blobs"]["count"], 2, "only unreferenced blobs go: {report:#}");
    // A tiny limit removes every cache record; tagged blobs stay.
    let report = json(&env, &["cache", "prune", "--keep-storage", "1", "--json"]);
    assert_eq!(report["records"], 3, "{report:#}");
    assert_eq!(json(&env, &["cache", "du", "--json"])["images"]["count"], 4);
    let bad = env.kiln(&["cache", "prune", "--keep-storage", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn automatic_pruning_keeps_the_configured_size() {
    let env = Env::new();
    two_images(&env);
    let c = env.path("c");
    write_files(&c, &[("Dockerfile", "FROM scratch\nCOPY big /big\n")]);
    std::fs::write(c.join("big"), vec![7u8; 300_000]).unwrap();
    let out = env
        .kiln_cmd(&["build", "--progress", "quiet", c.to_str().unwrap()])
        .env("KILN_GC_KEEP_STORAGE", "1kB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("pruned the cache to its size limit"), "{}", stderr(&out));
    let usage = json(&env, &["cache", "du", "--json"]);
    assert_eq!(usage["records"], 0, "{usage:#}");
    assert_eq!(usage["images"]["count"], 4, "tagged images are never pruned: {usage:#}");
}

#[test]
fn check_finds_and_repairs_corruption() {
    let env = Env::new();
    two_images(&env);
    assert!(env.kiln_ok(&["cache", "check"]).contains("the cache is consistent"));
    // Corrupt a cache-only layer blob.
    let usage = json(&env, &["cache", "du", "--json"]);
    assert_eq!(usage["cache_layers"]["count"], 1);
    let records = std::fs::read_dir(env.root().join("cache/index")).unwrap();
    let mut victim = None;
    for r in records.flatten() {
        let v: Value = serde_json::from_slice(&std::fs::read(r.path()).unwrap()).unwrap();
        if v["description"] == "COPY h /h" {
            victim = v["layer"]["digest"].as_str().map(str::to_string);
        }
    }
    let digest = victim.expect("record of COPY h /h");
    let blob = env.root().join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    std::fs::write(&blob, b"not the layer").unwrap();
    let out = env.kiln(&["cache", "check", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["corrupt_blobs"][0], digest.as_str());
    // Repair removes the blob; then the record dangles and is removed too on the next check.
    env.kiln_ok(&["cache", "check"]);
    assert!(!blob.exists());
    let report = json(&env, &["cache", "check", "--json"]);
    assert_eq!(report["corrupt_blobs"].as_array().unwrap().len(), 0);
    assert!(env.kiln_ok(&["cache", "check", "--dry-run"]).contains("the cache is consistent"));
    // The next build redoes the step.
    let b = env.path("b");
    let out = env.kiln(&["build", "--progress", "plain", b.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(rebuilt(&stderr(&out)), ["COPY h /h"]);
}

#[test]
fn sigkill_at_any_moment_leaves_a_consistent_cache() {
    let env = Env::new();
    let ctx = env.path("ctx");
    let mut dockerfile = String::from("FROM scratch\n");
    for i in 0..6 {
        dockerfile.push_str(&format!("COPY d{i}/ /d{i}/\n"));
        let files: Vec<(String, String)> =
            (0..40).map(|j| (format!("d{i}/f{j}"), format!("{i}-{j}-").repeat(2000))).collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        write_files(&ctx, &refs);
    }
    write_files(&ctx, &[("Dockerfile", &dockerfile)]);
    let ctx_s = ctx.to_str().unwrap();
    // How long a whole build takes here: the kills are spread over that time, so they land
    // mid-build however fast or loaded the machine is.
    // (The shortest of three: the first also fills the context's stat cache.)
    let whole = (0..3)
        .map(|i| {
            write_files(&ctx, &[("d0/round", &format!("warm-up {i}"))]);
            let started = std::time::Instant::now();
            let out = env.kiln(&["build", "--progress", "quiet", "--no-cache", "-t", "k:1", ctx_s]);
            assert!(out.status.success(), "{}", stderr(&out));
            started.elapsed()
        })
        .min()
        .unwrap_or_default();
    let mut interrupted = 0;
    for round in 0..20u32 {
        // Vary the change so that every round has work to do, and the kill moment.
        write_files(&ctx, &[("d0/round", &round.to_string())]);
        let mut child = env
            .kiln_cmd(&["build", "--progress", "quiet", "--no-cache", "-t", "k:1", ctx_s])
            .spawn()
            .unwrap();
        std::thread::sleep(whole * (round + 1) / 25);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.code().is_none() {
            interrupted += 1;
        }
        let out = env.kiln(&["cache", "check", "--dry-run", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert!(out.status.success(), "round {round}: check failed: {report:#} {}", stderr(&out));
        assert_eq!(report["corrupt_blobs"].as_array().map(Vec::len), Some(0), "round {round}");
        assert_eq!(report["dangling_records"].as_array().map(Vec::len), Some(0), "round {round}");
        assert_eq!(report["bad_records"].as_array().map(Vec::len), Some(0), "round {round}");
    }
    assert!(interrupted >= 10, "only {interrupted} of 20 builds were killed mid-way");
    // The next build succeeds and a repair leaves no garbage behind.
    let out = env.kiln(&["build", "--progress", "quiet", "-t", "k:1", ctx_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.kiln_ok(&["cache", "check"]);
    let report = json(&env, &["cache", "check", "--dry-run", "--json"]);
    assert_eq!(report["temporaries"], 0, "{report:#}");
    assert_eq!(report["partial_snapshots"].as_array().map(Vec::len), Some(0));
}
