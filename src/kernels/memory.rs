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
//! Only glibc needs this; elsewhere both are no-ops that return `false`. `tests/allocator.rs`
//! checks both through the page faults of its thread, alone in its process.

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

/// Elements from which [`zeroed`] clears a buffer on every thread (4 MiB of f32).
const PARALLEL_ZERO_FROM: usize = 1 << 20;

/// A buffer of `len` zeros, cleared in parallel when it is large. With freed memory kept for
/// reuse ([`keep_freed_memory`]), `vec![0.0; len]` clears a reused block on the calling thread
/// alone, while the other cores wait for the op it feeds: 4–6 % of a VAE decode, measured by perf.
pub fn zeroed(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    if len < PARALLEL_ZERO_FROM {
        return vec![0.0; len];
    }
    let mut buffer: Vec<f32> = Vec::with_capacity(len);
    buffer.spare_capacity_mut()[..len]
        .par_chunks_mut(PARALLEL_ZERO_FROM / 16)
        .for_each(|chunk| chunk.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the capacity is at least `len`, and the loop above initialised elements 0..len.
    unsafe { buffer.set_len(len) };
    buffer
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_buffers_hold_zeros_at_every_size() {
        for len in [
            0,
            1,
            17,
            super::PARALLEL_ZERO_FROM - 1,
            super::PARALLEL_ZERO_FROM,
            3 * super::PARALLEL_ZERO_FROM + 5,
        ] {
            // Dirty the allocator's free memory first, so a reused block would show.
            drop(vec![7.0f32; len]);
            let buffer = super::zeroed(len);
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&v| v == 0.0), "{len}");
        }
    }
}
