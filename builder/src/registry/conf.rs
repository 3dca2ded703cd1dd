//! `registries.conf` (containers-registries.conf(5), version 2; version 1 tables are read too):
//! short-name search and aliases, and `[[registry]]` entries with `location`, `insecure`,
//! `blocked` and mirrors.
//!
//! Files are read as containers/image reads them: `$CONTAINERS_REGISTRIES_CONF`, else
//! `~/.config/containers/registries.conf` when it exists, else `/etc/containers/registries.conf`;
//! then the `*.conf` drop-ins of `/etc/containers/registries.conf.d` (not when the user file is
//! used) and `~/.config/containers/registries.conf.d`, each in name order. A later file replaces
//! `unqualified-search-registries` and `short-name-mode` when it sets them, replaces
//! `[[registry]]` entries with the same prefix, and adds to `[aliases]` (an empty value removes
//! an alias).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{RegistryError, Result};
use crate::reference::{Reference, split_reference};

/// The system-wide file.
pub const SYSTEM_FILE: &str = "/etc/containers/registries.conf";
/// The system-wide drop-in directory.
pub const SYSTEM_DIR: &str = "/etc/containers/registries.conf.d";

/// Which files make up the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfPaths {
    /// The main file.
    pub file: PathBuf,
    /// When true a missing main file is an error (it was named explicitly).
    pub file_required: bool,
    /// Drop-in directories, read in this order (missing ones are skipped).
    pub dirs: Vec<PathBuf>,
}

impl ConfPaths {
    /// The files containers/image would read for this user (see the module docs).
    pub fn from_env() -> ConfPaths {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let user_file = home.as_ref().map(|h| h.join(".config/containers/registries.conf"));
        let user_dir = home.as_ref().map(|h| h.join(".config/containers/registries.conf.d"));
        if let Some(file) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|v| !v.is_empty())
        {
            let mut dirs = vec![PathBuf::from(SYSTEM_DIR)];
            dirs.extend(user_dir);
            return ConfPaths { file: PathBuf::from(file), file_required: true, dirs };
        }
        if let Some(file) = user_file.filter(|f| f.is_file()) {
            return ConfPaths { file, file_required: false, dirs: user_dir.into_iter().collect() };
        }
        let mut dirs = vec![PathBuf::from(SYSTEM_DIR)];
        dirs.extend(user_dir);
        ConfPaths { file: PathBuf::from(SYSTEM_FILE), file_required: false, dirs }
    }

    /// Exactly one file and no drop-ins (for tests and explicit configuration).
    pub fn only(file: impl Into<PathBuf>) -> ConfPaths {
        ConfPaths { file: file.into(), file_required: true, dirs: Vec::new() }
    }
}

/// How unqualified names are resolved when several search registries are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortNameMode {
    /// Ambiguous short names are an error (kiln has nobody to ask).
    Enforcing,
    /// Each search registry is tried in order.
    Permissive,
    /// Each search registry is tried in order.
    Disabled,
}

/// Which pulls a mirror serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorUse {
    /// Pulls by tag and by digest.
    All,
    /// Only pulls by digest.
    DigestOnly,
    /// Only pulls by tag.
    TagOnly,
}

/// A `[[registry.mirror]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Where the mirror is (`host[:port][/path]`).
    pub location: String,
    /// Plain HTTP and unverified TLS are allowed.
    pub insecure: bool,
    /// Which pulls it serves.
    pub pull_from: MirrorUse,
}

/// A `[[registry]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The names it applies to (`example.com/team`, `*.example.com`); defaults to `location`.
    pub prefix: String,
    /// Where images with this prefix really are (empty for a bare wildcard prefix).
    pub location: String,
    /// Plain HTTP and unverified TLS are allowed.
    pub insecure: bool,
    /// Pulls and pushes are refused.
    pub blocked: bool,
    /// Mirrors are only used for pulls by digest.
    pub mirror_by_digest_only: bool,
    /// Mirrors, tried in order before `location`.
    pub mirrors: Vec<Mirror>,
}

/// One place to pull an image from: a mirror or the registry itself, with the reference
/// rewritten for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    /// The reference at this endpoint.
    pub reference: Reference,
    /// Plain HTTP and unverified TLS are allowed.
    pub insecure: bool,
    /// This is a mirror (a failure moves on to the next source).
    pub mirror: bool,
}

/// The merged configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// `unqualified-search-registries`, `None` when no file set it.
    pub unqualified_search: Option<Vec<String>>,
    /// `short-name-mode`, `None` when no file set it.
    pub short_name_mode: Option<ShortNameMode>,
    /// `[aliases]`: short name → fully qualified repository.
    pub aliases: BTreeMap<String, String>,
    /// `[[registry]]` entries, sorted by prefix, one per prefix.
    pub registries: Vec<RegistryEntry>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    aliases: Option<BTreeMap<String, String>>,
    registry: Option<Vec<RawRegistry>>,
    registries: Option<RawV1>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    insecure: Option<bool>,
    blocked: Option<bool>,
    mirror_by_digest_only: Option<bool>,
    pull_from_mirror: Option<String>,
    mirror: Option<Vec<RawMirror>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: Option<String>,
    insecure: Option<bool>,
    pull_from_mirror: Option<String>,
}

#[derive(Deserialize)]
struct RawV1 {
    search: Option<RawV1List>,
    insecure: Option<RawV1List>,
    block: Option<RawV1List>,
}

#[derive(Deserialize)]
struct RawV1List {
    #[serde(default)]
    registries: Vec<String>,
}

impl RegistriesConf {
    /// Reads and merges the files of `paths`. A missing main file is an empty configuration
    /// unless it was named explicitly.
    pub fn load(paths: &ConfPaths) -> Result<RegistriesConf> {
        let mut conf = match fs::read_to_string(&paths.file) {
            Ok(text) => RegistriesConf::parse(&text, &paths.file, false)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !paths.file_required => {
                RegistriesConf::default()
            }
            Err(source) => {
                return Err(RegistryError::Io { op: "read", path: paths.file.clone(), source });
            }
        };
        for dir in &paths.dirs {
            for file in drop_ins(dir)? {
                let text = match fs::read_to_string(&file) {
                    Ok(t) => t,
                    // Removed between listing and reading: as if it never was there.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(RegistryError::Io { op: "read", path: file, source });
                    }
                };
                let layer = RegistriesConf::parse(&text, &file, true)?;
                conf.merge(layer);
            }
        }
        conf.aliases.retain(|_, v| !v.is_empty());
        Ok(conf)
    }

    /// Parses one file. `drop_in` files must use version 2. Aliases with an empty value are
    /// kept (they remove an alias when merged).
    pub fn parse(text: &str, path: &Path, drop_in: bool) -> Result<RegistriesConf> {
        let bad = |message: String| RegistryError::Config { path: path.to_path_buf(), message };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        let v2_set = raw.unqualified_search_registries.is_some()
            || raw.short_name_mode.is_some()
            || raw.aliases.is_some()
            || raw.registry.is_some();
        let mut conf = RegistriesConf::default();
        if let Some(v1) = raw.registries {
            if drop_in {
                return Err(bad("drop-in files must use the version 2 format".into()));
            }
            if v2_set {
                return Err(bad("mixing version 1 and version 2 formats is not supported".into()));
            }
            conf.read_v1(v1).map_err(bad)?;
        }
        if let Some(search) = raw.unqualified_search_registries {
            let mut list = Vec::with_capacity(search.len());
            for s in search {
                let host = clean_location(&s).map_err(bad)?;
                if host.contains('/') || Reference::from_parts(&host, "x", None, None).is_err() {
                    return Err(bad(format!("invalid unqualified-search-registries entry {s:?}")));
                }
                list.push(host);
            }
            conf.unqualified_search = Some(list);
        }
        if let Some(mode) = raw.short_name_mode {
            conf.short_name_mode = Some(match mode.as_str() {
                "enforcing" => ShortNameMode::Enforcing,
                "permissive" => ShortNameMode::Permissive,
                "disabled" => ShortNameMode::Disabled,
                other => return Err(bad(format!("invalid short-name-mode {other:?}"))),
            });
        }
        if let Some(aliases) = raw.aliases {
            for (name, value) in aliases {
                check_alias(&name, &value).map_err(bad)?;
                conf.aliases.insert(name, value);
            }
        }
        for r in raw.registry.unwrap_or_default() {
            let entry = registry_entry(r).map_err(bad)?;
            conf.add_registry(entry).map_err(bad)?;
        }
        Ok(conf)
    }

    fn read_v1(&mut self, v1: RawV1) -> Result<(), String> {
        let mut entries: Vec<RegistryEntry> = Vec::new();
        for r in v1.block.map(|l| l.registries).unwrap_or_default() {
            let i = v1_entry(&mut entries, &r)?;
            entries[i].blocked = true;
        }
        for r in v1.insecure.map(|l| l.registries).unwrap_or_default() {
            let i = v1_entry(&mut entries, &r)?;
            entries[i].insecure = true;
        }
        if let Some(search) = v1.search {
            let list =
                search.registries.iter().map(|s| clean_location(s)).collect::<Result<_, _>>()?;
            self.unqualified_search = Some(list);
        }
        for e in entries {
            self.add_registry(e)?;
        }
        Ok(())
    }

    /// Adds an entry from the same file: a second entry with the same prefix is ignored (the
    /// first wins, as in containers/image); conflicting `insecure`/`blocked` settings for one
    /// location are an error.
    fn add_registry(&mut self, entry: RegistryEntry) -> Result<(), String> {
        for other in &self.registries {
            let same_place = if entry.location.is_empty() {
                other.prefix == entry.prefix
            } else {
                other.location == entry.location
            };
            if same_place && other.insecure != entry.insecure {
                return Err(format!(
                    "registry {:?} is defined several times with conflicting 'insecure' settings",
                    entry.location
                ));
            }
            if same_place && other.blocked != entry.blocked {
                return Err(format!(
                    "registry {:?} is defined several times with conflicting 'blocked' settings",
                    entry.location
                ));
            }
        }
        if !self.registries.iter().any(|r| r.prefix == entry.prefix) {
            self.registries.push(entry);
            self.registries.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        }
        Ok(())
    }

    /// Applies a later file (a drop-in) on top of this configuration.
    pub fn merge(&mut self, later: RegistriesConf) {
        for entry in later.registries {
            self.registries.retain(|r| r.prefix != entry.prefix);
            self.registries.push(entry);
        }
        self.registries.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        if later.unqualified_search.is_some() {
            self.unqualified_search = later.unqualified_search;
        }
        if later.short_name_mode.is_some() {
            self.short_name_mode = later.short_name_mode;
        }
        for (name, value) in later.aliases {
            self.aliases.insert(name, value);
        }
    }

    /// The entry whose prefix matches `name` (`registry/repository[:tag][@digest]`) longest.
    pub fn find(&self, name: &str) -> Option<&RegistryEntry> {
        self.registries
            .iter()
            .filter(|r| prefix_match_len(name, &r.prefix).is_some())
            .max_by_key(|r| r.prefix.len())
    }

    /// Whether plain HTTP / unverified TLS is allowed for `reference`'s registry.
    pub fn insecure(&self, reference: &Reference) -> bool {
        self.find(&reference.to_string()).is_some_and(|r| r.insecure)
    }

    /// Fails when `reference` matches a `blocked` entry.
    pub fn check_blocked(&self, reference: &Reference) -> Result<()> {
        match self.find(&reference.to_string()) {
            Some(r) if r.blocked => Err(RegistryError::Blocked(reference.registry.clone())),
            _ => Ok(()),
        }
    }

    /// Where to pull `reference` from, in order: the mirrors that serve this kind of pull,
    /// then the registry's `location`, each with the reference rewritten for it.
    pub fn pull_sources(&self, reference: &Reference) -> Result<Vec<PullSource>> {
        let full = reference.to_string();
        let Some(entry) = self.find(&full) else {
            return Ok(vec![PullSource {
                reference: reference.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(RegistryError::Blocked(reference.registry.clone()));
        }
        let by_digest = reference.digest.is_some();
        let mut out = Vec::new();
        for m in &entry.mirrors {
            let serves = if entry.mirror_by_digest_only {
                by_digest
            } else {
                match m.pull_from {
                    MirrorUse::All => true,
                    MirrorUse::DigestOnly => by_digest,
                    MirrorUse::TagOnly => !by_digest,
                }
            };
            if serves {
                let reference = rewrite(&full, &entry.prefix, &m.location)?;
                out.push(PullSource { reference, insecure: m.insecure, mirror: true });
            }
        }
        let primary = if entry.location.is_empty() {
            reference.clone()
        } else {
            rewrite(&full, &entry.prefix, &entry.location)?
        };
        out.push(PullSource { reference: primary, insecure: entry.insecure, mirror: false });
        Ok(out)
    }

    /// The fully qualified references a name may mean, in the order to try them: the name
    /// itself when it has a registry host; else its alias; else each
    /// `unqualified-search-registries` entry; else Docker Hub (Docker's default).
    pub fn candidates(&self, input: &str) -> Result<Vec<Reference>> {
        let parts = split_reference(input)
            .map_err(|reason| crate::reference::NameError { name: input.to_string(), reason })?;
        if parts.domain.is_some() {
            return Ok(vec![Reference::parse(input)?]);
        }
        let suffix = &input[parts.path.len()..];
        if let Some(target) = self.aliases.get(parts.path).filter(|t| !t.is_empty()) {
            return Ok(vec![Reference::parse(&format!("{target}{suffix}"))?]);
        }
        let search = self.unqualified_search.as_deref().unwrap_or_default();
        if search.is_empty() {
            return Ok(vec![Reference::parse(input)?]);
        }
        if search.len() > 1 && self.short_name_mode == Some(ShortNameMode::Enforcing) {
            return Err(RegistryError::ShortName {
                name: input.to_string(),
                message: format!(
                    "short-name-mode is \"enforcing\" and it could be in any of {}; kiln cannot \
                     ask which: write the full name (e.g. {}/{input}) or add an alias",
                    search.join(", "),
                    search[0]
                ),
            });
        }
        search
            .iter()
            .map(|registry| Reference::parse(&format!("{registry}/{input}")).map_err(Into::into))
            .collect()
    }
}

/// The `*.conf` files of a drop-in directory, in name order (none when it does not exist).
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RegistryError::Io { op: "read directory", path: dir.into(), source });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RegistryError::Io {
            op: "read directory",
            path: dir.into(),
            source,
        })?;
        let path = entry.path();
        let is_conf = path.extension().is_some_and(|e| e == "conf");
        if is_conf && !entry.file_type().is_ok_and(|t| t.is_dir()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The index of `location`'s entry in a version 1 list, added when missing.
fn v1_entry(entries: &mut Vec<RegistryEntry>, location: &str) -> Result<usize, String> {
    let location = clean_location(location)?;
    if let Some(i) = entries.iter().position(|e| e.location == location) {
        return Ok(i);
    }
    entries.push(RegistryEntry {
        prefix: location.clone(),
        location,
        insecure: false,
        blocked: false,
        mirror_by_digest_only: false,
        mirrors: Vec::new(),
    });
    Ok(entries.len() - 1)
}

/// Trims trailing slashes and refuses URL schemes (locations are `host[:port][/path]`).
fn clean_location(input: &str) -> Result<String, String> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!("invalid location {input:?}: URL schemes are not supported"));
    }
    Ok(trimmed.to_string())
}

fn mirror_use(value: Option<&str>) -> Result<MirrorUse, String> {
    match value {
        None | Some("") | Some("all") => Ok(MirrorUse::All),
        Some("digest-only") => Ok(MirrorUse::DigestOnly),
        Some("tag-only") => Ok(MirrorUse::TagOnly),
        Some(other) => Err(format!("unsupported pull-from-mirror value {other:?}")),
    }
}

fn registry_entry(r: RawRegistry) -> Result<RegistryEntry, String> {
    let location = clean_location(r.location.as_deref().unwrap_or(""))?;
    let prefix = match r.prefix.as_deref() {
        None | Some("") if location.is_empty() => {
            return Err("a [[registry]] entry needs a location or a prefix".into());
        }
        None | Some("") => location.clone(),
        Some(p) => {
            let p = clean_location(p)?;
            if let Some(domain) = p.strip_prefix("*.") {
                if domain.contains(['/', '@', ':']) {
                    return Err(format!(
                        "wildcard prefix {p:?} must look like *.example.com (no path or port)"
                    ));
                }
            } else if location.is_empty() {
                return Err(format!(
                    "registry {p:?} has no location (only *.domain prefixes may omit it)"
                ));
            }
            p
        }
    };
    if r.pull_from_mirror.is_some() {
        return Err(format!(
            "pull-from-mirror must not be set for a non-mirror registry {prefix:?}"
        ));
    }
    let mirror_by_digest_only = r.mirror_by_digest_only.unwrap_or(false);
    let mut mirrors = Vec::new();
    for m in r.mirror.unwrap_or_default() {
        let location = clean_location(m.location.as_deref().unwrap_or(""))?;
        if location.is_empty() {
            return Err(format!("a mirror of {prefix:?} has no location"));
        }
        if mirror_by_digest_only && m.pull_from_mirror.is_some() {
            return Err(format!(
                "registry {prefix:?} sets mirror-by-digest-only and mirror {location:?} sets \
                 pull-from-mirror; use one of them"
            ));
        }
        let pull_from = mirror_use(m.pull_from_mirror.as_deref())?;
        mirrors.push(Mirror { location, insecure: m.insecure.unwrap_or(false), pull_from });
    }
    Ok(RegistryEntry {
        prefix,
        location,
        insecure: r.insecure.unwrap_or(false),
        blocked: r.blocked.unwrap_or(false),
        mirror_by_digest_only,
        mirrors,
    })
}

/// An alias maps a short name (no host, tag or digest) to a fully qualified repository (no tag
/// or digest). An empty value is allowed: it removes the alias when merged.
fn check_alias(name: &str, value: &str) -> Result<(), String> {
    let parts = split_reference(name).map_err(|r| format!("alias {name:?}: {r}"))?;
    if parts.domain.is_some() || parts.tag.is_some() || parts.digest.is_some() {
        return Err(format!(
            "alias {name:?}: must be a short name without registry, tag or digest"
        ));
    }
    if value.is_empty() {
        return Ok(());
    }
    let v = split_reference(value).map_err(|r| format!("alias {name:?} = {value:?}: {r}"))?;
    if v.domain.is_none() || v.tag.is_some() || v.digest.is_some() {
        return Err(format!(
            "alias {name:?} = {value:?}: the value must be a fully qualified repository without \
             tag or digest"
        ));
    }
    Reference::parse(value).map_err(|e| format!("alias {name:?}: {e}"))?;
    Ok(())
}

/// How many characters of `name` the prefix matches, if it does: a literal prefix must end
/// where `name` ends or at `:`, `/` or `@`; `*.example.com` matches hosts under that domain.
fn prefix_match_len(name: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        let host_end = name.find('/').unwrap_or(name.len());
        let index = name[..host_end].find(domain)?;
        let end = index + domain.len();
        return match name.as_bytes().get(end) {
            None | Some(b':') | Some(b'/') | Some(b'@') => Some(end),
            _ => None,
        };
    }
    let rest = name.strip_prefix(prefix)?;
    match rest.as_bytes().first() {
        None | Some(b':') | Some(b'/') | Some(b'@') => Some(prefix.len()),
        _ => None,
    }
}

/// Replaces the part of `full` that `prefix` matched by `location`.
fn rewrite(full: &str, prefix: &str, location: &str) -> Result<Reference> {
    let len = prefix_match_len(full, prefix).unwrap_or(0);
    Ok(Reference::parse(&format!("{location}{}", &full[len..]))?)
}
