//! Allocator settings for a process that streams large bodies (the sync worker).
//!
//! A download hands each chunk from the provider's response on to the thread that writes it, so
//! the HTTP client's read buffer is still shared when it reads the next bytes and takes a fresh
//! buffer of some hundreds of KiB instead of reusing its own. glibc hands such memory back to
//! the kernel when it is freed: a buffer above its mmap threshold (128 KiB at first, raised to
//! the largest freed mapping) is unmapped, and the free memory at the top of a heap is trimmed
//! past twice that. The next buffer then faults in and zeroes new pages: a profile of a 1 GiB
//! download put about a quarter of its extra CPU over a plain copy there (BENCHMARKS.md, sync
//! worker). Fixed thresholds keep a few MiB of freed memory for the next buffers, at the cost of
//! up to [`TRIM_THRESHOLD`] of retained memory per heap; setting them also ends glibc's own
//! adjustment, so an allocation above [`MMAP_THRESHOLD`] is always a mapping of its own.

/// Allocations up to this size come from the heaps, where their memory is reused when freed.
pub const MMAP_THRESHOLD: usize = 4 * 1024 * 1024;

/// Free memory at the top of a heap is handed back to the kernel only above this size.
pub const TRIM_THRESHOLD: usize = 8 * 1024 * 1024;

/// Applies [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] to this process's allocator: `true` when
/// glibc took both, `false` where there is no glibc (nothing to tune: other allocators keep
/// freed memory on their own terms). Call it once, at the start of `main`.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let as_int = |v: usize| libc::c_int::try_from(v).expect("the thresholds fit a C int");
        // SAFETY: mallopt sets glibc's allocation parameters under the allocator's own lock (it
        // may consolidate free chunks first, as any allocation can); it hands out and invalidates
        // no memory of ours, and both values are within glibc's limits (the mmap threshold at
        // most 32 MiB on 64-bit). It returns 1 when it took the value.
        let took = unsafe {
            (
                libc::mallopt(libc::M_MMAP_THRESHOLD, as_int(MMAP_THRESHOLD)),
                libc::mallopt(libc::M_TRIM_THRESHOLD, as_int(TRIM_THRESHOLD)),
            )
        };
        took == (1, 1)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_both_thresholds() {
        // Act
        let took = super::keep_freed_memory();

        // Assert
        assert!(took, "glibc refused one of the thresholds");
    }
}
