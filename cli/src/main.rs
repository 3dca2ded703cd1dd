//! The `kiln` command: parses flags, runs the builder, renders its events.
//!
//! Exit codes: 0 success, 1 the build (or image command) failed, 2 usage error.

mod args;
mod cmd_build;
mod cmd_cache;
mod cmd_parse;
mod cmd_plan;
mod cmd_registry;
mod render;
mod root;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use kiln_builder::{Builder, images};

use crate::args::{Cli, Command};

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

pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

fn main() -> ExitCode {
    kiln_builder::sandbox::sandbox_entry_if_requested();
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
        Command::Build(args) => cmd_build::build(&root, *args),
        Command::Parse(args) => cmd_parse::run(args),
        Command::Plan(args) => cmd_plan::run(&root, args),
        Command::Pull(args) => cmd_registry::pull(&root, args),
        Command::Push(args) => cmd_registry::push(&root, args),
        Command::Login(args) => cmd_registry::login(args),
        Command::Logout(args) => cmd_registry::logout(args),
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
        Command::Cache(command) => cmd_cache::run(&root, command),
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
