//! `kiln parse`: parse a Dockerfile and print it as JSON (`--json`) or as normalized text;
//! errors show the offending line with a caret, warnings go to stderr.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use kiln_frontend::syntax;

/// `kiln parse` flags.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print the parsed instructions as JSON (directives, and per instruction its name, lines,
    /// flags, unexpanded arguments, form and heredocs).
    #[arg(long)]
    pub json: bool,

    /// The Dockerfile (`-` reads it from stdin) [default: CONTEXT/Containerfile, else
    /// CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// The build context directory (only used to find the Dockerfile).
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,
}

/// A Dockerfile's name (for messages) and text.
pub struct Source {
    /// The name shown in diagnostics.
    pub name: String,
    /// The text.
    pub text: String,
}

/// Reads the Dockerfile: `-f FILE`, `-f -` (stdin), else `Containerfile` then `Dockerfile` in
/// the context.
pub fn read_source(context: &Path, file: Option<&str>) -> Result<Source> {
    match file {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            Ok(Source { name: "Dockerfile".to_string(), text })
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read Dockerfile {path}"))?;
            Ok(Source { name: path.to_string(), text })
        }
        None => {
            for name in ["Containerfile", "Dockerfile"] {
                let path = context.join(name);
                if path.is_file() {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    return Ok(Source { name: name.to_string(), text });
                }
            }
            bail!(
                "no Containerfile or Dockerfile in {} (use -f FILE to name one)",
                context.display()
            )
        }
    }
}

/// Parses `source`, printing its warnings (rendered) to stderr; a parse error comes back
/// rendered with the offending line and a caret.
pub fn parse_source(source: &Source) -> Result<syntax::Dockerfile> {
    let df = syntax::parse(&source.name, &source.text)
        .map_err(|d| anyhow::anyhow!("{}", d.render(&source.text)))?;
    let mut err = std::io::stderr().lock();
    for w in &df.warnings {
        writeln!(err, "{}", w.render(&source.text))?;
    }
    Ok(df)
}

/// Runs `kiln parse`.
pub fn run(args: ParseArgs) -> Result<()> {
    let source = read_source(&args.context, args.file.as_deref())?;
    let df = parse_source(&source)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &df.to_json())?;
        writeln!(out)?;
    } else {
        out.write_all(df.to_text().as_bytes())?;
    }
    Ok(())
}
