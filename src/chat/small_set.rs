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
//! costs less than a B-tree's node walk. A set of one (most users: one
//! room, one connection) holds its element in place, with no allocation.
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

/// An ordered set of few elements (see the module): none and one are held
/// in place, more in a sorted `Vec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallSet<T>(Repr<T>);

/// Most users are in one room with one connection: a single element is
/// kept in the set itself, which saves each of those sets an allocation
/// (32 bytes of the allocator's for an id or a room name's `String`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr<T> {
    One(T),
    /// Sorted, without repeats; never one element (that is `One`), empty
    /// only as the empty set.
    Many(Vec<T>),
}

impl<T> Default for SmallSet<T> {
    fn default() -> SmallSet<T> {
        SmallSet(Repr::Many(Vec::new()))
    }
}

impl<T: Ord> SmallSet<T> {
    /// An empty set (no allocation).
    pub fn new() -> SmallSet<T> {
        SmallSet::default()
    }

    /// Add `value`; `false` if it was there already.
    pub fn insert(&mut self, value: T) -> bool {
        let (repr, added) = match std::mem::take(&mut self.0) {
            Repr::Many(all) if all.is_empty() => (Repr::One(value), true),
            Repr::One(one) if one == value => (Repr::One(one), false),
            Repr::One(one) if one < value => (Repr::Many(vec![one, value]), true),
            Repr::One(one) => (Repr::Many(vec![value, one]), true),
            Repr::Many(mut all) => match all.binary_search(&value) {
                Ok(_) => (Repr::Many(all), false),
                Err(at) => {
                    if all.len() == all.capacity() {
                        // Half again of what it holds.
                        all.reserve_exact((all.len() / 2).max(1));
                    }
                    all.insert(at, value);
                    (Repr::Many(all), true)
                }
            },
        };
        self.0 = repr;
        added
    }

    /// Take `value` out; `false` if it was not there.
    pub fn remove<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        let (repr, removed) = match std::mem::take(&mut self.0) {
            Repr::One(one) if one.borrow() == value => (Repr::default(), true),
            Repr::Many(mut all) => match all.binary_search_by(|e| e.borrow().cmp(value)) {
                Ok(at) => {
                    all.remove(at);
                    (Repr::from_sorted(all), true)
                }
                Err(_) => (Repr::Many(all), false),
            },
            unchanged => (unchanged, false),
        };
        self.0 = repr;
        removed
    }

    /// Whether `value` is in the set.
    pub fn contains<Q: Ord + ?Sized>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.as_slice()
            .binary_search_by(|e| e.borrow().cmp(value))
            .is_ok()
    }
}

impl<T> Default for Repr<T> {
    fn default() -> Repr<T> {
        Repr::Many(Vec::new())
    }
}

impl<T> Repr<T> {
    /// `all`, sorted and without repeats, as it is kept: one element in
    /// place, more (or none) in the `Vec`.
    fn from_sorted(mut all: Vec<T>) -> Repr<T> {
        if all.len() == 1
            && let Some(one) = all.pop()
        {
            return Repr::One(one);
        }
        Repr::Many(all)
    }
}

impl<T> SmallSet<T> {
    /// The elements, in order.
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Many(all) => all,
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// How many elements it holds.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

impl<T: Ord> FromIterator<T> for SmallSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> SmallSet<T> {
        let mut all: Vec<T> = iter.into_iter().collect();
        all.sort();
        all.dedup();
        all.shrink_to_fit();
        SmallSet(Repr::from_sorted(all))
    }
}

impl<'a, T> IntoIterator for &'a SmallSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
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
    fn one_element_is_held_in_place_and_more_take_their_own_slots() {
        let mut set = SmallSet::new();
        set.insert(5u64);
        assert!(matches!(set.0, Repr::One(5)));
        set.insert(2);
        assert!(matches!(&set.0, Repr::Many(all) if all.capacity() == 2));
        assert!(set.remove(&5));
        assert!(matches!(set.0, Repr::One(2)));
        assert!(set.remove(&2));
        assert!(set.is_empty());
        let from: SmallSet<u64> = [3, 1, 3].into_iter().collect();
        assert_eq!(from.iter().copied().collect::<Vec<_>>(), [1, 3]);
        assert!(matches!(&from.0, Repr::Many(all) if all.capacity() == 2));
        let one: SmallSet<u64> = [4, 4].into_iter().collect();
        assert!(matches!(one.0, Repr::One(4)));
    }
}
