//! The chat's endpoints of the HTTP API (docs/api.md): publish to a room
//! as a bot, rooms and their members, history pages, a private message to
//! a user by id or `sub`, kick, ban and delete.
//!
//! What the API sends is stored and delivered exactly as what a user sends
//! ([`Ctx::publish`]): nobody receives it before it is in the log, and if
//! the log refuses it the request is answered 503 `unavailable`.

use serde_json::{Map, Value, json};

use super::identity::{self, UserId};
use super::wire::{Message, StoredList};
use super::{Chat, ErrorReply, HISTORY_LEN, MAX_HISTORY_PAGE, valid_name};
use crate::clock::now_ms;
use crate::hub::Ctx;
use crate::hub::api::{ApiRequest, ApiResponse, number_field, string_field};
use crate::hub::log::Record;

/// The user id of a bot (a message sent through the API): never a real
/// user's, whose ids start at 1. Its `user` is
/// `{"id":0,"name":NAME,"bot":true}`.
pub const BOT_USER_ID: UserId = 0;

/// The name of a bot when the request names none.
pub const DEFAULT_BOT_NAME: &str = "system";

/// Longest `sub` the API takes, in bytes.
pub const MAX_SUB_BYTES: usize = 256;

/// The chat's API routes: method and path (`{…}` stands for a segment).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/publish"),
    ("GET", "/api/rooms"),
    ("GET", "/api/rooms/{room}/members"),
    ("GET", "/api/rooms/{room}/history"),
    ("POST", "/api/private"),
    ("POST", "/api/kick"),
    ("POST", "/api/ban"),
    ("DELETE", "/api/messages/{id}"),
];

/// `{"id":0,"name":NAME,"bot":true}`: how messages name a bot.
pub fn bot_ref(name: &str) -> Value {
    json!({"id": BOT_USER_ID, "name": name, "bot": true})
}

/// An app's refusal as an API answer: 404 for something unknown, 400 for
/// the rest, with the same code.
pub fn refusal(e: ErrorReply) -> ApiResponse {
    let status = if e.code.starts_with("unknown_") {
        404
    } else {
        400
    };
    ApiResponse::error(status, e.code, e.message)
}

/// The bot's name of a request body: `name`, or [`DEFAULT_BOT_NAME`].
fn bot_name(body: &Map<String, Value>) -> Result<String, ApiResponse> {
    match string_field(body, "name")? {
        None => Ok(DEFAULT_BOT_NAME.to_string()),
        Some(name) => valid_name(&name).map_err(|m| ApiResponse::error(400, "bad_name", m)),
    }
}

/// A room name from a path or a body, checked; 400 `bad_room`.
fn room_name(name: &str) -> Result<String, ApiResponse> {
    valid_name(name)
        .map_err(|m| ApiResponse::error(400, "bad_room", m.replace("name", "room name")))
}

/// `{"id":ID}`.
fn id_answer(id: u64) -> ApiResponse {
    ApiResponse::ok(json!({ "id": id }).to_string())
}

/// The body of `GET /api/rooms/R/members`, fields in wire order.
#[derive(serde::Serialize)]
struct Members<'a> {
    room: &'a str,
    count: usize,
    members: &'a [Value],
}

/// The body of `GET /api/rooms/R/history`, fields in wire order.
#[derive(serde::Serialize)]
struct History<'a> {
    room: &'a str,
    before: Option<u64>,
    complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<u64>,
    messages: StoredList<'a>,
}

impl Chat {
    /// Answer an API request the router gave the chat.
    pub(super) fn api_request(&mut self, ctx: &mut Ctx, request: &ApiRequest) -> ApiResponse {
        let segments = request.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let result = match (request.method.as_str(), segments.as_slice()) {
            ("POST", ["publish"]) => request.json().and_then(|b| self.api_publish(ctx, &b)),
            ("GET", ["rooms"]) => Ok(self.api_rooms()),
            ("GET", ["rooms", room, "members"]) => self.api_members(room),
            ("GET", ["rooms", room, "history"]) => self.api_history(ctx, room, request),
            ("POST", ["private"]) => request.json().and_then(|b| self.api_private(ctx, &b)),
            ("POST", ["kick"]) => request.json().and_then(|b| self.api_kick(ctx, &b)),
            ("POST", ["ban"]) => request.json().and_then(|b| self.api_ban(ctx, &b)),
            ("DELETE", ["messages", id]) => match id.parse::<u64>() {
                Ok(id) => self
                    .delete(ctx, id)
                    .map(|()| ApiResponse::ok(json!({ "deleted": id }).to_string()))
                    .map_err(refusal),
                Err(_) => Err(ApiResponse::bad_request("a message id is a whole number")),
            },
            (_, ["publish" | "private" | "kick" | "ban"])
            | (_, ["rooms"])
            | (_, ["rooms", _, "members" | "history"])
            | (_, ["messages", _]) => Err(ApiResponse::error(
                405,
                "method_not_allowed",
                format!("{} is not allowed on {}", request.method, request.path),
            )),
            _ => Err(ApiResponse::no_route(request)),
        };
        result.unwrap_or_else(|e| e)
    }

    /// Whether `room` is a room: open now, or with stored messages.
    fn room_known(&self, ctx: &mut Ctx, room: &str) -> bool {
        self.rooms.contains_key(room) || !ctx.log().history(room, None, 1).messages.is_empty()
    }

    fn unknown_room(room: &str) -> ApiResponse {
        ApiResponse::error(404, "unknown_room", format!("no room named {room:?}"))
    }

    /// `POST /api/publish {"room","text","name"}`.
    fn api_publish(
        &mut self,
        ctx: &mut Ctx,
        body: &Map<String, Value>,
    ) -> Result<ApiResponse, ApiResponse> {
        let room = string_field(body, "room")?
            .ok_or_else(|| ApiResponse::bad_request("publish needs \"room\""))?;
        let text = string_field(body, "text")?
            .ok_or_else(|| ApiResponse::bad_request("publish needs \"text\""))?;
        let name = bot_name(body)?;
        let room = room_name(&room)?;
        self.check_text(&text).map_err(refusal)?;
        if !self.room_known(ctx, &room) {
            return Err(Chat::unknown_room(&room));
        }
        let id = ctx.log().take_id();
        let msg = Message::Chat {
            id,
            room: &room,
            user: &bot_ref(&name),
            text: &text,
            time: now_ms(),
            reply: None,
            reactions: None,
            edited: None,
        }
        .to_json();
        ctx.log().append(Record::Room {
            room: &room,
            json: &msg,
        });
        let conns: Vec<_> = self
            .rooms
            .get(&room)
            .map(|r| r.conns.iter().copied().collect())
            .unwrap_or_default();
        ctx.publish(id, None, conns, &Ctx::json_frame(&msg));
        Ok(id_answer(id))
    }

    /// `GET /api/rooms`: every open room and its member count, by name.
    fn api_rooms(&self) -> ApiResponse {
        let mut rooms: Vec<(&String, usize)> = self
            .rooms
            .iter()
            .map(|(name, r)| (name, r.count()))
            .collect();
        rooms.sort();
        let rooms: Vec<Value> = rooms
            .into_iter()
            .map(|(room, members)| json!({"room": room, "members": members}))
            .collect();
        ApiResponse::ok(json!({ "rooms": rooms }).to_string())
    }

    /// `GET /api/rooms/R/members`.
    fn api_members(&self, room: &str) -> Result<ApiResponse, ApiResponse> {
        let room = room_name(room)?;
        let Some(r) = self.rooms.get(&room) else {
            return Err(Chat::unknown_room(&room));
        };
        let members: Vec<Value> = r.everyone().map(|m| r.member_ref(&self.ids, m)).collect();
        let body = Members {
            room: &room,
            count: members.len(),
            members: &members,
        };
        Ok(ApiResponse::ok(
            serde_json::to_string(&body).unwrap_or_default(),
        ))
    }

    /// `GET /api/rooms/R/history?before=ID&limit=N`.
    fn api_history(
        &self,
        ctx: &mut Ctx,
        room: &str,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiResponse> {
        let room = room_name(room)?;
        let before = request.query_number("before")?;
        let limit = request
            .query_number("limit")?
            .unwrap_or(HISTORY_LEN as u64)
            .min(MAX_HISTORY_PAGE as u64) as usize;
        if !self.room_known(ctx, &room) {
            return Err(Chat::unknown_room(&room));
        }
        let page = ctx.log().history(&room, before, limit);
        let (messages, missing) = (page.messages, page.missing);
        let body = History {
            room: &room,
            before,
            complete: missing.is_none(),
            first: missing,
            messages: StoredList(&messages),
        };
        Ok(ApiResponse::ok(
            serde_json::to_string(&body).unwrap_or_default(),
        ))
    }

    /// The user a body names by `"user"` (an id, which must exist) or
    /// `"sub"` (created if `create`, else it must exist).
    fn api_user(
        &mut self,
        ctx: &mut Ctx,
        body: &Map<String, Value>,
        create: bool,
    ) -> Result<UserId, ApiResponse> {
        if let Some(id) = number_field(body, "user")? {
            return self.ids.get(id).map(|u| u.id).ok_or_else(|| {
                ApiResponse::error(404, "unknown_user", format!("no user with id {id}"))
            });
        }
        let Some(sub) = string_field(body, "sub")? else {
            return Err(ApiResponse::bad_request(
                "name the user with \"user\" (an id) or \"sub\"",
            ));
        };
        if sub.is_empty() || sub.len() > MAX_SUB_BYTES {
            return Err(ApiResponse::bad_request(format!(
                "\"sub\" must be 1 to {MAX_SUB_BYTES} bytes"
            )));
        }
        match self.ids.by_sub(&sub) {
            Some(id) => Ok(id),
            None if create => Ok(self.ids.for_sub(&sub, ctx.log())),
            None => Err(ApiResponse::error(
                404,
                "unknown_user",
                format!("no user with sub {sub:?}"),
            )),
        }
    }

    /// `POST /api/private {"sub"|"user","text","name"}`: from a bot to one
    /// user, kept for them if offline.
    fn api_private(
        &mut self,
        ctx: &mut Ctx,
        body: &Map<String, Value>,
    ) -> Result<ApiResponse, ApiResponse> {
        let text = string_field(body, "text")?
            .ok_or_else(|| ApiResponse::bad_request("private needs \"text\""))?;
        let name = bot_name(body)?;
        self.check_text(&text).map_err(refusal)?;
        let to = self.api_user(ctx, body, true)?;
        let id = ctx.log().take_id();
        let msg = Message::Private {
            id,
            from: &bot_ref(&name),
            to: &self.user_ref(to),
            text: &text,
            time: now_ms(),
        }
        .to_json();
        ctx.log().append(Record::Private {
            from: &identity::key(BOT_USER_ID),
            to: &identity::key(to),
            json: &msg,
        });
        ctx.publish(id, None, self.conns_of(to), &Ctx::json_frame(&msg));
        Ok(id_answer(id))
    }

    /// `POST /api/kick {"user"|"sub"}`.
    fn api_kick(
        &mut self,
        ctx: &mut Ctx,
        body: &Map<String, Value>,
    ) -> Result<ApiResponse, ApiResponse> {
        let user = self.api_user(ctx, body, false)?;
        let closed = self.conns_of(user).len();
        self.kick(ctx, user, "kicked by the site")
            .map_err(refusal)?;
        Ok(ApiResponse::ok(
            json!({"user": user, "closed": closed}).to_string(),
        ))
    }

    /// `POST /api/ban {"user"|"sub","minutes"}`. A `sub` never seen is
    /// banned all the same: its first sign-in is refused.
    fn api_ban(
        &mut self,
        ctx: &mut Ctx,
        body: &Map<String, Value>,
    ) -> Result<ApiResponse, ApiResponse> {
        let minutes = number_field(body, "minutes")?
            .ok_or_else(|| ApiResponse::bad_request("ban needs \"minutes\""))?;
        let user = self.api_user(ctx, body, true)?;
        let closed = self.conns_of(user).len();
        self.ban(ctx, user, minutes).map_err(refusal)?;
        let minutes = minutes.clamp(1, super::MAX_BAN_MINUTES);
        Ok(ApiResponse::ok(
            json!({"user": user, "minutes": minutes, "closed": closed}).to_string(),
        ))
    }
}
