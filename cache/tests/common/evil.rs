//! A generator of hostile tar streams, written block by block so that nothing (path checks,
//! size checks, checksums) stands between a test and the bytes it wants in a layer.
#![allow(dead_code)]

use std::io::Write;

/// Tar block size.
pub const BLOCK: usize = 512;
/// The mtime every generated member carries.
pub const T0: u64 = 1_700_000_000;

/// One raw tar member: a header block, then `data` padded to a block.
#[derive(Clone)]
pub struct Member {
    /// Bytes of the `name` field (at most 100; longer names go in PAX or GNU `L` members).
    pub name: Vec<u8>,
    /// Type flag (`b'0'` file, `b'5'` dir, `b'2'` symlink, `b'1'` hard link, `b'x'` PAX, ...).
    pub typeflag: u8,
    /// Permission bits and setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link target (`linkname` field).
    pub link: Vec<u8>,
    /// Device numbers.
    pub dev: (u32, u32),
    /// Content written after the header.
    pub data: Vec<u8>,
    /// The `size` field: `None` writes `data.len()` in octal; `Some(bytes)` writes these bytes
    /// as they are (lies, non-octal digits, base-256).
    pub size_field: Option<[u8; 12]>,
    /// The `mode` field written raw instead of `mode`.
    pub mode_field: Option<[u8; 8]>,
    /// Writes a wrong checksum.
    pub bad_checksum: bool,
    /// Bytes 386.. of a GNU header (sparse map, `isextended`, `realsize`); sets GNU magic.
    pub gnu_sparse: Option<Vec<u8>>,
}

impl Member {
    fn new(name: &[u8], typeflag: u8, mode: u32) -> Member {
        Member {
            name: name.to_vec(),
            typeflag,
            mode,
            uid: 0,
            gid: 0,
            link: vec![],
            dev: (0, 0),
            data: vec![],
            size_field: None,
            mode_field: None,
            bad_checksum: false,
            gnu_sparse: None,
        }
    }

    /// A regular file.
    pub fn file(name: &str, data: &[u8]) -> Member {
        Member { data: data.to_vec(), ..Member::new(name.as_bytes(), b'0', 0o644) }
    }

    /// A regular file with a raw (possibly non-UTF-8) name.
    pub fn file_raw(name: &[u8], data: &[u8]) -> Member {
        Member { data: data.to_vec(), ..Member::new(name, b'0', 0o644) }
    }

    /// A directory (`name/`).
    pub fn dir(name: &str) -> Member {
        Member::new(format!("{name}/").as_bytes(), b'5', 0o755)
    }

    /// A symbolic link.
    pub fn symlink(name: &str, target: &str) -> Member {
        Member { link: target.as_bytes().to_vec(), ..Member::new(name.as_bytes(), b'2', 0o777) }
    }

    /// A hard link.
    pub fn hardlink(name: &str, target: &str) -> Member {
        Member { link: target.as_bytes().to_vec(), ..Member::new(name.as_bytes(), b'1', 0o644) }
    }

    /// A character device.
    pub fn chardev(name: &str, major: u32, minor: u32) -> Member {
        Member { dev: (major, minor), ..Member::new(name.as_bytes(), b'3', 0o666) }
    }

    /// A block device.
    pub fn blockdev(name: &str, major: u32, minor: u32) -> Member {
        Member { dev: (major, minor), ..Member::new(name.as_bytes(), b'4', 0o660) }
    }

    /// A named pipe.
    pub fn fifo(name: &str) -> Member {
        Member::new(name.as_bytes(), b'6', 0o644)
    }

    /// A PAX extended header member applying `records` to the next member.
    pub fn pax(records: &[(&str, &[u8])]) -> Member {
        Member { data: pax_records(records), ..Member::new(b"PaxHeaders.0/x", b'x', 0o644) }
    }

    /// A GNU long-name (`L`) member naming the next member.
    pub fn gnu_longname(name: &[u8]) -> Member {
        let mut data = name.to_vec();
        data.push(0);
        Member { data, ..Member::new(b"././@LongLink", b'L', 0o644) }
    }

    /// The same member with `mode`.
    pub fn mode(self, mode: u32) -> Member {
        Member { mode, ..self }
    }

    /// The header block.
    pub fn header(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let n = self.name.len().min(100);
        b[..n].copy_from_slice(&self.name[..n]);
        match self.mode_field {
            Some(f) => b[100..108].copy_from_slice(&f),
            None => octal(&mut b[100..108], u64::from(self.mode)),
        }
        octal(&mut b[108..116], u64::from(self.uid));
        octal(&mut b[116..124], u64::from(self.gid));
        match self.size_field {
            Some(f) => b[124..136].copy_from_slice(&f),
            None => octal(&mut b[124..136], self.data.len() as u64),
        }
        octal(&mut b[136..148], T0);
        b[156] = self.typeflag;
        let l = self.link.len().min(100);
        b[157..157 + l].copy_from_slice(&self.link[..l]);
        octal(&mut b[329..337], u64::from(self.dev.0));
        octal(&mut b[337..345], u64::from(self.dev.1));
        match &self.gnu_sparse {
            Some(tail) => {
                b[257..265].copy_from_slice(b"ustar  \0");
                b[386..386 + tail.len()].copy_from_slice(tail);
            }
            None => b[257..265].copy_from_slice(b"ustar\x0000"),
        }
        b[148..156].fill(b' ');
        let mut sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        if self.bad_checksum {
            sum += 1;
        }
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        b
    }

    /// Header and padded content.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header().to_vec();
        out.extend_from_slice(&self.data);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
        out
    }
}

/// Writes `v` as zero-padded octal with a NUL terminator into `field`.
pub fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// PAX records `"<len> <key>=<value>\n"`.
pub fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let base = key.len() + value.len() + 3;
        let mut len = base + 1;
        while base + len.to_string().len() != len {
            len = base + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A whole tar: the members and the two zero blocks that end it.
pub fn tar_of(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        out.extend_from_slice(&m.encode());
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}

/// gzip of `data` (level 6).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A gzip stream of `header` followed by `zeros` zero bytes, the padding to a block and the end
/// of the tar, compressed as it is generated (never whole in memory). Returns the blob and the
/// sha256 of its uncompressed bytes (the diff_id), hex.
pub fn gzip_bomb(header: &[u8], zeros: u64) -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
    let mut put = |bytes: &[u8]| {
        hasher.update(bytes);
        e.write_all(bytes).unwrap();
    };
    put(header);
    let chunk = vec![0u8; 1 << 20];
    let padded = zeros.next_multiple_of(BLOCK as u64) + 2 * BLOCK as u64;
    let mut left = padded;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        put(&chunk[..n]);
        left -= n as u64;
    }
    (e.finish().unwrap(), hex::encode(hasher.finalize()))
}
