//! The embedded log's in-memory index: each room's recent messages and
//! the recent private messages under their session keys, within the memory
//! budget, and the ids deleted by moderation. It is how the log answers
//! `history`, `since` and the private pages without reading the disk
//! (what it let go is read back from the segments: `super`); it knows
//! nothing of files, and the log knows nothing of how it evicts.
//!
//! The index is the embedded log's, as a Redis stream is Redis's: the
//! chat keeps none of it (docs/architecture.md, "The store behind the
//! hub").

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::{ID_SLOT, KEEP_PRIVATE, MESSAGE_OVERHEAD, PRIVATE_OVERHEAD, VERSION_OVERHEAD};
use crate::memory::{Budget, Kept};

/// A room's recent messages, kept in memory.
#[derive(Debug, Default)]
pub(super) struct RoomLog {
    messages: VecDeque<(u64, Arc<str>)>,
    /// Every message of the room with an id at or above this is in
    /// `messages` (0: none was ever let go).
    complete_from: u64,
    /// The index's clock at the last use, for least-recently-used eviction.
    last_used: u64,
}

/// A private message kept for resume, under the *session keys* of its two
/// users (never their names: a name can be taken by someone else later).
/// A session key is the hex SHA-1 of the session's token
/// ([`digest_hex`](super::digest_hex)): the log holds keys, never tokens.
#[derive(Debug, Clone)]
pub(super) struct Private {
    id: u64,
    from: String,
    to: String,
    json: Arc<str>,
}

impl Private {
    /// Its bytes, as the memory budget counts them.
    fn cost(&self) -> usize {
        self.json.len() + self.from.len() + self.to.len() + PRIVATE_OVERHEAD
    }
}

/// The index. Owned by the store.
#[derive(Debug)]
pub(super) struct Index {
    /// Recent messages kept per room (`--history-keep`).
    keep_per_room: usize,
    rooms: HashMap<String, RoomLog>,
    /// Bumped at every use of a room's log, for least-recently-used
    /// eviction.
    clock: u64,
    privates: VecDeque<Private>,
    /// Every private message with an id at or above this is in `privates`
    /// (0 until one was evicted).
    privates_from: u64,
    /// The budget the kept messages count against (shared with the chat,
    /// the desk and `/metrics`).
    budget: Arc<Budget>,
    /// Messages deleted by moderation: never served again, from memory or
    /// from the log (their `deleted` tombstones rebuild this at start).
    deleted: HashSet<u64>,
    /// The latest version of room messages replaced since (edits,
    /// reactions; their `replaced` records rebuild this at start), with
    /// the clock at their last use: served instead of what the log first
    /// held, from memory or from the log. Counted in the histories' share
    /// of the budget; the least recently used go first, and the log serves
    /// what went (its latest `replaced` record: `super`).
    versions: HashMap<u64, (Arc<str>, u64)>,
    /// `versions` by last use (clock → message id), for eviction.
    versions_by_use: BTreeMap<u64, u64>,
    /// For every room message ever replaced (and not deleted), the id of
    /// its latest `replaced` record: a message without an entry is served
    /// as the log first held it, and one whose version memory let go is
    /// read back from that one record's segment, not searched for from the
    /// message to the log's end. Counted in the histories' share of the
    /// budget ([`ID_SLOT`] each), like `deleted`.
    replaced_in: HashMap<u64, u64>,
    /// How many of `privates` each session key is in.
    private_sessions: HashMap<String, usize>,
}

impl Index {
    /// An empty index keeping `keep_per_room` messages a room, within
    /// `budget`.
    pub(super) fn new(keep_per_room: usize, budget: Arc<Budget>) -> Index {
        Index {
            keep_per_room,
            rooms: HashMap::new(),
            clock: 0,
            privates: VecDeque::new(),
            privates_from: 0,
            budget,
            deleted: HashSet::new(),
            versions: HashMap::new(),
            versions_by_use: BTreeMap::new(),
            replaced_in: HashMap::new(),
            private_sessions: HashMap::new(),
        }
    }

    /// The budget the kept messages count against.
    pub(super) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The ids deleted by moderation.
    pub(super) fn deleted(&self) -> &HashSet<u64> {
        &self.deleted
    }

    /// Every private message with an id at or above this is kept (0: none
    /// was let go).
    pub(super) fn privates_from(&self) -> u64 {
        self.privates_from
    }

    /// The last `limit` kept messages of `room` below `before`, oldest
    /// first, and the id from which the room's messages are all kept (0:
    /// all of them).
    pub(super) fn room_page(
        &mut self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<Arc<str>>, u64) {
        self.clock += 1;
        match self.rooms.get_mut(room) {
            Some(log) => {
                log.last_used = self.clock;
                let list = &log.messages;
                let end = match before {
                    Some(b) => list.partition_point(|(id, _)| *id < b),
                    None => list.len(),
                };
                let start = end.saturating_sub(limit);
                let page: Vec<Arc<str>> = list.range(start..end).map(|(_, m)| m.clone()).collect();
                (page, log.complete_from)
            }
            None => (Vec::new(), 0),
        }
    }

    /// The kept messages after `since` of `room` (if any) and the private
    /// messages to or from key `session`, with their ids (not yet in one
    /// order), and the id from which the room's messages are all kept.
    pub(super) fn since(
        &mut self,
        room: Option<&str>,
        session: &str,
        since: u64,
    ) -> (Vec<(u64, Arc<str>)>, u64) {
        self.clock += 1;
        let mut out: Vec<(u64, Arc<str>)> = Vec::new();
        let mut room_from = 0;
        if let Some(log) = room.and_then(|room| self.rooms.get_mut(room)) {
            log.last_used = self.clock;
            let start = log.messages.partition_point(|(id, _)| *id <= since);
            out.extend(log.messages.range(start..).cloned());
            room_from = log.complete_from;
        }
        let start = self.privates.partition_point(|p| p.id <= since);
        out.extend(
            self.privates
                .range(start..)
                .filter(|p| p.from == session || p.to == session)
                .map(|p| (p.id, p.json.clone())),
        );
        (out, room_from)
    }

    /// The last `limit` kept private messages between keys `a` and `b`
    /// (either way) below `below`, oldest first.
    pub(super) fn private_page(
        &self,
        (a, b): (&str, &str),
        below: u64,
        limit: usize,
    ) -> VecDeque<Arc<str>> {
        let between = |p: &Private| (p.from == a && p.to == b) || (p.from == b && p.to == a);
        let mut page: VecDeque<Arc<str>> = VecDeque::new();
        for p in self.privates.iter().rev().filter(|p| p.id < below) {
            if page.len() == limit {
                break;
            }
            if between(p) {
                page.push_front(p.json.clone());
            }
        }
        page
    }

    /// The room whose kept messages hold `id`.
    pub(super) fn room_of(&self, id: u64) -> Option<String> {
        self.rooms
            .iter()
            .find(|(_, log)| log.messages.binary_search_by_key(&id, |(m, _)| *m).is_ok())
            .map(|(room, _)| room.clone())
    }

    /// Take refused messages out (they are at the back).
    pub(super) fn unindex(&mut self, ids: &[u64]) {
        for log in self.rooms.values_mut() {
            while let Some((_, json)) = log.messages.pop_back_if(|(id, _)| ids.contains(id)) {
                self.budget
                    .sub(Kept::Histories, json.len() + MESSAGE_OVERHEAD);
            }
        }
        while self.privates.back().is_some_and(|p| ids.contains(&p.id)) {
            if let Some(old) = self.privates.pop_back() {
                self.forget_keys(old);
            }
        }
    }

    /// Whether private messages are kept for resume under session `key`:
    /// a token whose key this is was handed out by this server (before a
    /// restart, perhaps), since only its holder could present it.
    pub(super) fn knows_session(&self, key: &str) -> bool {
        self.private_sessions.contains_key(key)
    }

    pub(super) fn keep_private(&mut self, id: u64, from: &str, to: &str, json: Arc<str>) {
        if self.privates.len() >= KEEP_PRIVATE {
            self.evict_private();
        }
        for key in [from, to] {
            *self.private_sessions.entry(key.to_string()).or_default() += 1;
        }
        let private = Private {
            id,
            from: from.to_string(),
            to: to.to_string(),
            json,
        };
        self.budget.add(Kept::Privates, private.cost());
        self.privates.push_back(private);
        while self.budget.must_evict(Kept::Privates) && self.evict_private() {}
    }

    /// Let the oldest private message go from memory (the log keeps it).
    fn evict_private(&mut self) -> bool {
        let Some(old) = self.privates.pop_front() else {
            return false;
        };
        self.privates_from = old.id + 1;
        self.budget.evicted(Kept::Privates, 1);
        self.forget_keys(old);
        true
    }

    /// A private message leaves memory: its bytes are no longer counted,
    /// and its session keys count one less.
    fn forget_keys(&mut self, old: Private) {
        self.budget.sub(Kept::Privates, old.cost());
        for key in [old.from, old.to] {
            if let Some(n) = self.private_sessions.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.private_sessions.remove(&key);
                }
            }
        }
    }

    /// Keep a room's message in memory: within `--history-keep` per room
    /// and the budget's share for histories, letting the least recently
    /// used rooms' oldest messages go first.
    pub(super) fn keep_chat(&mut self, room: &str, id: u64, json: Arc<str>) {
        self.clock += 1;
        let cost = json.len() + MESSAGE_OVERHEAD;
        let keep = self.keep_per_room.max(1);
        let log = match self.rooms.get_mut(room) {
            Some(log) => log,
            None => self.rooms.entry(room.to_string()).or_default(),
        };
        log.last_used = self.clock;
        if log.messages.len() >= keep
            && let Some((old, json)) = log.messages.pop_front()
        {
            log.complete_from = old + 1;
            self.budget
                .sub(Kept::Histories, json.len() + MESSAGE_OVERHEAD);
        }
        log.messages.push_back((id, json));
        self.budget.add(Kept::Histories, cost);
        if self.budget.must_evict(Kept::Histories) {
            self.evict_histories();
        }
    }

    /// Let the oldest messages of the least recently used rooms go from
    /// memory (the log keeps them) until histories are back within their
    /// share of the budget, or the whole is back under it, with a
    /// 1/32 margin so that eviction runs in batches, not per message.
    fn evict_histories(&mut self) {
        let limit = self.budget.limit();
        let share = self.budget.share(Kept::Histories);
        let done = |b: &Budget| {
            b.used(Kept::Histories) <= share - share / 32 || b.total() <= limit - limit / 32
        };
        let mut evicted = 0;
        while !done(&self.budget) {
            // The least recently used of the rooms' logs and the versions.
            let room = self
                .rooms
                .values()
                .filter(|log| !log.messages.is_empty())
                .map(|log| log.last_used)
                .min();
            let version = self.versions_by_use.keys().next().copied();
            if let Some(used) = version
                && room.is_none_or(|r| used < r)
            {
                self.evict_version(used);
                evicted += 1;
                continue;
            }
            let Some(log) = self
                .rooms
                .values_mut()
                .filter(|log| !log.messages.is_empty())
                .min_by_key(|log| log.last_used)
            else {
                break;
            };
            while let Some((id, json)) = log.messages.pop_front() {
                log.complete_from = id + 1;
                self.budget
                    .sub(Kept::Histories, json.len() + MESSAGE_OVERHEAD);
                evicted += 1;
                if done(&self.budget) {
                    break;
                }
            }
            // A room's index must not keep the room it had at its busiest.
            if log.messages.len() < log.messages.capacity() / 4 {
                log.messages.shrink_to_fit();
            }
        }
        self.budget.evicted(Kept::Histories, evicted);
    }

    /// Evict what is over the budget now (the hub calls it every tick, so
    /// that a kind that stopped growing still gives way to one that did).
    pub(super) fn trim(&mut self) {
        if self.budget.must_evict(Kept::Histories) {
            self.evict_histories();
        }
        while self.budget.must_evict(Kept::Privates) && self.evict_private() {}
    }

    /// Let the version last used at clock `used` go from memory (the log
    /// keeps its `replaced` record).
    fn evict_version(&mut self, used: u64) {
        let Some(id) = self.versions_by_use.remove(&used) else {
            return;
        };
        if let Some((json, _)) = self.versions.remove(&id) {
            self.budget
                .sub(Kept::Histories, json.len() + VERSION_OVERHEAD);
        }
    }

    /// Take message `id`'s version out of memory (not an eviction).
    fn drop_version(&mut self, id: u64) {
        if let Some((json, used)) = self.versions.remove(&id) {
            self.versions_by_use.remove(&used);
            self.budget
                .sub(Kept::Histories, json.len() + VERSION_OVERHEAD);
        }
    }

    /// Message `id`'s version, if memory holds it, marked as used now.
    fn use_version(&mut self, id: u64) -> Option<Arc<str>> {
        self.clock += 1;
        let (json, used) = self.versions.get_mut(&id)?;
        self.versions_by_use.remove(used);
        *used = self.clock;
        self.versions_by_use.insert(self.clock, id);
        Some(json.clone())
    }

    /// Room message `id` becomes `json` (a later version of it): in
    /// memory if it is there, and for what is read back from the log.
    pub(super) fn replace_message(&mut self, id: u64, json: Arc<str>) {
        if self.deleted.contains(&id) {
            return;
        }
        self.clock += 1;
        for log in self.rooms.values_mut() {
            if let Ok(i) = log.messages.binary_search_by_key(&id, |(m, _)| *m)
                && let Some((_, kept)) = log.messages.get_mut(i)
            {
                self.budget.sub(Kept::Histories, kept.len());
                self.budget.add(Kept::Histories, json.len());
                *kept = json.clone();
                break;
            }
        }
        self.drop_version(id);
        self.budget
            .add(Kept::Histories, json.len() + VERSION_OVERHEAD);
        self.versions.insert(id, (json, self.clock));
        self.versions_by_use.insert(self.clock, id);
        if self.budget.must_evict(Kept::Histories) {
            self.evict_histories();
        }
    }

    /// The version of message `id` to serve, if memory knows it: the
    /// latest one if it holds it, `json` (as the log holds it) if the
    /// message was never replaced, and `None` when a later version may be
    /// in the log only (memory let it go).
    pub(super) fn latest(&mut self, id: u64, json: Arc<str>) -> Option<Arc<str>> {
        match self.use_version(id) {
            Some(version) => Some(version),
            None if !self.replaced_in.contains_key(&id) => Some(json),
            None => None,
        }
    }

    /// How many versions memory keeps now (for tests and docs).
    #[cfg(test)]
    pub(super) fn versions_kept(&self) -> usize {
        self.versions.len()
    }

    /// Room message `id` from memory (its latest version), if kept.
    pub(super) fn kept_message(&mut self, id: u64) -> Option<Arc<str>> {
        if self.deleted.contains(&id) {
            return None;
        }
        let kept = self.rooms.values().find_map(|log| {
            let i = log.messages.binary_search_by_key(&id, |(m, _)| *m).ok()?;
            log.messages.get(i).map(|(_, m)| m.clone())
        });
        let version = self.use_version(id);
        kept.or(version)
    }

    /// Message `id`'s latest `replaced` record is `record` (see
    /// `replaced_in`).
    pub(super) fn note_replaced(&mut self, id: u64, record: u64) {
        if self.deleted.contains(&id) {
            return;
        }
        if self.replaced_in.insert(id, record).is_none() {
            self.budget.add(Kept::Histories, ID_SLOT);
        }
    }

    /// The id of message `id`'s latest `replaced` record, if it was ever
    /// replaced.
    pub(super) fn replaced_in(&self, id: u64) -> Option<u64> {
        self.replaced_in.get(&id).copied()
    }

    /// Take message `id` out of memory and mark it deleted.
    pub(super) fn forget_message(&mut self, id: u64) {
        if self.deleted.insert(id) {
            self.budget.add(Kept::Histories, ID_SLOT);
        }
        if self.replaced_in.remove(&id).is_some() {
            self.budget.sub(Kept::Histories, ID_SLOT);
        }
        self.drop_version(id);
        for log in self.rooms.values_mut() {
            if let Ok(i) = log.messages.binary_search_by_key(&id, |(m, _)| *m)
                && let Some((_, json)) = log.messages.remove(i)
            {
                self.budget
                    .sub(Kept::Histories, json.len() + MESSAGE_OVERHEAD);
                return;
            }
        }
    }

    /// The private conversations of key `me`, newest first: each peer's
    /// key, the latest message, and how many messages from the peer came
    /// after `read(peer)` (what `me` has read). From memory: a conversation
    /// whose every message memory let go is not listed.
    pub(super) fn private_peers(
        &self,
        me: &str,
        read: impl Fn(&str) -> u64,
    ) -> Vec<(String, Arc<str>, usize)> {
        let mut peers: Vec<(String, Arc<str>, usize)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for p in self.privates.iter().rev() {
            let peer = if p.from == me {
                p.to.as_str()
            } else if p.to == me {
                p.from.as_str()
            } else {
                continue;
            };
            let i = *index.entry(peer).or_insert_with(|| {
                peers.push((peer.to_string(), p.json.clone(), 0));
                peers.len() - 1
            });
            if p.from == peer && p.id > read(peer) {
                peers[i].2 += 1;
            }
        }
        peers
    }
}
