//! What `--progress` shows: plain and json renderings (durations masked), quiet, a real pty for
//! tty, and the files for scripts.

mod common;

use common::*;
use serde_json::Value;

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.path("ctx");
    write_files(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch AS base\nCOPY a /a\nFROM base\nENV X=1\nCOPY a /b\n"),
            ("a", "a\n"),
        ],
    );
    ctx
}

/// Replaces `DONE 0.12s` durations and the summary's variable parts by fixed text.
fn mask(text: &str) -> String {
    text.lines()
        .map(|l| {
            if let Some((head, _)) = l.split_once(" DONE ") {
                format!("{head} DONE <t>")
            } else if l.starts_with("built in ") {
                "built in <summary>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plain_progress_reads_like_buildkit() {
    let env = Env::new();
    let ctx = context(&env);
    let out = env.kiln(&[
        "build",
        "--progress",
        "plain",
        "--jobs",
        "1",
        "-t",
        "p:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        mask(&stderr(&out)),
        "#1 [base 1/2] FROM scratch\n#1 DONE <t>\n#2 [base 2/2] COPY a /a\n#2 DONE <t>\n\
         #3 [stage-1 1/3] FROM base\n#3 DONE <t>\n#4 [stage-1 2/3] ENV X=1\n#4 DONE <t>\n\
         #5 [stage-1 3/3] COPY a /b\n#5 DONE <t>\nbuilt in <summary>\ntagged p:1"
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let again = env.kiln(&[
        "build",
        "--progress",
        "plain",
        "--jobs",
        "1",
        "-t",
        "p:1",
        ctx.to_str().unwrap(),
    ]);
    let text = mask(&stderr(&again));
    assert!(text.contains("#2 [base 2/2] COPY a /a\n#2 CACHED"), "{text}");
    assert!(text.contains("#5 [stage-1 3/3] COPY a /b\n#5 CACHED"), "{text}");
}

#[test]
fn json_progress_is_one_documented_object_per_line() {
    let env = Env::new();
    let ctx = context(&env);
    let out = env.kiln(&["build", "--progress", "json", "-t", "j:1", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects: Vec<Value> =
        stderr(&out).lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let types: Vec<&str> = objects.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "step_started").count(), 5);
    assert_eq!(types.iter().filter(|t| **t == "step_done").count(), 5);
    assert_eq!(types.last(), Some(&"summary"));
    for o in &objects {
        assert!(o["t"].as_f64().is_some(), "{o}");
    }
    let copy = objects.iter().find(|o| o["text"] == "COPY a /b").expect("COPY a /b started");
    assert_eq!(copy["stage"], "stage-1");
    assert_eq!((copy["index"].as_u64(), copy["total"].as_u64()), (Some(3), Some(3)));
    let summary = objects.last().unwrap();
    assert_eq!(summary["steps_run"], 5);
    assert_eq!(summary["names"][0], "j:1");
    assert_eq!(summary["image_id"].as_str().unwrap(), String::from_utf8_lossy(&out.stdout).trim());
}

#[test]
fn quiet_prints_only_the_image_id_and_files_are_written_for_scripts() {
    let env = Env::new();
    let ctx = context(&env);
    let iid = env.path("iid");
    let meta = env.path("meta.json");
    let out = env.kiln(&[
        "build",
        "--progress",
        "quiet",
        "-t",
        "q:1",
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let m: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id.as_str());
    assert_eq!(m["image.name"], "q:1");
    let inspect: Value = serde_json::from_str(&env.kiln_ok(&["inspect", "q:1"])).unwrap();
    assert_eq!(m["containerimage.digest"], inspect["digest"]);
    // `-q`, as with docker build.
    let short = env.kiln(&["build", "-q", ctx.to_str().unwrap()]);
    assert!(short.status.success());
    assert_eq!(
        (stderr(&short).as_str(), String::from_utf8_lossy(&short.stdout).trim()),
        ("", id.as_str())
    );
}

#[test]
fn tty_progress_in_a_real_terminal_ends_cleanly() {
    require("script");
    let env = Env::new();
    let ctx = context(&env);
    let cmd = format!(
        "{} --root {} build --progress tty -t t:1 {}",
        env!("CARGO_BIN_EXE_kiln"),
        env.root().display(),
        ctx.display()
    );
    // `script` runs the command with its stdio on a new pseudo-terminal.
    let out =
        std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("✔ [base 2/2] COPY a /a"), "{screen}");
    assert!(screen.contains("✔ [stage-1 3/3] COPY a /b"), "{screen}");
    assert!(screen.contains("built in "), "{screen}");
    assert!(
        screen.trim_end().ends_with(|c: char| c.is_ascii_hexdigit()),
        "the image id comes last: {screen}"
    );
}

#[test]
fn tty_shows_a_byte_bar_while_a_layer_is_compressed() {
    require("script");
    let env = Env::new();
    let ctx = env.path("big");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY big /big\n")]);
    // 20 MB that do not compress: the gzip of the output takes a while.
    let mut noise = vec![0u8; 20_000_000];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut noise)
        .unwrap();
    std::fs::write(ctx.join("big"), noise).unwrap();
    let cmd = format!(
        "{} --root {} build --progress tty -o type=oci,dest={} {}",
        env!("CARGO_BIN_EXE_kiln"),
        env.root().display(),
        env.path("out.tar").display(),
        ctx.display()
    );
    let out =
        std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // A bar: `compress sha256:0123456789ab [=====>   ] 4.19 MB/20.01 MB ...`, then its line.
    let bar = screen
        .split(['\r', '\n'])
        .find(|l| l.contains("compress sha256:") && l.contains("] ") && l.contains(" MB/"))
        .unwrap_or_else(|| panic!("no byte bar: {screen}"));
    assert!(bar.contains('['), "{bar}");
    assert!(screen.contains("✔ compress sha256:"), "{screen}");
    assert!(screen.contains("20.0MB DONE "), "{screen}");
    assert!(screen.trim_end().ends_with(|c: char| c.is_ascii_hexdigit()), "{screen}");
}

#[test]
fn hashing_a_big_context_reports_byte_progress() {
    let env = Env::new();
    let ctx = env.path("hash");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY . /c/\n"), ("small", "x\n")]);
    std::fs::write(ctx.join("big-1"), vec![b'a'; 6_000_000]).unwrap();
    std::fs::write(ctx.join("big-2"), vec![b'b'; 6_000_000]).unwrap();
    let out = env.kiln(&["build", "--progress", "json", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hashing: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["type"] == "progress" && o["task"] == "hash")
        .collect();
    assert!(hashing.len() >= 2, "{}", stderr(&out));
    // Every file with content is read: 12,000,002 bytes (the Dockerfile too).
    let total = 12_000_002 + "FROM scratch\nCOPY . /c/\n".len() as u64;
    for o in &hashing {
        assert_eq!((o["id"].as_str(), o["total"].as_u64()), (Some("context"), Some(total)), "{o}");
    }
    assert_eq!(hashing[0]["state"], "running");
    assert_eq!(hashing[0]["current"], 0);
    let done = hashing.last().unwrap();
    assert_eq!((done["state"].as_str(), done["current"].as_u64()), (Some("done"), Some(total)));
    // A small context says nothing about hashing.
    let ctx = env.path("small");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY . /c/\n"), ("a", "a\n")]);
    let out = env.kiln(&["build", "--progress", "json", ctx.to_str().unwrap()]);
    assert!(!stderr(&out).contains(r#""task":"hash""#), "{}", stderr(&out));
}
