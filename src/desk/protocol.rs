//! The desk's protocol: what visitors and agents send and are sent, agent
//! sign-in and accounts, transfers (docs/customer-service.md).

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{Map, Value};

use super::model::{Agent, Conversation, ConversationState, Participant, Session};
use super::wire::{AgentRow, ConversationView, Entry, Message, QueueRow};
use super::{AUTH_FAILED, Desk, MAX_NOTE_CHARS, RATINGS, agents};
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
pub(super) fn parse(text: &str) -> Result<Map<String, Value>, ErrorReply> {
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

impl Desk {
    /// When `agents.json` changed since the last look, sign out every agent
    /// whose account is gone (`wschat agent remove`): their consoles are
    /// closed with 4001 and their conversations go back to the queue.
    /// Called every tick: one `stat` of the file.
    pub(super) fn check_accounts(&mut self, ctx: &mut Ctx) {
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
            let requeued = self.drop_agent(ctx, &name, "agent_removed");
            log::info!(
                "desk: agent {name} was removed: signed out, {requeued} conversations re-queued"
            );
        }
    }

    /// A conversation as an agent sees it, with its transcript (and, in a
    /// transfer, the agent it came `from` and the note).
    pub(super) fn conversation_view<'a>(
        &self,
        conv: &'a Conversation,
        from: Option<(&'a str, &'a str)>,
    ) -> ConversationView<'a> {
        ConversationView {
            conversation: conv.id,
            visitor: &conv.visitor,
            sub: conv.sub.as_deref(),
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
        if let Some(token) = info.request.query_param("token") {
            match self.verify(&token) {
                Ok(claims) => self.visitor_arrive(ctx, conn, VisitorId::Verified(claims), asked),
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
                },
            );
            return;
        }
        let presented = info
            .request
            .query_param("session")
            .filter(|t| !t.is_empty() && t.len() <= 128);
        self.visitor_arrive(ctx, conn, VisitorId::Session(presented), asked);
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
        name: Option<String>,
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
            Ok(claims) => self.visitor_arrive(ctx, conn, VisitorId::Verified(claims), name),
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
            self.sessions.remove(key);
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
    ) {
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
                (None, key, Some(claims.sub), name)
            }
        };
        let asked = fixed_name.or(asked);
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
        if sub.is_some() {
            session.sub = sub.clone();
        }
        let was_offline = session.conns.is_empty();
        session.conns.insert(conn);
        let name = session.name.clone();
        let current = session.conversation;
        self.conns.insert(conn, Participant::Visitor(key));
        let welcome = match (&token, &sub) {
            (_, Some(sub)) => Message::WelcomeVerified {
                name: &name,
                sub,
                verified: true,
                resumed: !fresh,
                conversation: current,
            },
            (token, None) => Message::Welcome {
                session: token.as_deref(),
                name: &name,
                resumed: !fresh,
                conversation: current,
            },
        }
        .to_json();
        ctx.send_json(conn, &welcome);
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
        let body = match parse(&text) {
            Ok(body) => body,
            Err(e) => {
                ctx.send_json(conn, &e.to_json());
                return;
            }
        };
        let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "auth" {
            // Signing in after arriving anonymously: the connection becomes
            // the verified visitor (a new welcome says so).
            let token = body.get("token").and_then(Value::as_str).unwrap_or("");
            match self.verify(token) {
                Ok(claims) => {
                    self.conns.remove(&conn);
                    self.visitor_left(ctx, conn, &key);
                    self.visitor_arrive(ctx, conn, VisitorId::Verified(claims), None);
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
                        let cid = ctx.log().take_id();
                        let name = self.sessions[&key].name.clone();
                        let sub = self.sessions[&key].sub.clone();
                        let time = now_ms();
                        let rec = Entry::DeskOpened {
                            id: cid,
                            conversation: cid,
                            session: &key,
                            visitor: &name,
                            sub: sub.as_deref(),
                            time,
                        };
                        Desk::record(ctx, rec.to_json());
                        self.webhooks.emit(Event::ConversationCreated {
                            conversation: cid,
                            visitor: &name,
                            sub: sub.as_deref(),
                        });
                        self.open_conversation(cid, key.clone(), (name, sub), time);
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
                    let msg = Message::Typing {
                        conversation: conv.id,
                        from: "visitor",
                        active,
                    }
                    .to_json();
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
                let id = ctx.log().take_id();
                Desk::record(
                    ctx,
                    Entry::DeskRated {
                        id,
                        conversation: cid,
                        rating,
                        time: now_ms(),
                    }
                    .to_json(),
                );
                self.webhooks.emit(Event::ConversationRated {
                    conversation: cid,
                    stars: rating,
                });
                if let Some(conv) = self.conversations.get_mut(&cid) {
                    conv.rating = Some(rating);
                }
                let msg = Message::Rated {
                    conversation: cid,
                    rating,
                }
                .to_json();
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
    pub(super) fn message_text(
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
        }
        ctx.publish(id, Some(sender), to, &Ctx::json_frame(&rec));
    }

    pub(super) fn agent_auth(&mut self, ctx: &mut Ctx, conn: ConnId, addr: String, text: &str) {
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
        let ready = Message::Ready {
            agent: &name,
            status,
            capacity: self.config.capacity,
        };
        ctx.send_json(conn, &ready.to_json());
        let mine: Vec<Message> = self
            .conversations
            .values()
            .filter(|c| matches!(&c.state, ConversationState::Assigned(a) if *a == name))
            .map(|c| Message::Conversation(self.conversation_view(c, None)))
            .collect();
        let mine = Message::Conversations {
            conversations: &mine,
        };
        ctx.send_json(conn, &mine.to_json());
        ctx.send_json(conn, &self.queue_json());
        ctx.send_json(conn, &self.agents_json());
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
            let msg = Message::Presence {
                status: if away { "away" } else { "online" },
            }
            .to_json();
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
                let msg = Message::Typing {
                    conversation: cid,
                    from: "agent",
                    active,
                }
                .to_json();
                let to = self.visitor_conns(&self.conversations[&cid]);
                ctx.broadcast(to, &Ctx::json_frame(&msg));
            }
            "resolve" => {
                let id = ctx.log().take_id();
                Desk::record(
                    ctx,
                    Entry::DeskResolved {
                        id,
                        conversation: cid,
                        agent: Some(&name),
                        time: now_ms(),
                    }
                    .to_json(),
                );
                self.webhooks.emit(Event::ConversationResolved {
                    conversation: cid,
                    agent: Some(&name),
                });
                self.mark_resolved(cid);
                let msg = Message::Resolved { conversation: cid }.to_json();
                let conv = &self.conversations[&cid];
                let mut to = self.visitor_conns(conv);
                to.extend(self.agent_conns(&name));
                ctx.broadcast(to, &Ctx::json_frame(&msg));
                self.dirty = true;
            }
            _ => self.transfer(ctx, conn, &name, cid, &body),
        }
    }

    pub(super) fn transfer(
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
        let unassigned = |to: Option<&str>| {
            Message::Unassigned {
                conversation: cid,
                to,
            }
            .to_json()
        };
        match target {
            None => {
                self.webhooks.emit(Event::ConversationTransferred {
                    conversation: cid,
                    from,
                    to: None,
                    note: &note,
                });
                self.requeue(ctx, cid, "transferred");
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
                self.webhooks.emit(Event::ConversationTransferred {
                    conversation: cid,
                    from,
                    to: Some(&to),
                    note: &note,
                });
                let frame = Ctx::json_frame(&unassigned(Some(to.as_str())));
                ctx.broadcast(self.agent_conns(from), &frame);
                self.assign(ctx, cid, &to, Some((from, &note)));
            }
        }
    }
}

/// How a visitor says who it is.
enum VisitorId {
    /// The widget's session token, if it has one.
    Session(Option<String>),
    /// A verified token from the site.
    Verified(crate::auth::Claims),
}
