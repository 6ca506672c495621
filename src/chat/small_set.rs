//! [`SmallSet`]: an ordered set kept as a sorted `Vec`, for the sets every
//! user has and that hold one or two elements (its rooms, its open
//! connections).
//!
//! Why not `BTreeSet`: its first element allocates a whole leaf node, room
//! for eleven: 288 bytes for one room name, 112 for one connection id. With
//! thousands of idle users those two sets were about a sixth of each user's
//! memory (docs/performance.md). Here one element costs its own size, and
//! the set grows by half of what it holds; lookups are binary searches, and
//! inserting or removing moves the elements after it, which for a handful
//! costs less than a B-tree's node walk.
//!
//! ```
//! use wschat::chat::small_set::SmallSet;
//! let mut rooms: SmallSet<String> = ["lobby".to_string()].into_iter().collect();
//! assert!(rooms.insert("dev".to_string()));
//! assert!(!rooms.insert("dev".to_string()));
//! assert!(rooms.contains("lobby"));
//! assert_eq!(rooms.iter().collect::<Vec<_>>(), ["dev", "lobby"]);
//! assert!(rooms.remove("lobby"));
//! assert_eq!(rooms.len(), 1);
//! ```

use std::borrow::Borrow;

/// An ordered set of few elements, kept sorted in a `Vec` (see the module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallSet<T>(Vec<T>);

impl<T> Default for SmallSet<T> {
    fn default() -> SmallSet<T> {
        SmallSet(Vec::new())
    }
}

impl<T: Ord> SmallSet<T> {
    /// An empty set (no allocation).
    pub fn new() -> SmallSet<T> {
        SmallSet(Vec::new())
    }

    /// Add `value`; `false` if it was there already.
    pub fn insert(&mut self, value: T) -> bool {
        match self.0.binary_search(&value) {
            Ok(_) => false,
            Err(at) => {
                if self.0.len() == self.0.capacity() {
                    // One slot for the first, then half again: a set of
                    // one holds exactly one.
                    self.0.reserve_exact((self.0.len() / 2).max(1));
                }
                self.0.insert(at, value);
                true
            }
        }
    }

    /// Take `value` out; `false` if it was not there.
    pub fn remove<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        match self.find(value) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `value` is in the set.
    pub fn contains<Q: Ord + ?Sized>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.find(value).is_ok()
    }

    fn find<Q: Ord + ?Sized>(&self, value: &Q) -> Result<usize, usize>
    where
        T: Borrow<Q>,
    {
        self.0.binary_search_by(|e| e.borrow().cmp(value))
    }
}

impl<T> SmallSet<T> {
    /// The elements, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// How many elements it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Ord> FromIterator<T> for SmallSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> SmallSet<T> {
        let mut all: Vec<T> = iter.into_iter().collect();
        all.sort();
        all.dedup();
        all.shrink_to_fit();
        SmallSet(all)
    }
}

impl<'a, T> IntoIterator for &'a SmallSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn behaves_as_a_btreeset_through_any_sequence_of_changes() {
        let mut small = SmallSet::new();
        let mut tree = BTreeSet::new();
        // A fixed pseudo-random walk of inserts and removes over 0..20.
        let mut x: u32 = 7;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let v = (x >> 16) % 20;
            if x & 1 == 0 {
                assert_eq!(small.insert(v), tree.insert(v));
            } else {
                assert_eq!(small.remove(&v), tree.remove(&v));
            }
            assert_eq!(small.len(), tree.len());
            assert!(small.iter().eq(tree.iter()));
            assert_eq!(small.contains(&v), tree.contains(&v));
        }
    }

    #[test]
    fn one_element_takes_one_slot() {
        let mut set = SmallSet::new();
        set.insert(5u64);
        assert_eq!(set.0.capacity(), 1);
        let from: SmallSet<u64> = [3, 1, 3].into_iter().collect();
        assert_eq!(from.iter().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(from.0.capacity(), 2);
    }
}
