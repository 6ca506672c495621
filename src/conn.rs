//! A blocking WebSocket over any `Read + Write`, for both roles.
//!
//! [`WebSocket`] is the thin I/O shell around the sans-I/O
//! [`crate::ws::Connection`]: it reads bytes from the stream and feeds them
//! in, and writes out whatever the connection queued (pongs, the answering
//! Close, the messages you send).

use std::io::{self, Read, Write};

use crate::ws::{
    CloseCode, Connection, ConnectionState, Decoded, Limits, Message, ProtocolError, Role,
};

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

    /// Speak permessage-deflate as negotiated (RFC 7692); see
    /// [`Connection::set_deflate`].
    pub fn set_deflate(
        &mut self,
        agreement: crate::ws::deflate::Agreement,
        min_size: usize,
        compress: Option<crate::ws::deflate::CompressFn>,
    ) {
        self.conn.set_deflate(agreement, min_size, compress);
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        self.conn.state()
    }

    /// Read the next message. Pings are answered on the way (and returned,
    /// so the caller sees them); a Close is answered and returned once,
    /// after which every call returns [`Error::ConnectionClosed`].
    pub fn read_message(&mut self) -> Result<Message, Error> {
        self.next(|conn, buf| {
            let mut input: &[u8] = buf;
            let message = conn.receive(&mut input)?;
            Ok((buf.len() - input.len(), message))
        })
    }

    /// Read the next message and hand it to `handle`, with the connection
    /// to queue replies on (they are written when `handle` returns). A text
    /// or binary message that arrived as one whole frame in one read is
    /// lent from the read buffer, unmasked in place, rather than copied into
    /// a message of its own ([`Connection::receive_in_place`]); anything else
    /// comes as [`Decoded::Message`], as [`WebSocket::read_message`] gives
    /// it. Errors and the end of the connection are as for `read_message`.
    ///
    /// ```
    /// use std::io::Cursor;
    /// use wschat::{WebSocket, ws::{Decoded, Message, Role}};
    /// let bytes = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// let mut ws = WebSocket::new(Cursor::new(bytes), Role::Server, Default::default());
    /// let echoed = ws.read_in_place(|decoded, conn| match decoded {
    ///     Decoded::Text(text) => conn.send_text(text).is_ok(),
    ///     _ => false,
    /// });
    /// assert!(echoed.unwrap());
    /// // The echo went out: an unmasked text frame "Hello".
    /// assert_eq!(&ws.get_ref().get_ref()[11..], b"\x81\x05Hello");
    /// ```
    pub fn read_in_place<R>(
        &mut self,
        handle: impl FnOnce(Decoded<'_>, &mut Connection) -> R,
    ) -> Result<R, Error> {
        let mut handle = Some(handle);
        self.next(|conn, buf| {
            let (used, decoded) = conn.receive_in_place(buf)?;
            // `next` returns at the first result, so `handle` runs once.
            let result = decoded.and_then(|decoded| handle.take().map(|h| h(decoded, conn)));
            Ok((used, result))
        })
    }

    /// The read loop shared by both ways of reading: feed `decode` the
    /// bytes at hand (it returns how many it consumed and, when one is
    /// complete, its result), reading more when they run out. Output the
    /// connection queued is written after each call.
    fn next<R>(
        &mut self,
        mut decode: impl FnMut(&mut Connection, &mut [u8]) -> Result<(usize, Option<R>), ProtocolError>,
    ) -> Result<R, Error> {
        loop {
            // Closed: the peer's Close was returned already (§5.5.1: it is
            // the last thing a peer may send), or the connection failed.
            if self.conn.state() == ConnectionState::Closed {
                return Err(Error::ConnectionClosed);
            }
            if self.pos < self.buf.len() {
                let result = decode(&mut self.conn, &mut self.buf[self.pos..]);
                if let Ok((used, _)) = result {
                    self.pos += used;
                } else {
                    self.pos = self.buf.len();
                }
                if self.pos == self.buf.len() && !self.big {
                    // Consumed: a quiet connection keeps no heap buffer.
                    self.buf = Vec::new();
                    self.pos = 0;
                }
                if let Some(done) = self.after_receive(result.map(|(_, r)| r))? {
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
            let result = decode(&mut self.conn, &mut stack[..n]);
            if let Ok((used, _)) = result
                && used < n
            {
                self.buf = stack[used..n].to_vec();
            }
            if let Some(done) = self.after_receive(result.map(|(_, r)| r))? {
                return Ok(done);
            }
        }
    }

    /// Flush replies, and turn a decoding result into what the read loop
    /// returns (`None`: keep reading).
    fn after_receive<R>(
        &mut self,
        result: Result<Option<R>, ProtocolError>,
    ) -> Result<Option<R>, Error> {
        self.flush()?;
        result.map_err(Error::Protocol)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{OpCode, encode_frame};
    use std::io::Cursor;

    /// Two messages back to back, read both ways: whole frames that fit a
    /// read are lent, others (past the stack buffer, or cut by a read) are
    /// assembled, and each way sees the same messages.
    #[test]
    fn reading_in_place_and_reading_messages_agree_at_every_size() {
        for len in [0, 5, 125, 126, 1000, 1010, 1020, 1024, 2000, 70_000] {
            let mut bytes = Vec::new();
            let first = vec![b'a'; len];
            encode_frame(&mut bytes, true, OpCode::Text, &first, Some([1, 2, 3, 4]));
            encode_frame(
                &mut bytes,
                true,
                OpCode::Binary,
                &[7; 3],
                Some([5, 6, 7, 8]),
            );
            let mut owned =
                WebSocket::new(Cursor::new(bytes.clone()), Role::Server, Limits::default());
            let mut lent = WebSocket::new(Cursor::new(bytes), Role::Server, Limits::default());
            for _ in 0..2 {
                let want = owned.read_message().unwrap();
                let got = lent.read_in_place(|d, _| d.into_message()).unwrap();
                assert_eq!(got, want, "message of {len} bytes");
            }
            assert!(matches!(
                lent.read_in_place(|_, _| ()),
                Err(Error::ConnectionClosed)
            ));
        }
    }
}
