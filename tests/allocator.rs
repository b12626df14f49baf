//! The allocator settings of `easel::kernels::memory`, checked through the minor page faults of
//! the test's thread. A file of its own: the test must be alone in its process, or another
//! test's allocations land in the buffers it frees and releases.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use easel::kernels::memory::{keep_freed_memory, release_free_memory};

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

/// Reuse first, then release: the settings are process-wide and cannot be undone.
#[test]
fn freed_buffers_are_reused_until_released() {
    assert!(keep_freed_memory(), "glibc takes all three settings");
    // The first buffer grows the heap (fresh pages); every one after it reuses that memory.
    touch_fresh_buffer();
    let kept = (0..3).map(|_| touch_fresh_buffer()).max().unwrap();
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
        .min()
        .unwrap();
    assert!(
        released > PAGES / 2,
        "released pages are faulted in again: {released} faults of {PAGES} pages"
    );
}
