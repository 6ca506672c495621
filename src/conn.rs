//! A blocking WebSocket over any `Read + Write`, for both roles.
//!
//! [`WebSocket`] is the thin I/O shell around the sans-I/O
//! [`crate::ws::Connection`]: it reads bytes from the stream and feeds them
//! in, and writes out whatever the connection queued (pongs, the answering
//! Close, the messages you send).

use std::io::{self, Read, Write};

use crate::ws::{CloseCode, Connection, Limits, Message, ProtocolError, Role, State};

/// Bytes read at a time while data streams in (a burst, a big message).
pub const READ_CHUNK: usize = 64 * 1024;
/// Bytes read at a time otherwise, into a buffer on the stack: an idle
/// connection holds no read buffer at all.
pub const STACK_CHUNK: usize = 1024;

/// What can go wrong on a WebSocket.
#[derive(Debug)]
pub enum Error {
    /// The stream failed (a timeout shows up here as `WouldBlock`/`TimedOut`).
    Io(io::Error),
    /// The peer broke a rule; a Close with its code was sent.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(String),
    /// The URL could not be used.
    Url(String),
    /// The close handshake is over (or the stream ended): nothing more
    /// will be read.
    ConnectionClosed,
    /// A Close was sent already, so nothing more may be sent.
    AlreadyClosing,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Url(e) => write!(f, "bad URL: {e}"),
            Error::ConnectionClosed => write!(f, "connection closed"),
            Error::AlreadyClosing => write!(f, "the connection is closing"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// A WebSocket on a blocking stream.
///
/// ```
/// use std::io::Cursor;
/// use wschat::{WebSocket, ws::{Message, Role}};
/// // A server reading the RFC 6455 §5.7 masked "Hello" from an in-memory stream.
/// let bytes = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let mut ws = WebSocket::new(Cursor::new(bytes), Role::Server, Default::default());
/// assert_eq!(ws.read_message().unwrap(), Message::Text("Hello".into()));
/// ```
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    buf: Vec<u8>,
    pos: usize,
    /// The last read filled its buffer: read in large pieces for now.
    big: bool,
    close_seen: bool,
}

impl<S: Read + Write> WebSocket<S> {
    /// Wrap a stream whose handshake is done.
    pub fn new(stream: S, role: Role, limits: Limits) -> WebSocket<S> {
        WebSocket::with_leftover(stream, role, limits, &[])
    }

    /// Wrap a stream whose handshake is done, where `leftover` holds bytes
    /// already read after the handshake (the peer's first frames).
    pub fn with_leftover(stream: S, role: Role, limits: Limits, leftover: &[u8]) -> WebSocket<S> {
        WebSocket {
            stream,
            conn: Connection::new(role, limits),
            buf: leftover.to_vec(),
            pos: 0,
            big: false,
            close_seen: false,
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably (to set timeouts, say).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The sans-I/O connection inside.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.conn.state()
    }

    /// Read the next message. Pings are answered on the way (and returned,
    /// so the caller sees them); a Close is answered and returned once,
    /// after which every call returns [`Error::ConnectionClosed`].
    pub fn read_message(&mut self) -> Result<Message, Error> {
        loop {
            if self.close_seen || self.conn.state() == State::Closed {
                return Err(Error::ConnectionClosed);
            }
            if self.pos < self.buf.len() {
                let mut input = &self.buf[self.pos..];
                let result = self.conn.receive(&mut input);
                self.pos = self.buf.len() - input.len();
                if self.pos == self.buf.len() && !self.big {
                    // Consumed: a quiet connection keeps no heap buffer.
                    self.buf = Vec::new();
                    self.pos = 0;
                }
                if let Some(done) = self.after_receive(result)? {
                    return Ok(done);
                }
                continue;
            }
            self.pos = 0;
            if self.big {
                // A burst or a big message: read in large pieces.
                self.buf.resize(READ_CHUNK, 0);
                let n = match self.stream.read(&mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        self.buf.clear();
                        continue;
                    }
                    Err(e) => {
                        self.buf.clear();
                        return Err(Error::Io(e));
                    }
                };
                self.buf.truncate(n);
                if n == 0 {
                    return Err(Error::ConnectionClosed);
                }
                if n < READ_CHUNK / 2 {
                    self.big = false;
                }
                continue;
            }
            // Small reads go through the stack; only what a message leaves
            // over is kept on the heap.
            let mut stack = [0u8; STACK_CHUNK];
            let n = match self.stream.read(&mut stack) {
                Ok(n) => n,
                // A signal arrived while waiting: nothing was read, wait again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            if n == 0 {
                return Err(Error::ConnectionClosed);
            }
            self.big = n == STACK_CHUNK;
            let mut input = &stack[..n];
            let result = self.conn.receive(&mut input);
            if !input.is_empty() {
                self.buf = input.to_vec();
            }
            if let Some(done) = self.after_receive(result)? {
                return Ok(done);
            }
        }
    }

    /// Flush replies, and turn a decoding result into what `read_message`
    /// returns (`None`: keep reading).
    fn after_receive(
        &mut self,
        result: Result<Option<Message>, ProtocolError>,
    ) -> Result<Option<Message>, Error> {
        self.flush()?;
        match result {
            Ok(Some(message)) => {
                if matches!(message, Message::Close(_)) {
                    self.close_seen = true;
                }
                Ok(Some(message))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Error::Protocol(e)),
        }
    }

    /// Send a message (text, binary, ping, pong; a Close starts the close
    /// handshake).
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.conn
            .send(&message)
            .map_err(|_| Error::AlreadyClosing)?;
        self.flush()?;
        Ok(())
    }

    /// Start the close handshake. Keep calling [`WebSocket::read_message`]
    /// until it returns [`Error::ConnectionClosed`] to see the peer's Close.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason);
        self.flush()?;
        Ok(())
    }

    /// Write out anything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.conn.has_output() {
            let out = self.conn.take_output();
            self.stream.write_all(&out)?;
            self.stream.flush()?;
        }
        Ok(())
    }

    /// Give back the stream.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Take it apart: the stream, the sans-I/O connection, and bytes read
    /// but not yet decoded.
    pub fn into_parts(self) -> (S, Connection, Vec<u8>) {
        let rest = self.buf[self.pos..].to_vec();
        (self.stream, self.conn, rest)
    }
}
