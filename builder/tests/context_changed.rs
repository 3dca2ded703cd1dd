//! A context file that changes between the moment its content is hashed for a cache key and
//! the moment it is copied into the layer: the copy fails ("changed while building"), and
//! the layer is never written with the other content. Deterministic counterparts of the racy
//! end-to-end test `cli/tests/hostile_context.rs::a_file_replaced_while_building_never_poisons_the_cache`.

use std::fs;
use std::path::Path;

use kiln_builder::context::BuildContext;
use kiln_builder::fsview::LayeredView;
use kiln_builder::key::{ContextHasher, HashItem};
use kiln_builder::ops::copy::{CopyFrom, CopyInputs, Hashed, context_digest, plan_copy};
use kiln_cache::BlobStore;
use kiln_cache::layer::{EntryKind, FileIdentity, FileSource, LayerOptions, write_layer};
use kiln_frontend::graph::{CopyOp, CopySource};

/// Replaces `path` by a new file holding `content` (write + rename, as editors save).
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn copy_op(source: &str) -> CopyOp {
    CopyOp {
        from: CopySource::Context,
        sources: vec![source.to_string()],
        inline: Vec::new(),
        dest: "/out/".to_string(),
        dest_is_dir: true,
        chown: None,
        chmod: None,
        link: false,
        parents: false,
        exclude: Vec::new(),
        chmod_mode: None,
    }
}

fn blob_count(store_root: &Path) -> usize {
    fs::read_dir(store_root.join("blobs/sha256")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_file_replaced_after_hashing_is_not_copied_under_the_old_key() {
    for source in ["d", "d/f"] {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "AAAA").unwrap();
        let ctx = BuildContext::open(&root, None).unwrap();
        let kiln_root = tempfile::tempdir().unwrap();
        let hasher = ContextHasher::new(&ctx, kiln_root.path()).unwrap();
        let op = copy_op(source);

        // The key is computed from "AAAA"; then the file is replaced by one of the same size.
        let hashed = Hashed::default();
        let digest = context_digest(&hasher, &op.sources, false, &[], Some(&hashed)).unwrap();
        replace(&root.join("d/f"), "BBBB");

        // Planned with what the key read: the very listing that was hashed, old identity
        // included.
        let empty = LayeredView::default();
        let inputs = |hashed| CopyInputs {
            from: CopyFrom::Context(&ctx),
            dest_view: &empty,
            owner: None,
            now: 0,
            hashed: Some(hashed),
        };
        let entries = plan_copy(&op, &inputs(&hashed)).unwrap();
        let file = entries.iter().find(|e| e.path == "out/f").expect("out/f planned");
        let EntryKind::File { source: FileSource::Checked(checked), size: 4 } = &file.kind else {
            panic!("{source}: not a checked file: {:?}", file.kind);
        };
        assert_eq!(checked.path, root.join("d/f"));
        assert_ne!(checked.identity, FileIdentity::of(&fs::metadata(root.join("d/f")).unwrap()));

        let store = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(store.path()).unwrap();
        let before = blob_count(store.path());
        let err = write_layer(&blobs, &entries, &LayerOptions::default()).unwrap_err().to_string();
        let want = format!("{} changed while building", root.join("d/f").display());
        assert!(err.contains(&want), "{source}: {err}");
        assert_eq!(blob_count(store.path()), before, "{source}: a blob was stored");

        // Hashed again, the new content gives another key, and is copied.
        let hashed = Hashed::default();
        let again = context_digest(&hasher, &op.sources, false, &[], Some(&hashed)).unwrap();
        assert_ne!(again, digest, "{source}");
        let entries = plan_copy(&op, &inputs(&hashed)).unwrap();
        write_layer(&blobs, &entries, &LayerOptions::default()).unwrap();
    }
}

#[test]
fn a_file_replaced_before_it_is_hashed_is_an_error() {
    // The walk saw one file; by the time it is read for its digest, it is another.
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    fs::write(root.join("f"), "AAAA").unwrap();
    let listed = FileIdentity::of(&fs::metadata(root.join("f")).unwrap());
    replace(&root.join("f"), "BBBB");
    let ctx = BuildContext::open(&root, None).unwrap();
    let kiln_root = tempfile::tempdir().unwrap();
    let hasher = ContextHasher::new(&ctx, kiln_root.path()).unwrap();
    let item = HashItem {
        file: Some((root.join("f"), listed)),
        ..HashItem::new("f".into(), "file", 0o644, String::new())
    };
    let err = hasher.digest_items(vec![item]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{} changed while building: it was replaced or modified while kiln read it; run \
             the build again",
            root.join("f").display()
        )
    );
}

#[test]
fn a_file_rewritten_in_place_after_hashing_is_an_error_when_copied() {
    // Same inode, same size, new content (and so a new mtime/ctime): caught by the writer.
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    fs::write(root.join("f"), "AAAA").unwrap();
    let listed = FileIdentity::of(&fs::metadata(root.join("f")).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(root.join("f"), "BBBB").unwrap();
    let entry = kiln_cache::LayerEntry {
        path: "f".into(),
        kind: EntryKind::File { source: FileSource::checked(root.join("f"), listed), size: 4 },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: Default::default(),
    };
    let store = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(store.path()).unwrap();
    let err =
        write_layer(&blobs, std::slice::from_ref(&entry), &LayerOptions::default()).unwrap_err();
    assert!(err.to_string().contains("changed while building"), "{err}");
    // Unchanged, the same entry is written.
    let now = FileIdentity::of(&fs::metadata(root.join("f")).unwrap());
    let ok = kiln_cache::LayerEntry {
        kind: EntryKind::File { source: FileSource::checked(root.join("f"), now), size: 4 },
        ..entry
    };
    write_layer(&blobs, &[ok], &LayerOptions::default()).unwrap();
}

/// Writes at `dest` a tar archive (GNU tar) holding one file `name` with `content`.
fn write_tar(dest: &Path, name: &str, content: &[u8]) {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join(name), content).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-cf")
        .arg(dest)
        .arg("-C")
        .arg(src.path())
        .arg(name)
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
}

#[test]
fn an_archive_replaced_after_hashing_is_not_extracted_under_the_old_key() {
    use kiln_builder::context::Scratch;
    use kiln_builder::ops::add::{AddInputs, Fetched, plan_add};
    use kiln_frontend::graph::{AddOp, AddSource};

    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    write_tar(&root.join("a.tar"), "f", b"AAAA");
    let ctx = BuildContext::open(&root, None).unwrap();
    let kiln_root = tempfile::tempdir().unwrap();
    let hasher = ContextHasher::new(&ctx, kiln_root.path()).unwrap();
    let op = AddOp {
        sources: vec![AddSource::Local { path: "a.tar".into() }],
        inline: Vec::new(),
        dest: "/out/".into(),
        dest_is_dir: true,
        chown: None,
        chmod: None,
        link: false,
        exclude: Vec::new(),
        unpack: None,
    };
    let plan = |scratch: &Scratch, hashed: &Hashed| {
        let empty = LayeredView::default();
        let inputs = AddInputs {
            context: &ctx,
            dest_view: &empty,
            owner: None,
            now: 0,
            fetched: &[Fetched::Local],
            scratch,
            hashed: Some(hashed),
        };
        plan_add(&op, &inputs).map_err(|e| e.to_string())
    };
    let scratch = Scratch::new(&kiln_root.path().join("tmp"));
    // Unchanged: extracted.
    let hashed = Hashed::default();
    context_digest(&hasher, &["a.tar".to_string()], false, &[], Some(&hashed)).unwrap();
    let entries = plan(&scratch, &hashed).unwrap();
    assert!(entries.iter().any(|e| e.path == "out/f"), "{entries:?}");
    // Replaced after the key was computed: refused, not extracted.
    let hashed = Hashed::default();
    context_digest(&hasher, &["a.tar".to_string()], false, &[], Some(&hashed)).unwrap();
    let tmp = root.join("a.tmp");
    write_tar(&tmp, "f", b"BBBB");
    fs::rename(&tmp, root.join("a.tar")).unwrap();
    let err = plan(&scratch, &hashed).unwrap_err();
    assert!(err.contains("a.tar changed while building"), "{err}");
}
