//! The reader side of a connection served by the hub (the chat, the desk):
//! read bytes, decode them with the sans-I/O [`Decoder`], push messages to
//! the hub, answer pings and closes through the connection's [`Peer`], keep
//! the per-connection rate limit, and ping a quiet client.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use crate::hub::peer::Peer;
use crate::hub::prepared::PeerDeflate;
use crate::hub::{ConnInfo, ErrorReply, Event};
use crate::ws::deflate::Agreement;
use crate::ws::handshake::Request;
use crate::ws::{CloseCode, Decoder, Message, Role};

/// Bytes read at a time. Small, because it lives on each connection
/// thread's stack and most connections are idle; a large message simply
/// takes a few more reads.
pub const READ_BUF: usize = 1024;

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

/// How handling a batch of bytes ended.
enum Flow {
    Continue,
    /// The connection is over (Close exchanged, failed, or hub gone).
    Stop,
}

struct Reader<'a> {
    id: u64,
    shared: &'a Shared,
    peer: Arc<Peer>,
    decoder: Decoder,
    limit: RateLimit,
    last_heard: Instant,
    pinged: bool,
}

impl Reader<'_> {
    fn feed(&mut self, mut input: &[u8]) -> Flow {
        let metrics = &self.shared.metrics;
        while !input.is_empty() {
            let message = match self.decoder.decode(&mut input) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    log::debug!("conn {}: failing the connection: {e}", self.id);
                    self.peer.close(e.close_code(), &e.to_string());
                    return Flow::Stop;
                }
            };
            let event = match message {
                Message::Text(text) => Event::Text(self.id, text),
                Message::Binary(data) => Event::Binary(self.id, data),
                Message::Ping(payload) => {
                    self.peer.send_message(&Message::Pong(payload));
                    continue;
                }
                Message::Pong(_) => continue,
                Message::Close(frame) => {
                    // Answer with the same code (RFC 6455 §5.5.1); none → empty.
                    let code = frame.map_or(CloseCode::NO_STATUS, |f| f.code);
                    self.peer.close(code, "");
                    return Flow::Stop;
                }
            };
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
                            self.shared.config.rate_limit
                        ),
                    );
                    self.peer.send_message(&Message::Text(e.to_json()));
                }
                Verdict::Refuse => {
                    metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::Close => {
                    metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                    self.peer
                        .close(CloseCode::POLICY, "rate limit exceeded again and again");
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }
}

/// Serve a hub connection whose 101 has been sent, with permessage-deflate
/// if it was negotiated. Returns, when it is over, the code of the Close the
/// server sent (an echo of the client's, or its own), if any.
pub fn run(
    stream: TcpStream,
    leftover: &[u8],
    request: Request,
    addr: String,
    shared: &Arc<Shared>,
    deflate: Option<Agreement>,
) -> Option<CloseCode> {
    let config = &shared.config;
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let stream = Arc::new(stream);
    let peer = Arc::new(
        Peer::new(
            id,
            stream.clone(),
            shared.outbox_limits(),
            shared.metrics.clone(),
        )
        .with_deflate(deflate.map(|agreement| PeerDeflate {
            agreement,
            min_size: config.deflate_min_size,
        })),
    );
    let path = request.path().to_string();
    let info = ConnInfo {
        path,
        request,
        addr,
        peer: peer.clone(),
    };
    // Counted before the hub hears of it, and uncounted before the hub
    // hears it closed (below): whoever has seen the welcome, or another
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
            return Some(CloseCode::GOING_AWAY);
        }
    }
    let mut decoder = Decoder::new(Role::Server, config.limits());
    decoder.set_deflate(deflate.is_some());
    let mut reader = Reader {
        id,
        shared,
        peer: peer.clone(),
        decoder,
        limit: RateLimit::new(config.rate_limit, config.rate_burst),
        last_heard: Instant::now(),
        pinged: false,
    };
    // Wake often enough to ping, to notice idleness and close timeouts.
    let step = config
        .ping_interval
        .min(config.idle_timeout)
        .min(config.close_timeout)
        .checked_div(3)
        .unwrap_or_default()
        .max(Duration::from_millis(20));
    let _ = stream.set_read_timeout(Some(step));
    // The handshake went deep into the stack; a parked reader does not.
    crate::sys::trim_stack();
    let mut flow = reader.feed(leftover);
    let mut buf = [0u8; READ_BUF];
    // Whether the thread has gone deeper than its parked frames since the
    // last trim (decoding, handing a message to the hub, pinging).
    let mut went_deep = !leftover.is_empty();
    while let Flow::Continue = flow {
        match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                shared
                    .metrics
                    .bytes_in
                    .fetch_add(n as u64, Ordering::Relaxed);
                reader.last_heard = Instant::now();
                reader.pinged = false;
                went_deep = true;
                flow = reader.feed(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Quiet for a while: give back the stack pages the last
                // messages touched, as after the handshake.
                if std::mem::take(&mut went_deep) {
                    crate::sys::trim_stack();
                }
                if peer
                    .closing_since()
                    .is_some_and(|t| t.elapsed() >= config.close_timeout)
                {
                    break;
                }
                let silent = reader.last_heard.elapsed();
                if silent >= config.idle_timeout {
                    peer.close(CloseCode::GOING_AWAY, "idle timeout");
                } else if silent >= config.ping_interval && !reader.pinged {
                    peer.send_message(&Message::Ping(Vec::new()));
                    reader.pinged = true;
                    went_deep = true;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    shared
        .metrics
        .websockets_open
        .fetch_sub(1, Ordering::Relaxed);
    let _ = shared.hub.send(Event::Closed(id));
    // Let the last frames (our Close) go out, then close TCP first, as a
    // server should (RFC 6455 §7.1.1).
    peer.wait_drained(config.close_timeout);
    peer.abandon();
    super::finish(&stream, config.close_timeout);
    peer.close_code()
}
