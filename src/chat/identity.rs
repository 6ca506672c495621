//! Who the chat's users are, across connections and restarts.
//!
//! A user is an *identity*: created the first time someone connects without
//! a known session (anonymous) or with a token for a `sub` never seen
//! (verified), and written to the log as an `identity` record whose id is
//! the user's id. What changes later is in the records the chat writes
//! anyway: `joined` and `left` (the user's name and room, when last seen),
//! `renamed`, and `ban`. At start [`Identities::load`] reads those back, so
//! a session or a `sub` names the same user, with the same name and room,
//! after a restart, until it has gone unused for `--session-ttl`.
//!
//! The log keeps a session's *digest* (SHA-1 of the token), never the
//! token: only its holder can present it again.

use std::collections::{BTreeMap, HashMap};

use super::small_set::SmallSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth::Claims;
use crate::clock::now_ms;
use crate::hub::ConnId;
use crate::hub::log::{Log, Record};
use crate::memory::{Budget, Kept};
use crate::store::digest_hex;

use super::wire::Entry;
use super::{LOBBY, MAX_NAME_CHARS, valid_name};

/// A user's id: the id of its `identity` record, so unique for the life of
/// the data directory.
pub type UserId = u64;

/// Most identities kept in memory (and within the sessions' share of the
/// memory budget); the least recently seen offline ones go first.
pub const MAX_IDENTITIES: usize = 100_000;

/// What one identity costs in memory beyond its strings: the user record
/// and its entries in the lookup maps.
pub const IDENTITY_OVERHEAD: usize = 320;

/// What one read marker (a conversation's or a room's) costs in memory
/// beyond a room's name: its map entry and the hash table's spare room.
pub const READ_MARKER_OVERHEAD: usize = 48;

/// The key private messages are kept under for `user` (see
/// [`Store::append_private`](crate::store::Store::append_private)): its id,
/// never a name or a token.
pub fn key(user: UserId) -> String {
    format!("u{user}")
}

/// One identity.
#[derive(Debug)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its display name, unique among the identities the chat knows.
    pub name: String,
    /// Its current room: where plain text goes (it is in, or was in when
    /// last seen).
    pub room: String,
    /// Every room it is a member of, the current one included (kept
    /// across reconnects and restarts: `memberships` records).
    pub rooms: SmallSet<String>,
    /// Whether a `memberships` record has said where it is (then `joined`
    /// records no longer move its current room).
    pub rooms_recorded: bool,
    /// The digest of its session token (anonymous users), shared with the
    /// map that finds the user by it (one copy, not two).
    pub session: Option<Arc<str>>,
    /// The site's id for it (verified users).
    pub sub: Option<String>,
    /// Its name comes from its token and cannot be changed here.
    pub name_fixed: bool,
    /// Its token says `"role":"admin"`.
    pub admin: bool,
    /// Its open connections.
    pub conns: SmallSet<ConnId>,
    /// When it last sent a typing notice.
    pub last_typing: Option<Instant>,
    /// When it was last seen (a connection opening or closing), epoch ms.
    pub last_seen: u64,
    /// The id of the `left` record of its last departure: the private
    /// messages after it are what it missed while away.
    pub left_at: u64,
    /// The last private message read in each conversation, by peer
    /// (`read` records).
    pub read: Marks<UserId>,
    /// The last message read in each room (`room_read` records).
    pub room_read: Marks<String>,
    /// Bytes as the memory budget counted them.
    bytes: usize,
}

impl User {
    /// The key of its private messages.
    pub fn key(&self) -> String {
        key(self.id)
    }

    fn cost(&self) -> usize {
        self.name.len()
            + self.room.len()
            + self.rooms.iter().map(String::len).sum::<usize>()
            + self.session.as_deref().map_or(0, str::len)
            + self.sub.as_ref().map_or(0, String::len)
            + self.read.len() * READ_MARKER_OVERHEAD
            + self
                .room_read
                .keys()
                .map(|room| room.len() + READ_MARKER_OVERHEAD)
                .sum::<usize>()
            + IDENTITY_OVERHEAD
    }
}

/// Read markers (the last message read, by peer or by room). Most users
/// have none: the map is made with the first, so a user without any holds
/// 8 bytes here instead of an empty `HashMap`'s 48 (there are two per
/// user, and thousands of idle users).
#[derive(Debug, Clone)]
// The box is the point: `Option<HashMap>` would be as big as the map.
#[allow(clippy::box_collection)]
pub struct Marks<K>(Option<Box<HashMap<K, u64>>>);

impl<K> Default for Marks<K> {
    fn default() -> Marks<K> {
        Marks(None)
    }
}

impl<K: std::hash::Hash + Eq> Marks<K> {
    /// The marker for `key`, if there is one.
    pub fn get<Q>(&self, key: &Q) -> Option<u64>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.as_ref().and_then(|m| m.get(key).copied())
    }

    /// Whether there is a marker for `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// How many markers there are.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The marker for `key`, made (at 0) if there was none.
    pub fn at(&mut self, key: K) -> &mut u64 {
        self.0.get_or_insert_default().entry(key).or_default()
    }

    /// The keys that have a marker.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().flat_map(|m| m.keys())
    }
}

/// Every identity the chat knows, with the maps to find one by session,
/// by `sub` and by name, least recently seen first out.
#[derive(Debug)]
pub struct Identities {
    /// Boxed: a `User` is about 300 bytes, and a hash table keeps room for
    /// more entries than it holds (up to twice as many just after it
    /// grows), so unboxed that slack cost 300 bytes a slot instead of 16.
    users: HashMap<UserId, Box<User>>,
    by_session: HashMap<Arc<str>, UserId>,
    by_sub: HashMap<String, UserId>,
    /// Lower-cased names in use, for uniqueness.
    names: HashMap<String, UserId>,
    /// Bans in force: by `sub:…` or `session:…`, until when (epoch ms).
    bans: HashMap<String, u64>,
    /// Bans made anywhere in the cluster (`--redis`; `sub:…`, `session:…`
    /// or `user:…`), until when: kept apart from `bans.json`'s.
    cluster_bans: HashMap<String, u64>,
    seen: BTreeMap<u64, UserId>,
    seen_at: HashMap<UserId, u64>,
    clock: u64,
    next_auto_name: u64,
    ttl: Duration,
    budget: Arc<Budget>,
    /// Where `bans.json` is (none: bans live in memory only), and its
    /// modification time when last read.
    bans_dir: Option<std::path::PathBuf>,
    bans_seen: Option<std::time::SystemTime>,
}

impl Identities {
    /// The identities in `log` that were seen within `ttl`.
    pub fn load(log: &dyn Log, ttl: Duration) -> Identities {
        let mut ids = Identities {
            users: HashMap::new(),
            by_session: HashMap::new(),
            by_sub: HashMap::new(),
            names: HashMap::new(),
            bans: HashMap::new(),
            cluster_bans: HashMap::new(),
            seen: BTreeMap::new(),
            seen_at: HashMap::new(),
            clock: 0,
            next_auto_name: 1,
            ttl,
            budget: log
                .budget()
                .unwrap_or_else(|| Arc::new(Budget::new(crate::memory::DEFAULT_MEMORY_BUDGET))),
            bans_dir: log.data_dir().map(Path::to_path_buf),
            bans_seen: None,
        };
        let needles = [
            "\"type\":\"identity\"",
            "\"type\":\"joined\"",
            "\"type\":\"left\"",
            "\"type\":\"renamed\"",
            "\"type\":\"read\"",
            "\"type\":\"room_read\"",
            "\"type\":\"memberships\"",
        ];
        let mut found: BTreeMap<UserId, User> = BTreeMap::new();
        // Users who were ever in a room: the others (created by the HTTP
        // API for a `sub` not yet signed in) have seen no private message.
        let mut entered: std::collections::HashSet<UserId> = std::collections::HashSet::new();
        log.replay(&needles, &mut |_, v| {
            let id = v["id"].as_u64().unwrap_or(0);
            let time = v["time"].as_u64().unwrap_or(0);
            let uid = match &v["user"] {
                Value::Object(u) => u.get("id").and_then(Value::as_u64),
                other => other.as_u64(),
            };
            let Some(uid) = uid else { return };
            match v["type"].as_str().unwrap_or("") {
                "identity" => {
                    found.insert(
                        uid,
                        User {
                            id: uid,
                            name: String::new(),
                            room: LOBBY.to_string(),
                            rooms: SmallSet::new(),
                            rooms_recorded: false,
                            session: v["session"].as_str().map(Arc::from),
                            sub: v["sub"].as_str().map(str::to_string),
                            name_fixed: false,
                            admin: false,
                            conns: SmallSet::new(),
                            last_typing: None,
                            last_seen: time,
                            left_at: 0,
                            read: Marks::default(),
                            room_read: Marks::default(),
                            bytes: 0,
                        },
                    );
                }
                "room_read" => {
                    if let (Some(user), Some(room), Some(upto)) =
                        (found.get_mut(&uid), v["room"].as_str(), v["upto"].as_u64())
                    {
                        let at = user.room_read.at(room.to_string());
                        *at = (*at).max(upto);
                    }
                }
                "memberships" => {
                    if let (Some(user), Some(room), Some(rooms)) = (
                        found.get_mut(&uid),
                        v["room"].as_str(),
                        v["rooms"].as_array(),
                    ) {
                        user.room = room.to_string();
                        user.rooms = rooms
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect();
                        user.rooms_recorded = true;
                    }
                }
                "read" => {
                    if let (Some(user), Some(with), Some(upto)) =
                        (found.get_mut(&uid), v["with"].as_u64(), v["upto"].as_u64())
                    {
                        let at = user.read.at(with);
                        *at = (*at).max(upto);
                    }
                }
                kind => {
                    // Records of a user id before its identity record are
                    // from before identities (user ids were connection ids).
                    let Some(user) = found.get_mut(&uid) else {
                        return;
                    };
                    if let Some(name) = v["user"]["name"].as_str() {
                        user.name = name.to_string();
                    }
                    user.last_seen = user.last_seen.max(time);
                    match kind {
                        "joined" => {
                            if !user.rooms_recorded {
                                user.room = v["room"].as_str().unwrap_or(LOBBY).to_string();
                            }
                            entered.insert(uid);
                        }
                        "left" => user.left_at = id,
                        _ => {}
                    }
                }
            }
        });
        let now = now_ms();
        ids.reload_bans(now);
        for (id, user) in found.iter_mut() {
            let current = user.room.clone();
            user.rooms.insert(current);
            if user.left_at == 0 && !entered.contains(id) {
                user.left_at = 1;
            }
        }
        let mut found: Vec<User> = found.into_values().collect();
        found.sort_by_key(|u| u.last_seen);
        for mut user in found {
            if user.last_seen.saturating_add(ttl.as_millis() as u64) < now {
                continue;
            }
            if let Some(n) = user
                .name
                .strip_prefix("用户")
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.next_auto_name = ids.next_auto_name.max(n + 1);
            }
            if user.name.is_empty() || ids.names.contains_key(&user.name.to_lowercase()) {
                user.name = ids.auto_name();
            }
            let id = user.id;
            ids.insert(user);
            ids.clock += 1;
            ids.seen.insert(ids.clock, id);
            ids.seen_at.insert(id, ids.clock);
        }
        ids.trim();
        ids
    }

    fn insert(&mut self, mut user: User) {
        user.bytes = user.cost();
        self.budget.add(Kept::Sessions, user.bytes);
        self.names.insert(user.name.to_lowercase(), user.id);
        if let Some(s) = &user.session {
            self.by_session.insert(s.clone(), user.id);
        }
        if let Some(s) = &user.sub {
            self.by_sub.insert(s.clone(), user.id);
        }
        self.users.insert(user.id, Box::new(user));
    }

    /// The user named `name` (ignoring case), if the chat knows one.
    pub fn by_name(&self, name: &str) -> Option<UserId> {
        self.names.get(&name.to_lowercase()).copied()
    }

    /// The user with id `id`.
    pub fn get(&self, id: UserId) -> Option<&User> {
        self.users.get(&id).map(|u| &**u)
    }

    /// The user with id `id`, to change.
    pub fn get_mut(&mut self, id: UserId) -> Option<&mut User> {
        self.users.get_mut(&id).map(|u| &mut **u)
    }

    /// `{"id","name"}`: how messages name a user.
    pub fn user_ref(&self, id: UserId) -> Value {
        let name = self.users.get(&id).map_or("", |u| u.name.as_str());
        json!({"id": id, "name": name})
    }

    /// `{"id","name"}`, and for a verified user `"sub"` and
    /// `"verified":true`: how `welcome` names its user.
    pub fn user_ref_full(&self, id: UserId) -> Value {
        let mut v = self.user_ref(id);
        if let Some(user) = self.users.get(&id)
            && let Some(sub) = &user.sub
        {
            v["sub"] = json!(sub);
            v["verified"] = json!(true);
            if user.admin {
                v["role"] = json!("admin");
            }
        }
        v
    }

    /// Users online now whose name contains `query` (ignoring case), at
    /// most `limit`, by name.
    pub fn find(&self, query: &str, limit: usize) -> Vec<Value> {
        let query = query.to_lowercase();
        let mut found: Vec<&User> = self
            .users
            .values()
            .map(|u| &**u)
            .filter(|u| !u.conns.is_empty() && u.name.to_lowercase().contains(&query))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
            .into_iter()
            .take(limit)
            .map(|u| json!({"id": u.id, "name": u.name}))
            .collect()
    }

    /// A name nobody else has: `wanted`, or `wanted2`, `wanted3`, …
    fn unique_name(&self, wanted: &str, me: UserId) -> String {
        let free = |name: &str| {
            self.names
                .get(&name.to_lowercase())
                .is_none_or(|&owner| owner == me)
        };
        if free(wanted) {
            return wanted.to_string();
        }
        (2u64..)
            .map(|n| {
                let suffix = n.to_string();
                let base: String = wanted
                    .chars()
                    .take(MAX_NAME_CHARS - suffix.chars().count())
                    .collect();
                format!("{base}{suffix}")
            })
            .find(|candidate| free(candidate))
            .unwrap_or_else(|| format!("用户{me}"))
    }

    fn auto_name(&mut self) -> String {
        loop {
            let name = format!("用户{}", self.next_auto_name);
            self.next_auto_name += 1;
            if !self.names.contains_key(&name.to_lowercase()) {
                return name;
            }
        }
    }

    /// Give `id` the name `wanted` (or the nearest free one). Returns the
    /// old name if it changed.
    pub fn rename(&mut self, id: UserId, wanted: &str) -> Option<String> {
        let name = self.unique_name(wanted, id);
        let user = self.users.get_mut(&id)?;
        if user.name == name {
            return None;
        }
        let old = std::mem::replace(&mut user.name, name.clone());
        let bytes = user.cost();
        self.budget.sub(Kept::Sessions, user.bytes);
        self.budget.add(Kept::Sessions, bytes);
        user.bytes = bytes;
        self.names.remove(&old.to_lowercase());
        self.names.insert(name.to_lowercase(), id);
        Some(old)
    }

    fn create(
        &mut self,
        log: &mut dyn Log,
        name: String,
        session: Option<String>,
        sub: Option<String>,
    ) -> UserId {
        let mut id = log.take_id();
        if let Some(sub) = sub.as_deref() {
            // One `sub`, one user id on every node (docs/cluster.md).
            id = log.identity_of(sub, id);
        }
        if let Some(digest) = session.as_deref() {
            log.session_created(digest, id);
        }
        self.create_as(log, id, name, session, sub)
    }

    /// [`Identities::create`] with its id given.
    fn create_as(
        &mut self,
        log: &mut dyn Log,
        id: UserId,
        name: String,
        session: Option<String>,
        sub: Option<String>,
    ) -> UserId {
        let record = Entry::Identity {
            id,
            user: id,
            session: session.as_deref(),
            sub: sub.as_deref(),
            time: now_ms(),
        };
        log.append(Record::State {
            json: &record.to_json(),
        });
        self.insert(User {
            id,
            name,
            room: LOBBY.to_string(),
            rooms: [LOBBY.to_string()].into_iter().collect(),
            rooms_recorded: false,
            session: session.map(Arc::from),
            sub,
            name_fixed: false,
            admin: false,
            conns: SmallSet::new(),
            last_typing: None,
            last_seen: now_ms(),
            left_at: 0,
            read: Marks::default(),
            room_read: Marks::default(),
            bytes: 0,
        });
        id
    }

    /// The user of session `token`, or a new anonymous user (with a new
    /// session) when the token is missing, unknown or expired. Returns the
    /// user and its session token. `asked` is the name the connection asked
    /// for (`?name=`), taken if it is valid and free.
    pub fn anonymous(
        &mut self,
        token: Option<String>,
        asked: Option<&str>,
        log: &mut dyn Log,
    ) -> (UserId, String) {
        let asked = asked.and_then(|n| valid_name(n).ok());
        if let Some(token) = token {
            let digest = digest_hex(&token);
            let id = match self.by_session.get(digest.as_str()) {
                Some(&id) => Some(id),
                // A session of another node's (docs/cluster.md): the same
                // user id here, with a name of this node's.
                None => log.session_of(&digest).and_then(|id| {
                    let free = !self.users.contains_key(&id);
                    free.then(|| {
                        let name = self.auto_name();
                        self.create_as(log, id, name, Some(digest), None)
                    })
                }),
            };
            if let Some(id) = id {
                if let Some(name) = asked {
                    self.rename(id, &name);
                }
                return (id, token);
            }
        }
        let token: String = crate::random::random_16()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = match asked {
            Some(name) => self.unique_name(&name, 0),
            None => self.auto_name(),
        };
        let id = self.create(log, name, Some(digest_hex(&token)), None);
        (id, token)
    }

    /// The user whose `sub` is `sub`, if it is known.
    pub fn by_sub(&self, sub: &str) -> Option<UserId> {
        self.by_sub.get(sub).copied()
    }

    /// The user whose `sub` is `sub`, created (with a name of its own) if
    /// it was never seen: the HTTP API's private message to someone who has
    /// not signed in yet. Everything sent to it waits for its first
    /// connection.
    pub fn for_sub(&mut self, sub: &str, log: &mut dyn Log) -> UserId {
        if let Some(id) = self.by_sub(sub) {
            return id;
        }
        let name = self.auto_name();
        let id = self.create(log, name, None, Some(sub.to_string()));
        if let Some(u) = self.users.get_mut(&id) {
            // Never in a room: every private message under its key is new.
            u.left_at = 1;
        }
        id
    }

    /// The user of a verified token: the same for every token with this
    /// `sub`, created the first time. The token's `name`, if any, is the
    /// user's name and cannot be taken by anyone else; its role makes it an
    /// administrator or not.
    pub fn verified(&mut self, claims: &Claims, asked: Option<&str>, log: &mut dyn Log) -> UserId {
        let id = match self.by_sub.get(&claims.sub) {
            Some(&id) => id,
            None => {
                let name = match asked.and_then(|n| valid_name(n).ok()) {
                    Some(name) => self.unique_name(&name, 0),
                    None => self.auto_name(),
                };
                self.create(log, name, None, Some(claims.sub.clone()))
            }
        };
        if let Some(name) = claims.name.as_deref().and_then(|n| valid_name(n).ok()) {
            // The site's name wins: whoever else holds it moves aside.
            if let Some(&holder) = self.names.get(&name.to_lowercase())
                && holder != id
                && self.users.get(&holder).is_some_and(|u| !u.name_fixed)
            {
                self.names.remove(&name.to_lowercase());
                let other = self.unique_name(&name, holder);
                if let Some(u) = self.users.get_mut(&holder) {
                    u.name = other.clone();
                }
                self.names.insert(other.to_lowercase(), holder);
            }
            self.rename(id, &name);
            if let Some(u) = self.users.get_mut(&id) {
                u.name_fixed = true;
            }
        }
        if let Some(u) = self.users.get_mut(&id) {
            u.admin = claims.admin;
        }
        id
    }

    /// Count `id` again in the memory budget (its read markers changed),
    /// and let the least recently seen offline identities go if that put
    /// the sessions over their share.
    pub fn recount(&mut self, id: UserId) {
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        let bytes = user.cost();
        self.budget.sub(Kept::Sessions, user.bytes);
        self.budget.add(Kept::Sessions, bytes);
        user.bytes = bytes;
        self.trim();
    }

    /// `id` was just seen (a connection opened or closed).
    pub fn touch(&mut self, id: UserId, now: u64) {
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        user.last_seen = now;
        self.clock += 1;
        if let Some(old) = self.seen_at.insert(id, self.clock) {
            self.seen.remove(&old);
        }
        self.seen.insert(self.clock, id);
        self.trim();
    }

    /// Forget the least recently seen offline identities while there are
    /// more than [`MAX_IDENTITIES`] or they are over their share of the
    /// memory budget. A forgotten session is a new user when it comes back.
    pub fn trim(&mut self) {
        let mut evicted = 0;
        while self.users.len() > MAX_IDENTITIES || self.budget.must_evict(Kept::Sessions) {
            let oldest = self
                .seen
                .iter()
                .find(|(_, id)| self.users.get(id).is_some_and(|u| u.conns.is_empty()))
                .map(|(&at, &id)| (at, id));
            let Some((_, id)) = oldest else { break };
            self.forget(id);
            evicted += 1;
        }
        if evicted > 0 {
            self.budget.evicted(Kept::Sessions, evicted);
        }
    }

    fn forget(&mut self, id: UserId) {
        let Some(user) = self.users.remove(&id) else {
            return;
        };
        self.budget.sub(Kept::Sessions, user.bytes);
        if let Some(at) = self.seen_at.remove(&id) {
            self.seen.remove(&at);
        }
        self.names.remove(&user.name.to_lowercase());
        if let Some(s) = &user.session {
            self.by_session.remove(s);
        }
        if let Some(s) = &user.sub {
            self.by_sub.remove(s);
        }
    }

    /// Forget offline identities not seen for the session TTL, and bans
    /// that have ended.
    pub fn expire(&mut self, now: u64) {
        let ttl = self.ttl.as_millis() as u64;
        let old: Vec<UserId> = self
            .users
            .values()
            .filter(|u| u.conns.is_empty() && u.last_seen.saturating_add(ttl) < now)
            .map(|u| u.id)
            .collect();
        for id in old {
            self.forget(id);
        }
        self.bans.retain(|_, until| *until > now);
        self.cluster_bans.retain(|_, until| *until > now);
    }

    /// Until when `id` is banned (epoch ms), if it is.
    pub fn banned(&self, id: UserId, now: u64) -> Option<u64> {
        self.cluster_keys(id)
            .iter()
            .filter_map(|k| {
                let here = self.bans.get(k).copied();
                let there = self.cluster_bans.get(k).copied();
                here.max(there)
            })
            .filter(|&until| until > now)
            .max()
    }

    /// What a ban of `id` is kept under on every node: its `sub`, its
    /// session and its user id (`user:…`, the same on every node).
    pub fn cluster_keys(&self, id: UserId) -> Vec<String> {
        let mut keys = match self.users.get(&id) {
            Some(user) => ban_keys(user.sub.as_deref(), user.session.as_deref()),
            None => Vec::new(),
        };
        keys.push(format!("user:{id}"));
        keys
    }

    /// A ban made on the cluster (here or on another node).
    pub fn cluster_ban(&mut self, key: &str, until: u64) {
        let at = self.cluster_bans.entry(key.to_string()).or_insert(0);
        *at = (*at).max(until);
    }

    /// The users this node knows that a ban of `key` covers.
    pub fn banned_by(&self, key: &str) -> Vec<UserId> {
        self.users
            .keys()
            .copied()
            .filter(|&id| self.cluster_keys(id).iter().any(|k| k == key))
            .collect()
    }

    /// Ban `id` until `until` (epoch ms), by its `sub` or session, and
    /// write it to `bans.json`. Returns whether the user is known.
    pub fn ban(&mut self, id: UserId, until: u64) -> bool {
        let Some(user) = self.users.get(&id) else {
            return false;
        };
        let new: Vec<super::bans::Ban> = ban_keys(user.sub.as_deref(), user.session.as_deref())
            .into_iter()
            .map(|key| super::bans::Ban {
                key,
                user: id,
                name: user.name.clone(),
                until,
            })
            .collect();
        for b in &new {
            self.bans.insert(b.key.clone(), until);
        }
        if let Some(dir) = &self.bans_dir {
            match super::bans::add(dir, &new, now_ms()) {
                Ok(()) => self.bans_seen = modified(dir),
                Err(e) => log::error!("chat: cannot write the bans: {e}"),
            }
        }
        true
    }

    /// Read `bans.json` again if it changed (`wschat ban remove`), and
    /// drop bans that have ended.
    pub fn reload_bans(&mut self, now: u64) {
        if let Some(dir) = &self.bans_dir {
            let seen = modified(dir);
            if seen != self.bans_seen {
                match super::bans::load(dir) {
                    Ok(list) => self.bans = super::bans::in_force(&list, now),
                    Err(e) => log::error!("chat: cannot read the bans: {e}"),
                }
                self.bans_seen = seen;
            }
        }
        self.bans.retain(|_, until| *until > now);
    }
}

/// When `bans.json` in `dir` last changed.
fn modified(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(super::bans::path(dir))
        .and_then(|m| m.modified())
        .ok()
}

/// What a ban is kept under: the user's `sub`, or its session's digest.
fn ban_keys(sub: Option<&str>, session: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(s) = sub {
        keys.push(format!("sub:{s}"));
    }
    if let Some(s) = session {
        keys.push(format!("session:{s}"));
    }
    keys
}
