//! The desk's state: conversations, visitors' sessions, agents and the
//! role of each connection, how it is rebuilt from the log's `desk_…`
//! records, written to the log, and looked up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::Desk;
use super::agents::Role;
use crate::hub::log::Record;
use crate::hub::{ConnId, Ctx};
use crate::memory::{Budget, Kept};

/// Where a conversation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ConversationState {
    /// Waiting in the queue.
    Queued,
    /// With an agent (who may be within their grace period).
    Assigned(String),
    /// Closed by an agent; the visitor may rate it.
    Resolved,
}

#[derive(Debug)]
pub(super) struct Conversation {
    pub(super) id: u64,
    /// The visitor's session key (a digest of its token).
    pub(super) session: String,
    pub(super) visitor: String,
    pub(super) state: ConversationState,
    /// The last `keep_messages` `desk_message` records, as sent.
    pub(super) messages: Vec<Arc<str>>,
    /// Messages before those, no longer in memory (in the log only).
    pub(super) earlier: usize,
    /// Its place in the order of resolution, once resolved (the key in
    /// `Desk::resolved`).
    pub(super) resolved_at: Option<u64>,
    /// When it was opened, epoch ms.
    pub(super) opened: u64,
    /// When it last entered the queue, epoch ms.
    pub(super) queued_at: u64,
    pub(super) rating: Option<u64>,
    /// The comment that came with the rating, if any.
    pub(super) comment: Option<String>,
    /// The agent whose conversation it was when it was resolved.
    pub(super) resolved_by: Option<String>,
    /// The visitor's `sub`, when it signed in with a token.
    pub(super) sub: Option<String>,
    /// Its bytes as the memory budget counts them.
    pub(super) bytes: usize,
    /// It left the queue because its visitor was offline too long.
    pub(super) abandoned: bool,
    /// It was opened outside `--desk-hours`: a message left for the team,
    /// which waits for the first agent however long its visitor is away.
    pub(super) offline: bool,
}

/// What a conversation costs in memory beyond its strings and messages.
pub const CONVERSATION_OVERHEAD: usize = 256;
/// What one kept transcript message costs beyond its JSON.
pub const MESSAGE_OVERHEAD: usize = 64;
/// What a visitor's session (its contact record) costs beyond its strings:
/// the map entry, the struct and its sets.
pub const SESSION_OVERHEAD: usize = 256;

impl Conversation {
    /// Keep a message record, and no more than `keep` of them in memory;
    /// the change in its bytes is counted against `budget`.
    pub(super) fn add_message(&mut self, record: Arc<str>, keep: usize, budget: &Budget) {
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
    pub(super) fn drop_earliest(&mut self, n: usize) {
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

pub(super) use super::wire::Contact;

#[derive(Debug, Default)]
pub(super) struct Session {
    pub(super) conns: BTreeSet<ConnId>,
    /// The visitor's contact record.
    pub(super) contact: Contact,
    /// Since when no connection of the visitor is open (`None` while one
    /// is): a waiting conversation is abandoned after `abandon_after`.
    pub(super) offline_since: Option<Instant>,
    /// The latest conversation (open, or resolved and kept for its rating).
    pub(super) conversation: Option<u64>,
    /// Every conversation of the visitor still in memory (the latest
    /// included), for the agent's list of earlier ones.
    pub(super) history: BTreeSet<u64>,
    pub(super) name: String,
    /// The site's id for this visitor, when it signed in with a token.
    pub(super) sub: Option<String>,
    /// Its bytes as the memory budget counts them (see [`Session::cost`]),
    /// as last counted by `Desk::recount_session`.
    pub(super) bytes: usize,
}

impl Session {
    /// Its bytes as the memory budget counts them: its key, name, `sub` and
    /// contact strings, plus [`SESSION_OVERHEAD`].
    pub(super) fn cost(&self, key: &str) -> usize {
        let c = &self.contact;
        let text = |f: &Option<String>| f.as_ref().map_or(0, String::len);
        key.len()
            + self.name.len()
            + text(&self.sub)
            + text(&c.email)
            + text(&c.page)
            + text(&c.referrer)
            + text(&c.browser)
            + SESSION_OVERHEAD
    }
}

#[derive(Debug)]
pub(super) struct Agent {
    pub(super) conns: BTreeSet<ConnId>,
    pub(super) away: bool,
    /// When the agent last got a conversation (or signed in): the longest
    /// idle wins a tie.
    pub(super) last_assigned: Instant,
    /// When the last console disconnected (grace period running).
    pub(super) gone_since: Option<Instant>,
    /// Open conversations the router gives this agent at once (its
    /// account's, else the server's `--agent-capacity`).
    pub(super) capacity: usize,
    /// Its account's role.
    pub(super) role: Role,
}

impl Agent {
    /// An agent with no console yet, of `capacity` and `role`.
    pub(super) fn new(capacity: usize, role: Role) -> Agent {
        Agent {
            conns: BTreeSet::new(),
            away: false,
            last_assigned: Instant::now(),
            gone_since: None,
            capacity,
            role,
        }
    }

    /// Whether the agent is a supervisor.
    pub(super) fn supervisor(&self) -> bool {
        self.role == Role::Supervisor
    }
}

#[derive(Debug)]
pub(super) enum Participant {
    Visitor(String),
    /// A visitor that must sign in (`--auth required`) and has not yet:
    /// the name it asked for, and since when it waits.
    VisitorWaiting {
        name: Option<String>,
        since: Instant,
        arrival: Box<super::protocol::Arrival>,
    },
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

impl Desk {
    pub(super) fn replay(&mut self, record: Arc<str>) {
        let Ok(v) = serde_json::from_str::<Value>(&record) else {
            return;
        };
        let kind = v["type"].as_str().unwrap_or("");
        if kind == "desk_contact" {
            return self.replay_contact(&v);
        }
        let Some(cid) = v["conversation"].as_u64() else {
            return;
        };
        let time = v["time"].as_u64().unwrap_or(0);
        match kind {
            "desk_opened" => {
                let session = v["session"].as_str().unwrap_or("").to_string();
                let visitor = v["visitor"].as_str().unwrap_or("").to_string();
                let sub = v["sub"].as_str().map(str::to_string);
                self.open_conversation(cid, session, (visitor, sub), time);
                if v["offline"] == true
                    && let Some(conv) = self.conversations.get_mut(&cid)
                {
                    conv.offline = true;
                }
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
                if v["by"] == "abandoned"
                    && let Some(conv) = self.conversations.get_mut(&cid)
                {
                    conv.abandoned = true;
                }
                self.mark_resolved(cid);
            }
            "desk_rated" => {
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.rating = v["rating"].as_u64();
                    conv.comment = v["comment"].as_str().map(str::to_string);
                }
            }
            _ => {}
        }
    }

    /// A `desk_contact` record: a visitor's number, name and contact.
    fn replay_contact(&mut self, v: &Value) {
        let Some(key) = v["session"].as_str() else {
            return;
        };
        if let Some(n) = v["number"].as_u64() {
            self.next_visitor = self.next_visitor.max(n + 1);
        }
        let s = self.sessions.entry(key.to_string()).or_default();
        if let Some(name) = v["name"].as_str() {
            s.name = name.to_string();
        }
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let c = &mut s.contact;
        c.email = text("email").or(c.email.take());
        c.page = text("page").or(c.page.take());
        c.referrer = text("referrer").or(c.referrer.take());
        c.browser = text("browser").or(c.browser.take());
        let time = v["time"].as_u64().unwrap_or(0);
        if c.first_seen == 0 {
            c.first_seen = time;
        }
        c.last_seen = c.last_seen.max(time);
        self.recount_session(key);
    }

    /// Count session `key`'s bytes against the memory budget again, after
    /// a change to its name or contact (or when it is new).
    pub(super) fn recount_session(&mut self, key: &str) {
        if let Some(s) = self.sessions.get_mut(key) {
            let now = s.cost(key);
            self.budget.add(Kept::Desk, now.saturating_sub(s.bytes));
            self.budget.sub(Kept::Desk, s.bytes.saturating_sub(now));
            s.bytes = now;
        }
    }

    /// Forget session `key`, and its bytes.
    pub(super) fn remove_session(&mut self, key: &str) {
        if let Some(s) = self.sessions.remove(key) {
            self.budget.sub(Kept::Desk, s.bytes);
        }
    }

    /// Conversation `cid` is resolved: note when, and forget the resolved
    /// conversations past `keep_resolved`, those resolved longest ago first.
    /// Their records stay in the log; a visitor who had nothing else and is
    /// not connected is forgotten too.
    pub(super) fn mark_resolved(&mut self, cid: u64) {
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        if let ConversationState::Assigned(agent) = &conv.state {
            conv.resolved_by = Some(agent.clone());
        }
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
        if let Some(session) = self.sessions.get_mut(&conv.session) {
            session.history.remove(&conv.id);
        }
        if let Some(session) = self.sessions.get_mut(&conv.session)
            && session.conversation == Some(conv.id)
        {
            session.conversation = None;
            if session.conns.is_empty() {
                self.remove_session(&conv.session);
            }
        }
    }

    /// Stay within the desk's share of the memory budget: forget resolved
    /// conversations, resolved longest ago first; if that is not enough,
    /// let the earliest half of the longest open transcript go (agents are
    /// told how many `earlier` messages memory no longer shows).
    pub(super) fn trim(&mut self) {
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
    /// resolved ones stay in memory (until `keep_resolved` or the budget
    /// lets them go) to be shown to the agent as the visitor's earlier
    /// conversations.
    pub(super) fn open_conversation(
        &mut self,
        cid: u64,
        session: String,
        (visitor, sub): (String, Option<String>),
        time: u64,
    ) {
        let s = self.sessions.entry(session.clone()).or_default();
        s.name = visitor.clone();
        s.conversation = Some(cid);
        s.history.insert(cid);
        self.recount_session(&session);
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
                comment: None,
                resolved_by: None,
                sub,
                bytes,
                abandoned: false,
                offline: false,
            },
        );
        self.queue.push_back(cid);
    }

    /// Append a state record to the hub's store ([`Record::State`]).
    pub(super) fn record(ctx: &mut Ctx, text: String) -> Arc<str> {
        let text: Arc<str> = text.into();
        ctx.log().append(Record::State { json: &text });
        text
    }

    /// Append a message: refused, not carried, if the turn's write fails
    /// ([`Record::Message`]).
    pub(super) fn record_message(ctx: &mut Ctx, text: String) -> Arc<str> {
        let text: Arc<str> = text.into();
        ctx.log().append(Record::Message { json: &text });
        text
    }

    pub(super) fn load(&self, agent: &str) -> usize {
        self.conversations
            .values()
            .filter(|c| matches!(&c.state, ConversationState::Assigned(a) if a == agent))
            .count()
    }

    pub(super) fn visitor_conns(&self, conv: &Conversation) -> Vec<ConnId> {
        self.sessions
            .get(&conv.session)
            .map(|s| s.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(super) fn agent_conns(&self, name: &str) -> Vec<ConnId> {
        self.agents
            .get(name)
            .map(|a| a.conns.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(super) fn all_agent_conns(&self) -> Vec<ConnId> {
        self.agents
            .values()
            .flat_map(|a| a.conns.iter().copied())
            .collect()
    }

    pub(super) fn visitor_online(&self, conv: &Conversation) -> bool {
        self.sessions
            .get(&conv.session)
            .is_some_and(|s| !s.conns.is_empty())
    }

    /// The open-conversation capacity of agent `name`.
    pub(super) fn capacity(&self, name: &str) -> usize {
        self.agents
            .get(name)
            .map_or(self.config.capacity, |a| a.capacity)
    }

    /// Whether agent `name` is a supervisor.
    pub(super) fn is_supervisor(&self, name: &str) -> bool {
        self.agents.get(name).is_some_and(Agent::supervisor)
    }

    /// The consoles of every supervisor but `except` (who gets what it is
    /// sent as the conversation's agent).
    pub(super) fn supervisor_conns(&self, except: Option<&str>) -> Vec<ConnId> {
        self.agents
            .iter()
            .filter(|(name, a)| a.supervisor() && Some(name.as_str()) != except)
            .flat_map(|(_, a)| a.conns.iter().copied())
            .collect()
    }

    pub(super) fn online_agents(&self) -> usize {
        self.agents
            .values()
            .filter(|a| !a.conns.is_empty() && !a.away)
            .count()
    }
}
