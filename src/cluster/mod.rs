//! Several wschat nodes as one, through Redis: the client and the cluster's
//! primitives (issue 23; docs/cluster.md), and the store a node runs with
//! `--redis` ([`log::RedisLog`]).
//!
//! | file | what |
//! |---|---|
//! | [`accounts`] | the desk's agent accounts in Redis (`wschat agent … --redis`) |
//! | [`desk`] | the desk across nodes: the lease of the node that runs it, its records' stream |
//! | [`resp`] | RESP2, sans-I/O: commands, replies, pub/sub pushes |
//! | [`client`] | the connections, on threads of their own, behind channels; re-dial, re-subscribe |
//! | [`order`] | a room's delivery in the log's order: gaps seen by `prev`, filled from the stream |
//! | [`log`] | [`log::RedisLog`], the hub's store with `--redis`: room messages through Redis |
//! | this file | [`Keys`] (the key layout), the Lua scripts, [`Cluster`]: append, ranges, presence |
//!
//! Every operation exists twice: as a [`Cmd`] builder with a parser of its
//! reply, for the hub (which sends with [`Client::send`] and reads the
//! [`Reply`](client::Reply) from its own channel, never waiting on the
//! network), and as a blocking method of [`Cluster`] built from the two,
//! for the command line and the tests.
//!
//! Ids: one counter for the whole cluster (`{prefix}:id`) hands out every
//! message id, in every room, so an id is a wschat message id as the
//! embedded store's are (one `u64` sequence across rooms): ids never
//! repeat, and `since` means the same on every node. Within a room ids
//! grow but are not consecutive, so each entry also names the room's
//! previous id ([`Entry::prev`]): a node that last saw id P of a room and
//! receives a message whose `prev` is not P has missed something, and
//! reads the stream after P before delivering it.

pub mod accounts;
pub mod client;
pub mod desk;
pub mod log;
pub mod order;
pub mod resp;

use client::{Client, Cmd, Error, Script};
use resp::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Default key prefix: several deployments may share one Redis under
/// different prefixes.
pub const DEFAULT_PREFIX: &str = "wschat";
/// Default most entries kept in a room's stream (`MAXLEN ~`): the embedded
/// store's default `--history-keep`.
pub const DEFAULT_STREAM_MAXLEN: u64 = 10_000;
/// Default age past which a room's entries go (the embedded store's
/// default retention, 30 days), in milliseconds.
pub const DEFAULT_MAX_AGE_MS: u64 = 30 * 24 * 3600 * 1000;
/// How far apart in time the id marks are, at most, that age trimming
/// goes by (`{prefix}:marks`): entries are dropped at most this much later
/// than their age says (a sixteenth of the age, for ages under 16 minutes).
pub const MARK_INTERVAL_MS: u64 = 60_000;
/// Default time a node's presence lasts without a heartbeat.
pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(15);
/// How long an append's token is remembered (see [`APPEND_LUA`]): a node
/// asks again within this time or not at all.
pub const TOKEN_TTL_SECS: u64 = 600;
/// Most entries one range read returns.
pub const MAX_RANGE: usize = 1000;

/// The names of everything wschat keeps in Redis (docs/cluster.md, "Key
/// layout").
///
/// ```
/// use wschat::cluster::Keys;
/// let k = Keys::new("wschat");
/// assert_eq!(k.counter(), "wschat:id");
/// assert_eq!(k.stream("lobby"), b"wschat:room:lobby:log");
/// assert_eq!(k.channel("lobby"), b"wschat:room:lobby");
/// ```
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    fn room_key(&self, room: &str, suffix: &str) -> Vec<u8> {
        format!("{}:room:{room}{suffix}", self.prefix).into_bytes()
    }

    /// The string counter of the last id given out, cluster-wide.
    pub fn counter(&self) -> String {
        format!("{}:id", self.prefix)
    }

    /// An anonymous session's user id, by the session's digest.
    pub fn session(&self, digest: &str) -> String {
        format!("{}:session:{digest}", self.prefix)
    }

    /// The hash of verified identities: field a `sub`, value its user id.
    pub fn identities(&self) -> String {
        format!("{}:subs", self.prefix)
    }

    /// The hash of the desk's agent accounts: field a name in lower case,
    /// value the account's JSON ([`accounts`]).
    pub fn agents(&self) -> String {
        format!("{}:agents", self.prefix)
    }

    /// The version of the agent accounts, raised by every change.
    pub fn agents_version(&self) -> String {
        format!("{}:agents:v", self.prefix)
    }

    /// The desk's canned replies: field the shortcut, value the reply's
    /// JSON ([`accounts`]: kept as the accounts are).
    pub fn canned(&self) -> String {
        format!("{}:canned", self.prefix)
    }

    /// The version of the canned replies, raised by every change.
    pub fn canned_version(&self) -> String {
        format!("{}:canned:v", self.prefix)
    }

    /// The desk's lease: who runs the desk ([`desk`]).
    pub fn desk_lease(&self) -> String {
        format!("{}:desk:lease", self.prefix)
    }

    /// The desk's records, a stream ([`desk`]).
    pub fn desk_log(&self) -> String {
        format!("{}:desk:log", self.prefix)
    }

    /// A room's stream: its messages, entry id `<id>-0`.
    pub fn stream(&self, room: &str) -> Vec<u8> {
        self.room_key(room, ":log")
    }

    /// A room's later versions of its messages (edits, reactions): field
    /// the message's id, value its JSON now, or empty once deleted.
    pub fn versions(&self, room: &str) -> Vec<u8> {
        self.room_key(room, ":versions")
    }

    /// The channel a room's messages and events are published to.
    pub fn channel(&self, room: &str) -> Vec<u8> {
        self.room_key(room, "")
    }

    /// The hash of each room's last message id (field: the room).
    pub fn last_ids(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    /// The sorted set of id marks (score: Redis time in ms, member: the
    /// first id given out at or after it) that age trimming goes by.
    pub fn marks(&self) -> String {
        format!("{}:marks", self.prefix)
    }

    /// What an append with this token answered (`<id> <prev>`), for
    /// [`TOKEN_TTL_SECS`].
    pub fn token(&self, token: &str) -> String {
        format!("{}:sent:{token}", self.prefix)
    }

    /// The sorted set of nodes (score: when its presence expires, Redis
    /// time in ms).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A room's presence hash: field `<node> <member>`, value the member's
    /// description (the caller's bytes).
    pub fn presence(&self, room: &str) -> Vec<u8> {
        format!("{}:presence:{room}", self.prefix).into_bytes()
    }

    /// The set of rooms a node has members in.
    pub fn node_rooms(&self, node: &str) -> String {
        format!("{}:node:{node}:rooms", self.prefix)
    }

    /// The channel a node's end is announced on (the node's name is the
    /// payload).
    pub fn gone_channel(&self) -> String {
        format!("{}:gone", self.prefix)
    }

    /// The stream of one user's private messages (both ways; `key` is the
    /// user's key, `u<id>`): entry id `<id>-0`, fields `f` (the sender's
    /// key), `t` (the addressee's) and `m` (the JSON).
    pub fn privates(&self, key: &str) -> Vec<u8> {
        format!("{}:pm:{key}:log", self.prefix).into_bytes()
    }

    /// The one channel every private message is published on (every node
    /// subscribes to it).
    pub fn private_channel(&self) -> Vec<u8> {
        format!("{}:private", self.prefix).into_bytes()
    }

    /// The hash of bans in force on every node: field what is banned
    /// (`sub:…`, `session:…`, `user:…`), value when the ban ends (epoch
    /// ms).
    pub fn bans(&self) -> String {
        format!("{}:bans", self.prefix)
    }

    /// The channel a new ban is announced on: `<until> <node> <key>`.
    pub fn bans_channel(&self) -> String {
        format!("{}:banned", self.prefix)
    }

    /// The hash of users' names (field: the user id), so that a node can
    /// name a user it has not seen.
    pub fn names(&self) -> String {
        format!("{}:names", self.prefix)
    }
}

/// The append script: one id, the stream entry, the trims and the
/// publish, atomically, in one round trip. See docs/cluster.md for its
/// contract.
///
/// KEYS: counter, stream, last ids, marks, the append's token key.
/// ARGV: room, channel, text before the id, text after it, MAXLEN (0:
/// none), max age in ms (0: none), mark interval in ms, token (may be
/// empty), how long the token is remembered in seconds.
///
/// A token makes the append idempotent: the same token again, while it is
/// remembered, appends nothing and answers the first call's id and prev,
/// so a node whose connection failed before the reply can ask again
/// without storing or publishing the message twice.
pub const APPEND_LUA: &str = r#"
if ARGV[8] ~= '' then
  local done = redis.call('GET', KEYS[5])
  if done then
    local sp = string.find(done, ' ', 1, true)
    return {string.sub(done, 1, sp - 1), string.sub(done, sp + 1)}
  end
end
local id = redis.call('INCR', KEYS[1])
local prev = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if id <= prev then
  id = prev + 1
  redis.call('SET', KEYS[1], string.format('%d', id))
end
local ids = string.format('%d', id)
local prevs = string.format('%d', prev)
local msg = ARGV[3] .. ids .. ARGV[4]
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], ids .. '-0', 'p', prevs, 'm', msg)
else
  redis.call('XADD', KEYS[2], ids .. '-0', 'p', prevs, 'm', msg)
end
redis.call('HSET', KEYS[3], ARGV[1], ids)
local age = tonumber(ARGV[6])
if age > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if #last == 0 or now - tonumber(last[2]) >= tonumber(ARGV[7]) then
    redis.call('ZADD', KEYS[4], now, ids)
  end
  local old = redis.call('ZREVRANGEBYSCORE', KEYS[4], now - age, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #old > 0 then
    redis.call('XTRIM', KEYS[2], 'MINID', old[1] .. '-0')
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. old[2])
  end
end
redis.call('PUBLISH', ARGV[2], 'm ' .. ids .. ' ' .. prevs .. ' ' .. msg)
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[5], ids .. ' ' .. prevs, 'EX', ARGV[9])
end
return {ids, prevs}
"#;

/// The private message script: like [`APPEND_LUA`], one id from the
/// counter, the message under both users' streams (once when they are the
/// same user), and the publish on the private channel, atomically.
///
/// KEYS: counter, the sender's stream, the addressee's stream, the token
/// key. ARGV: channel, text before the id, text after it, the sender's
/// key, the addressee's key, MAXLEN (0: none), token (may be empty), how
/// long the token is remembered in seconds. Returns `[id, 0]`. Publishes
/// `p <id> <from> <to> <json>`.
pub const PRIVATE_LUA: &str = r#"
if ARGV[7] ~= '' then
  local done = redis.call('GET', KEYS[4])
  if done then
    return {done, '0'}
  end
end
local id = redis.call('INCR', KEYS[1])
local ids = string.format('%d', id)
local msg = ARGV[2] .. ids .. ARGV[3]
local function add(key)
  if tonumber(ARGV[6]) > 0 then
    redis.call('XADD', key, 'MAXLEN', '~', ARGV[6], ids .. '-0', 'f', ARGV[4], 't', ARGV[5], 'm', msg)
  else
    redis.call('XADD', key, ids .. '-0', 'f', ARGV[4], 't', ARGV[5], 'm', msg)
  end
end
add(KEYS[2])
if KEYS[3] ~= KEYS[2] then
  add(KEYS[3])
end
redis.call('PUBLISH', ARGV[1], 'p ' .. ids .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. msg)
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[4], ids, 'EX', ARGV[8])
end
return {ids, '0'}
"#;

/// A room message's new version (an edit, a reaction) or its deletion
/// (an empty version): kept for every node's reads, and published to the
/// ones following the room, in one step. KEYS: the room's versions.
/// ARGV: the message's id, its JSON now (empty: deleted), the room's
/// channel, the event to publish.
pub const VERSION_LUA: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"#;

/// Raise the counter to at least `ARGV[1]` (a node joining with ids of its
/// own already given out). KEYS: counter.
pub const FLOOR_LUA: &str = r#"
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor > now then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return string.format('%d', now)
"#;

/// Reserve `ARGV[1]` ids for a node's own records (private messages, desk
/// records: everything not a room message), raising the counter to at
/// least `ARGV[2]` first. KEYS: counter. Returns the block's last id; the
/// block is the `ARGV[1]` ids up to it, never given out again.
pub const RESERVE_LUA: &str = r#"
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[2]) > now then
  redis.call('SET', KEYS[1], ARGV[2])
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"#;

/// The user id of a verified identity, the same on every node: the one
/// recorded for `ARGV[1]`, or `ARGV[2]` recorded for it now. KEYS: the
/// identities' hash. Returns the id.
pub const IDENTITY_LUA: &str = r#"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then
  return tonumber(id)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return tonumber(ARGV[2])
"#;

/// A node's heartbeat: its presence lasts `ARGV[2]` ms more, by Redis's
/// clock. KEYS: nodes. ARGV: node, ttl. Returns Redis's time in ms and 1
/// if the node was not listed (its first beat, or it was reaped).
pub const HEARTBEAT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {now, added}
"#;

/// A member of a room on a node. KEYS: presence hash, node's rooms.
/// ARGV: node, member, description, room.
pub const JOIN_LUA: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"#;

/// The members of a room on live nodes. KEYS: presence hash, nodes.
/// Returns a flat list: node, member, description, …
pub const MEMBERS_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local sp = string.find(all[i], ' ', 1, true)
  if sp then
    local node = string.sub(all[i], 1, sp - 1)
    if alive[node] == nil then
      local until_ms = redis.call('ZSCORE', KEYS[2], node)
      alive[node] = until_ms ~= false and tonumber(until_ms) >= now
    end
    if alive[node] then
      table.insert(out, node)
      table.insert(out, string.sub(all[i], sp + 1))
      table.insert(out, all[i + 1])
    end
  end
end
return out
"#;

/// Take the nodes whose presence expired (or the one named in `ARGV[2]`)
/// out: their members leave every room, and each node's name is
/// published on the gone channel. KEYS: nodes. ARGV: prefix, node or ''.
/// Returns the nodes taken out.
pub const REAP_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nodes
if ARGV[2] ~= '' then
  nodes = {ARGV[2]}
else
  nodes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
end
for _, node in ipairs(nodes) do
  local roomsKey = ARGV[1] .. ':node:' .. node .. ':rooms'
  local mine = node .. ' '
  for _, room in ipairs(redis.call('SMEMBERS', roomsKey)) do
    local hash = ARGV[1] .. ':presence:' .. room
    for _, field in ipairs(redis.call('HKEYS', hash)) do
      if string.sub(field, 1, #mine) == mine then
        redis.call('HDEL', hash, field)
      end
    end
  end
  redis.call('DEL', roomsKey)
  redis.call('ZREM', KEYS[1], node)
  redis.call('PUBLISH', ARGV[1] .. ':gone', node)
end
return nodes
"#;

/// The scripts, loaded once per process.
struct Scripts {
    append: Arc<Script>,
    private: Arc<Script>,
    version: Arc<Script>,
    floor: Arc<Script>,
    reserve: Arc<Script>,
    identity: Arc<Script>,
    heartbeat: Arc<Script>,
    join: Arc<Script>,
    members: Arc<Script>,
    reap: Arc<Script>,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        append: Arc::new(Script::new(APPEND_LUA)),
        private: Arc::new(Script::new(PRIVATE_LUA)),
        version: Arc::new(Script::new(VERSION_LUA)),
        floor: Arc::new(Script::new(FLOOR_LUA)),
        reserve: Arc::new(Script::new(RESERVE_LUA)),
        identity: Arc::new(Script::new(IDENTITY_LUA)),
        heartbeat: Arc::new(Script::new(HEARTBEAT_LUA)),
        join: Arc::new(Script::new(JOIN_LUA)),
        members: Arc::new(Script::new(MEMBERS_LUA)),
        reap: Arc::new(Script::new(REAP_LUA)),
    })
}

/// A message to append: its JSON is `before`, the id the script gives it
/// in decimal, then `after`, so that the id inside the message is the one
/// it is stored and published under.
///
/// ```
/// use wschat::cluster::Template;
/// let t = Template::new(r#"{"type":"chat","id":"#, r#","text":"hi"}"#);
/// assert_eq!(t.with_id(42), r#"{"type":"chat","id":42,"text":"hi"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The text before the id.
    pub before: String,
    /// The text after it.
    pub after: String,
}

impl Template {
    /// A template from the two halves.
    pub fn new(before: &str, after: &str) -> Template {
        Template {
            before: before.to_string(),
            after: after.to_string(),
        }
    }

    /// The message with this id.
    pub fn with_id(&self, id: u64) -> String {
        format!("{}{id}{}", self.before, self.after)
    }
}

/// How a room's stream is trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// Most entries (approximately: `MAXLEN ~`); 0 keeps any number.
    pub max_len: u64,
    /// Oldest entry, in ms (give or take [`Trim::mark_interval_ms`]); 0
    /// keeps any age. Trimming happens as messages are appended to the
    /// room.
    pub max_age_ms: u64,
}

impl Trim {
    /// How far apart the id marks are: a sixteenth of the age, between 1
    /// ms and [`MARK_INTERVAL_MS`].
    pub fn mark_interval_ms(&self) -> u64 {
        (self.max_age_ms / 16).clamp(1, MARK_INTERVAL_MS)
    }
}

impl Default for Trim {
    fn default() -> Trim {
        Trim {
            max_len: DEFAULT_STREAM_MAXLEN,
            max_age_ms: DEFAULT_MAX_AGE_MS,
        }
    }
}

/// What the append script answers: the message's id and the room's
/// previous message id (0 for its first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The id given to the message.
    pub id: u64,
    /// The room's id before it.
    pub prev: u64,
}

/// One message of a room's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: u64,
    /// The room's message before it when it was appended (0: none).
    pub prev: u64,
    /// The message's JSON, its id inside.
    pub json: String,
}

/// What arrives on a room's channel (docs/cluster.md, "Channels").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// `m <id> <prev> <json>`: a message appended by the script.
    Message(Entry),
    /// `e <bytes>`: an event a node published ([`Cluster::event_cmd`]):
    /// not stored, for whoever is there (typing, a join).
    Event(Vec<u8>),
    /// `p <id> <from> <to> <json>`: a private message stored by
    /// [`PRIVATE_LUA`] (on the private channel).
    Private(PrivateEntry),
}

/// One private message of a user's stream, or as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateEntry {
    /// Its id.
    pub id: u64,
    /// The sender's key (`u<id>`).
    pub from: String,
    /// The addressee's key.
    pub to: String,
    /// The message's JSON, its id inside.
    pub json: String,
}

impl Published {
    /// Read a payload; `None` if it is neither form.
    ///
    /// ```
    /// use wschat::cluster::{Entry, Published};
    /// let p = Published::parse(b"m 7 3 {\"id\":7}").unwrap();
    /// assert_eq!(p, Published::Message(Entry { id: 7, prev: 3, json: "{\"id\":7}".into() }));
    /// assert_eq!(Published::parse(b"e typing"), Some(Published::Event(b"typing".to_vec())));
    /// assert_eq!(Published::parse(b"m x"), None);
    /// let p = Published::parse(b"p 9 u1 u2 {\"id\":9}").unwrap();
    /// assert!(matches!(p, Published::Private(e) if e.id == 9 && e.from == "u1" && e.to == "u2"));
    /// ```
    pub fn parse(payload: &[u8]) -> Option<Published> {
        match payload {
            [b'p', b' ', rest @ ..] => {
                let text = std::str::from_utf8(rest).ok()?;
                let (id, rest) = text.split_once(' ')?;
                let (from, rest) = rest.split_once(' ')?;
                let (to, json) = rest.split_once(' ')?;
                Some(Published::Private(PrivateEntry {
                    id: id.parse().ok()?,
                    from: from.to_string(),
                    to: to.to_string(),
                    json: json.to_string(),
                }))
            }
            [b'e', b' ', rest @ ..] => Some(Published::Event(rest.to_vec())),
            [b'm', b' ', rest @ ..] => {
                let text = std::str::from_utf8(rest).ok()?;
                let (id, rest) = text.split_once(' ')?;
                let (prev, json) = rest.split_once(' ')?;
                Some(Published::Message(Entry {
                    id: id.parse().ok()?,
                    prev: prev.parse().ok()?,
                    json: json.to_string(),
                }))
            }
            _ => None,
        }
    }
}

/// What a heartbeat answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Redis's time, in ms.
    pub now_ms: u64,
    /// The node was not listed: its first beat, or it was reaped while it
    /// was away (a stall longer than its TTL). Its members must be
    /// recorded again ([`Cluster::join_cmd`]).
    pub rejoin: bool,
}

/// A member of a room somewhere in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node it is connected to.
    pub node: String,
    /// Its key on that node (the caller's: a connection or user id).
    pub member: String,
    /// Its description, as given to [`Cluster::join_cmd`].
    pub info: Vec<u8>,
}

fn bad(what: &str, value: &Value) -> Error {
    Error::Reply(format!("{what}: {value:?}"))
}

/// Read an `XRANGE`/`XREVRANGE` reply with `parse` for each entry
/// (`what` names an entry in the error), oldest first: an `XREVRANGE`
/// reply comes newest first.
fn parse_entries<T>(
    value: &Value,
    what: &str,
    parse: impl Fn(&Value) -> Option<T>,
    id: impl Fn(&T) -> u64,
) -> Result<Vec<T>, Error> {
    let items = value.as_array().ok_or_else(|| bad("range", value))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(parse(item).ok_or_else(|| bad(what, item))?);
    }
    if out.len() > 1 && id(&out[0]) > id(&out[1]) {
        out.reverse();
    }
    Ok(out)
}

fn as_u64(value: &Value) -> Option<u64> {
    u64::try_from(value.as_i64()?).ok()
}

/// A node name must not hold a space (presence fields are
/// `<node> <member>`) and must be usable in a key.
///
/// ```
/// assert!(wschat::cluster::valid_node("node-1"));
/// assert!(!wschat::cluster::valid_node("a b"));
/// ```
pub fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 64
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The cluster's primitives on one [`Client`]: see the module's text.
pub struct Cluster {
    client: Client,
    keys: Keys,
    trim: Trim,
    timeout: Duration,
}

impl Cluster {
    /// The primitives over `client`, under `keys`, trimming streams as
    /// `trim` says; the blocking methods wait at most `timeout`.
    pub fn new(client: Client, keys: Keys, trim: Trim, timeout: Duration) -> Cluster {
        Cluster {
            client,
            keys,
            trim,
            timeout,
        }
    }

    /// The client underneath (to send the `_cmd`s without waiting).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn call<T>(&self, cmd: Cmd, parse: impl FnOnce(Value) -> Result<T, Error>) -> Result<T, Error> {
        parse(self.client.call(cmd, self.timeout)?)
    }

    // ---------------------------------------------------------- messages

    /// The append script's call for a message of `room`. With a `token`
    /// (unique to this message: the node's name and a sequence number of
    /// its own), the same call again within [`TOKEN_TTL_SECS`] appends
    /// nothing and answers the same id: send it again after an
    /// [`Error::Disconnected`].
    pub fn append_cmd(&self, room: &str, message: &Template, token: Option<&str>) -> Cmd {
        let k = &self.keys;
        let token = token.unwrap_or("");
        Cmd::eval(
            &scripts().append,
            &[
                k.counter().into_bytes(),
                k.stream(room),
                k.last_ids().into_bytes(),
                k.marks().into_bytes(),
                k.token(token).into_bytes(),
            ],
            &[
                room.as_bytes().to_vec(),
                k.channel(room),
                message.before.clone().into_bytes(),
                message.after.clone().into_bytes(),
                self.trim.max_len.to_string().into_bytes(),
                self.trim.max_age_ms.to_string().into_bytes(),
                self.trim.mark_interval_ms().to_string().into_bytes(),
                token.as_bytes().to_vec(),
                TOKEN_TTL_SECS.to_string().into_bytes(),
            ],
        )
    }

    /// The private message script's call (see [`PRIVATE_LUA`]): a message
    /// from key `from` to key `to`, with a token as
    /// [`Cluster::append_cmd`]'s. Its reply reads with
    /// [`Cluster::parse_appended`] (`prev` is 0).
    pub fn private_cmd(
        &self,
        from: &str,
        to: &str,
        message: &Template,
        token: Option<&str>,
    ) -> Cmd {
        let k = &self.keys;
        let token = token.unwrap_or("");
        Cmd::eval(
            &scripts().private,
            &[
                k.counter().into_bytes(),
                k.privates(from),
                k.privates(to),
                k.token(token).into_bytes(),
            ],
            &[
                k.private_channel(),
                message.before.clone().into_bytes(),
                message.after.clone().into_bytes(),
                from.as_bytes().to_vec(),
                to.as_bytes().to_vec(),
                self.trim.max_len.to_string().into_bytes(),
                token.as_bytes().to_vec(),
                TOKEN_TTL_SECS.to_string().into_bytes(),
            ],
        )
    }

    /// Store a private message from key `from` to key `to` and publish it.
    pub fn private(&self, from: &str, to: &str, message: &Template) -> Result<Appended, Error> {
        self.call(
            self.private_cmd(from, to, message, None),
            Cluster::parse_appended,
        )
    }

    /// The read of at most `limit` (up to [`MAX_RANGE`]) private messages
    /// of user `key` before id `before` (`None`: the newest).
    pub fn privates_before_cmd(&self, key: &str, before: Option<u64>, limit: usize) -> Cmd {
        let end = before.map_or("+".to_string(), |b| format!("({b}-0"));
        Cmd::new("XREVRANGE")
            .arg(self.keys.privates(key))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit.clamp(1, MAX_RANGE).to_string())
    }

    /// The read of at most `limit` private messages of user `key` after
    /// id `after`, oldest first.
    pub fn privates_after_cmd(&self, key: &str, after: u64, limit: usize) -> Cmd {
        Cmd::new("XRANGE")
            .arg(self.keys.privates(key))
            .arg(format!("({after}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(limit.clamp(1, MAX_RANGE).to_string())
    }

    /// Read a range reply of a user's private stream, oldest first.
    pub fn parse_private_range(value: Value) -> Result<Vec<PrivateEntry>, Error> {
        parse_entries(&value, "private entry", parse_private_entry, |e| e.id)
    }

    /// Private messages of user `key` before `before` (`None`: the
    /// newest), at most `limit`, oldest first.
    pub fn read_privates_before(
        &self,
        key: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<PrivateEntry>, Error> {
        self.call(
            self.privates_before_cmd(key, before, limit),
            Cluster::parse_private_range,
        )
    }

    /// Read the append script's reply.
    pub fn parse_appended(value: Value) -> Result<Appended, Error> {
        match value.as_array() {
            Some([id, prev]) => match (as_u64(id), as_u64(prev)) {
                (Some(id), Some(prev)) => Ok(Appended { id, prev }),
                _ => Err(bad("append", &value)),
            },
            _ => Err(bad("append", &value)),
        }
    }

    /// Append a message to `room`: it gets the next id, goes into the
    /// room's stream and is published on its channel, all or nothing.
    pub fn append(&self, room: &str, message: &Template) -> Result<Appended, Error> {
        self.call(
            self.append_cmd(room, message, None),
            Cluster::parse_appended,
        )
    }

    /// [`Cluster::append`] with a token: see [`Cluster::append_cmd`].
    pub fn append_once(
        &self,
        room: &str,
        message: &Template,
        token: &str,
    ) -> Result<Appended, Error> {
        self.call(
            self.append_cmd(room, message, Some(token)),
            Cluster::parse_appended,
        )
    }

    /// The call that raises the id counter to at least `floor`.
    pub fn raise_ids_cmd(&self, floor: u64) -> Cmd {
        Cmd::eval(
            &scripts().floor,
            &[self.keys.counter()],
            &[floor.to_string()],
        )
    }

    /// Make every id given out from now on greater than `floor` (a node
    /// that served alone before must not see its ids given out again).
    /// Returns the counter's value.
    pub fn raise_ids(&self, floor: u64) -> Result<u64, Error> {
        self.call(self.raise_ids_cmd(floor), |v| {
            as_u64(&v).ok_or_else(|| bad("floor", &v))
        })
    }

    /// The call that reserves a block of `count` ids (see
    /// [`RESERVE_LUA`]), the counter raised to at least `floor` first.
    pub fn reserve_ids_cmd(&self, count: u64, floor: u64) -> Cmd {
        Cmd::eval(
            &scripts().reserve,
            &[self.keys.counter()],
            &[count.to_string(), floor.to_string()],
        )
    }

    /// The block of `count` ids a [`Cluster::reserve_ids_cmd`] answered:
    /// `first..end`.
    pub fn parse_reserved(value: Value, count: u64) -> Result<std::ops::Range<u64>, Error> {
        match as_u64(&value) {
            Some(last) if last >= count && count > 0 => Ok(last + 1 - count..last + 1),
            _ => Err(bad("reserve", &value)),
        }
    }

    /// Reserve a block of `count` ids, never given out by the counter
    /// again: ids of a node's own records that can never equal a room
    /// message's id, or another node's.
    pub fn reserve_ids(&self, count: u64, floor: u64) -> Result<std::ops::Range<u64>, Error> {
        self.call(self.reserve_ids_cmd(count, floor), |v| {
            Cluster::parse_reserved(v, count)
        })
    }

    /// The user id of the verified identity `sub` on every node: the one
    /// recorded first (by any node), or `proposed`, recorded now.
    pub fn identity_of(&self, sub: &str, proposed: u64) -> Result<u64, Error> {
        let cmd = Cmd::eval(
            &scripts().identity,
            &[self.keys.identities()],
            &[sub.to_string(), proposed.to_string()],
        );
        self.call(cmd, |v| as_u64(&v).ok_or_else(|| bad("identity", &v)))
    }

    /// The read of at most `limit` (up to [`MAX_RANGE`]) messages of
    /// `room` after id `after`, oldest first.
    pub fn after_cmd(&self, room: &str, after: u64, limit: usize) -> Cmd {
        Cmd::new("XRANGE")
            .arg(self.keys.stream(room))
            .arg(format!("({after}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(limit.clamp(1, MAX_RANGE).to_string())
    }

    /// The read of at most `limit` (up to [`MAX_RANGE`]) messages of
    /// `room` before id `before` (`None`: the newest), newest first as
    /// Redis gives them; [`Cluster::parse_range`] puts them oldest first.
    pub fn before_cmd(&self, room: &str, before: Option<u64>, limit: usize) -> Cmd {
        let end = before.map_or("+".to_string(), |b| format!("({b}-0"));
        Cmd::new("XREVRANGE")
            .arg(self.keys.stream(room))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit.clamp(1, MAX_RANGE).to_string())
    }

    /// Read an `XRANGE`/`XREVRANGE` reply as entries, oldest first.
    pub fn parse_range(value: Value) -> Result<Vec<Entry>, Error> {
        parse_entries(&value, "range entry", parse_entry, |e| e.id)
    }

    /// Messages of `room` after `after`, oldest first. None missing
    /// between `after` and the first returned when that one's `prev` is at
    /// most `after` (see [`complete_after`]).
    pub fn read_after(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Entry>, Error> {
        self.call(self.after_cmd(room, after, limit), Cluster::parse_range)
    }

    /// Messages of `room` before `before` (`None`: the newest), at most
    /// `limit`, oldest first.
    pub fn read_before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Entry>, Error> {
        self.call(self.before_cmd(room, before, limit), Cluster::parse_range)
    }

    /// The call that keeps message `id`'s version `json` in `room` (empty:
    /// deleted) and publishes it on the room's channel as an event
    /// (`e r <node> <id> <json>`, or `e d <node> <id>`), so every node
    /// serves it.
    pub fn version_cmd(&self, room: &str, node: &str, id: u64, json: &str) -> Cmd {
        let event = match json {
            "" => format!("e d {node} {id}"),
            _ => format!("e r {node} {id} {json}"),
        };
        Cmd::eval(
            &scripts().version,
            &[self.keys.versions(room)],
            &[
                id.to_string().into_bytes(),
                json.as_bytes().to_vec(),
                self.keys.channel(room),
                event.into_bytes(),
            ],
        )
    }

    /// The call that reads the versions of messages `ids` of `room`: an
    /// array, one entry per id, nil for a message never changed.
    pub fn versions_cmd(&self, room: &str, ids: &[u64]) -> Cmd {
        let mut cmd = Cmd::new("HMGET").arg(self.keys.versions(room));
        for id in ids {
            cmd = cmd.arg(id.to_string());
        }
        cmd
    }

    /// The call that publishes an event (not stored) to `room`'s channel.
    pub fn event_cmd(&self, room: &str, event: &[u8]) -> Cmd {
        let mut payload = b"e ".to_vec();
        payload.extend_from_slice(event);
        Cmd::new("PUBLISH")
            .arg(self.keys.channel(room))
            .arg(payload)
    }

    /// Publish an event to `room`'s channel; how many subscribers (nodes)
    /// got it.
    pub fn publish_event(&self, room: &str, event: &[u8]) -> Result<u64, Error> {
        self.call(self.event_cmd(room, event), |v| {
            as_u64(&v).ok_or_else(|| bad("publish", &v))
        })
    }

    // ---------------------------------------------------------- presence

    /// The heartbeat call of `node`: its members count for `ttl` more.
    pub fn heartbeat_cmd(&self, node: &str, ttl: Duration) -> Cmd {
        Cmd::eval(
            &scripts().heartbeat,
            &[self.keys.nodes()],
            &[node.to_string(), ttl.as_millis().to_string()],
        )
    }

    /// Read the heartbeat script's reply.
    pub fn parse_heartbeat(value: Value) -> Result<Heartbeat, Error> {
        match value.as_array() {
            Some([now, added]) => match (as_u64(now), as_u64(added)) {
                (Some(now_ms), Some(added)) => Ok(Heartbeat {
                    now_ms,
                    rejoin: added == 1,
                }),
                _ => Err(bad("heartbeat", &value)),
            },
            _ => Err(bad("heartbeat", &value)),
        }
    }

    /// Beat `node`'s heart.
    pub fn heartbeat(&self, node: &str, ttl: Duration) -> Result<Heartbeat, Error> {
        self.call(self.heartbeat_cmd(node, ttl), Cluster::parse_heartbeat)
    }

    /// The call that records `member` (described by `info`) in `room` on
    /// `node`.
    pub fn join_cmd(&self, node: &str, room: &str, member: &str, info: &[u8]) -> Cmd {
        Cmd::eval(
            &scripts().join,
            &[
                self.keys.presence(room),
                self.keys.node_rooms(node).into_bytes(),
            ],
            &[node.as_bytes(), member.as_bytes(), info, room.as_bytes()],
        )
    }

    /// Record `member` in `room` on `node`.
    pub fn join(&self, node: &str, room: &str, member: &str, info: &[u8]) -> Result<(), Error> {
        self.call(self.join_cmd(node, room, member, info), |_| Ok(()))
    }

    /// The call that takes `member` of `node` out of `room`.
    pub fn leave_cmd(&self, node: &str, room: &str, member: &str) -> Cmd {
        Cmd::new("HDEL")
            .arg(self.keys.presence(room))
            .arg(format!("{node} {member}"))
    }

    /// Take `member` of `node` out of `room`.
    pub fn leave(&self, node: &str, room: &str, member: &str) -> Result<(), Error> {
        self.call(self.leave_cmd(node, room, member), |_| Ok(()))
    }

    /// The call that lists `room`'s members on live nodes.
    pub fn members_cmd(&self, room: &str) -> Cmd {
        Cmd::eval(
            &scripts().members,
            &[self.keys.presence(room), self.keys.nodes().into_bytes()],
            &[] as &[&[u8]],
        )
    }

    /// Read the members script's reply.
    pub fn parse_members(value: Value) -> Result<Vec<Member>, Error> {
        let items = value.as_array().ok_or_else(|| bad("members", &value))?;
        if items.len() % 3 != 0 {
            return Err(bad("members", &value));
        }
        let text = |v: &Value| {
            v.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        items
            .chunks(3)
            .map(|c| match (text(&c[0]), text(&c[1]), c[2].as_bytes()) {
                (Some(node), Some(member), Some(info)) => Ok(Member {
                    node,
                    member,
                    info: info.to_vec(),
                }),
                _ => Err(bad("member", &value)),
            })
            .collect()
    }

    /// `room`'s members on every node whose heartbeat has not expired.
    pub fn members(&self, room: &str) -> Result<Vec<Member>, Error> {
        self.call(self.members_cmd(room), Cluster::parse_members)
    }

    /// The call that takes out every node whose presence expired, or only
    /// `node` (a node that stops says so).
    pub fn reap_cmd(&self, node: Option<&str>) -> Cmd {
        Cmd::eval(
            &scripts().reap,
            &[self.keys.nodes()],
            &[self.keys.prefix.as_str(), node.unwrap_or("")],
        )
    }

    /// Read the reap script's reply: the nodes taken out.
    pub fn parse_reaped(value: Value) -> Result<Vec<String>, Error> {
        let items = value.as_array().ok_or_else(|| bad("reap", &value))?;
        items
            .iter()
            .map(|v| {
                v.as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .ok_or_else(|| bad("reap", v))
            })
            .collect()
    }

    /// Take the expired nodes' members out of every room (any node may
    /// run it; each node's name is published on [`Keys::gone_channel`]).
    pub fn reap(&self) -> Result<Vec<String>, Error> {
        self.call(self.reap_cmd(None), Cluster::parse_reaped)
    }

    /// Take `node`'s members out at once (it is stopping).
    pub fn depart(&self, node: &str) -> Result<Vec<String>, Error> {
        self.call(self.reap_cmd(Some(node)), Cluster::parse_reaped)
    }
}

/// Whether a read after `after` that returned `entries` misses nothing:
/// its first entry followed `after` directly, or nothing was there to
/// miss (`last` is the room's last id as the caller knows it).
///
/// ```
/// use wschat::cluster::{Entry, complete_after};
/// let e = |id, prev| Entry { id, prev, json: String::new() };
/// assert!(complete_after(5, &[e(9, 5), e(12, 9)], 12));
/// assert!(!complete_after(5, &[e(12, 9)], 12)); // 9 was trimmed away
/// assert!(complete_after(12, &[], 12));
/// ```
pub fn complete_after(after: u64, entries: &[Entry], last: u64) -> bool {
    match entries.first() {
        Some(first) => first.prev <= after,
        None => last <= after,
    }
}

/// One `[id, [f, from, t, to, m, json]]` of a private stream's range.
fn parse_private_entry(item: &Value) -> Option<PrivateEntry> {
    let [id, fields] = item.as_array()? else {
        return None;
    };
    let id = std::str::from_utf8(id.as_bytes()?).ok()?;
    let (ms, seq) = id.split_once('-')?;
    if seq != "0" {
        return None;
    }
    let (mut from, mut to, mut json) = (None, None, None);
    for pair in fields.as_array()?.chunks(2) {
        if let [name, value] = pair {
            let text = || String::from_utf8(value.as_bytes()?.to_vec()).ok();
            match name.as_bytes()? {
                b"f" => from = text(),
                b"t" => to = text(),
                b"m" => json = text(),
                _ => {}
            }
        }
    }
    Some(PrivateEntry {
        id: ms.parse().ok()?,
        from: from?,
        to: to?,
        json: json?,
    })
}

/// One `[id, [field, value, …]]` of a range reply.
fn parse_entry(item: &Value) -> Option<Entry> {
    let [id, fields] = item.as_array()? else {
        return None;
    };
    let id = std::str::from_utf8(id.as_bytes()?).ok()?;
    let (ms, seq) = id.split_once('-')?;
    if seq != "0" {
        return None;
    }
    let (mut prev, mut json) = (None, None);
    for pair in fields.as_array()?.chunks(2) {
        if let [name, value] = pair {
            match name.as_bytes()? {
                b"p" => prev = as_u64(value),
                b"m" => json = Some(String::from_utf8(value.as_bytes()?.to_vec()).ok()?),
                _ => {}
            }
        }
    }
    Some(Entry {
        id: ms.parse().ok()?,
        prev: prev?,
        json: json?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn range_replies_read_oldest_first() {
        let entry = |id: &str, p: &str, m: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![bulk("p"), bulk(p), bulk("m"), bulk(m)]),
            ])
        };
        let rev = Value::Array(vec![entry("9-0", "4", "b"), entry("4-0", "0", "a")]);
        let got = Cluster::parse_range(rev).unwrap();
        assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 9]);
        assert_eq!(got[1].prev, 4);
        assert_eq!(got[1].json, "b");
        assert!(Cluster::parse_range(Value::Array(vec![entry("9-1", "4", "b")])).is_err());
        assert_eq!(Cluster::parse_range(Value::Nil).unwrap(), vec![]);
    }

    #[test]
    fn appended_from_strings() {
        let v = Value::Array(vec![bulk("12"), bulk("0")]);
        assert_eq!(
            Cluster::parse_appended(v).unwrap(),
            Appended { id: 12, prev: 0 }
        );
        assert!(Cluster::parse_appended(Value::Int(3)).is_err());
    }
}
