//! Work beside a realisation's critical path (writing the `.drv` files, reporting the
//! reused steps, refreshing the compile database) runs at the lowest scheduling
//! priority, so it takes what the steps leave. On a two-core machine, three such threads
//! took half the CPU from the preparation of an edit's first compile (its module
//! closure, input view and sandbox).

/// Lower the calling thread's scheduling priority to the lowest (nice 19). Linux only
/// (a thread's nice value is its own there); elsewhere, or if the call fails, nothing
/// changes: priority never matters for correctness. Without privileges a thread cannot
/// raise it again, so call it only on threads that end with their work.
pub fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` has no preconditions, and `setpriority` on the caller's own
    // thread id changes only that thread's nice value; its failure is harmless.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The thread that asks runs at nice 19 afterwards; the others are untouched.
    #[test]
    fn only_the_calling_thread_is_lowered() {
        let nice = || {
            // SAFETY: as above; `getpriority` only reads the caller's own thread's value.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        };
        let before = nice();
        let lowered = std::thread::spawn(move || {
            super::lower_this_threads_priority();
            nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, 19);
        assert_eq!(nice(), before);
    }
}
