//! Delivery in the log's order on every node, sans-I/O: what a node does
//! with a room's messages as pub/sub brings them, when one was missed.
//!
//! Every message the append script publishes names the room's message
//! before it ([`Entry::prev`]). A node remembers the last id of the room
//! it delivered; a message whose `prev` is that id comes next and is
//! delivered at once. Any other one means something was missed (the
//! subscriber connection dropped, or Redis cut a slow subscriber off): it
//! waits, the node reads the stream after its last id
//! ([`Cluster::after_cmd`](super::Cluster::after_cmd)), delivers what the
//! read brings, then what waited. So each node delivers every message once,
//! in the log's order, whatever pub/sub lost or repeated.
//!
//! [`RoomOrder`] is that bookkeeping for one room: it is told what arrives
//! and answers what to deliver and whether to read the stream; the caller
//! does the reading (with [`Client::send`](super::client::Client::send),
//! never waiting) and reports the result.
//!
//! ```
//! use wschat::cluster::Entry;
//! use wschat::cluster::order::RoomOrder;
//! let e = |id, prev| Entry { id, prev, json: format!("{{\"id\":{id}}}") };
//! let mut room = RoomOrder::new(4);
//! let now = room.published(e(9, 4));
//! assert_eq!(now.deliver, vec![e(9, 4)]);
//! // 12 was missed: 15 waits, and the stream is read after 9.
//! let now = room.published(e(15, 12));
//! assert!(now.deliver.is_empty());
//! assert_eq!(now.fill_from, Some(9));
//! let now = room.filled(vec![e(12, 9), e(15, 12)], 100);
//! assert_eq!(now.deliver, vec![e(12, 9), e(15, 12)]);
//! assert_eq!((now.fill_from, room.last()), (None, 15));
//! ```

use super::Entry;
use std::collections::BTreeMap;

/// Most messages kept waiting for a gap to be filled. Past it they are
/// dropped: the stream holds them, and the fill reads them again.
pub const MAX_WAITING: usize = 10_000;

/// What to do after an arrival.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Deliver these to the room's members here, in this order.
    pub deliver: Vec<Entry>,
    /// Read the stream after this id (then call [`RoomOrder::filled`], or
    /// [`RoomOrder::fill_failed`] if the read failed).
    pub fill_from: Option<u64>,
    /// The stream no longer held some messages between the last delivered
    /// and the next (trimmed by length or age before this node read
    /// them): the members here will not see them.
    pub trimmed: bool,
}

/// One room's delivery order on one node: see the module's text.
#[derive(Debug, Clone)]
pub struct RoomOrder {
    last: u64,
    waiting: BTreeMap<u64, Entry>,
    filling: bool,
}

impl RoomOrder {
    /// Following a room whose messages up to `last` (0: none) this node
    /// has (delivered, or read as history when its first member came).
    pub fn new(last: u64) -> RoomOrder {
        RoomOrder {
            last,
            waiting: BTreeMap::new(),
            filling: false,
        }
    }

    /// The last id delivered.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Whether a read of the stream is outstanding.
    pub fn filling(&self) -> bool {
        self.filling
    }

    /// Messages waiting for a gap before them to be filled.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// A message of the room arrived by pub/sub.
    pub fn published(&mut self, entry: Entry) -> Outcome {
        let mut out = Outcome::default();
        if entry.id <= self.last || self.waiting.contains_key(&entry.id) {
            return out; // delivered already, or waiting already
        }
        if !self.filling && entry.prev == self.last {
            self.last = entry.id;
            out.deliver.push(entry);
            self.drain(&mut out);
            return out;
        }
        if self.waiting.len() < MAX_WAITING {
            self.waiting.insert(entry.id, entry);
        }
        if !self.filling {
            self.filling = true;
            out.fill_from = Some(self.last);
        }
        out
    }

    /// The subscription holds again after a re-dial: whatever was
    /// published meanwhile is only in the stream.
    pub fn resubscribed(&mut self) -> Outcome {
        let mut out = Outcome::default();
        if !self.filling {
            self.filling = true;
            out.fill_from = Some(self.last);
        }
        out
    }

    /// The read asked for by `fill_from` failed (the link went down): ask
    /// again once it is up.
    pub fn fill_failed(&mut self) -> Outcome {
        self.filling = true;
        Outcome {
            fill_from: Some(self.last),
            ..Outcome::default()
        }
    }

    /// The read asked for by `fill_from` answered `entries` (oldest first)
    /// with a `limit` of that many: a full answer may have more behind it.
    pub fn filled(&mut self, entries: Vec<Entry>, limit: usize) -> Outcome {
        let mut out = Outcome::default();
        let full = entries.len() >= limit;
        for entry in entries {
            if entry.id <= self.last {
                continue;
            }
            if entry.prev > self.last {
                out.trimmed = true;
            }
            self.last = entry.id;
            out.deliver.push(entry);
        }
        let last = self.last;
        self.waiting.retain(|&id, _| id > last);
        if full {
            self.filling = true;
            out.fill_from = Some(self.last);
            return out;
        }
        self.filling = false;
        self.drain(&mut out);
        if !self.waiting.is_empty() {
            // Another message was missed after what the read saw.
            self.filling = true;
            out.fill_from = Some(self.last);
        }
        out
    }

    /// Deliver what waited and now follows.
    fn drain(&mut self, out: &mut Outcome) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.get().prev != self.last {
                break;
            }
            let entry = entry.remove();
            self.last = entry.id;
            out.deliver.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize, seed: u64) -> Vec<Entry> {
        let mut rng = seed;
        let mut prev = 0;
        (0..n)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = prev + 1 + (rng >> 60); // other rooms' ids in between
                let e = Entry {
                    id,
                    prev,
                    json: id.to_string(),
                };
                prev = id;
                e
            })
            .collect()
    }

    /// Pub/sub that drops and repeats messages (never reorders: Redis
    /// delivers a connection's pushes in order), a stream that has them
    /// all, and fills answered at once or after more arrivals: every
    /// message is delivered once, in order.
    #[test]
    fn drops_and_repeats_are_delivered_once_in_order() {
        for seed in 1..300u64 {
            let all = chain(200, seed);
            let mut rng = seed.wrapping_mul(0x9E3779B97F4A7C15);
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut room = RoomOrder::new(0);
            let mut delivered = Vec::new();
            let mut pending: Option<u64> = None;
            let limit = 1 + (seed as usize % 7);
            let answer = |from: u64, all: &[Entry]| -> Vec<Entry> {
                all.iter()
                    .filter(|e| e.id > from)
                    .take(limit)
                    .cloned()
                    .collect()
            };
            for (i, e) in all.iter().enumerate() {
                let roll = next() % 10;
                let mut outcomes = Vec::new();
                if roll != 0 {
                    outcomes.push(room.published(e.clone()));
                }
                if roll == 1 {
                    outcomes.push(room.published(e.clone())); // repeated
                }
                if roll == 2 {
                    outcomes.push(room.resubscribed());
                }
                // A fill outstanding is answered now or later; the stream
                // then holds everything up to message i.
                if let Some(from) = pending
                    && next() % 3 != 0
                {
                    pending = None;
                    if next() % 5 == 0 {
                        outcomes.push(room.fill_failed());
                    } else {
                        outcomes.push(room.filled(answer(from, &all[..=i]), limit));
                    }
                }
                for o in outcomes {
                    assert!(!o.trimmed);
                    delivered.extend(o.deliver);
                    if let Some(from) = o.fill_from {
                        pending = Some(from);
                    }
                }
            }
            // Then every outstanding read is answered; a message dropped
            // last is learnt of at the next arrival or re-subscription.
            if pending.is_none() {
                pending = room.resubscribed().fill_from;
            }
            let mut rounds = 0;
            while let Some(from) = pending.take() {
                let o = room.filled(answer(from, &all), limit);
                delivered.extend(o.deliver);
                pending = o.fill_from;
                rounds += 1;
                assert!(rounds < 1000);
            }
            assert!(!room.filling());
            assert_eq!(delivered, all, "seed {seed}");
            assert_eq!(room.waiting(), 0);
        }
    }

    #[test]
    fn a_gap_trimmed_away_is_said() {
        let e = |id, prev| Entry {
            id,
            prev,
            json: String::new(),
        };
        let mut room = RoomOrder::new(3);
        assert_eq!(room.published(e(20, 10)).fill_from, Some(3));
        let o = room.filled(vec![e(20, 10)], 100);
        assert!(o.trimmed);
        assert_eq!(o.deliver, vec![e(20, 10)]);
        assert_eq!(room.last(), 20);
    }
}
