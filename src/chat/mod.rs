//! The chat: users, rooms, private messages and typing notices, run by the
//! hub thread (see [`crate::hub`]) as an [`App`].
//!
//! Everything here is owned by the hub thread, so nothing is locked. A room
//! message is serialized and framed once, and the same bytes go to every
//! member. Joins and leaves that happen in one hub turn go out as one notice
//! per room, so a crowd arriving at once does not cost O(n²) notices.
//!
//! The protocol is in docs/chat-protocol.md.

pub mod command;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::clock::now_ms;
use crate::hub::{App, ConnId, ConnInfo, Ctx};
use crate::json::Object;
use crate::ordered;
use crate::store::SharedStore;
use crate::store::digest_hex;
use command::{Command, ErrorReply};

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
/// Most messages one `history` page returns.
pub const MAX_HISTORY_PAGE: usize = 100;
/// How often whole old segments are looked for and deleted.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// At most one typing notice per user per this interval (a client that
/// sends one a second is never cut by timing jitter).
pub const TYPING_INTERVAL: Duration = Duration::from_millis(900);

/// The chat's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatConfig {
    /// Longest text, in bytes.
    pub max_text_bytes: usize,
    /// Longest binary message relayed to a room, in bytes.
    pub max_binary_bytes: usize,
    /// Most rooms at once (the lobby included).
    pub max_rooms: usize,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            max_binary_bytes: DEFAULT_MAX_BINARY_BYTES,
            max_rooms: DEFAULT_MAX_ROOMS,
        }
    }
}

#[derive(Debug)]
struct User {
    name: String,
    room: String,
    last_typing: Option<Instant>,
    /// A secret that identifies this user's session across reconnects
    /// (given in `welcome`, presented as `?session=`): private messages
    /// are resumed by it, never by name.
    session: String,
}

/// Most sessions remembered for resume.
pub const MAX_SESSIONS: usize = 100_000;

/// What one remembered session costs beyond its token: its entries in the
/// two maps below.
pub const SESSION_OVERHEAD: usize = 120;

/// The sessions a chat remembers, least recently used first out: at most
/// [`MAX_SESSIONS`], and within the sessions' share of the memory budget.
#[derive(Debug)]
struct Sessions {
    last_used: HashMap<String, u64>,
    by_age: std::collections::BTreeMap<u64, String>,
    clock: u64,
    budget: Arc<crate::memory::Budget>,
}

impl Sessions {
    fn new(budget: Arc<crate::memory::Budget>) -> Sessions {
        Sessions {
            last_used: HashMap::new(),
            by_age: Default::default(),
            clock: 0,
            budget,
        }
    }

    fn contains(&self, token: &str) -> bool {
        self.last_used.contains_key(token)
    }

    /// Remember `token` as used now.
    fn touch(&mut self, token: &str) {
        self.clock += 1;
        match self.last_used.get_mut(token) {
            Some(at) => {
                self.by_age.remove(at);
                *at = self.clock;
            }
            None => {
                self.last_used.insert(token.to_string(), self.clock);
                self.budget.add(crate::memory::Kept::Sessions, cost(token));
            }
        }
        self.by_age.insert(self.clock, token.to_string());
        if self.last_used.len() > MAX_SESSIONS {
            self.forget_oldest();
        }
        self.trim();
    }

    /// Forget the least recently used sessions while they are over their
    /// share of the memory budget (the store still recognises a token it
    /// keeps private messages for).
    fn trim(&mut self) {
        while self.budget.must_evict(crate::memory::Kept::Sessions) && self.forget_oldest() {}
    }

    fn forget_oldest(&mut self) -> bool {
        let Some((_, token)) = self.by_age.pop_first() else {
            return false;
        };
        self.last_used.remove(&token);
        self.budget.sub(crate::memory::Kept::Sessions, cost(&token));
        self.budget.evicted(crate::memory::Kept::Sessions, 1);
        true
    }
}

/// A session's bytes, as the memory budget counts them.
fn cost(token: &str) -> usize {
    2 * token.len() + SESSION_OVERHEAD
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<ConnId>,
    /// Users who entered or left during this turn, for one notice each.
    joined: Vec<Value>,
    left: Vec<Value>,
}

/// The chat application.
#[derive(Debug)]
pub struct Chat {
    config: ChatConfig,
    users: HashMap<ConnId, User>,
    /// Lower-cased names in use, for uniqueness.
    names: HashMap<String, ConnId>,
    rooms: HashMap<String, Room>,
    /// Rooms with joins or leaves to announce at the end of the turn.
    dirty: Vec<String>,
    next_auto_name: u64,
    /// Sessions handed out, for `?session=` on reconnect: when each was
    /// last used (a connection opening or closing with it).
    sessions: Sessions,
    /// Messages and membership records, durable or in memory.
    store: SharedStore,
    last_retention: Instant,
}

impl Chat {
    /// A chat with `config` over `store` (history and ids come from it).
    pub fn new(config: ChatConfig, store: SharedStore) -> Chat {
        let budget = store.lock().unwrap_or_else(|e| e.into_inner()).budget();
        let mut rooms = HashMap::new();
        rooms.insert(LOBBY.to_string(), Room::default());
        Chat {
            config,
            users: HashMap::new(),
            names: HashMap::new(),
            rooms,
            dirty: Vec::new(),
            next_auto_name: 1,
            sessions: Sessions::new(budget),
            store,
            last_retention: Instant::now(),
        }
    }

    fn user_ref(&self, conn: ConnId) -> Value {
        let name = self.users.get(&conn).map_or("", |u| u.name.as_str());
        json!({"id": conn, "name": name})
    }

    fn error(ctx: &mut Ctx, conn: ConnId, error: ErrorReply) {
        ctx.send_json(conn, &error.to_json());
    }

    /// A name nobody else has: `wanted`, or `wanted2`, `wanted3`, …
    fn unique_name(&self, wanted: &str, me: ConnId) -> String {
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

    /// The store (shared with the other apps of the hub thread; only that
    /// thread locks it, so the lock is never contended).
    fn store(&self) -> std::sync::MutexGuard<'_, crate::store::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session a connection presents, if this server issued it (before
    /// a restart, too: the store knows it by the private messages it keeps
    /// under its key), else a new one (128 random bits, hex).
    fn session(&mut self, presented: Option<String>) -> String {
        if let Some(token) = presented.as_ref().filter(|t| self.sessions.contains(t)) {
            self.sessions.touch(token);
            return token.clone();
        }
        let token = presented
            .filter(|t| self.store().knows_session(&digest_hex(t)))
            .unwrap_or_else(|| {
                crate::random::random_16()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            });
        self.sessions.touch(&token);
        token
    }

    fn take_id(&mut self) -> u64 {
        self.store().take_id()
    }

    /// Record a member entering or leaving a room.
    fn record_membership(&mut self, kind: &str, conn: ConnId, room: &str) {
        let id = self.take_id();
        let record = ordered! {"type": kind, "id": id, "room": room, "user": self.user_ref(conn), "time": now_ms()};
        self.store().append(&record);
    }

    fn enter_room(&mut self, ctx: &mut Ctx, conn: ConnId, room_name: &str) {
        self.enter_room_then(ctx, conn, room_name, None);
    }

    /// Enter a room; the newcomer gets the member list, then the room's
    /// history, or with `since`, everything after that id.
    fn enter_room_then(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        room_name: &str,
        since: Option<u64>,
    ) {
        self.record_membership("joined", conn, room_name);
        let me = self.user_ref(conn);
        let room = self.rooms.entry(room_name.to_string()).or_default();
        room.members.insert(conn);
        room.joined.push(me);
        if let Some(user) = self.users.get_mut(&conn) {
            user.room = room_name.to_string();
        }
        self.mark_dirty(room_name);
        self.send_users(ctx, conn, 0);
        match since {
            Some(since) => self.resume(ctx, conn, since),
            None => self.send_history(ctx, conn),
        }
    }

    fn leave_room(&mut self, conn: ConnId) {
        let Some(room_name) = self.users.get(&conn).map(|u| u.room.clone()) else {
            return;
        };
        self.record_membership("left", conn, &room_name);
        let me = self.user_ref(conn);
        if let Some(room) = self.rooms.get_mut(&room_name) {
            room.members.remove(&conn);
            room.left.push(me);
        }
        self.mark_dirty(&room_name);
    }

    fn mark_dirty(&mut self, room: &str) {
        if !self.dirty.iter().any(|r| r == room) {
            self.dirty.push(room.to_string());
        }
    }

    fn send_users(&self, ctx: &mut Ctx, conn: ConnId, offset: usize) {
        let Some(room_name) = self.users.get(&conn).map(|u| &u.room) else {
            return;
        };
        let Some(room) = self.rooms.get(room_name) else {
            return;
        };
        let page: Vec<Value> = room
            .members
            .iter()
            .skip(offset)
            .take(USERS_PAGE)
            .map(|&m| self.user_ref(m))
            .collect();
        let more = offset.saturating_add(page.len()) < room.members.len();
        let msg = ordered! {
            "type": "users", "room": room_name, "count": room.members.len(),
            "offset": offset, "more": more, "users": page,
        };
        ctx.send_json(conn, &msg);
    }

    fn send_history(&self, ctx: &mut Ctx, conn: ConnId) {
        let Some(room_name) = self.users.get(&conn).map(|u| u.room.clone()) else {
            return;
        };
        let (messages, missing) = self.store().history(&room_name, None, HISTORY_LEN);
        let extra = completeness(missing);
        ctx.send_json(
            conn,
            &message_list("history", &room_name, &extra, &messages),
        );
    }

    /// `{"type":"history","room","before","limit"}`: a page further back.
    fn history_page(
        &self,
        ctx: &mut Ctx,
        conn: ConnId,
        body: &Map<String, Value>,
    ) -> Result<(), ErrorReply> {
        let room = match body.get("room") {
            None | Some(Value::Null) => self.users[&conn].room.clone(),
            Some(Value::String(r)) => valid_name(r).map_err(|m| ErrorReply::new("bad_room", m))?,
            Some(_) => return Err(ErrorReply::new("bad_command", "\"room\" must be a string")),
        };
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
        let (messages, missing) = self.store().history(&room, before, limit);
        let mut extra = vec![("before", before.map_or(Value::Null, Value::from))];
        extra.extend(completeness(missing));
        ctx.send_json(conn, &message_list("history", &room, &extra, &messages));
        Ok(())
    }

    /// Send what `conn` missed since `since`: its room's messages and its
    /// private messages, in order, then (being the hub) the live stream
    /// follows with nothing in between.
    fn resume(&self, ctx: &mut Ctx, conn: ConnId, since: u64) {
        let Some(user) = self.users.get(&conn) else {
            return;
        };
        let (messages, missing) = self
            .store()
            .since(&user.room, &digest_hex(&user.session), since);
        let mut extra = vec![("since", Value::from(since))];
        extra.extend(completeness(missing));
        ctx.send_json(conn, &message_list("resume", &user.room, &extra, &messages));
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

    fn chat(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) -> Result<(), ErrorReply> {
        self.check_text(&text)?;
        let id = self.take_id();
        let room_name = self.users[&conn].room.clone();
        let msg: Arc<str> = ordered! {
            "type": "chat", "id": id, "room": room_name,
            "user": self.user_ref(conn), "text": text, "time": now_ms(),
        }
        .into();
        let frame = Ctx::json_frame(&msg);
        self.store().append_message(&msg);
        if let Some(room) = self.rooms.get(&room_name) {
            ctx.publish(id, Some(conn), room.members.iter().copied(), &frame);
        }
        Ok(())
    }

    fn rename(&mut self, ctx: &mut Ctx, conn: ConnId, wanted: &str) -> Result<(), ErrorReply> {
        let wanted = valid_name(wanted).map_err(|m| ErrorReply::new("bad_name", m))?;
        let name = self.unique_name(&wanted, conn);
        let Some(user) = self.users.get_mut(&conn) else {
            return Ok(());
        };
        if user.name == name {
            return Ok(());
        }
        let old = std::mem::replace(&mut user.name, name.clone());
        let room_name = user.room.clone();
        self.names.remove(&old.to_lowercase());
        self.names.insert(name.to_lowercase(), conn);
        let msg = ordered! {
            "type": "rename", "room": room_name, "user": self.user_ref(conn),
            "old": old, "time": now_ms(),
        };
        if let Some(room) = self.rooms.get(&room_name) {
            ctx.broadcast(room.members.iter().copied(), &Ctx::json_frame(&msg));
        }
        Ok(())
    }

    fn join(&mut self, ctx: &mut Ctx, conn: ConnId, room: &str) -> Result<(), ErrorReply> {
        let room = valid_name(room)
            .map_err(|m| ErrorReply::new("bad_room", m.replace("name", "room name")))?;
        if self.users[&conn].room == room {
            self.send_users(ctx, conn, 0);
            self.send_history(ctx, conn);
            return Ok(());
        }
        if !self.rooms.contains_key(&room) && self.rooms.len() >= self.config.max_rooms {
            return Err(ErrorReply::new(
                "room_limit",
                format!(
                    "the server has its limit of {} rooms",
                    self.config.max_rooms
                ),
            ));
        }
        self.leave_room(conn);
        self.enter_room(ctx, conn, &room);
        Ok(())
    }

    fn private(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        to: u64,
        text: String,
    ) -> Result<(), ErrorReply> {
        self.check_text(&text)?;
        if !self.users.contains_key(&to) {
            return Err(ErrorReply::new(
                "unknown_user",
                format!("no user with id {to} is connected"),
            ));
        }
        let id = self.take_id();
        let msg = ordered! {
            "type": "private", "id": id, "from": self.user_ref(conn), "to": self.user_ref(to),
            "text": text, "time": now_ms(),
        };
        // The store keeps private messages under session keys (digests),
        // never the tokens themselves.
        let (from_session, to_session) = (
            digest_hex(&self.users[&conn].session),
            digest_hex(&self.users[&to].session),
        );
        self.store()
            .append_private(&msg, &from_session, &to_session);
        let frame = Ctx::json_frame(&msg);
        let to = if to == conn { vec![to] } else { vec![to, conn] };
        ctx.publish(id, Some(conn), to, &frame);
        Ok(())
    }

    fn typing(&mut self, ctx: &mut Ctx, conn: ConnId, active: bool) {
        let Some(user) = self.users.get_mut(&conn) else {
            return;
        };
        let now = Instant::now();
        if active
            && user
                .last_typing
                .is_some_and(|t| now.duration_since(t) < TYPING_INTERVAL)
        {
            return;
        }
        user.last_typing = if active { Some(now) } else { None };
        let room_name = user.room.clone();
        let msg = ordered! {"type": "typing", "room": room_name, "user": self.user_ref(conn), "active": active};
        if let Some(room) = self.rooms.get(&room_name) {
            let frame = Ctx::json_frame(&msg);
            ctx.broadcast(room.members.iter().copied().filter(|&m| m != conn), &frame);
        }
    }
}

/// The `complete` field of a `history` or `resume`, and with `false` the
/// `first` id from which the answer is known to be whole.
fn completeness(missing: Option<u64>) -> Vec<(&'static str, Value)> {
    match missing {
        None => vec![("complete", Value::from(true))],
        Some(first) => vec![
            ("complete", Value::from(false)),
            ("first", Value::from(first)),
        ],
    }
}

/// `{"type":KIND,"room":ROOM,...extra,"messages":[...]}` with the stored
/// messages spliced in as the JSON they already are.
fn message_list(kind: &str, room: &str, extra: &[(&str, Value)], messages: &[Arc<str>]) -> String {
    let head = Object::new().field("type", kind).field("room", room);
    extra
        .iter()
        .fold(head, |head, (key, value)| head.field(key, value))
        .json_list("messages", messages)
        .finish()
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
    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo) {
        let asked = info.request.query_param("name");
        let name = match asked.as_deref().map(valid_name) {
            Some(Ok(name)) => self.unique_name(&name, conn),
            Some(Err(why)) => {
                Chat::error(ctx, conn, ErrorReply::new("bad_name", why));
                self.auto_name()
            }
            None => self.auto_name(),
        };
        self.names.insert(name.to_lowercase(), conn);
        let session = self.session(info.request.query_param("session"));
        self.users.insert(
            conn,
            User {
                name,
                room: LOBBY.to_string(),
                last_typing: None,
                session,
            },
        );
        // `?room=` enters a room at once (a reconnecting page goes back to
        // where it was); `?since=` resumes after the last message seen.
        let room = match info.request.query_param("room").as_deref().map(valid_name) {
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
            None => LOBBY.to_string(),
        };
        let since = info
            .request
            .query_param("since")
            .and_then(|s| s.parse::<u64>().ok());
        let welcome = ordered! {
            "type": "welcome", "user": self.user_ref(conn), "room": room,
            "session": self.users[&conn].session,
            "server": concat!("wschat ", env!("CARGO_PKG_VERSION")),
        };
        ctx.send_json(conn, &welcome);
        self.enter_room_then(ctx, conn, &room, since);
    }

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        if !self.users.contains_key(&conn) {
            return;
        }
        let result = match command::parse(&text) {
            Err(e) => Err(e),
            Ok(Command::Chat { text }) => self.chat(ctx, conn, text),
            Ok(Command::Name { name }) => self.rename(ctx, conn, &name),
            Ok(Command::Join { room }) => self.join(ctx, conn, &room),
            Ok(Command::Leave) => self.join(ctx, conn, LOBBY),
            Ok(Command::Users { offset }) => {
                self.send_users(ctx, conn, offset);
                Ok(())
            }
            Ok(Command::Private { to, text }) => self.private(ctx, conn, to, text),
            Ok(Command::Typing { active }) => {
                self.typing(ctx, conn, active);
                Ok(())
            }
            Ok(Command::Other { kind, body }) if kind == "history" => {
                self.history_page(ctx, conn, &body)
            }
            Ok(Command::Other { kind, body }) if kind == "resume" => {
                match body.get("since").and_then(Value::as_u64) {
                    Some(since) => {
                        self.resume(ctx, conn, since);
                        Ok(())
                    }
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
        let Some(user) = self.users.get(&conn) else {
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
        if let Some(room) = self.rooms.get(&user.room) {
            ctx.broadcast(room.members.iter().copied(), &Ctx::binary_frame(&data));
        }
    }

    fn closed(&mut self, _ctx: &mut Ctx, conn: ConnId) {
        self.leave_room(conn);
        if let Some(user) = self.users.remove(&conn) {
            self.names.remove(&user.name.to_lowercase());
            // Last used when its user left: the least recently seen go
            // first when sessions must give way.
            self.sessions.touch(&user.session);
        }
    }

    fn tick(&mut self, _ctx: &mut Ctx) {
        self.store().trim();
        self.sessions.trim();
        if self.last_retention.elapsed() >= RETENTION_INTERVAL {
            self.last_retention = Instant::now();
            let mut store = self.store();
            store.apply_retention(std::time::SystemTime::now());
            log::info!("store: {} bytes on disk", store.disk_bytes());
        }
    }

    /// The store's budget, which the chat's sessions and the desk share.
    fn budget(&self) -> Option<Arc<crate::memory::Budget>> {
        Some(self.store().budget())
    }

    fn commit(&mut self) -> std::io::Result<bool> {
        let mut store = self.store();
        let before = store.writes();
        store.commit()?;
        Ok(store.writes() > before)
    }

    fn turn_end(&mut self, ctx: &mut Ctx) {
        let time = now_ms();
        for room_name in std::mem::take(&mut self.dirty) {
            let Some(room) = self.rooms.get_mut(&room_name) else {
                continue;
            };
            let count = room.members.len();
            for (kind, users) in [
                ("join", std::mem::take(&mut room.joined)),
                ("leave", std::mem::take(&mut room.left)),
            ] {
                if users.is_empty() {
                    continue;
                }
                let msg = ordered! {"type": kind, "room": room_name, "users": users, "count": count, "time": time};
                ctx.broadcast(room.members.iter().copied(), &Ctx::json_frame(&msg));
            }
            if room.members.is_empty() && room_name != LOBBY {
                self.rooms.remove(&room_name);
            }
        }
    }
}
