//! `--cache-from` and `--cache-to` values (BuildKit's CSV syntax).

use std::path::PathBuf;

use kiln_cache::layer::Compression;

use crate::reference::Reference;

/// Cache mounts bigger than this (their files' bytes) are not exported unless
/// `mounts-max-size=` says otherwise.
pub const DEFAULT_MOUNTS_MAX_SIZE: u64 = 512 << 20;

/// The tag a local cache directory's manifest is named by when `tag=` is not given.
pub const DEFAULT_LOCAL_TAG: &str = "latest";

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=REF`: a manifest in a registry.
    Registry(Reference),
    /// `type=local,src=DIR` / `dest=DIR`: an OCI image layout directory, the manifest named `tag`.
    Local {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` of the cache manifest.
        tag: String,
    },
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
        }
    }
}

/// Which layers `--cache-to` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps whose layers make up the final image (BuildKit's default).
    #[default]
    Min,
    /// Every step of every stage the build ran.
    Max,
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    /// Where to read it.
    pub location: CacheLocation,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    /// Where to write it.
    pub location: CacheLocation,
    /// `mode=min|max`.
    pub mode: CacheMode,
    /// `compression=gzip|zstd`: layers in another compression are converted; cache mounts are
    /// written in it.
    pub compression: Compression,
    /// `mounts=true`: export the contents of `RUN --mount=type=cache` directories too.
    pub mounts: bool,
    /// `mounts-max-size=SIZE`: a cache mount holding more bytes than this is left out.
    pub mounts_max_size: u64,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
}

/// Why a `--cache-from` / `--cache-to` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheSpecError {
    /// Not `key=value,...`.
    #[error("invalid {flag} {spec:?}: expected type=registry,ref=REF or type=local,{dir_key}=DIR")]
    Malformed {
        /// `--cache-from` or `--cache-to`.
        flag: &'static str,
        /// The value.
        spec: String,
        /// `src` or `dest`.
        dir_key: &'static str,
    },
    /// A `type` kiln does not read or write.
    #[error("{flag} type={kind} is not supported (supported: registry, local)")]
    UnknownType {
        /// `--cache-from` or `--cache-to`.
        flag: &'static str,
        /// The type.
        kind: String,
    },
    /// A required key is missing.
    #[error("{flag} type={kind} needs {key}=")]
    Missing {
        /// `--cache-from` or `--cache-to`.
        flag: &'static str,
        /// The type.
        kind: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A key that does not belong, or a value that is not valid.
    #[error("{flag}: {message}")]
    Invalid {
        /// `--cache-from` or `--cache-to`.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The `key=value` pairs of a spec, keys in lower case, with the flag for errors.
struct Pairs {
    flag: &'static str,
    pairs: Vec<(String, String)>,
}

impl Pairs {
    fn parse(
        flag: &'static str,
        spec: &str,
        dir_key: &'static str,
    ) -> Result<Pairs, CacheSpecError> {
        let malformed = || CacheSpecError::Malformed { flag, spec: spec.to_string(), dir_key };
        let mut pairs = Vec::new();
        let fields = kiln_frontend::syntax::mount::split_fields(spec).map_err(|_| malformed())?;
        for part in &fields {
            let (k, v) = part.split_once('=').ok_or_else(malformed)?;
            pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        Ok(Pairs { flag, pairs })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(i).1)
    }

    fn invalid(&self, message: String) -> CacheSpecError {
        CacheSpecError::Invalid { flag: self.flag, message }
    }

    /// `true`/`false` for `key` (absent: `default`).
    fn flag_value(&mut self, key: &str, default: bool) -> Result<bool, CacheSpecError> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.invalid(format!("{key}={other:?}: expected true or false"))),
        }
    }

    /// The location named by `type=` and `ref=` / `DIR_KEY=` / `tag=`.
    fn location(&mut self, dir_key: &'static str) -> Result<CacheLocation, CacheSpecError> {
        let flag = self.flag;
        let kind = self.take("type").unwrap_or_else(|| "registry".to_string());
        match kind.as_str() {
            "registry" => {
                let raw = self.take("ref").ok_or(CacheSpecError::Missing {
                    flag,
                    kind: "registry",
                    key: "ref",
                })?;
                let reference = Reference::parse(&raw)
                    .map_err(|e| self.invalid(format!("ref={raw:?}: {}", e.reason)))?;
                Ok(CacheLocation::Registry(reference))
            }
            "local" => {
                let dir = self.take(dir_key).ok_or(CacheSpecError::Missing {
                    flag,
                    kind: "local",
                    key: dir_key,
                })?;
                let tag = self.take("tag").unwrap_or_else(|| DEFAULT_LOCAL_TAG.to_string());
                if tag.is_empty() || tag.contains(['/', ':', '@']) {
                    return Err(self.invalid(format!("tag={tag:?} is not a valid tag")));
                }
                Ok(CacheLocation::Local { dir: PathBuf::from(dir), tag })
            }
            other => Err(CacheSpecError::UnknownType { flag, kind: other.to_string() }),
        }
    }

    /// Fails on the first key left over; BuildKit's no-op keys for manifests are accepted.
    fn finish(mut self) -> Result<(), CacheSpecError> {
        for harmless in ["oci-mediatypes", "image-manifest"] {
            if let Some(v) = self.take(harmless)
                && v != "true"
            {
                return Err(self
                    .invalid(format!("{harmless}={v}: kiln always writes an OCI image manifest")));
            }
        }
        match self.pairs.first() {
            Some((k, _)) => Err(self.invalid(format!("unknown option {k:?}"))),
            None => Ok(()),
        }
    }
}

impl CacheImport {
    /// Parses a `--cache-from` value: `type=registry,ref=REF`, `type=local,src=DIR[,tag=T]`,
    /// or a bare `REF` (as `docker buildx` takes it).
    pub fn parse(spec: &str) -> Result<CacheImport, CacheSpecError> {
        let flag = "--cache-from";
        if !spec.contains('=') {
            let reference = Reference::parse(spec.trim()).map_err(|e| CacheSpecError::Invalid {
                flag,
                message: format!("{spec:?}: {}", e.reason),
            })?;
            return Ok(CacheImport { location: CacheLocation::Registry(reference) });
        }
        let mut pairs = Pairs::parse(flag, spec, "src")?;
        let location = pairs.location("src")?;
        pairs.finish()?;
        Ok(CacheImport { location })
    }
}

impl CacheExport {
    /// Parses a `--cache-to` value: `type=registry,ref=REF` or `type=local,dest=DIR[,tag=T]`,
    /// with `mode=min|max`, `compression=gzip|zstd`, `mounts=true`, `mounts-max-size=SIZE`
    /// and `ignore-error=true`.
    pub fn parse(spec: &str) -> Result<CacheExport, CacheSpecError> {
        let mut pairs = Pairs::parse("--cache-to", spec, "dest")?;
        let location = pairs.location("dest")?;
        let mode = match pairs.take("mode").as_deref() {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => {
                return Err(pairs.invalid(format!("mode={other:?}: expected min or max")));
            }
        };
        let compression = match pairs.take("compression").as_deref() {
            None | Some("gzip") => Compression::Gzip { level: 6 },
            Some("zstd") => Compression::Zstd { level: 3 },
            Some(other) => {
                return Err(pairs.invalid(format!("compression={other:?}: expected gzip or zstd")));
            }
        };
        let mounts = pairs.flag_value("mounts", false)?;
        let mounts_max_size = match pairs.take("mounts-max-size") {
            None => DEFAULT_MOUNTS_MAX_SIZE,
            Some(v) => {
                parse_size(&v).map_err(|m| pairs.invalid(format!("mounts-max-size: {m}")))?
            }
        };
        let ignore_error = pairs.flag_value("ignore-error", false)?;
        pairs.finish()?;
        Ok(CacheExport { location, mode, compression, mounts, mounts_max_size, ignore_error })
    }
}

/// Parses `512MB`, `1GiB`, `100k`, `4096` (bytes).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: u64 = num.parse().map_err(|_| format!("{text:?} is not a size such as 512MB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {:?} (use B, KB, MB, GB, KiB, MiB, GiB)",
                unit.trim()
            ));
        }
    };
    value.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(r: &str) -> CacheLocation {
        CacheLocation::Registry(Reference::parse(r).unwrap())
    }

    #[test]
    fn parses_cache_from() {
        let cases: &[(&str, Result<CacheLocation, &str>)] = &[
            (
                "type=registry,ref=127.0.0.1:5000/app:cache",
                Ok(registry("127.0.0.1:5000/app:cache")),
            ),
            ("ref=r.io/a/b", Ok(registry("r.io/a/b:latest"))),
            ("r.io/a/b:c", Ok(registry("r.io/a/b:c"))),
            (
                "type=local,src=/ci/cache",
                Ok(CacheLocation::Local { dir: "/ci/cache".into(), tag: "latest".into() }),
            ),
            (
                "type=local,src=d,tag=v2",
                Ok(CacheLocation::Local { dir: "d".into(), tag: "v2".into() }),
            ),
            (
                "type=local,\"src=/ci/a,b\"",
                Ok(CacheLocation::Local { dir: "/ci/a,b".into(), tag: "latest".into() }),
            ),
            (
                "type=gha",
                Err("--cache-from type=gha is not supported (supported: registry, local)"),
            ),
            ("type=local", Err("--cache-from type=local needs src=")),
            ("type=registry", Err("--cache-from type=registry needs ref=")),
            ("type=local,dest=x", Err("--cache-from type=local needs src=")),
            ("type=registry,ref=r.io/a,mode=max", Err("--cache-from: unknown option \"mode\"")),
            (
                "type=registry,ref=r.io/UPPER",
                Err(
                    "--cache-from: ref=\"r.io/UPPER\": each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'",
                ),
            ),
            (
                "type=registry,ref",
                Err(
                    "invalid --cache-from \"type=registry,ref\": expected type=registry,ref=REF or type=local,src=DIR",
                ),
            ),
        ];
        for (spec, want) in cases {
            let got = CacheImport::parse(spec).map(|c| c.location).map_err(|e| e.to_string());
            assert_eq!(got, want.clone().map_err(str::to_string), "{spec}");
        }
    }

    #[test]
    fn parses_cache_to() {
        let c = CacheExport::parse("type=registry,ref=r.io/a:cache").unwrap();
        assert_eq!(
            c,
            CacheExport {
                location: registry("r.io/a:cache"),
                mode: CacheMode::Min,
                compression: Compression::Gzip { level: 6 },
                mounts: false,
                mounts_max_size: DEFAULT_MOUNTS_MAX_SIZE,
                ignore_error: false,
            }
        );
        let c = CacheExport::parse(
            "type=local,dest=/d,mode=max,compression=zstd,mounts=true,mounts-max-size=2MiB,ignore-error=true,image-manifest=true",
        )
        .unwrap();
        assert_eq!(c.location, CacheLocation::Local { dir: "/d".into(), tag: "latest".into() });
        assert_eq!(c.mode, CacheMode::Max);
        assert_eq!(c.compression, Compression::Zstd { level: 3 });
        assert!(c.mounts && c.ignore_error);
        assert_eq!(c.mounts_max_size, 2 << 20);
        for (spec, err) in [
            ("type=local,dest=d,mode=all", "--cache-to: mode=\"all\": expected min or max"),
            (
                "type=local,dest=d,compression=xz",
                "--cache-to: compression=\"xz\": expected gzip or zstd",
            ),
            ("type=local,dest=d,mounts=yes", "--cache-to: mounts=\"yes\": expected true or false"),
            (
                "type=local,dest=d,mounts-max-size=3 parsecs",
                "--cache-to: mounts-max-size: \"3 parsecs\": unknown unit \"parsecs\" (use B, KB, MB, GB, KiB, MiB, GiB)",
            ),
            ("type=local,src=d", "--cache-to type=local needs dest="),
            ("type=inline", "--cache-to type=inline is not supported (supported: registry, local)"),
            ("type=local,dest=d,tag=a/b", "--cache-to: tag=\"a/b\" is not a valid tag"),
            (
                "type=local,dest=d,oci-mediatypes=false",
                "--cache-to: oci-mediatypes=false: kiln always writes an OCI image manifest",
            ),
        ] {
            assert_eq!(CacheExport::parse(spec).unwrap_err().to_string(), err, "{spec}");
        }
    }

    #[test]
    fn parses_sizes() {
        for (text, want) in [
            ("4096", Ok(4096)),
            ("512MB", Ok(512_000_000)),
            ("1GiB", Ok(1 << 30)),
            ("10k", Ok(10_000)),
        ] {
            assert_eq!(parse_size(text), want, "{text}");
        }
        assert!(parse_size("MB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
