//! [`CountingAlloc`]: a global allocator that counts bytes, for
//! bytes-per-timer and peak-vs-steady measurements.
//!
//! This is the only module of the crate with `unsafe` code: implementing
//! [`GlobalAlloc`] requires it. Every block forwards to [`System`] unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering::Relaxed};

/// A [`GlobalAlloc`] that forwards to [`System`] and counts what it does.
///
/// # Usage
///
/// ```
/// use herald_benches::CountingAlloc;
///
/// #[global_allocator]
/// static ALLOC: CountingAlloc = CountingAlloc::new();
///
/// # fn main() {
/// let (v, delta) = ALLOC.measure(|| vec![0_u64; 1 << 20]);
/// assert!(delta.bytes >= 8 << 20);
/// assert!(delta.peak >= delta.bytes);
/// # drop(v);
/// # }
/// ```
///
/// # What is counted
///
/// While counting is enabled (the default; see
/// [`set_enabled`](Self::set_enabled)) every `alloc`, `alloc_zeroed`,
/// `realloc` and `dealloc` updates:
///
/// * `current`: net bytes allocated. If counting was never disabled this is
///   the live heap size; otherwise it is only meaningful as a difference
///   between two [snapshots](Self::snapshot) taken while enabled, which is
///   what [`measure`](Self::measure) does.
/// * `peak`: the largest `current` since the last
///   [`reset_peak`](Self::reset_peak). A `realloc` is counted as "allocate
///   the new block, then free the old one", so it momentarily counts both
///   blocks: true for a copying realloc, an over-estimate when the system
///   can grow the block in place (large blocks on Linux use `mremap`).
/// * `allocations`: calls to `alloc`, `alloc_zeroed` and `realloc`.
///
/// Counters use relaxed atomics, so they are exact for a single thread and
/// consistent (though interleaved) across threads. Disabling counting turns
/// the allocator into a plain forwarder with one relaxed load of overhead, so
/// timed regions can run without the atomic read-modify-writes.
#[derive(Debug)]
pub struct CountingAlloc {
    enabled: AtomicBool,
    current: AtomicIsize,
    peak: AtomicIsize,
    allocations: AtomicU64,
}

/// The counters of a [`CountingAlloc`] at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AllocSnapshot {
    /// Net bytes allocated while counting was enabled.
    pub current: isize,
    /// The largest `current` since the last [`CountingAlloc::reset_peak`].
    pub peak: isize,
    /// Number of allocating calls (`alloc`, `alloc_zeroed`, `realloc`).
    pub allocations: u64,
}

/// What a closure allocated, as measured by [`CountingAlloc::measure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AllocDelta {
    /// Bytes still allocated when the closure returned (net of frees),
    /// including the closure's return value.
    pub bytes: isize,
    /// The highest net allocation reached while the closure ran, relative to
    /// its start.
    pub peak: isize,
    /// Number of allocating calls the closure made.
    pub allocations: u64,
}

impl CountingAlloc {
    /// A counting allocator with all counters at zero, counting enabled.
    pub const fn new() -> Self {
        Self {
            enabled: AtomicBool::new(true),
            current: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
            allocations: AtomicU64::new(0),
        }
    }

    /// Turns counting on or off. While off, the allocator only forwards to
    /// [`System`]; blocks allocated or freed meanwhile are never counted.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Relaxed);
    }

    /// Whether counting is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// The current counters.
    pub fn snapshot(&self) -> AllocSnapshot {
        AllocSnapshot {
            current: self.current.load(Relaxed),
            peak: self.peak.load(Relaxed),
            allocations: self.allocations.load(Relaxed),
        }
    }

    /// Sets `peak` to `current`, starting a new peak window.
    pub fn reset_peak(&self) {
        self.peak.store(self.current.load(Relaxed), Relaxed);
    }

    /// Runs `f` with counting enabled and reports what it allocated, then
    /// restores the previous enabled state. Resets the peak.
    pub fn measure<R>(&self, f: impl FnOnce() -> R) -> (R, AllocDelta) {
        let was_enabled = self.enabled.swap(true, Relaxed);
        self.reset_peak();
        let before = self.snapshot();
        let r = f();
        let after = self.snapshot();
        self.set_enabled(was_enabled);
        let delta = AllocDelta {
            bytes: after.current - before.current,
            peak: after.peak - before.current,
            allocations: after.allocations - before.allocations,
        };
        (r, delta)
    }

    #[inline]
    fn on_alloc(&self, size: usize) {
        if self.enabled.load(Relaxed) {
            self.allocations.fetch_add(1, Relaxed);
            let now = self.current.fetch_add(size as isize, Relaxed) + size as isize;
            self.peak.fetch_max(now, Relaxed);
        }
    }

    #[inline]
    fn on_dealloc(&self, size: usize) {
        if self.enabled.load(Relaxed) {
            self.current.fetch_sub(size as isize, Relaxed);
        }
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY (impl): every method forwards to `System` with the caller's
// arguments unchanged, so `System`'s guarantees are ours; the counting only
// touches atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours; `layout` comes from our caller.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours; `layout` comes from our caller.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` was allocated by this allocator
        // (hence by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        self.on_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller guarantees `ptr` was allocated by this allocator
        // (hence by `System`) with `layout`, and that `new_size` is valid.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count as "allocate new, free old" (see the type docs on peak).
            self.on_alloc(new_size);
            self.on_dealloc(layout.size());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOC: CountingAlloc = CountingAlloc::new();

    // Other tests run concurrently on other threads, so sizes are large
    // (zeroed, hence never touched: cheap) and assertions leave `SLACK` for
    // their allocations and frees.
    #[test]
    fn counts_bytes_peak_and_allocations() {
        const MIB: isize = 1 << 20;
        const SLACK: isize = 32 * MIB;
        let (v, d) = ALLOC.measure(|| {
            let big = vec![0_u8; 1 << 30];
            drop(big);
            vec![0_u8; 256 << 20]
        });
        assert!((d.bytes - 256 * MIB).abs() < SLACK, "{d:?}");
        assert!(d.peak > 1024 * MIB - SLACK, "{d:?}");
        assert!(d.allocations >= 2, "{d:?}");
        drop(v);

        // realloc counts the new block before freeing the old one.
        let mut v: Vec<u8> = Vec::with_capacity(64 << 20);
        let (_, d) = ALLOC.measure(|| v.reserve_exact(256 << 20));
        assert!((d.bytes - 192 * MIB).abs() < SLACK, "{d:?}");
        assert!(d.peak > 256 * MIB - SLACK, "{d:?}");
        drop(v);

        // Disabled: nothing is counted.
        ALLOC.set_enabled(false);
        let before = ALLOC.snapshot();
        let v = vec![0_u8; 256 << 20];
        let after = ALLOC.snapshot();
        drop(v);
        ALLOC.set_enabled(true);
        assert!((after.current - before.current).abs() < SLACK);
    }
}

/// What glibc's allocator holds, from `mallinfo2(3)`, over every arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct MallocStats {
    /// Bytes in blocks the program has allocated and not freed (small
    /// blocks in the arenas plus blocks mapped on their own).
    pub(crate) in_use: u64,
    /// Bytes freed by the program that malloc keeps in its arenas (not
    /// given back to the system: still resident if they were touched).
    pub(crate) free_kept: u64,
}

/// glibc's `struct mallinfo2` (all fields `size_t`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
struct Mallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn mallinfo2() -> Mallinfo2;
}

/// glibc malloc's bytes in use and freed-but-kept now (`None` on other
/// platforms). Walks every arena under its lock: call it between phases,
/// not in a loop.
pub(crate) fn malloc_stats() -> Option<MallocStats> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` (glibc >= 2.33) takes no argument and returns
        // a plain struct by value; it only reads the allocator's state.
        let m = unsafe { mallinfo2() };
        Some(MallocStats {
            in_use: (m.uordblks + m.hblkhd) as u64,
            free_kept: m.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}
