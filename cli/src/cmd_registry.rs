//! `kiln pull`, `kiln push`, `kiln login`, `kiln logout`, and the registry flags of
//! `kiln build` (`--pull`, `--push`, `--tls-verify`, `--authfile`, `--cert-dir`).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kiln_builder::events::TransferEvents;
use kiln_builder::export::{CompressionSpec, distributable};
use kiln_builder::platform::Platform;
use kiln_builder::reference::{ImageName, Reference};
use kiln_builder::registry::credentials::{has_entry, login_key};
use kiln_builder::registry::{
    self, AuthFiles, BlobKind, CertDirs, Credential, Direction, Progress, ProgressStatus,
    PullPolicy, Registry, RegistryOptions, Session,
};
use kiln_builder::resolver::find_in_store;
use kiln_builder::{BuildResult, Builder};

use crate::usage;

/// Flags every registry command shares.
#[derive(Debug, Clone, Args)]
pub struct RegistryFlags {
    /// Require HTTPS with verified certificates (`--tls-verify=false` allows plain HTTP and
    /// unverified TLS) [default: per registries.conf, else true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,

    /// The auth file to read and write [default: $REGISTRY_AUTH_FILE, else
    /// $XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json for reading]
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,

    /// A directory with the CA certificates (`*.crt`) and client certificate (`*.cert`,
    /// `*.key`) to use [default: certs.d/HOST:PORT under ~/.config/containers,
    /// /etc/containers, /etc/docker]
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

impl RegistryFlags {
    /// True when any flag was given.
    fn any(&self) -> bool {
        self.tls_verify.is_some() || self.authfile.is_some() || self.cert_dir.is_some()
    }

    /// The registry client these flags describe.
    fn registry(&self) -> Result<Registry> {
        let mut options = RegistryOptions::from_env();
        options.tls_verify = self.tls_verify;
        options.auth = AuthFiles::from_env(self.authfile.as_deref());
        options.certs = CertDirs::from_env(self.cert_dir.as_deref());
        Ok(Registry::new(options)?)
    }
}

/// The registry flags of `kiln build`.
#[derive(Debug, Clone, Args)]
pub struct BuildRegistryArgs {
    /// When to pull base images: missing (only what the local store lacks), always, never.
    /// `--pull` alone means always.
    #[arg(long, value_name = "POLICY", num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pub pull: Option<PullPolicy>,

    /// Push the image to each `-t` name's registry after the build.
    #[arg(long)]
    pub push: bool,

    #[command(flatten)]
    pub flags: RegistryFlags,
}

/// `kiln pull` flags.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The platform to pull from a multi-platform image [default: this machine's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,

    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub flags: RegistryFlags,

    /// The image (`busybox`, `quay.io/org/app:1`, `name@sha256:…`).
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `kiln push` flags.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Write the pushed manifest's digest to FILE.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,

    /// Print only the digest.
    #[arg(short, long)]
    pub quiet: bool,

    /// Compression of the pushed layers: gzip (default for uncompressed layers; compressed
    /// ones are sent as they are), zstd or uncompressed (then every layer is converted).
    #[arg(long, value_name = "gzip|zstd|uncompressed")]
    pub compression: Option<String>,

    /// Compression level: gzip 0-9 (default 6), zstd 1-22 (default 3).
    #[arg(long = "compression-level", value_name = "N")]
    pub compression_level: Option<i32>,

    #[command(flatten)]
    pub flags: RegistryFlags,

    /// The image in the local store.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Where to push it [default: NAME]
    #[arg(value_name = "DEST")]
    pub dest: Option<String>,
}

/// `kiln login` flags.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user name.
    #[arg(short, long)]
    pub username: Option<String>,

    /// The password (visible to other users of the machine: prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,

    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,

    /// Print the user name stored for REGISTRY and exit.
    #[arg(long)]
    pub get_login: bool,

    #[command(flatten)]
    pub flags: RegistryFlags,

    /// The registry (`quay.io`, `localhost:5000`; a namespace such as `quay.io/team` stores
    /// credentials for that namespace only).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
}

/// `kiln logout` flags.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The auth file to edit [default: $REGISTRY_AUTH_FILE, else
    /// $XDG_RUNTIME_DIR/containers/auth.json]
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,

    /// Remove the credentials of every registry.
    #[arg(short, long)]
    pub all: bool,

    /// The registry.
    #[arg(value_name = "REGISTRY", required_unless_present = "all")]
    pub registry: Option<String>,
}

/// Prints transfer progress on stderr, one line per blob event (podman's style).
struct Lines {
    quiet: bool,
}

impl registry::ProgressSink for Lines {
    fn progress(&self, p: &Progress) {
        if self.quiet {
            return;
        }
        let what = match p.kind {
            BlobKind::Config => "config",
            BlobKind::Layer => "blob",
        };
        let verb = match p.direction {
            Direction::Pull => "Copying",
            Direction::Push => "Pushing",
        };
        let short = &p.digest.hex()[..12];
        let line = match &p.status {
            ProgressStatus::Started | ProgressStatus::Transferring => return,
            ProgressStatus::Retrying { attempt, reason } => {
                format!("{verb} {what} sha256:{short}: retrying (attempt {attempt}): {reason}")
            }
            ProgressStatus::AlreadyPresent => {
                format!("{verb} {what} sha256:{short} skipped: already exists")
            }
            ProgressStatus::Mounted { from } => {
                format!("{verb} {what} sha256:{short} mounted from {from}")
            }
            ProgressStatus::Done => {
                format!("{verb} {what} sha256:{short} done {}", crate::render::human_size(p.total))
            }
        };
        eprintln!("{line}");
    }
}

/// `kiln pull NAME`: pulls into the local store, prints the image id.
pub fn pull(root: &Path, args: PullArgs) -> Result<()> {
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(|e| usage(e.to_string()))?,
        None => Platform::host(),
    };
    kiln_builder::reference::split_reference(&args.name)
        .map_err(|reason| usage(format!("invalid image name {:?}: {reason}", args.name)))?;
    let registry = args.flags.registry()?;
    let builder = Builder::open(root)?;
    let lines = Lines { quiet: args.quiet };
    if !args.quiet {
        eprintln!(
            "Trying to pull {}...",
            registry
                .candidates(&args.name)?
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let pulled = registry.pull_name(builder.store(), &args.name, &platform, &lines)?;
    if !args.quiet {
        for w in &pulled.warnings {
            eprintln!("WARNING: {w}");
        }
        eprintln!("Writing manifest to image destination");
        eprintln!("Stored {} ({})", pulled.reference, pulled.manifest_digest);
    }
    println!("{}", pulled.config_digest);
    Ok(())
}

/// `kiln push NAME [DEST]`: pushes a stored image, prints the pushed digest.
pub fn push(root: &Path, args: PushArgs) -> Result<()> {
    let registry = args.flags.registry()?;
    let builder = Builder::open(root)?;
    let (_, descriptor) = find_in_store(builder.store(), &args.name, Some(&registry))
        .map_err(|e| anyhow!(e))?
        .ok_or_else(|| anyhow!("image {:?} is not in the local store", args.name))?;
    let dest_text = args.dest.as_deref().unwrap_or(&args.name);
    let dest = Reference::parse(dest_text).map_err(|e| usage(e.to_string()))?;
    let spec = crate::cmd_build::compression_flags(
        args.compression.as_deref(),
        args.compression_level,
        false,
    )?;
    let descriptor = distributable(root, builder.store().blobs(), &descriptor, &spec, &())?;
    let lines = Lines { quiet: args.quiet };
    let pushed = registry.push(builder.store(), &descriptor, &dest, &lines)?;
    if args.dest.is_none() {
        // The name now points to what its registry has (also where later pushes mount from).
        builder.store().tag(&args.name, descriptor.clone())?;
    }
    if !args.quiet {
        eprintln!("Writing manifest to image destination");
        eprintln!("Pushed {}@{}", dest.name(), pushed.digest);
    }
    if let Some(file) = &args.digestfile {
        std::fs::write(file, pushed.digest.to_string())
            .with_context(|| format!("writing --digestfile {}", file.display()))?;
    }
    println!("{}", pushed.digest);
    Ok(())
}

/// `kiln login REGISTRY`: checks the credentials with the registry and stores them.
pub fn login(args: LoginArgs) -> Result<()> {
    let registry = args.flags.registry()?;
    let key = login_key(&args.registry);
    if args.get_login {
        let host = key.split('/').next().unwrap_or(&key);
        let repo = key.split_once('/').map(|(_, r)| r).unwrap_or("");
        return match registry.options().auth.lookup(host, repo)? {
            Some(Credential::Basic { username, .. }) => {
                println!("{username}");
                Ok(())
            }
            Some(Credential::IdentityToken(_)) => {
                bail!("{key}: logged in with an identity token (no user name)")
            }
            None => bail!("not logged into {key}"),
        };
    }
    if args.password.is_some() && args.password_stdin {
        bail!(usage("--password and --password-stdin cannot be used together"));
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if interactive && !args.password_stdin => prompt("Username: ")?,
        None => bail!(usage("give the user name with --username")),
    };
    let password = if let Some(p) = &args.password {
        eprintln!(
            "WARNING! Using --password on the command line is insecure. Use --password-stdin."
        );
        p.clone()
    } else if args.password_stdin {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).context("reading the password from stdin")?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive {
        read_secret("Password: ")?
    } else {
        bail!(usage("give the password with --password-stdin"));
    };
    if username.is_empty() || password.is_empty() {
        bail!(usage("the user name and the password must not be empty"));
    }
    registry.login(&args.registry, &username, &password)?;
    println!("Login Succeeded!");
    Ok(())
}

/// `kiln logout REGISTRY` / `--all`.
pub fn logout(args: LogoutArgs) -> Result<()> {
    let mut options = RegistryOptions::from_env();
    options.auth = AuthFiles::from_env(args.authfile.as_deref());
    let registry = Registry::new(options)?;
    if args.all {
        registry.logout(None)?;
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let name = args.registry.as_deref().unwrap_or_default();
    if registry.logout(Some(name))? {
        println!("Removed login credentials for {}", login_key(name));
        return Ok(());
    }
    let key = login_key(name);
    let host = key.split('/').next().unwrap_or(&key);
    if registry.options().auth.docker_files().any(|f| has_entry(f, host)) {
        bail!(
            "not logged into {key} with kiln: the credentials were stored by docker login; \
             use docker logout {key}"
        );
    }
    bail!("not logged into {key}")
}

/// Installs the registry session of a build from its flags (only when some were given; the
/// default session is built from the environment when first needed).
pub fn install_for_build(args: &BuildRegistryArgs) -> Result<()> {
    if args.flags.any() || args.pull.is_some() {
        let registry = Arc::new(args.flags.registry()?);
        let pull = args.pull.unwrap_or_default();
        registry::install_session(Session { registry, pull });
    }
    Ok(())
}

/// `kiln build --push`: pushes the built image to each `-t` name; prints where on stderr.
/// Returns the pushed manifest's descriptor (`None` without `--push`); each name then stands
/// for it in the local store too, as for a pulled image.
pub fn push_after_build(
    root: &Path,
    args: &BuildRegistryArgs,
    tags: &[ImageName],
    result: &BuildResult,
    compression: &CompressionSpec,
    renderer: &crate::render::Renderer,
) -> Result<Option<oci_spec::image::Descriptor>> {
    if !args.push {
        return Ok(None);
    }
    if tags.is_empty() {
        bail!(usage("--push needs a name to push to: add -t REGISTRY/NAME[:TAG]"));
    }
    let session = registry::session().map_err(|e| anyhow!(e))?;
    let builder = Builder::open(root)?;
    let transfers = TransferEvents::new(renderer);
    let blobs = builder.store().blobs();
    let descriptor =
        distributable(root, blobs, &result.manifest_descriptor, compression, renderer)?;
    for tag in tags {
        let dest = Reference::parse(&tag.to_string())?;
        let pushed = session.registry.push(builder.store(), &descriptor, &dest, &transfers)?;
        // The name now points to what its registry has (also where later pushes mount from).
        builder.store().tag(&tag.to_string(), descriptor.clone())?;
        renderer.pushed(&dest.name().to_string(), &pushed.digest.to_string());
    }
    Ok(Some(descriptor))
}

/// Asks for a line on the terminal.
fn prompt(text: &str) -> Result<String> {
    eprint!("{text}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks for a secret on the terminal with echo off.
fn read_secret(text: &str) -> Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a terminal fd.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin, `old` is a valid termios to fill.
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        return prompt(text);
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: setting attributes copied from the terminal's own, with echo cleared.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let answer = prompt(text);
    // SAFETY: restoring the attributes read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    eprintln!();
    answer
}
