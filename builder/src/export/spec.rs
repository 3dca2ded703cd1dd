//! `--output` values: BuildKit's `type=KIND,key=value,...` syntax, and the shorthands `-`
//! (`type=tar,dest=-`) and `PATH` (`type=local,dest=PATH`).

use std::path::PathBuf;

use crate::reference::Reference;

use super::annotations::Annotations;
use super::compress::{CompressionSpec, parse_bool};

/// The output types kiln writes.
const KINDS: [&str; 6] = ["oci", "docker", "local", "tar", "image", "registry"];

/// Where an archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file (or, for an OCI layout, a directory).
    Path(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

impl Dest {
    fn parse(value: &str) -> Dest {
        if value == "-" { Dest::Stdout } else { Dest::Path(PathBuf::from(value)) }
    }
}

/// Options of the outputs that write an image (`oci`, `docker`, `image`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// `name=` (repeatable): names in the archive or the store; `-t` names when empty
    /// (archives only).
    pub names: Vec<String>,
    /// `compression=`, `compression-level=`, `force-compression=`: over the build's flags.
    pub compression: CompressionSpec,
    /// `annotation*.KEY=VALUE`: added to the build's `--annotation`s.
    pub annotations: Annotations,
}

/// Where to write the build's result besides the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=oci,dest=PATH[,tar=true|false]`: an OCI layout directory, or an OCI archive when
    /// PATH ends in `.tar` or is `-` (or `tar=true`).
    Oci {
        /// The directory, the archive file, or stdout.
        dest: Dest,
        /// `tar=`: forces the archive (`true`) or directory (`false`) form.
        tar: Option<bool>,
        /// Names, compression and annotations.
        image: ImageOptions,
    },
    /// `type=docker,dest=FILE|-`: a Docker archive (`docker load`, `podman load`).
    Docker {
        /// The archive file, or stdout.
        dest: Dest,
        /// Names, compression and annotations.
        image: ImageOptions,
    },
    /// `type=local,dest=DIR`: the final root filesystem as files in DIR (new or empty).
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// `type=tar,dest=FILE|-`: the final root filesystem as one tar.
    Tar {
        /// The file, or stdout.
        dest: Dest,
    },
    /// `type=image,name=REF[,push=true]` or `type=registry,name=REF`: the image is tagged
    /// `REF` in the local store and, with `push`, pushed to `REF`'s registry.
    Image {
        /// Push to the registry too.
        push: bool,
        /// Names (at least one), compression and annotations.
        image: ImageOptions,
    },
}

/// Why an `--output` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputSpecError {
    /// Not `key=value,...`.
    #[error("invalid --output {0:?}: expected type=KIND,key=value,... (or - or a directory)")]
    Malformed(String),
    /// A `type` kiln does not write.
    #[error(
        "--output type={0} is not supported (supported: oci, docker, local, tar, image, registry)"
    )]
    UnknownType(String),
    /// No `dest`.
    #[error("--output type={0} needs dest=PATH")]
    MissingDest(String),
    /// No `name` for an image output.
    #[error("--output type={0} needs name=REF")]
    MissingName(String),
    /// A name that is not a valid image reference.
    #[error("--output name={name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A value that is not what its key takes.
    #[error("--output {key}={value:?}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What it should be.
        reason: String,
    },
    /// A key that does not belong to the type.
    #[error("--output: unknown option {key:?} for type={kind}")]
    UnknownKey {
        /// The key.
        key: String,
        /// The output type.
        kind: String,
    },
    /// `type=local` to stdout.
    #[error("--output type=local writes a directory; use type=tar,dest=- for stdout")]
    LocalToStdout,
}

impl Output {
    /// Parses an `--output` value.
    pub fn parse(spec: &str) -> Result<Output, OutputSpecError> {
        if spec == "-" {
            return Ok(Output::Tar { dest: Dest::Stdout });
        }
        if !spec.contains('=') && !spec.is_empty() {
            return Ok(Output::Local { dest: PathBuf::from(spec) });
        }
        let mut kind = None;
        let mut pairs = Vec::new();
        let fields = kiln_frontend::syntax::mount::split_fields(spec)
            .map_err(|_| OutputSpecError::Malformed(spec.to_string()))?;
        for pair in &fields {
            let (k, v) =
                pair.split_once('=').ok_or_else(|| OutputSpecError::Malformed(spec.to_string()))?;
            let (k, v) = (k.trim(), v.trim());
            if k == "type" {
                kind = Some(v.to_string());
            } else {
                pairs.push((k.to_string(), v.to_string()));
            }
        }
        let kind = kind.ok_or_else(|| OutputSpecError::Malformed(spec.to_string()))?;
        // The type first: an unknown type is the mistake, not the keys it was given.
        if !KINDS.contains(&kind.as_str()) {
            return Err(OutputSpecError::UnknownType(kind));
        }
        let unknown =
            |key: &str| OutputSpecError::UnknownKey { key: key.to_string(), kind: kind.clone() };
        let bad = |key: &str, value: &str, reason: String| OutputSpecError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let takes_image = matches!(kind.as_str(), "oci" | "docker" | "image" | "registry");
        let takes_dest = matches!(kind.as_str(), "oci" | "docker" | "local" | "tar");
        let mut dest = None;
        let mut tar = None;
        let mut push = None;
        let mut image = ImageOptions::default();
        for (k, v) in &pairs {
            match k.as_str() {
                "dest" if takes_dest => dest = Some(v.clone()),
                "tar" if kind == "oci" => {
                    tar = Some(parse_bool(v).map_err(|r| bad(k, v, r))?);
                }
                "push" if matches!(kind.as_str(), "image" | "registry") => {
                    push = Some(parse_bool(v).map_err(|r| bad(k, v, r))?);
                }
                "name" if takes_image => image.names.push(v.clone()),
                "oci-mediatypes" if takes_image => {
                    if !parse_bool(v).map_err(|r| bad(k, v, r))? {
                        return Err(bad(k, v, "kiln writes OCI media types only".to_string()));
                    }
                }
                _ if takes_image
                    && image.compression.set_option(k, v).map_err(|r| bad(k, v, r))? => {}
                _ if takes_image
                    && image.annotations.add_option(k, v).map_err(|r| bad(k, v, r))? => {}
                _ => return Err(unknown(k)),
            }
        }
        // A level with this output's own codec is checked now; a level alone waits for the
        // build's `--compression` ([`Output::check_compression`]).
        if image.compression.kind.is_some()
            && let Some(level) = image.compression.level
        {
            image
                .compression
                .validate()
                .map_err(|r| bad("compression-level", &level.to_string(), r))?;
        }
        for name in &image.names {
            Reference::parse(name).map_err(|e| OutputSpecError::BadName {
                name: name.clone(),
                reason: e.reason.to_string(),
            })?;
        }
        let need_dest = || dest.clone().ok_or_else(|| OutputSpecError::MissingDest(kind.clone()));
        match kind.as_str() {
            "oci" => {
                let dest = Dest::parse(&need_dest()?);
                if dest == Dest::Stdout && tar == Some(false) {
                    return Err(bad(
                        "tar",
                        "false",
                        "an OCI layout directory cannot go to stdout (dest=-)".to_string(),
                    ));
                }
                Ok(Output::Oci { dest, tar, image })
            }
            "docker" => Ok(Output::Docker { dest: Dest::parse(&need_dest()?), image }),
            "local" => match Dest::parse(&need_dest()?) {
                Dest::Stdout => Err(OutputSpecError::LocalToStdout),
                Dest::Path(dest) => Ok(Output::Local { dest }),
            },
            "tar" => Ok(Output::Tar { dest: Dest::parse(&need_dest()?) }),
            "image" | "registry" => {
                if image.names.is_empty() {
                    return Err(OutputSpecError::MissingName(kind.clone()));
                }
                let push = push.unwrap_or(kind == "registry");
                Ok(Output::Image { push, image })
            }
            _ => Err(OutputSpecError::UnknownType(kind.clone())),
        }
    }

    /// The image options of an output that writes an image (`oci`, `docker`, `image`).
    pub fn image_options(&self) -> Option<&ImageOptions> {
        match self {
            Output::Oci { image, .. }
            | Output::Docker { image, .. }
            | Output::Image { image, .. } => Some(image),
            Output::Local { .. } | Output::Tar { .. } => None,
        }
    }

    /// Checks this output's compression level against its codec once the build's
    /// `--compression` flags (`build`) are under its own options.
    pub fn check_compression(&self, build: &CompressionSpec) -> Result<(), OutputSpecError> {
        let Some(image) = self.image_options() else { return Ok(()) };
        let Some(level) = image.compression.level else { return Ok(()) };
        image.compression.over(build).validate().map_err(|reason| OutputSpecError::BadValue {
            key: "compression-level".to_string(),
            value: level.to_string(),
            reason,
        })
    }

    /// Whether this output writes to standard output.
    pub fn writes_stdout(&self) -> bool {
        matches!(
            self,
            Output::Oci { dest: Dest::Stdout, .. }
                | Output::Docker { dest: Dest::Stdout, .. }
                | Output::Tar { dest: Dest::Stdout }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::compress::Codec;

    fn err(spec: &str) -> String {
        Output::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_type() {
        let oci = |dest: Dest, tar| Output::Oci { dest, tar, image: ImageOptions::default() };
        assert_eq!(Output::parse("type=oci,dest=/x").unwrap(), oci(Dest::Path("/x".into()), None));
        assert_eq!(
            Output::parse("dest=o.tar,type=oci").unwrap(),
            oci(Dest::Path("o.tar".into()), None)
        );
        assert_eq!(
            Output::parse("type=oci,dest=-,tar=true").unwrap(),
            oci(Dest::Stdout, Some(true))
        );
        assert_eq!(
            Output::parse("type=docker,dest=img.tar").unwrap(),
            Output::Docker { dest: Dest::Path("img.tar".into()), image: ImageOptions::default() }
        );
        assert_eq!(
            Output::parse("type=local,dest=out").unwrap(),
            Output::Local { dest: "out".into() }
        );
        assert_eq!(Output::parse("out/dir").unwrap(), Output::Local { dest: "out/dir".into() });
        // CSV quoting, as BuildKit reads these values: a field with a comma is quoted whole.
        assert_eq!(
            Output::parse("type=local,\"dest=a,b\"").unwrap(),
            Output::Local { dest: "a,b".into() }
        );
        assert_eq!(
            Output::parse("type=local,dest=\"a").unwrap_err(),
            OutputSpecError::Malformed("type=local,dest=\"a".into())
        );
        assert_eq!(Output::parse("-").unwrap(), Output::Tar { dest: Dest::Stdout });
        assert_eq!(Output::parse("type=tar,dest=-").unwrap(), Output::Tar { dest: Dest::Stdout });
        assert_eq!(
            Output::parse("type=tar,dest=fs.tar").unwrap(),
            Output::Tar { dest: Dest::Path("fs.tar".into()) }
        );
        let image = |names: &[&str], push| Output::Image {
            push,
            image: ImageOptions {
                names: names.iter().map(|n| n.to_string()).collect(),
                ..ImageOptions::default()
            },
        };
        assert_eq!(Output::parse("type=image,name=a/b:1").unwrap(), image(&["a/b:1"], false));
        assert_eq!(
            Output::parse("type=image,name=localhost:5000/a,push=true").unwrap(),
            image(&["localhost:5000/a"], true)
        );
        assert_eq!(
            Output::parse("type=registry,name=r.io/a,name=r.io/b").unwrap(),
            image(&["r.io/a", "r.io/b"], true)
        );
        assert!(Output::parse("type=tar,dest=-").unwrap().writes_stdout());
        assert!(!Output::parse("type=oci,dest=x").unwrap().writes_stdout());
    }

    #[test]
    fn parses_image_options() {
        let out = Output::parse(
            "type=oci,dest=x.tar,compression=zstd,compression-level=19,force-compression=true,\
             annotation.a=1,annotation-manifest-descriptor.b=2,oci-mediatypes=true,name=app:1",
        )
        .unwrap();
        let Output::Oci { image, .. } = out else { panic!("{out:?}") };
        assert_eq!(image.names, ["app:1"]);
        assert_eq!(
            image.compression,
            CompressionSpec { kind: Some(Codec::Zstd), level: Some(19), force: true }
        );
        assert_eq!(image.annotations.manifest["a"], "1");
        assert_eq!(image.annotations.manifest_descriptor["b"], "2");
        // The level before the codec: fine.
        let out = Output::parse("type=oci,dest=x,compression-level=19,compression=zstd").unwrap();
        assert_eq!(out.check_compression(&CompressionSpec::default()), Ok(()));
    }

    #[test]
    fn a_level_alone_is_checked_with_the_build_codec() {
        let out = Output::parse("type=docker,dest=x,compression-level=19").unwrap();
        let zstd = CompressionSpec { kind: Some(Codec::Zstd), ..CompressionSpec::default() };
        assert_eq!(out.check_compression(&zstd), Ok(()));
        assert_eq!(
            out.check_compression(&CompressionSpec::default()).unwrap_err().to_string(),
            "--output compression-level=\"19\": gzip levels are 0 to 9, not 19"
        );
        let local = Output::parse("type=local,dest=x").unwrap();
        assert_eq!(local.check_compression(&zstd), Ok(()));
        assert!(local.image_options().is_none());
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(
            err("type=cacheonly"),
            "--output type=cacheonly is not supported (supported: oci, docker, local, tar, image, registry)"
        );
        assert_eq!(err("type=registry"), "--output type=registry needs name=REF");
        assert_eq!(err("type=docker"), "--output type=docker needs dest=PATH");
        assert_eq!(
            err("type=image,name=A"),
            "--output name=\"A\": each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'"
        );
        assert_eq!(
            err("type=image,name=a,push=yes"),
            "--output push=\"yes\": expected true or false"
        );
        assert_eq!(
            err("type=image,name=a,dest=x"),
            "--output: unknown option \"dest\" for type=image"
        );
        assert_eq!(
            err("type=local,dest=x,compression=zstd"),
            "--output: unknown option \"compression\" for type=local"
        );
        assert_eq!(err("type=tar,dest=x,name=a"), "--output: unknown option \"name\" for type=tar");
        assert_eq!(
            err("type=oci,dest=x,push=true"),
            "--output: unknown option \"push\" for type=oci"
        );
        assert_eq!(err("type=oci"), "--output type=oci needs dest=PATH");
        assert_eq!(
            err("type=oci,dest=-,tar=false"),
            "--output tar=\"false\": an OCI layout directory cannot go to stdout (dest=-)"
        );
        assert_eq!(
            err("type=local,dest=-"),
            "--output type=local writes a directory; use type=tar,dest=- for stdout"
        );
        assert_eq!(
            err("type=oci,dest=x,compression=estargz"),
            "--output compression=\"estargz\": expected gzip, zstd or uncompressed"
        );
        assert_eq!(
            err("type=foo,dest=x"),
            "--output type=foo is not supported (supported: oci, docker, local, tar, image, registry)"
        );
        assert_eq!(
            err("type=oci,dest=x,compression-level=30,compression=zstd"),
            "--output compression-level=\"30\": zstd levels are 1 to 22, not 30"
        );
        assert_eq!(
            err("type=oci,dest=x,compression=uncompressed,compression-level=1"),
            "--output compression-level=\"1\": a compression level does not apply to uncompressed layers"
        );
        assert_eq!(
            err("type=oci,dest=x,oci-mediatypes=false"),
            "--output oci-mediatypes=\"false\": kiln writes OCI media types only"
        );
        assert_eq!(
            err("dest=x,oops"),
            "invalid --output \"dest=x,oops\": expected type=KIND,key=value,... (or - or a directory)"
        );
        assert_eq!(
            err("dest=x"),
            "invalid --output \"dest=x\": expected type=KIND,key=value,... (or - or a directory)"
        );
    }
}
