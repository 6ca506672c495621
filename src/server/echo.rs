//! The `/echo` endpoint: every text and binary message goes back unchanged.
//! Conformance suites (Autobahn) talk to it.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Instant;

use crate::config::Config;
use crate::conn::{Error, WebSocket};
use crate::ws::{CloseCode, Message, Role};

/// Run the echo loop on a connection whose handshake is done. Returns the
/// close code that ended it, if one was exchanged.
pub fn run(stream: TcpStream, leftover: &[u8], config: &Config) -> Option<CloseCode> {
    let mut ws = WebSocket::with_leftover(stream, Role::Server, config.limits(), leftover);
    let _ = ws.get_mut().set_read_timeout(Some(config.ping_interval));
    let mut last_heard = Instant::now();
    // The handshake went deep into the stack; a parked reader does not.
    crate::util::trim_stack();
    let code = loop {
        match ws.read_message() {
            Ok(Message::Text(text)) => {
                last_heard = Instant::now();
                if ws.send(Message::Text(text)).is_err() {
                    break None;
                }
            }
            Ok(Message::Binary(data)) => {
                last_heard = Instant::now();
                if ws.send(Message::Binary(data)).is_err() {
                    break None;
                }
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => last_heard = Instant::now(),
            Ok(Message::Close(frame)) => {
                break Some(frame.map_or(CloseCode::NO_STATUS, |f| f.code));
            }
            Err(Error::Protocol(e)) => {
                log::debug!("failing the connection: {e} (close {})", e.close_code());
                break Some(e.close_code());
            }
            Err(Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
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
