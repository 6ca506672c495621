//! The chat, through wschat's own client.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use wschat::server::ServerHandle;
use wschat::ws::CloseFrame;

use super::{READ_TIMEOUT, ws_url};

use serde_json::Value;
use wschat::WebSocket;
use wschat::ws::Message;

/// What a chat client reads, pings and pongs left out (the client answers
/// pings by itself while it reads).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text message: always a JSON object with a `"type"`.
    Json(Value),
    /// A binary message.
    Binary(Vec<u8>),
    /// The server's Close (already answered by the client).
    Close(Option<CloseFrame>),
    /// The stream ended, or the close handshake was over already.
    End,
}

impl Incoming {
    /// The `type` of a JSON message, or what kind of thing this is.
    pub fn kind(&self) -> String {
        match self {
            Incoming::Json(v) => v["type"].as_str().unwrap_or("?").to_string(),
            Incoming::Binary(b) => format!("binary({} bytes)", b.len()),
            Incoming::Close(c) => format!("close({c:?})"),
            Incoming::End => "end".to_string(),
        }
    }
}

/// Percent-encode `s` for a URL query (everything but unreserved bytes).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A chat user on wschat's own client, with the identity its `welcome`
/// gave it.
pub struct ChatClient {
    /// The WebSocket.
    pub ws: WebSocket<TcpStream>,
    /// The user id from `welcome` (0 until it is read).
    pub id: u64,
    /// The name from `welcome`.
    pub name: String,
}

impl ChatClient {
    /// Connect to `target` (a path and query, e.g. `/?name=Ann`) and read
    /// nothing yet.
    pub fn open(server: &ServerHandle, target: &str) -> ChatClient {
        let ws = wschat::client::connect(&ws_url(server, target))
            .unwrap_or_else(|e| panic!("connect to {target}: {e}"));
        ChatClient {
            ws,
            id: 0,
            name: String::new(),
        }
    }

    /// Connect to `/` (with `?name=` when `name` is given, percent-encoded)
    /// and read everything a newcomer gets: `welcome`, `users`, `history`
    /// and the lobby's `join` notice that names this user.
    pub fn join(server: &ServerHandle, name: Option<&str>) -> ChatClient {
        let target = match name {
            Some(name) => format!("/?name={}", percent_encode(name)),
            None => "/".to_string(),
        };
        let mut client = ChatClient::open(server, &target);
        client.settle();
        client
    }

    /// Read `welcome` (taking the identity it gives) and then up to this
    /// user's own `join` notice, or in a crowd (a `users` count past
    /// [`wschat::chat::CROWD_SIZE`], where nobody is named) up to `history`.
    pub fn settle(&mut self) {
        let welcome = self.until_type("welcome");
        self.id = welcome["user"]["id"].as_u64().expect("welcome.user.id");
        self.name = welcome["user"]["name"]
            .as_str()
            .expect("welcome.user.name")
            .to_string();
        let users = self.until_type("users");
        if users["count"]
            .as_u64()
            .is_some_and(|n| n > wschat::chat::CROWD_SIZE as u64)
        {
            self.until_type("history");
            return;
        }
        let id = self.id;
        self.until("my own join notice", |m| {
            m["type"] == "join" && names_user(&m["users"], id)
        });
    }

    /// The next message within `timeout`, or `None` when nothing came.
    /// Panics on a protocol error or a failed read.
    pub fn next_within(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.ws.get_ref().set_read_timeout(Some(left)).unwrap();
            let message = match self.ws.read_message() {
                Ok(message) => message,
                Err(wschat::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(wschat::Error::ConnectionClosed) => return Some(Incoming::End),
                Err(e) => panic!("user {} ({}): reading: {e}", self.id, self.name),
            };
            return Some(match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("the server sent non-JSON {text:?}: {e}"));
                    assert!(
                        value.is_object() && value["type"].is_string(),
                        "a server message is an object with a type: {text}"
                    );
                    Incoming::Json(value)
                }
                Message::Binary(data) => Incoming::Binary(data),
                Message::Close(frame) => Incoming::Close(frame),
                Message::Ping(_) | Message::Pong(_) => continue,
            });
        }
    }

    /// The next message; panics when none comes within [`READ_TIMEOUT`].
    pub fn next(&mut self) -> Incoming {
        let (id, name) = (self.id, self.name.clone());
        self.next_within(READ_TIMEOUT)
            .unwrap_or_else(|| panic!("user {id} ({name}): nothing arrived in {READ_TIMEOUT:?}"))
    }

    /// Read until a JSON message matches `pred`; returns it and everything
    /// read before it. Panics (naming `what` and what was read) when the
    /// connection closes or [`READ_TIMEOUT`] passes first.
    pub fn until_seen(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (Value, Vec<Incoming>) {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Some(Incoming::Json(v)) if pred(&v) => return (v, seen),
                Some(other @ (Incoming::Json(_) | Incoming::Binary(_))) => seen.push(other),
                end => panic!(
                    "user {} ({}) waiting for {what}: got {:?} after {:?}",
                    self.id,
                    self.name,
                    end.map(|e| e.kind()),
                    seen.iter().map(Incoming::kind).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Read until a JSON message matches `pred` and return it; others are
    /// skipped.
    pub fn until(&mut self, what: &str, pred: impl FnMut(&Value) -> bool) -> Value {
        self.until_seen(what, pred).0
    }

    /// Read until a message of type `kind`.
    pub fn until_type(&mut self, kind: &str) -> Value {
        self.until(&format!("a {kind:?} message"), |m| m["type"] == kind)
    }

    /// Read until an `error`; its code must be `code`.
    pub fn expect_error(&mut self, code: &str) -> Value {
        let error = self.until_type("error");
        assert_eq!(error["code"], code, "{error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {error}"
        );
        error
    }

    /// Read until the server's Close, skipping everything else; panics if
    /// the stream ends without one.
    pub fn until_close(&mut self) -> Option<CloseFrame> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Some(Incoming::Close(frame)) => return frame,
                Some(Incoming::Json(_) | Incoming::Binary(_)) => {}
                other => panic!(
                    "user {} waiting for a Close: got {:?}",
                    self.id,
                    other.map(|o| o.kind())
                ),
            }
        }
    }

    /// Send a text message as it is.
    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string()))
            .expect("send a text message");
    }

    /// Send a JSON command.
    pub fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    /// Send a binary message.
    pub fn send_binary(&mut self, data: &[u8]) {
        self.ws
            .send(Message::Binary(data.to_vec()))
            .expect("send a binary message");
    }

    /// Send `text` as a plain chat message and read until its own `chat`
    /// comes back (the server's confirmation); returns that message.
    pub fn say(&mut self, text: &str) -> Value {
        self.send_text(text);
        self.until_own_chat(text)
    }

    /// Read until this user's own chat message with `text`.
    pub fn until_own_chat(&mut self, text: &str) -> Value {
        let id = self.id;
        self.until(&format!("my own chat {text:?}"), |m| {
            m["type"] == "chat" && m["user"]["id"] == id && m["text"] == text
        })
    }

    /// Read until a chat message from user `from` with `text`; returns it
    /// and everything read before it.
    pub fn until_chat_from(&mut self, from: u64, text: &str) -> (Value, Vec<Incoming>) {
        self.until_seen(&format!("chat {text:?} from user {from}"), |m| {
            m["type"] == "chat" && m["user"]["id"] == from && m["text"] == text
        })
    }
}

/// Whether a JSON array of `{"id","name"}` holds user `id`.
pub fn names_user(users: &Value, id: u64) -> bool {
    users
        .as_array()
        .is_some_and(|users| users.iter().any(|u| u["id"] == id))
}
