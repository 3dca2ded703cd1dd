//! The network of `--network=none`: loopback, up.

use std::io;

use crate::sandbox::sys::cvt;

/// Brings up `lo` in the current network namespace.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain system call.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let result = (|| {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: valid ifreq pointer for SIOCGIFFLAGS.
        cvt(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: the flags member is the one SIOCGIFFLAGS filled.
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: valid ifreq pointer for SIOCSIFFLAGS.
        cvt(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) }).map(drop)
    })();
    crate::sandbox::sys::close(fd);
    result
}
