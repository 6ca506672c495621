//! The memory budget: one ceiling (`--memory-budget`) on the bytes kept in
//! memory that grow with users' input — room histories, private messages,
//! the desk's conversations, transcripts and visitors' contact records, and
//! chat sessions.
//!
//! Each structure counts its own bytes here (an estimate: the bytes of the
//! stored JSON or token plus a fixed overhead per entry for the allocation,
//! the index slot and the map entry, measured against RSS in
//! tests/memory.rs). Each kind has a *share* of the budget. A kind may grow
//! past its share while the total stays under the budget; once the total is
//! over, every kind above its share evicts its least recently used entries
//! until it is back at its share or the total is back under the budget.
//! Each kind checks when it grows, the store at the end of every hub turn,
//! and all of them at every hub tick, so the total never stays over the
//! budget for longer than a tick (half a second), and a busy kind is never
//! squeezed below its share by another.
//!
//! What is evicted is only forgotten by memory: the log still holds it, and
//! history pages and resumes read it from there (docs/storage.md).
//!
//! ```
//! use wschat::memory::{Budget, Kept};
//! let budget = Budget::new(1000);
//! budget.add(Kept::Histories, 900);
//! assert!(!budget.must_evict(Kept::Histories));
//! budget.add(Kept::Desk, 150); // the total is over 1000 now
//! assert!(budget.must_evict(Kept::Histories)); // 900 is over its 50 %
//! assert!(!budget.must_evict(Kept::Desk)); // 150 is under its 25 %
//! budget.sub(Kept::Histories, 400);
//! assert!(!budget.must_evict(Kept::Histories)); // the total is 650
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The default budget: 128 MiB. On a 512 MiB machine that leaves room for
/// the operating system and the connections at the default cap (10,000
/// connections at about 12 KiB each, plus their kernel socket buffers); see
/// docs/security.md, "Memory".
pub const DEFAULT_MEMORY_BUDGET: usize = 128 * 1024 * 1024;

/// The kinds of kept data, each with its share of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Rooms' recent messages (history pages and resume).
    Histories,
    /// Private messages kept for resume.
    Privates,
    /// The support desk's conversations, their transcripts, and the
    /// visitors' sessions with their contact records.
    Desk,
    /// Chat sessions (the tokens that let a user come back).
    Sessions,
}

impl Kept {
    /// Every kind, in the order `/metrics` lists them.
    pub const ALL: [Kept; 4] = [Kept::Histories, Kept::Privates, Kept::Desk, Kept::Sessions];

    /// Its share of the budget, in percent.
    pub fn share_percent(self) -> usize {
        match self {
            Kept::Histories => 50,
            Kept::Privates => 15,
            Kept::Desk => 25,
            Kept::Sessions => 10,
        }
    }

    /// Its name in `/metrics` (`kept="…"`) and in docs.
    pub fn name(self) -> &'static str {
        match self {
            Kept::Histories => "histories",
            Kept::Privates => "privates",
            Kept::Desk => "desk",
            Kept::Sessions => "sessions",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Bytes in use per kind, against one limit. Shared by the store, the
/// chat, the desk (all on the hub thread) and `/metrics` (any thread), so
/// the counters are atomics.
#[derive(Debug)]
pub struct Budget {
    limit: AtomicUsize,
    used: [AtomicUsize; 4],
    evictions: [AtomicU64; 4],
}

impl Default for Budget {
    /// A budget of [`DEFAULT_MEMORY_BUDGET`].
    fn default() -> Budget {
        Budget::new(DEFAULT_MEMORY_BUDGET)
    }
}

impl Budget {
    /// A budget of `limit` bytes (0: no limit).
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit: AtomicUsize::new(if limit == 0 { usize::MAX } else { limit }),
            used: Default::default(),
            evictions: Default::default(),
        }
    }

    /// The limit in bytes (`usize::MAX` for none).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// `kind`'s share of the limit, in bytes.
    pub fn share(&self, kind: Kept) -> usize {
        self.limit() / 100 * kind.share_percent()
    }

    /// Count `bytes` more kept by `kind`.
    pub fn add(&self, kind: Kept, bytes: usize) {
        self.used[kind.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count `bytes` fewer kept by `kind`.
    pub fn sub(&self, kind: Kept, bytes: usize) {
        // Saturating: a miscount must not wrap into "everything is full".
        let _ = self.used[kind.index()].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
            Some(u.saturating_sub(bytes))
        });
    }

    /// Count an entry of `kind` evicted (`n` of them).
    pub fn evicted(&self, kind: Kept, n: u64) {
        self.evictions[kind.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes kept by `kind` now.
    pub fn used(&self, kind: Kept) -> usize {
        self.used[kind.index()].load(Ordering::Relaxed)
    }

    /// Entries of `kind` evicted so far.
    pub fn evictions(&self, kind: Kept) -> u64 {
        self.evictions[kind.index()].load(Ordering::Relaxed)
    }

    /// Bytes kept by every kind together.
    pub fn total(&self) -> usize {
        Kept::ALL.iter().map(|&k| self.used(k)).sum()
    }

    /// Whether `kind` must evict now: the total is over the limit and
    /// `kind` is over its share.
    pub fn must_evict(&self, kind: Kept) -> bool {
        self.used(kind) > self.share(kind) && self.total() > self.limit()
    }
}
