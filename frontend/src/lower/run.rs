//! Lowering `RUN`: the command line (shell form, exec form, heredocs as BuildKit runs them),
//! the environment, `--mount`s with BuildKit's defaults, `--network`, `--security`, and the
//! history text.

use std::collections::BTreeSet;

use super::args::PROXY_ARGS;
use super::copy::Resolved;
use super::dispatch::StageBuilder;
use super::paths;
use crate::diag::Diagnostic;
use crate::graph::{
    CacheSharing, MountSource, Op, RunFile, RunMount, RunNetwork, RunOp, RunSecurity,
};
use crate::syntax::mount::{self, MountSpec, MountType};
use crate::syntax::{CommandLine, Flag, Heredoc, Instruction, Run, Word};

/// Where BuildKit puts a heredoc that starts with `#!` to run it as a program.
const PIPES_DIR: &str = "/dev/pipes";

/// Whether a shell-form command is exactly one heredoc opener (BuildKit's `MustParseHeredoc`
/// on the whole command).
fn is_single_heredoc(text: &str) -> bool {
    crate::syntax::heredoc_opener(text.trim()).is_some()
}

/// The last path segment (Go's `path.Base`).
fn base_name(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return if p.is_empty() { ".".to_string() } else { "/".to_string() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

impl StageBuilder<'_, '_> {
    /// The shell-form command text as BuildKit passes it to the shell when heredocs are
    /// attached, plus the files it needs.
    fn heredoc_command(&self, text: &str, docs: &[Heredoc], files: &mut Vec<RunFile>) -> String {
        let Some(first) = docs.first() else { return text.to_string() };
        if !is_single_heredoc(text) {
            // A command around the heredocs: give the shell the heredocs to handle.
            let mut full = text.to_string();
            for doc in docs {
                full.push('\n');
                full.push_str(&doc.content);
                full.push_str(&doc.name);
            }
            return full;
        }
        let data = first.chomped_content();
        if self.os != "windows" && first.content.starts_with("#!") {
            let path = paths::clean(&format!("{PIPES_DIR}/{}", first.name));
            files.push(RunFile { path: path.clone(), content: data, mode: 0o755 });
            return path;
        }
        data
    }

    /// Expands and validates one `--mount`, resolving `from` and filling BuildKit's defaults.
    fn run_mount(&self, flag: &Flag, ssh_index: &mut usize) -> Result<RunMount, Diagnostic> {
        let value = flag.value.as_deref().unwrap_or("");
        let mut unset = BTreeSet::new();
        let vars = &self.vars;
        let mut expand = |raw: &str| {
            let word = Word { text: raw.to_string(), span: flag.span };
            self.sh
                .x
                .word_tracked(&word, "RUN", &|k| vars.get(k).cloned())
                .map(|(v, names)| {
                    unset.extend(names);
                    v
                })
                .map_err(|d| d.message)
        };
        let parsed = mount::parse(value, &mut expand);
        self.note_undefined(unset, flag.span, "RUN");
        let m = parsed.map_err(|e| {
            let span = match e.field {
                Some((off, len)) => flag.value_span(off, len),
                None => flag.span,
            };
            self.err(span, "RUN", format!("--mount: {}", e.message))
        })?;
        self.resolve_mount(flag, m, ssh_index)
    }

    fn mount_source(
        &self,
        flag: &Flag,
        m: &MountSpec,
        default: MountSource,
    ) -> Result<MountSource, Diagnostic> {
        Ok(match self.resolve_from(&m.from, flag.span, ("--mount from", "mount"), "RUN")? {
            None => default,
            Some(Resolved::Stage(i)) => MountSource::Stage(i),
            Some(Resolved::Image(img)) => MountSource::Image(img),
            Some(Resolved::Scratch) => MountSource::Scratch,
            Some(Resolved::Named(name)) => MountSource::Named(name),
        })
    }

    fn resolve_mount(
        &self,
        flag: &Flag,
        m: MountSpec,
        ssh_index: &mut usize,
    ) -> Result<RunMount, Diagnostic> {
        let dir_target = || {
            let target = paths::resolve(&self.config.working_dir, &m.target);
            if target == "/" {
                return Err(self.err(
                    flag.span,
                    "RUN",
                    format!(
                        "--mount: invalid target {:?}: a mount cannot cover the root directory; \
                         give target=/some/dir",
                        m.target
                    ),
                ));
            }
            Ok(target)
        };
        let source = paths::clean(&format!("/{}", m.source));
        Ok(match m.kind {
            MountType::Bind => RunMount::Bind {
                target: dir_target()?,
                from: self.mount_source(flag, &m, MountSource::Context)?,
                source,
                readonly: m.readonly,
            },
            MountType::Cache => RunMount::Cache {
                target: dir_target()?,
                id: if m.id.is_empty() { paths::clean(&m.target) } else { m.id.clone() },
                from: self.mount_source(flag, &m, MountSource::Scratch)?,
                source,
                sharing: match m.sharing.as_str() {
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => CacheSharing::Shared,
                },
                readonly: m.readonly,
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o755),
            },
            MountType::Tmpfs => RunMount::Tmpfs { target: dir_target()?, size: m.size },
            MountType::Secret => {
                let id = if !m.source.is_empty() {
                    m.source.clone()
                } else if !m.id.is_empty() {
                    m.id.clone()
                } else {
                    base_name(&m.target)
                };
                let target = if !m.target.is_empty() {
                    Some(paths::resolve("/", &m.target))
                } else if m.env.is_none() {
                    Some(format!("/run/secrets/{}", base_name(&id)))
                } else {
                    None
                };
                RunMount::Secret {
                    id,
                    target,
                    env: m.env.clone(),
                    required: m.required,
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o400),
                }
            }
            MountType::Ssh => {
                let n = *ssh_index;
                *ssh_index += 1;
                RunMount::Ssh {
                    id: if m.id.is_empty() { "default".to_string() } else { m.id.clone() },
                    target: if m.target.is_empty() {
                        format!("/run/buildkit/ssh_agent.{n}")
                    } else {
                        paths::resolve("/", &m.target)
                    },
                    required: m.required,
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o600),
                }
            }
        })
    }

    /// The environment `RUN` gets: the state environment, then proxy build args and the
    /// `SSH_AUTH_SOCK` of the first ssh mount where not set already.
    fn run_env(&self, mounts: &[RunMount]) -> Vec<String> {
        let mut env = self.env_list();
        let has = |env: &[String], key: &str| {
            env.iter().any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        };
        for name in PROXY_ARGS {
            let lower = name.to_lowercase();
            let args = &self.sh.options.build_args;
            let Some(value) = args.get(name).or_else(|| {
                args.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
            }) else {
                continue;
            };
            for key in [name.to_string(), lower] {
                if !has(&env, &key) {
                    env.push(format!("{key}={value}"));
                }
            }
        }
        let first_ssh = mounts.iter().find_map(|m| match m {
            RunMount::Ssh { target, .. } => Some(target.clone()),
            _ => None,
        });
        if let Some(sock) = first_ssh
            && !has(&env, "SSH_AUTH_SOCK")
        {
            env.push(format!("SSH_AUTH_SOCK={sock}"));
        }
        env
    }

    /// BuildKit's `runCommandString`: `|N K=V ...` for the ARGs in scope (their value in the
    /// state environment, else as declared), then the arguments.
    fn run_history(&self, argv: &[String]) -> String {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (key, declared) in &self.build_args {
            let value = match self.vars.get(key) {
                Some(v) => v.clone(),
                None => declared.clone().unwrap_or_default(),
            };
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => entries.push((key.clone(), value)),
            }
        }
        let mut parts = Vec::new();
        if !entries.is_empty() {
            parts.push(format!("|{}", entries.len()));
            parts.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        parts.extend(argv.iter().cloned());
        format!("RUN {}", parts.join(" "))
    }

    /// Applies a `RUN` instruction.
    pub fn run(&mut self, instr: &Instruction, r: &Run) -> Result<(), Diagnostic> {
        let mut files = Vec::new();
        let (argv, command) = match &r.command {
            CommandLine::Exec(words) => {
                let args = r.command.args();
                let shown = serde_json::to_string(&args).unwrap_or_default();
                if words.is_empty() {
                    return Err(self.err(
                        instr.span,
                        "RUN",
                        "RUN [] has nothing to run: give the program, like RUN [\"make\", \"all\"]",
                    ));
                }
                (args, shown)
            }
            CommandLine::Shell(w) => {
                let text = self.heredoc_command(&w.text, &instr.heredocs, &mut files);
                (self.with_shell(text), w.text.clone())
            }
        };
        let mut mounts = Vec::with_capacity(r.mounts.len());
        let mut ssh_index = 0;
        for flag in &r.mounts {
            mounts.push(self.run_mount(flag, &mut ssh_index)?);
        }
        let value = |f: &Option<Flag>| f.as_ref().and_then(|f| f.value.clone()).unwrap_or_default();
        let network = match value(&r.network).as_str() {
            "none" => RunNetwork::None,
            "host" => RunNetwork::Host,
            _ => RunNetwork::Default,
        };
        let security = match value(&r.security).as_str() {
            "insecure" => RunSecurity::Insecure,
            _ => RunSecurity::Sandbox,
        };
        let env = self.run_env(&mounts);
        let workdir = if self.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            self.config.working_dir.clone()
        };
        let created_by = self.run_history(&argv);
        let op = RunOp {
            argv,
            env,
            user: self.config.user.clone(),
            workdir,
            mounts,
            network,
            security,
            files,
            command,
        };
        self.step(instr, created_by, Some(Op::Run(Box::new(op))));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{base_name, is_single_heredoc};

    #[test]
    fn helpers() {
        assert!(is_single_heredoc("<<EOF"));
        assert!(is_single_heredoc("<<-'EOF'"));
        assert!(is_single_heredoc("3<<EOF"));
        assert!(!is_single_heredoc("<<EOF python3"));
        assert!(!is_single_heredoc("cat <<EOF"));
        assert_eq!(base_name("/run/x/tok"), "tok");
        assert_eq!(base_name("tok"), "tok");
        assert_eq!(base_name("/a/b/"), "b");
    }
}
