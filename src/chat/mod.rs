//! The chat: users, rooms, private messages and typing notices, run by the
//! hub thread (see [`crate::hub`]) as an [`App`].
//!
//! Everything here is owned by the hub thread, so nothing is locked. A room
//! message is serialized and framed once, and the same bytes go to every
//! member. Joins and leaves that happen in one hub turn go out as one notice
//! per room, so a crowd arriving at once does not cost O(n²) notices. A room
//! of more than [`CROWD_SIZE`] members names nobody: its members get a
//! coalesced `presence` count at most once per [`PRESENCE_INTERVAL`], and
//! page `users` when they want names, so n users joining cost O(n) bytes.
//!
//! A *user* is an identity, not a connection: an anonymous user is named by
//! its session (the `session` of `welcome`, presented again as
//! `?session=`), a signed-in user by the `sub` of its token (see
//! [`crate::auth`]). A user keeps its id, name and room across reconnects
//! and restarts ([`identity`]), may have several connections (tabs,
//! devices), and everything addressed to it reaches all of them.
//!
//! The protocol is in docs/chat-protocol.md; identities in docs/identity.md.

pub mod api;
pub mod bans;
pub mod command;
pub mod identity;
pub mod small_set;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::clock::now_ms;
use crate::hub::log::{Log, Record};
use crate::hub::{App, ConnId, ConnInfo, Ctx, Held};
use crate::ws::CloseCode;
use command::{Command, ErrorReply};
use identity::{Identities, UserId};
use wire::{Entry, Message, MyRoom, PrivateSummary, RoomCount, Stored, StoredList};

/// The room everyone starts in.
pub const LOBBY: &str = "lobby";
/// Longest name or room name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Default limit on a chat or private message's text, in bytes.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 4096;
/// Default limit on a binary message relayed to a room, in bytes.
pub const DEFAULT_MAX_BINARY_BYTES: usize = 64 * 1024;
/// Default limit on the number of rooms.
pub const DEFAULT_MAX_ROOMS: usize = 1000;
/// Messages a room keeps for newcomers.
pub const HISTORY_LEN: usize = 50;
/// Members per `users` page; a room this size or smaller is sent whole.
pub const USERS_PAGE: usize = 100;
/// A room of more members than this is a crowd: arrivals and departures
/// reach its members as a coalesced `presence` count instead of `join` and
/// `leave` notices that name users (the same threshold as `users` paging:
/// a room whose list is sent whole also names who comes and goes).
pub const CROWD_SIZE: usize = USERS_PAGE;
/// A crowd's members get at most one `presence` update per this interval
/// (sent on the hub's tick, every [`PRESENCE_INTERVAL`] ÷
/// [`TICK_INTERVAL`](crate::hub::TICK_INTERVAL) ticks).
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);
/// Most messages one `history` page returns.
pub const MAX_HISTORY_PAGE: usize = 100;
/// How often whole old segments are looked for and deleted.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// At most one typing notice per user per this interval (a client that
/// sends one a second is never cut by timing jitter).
pub const TYPING_INTERVAL: Duration = Duration::from_millis(900);
/// Default time a session (an anonymous identity) lives unused.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long a connection may wait before its first message signs it in,
/// under `--auth required` without `?token=`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most users one `find` answer lists.
pub const MAX_FOUND: usize = 20;
/// Most conversations one user keeps a read marker for.
pub const MAX_READ_MARKERS: usize = 1000;
/// Default limit on the rooms one user is a member of at once.
pub const DEFAULT_MAX_ROOMS_PER_USER: usize = 50;
/// Most rooms one `rooms` answer lists (the busiest).
pub const MAX_ROOM_LIST: usize = 100;
/// A room's unread count is counted among its latest this many messages
/// (so a `rooms` answer reads at most this many per room of the user):
/// a count of 100 means "100 or more".
pub const MAX_UNREAD_COUNT: usize = 100;
/// A reply's quote of the message it answers keeps this many characters.
pub const MAX_QUOTE_CHARS: usize = 200;
/// Most different emoji on one message.
pub const MAX_REACTIONS: usize = 20;
/// Longest reaction, in bytes (an emoji with its modifiers and joiners).
pub const MAX_EMOJI_BYTES: usize = 32;
/// Most users one message notifies by `@name`.
pub const MAX_MENTIONS: usize = 10;
/// Default bound on the messages one `search` reads (`--search-scan`):
/// past it, the answer says where to go on.
pub const DEFAULT_SEARCH_SCAN: usize = 10_000;
/// Most results one `search` answer holds.
pub const MAX_SEARCH_RESULTS: usize = 50;
/// Results of a `search` without `limit`.
pub const SEARCH_RESULTS: usize = 20;
/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Most conversations one `privates` answer lists (the newest).
pub const MAX_PRIVATE_LIST: usize = 100;
/// Longest ban, in minutes (a year).
pub const MAX_BAN_MINUTES: u64 = 366 * 24 * 60;

/// The close code of a refused token (or a required one missing).
pub const CLOSE_UNAUTHORIZED: CloseCode = CloseCode(4001);
/// The close code of a kick or a ban.
pub const CLOSE_FORBIDDEN: CloseCode = CloseCode(4003);

/// Whether anonymous users may chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Anyone may chat; a token makes a user verified. The default.
    #[default]
    Optional,
    /// Only users with a valid token: others are closed with 4001.
    Required,
}

impl AuthMode {
    /// Parse `optional` or `required`.
    pub fn parse(s: &str) -> Result<AuthMode, String> {
        match s.trim() {
            "optional" => Ok(AuthMode::Optional),
            "required" => Ok(AuthMode::Required),
            other => Err(format!("{other:?} is not optional or required")),
        }
    }

    /// The name used by the flag.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Optional => "optional",
            AuthMode::Required => "required",
        }
    }
}

/// The chat's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// Longest text, in bytes.
    pub max_text_bytes: usize,
    /// Longest binary message relayed to a room, in bytes.
    pub max_binary_bytes: usize,
    /// Most rooms at once (the lobby included).
    pub max_rooms: usize,
    /// Most rooms one user is a member of at once.
    pub max_rooms_per_user: usize,
    /// Most messages one `search` reads.
    pub search_scan: usize,
    /// How long an identity lives unused (`--session-ttl`).
    pub session_ttl: Duration,
    /// The secrets tokens are signed with (`--jwt-secret`; several while
    /// keys rotate); none: tokens are refused.
    pub jwt_secrets: Vec<Vec<u8>>,
    /// Whether anonymous users may chat (`--auth`).
    pub auth: AuthMode,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            max_binary_bytes: DEFAULT_MAX_BINARY_BYTES,
            max_rooms: DEFAULT_MAX_ROOMS,
            max_rooms_per_user: DEFAULT_MAX_ROOMS_PER_USER,
            search_scan: DEFAULT_SEARCH_SCAN,
            session_ttl: DEFAULT_SESSION_TTL,
            jwt_secrets: Vec::new(),
            auth: AuthMode::Optional,
        }
    }
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<UserId>,
    /// Every connection of every member: what a room message goes to.
    conns: BTreeSet<ConnId>,
    /// Users who entered or left during this turn, for one notice each
    /// (a room that is no crowd).
    joined: Vec<Value>,
    left: Vec<Value>,
    /// More than [`CROWD_SIZE`] members at the end of a turn: presence is
    /// a coalesced count. It stops being one only on a presence tick, when
    /// the members get the whole list again.
    crowd: bool,
    /// A crowd's arrivals and departures since its last `presence`.
    arrived: usize,
    departed: usize,
    /// Members on the cluster's other nodes (`--redis`), with their
    /// names: a user may be one of both (devices on several nodes).
    remote: BTreeMap<UserId, String>,
    /// `remote` was read from the store (when the room got its first
    /// member here).
    remote_known: bool,
}

/// A search as [`Command::Search`] asked for it.
struct Search {
    text: String,
    room: Option<String>,
    with: Option<u64>,
    before: Option<u64>,
    limit: Option<u64>,
}

/// This turn's arrivals and departures as the room should hear them: a
/// user who both left and arrived in one turn (a reload: the old page's
/// connection closes as the new one opens) is told as what they are at the
/// turn's end, a member (`join`, which a page takes as "is here") or not
/// (`leave`), never both: `join` goes out before `leave`, and both would
/// drop a member who is still there.
fn net_presence(
    mut joined: Vec<Value>,
    mut left: Vec<Value>,
    is_member: impl Fn(UserId) -> bool,
) -> (Vec<Value>, Vec<Value>) {
    let id = |v: &Value| v.get("id").and_then(Value::as_u64);
    let both: Vec<u64> = joined
        .iter()
        .filter_map(id)
        .filter(|i| left.iter().any(|l| id(l) == Some(*i)))
        .collect();
    for user in both {
        if is_member(user) {
            left.retain(|l| id(l) != Some(user));
        } else {
            joined.retain(|j| id(j) != Some(user));
        }
    }
    (joined, left)
}

impl Room {
    /// Count an arrival (a crowd) or keep it for this turn's `join` notice.
    fn arrive(&mut self, ids: &Identities, user: UserId) {
        self.arrive_as(ids.user_ref(user));
    }

    /// [`Room::arrive`] of a user given as `{"id","name"}`.
    fn arrive_as(&mut self, user: Value) {
        if self.crowd {
            self.arrived += 1;
        } else {
            self.joined.push(user);
        }
    }

    /// Count a departure (a crowd) or keep it for this turn's `leave`
    /// notice.
    fn depart(&mut self, ids: &Identities, user: UserId) {
        self.depart_as(ids.user_ref(user));
    }

    /// [`Room::depart`] of a user given as `{"id","name"}`.
    fn depart_as(&mut self, user: Value) {
        if self.crowd {
            self.departed += 1;
        } else {
            self.left.push(user);
        }
    }

    /// Every member, here or on another node, each once, in id order: the
    /// two sorted sets merged as they are walked, so that a page of a big
    /// room costs its own length, not a copy of the room (issue 24).
    fn everyone(&self) -> impl Iterator<Item = UserId> + '_ {
        let mut here = self.members.iter().copied().peekable();
        let mut there = self.remote.keys().copied().peekable();
        std::iter::from_fn(move || match (here.peek(), there.peek()) {
            (Some(a), Some(b)) if a > b => there.next(),
            (Some(a), Some(b)) if a == b => {
                there.next();
                here.next()
            }
            (Some(_), _) => here.next(),
            (None, _) => there.next(),
        })
    }

    /// Whether `user` is a member, here or on another node.
    fn has(&self, user: UserId) -> bool {
        self.members.contains(&user) || self.remote.contains_key(&user)
    }

    /// How many members the room has, on every node.
    fn count(&self) -> usize {
        self.members.len()
            + self
                .remote
                .keys()
                .filter(|u| !self.members.contains(u))
                .count()
    }

    /// `{"id","name"}` of a member (named by this node if it knows it).
    /// A member's id and name, borrowed (for a page of members).
    fn member_name<'a>(&'a self, ids: &'a Identities, user: UserId) -> wire::UserRef<'a> {
        let name = match self.remote.get(&user) {
            Some(name) if !self.members.contains(&user) => name.as_str(),
            _ => ids.get(user).map_or("", |u| u.name.as_str()),
        };
        wire::UserRef { id: user, name }
    }

    fn member_ref(&self, ids: &Identities, user: UserId) -> Value {
        match self.remote.get(&user) {
            Some(name) if !self.members.contains(&user) => {
                serde_json::json!({"id": user, "name": name})
            }
            _ => ids.user_ref(user),
        }
    }

    /// `{"type":"users",...}`: the page of members from `offset`, with the
    /// room's count and whether more follow.
    fn users_page(&self, ids: &Identities, name: &str, offset: usize) -> String {
        let count = self.count();
        let page: Vec<wire::UserRef<'_>> = self
            .everyone()
            .skip(offset)
            .take(USERS_PAGE)
            .map(|m| self.member_name(ids, m))
            .collect();
        let more = offset.saturating_add(page.len()) < count;
        Message::Users {
            room: name,
            count,
            offset,
            more,
            users: &page,
        }
        .to_json()
    }
}

/// A member entering or leaving a room, as the log records it.
#[derive(Debug, Clone, Copy)]
enum Membership {
    Joined,
    Left,
}

/// What a connection asked for in its URL, kept while it waits to sign in
/// with its first message.
#[derive(Debug)]
struct Asked {
    name: Option<String>,
    room: Option<String>,
    since: Option<u64>,
    at: Instant,
}

/// The chat application.
#[derive(Debug)]
pub struct Chat {
    config: ChatConfig,
    /// Every identity this chat knows, online or not.
    ids: Identities,
    /// Which user each open connection is.
    conns: HashMap<ConnId, UserId>,
    /// Connections waiting to sign in with their first message.
    waiting: HashMap<ConnId, Asked>,
    rooms: HashMap<String, Room>,
    /// Rooms with joins or leaves to announce at the end of the turn.
    dirty: Vec<String>,
    /// Ticks so far: crowds hear of presence on every
    /// [`presence_ticks`]-th.
    ticks: u64,
    /// When identities were last expired.
    last_retention: Instant,
    /// First pages of members due this turn: the room, and the place kept
    /// for it in the turn's sends ([`Chat::send_first_pages`]).
    first_pages: Vec<(String, Held)>,
}

/// How a connection says who it is.
enum Presented {
    /// Nothing, or a session token.
    Anonymous(Option<String>),
    /// A token that verified.
    Verified(crate::auth::Claims),
}

impl Chat {
    /// A chat with `config` whose identities are read back from `log`,
    /// the store the hub will own and lend it (through [`Ctx::log`]) for
    /// ids, records, history and resume.
    pub fn new(config: ChatConfig, log: &mut dyn Log) -> Chat {
        let mut ids = Identities::load(log, config.session_ttl);
        for (key, until) in log.bans() {
            ids.cluster_ban(&key, until);
        }
        let mut rooms = HashMap::new();
        rooms.insert(LOBBY.to_string(), Room::default());
        Chat {
            config,
            ids,
            conns: HashMap::new(),
            waiting: HashMap::new(),
            rooms,
            dirty: Vec::new(),
            ticks: 0,
            last_retention: Instant::now(),
            first_pages: Vec::new(),
        }
    }

    /// `{"id","name"}` of a user this node knows, or (with a cluster's
    /// store) of another node's user, named as that node recorded it;
    /// `None` if nobody knows it.
    fn user_ref_anywhere(&self, ctx: &mut Ctx, user: UserId) -> Option<Value> {
        if self.ids.get(user).is_some() {
            return Some(self.user_ref(user));
        }
        let name = ctx.log().user_name(user)?;
        Some(serde_json::json!({"id": user, "name": name}))
    }

    fn user_ref(&self, user: UserId) -> Value {
        self.ids.user_ref(user)
    }

    fn error(ctx: &mut Ctx, conn: ConnId, error: ErrorReply) {
        ctx.send_json(conn, &error.to_json());
    }

    /// The user of `conn`, if it has signed in.
    fn user_of(&self, conn: ConnId) -> Option<UserId> {
        self.conns.get(&conn).copied()
    }

    /// Every connection of `user`.
    fn conns_of(&self, user: UserId) -> Vec<ConnId> {
        self.ids
            .get(user)
            .map(|u| u.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Record a member entering or leaving a room.
    fn record_membership(
        &mut self,
        ctx: &mut Ctx,
        kind: Membership,
        user: UserId,
        room: &str,
    ) -> u64 {
        let id = ctx.log().take_id();
        let (user, time) = (self.user_ref(user), now_ms());
        let record = match kind {
            Membership::Joined => Entry::Joined {
                id,
                room,
                user: &user,
                time,
            },
            Membership::Left => Entry::Left {
                id,
                room,
                user: &user,
                time,
            },
        };
        ctx.log().append(Record::State {
            json: &record.to_json(),
        });
        id
    }

    /// `user` enters `room_name` (its presence: the user's rooms and
    /// current room are the caller's): the room is told (once per turn),
    /// and every connection of the user gets the member list, then the
    /// room's history, or with `since` (for `conn`), everything after that
    /// id.
    fn enter_room(
        &mut self,
        ctx: &mut Ctx,
        user: UserId,
        room_name: &str,
        resume: Option<(ConnId, u64)>,
    ) {
        self.record_membership(ctx, Membership::Joined, user, room_name);
        let conns = self.conns_of(user);
        let known = self.rooms.get(room_name).is_some_and(|r| r.remote_known);
        let remote = if known {
            None
        } else {
            Some(ctx.log().members(room_name))
        };
        let name = self
            .ids
            .get(user)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        ctx.log().present(room_name, user, &name);
        let room = self.rooms.entry(room_name.to_string()).or_default();
        if let Some(remote) = remote {
            room.remote = remote.into_iter().collect();
            room.remote_known = true;
        }
        room.members.insert(user);
        room.conns.extend(conns.iter().copied());
        // A user already here through another node is no news.
        if !room.remote.contains_key(&user) {
            room.arrive(&self.ids, user);
        }
        self.mark_dirty(room_name);
        for conn in conns {
            self.send_users_of(ctx, conn, room_name, 0);
            match resume {
                Some((c, since)) if c == conn => self.resume_room(ctx, conn, room_name, since),
                _ => self.send_history_of(ctx, conn, room_name),
            }
        }
    }

    /// `user` leaves `room_name` (all its connections with it); returns
    /// the id of the `left` record.
    fn leave_one(&mut self, ctx: &mut Ctx, user: UserId, room_name: &str) -> u64 {
        let left = self.record_membership(ctx, Membership::Left, user, room_name);
        let conns = self.conns_of(user);
        if let Some(room) = self.rooms.get_mut(room_name)
            && room.members.remove(&user)
        {
            for conn in conns {
                room.conns.remove(&conn);
            }
            // Still here through another node: no news.
            if !room.remote.contains_key(&user) {
                room.depart(&self.ids, user);
            }
            self.mark_dirty(room_name);
            ctx.log().absent(room_name, user);
        }
        left
    }

    /// `user` goes offline: it leaves every room it is in (and stays their
    /// member, for when it comes back).
    fn leave_room(&mut self, ctx: &mut Ctx, user: UserId) {
        let Some(rooms) = self.ids.get(user).map(|u| u.rooms.clone()) else {
            return;
        };
        let mut left = 0;
        for room in &rooms {
            left = self.leave_one(ctx, user, room);
        }
        if let Some(u) = self.ids.get_mut(user) {
            u.left_at = left.max(u.left_at);
        }
    }

    /// Write `user`'s rooms and current room to the log (a `memberships`
    /// record), so that they come back after a restart.
    fn record_memberships(&mut self, ctx: &mut Ctx, user: UserId) {
        let Some(u) = self.ids.get(user) else {
            return;
        };
        let rooms: Vec<&str> = u.rooms.iter().map(String::as_str).collect();
        let id = ctx.log().take_id();
        let record = Entry::Memberships {
            id,
            user,
            room: &u.room,
            rooms: &rooms,
            time: now_ms(),
        };
        ctx.log().append(Record::State {
            json: &record.to_json(),
        });
    }

    /// The room a command is about: `asked`, which must be one of the
    /// user's rooms, or the current room.
    fn room_for(&self, conn: ConnId, asked: Option<&str>) -> Result<String, ErrorReply> {
        let Some(user) = self.user_of(conn).and_then(|u| self.ids.get(u)) else {
            return Err(ErrorReply::new("not_member", "you are in no room"));
        };
        match asked {
            None => Ok(user.room.clone()),
            Some(room) if user.rooms.contains(room) => Ok(room.to_string()),
            Some(room) => Err(ErrorReply::new(
                "not_member",
                format!("you are not in room {room:?}: join it first"),
            )),
        }
    }

    /// `{"type":"rooms"}`: the busiest public rooms, and the user's own
    /// with their unread counts.
    fn send_rooms(&self, ctx: &mut Ctx, conn: ConnId) {
        let Some(me) = self.user_of(conn).and_then(|u| self.ids.get(u)) else {
            return;
        };
        let mut public: Vec<RoomCount> = self
            .rooms
            .iter()
            .map(|(name, r)| RoomCount {
                room: name,
                members: r.count(),
            })
            .collect();
        public.sort_by(|a, b| b.members.cmp(&a.members).then(a.room.cmp(b.room)));
        public.truncate(MAX_ROOM_LIST);
        let mine: Vec<MyRoom> = me
            .rooms
            .iter()
            .map(|name| {
                let read = me.room_read.get(name).unwrap_or(0);
                let latest = ctx.log().history(name, None, MAX_UNREAD_COUNT).messages;
                let unread = latest
                    .iter()
                    .filter_map(|m| serde_json::from_str::<Value>(m).ok())
                    .filter(|m| {
                        m["id"].as_u64().is_some_and(|id| id > read)
                            && m["user"]["id"].as_u64() != Some(me.id)
                    })
                    .count();
                MyRoom {
                    room: name,
                    members: self.rooms.get(name).map_or(0, Room::count),
                    unread,
                    read,
                }
            })
            .collect();
        let msg = Message::Rooms {
            current: &me.room,
            rooms: &public,
            mine: &mine,
        };
        ctx.send_json(conn, &msg.to_json());
    }

    /// Send `rooms` to every connection of `user` (its rooms changed).
    fn send_rooms_to(&self, ctx: &mut Ctx, user: UserId) {
        for conn in self.conns_of(user) {
            self.send_rooms(ctx, conn);
        }
    }

    fn mark_dirty(&mut self, room: &str) {
        if !self.dirty.iter().any(|r| r == room) {
            self.dirty.push(room.to_string());
        }
    }

    fn room_of(&self, conn: ConnId) -> Option<String> {
        let user = self.user_of(conn)?;
        self.ids.get(user).map(|u| u.room.clone())
    }

    fn send_users(&mut self, ctx: &mut Ctx, conn: ConnId, offset: usize) {
        let Some(room_name) = self.room_of(conn) else {
            return;
        };
        self.send_users_of(ctx, conn, &room_name, offset);
    }

    /// Send `conn` the page of `room_name`'s members from `offset`. The
    /// first page (what every newcomer gets) keeps its place in the turn's
    /// sends but is made at the turn's end ([`Chat::send_first_pages`]),
    /// once for every connection of the turn that is due one.
    fn send_users_of(&mut self, ctx: &mut Ctx, conn: ConnId, room_name: &str, offset: usize) {
        if !self.rooms.contains_key(room_name) {
            return;
        }
        if offset == 0 {
            self.first_pages
                .push((room_name.to_string(), ctx.hold(conn)));
            return;
        }
        if let Some(room) = self.rooms.get(room_name) {
            ctx.send_json(conn, &room.users_page(&self.ids, room_name, offset));
        }
    }

    /// The turn is over: make each room's first page of members once and
    /// put it in the places kept for it ([`Chat::send_users_of`]), with
    /// the room as the turn leaves it. In a crowd that many join at once,
    /// that is one page per turn instead of one per newcomer (a page is
    /// 100 names, about 3 KB: it was a fifth of the hub's time while a
    /// crowd joined, and a fresh buffer per newcomer, held until the turn
    /// was delivered while the next newcomers' state was allocated,
    /// fragmented the hub's heap).
    fn send_first_pages(&mut self, ctx: &mut Ctx) {
        let mut due = std::mem::take(&mut self.first_pages);
        due.sort_by(|a, b| a.0.cmp(&b.0));
        for group in due.chunk_by(|a, b| a.0 == b.0) {
            let name = group[0].0.as_str();
            // A room gone by the end of the turn: nothing to show.
            let Some(room) = self.rooms.get(name) else {
                continue;
            };
            let frame = Ctx::json_frame(&room.users_page(&self.ids, name, 0));
            for (_, held) in group {
                if !ctx.fill(*held, &frame) {
                    ctx.send_frame(held.conn(), &frame);
                }
            }
        }
        due.clear();
        self.first_pages = due;
    }

    /// A presence tick: each crowd whose members came or went since its
    /// last update gets one `presence` message (encoded once, the same
    /// bytes to every member). A crowd that is back to [`CROWD_SIZE`]
    /// members or fewer stops being one: its members get the whole member
    /// list, and from then on `join` and `leave` name users again.
    fn send_presence(&mut self, ctx: &mut Ctx) {
        let time = now_ms();
        for (name, room) in self.rooms.iter_mut().filter(|(_, r)| r.crowd) {
            let count = room.count();
            if room.arrived > 0 || room.departed > 0 {
                let msg = Message::Presence {
                    room: name,
                    count,
                    joined: room.arrived,
                    left: room.departed,
                    time,
                }
                .to_json();
                (room.arrived, room.departed) = (0, 0);
                ctx.broadcast(room.conns.iter().copied(), &Ctx::json_frame(&msg));
            }
            if count <= CROWD_SIZE {
                room.crowd = false;
                let users = room.users_page(&self.ids, name, 0);
                ctx.broadcast(room.conns.iter().copied(), &Ctx::json_frame(&users));
            }
        }
    }

    fn send_history(&self, ctx: &mut Ctx, conn: ConnId) {
        let Some(room_name) = self.room_of(conn) else {
            return;
        };
        self.send_history_of(ctx, conn, &room_name);
    }

    fn send_history_of(&self, ctx: &mut Ctx, conn: ConnId, room_name: &str) {
        let page = ctx.log().history(room_name, None, HISTORY_LEN);
        let (messages, missing) = (page.messages, page.missing);
        let msg = Message::History {
            room: room_name,
            before: None,
            complete: missing.is_none(),
            first: missing,
            messages: StoredList(&messages),
        };
        ctx.send_json(conn, &msg.to_json());
    }

    /// `{"type":"history","room","before","limit"}`: a page further back.
    fn history_page(
        &self,
        ctx: &mut Ctx,
        conn: ConnId,
        body: &Map<String, Value>,
    ) -> Result<(), ErrorReply> {
        let room = match body.get("room") {
            None | Some(Value::Null) => self.room_of(conn).unwrap_or_default(),
            Some(Value::String(r)) => valid_name(r).map_err(|m| ErrorReply::new("bad_room", m))?,
            Some(_) => return Err(ErrorReply::new("bad_command", "\"room\" must be a string")),
        };
        let (before, limit) = page_bounds(body)?;
        let page = ctx.log().history(&room, before, limit);
        let (messages, missing) = (page.messages, page.missing);
        let msg = Message::History {
            room: &room,
            before: Some(before),
            complete: missing.is_none(),
            first: missing,
            messages: StoredList(&messages),
        };
        ctx.send_json(conn, &msg.to_json());
        Ok(())
    }

    /// Send what `conn` missed since `since` in `room`: the room's
    /// messages and, for its current room, its user's private messages, in
    /// order, then (being the hub) the live stream follows with nothing in
    /// between.
    fn resume_room(&self, ctx: &mut Ctx, conn: ConnId, room: &str, since: u64) {
        let Some(user) = self.user_of(conn).and_then(|u| self.ids.get(u)) else {
            return;
        };
        // Private messages come once, with the current room's resume (no
        // user's key is empty).
        let key = if user.room == room {
            user.key()
        } else {
            String::new()
        };
        let page = ctx.log().since(room, &key, since);
        let (messages, missing) = (page.messages, page.missing);
        let msg = Message::Resume {
            room,
            since,
            complete: missing.is_none(),
            first: missing,
            messages: StoredList(&messages),
        };
        ctx.send_json(conn, &msg.to_json());
    }

    fn check_text(&self, text: &str) -> Result<(), ErrorReply> {
        if text.trim().is_empty() {
            return Err(ErrorReply::new("empty_text", "a message needs some text"));
        }
        if text.len() > self.config.max_text_bytes {
            return Err(ErrorReply::new(
                "text_too_long",
                format!(
                    "text is {} bytes; the limit is {}",
                    text.len(),
                    self.config.max_text_bytes
                ),
            ));
        }
        Ok(())
    }

    fn chat(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        text: String,
        room: Option<&str>,
        reply: Option<u64>,
    ) -> Result<(), ErrorReply> {
        self.check_text(&text)?;
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        let room_name = self.room_for(conn, room)?;
        // A reply quotes the message it answers, of the same room.
        let quote = match reply {
            None => None,
            Some(to) => {
                let answered = stored_chat(ctx, to)
                    .filter(|v| v["room"] == room_name.as_str())
                    .ok_or_else(|| {
                        ErrorReply::new(
                            "unknown_message",
                            format!("no message with id {to} in {room_name:?} to reply to"),
                        )
                    })?;
                let text: String = answered["text"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(MAX_QUOTE_CHARS)
                    .collect();
                Some(serde_json::json!({"id": to, "user": answered["user"], "text": text}))
            }
        };
        let id = ctx.log().take_id();
        let from = self.user_ref(user);
        let msg = Message::Chat {
            id,
            room: &room_name,
            user: &from,
            text: &text,
            time: now_ms(),
            reply: quote.as_ref(),
            reactions: None,
            edited: None,
        }
        .to_json();
        let frame = Ctx::json_frame(&msg);
        ctx.log().append(Record::Room {
            room: &room_name,
            json: &msg,
        });
        if let Some(room) = self.rooms.get(&room_name) {
            ctx.publish(id, Some(conn), room.conns.iter().copied(), &frame);
        }
        // `@name` notifies that user on every connection, whatever room it
        // is in (once the message is stored, like the message itself).
        let mention = Message::Mention {
            id,
            room: &room_name,
            from: &from,
            text: &text,
        }
        .to_json();
        let frame = Ctx::json_frame(&mention);
        for named in self.mentioned(&text, user) {
            ctx.publish(id, None, self.conns_of(named), &frame);
        }
        Ok(())
    }

    /// `{"type":"search","text":…,"room":R | "with":ID,"before","limit"}`:
    /// the messages of room R (any room, as `history`), or of the user's
    /// private conversation with ID, whose text contains `text` ignoring
    /// case, newest first. Reads at most `--search-scan` messages, going
    /// back page by page from `before`; `next` says where to go on.
    fn search(&self, ctx: &mut Ctx, conn: ConnId, query: Search) -> Result<(), ErrorReply> {
        let Some(me) = self.user_of(conn) else {
            return Ok(());
        };
        let Search {
            text: query,
            room,
            with,
            before,
            limit,
        } = query;
        let needle = query.to_lowercase();
        let limit = match limit {
            None => SEARCH_RESULTS,
            Some(n) => (n.min(MAX_HISTORY_PAGE as u64) as usize).clamp(1, MAX_SEARCH_RESULTS),
        };
        if let Some(id) = with
            && self.ids.get(id).is_none()
        {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {id}"),
            ));
        }
        let room = match (with, room) {
            (Some(_), _) => None,
            (None, None) => self.room_of(conn),
            (None, Some(r)) => Some(valid_name(&r).map_err(|m| ErrorReply::new("bad_room", m))?),
        };
        let (mine, theirs) = (identity::key(me), with.map(identity::key));
        let mut found: Vec<Arc<str>> = Vec::new();
        let mut scanned = 0;
        let mut at = before;
        let mut next = None;
        'pages: loop {
            let page = match (&room, &theirs) {
                (_, Some(theirs)) => ctx
                    .log()
                    .private_page((&mine, theirs), at, MAX_HISTORY_PAGE),
                (Some(room), None) => ctx.log().history(room, at, MAX_HISTORY_PAGE),
                (None, None) => break,
            };
            if page.messages.is_empty() {
                break;
            }
            let from = at;
            for json in page.messages.iter().rev() {
                let Ok(v) = serde_json::from_str::<Value>(json) else {
                    continue;
                };
                let id = v["id"].as_u64().unwrap_or(0);
                scanned += 1;
                at = Some(id);
                if v["text"]
                    .as_str()
                    .is_some_and(|t| t.to_lowercase().contains(&needle))
                {
                    found.push(json.clone());
                }
                if found.len() == limit || scanned >= self.config.search_scan {
                    next = Some(id);
                    break 'pages;
                }
            }
            if at == from {
                // A page with no message id in it: nothing further back.
                break;
            }
        }
        let with_ref = with.map(|w| self.user_ref(w));
        let msg = Message::Results {
            query: &query,
            room: room.as_deref().filter(|_| with.is_none()),
            with: with_ref.as_ref(),
            before,
            next,
            messages: StoredList(&found),
        };
        ctx.send_json(conn, &msg.to_json());
        Ok(())
    }

    /// The users `text` names with `@name` (a name as the chat knows it,
    /// ignoring case, up to a space or punctuation), at most
    /// [`MAX_MENTIONS`], the author left out.
    fn mentioned(&self, text: &str, author: UserId) -> Vec<UserId> {
        let mut found = Vec::new();
        for (at, _) in text.match_indices('@') {
            let name: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(MAX_NAME_CHARS)
                .collect();
            let name = name.trim_end_matches('.');
            if let Some(user) = self.ids.by_name(name)
                && user != author
                && !found.contains(&user)
            {
                found.push(user);
                if found.len() == MAX_MENTIONS {
                    break;
                }
            }
        }
        found
    }

    /// Room message `id` as stored now, if `conn`'s user wrote it; else
    /// `unknown_message`, or `forbidden` for someone else's.
    fn own_message(&self, ctx: &mut Ctx, conn: ConnId, id: u64) -> Result<Value, ErrorReply> {
        let message = stored_chat(ctx, id).ok_or_else(|| {
            ErrorReply::new("unknown_message", format!("no message with id {id}"))
        })?;
        if self.user_of(conn).is_none() || message["user"]["id"].as_u64() != self.user_of(conn) {
            return Err(ErrorReply::new(
                "forbidden",
                "you may edit or retract only your own messages",
            ));
        }
        Ok(message)
    }

    /// `{"type":"edit","id":MSGID,"text":…}`: the author changes a room
    /// message. History and resume serve the new version (with `edited`),
    /// and the room is told.
    fn edit(&mut self, ctx: &mut Ctx, conn: ConnId, id: u64, text: &str) -> Result<(), ErrorReply> {
        self.check_text(text)?;
        let old = self.own_message(ctx, conn, id)?;
        let edited = now_ms();
        let version = new_version(&old, text, old.get("reactions"), Some(edited));
        let room = ctx.log().replace(id, &version).ok_or_else(|| {
            ErrorReply::new("unknown_message", format!("no message with id {id}"))
        })?;
        let msg = Message::Edited {
            id,
            room: &room,
            text,
            edited,
        }
        .to_json();
        if let Some(r) = self.rooms.get(&room) {
            ctx.broadcast(r.conns.iter().copied(), &Ctx::json_frame(&msg));
        }
        ctx.log().publish(&room, &msg);
        Ok(())
    }

    /// `{"type":"retract","id":MSGID}`: the author deletes a room message,
    /// as an administrator's `delete` does (the log keeps a tombstone; the
    /// text never comes back), and the room gets the same `deleted`.
    fn retract(&mut self, ctx: &mut Ctx, conn: ConnId, id: u64) -> Result<(), ErrorReply> {
        self.own_message(ctx, conn, id)?;
        self.delete(ctx, id)
    }

    /// `{"type":"react","id":MSGID,"emoji":"👍"}`: add the user's reaction,
    /// or take it back if it was there. A member of the message's room
    /// only; the room gets the new `reactions`.
    fn react(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        id: u64,
        emoji: &str,
    ) -> Result<(), ErrorReply> {
        let Some(me) = self.user_of(conn) else {
            return Ok(());
        };
        let message = stored_chat(ctx, id).ok_or_else(|| {
            ErrorReply::new("unknown_message", format!("no message with id {id}"))
        })?;
        self.room_for(conn, message["room"].as_str())?;
        let mut reactions = match message.get("reactions") {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        if !reactions.contains_key(emoji) && reactions.len() >= MAX_REACTIONS {
            return Err(ErrorReply::new(
                "too_many",
                format!("a message has at most {MAX_REACTIONS} different reactions"),
            ));
        }
        let who = reactions
            .entry(emoji.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(ids) = who {
            match ids.iter().position(|v| v.as_u64() == Some(me)) {
                Some(i) => {
                    ids.remove(i);
                }
                None => ids.push(Value::from(me)),
            }
            if ids.is_empty() {
                reactions.remove(emoji);
            }
        }
        let reactions = Value::Object(reactions);
        let text = message["text"].as_str().unwrap_or("");
        let kept = reactions.as_object().is_some_and(|m| !m.is_empty());
        let version = new_version(
            &message,
            text,
            kept.then_some(&reactions),
            message["edited"].as_u64(),
        );
        let room = ctx.log().replace(id, &version).ok_or_else(|| {
            ErrorReply::new("unknown_message", format!("no message with id {id}"))
        })?;
        let msg = Message::Reactions {
            id,
            room: &room,
            reactions: &reactions,
        }
        .to_json();
        if let Some(r) = self.rooms.get(&room) {
            ctx.broadcast(r.conns.iter().copied(), &Ctx::json_frame(&msg));
        }
        ctx.log().publish(&room, &msg);
        Ok(())
    }

    fn rename(&mut self, ctx: &mut Ctx, conn: ConnId, wanted: &str) -> Result<(), ErrorReply> {
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        let wanted = valid_name(wanted).map_err(|m| ErrorReply::new("bad_name", m))?;
        if self.ids.get(user).is_some_and(|u| u.name_fixed) {
            return Err(ErrorReply::new(
                "bad_name",
                "your name comes from the site you signed in with",
            ));
        }
        let Some(old) = self.ids.rename(user, &wanted) else {
            return Ok(());
        };
        if let Some(u) = self.ids.get(user) {
            ctx.log().user_named(user, &u.name);
        }
        let rooms = self
            .ids
            .get(user)
            .map(|u| u.rooms.clone())
            .unwrap_or_default();
        let id = ctx.log().take_id();
        let time = now_ms();
        let named = self.user_ref(user);
        let record = Entry::Renamed {
            id,
            user: &named,
            old: &old,
            time,
        };
        ctx.log().append(Record::State {
            json: &record.to_json(),
        });
        // Every room the user is in hears of it.
        for room_name in &rooms {
            let msg = Message::Rename {
                room: room_name,
                user: &named,
                old: &old,
                time,
            }
            .to_json();
            if let Some(room) = self.rooms.get(room_name) {
                ctx.broadcast(room.conns.iter().copied(), &Ctx::json_frame(&msg));
            }
            ctx.log().publish(room_name, &msg);
        }
        Ok(())
    }

    /// `join`: move to `room` (leaving the current one), or with `also`,
    /// enter it besides the user's other rooms. Either way it becomes the
    /// current room.
    fn join(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        room: &str,
        also: bool,
    ) -> Result<(), ErrorReply> {
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        let room = valid_name(room)
            .map_err(|m| ErrorReply::new("bad_room", m.replace("name", "room name")))?;
        let Some((current, member, count)) = self
            .ids
            .get(user)
            .map(|u| (u.room.clone(), u.rooms.contains(&room), u.rooms.len()))
        else {
            return Ok(());
        };
        if current == room {
            self.send_users(ctx, conn, 0);
            self.send_history(ctx, conn);
            return Ok(());
        }
        if !member {
            if !self.rooms.contains_key(&room) && self.rooms.len() >= self.config.max_rooms {
                return Err(ErrorReply::new(
                    "room_limit",
                    format!(
                        "the server has its limit of {} rooms",
                        self.config.max_rooms
                    ),
                ));
            }
            if also && count >= self.config.max_rooms_per_user {
                return Err(ErrorReply::new(
                    "too_many",
                    format!(
                        "a user is in at most {} rooms (--max-rooms-per-user); leave one first",
                        self.config.max_rooms_per_user
                    ),
                ));
            }
        }
        if !also {
            self.leave_one(ctx, user, &current);
            if let Some(u) = self.ids.get_mut(user) {
                u.rooms.remove(&current);
            }
        }
        if let Some(u) = self.ids.get_mut(user) {
            u.rooms.insert(room.clone());
            u.room = room.clone();
        }
        if member {
            self.send_users_of(ctx, conn, &room, 0);
            self.send_history_of(ctx, conn, &room);
        } else {
            self.enter_room(ctx, user, &room, None);
        }
        self.record_memberships(ctx, user);
        if also || member {
            self.send_rooms_to(ctx, user);
        }
        Ok(())
    }

    /// `leave` with a `room`: leave that room for good. The current room
    /// becomes the lobby (or another of the user's rooms); a user who
    /// leaves its last room is back in the lobby.
    fn leave(&mut self, ctx: &mut Ctx, conn: ConnId, room: &str) -> Result<(), ErrorReply> {
        let room = self.room_for(conn, Some(room))?;
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        self.leave_one(ctx, user, &room);
        let mut enter_lobby = false;
        if let Some(u) = self.ids.get_mut(user) {
            u.rooms.remove(&room);
            if u.rooms.is_empty() {
                u.rooms.insert(LOBBY.to_string());
                enter_lobby = true;
            }
            if u.room == room {
                u.room = if u.rooms.contains(LOBBY) {
                    LOBBY.to_string()
                } else {
                    u.rooms
                        .iter()
                        .next()
                        .cloned()
                        .unwrap_or_else(|| LOBBY.to_string())
                };
            }
        }
        if enter_lobby {
            self.enter_room(ctx, user, LOBBY, None);
        }
        self.record_memberships(ctx, user);
        self.send_rooms_to(ctx, user);
        Ok(())
    }

    fn private(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        to: UserId,
        text: String,
    ) -> Result<(), ErrorReply> {
        self.check_text(&text)?;
        let Some(from) = self.user_of(conn) else {
            return Ok(());
        };
        let Some(to_ref) = self.user_ref_anywhere(ctx, to) else {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {to}"),
            ));
        };
        let id = ctx.log().take_id();
        let msg = Message::Private {
            id,
            from: &self.user_ref(from),
            to: &to_ref,
            text: &text,
            time: now_ms(),
        }
        .to_json();
        // Kept under both users' keys: their ids, never names or tokens.
        let (from_key, to_key) = (identity::key(from), identity::key(to));
        ctx.log().append(Record::Private {
            from: &from_key,
            to: &to_key,
            json: &msg,
        });
        let frame = Ctx::json_frame(&msg);
        let mut recipients = self.conns_of(to);
        if to != from {
            recipients.extend(self.conns_of(from));
        }
        // Sent to every connection of both; a recipient who is offline
        // gets it on connecting (it is in the log, under its key).
        ctx.publish(id, Some(conn), recipients, &frame);
        Ok(())
    }

    fn typing(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        active: bool,
        room: Option<&str>,
    ) -> Result<(), ErrorReply> {
        let room_name = self.room_for(conn, room)?;
        let Some(id) = self.user_of(conn) else {
            return Ok(());
        };
        let Some(user) = self.ids.get_mut(id) else {
            return Ok(());
        };
        let now = Instant::now();
        if active
            && user
                .last_typing
                .is_some_and(|t| now.duration_since(t) < TYPING_INTERVAL)
        {
            return Ok(());
        }
        user.last_typing = if active { Some(now) } else { None };
        let mine: Vec<ConnId> = user.conns.iter().copied().collect();
        let msg = Message::Typing {
            room: &room_name,
            user: &self.user_ref(id),
            active,
        }
        .to_json();
        if let Some(room) = self.rooms.get(&room_name) {
            let frame = Ctx::json_frame(&msg);
            ctx.broadcast(
                room.conns.iter().copied().filter(|c| !mine.contains(c)),
                &frame,
            );
        }
        // The room's members on other nodes (`--redis`).
        ctx.log().publish(&room_name, &msg);
        Ok(())
    }

    /// `{"type":"privates"}`: the user's private conversations, newest
    /// first, each with its latest message and how many unread.
    fn send_privates(&self, ctx: &mut Ctx, conn: ConnId) {
        let Some(me) = self.user_of(conn).and_then(|u| self.ids.get(u)) else {
            return;
        };
        let read = |peer: &str| {
            peer.strip_prefix('u')
                .and_then(|p| p.parse::<u64>().ok())
                .and_then(|p| me.read.get(&p))
                .unwrap_or(0)
        };
        let peers = ctx.log().private_peers(&me.key(), &read);
        let list: Vec<(Value, usize, Arc<str>)> = peers
            .into_iter()
            .filter_map(|c| {
                let (peer, last, unread) = (c.peer, c.last, c.unread);
                let id = peer.strip_prefix('u')?.parse::<u64>().ok()?;
                // The bot (the HTTP API) is no identity: its name is the
                // one its latest message carries.
                let with = if id == api::BOT_USER_ID {
                    let from = serde_json::from_str::<Value>(&last).ok()?;
                    api::bot_ref(
                        from["from"]["name"]
                            .as_str()
                            .unwrap_or(api::DEFAULT_BOT_NAME),
                    )
                } else if self.ids.get(id).is_some() {
                    self.user_ref(id)
                } else {
                    // Another node's user: named as its latest message
                    // names it.
                    let m = serde_json::from_str::<Value>(&last).ok()?;
                    let side = if m["from"]["id"] == id { "from" } else { "to" };
                    serde_json::json!({"id": id, "name": m[side]["name"]})
                };
                Some((with, unread, last))
            })
            .take(MAX_PRIVATE_LIST)
            .collect();
        let conversations: Vec<PrivateSummary> = list
            .iter()
            .map(|(with, unread, last)| PrivateSummary {
                with,
                unread: *unread,
                last: Stored(last),
            })
            .collect();
        let msg = Message::Privates {
            conversations: &conversations,
        };
        ctx.send_json(conn, &msg.to_json());
    }

    /// `{"type":"private_history","with":ID,"before":MSGID,"limit":N}`: a
    /// page of one private conversation, oldest first.
    fn private_history(
        &self,
        ctx: &mut Ctx,
        conn: ConnId,
        body: &Map<String, Value>,
    ) -> Result<(), ErrorReply> {
        let Some(me) = self.user_of(conn) else {
            return Ok(());
        };
        let with = body.get("with").and_then(Value::as_u64).ok_or_else(|| {
            ErrorReply::new("bad_command", "private_history needs \"with\", a user id")
        })?;
        let Some(with_ref) = self.user_ref_anywhere(ctx, with) else {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {with}"),
            ));
        };
        let (before, limit) = page_bounds(body)?;
        let page =
            ctx.log()
                .private_page((&identity::key(me), &identity::key(with)), before, limit);
        let (messages, missing) = (page.messages, page.missing);
        let msg = Message::PrivateHistory {
            with: &with_ref,
            before,
            complete: missing.is_none(),
            first: missing,
            messages: StoredList(&messages),
        };
        ctx.send_json(conn, &msg.to_json());
        Ok(())
    }

    /// `{"type":"read","with":ID,"upto":MSGID}`: the user has read its
    /// conversation with `with` up to that message (kept across reloads,
    /// devices and restarts: a `read` record).
    fn mark_read(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        body: &Map<String, Value>,
    ) -> Result<(), ErrorReply> {
        let Some(me) = self.user_of(conn) else {
            return Ok(());
        };
        if let Some(room) = body.get("room") {
            return self.mark_room_read(ctx, me, room, body.get("upto"));
        }
        let (Some(with), Some(upto)) = (
            body.get("with").and_then(Value::as_u64),
            body.get("upto").and_then(Value::as_u64),
        ) else {
            return Err(ErrorReply::new(
                "bad_command",
                "read needs \"with\" (a user id) and \"upto\" (a message id)",
            ));
        };
        if self.user_ref_anywhere(ctx, with).is_none() {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {with}"),
            ));
        }
        let Some(user) = self.ids.get_mut(me) else {
            return Ok(());
        };
        if user.read.len() >= MAX_READ_MARKERS && !user.read.contains_key(&with) {
            return Err(ErrorReply::new(
                "too_many",
                format!("at most {MAX_READ_MARKERS} conversations keep read markers"),
            ));
        }
        let at = user.read.at(with);
        if upto <= *at {
            return Ok(());
        }
        *at = upto;
        self.ids.recount(me);
        let id = ctx.log().take_id();
        let record = Entry::Read {
            id,
            user: me,
            with,
            upto,
            time: now_ms(),
        };
        ctx.log().append(Record::State {
            json: &record.to_json(),
        });
        Ok(())
    }

    /// `{"type":"read","room":R,"upto":MSGID}`: the user has read room R
    /// up to that message (a `room_read` record: kept across reloads,
    /// devices and restarts).
    fn mark_room_read(
        &mut self,
        ctx: &mut Ctx,
        me: UserId,
        room: &Value,
        upto: Option<&Value>,
    ) -> Result<(), ErrorReply> {
        let (Some(room), Some(upto)) = (room.as_str(), upto.and_then(Value::as_u64)) else {
            return Err(ErrorReply::new(
                "bad_command",
                "read needs \"room\" (a room name) and \"upto\" (a message id)",
            ));
        };
        let room = valid_name(room).map_err(|m| ErrorReply::new("bad_room", m))?;
        let Some(user) = self.ids.get_mut(me) else {
            return Ok(());
        };
        if user.room_read.len() >= MAX_READ_MARKERS && !user.room_read.contains_key(&room) {
            return Err(ErrorReply::new(
                "too_many",
                format!("at most {MAX_READ_MARKERS} rooms keep read markers"),
            ));
        }
        let at = user.room_read.at(room.clone());
        if upto <= *at {
            return Ok(());
        }
        *at = upto;
        self.ids.recount(me);
        let id = ctx.log().take_id();
        let record = Entry::RoomRead {
            id,
            user: me,
            room: &room,
            upto,
            time: now_ms(),
        };
        ctx.log().append(Record::State {
            json: &record.to_json(),
        });
        Ok(())
    }

    /// Who a new connection says it is: `?token=` (verified, or refused),
    /// else its `?session=`.
    fn presented(&self, info: &ConnInfo) -> Result<Presented, crate::auth::Refusal> {
        match info.request.query_param("token") {
            Some(token) => self.verify(&token).map(Presented::Verified),
            None => Ok(Presented::Anonymous(info.request.query_param("session"))),
        }
    }

    fn verify(&self, token: &str) -> Result<crate::auth::Claims, crate::auth::Refusal> {
        crate::auth::verify(token, &self.config.jwt_secrets, now_ms() / 1000)
    }

    /// Refuse `conn` with 4001 and the token's fault.
    fn refuse(ctx: &mut Ctx, conn: ConnId, why: crate::auth::Refusal) {
        ctx.close(conn, CLOSE_UNAUTHORIZED, why.reason());
    }

    /// Bring connection `conn` in as the user it presented: welcome, room,
    /// history or resume, and what was sent privately while it was away.
    fn arrive(&mut self, ctx: &mut Ctx, conn: ConnId, presented: Presented, asked: Asked) {
        let (user, session) = match presented {
            Presented::Verified(claims) => {
                let user = self.ids.verified(&claims, asked.name.as_deref(), ctx.log());
                (user, None)
            }
            Presented::Anonymous(token) => {
                let (user, token) = self.ids.anonymous(token, asked.name.as_deref(), ctx.log());
                (user, Some(token))
            }
        };
        if let Some(until) = self.ids.banned(user, now_ms()) {
            let minutes = until.saturating_sub(now_ms()).div_ceil(60_000);
            ctx.close(
                conn,
                CLOSE_FORBIDDEN,
                &format!("banned for {minutes} more minutes"),
            );
            return;
        }
        if let Some(Err(why)) = asked.name.as_deref().map(valid_name) {
            Chat::error(ctx, conn, ErrorReply::new("bad_name", why));
        }
        let was_online = self.ids.get(user).is_some_and(|u| !u.conns.is_empty());
        if !was_online && let Some(u) = self.ids.get(user) {
            // Other nodes of a cluster name the user by it.
            ctx.log().user_named(user, &u.name);
        }
        self.conns.insert(conn, user);
        if let Some(u) = self.ids.get_mut(user) {
            u.conns.insert(conn);
        }
        self.ids.touch(user, now_ms());
        // `?room=` enters a room at once (a reconnecting page goes back to
        // where it was); otherwise the user's own room, kept across
        // reconnects; `?since=` resumes after the last message seen.
        let current = self.ids.get(user).map(|u| u.room.clone());
        let room = match asked.room.as_deref().map(valid_name) {
            Some(Ok(room))
                if self.rooms.contains_key(&room) || self.rooms.len() < self.config.max_rooms =>
            {
                room
            }
            Some(Ok(_)) => {
                Chat::error(
                    ctx,
                    conn,
                    ErrorReply::new(
                        "room_limit",
                        "the server has its limit of rooms; you are in the lobby",
                    ),
                );
                LOBBY.to_string()
            }
            Some(Err(why)) => {
                Chat::error(ctx, conn, ErrorReply::new("bad_room", why));
                LOBBY.to_string()
            }
            None => current
                .clone()
                .filter(|r| self.rooms.contains_key(r) || self.rooms.len() < self.config.max_rooms)
                .unwrap_or_else(|| LOBBY.to_string()),
        };
        let me = self.ids.get(user);
        let welcome = Message::Welcome {
            user: &self.ids.user_ref_full(user),
            room: &room,
            session: session.as_deref(),
            server: concat!("wschat ", env!("CARGO_PKG_VERSION")),
        }
        .to_json();
        let pending_since = me.map_or(0, |u| u.left_at);
        ctx.send_json(conn, &welcome);
        let resume = asked.since.map(|since| (conn, since));
        let member = self.ids.get(user).is_some_and(|u| u.rooms.contains(&room));
        let moved = current.as_deref() != Some(room.as_str());
        // A room the user is not in, asked for with `?room=`: a move, as
        // `join` (it leaves its current room).
        if moved
            && !member
            && let Some(old) = current.as_deref()
        {
            if was_online {
                self.leave_one(ctx, user, old);
            }
            if let Some(u) = self.ids.get_mut(user) {
                u.rooms.remove(old);
            }
        }
        if let Some(u) = self.ids.get_mut(user) {
            u.rooms.insert(room.clone());
            u.room = room.clone();
        }
        if moved {
            self.record_memberships(ctx, user);
        }
        // The current room first (what a one-room client reads), then the
        // user's other rooms.
        let others: Vec<String> = self
            .ids
            .get(user)
            .map(|u| u.rooms.iter().filter(|r| **r != room).cloned().collect())
            .unwrap_or_default();
        if was_online {
            // Another connection of someone already here: it joins the
            // rooms the user is in, and nobody is told of a join.
            for name in others.iter().chain(std::iter::once(&room)) {
                if let Some(r) = self.rooms.get_mut(name)
                    && r.members.contains(&user)
                {
                    r.conns.insert(conn);
                }
            }
            let present = |chat: &Chat, name: &str| {
                chat.rooms
                    .get(name)
                    .is_some_and(|r| r.members.contains(&user))
            };
            if present(self, &room) {
                self.send_users_of(ctx, conn, &room, 0);
                match resume {
                    Some((_, since)) => self.resume_room(ctx, conn, &room, since),
                    None => self.send_history_of(ctx, conn, &room),
                }
            } else {
                self.enter_room(ctx, user, &room, resume);
            }
            for name in &others {
                self.send_users_of(ctx, conn, name, 0);
                match resume {
                    Some((_, since)) => self.resume_room(ctx, conn, name, since),
                    None => self.send_history_of(ctx, conn, name),
                }
            }
        } else {
            self.enter_room(ctx, user, &room, resume);
            for name in &others {
                if self.rooms.contains_key(name) || self.rooms.len() < self.config.max_rooms {
                    self.enter_room(ctx, user, name, resume);
                }
            }
        }
        // What was sent privately while the user was away (a resume has
        // them already).
        if !was_online && asked.since.is_none() && pending_since > 0 {
            let missed = ctx
                .log()
                .privates_since(&identity::key(user), pending_since);
            for json in missed {
                ctx.send_json(conn, &json);
            }
        }
    }

    /// A connection's first message under `--auth required`, or an `auth`
    /// command: sign in with a token.
    fn auth(&mut self, ctx: &mut Ctx, conn: ConnId, token: &str) {
        let claims = match self.verify(token) {
            Ok(claims) => claims,
            Err(why) => return Chat::refuse(ctx, conn, why),
        };
        if let Some(asked) = self.waiting.remove(&conn) {
            return self.arrive(ctx, conn, Presented::Verified(claims), asked);
        }
        // Signed in after arriving anonymously: the connection becomes the
        // verified user (a new welcome says so).
        let Some(old) = self.user_of(conn) else {
            return;
        };
        let room = self.ids.get(old).map(|u| u.room.clone());
        self.depart(ctx, conn);
        let asked = Asked {
            name: None,
            room,
            since: None,
            at: Instant::now(),
        };
        self.arrive(ctx, conn, Presented::Verified(claims), asked);
    }

    /// `conn` goes: its user leaves the room when it was the user's last
    /// connection.
    fn depart(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let Some(user) = self.conns.remove(&conn) else {
            return;
        };
        let last = match self.ids.get_mut(user) {
            Some(u) => {
                u.conns.remove(&conn);
                u.conns.is_empty()
            }
            None => true,
        };
        if last {
            self.leave_room(ctx, user);
        } else if let Some(u) = self.ids.get(user) {
            for name in &u.rooms {
                if let Some(room) = self.rooms.get_mut(name) {
                    room.conns.remove(&conn);
                }
            }
        }
        self.ids.touch(user, now_ms());
    }

    /// Moderation by an administrator (a verified user whose token says
    /// `"role":"admin"`); anyone else gets `forbidden`.
    fn moderate(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        command: Command,
    ) -> Result<(), ErrorReply> {
        let admin = self
            .user_of(conn)
            .and_then(|u| self.ids.get(u))
            .is_some_and(|u| u.admin);
        if !admin {
            return Err(ErrorReply::new(
                "forbidden",
                "only an administrator (a token with \"role\":\"admin\") may do that",
            ));
        }
        match command {
            Command::Kick { user } => self.kick(ctx, user, "kicked by an administrator"),
            Command::Ban { user, minutes } => self.ban(ctx, user, minutes),
            Command::Delete { id } => self.delete(ctx, id),
            _ => Ok(()),
        }
    }

    /// Close every connection of `user` with 4003.
    pub fn kick(&mut self, ctx: &mut Ctx, user: UserId, reason: &str) -> Result<(), ErrorReply> {
        if self.ids.get(user).is_none() {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {user}"),
            ));
        }
        for conn in self.conns_of(user) {
            ctx.close(conn, CLOSE_FORBIDDEN, reason);
        }
        Ok(())
    }

    /// Ban `user` (its `sub`, or its session) for `minutes`, and close its
    /// connections.
    pub fn ban(&mut self, ctx: &mut Ctx, user: UserId, minutes: u64) -> Result<(), ErrorReply> {
        let minutes = minutes.clamp(1, MAX_BAN_MINUTES);
        let until = now_ms() + minutes * 60_000;
        // Another node's user (with `--redis`) is banned by its id.
        let known = self.ids.ban(user, until);
        if !known && ctx.log().user_name(user).is_none() {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {user}"),
            ));
        }
        // On every node of a cluster (a single node's store drops it).
        let keys = self.ids.cluster_keys(user);
        for key in &keys {
            self.ids.cluster_ban(key, until);
        }
        ctx.log().ban(&keys, until);
        if !known {
            return Ok(());
        }
        self.kick(ctx, user, &format!("banned for {minutes} minutes"))
    }

    /// Delete message `id`: out of memory, history and resume for good (the
    /// log keeps a tombstone), and its room is told.
    pub fn delete(&mut self, ctx: &mut Ctx, id: u64) -> Result<(), ErrorReply> {
        let Some(room) = ctx.log().delete(id) else {
            return Err(ErrorReply::new(
                "unknown_message",
                format!("no message with id {id}"),
            ));
        };
        let msg = Message::Deleted { id, room: &room }.to_json();
        if let Some(r) = self.rooms.get(&room) {
            ctx.broadcast(r.conns.iter().copied(), &Ctx::json_frame(&msg));
        }
        ctx.log().publish(&room, &msg);
        Ok(())
    }
}

/// Room message `id` as the log serves it now, parsed; `None` when there
/// is no such chat message.
fn stored_chat(ctx: &mut Ctx, id: u64) -> Option<Value> {
    let json = ctx.log().message(id)?;
    serde_json::from_str::<Value>(&json)
        .ok()
        .filter(|v| v["type"] == "chat" && v["id"].as_u64() == Some(id))
}

/// A new version of stored chat message `old`: its id, room, author, time
/// and reply as they were, with `text`, `reactions` and `edited`.
fn new_version(old: &Value, text: &str, reactions: Option<&Value>, edited: Option<u64>) -> String {
    Message::Chat {
        id: old["id"].as_u64().unwrap_or(0),
        room: old["room"].as_str().unwrap_or(""),
        user: &old["user"],
        text,
        time: old["time"].as_u64().unwrap_or(0),
        reply: old.get("reply"),
        reactions,
        edited,
    }
    .to_json()
}

/// Every how many hub ticks crowds hear of presence: ticks are at least
/// [`TICK_INTERVAL`](crate::hub::TICK_INTERVAL) apart, so updates are at
/// least [`PRESENCE_INTERVAL`] apart.
fn presence_ticks() -> u64 {
    let tick = crate::hub::TICK_INTERVAL.as_millis().max(1);
    (PRESENCE_INTERVAL.as_millis().div_ceil(tick) as u64).max(1)
}

/// A page request's `before` (an id, or none) and `limit` (at most
/// [`MAX_HISTORY_PAGE`], [`HISTORY_LEN`] when not given).
fn page_bounds(body: &Map<String, Value>) -> Result<(Option<u64>, usize), ErrorReply> {
    let number = |field: &str| match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ErrorReply::new("bad_command", format!("\"{field}\" must be a whole number"))
        }),
    };
    let before = number("before")?;
    let limit = number("limit")?
        .unwrap_or(HISTORY_LEN as u64)
        .min(MAX_HISTORY_PAGE as u64) as usize;
    Ok((before, limit))
}

/// Check a user or room name: trimmed, 1-32 characters, no control
/// characters. Returns the trimmed name or why it is refused.
///
/// ```
/// use wschat::chat::valid_name;
/// assert_eq!(valid_name("  小明 "), Ok("小明".to_string()));
/// assert!(valid_name("").is_err());
/// assert!(valid_name("a\u{7}b").is_err());
/// assert!(valid_name(&"x".repeat(33)).is_err());
/// ```
pub fn valid_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err("a name cannot be empty".into());
    }
    if chars > MAX_NAME_CHARS {
        return Err(format!("a name has at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a name cannot hold control characters".into());
    }
    Ok(name.to_string())
}

impl App for Chat {
    /// A room message the store delivers itself (the cluster's, in the
    /// log's order): to this node's members of the room, encoded once.
    fn log_message(&mut self, ctx: &mut Ctx, room: &str, json: &std::sync::Arc<str>) {
        if let Some(members) = self.rooms.get(room) {
            ctx.broadcast(members.conns.iter().copied(), &Ctx::json_frame(json));
        }
    }

    /// An event another node published to `room`: a user typing (to the
    /// room's members here but that user's own connections), a new name
    /// (to the room's members, and the room's list of members elsewhere
    /// takes it), a message edited, reacted to or deleted (to the room's
    /// members).
    fn log_event(&mut self, ctx: &mut Ctx, room: &str, json: &std::sync::Arc<str>) {
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            return;
        };
        let user = v["user"]["id"].as_u64();
        let mine = user.map_or_else(Vec::new, |u| self.conns_of(u));
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        match v["type"].as_str() {
            Some("typing") => {
                let to: Vec<ConnId> = r
                    .conns
                    .iter()
                    .copied()
                    .filter(|c| !mine.contains(c))
                    .collect();
                ctx.broadcast(to, &Ctx::json_frame(json));
            }
            Some("rename") => {
                if let (Some(user), Some(name)) = (user, v["user"]["name"].as_str())
                    && let Some(known) = r.remote.get_mut(&user)
                {
                    *known = name.to_string();
                }
                ctx.broadcast(r.conns.iter().copied(), &Ctx::json_frame(json));
            }
            // A room message changed on another node: the store serves
            // the new version already.
            Some("edited" | "reactions" | "deleted") => {
                ctx.broadcast(r.conns.iter().copied(), &Ctx::json_frame(json));
            }
            _ => {}
        }
    }

    /// A ban made on another node: kept, and the users it covers on this
    /// node are closed with 4003, as a ban made here.
    fn log_ban(&mut self, ctx: &mut Ctx, key: &str, until: u64) {
        self.ids.cluster_ban(key, until);
        let minutes = until.saturating_sub(now_ms()).div_ceil(60_000);
        for user in self.ids.banned_by(key) {
            for conn in self.conns_of(user) {
                ctx.close(
                    conn,
                    CLOSE_FORBIDDEN,
                    &format!("banned for {minutes} minutes"),
                );
            }
        }
    }

    /// A user came to `room` on another node, or is on none any more: the
    /// room's members here hear of it as of a local one (once per user,
    /// whatever node it is on; a crowd counts it).
    fn log_presence(&mut self, _ctx: &mut Ctx, room: &str, user: UserId, name: Option<&str>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return; // nobody here to tell; read again when someone comes
        };
        if !r.remote_known {
            return;
        }
        let local = r.members.contains(&user);
        let news = match name {
            Some(name) => {
                let new = r.remote.insert(user, name.to_string()).is_none();
                if new && !local {
                    r.arrive_as(serde_json::json!({"id": user, "name": name}));
                }
                new && !local
            }
            None => match r.remote.remove(&user) {
                Some(name) if !local => {
                    r.depart_as(serde_json::json!({"id": user, "name": name}));
                    true
                }
                _ => false,
            },
        };
        if news {
            self.mark_dirty(room);
        }
    }

    /// A private message the store delivers itself (the cluster's): to
    /// this node's connections of both users, encoded once.
    fn log_private(&mut self, ctx: &mut Ctx, from: &str, to: &str, json: &std::sync::Arc<str>) {
        let user = |key: &str| key.strip_prefix('u').and_then(|k| k.parse::<UserId>().ok());
        let mut conns = user(to).map_or_else(Vec::new, |u| self.conns_of(u));
        if from != to
            && let Some(u) = user(from)
        {
            conns.extend(self.conns_of(u));
        }
        if !conns.is_empty() {
            ctx.broadcast(conns, &Ctx::json_frame(json));
        }
    }

    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo) {
        let q = |name: &str| info.request.query_param(name);
        let asked = Asked {
            name: q("name"),
            room: q("room"),
            since: q("since").and_then(|s| s.parse::<u64>().ok()),
            at: Instant::now(),
        };
        match self.presented(&info) {
            Err(why) => Chat::refuse(ctx, conn, why),
            Ok(Presented::Anonymous(_)) if self.config.auth == AuthMode::Required => {
                // Its first message may still sign it in.
                self.waiting.insert(conn, asked);
            }
            Ok(presented) => self.arrive(ctx, conn, presented, asked),
        }
    }

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        if self.waiting.contains_key(&conn) {
            match command::parse(&text) {
                Ok(Command::Auth { token }) => self.auth(ctx, conn, &token),
                _ => {
                    self.waiting.remove(&conn);
                    Chat::refuse(ctx, conn, crate::auth::Refusal::Required);
                }
            }
            return;
        }
        if !self.conns.contains_key(&conn) {
            return;
        }
        let result = match command::parse(&text) {
            Err(e) => Err(e),
            Ok(Command::Chat { text, room, reply }) => {
                self.chat(ctx, conn, text, room.as_deref(), reply)
            }
            Ok(Command::Name { name }) => self.rename(ctx, conn, &name),
            Ok(Command::Join { room, also }) => self.join(ctx, conn, &room, also),
            Ok(Command::Leave { room: None }) => self.join(ctx, conn, LOBBY, false),
            Ok(Command::Leave { room: Some(room) }) => self.leave(ctx, conn, &room),
            Ok(Command::Users { offset }) => {
                self.send_users(ctx, conn, offset);
                Ok(())
            }
            Ok(Command::Private { to, text }) => self.private(ctx, conn, to, text),
            Ok(Command::Typing { active, room }) => self.typing(ctx, conn, active, room.as_deref()),
            Ok(Command::Auth { token }) => {
                self.auth(ctx, conn, &token);
                Ok(())
            }
            Ok(c @ (Command::Kick { .. } | Command::Ban { .. } | Command::Delete { .. })) => {
                self.moderate(ctx, conn, c)
            }
            Ok(Command::Other { kind, body }) if kind == "history" => {
                self.history_page(ctx, conn, &body)
            }
            Ok(Command::Other { kind, body }) if kind == "find" => {
                let query = body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim();
                if query.is_empty() || query.chars().count() > MAX_NAME_CHARS {
                    Err(ErrorReply::new(
                        "bad_command",
                        "find needs \"name\", 1-32 characters",
                    ))
                } else {
                    let users = self.ids.find(query, MAX_FOUND);
                    let msg = Message::Found {
                        name: query,
                        users: &users,
                    }
                    .to_json();
                    ctx.send_json(conn, &msg);
                    Ok(())
                }
            }
            Ok(Command::Edit { id, text }) => self.edit(ctx, conn, id, &text),
            Ok(Command::Search {
                text,
                room,
                with,
                before,
                limit,
            }) => self.search(
                ctx,
                conn,
                Search {
                    text,
                    room,
                    with,
                    before,
                    limit,
                },
            ),
            Ok(Command::Retract { id }) => self.retract(ctx, conn, id),
            Ok(Command::React { id, emoji }) => self.react(ctx, conn, id, &emoji),
            Ok(Command::Other { kind, .. }) if kind == "rooms" => {
                self.send_rooms(ctx, conn);
                Ok(())
            }
            Ok(Command::Other { kind, .. }) if kind == "privates" => {
                self.send_privates(ctx, conn);
                Ok(())
            }
            Ok(Command::Other { kind, body }) if kind == "private_history" => {
                self.private_history(ctx, conn, &body)
            }
            Ok(Command::Other { kind, body }) if kind == "read" => self.mark_read(ctx, conn, &body),
            Ok(Command::Other { kind, body }) if kind == "resume" => {
                match body.get("since").and_then(Value::as_u64) {
                    Some(since) => self
                        .room_for(conn, body.get("room").and_then(Value::as_str))
                        .map(|room| self.resume_room(ctx, conn, &room, since)),
                    None => Err(ErrorReply::new(
                        "bad_command",
                        "resume needs \"since\", a message id",
                    )),
                }
            }
            Ok(Command::Other { kind, .. }) => Err(ErrorReply::new(
                "unknown_type",
                format!("unknown message type {kind:?} (see docs/chat-protocol.md)"),
            )),
        };
        if let Err(e) = result {
            Chat::error(ctx, conn, e);
        }
    }

    fn binary(&mut self, ctx: &mut Ctx, conn: ConnId, data: Vec<u8>) {
        let Some(room) = self.room_of(conn) else {
            return;
        };
        if data.len() > self.config.max_binary_bytes {
            let e = ErrorReply::new(
                "binary_too_long",
                format!(
                    "binary message is {} bytes; the limit is {}",
                    data.len(),
                    self.config.max_binary_bytes
                ),
            );
            Chat::error(ctx, conn, e);
            return;
        }
        if let Some(room) = self.rooms.get(&room) {
            ctx.broadcast(room.conns.iter().copied(), &Ctx::binary_frame(&data));
        }
    }

    fn closed(&mut self, ctx: &mut Ctx, conn: ConnId) {
        self.waiting.remove(&conn);
        self.depart(ctx, conn);
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        self.ids.trim();
        self.ids.reload_bans(now_ms());
        // Connections that were to sign in with their first message and
        // did not.
        let late: Vec<ConnId> = self
            .waiting
            .iter()
            .filter(|(_, a)| a.at.elapsed() >= AUTH_TIMEOUT)
            .map(|(&c, _)| c)
            .collect();
        for conn in late {
            self.waiting.remove(&conn);
            Chat::refuse(ctx, conn, crate::auth::Refusal::Required);
        }
        if self.last_retention.elapsed() >= RETENTION_INTERVAL {
            self.last_retention = Instant::now();
            self.ids.expire(now_ms());
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(presence_ticks()) {
            self.send_presence(ctx);
        }
    }

    fn api(
        &mut self,
        ctx: &mut Ctx,
        request: &crate::hub::api::ApiRequest,
    ) -> crate::hub::api::ApiResponse {
        self.api_request(ctx, request)
    }

    fn turn_end(&mut self, ctx: &mut Ctx) {
        self.send_first_pages(ctx);
        let time = now_ms();
        for room_name in std::mem::take(&mut self.dirty) {
            let Some(room) = self.rooms.get_mut(&room_name) else {
                continue;
            };
            let count = room.count();
            if !room.crowd && count > CROWD_SIZE {
                // From now on a count; this turn's arrivals and departures
                // are counted in the first `presence`.
                room.crowd = true;
                room.arrived += std::mem::take(&mut room.joined).len();
                room.departed += std::mem::take(&mut room.left).len();
            }
            let (joined, left) = net_presence(
                std::mem::take(&mut room.joined),
                std::mem::take(&mut room.left),
                |user| room.has(user),
            );
            for (join, users) in [(true, joined), (false, left)] {
                if users.is_empty() {
                    continue;
                }
                let (room_name, users) = (room_name.as_str(), users.as_slice());
                let msg = if join {
                    Message::Join {
                        room: room_name,
                        users,
                        count,
                        time,
                    }
                } else {
                    Message::Leave {
                        room: room_name,
                        users,
                        count,
                        time,
                    }
                }
                .to_json();
                ctx.broadcast(room.conns.iter().copied(), &Ctx::json_frame(&msg));
            }
            if room.members.is_empty() && room_name != LOBBY {
                self.rooms.remove(&room_name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_in_one_turn_is_told_as_what_the_user_is_at_its_end() {
        use serde_json::json;
        let ann = json!({"id": 1, "name": "ann"});
        let bob = json!({"id": 2, "name": "bob"});
        let cat = json!({"id": 3, "name": "cat"});
        let members: BTreeSet<UserId> = [1, 3].into();
        // ann reloaded (still here), bob came and went, cat only came.
        let (joined, left) = net_presence(
            vec![ann.clone(), bob.clone(), cat.clone()],
            vec![ann.clone(), bob.clone()],
            |user| members.contains(&user),
        );
        assert_eq!(joined, [ann, cat]);
        assert_eq!(left, [bob]);
    }

    #[test]
    fn everyone_merges_members_here_and_elsewhere_once_in_id_order() {
        let room = Room {
            members: [1, 3, 5, 9].into(),
            remote: [
                (2, "b".into()),
                (3, "c".into()),
                (6, "f".into()),
                (10, "j".into()),
            ]
            .into(),
            ..Room::default()
        };
        assert_eq!(room.everyone().collect::<Vec<_>>(), [1, 2, 3, 5, 6, 9, 10]);
        assert_eq!(room.count(), 7);
        assert!(room.has(2) && room.has(3) && room.has(9) && !room.has(4));
        let only_here = Room {
            members: [4, 7].into(),
            ..Room::default()
        };
        assert_eq!(only_here.everyone().collect::<Vec<_>>(), [4, 7]);
        let only_there = Room {
            remote: [(8, "h".into())].into(),
            ..Room::default()
        };
        assert_eq!(only_there.everyone().collect::<Vec<_>>(), [8]);
    }
}
