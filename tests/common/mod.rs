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
