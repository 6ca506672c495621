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
pub mod api;
pub mod canned;
pub mod cluster;
pub mod command;
pub mod hours;
mod model;
mod protocol;
pub mod report;
mod routing;
pub mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::hub::log::Log;
use crate::hub::{App, ConnId, ConnInfo, Ctx};
use crate::memory::{Budget, Kept};
use crate::ws::CloseCode;
use model::{Agent, Conversation, ConversationState, Participant, Session};

/// The name of the mount visitors connect through (`/support` in `wschat
/// serve`; the server names each connection's mount: [`ConnInfo::mount`]).
pub const VISITOR_MOUNT: &str = "support";
/// The name of the mount agents connect through (`/agent`).
pub const AGENT_MOUNT: &str = "agent";
/// The name of the desk's part of the HTTP API (`/api/desk/`:
/// [`ApiRequest::mount`](crate::hub::api::ApiRequest::mount)).
pub const API_MOUNT: &str = "desk";

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
/// Default for how long a waiting visitor may be offline before its
/// conversation leaves the queue as abandoned (`--desk-abandon-after`).
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(10 * 60);
/// Longest page address or referrer kept of a visitor, in bytes (longer
/// ones are cut at a character boundary).
pub const MAX_URL_BYTES: usize = 2048;
/// Longest browser description (`User-Agent`) kept, in bytes.
pub const MAX_BROWSER_BYTES: usize = 512;
/// Longest e-mail address a visitor may give, in bytes (RFC 5321 §4.5.3.1
/// limits a path to 256 octets with its brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Most earlier conversations of a visitor shown to an agent at once.
pub const MAX_PREVIOUS: usize = 10;
/// Longest comment a visitor may give with a rating, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;
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
    /// How long a waiting visitor may be offline before its conversation
    /// leaves the queue as abandoned; zero: never.
    pub abandon_after: Duration,
    /// When the team is there (`--desk-hours`); `None`: always.
    pub hours: Option<hours::Hours>,
    /// The secrets visitors' tokens are signed with (`--jwt-secret`).
    pub jwt_secrets: Vec<Vec<u8>>,
    /// Whether visitors must sign in (`--auth`).
    pub auth: crate::chat::AuthMode,
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
            abandon_after: DEFAULT_ABANDON_AFTER,
            hours: None,
            jwt_secrets: Vec::new(),
            auth: crate::chat::AuthMode::Optional,
        }
    }
}

/// The support desk application.
#[derive(Debug)]
pub struct Desk {
    config: DeskConfig,
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
    /// How `agents.json` looked when last read: modification time, size
    /// and inode (see `check_accounts`).
    accounts_changed: Option<(std::time::SystemTime, u64, u64)>,
    /// How `canned.json` looked when last read (see `check_canned`).
    canned_changed: Option<(std::time::SystemTime, u64, u64)>,
    /// The canned replies the store keeps, when it keeps them (a
    /// cluster's, in Redis): their version and the replies by shortcut.
    shared_canned: Option<(String, Vec<canned::Reply>)>,
    /// The accounts the store keeps (a cluster's, in Redis), with their
    /// version, as last read; `None`: `agents.json` holds them.
    shared_accounts: Option<(String, Vec<agents::Account>)>,
    /// The version of `shared_accounts` last applied to the agents.
    shared_applied: Option<String>,
    next_visitor: u64,
    /// Where the desk's events go out as webhooks (none by default).
    webhooks: crate::webhook::Emitter,
}

impl Desk {
    /// A desk with `config`; rebuilds the conversations from the `desk_…`
    /// records of `log`, the store the hub will own and lend it (through
    /// [`Ctx::log`]) for ids and records.
    pub fn new(config: DeskConfig, log: &mut dyn Log) -> Desk {
        let mut records: Vec<Arc<str>> = Vec::new();
        log.replay(&["\"type\":\"desk_"], &mut |line, v| {
            if v["type"].as_str().is_some_and(|t| t.starts_with("desk_")) {
                records.push(line.into());
            }
        });
        let budget = log
            .budget()
            .unwrap_or_else(|| Arc::new(Budget::new(crate::memory::DEFAULT_MEMORY_BUDGET)));
        Desk::from_records(config, records, budget)
    }

    /// A desk with `config` rebuilt from `records` (the `desk_…` records,
    /// oldest first), its kept data counted in `budget`.
    pub fn from_records(config: DeskConfig, records: Vec<Arc<str>>, budget: Arc<Budget>) -> Desk {
        let mut desk = Desk {
            config,
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
            canned_changed: None,
            shared_canned: None,
            shared_accounts: None,
            shared_applied: None,
            next_visitor: 1,
            webhooks: crate::webhook::Emitter::none(),
        };
        for record in records {
            desk.replay(record);
        }
        // Visitors with nothing to resume are not kept (their numbers are
        // counted already); the others are offline since now.
        let now = Instant::now();
        let idle: Vec<String> = desk
            .sessions
            .iter()
            .filter(|(_, s)| s.conversation.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            desk.remove_session(&key);
        }
        for s in desk.sessions.values_mut() {
            s.offline_since = Some(now);
        }
        // Agents who had conversations are not here yet: their grace
        // period starts now.
        let accounts = desk.accounts();
        for conv in desk.conversations.values() {
            if let ConversationState::Assigned(name) = &conv.state {
                let (capacity, role) = desk.account_settings(&accounts, name);
                desk.agents.entry(name.clone()).or_insert_with(|| Agent {
                    gone_since: Some(now),
                    ..Agent::new(capacity, role)
                });
            }
        }
        desk
    }

    /// Send the desk's events to `webhooks` (started by [`crate::apps`]).
    pub fn with_webhooks(mut self, webhooks: crate::webhook::Emitter) -> Desk {
        self.webhooks = webhooks;
        self
    }

    /// The webhooks the desk sends to, taken (for the desk that replaces
    /// this one: [`cluster::ClusterDesk`]).
    fn take_webhooks(&mut self) -> crate::webhook::Emitter {
        std::mem::take(&mut self.webhooks)
    }

    /// Every connection the desk serves (visitors and agents, signed in
    /// or not).
    fn connections(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }
}

impl App for Desk {
    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo) {
        if info.mount == AGENT_MOUNT {
            self.conns.insert(
                conn,
                Participant::Pending {
                    addr: info.addr.clone(),
                    since: Instant::now(),
                },
            );
            let hello = wire::Message::Hello {
                auth: "send {\"type\":\"auth\",\"token\":…}",
            };
            ctx.send_json(conn, &hello.to_json());
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
            Some(Participant::VisitorWaiting { name, arrival, .. }) => {
                let (name, arrival) = (name.clone(), (**arrival).clone());
                self.visitor_waiting_text(ctx, conn, (name, arrival), &text);
            }
            Some(Participant::Refused { .. }) | None => {}
        }
    }

    fn closed(&mut self, ctx: &mut Ctx, conn: ConnId) {
        match self.conns.remove(&conn) {
            Some(Participant::Visitor(key)) => self.visitor_left(ctx, conn, &key),
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
        self.check_canned(ctx);
        self.trim();
        let now = Instant::now();
        let mut refuse = Vec::new();
        let mut unsigned = Vec::new();
        for (&conn, role) in &mut self.conns {
            match role {
                Participant::VisitorWaiting { since, .. }
                    if now.duration_since(*since) >= crate::chat::AUTH_TIMEOUT =>
                {
                    unsigned.push(conn);
                }
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
        for conn in unsigned {
            self.conns.remove(&conn);
            let why = crate::auth::Refusal::Required;
            ctx.close(conn, crate::chat::CLOSE_UNAUTHORIZED, why.reason());
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
            let requeued = self.drop_agent(ctx, &name, "agent_gone");
            log::info!(
                "desk: agent {name}'s grace period is over; {requeued} conversations re-queued"
            );
        }
        self.abandon(ctx, now);
        self.settle(ctx);
    }

    fn turn_end(&mut self, ctx: &mut Ctx) {
        self.settle(ctx);
    }

    fn figures(&self) -> Vec<Arc<dyn crate::hub::metrics::Figures>> {
        let stats = self.webhooks.stats();
        stats
            .into_iter()
            .map(|s| s as Arc<dyn crate::hub::metrics::Figures>)
            .collect()
    }

    fn api(
        &mut self,
        ctx: &mut Ctx,
        request: &crate::hub::api::ApiRequest,
    ) -> crate::hub::api::ApiResponse {
        self.api_request(ctx, request)
    }

    /// The turn's records are stored: its webhook events may leave.
    fn stored(&mut self, _ctx: &mut Ctx) {
        self.webhooks.stored();
    }

    /// Messages the store could not write leave the transcripts they were
    /// added to (they are the newest of their conversations).
    fn refused(&mut self, _ctx: &mut Ctx, ids: &[u64]) {
        self.webhooks.refused(ids);
        for conv in self.conversations.values_mut() {
            while conv
                .messages
                .last()
                .and_then(|m| message_id(m))
                .is_some_and(|id| ids.contains(&id))
            {
                if let Some(m) = conv.messages.pop() {
                    conv.bytes -= m.len() + model::MESSAGE_OVERHEAD;
                    self.budget
                        .sub(Kept::Desk, m.len() + model::MESSAGE_OVERHEAD);
                }
            }
        }
    }
}

/// The `id` of a stored desk message's JSON.
fn message_id(json: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()?
        .get("id")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::protocol::parse;

    #[test]
    fn plain_text_is_a_message() {
        let b = parse("hello").unwrap();
        assert_eq!(b["type"], "message");
        assert_eq!(b["text"], "hello");
        assert_eq!(parse("{nope}").unwrap_err().code, "bad_json");
    }
}
