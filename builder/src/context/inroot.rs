//! Reading a file of the context as if the context were the root directory: symlinks on the
//! way are followed, but an absolute target starts again at the context root and `..` stops
//! there (`openat2` with `RESOLVE_IN_ROOT`), as BuildKit resolves the files it reads from a
//! context. A hostile `.dockerignore -> /home/me/.netrc` thus names `<context>/home/me/.netrc`.

use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The bytes of `path` when its directory lies inside `root` (`root` canonical; the file is
/// resolved within it); `Ok(None)` when it does not (the caller reads it as the user named it).
pub fn read_in_root(root: &Path, path: &Path) -> io::Result<Option<Vec<u8>>> {
    // The directory it is in, symlinks resolved (as the user named it), then the name.
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return Ok(None) };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let Ok(parent) = std::fs::canonicalize(parent) else { return Ok(None) };
    let abs = parent.join(name);
    let Ok(rel) = abs.strip_prefix(root) else { return Ok(None) };
    let dir =
        rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut tries = 0;
    let fd = loop {
        match rustix::fs::openat2(
            &dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            // EAGAIN: a concurrent mount or rename raced the scoped lookup; try again.
            Err(rustix::io::Errno::AGAIN) if tries < 32 => tries += 1,
            other => break other?,
        }
    };
    let mut file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}
