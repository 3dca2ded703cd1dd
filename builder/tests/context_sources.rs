//! Contexts from archives and stdin: extracted with kiln's safe extractor (nothing lands
//! outside the temporary directory, whatever the members' names or links say), compression
//! recognized by content, and the temporary directory removed when the context is dropped.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use kiln_builder::context::{ContextError, ContextSource, PreparedContext};

fn python(dir: &Path, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("python3 is required: run scripts/setup-machine");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A tar whose members try to leave: `..` paths, absolute paths, a symlink to `/` followed by
/// a member written through it, and a hard link to a host file.
const EVIL: &str = r#"
import io, tarfile
with tarfile.open('evil.tar', 'w') as t:
    def add(name, data=b'x', **kw):
        info = tarfile.TarInfo(name)
        for k, v in kw.items():
            setattr(info, k, v)
        info.size = len(data) if info.type == tarfile.REGTYPE else 0
        t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    add('Dockerfile', b'FROM scratch\n')
    add('../../outside-dotdot')
    add('/outside-abs')
    add('up', type=tarfile.SYMTYPE, linkname='../../..')
    add('up/outside-through-link')
    add('hl', type=tarfile.LNKTYPE, linkname='/etc/hostname')
"#;

#[test]
fn tar_contexts_never_write_outside_their_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    python(work.path(), EVIL);
    let scratch = work.path().join("root/tmp");
    let source = ContextSource::parse(work.path().join("evil.tar").to_str().expect("utf-8"));
    assert!(matches!(source, ContextSource::Tarball(_)), "{source:?}");
    let result = PreparedContext::prepare(&source, &scratch, &mut std::io::empty());
    // Whatever the extractor decides for each member, nothing exists outside the context.
    for outside in ["outside-dotdot", "outside-abs", "outside-through-link"] {
        assert!(!work.path().join(outside).exists(), "{outside} escaped");
        assert!(!work.path().join("root").join(outside).exists(), "{outside} escaped");
        assert!(!scratch.join(outside).exists(), "{outside} escaped");
        assert!(!Path::new("/").join(outside).exists(), "{outside} escaped");
    }
    match result {
        Ok(prepared) => {
            assert!(prepared.dir.starts_with(&scratch));
            assert!(prepared.dir.join("Dockerfile").is_file());
            let dir = prepared.dir.clone();
            drop(prepared);
            assert!(!dir.exists(), "the extracted context is removed when dropped");
        }
        Err(ContextError::Archive { reason, .. }) => {
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
    let left: Vec<_> = std::fs::read_dir(&scratch).expect("scratch").flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn stdin_gives_an_archive_of_any_compression_or_a_dockerfile() {
    let work = tempfile::tempdir().expect("tempdir");
    python(
        work.path(),
        "import io, tarfile, gzip, bz2, lzma\n\
         buf = io.BytesIO()\n\
         with tarfile.open(fileobj=buf, mode='w') as t:\n\
         \x20   data = b'hello'\n\
         \x20   info = tarfile.TarInfo('dir/hello.txt'); info.size = len(data)\n\
         \x20   t.addfile(info, io.BytesIO(data))\n\
         raw = buf.getvalue()\n\
         open('c.tar', 'wb').write(raw)\n\
         open('c.tar.gz', 'wb').write(gzip.compress(raw))\n\
         open('c.tar.bz2', 'wb').write(bz2.compress(raw))\n\
         open('c.tar.xz', 'wb').write(lzma.compress(raw))\n",
    );
    let scratch = work.path().join("tmp");
    for name in ["c.tar", "c.tar.gz", "c.tar.bz2", "c.tar.xz"] {
        let bytes = std::fs::read(work.path().join(name)).expect("archive");
        let prepared =
            PreparedContext::prepare(&ContextSource::Stdin, &scratch, &mut Cursor::new(bytes))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(prepared.dockerfile, None, "{name}");
        let content = std::fs::read_to_string(prepared.dir.join("dir/hello.txt")).expect("file");
        assert_eq!(content, "hello", "{name}");
    }
    let text = "FROM scratch\nLABEL a=b\n";
    let prepared = PreparedContext::prepare(
        &ContextSource::Stdin,
        &scratch,
        &mut Cursor::new(text.as_bytes().to_vec()),
    )
    .expect("a Dockerfile");
    assert_eq!(prepared.dockerfile.as_deref(), Some(text));
    assert_eq!(std::fs::read_dir(&prepared.dir).expect("empty dir").count(), 0);
}
