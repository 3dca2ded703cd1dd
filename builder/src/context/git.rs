//! Git sources (`ADD https://host/repo.git#ref:dir`, git contexts) through the `git` command:
//! a shallow fetch of the one commit asked for into an empty repository, a detached checkout,
//! and submodules. The commit hash identifies the source in cache keys.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a git source cannot be fetched.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` is not installed.
    #[error("git sources need the `git` command, which was not found: {0}")]
    NotInstalled(std::io::Error),
    /// A git command failed.
    #[error("git {what} of {remote}{at} failed: {detail}")]
    Failed {
        /// The remote.
        remote: String,
        /// ` at REF`, or empty.
        at: String,
        /// What was being done (`fetch`, `checkout`, ...).
        what: &'static str,
        /// git's message.
        detail: String,
    },
    /// A remote that git would take for an option.
    #[error("git remote {0:?} is not valid")]
    BadRemote(String),
}

/// A checked-out commit.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The work tree (with its `.git`).
    pub dir: PathBuf,
    /// The full commit hash.
    pub commit: String,
    /// The committer date, seconds since the epoch.
    pub commit_time: i64,
}

struct Git<'a> {
    dir: &'a Path,
    remote: &'a str,
    reference: Option<&'a str>,
}

impl Git<'_> {
    fn run(&self, what: &'static str, args: &[&str]) -> Result<String, GitError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.dir)
            .args(["-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .output()
            .map_err(GitError::NotInstalled)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> =
                stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let detail = lines.join("; ");
            return Err(GitError::Failed {
                remote: self.remote.to_string(),
                at: self.reference.map(|r| format!(" at {r}")).unwrap_or_default(),
                what,
                detail: if detail.is_empty() { out.status.to_string() } else { detail },
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Fetches `reference` (a branch, tag or commit; the remote's `HEAD` when `None`) of `remote`
/// into the empty directory `dest` and checks it out.
pub fn fetch(remote: &str, reference: Option<&str>, dest: &Path) -> Result<Checkout, GitError> {
    if remote.starts_with('-') || remote.is_empty() {
        return Err(GitError::BadRemote(remote.to_string()));
    }
    let git = Git { dir: dest, remote, reference };
    git.run("init", &["init", "-q"])?;
    git.run("remote add", &["remote", "add", "origin", remote])?;
    let wanted = reference.unwrap_or("HEAD");
    let commit = match git
        .run("fetch", &["fetch", "-q", "--depth=1", "--no-tags", "origin", wanted])
    {
        Ok(_) => git.run("rev-parse", &["rev-parse", "FETCH_HEAD^{commit}"])?,
        Err(shallow) => {
            // An abbreviated hash (or a server refusing to send one commit): fetch everything
            // and let git resolve the name.
            let all = ["fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"];
            if git.run("fetch", &all).is_err() {
                return Err(shallow);
            }
            let spec = format!("{wanted}^{{commit}}");
            match git.run("rev-parse", &["rev-parse", "--verify", "-q", &spec]) {
                Ok(c) => c,
                Err(_) => {
                    let spec = format!("origin/{wanted}^{{commit}}");
                    git.run("rev-parse", &["rev-parse", "--verify", "-q", &spec])
                        .map_err(|_| shallow)?
                }
            }
        }
    };
    git.run("checkout", &["checkout", "-q", "--detach", &commit])?;
    if dest.join(".gitmodules").exists() {
        git.run(
            "submodule update",
            &["submodule", "update", "-q", "--init", "--recursive", "--depth=1"],
        )?;
    }
    let time = git.run("log", &["log", "-1", "--format=%ct", &commit])?;
    let commit_time = time.parse().unwrap_or(0);
    Ok(Checkout { dir: dest.to_path_buf(), commit, commit_time })
}
