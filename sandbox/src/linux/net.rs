//! Network setup inside the sandbox's fresh network namespace: only the loopback interface
//! exists there, and it starts down. Bringing it up lets builders that talk to themselves
//! over 127.0.0.1 work; nothing can reach the host or the outside, and Landlock denies
//! TCP bind/connect on top.
//!
//! Runs in the cloned child, so it is written with raw, async-signal-safe syscalls only.

use std::os::raw::c_char;

/// Set `IFF_UP` on `lo`. Returns false (with errno set) on failure.
///
/// # Safety
/// Only for the namespace sandbox's child, in its own network namespace: elsewhere it
/// would bring up the host's loopback interface.
pub(crate) unsafe fn loopback_up() -> bool {
    // SAFETY: an all-zero `ifreq` is a valid value; it lives on this stack for both
    // `ioctl`s, and after SIOCGIFFLAGS the `ifru_flags` member of the union is the one the
    // kernel filled in. `sock` is the socket opened here. The interface changed is the
    // sandbox's own (the caller's contract).
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as c_char;
        }
        let ok = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0
        };
        libc::close(sock);
        ok
    }
}
