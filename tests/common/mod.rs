//! Helpers shared by the integration tests: an in-process server on an
//! ephemeral port of 127.0.0.1, and raw TCP helpers that write bytes and read
//! an HTTP response or WebSocket frames, always with a read timeout so that a
//! server that never answers fails the test instead of hanging it.
//!
//! The HTTP response parser here is deliberately separate from wschat's own
//! (`ws::handshake::parse_response`), so that a bug there cannot hide a bug
//! in the server.
//!
//! | file | what |
//! |---|---|
//! | `server.rs` | the in-process server, `ws_url`, `tcp`; `spawn_serve`: `wschat serve` as a child process |
//! | `http.rs` | upgrade requests by hand, `read_http_reply`, `http_exchange` |
//! | `raw.rs` | `client_frame`, `RawClient`: frames on raw TCP |
//! | `chat.rs` | `ChatClient` on wschat's own client, `Incoming` |
//! | `field_order.rs` | JSON field orders against the protocol pages |
//! | `threads.rs` | `sched_batch_threads` |
//! | `tls.rs` | `certificate` (openssl), `TlsRelay` (Python's `ssl` in front of a plain server) |
//! | `temp.rs` | `TempDir`: a data directory removed when dropped |

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

mod chat;
mod field_order;
mod http;
mod raw;
mod server;
mod temp;
mod threads;
mod tls;

#[allow(unused_imports)] // each test crate uses some
pub use chat::*;
#[allow(unused_imports)]
pub use field_order::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use server::*;
#[allow(unused_imports)]
pub use temp::*;
#[allow(unused_imports)]
pub use threads::*;
#[allow(unused_imports)]
pub use tls::*;

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
