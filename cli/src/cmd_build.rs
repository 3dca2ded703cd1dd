//! `kiln build`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kiln_builder::context::{ContextSource, NamedSource, PreparedContext};
use kiln_builder::export::{CompressionSpec, ExportOptions, Output};
use kiln_builder::reference::ImageName;
use kiln_builder::remote_cache::{CacheExport, CacheImport};
use kiln_builder::sandbox::{self, CancelToken, NetworkMode, UserNamespace};
use kiln_builder::solver::SecretSource;
use kiln_builder::{BuildRequest, Builder, DockerfileInput};

use crate::args::BuildArgs;
use crate::render::{Renderer, Summary};
use crate::usage;

/// Runs `kiln build` with `args` in the kiln root `root`.
pub fn build(root: &Path, args: BuildArgs) -> Result<()> {
    let started = Instant::now();
    // Before any thread starts: a non-root kiln continues in its own user namespace (the
    // process that calls this waits for that one and exits with its status).
    match sandbox::enter_rootless_namespace_if_needed(args.isolation) {
        Ok(UserNamespace::Inside { warning: Some(w), .. }) => eprintln!("warning: {w}"),
        Ok(UserNamespace::Unavailable { reason }) => eprintln!("note: {reason}"),
        Ok(_) => {}
        Err(e) => bail!("--isolation={}: {e}", args.isolation),
    }
    let cancel = CancelToken::new();
    // Ctrl-C or SIGTERM stops the build cleanly (RUNs killed, temporaries removed); a second
    // one exits at once.
    // (The exit handler first: handlers run in order, and the first signal must only cancel.)
    exit_on_second_signal(&cancel)?;
    cancel
        .cancel_on_signals(&[libc::SIGINT, libc::SIGTERM])
        .context("installing signal handlers")?;
    let network = match args.network.as_str() {
        "host" | "default" => NetworkMode::Host,
        "none" => NetworkMode::None,
        other => bail!(usage(format!("--network={other}: expected host or none"))),
    };
    let secrets = secrets(&args.secrets)?;
    let ssh = ssh_agents(&args.ssh)?;
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
    if outputs.iter().filter(|o| o.writes_stdout()).count() > 1 {
        bail!(usage("only one --output can write to stdout"));
    }
    // Checked before the context is read (it may come from stdin or the network).
    let export = export_options(&args)?;
    for output in &outputs {
        output.check_compression(&export.compression).map_err(|e| usage(e.to_string()))?;
    }
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
    request.export = export;
    request.jobs = args.jobs;
    request.no_cache = args.no_cache;
    request.no_cache_filter = args.no_cache_filter.clone();
    request.named_contexts = named_contexts;
    request.isolation = args.isolation;
    request.network = network;
    request.secrets = secrets;
    request.ssh = ssh;
    request.cancel = cancel;
    request.cache_from = parse_all(&args.cache_from, CacheImport::parse)?;
    request.cache_to = parse_all(&args.cache_to, CacheExport::parse)?;

    crate::cmd_registry::install_for_build(&args.registry)?;
    let builder = Builder::open(root)?;
    let progress = if args.quiet { crate::render::Progress::Quiet } else { args.progress };
    let renderer = Renderer::new(progress);
    let result = match builder.build(&request, &renderer) {
        Ok(r) => r,
        Err(e) => {
            renderer.abort();
            return Err(e.into());
        }
    };
    // With --push, the image's digest is the pushed one (what a registry and a signer see).
    let pushed = match crate::cmd_registry::push_after_build(
        root,
        &args.registry,
        &request.tags,
        &result,
        &request.export.compression,
        &renderer,
    ) {
        Ok(p) => p,
        Err(e) => {
            renderer.abort();
            return Err(e);
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
        let descriptor = pushed.unwrap_or_else(|| result.manifest_descriptor.clone());
        let digest = descriptor.digest().to_string();
        let descriptor = serde_json::to_value(&descriptor)?;
        let metadata = serde_json::json!({
            "containerimage.digest": digest,
            "containerimage.config.digest": result.config_digest.to_string(),
            "containerimage.descriptor": descriptor,
            "image.name": names.join(","),
        });
        std::fs::write(file, serde_json::to_vec_pretty(&metadata)?)
            .with_context(|| format!("writing --metadata-file {}", file.display()))?;
    }
    drop(prepared);
    drop(gc_guard);
    // An output on stdout (`-o -`) owns it: the image id would corrupt the stream.
    if !request.outputs.iter().any(|o| o.writes_stdout()) {
        println!("{}", result.config_digest);
    }
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

/// Parses every value of a repeatable flag; a bad one is a usage error.
fn parse_all<T, E: std::fmt::Display>(
    raw: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>> {
    raw.iter().map(|s| parse(s).map_err(|e| usage(e.to_string()))).collect()
}

/// `--compression`, `--compression-level` and `--force-compression` (of build and push).
pub(crate) fn compression_flags(
    kind: Option<&str>,
    level: Option<i32>,
    force: bool,
) -> Result<CompressionSpec> {
    let kind = kind
        .map(|k| {
            CompressionSpec::parse_kind(k).map_err(|e| usage(format!("--compression={k}: {e}")))
        })
        .transpose()?;
    let spec = CompressionSpec { kind, level, force };
    spec.validate().map_err(|e| usage(format!("--compression-level: {e}")))?;
    Ok(spec)
}

/// `--compression`, `--compression-level`, `--force-compression`, `--annotation`, `--label`,
/// `--squash`, `--rewrite-timestamp`.
fn export_options(args: &BuildArgs) -> Result<ExportOptions> {
    let compression = compression_flags(
        args.compression.as_deref(),
        args.compression_level,
        args.force_compression,
    )?;
    let mut opts = ExportOptions { compression, ..Default::default() };
    for spec in &args.annotations {
        opts.annotations.add_flag(spec).map_err(|e| usage(format!("--annotation {e}")))?;
    }
    for spec in &args.labels {
        let (k, v) = spec
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| usage(format!("--label {spec:?}: expected KEY=VALUE")))?;
        opts.labels.insert(k.to_string(), v.to_string());
    }
    opts.squash = args.squash;
    opts.rewrite_timestamp = args.rewrite_timestamp;
    Ok(opts)
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

/// Exits with 130 on a second SIGINT/SIGTERM, once the first has asked for a clean stop.
fn exit_on_second_signal(cancel: &CancelToken) -> Result<()> {
    let first = cancel.flag();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, first.clone())
            .context("installing signal handlers")?;
    }
    Ok(())
}

/// `--secret id=ID,src=FILE` / `id=ID,env=VAR` (BuildKit's syntax; `type=file|env` accepted).
fn secrets(raw: &[String]) -> Result<BTreeMap<String, SecretSource>> {
    let mut out = BTreeMap::new();
    for spec in raw {
        let (mut id, mut src, mut env) = (None, None, None);
        for pair in spec.split(',') {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                usage(format!("--secret {spec:?}: expected id=ID,src=FILE or id=ID,env=VAR"))
            })?;
            match k {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(PathBuf::from(v)),
                "env" => env = Some(v.to_string()),
                "type" if v == "file" || v == "env" => {}
                other => bail!(usage(format!("--secret {spec:?}: unknown key {other:?}"))),
            }
        }
        let source = match (src, env, &id) {
            (Some(p), None, _) => SecretSource::File(p),
            (None, Some(v), _) => SecretSource::Env(v),
            // `--secret id=TOKEN` alone reads the environment variable TOKEN, as BuildKit does.
            (None, None, Some(id)) => SecretSource::Env(id.clone()),
            _ => bail!(usage(format!("--secret {spec:?}: give src=FILE or env=VAR, not both"))),
        };
        let id = id.ok_or_else(|| usage(format!("--secret {spec:?}: id=ID is missing")))?;
        out.insert(id, source);
    }
    Ok(out)
}

/// `--ssh default` (the agent of $SSH_AUTH_SOCK) or `--ssh ID=SOCKET`.
fn ssh_agents(raw: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for spec in raw {
        let (id, socket) = match spec.split_once('=') {
            Some((id, path)) => (id.to_string(), PathBuf::from(path)),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    usage(format!(
                        "--ssh {spec}: SSH_AUTH_SOCK is not set; give --ssh {spec}=SOCKET"
                    ))
                })?;
                (spec.clone(), PathBuf::from(sock))
            }
        };
        out.insert(id, socket);
    }
    Ok(out)
}

/// `--build-context NAME=VALUE`s, by name.
pub(crate) fn named_contexts(raw: &[String]) -> Result<BTreeMap<String, NamedSource>> {
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
        Some(name) if in_context && !name.starts_with('/') => {
            let path = context.join(name);
            let text = read_in_context(context, &path)?
                .ok_or_else(|| usage(format!("cannot read Dockerfile {name}: not found")))?;
            Ok(DockerfileInput { name: name.to_string(), path: Some(path), text })
        }
        // A file the user named: read as named, symlinks followed.
        Some(name) => {
            let path = PathBuf::from(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("cannot read Dockerfile {name}: {e}")))?;
            Ok(DockerfileInput { name: name.to_string(), path: Some(path), text })
        }
        None => {
            for name in ["Containerfile", "Dockerfile"] {
                let path = context.join(name);
                if let Some(text) = read_in_context(context, &path)? {
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

/// Reads the Dockerfile `path` of `context` with the context as its root directory (as
/// BuildKit reads it): a symlink cannot lead out of the context. `None` when there is no such
/// file; a symlink that leads out is an error that says so.
fn read_in_context(context: &Path, path: &Path) -> Result<Option<String>> {
    let root = std::fs::canonicalize(context)
        .with_context(|| format!("resolving the build context {}", context.display()))?;
    let shown = path.display();
    let bytes = match kiln_builder::context::read_in_root(&root, path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Ok(target) = std::fs::read_link(path) {
                bail!(usage(format!(
                    "{shown} is a symlink to {}, which is not in the build context: the \
                     Dockerfile is read inside the context (name the file with -f to read it)",
                    target.display()
                )));
            }
            return Ok(None);
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {shown}"))),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| anyhow::anyhow!("{shown} is not UTF-8 text"))
}
