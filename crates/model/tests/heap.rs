//! `model::heap::keep_freed_memory`: after it, a large allocation comes from the heap (no
//! mapping of its own, which glibc would unmap on free and the kernel fault in again on the
//! next one), and freed memory is reused.

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn large_allocations_come_from_the_heap_and_are_reused() {
    for var in ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"] {
        assert!(
            std::env::var_os(var).is_none(),
            "{var} is set: it overrides the policy this test checks; unset it"
        );
    }
    // SAFETY: mallinfo2 only reads glibc's allocator statistics.
    let mapped = || unsafe { libc::mallinfo2() }.hblkhd;
    let big = 48 << 20;
    // The default policy maps a 48 MiB block on its own.
    let before = mapped();
    let v = vec![1u8; big];
    assert!(
        mapped() >= before + big,
        "without the policy a 48 MiB block should have its own mapping"
    );
    drop(v);
    assert!(model::heap::keep_freed_memory(), "the policy was not set");
    let before = mapped();
    let v = vec![1u8; big];
    let p = v.as_ptr() as usize;
    assert_eq!(mapped(), before, "a 48 MiB block was mapped on its own");
    drop(v);
    // Freed, the same memory serves the next large allocation.
    let w = vec![2u8; big];
    assert_eq!(w.as_ptr() as usize, p, "freed memory was not reused");
}
