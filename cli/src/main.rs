//! The `kiln` command: parses flags, runs the builder, renders its events.
//!
//! Exit codes: 0 success, 1 the build (or image command) failed, 2 usage error.

mod args;
mod render;
mod root;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use kiln_builder::export::Output;
use kiln_builder::reference::ImageName;
use kiln_builder::{BuildRequest, Builder, DockerfileInput, images};

use crate::args::{BuildArgs, Cli, Command};

/// Exit code of a failed build or command.
const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (what clap uses too).
const EXIT_USAGE: u8 = 2;

/// A mistake in how kiln was called, as opposed to a failed build.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let is_usage = err.downcast_ref::<UsageError>().is_some();
            eprintln!("error: {}", error_text(&err));
            ExitCode::from(if is_usage { EXIT_USAGE } else { EXIT_FAILED })
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (library errors often embed their source's message).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

fn run(cli: Cli) -> Result<()> {
    let root = root::kiln_root(cli.root.as_deref())?;
    match cli.command {
        Command::Build(args) => build(&root, args),
        Command::Images { json } => {
            let builder = Builder::open(&root)?;
            let list = images::list(builder.store())?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<40} {:<19} {:<20} {:>10}",
                    "NAME", "IMAGE ID", "CREATED", "SIZE"
                )?;
                for image in list {
                    let id = image.id.trim_start_matches("sha256:");
                    writeln!(
                        out,
                        "{:<40} {:<19} {:<20} {:>10}",
                        image.name,
                        &id[..id.len().min(12)],
                        image.created.as_deref().unwrap_or("-"),
                        render::human_size(image.size)
                    )?;
                }
            }
            Ok(())
        }
        Command::Inspect { name } => {
            let builder = Builder::open(&root)?;
            let details = images::inspect(builder.store(), &name)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &details)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Rmi { names } => {
            let builder = Builder::open(&root)?;
            for name in names {
                images::remove(builder.store(), &name)?;
                println!("Untagged: {name}");
            }
            Ok(())
        }
    }
}

fn build(root: &Path, args: BuildArgs) -> Result<()> {
    let context_dir = PathBuf::from(&args.context);
    if !context_dir.is_dir() {
        bail!(usage(format!("build context {} is not a directory", context_dir.display())));
    }
    let tags = args
        .tags
        .iter()
        .map(|t| ImageName::parse(t).map_err(|e| usage(format!("-t: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o).map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    let dockerfile = read_dockerfile(&context_dir, args.file.as_deref())?;
    let mut build_args = std::collections::BTreeMap::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            // `--build-arg NAME` takes the value from the environment; unset means not given.
            None => {
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    let source_date_epoch = source_date_epoch(&build_args)?;
    let request = BuildRequest {
        context_dir,
        dockerfile,
        tags,
        build_args,
        target: args.target.clone(),
        outputs,
        source_date_epoch,
    };
    let builder = Builder::open(root)?;
    let renderer = render::Plain::new();
    let result = builder.build(&request, &renderer)?;
    renderer.finish();
    println!("{}", result.config_digest);
    Ok(())
}

/// `SOURCE_DATE_EPOCH` from `--build-arg` or the environment (BuildKit reads both).
fn source_date_epoch(
    build_args: &std::collections::BTreeMap<String, String>,
) -> Result<Option<i64>> {
    let raw = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok());
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
            usage(format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970"))
        }),
    }
}

/// Finds and reads the Dockerfile: `-f FILE`, `-f -` (stdin), else `Containerfile` then
/// `Dockerfile` in the context.
fn read_dockerfile(context: &Path, file: Option<&str>) -> Result<DockerfileInput> {
    match file {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            Ok(DockerfileInput { name: "Dockerfile".to_string(), path: None, text })
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read Dockerfile {path}: {e}")))?;
            Ok(DockerfileInput { name: path.to_string(), path: Some(PathBuf::from(path)), text })
        }
        None => {
            for name in ["Containerfile", "Dockerfile"] {
                let path = context.join(name);
                if path.is_file() {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    return Ok(DockerfileInput { name: name.to_string(), path: Some(path), text });
                }
            }
            Err(usage(format!(
                "no Containerfile or Dockerfile in {} (use -f FILE to name one)",
                context.display()
            )))
        }
    }
}
