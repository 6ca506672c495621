//! The customer-service desk (客服): visitors on `/support`, agents on
//! `/agent`, run by the hub thread as an [`App`] beside the chat.
//!
//! A visitor's first message opens a *conversation* and puts it at the back
//! of a FIFO queue. Whenever something changes, the router hands the front
//! of the queue to the online (not away) agent with the fewest open
//! conversations under the capacity; a tie goes to the agent who has gone
//! longest without getting one. Messages of a conversation reach only its
//! visitor and its agent, and are stored in the shared log as `desk_…`
//! records, from which the desk rebuilds its state at start.
//!
//! The protocol, the states of a conversation and the routing rules are in
//! docs/customer-service.md.

pub mod agents;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::chat::valid_name;
use crate::clock::now_ms;
use crate::hub::{App, ConnId, ConnInfo, Ctx, ErrorReply};
use crate::json::Object;
use crate::memory::{Budget, Kept};
use crate::ordered;
use crate::store::SharedStore;
use crate::ws::CloseCode;

/// Close code for an agent whose token was refused.
pub const AUTH_FAILED: CloseCode = CloseCode(4001);
/// How long a refused agent waits before being closed (slows guessing; the
/// hub thread does not wait: the connection is closed on a later tick).
pub const AUTH_FAIL_DELAY: Duration = Duration::from_secs(1);
/// Time an agent connection has to send its `auth` message.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of open conversations the desk gives one agent at once.
pub const DEFAULT_AGENT_CAPACITY: usize = 5;
/// Default time an agent who disconnected keeps their conversations before
/// they go back to the front of the desk's queue.
pub const DEFAULT_AGENT_GRACE_MS: u64 = 30_000;
/// Default for the most conversations waiting in the queue (`--desk-max-queue`);
/// past it, new ones are refused with `desk_full`.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;
/// Default for the resolved conversations kept in memory for their rating
/// and their visitor's return (`--desk-keep-resolved`); past it, the one
/// resolved longest ago is forgotten (its records stay in the log).
pub const DEFAULT_KEEP_RESOLVED: usize = 10_000;
/// Default for the messages of one conversation kept in memory for its
/// transcript (`--desk-keep-messages`); older ones stay in the log only.
pub const DEFAULT_KEEP_MESSAGES: usize = 1_000;
/// Lowest and highest rating a visitor can give.
pub const RATINGS: std::ops::RangeInclusive<u64> = 1..=5;
/// Longest transfer note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// The desk's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskConfig {
    /// Open conversations one agent gets at once.
    pub capacity: usize,
    /// How long a disconnected agent keeps their conversations.
    pub grace: Duration,
    /// Longest message text, in bytes.
    pub max_text_bytes: usize,
    /// Where `agents.json` lives; `None`: no agent can sign in.
    pub data_dir: Option<PathBuf>,
    /// Most conversations waiting in the queue.
    pub max_queue: usize,
    /// Resolved conversations kept in memory.
    pub keep_resolved: usize,
    /// Messages of one conversation kept in memory.
    pub keep_messages: usize,
}

impl Default for DeskConfig {
    fn default() -> DeskConfig {
        DeskConfig {
            capacity: DEFAULT_AGENT_CAPACITY,
            grace: Duration::from_millis(DEFAULT_AGENT_GRACE_MS),
            max_text_bytes: crate::chat::DEFAULT_MAX_TEXT_BYTES,
            data_dir: None,
            max_queue: DEFAULT_MAX_QUEUE,
            keep_resolved: DEFAULT_KEEP_RESOLVED,
            keep_messages: DEFAULT_KEEP_MESSAGES,
        }
    }
}

/// Where a conversation is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConversationState {
    /// Waiting in the queue.
    Queued,
    /// With an agent (who may be within their grace period).
    Assigned(String),
    /// Closed by an agent; the visitor may rate it.
    Resolved,
}

#[derive(Debug)]
struct Conversation {
    id: u64,
    /// The visitor's session key (a digest of its token).
    session: String,
    visitor: String,
    state: ConversationState,
    /// The last `keep_messages` `desk_message` records, as sent.
    messages: Vec<Arc<str>>,
    /// Messages before those, no longer in memory (in the log only).
    earlier: usize,
    /// Its place in the order of resolution, once resolved (the key in
    /// `Desk::resolved`).
    resolved_at: Option<u64>,
    /// When it was opened, epoch ms.
    opened: u64,
    /// When it last entered the queue, epoch ms.
    queued_at: u64,
    rating: Option<u64>,
    /// Its bytes as the memory budget counts them (see [`Conversation::cost`]).
    bytes: usize,
}

/// What a conversation costs in memory beyond its strings and messages.
pub const CONVERSATION_OVERHEAD: usize = 256;
/// What one kept transcript message costs beyond its JSON.
pub const MESSAGE_OVERHEAD: usize = 64;

impl Conversation {
    /// Keep a message record, and no more than `keep` of them in memory;
    /// the change in its bytes is counted against `budget`.
    fn add_message(&mut self, record: Arc<str>, keep: usize, budget: &Budget) {
        let before = self.bytes;
        self.bytes += record.len() + MESSAGE_OVERHEAD;
        self.messages.push(record);
        if self.messages.len() > keep {
            let over = self.messages.len() - keep;
            self.drop_earliest(over);
        }
        budget.add(Kept::Desk, self.bytes - before.min(self.bytes));
        budget.sub(Kept::Desk, before.saturating_sub(self.bytes));
    }

    /// Let the first `n` messages go from memory (the log keeps them).
    fn drop_earliest(&mut self, n: usize) {
        let n = n.min(self.messages.len());
        for m in self.messages.drain(..n) {
            self.bytes -= m.len() + MESSAGE_OVERHEAD;
        }
        self.earlier += n;
    }

    /// The bytes of a new conversation, without messages.
    fn base_cost(session: &str, visitor: &str) -> usize {
        session.len() + visitor.len() + CONVERSATION_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct Session {
    conns: BTreeSet<ConnId>,
    /// The latest conversation (open, or resolved and kept for its rating).
    conversation: Option<u64>,
    name: String,
}

#[derive(Debug)]
struct Agent {
    conns: BTreeSet<ConnId>,
    away: bool,
    /// When the agent last got a conversation (or signed in): the longest
    /// idle wins a tie.
    last_assigned: Instant,
    /// When the last console disconnected (grace period running).
    gone_since: Option<Instant>,
}

#[derive(Debug)]
enum Participant {
    Visitor(String),
    /// An agent connection that has not authenticated yet.
    Pending {
        addr: String,
        since: Instant,
    },
    /// Refused; closed with 4001 at the first tick after `at`.
    Refused {
        at: Instant,
    },
    Agent(String),
}

/// The support desk application.
#[derive(Debug)]
pub struct Desk {
    config: DeskConfig,
    store: SharedStore,
    conns: HashMap<ConnId, Participant>,
    sessions: HashMap<String, Session>,
    conversations: BTreeMap<u64, Conversation>,
    queue: VecDeque<u64>,
    /// Resolved conversations in memory by the order they were resolved
    /// in (see `mark_resolved`), resolved longest ago first.
    resolved: BTreeMap<u64, u64>,
    /// The last number `mark_resolved` gave out.
    resolved_seq: u64,
    /// The memory budget the conversations count against.
    budget: Arc<Budget>,
    agents: BTreeMap<String, Agent>,
    /// Queue or agent list changed: tell the agents and waiting visitors.
    dirty: bool,
    /// The last queue notice each waiting conversation got.
    told: HashMap<u64, (usize, usize)>,
    /// When `agents.json` was last seen changed (see `check_accounts`).
    accounts_changed: Option<std::time::SystemTime>,
    next_visitor: u64,
}

fn error(ctx: &mut Ctx, conn: ConnId, code: &'static str, message: impl Into<String>) {
    ctx.send_json(conn, &ErrorReply::new(code, message).to_json());
}

impl Desk {
    /// A desk with `config` over `store`; rebuilds the conversations from
    /// the `desk_…` records the store found in the log.
    pub fn new(config: DeskConfig, store: SharedStore) -> Desk {
        let (records, budget) = {
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            (store.take_desk_records(), store.budget())
        };
        let mut desk = Desk {
            config,
            store,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            conversations: BTreeMap::new(),
            queue: VecDeque::new(),
            resolved: BTreeMap::new(),
            resolved_seq: 0,
            budget,
            agents: BTreeMap::new(),
            dirty: false,
            told: HashMap::new(),
            accounts_changed: None,
            next_visitor: 1,
        };
        for record in records {
            desk.replay(record);
        }
        // Agents who had conversations are not here yet: their grace
        // period starts now.
        let now = Instant::now();
        for conv in desk.conversations.values() {
            if let ConversationState::Assigned(name) = &conv.state {
                desk.agents.entry(name.clone()).or_insert(Agent {
                    conns: BTreeSet::new(),
                    away: false,
                    last_assigned: now,
                    gone_since: Some(now),
                });
            }
        }
        desk
    }

    fn replay(&mut self, record: Arc<str>) {
        let Ok(v) = serde_json::from_str::<Value>(&record) else {
            return;
        };
        let kind = v["type"].as_str().unwrap_or("");
        let Some(cid) = v["conversation"].as_u64() else {
            return;
        };
        let time = v["time"].as_u64().unwrap_or(0);
        match kind {
            "desk_opened" => {
                let session = v["session"].as_str().unwrap_or("").to_string();
                let visitor = v["visitor"].as_str().unwrap_or("").to_string();
                self.open_conversation(cid, session, visitor, time);
            }
            "desk_message" => {
                let keep = self.config.keep_messages;
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.add_message(record, keep, &self.budget);
                }
                self.trim();
            }
            "desk_assigned" => {
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.state =
                        ConversationState::Assigned(v["agent"].as_str().unwrap_or("").into());
                    self.queue.retain(|&c| c != cid);
                }
            }
            "desk_queued" => {
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.state = ConversationState::Queued;
                    conv.queued_at = time;
                    self.queue.retain(|&c| c != cid);
                    self.queue.push_front(cid);
                }
            }
            "desk_resolved" if self.conversations.contains_key(&cid) => {
                self.queue.retain(|&c| c != cid);
                self.mark_resolved(cid);
            }
            "desk_rated" => {
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.rating = v["rating"].as_u64();
                }
            }
            _ => {}
        }
    }

    /// When `agents.json` changed since the last look, sign out every agent
    /// whose account is gone (`wschat agent remove`): their consoles are
    /// closed with 4001 and their conversations go back to the queue.
    /// Called every tick: one `stat` of the file.
    fn check_accounts(&mut self, ctx: &mut Ctx) {
        let Some(dir) = &self.config.data_dir else {
            return;
        };
        let Ok(changed) =
            std::fs::metadata(dir.join(agents::AGENTS_FILE)).and_then(|m| m.modified())
        else {
            return;
        };
        if self.accounts_changed.replace(changed) == Some(changed) {
            return;
        }
        let accounts = match agents::load(dir) {
            Ok(accounts) => accounts,
            Err(e) => {
                log::error!("desk: cannot read the agent accounts: {e}");
                return;
            }
        };
        let exists = |name: &str| accounts.iter().any(|a| a.name.eq_ignore_ascii_case(name));
        let removed: Vec<String> = self
            .agents
            .keys()
            .filter(|name| !exists(name))
            .cloned()
            .collect();
        for name in removed {
            let consoles: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, role)| matches!(role, Participant::Agent(n) if *n == name))
                .map(|(&conn, _)| conn)
                .collect();
            for conn in consoles {
                self.conns.remove(&conn);
                ctx.close(conn, AUTH_FAILED, "the agent account was removed");
            }
            let requeued = self.drop_agent(&name, "agent_removed");
            log::info!(
                "desk: agent {name} was removed: signed out, {requeued} conversations re-queued"
            );
        }
    }

    /// Forget agent `name` and put their conversations back in the queue,
    /// oldest first at the very front; returns how many.
    fn drop_agent(&mut self, name: &str, reason: &str) -> usize {
        self.agents.remove(name);
        let theirs: Vec<u64> = self
            .conversations
            .values()
            .filter(|c| matches!(&c.state, ConversationState::Assigned(a) if a == name))
            .map(|c| c.id)
            .collect();
        for &cid in theirs.iter().rev() {
            self.requeue(cid, reason);
        }
        self.dirty = true;
        theirs.len()
    }

    /// Conversation `cid` is resolved: note when, and forget the resolved
    /// conversations past `keep_resolved`, those resolved longest ago first.
    /// Their records stay in the log; a visitor who had nothing else and is
    /// not connected is forgotten too.
    fn mark_resolved(&mut self, cid: u64) {
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        conv.state = ConversationState::Resolved;
        self.resolved_seq += 1;
        conv.resolved_at = Some(self.resolved_seq);
        self.resolved.insert(self.resolved_seq, cid);
        while self.resolved.len() > self.config.keep_resolved && self.forget_oldest_resolved() {}
        self.trim();
    }

    /// Forget the conversation resolved longest ago (it stays in the log).
    fn forget_oldest_resolved(&mut self) -> bool {
        let Some((_, cid)) = self.resolved.pop_first() else {
            return false;
        };
        if let Some(conv) = self.conversations.remove(&cid) {
            self.forgotten(&conv);
        }
        true
    }

    /// A conversation left memory: its bytes, its "told" mark, and its
    /// session if nothing else holds that.
    fn forgotten(&mut self, conv: &Conversation) {
        self.budget.sub(Kept::Desk, conv.bytes);
        self.told.remove(&conv.id);
        if let Some(session) = self.sessions.get_mut(&conv.session)
            && session.conversation == Some(conv.id)
        {
            session.conversation = None;
            if session.conns.is_empty() {
                self.sessions.remove(&conv.session);
            }
        }
    }

    /// Stay within the desk's share of the memory budget: forget resolved
    /// conversations, resolved longest ago first; if that is not enough,
    /// let the earliest half of the longest open transcript go (agents are
    /// told how many `earlier` messages memory no longer shows).
    fn trim(&mut self) {
        let mut evicted = 0;
        while self.budget.must_evict(Kept::Desk) {
            if self.forget_oldest_resolved() {
                evicted += 1;
                continue;
            }
            let longest = self
                .conversations
                .values_mut()
                .filter(|c| c.messages.len() > 1)
                .max_by_key(|c| c.messages.len());
            let Some(conv) = longest else {
                break;
            };
            let before = conv.bytes;
            conv.drop_earliest(conv.messages.len() / 2);
            self.budget.sub(Kept::Desk, before - conv.bytes);
            evicted += 1;
        }
        self.budget.evicted(Kept::Desk, evicted);
    }

    /// Add a conversation to the back of the queue; the session's older,
    /// resolved one is forgotten (it stays in the log).
    fn open_conversation(&mut self, cid: u64, session: String, visitor: String, time: u64) {
        let s = self.sessions.entry(session.clone()).or_default();
        s.name = visitor.clone();
        if let Some(old) = s.conversation.replace(cid)
            && let Some(conv) = self.conversations.remove(&old)
        {
            if let Some(seq) = conv.resolved_at {
                self.resolved.remove(&seq);
            }
            self.budget.sub(Kept::Desk, conv.bytes);
        }
        let bytes = Conversation::base_cost(&session, &visitor);
        self.budget.add(Kept::Desk, bytes);
        self.conversations.insert(
            cid,
            Conversation {
                id: cid,
                session,
                visitor,
                state: ConversationState::Queued,
                messages: Vec::new(),
                earlier: 0,
                resolved_at: None,
                opened: time,
                queued_at: time,
                rating: None,
                bytes,
            },
        );
        self.queue.push_back(cid);
    }

    /// Append a state record (see [`crate::store::Store::append`]).
    fn record(&self, text: String) -> Arc<str> {
        let text: Arc<str> = text.into();
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&text);
        text
    }

    /// Append a message: refused, not carried, if the turn's write fails.
    fn record_message(&self, text: String) -> Arc<str> {
        let text: Arc<str> = text.into();
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append_message(&text);
        text
    }

    fn take_id(&self) -> u64 {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_id()
    }

    fn load(&self, agent: &str) -> usize {
        self.conversations
            .values()
            .filter(|c| matches!(&c.state, ConversationState::Assigned(a) if a == agent))
            .count()
    }

    fn visitor_conns(&self, conv: &Conversation) -> Vec<ConnId> {
        self.sessions
            .get(&conv.session)
            .map(|s| s.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    fn agent_conns(&self, name: &str) -> Vec<ConnId> {
        self.agents
            .get(name)
            .map(|a| a.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    fn all_agent_conns(&self) -> Vec<ConnId> {
        self.agents
            .values()
            .flat_map(|a| a.conns.iter().copied())
            .collect()
    }

    fn visitor_online(&self, conv: &Conversation) -> bool {
        self.sessions
            .get(&conv.session)
            .is_some_and(|s| !s.conns.is_empty())
    }

    /// A conversation as an agent sees it, with its transcript, as a
    /// message of type `kind` (`conversation`, or `assigned` with `extra`).
    fn conversation_json(&self, conv: &Conversation, kind: &str, extra: &[(&str, &str)]) -> String {
        let mut v = Object::new()
            .field("type", kind)
            .field("conversation", conv.id)
            .field("visitor", &conv.visitor)
            .field("online", self.visitor_online(conv))
            .field("opened", conv.opened)
            .field("waiting_since", conv.queued_at);
        for (k, x) in extra {
            v = v.field(k, x);
        }
        if conv.earlier > 0 {
            v = v.field("earlier", conv.earlier);
        }
        v.json_list("messages", &conv.messages).finish()
    }

    fn agents_json(&self) -> String {
        let list: Vec<String> = self
            .agents
            .iter()
            .map(|(name, a)| {
                let status = if a.conns.is_empty() {
                    "offline"
                } else if a.away {
                    "away"
                } else {
                    "online"
                };
                ordered! {"name": name, "status": status, "load": self.load(name)}
            })
            .collect();
        Object::new()
            .field("type", "agents")
            .field("capacity", self.config.capacity)
            .json_list("agents", &list)
            .finish()
    }

    fn queue_json(&self) -> String {
        let list: Vec<String> = self
            .queue
            .iter()
            .filter_map(|id| self.conversations.get(id))
            .map(|c| {
                ordered! {
                    "conversation": c.id, "visitor": c.visitor,
                    "online": self.visitor_online(c), "waiting_since": c.queued_at,
                    "messages": c.earlier + c.messages.len(),
                }
            })
            .collect();
        Object::new()
            .field("type", "queue")
            .json_list("queue", &list)
            .finish()
    }

    fn online_agents(&self) -> usize {
        self.agents
            .values()
            .filter(|a| !a.conns.is_empty() && !a.away)
            .count()
    }

    /// Hand waiting conversations to agents: the front of the queue to the
    /// least-loaded online agent under capacity, ties to the longest idle.
    fn route(&mut self, ctx: &mut Ctx) {
        while let Some(&cid) = self.queue.front() {
            let best = self
                .agents
                .iter()
                .filter(|(_, a)| !a.conns.is_empty() && !a.away)
                .map(|(name, a)| (self.load(name), a.last_assigned, name))
                .filter(|(load, _, _)| *load < self.config.capacity)
                .min()
                .map(|(_, _, name)| name.clone());
            let Some(agent) = best else {
                break;
            };
            self.queue.pop_front();
            self.assign(ctx, cid, &agent, None);
        }
    }

    /// Give conversation `cid` to `agent` (from `transfer`: the previous
    /// agent and a note).
    fn assign(&mut self, ctx: &mut Ctx, cid: u64, agent: &str, from: Option<(&str, &str)>) {
        let id = self.take_id();
        let mut rec = Object::new()
            .field("type", "desk_assigned")
            .field("id", id)
            .field("conversation", cid)
            .field("agent", agent);
        if let Some((prev, note)) = from {
            rec = rec.field("from", prev).field("note", note);
        }
        self.record(rec.field("time", now_ms()).finish());
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        conv.state = ConversationState::Assigned(agent.to_string());
        self.told.remove(&cid);
        if let Some(a) = self.agents.get_mut(agent) {
            a.last_assigned = Instant::now();
        }
        let conv = &self.conversations[&cid];
        let extra = match from {
            Some((prev, note)) => vec![("from", prev), ("note", note)],
            None => Vec::new(),
        };
        let text = self.conversation_json(conv, "assigned", &extra);
        let frame = Ctx::json_frame(&text);
        ctx.broadcast(self.agent_conns(agent), &frame);
        let to_visitor = ordered! {"type": "assigned", "conversation": cid, "agent": agent};
        ctx.broadcast(self.visitor_conns(conv), &Ctx::json_frame(&to_visitor));
        self.dirty = true;
    }

    /// Put `cid` back in the queue, at the front (it has waited already).
    fn requeue(&mut self, cid: u64, reason: &str) {
        let id = self.take_id();
        let time = now_ms();
        self.record(ordered! {"type": "desk_queued", "id": id, "conversation": cid, "reason": reason, "time": time});
        if let Some(conv) = self.conversations.get_mut(&cid) {
            conv.state = ConversationState::Queued;
            conv.queued_at = time;
            self.queue.retain(|&c| c != cid);
            self.queue.push_front(cid);
            self.told.remove(&cid);
            self.dirty = true;
        }
    }

    /// Route, then tell agents about the queue and the agent list, and
    /// waiting visitors their (changed) positions.
    fn settle(&mut self, ctx: &mut Ctx) {
        self.route(ctx);
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let conns = self.all_agent_conns();
        ctx.broadcast(conns.clone(), &Ctx::json_frame(&self.queue_json()));
        ctx.broadcast(conns, &Ctx::json_frame(&self.agents_json()));
        let online = self.online_agents();
        for (i, &cid) in self.queue.iter().enumerate() {
            let position = i + 1;
            if self.told.get(&cid) == Some(&(position, online)) {
                continue;
            }
            self.told.insert(cid, (position, online));
            if let Some(conv) = self.conversations.get(&cid) {
                let msg = ordered! {"type": "queued", "conversation": cid, "position": position, "agents_online": online};
                ctx.broadcast(self.visitor_conns(conv), &Ctx::json_frame(&msg));
            }
        }
    }

    fn visitor_opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: &ConnInfo) {
        let presented = info
            .request
            .query_param("session")
            .filter(|t| !t.is_empty() && t.len() <= 128);
        let (token, key) = match presented {
            Some(t) if self.sessions.contains_key(&agents::digest_hex(&t)) => {
                let key = agents::digest_hex(&t);
                (t, key)
            }
            _ => {
                let t = agents::new_token();
                let key = agents::digest_hex(&t);
                (t, key)
            }
        };
        let asked = info
            .request
            .query_param("name")
            .and_then(|n| valid_name(&n).ok());
        let fresh = !self.sessions.contains_key(&key);
        let next = &mut self.next_visitor;
        let session = self.sessions.entry(key.clone()).or_insert_with(|| {
            let n = *next;
            *next += 1;
            Session {
                name: format!("访客{n}"),
                ..Session::default()
            }
        });
        if let Some(name) = asked {
            session.name = name;
        }
        let was_offline = session.conns.is_empty();
        session.conns.insert(conn);
        let name = session.name.clone();
        let current = session.conversation;
        self.conns.insert(conn, Participant::Visitor(key));
        let welcome = ordered! {"type": "welcome", "session": token, "name": name, "resumed": !fresh, "conversation": current};
        ctx.send_json(conn, &welcome);
        let Some(conv) = current.and_then(|c| self.conversations.get(&c)) else {
            return;
        };
        let state = match &conv.state {
            ConversationState::Queued => "queued",
            ConversationState::Assigned(_) => "assigned",
            ConversationState::Resolved => "resolved",
        };
        let mut head = Object::new()
            .field("type", "transcript")
            .field("conversation", conv.id)
            .field("state", state);
        if let ConversationState::Assigned(agent) = &conv.state {
            head = head.field("agent", agent);
        }
        if conv.state == ConversationState::Resolved {
            head = head.field("rating", conv.rating);
        }
        if conv.earlier > 0 {
            head = head.field("earlier", conv.earlier);
        }
        ctx.send_json(conn, &head.json_list("messages", &conv.messages).finish());
        match &conv.state {
            ConversationState::Queued => {
                if let Some(i) = self.queue.iter().position(|&c| c == conv.id) {
                    let msg = ordered! {"type": "queued", "conversation": conv.id, "position": i + 1, "agents_online": self.online_agents()};
                    ctx.send_json(conn, &msg);
                }
                self.dirty = true;
            }
            ConversationState::Assigned(agent) if was_offline => {
                let msg =
                    ordered! {"type": "visitor_status", "conversation": conv.id, "online": true};
                ctx.broadcast(self.agent_conns(agent), &Ctx::json_frame(&msg));
            }
            _ => {}
        }
    }

    fn visitor_text(&mut self, ctx: &mut Ctx, conn: ConnId, key: String, text: String) {
        let body = match parse(&text) {
            Ok(body) => body,
            Err(e) => {
                ctx.send_json(conn, &e.to_json());
                return;
            }
        };
        let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
        let current = self.sessions.get(&key).and_then(|s| s.conversation);
        let open = current.filter(|c| {
            self.conversations
                .get(c)
                .is_some_and(|c| c.state != ConversationState::Resolved)
        });
        match kind {
            "message" => {
                let Some(text) = self.message_text(ctx, conn, &body) else {
                    return;
                };
                let cid = match open {
                    Some(cid) => cid,
                    None => {
                        if self.queue.len() >= self.config.max_queue {
                            return error(
                                ctx,
                                conn,
                                "desk_full",
                                "too many visitors are waiting; try again later",
                            );
                        }
                        let cid = self.take_id();
                        let name = self.sessions[&key].name.clone();
                        let time = now_ms();
                        self.record(ordered! {"type": "desk_opened", "id": cid, "conversation": cid, "session": key, "visitor": name, "time": time});
                        self.open_conversation(cid, key.clone(), name, time);
                        self.dirty = true;
                        cid
                    }
                };
                let name = self.sessions[&key].name.clone();
                self.post(ctx, conn, cid, ("visitor", &name), &text);
            }
            "typing" => {
                if let Some(conv) = open.and_then(|c| self.conversations.get(&c))
                    && let ConversationState::Assigned(agent) = &conv.state
                {
                    let active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
                    let msg = ordered! {"type": "typing", "conversation": conv.id, "from": "visitor", "active": active};
                    ctx.broadcast(self.agent_conns(agent), &Ctx::json_frame(&msg));
                }
            }
            "rate" => {
                let rating = body.get("rating").and_then(Value::as_u64);
                let Some(cid) = current.filter(|c| {
                    self.conversations.get(c).is_some_and(|c| {
                        c.state == ConversationState::Resolved && c.rating.is_none()
                    })
                }) else {
                    return error(
                        ctx,
                        conn,
                        "not_resolved",
                        "there is no resolved conversation to rate",
                    );
                };
                let Some(rating) = rating.filter(|r| RATINGS.contains(r)) else {
                    return error(ctx, conn, "bad_rating", "a rating is a whole number 1-5");
                };
                let id = self.take_id();
                self.record(ordered! {"type": "desk_rated", "id": id, "conversation": cid, "rating": rating, "time": now_ms()});
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.rating = Some(rating);
                }
                let msg = ordered! {"type": "rated", "conversation": cid, "rating": rating};
                let conns: Vec<ConnId> = self.sessions[&key].conns.iter().copied().collect();
                ctx.broadcast(conns, &Ctx::json_frame(&msg));
            }
            other => error(
                ctx,
                conn,
                "unknown_type",
                format!("unknown message type {other:?}"),
            ),
        }
    }

    /// The `"text"` of a message, checked; or an error sent.
    fn message_text(
        &self,
        ctx: &mut Ctx,
        conn: ConnId,
        body: &Map<String, Value>,
    ) -> Option<String> {
        let Some(text) = body.get("text").and_then(Value::as_str) else {
            error(ctx, conn, "bad_command", "\"text\" must be a string");
            return None;
        };
        if text.trim().is_empty() {
            error(ctx, conn, "empty", "the message is empty");
            return None;
        }
        if text.len() > self.config.max_text_bytes {
            error(
                ctx,
                conn,
                "text_too_long",
                format!("a message has at most {} bytes", self.config.max_text_bytes),
            );
            return None;
        }
        Some(text.to_string())
    }

    /// Store a message of conversation `cid` and send it to its visitor and
    /// its agent: nobody else.
    /// A message in conversation `cid` from `sender` (its visitor or
    /// agent), to the visitor's and the agent's connections once stored.
    fn post(
        &mut self,
        ctx: &mut Ctx,
        sender: ConnId,
        cid: u64,
        (from, name): (&str, &str),
        text: &str,
    ) {
        let id = self.take_id();
        let rec = self.record_message(ordered! {"type": "desk_message", "id": id, "conversation": cid, "from": from, "name": name, "text": text, "time": now_ms()});
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        conv.add_message(rec.clone(), self.config.keep_messages, &self.budget);
        self.trim();
        let conv = &self.conversations[&cid];
        let mut to = self.visitor_conns(conv);
        if let ConversationState::Assigned(agent) = &conv.state {
            to.extend(self.agent_conns(agent));
        }
        ctx.publish(id, Some(sender), to, &Ctx::json_frame(&rec));
    }

    fn agent_auth(&mut self, ctx: &mut Ctx, conn: ConnId, addr: String, text: &str) {
        let token = parse(text).ok().and_then(|b| {
            (b.get("type").and_then(Value::as_str) == Some("auth"))
                .then(|| b.get("token").and_then(Value::as_str).map(String::from))
                .flatten()
        });
        let accounts = match &self.config.data_dir {
            Some(dir) => agents::load(dir).unwrap_or_else(|e| {
                log::error!("desk: cannot read the agent accounts: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let name = token
            .as_deref()
            .and_then(|t| agents::verify(&accounts, t))
            .map(|a| a.name.clone());
        let Some(name) = name else {
            // The token is never logged.
            log::warn!("desk: agent authentication failed from {addr}");
            self.conns
                .insert(conn, Participant::Refused { at: Instant::now() });
            return;
        };
        log::info!("desk: agent {name} signed in from {addr}");
        self.conns.insert(conn, Participant::Agent(name.clone()));
        let agent = self.agents.entry(name.clone()).or_insert(Agent {
            conns: BTreeSet::new(),
            away: false,
            last_assigned: Instant::now(),
            gone_since: None,
        });
        agent.conns.insert(conn);
        if agent.gone_since.take().is_some() {
            self.tell_agent_status(ctx, &name, true);
        }
        let agent = &self.agents[&name];
        let status = if agent.away { "away" } else { "online" };
        let ready = ordered! {"type": "ready", "agent": name, "status": status, "capacity": self.config.capacity};
        ctx.send_json(conn, &ready);
        let mine: Vec<String> = self
            .conversations
            .values()
            .filter(|c| matches!(&c.state, ConversationState::Assigned(a) if *a == name))
            .map(|c| self.conversation_json(c, "conversation", &[]))
            .collect();
        ctx.send_json(
            conn,
            &format!(
                "{{\"type\":\"conversations\",\"conversations\":[{}]}}",
                mine.join(",")
            ),
        );
        ctx.send_json(conn, &self.queue_json());
        ctx.send_json(conn, &self.agents_json());
        self.dirty = true;
    }

    /// Tell the visitors of `agent`'s conversations that the agent went
    /// offline (grace period running) or came back.
    fn tell_agent_status(&self, ctx: &mut Ctx, agent: &str, online: bool) {
        for conv in self.conversations.values() {
            if matches!(&conv.state, ConversationState::Assigned(a) if a == agent) {
                let msg = ordered! {"type": "agent_status", "conversation": conv.id, "agent": agent, "online": online};
                ctx.broadcast(self.visitor_conns(conv), &Ctx::json_frame(&msg));
            }
        }
    }

    fn agent_text(&mut self, ctx: &mut Ctx, conn: ConnId, name: String, text: String) {
        let body = match parse(&text) {
            Ok(body) => body,
            Err(e) => {
                ctx.send_json(conn, &e.to_json());
                return;
            }
        };
        let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "presence" {
            let away = match body.get("status").and_then(Value::as_str) {
                Some("away") => true,
                Some("online") => false,
                _ => return error(ctx, conn, "bad_command", "\"status\" is online or away"),
            };
            if let Some(a) = self.agents.get_mut(&name) {
                a.away = away;
            }
            let msg = ordered! {"type": "presence", "status": if away { "away" } else { "online" }};
            ctx.broadcast(self.agent_conns(&name), &Ctx::json_frame(&msg));
            self.dirty = true;
            return;
        }
        if !matches!(kind, "message" | "typing" | "transfer" | "resolve") {
            return error(
                ctx,
                conn,
                "unknown_type",
                format!("unknown message type {kind:?}"),
            );
        }
        let cid = body.get("conversation").and_then(Value::as_u64);
        let Some(cid) = cid.filter(|c| {
            self.conversations
                .get(c)
                .is_some_and(|c| matches!(&c.state, ConversationState::Assigned(a) if *a == name))
        }) else {
            return error(
                ctx,
                conn,
                "not_yours",
                "that conversation is not assigned to you",
            );
        };
        match kind {
            "message" => {
                if let Some(text) = self.message_text(ctx, conn, &body) {
                    self.post(ctx, conn, cid, ("agent", &name), &text);
                }
            }
            "typing" => {
                let active = body.get("active").and_then(Value::as_bool).unwrap_or(true);
                let msg = ordered! {"type": "typing", "conversation": cid, "from": "agent", "active": active};
                let to = self.visitor_conns(&self.conversations[&cid]);
                ctx.broadcast(to, &Ctx::json_frame(&msg));
            }
            "resolve" => {
                let id = self.take_id();
                self.record(ordered! {"type": "desk_resolved", "id": id, "conversation": cid, "agent": name, "time": now_ms()});
                self.mark_resolved(cid);
                let msg = ordered! {"type": "resolved", "conversation": cid};
                let conv = &self.conversations[&cid];
                let mut to = self.visitor_conns(conv);
                to.extend(self.agent_conns(&name));
                ctx.broadcast(to, &Ctx::json_frame(&msg));
                self.dirty = true;
            }
            _ => self.transfer(ctx, conn, &name, cid, &body),
        }
    }

    fn transfer(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        from: &str,
        cid: u64,
        body: &Map<String, Value>,
    ) {
        let note: String = body
            .get("note")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(MAX_NOTE_CHARS)
            .collect();
        let target = match body.get("to") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => {
                return error(
                    ctx,
                    conn,
                    "bad_command",
                    "\"to\" is an agent's name or null",
                );
            }
        };
        let unassigned =
            |to: Option<&str>| ordered! {"type": "unassigned", "conversation": cid, "to": to};
        match target {
            None => {
                self.requeue(cid, "transferred");
                let frame = Ctx::json_frame(&unassigned(None));
                ctx.broadcast(self.agent_conns(from), &frame);
            }
            Some(to) => {
                let ok = self
                    .agents
                    .get(&to)
                    .is_some_and(|a| !a.conns.is_empty() && !a.away);
                if to == from || !ok {
                    return error(
                        ctx,
                        conn,
                        "agent_unavailable",
                        format!("{to} is not online"),
                    );
                }
                if self.load(&to) >= self.config.capacity {
                    return error(
                        ctx,
                        conn,
                        "agent_full",
                        format!("{to} has no free capacity"),
                    );
                }
                let frame = Ctx::json_frame(&unassigned(Some(to.as_str())));
                ctx.broadcast(self.agent_conns(from), &frame);
                self.assign(ctx, cid, &to, Some((from, &note)));
            }
        }
    }
}

/// A client's text as a command object: a JSON object with a `"type"`, or
/// plain text, which is a `message`.
fn parse(text: &str) -> Result<Map<String, Value>, ErrorReply> {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        let mut body = Map::new();
        body.insert("type".into(), "message".into());
        body.insert("text".into(), text.into());
        return Ok(body);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(body)) if body.get("type").is_some_and(Value::is_string) => Ok(body),
        Ok(_) => Err(ErrorReply::new(
            "bad_command",
            "a command is a JSON object with a \"type\"",
        )),
        Err(e) => Err(ErrorReply::new("bad_json", format!("not valid JSON: {e}"))),
    }
}

impl App for Desk {
    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo) {
        if info.path == "/agent" {
            self.conns.insert(
                conn,
                Participant::Pending {
                    addr: info.addr.clone(),
                    since: Instant::now(),
                },
            );
            ctx.send_json(
                conn,
                &ordered! {"type": "hello", "auth": "send {\"type\":\"auth\",\"token\":…}"},
            );
        } else {
            self.visitor_opened(ctx, conn, &info);
        }
    }

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        match self.conns.get(&conn) {
            Some(Participant::Visitor(key)) => {
                let key = key.clone();
                self.visitor_text(ctx, conn, key, text);
            }
            Some(Participant::Pending { addr, .. }) => {
                let addr = addr.clone();
                self.agent_auth(ctx, conn, addr, &text);
            }
            Some(Participant::Agent(name)) => {
                let name = name.clone();
                self.agent_text(ctx, conn, name, text);
            }
            Some(Participant::Refused { .. }) | None => {}
        }
    }

    fn closed(&mut self, ctx: &mut Ctx, conn: ConnId) {
        match self.conns.remove(&conn) {
            Some(Participant::Visitor(key)) => {
                let Some(session) = self.sessions.get_mut(&key) else {
                    return;
                };
                session.conns.remove(&conn);
                if !session.conns.is_empty() {
                    return;
                }
                let current = session.conversation;
                if let Some(conv) = current.and_then(|c| self.conversations.get(&c)) {
                    if let ConversationState::Assigned(agent) = &conv.state {
                        let msg = ordered! {"type": "visitor_status", "conversation": conv.id, "online": false};
                        ctx.broadcast(self.agent_conns(agent), &Ctx::json_frame(&msg));
                    }
                } else {
                    // Nothing to resume: forget the session.
                    self.sessions.remove(&key);
                }
                self.dirty = true;
            }
            Some(Participant::Agent(name)) => {
                if let Some(agent) = self.agents.get_mut(&name) {
                    agent.conns.remove(&conn);
                    if agent.conns.is_empty() {
                        log::info!("desk: agent {name} disconnected; grace period started");
                        agent.gone_since = Some(Instant::now());
                        self.tell_agent_status(ctx, &name, false);
                    }
                }
                self.dirty = true;
            }
            _ => {}
        }
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        self.check_accounts(ctx);
        self.trim();
        let now = Instant::now();
        let mut refuse = Vec::new();
        for (&conn, role) in &mut self.conns {
            match role {
                Participant::Refused { at } if now.duration_since(*at) >= AUTH_FAIL_DELAY => {
                    refuse.push(conn);
                }
                Participant::Pending { addr, since }
                    if now.duration_since(*since) >= AUTH_TIMEOUT =>
                {
                    log::warn!("desk: agent from {addr} did not authenticate in time");
                    *role = Participant::Refused { at: now };
                }
                _ => {}
            }
        }
        for conn in refuse {
            self.conns.remove(&conn);
            ctx.close(conn, AUTH_FAILED, "authentication failed");
        }
        let expired: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                a.gone_since
                    .is_some_and(|t| now.duration_since(t) >= self.config.grace)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            let requeued = self.drop_agent(&name, "agent_gone");
            log::info!(
                "desk: agent {name}'s grace period is over; {requeued} conversations re-queued"
            );
        }
        self.settle(ctx);
    }

    fn turn_end(&mut self, ctx: &mut Ctx) {
        self.settle(ctx);
    }

    /// Messages the store could not write leave the transcripts they were
    /// added to (they are the newest of their conversations).
    fn refused(&mut self, _ctx: &mut Ctx, ids: &[u64]) {
        for conv in self.conversations.values_mut() {
            while conv
                .messages
                .last()
                .and_then(|m| message_id(m))
                .is_some_and(|id| ids.contains(&id))
            {
                if let Some(m) = conv.messages.pop() {
                    conv.bytes -= m.len() + MESSAGE_OVERHEAD;
                    self.budget.sub(Kept::Desk, m.len() + MESSAGE_OVERHEAD);
                }
            }
        }
    }
}

/// The `id` of a stored desk message's JSON.
fn message_id(json: &str) -> Option<u64> {
    serde_json::from_str::<Value>(json)
        .ok()?
        .get("id")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_a_message() {
        let b = parse("hello").unwrap();
        assert_eq!(b["type"], "message");
        assert_eq!(b["text"], "hello");
        assert_eq!(parse("{nope}").unwrap_err().code, "bad_json");
    }
}
