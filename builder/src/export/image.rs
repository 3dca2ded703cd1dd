//! `type=image` / `type=registry`: the image tagged in the local store under each name and,
//! with `push`, pushed there (with the process-wide [`registry::session`]).

use kiln_cache::blob::BlobStore;
use kiln_cache::store::ImageStore;

use super::Composed;
use crate::BuildError;
use crate::events::{EventSink, TransferEvents};
use crate::reference::{ImageName, Reference};
use crate::registry;

/// Tags (and pushes) the image under `names`.
pub(super) fn write(
    blobs: &BlobStore,
    image: &Composed,
    names: &[String],
    push: bool,
    events: &dyn EventSink,
) -> Result<String, BuildError> {
    let store = ImageStore::open(blobs.root())?;
    let manifest = &image.descriptor;
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
            .push(&store, manifest, &dest, &TransferEvents::new(events))
            .map_err(|e| BuildError::Registry(format!("pushing {dest}: {e}")))?;
        done.push(format!("image {key}, pushed {}@{}", dest.name(), pushed.digest));
    }
    Ok(done.join("; "))
}
