//! The memory allocator every trdscreen binary declares: `main.rs` and the tools under `examples/`
//! each write `#[global_allocator] static ALLOCATOR: trdscreen::allocator::Allocator = ...`.
//!
//! mimalloc, because glibc's malloc took about a third of `EvaluateBundle`'s CPU (perf): each call
//! allocates and frees a parsed Bundle of a few hundred strings, from whichever worker thread runs
//! it. With mimalloc the service answered 1.3 to 1.9 times as many calls per second as with glibc,
//! in alternating runs (docs/performance.md).

pub use mimalloc::MiMalloc as Allocator;

/// mimalloc.h's `mi_option_purge_delay`. mimalloc keeps the numbering of its options stable (retired
/// ones keep their slots), and this one is 15 in both v2 and v3.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS at once; `trdscreen batch` calls this. mimalloc v3 otherwise
/// holds it for a second, and the nightly job, which frees a bucket of records every few hundred
/// milliseconds on each core, then peaked at 504 to 546 MB for a million patients instead of 283
/// to 305 MB, growing with the run. The service keeps mimalloc's default: its memory is bounded by
/// its concurrency limit, and reuse is what it needs from the allocator.
///
/// An operator's `MIMALLOC_PURGE_DELAY` in the environment is left to stand.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores one integer option; mimalloc reads it when it next purges, and
    // it may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_setting_turns_mimallocs_purge_delay_to_zero() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        return_freed_memory_promptly();
        // SAFETY: reads one integer option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 0);
    }
}
