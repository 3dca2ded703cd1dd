//! Outputs of a build (`--output`): an OCI layout directory or an OCI archive.

use std::path::PathBuf;

use kiln_cache::blob::BlobStore;
use kiln_cache::store::{write_layout, write_layout_tar};
use oci_spec::image::Descriptor;

use crate::BuildError;
use crate::reference::ImageName;

/// Where to write the image besides the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=oci,dest=PATH`: a layout directory, or an OCI archive when PATH ends in `.tar`.
    Oci {
        /// The directory or archive file.
        dest: PathBuf,
    },
}

/// Why an `--output` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputSpecError {
    /// Not `key=value,...`.
    #[error("invalid --output {0:?}: expected type=oci,dest=PATH")]
    Malformed(String),
    /// A `type` kiln does not write (yet).
    #[error("--output type={0} is not supported (supported: oci)")]
    UnknownType(String),
    /// No `dest`.
    #[error("--output type=oci needs dest=PATH")]
    MissingDest,
    /// A key that does not belong.
    #[error("--output: unknown option {0:?} for type=oci")]
    UnknownKey(String),
}

impl Output {
    /// Parses an `--output` value (`type=oci,dest=PATH`).
    pub fn parse(spec: &str) -> Result<Output, OutputSpecError> {
        let mut kind = None;
        let mut dest = None;
        for pair in spec.split(',') {
            let (k, v) =
                pair.split_once('=').ok_or_else(|| OutputSpecError::Malformed(spec.to_string()))?;
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "dest" => dest = Some(PathBuf::from(v.trim())),
                other => return Err(OutputSpecError::UnknownKey(other.to_string())),
            }
        }
        match kind.as_deref() {
            Some("oci") => Ok(Output::Oci { dest: dest.ok_or(OutputSpecError::MissingDest)? }),
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
            "--output type=docker is not supported (supported: oci)"
        );
        assert_eq!(Output::parse("type=oci").unwrap_err(), OutputSpecError::MissingDest);
        assert_eq!(Output::parse("oops").unwrap_err(), OutputSpecError::Malformed("oops".into()));
        assert_eq!(
            Output::parse("type=oci,dest=x,push=true").unwrap_err(),
            OutputSpecError::UnknownKey("push".into())
        );
    }
}
