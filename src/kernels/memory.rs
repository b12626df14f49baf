//! How the C allocator treats the networks' large buffers while a job runs, and handing them back
//! when it is done.
//!
//! A UNet step at 512² allocates and frees gigabytes of activations, many larger than glibc's
//! mmap threshold (a GEGLU hidden state alone is 84 MB). glibc serves those with a fresh `mmap`
//! and unmaps them on free, so every step faults every page in again and the kernel zeroes it:
//! 5.9 million page faults and 12 s of system time in one `easel bench` run (2 threads), about a
//! tenth of the work. [`keep_freed_memory`] makes glibc serve every size from its heaps and never
//! shrink them, so freed buffers are reused as they are (1.3 million faults, most of them the
//! weights' first touch; UNet step −12 %, VAE decode −10 %, peak RSS +2.5 % in one run).
//! [`release_free_memory`] gives the free pages back once the work is over, so an idle desktop app
//! does not keep its peak.
//!
//! Only glibc needs this; elsewhere both are no-ops that return `false`.

/// Asks the allocator to keep freed memory for reuse: every size served from the heap, which is
/// never trimmed, and one heap for all threads. Process-wide; call it first thing in `main`, before
/// any thread exists, so the inference and rayon threads share the main heap (a per-thread heap
/// holds at most 64 MB, and glibc maps anything larger afresh however it is set). Returns whether
/// the allocator took all three settings.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets glibc's tuning parameters, under glibc's own lock, so it may
        // be called at any time from any thread. M_MMAP_MAX 0: large requests come from the heap
        // (glibc still maps memory to grow it). M_TRIM_THRESHOLD i32::MAX: the heap's free top is
        // kept unless it passes 2 GiB (−1 would mean "never", but glibc adds to the threshold
        // when it trims per-thread heaps, and −1 would wrap). M_ARENA_MAX 1: threads started
        // from now on use the main heap.
        let settings = unsafe {
            [
                libc::mallopt(libc::M_MMAP_MAX, 0),
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX),
                libc::mallopt(libc::M_ARENA_MAX, 1),
            ]
        };
        settings.iter().all(|&ok| ok == 1)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns the allocator's free pages to the system (the heap's top and whole free pages inside
/// it). Call when a run of work is over; the next job faults them in again. Returns whether any
/// memory was released.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` walks the allocator's free lists under its arena locks and only
        // releases pages no allocation uses; it is safe at any time from any thread.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults of the calling thread so far (field 10 of `/proc/thread-self/stat`).
    fn thread_minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs on Linux");
        // The command name (field 2) may hold spaces; the fields after its closing parenthesis
        // start at field 3.
        let after_name = &stat[stat.rfind(')').expect("stat has the name in parentheses") + 2..];
        after_name
            .split(' ')
            .nth(7)
            .and_then(|f| f.parse().ok())
            .expect("minflt is a number")
    }

    /// Below the 64 MB a per-thread heap holds, so the test means the same in whichever heap the
    /// test thread was given before the settings.
    const BYTES: usize = 32 << 20;
    const PAGES: u64 = (BYTES / 4096) as u64;

    /// Allocates `BYTES`, writes one value per page, frees it; returns the faults that took.
    fn touch_fresh_buffer() -> u64 {
        let before = thread_minor_faults();
        let mut buffer = vec![0u8; BYTES];
        for page in buffer.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&buffer);
        drop(buffer);
        thread_minor_faults() - before
    }

    /// One test, so the two settings are exercised in order within this thread (the lib's other
    /// tests may allocate in between, hence "fewest of three rounds").
    #[test]
    fn freed_buffers_are_reused_until_released() {
        assert!(keep_freed_memory(), "glibc takes all three settings");
        let kept = (0..3).map(|_| touch_fresh_buffer()).min().unwrap();
        assert!(
            kept < PAGES / 8,
            "a freed 32 MB buffer is reused without faulting its pages in again: {kept} faults of {PAGES} pages"
        );
        let released = (0..3)
            .map(|_| {
                // A freed buffer with a live block after it stays in the heap's free lists (the
                // top of a per-thread heap is only trimmed by its own frees): hand it back, then
                // fault it in again.
                let buffer = std::hint::black_box(vec![1u8; BYTES]);
                let guard = std::hint::black_box(vec![1u8; 1 << 16]);
                drop(buffer);
                assert!(release_free_memory(), "the 32 MB just freed is released");
                let faults = touch_fresh_buffer();
                drop(guard);
                faults
            })
            .max()
            .unwrap();
        assert!(
            released > PAGES / 2,
            "released pages are faulted in again: {released} faults of {PAGES} pages"
        );
    }
}
