//! The one server-side driver of a WebSocket connection: every endpoint
//! (`/echo`, `/inspect`, and the connections the hub serves) runs the same
//! sans-I/O [`Connection`] through [`drive`], which reads the socket,
//! feeds the bytes in, writes out what the connection queued (pongs, the
//! answering Close), pings a quiet client, closes an idle one (1001) and
//! drops one that does not answer a Close in time.
//!
//! What differs between endpoints is an [`Endpoint`]: what it does with a
//! message, and where the bytes go out (straight to the socket, or through
//! the hub's [`Peer`](crate::hub::peer::Peer), which other threads write to
//! as well).
//!
//! The thread parks in `read` inside [`drive`]'s frame for the life of the
//! connection, so that frame stays small: bytes are read into a 1 KiB
//! buffer on the stack (a heap buffer of [`BIG_READ`] only for an endpoint
//! that asks for it, while a burst lasts), and the stack pages a burst of
//! messages touched are given back when the connection next goes quiet
//! (`sys::trim_stack`; tests/stack.rs).

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::ws::{CloseCode, Connection, ConnectionState, Decoded, Message};

/// Bytes read at a time. Small, because it lives on each connection
/// thread's stack and most connections are idle; a large message simply
/// takes a few more reads.
pub const READ_BUF: usize = 1024;

/// Bytes read at a time while a burst lasts, for an endpoint that reads in
/// large pieces ([`Endpoint::BIG_READS`]): on the heap, and only until a
/// read comes back less than half full.
pub const BIG_READ: usize = 64 * 1024;

/// The shortest time the driver waits in `read` before it looks at the
/// clock (to ping, to notice idleness and close timeouts).
pub const MIN_WAKE: Duration = Duration::from_millis(20);

/// The driver's clock: when to ping, when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence after which the server pings (once per silence).
    pub ping_interval: Duration,
    /// Silence after which the server closes with 1001 (pongs count as
    /// life).
    pub idle_timeout: Duration,
    /// How long a Close of ours may wait for the peer's.
    pub close_timeout: Duration,
}

impl Timeouts {
    /// How long one `read` may wait: a third of the shortest timeout, so
    /// that each fires close to its time, and at least [`MIN_WAKE`].
    pub fn wake_every(&self) -> Duration {
        self.ping_interval
            .min(self.idle_timeout)
            .min(self.close_timeout)
            .checked_div(3)
            .unwrap_or_default()
            .max(MIN_WAKE)
    }
}

/// What an endpoint wants after handling some input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Close with this code and reason (then wait for the peer's Close, at
    /// most the close timeout).
    Close(CloseCode, &'static str),
    /// Stop reading now (the hub is gone, the socket failed).
    Stop,
}

/// What one kind of connection does with what the driver reads, and where
/// the bytes it writes go.
pub trait Endpoint {
    /// Whether to read in pieces of [`BIG_READ`] while a burst lasts (for an
    /// endpoint that answers big messages quickly, such as `/echo`).
    const BIG_READS: bool = false;

    /// Bytes as they arrived, before the codec sees them (`/inspect`
    /// dissects them; the hub counts them).
    fn arrived(&mut self, _conn: &mut Connection, _bytes: &[u8]) -> Flow {
        Flow::Continue
    }

    /// A text or binary message: lent in place when it came whole in one
    /// frame. What the endpoint sends goes through `conn` and out after it
    /// returns.
    fn message(&mut self, conn: &mut Connection, message: Decoded<'_>) -> Flow;

    /// Write bytes the connection queued. `closing` is set when they are
    /// this side's Close (with its code and reason), which is all they are
    /// then.
    fn write(&mut self, bytes: Vec<u8>, closing: Option<(CloseCode, &str)>) -> io::Result<()>;

    /// When this side's Close went out, if it did (the hub may send one of
    /// its own, through the same writer).
    fn closing_since(&self) -> Option<Instant>;
}

/// A connection being driven: the state machine, the endpoint, the clock.
struct Driver<'e, E> {
    conn: Connection,
    endpoint: &'e mut E,
    last_heard: Instant,
    pinged: bool,
    /// The code of the Close this side sent, if it sent one.
    sent: Option<CloseCode>,
}

impl<E: Endpoint> Driver<'_, E> {
    /// Write out what the connection queued (not a Close of ours).
    fn flush(&mut self) -> io::Result<()> {
        if self.conn.has_output() {
            let out = self.conn.take_output();
            self.endpoint.write(out, None)?;
        }
        Ok(())
    }

    /// Write out the Close the connection just queued, with its code and
    /// reason.
    fn flush_close(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.sent = Some(code);
        let out = self.conn.take_output();
        self.endpoint.write(out, Some((code, reason)))
    }

    /// Start the closing handshake (nothing if a Close was sent already).
    fn close(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.flush()?;
        if self.conn.close_sent() {
            return Ok(());
        }
        self.conn.close(code, reason);
        self.flush_close(code, reason)
    }

    /// Act on what the endpoint asked for: `true` to go on reading.
    fn follow(&mut self, flow: Flow) -> bool {
        match flow {
            Flow::Continue => self.flush().is_ok(),
            Flow::Close(code, reason) => self.close(code, reason).is_ok(),
            Flow::Stop => {
                let _ = self.flush();
                false
            }
        }
    }

    /// Feed bytes that arrived; `true` to go on reading.
    fn feed(&mut self, bytes: &mut [u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let flow = self.endpoint.arrived(&mut self.conn, bytes);
        if !self.follow(flow) {
            return false;
        }
        let mut at = 0;
        while at < bytes.len() && self.conn.state() != ConnectionState::Closed {
            let was_closing = self.conn.close_sent();
            let (used, decoded) = match self.conn.receive_in_place(&mut bytes[at..]) {
                Ok(got) => got,
                Err(e) => {
                    log::debug!("failing the connection: {e} (close {})", e.close_code());
                    if !was_closing {
                        let _ = self.flush_close(e.close_code(), &e.to_string());
                    }
                    return false;
                }
            };
            at += used;
            let flow = match decoded {
                None if used == 0 => break,
                None => Flow::Continue,
                Some(Decoded::Message(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
                Some(Decoded::Message(Message::Close(frame))) => {
                    // The connection queued the answering Close (§5.5.1).
                    if !was_closing {
                        let code = frame.map_or(CloseCode::NO_STATUS, |f| f.code);
                        let _ = self.flush_close(code, "");
                    }
                    return false;
                }
                // Once this side has sent its Close, what still arrives is
                // read (for the peer's Close) but not delivered.
                Some(_) if was_closing => Flow::Continue,
                Some(message) => self.endpoint.message(&mut self.conn, message),
            };
            if !self.follow(flow) {
                return false;
            }
        }
        self.conn.state() != ConnectionState::Closed
    }

    /// The read timed out: ping, close an idle connection, or give up on a
    /// Close that was not answered. `true` to go on reading.
    fn quiet(&mut self, timeouts: &Timeouts) -> bool {
        if self
            .endpoint
            .closing_since()
            .is_some_and(|t| t.elapsed() >= timeouts.close_timeout)
        {
            return false;
        }
        let silent = self.last_heard.elapsed();
        if silent >= timeouts.idle_timeout {
            return self.close(CloseCode::GOING_AWAY, "idle timeout").is_ok();
        }
        if silent >= timeouts.ping_interval && !self.pinged && !self.conn.close_sent() {
            self.pinged = true;
            let _ = self.conn.send(&Message::Ping(Vec::new()));
            return self.flush().is_ok();
        }
        true
    }
}

/// Run `conn` on `stream` for `endpoint` until the connection is over: the
/// Close exchanged, failed, timed out, or the peer gone. `leftover` holds
/// bytes that came with the handshake. Returns the code of the Close this
/// side sent (its own, or the answer to the peer's), if it sent one.
///
/// The caller ends the TCP connection afterwards (`server::finish`).
pub fn drive<E: Endpoint>(
    stream: &TcpStream,
    leftover: &mut [u8],
    conn: Connection,
    endpoint: &mut E,
    timeouts: Timeouts,
) -> Option<CloseCode> {
    let mut driver = Driver {
        conn,
        endpoint,
        last_heard: Instant::now(),
        pinged: false,
        sent: None,
    };
    let _ = stream.set_read_timeout(Some(timeouts.wake_every()));
    // The handshake went deep into the stack; a parked reader does not.
    crate::sys::trim_stack();
    let mut open = driver.feed(leftover);
    let mut buf = [0u8; READ_BUF];
    let mut big: Vec<u8> = Vec::new();
    // Whether the thread has gone deeper than its parked frames since the
    // last trim (decoding, handling a message, pinging).
    let mut went_deep = !leftover.is_empty();
    while open {
        let read = if big.is_empty() {
            (&*stream).read(&mut buf)
        } else {
            (&*stream).read(&mut big)
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                driver.last_heard = Instant::now();
                driver.pinged = false;
                went_deep = true;
                if big.is_empty() {
                    if E::BIG_READS && n == READ_BUF {
                        // A burst or a big message: read in large pieces.
                        big = vec![0; BIG_READ];
                    }
                    open = driver.feed(&mut buf[..n]);
                } else {
                    open = driver.feed(&mut big[..n]);
                    if n < BIG_READ / 2 {
                        big = Vec::new();
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Quiet for a while: give back the stack pages the last
                // messages touched, as after the handshake.
                if std::mem::take(&mut went_deep) {
                    crate::sys::trim_stack();
                }
                let pinged = driver.pinged;
                open = driver.quiet(&timeouts);
                went_deep |= driver.pinged != pinged;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    driver.sent
}

/// An [`Endpoint`]'s writer straight to the socket, for an endpoint served
/// on the connection's own thread (`/echo`, `/inspect`).
#[derive(Debug)]
pub struct Direct<'s> {
    stream: &'s TcpStream,
    closing_since: Option<Instant>,
}

impl<'s> Direct<'s> {
    /// Write to `stream`.
    pub fn new(stream: &'s TcpStream) -> Direct<'s> {
        Direct {
            stream,
            closing_since: None,
        }
    }

    /// Write `bytes` (see [`Endpoint::write`]).
    pub fn write(&mut self, bytes: &[u8], closing: bool) -> io::Result<()> {
        if closing {
            self.closing_since = Some(Instant::now());
        }
        io::Write::write_all(&mut &*self.stream, bytes)
    }

    /// See [`Endpoint::closing_since`].
    pub fn closing_since(&self) -> Option<Instant> {
        self.closing_since
    }
}
