//! Helpers shared by the integration tests: an in-process server on an
//! ephemeral port of 127.0.0.1, and raw TCP helpers that write bytes and read
//! an HTTP response or WebSocket frames, always with a read timeout so that a
//! server that never answers fails the test instead of hanging it.
//!
//! The HTTP response parser here is deliberately separate from wschat's own
//! (`ws::handshake::parse_response`), so that a bug there cannot hide a bug
//! in the server.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wschat::config::Config;
use wschat::server::{Server, ServerHandle};
use wschat::ws::frame::{Frame, OpCode, encode_frame};
use wschat::ws::{CloseCode, CloseFrame};

/// How long any single read waits before the test fails. Generous: it only
/// matters when something is broken, and the machine may be busy.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The masking key of the RFC 6455 §5.7 examples; tests mask with it so
/// that frames on the wire can be compared with the RFC's bytes.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3 ...
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// ... and the `Sec-WebSocket-Accept` the RFC computes for it.
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The default configuration, listening on an ephemeral port of 127.0.0.1.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".to_string(),
        ..Config::default()
    }
}

/// Start an in-process server with `config`; it stops when the handle is
/// dropped.
pub fn start(config: Config) -> ServerHandle {
    Server::bind(config)
        .expect("bind 127.0.0.1:0")
        .spawn()
        .expect("spawn the server")
}

/// Start a server with the default configuration.
pub fn start_default() -> ServerHandle {
    start(config())
}

/// The `ws://` URL of `path` on `server`.
pub fn ws_url(server: &ServerHandle, path: &str) -> String {
    format!("ws://{}{path}", server.addr())
}

/// A TCP connection to `addr` with the test read timeout set.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// The header lines of a valid upgrade request (RFC 6455 §1.3 / §4.1), to
/// be edited by the tests that check one rule each.
pub fn upgrade_lines(host: &str) -> Vec<String> {
    vec![
        format!("Host: {host}"),
        "Upgrade: websocket".to_string(),
        "Connection: Upgrade".to_string(),
        format!("Sec-WebSocket-Key: {RFC_KEY}"),
        "Sec-WebSocket-Version: 13".to_string(),
    ]
}

/// A request head: `request_line`, the `lines`, each ended by CRLF, and the
/// empty line.
pub fn request(request_line: &str, lines: &[String]) -> Vec<u8> {
    let mut out = format!("{request_line}\r\n");
    for line in lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A valid upgrade request for `path` on `addr` with the RFC key.
pub fn upgrade_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    request(
        &format!("GET {path} HTTP/1.1"),
        &upgrade_lines(&addr.to_string()),
    )
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The status line, as sent.
    pub status_line: String,
    /// The header lines, split at the first colon, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (empty for a 101), as much as `Content-Length` says.
    pub body: Vec<u8>,
    /// Bytes after the head of a 101: already WebSocket frames.
    pub leftover: Vec<u8>,
}

impl HttpReply {
    /// The first value of header `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one HTTP response from `stream`: the head, then `Content-Length`
/// bytes of body (none for a 101). Panics on a timeout, or when the stream
/// ends before the response does.
pub fn read_http_reply(stream: &mut TcpStream) -> HttpReply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!(
                "the stream ended before a whole HTTP head; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "reading the HTTP head: {e}; got so far {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("the head is UTF-8");
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("header line without a colon: {line:?}"));
            (name.to_string(), value.trim().to_string())
        })
        .collect();
    let mut reply = HttpReply {
        status,
        status_line,
        headers,
        body: Vec::new(),
        leftover: Vec::new(),
    };
    if status == 101 {
        reply.leftover = rest;
        return reply;
    }
    let length: usize = reply
        .header("Content-Length")
        .unwrap_or_else(|| panic!("a {status} without Content-Length"))
        .parse()
        .expect("Content-Length is a number");
    while rest.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the stream ended inside the body"),
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the body: {e}"),
        }
    }
    assert_eq!(rest.len(), length, "bytes after the body");
    reply.body = rest;
    reply
}

/// Connect to `addr`, write `bytes` in one call, and read the response.
///
/// A failed write is ignored: a server that answers before reading (a 503
/// from the listener) may have closed its side already, and the answer is
/// still there to read.
pub fn http_exchange(addr: SocketAddr, bytes: &[u8]) -> HttpReply {
    let mut stream = tcp(addr);
    let _ = stream.write_all(bytes);
    read_http_reply(&mut stream)
}

/// After a response, the server closes: reading gives end of stream.
pub fn assert_eof(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("expected the end of the stream, got byte {:#04x}", byte[0]),
        Err(e) => panic!("expected the end of the stream, got {e}"),
    }
}

/// Call `done` until it is true, for at most `limit`. Only for state that
/// has no socket event to wait on (a server-side counter); fails the test
/// with `what` when the limit passes.
pub fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A masked client frame (the RFC's key, FIN as given, no RSV bits).
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(MASK));
    out
}

/// A WebSocket client made of raw bytes, to send what a well-behaved client
/// never would and to see exactly what the server writes.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet parsed into frames.
    buf: Vec<u8>,
}

impl RawClient {
    /// Connect to `addr`, upgrade on `path`, and check the 101.
    pub fn connect(addr: SocketAddr, path: &str) -> RawClient {
        RawClient::connect_with(addr, &upgrade_request(addr, path))
    }

    /// Connect, write `request` (which may have frames after the head), and
    /// check that the answer is a 101 for the RFC key.
    pub fn connect_with(addr: SocketAddr, request: &[u8]) -> RawClient {
        let mut stream = tcp(addr);
        stream.write_all(request).unwrap();
        let reply = read_http_reply(&mut stream);
        assert_eq!(reply.status, 101, "{reply:?}: {}", reply.body_text());
        assert_eq!(reply.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
        RawClient {
            stream,
            buf: reply.leftover,
        }
    }

    /// Write raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Write one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.send(&client_frame(fin, opcode, payload));
    }

    /// The next whole frame and its bytes as they were on the wire; `None`
    /// at the end of the stream (with no partial frame left over).
    pub fn try_read_frame(&mut self) -> Option<(Frame, Vec<u8>)> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((frame, used)) = Frame::parse(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..used).collect();
                assert_eq!(frame.header.mask, None, "a server frame is masked");
                assert_eq!(frame.header.rsv, 0, "a server frame has RSV bits");
                return Some((frame, raw));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(
                        self.buf.is_empty(),
                        "the stream ended inside a frame: {:02x?}",
                        self.buf
                    );
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading a frame: {e} (buffered {} bytes)", self.buf.len()),
            }
        }
    }

    /// The next frame; panics at the end of the stream.
    pub fn read_frame(&mut self) -> Frame {
        self.read_frame_raw().0
    }

    /// The next frame and its wire bytes; panics at the end of the stream.
    pub fn read_frame_raw(&mut self) -> (Frame, Vec<u8>) {
        self.try_read_frame()
            .expect("the server closed the stream instead of sending a frame")
    }

    /// The next frame must be a whole (FIN) data or control frame with this
    /// opcode; returns its payload.
    pub fn expect(&mut self, opcode: OpCode) -> Vec<u8> {
        let frame = self.read_frame();
        assert_eq!(frame.header.opcode, opcode, "{frame:?}");
        assert!(frame.header.fin, "{frame:?}");
        frame.payload
    }

    /// The next frame must be a Close with `code`; then the server must
    /// close TCP (read gives 0). Returns the close frame.
    pub fn expect_close(&mut self, code: u16) -> CloseFrame {
        let frame = self.read_frame();
        assert_eq!(frame.header.opcode, OpCode::Close, "{frame:?}");
        let close = CloseFrame::parse(&frame.payload)
            .expect("the server's Close payload is valid")
            .expect("the server's Close carries a code");
        assert_eq!(
            close.code,
            CloseCode(code),
            "close reason: {:?}",
            close.reason
        );
        self.expect_eof();
        close
    }

    /// The server closed its side: no frame left, read gives 0.
    pub fn expect_eof(&mut self) {
        assert!(
            self.try_read_frame().is_none(),
            "a frame arrived instead of the end of the stream"
        );
    }
}

// ---- The chat, through wschat's own client ----

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
    /// user's own `join` notice.
    pub fn settle(&mut self) {
        let welcome = self.until_type("welcome");
        self.id = welcome["user"]["id"].as_u64().expect("welcome.user.id");
        self.name = welcome["user"]["name"]
            .as_str()
            .expect("welcome.user.name")
            .to_string();
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

/// The keys of the outermost JSON object in `text`, in order. Works on the
/// docs' examples too, which may hold `…` or `[...]`.
pub fn top_level_keys(text: &str) -> Vec<String> {
    let (mut keys, mut depth, mut start) = (Vec::new(), 0, 0);
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                if depth == 1 && text[i + 1..].trim_start().starts_with(':') {
                    keys.push(text[start..i].to_string());
                }
            }
            continue;
        }
        match c {
            '"' => (in_string, start) = (true, i + 1),
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    keys
}

/// The server's messages as `page` shows them in the sections whose
/// headings are `sections` (each runs to the next heading of its level):
/// for each type, the orders of fields its examples use. Examples are the
/// lines of ```json blocks that start with `{"type":` (an example may go on
/// over the lines after it).
pub fn documented_field_orders(
    page: &str,
    sections: &[&str],
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<Vec<String>>> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(page))
        .unwrap_or_else(|e| panic!("{page}: {e}"));
    let mut orders: std::collections::BTreeMap<String, std::collections::BTreeSet<Vec<String>>> =
        Default::default();
    for heading in sections {
        let level = &heading[..heading.find(' ').unwrap_or(0) + 1];
        let section = text
            .split(&format!("\n{heading}\n"))
            .nth(1)
            .and_then(|s| s.split(&format!("\n{level}")).next())
            .unwrap_or_else(|| panic!("{page} has no section {heading:?}"));
        for block in section.split("```json\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            for example in block
                .split("\n{\"type\":")
                .map(|e| e.trim_start_matches("{\"type\":"))
            {
                let example = format!("{{\"type\":{example}");
                let kind = example
                    .split('"')
                    .nth(3)
                    .expect("an example's type")
                    .to_string();
                orders
                    .entry(kind)
                    .or_default()
                    .insert(top_level_keys(&example));
            }
        }
    }
    orders
}

/// Check that `text`, a message the server sent, has its top-level fields
/// in an order `orders` (from [`documented_field_orders`]) shows for its
/// type; returns the type. `exact`: the fields are exactly an example's;
/// otherwise `type` comes first and the fields an example shows come in
/// its order, with optional ones (absent from the example, or from the
/// message) allowed.
pub fn check_field_order(
    orders: &std::collections::BTreeMap<String, std::collections::BTreeSet<Vec<String>>>,
    page: &str,
    text: &str,
    exact: bool,
) -> String {
    let value: serde_json::Value = serde_json::from_str(text).expect("JSON from the server");
    let kind = value["type"].as_str().unwrap_or_default().to_string();
    let Some(shown) = orders.get(&kind) else {
        panic!("{kind} is not shown on {page}: {text}");
    };
    let keys = top_level_keys(text);
    let agrees = |example: &Vec<String>| {
        if exact {
            return &keys == example;
        }
        let common: Vec<&String> = keys.iter().filter(|k| example.contains(k)).collect();
        let expected: Vec<&String> = example.iter().filter(|k| keys.contains(k)).collect();
        keys.first().is_some_and(|k| k == "type") && common == expected
    };
    assert!(
        shown.iter().any(agrees),
        "{kind} comes as {keys:?}, {page} shows {shown:?}: {text}"
    );
    kind
}

/// The ids of this process's threads under Linux's `SCHED_BATCH` policy:
/// a server's connection threads, unless `--batch-threads false`.
#[cfg(target_os = "linux")]
pub fn sched_batch_threads() -> Vec<u32> {
    /// `SCHED_BATCH` in `/proc/.../stat` (field 41, `policy`).
    const SCHED_BATCH: u32 = 3;
    let mut ids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // The fields after the command name, which is in parentheses and
        // may hold spaces: the first of them is field 3 (state).
        let after = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
        let policy: u32 = after
            .split(' ')
            .nth(41 - 3)
            .expect("a policy field")
            .parse()
            .expect("a number");
        if policy == SCHED_BATCH {
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a thread id");
            ids.push(id.parse().expect("a numeric thread id"));
        }
    }
    ids
}
