//! The desk's protocol: what visitors and agents send and are sent, agent
//! sign-in and accounts, transfers (docs/customer-service.md).

use std::time::Instant;

use serde_json::{Map, Value};

use super::command::{
    AgentCommand, Limits, VisitorCommand, parse_agent, parse_visitor, plausible_email,
};
use super::model::{Agent, Conversation, ConversationState, Participant, Session};
use super::wire::{AgentRow, ConversationView, Entry, Message, PreviousView, QueueRow};
use super::{AUTH_FAILED, Desk, agents, canned};
use crate::chat::valid_name;
use crate::chat::wire::StoredList;
use crate::clock::now_ms;
use crate::hub::{ConnId, ConnInfo, Ctx, ErrorReply};
use crate::webhook::Event;

pub(super) fn error(ctx: &mut Ctx, conn: ConnId, code: &'static str, message: impl Into<String>) {
    ctx.send_json(conn, &ErrorReply::new(code, message).to_json());
}

/// A client's text as a command object: a JSON object with a `"type"`, or
/// plain text, which is a `message`.
/// (The sign-in's first message; commands go through [`super::command`].)
pub(super) fn parse(text: &str) -> Result<Map<String, Value>, ErrorReply> {
    super::command::object(text)
}

/// A console's change of the canned replies a cluster keeps in Redis:
/// checked, sent to Redis without waiting, and made in `replies` at once
/// (the next read, a tick later, brings the list as Redis has it). The
/// error code and text otherwise.
fn shared_canned_change(
    ctx: &mut Ctx,
    replies: &mut Vec<canned::Reply>,
    name: &str,
    shortcut: &str,
    text: Option<&str>,
) -> Result<(), (&'static str, String)> {
    match text {
        Some(text) => {
            let reply = canned::reply(shortcut, text, Some(name)).map_err(|e| ("bad_canned", e))?;
            let new = !replies.iter().any(|r| r.shortcut == reply.shortcut);
            if new && replies.len() >= canned::MAX_REPLIES {
                return Err((
                    "bad_canned",
                    format!("there are {} canned replies already", canned::MAX_REPLIES),
                ));
            }
            let json = serde_json::to_string(&reply).map_err(|e| ("bad_canned", e.to_string()))?;
            if !ctx
                .log()
                .change_canned(&reply.shortcut, Some(&json), canned::MAX_REPLIES)
            {
                return Err((
                    "unavailable",
                    "the canned replies cannot be changed now".into(),
                ));
            }
            replies.retain(|r| r.shortcut != reply.shortcut);
            replies.push(reply);
            replies.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
        }
        None => {
            let shortcut = shortcut.trim().trim_start_matches('/');
            if !replies.iter().any(|r| r.shortcut == shortcut) {
                return Err(("bad_canned", "there is no such canned reply".into()));
            }
            if !ctx.log().change_canned(shortcut, None, canned::MAX_REPLIES) {
                return Err((
                    "unavailable",
                    "the canned replies cannot be changed now".into(),
                ));
            }
            replies.retain(|r| r.shortcut != shortcut);
        }
    }
    Ok(())
}

impl Desk {
    /// The agent accounts: those the store keeps (a cluster's, in Redis,
    /// as last read: see `read_shared_accounts`), else `agents.json`'s
    /// (none without a data directory, or when the file cannot be read:
    /// that is logged).
    pub(super) fn accounts(&self) -> Vec<agents::Account> {
        if let Some((_, accounts)) = &self.shared_accounts {
            return accounts.clone();
        }
        match &self.config.data_dir {
            Some(dir) => agents::load(dir).unwrap_or_else(|e| {
                log::error!("desk: cannot read the agent accounts: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        }
    }

    /// The capacity and role that `accounts` give agent `name` (the
    /// server's capacity when its account names none).
    pub(super) fn account_settings(
        &self,
        accounts: &[agents::Account],
        name: &str,
    ) -> (usize, agents::Role) {
        accounts
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map_or((self.config.capacity, agents::Role::Agent), |a| {
                (a.capacity.unwrap_or(self.config.capacity), a.role)
            })
    }

    /// When `agents.json` changed since the last look (its modification
    /// time, size or inode: every save renames a new file over the old),
    /// apply it to the agents here: a changed capacity or role counts from
    /// the next routing and every console hears of it (`agents`); an agent
    /// whose account is gone (`wschat agent remove`) is signed out: its
    /// consoles are closed with 4001 and its conversations go back to the
    /// queue. Called every tick: one `stat` of the file.
    pub(super) fn check_accounts(&mut self, ctx: &mut Ctx) {
        use std::os::unix::fs::MetadataExt;
        if let Some(version) = self.read_shared_accounts(ctx) {
            if self.shared_applied.as_deref() != Some(version.as_str()) {
                self.shared_applied = Some(version);
                let accounts = self.accounts();
                self.apply_accounts(ctx, accounts);
            }
            return;
        }
        let Some(dir) = &self.config.data_dir else {
            return;
        };
        let Ok(meta) = std::fs::metadata(dir.join(agents::AGENTS_FILE)) else {
            return;
        };
        let Ok(modified) = meta.modified() else {
            return;
        };
        let seen = (modified, meta.len(), meta.ino());
        if self.accounts_changed.replace(seen) == Some(seen) {
            return;
        }
        let accounts = match agents::load(dir) {
            Ok(accounts) => accounts,
            Err(e) => {
                log::error!("desk: cannot read the agent accounts: {e}");
                return;
            }
        };
        self.apply_accounts(ctx, accounts);
    }

    /// The accounts the store keeps, when it keeps them (`wschat agent …
    /// --redis`: [`Log::agent_accounts`](crate::hub::log::Log::agent_accounts)),
    /// read into `shared_accounts` when their version changed; their
    /// version. `None`: the store keeps none (`agents.json` holds them).
    pub(super) fn read_shared_accounts(&mut self, ctx: &mut Ctx) -> Option<String> {
        let (version, json) = ctx.log().agent_accounts()?;
        if self.shared_accounts.as_ref().map(|(v, _)| v) != Some(&version) {
            let accounts = json
                .iter()
                .filter_map(|j| {
                    serde_json::from_str::<agents::Account>(j)
                        .map_err(|e| log::error!("desk: an agent account in Redis: {e}"))
                        .ok()
                })
                .collect();
            self.shared_accounts = Some((version.clone(), accounts));
        }
        Some(version)
    }

    /// Apply `accounts` to the agents here: see `check_accounts`.
    fn apply_accounts(&mut self, ctx: &mut Ctx, accounts: Vec<agents::Account>) {
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
            let requeued = self.drop_agent(ctx, &name, "agent_removed");
            log::info!(
                "desk: agent {name} was removed: signed out, {requeued} conversations re-queued"
            );
        }
        let names: Vec<String> = self.agents.keys().cloned().collect();
        for name in names {
            let (capacity, role) = self.account_settings(&accounts, &name);
            let Some(agent) = self.agents.get_mut(&name) else {
                continue;
            };
            if (agent.capacity, agent.role) == (capacity, role) {
                continue;
            }
            log::info!(
                "desk: agent {name} now has capacity {capacity} and role {}",
                role.name()
            );
            let role_changed = role != agent.role;
            agent.capacity = capacity;
            agent.role = role;
            let conns: Vec<ConnId> = agent.conns.iter().copied().collect();
            let account = Message::Account {
                agent: &name,
                capacity,
                role: role.name(),
            }
            .to_json();
            ctx.broadcast(conns.clone(), &Ctx::json_frame(&account));
            // A new supervisor sees every open conversation; a former one,
            // its own again.
            if role_changed {
                let all = self.open_conversations_json(&name);
                ctx.broadcast(conns, &Ctx::json_frame(&all));
            }
            self.dirty = true;
        }
    }

    /// When `canned.json` changed since the last look (`wschat canned`),
    /// send every console the new list. Called every tick: one `stat`.
    pub(super) fn check_canned(&mut self, ctx: &mut Ctx) {
        use std::os::unix::fs::MetadataExt;
        // A cluster's, in Redis: sent on when their version changed.
        if let Some((version, json)) = ctx.log().canned_replies() {
            if self.shared_canned.as_ref().map(|(v, _)| v) != Some(&version) {
                self.shared_canned = Some((version, canned::from_json(&json)));
                let list = self.canned_json();
                ctx.broadcast(self.all_agent_conns(), &Ctx::json_frame(&list));
            }
            return;
        }
        let Some(dir) = &self.config.data_dir else {
            return;
        };
        let seen = std::fs::metadata(canned::path(dir))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino())));
        let Some(seen) = seen else {
            return;
        };
        if self.canned_changed.replace(seen) == Some(seen) {
            return;
        }
        let list = self.canned_json();
        ctx.broadcast(self.all_agent_conns(), &Ctx::json_frame(&list));
    }

    /// The `canned` message: the team's canned replies.
    pub(super) fn canned_json(&self) -> String {
        if let Some((_, replies)) = &self.shared_canned {
            return Message::Canned { replies }.to_json();
        }
        let replies = match &self.config.data_dir {
            Some(dir) => canned::load(dir).unwrap_or_else(|e| {
                log::error!("desk: cannot read the canned replies: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Message::Canned { replies: &replies }.to_json()
    }

    /// `canned_add` (`text`: the reply) / `canned_remove` (`text`: none)
    /// from a console: the file is written (a small file, on the hub
    /// thread, as `agent add` would) and every console gets the new list.
    fn canned_change(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        name: &str,
        shortcut: &str,
        text: Option<&str>,
    ) {
        if let Some((_, replies)) = &mut self.shared_canned {
            if let Err((code, why)) = shared_canned_change(ctx, replies, name, shortcut, text) {
                return error(ctx, conn, code, why);
            }
            log::info!("desk: agent {name} changed the canned replies");
            let list = self.canned_json();
            ctx.broadcast(self.all_agent_conns(), &Ctx::json_frame(&list));
            return;
        }
        let Some(dir) = self.config.data_dir.clone() else {
            return error(ctx, conn, "unavailable", "there is no data directory");
        };
        let done = if let Some(text) = text {
            canned::add(&dir, shortcut, text, Some(name)).map(|_| ())
        } else {
            canned::remove(&dir, shortcut).and_then(|found| {
                found
                    .map(|_| ())
                    .ok_or_else(|| "there is no such canned reply".to_string())
            })
        };
        if let Err(e) = done {
            return error(ctx, conn, "bad_canned", e);
        }
        log::info!("desk: agent {name} changed the canned replies");
        let list = self.canned_json();
        ctx.broadcast(self.all_agent_conns(), &Ctx::json_frame(&list));
    }

    /// The `conversations` message for agent `name`'s console: its own
    /// open conversations, and for a supervisor every open one.
    pub(super) fn open_conversations_json(&self, name: &str) -> String {
        let all = self.is_supervisor(name);
        let list: Vec<Message> = self
            .conversations
            .values()
            .filter(|c| match &c.state {
                ConversationState::Assigned(a) => all || *a == name,
                _ => false,
            })
            .map(|c| Message::Conversation(self.conversation_view(c, None)))
            .collect();
        Message::Conversations {
            conversations: &list,
        }
        .to_json()
    }

    /// A conversation as an agent sees it, with its transcript (`from`:
    /// the agent it came from and the note, in a transfer).
    pub(super) fn conversation_view<'a>(
        &'a self,
        conv: &'a Conversation,
        from: Option<(&'a str, &'a str)>,
    ) -> ConversationView<'a> {
        ConversationView {
            conversation: conv.id,
            visitor: &conv.visitor,
            sub: conv.sub.as_deref(),
            agent: match &conv.state {
                ConversationState::Assigned(agent) => Some(agent),
                _ => None,
            },
            contact: self.sessions.get(&conv.session).map(|s| &s.contact),
            previous: self.previous(conv).len(),
            offline: conv.offline,
            online: self.visitor_online(conv),
            opened: conv.opened,
            waiting_since: conv.queued_at,
            from: from.map(|(prev, _)| prev),
            note: from.map(|(_, note)| note),
            earlier: (conv.earlier > 0).then_some(conv.earlier),
            messages: StoredList(&conv.messages),
        }
    }

    pub(super) fn agents_json(&self) -> String {
        let list: Vec<AgentRow> = self
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
                AgentRow {
                    name,
                    status,
                    load: self.load(name),
                    capacity: a.capacity,
                    role: a.role.name(),
                }
            })
            .collect();
        Message::Agents {
            capacity: self.config.capacity,
            agents: &list,
        }
        .to_json()
    }

    pub(super) fn queue_json(&self) -> String {
        let list: Vec<QueueRow> = self
            .queue
            .iter()
            .filter_map(|id| self.conversations.get(id))
            .map(|c| QueueRow {
                conversation: c.id,
                visitor: &c.visitor,
                online: self.visitor_online(c),
                waiting_since: c.queued_at,
                messages: c.earlier + c.messages.len(),
            })
            .collect();
        Message::Queue { queue: &list }.to_json()
    }

    pub(super) fn visitor_opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: &ConnInfo) {
        let asked = info
            .request
            .query_param("name")
            .and_then(|n| valid_name(&n).ok());
        let arrival = Arrival::of(info);
        if let Some(token) = info.request.query_param("token") {
            match self.verify(&token) {
                Ok(claims) => {
                    self.visitor_arrive(ctx, conn, VisitorId::Verified(claims), asked, &arrival)
                }
                Err(why) => ctx.close(conn, crate::chat::CLOSE_UNAUTHORIZED, why.reason()),
            }
            return;
        }
        if self.config.auth == crate::chat::AuthMode::Required {
            // Its first message may still sign it in.
            self.conns.insert(
                conn,
                Participant::VisitorWaiting {
                    name: asked,
                    since: std::time::Instant::now(),
                    arrival: Box::new(arrival),
                },
            );
            return;
        }
        let presented = info
            .request
            .query_param("session")
            .filter(|t| !t.is_empty() && t.len() <= 128);
        self.visitor_arrive(ctx, conn, VisitorId::Session(presented), asked, &arrival);
    }

    fn verify(&self, token: &str) -> Result<crate::auth::Claims, crate::auth::Refusal> {
        crate::auth::verify(token, &self.config.jwt_secrets, now_ms() / 1000)
    }

    /// A visitor that must sign in sent its first message: an `auth`, or
    /// it is closed with 4001.
    pub(super) fn visitor_waiting_text(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        (name, arrival): (Option<String>, Arrival),
        text: &str,
    ) {
        self.conns.remove(&conn);
        let token = parse(text).ok().and_then(|b| {
            (b.get("type").and_then(Value::as_str) == Some("auth"))
                .then(|| b.get("token").and_then(Value::as_str).map(String::from))
                .flatten()
        });
        let result = match token {
            Some(token) => self.verify(&token),
            None => Err(crate::auth::Refusal::Required),
        };
        match result {
            Ok(claims) => {
                self.visitor_arrive(ctx, conn, VisitorId::Verified(claims), name, &arrival)
            }
            Err(why) => ctx.close(conn, crate::chat::CLOSE_UNAUTHORIZED, why.reason()),
        }
    }

    /// A visitor's connection goes: its agent hears the visitor is offline
    /// when it was the last, and a session with nothing to resume is
    /// forgotten.
    pub(super) fn visitor_left(&mut self, ctx: &mut Ctx, conn: ConnId, key: &str) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        session.conns.remove(&conn);
        if !session.conns.is_empty() {
            return;
        }
        session.offline_since = Some(Instant::now());
        let current = session.conversation;
        if let Some(conv) = current.and_then(|c| self.conversations.get(&c)) {
            if let ConversationState::Assigned(agent) = &conv.state {
                let msg = Message::VisitorStatus {
                    conversation: conv.id,
                    online: false,
                }
                .to_json();
                ctx.broadcast(self.agent_conns(agent), &Ctx::json_frame(&msg));
            }
        } else {
            // Nothing to resume: forget the session.
            self.remove_session(key);
        }
        self.dirty = true;
    }

    /// Bring a visitor's connection in: a session (its own, or a new one),
    /// or a verified `sub`, whose conversations follow it to every device.
    fn visitor_arrive(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        who: VisitorId,
        asked: Option<String>,
        arrival: &Arrival,
    ) {
        let mut verified_email = None;
        let (token, key, sub, fixed_name) = match who {
            VisitorId::Session(Some(t)) if self.sessions.contains_key(&agents::digest_hex(&t)) => {
                let key = agents::digest_hex(&t);
                (Some(t), key, None, None)
            }
            VisitorId::Session(_) => {
                let t = agents::new_token();
                let key = agents::digest_hex(&t);
                (Some(t), key, None, None)
            }
            VisitorId::Verified(claims) => {
                let key = agents::digest_hex(&format!("sub:{}", claims.sub));
                let name = claims.name.as_deref().and_then(|n| valid_name(n).ok());
                verified_email = claims
                    .email
                    .as_deref()
                    .map(str::trim)
                    .filter(|e| plausible_email(e))
                    .map(str::to_string);
                (None, key, Some(claims.sub), name)
            }
        };
        let asked = fixed_name.or(asked);
        let fresh = !self.sessions.contains_key(&key);
        let mut number = None;
        let next = &mut self.next_visitor;
        let session = self.sessions.entry(key.clone()).or_insert_with(|| {
            let n = *next;
            *next += 1;
            number = Some(n);
            Session {
                name: arrival.default_name(n),
                ..Session::default()
            }
        });
        let mut changed = number.is_some();
        if let Some(name) = asked
            && name != session.name
        {
            session.name = name;
            changed = true;
        }
        if sub.is_some() {
            session.sub = sub.clone();
        }
        let time = now_ms();
        let contact = &mut session.contact;
        for (field, given) in [
            (&mut contact.email, &verified_email),
            (&mut contact.page, &arrival.page),
            (&mut contact.referrer, &arrival.referrer),
            (&mut contact.browser, &arrival.browser),
        ] {
            if given.is_some() && given != field {
                field.clone_from(given);
                changed = true;
            }
        }
        if contact.first_seen == 0 {
            contact.first_seen = time;
        }
        contact.last_seen = time;
        let was_offline = session.conns.is_empty();
        session.conns.insert(conn);
        session.offline_since = None;
        if changed {
            // Kept in the log: names stay unique for the life of the data
            // directory, and the agent sees the contact after a restart.
            let record = self.contact_record(ctx, &key, number);
            Desk::record(ctx, record);
        }
        // Its contact counts in the memory budget.
        self.recount_session(&key);
        let session = &self.sessions[&key];
        let name = session.name.clone();
        let current = session.conversation;
        let has_email = session.contact.email.is_some();
        self.conns.insert(conn, Participant::Visitor(key));
        let welcome = match (&token, &sub) {
            (_, Some(sub)) => Message::WelcomeVerified {
                name: &name,
                sub,
                verified: true,
                resumed: !fresh,
                conversation: current,
                max_text_bytes: self.config.max_text_bytes,
            }
            .to_json(),
            (token, None) => Message::Welcome {
                session: token.as_deref(),
                name: &name,
                resumed: !fresh,
                conversation: current,
                max_text_bytes: self.config.max_text_bytes,
            }
            .to_json(),
        };
        ctx.send_json(conn, &welcome);
        let now = now_ms();
        if let Some(hours) = &self.config.hours
            && !hours.is_open(now)
        {
            let notice = Message::Hours {
                open: false,
                back: hours.next_open(now),
                email: has_email,
            };
            ctx.send_json(conn, &notice.to_json());
        }
        let Some(conv) = current.and_then(|c| self.conversations.get(&c)) else {
            return;
        };
        let state = match &conv.state {
            ConversationState::Queued => "queued",
            ConversationState::Assigned(_) => "assigned",
            ConversationState::Resolved => "resolved",
        };
        let transcript = Message::Transcript {
            conversation: conv.id,
            state,
            agent: match &conv.state {
                ConversationState::Assigned(agent) => Some(agent),
                _ => None,
            },
            rating: (conv.state == ConversationState::Resolved).then_some(conv.rating),
            earlier: (conv.earlier > 0).then_some(conv.earlier),
            messages: StoredList(&conv.messages),
        };
        ctx.send_json(conn, &transcript.to_json());
        match &conv.state {
            ConversationState::Queued => {
                if let Some(i) = self.queue.iter().position(|&c| c == conv.id) {
                    let msg = Message::Queued {
                        conversation: conv.id,
                        position: i + 1,
                        agents_online: self.online_agents(),
                    }
                    .to_json();
                    ctx.send_json(conn, &msg);
                }
                self.dirty = true;
            }
            ConversationState::Assigned(agent) if was_offline => {
                let msg = Message::VisitorStatus {
                    conversation: conv.id,
                    online: true,
                }
                .to_json();
                ctx.broadcast(self.agent_conns(agent), &Ctx::json_frame(&msg));
            }
            _ => {}
        }
    }

    pub(super) fn visitor_text(&mut self, ctx: &mut Ctx, conn: ConnId, key: String, text: String) {
        let command = match parse_visitor(&text, self.limits()) {
            Ok(command) => command,
            Err(e) => {
                ctx.send_json(conn, &e.to_json());
                return;
            }
        };
        if let VisitorCommand::Auth { token } = &command {
            // Signing in after arriving anonymously: the connection becomes
            // the verified visitor (a new welcome says so).
            match self.verify(token) {
                Ok(claims) => {
                    self.conns.remove(&conn);
                    self.visitor_left(ctx, conn, &key);
                    let arrival = Arrival::default();
                    self.visitor_arrive(ctx, conn, VisitorId::Verified(claims), None, &arrival);
                }
                Err(why) => ctx.close(conn, crate::chat::CLOSE_UNAUTHORIZED, why.reason()),
            }
            return;
        }
        let current = self.sessions.get(&key).and_then(|s| s.conversation);
        let open = current.filter(|c| {
            self.conversations
                .get(c)
                .is_some_and(|c| c.state != ConversationState::Resolved)
        });
        match command {
            VisitorCommand::Message { text } => {
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
                        let time = now_ms();
                        let closed = self.config.hours.as_ref().is_some_and(|h| !h.is_open(time));
                        if closed && self.sessions[&key].contact.email.is_none() {
                            return error(
                                ctx,
                                conn,
                                "email_required",
                                "the team is away: leave an e-mail address (contact) with your message",
                            );
                        }
                        let cid = ctx.log().take_id();
                        let name = self.sessions[&key].name.clone();
                        let sub = self.sessions[&key].sub.clone();
                        let rec = Entry::DeskOpened {
                            id: cid,
                            conversation: cid,
                            session: &key,
                            visitor: &name,
                            sub: sub.as_deref(),
                            offline: closed,
                            time,
                        };
                        Desk::record(ctx, rec.to_json());
                        // Out of hours (`offline`), the webhook is how the
                        // team hears of the message left for it.
                        self.webhooks.emit(Event::ConversationCreated {
                            conversation: cid,
                            visitor: &name,
                            sub: sub.as_deref(),
                            offline: closed,
                        });
                        self.open_conversation(cid, key.clone(), (name, sub), time);
                        if let Some(conv) = self.conversations.get_mut(&cid) {
                            conv.offline = closed;
                        }
                        self.dirty = true;
                        cid
                    }
                };
                let name = self.sessions[&key].name.clone();
                self.post(ctx, conn, cid, ("visitor", &name), &text);
            }
            VisitorCommand::Contact { name, email } => {
                self.visitor_contact(ctx, &key, name, email);
            }
            VisitorCommand::End => self.visitor_end(ctx, conn, open),
            VisitorCommand::Typing { active } => {
                if let Some(conv) = open.and_then(|c| self.conversations.get(&c))
                    && let ConversationState::Assigned(agent) = &conv.state
                {
                    let msg = Message::Typing {
                        conversation: conv.id,
                        from: "visitor",
                        active,
                    }
                    .to_json();
                    ctx.broadcast(self.agent_conns(agent), &Ctx::json_frame(&msg));
                }
            }
            VisitorCommand::Rate { rating, comment } => {
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
                self.rate(ctx, &key, cid, rating, comment);
            }
            // Handled above.
            VisitorCommand::Auth { .. } => {}
        }
    }

    /// What the command parsers check that is a setting.
    fn limits(&self) -> Limits {
        Limits {
            max_text_bytes: self.config.max_text_bytes,
        }
    }

    /// The visitor of session `key` rates conversation `cid`: stored, told
    /// to the visitor's connections (`rated` with `rating`), to the agent
    /// who resolved it and the supervisors (`rated` with `stars`), counted
    /// for `/metrics`.
    fn rate(&mut self, ctx: &mut Ctx, key: &str, cid: u64, rating: u64, comment: Option<String>) {
        let id = ctx.log().take_id();
        let time = now_ms();
        let record = Entry::DeskRated {
            id,
            conversation: cid,
            rating,
            comment: comment.as_deref(),
            time,
        };
        Desk::record(ctx, record.to_json());
        ctx.metrics().desk.count_rating(rating);
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        conv.rating = Some(rating);
        conv.comment = comment.clone();
        let to_visitor = Message::Rated {
            conversation: cid,
            stars: rating,
            rating,
            comment: comment.as_deref(),
        };
        let conns: Vec<ConnId> = self
            .sessions
            .get(key)
            .map(|s| s.conns.iter().copied().collect())
            .unwrap_or_default();
        ctx.broadcast(conns, &Ctx::json_frame(&to_visitor.to_json()));
        let conv = &self.conversations[&cid];
        let agent = conv.resolved_by.as_deref();
        let to_agent = Message::RatedAgent {
            conversation: cid,
            stars: rating,
            comment: comment.as_deref(),
            visitor: &conv.visitor,
            agent,
            time,
        };
        let mut conns = agent.map(|a| self.agent_conns(a)).unwrap_or_default();
        conns.extend(self.supervisor_conns(agent));
        ctx.broadcast(conns, &Ctx::json_frame(&to_agent.to_json()));
        self.webhooks.emit(Event::ConversationRated {
            conversation: cid,
            stars: rating,
            comment: comment.as_deref(),
        });
    }

    /// The `desk_contact` record of session `key` (with `number` when a
    /// default name was just given out).
    fn contact_record(&self, ctx: &mut Ctx, key: &str, number: Option<u64>) -> String {
        let session = &self.sessions[key];
        let c = &session.contact;
        let record = Entry::DeskContact {
            id: ctx.log().take_id(),
            session: key,
            number,
            name: &session.name,
            email: c.email.as_deref(),
            page: c.page.as_deref(),
            referrer: c.referrer.as_deref(),
            browser: c.browser.as_deref(),
            time: c.last_seen,
        };
        record.to_json()
    }

    /// The visitor's earlier conversations still in memory (besides
    /// `conv`), newest first, at most [`super::MAX_PREVIOUS`].
    pub(super) fn previous(&self, conv: &Conversation) -> Vec<&Conversation> {
        let Some(session) = self.sessions.get(&conv.session) else {
            return Vec::new();
        };
        session
            .history
            .iter()
            .rev()
            .filter(|&&id| id != conv.id)
            .filter_map(|id| self.conversations.get(id))
            .take(super::MAX_PREVIOUS)
            .collect()
    }

    /// The `visitor` message: conversation `conv`'s visitor, its contact
    /// and its earlier conversations with their transcripts.
    fn visitor_json(&self, conv: &Conversation) -> String {
        let previous: Vec<PreviousView> = self
            .previous(conv)
            .into_iter()
            .map(|c| PreviousView {
                conversation: c.id,
                opened: c.opened,
                state: match &c.state {
                    ConversationState::Queued => "queued",
                    ConversationState::Assigned(_) => "assigned",
                    ConversationState::Resolved if c.abandoned => "abandoned",
                    ConversationState::Resolved => "resolved",
                },
                agent: match &c.state {
                    ConversationState::Assigned(a) => Some(a.as_str()),
                    _ => c.resolved_by.as_deref(),
                },
                rating: c.rating,
                comment: c.comment.as_deref(),
                earlier: (c.earlier > 0).then_some(c.earlier),
                messages: StoredList(&c.messages),
            })
            .collect();
        Message::Visitor {
            conversation: conv.id,
            visitor: &conv.visitor,
            sub: conv.sub.as_deref(),
            contact: self.sessions.get(&conv.session).map(|s| &s.contact),
            previous: &previous,
        }
        .to_json()
    }

    /// `contact` from a visitor (the pre-chat form): its name and e-mail.
    fn visitor_contact(
        &mut self,
        ctx: &mut Ctx,
        key: &str,
        name: Option<String>,
        email: Option<String>,
    ) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        if let Some(name) = name {
            session.name = name;
        }
        if let Some(email) = email {
            session.contact.email = Some(email);
        }
        self.recount_session(key);
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        let reply = Message::Contact {
            name: &session.name,
            email: session.contact.email.as_deref(),
        }
        .to_json();
        let conns: Vec<ConnId> = session.conns.iter().copied().collect();
        let record = self.contact_record(ctx, key, None);
        Desk::record(ctx, record);
        ctx.broadcast(conns, &Ctx::json_frame(&reply));
    }

    /// `end` from a visitor: its open conversation is resolved (it may
    /// then rate it); its agent and the supervisors are told.
    fn visitor_end(&mut self, ctx: &mut Ctx, conn: ConnId, cid: Option<u64>) {
        let Some(cid) = cid else {
            return error(
                ctx,
                conn,
                "not_open",
                "there is no open conversation to end",
            );
        };
        let agent = match &self.conversations[&cid].state {
            ConversationState::Assigned(a) => Some(a.clone()),
            _ => None,
        };
        let id = ctx.log().take_id();
        Desk::record(
            ctx,
            Entry::DeskResolved {
                id,
                conversation: cid,
                agent: Some(agent.as_deref()),
                by: "visitor",
                time: now_ms(),
            }
            .to_json(),
        );
        self.queue.retain(|&c| c != cid);
        self.mark_resolved(cid);
        let msg = Message::Resolved {
            conversation: cid,
            by: Some("visitor"),
        }
        .to_json();
        let mut to = self.visitor_conns(&self.conversations[&cid]);
        if let Some(agent) = &agent {
            to.extend(self.agent_conns(agent));
        }
        to.extend(self.supervisor_conns(agent.as_deref()));
        ctx.broadcast(to, &Ctx::json_frame(&msg));
        self.webhooks.emit(Event::ConversationResolved {
            conversation: cid,
            agent: agent.as_deref(),
            by: Some("visitor"),
        });
        self.dirty = true;
    }

    /// Store a message of conversation `cid` and send it to its visitor and
    /// its agent: nobody else.
    pub(super) fn post(
        &mut self,
        ctx: &mut Ctx,
        sender: ConnId,
        cid: u64,
        (from, name): (&str, &str),
        text: &str,
    ) {
        let id = ctx.log().take_id();
        let rec = Desk::record_message(
            ctx,
            Entry::DeskMessage {
                id,
                conversation: cid,
                from,
                name,
                bot: false,
                text,
                time: now_ms(),
            }
            .to_json(),
        );
        self.webhooks.emit(Event::MessageCreated {
            conversation: cid,
            id,
            from,
            name,
            text,
        });
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        conv.add_message(rec.clone(), self.config.keep_messages, &self.budget);
        self.trim();
        let conv = &self.conversations[&cid];
        let mut to = self.visitor_conns(conv);
        if let ConversationState::Assigned(agent) = &conv.state {
            to.extend(self.agent_conns(agent));
            to.extend(self.supervisor_conns(Some(agent)));
        }
        ctx.publish(id, Some(sender), to, &Ctx::json_frame(&rec));
    }

    pub(super) fn agent_auth(&mut self, ctx: &mut Ctx, conn: ConnId, addr: String, text: &str) {
        let token = parse(text).ok().and_then(|b| {
            (b.get("type").and_then(Value::as_str) == Some("auth"))
                .then(|| b.get("token").and_then(Value::as_str).map(String::from))
                .flatten()
        });
        self.read_shared_accounts(ctx);
        let accounts = self.accounts();
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
        let (capacity, role) = self.account_settings(&accounts, &name);
        let agent = self
            .agents
            .entry(name.clone())
            .or_insert_with(|| Agent::new(capacity, role));
        agent.capacity = capacity;
        agent.role = role;
        agent.conns.insert(conn);
        if agent.gone_since.take().is_some() {
            self.tell_agent_status(ctx, &name, true);
        }
        let agent = &self.agents[&name];
        let status = if agent.away { "away" } else { "online" };
        let ready = Message::Ready {
            agent: &name,
            status,
            capacity: agent.capacity,
            role: agent.role.name(),
        }
        .to_json();
        ctx.send_json(conn, &ready);
        ctx.send_json(conn, &self.open_conversations_json(&name));
        ctx.send_json(conn, &self.queue_json());
        ctx.send_json(conn, &self.agents_json());
        ctx.send_json(conn, &self.canned_json());
        self.dirty = true;
    }

    /// Tell the visitors of `agent`'s conversations that the agent went
    /// offline (grace period running) or came back.
    pub(super) fn tell_agent_status(&self, ctx: &mut Ctx, agent: &str, online: bool) {
        for conv in self.conversations.values() {
            if matches!(&conv.state, ConversationState::Assigned(a) if a == agent) {
                let msg = Message::AgentStatus {
                    conversation: conv.id,
                    agent,
                    online,
                }
                .to_json();
                ctx.broadcast(self.visitor_conns(conv), &Ctx::json_frame(&msg));
            }
        }
    }

    pub(super) fn agent_text(&mut self, ctx: &mut Ctx, conn: ConnId, name: String, text: String) {
        let command = match parse_agent(&text, self.limits()) {
            Ok(command) => command,
            Err(e) => {
                ctx.send_json(conn, &e.to_json());
                return;
            }
        };
        let cid = match command {
            AgentCommand::Presence { away } => {
                if let Some(a) = self.agents.get_mut(&name) {
                    a.away = away;
                }
                let msg = Message::Presence {
                    status: if away { "away" } else { "online" },
                }
                .to_json();
                ctx.broadcast(self.agent_conns(&name), &Ctx::json_frame(&msg));
                self.dirty = true;
                return;
            }
            AgentCommand::Claim { conversation } => {
                return self.claim(ctx, conn, &name, conversation);
            }
            AgentCommand::Reassign {
                conversation,
                to,
                note,
            } => return self.reassign(ctx, conn, &name, conversation, to, &note),
            AgentCommand::CannedAdd { shortcut, text } => {
                return self.canned_change(ctx, conn, &name, &shortcut, Some(&text));
            }
            AgentCommand::CannedRemove { shortcut } => {
                return self.canned_change(ctx, conn, &name, &shortcut, None);
            }
            AgentCommand::Visitor { conversation } => {
                // Its own conversations, a waiting one, or (a supervisor) any.
                let supervisor = self.is_supervisor(&name);
                let conv = conversation
                    .and_then(|c| self.conversations.get(&c))
                    .filter(|c| {
                        supervisor
                            || c.state == ConversationState::Queued
                            || c.state == ConversationState::Assigned(name.clone())
                    });
                let Some(conv) = conv else {
                    return error(
                        ctx,
                        conn,
                        "not_yours",
                        "that conversation is not assigned to you",
                    );
                };
                let text = self.visitor_json(conv);
                ctx.send_json(conn, &text);
                return;
            }
            AgentCommand::Message { conversation, .. }
            | AgentCommand::Typing { conversation, .. }
            | AgentCommand::Transfer { conversation, .. }
            | AgentCommand::Resolve { conversation } => conversation,
        };
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
        match command {
            AgentCommand::Message { text, .. } => {
                self.post(ctx, conn, cid, ("agent", &name), &text);
            }
            AgentCommand::Typing { active, .. } => {
                let msg = Message::Typing {
                    conversation: cid,
                    from: "agent",
                    active,
                }
                .to_json();
                let to = self.visitor_conns(&self.conversations[&cid]);
                ctx.broadcast(to, &Ctx::json_frame(&msg));
            }
            AgentCommand::Resolve { .. } => {
                let id = ctx.log().take_id();
                Desk::record(
                    ctx,
                    Entry::DeskResolved {
                        id,
                        conversation: cid,
                        agent: Some(Some(&name)),
                        by: "agent",
                        time: now_ms(),
                    }
                    .to_json(),
                );
                self.webhooks.emit(Event::ConversationResolved {
                    conversation: cid,
                    agent: Some(&name),
                    by: None,
                });
                self.mark_resolved(cid);
                let msg = Message::Resolved {
                    conversation: cid,
                    by: None,
                }
                .to_json();
                let conv = &self.conversations[&cid];
                let mut to = self.visitor_conns(conv);
                to.extend(self.agent_conns(&name));
                to.extend(self.supervisor_conns(Some(&name)));
                ctx.broadcast(to, &Ctx::json_frame(&msg));
                self.dirty = true;
            }
            AgentCommand::Transfer { to, note, .. } => {
                self.transfer(ctx, conn, &name, cid, to, &note);
            }
            // Answered above.
            AgentCommand::Presence { .. }
            | AgentCommand::Claim { .. }
            | AgentCommand::Reassign { .. }
            | AgentCommand::CannedAdd { .. }
            | AgentCommand::CannedRemove { .. }
            | AgentCommand::Visitor { .. } => {}
        }
    }

    pub(super) fn transfer(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        from: &str,
        cid: u64,
        target: Option<String>,
        note: &str,
    ) {
        match target {
            None => {
                self.webhooks.emit(Event::ConversationTransferred {
                    conversation: cid,
                    from,
                    to: None,
                    note,
                    by: None,
                });
                self.requeue(ctx, cid, "transferred");
                self.tell_unassigned(ctx, cid, from, None);
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
                if self.load(&to) >= self.capacity(&to) {
                    return error(
                        ctx,
                        conn,
                        "agent_full",
                        format!("{to} has no free capacity"),
                    );
                }
                self.webhooks.emit(Event::ConversationTransferred {
                    conversation: cid,
                    from,
                    to: Some(&to),
                    note,
                    by: None,
                });
                self.tell_unassigned(ctx, cid, from, Some(&to));
                self.assign(ctx, cid, &to, Some((from, note)));
            }
        }
    }

    /// Tell agent `from` (and the supervisors) that conversation `cid` is
    /// no longer theirs: it went `to` another agent, or (`None`) back to
    /// the queue.
    fn tell_unassigned(&self, ctx: &mut Ctx, cid: u64, from: &str, to: Option<&str>) {
        let msg = Message::Unassigned {
            conversation: cid,
            agent: from,
            to,
        }
        .to_json();
        let mut conns = self.agent_conns(from);
        conns.extend(self.supervisor_conns(Some(from)));
        ctx.broadcast(conns, &Ctx::json_frame(&msg));
    }

    /// `claim`: agent `name` takes a conversation waiting in the queue,
    /// whatever its place, if it has room (a supervisor always has).
    fn claim(&mut self, ctx: &mut Ctx, conn: ConnId, name: &str, cid: Option<u64>) {
        let Some(cid) = cid.filter(|c| {
            self.conversations
                .get(c)
                .is_some_and(|c| c.state == ConversationState::Queued)
        }) else {
            return error(
                ctx,
                conn,
                "not_queued",
                "that conversation is not waiting in the queue",
            );
        };
        if !self.is_supervisor(name) && self.load(name) >= self.capacity(name) {
            return error(
                ctx,
                conn,
                "agent_full",
                format!("{name} has no free capacity"),
            );
        }
        log::info!("desk: agent {name} claimed conversation {cid}");
        self.assign(ctx, cid, name, None);
    }

    /// `reassign` (supervisors only): give any open or waiting conversation
    /// to an agent who is signed in (the supervisor itself: taking it
    /// over), beyond that agent's capacity if need be, or (`"to":null`) put
    /// it back in the queue.
    fn reassign(
        &mut self,
        ctx: &mut Ctx,
        conn: ConnId,
        name: &str,
        cid: Option<u64>,
        to: Option<String>,
        note: &str,
    ) {
        if !self.is_supervisor(name) {
            return error(
                ctx,
                conn,
                "forbidden",
                "only a supervisor may reassign a conversation",
            );
        }
        let state = cid
            .and_then(|c| self.conversations.get(&c))
            .map(|c| c.state.clone());
        let (Some(cid), Some(state)) = (cid, state) else {
            return error(ctx, conn, "not_found", "there is no such conversation");
        };
        if state == ConversationState::Resolved {
            return error(ctx, conn, "resolved", "that conversation is resolved");
        }
        let previous = match &state {
            ConversationState::Assigned(a) => Some(a.clone()),
            _ => None,
        };
        match to {
            None => {
                if let Some(prev) = previous {
                    self.webhooks.emit(Event::ConversationTransferred {
                        conversation: cid,
                        from: &prev,
                        to: None,
                        note,
                        by: Some(name),
                    });
                    self.requeue(ctx, cid, "reassigned");
                    self.tell_unassigned(ctx, cid, &prev, None);
                }
            }
            Some(to) => {
                let to = to.as_str();
                if self.agents.get(to).is_none_or(|a| a.conns.is_empty()) {
                    return error(
                        ctx,
                        conn,
                        "agent_unavailable",
                        format!("{to} is not online"),
                    );
                }
                if previous.as_deref() == Some(to) {
                    return error(
                        ctx,
                        conn,
                        "agent_unavailable",
                        format!("the conversation is {to}'s already"),
                    );
                }
                log::info!("desk: supervisor {name} gave conversation {cid} to {to}");
                match previous {
                    Some(prev) => {
                        self.webhooks.emit(Event::ConversationTransferred {
                            conversation: cid,
                            from: &prev,
                            to: Some(to),
                            note,
                            by: Some(name),
                        });
                        self.tell_unassigned(ctx, cid, &prev, Some(to));
                        self.assign(ctx, cid, to, Some((&prev, note)));
                    }
                    None => self.assign(ctx, cid, to, None),
                }
            }
        }
    }
}

/// What the widget tells of a visitor when it connects: the page it was
/// opened from and its referrer (`?page=`, `?referrer=`), the browser
/// (`User-Agent`) and the interface language (`?lang=`).
#[derive(Debug, Default, Clone)]
pub(super) struct Arrival {
    page: Option<String>,
    referrer: Option<String>,
    browser: Option<String>,
    english: bool,
}

impl Arrival {
    fn of(info: &ConnInfo) -> Arrival {
        let q = |k: &str| {
            info.request
                .query_param(k)
                .map(|v| cut(v.trim(), super::MAX_URL_BYTES))
                .filter(|v| !v.is_empty())
        };
        Arrival {
            page: q("page"),
            referrer: q("referrer"),
            browser: info
                .request
                .header("User-Agent")
                .map(|b| cut(b.trim(), super::MAX_BROWSER_BYTES))
                .filter(|b| !b.is_empty()),
            english: info
                .request
                .query_param("lang")
                .is_some_and(|l| !l.trim().to_ascii_lowercase().starts_with("zh")),
        }
    }

    /// The name of the `n`th visitor of the data directory, in the
    /// widget's language (Chinese unless it says otherwise).
    fn default_name(&self, n: u64) -> String {
        if self.english {
            format!("Visitor {n}")
        } else {
            format!("访客{n}")
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// How a visitor says who it is.
enum VisitorId {
    /// The widget's session token, if it has one.
    Session(Option<String>),
    /// A verified token from the site.
    Verified(crate::auth::Claims),
}
