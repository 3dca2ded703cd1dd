//! Linux capabilities: the Docker default set a RUN keeps, and the calls to apply it.

use std::io;

use super::sys::{cvt, cvt_long};

/// Capabilities Docker gives a container by default (and so a build step): `CHOWN`,
/// `DAC_OVERRIDE`, `FOWNER`, `FSETID`, `KILL`, `SETGID`, `SETUID`, `SETPCAP`,
/// `NET_BIND_SERVICE`, `NET_RAW`, `SYS_CHROOT`, `MKNOD`, `AUDIT_WRITE`, `SETFCAP`.
pub const DOCKER_DEFAULT_CAPS: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// `CAP_SYS_ADMIN`.
pub(crate) const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_SYS_CHROOT`.
pub(crate) const CAP_SYS_CHROOT: u32 = 18;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The highest capability number this kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The effective capability set of this process, as a bit mask.
pub(crate) fn effective() -> io::Result<u64> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: valid header and a two-element data array, as version 3 requires.
    cvt_long(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// True when this process has `cap` in its effective set.
pub(crate) fn has_effective(cap: u32) -> bool {
    effective().map(|set| set & (1u64 << cap) != 0).unwrap_or(false)
}

/// Removes every capability outside `keep` from the bounding set (needs `CAP_SETPCAP`).
pub(crate) fn drop_bounding_except(keep: &[u32], last: u32) -> io::Result<()> {
    for cap in 0..=last {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: plain prctl.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r == -1 {
            let e = io::Error::last_os_error();
            // Capabilities the kernel does not know are not in any set.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Sets the effective and permitted sets to `caps` and empties the inheritable and ambient
/// sets.
pub(crate) fn set_exact(caps: &[u32]) -> io::Result<()> {
    let mut mask = 0u64;
    for &c in caps {
        mask |= 1u64 << c;
    }
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [
        CapData { effective: lo, permitted: lo, inheritable: 0 },
        CapData { effective: hi, permitted: hi, inheritable: 0 },
    ];
    // SAFETY: valid header and two-element data array.
    cvt_long(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })?;
    // SAFETY: plain prctl.
    cvt(unsafe {
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0)
    })
    .map(drop)
}
