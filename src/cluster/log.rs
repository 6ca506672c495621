//! The cluster's store: a [`Log`] whose room messages live in Redis
//! (docs/cluster.md, "The node's store"), chosen by `--redis URL`.
//!
//! - A room message is appended by the append script
//!   ([`Cluster::append_cmd`], with a token of this node's), which decides
//!   its id: the app's JSON is cut at its provisional id (the one
//!   [`Log::take_id`] gave it) into a [`Template`]. The commit is
//!   [`Commit::Pending`] until every append of the turn has answered.
//! - Every node, this one included, delivers a room's messages from the
//!   room's channel, through the room's [`RoomOrder`]
//!   ([`Outcome::Deliver`]), so the order is the log's everywhere; the
//!   turn's own sends of them are dropped (`delivered_by_log`).
//! - `history` and `since` are answered from a cache of each room's latest
//!   [`CACHE_PER_ROOM`] messages, fed only by what was delivered (so a
//!   read never shows an unconfirmed message). A room is followed
//!   (subscribed, its cache read from the stream) the first time it is
//!   read: that read waits at most [`WARM_TIMEOUT`] (one of the few waits
//!   docs/cluster.md lists, "Where the hub waits on Redis").
//! - A private message is stored by the private script under both users'
//!   streams and published on the one private channel every node
//!   subscribes to: every node hands it to the chat
//!   ([`Outcome::Private`]) for its connections of both users. A user's
//!   private messages are cached as a room's are, read once per user per
//!   node.
//! - Everything else (state records, desk records) goes to the node's
//!   embedded store, as without Redis.
//!
//! The client's events and replies reach the hub through [`Log::events`]
//! (a thread forwards both onto one channel), and come back to
//! [`Log::handle`] on the hub thread.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use serde_json::Value;

use super::accounts::Accounts;
use super::client::{self, Client, ClientConfig, Cmd, Link, Reply};
use super::order::{self, RoomOrder};
use super::{
    Cluster, DEFAULT_PREFIX, Entry, Keys, MAX_RANGE, PrivateEntry, Published, Template, Trim,
};
use crate::hub::log::{Commit, Conversation, DeskRole, Log, LogEvent, Outcome, Page, Record};
use crate::memory::Budget;
use crate::store::Store;
use desk_side::{DeskRecord, DeskSide};

mod desk_side;

/// Default messages of each followed room (and private messages of each
/// user) kept on the node for history and resume (`--redis-cache`).
pub const CACHE_PER_ROOM: usize = 1000;
/// Default longest the hub waits on Redis, each time it does
/// (`--redis-warm-timeout`; docs/cluster.md, "Where the hub waits on
/// Redis").
pub const WARM_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time an append whose connection failed before its reply is
/// asked again (with its token) once the link is back, before it is
/// refused (`--redis-retry-wait`).
pub const RETRY_WAIT: Duration = Duration::from_secs(5);
/// Default events from the client waiting for the hub: past it, the
/// subscriber stops reading (and Redis, past its pub/sub limit, cuts it
/// off; the gap is filled from the stream) (`--redis-events-queue`).
pub const EVENTS_QUEUE: usize = 65_536;

/// The limits of a node's Redis store, each a flag of `wschat serve`
/// (docs/cluster.md).
///
/// ```
/// let s = wschat::cluster::log::Settings::default();
/// assert_eq!(s.cache_per_room, wschat::cluster::log::CACHE_PER_ROOM);
/// assert_eq!(s.presence_ttl, wschat::cluster::DEFAULT_PRESENCE_TTL);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Messages of each room, and private messages of each user, kept on
    /// the node ([`CACHE_PER_ROOM`]).
    pub cache_per_room: usize,
    /// Longest the hub waits on Redis, each time ([`WARM_TIMEOUT`]).
    pub warm_timeout: Duration,
    /// How long an append whose reply was lost is asked again
    /// ([`RETRY_WAIT`]).
    pub retry_wait: Duration,
    /// Events waiting for the hub ([`EVENTS_QUEUE`]).
    pub events_queue: usize,
    /// How long a node's members count without its heartbeat
    /// ([`DEFAULT_PRESENCE_TTL`](super::DEFAULT_PRESENCE_TTL)): it beats
    /// every third of it, and reaps the nodes that ran out as often.
    pub presence_ttl: Duration,
    /// How each room's stream (and each user's private messages) is
    /// trimmed in Redis ([`Trim::default`]: 10,000 entries, 30 days).
    pub trim: Trim,
    /// How long the desk's lease lasts after its holder's last renewal
    /// ([`LEASE_TTL`](super::desk::LEASE_TTL)); the holder renews it every
    /// hub tick.
    pub desk_lease: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cache_per_room: CACHE_PER_ROOM,
            warm_timeout: WARM_TIMEOUT,
            retry_wait: RETRY_WAIT,
            events_queue: EVENTS_QUEUE,
            presence_ttl: super::DEFAULT_PRESENCE_TTL,
            trim: Trim::default(),
            desk_lease: super::desk::LEASE_TTL,
        }
    }
}

/// Ids a node reserves from the cluster's counter at a time, for its own
/// records (private messages, desk records, users: everything but room
/// messages, whose ids the append script decides). The next block is
/// asked for when half of one is used; a node that stops wastes at most
/// one block.
pub const ID_BLOCK: u64 = 1024;
/// Where the ids handed out when no block could be had start (Redis
/// unreachable, the block used up): 2^52, far above any id the counter
/// gives (it would take 4.5·10^15 ids) and below 2^53 (exact in
/// JavaScript). A record with such an id is not stored: the turn that
/// holds one is refused as a whole (`unavailable`). (A user created then
/// is welcomed with one, kept in memory only: docs/cluster.md.)
pub const NO_ID_BASE: u64 = 1 << 52;

/// How long Redis keeps an anonymous session for the other nodes (the
/// default `--session-ttl`, 30 days): past it, `?session=` on a node that
/// never saw it makes a new user.
pub const SESSION_TTL_SECS: u64 = 30 * 24 * 3600;

/// Ids of the private messages last delivered that a node remembers, so
/// that one read again from a stream after a re-subscription is not
/// delivered twice.
const RECENT_PRIVATES: usize = 4096;

/// What the forwarding thread hands the hub, and the hub hands back.
enum Inbound {
    Client(client::Event),
    Reply(Reply),
    Tick,
}

/// Where a message of a turn goes.
#[derive(Debug, Clone)]
enum Target {
    /// A room's stream (the append script).
    Room(String),
    /// Both users' private streams (the private script): the keys.
    Private(String, String),
}

/// One message of a turn (a room's or a private one), on its way to
/// Redis.
#[derive(Debug)]
struct Append {
    target: Target,
    template: Template,
    token: String,
    provisional: u64,
    turn: u64,
    /// When its connection failed before the reply (it is asked again).
    lost_at: Option<Instant>,
}

/// What a request's tag stands for.
#[derive(Debug)]
enum Tag {
    Append(Append),
    Fill(String),
    /// A read of a user's private stream after what it holds (by key).
    PrivateFill(String),
    /// A block of ids reserved ([`ID_BLOCK`]).
    Ids,
    /// The agent accounts, if they changed.
    Accounts,
    /// The canned replies, if they changed.
    Canned,
    /// Who holds the desk's lease.
    Lease,
    /// A page of the desk's records, read to rebuild the desk.
    DeskRead,
    /// A desk record of turn `turn`: a message's id (refused if not
    /// stored), or a state record's JSON (written again with the next
    /// turn if not stored).
    DeskAppend {
        turn: u64,
        id: Option<u64>,
        state: Option<String>,
    },
    /// This node's heartbeat.
    Heartbeat,
    /// A read of a room's members (after its subscription holds).
    Members(String),
    /// A read of the versions of a room's cached messages.
    Versions(String, Vec<u64>),
}

/// Who is in a room on the other nodes: each user's name and the nodes it
/// is on.
type Remote = HashMap<u64, (String, BTreeSet<String>)>;

/// A turn whose appends were sent.
#[derive(Debug)]
struct Turn {
    seq: u64,
    outstanding: usize,
    /// Why the last refused message was refused.
    error: Option<String>,
    /// Provisional ids of the messages stored.
    stored: Vec<u64>,
    /// The stored messages' ids as the script decided them: (provisional,
    /// final).
    final_ids: Vec<(u64, u64)>,
    /// Provisional ids of the messages refused.
    refused: Vec<u64>,
    /// Desk records stored.
    desk_stored: usize,
}

/// A followed room.
#[derive(Debug)]
struct Room {
    order: RoomOrder,
    /// The latest delivered messages: id, prev, JSON.
    cache: VecDeque<(u64, u64, Arc<str>)>,
    /// A read of the stream is owed (the last one failed).
    refill: bool,
}

/// A user's private messages as this node keeps them (a user followed
/// by its key).
#[derive(Debug, Default)]
struct Privates {
    /// The latest ones, oldest first.
    cache: VecDeque<PrivateCached>,
    /// The cache holds the user's stream from its first message.
    whole: bool,
    /// A read of the stream is owed (the last one failed).
    refill: bool,
}

/// A cached private message: id, the sender's key, the addressee's, JSON.
type PrivateCached = (u64, String, String, Arc<str>);

/// The cluster's store: see the module's text.
pub struct RedisLog {
    inner: Box<dyn Log>,
    cluster: Cluster,
    keys: Keys,
    replies: Sender<Reply>,
    events: Receiver<LogEvent>,
    to_self: Sender<LogEvent>,
    rooms: HashMap<String, Room>,
    /// Users whose private messages this node keeps, by key.
    privates: HashMap<String, Privates>,
    turn: Vec<Append>,
    turns: VecDeque<Turn>,
    next_turn: u64,
    tags: HashMap<u64, Tag>,
    next_tag: u64,
    retry: Vec<Append>,
    /// The block of ids being handed out by [`Log::take_id`].
    ids: std::ops::Range<u64>,
    /// The block reserved to follow it.
    next_ids: Option<std::ops::Range<u64>>,
    /// A block was asked for and not answered yet.
    asking_ids: bool,
    /// Ids below it were given out by this node's embedded store (before
    /// it served with Redis): the counter is raised to it.
    id_floor: u64,
    /// The next id handed out with no block to take it from.
    no_id: u64,
    /// The turn holds a record with an id from no block: it is refused.
    unidentified: bool,
    token_prefix: String,
    next_token: u64,
    up: bool,
    /// The desk's agent accounts as last read (`None`: not yet).
    accounts: Option<Accounts>,
    /// A read of the accounts is on its way.
    asking_accounts: bool,
    /// The desk's canned replies as last read (`None`: not yet).
    canned: Option<Accounts>,
    /// A read of the canned replies is on its way.
    asking_canned: bool,
    /// The desk across nodes, once [`RedisLog::with_desk`] set it up.
    desk: Option<DeskSide>,
    settings: Settings,
    /// This node's name in the cluster's presence.
    node: String,
    /// This node's members of each room, with their names.
    mine: HashMap<String, HashMap<u64, String>>,
    /// Each followed room's members on other nodes.
    remote: HashMap<String, Remote>,
    /// Departures while Redis was unreachable: sent when it is back.
    absent_while_down: Vec<(String, u64)>,
    /// When the node last beat its heart (and reaped).
    last_beat: Instant,
    /// The bans in force on the cluster when the node started.
    bans_at_start: Vec<(String, u64)>,
    /// Bans made while Redis was unreachable: sent when it is back.
    bans_owed: Vec<(String, u64)>,
    /// New versions of messages (room, id, JSON or empty) made while Redis
    /// was unreachable: sent when it is back.
    versions_owed: Vec<(String, u64, String)>,
    /// The highest private message id received.
    last_private: u64,
    /// The private messages delivered lately ([`RECENT_PRIVATES`]).
    recent_privates: std::collections::HashSet<u64>,
    recent_order: VecDeque<u64>,
    /// The presence events and departures of each room received since its
    /// members were last asked for: applied again over the answer, which
    /// may be older than they are.
    presence_since: HashMap<String, Vec<Change>>,
}

/// A change of a room's members on other nodes, as an event told it.
#[derive(Debug, Clone)]
enum Change {
    Joined(u64, String, String),
    Left(u64, String),
    Gone(String),
}

/// Apply a change to a room's members on other nodes.
fn change(remote: &mut Remote, c: &Change) {
    match c {
        Change::Joined(user, node, name) => {
            remote
                .entry(*user)
                .or_insert_with(|| (name.clone(), BTreeSet::new()))
                .1
                .insert(node.clone());
        }
        Change::Left(user, node) => {
            if let Some(entry) = remote.get_mut(user) {
                entry.1.remove(node);
                if entry.1.is_empty() {
                    remote.remove(user);
                }
            }
        }
        Change::Gone(node) => remote.retain(|_, (_, nodes)| {
            nodes.remove(node);
            !nodes.is_empty()
        }),
    }
}

impl fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLog")
            .field("rooms", &self.rooms.len())
            .field("turns", &self.turns.len())
            .field("up", &self.up)
            .finish()
    }
}

impl RedisLog {
    /// Connect to the Redis of `url` (`redis://HOST:PORT[/DB]`), keeping
    /// what is not a room message in `inner`. Waits at most
    /// [`WARM_TIMEOUT`] for the first connection (not the hub: this runs
    /// before it starts); a Redis that is not there yet is dialed again.
    pub fn start(inner: Store, url: &str, settings: Settings) -> io::Result<RedisLog> {
        let config = ClientConfig::from_url(url).map_err(io::Error::other)?;
        let (client_tx, client_rx) = bounded(settings.events_queue);
        let (replies, replies_rx) = unbounded();
        let (to_self, events) = bounded::<LogEvent>(settings.events_queue);
        let forward = to_self.clone();
        std::thread::Builder::new()
            .name("redis-events".into())
            .spawn(move || forward_events(client_rx, replies_rx, forward))?;
        let client = Client::start(config, client_tx)?;
        let up = client.wait_up(Link::Commands, settings.warm_timeout);
        if !up {
            log::warn!(target: "wschat::cluster", "Redis {url} not reachable yet: dialing again");
        }
        let keys = Keys::new(DEFAULT_PREFIX);
        // Every private message comes by this one channel: held from the
        // start, so that nothing sent to a user online here is missed.
        client.subscribe(keys.private_channel());
        client.subscribe(keys.gone_channel());
        client.subscribe(keys.bans_channel());
        let cluster = Cluster::new(client, keys.clone(), settings.trim, settings.warm_timeout);
        let mut inner = inner;
        let id_floor = inner.take_id();
        let ids = match up {
            true => cluster.reserve_ids(ID_BLOCK, id_floor).unwrap_or_else(|e| {
                log::warn!(target: "wschat::cluster", "reserving ids: {e}");
                0..0
            }),
            false => 0..0,
        };
        // The agents can sign in from the first connection on.
        let accounts = match up {
            true => cluster.accounts().map_err(|e| {
                log::warn!(target: "wschat::cluster", "reading the agent accounts: {e}");
            }),
            false => Err(()),
        };
        let first_id = ids.start;
        let token_prefix = format!("{:016x}", crate::random::random_u64());
        if up && let Err(e) = cluster.heartbeat(&token_prefix, settings.presence_ttl) {
            log::warn!(target: "wschat::cluster", "first heartbeat: {e}");
        }
        let bans_at_start = match up {
            true => read_bans(&cluster).unwrap_or_else(|e| {
                log::warn!(target: "wschat::cluster", "reading the bans: {e}");
                Vec::new()
            }),
            false => Vec::new(),
        };
        Ok(RedisLog {
            inner: Box::new(inner),
            cluster,
            keys,
            replies,
            events,
            to_self,
            rooms: HashMap::new(),
            privates: HashMap::new(),
            turn: Vec::new(),
            turns: VecDeque::new(),
            next_turn: 0,
            tags: HashMap::new(),
            next_tag: 0,
            retry: Vec::new(),
            ids,
            next_ids: None,
            asking_ids: false,
            id_floor,
            no_id: NO_ID_BASE,
            unidentified: false,
            node: token_prefix.clone(),
            token_prefix,
            next_token: 0,
            up,
            accounts: accounts.ok(),
            asking_accounts: false,
            canned: None,
            asking_canned: false,
            desk: None,
            settings,
            mine: HashMap::new(),
            remote: HashMap::new(),
            absent_while_down: Vec::new(),
            last_beat: Instant::now(),
            bans_at_start,
            bans_owed: Vec::new(),
            versions_owed: Vec::new(),
            // Every private message published after the start has a
            // higher id than the first block reserved (0: none yet).
            last_private: first_id.saturating_sub(1),
            recent_privates: std::collections::HashSet::new(),
            recent_order: VecDeque::new(),
            presence_since: HashMap::new(),
        })
    }

    /// Send the append; it comes back with the error if the link refused
    /// it.
    fn send_append(&mut self, append: Append) -> Result<(), Box<(Append, client::Error)>> {
        let cmd = match &append.target {
            Target::Room(room) => {
                self.cluster
                    .append_cmd(room, &append.template, Some(&append.token))
            }
            Target::Private(from, to) => {
                self.cluster
                    .private_cmd(from, to, &append.template, Some(&append.token))
            }
        };
        let tag = self.next_tag;
        self.next_tag += 1;
        match self.cluster.client().send(cmd, tag, &self.replies) {
            Ok(()) => {
                self.tags.insert(tag, Tag::Append(append));
                Ok(())
            }
            Err(e) => Err(Box::new((append, e))),
        }
    }

    /// Ask for the block of ids to follow the current one, unless it is
    /// asked for or here already.
    fn ask_ids(&mut self) {
        if self.asking_ids || self.next_ids.is_some() || !self.up {
            return;
        }
        let cmd = self.cluster.reserve_ids_cmd(ID_BLOCK, self.id_floor);
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_ok() {
            self.tags.insert(tag, Tag::Ids);
            self.asking_ids = true;
        }
    }

    /// Read `room`'s stream after `after` (a gap, or a re-subscription).
    fn send_fill(&mut self, room: &str, after: u64) {
        let cmd = self.cluster.after_cmd(room, after, MAX_RANGE);
        let tag = self.next_tag;
        self.next_tag += 1;
        let sent = self.cluster.client().send(cmd, tag, &self.replies);
        match sent {
            Ok(()) => {
                self.tags.insert(tag, Tag::Fill(room.to_string()));
            }
            Err(_) => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.refill = true;
                }
            }
        }
    }

    /// Read user `key`'s private stream after `after` (a re-subscription,
    /// or a read that failed).
    fn send_private_fill(&mut self, key: &str, after: u64) {
        let cmd = self.cluster.privates_after_cmd(key, after, MAX_RANGE);
        let tag = self.next_tag;
        self.next_tag += 1;
        match self.cluster.client().send(cmd, tag, &self.replies) {
            Ok(()) => {
                self.tags.insert(tag, Tag::PrivateFill(key.to_string()));
            }
            Err(_) => {
                if let Some(p) = self.privates.get_mut(key) {
                    p.refill = true;
                }
            }
        }
    }

    /// A private message, published or read from a stream: kept in the
    /// caches of both users (if followed here) and delivered, unless a
    /// cache had it already (delivered before).
    fn on_private(&mut self, entry: PrivateEntry, out: &mut Vec<Outcome>) {
        let json: Arc<str> = entry.json.into();
        // Delivered already (live, then read again after a re-subscription)?
        let mut seen = !self.recent_privates.insert(entry.id);
        if !seen {
            self.recent_order.push_back(entry.id);
            if self.recent_order.len() > RECENT_PRIVATES
                && let Some(old) = self.recent_order.pop_front()
            {
                self.recent_privates.remove(&old);
            }
        }
        self.last_private = self.last_private.max(entry.id);
        let mut keys = vec![entry.from.clone()];
        if entry.to != entry.from {
            keys.push(entry.to.clone());
        }
        for key in &keys {
            if let Some(p) = self.privates.get_mut(key) {
                let at = p.cache.partition_point(|c| c.0 < entry.id);
                if p.cache.get(at).is_some_and(|c| c.0 == entry.id) {
                    seen = true;
                    continue;
                }
                if at == 0 && p.cache.len() >= self.settings.cache_per_room {
                    continue; // older than anything kept
                }
                let cached = (entry.id, entry.from.clone(), entry.to.clone(), json.clone());
                p.cache.insert(at, cached);
                if p.cache.len() > self.settings.cache_per_room {
                    p.cache.pop_front();
                    p.whole = false;
                }
            }
        }
        if !seen {
            out.push(Outcome::Private {
                from: entry.from,
                to: entry.to,
                json,
            });
        }
    }

    /// Keep user `key`'s private messages on this node if not yet: read
    /// its latest ones (the hub waits, at most [`WARM_TIMEOUT`], once per
    /// user per node); later ones come from the private channel.
    fn follow_key(&mut self, key: &str) -> bool {
        if key.is_empty() || self.privates.contains_key(key) {
            return !key.is_empty();
        }
        let wanted = self.settings.cache_per_room.min(MAX_RANGE);
        match self.cluster.read_privates_before(key, None, wanted) {
            Ok(entries) => {
                let whole = entries.len() < wanted;
                let cache = entries
                    .into_iter()
                    .map(|e| (e.id, e.from, e.to, Arc::from(e.json)))
                    .collect();
                self.privates.insert(
                    key.to_string(),
                    Privates {
                        cache,
                        whole,
                        refill: false,
                    },
                );
                true
            }
            Err(e) => {
                log::warn!(target: "wschat::cluster", "private messages of {key}: reading failed: {e}");
                false
            }
        }
    }

    /// The cached private messages of `key` after `after`, and the first
    /// id from which they are known whole if not all are.
    fn privates_after(&self, key: &str, after: u64) -> (Vec<(u64, Arc<str>)>, Option<u64>) {
        let Some(p) = self.privates.get(key) else {
            return (Vec::new(), (!key.is_empty()).then_some(u64::MAX));
        };
        let picked: Vec<(u64, Arc<str>)> = p
            .cache
            .iter()
            .filter(|c| c.0 > after)
            .map(|c| (c.0, c.3.clone()))
            .collect();
        let missing = match p.cache.front() {
            Some(first) if !p.whole && first.0 > after => Some(first.0),
            _ => None,
        };
        (picked, missing)
    }

    /// What the room's order says: deliver (and cache), and read.
    fn apply(&mut self, room: &str, outcome: order::Outcome, out: &mut Vec<Outcome>) {
        if outcome.trimmed {
            log::warn!(target: "wschat::cluster", "room {room}: messages trimmed before this node read them");
        }
        if let Some(r) = self.rooms.get_mut(room) {
            for entry in outcome.deliver {
                let json: Arc<str> = entry.json.into();
                r.cache.push_back((entry.id, entry.prev, json.clone()));
                if r.cache.len() > self.settings.cache_per_room {
                    r.cache.pop_front();
                }
                out.push(Outcome::Deliver {
                    room: room.to_string(),
                    json,
                });
            }
        }
        if let Some(after) = outcome.fill_from {
            self.send_fill(room, after);
        }
    }

    /// The room of a channel of ours.
    fn room_of_channel(&self, channel: &[u8]) -> Option<String> {
        let channel = std::str::from_utf8(channel).ok()?;
        let prefix = String::from_utf8(self.keys.channel("")).ok()?;
        let room = channel.strip_prefix(&prefix)?;
        self.rooms.contains_key(room).then(|| room.to_string())
    }

    /// Follow `room` if not yet: subscribe, and read its latest messages.
    fn follow(&mut self, room: &str) -> bool {
        if self.rooms.contains_key(room) {
            return true;
        }
        match self
            .cluster
            .read_before(room, None, self.settings.cache_per_room)
        {
            Ok(entries) => {
                let last = entries.last().map_or(0, |e| e.id);
                let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
                let mut cache: Cache = entries
                    .into_iter()
                    .map(|e| (e.id, e.prev, Arc::from(e.json)))
                    .collect();
                // Later versions (edits, reactions, deletions), in the
                // same wait.
                if !ids.is_empty() {
                    let cmd = self.cluster.versions_cmd(room, &ids);
                    match self.cluster.client().call(cmd, self.settings.warm_timeout) {
                        Ok(value) => {
                            for (e, v) in cache.iter_mut().zip(value.as_array().unwrap_or(&[])) {
                                if let Some(bytes) = v.as_bytes() {
                                    e.2 = String::from_utf8_lossy(bytes).into_owned().into();
                                }
                            }
                        }
                        Err(e) => {
                            log::warn!(target: "wschat::cluster", "room {room}: versions: {e}");
                        }
                    }
                }
                self.rooms.insert(
                    room.to_string(),
                    Room {
                        order: RoomOrder::new(last),
                        cache,
                        refill: false,
                    },
                );
                // Whatever is published before the subscription holds is
                // read from the stream when it does (`Subscribed`), and
                // the members are read again then.
                self.cluster.client().subscribe(self.keys.channel(room));
                match self.cluster.members(room) {
                    Ok(members) => {
                        let remote = self.remote_of(members);
                        self.remote.insert(room.to_string(), remote);
                    }
                    Err(e) => {
                        log::warn!(target: "wschat::cluster", "room {room}: members: {e}");
                        self.remote.insert(room.to_string(), Remote::new());
                    }
                }
                true
            }
            Err(e) => {
                log::warn!(target: "wschat::cluster", "room {room}: reading its stream failed: {e}");
                false
            }
        }
    }

    /// Send a command whose reply nobody waits for.
    fn fire(&mut self, cmd: Cmd) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let _ = self.cluster.client().send(cmd, tag, &self.replies);
    }

    /// Send a command whose reply comes back to [`Self::on_reply`] as `what`.
    fn ask(&mut self, cmd: Cmd, what: Tag) {
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_ok() {
            self.tags.insert(tag, what);
        }
    }

    /// Record `user` in `room` on this node, and tell the other nodes.
    fn send_join(&mut self, room: &str, user: u64, name: &str) {
        let cmd = self
            .cluster
            .join_cmd(&self.node, room, &user.to_string(), name.as_bytes());
        self.fire(cmd);
        let event = serde_json::json!({"node": self.node, "user": user, "name": name});
        let cmd = self.cluster.event_cmd(room, event.to_string().as_bytes());
        self.fire(cmd);
    }

    /// Take `user` out of `room` on this node, and tell the other nodes.
    fn send_leave(&mut self, room: &str, user: u64) {
        let cmd = self.cluster.leave_cmd(&self.node, room, &user.to_string());
        self.fire(cmd);
        let event = serde_json::json!({"node": self.node, "user": user});
        let cmd = self.cluster.event_cmd(room, event.to_string().as_bytes());
        self.fire(cmd);
    }

    /// Record every member of this node again (after an outage, or after
    /// the node was reaped for a stall).
    fn rejoin_all(&mut self) {
        let all: Vec<(String, u64, String)> = self
            .mine
            .iter()
            .flat_map(|(room, users)| {
                users
                    .iter()
                    .map(move |(user, name)| (room.clone(), *user, name.clone()))
            })
            .collect();
        for (room, user, name) in all {
            self.send_join(&room, user, &name);
        }
        for (room, user) in std::mem::take(&mut self.absent_while_down) {
            if !self.mine.get(&room).is_some_and(|m| m.contains_key(&user)) {
                self.send_leave(&room, user);
            }
        }
    }

    /// An answer to a members read of `room`: the changes received since
    /// it was asked for are applied over it (it may be older than they
    /// are; applying one it holds already changes nothing).
    fn members_answered(&mut self, room: &str, mut now: Remote, out: &mut Vec<Outcome>) {
        for c in self.presence_since.remove(room).unwrap_or_default() {
            change(&mut now, &c);
        }
        self.set_remote(room, now, out);
    }

    /// Keep a change for a members read of `room` still unanswered.
    fn note_change(&mut self, room: &str, c: &Change) {
        if let Some(log) = self.presence_since.get_mut(room) {
            log.push(c.clone());
        }
    }

    /// `room`'s members on other nodes are `now`: tell the chat who came
    /// and who went.
    fn set_remote(&mut self, room: &str, now: Remote, out: &mut Vec<Outcome>) {
        let before = self.remote.insert(room.to_string(), now);
        let before = before.unwrap_or_default();
        let now = &self.remote[room];
        for user in before.keys().filter(|u| !now.contains_key(u)) {
            out.push(Outcome::Presence {
                room: room.to_string(),
                user: *user,
                name: None,
            });
        }
        for (user, (name, _)) in now.iter().filter(|(u, _)| !before.contains_key(u)) {
            out.push(Outcome::Presence {
                room: room.to_string(),
                user: *user,
                name: Some(name.clone()),
            });
        }
    }

    /// The members a [`Cluster::members_cmd`] answered, less this node's.
    fn remote_of(&self, members: Vec<super::Member>) -> Remote {
        let mut remote = Remote::new();
        for m in members.into_iter().filter(|m| m.node != self.node) {
            if let Ok(user) = m.member.parse::<u64>() {
                let name = String::from_utf8_lossy(&m.info).into_owned();
                remote
                    .entry(user)
                    .or_insert_with(|| (name, BTreeSet::new()))
                    .1
                    .insert(m.node);
            }
        }
        remote
    }

    /// The followed room whose cache holds message `id` (live or deleted).
    fn room_with(&self, id: u64) -> Option<String> {
        self.rooms.iter().find_map(|(name, r)| {
            let at = r.cache.partition_point(|e| e.0 < id);
            r.cache
                .get(at)
                .is_some_and(|e| e.0 == id)
                .then(|| name.clone())
        })
    }

    /// Message `id` of `room` is served as `json` from now on (empty:
    /// deleted), if the cache holds it.
    fn set_version(&mut self, room: &str, id: u64, json: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            let at = r.cache.partition_point(|e| e.0 < id);
            if let Some(e) = r.cache.get_mut(at)
                && e.0 == id
                && !e.2.is_empty()
            {
                e.2 = json.into();
            }
        }
    }

    /// Send a new version (or a deletion) of message `id` of `room`.
    fn send_version(&mut self, room: &str, id: u64, json: &str) {
        let cmd = self.cluster.version_cmd(room, &self.node, id, json);
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_err() {
            self.versions_owed
                .push((room.to_string(), id, json.to_string()));
        }
    }

    /// Ask for the versions of `room`'s cached messages (after a
    /// re-subscription: some may have been missed).
    fn ask_versions(&mut self, room: &str) {
        let ids: Vec<u64> = self
            .rooms
            .get(room)
            .map(|r| r.cache.iter().map(|e| e.0).collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            let cmd = self.cluster.versions_cmd(room, &ids);
            self.ask(cmd, Tag::Versions(room.to_string(), ids));
        }
    }

    /// Apply a versions read: one entry per id.
    fn apply_versions(&mut self, room: &str, ids: &[u64], value: &super::resp::Value) {
        let Some(items) = value.as_array() else {
            return;
        };
        for (id, item) in ids.iter().zip(items) {
            if let Some(bytes) = item.as_bytes() {
                let json = String::from_utf8_lossy(bytes).into_owned();
                self.set_version(room, *id, &json);
            }
        }
    }

    /// A range of `room`'s stream read on the spot (the hub waits, at most
    /// `--redis-warm-timeout`, for it and for the versions of what it
    /// holds), oldest first, each entry in its latest version (empty when
    /// deleted).
    fn read_stream(&mut self, room: &str, cmd: Cmd) -> Result<Vec<Entry>, client::Error> {
        let timeout = self.settings.warm_timeout;
        let mut entries = Cluster::parse_range(self.cluster.client().call(cmd, timeout)?)?;
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        if !ids.is_empty() {
            let versions = self
                .cluster
                .client()
                .call(self.cluster.versions_cmd(room, &ids), timeout)?;
            for (e, v) in entries.iter_mut().zip(versions.as_array().unwrap_or(&[])) {
                if let Some(bytes) = v.as_bytes() {
                    e.json = String::from_utf8_lossy(bytes).into_owned();
                }
            }
        }
        Ok(entries)
    }

    /// A resume from before the cache (whose first message is
    /// `first_cached`): the messages between, read from the stream, before
    /// the cached `page`, when at most [`MAX_RANGE`] lie between;
    /// otherwise `page` as it is (not whole).
    fn since_from_stream(&mut self, room: &str, after: u64, first_cached: u64, page: Page) -> Page {
        let cmd = self.cluster.after_cmd(room, after, MAX_RANGE);
        match self.read_stream(room, cmd) {
            Ok(mut entries) => {
                let bridged = entries.iter().any(|e| e.id >= first_cached);
                entries.retain(|e| e.id < first_cached);
                if !bridged && entries.len() >= MAX_RANGE {
                    return page;
                }
                let missing = match entries.first() {
                    Some(first) if first.prev > after => Some(first.id),
                    Some(_) => None,
                    None => page.missing,
                };
                let mut messages = live(entries);
                messages.extend(page.messages);
                Page { messages, missing }
            }
            Err(e) => {
                log::warn!(target: "wschat::cluster", "room {room}: reading a resume: {e}");
                page
            }
        }
    }

    /// Record a ban in Redis and announce it.
    fn send_ban(&mut self, key: &str, until: u64) {
        let cmd = Cmd::new("HSET")
            .arg(self.keys.bans())
            .arg(key)
            .arg(until.to_string());
        self.fire(cmd);
        let cmd = Cmd::new("PUBLISH")
            .arg(self.keys.bans_channel())
            .arg(format!("{until} {} {key}", self.node));
        self.fire(cmd);
    }

    /// An event on `room`'s channel: an app's (`a <node> <json>`), or
    /// another node's member that came or went (JSON).
    fn on_event(&mut self, room: &str, event: &[u8], out: &mut Vec<Outcome>) {
        for (prefix, deleted) in [(b"r ", false), (b"d ", true)] {
            if let Some(rest) = event.strip_prefix(prefix) {
                let text = String::from_utf8_lossy(rest);
                let mut parts = text.splitn(3, ' ');
                if let (Some(node), Some(id)) = (parts.next(), parts.next())
                    && node != self.node
                    && let Ok(id) = id.parse::<u64>()
                {
                    let json = if deleted {
                        ""
                    } else {
                        parts.next().unwrap_or("")
                    };
                    if deleted || !json.is_empty() {
                        self.set_version(room, id, json);
                    }
                }
                return;
            }
        }
        if let Some(rest) = event.strip_prefix(b"a ") {
            let text = String::from_utf8_lossy(rest);
            if let Some((node, json)) = text.split_once(' ')
                && node != self.node
            {
                out.push(Outcome::Event {
                    room: room.to_string(),
                    json: json.into(),
                });
            }
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(event) else {
            return;
        };
        let (Some(node), Some(user)) = (v["node"].as_str(), v["user"].as_u64()) else {
            return;
        };
        if node == self.node {
            return;
        }
        let noted = match v["name"].as_str() {
            Some(name) => Change::Joined(user, node.to_string(), name.to_string()),
            None => Change::Left(user, node.to_string()),
        };
        self.note_change(room, &noted);
        let Some(remote) = self.remote.get_mut(room) else {
            return;
        };
        match v["name"].as_str() {
            Some(name) => {
                let entry = remote
                    .entry(user)
                    .or_insert_with(|| (name.to_string(), BTreeSet::new()));
                let first = entry.1.is_empty();
                entry.1.insert(node.to_string());
                if first {
                    out.push(Outcome::Presence {
                        room: room.to_string(),
                        user,
                        name: Some(name.to_string()),
                    });
                }
            }
            None => {
                if let Some(entry) = remote.get_mut(&user) {
                    entry.1.remove(node);
                    if entry.1.is_empty() {
                        remote.remove(&user);
                        out.push(Outcome::Presence {
                            room: room.to_string(),
                            user,
                            name: None,
                        });
                    }
                }
            }
        }
    }

    /// A node was taken out (its heartbeat ran out, or it stopped): its
    /// members are gone from every room. This node itself, after a stall:
    /// it records its members again.
    fn on_gone(&mut self, node: &str, out: &mut Vec<Outcome>) {
        if node == self.node {
            self.rejoin_all();
            return;
        }
        for log in self.presence_since.values_mut() {
            log.push(Change::Gone(node.to_string()));
        }
        for (room, remote) in &mut self.remote {
            remote.retain(|user, (_, nodes)| {
                nodes.remove(node);
                if nodes.is_empty() {
                    out.push(Outcome::Presence {
                        room: room.clone(),
                        user: *user,
                        name: None,
                    });
                }
                !nodes.is_empty()
            });
        }
    }

    fn on_reply(&mut self, reply: Reply, out: &mut Vec<Outcome>) {
        match self.tags.remove(&reply.tag) {
            Some(Tag::Append(mut append)) => match reply.result {
                Err(client::Error::Disconnected) => {
                    append.lost_at.get_or_insert_with(Instant::now);
                    self.retry.push(append);
                }
                result => {
                    let result = result
                        .and_then(Cluster::parse_appended)
                        .map(|appended| appended.id)
                        .map_err(|e| e.to_string());
                    self.answered(append.turn, append.provisional, result);
                }
            },
            Some(Tag::Fill(room)) => {
                let result = reply.result.and_then(Cluster::parse_range);
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                match result {
                    Ok(entries) => {
                        let outcome = r.order.filled(entries, MAX_RANGE);
                        self.apply(&room, outcome, out);
                    }
                    Err(e) => {
                        log::warn!(target: "wschat::cluster", "room {room}: filling a gap failed: {e}");
                        r.refill = true;
                    }
                }
            }
            Some(Tag::PrivateFill(key)) => {
                match reply.result.and_then(Cluster::parse_private_range) {
                    Ok(entries) => {
                        let full = entries.len() >= MAX_RANGE;
                        let last = entries.last().map(|e| e.id);
                        for entry in entries {
                            self.on_private(entry, out);
                        }
                        if full && let Some(last) = last {
                            self.send_private_fill(&key, last);
                        }
                    }
                    Err(e) => {
                        log::warn!(target: "wschat::cluster", "private messages of {key}: reading failed: {e}");
                        if let Some(p) = self.privates.get_mut(&key) {
                            p.refill = true;
                        }
                    }
                }
            }
            Some(Tag::Heartbeat) => match reply.result.and_then(Cluster::parse_heartbeat) {
                Ok(beat) if beat.rejoin => self.rejoin_all(),
                Ok(_) => {}
                Err(e) => log::warn!(target: "wschat::cluster", "heartbeat: {e}"),
            },
            Some(Tag::Versions(room, ids)) => match reply.result {
                Ok(value) => self.apply_versions(&room, &ids, &value),
                Err(e) => log::warn!(target: "wschat::cluster", "room {room}: versions: {e}"),
            },
            Some(Tag::Members(room)) => match reply.result.and_then(Cluster::parse_members) {
                Ok(members) => {
                    let now = self.remote_of(members);
                    self.members_answered(&room, now, out);
                }
                Err(e) => {
                    self.presence_since.remove(&room);
                    log::warn!(target: "wschat::cluster", "room {room}: members: {e}");
                }
            },
            Some(Tag::Ids) => {
                self.asking_ids = false;
                match reply
                    .result
                    .and_then(|v| Cluster::parse_reserved(v, ID_BLOCK))
                {
                    Ok(block) if self.ids.is_empty() => self.ids = block,
                    Ok(block) => self.next_ids = Some(block),
                    Err(e) => log::warn!(target: "wschat::cluster", "reserving ids: {e}"),
                }
            }
            Some(
                tag @ (Tag::Lease
                | Tag::DeskRead
                | Tag::DeskAppend { .. }
                | Tag::Accounts
                | Tag::Canned),
            ) => {
                self.on_desk_reply(tag, reply.result);
            }
            None => {}
        }
    }

    /// One append of turn `seq` has its answer: the message's final id, or
    /// why it was not stored.
    fn answered(&mut self, seq: u64, provisional: u64, result: Result<u64, String>) {
        if let Some(turn) = self.turns.iter_mut().find(|t| t.seq == seq) {
            turn.outstanding = turn.outstanding.saturating_sub(1);
            match result {
                Ok(id) => {
                    turn.stored.push(provisional);
                    turn.final_ids.push((provisional, id));
                }
                Err(e) => {
                    turn.refused.push(provisional);
                    turn.error = Some(e);
                }
            }
        }
    }

    /// Ask again for what is owed: appends whose connection failed (refused
    /// past [`RETRY_WAIT`]) and gap fills that failed.
    fn retry_owed(&mut self) {
        for append in std::mem::take(&mut self.retry) {
            let waited = append.lost_at.map_or(Duration::ZERO, |t| t.elapsed());
            if waited > self.settings.retry_wait {
                self.answered(
                    append.turn,
                    append.provisional,
                    Err("Redis unreachable".into()),
                );
                continue;
            }
            if !self.up {
                self.retry.push(append); // the link is down: kept for later
            } else if let Err(refused) = self.send_append(append) {
                self.retry.push(refused.0);
            }
        }
        if !self.up {
            return;
        }
        let owed: Vec<(String, u64)> = self
            .rooms
            .iter_mut()
            .filter(|(_, r)| r.refill)
            .map(|(name, r)| {
                r.refill = false;
                (name.clone(), r.order.last())
            })
            .collect();
        for (room, after) in owed {
            self.send_fill(&room, after);
        }
        let owed: Vec<(String, u64)> = self
            .privates
            .iter_mut()
            .filter(|(_, p)| p.refill)
            .map(|(key, p)| {
                p.refill = false;
                (key.clone(), p.cache.back().map_or(0, |c| c.0))
            })
            .collect();
        for (key, after) in owed {
            self.send_private_fill(&key, after);
        }
    }

    /// The turns at the front whose appends have all answered, in order.
    fn settled(&mut self, out: &mut Vec<Outcome>) {
        while self.turns.front().is_some_and(|t| t.outstanding == 0) {
            let Some(turn) = self.turns.pop_front() else {
                break;
            };
            // Each message settles on its own: the stored ones go out, the
            // refused ones are refused; only a turn with nothing stored
            // fails as a whole (and says why on /healthz).
            out.push(match turn.error {
                Some(e) if turn.stored.is_empty() && turn.desk_stored == 0 => Outcome::Committed {
                    result: Err(io::Error::other(e)),
                    delivered_by_log: Vec::new(),
                    refused: Vec::new(),
                    final_ids: Vec::new(),
                },
                _ => Outcome::Committed {
                    result: Ok(true),
                    delivered_by_log: turn.stored,
                    refused: turn.refused,
                    final_ids: turn.final_ids,
                },
            });
        }
    }
}

impl Drop for RedisLog {
    /// A node that stops takes its members out at once (at most
    /// `--redis-warm-timeout`) and gives the desk's lease up; one that dies
    /// is reaped by the others.
    fn drop(&mut self) {
        self.release_desk();
        if self.up
            && let Err(e) = self.cluster.depart(&self.node)
        {
            log::warn!(target: "wschat::cluster", "departing: {e}");
        }
    }
}

/// The bans of `wschat:bans` still in force (by Redis's clock); those
/// that ended are deleted.
fn read_bans(cluster: &Cluster) -> Result<Vec<(String, u64)>, client::Error> {
    let time = cluster.client().call(Cmd::new("TIME"), WARM_TIMEOUT)?;
    let now = match time.as_array() {
        Some([secs, micros]) => {
            let n = |v: &super::resp::Value| {
                v.as_bytes()
                    .and_then(|b| std::str::from_utf8(b).ok()?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            n(secs) * 1000 + n(micros) / 1000
        }
        _ => 0,
    };
    let all = cluster
        .client()
        .call(Cmd::new("HGETALL").arg(cluster.keys().bans()), WARM_TIMEOUT)?;
    let mut bans = Vec::new();
    for pair in all.as_array().unwrap_or(&[]).chunks(2) {
        if let [key, until] = pair {
            let key = String::from_utf8_lossy(key.as_bytes().unwrap_or(&[])).into_owned();
            let until = until
                .as_bytes()
                .and_then(|b| std::str::from_utf8(b).ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            if until > now {
                bans.push((key, until));
            } else {
                let cmd = Cmd::new("HDEL").arg(cluster.keys().bans()).arg(&key);
                cluster.client().call(cmd, WARM_TIMEOUT)?;
            }
        }
    }
    Ok(bans)
}

/// The forwarding thread: the client's events and the replies onto the
/// one channel the hub waits on.
fn forward_events(client: Receiver<client::Event>, replies: Receiver<Reply>, to: Sender<LogEvent>) {
    loop {
        let inbound = crossbeam_channel::select! {
            recv(client) -> e => match e {
                Ok(e) => Inbound::Client(e),
                Err(_) => return,
            },
            recv(replies) -> r => match r {
                Ok(r) => Inbound::Reply(r),
                Err(_) => return,
            },
        };
        if to.send(Box::new(inbound)).is_err() {
            return;
        }
    }
}

/// Cut a message's JSON at its id (`"id":<provisional>`, the object's
/// first `"id":`; a quote inside a JSON string is always escaped, so text
/// cannot fake it) into the template the append script fills in.
///
/// ```
/// use wschat::cluster::log::template_of;
/// let t = template_of(r#"{"type":"chat","id":17,"text":"\"id\":17"}"#, 17).unwrap();
/// assert_eq!(t.with_id(900), r#"{"type":"chat","id":900,"text":"\"id\":17"}"#);
/// assert!(template_of(r#"{"type":"chat","id":18}"#, 17).is_none());
/// ```
pub fn template_of(json: &str, provisional: u64) -> Option<Template> {
    let at = json.find("\"id\":")? + "\"id\":".len();
    let digits = json[at..].bytes().take_while(u8::is_ascii_digit).count();
    if json[at..at + digits].parse::<u64>().ok()? != provisional {
        return None;
    }
    Some(Template::new(&json[..at], &json[at + digits..]))
}

impl Log for RedisLog {
    /// An id from the block this node reserved from the cluster's counter
    /// (so it is never a room message's id, nor another node's): a room
    /// message's is provisional (the append script decides its real one),
    /// every other record keeps it. With no block at hand (the next one
    /// not in yet), one is reserved on the spot, the hub waiting at most
    /// [`WARM_TIMEOUT`]; with Redis unreachable, an id from
    /// [`NO_ID_BASE`] up, whose turn is refused.
    fn take_id(&mut self) -> u64 {
        if self.ids.is_empty() {
            if let Some(block) = self.next_ids.take() {
                self.ids = block;
            } else if self.up {
                match self.cluster.reserve_ids(ID_BLOCK, self.id_floor) {
                    Ok(block) => self.ids = block,
                    Err(e) => log::warn!(target: "wschat::cluster", "reserving ids: {e}"),
                }
            }
        }
        if (self.ids.end - self.ids.start) <= ID_BLOCK / 2 {
            self.ask_ids();
        }
        self.ids.next().unwrap_or_else(|| {
            self.no_id += 1;
            self.no_id - 1
        })
    }

    /// Asked of Redis on the spot (the hub waits, at most
    /// [`WARM_TIMEOUT`]: once per `sub` new to this node); with Redis
    /// unreachable, `proposed`, this node's own (docs/cluster.md).
    fn identity_of(&mut self, sub: &str, proposed: u64) -> u64 {
        if proposed >= NO_ID_BASE || !self.up {
            return proposed;
        }
        match self.cluster.identity_of(sub, proposed) {
            Ok(id) => id,
            Err(e) => {
                log::warn!(target: "wschat::cluster", "the identity of a sub: {e}");
                proposed
            }
        }
    }

    /// Recorded without waiting (the reply is not awaited: a session whose
    /// record was lost is this node's alone).
    fn session_created(&mut self, digest: &str, user: u64) {
        if user >= NO_ID_BASE || !self.up {
            return;
        }
        let cmd = Cmd::new("SET")
            .arg(self.keys.session(digest))
            .arg(user.to_string())
            .arg("EX")
            .arg(SESSION_TTL_SECS.to_string());
        let tag = self.next_tag;
        self.next_tag += 1;
        let _ = self.cluster.client().send(cmd, tag, &self.replies);
    }

    /// Asked of Redis on the spot (the hub waits, at most
    /// [`WARM_TIMEOUT`]: only for a session this node does not know).
    fn session_of(&mut self, digest: &str) -> Option<u64> {
        if !self.up {
            return None;
        }
        let cmd = Cmd::new("GET").arg(self.keys.session(digest));
        match self.cluster.client().call(cmd, self.settings.warm_timeout) {
            Ok(super::resp::Value::Bulk(b)) => std::str::from_utf8(&b).ok()?.parse().ok(),
            Ok(_) => None,
            Err(e) => {
                log::warn!(target: "wschat::cluster", "a session of another node: {e}");
                None
            }
        }
    }

    /// Recorded without waiting (a name whose record is lost is shown
    /// by other nodes as it was before).
    fn user_named(&mut self, user: u64, name: &str) {
        if user >= NO_ID_BASE || !self.up {
            return;
        }
        let cmd = Cmd::new("HSET")
            .arg(self.keys.names())
            .arg(user.to_string())
            .arg(name);
        let tag = self.next_tag;
        self.next_tag += 1;
        let _ = self.cluster.client().send(cmd, tag, &self.replies);
    }

    /// Asked of Redis on the spot (the hub waits, at most
    /// [`WARM_TIMEOUT`]: only for a user this node does not know).
    fn user_name(&mut self, user: u64) -> Option<String> {
        if !self.up {
            return None;
        }
        let cmd = Cmd::new("HGET")
            .arg(self.keys.names())
            .arg(user.to_string());
        match self.cluster.client().call(cmd, self.settings.warm_timeout) {
            Ok(super::resp::Value::Bulk(b)) => String::from_utf8(b).ok(),
            Ok(_) => None,
            Err(e) => {
                log::warn!(target: "wschat::cluster", "the name of another node's user: {e}");
                None
            }
        }
    }

    /// Published on the room's channel as `a <node> <json>`, without
    /// waiting (dropped while Redis is unreachable).
    fn publish(&mut self, room: &str, json: &str) {
        if self.up {
            let event = format!("a {} {json}", self.node);
            let cmd = self.cluster.event_cmd(room, event.as_bytes());
            self.fire(cmd);
        }
    }

    /// Recorded in `wschat:bans` and announced on `wschat:banned`, without
    /// waiting (when Redis is back, if it is not there).
    fn ban(&mut self, keys: &[String], until: u64) {
        for key in keys {
            if self.up {
                self.send_ban(key, until);
            } else {
                self.bans_owed.push((key.clone(), until));
            }
        }
    }

    fn bans(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.bans_at_start)
    }

    /// Recorded in the room's presence hash and told the other nodes,
    /// without waiting (again when Redis is back, if it is not there).
    fn present(&mut self, room: &str, user: u64, name: &str) {
        self.mine
            .entry(room.to_string())
            .or_default()
            .insert(user, name.to_string());
        if self.up {
            self.send_join(room, user, name);
        }
    }

    fn absent(&mut self, room: &str, user: u64) {
        if let Some(m) = self.mine.get_mut(room) {
            m.remove(&user);
            if m.is_empty() {
                self.mine.remove(room);
            }
        }
        if self.up {
            self.send_leave(room, user);
        } else {
            self.absent_while_down.push((room.to_string(), user));
        }
    }

    /// From this node's mirror of the room's presence, read when the room
    /// is followed (the room's first read), kept by the other nodes'
    /// events and `wschat:gone`.
    fn members(&mut self, room: &str) -> Vec<(u64, String)> {
        self.follow(room);
        self.remote.get(room).map_or_else(Vec::new, |r| {
            r.iter()
                .map(|(user, (name, _))| (*user, name.clone()))
                .collect()
        })
    }

    fn append(&mut self, record: Record<'_>) {
        let target = match record {
            Record::Room { room, .. } => Some(Target::Room(room.to_string())),
            Record::Private { from, to, .. } => Some(Target::Private(from.into(), to.into())),
            _ => None,
        };
        if let Some(target) = target
            && let Some(provisional) = serde_id(record.json())
            && let Some(template) = template_of(record.json(), provisional)
        {
            self.next_token += 1;
            self.turn.push(Append {
                target,
                template,
                token: format!("{}:{}", self.token_prefix, self.next_token),
                provisional,
                turn: 0,
                lost_at: None,
            });
            return;
        }
        if let Some(d) = &mut self.desk
            && !matches!(record, Record::Room { .. } | Record::Private { .. })
            && record.json().contains("\"type\":\"desk_")
        {
            // The desk's records are the cluster's: in Redis.
            let id = match record {
                Record::State { .. } => None,
                _ => Some(serde_id(record.json()).unwrap_or(0)),
            };
            d.turn.push(DeskRecord {
                json: record.json().to_string(),
                id,
            });
            return;
        }
        if self.no_id > NO_ID_BASE && serde_id(record.json()).is_some_and(|id| id >= NO_ID_BASE) {
            // Not stored: its turn is refused.
            self.unidentified = true;
            return;
        }
        self.inner.append(record);
    }

    /// The embedded store's part of the turn only: the hub calls
    /// [`Log::commit_turn`].
    fn commit(&mut self) -> io::Result<bool> {
        self.inner.commit()
    }

    fn commit_turn(&mut self) -> Commit {
        let local = self.inner.commit();
        let appends = std::mem::take(&mut self.turn);
        let desk = self.desk_turn();
        if std::mem::take(&mut self.unidentified) {
            self.owe_desk_state(desk);
            return Commit::Done(Err(io::Error::other(
                "Redis unreachable: no cluster-wide id for a record",
            )));
        }
        if appends.is_empty() && desk.is_empty() {
            return Commit::Done(local);
        }
        if let Err(e) = local {
            self.owe_desk_state(desk);
            return Commit::Done(Err(e));
        }
        if !self.up {
            self.owe_desk_state(desk);
            return Commit::Done(Err(io::Error::other("Redis unreachable")));
        }
        let seq = self.next_turn;
        self.next_turn += 1;
        let (mut sent, mut error, mut refused) = (0, None, Vec::new());
        for mut append in appends {
            append.turn = seq;
            match self.send_append(append) {
                Ok(()) => sent += 1,
                Err(not_sent) => {
                    refused.push(not_sent.0.provisional);
                    error = Some(not_sent.1.to_string());
                }
            }
        }
        let mut unsent_state = Vec::new();
        for record in desk {
            match self.send_desk_record(seq, &record) {
                Ok(()) => sent += 1,
                Err(e) => {
                    match record.id {
                        Some(id) => refused.push(id),
                        None => unsent_state.push(record),
                    }
                    error = Some(e.to_string());
                }
            }
        }
        self.owe_desk_state(unsent_state);
        if sent == 0 {
            let why = error.unwrap_or_else(|| "Redis unreachable".into());
            return Commit::Done(Err(io::Error::other(why)));
        }
        self.turns.push_back(Turn {
            seq,
            outstanding: sent,
            error,
            stored: Vec::new(),
            final_ids: Vec::new(),
            refused,
            desk_stored: 0,
        });
        Commit::Pending
    }

    fn tick(&mut self) {
        self.inner.tick();
        self.ask_accounts();
        self.ask_canned();
        self.ask_lease();
        if self.desk.as_ref().is_some_and(|d| d.read_owed) && self.up {
            self.send_desk_read();
        }
        if self.up && self.last_beat.elapsed() >= self.settings.presence_ttl / 3 {
            self.last_beat = Instant::now();
            let beat = self
                .cluster
                .heartbeat_cmd(&self.node, self.settings.presence_ttl);
            self.ask(beat, Tag::Heartbeat);
            // Any node may take the dead ones out; every node does, as
            // often as it beats.
            let reap = self.cluster.reap_cmd(None);
            self.fire(reap);
        }
        if !self.retry.is_empty()
            || self.rooms.values().any(|r| r.refill)
            || self.privates.values().any(|p| p.refill)
        {
            let _ = self.to_self.try_send(Box::new(Inbound::Tick));
        }
    }

    /// As last read from Redis (every tick, answered only when they
    /// changed); none at all until the first read succeeds. While Redis is
    /// unreachable, the accounts last read.
    fn agent_accounts(&mut self) -> Option<(String, Arc<Vec<String>>)> {
        Some(match &self.accounts {
            Some(a) => (a.version.clone(), Arc::clone(&a.json)),
            None => (String::new(), Arc::new(Vec::new())),
        })
    }

    /// As last read from Redis (every tick, answered only when they
    /// changed); none until the first read succeeds.
    fn canned_replies(&mut self) -> Option<(String, Arc<Vec<String>>)> {
        Some(match &self.canned {
            Some(c) => (c.version.clone(), Arc::clone(&c.json)),
            None => (String::new(), Arc::new(Vec::new())),
        })
    }

    fn change_canned(&mut self, shortcut: &str, json: Option<&str>, most: usize) -> bool {
        if !self.up {
            return false;
        }
        let cmd = match json {
            Some(json) => self.cluster.set_canned_cmd(shortcut, json, most),
            None => self.cluster.remove_canned_cmd(shortcut),
        };
        // The next read (a tick later) brings the list as Redis has it.
        self.fire(cmd);
        true
    }

    fn desk_role(&mut self) -> DeskRole {
        self.desk.as_ref().map_or(DeskRole::Alone, |d| d.role)
    }

    fn take_desk_records(&mut self) -> Option<Vec<Arc<str>>> {
        self.desk.as_mut()?.records.take()
    }

    fn events(&self) -> Option<Receiver<LogEvent>> {
        Some(self.events.clone())
    }

    fn handle(&mut self, event: LogEvent) -> Vec<Outcome> {
        let Ok(inbound) = event.downcast::<Inbound>() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match *inbound {
            Inbound::Reply(reply) => self.on_reply(reply, &mut out),
            Inbound::Tick => self.retry_owed(),
            Inbound::Client(event) => match event {
                client::Event::Up(Link::Commands) => {
                    let was_down = !self.up;
                    self.up = true;
                    if self.ids.is_empty() {
                        self.ask_ids();
                    }
                    let beat = self
                        .cluster
                        .heartbeat_cmd(&self.node, self.settings.presence_ttl);
                    self.ask(beat, Tag::Heartbeat);
                    self.last_beat = Instant::now();
                    if was_down {
                        self.rejoin_all();
                    }
                    for (key, until) in std::mem::take(&mut self.bans_owed) {
                        self.send_ban(&key, until);
                    }
                    for (room, id, json) in std::mem::take(&mut self.versions_owed) {
                        self.send_version(&room, id, &json);
                    }
                    out.push(Outcome::Health(None));
                    self.retry_owed();
                }
                client::Event::Down(Link::Commands, why) => {
                    self.up = false;
                    out.push(Outcome::Health(Some(format!("Redis unreachable: {why}"))));
                }
                client::Event::Up(Link::Subscriber) | client::Event::Down(Link::Subscriber, _) => {}
                client::Event::Subscribed(channel) if channel == self.keys.private_channel() => {
                    // What was published while the subscription did not
                    // hold: read from the streams of the users followed,
                    // and of the users here (after the last one received).
                    let mut owed: Vec<(String, u64)> = self
                        .privates
                        .iter()
                        .map(|(key, p)| (key.clone(), p.cache.back().map_or(0, |c| c.0)))
                        .collect();
                    if self.last_private > 0 {
                        let here: BTreeSet<u64> =
                            self.mine.values().flat_map(|m| m.keys().copied()).collect();
                        for user in here {
                            let key = format!("u{user}");
                            if !self.privates.contains_key(&key) {
                                owed.push((key, self.last_private));
                            }
                        }
                    }
                    for (key, after) in owed {
                        self.send_private_fill(&key, after);
                    }
                }
                client::Event::Message { channel, payload }
                    if channel == self.keys.bans_channel().as_bytes() =>
                {
                    let text = String::from_utf8_lossy(&payload);
                    let mut parts = text.splitn(3, ' ');
                    if let (Some(until), Some(node), Some(key)) =
                        (parts.next(), parts.next(), parts.next())
                        && node != self.node
                        && let Ok(until) = until.parse()
                    {
                        out.push(Outcome::Banned {
                            key: key.to_string(),
                            until,
                        });
                    }
                }
                client::Event::Message { channel, payload }
                    if channel == self.keys.gone_channel().as_bytes() =>
                {
                    let node = String::from_utf8_lossy(&payload).into_owned();
                    self.on_gone(&node, &mut out);
                }
                client::Event::Message { channel, payload }
                    if channel == self.keys.private_channel() =>
                {
                    if let Some(Published::Private(entry)) = Published::parse(&payload) {
                        self.on_private(entry, &mut out);
                    }
                }
                client::Event::Subscribed(channel) => {
                    if let Some(room) = self.room_of_channel(&channel)
                        && let Some(r) = self.rooms.get_mut(&room)
                    {
                        let outcome = r.order.resubscribed();
                        self.apply(&room, outcome, &mut out);
                        self.ask_versions(&room);
                        let cmd = self.cluster.members_cmd(&room);
                        self.presence_since.entry(room.clone()).or_default();
                        self.ask(cmd, Tag::Members(room));
                    }
                }
                client::Event::Message { channel, payload } => {
                    if let Some(room) = self.room_of_channel(&channel) {
                        match Published::parse(&payload) {
                            Some(Published::Message(entry)) => {
                                if let Some(r) = self.rooms.get_mut(&room) {
                                    let outcome = r.order.published(entry);
                                    self.apply(&room, outcome, &mut out);
                                }
                            }
                            Some(Published::Event(event)) => self.on_event(&room, &event, &mut out),
                            _ => {}
                        }
                    }
                }
            },
        }
        self.settled(&mut out);
        out
    }

    fn history(&mut self, room: &str, before: Option<u64>, limit: usize) -> Page {
        if !self.follow(room) {
            return Page {
                messages: Vec::new(),
                missing: Some(u64::MAX),
            };
        }
        let Some(r) = self.rooms.get(room) else {
            return Page::default();
        };
        let page = page_before(&r.cache, before, limit);
        if page.missing.is_none() {
            return page;
        }
        // Older than the cache: from the stream (the hub waits, at most
        // `--redis-warm-timeout`).
        let first_cached = r.cache.front().map_or(u64::MAX, |e| e.0);
        let upto = before.unwrap_or(u64::MAX).min(first_cached);
        let want = limit.saturating_sub(page.messages.len()).min(MAX_RANGE);
        if want == 0 {
            return page;
        }
        match self.read_stream(room, self.cluster.before_cmd(room, Some(upto), want)) {
            Ok(older) => {
                let missing = match older.first() {
                    _ if older.len() >= want => None,
                    Some(first) if first.prev == 0 => None,
                    Some(first) => Some(first.id),
                    None => page.missing,
                };
                let mut messages: Vec<Arc<str>> = live(older);
                messages.extend(page.messages);
                Page { messages, missing }
            }
            Err(e) => {
                log::warn!(target: "wschat::cluster", "room {room}: reading older messages: {e}");
                page
            }
        }
    }

    /// The room's messages after `after` and the private messages of
    /// `key` after it, in id order, both from this node's caches.
    fn since(&mut self, room: &str, key: &str, after: u64) -> Page {
        if !self.follow(room) {
            return Page {
                messages: Vec::new(),
                missing: Some(u64::MAX),
            };
        }
        let mut page = self
            .rooms
            .get(room)
            .map_or_else(Page::default, |r| page_after(&r.cache, after));
        if let Some(first_cached) = page.missing {
            page = self.since_from_stream(room, after, first_cached, page);
        }
        if key.is_empty() {
            return page;
        }
        self.follow_key(key);
        let (privates, private_missing) = self.privates_after(key, after);
        let mut all: Vec<(u64, Arc<str>)> = page
            .messages
            .into_iter()
            .map(|m| (serde_id(&m).unwrap_or(0), m))
            .chain(privates)
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all.dedup_by_key(|(id, _)| *id);
        let missing = match (page.missing, private_missing) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Page {
            messages: all.into_iter().map(|(_, m)| m).collect(),
            missing,
        }
    }

    fn privates_since(&mut self, key: &str, after: u64) -> Vec<Arc<str>> {
        self.follow_key(key);
        self.privates_after(key, after)
            .0
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// From `a`'s cache of private messages: the last `limit` between `a`
    /// and `b` below `before`; `missing` when the page reaches past the
    /// cache and the cache does not reach `a`'s first message.
    fn private_page(&mut self, (a, b): (&str, &str), before: Option<u64>, limit: usize) -> Page {
        if !self.follow_key(a) {
            return Page {
                messages: Vec::new(),
                missing: Some(u64::MAX),
            };
        }
        let Some(p) = self.privates.get(a) else {
            return Page::default();
        };
        let below = before.unwrap_or(u64::MAX);
        let between: Vec<&PrivateCached> = p
            .cache
            .iter()
            .filter(|c| c.0 < below && ((c.1 == a && c.2 == b) || (c.1 == b && c.2 == a)))
            .collect();
        let from = between.len().saturating_sub(limit);
        let missing = match p.cache.front() {
            Some(first) if !p.whole && between.len() < limit => Some(first.0),
            _ => None,
        };
        Page {
            messages: between[from..].iter().map(|c| c.3.clone()).collect(),
            missing,
        }
    }

    /// From `me`'s cache of private messages: a conversation older than
    /// what is cached ([`CACHE_PER_ROOM`] messages) is not listed.
    fn private_peers(&mut self, me: &str, read: &dyn Fn(&str) -> u64) -> Vec<Conversation> {
        self.follow_key(me);
        let Some(p) = self.privates.get(me) else {
            return Vec::new();
        };
        let mut peers: Vec<Conversation> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (id, from, to, json) in p.cache.iter().rev() {
            let peer = if from == me {
                to.as_str()
            } else {
                from.as_str()
            };
            let i = *index.entry(peer).or_insert_with(|| {
                peers.push(Conversation {
                    peer: peer.to_string(),
                    last: json.clone(),
                    unread: 0,
                });
                peers.len() - 1
            });
            if from == peer && *id > read(peer) {
                peers[i].unread += 1;
            }
        }
        peers
    }

    /// A message of a followed room's cache (the latest
    /// `--redis-cache` of each): kept deleted for every node
    /// (`wschat:room:R:versions`), announced to the nodes following the
    /// room, without waiting (when Redis is back, if it is not there).
    fn delete(&mut self, id: u64) -> Option<String> {
        let room = self.room_with(id)?;
        let live = self.message(id).is_some();
        if !live {
            return None;
        }
        self.set_version(&room, id, "");
        self.send_version(&room, id, "");
        Some(room)
    }

    /// From the caches of the followed rooms (the room a user is in is
    /// followed): an older message is not found.
    fn message(&mut self, id: u64) -> Option<Arc<str>> {
        let room = self.room_with(id)?;
        let r = self.rooms.get(&room)?;
        let at = r.cache.partition_point(|e| e.0 < id);
        let json = r.cache.get(at)?.2.clone();
        (!json.is_empty()).then_some(json)
    }

    /// As [`Log::delete`], with the new version.
    fn replace(&mut self, id: u64, json: &str) -> Option<String> {
        self.message(id)?;
        let room = self.room_with(id)?;
        self.set_version(&room, id, json);
        self.send_version(&room, id, json);
        Some(room)
    }

    fn replay(&self, needles: &[&str], each: &mut dyn FnMut(&str, &Value)) {
        self.inner.replay(needles, each)
    }

    fn budget(&self) -> Option<Arc<Budget>> {
        self.inner.budget()
    }

    fn data_dir(&self) -> Option<&Path> {
        self.inner.data_dir()
    }
}

/// A room's cached messages: id, the room's id before it, JSON; oldest
/// first.
type Cache = VecDeque<(u64, u64, Arc<str>)>;

/// The last `limit` cached messages below `before`; `missing` when the
/// answer reaches the cache's oldest message and that is not the room's
/// first (older ones are in the stream, or trimmed).
fn page_before(cache: &Cache, before: Option<u64>, limit: usize) -> Page {
    let before = before.unwrap_or(u64::MAX);
    // Deleted messages (an empty version) are not served.
    let below: Vec<&Arc<str>> = cache
        .iter()
        .take_while(|e| e.0 < before)
        .map(|e| &e.2)
        .filter(|json| !json.is_empty())
        .collect();
    let from = below.len().saturating_sub(limit);
    let messages = below[from..].iter().map(|&m| m.clone()).collect();
    let missing = match cache.front() {
        Some(first) if from == 0 && below.len() < limit && first.1 != 0 => Some(first.0),
        _ => None,
    };
    Page { messages, missing }
}

/// The cached messages after `after`; `missing` when the first of them
/// does not follow `after` directly (the ones between are not cached).
fn page_after(cache: &Cache, after: u64) -> Page {
    let picked: Vec<&(u64, u64, Arc<str>)> = cache.iter().filter(|e| e.0 > after).collect();
    let missing = match picked.first() {
        Some(first) if first.1 > after => Some(first.0),
        _ => None,
    };
    Page {
        messages: picked
            .into_iter()
            .filter(|e| !e.2.is_empty())
            .map(|e| e.2.clone())
            .collect(),
        missing,
    }
}

/// The messages of stream entries, deleted ones (an empty version) left
/// out.
fn live(entries: Vec<Entry>) -> Vec<Arc<str>> {
    entries
        .into_iter()
        .filter(|e| !e.json.is_empty())
        .map(|e| Arc::from(e.json))
        .collect()
}

/// The `id` of a message's JSON, if it has a numeric one.
fn serde_id(json: &str) -> Option<u64> {
    serde_json::from_str::<Value>(json)
        .ok()?
        .get("id")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_cut_at_its_id_only() {
        let t = template_of(r#"{"type":"chat","id":5,"room":"a"}"#, 5).unwrap();
        assert_eq!(t.with_id(12), r#"{"type":"chat","id":12,"room":"a"}"#);
        assert!(template_of(r#"{"type":"chat","room":"a"}"#, 5).is_none());
    }

    fn cache(entries: &[(u64, u64)]) -> Cache {
        entries
            .iter()
            .map(|&(id, prev)| (id, prev, Arc::from(id.to_string())))
            .collect()
    }

    fn ids(page: &Page) -> Vec<u64> {
        page.messages.iter().map(|m| m.parse().unwrap()).collect()
    }

    #[test]
    fn pages_of_the_cache_say_when_they_reach_past_it() {
        // The room from its first message: whole.
        let whole = cache(&[(3, 0), (7, 3), (9, 7), (20, 9)]);
        let p = page_before(&whole, None, 2);
        assert_eq!((ids(&p), p.missing), (vec![9, 20], None));
        let p = page_before(&whole, Some(9), 10);
        assert_eq!((ids(&p), p.missing), (vec![3, 7], None));
        let p = page_after(&whole, 3);
        assert_eq!((ids(&p), p.missing), (vec![7, 9, 20], None));
        let p = page_after(&whole, 0);
        assert_eq!((ids(&p), p.missing), (vec![3, 7, 9, 20], None));
        assert!(page_after(&whole, 20).messages.is_empty());
        // Older messages than the cache holds: a page reaching past it, or
        // a resume from before it, is not whole.
        let recent = cache(&[(7, 3), (9, 7), (20, 9)]);
        let p = page_before(&recent, None, 10);
        assert_eq!((ids(&p), p.missing), (vec![7, 9, 20], Some(7)));
        let p = page_before(&recent, None, 3);
        assert_eq!((ids(&p), p.missing), (vec![7, 9, 20], None));
        let p = page_before(&recent, Some(7), 3);
        assert_eq!((ids(&p), p.missing), (vec![], Some(7)));
        let p = page_after(&recent, 2);
        assert_eq!((ids(&p), p.missing), (vec![7, 9, 20], Some(7)));
        let p = page_after(&recent, 3);
        assert_eq!((ids(&p), p.missing), (vec![7, 9, 20], None));
        // A deleted message (an empty version) is not served, and a page
        // takes the live ones.
        let mut gone = cache(&[(3, 0), (7, 3), (9, 7), (20, 9)]);
        gone[2].2 = Arc::from("");
        let p = page_before(&gone, None, 2);
        assert_eq!((ids(&p), p.missing), (vec![7, 20], None));
        let p = page_after(&gone, 3);
        assert_eq!((ids(&p), p.missing), (vec![7, 20], None));
    }
}
