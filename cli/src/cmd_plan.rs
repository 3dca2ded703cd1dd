//! `kiln plan`: parse and lower a Dockerfile for a target and print the build graph, without
//! building anything. Base images are looked up in the local store (or `oci-layout://`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use kiln_builder::Builder;
use kiln_builder::platform::Platform;
use kiln_builder::resolver::StoreResolver;
use kiln_frontend::lower::{LowerOptions, lower};

use crate::cmd_parse::{parse_source, read_source};

/// `kiln plan` flags.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The Dockerfile (`-` reads it from stdin) [default: CONTEXT/Containerfile, else
    /// CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// Set a build-time variable (`K=V`, or `K` to take it from the environment).
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,

    /// Plan this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// An extra named context (as for `kiln build`): NAME=DIR, NAME=docker-image://REF,
    /// NAME=oci-layout://PATH[:TAG], NAME=target:STAGE, ... Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// Print the graph as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// The build context directory (only used to find the Dockerfile).
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,
}

/// `--build-arg` values; `K` alone takes the value from the environment (unset: not given).
fn build_args(raw: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for arg in raw {
        match arg.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    out.insert(arg.clone(), v);
                }
            }
        }
    }
    out
}

/// Runs `kiln plan` with the kiln root `root`.
pub fn run(root: &Path, args: PlanArgs) -> Result<()> {
    let source = read_source(&args.context, args.file.as_deref())?;
    let df = parse_source(&source)?;
    let builder = Builder::open(root)?;
    let platform = Platform::host();
    let resolver = StoreResolver::new(builder.store(), platform.clone());
    let options = LowerOptions {
        build_args: build_args(&args.build_args),
        target: args.target.clone(),
        target_platform: platform.to_string(),
        build_platform: platform.to_string(),
        named_contexts: crate::cmd_build::named_contexts(&args.build_contexts)?
            .iter()
            .map(|(name, source)| (name.clone(), source.for_lowering()))
            .collect(),
    };
    let graph = lower(&df, &options, &resolver)
        .map_err(|d| anyhow::anyhow!("{}", d.render(&source.text)))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &graph)?;
        writeln!(out)?;
    } else {
        out.write_all(kiln_frontend::show::graph(&graph).as_bytes())?;
    }
    Ok(())
}
