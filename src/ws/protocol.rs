//! The connection state machine, RFC 6455 §5.5 and §7: answering pings,
//! the close handshake, and failing the connection on a broken rule.
//!
//! [`Connection`] is sans-I/O like the rest of `ws`: the caller hands it the
//! bytes it read ([`Connection::receive`]) and writes out whatever
//! [`Connection::take_output`] gives back. It never touches a socket or a
//! clock, so the same core serves the blocking [`crate::WebSocket`], the
//! server, tests, fuzz targets and docs.
//!
//! ```
//! use wschat::ws::{Connection, Limits, Message, Role};
//! let mut conn = Connection::new(Role::Server, Limits::default());
//! // A masked ping "Hello" from a client (RFC 6455 §5.7 with a mask).
//! let mut input: &[u8] = &[0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! assert_eq!(conn.receive(&mut input), Ok(Some(Message::Ping(b"Hello".to_vec()))));
//! // The pong with the same payload is already queued, unmasked (§5.7).
//! assert_eq!(conn.take_output(), [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
//! ```

use super::Role;
use super::close::{CloseCode, CloseFrame};
use super::deflate::{Agreement, CompressFn, Compressor, Encoding, encode_compressed_frame, store};
use super::error::ProtocolError;
use super::frame::{OpCode, encode_frame};
use super::message::{Decoded, Decoder, Limits, Message};

/// Where a connection is in its life (§4, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Messages flow both ways.
    Open,
    /// This side sent a Close and waits for the peer's.
    Closing,
    /// Both Close frames were exchanged, or the connection failed: the TCP
    /// connection should be closed (by the server first, §7.1.1).
    Closed,
}

/// Sending after this side has sent a Close frame is not allowed (§5.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyClosing;

impl std::fmt::Display for AlreadyClosing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the connection is closing: nothing more may be sent")
    }
}

impl std::error::Error for AlreadyClosing {}

/// The sans-I/O WebSocket connection for one role.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    decoder: Decoder,
    state: ConnectionState,
    close_sent: bool,
    out: Vec<u8>,
    mask_source: fn() -> [u8; 4],
    /// permessage-deflate, when negotiated (RFC 7692).
    deflate: Option<Deflate>,
}

/// The sending side of permessage-deflate on one connection.
#[derive(Debug)]
struct Deflate {
    agreement: Agreement,
    /// Messages shorter than this go uncompressed.
    min_size: usize,
    /// Where compressing happens: `compress`, or else a compressor of the
    /// connection's own, made at the first message worth compressing and
    /// then kept.
    compress: Option<CompressFn>,
    compressor: Option<Box<Compressor>>,
}

impl Connection {
    /// A connection in `role` after a successful handshake. Masks for the
    /// client role come from [`super::mask::random_key`].
    pub fn new(role: Role, limits: Limits) -> Connection {
        Connection {
            role,
            decoder: Decoder::new(role, limits),
            state: ConnectionState::Open,
            close_sent: false,
            out: Vec::new(),
            mask_source: super::mask::random_key,
            deflate: None,
        }
    }

    /// Speak permessage-deflate as `agreement` says (RFC 7692): accept
    /// compressed messages, and compress text and binary messages of at
    /// least `min_size` bytes when that makes them smaller (see
    /// [`Agreement::encoding`]). Each message is compressed on its own (no
    /// context takeover), by `compress` if given, else by a compressor of
    /// the connection's own, made at the first such message and kept.
    pub fn set_deflate(
        &mut self,
        agreement: Agreement,
        min_size: usize,
        compress: Option<CompressFn>,
    ) {
        self.decoder.set_deflate(true);
        self.deflate = Some(Deflate {
            agreement,
            min_size,
            compress,
            compressor: None,
        });
    }

    /// What permessage-deflate was agreed to, if it was (see
    /// [`Connection::set_deflate`]).
    pub fn deflate(&self) -> Option<Agreement> {
        self.deflate.as_ref().map(|d| d.agreement)
    }

    /// Accept compressed messages (RFC 7692 §6) but send every frame as it
    /// is: for a side whose messages are compressed elsewhere (the server's
    /// hub compresses each message once, for everyone it goes to).
    pub fn set_inflate(&mut self) {
        self.decoder.set_deflate(true);
    }

    /// Use `source` for the masking keys of a client (tests fix the key to
    /// compare bytes with the RFC's examples).
    pub fn with_mask_source(mut self, source: fn() -> [u8; 4]) -> Connection {
        self.mask_source = source;
        self
    }

    /// The role of this side.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Bytes the decoder holds for a message in progress.
    pub fn buffered_bytes(&self) -> usize {
        self.decoder.buffered_bytes()
    }

    /// Feed bytes read from the peer; returns the next message, if one is
    /// complete (see [`Decoder::decode`] for how `input` is consumed).
    ///
    /// Replies are queued for [`Connection::take_output`] on the way: a pong
    /// for each ping, the answering Close for a Close, and for a broken rule
    /// a Close with the rule's code (§7.1.7), after which the connection is
    /// [`ConnectionState::Closed`] and reads nothing more.
    pub fn receive(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ProtocolError> {
        let result = self.decoder.decode(input);
        self.answer(result)
    }

    /// Like [`Connection::receive`], through [`Decoder::decode_in_place`]: a
    /// text or binary message that arrived as one whole frame in `input` is
    /// unmasked there and lent out rather than copied. Returns the bytes of
    /// `input` consumed and what they gave; replies are queued as `receive`
    /// queues them.
    ///
    /// ```
    /// use wschat::ws::{Connection, Decoded, Limits, Role};
    /// let mut conn = Connection::new(Role::Server, Limits::default());
    /// let mut buf = [0x82, 0x83, 1, 2, 3, 4, 1, 2, 3]; // binary 00 00 00, masked
    /// let (used, got) = conn.receive_in_place(&mut buf).unwrap();
    /// assert_eq!((used, got), (9, Some(Decoded::Binary(&[0, 0, 0]))));
    /// ```
    pub fn receive_in_place<'a>(
        &mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Decoded<'a>>), ProtocolError> {
        let len = input.len();
        match self.decoder.decode_in_place(input) {
            Ok((used, Some(Decoded::Message(message)))) => {
                let message = self.answer(Ok(Some(message)))?;
                Ok((used, message.map(Decoded::Message)))
            }
            Ok(lent) => Ok(lent),
            // After an error the decoder discards everything (as decode does).
            Err(error) => self.answer(Err(error)).map(|_| (len, None)),
        }
    }

    /// Queue what a decoded frame calls for (§5.5: a pong for a ping, the
    /// answering Close; §7.1.7: a Close with the code of a broken rule).
    fn answer(
        &mut self,
        result: Result<Option<Message>, ProtocolError>,
    ) -> Result<Option<Message>, ProtocolError> {
        match result {
            Ok(Some(Message::Ping(payload))) => {
                if !self.close_sent {
                    self.queue(&Message::Pong(payload.clone()));
                }
                Ok(Some(Message::Ping(payload)))
            }
            Ok(Some(Message::Close(frame))) => {
                if !self.close_sent {
                    // Echo the status code (§5.5.1); no code → empty close.
                    let reply = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                    self.queue(&Message::Close(reply));
                    self.close_sent = true;
                }
                self.state = ConnectionState::Closed;
                Ok(Some(Message::Close(frame)))
            }
            Ok(other) => Ok(other),
            Err(error) => {
                if !self.close_sent {
                    let reason = error.to_string();
                    self.queue(&Message::Close(Some(CloseFrame::new(
                        error.close_code(),
                        &reason,
                    ))));
                    self.close_sent = true;
                }
                self.state = ConnectionState::Closed;
                Err(error)
            }
        }
    }

    /// Queue a message (or a ping or pong) for sending.
    pub fn send(&mut self, message: &Message) -> Result<(), AlreadyClosing> {
        if self.close_sent {
            return Err(AlreadyClosing);
        }
        if let Message::Close(frame) = message {
            let (code, reason) = match frame {
                Some(f) => (f.code, f.reason.as_str()),
                None => (CloseCode::NO_STATUS, ""),
            };
            self.close(code, reason);
            return Ok(());
        }
        self.queue(message);
        Ok(())
    }

    /// Queue a text message from a borrowed string, such as one lent by
    /// [`Connection::receive_in_place`] (no [`Message`] is built).
    pub fn send_text(&mut self, text: &str) -> Result<(), AlreadyClosing> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Queue a binary message from borrowed bytes.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), AlreadyClosing> {
        self.send_data(OpCode::Binary, data)
    }

    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), AlreadyClosing> {
        if self.close_sent {
            return Err(AlreadyClosing);
        }
        self.queue_frame(opcode, payload);
        Ok(())
    }

    /// Start the closing handshake (§7.1.2) with `code` and `reason`. A code
    /// that may not go on the wire (such as 1005) sends an empty Close.
    /// Does nothing if a Close was already sent.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.close_sent {
            return;
        }
        let frame = code
            .is_allowed_on_wire()
            .then(|| CloseFrame::new(code, reason));
        self.queue(&Message::Close(frame));
        self.close_sent = true;
        if self.state == ConnectionState::Open {
            self.state = ConnectionState::Closing;
        }
    }

    /// Whether a Close frame was sent (nothing more may be sent).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Bytes waiting to be written to the peer, if any.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Take the bytes to write to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn queue(&mut self, message: &Message) {
        self.queue_frame(message.opcode(), &message.payload());
    }

    /// Encode one final frame into the output, masked if this is a client
    /// (§5.1, §5.3).
    fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = match self.role {
            Role::Client => Some((self.mask_source)()),
            Role::Server => None,
        };
        let start = self.out.len();
        if !self.queue_compressed(opcode, payload, mask) {
            encode_frame(&mut self.out, true, opcode, payload, mask);
        }
        if log::log_enabled!(target: "wschat::ws", log::Level::Trace)
            && let Some((header, _)) = super::frame::FrameHeader::parse(&self.out[start..])
        {
            log::trace!(target: "wschat::ws", "frame out: {}", header.line(Some(payload)));
        }
    }
}

impl Connection {
    /// Queue a text or binary message compressed (RFC 7692 §7.2.1), if
    /// deflate is on, the message is long enough, the peer's window allows
    /// it, and compressing makes it smaller. Returns whether it did. Never
    /// inlined into the read loops that send echoes: see
    /// [`Compressor::new`].
    #[inline(never)]
    fn queue_compressed(&mut self, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> bool {
        let Some(deflate) = self.deflate.as_mut() else {
            return false;
        };
        if !matches!(opcode, OpCode::Text | OpCode::Binary) {
            return false;
        }
        let mut packed = Vec::new();
        match deflate.agreement.encoding(payload.len(), deflate.min_size) {
            Encoding::Plain => return false,
            Encoding::Deflate { if_smaller } => {
                let done = match deflate.compress {
                    Some(compress) => compress(payload, &mut packed),
                    None => deflate
                        .compressor
                        .get_or_insert_with(Default::default)
                        .compress(payload, &mut packed),
                };
                if !done || if_smaller && packed.len() >= payload.len() {
                    return false;
                }
            }
            Encoding::Stored => store(payload, &mut packed),
        }
        encode_compressed_frame(&mut self.out, opcode, &packed, mask);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{OpCode, encode_frame};

    fn masked(op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, true, op, payload, Some([5, 6, 7, 8]));
        out
    }

    #[test]
    fn close_is_echoed_with_the_same_code_then_closed() {
        let mut conn = Connection::new(Role::Server, Limits::default());
        let bytes = masked(OpCode::Close, &[0x0f, 0xa1, b'x']); // 4001
        let mut input = bytes.as_slice();
        let got = conn.receive(&mut input).unwrap();
        assert_eq!(
            got,
            Some(Message::Close(Some(CloseFrame::new(CloseCode(4001), "x"))))
        );
        assert_eq!(conn.take_output(), [0x88, 0x02, 0x0f, 0xa1]);
        assert_eq!(conn.state(), ConnectionState::Closed);
        assert_eq!(
            conn.send(&Message::Text("late".into())),
            Err(AlreadyClosing)
        );
    }

    #[test]
    fn a_broken_rule_queues_a_close_with_its_code() {
        let mut conn = Connection::new(Role::Server, Limits::default());
        let mut unmasked = Vec::new();
        encode_frame(&mut unmasked, true, OpCode::Text, b"hi", None);
        let mut input = unmasked.as_slice();
        assert_eq!(conn.receive(&mut input), Err(ProtocolError::UnmaskedFrame));
        let out = conn.take_output();
        assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xea]); // 1002
        assert_eq!(conn.state(), ConnectionState::Closed);
    }

    #[test]
    fn client_frames_are_masked_with_the_mask_source() {
        let mut conn = Connection::new(Role::Client, Limits::default())
            .with_mask_source(|| [0x37, 0xfa, 0x21, 0x3d]);
        conn.send(&Message::Text("Hello".into())).unwrap();
        assert_eq!(
            conn.take_output(),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        conn.close(CloseCode::NORMAL, "");
        assert_eq!(conn.state(), ConnectionState::Closing);
    }
}
