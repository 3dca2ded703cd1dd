//! Outputs of a build (`--output`): an OCI layout directory, an OCI archive, or an image name
//! in the local store, pushed to its registry when asked (`type=image,name=REF,push=true`, or
//! `type=registry,name=REF`, BuildKit's shorthand for it).

use std::path::PathBuf;

use kiln_cache::blob::BlobStore;
use kiln_cache::store::{ImageStore, write_layout, write_layout_tar};
use oci_spec::image::Descriptor;

use crate::BuildError;
use crate::reference::{ImageName, Reference};
use crate::registry;

/// Where to write the image besides the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=oci,dest=PATH`: a layout directory, or an OCI archive when PATH ends in `.tar`.
    Oci {
        /// The directory or archive file.
        dest: PathBuf,
    },
    /// `type=image,name=REF[,push=true]` or `type=registry,name=REF`: the image is tagged
    /// `REF` in the local store and, with `push`, pushed to `REF`'s registry.
    Image {
        /// The names (`name=` may be repeated).
        names: Vec<String>,
        /// Push to the registry too.
        push: bool,
    },
}

/// Why an `--output` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputSpecError {
    /// Not `key=value,...`.
    #[error(
        "invalid --output {0:?}: expected type=oci,dest=PATH or type=image,name=REF[,push=true]"
    )]
    Malformed(String),
    /// A `type` kiln does not write (yet).
    #[error("--output type={0} is not supported (supported: oci, image, registry)")]
    UnknownType(String),
    /// No `dest`.
    #[error("--output type=oci needs dest=PATH")]
    MissingDest,
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
    /// `push=` is not `true` or `false`.
    #[error("--output push={0:?}: expected true or false")]
    BadPush(String),
    /// A key that does not belong.
    #[error("--output: unknown option {0:?} for type=oci")]
    UnknownKey(String),
}

impl Output {
    /// Parses an `--output` value (`type=oci,dest=PATH`, `type=image,name=REF[,push=true]`,
    /// `type=registry,name=REF`).
    pub fn parse(spec: &str) -> Result<Output, OutputSpecError> {
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut push = None;
        let mut unknown = None;
        for pair in spec.split(',') {
            let (k, v) =
                pair.split_once('=').ok_or_else(|| OutputSpecError::Malformed(spec.to_string()))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "dest" => dest = Some(PathBuf::from(v.trim())),
                "name" => names.push(v.trim().to_string()),
                "push" => push = Some(v.trim().to_string()),
                other => unknown = unknown.or(Some(other.to_string())),
            }
        }
        let image_kind = matches!(kind.as_deref(), Some("image" | "registry"));
        if let Some(k) = unknown.or_else(|| {
            let stray = if image_kind {
                dest.as_ref().map(|_| "dest")
            } else if !names.is_empty() {
                Some("name")
            } else {
                push.as_ref().map(|_| "push")
            };
            stray.map(str::to_string)
        }) {
            return Err(OutputSpecError::UnknownKey(k));
        }
        match kind.as_deref() {
            Some("oci") => Ok(Output::Oci { dest: dest.ok_or(OutputSpecError::MissingDest)? }),
            Some(k @ ("image" | "registry")) => {
                if names.is_empty() {
                    return Err(OutputSpecError::MissingName(k.to_string()));
                }
                for name in &names {
                    Reference::parse(name).map_err(|e| OutputSpecError::BadName {
                        name: name.clone(),
                        reason: e.reason.to_string(),
                    })?;
                }
                let push = match (k, push.as_deref()) {
                    ("registry", None) => true,
                    (_, None | Some("false")) => false,
                    (_, Some("true")) => true,
                    (_, Some(other)) => return Err(OutputSpecError::BadPush(other.to_string())),
                };
                Ok(Output::Image { names, push })
            }
            Some(other) => Err(OutputSpecError::UnknownType(other.to_string())),
            None => Err(OutputSpecError::Malformed(spec.to_string())),
        }
    }
}

/// Writes `output`; returns a description for the user.
///
/// Each `-t` name becomes an index entry whose `org.opencontainers.image.ref.name` is the tag
/// (what `skopeo`'s `oci:DIR:TAG` looks for, as BuildKit's OCI exporter writes it).
pub fn write_output(
    output: &Output,
    blobs: &BlobStore,
    manifest: &Descriptor,
    names: &[ImageName],
) -> Result<String, BuildError> {
    let mut tags: Vec<Option<String>> = Vec::new();
    for name in names {
        let tag = Some(name.tag.clone());
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        tags.push(None);
    }
    let entries: Vec<(Descriptor, Option<String>)> =
        tags.into_iter().map(|t| (manifest.clone(), t)).collect();
    match output {
        Output::Image { names, push } => write_image(blobs, manifest, names, *push),
        Output::Oci { dest } if dest.extension().is_some_and(|e| e == "tar") => {
            write_layout_tar(dest, blobs, &entries)?;
            Ok(format!("OCI archive {}", dest.display()))
        }
        Output::Oci { dest } => {
            write_layout(dest, blobs, &entries)?;
            Ok(format!("OCI layout {}", dest.display()))
        }
    }
}

/// Tags the image under each name in the local store and, with `push`, pushes it there
/// (with the process-wide [`registry::session`]).
fn write_image(
    blobs: &BlobStore,
    manifest: &Descriptor,
    names: &[String],
    push: bool,
) -> Result<String, BuildError> {
    let store = ImageStore::open(blobs.root())?;
    let mut done = Vec::new();
    for name in names {
        let key = match ImageName::parse(name) {
            Ok(n) => n.to_string(),
            // `name@digest`: the store keeps the whole reference.
            Err(_) => Reference::parse(name)?.to_string(),
        };
        store.tag(&key, manifest.clone())?;
        if !push {
            done.push(format!("image {key}"));
            continue;
        }
        let dest = Reference::parse(name)?;
        let session = registry::session()
            .map_err(|e| BuildError::Registry(format!("pushing {dest}: {e}")))?;
        let pushed = session
            .registry
            .push(&store, manifest, &dest, &())
            .map_err(|e| BuildError::Registry(format!("pushing {dest}: {e}")))?;
        done.push(format!("image {key}, pushed {}@{}", dest.name(), pushed.digest));
    }
    Ok(done.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_specs() {
        assert_eq!(Output::parse("type=oci,dest=/x").unwrap(), Output::Oci { dest: "/x".into() });
        assert_eq!(
            Output::parse("dest=o.tar,type=oci").unwrap(),
            Output::Oci { dest: "o.tar".into() }
        );
        assert_eq!(
            Output::parse("type=docker,dest=x").unwrap_err().to_string(),
            "--output type=docker is not supported (supported: oci, image, registry)"
        );
        let image = |names: &[&str], push| Output::Image {
            names: names.iter().map(|n| n.to_string()).collect(),
            push,
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
        assert_eq!(
            Output::parse("type=registry").unwrap_err().to_string(),
            "--output type=registry needs name=REF"
        );
        assert_eq!(
            Output::parse("type=image,name=A").unwrap_err().to_string(),
            "--output name=\"A\": each path component is lower-case letters and digits, separated by '.', '_', '__' or '-'"
        );
        assert_eq!(
            Output::parse("type=image,name=a,push=yes").unwrap_err(),
            OutputSpecError::BadPush("yes".into())
        );
        assert_eq!(
            Output::parse("type=image,name=a,dest=x").unwrap_err(),
            OutputSpecError::UnknownKey("dest".into())
        );
        assert_eq!(Output::parse("type=oci").unwrap_err(), OutputSpecError::MissingDest);
        assert_eq!(Output::parse("oops").unwrap_err(), OutputSpecError::Malformed("oops".into()));
        assert_eq!(
            Output::parse("type=oci,dest=x,push=true").unwrap_err(),
            OutputSpecError::UnknownKey("push".into())
        );
    }
}
