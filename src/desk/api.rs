//! The desk's endpoints of the HTTP API (docs/api.md): list conversations
//! by state, read one with its messages, reply as a bot, resolve.
//!
//! A bot's reply is a `desk_message` with `"from":"bot"`, the bot's
//! `name` and `"bot":true`, stored and delivered like an agent's (to the
//! visitor and the assigned agent, only once it is in the log).

use serde_json::{Map, Value, json};

use super::Desk;
use super::model::{Conversation, ConversationState};
use super::wire::{Entry, Message};
use crate::chat::wire::StoredList;
use crate::clock::now_ms;
use crate::hub::Ctx;
use crate::hub::api::{ApiRequest, ApiResponse, string_field};

/// The desk's API routes: method and path (`{…}` stands for a segment).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/desk/conversations"),
    ("GET", "/api/desk/conversations/{id}"),
    ("POST", "/api/desk/conversations/{id}/messages"),
    ("POST", "/api/desk/conversations/{id}/resolve"),
];

/// The name of a bot when the request names none.
pub const DEFAULT_BOT_NAME: &str = "bot";

/// A conversation's state as the API names it.
fn state_name(state: &ConversationState) -> &'static str {
    match state {
        ConversationState::Queued => "queued",
        ConversationState::Assigned(_) => "open",
        ConversationState::Resolved => "resolved",
    }
}

/// A conversation as the HTTP API lists it, fields in wire order.
#[derive(serde::Serialize)]
struct Summary<'a> {
    id: u64,
    state: &'static str,
    visitor: Value,
    agent: Option<&'a str>,
    opened: u64,
    waiting_since: u64,
    rating: Option<u64>,
    message_count: usize,
}

/// A conversation with the messages kept in memory, fields in wire order.
#[derive(serde::Serialize)]
struct Detail<'a> {
    #[serde(flatten)]
    summary: Summary<'a>,
    earlier: usize,
    messages: StoredList<'a>,
}

impl Desk {
    /// Answer an API request under `/api/desk/`.
    pub(super) fn api_request(&mut self, ctx: &mut Ctx, request: &ApiRequest) -> ApiResponse {
        let segments = request.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let result = match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["desk", "conversations"]) => self.api_list(request),
            ("GET", ["desk", "conversations", id]) => self
                .api_conversation(id)
                .map(|c| ApiResponse::ok(self.detail(c))),
            ("POST", ["desk", "conversations", id, "messages"]) => self
                .api_conversation(id)
                .map(|c| c.id)
                .and_then(|cid| Ok((cid, request.json()?)))
                .and_then(|(cid, body)| self.api_reply(ctx, cid, &body)),
            ("POST", ["desk", "conversations", id, "resolve"]) => self
                .api_conversation(id)
                .map(|c| c.id)
                .and_then(|cid| self.api_resolve(ctx, cid)),
            (_, ["desk", "conversations"])
            | (_, ["desk", "conversations", _])
            | (_, ["desk", "conversations", _, "messages" | "resolve"]) => Err(ApiResponse::error(
                405,
                "method_not_allowed",
                format!("{} is not allowed on {}", request.method, request.path),
            )),
            _ => Err(ApiResponse::no_route(request)),
        };
        result.unwrap_or_else(|e| e)
    }

    /// The conversation a path segment names; 400 or 404.
    fn api_conversation(&self, id: &str) -> Result<&Conversation, ApiResponse> {
        let id = id
            .parse::<u64>()
            .map_err(|_| ApiResponse::bad_request("a conversation id is a whole number"))?;
        self.conversations.get(&id).ok_or_else(|| {
            ApiResponse::error(
                404,
                "unknown_conversation",
                format!("no conversation with id {id}"),
            )
        })
    }

    /// A conversation's summary: id, state, visitor, agent, times.
    fn summary<'a>(&self, conv: &'a Conversation) -> Summary<'a> {
        let mut visitor = json!({"name": conv.visitor, "online": self.visitor_online(conv)});
        if let Some(sub) = &conv.sub {
            visitor["sub"] = json!(sub);
        }
        let agent = match &conv.state {
            ConversationState::Assigned(name) => Some(name.as_str()),
            _ => None,
        };
        Summary {
            id: conv.id,
            state: state_name(&conv.state),
            visitor,
            agent,
            opened: conv.opened,
            waiting_since: conv.queued_at,
            rating: conv.rating,
            message_count: conv.earlier + conv.messages.len(),
        }
    }

    /// A conversation with the messages kept in memory (`earlier`: how
    /// many older ones are in the log only).
    fn detail(&self, conv: &Conversation) -> String {
        let detail = Detail {
            summary: self.summary(conv),
            earlier: conv.earlier,
            messages: StoredList(&conv.messages),
        };
        serde_json::to_string(&detail).unwrap_or_default()
    }

    /// `GET /api/desk/conversations?state=queued|open|resolved`.
    fn api_list(&self, request: &ApiRequest) -> Result<ApiResponse, ApiResponse> {
        let wanted = match request.query_param("state").as_deref() {
            None | Some("") => None,
            Some(s @ ("queued" | "open" | "resolved")) => Some(s.to_string()),
            Some(_) => {
                return Err(ApiResponse::bad_request(
                    "state is queued, open or resolved",
                ));
            }
        };
        let conversations: Vec<Summary> = self
            .conversations
            .values()
            .filter(|c| wanted.as_deref().is_none_or(|w| w == state_name(&c.state)))
            .map(|c| self.summary(c))
            .collect();
        // A struct, not `json!`, which would sort each summary's fields.
        #[derive(serde::Serialize)]
        struct List<'a> {
            conversations: Vec<Summary<'a>>,
        }
        let body = serde_json::to_string(&List { conversations }).unwrap_or_default();
        Ok(ApiResponse::ok(body))
    }

    /// `POST /api/desk/conversations/ID/messages {"text","name"}`.
    fn api_reply(
        &mut self,
        ctx: &mut Ctx,
        cid: u64,
        body: &Map<String, Value>,
    ) -> Result<ApiResponse, ApiResponse> {
        let text = string_field(body, "text")?
            .ok_or_else(|| ApiResponse::bad_request("a reply needs \"text\""))?;
        if text.trim().is_empty() {
            return Err(ApiResponse::error(400, "empty", "the message is empty"));
        }
        if text.len() > self.config.max_text_bytes {
            return Err(ApiResponse::error(
                400,
                "text_too_long",
                format!("a message has at most {} bytes", self.config.max_text_bytes),
            ));
        }
        let name = match string_field(body, "name")? {
            None => DEFAULT_BOT_NAME.to_string(),
            Some(n) => {
                crate::chat::valid_name(&n).map_err(|m| ApiResponse::error(400, "bad_name", m))?
            }
        };
        if self.conversations[&cid].state == ConversationState::Resolved {
            return Err(ApiResponse::error(
                409,
                "resolved",
                "the conversation is resolved",
            ));
        }
        let id = ctx.log().take_id();
        let rec = Desk::record_message(
            ctx,
            Entry::DeskMessage {
                id,
                conversation: cid,
                from: "bot",
                name: &name,
                bot: true,
                text: &text,
                time: now_ms(),
            }
            .to_json(),
        );
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return Err(ApiResponse::error(404, "unknown_conversation", "gone"));
        };
        conv.add_message(rec.clone(), self.config.keep_messages, &self.budget);
        self.trim();
        let mut to = Vec::new();
        if let Some(conv) = self.conversations.get(&cid) {
            to = self.visitor_conns(conv);
            if let ConversationState::Assigned(agent) = &conv.state {
                to.extend(self.agent_conns(agent));
            }
        }
        ctx.publish(id, None, to, &Ctx::json_frame(&rec));
        Ok(ApiResponse::ok(json!({ "id": id }).to_string()))
    }

    /// `POST /api/desk/conversations/ID/resolve`.
    fn api_resolve(&mut self, ctx: &mut Ctx, cid: u64) -> Result<ApiResponse, ApiResponse> {
        let agent = match &self.conversations[&cid].state {
            ConversationState::Resolved => {
                return Err(ApiResponse::error(
                    409,
                    "resolved",
                    "the conversation is resolved already",
                ));
            }
            ConversationState::Assigned(name) => Some(name.clone()),
            ConversationState::Queued => None,
        };
        let id = ctx.log().take_id();
        Desk::record(
            ctx,
            Entry::DeskResolved {
                id,
                conversation: cid,
                agent: Some(agent.as_deref()),
                by: "api",
                time: now_ms(),
            }
            .to_json(),
        );
        self.queue.retain(|&c| c != cid);
        self.mark_resolved(cid);
        let msg = Message::Resolved {
            conversation: cid,
            by: None,
        }
        .to_json();
        let mut to = Vec::new();
        if let Some(conv) = self.conversations.get(&cid) {
            to = self.visitor_conns(conv);
        }
        if let Some(agent) = &agent {
            to.extend(self.agent_conns(agent));
        }
        ctx.broadcast(to, &Ctx::json_frame(&msg));
        self.dirty = true;
        Ok(ApiResponse::ok(
            json!({"id": cid, "state": "resolved"}).to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The HTTP API's conversation bodies are byte for byte what
    /// `json::Object` wrote before they were typed.
    #[test]
    fn summaries_and_details_keep_their_field_order() {
        let stored: Vec<Arc<str>> = vec![r#"{"type":"desk_message","id":3}"#.into()];
        let summary = || Summary {
            id: 2,
            state: "open",
            visitor: json!({"name": "v", "online": true, "sub": "s"}),
            agent: Some("a"),
            opened: 5,
            waiting_since: 6,
            rating: None,
            message_count: 9,
        };
        let written = || {
            crate::json::Object::new()
                .field("id", 2)
                .field("state", "open")
                .field("visitor", json!({"name": "v", "online": true, "sub": "s"}))
                .field("agent", Some("a"))
                .field("opened", 5)
                .field("waiting_since", 6)
                .field("rating", None::<u64>)
                .field("message_count", 9)
        };
        let detail = Detail {
            summary: summary(),
            earlier: 1,
            messages: StoredList(&stored),
        };
        assert_eq!(
            serde_json::to_string(&detail).unwrap(),
            written()
                .field("earlier", 1)
                .json_list("messages", &stored)
                .finish()
        );
        assert_eq!(
            serde_json::to_string(&summary()).unwrap(),
            written().finish()
        );
    }
}
