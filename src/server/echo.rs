//! The `/echo` endpoint: every text and binary message goes back unchanged.
//! Conformance suites (Autobahn) talk to it.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Instant;

use super::ServerConfig;
use crate::conn::{Error, WebSocket};
use crate::ws::deflate::Agreement;
use crate::ws::{CloseCode, Decoded, Message, Role};

/// What one message read on `/echo` came to.
enum Echo {
    /// A text or binary message, and whether its echo could be queued.
    Sent(bool),
    /// A ping or a pong (the pong to a ping is queued by the connection).
    Heard,
    /// The peer's Close, with its code (already answered).
    Closed(CloseCode),
}

/// Run the echo loop on a connection whose handshake is done, with
/// permessage-deflate if it was negotiated. Returns the close code that
/// ended it, if one was exchanged.
pub fn run(
    stream: TcpStream,
    leftover: &[u8],
    config: &ServerConfig,
    deflate: Option<Agreement>,
) -> Option<CloseCode> {
    let mut ws = WebSocket::with_leftover(stream, Role::Server, config.limits(), leftover);
    if let Some(agreement) = deflate {
        // Compressors come from the shared pool: one is too big to build
        // on a connection thread's stack, and too big to keep per
        // connection.
        ws.set_deflate(
            agreement,
            config.deflate_min_size,
            Some(crate::hub::prepared::compress),
        );
    }
    let _ = ws.get_mut().set_read_timeout(Some(config.ping_interval));
    let mut last_heard = Instant::now();
    // The handshake went deep into the stack; a parked reader does not.
    crate::sys::trim_stack();
    let code = loop {
        // A message that came whole in one frame is echoed straight from
        // the read buffer, unmasked in place: no copy, no allocation.
        let read = ws.read_in_place(|decoded, conn| match decoded {
            Decoded::Text(text) => Echo::Sent(conn.send_text(text).is_ok()),
            Decoded::Binary(data) => Echo::Sent(conn.send_binary(data).is_ok()),
            Decoded::Message(message) => match message {
                Message::Text(_) | Message::Binary(_) => Echo::Sent(conn.send(&message).is_ok()),
                Message::Ping(_) | Message::Pong(_) => Echo::Heard,
                Message::Close(frame) => {
                    Echo::Closed(frame.map_or(CloseCode::NO_STATUS, |f| f.code))
                }
            },
        });
        match read {
            Ok(Echo::Sent(true) | Echo::Heard) => last_heard = Instant::now(),
            Ok(Echo::Sent(false)) => break None,
            Ok(Echo::Closed(code)) => break Some(code),
            Err(Error::Protocol(e)) => {
                log::debug!("failing the connection: {e} (close {})", e.close_code());
                break Some(e.close_code());
            }
            Err(Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                // Quiet for a while: give back the stack pages the last
                // messages (or the last ping) touched, as after the
                // handshake.
                crate::sys::trim_stack();
                if last_heard.elapsed() >= config.idle_timeout {
                    let _ = ws.close(CloseCode::GOING_AWAY, "idle timeout");
                    break Some(CloseCode::GOING_AWAY);
                }
                if ws.send(Message::Ping(Vec::new())).is_err() {
                    break None;
                }
            }
            Err(_) => break None,
        }
    };
    let stream = ws.into_inner();
    super::finish(&stream, config.close_timeout);
    code
}
