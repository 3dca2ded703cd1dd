//! `type=docker`: a Docker archive, what `docker load`, `podman load` and
//! `skopeo copy docker-archive:` read (see [`kiln_cache::store::write_docker_archive_to`]).

use kiln_cache::blob::BlobStore;
use kiln_cache::store::{DockerTag, write_docker_archive_to};

use super::annotations::Annotations;
use super::spec::Dest;
use super::{Composed, write_dest};
use crate::BuildError;
use crate::reference::Reference;

/// Writes the image as a Docker archive named `names` (Docker's short forms in `RepoTags`).
pub(super) fn write(
    blobs: &BlobStore,
    image: &Composed,
    annotations: &Annotations,
    names: &[Reference],
    dest: &Dest,
) -> Result<String, BuildError> {
    let mut descriptor = image.descriptor.clone();
    if !annotations.manifest_descriptor.is_empty() {
        descriptor.set_annotations(Some(
            annotations.manifest_descriptor.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    }
    let tags: Vec<DockerTag> = names
        .iter()
        .filter_map(|n| {
            let tag = n.tag.clone()?;
            let repository = Reference { tag: None, digest: None, ..n.clone() }.familiar();
            Some(DockerTag { repository, tag, full_name: n.to_string() })
        })
        .collect();
    write_dest(dest, |out| {
        Ok(write_docker_archive_to(out, blobs, &descriptor, &tags, &annotations.index)?)
    })?;
    let shown: Vec<String> = tags.iter().map(|t| format!("{}:{}", t.repository, t.tag)).collect();
    let names = if shown.is_empty() { String::new() } else { format!(" ({})", shown.join(", ")) };
    Ok(match dest {
        Dest::Stdout => format!("Docker archive to stdout{names}"),
        Dest::Path(p) => format!("Docker archive {}{names}", p.display()),
    })
}
