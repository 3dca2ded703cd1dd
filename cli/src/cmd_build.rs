//! `kiln build`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kiln_builder::export::Output;
use kiln_builder::reference::ImageName;
use kiln_builder::{BuildRequest, Builder, DockerfileInput};

use crate::args::BuildArgs;
use crate::render::{Renderer, Summary};
use crate::usage;

/// Runs `kiln build` with `args` in the kiln root `root`.
pub fn build(root: &Path, args: BuildArgs) -> Result<()> {
    let started = Instant::now();
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
    let build_args = build_args(&args.build_args);
    let mut request = BuildRequest::new(context_dir, dockerfile);
    request.source_date_epoch = source_date_epoch(&build_args)?;
    request.tags = tags;
    request.build_args = build_args;
    request.target = args.target.clone();
    request.outputs = outputs;
    request.jobs = args.jobs;
    request.no_cache = args.no_cache;
    request.no_cache_filter = args.no_cache_filter.clone();

    crate::cmd_registry::install_for_build(&args.registry)?;
    let builder = Builder::open(root)?;
    let renderer = Renderer::new(args.progress);
    let result = match builder.build(&request, &renderer) {
        Ok(r) => r,
        Err(e) => {
            renderer.abort();
            return Err(e.into());
        }
    };
    let names: Vec<String> = request.tags.iter().map(ToString::to_string).collect();
    renderer.finish(&Summary {
        started,
        image_id: result.config_digest.to_string(),
        manifest_digest: result.manifest_digest.to_string(),
        size: result.size,
        names: names.clone(),
    });
    if let Some(file) = &args.iidfile {
        std::fs::write(file, result.config_digest.to_string())
            .with_context(|| format!("writing --iidfile {}", file.display()))?;
    }
    if let Some(file) = &args.metadata_file {
        let descriptor = serde_json::to_value(&result.manifest_descriptor)?;
        let metadata = serde_json::json!({
            "containerimage.digest": result.manifest_digest.to_string(),
            "containerimage.config.digest": result.config_digest.to_string(),
            "containerimage.descriptor": descriptor,
            "image.name": names.join(","),
        });
        std::fs::write(file, serde_json::to_vec_pretty(&metadata)?)
            .with_context(|| format!("writing --metadata-file {}", file.display()))?;
    }
    crate::cmd_registry::push_after_build(root, &args.registry, &request.tags, &result)?;
    println!("{}", result.config_digest);
    // A size limit is kept after the build, never during it.
    match crate::cmd_cache::auto_prune(root) {
        Ok(Some(report)) if report.records + report.blobs.count > 0 => eprintln!(
            "pruned the cache to its size limit: {} records, {} blobs removed",
            report.records, report.blobs.count
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: automatic cache pruning failed: {e:#}"),
    }
    Ok(())
}

/// `--build-arg K=V` / `K` (value from the environment; unset means not given).
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

/// `SOURCE_DATE_EPOCH` from `--build-arg` or the environment (BuildKit reads both).
fn source_date_epoch(build_args: &BTreeMap<String, String>) -> Result<Option<i64>> {
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
