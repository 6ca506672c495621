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

use std::io;
use std::net::TcpStream;
use std::time::Instant;

use super::driver::{Direct, Endpoint, Flow};
use super::reader::{RateLimit, Verdict};
use super::{Behavior, ServerConfig};
use crate::dissect::{Direction, Dissector, Options};
use crate::ws::deflate::Agreement;
use crate::ws::{CloseCode, Connection, Decoded, Message};

/// Largest frame and message `/inspect` accepts (close 1009 past it).
pub const INSPECT_MAX_BYTES: usize = 16 * 1024;

/// What `/inspect` allows, given the server's default `behavior`: frames
/// and messages of at most [`INSPECT_MAX_BYTES`] (a dissection is several
/// times larger than the frame it describes), and no deflate by default:
/// it shows frames as they are, unless the page asks (`?deflate=on`,
/// decided where the handshake is answered).
pub fn behavior(behavior: Behavior) -> Behavior {
    Behavior {
        max_frame_size: INSPECT_MAX_BYTES.min(behavior.max_frame_size),
        max_message_size: INSPECT_MAX_BYTES.min(behavior.max_message_size),
        deflate: false,
        ..behavior
    }
}

/// `/inspect` as an [`Endpoint`] of the driver: the dissection of each
/// frame as it arrives, then the protocol's own answers (pong, close), in
/// the order the frames came.
struct Inspect<'s> {
    out: Direct<'s>,
    dissector: Dissector,
    limit: RateLimit,
}

impl Endpoint for Inspect<'_> {
    fn arrived(&mut self, conn: &mut Connection, bytes: &[u8]) -> Flow {
        for report in self.dissector.feed(bytes) {
            match self.limit.check(Instant::now()) {
                Verdict::Allow => {
                    let text = crate::ordered! {"type": "frame", "frame": report};
                    let _ = conn.send(&Message::Text(text));
                }
                Verdict::Close => {
                    return Flow::Close(CloseCode::POLICY, "rate limit exceeded again and again");
                }
                Verdict::Refuse | Verdict::RefuseAndTell => {}
            }
        }
        Flow::Continue
    }

    fn message(&mut self, _conn: &mut Connection, _message: Decoded<'_>) -> Flow {
        // Answered already, frame by frame, as it arrived.
        Flow::Continue
    }

    fn write(&mut self, bytes: Vec<u8>, closing: Option<(CloseCode, &str)>) -> io::Result<()> {
        self.out.write(&bytes, closing.is_some())
    }

    fn closing_since(&self) -> Option<Instant> {
        self.out.closing_since()
    }
}

/// Serve `/inspect` on a connection whose 101 was sent, as `behavior`
/// allows (see [`behavior`]). Returns the code of
/// the Close the server sent, if any.
pub fn run(
    stream: TcpStream,
    leftover: &mut [u8],
    behavior: &Behavior,
    config: &ServerConfig,
    deflate: Option<Agreement>,
) -> Option<CloseCode> {
    let limits = behavior.limits();
    let mut inspect = Inspect {
        out: Direct::new(&stream),
        dissector: Dissector::new(Options {
            direction: Direction::ClientToServer,
            limits,
            deflate: deflate.is_some(),
        }),
        limit: RateLimit::new(behavior.rate_limit, behavior.rate_burst),
    };
    // With permessage-deflate (RFC 7692) the browser's compressed frames
    // are shown as they came, RSV1 set, and inflated; the dissections go
    // back compressed like any message, by the shared compressors.
    super::serve_direct(
        &stream,
        leftover,
        limits,
        behavior,
        config,
        deflate,
        &mut inspect,
    )
}
