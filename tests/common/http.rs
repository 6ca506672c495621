//! HTTP on raw TCP: upgrade requests written by hand, and a response
//! parser of its own (not wschat's), so that a bug there cannot hide a bug
//! in the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{RFC_KEY, tcp};

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
