//! The `/inspect` endpoint: every frame a client sends is answered with a
//! JSON dissection of the exact bytes that arrived (header fields, masking
//! key, masked and unmasked payload), so a student can see what their own
//! browser put on the wire. The page at `GET /inspect` drives it.
//!
//! On `/inspect?deflate=on` (the page's "compress" switch), when the browser
//! offers permessage-deflate (every browser does) and the server has it on,
//! it is negotiated as on the chat: compressed frames then show RSV1 set,
//! their compressed bytes, and the message inflated. Plain `/inspect`
//! declines it, so that the bytes shown are the bytes typed.
//!
//! It runs on the connection's own thread, like `/echo`, and is bounded like
//! every endpoint: frames and messages are limited to [`INSPECT_MAX_BYTES`]
//! (a dissection is several times larger than the frame it describes), the
//! rate limit applies to frames, and the usual ping and idle timeouts hold.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use super::ServerConfig;
use super::reader::{RateLimit, Verdict};
use crate::dissect::{Direction, Dissector, Options};
use crate::ws::deflate::Agreement;
use crate::ws::{CloseCode, Connection, ConnectionState, Limits, Message, Role};

/// Largest frame and message `/inspect` accepts (close 1009 past it).
pub const INSPECT_MAX_BYTES: usize = 16 * 1024;

/// Serve `/inspect` on a connection whose 101 was sent. Returns the close
/// code that ended it, if any.
pub fn run(
    stream: TcpStream,
    leftover: &[u8],
    config: &ServerConfig,
    deflate: Option<Agreement>,
) -> Option<CloseCode> {
    let limits = Limits {
        max_frame_size: INSPECT_MAX_BYTES.min(config.max_frame_size),
        max_message_size: INSPECT_MAX_BYTES.min(config.max_message_size),
    };
    let mut conn = Connection::new(Role::Server, limits);
    // With permessage-deflate (RFC 7692) the browser's compressed frames
    // are shown as they came, RSV1 set, and inflated; the dissections go
    // back compressed like any message, by the shared compressors.
    if let Some(agreement) = deflate {
        conn.set_deflate(
            agreement,
            config.deflate_min_size,
            Some(crate::hub::prepared::compress),
        );
    }
    let mut dissector = Dissector::new(Options {
        direction: Direction::ClientToServer,
        limits,
        deflate: deflate.is_some(),
    });
    let mut limit = RateLimit::new(config.rate_limit, config.rate_burst);
    let mut stream = stream;
    let _ = stream.set_read_timeout(Some(config.ping_interval.min(config.idle_timeout)));
    let mut last_heard = Instant::now();
    let mut code = None;
    let mut buf = vec![0u8; 4096];
    let mut pending = leftover.to_vec();
    loop {
        if !pending.is_empty() {
            last_heard = Instant::now();
            // The dissection of each frame first, then the protocol's own
            // answers (pong, close), in the order the frames came.
            for report in dissector.feed(&pending) {
                match limit.check(Instant::now()) {
                    Verdict::Allow => {
                        let text = crate::ordered! {"type": "frame", "frame": report};
                        let _ = conn.send(&Message::Text(text));
                    }
                    Verdict::Close => {
                        conn.close(CloseCode::POLICY, "rate limit exceeded again and again")
                    }
                    Verdict::Refuse | Verdict::RefuseAndTell => {}
                }
            }
            let mut input = pending.as_slice();
            while !input.is_empty() && conn.state() != ConnectionState::Closed {
                match conn.receive(&mut input) {
                    Ok(Some(Message::Close(frame))) => {
                        code = Some(frame.map_or(CloseCode::NO_STATUS, |f| f.code));
                    }
                    Ok(_) => {}
                    Err(e) => code = Some(e.close_code()),
                }
            }
            pending.clear();
        }
        if conn.has_output() && stream.write_all(&conn.take_output()).is_err() {
            break;
        }
        if conn.state() == ConnectionState::Closed {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if conn.state() == ConnectionState::Closing
                    || last_heard.elapsed() >= config.idle_timeout
                {
                    conn.close(CloseCode::GOING_AWAY, "idle timeout");
                    let _ = stream.write_all(&conn.take_output());
                    break;
                }
                let _ = conn.send(&Message::Ping(Vec::new()));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    super::finish(&stream, config.close_timeout);
    code
}
