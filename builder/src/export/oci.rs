//! `type=oci`: an OCI image layout directory, or an OCI archive (a tar of it, what
//! `skopeo copy oci-archive:` and `umoci` read).

use kiln_cache::blob::BlobStore;
use kiln_cache::store::{write_layout_tar_to, write_layout_with};

use super::annotations::Annotations;
use super::spec::Dest;
use super::{Composed, write_dest};
use crate::BuildError;
use crate::reference::Reference;

/// Writes the image to `dest`: an archive when `tar` says so, or (when not given) when `dest`
/// is stdout or ends in `.tar`; a layout directory otherwise.
///
/// Each name becomes an `index.json` entry whose `org.opencontainers.image.ref.name` is its tag
/// (what `skopeo`'s `oci:DIR:TAG` looks for, as BuildKit's OCI exporter writes it).
pub(super) fn write(
    blobs: &BlobStore,
    image: &Composed,
    annotations: &Annotations,
    names: &[Reference],
    dest: &Dest,
    tar: Option<bool>,
) -> Result<String, BuildError> {
    let mut descriptor = image.descriptor.clone();
    if !annotations.manifest_descriptor.is_empty() {
        descriptor.set_annotations(Some(
            annotations.manifest_descriptor.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    }
    let mut tags: Vec<Option<String>> = Vec::new();
    for name in names {
        let tag = name.tag.clone();
        if tag.is_some() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        tags.push(None);
    }
    let entries: Vec<_> = tags.into_iter().map(|t| (descriptor.clone(), t)).collect();
    let archive = tar.unwrap_or(match dest {
        Dest::Stdout => true,
        Dest::Path(p) => p.extension().is_some_and(|e| e == "tar"),
    });
    match dest {
        Dest::Stdout if !archive => {
            Err(BuildError::Export("--output type=oci,tar=false cannot write to stdout".into()))
        }
        Dest::Path(path) if !archive => {
            write_layout_with(path, blobs, &entries, &annotations.index)?;
            Ok(format!("OCI layout {}", path.display()))
        }
        _ => {
            write_dest(dest, |out| {
                Ok(write_layout_tar_to(out, blobs, &entries, &annotations.index)?)
            })?;
            Ok(match dest {
                Dest::Stdout => "OCI archive to stdout".to_string(),
                Dest::Path(p) => format!("OCI archive {}", p.display()),
            })
        }
    }
}
