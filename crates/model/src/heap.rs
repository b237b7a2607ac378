//! The process's heap policy for training-sized tensors.
//!
//! glibc serves every allocation of at least its mmap threshold (at most 32 MiB) with a fresh
//! `mmap` and unmaps it on free, so each large tensor of a training step (a logits chunk, a
//! gradient, a packed operand) is faulted in and zeroed page by page by the kernel on every
//! use: about a tenth of `bench train`'s CPU time (bench/results/train-profile.md).
//! [`keep_freed_memory`] makes glibc take all memory from its heaps and keep what is freed for
//! the next allocation instead.

/// Sets glibc's `M_MMAP_MAX` to 0 (no allocation gets its own mapping) and `M_TRIM_THRESHOLD`
/// to its maximum (freed memory stays in the heap), unless the environment sets either
/// (`MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_`). Peak RSS grows by a little fragmentation
/// (3-7% in `bench train`: +0.12 GiB at 2 × 512, +0.14-0.16 GiB at 8 × 512 with f32
/// products), and memory freed after a peak is not given back to the OS.
/// A worker thread's allocation over 64 MiB (the largest heap of a thread arena) still gets a
/// mapping of its own. Returns whether the policy was set (glibc on Linux only). Call it
/// before the work starts.
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("MALLOC_MMAP_MAX_").is_some()
        || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
    {
        return false;
    }
    set_policy()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_policy() -> bool {
    // SAFETY: mallopt only changes glibc's allocator parameters; both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_policy() -> bool {
    false
}
