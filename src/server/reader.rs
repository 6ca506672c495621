//! The reader side of a connection served by the hub (the chat, the desk):
//! the [`driver`] reads and decodes, answers pings and closes and pings a
//! quiet client; this endpoint pushes each message to the hub within the
//! per-connection rate limit, and sends everything through the
//! connection's [`Peer`], which the hub writes to as well.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::driver::{self, Endpoint, Flow};
use super::{Behavior, Shared};
use crate::hub::peer::Peer;
use crate::hub::prepared::PeerDeflate;
use crate::hub::{ConnInfo, ErrorReply, Event};
use crate::ws::deflate::Agreement;
use crate::ws::handshake::Request;
use crate::ws::{CloseCode, Connection, Decoded, Message, Role};

/// A token bucket: `rate` messages a second on average, `burst` at once.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Messages refused since the last one allowed.
    refused_in_a_row: u32,
    /// When the client went over the limit; cleared by an allowed message
    /// that follows no refusal (the client really slowed down).
    refusing_since: Option<Instant>,
}

/// How long a client may keep sending over the rate limit before it is
/// closed with 1008. A burst (a pasted paragraph) is only refused.
pub const FLOOD_GRACE: Duration = Duration::from_secs(2);

/// What the rate limit decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it; tell the client (first refusal in a row).
    RefuseAndTell,
    /// Refuse it quietly (the client was told already).
    Refuse,
    /// The client keeps going over the limit: close 1008.
    Close,
}

impl RateLimit {
    /// `rate` messages a second (0: no limit) with bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
            refused_in_a_row: 0,
            refusing_since: None,
        }
    }

    /// Decide on a message arriving at `now`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use wschat::server::reader::{FLOOD_GRACE, RateLimit, Verdict};
    /// let mut limit = RateLimit::new(1, 1);
    /// let now = Instant::now();
    /// assert_eq!(limit.check(now), Verdict::Allow);
    /// assert_eq!(limit.check(now), Verdict::RefuseAndTell);
    /// assert_eq!(limit.check(now), Verdict::Refuse); // a burst: refused, still open
    /// let later = now + FLOOD_GRACE;
    /// assert_eq!(limit.check(later), Verdict::Allow); // a token came back…
    /// assert_eq!(limit.check(later), Verdict::Close); // …but the flood never paused
    /// ```
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.rate == 0.0 {
            return Verdict::Allow;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if self.refused_in_a_row == 0 {
                self.refusing_since = None;
            }
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row += 1;
        let since = *self.refusing_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= FLOOD_GRACE {
            Verdict::Close
        } else if self.refused_in_a_row == 1 {
            Verdict::RefuseAndTell
        } else {
            Verdict::Refuse
        }
    }
}

/// A connection the hub serves, as an [`Endpoint`] of the driver: each
/// message to the hub (within the rate limit), every byte out through the
/// connection's [`Peer`], which the hub writes to as well.
struct Hub<'a> {
    id: u64,
    shared: &'a Shared,
    peer: Arc<Peer>,
    limit: RateLimit,
    /// The mount's `rate_limit`, for the `rate_limited` error's words.
    rate_limit: u32,
}

impl Endpoint for Hub<'_> {
    fn arrived(&mut self, _conn: &mut Connection, bytes: &[u8]) -> Flow {
        let bytes_in = &self.shared.metrics.bytes_in;
        bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Flow::Continue
    }

    fn message(&mut self, conn: &mut Connection, message: Decoded<'_>) -> Flow {
        let event = match message.into_message() {
            Message::Text(text) => Event::Text(self.id, text),
            Message::Binary(data) => Event::Binary(self.id, data),
            // Control frames are the driver's.
            _ => return Flow::Continue,
        };
        let metrics = &self.shared.metrics;
        metrics.messages_in.fetch_add(1, Ordering::Relaxed);
        match self.limit.check(Instant::now()) {
            Verdict::Allow => {
                if self.shared.hub.send(event).is_err() {
                    return Flow::Stop;
                }
            }
            Verdict::RefuseAndTell => {
                metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                let e = ErrorReply::new(
                    "rate_limited",
                    format!(
                        "more than {} messages a second: slow down (this message was not delivered)",
                        self.rate_limit
                    ),
                );
                let _ = conn.send(&Message::Text(e.to_json()));
            }
            Verdict::Refuse => {
                metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Close => {
                metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Flow::Close(CloseCode::POLICY, "rate limit exceeded again and again");
            }
        }
        Flow::Continue
    }

    fn write(&mut self, bytes: Vec<u8>, closing: Option<(CloseCode, &str)>) -> io::Result<()> {
        match closing {
            // Through the peer's own Close: it marks the connection closing
            // for the hub too (and is nothing if the hub closed it first).
            Some((code, reason)) => self.peer.close(code, reason),
            None => {
                self.peer.send(&bytes.into());
            }
        }
        Ok(())
    }

    fn closing_since(&self) -> Option<Instant> {
        self.peer.closing_since()
    }
}

/// A hub connection whose 101 has been sent: what the hub's application
/// learns of it ([`ConnInfo`], with its [`Peer`]).
#[derive(Debug)]
pub struct Opening {
    /// The name of the mount it came through.
    pub mount: &'static str,
    /// Its upgrade request.
    pub request: Request,
    /// The client's address.
    pub addr: String,
    /// The handshake's 101 if it is not sent yet: the [`Peer`] holds it
    /// to go out with the hub's first frames ([`Peer::hold_handshake`]).
    pub handshake: Option<std::sync::Arc<[u8]>>,
}

/// Serve a hub connection whose 101 has been sent, as `behavior` allows,
/// with permessage-deflate if it was negotiated. Returns, when it is over,
/// the code of the Close the server sent (an echo of the client's, or its
/// own), if any.
pub fn run(
    stream: TcpStream,
    leftover: &mut [u8],
    opening: Opening,
    behavior: &Behavior,
    shared: &Arc<Shared>,
    deflate: Option<Agreement>,
) -> Option<CloseCode> {
    let config = &shared.config;
    let mut hub = match open(stream, opening, behavior, shared, deflate) {
        Ok(hub) => hub,
        Err(code) => return code,
    };
    // The peer owns the socket; the reader reads through it.
    let peer = hub.peer.clone();
    let stream = peer.stream();
    let mut conn = Connection::new(Role::Server, behavior.limits());
    if deflate.is_some() {
        // The hub compresses what it sends (once, for everyone it goes to).
        conn.set_inflate();
    }
    let timeouts = behavior.timeouts(config.close_timeout);
    driver::drive(stream, leftover, conn, &mut hub, timeouts);
    drop(hub);
    shared
        .metrics
        .websockets_open
        .fetch_sub(1, Ordering::Relaxed);
    let _ = shared.hub.send(Event::Closed(peer.id()));
    // Let the last frames (our Close) go out, then close TCP first, as a
    // server should (RFC 6455 §7.1.1).
    peer.wait_drained(config.close_timeout);
    peer.abandon();
    super::finish(stream, config.close_timeout);
    peer.close_code()
}

/// Make the connection's [`Peer`] and tell the hub it opened. `Err` with
/// the code of the Close sent when the hub is gone. In a frame of its own
/// (never inlined), gone before the connection settles in to read: what
/// stays on each idle connection's stack is [`run`]'s small frame and the
/// driver's (tests/stack.rs).
#[inline(never)]
fn open<'a>(
    stream: TcpStream,
    opening: Opening,
    behavior: &Behavior,
    shared: &'a Arc<Shared>,
    deflate: Option<Agreement>,
) -> Result<Hub<'a>, Option<CloseCode>> {
    let config = &shared.config;
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let peer = Arc::new(
        Peer::new(id, stream, shared.outbox_limits(), shared.metrics.clone()).with_deflate(
            deflate.map(|agreement| PeerDeflate {
                agreement,
                min_size: config.deflate_min_size,
            }),
        ),
    );
    let Opening {
        mount,
        request,
        addr,
        handshake,
    } = opening;
    if let Some(response) = handshake {
        peer.hold_handshake(response);
    }
    let info = ConnInfo {
        mount,
        request,
        addr,
        peer: peer.clone(),
    };
    // Counted before the hub hears of it, and uncounted before the hub
    // hears it closed (run): whoever has seen the welcome, or another
    // user's leave notice, finds the gauge already agreeing.
    let open = &shared.metrics.websockets_open;
    open.fetch_add(1, Ordering::Relaxed);
    let opened = shared.hub.send(Event::Opened(id, info)).is_ok();
    if !opened || shared.stopping.load(Ordering::SeqCst) {
        // The server began to stop while this handshake was finishing: the
        // hub may have said its 1001 to everyone before this connection
        // reached it, or be gone. Say it here (a second Close is not sent:
        // Peer::close is a no-op once one was).
        peer.close(CloseCode::GOING_AWAY, "server shutting down");
        if !opened {
            open.fetch_sub(1, Ordering::Relaxed);
            return Err(Some(CloseCode::GOING_AWAY));
        }
    }
    let hub = Hub {
        id,
        shared,
        peer,
        limit: RateLimit::new(behavior.rate_limit, behavior.rate_burst),
        rate_limit: behavior.rate_limit,
    };
    Ok(hub)
}
