//! `kiln build`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kiln_builder::context::{ContextSource, NamedSource, PreparedContext};
use kiln_builder::export::Output;
use kiln_builder::reference::ImageName;
use kiln_builder::{BuildRequest, Builder, DockerfileInput};

use crate::args::BuildArgs;
use crate::render::{Renderer, Summary};
use crate::usage;

/// Runs `kiln build` with `args` in the kiln root `root`.
pub fn build(root: &Path, args: BuildArgs) -> Result<()> {
    let started = Instant::now();
    let source = ContextSource::parse(&args.context.to_string_lossy());
    match &source {
        ContextSource::Dir(dir) if !dir.is_dir() => {
            bail!(usage(format!(
                "build context {} is neither a directory nor a tar archive",
                dir.display()
            )));
        }
        ContextSource::Stdin if args.file.as_deref() == Some("-") => {
            bail!(usage("the build context and the Dockerfile cannot both come from stdin"));
        }
        _ => {}
    }
    let named_contexts = named_contexts(&args.build_contexts)?;
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
    // A fetched or extracted context lives under ROOT/tmp: keep `kiln cache prune` away from it.
    let gc_guard = kiln_cache::gc::GcLock::build(root)?;
    // Held until the build is over: a fetched or extracted context is removed when it drops.
    let prepared = PreparedContext::prepare(&source, &root.join("tmp"), &mut std::io::stdin())
        .map_err(|e| usage(e.to_string()))?;
    let context_dir = prepared.dir.clone();
    let in_context = !matches!(source, ContextSource::Dir(_));
    let dockerfile = match (&prepared.dockerfile, args.file.as_deref()) {
        (Some(text), None) => {
            DockerfileInput { name: "Dockerfile".to_string(), path: None, text: text.clone() }
        }
        (Some(_), Some(_)) => bail!(usage(format!(
            "{} is a Dockerfile, not a context, so -f cannot name another Dockerfile",
            args.context.display()
        ))),
        (None, file) => read_dockerfile(&context_dir, file, in_context)?,
    };
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
    request.named_contexts = named_contexts;

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
    drop(prepared);
    drop(gc_guard);
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

/// `--build-context NAME=VALUE`s, by name.
fn named_contexts(raw: &[String]) -> Result<BTreeMap<String, NamedSource>> {
    let mut out = BTreeMap::new();
    for spec in raw {
        let (name, source) = NamedSource::parse(spec).map_err(|e| usage(e.to_string()))?;
        if out.insert(name.clone(), source).is_some() {
            bail!(usage(format!("--build-context {name}=... is given twice")));
        }
    }
    Ok(out)
}

/// Finds and reads the Dockerfile: `-f FILE`, `-f -` (stdin), else `Containerfile` then
/// `Dockerfile` in the context. With `in_context` (a context fetched or extracted from an
/// archive), a relative `-f` names a file of the context, as `docker build` has it.
fn read_dockerfile(
    context: &Path,
    file: Option<&str>,
    in_context: bool,
) -> Result<DockerfileInput> {
    match file {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            Ok(DockerfileInput { name: "Dockerfile".to_string(), path: None, text })
        }
        Some(name) => {
            let path = if in_context && !name.starts_with('/') {
                context.join(name)
            } else {
                PathBuf::from(name)
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("cannot read Dockerfile {name}: {e}")))?;
            Ok(DockerfileInput { name: name.to_string(), path: Some(path), text })
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
