//! Tar headers written byte by byte: a USTAR block, preceded by a PAX extended header when a
//! value does not fit USTAR (long or non-ASCII names, large numbers, negative mtimes, xattrs).
//! Numeric owners only (uname/gname empty), no atime/ctime, so the bytes depend on the entry alone.

use std::collections::BTreeMap;

/// Tar block size.
pub(crate) const BLOCK: usize = 512;

/// Tar type flags used by kiln.
pub(crate) mod typeflag {
    pub const REGULAR: u8 = b'0';
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const PAX: u8 = b'x';
}

/// Largest value of an octal field of `size` bytes (one byte is the NUL terminator).
const fn octal_max(size: usize) -> u64 {
    (1u64 << (3 * (size as u64 - 1))) - 1
}

/// One tar member's metadata, ready to encode.
pub(crate) struct TarHeader<'a> {
    /// Full member name (directories end with `/`).
    pub name: &'a str,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub linkname: &'a str,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a BTreeMap<String, Vec<u8>>,
}

impl TarHeader<'_> {
    /// Encodes the header: PAX header member (if needed) + USTAR block, a multiple of 512 bytes.
    /// Fails (with the reason) for values tar cannot carry.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let (prefix, name) = match split_ustar_name(self.name) {
            Some(parts) => parts,
            None => {
                pax.insert("path".into(), self.name.as_bytes().to_vec());
                ("", ascii_truncate(self.name, 100))
            }
        };
        let linkname = if self.linkname.is_ascii() && self.linkname.len() <= 100 {
            self.linkname.to_string()
        } else {
            pax.insert("linkpath".into(), self.linkname.as_bytes().to_vec());
            ascii_truncate(self.linkname, 100)
        };
        let size = fit_or_pax(&mut pax, "size", self.size, 12);
        let uid = fit_or_pax(&mut pax, "uid", u64::from(self.uid), 8);
        let gid = fit_or_pax(&mut pax, "gid", u64::from(self.gid), 8);
        let mtime = match u64::try_from(self.mtime) {
            Ok(m) => fit_or_pax(&mut pax, "mtime", m, 12),
            Err(_) => {
                pax.insert("mtime".into(), self.mtime.to_string().into_bytes());
                0
            }
        };
        for (key, value) in self.xattrs {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(format!("xattr name {key:?} cannot be stored in a tar"));
            }
            pax.insert(format!("SCHILY.xattr.{key}"), value.clone());
        }
        for (what, v) in [("device major", self.devmajor), ("device minor", self.devminor)] {
            if u64::from(v) > octal_max(8) {
                return Err(format!("{what} {v} does not fit a tar header"));
            }
        }

        let mut out = Vec::with_capacity(BLOCK * 3);
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let pax_name = pax_member_name(self.name);
            let block = ustar_block(&UstarFields {
                prefix: "",
                name: &pax_name,
                typeflag: typeflag::PAX,
                mode: 0o644,
                size: records.len() as u64,
                ..UstarFields::default()
            });
            out.extend_from_slice(&block);
            out.extend_from_slice(&records);
            out.resize(out.len().next_multiple_of(BLOCK), 0);
        }
        out.extend_from_slice(&ustar_block(&UstarFields {
            prefix,
            name: &name,
            typeflag: self.typeflag,
            mode: self.mode & 0o7777,
            uid,
            gid,
            size,
            mtime,
            linkname: &linkname,
            devmajor: self.devmajor,
            devminor: self.devminor,
        }));
        Ok(out)
    }
}

/// Returns `value` when it fits an octal field of `field` bytes, else records it in `pax` and
/// returns 0 for the USTAR field.
fn fit_or_pax(pax: &mut BTreeMap<String, Vec<u8>>, key: &str, value: u64, field: usize) -> u64 {
    if value <= octal_max(field) {
        value
    } else {
        pax.insert(key.into(), value.to_string().into_bytes());
        0
    }
}

/// Splits an ASCII name into USTAR `prefix` and `name` fields, or `None` when PAX is needed.
fn split_ustar_name(full: &str) -> Option<(&str, String)> {
    if !full.is_ascii() {
        return None;
    }
    if full.len() <= 100 {
        return Some(("", full.to_string()));
    }
    if full.len() > 256 {
        return None;
    }
    let bytes = full.as_bytes();
    // The split slash must leave a prefix of at most 155 bytes and a non-empty name.
    let last = (bytes.len() - 2).min(155);
    let i = (1..=last).rev().find(|&i| bytes[i] == b'/')?;
    let (prefix, name) = (&full[..i], &full[i + 1..]);
    (name.len() <= 100).then(|| (prefix, name.to_string()))
}

/// `s` with non-ASCII characters replaced by `_`, cut to `max` bytes (informational fields).
fn ascii_truncate(s: &str, max: usize) -> String {
    s.chars().map(|c| if c.is_ascii() && c != '\0' { c } else { '_' }).take(max).collect()
}

/// The name of a PAX header member for `name`: `<dir>/PaxHeaders.0/<base>` (as Go writes it).
fn pax_member_name(name: &str) -> String {
    let trimmed = name.trim_end_matches('/');
    let joined = match trimmed.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/PaxHeaders.0/{base}"),
        None => format!("PaxHeaders.0/{trimmed}"),
    };
    ascii_truncate(&joined, 100)
}

/// PAX records `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_records(pax: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in pax {
        let base = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = base + 1;
        loop {
            let next = base + len.to_string().len();
            if next == len {
                break;
            }
            len = next;
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[derive(Default)]
struct UstarFields<'a> {
    prefix: &'a str,
    name: &'a str,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    linkname: &'a str,
    devmajor: u32,
    devminor: u32,
}

fn put_str(block: &mut [u8; BLOCK], offset: usize, len: usize, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(len);
    block[offset..offset + n].copy_from_slice(&b[..n]);
}

fn put_octal(block: &mut [u8; BLOCK], offset: usize, len: usize, v: u64) {
    let s = format!("{v:0width$o}", width = len - 1);
    put_str(block, offset, len - 1, &s);
    block[offset + len - 1] = 0;
}

/// One 512-byte USTAR header block (magic `ustar\0`, version `00`).
fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b, 0, 100, f.name);
    put_octal(&mut b, 100, 8, u64::from(f.mode));
    put_octal(&mut b, 108, 8, f.uid);
    put_octal(&mut b, 116, 8, f.gid);
    put_octal(&mut b, 124, 12, f.size);
    put_octal(&mut b, 136, 12, f.mtime);
    b[156] = f.typeflag;
    put_str(&mut b, 157, 100, f.linkname);
    put_str(&mut b, 257, 6, "ustar\0");
    put_str(&mut b, 263, 2, "00");
    put_octal(&mut b, 329, 8, u64::from(f.devmajor));
    put_octal(&mut b, 337, 8, u64::from(f.devminor));
    put_str(&mut b, 345, 155, f.prefix);
    // Checksum: sum of all bytes with the checksum field read as spaces.
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    put_str(&mut b, 148, 8, &format!("{sum:06o}\0 "));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a str, xattrs: &'a BTreeMap<String, Vec<u8>>) -> TarHeader<'a> {
        TarHeader {
            name,
            typeflag: typeflag::REGULAR,
            mode: 0o4755,
            uid: 1000,
            gid: 1000,
            size: 5,
            mtime: 1_700_000_000,
            linkname: "",
            devmajor: 0,
            devminor: 0,
            xattrs,
        }
    }

    #[test]
    fn plain_ustar_block() {
        let none = BTreeMap::new();
        let b = header("usr/bin/x", &none).encode().unwrap();
        assert_eq!(b.len(), 512);
        assert_eq!(&b[0..10], b"usr/bin/x\0");
        assert_eq!(&b[100..108], b"0004755\0");
        assert_eq!(&b[108..116], b"0001750\0");
        assert_eq!(&b[124..136], b"00000000005\0");
        assert_eq!(&b[136..148], b"14524770400\0");
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(&b[265..329], &[0u8; 64][..], "uname/gname empty");
        // The tar crate agrees on the checksum and fields.
        let h = tar::Header::from_byte_slice(&b);
        assert_eq!(h.cksum().unwrap(), {
            let mut c = b.clone();
            c[148..156].fill(b' ');
            c.iter().map(|&x| u32::from(x)).sum::<u32>()
        });
        assert_eq!(h.mode().unwrap(), 0o4755);
    }

    #[test]
    fn prefix_split_and_pax_fallbacks() {
        let none = BTreeMap::new();
        let long_dir = "d".repeat(120);
        let name = format!("{long_dir}/file");
        let b = header(&name, &none).encode().unwrap();
        assert_eq!(b.len(), 512, "fits prefix/name split");
        assert_eq!(&b[0..5], b"file\0");
        assert_eq!(&b[345..465], long_dir.as_bytes());

        let long = "x".repeat(300);
        let b = header(&long, &none).encode().unwrap();
        assert_eq!(b.len(), 512 * 3);
        assert_eq!(b[156], b'x');
        let records = String::from_utf8_lossy(&b[512..1024]);
        assert!(records.starts_with(&format!("310 path={long}\n")), "{records}");

        let utf8 = "caf\u{e9}";
        let b = header(utf8, &none).encode().unwrap();
        assert!(String::from_utf8_lossy(&b[512..1024]).starts_with("14 path=caf\u{e9}\n"));
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), b"b".to_vec());
        assert_eq!(pax_records(&m), b"6 a=b\n");
        m.insert("SCHILY.xattr.user.k".to_string(), vec![b'v'; 90]);
        let r = pax_records(&m);
        let first = String::from_utf8_lossy(&r);
        assert!(first.starts_with("115 SCHILY.xattr.user.k="), "{first}");
        assert_eq!(first.split('\n').next().unwrap().len() + 1, 115);
    }

    #[test]
    fn large_and_negative_values_use_pax() {
        let none = BTreeMap::new();
        let mut h = header("f", &none);
        h.uid = 3_000_000;
        h.mtime = -5;
        h.size = 10 << 30;
        let b = h.encode().unwrap();
        let records = String::from_utf8_lossy(&b[512..1024]).to_string();
        assert!(records.contains(" mtime=-5\n") && records.contains(" uid=3000000\n"));
        assert!(records.contains(" size=10737418240\n"));
        let mut bad = BTreeMap::new();
        bad.insert("user.a=b".to_string(), vec![]);
        assert!(header("f", &bad).encode().is_err());
    }
}
