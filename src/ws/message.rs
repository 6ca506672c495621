//! Messages, RFC 6455 §5.4-§5.6: the streaming decoder that turns bytes into
//! messages, and the encoder that turns messages into frames.
//!
//! The [`Decoder`] is fed whatever bytes the socket produced, in pieces of
//! any size. It never waits and never asks for a whole frame to be buffered:
//! payload bytes are unmasked as they arrive and appended straight to the
//! message being assembled, and text is validated as it grows, so that
//!
//! * memory is bounded by the message limit, not by what a header claims
//!   (a frame that declares 2^63 bytes allocates nothing);
//! * invalid UTF-8 is caught at the first bad byte, even in the middle of a
//!   fragmented message (§8.1 "fail fast");
//! * control frames (ping, pong, close) may arrive between the fragments of a
//!   message and are returned at once (§5.4).

use super::Role;
use super::close::CloseFrame;
use super::deflate::{InflateError, Inflater, RSV1};
use super::error::ProtocolError;
use super::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, encode_frame};
use super::mask::{apply_mask, extend_masked};
use super::utf8::Utf8Validator;

/// A WebSocket message, or a control frame, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (opcode 0x1), valid UTF-8.
    Text(String),
    /// A binary message (opcode 0x2).
    Binary(Vec<u8>),
    /// A ping (0x9) and its payload of at most 125 bytes.
    Ping(Vec<u8>),
    /// A pong (0xA) and its payload.
    Pong(Vec<u8>),
    /// A close frame (0x8); `None` when it carried no status code.
    Close(Option<CloseFrame>),
}

impl Message {
    /// The opcode of the (first) frame that carries this message.
    pub fn opcode(&self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
            Message::Ping(_) => OpCode::Ping,
            Message::Pong(_) => OpCode::Pong,
            Message::Close(_) => OpCode::Close,
        }
    }

    /// The payload bytes as they go on the wire (before masking).
    pub fn payload(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Message::Text(t) => t.as_bytes().into(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.as_slice().into(),
            Message::Close(None) => Vec::new().into(),
            Message::Close(Some(frame)) => frame.to_payload().into(),
        }
    }

    /// Append this message as one frame to `out`, masked with `mask` if given
    /// (clients must mask, servers must not: §5.1).
    ///
    /// ```
    /// use wschat::ws::Message;
    /// let mut out = Vec::new();
    /// Message::Text("Hello".into()).encode(&mut out, None);
    /// assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>, mask: Option<[u8; 4]>) {
        encode_frame(out, true, self.opcode(), &self.payload(), mask);
    }
}

/// What [`Decoder::decode_in_place`] gives: a message lent from the input
/// it was found in, or one the decoder assembled.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A text message that was one whole frame, unmasked in the input.
    Text(&'a str),
    /// A binary message that was one whole frame, unmasked in the input.
    Binary(&'a [u8]),
    /// Anything else, as [`Decoder::decode`] returns it.
    Message(Message),
}

impl Decoded<'_> {
    /// An owned [`Message`] (copying a lent payload).
    pub fn into_message(self) -> Message {
        match self {
            Decoded::Text(text) => Message::Text(text.to_string()),
            Decoded::Binary(data) => Message::Binary(data.to_vec()),
            Decoded::Message(message) => message,
        }
    }
}

/// Size limits the decoder enforces, each answered with close code 1009.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest payload one frame may declare.
    pub max_frame_size: usize,
    /// The largest message, all fragments together.
    pub max_message_size: usize,
}

/// Default frame size limit: 1 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 1 << 20;
/// Default message size limit: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// The largest allocation made for a frame before its bytes arrive.
const INITIAL_RESERVE: usize = 64 * 1024;

/// A frame whose header has been read and whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    header: FrameHeader,
    remaining: u64,
    mask_offset: usize,
}

/// Turns bytes from the peer into [`Message`]s. Sans-I/O: it is handed bytes
/// and hands back messages; it never reads a socket or looks at a clock.
///
/// ```
/// use wschat::ws::{Decoder, Limits, Message, Role};
/// let mut decoder = Decoder::new(Role::Client, Limits::default());
/// // RFC 6455 §5.7: a fragmented text message "Hel" + "lo", fed in pieces.
/// let mut input: &[u8] = &[0x01, 0x03, 0x48, 0x65];
/// assert_eq!(decoder.decode(&mut input), Ok(None)); // all consumed, no message yet
/// let mut input: &[u8] = &[0x6c, 0x80, 0x02, 0x6c, 0x6f];
/// assert_eq!(decoder.decode(&mut input), Ok(Some(Message::Text("Hello".into()))));
/// assert!(input.is_empty());
/// ```
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    limits: Limits,
    /// Header bytes gathered so far (a header may be split across reads).
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// The frame whose payload is arriving, if any.
    frame: Option<InFrame>,
    /// The data message being assembled: its opcode and payload so far.
    message: Option<OpCode>,
    data: Vec<u8>,
    utf8: Utf8Validator,
    /// The payload of the control frame being read (at most 125 bytes).
    control: Vec<u8>,
    /// Set after a Close frame or an error: further input is discarded
    /// (§5.5.1, §7.1.7).
    done: bool,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message
    /// (RFC 7692 §6).
    deflate: bool,
    /// The message being assembled is compressed, and this inflates it; it
    /// exists only while such a message is arriving (RFC 7692 §7.2.2).
    inflater: Option<Inflater>,
}

impl Decoder {
    /// A decoder for an endpoint in `role` (a server expects masked frames).
    pub fn new(role: Role, limits: Limits) -> Decoder {
        Decoder {
            role,
            limits,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            data: Vec::new(),
            utf8: Utf8Validator::new(),
            control: Vec::new(),
            done: false,
            deflate: false,
            inflater: None,
        }
    }

    /// Accept compressed messages (RFC 7692 §6): call when the handshake
    /// negotiated permessage-deflate. Without it RSV1 fails the connection
    /// like any reserved bit (§5.2).
    pub fn set_deflate(&mut self, on: bool) {
        self.deflate = on;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the decoder has stopped: a Close frame was received, or the
    /// peer broke a rule. Any further input is discarded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes held by the decoder for a message or frame in progress (the
    /// allocated capacity, which is what costs memory).
    pub fn buffered_bytes(&self) -> usize {
        self.data.capacity() + self.control.capacity()
    }

    /// Consume bytes from the front of `input` until a message is complete
    /// or `input` is empty.
    ///
    /// * `Ok(Some(message))`: a message or control frame; `input` now starts
    ///   after it and may hold more.
    /// * `Ok(None)`: all of `input` was consumed; more bytes are needed.
    /// * `Err(e)`: the peer broke a rule; fail the connection with
    ///   `e.close_code()`. The decoder then discards everything.
    ///
    /// The common case, a message that is one whole frame lying entirely in
    /// `input`, takes a short way: the payload is unmasked straight into a
    /// message of exactly its size, and a text is checked in one go
    /// (everything the frame could say is there, so failing at its end is
    /// failing as early as possible, §8.1). Everything else is decoded byte
    /// stream style, as it arrives.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ProtocolError> {
        let Some((header, header_len, end)) = self.whole_message_frame(input) else {
            return self.decode_stream(input);
        };
        let mut data = Vec::with_capacity(end - header_len);
        append(&mut data, &input[header_len..end], header.mask, 0);
        *input = &input[end..];
        trace_frame_in(&header, &data);
        if header.opcode == OpCode::Binary {
            return Ok(Some(Message::Binary(data)));
        }
        String::from_utf8(data)
            .map(|text| Some(Message::Text(text)))
            .map_err(|_| {
                self.stop();
                *input = &[];
                ProtocolError::InvalidUtf8
            })
    }

    /// [`Decoder::decode`] without the short way: the bytes as a stream.
    fn decode_stream(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ProtocolError> {
        let result = self.decode_inner(input);
        if result.is_err() {
            self.stop();
            *input = &[];
        }
        result
    }

    /// The peer broke a rule: stop for good and free what was buffered
    /// (§7.1.7).
    fn stop(&mut self) {
        self.done = true;
        self.data = Vec::new();
        self.control = Vec::new();
        self.inflater = None;
    }

    /// Like [`Decoder::decode`], but a whole frame that is a whole message
    /// and lies entirely in `input` is unmasked where it lies and lent out,
    /// instead of being copied into a message of its own: one pass over its
    /// bytes instead of two, and no allocation.
    ///
    /// Returns how many bytes of `input` were consumed, and what they gave.
    /// Anything else (a fragment, a frame cut off by the end of `input`, a
    /// control frame, an error) goes through [`Decoder::decode`] and comes
    /// back as [`Decoded::Message`], with the same results and errors. The
    /// bytes of a lent frame are left unmasked in `input`.
    ///
    /// ```
    /// use wschat::ws::{Decoded, Decoder, Limits, Role};
    /// let mut decoder = Decoder::new(Role::Server, Limits::default());
    /// // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d, then more bytes.
    /// let mut buf = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x89];
    /// let (used, decoded) = decoder.decode_in_place(&mut buf).unwrap();
    /// assert_eq!(used, 11);
    /// assert!(matches!(decoded, Some(Decoded::Text("Hello"))));
    /// assert_eq!(&buf[6..11], b"Hello"); // unmasked where it lay
    /// ```
    pub fn decode_in_place<'a>(
        &mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Decoded<'a>>), ProtocolError> {
        if let Some((header, header_len, end)) = self.whole_message_frame(input) {
            let payload = &mut input[header_len..end];
            if let Some(key) = header.mask {
                apply_mask(payload, key, 0);
            }
            trace_frame_in(&header, payload);
            let payload: &'a [u8] = payload;
            if header.opcode == OpCode::Binary {
                return Ok((end, Some(Decoded::Binary(payload))));
            }
            return match std::str::from_utf8(payload) {
                Ok(text) => Ok((end, Some(Decoded::Text(text)))),
                Err(_) => {
                    self.stop();
                    Err(ProtocolError::InvalidUtf8)
                }
            };
        }
        // Not a whole frame (asked just above): straight to the stream way.
        let mut rest: &[u8] = input;
        let before = rest.len();
        let message = self.decode_stream(&mut rest)?;
        Ok((before - rest.len(), message.map(Decoded::Message)))
    }

    /// If `input` starts with a whole final text or binary frame that
    /// breaks no rule and no message is in progress: its header, the
    /// header's length, and where the frame ends.
    #[inline(always)]
    fn whole_message_frame(&self, input: &[u8]) -> Option<(FrameHeader, usize, usize)> {
        if self.done || self.frame.is_some() || self.message.is_some() || self.header_len != 0 {
            return None;
        }
        let (header, header_len) = FrameHeader::parse(input)?;
        let whole = header.fin
            && header.rsv == 0
            && matches!(header.opcode, OpCode::Text | OpCode::Binary)
            && self.check_frame(&header).is_ok()
            && header.payload_len <= (input.len() - header_len) as u64;
        whole.then(|| (header, header_len, header_len + header.payload_len as usize))
    }

    fn decode_inner(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ProtocolError> {
        loop {
            if self.done {
                *input = &[];
                return Ok(None);
            }
            let Some(mut frame) = self.frame else {
                // Gather the header: copy what we have into the 14-byte
                // buffer and try to parse it.
                let old = self.header_len;
                let take = input.len().min(MAX_HEADER_LEN - old);
                self.header[old..old + take].copy_from_slice(&input[..take]);
                match FrameHeader::parse(&self.header[..old + take]) {
                    None => {
                        self.header_len = old + take;
                        *input = &input[take..];
                        return Ok(None);
                    }
                    Some((header, header_len)) => {
                        *input = &input[header_len - old..];
                        self.header_len = 0;
                        self.start_frame(header)?;
                        continue;
                    }
                }
            };

            // Payload: move what has arrived into place, unmasked.
            let take = (input.len() as u64).min(frame.remaining) as usize;
            let (chunk, rest) = input.split_at(take);
            *input = rest;
            if frame.header.opcode.is_control() {
                frame.mask_offset = append(
                    &mut self.control,
                    chunk,
                    frame.header.mask,
                    frame.mask_offset,
                );
            } else if self.inflater.is_some() {
                frame.mask_offset = self.inflate(chunk, frame.header.mask, frame.mask_offset)?;
            } else {
                let start = self.data.len();
                self.grow_data(take, frame.remaining);
                frame.mask_offset =
                    append(&mut self.data, chunk, frame.header.mask, frame.mask_offset);
                if self.message == Some(OpCode::Text) {
                    self.utf8
                        .feed(&self.data[start..])
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
            }
            frame.remaining -= take as u64;
            if frame.remaining > 0 {
                self.frame = Some(frame);
                return Ok(None);
            }
            self.frame = None;
            if let Some(message) = self.finish_frame(frame.header)? {
                return Ok(Some(message));
            }
        }
    }

    /// The rules a new frame's header must keep, given the message in
    /// progress (§5.2, §5.4, §5.5, and the size limits). Both decoding paths
    /// ask this one function.
    #[inline]
    fn check_frame(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RFC 7692 §6: with permessage-deflate, RSV1 is no longer reserved,
        // but it may mark only the first frame of a data message (§6.1).
        let rsv1 = self.deflate && header.rsv & RSV1 != 0;
        let mut rest = *header;
        if rsv1 {
            rest.rsv &= !RSV1;
        }
        rest.check(self.role)?;
        if rsv1 && !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::MisplacedCompressionBit(header.opcode.name()));
        }
        let compressed = match header.opcode {
            OpCode::Continuation => self.inflater.is_some(),
            _ => rsv1,
        };
        let len = header.payload_len;
        if len > self.limits.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig {
                len,
                limit: self.limits.max_frame_size,
            });
        }
        match header.opcode {
            OpCode::Continuation if self.message.is_none() => {
                return Err(ProtocolError::UnexpectedContinuation);
            }
            OpCode::Text | OpCode::Binary if self.message.is_some() => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        // A compressed message is measured as it inflates (see inflate).
        if !header.opcode.is_control() && !compressed {
            let total = self.data.len() as u64 + len;
            if total > self.limits.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig {
                    len: total,
                    limit: self.limits.max_message_size,
                });
            }
        }
        Ok(())
    }

    /// Apply the rules to a new header and set up for its payload.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        if let Err(e) = self.check_frame(&header) {
            log::trace!(target: "wschat::ws", "frame in: {} rejected: {e}", header);
            return Err(e);
        }
        let len = header.payload_len;
        if matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            self.message = Some(header.opcode);
            self.utf8.reset();
            // Checked above: RSV1 here means permessage-deflate is on.
            if header.rsv & RSV1 != 0 {
                self.inflater = Some(Inflater::new());
            }
        }
        if header.opcode.is_control() {
            // At most 125 bytes (checked above): reserve exactly that, so
            // a control frame read in pieces never over-allocates.
            self.control.clear();
            self.control.reserve_exact(len as usize);
        }
        self.frame = Some(InFrame {
            header,
            remaining: len,
            mask_offset: 0,
        });
        Ok(())
    }

    /// Reserve room for `incoming` more data bytes. Capacity grows by
    /// doubling (at least [`INITIAL_RESERVE`]) but never past what the frame
    /// still declares, so it stays within the message limit, and a header
    /// that claims a large payload costs nothing until its bytes arrive.
    fn grow_data(&mut self, incoming: usize, frame_remaining: u64) {
        let needed = self.data.len() + incoming;
        if needed <= self.data.capacity() {
            return;
        }
        let ceiling = self.data.len() as u64 + frame_remaining;
        let doubled = (self.data.capacity() * 2).max(INITIAL_RESERVE);
        let target = (doubled as u64).min(ceiling).max(needed as u64) as usize;
        self.data.reserve_exact(target - self.data.len());
    }

    /// Inflate a piece of a compressed message's payload, unmasking it on
    /// the stack a little at a time, into the message being assembled
    /// (RFC 7692 §7.2.2). The inflated size is held to the message limit
    /// as it grows, so a bomb stops there (close 1009). Returns the new
    /// mask offset. Never inlined: its buffer stays off the frames of a
    /// parked reader.
    #[inline(never)]
    fn inflate(
        &mut self,
        chunk: &[u8],
        mask: Option<[u8; 4]>,
        mut offset: usize,
    ) -> Result<usize, ProtocolError> {
        let start = self.data.len();
        let limit = self.limits.max_message_size;
        let mut buf = [0u8; INFLATE_PIECE];
        for piece in chunk.chunks(INFLATE_PIECE) {
            let piece: &[u8] = match mask {
                Some(key) => {
                    let unmasked = &mut buf[..piece.len()];
                    unmasked.copy_from_slice(piece);
                    offset = apply_mask(unmasked, key, offset);
                    unmasked
                }
                None => piece,
            };
            if let Some(inflater) = self.inflater.as_mut() {
                inflater
                    .feed(piece, &mut self.data, limit)
                    .map_err(|e| inflate_error(e, limit))?;
            }
        }
        if self.message == Some(OpCode::Text) {
            self.utf8
                .feed(&self.data[start..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(offset)
    }

    /// A frame's payload is complete: return a control frame, or a message
    /// if this was its final fragment.
    fn finish_frame(&mut self, header: FrameHeader) -> Result<Option<Message>, ProtocolError> {
        // The frame's unmasked payload: the control buffer, or the last
        // payload_len bytes of the message being assembled (of a compressed
        // message, whose payload went to the inflater: nothing to show).
        let payload: &[u8] = if header.opcode.is_control() {
            &self.control
        } else if self.inflater.is_some() {
            &[]
        } else {
            &self.data[self.data.len().saturating_sub(header.payload_len as usize)..]
        };
        trace_frame_in(&header, payload);
        let message = match header.opcode {
            OpCode::Ping => Message::Ping(std::mem::take(&mut self.control)),
            OpCode::Pong => Message::Pong(std::mem::take(&mut self.control)),
            OpCode::Close => {
                let close = CloseFrame::parse(&self.control)?;
                // Nothing more will be read: free any unfinished message.
                self.control = Vec::new();
                self.data = Vec::new();
                self.inflater = None;
                self.done = true;
                Message::Close(close)
            }
            _ if !header.fin => return Ok(None),
            _ => {
                if let Some(mut inflater) = self.inflater.take() {
                    // The last frame: put back the 00 00 ff ff the sender
                    // cut off, and inflate what it flushes (§7.2.2).
                    let start = self.data.len();
                    let limit = self.limits.max_message_size;
                    inflater
                        .finish(&mut self.data, limit)
                        .map_err(|e| inflate_error(e, limit))?;
                    if self.message == Some(OpCode::Text) {
                        self.utf8
                            .feed(&self.data[start..])
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                }
                let data = std::mem::take(&mut self.data);
                match self.message.take() {
                    Some(OpCode::Text) => {
                        if !self.utf8.is_complete() {
                            return Err(ProtocolError::InvalidUtf8);
                        }
                        Message::Text(
                            String::from_utf8(data).map_err(|_| ProtocolError::InvalidUtf8)?,
                        )
                    }
                    _ => Message::Binary(data),
                }
            }
        };
        Ok(Some(message))
    }
}

/// Bytes of a compressed payload unmasked at a time, on the stack, on their
/// way to the inflater.
const INFLATE_PIECE: usize = 256;

/// The codec's error for an inflater's.
fn inflate_error(e: InflateError, limit: usize) -> ProtocolError {
    match e {
        InflateError::TooBig { len } => ProtocolError::MessageTooBig { len, limit },
        InflateError::Corrupt => ProtocolError::BadCompressedData,
    }
}

/// Log a received frame and its unmasked payload at trace level.
#[inline(always)]
fn trace_frame_in(header: &FrameHeader, payload: &[u8]) {
    if log::log_enabled!(target: "wschat::ws", log::Level::Trace) {
        log::trace!(target: "wschat::ws", "frame in: {}", header.line(Some(payload)));
    }
}

/// Append `src` to `dst`, unmasking with `mask` if there is one.
fn append(dst: &mut Vec<u8>, src: &[u8], mask: Option<[u8; 4]>, offset: usize) -> usize {
    match mask {
        Some(key) => extend_masked(dst, src, key, offset),
        None => {
            dst.extend_from_slice(src);
            offset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::close::CloseCode;

    fn client_frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, op, payload, Some([1, 2, 3, 4]));
        out
    }

    fn decode_all(dec: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, ProtocolError> {
        let mut input = bytes;
        let mut out = Vec::new();
        while !input.is_empty() {
            if let Some(m) = dec.decode(&mut input)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn server() -> Decoder {
        Decoder::new(Role::Server, Limits::default())
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_messages() {
        let mut stream = client_frame(false, OpCode::Text, "héllo ".as_bytes());
        stream.extend(client_frame(true, OpCode::Ping, b"p"));
        stream.extend(client_frame(true, OpCode::Continuation, "wörld".as_bytes()));
        stream.extend(client_frame(true, OpCode::Binary, &[0, 1, 2]));
        let expected = vec![
            Message::Ping(b"p".to_vec()),
            Message::Text("héllo wörld".into()),
            Message::Binary(vec![0, 1, 2]),
        ];
        for split in 0..=stream.len() {
            let mut dec = server();
            let mut got = decode_all(&mut dec, &stream[..split]).unwrap();
            got.extend(decode_all(&mut dec, &stream[split..]).unwrap());
            assert_eq!(got, expected, "split at {split}");
        }
        // One byte at a time.
        let mut dec = server();
        let mut got = Vec::new();
        for b in &stream {
            got.extend(decode_all(&mut dec, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn fragment_rules() {
        let cont = client_frame(true, OpCode::Continuation, b"x");
        assert_eq!(
            decode_all(&mut server(), &cont),
            Err(ProtocolError::UnexpectedContinuation)
        );
        let mut two = client_frame(false, OpCode::Text, b"a");
        two.extend(client_frame(true, OpCode::Text, b"b"));
        assert_eq!(
            decode_all(&mut server(), &two),
            Err(ProtocolError::ExpectedContinuation)
        );
    }

    #[test]
    fn invalid_utf8_fails_in_the_middle_of_a_fragmented_message() {
        let mut dec = server();
        let first = client_frame(false, OpCode::Text, b"ok");
        assert_eq!(decode_all(&mut dec, &first), Ok(vec![]));
        // The second fragment's header and first byte: 0xC0 is never valid.
        let second = client_frame(false, OpCode::Continuation, &[0xC0, 0x80, b'z']);
        let err = decode_all(&mut dec, &second[..7]).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
        assert!(dec.is_done());
        // A message that ends in the middle of a character is invalid too.
        let cut = client_frame(true, OpCode::Text, &[b'a', 0xE2, 0x82]);
        assert_eq!(
            decode_all(&mut server(), &cut),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn a_huge_declared_length_allocates_nothing() {
        let mut dec = Decoder::new(
            Role::Server,
            Limits {
                max_frame_size: 1000,
                max_message_size: 1000,
            },
        );
        let mut bytes = vec![0x82, 0xFF];
        bytes.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        let err = decode_all(&mut dec, &bytes).unwrap_err();
        assert!(matches!(err, ProtocolError::FrameTooBig { .. }));
        assert_eq!(err.close_code(), CloseCode::TOO_BIG);
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn message_limit_counts_all_fragments_and_capacity_stays_within_it() {
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 250,
        };
        let mut dec = Decoder::new(Role::Server, limits);
        for _ in 0..2 {
            let part = client_frame(false, OpCode::Binary, &[7; 100]);
            let part = if dec.buffered_bytes() == 0 {
                part
            } else {
                client_frame(false, OpCode::Continuation, &[7; 100])
            };
            assert_eq!(decode_all(&mut dec, &part), Ok(vec![]));
            assert!(dec.buffered_bytes() <= 250);
        }
        let third = client_frame(true, OpCode::Continuation, &[7; 100]);
        assert!(matches!(
            decode_all(&mut dec, &third),
            Err(ProtocolError::MessageTooBig {
                len: 300,
                limit: 250
            })
        ));
    }

    #[test]
    fn close_frames_are_validated_and_stop_the_decoder() {
        let mut dec = server();
        let mut bytes = client_frame(true, OpCode::Close, &[0x03, 0xe8, b'o', b'k']);
        bytes.extend(client_frame(true, OpCode::Text, b"ignored"));
        let got = decode_all(&mut dec, &bytes).unwrap();
        assert_eq!(
            got,
            vec![Message::Close(Some(CloseFrame::new(
                CloseCode::NORMAL,
                "ok"
            )))]
        );
        let one = client_frame(true, OpCode::Close, &[0x03]);
        assert_eq!(
            decode_all(&mut server(), &one),
            Err(ProtocolError::CloseFrameOneByte)
        );
        let bad = client_frame(true, OpCode::Close, &[0x03, 0xed]); // 1005
        assert_eq!(
            decode_all(&mut server(), &bad),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        let reason = client_frame(true, OpCode::Close, &[0x03, 0xe8, 0xff]);
        assert_eq!(
            decode_all(&mut server(), &reason),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn client_role_rejects_masked_frames() {
        let mut dec = Decoder::new(Role::Client, Limits::default());
        let masked = client_frame(true, OpCode::Text, b"x");
        assert_eq!(
            decode_all(&mut dec, &masked),
            Err(ProtocolError::MaskedFrame)
        );
    }

    /// Everything `decode_in_place` yields for `stream` cut at `cut`, as
    /// owned messages.
    fn in_place_outcomes(
        stream: &[u8],
        cut: usize,
        limits: Limits,
    ) -> Vec<Result<Message, ProtocolError>> {
        let mut decoder = Decoder::new(Role::Server, limits);
        let mut out = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            let mut buf = piece.to_vec();
            let mut at = 0;
            while at < buf.len() {
                match decoder.decode_in_place(&mut buf[at..]) {
                    Ok((used, decoded)) => {
                        at += used;
                        match decoded {
                            Some(d) => out.push(Ok(d.into_message())),
                            None => break,
                        }
                    }
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn owned_outcomes(
        stream: &[u8],
        cut: usize,
        limits: Limits,
    ) -> Vec<Result<Message, ProtocolError>> {
        let mut decoder = Decoder::new(Role::Server, limits);
        let mut out = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            let mut input = piece;
            while !input.is_empty() {
                match decoder.decode(&mut input) {
                    Ok(Some(m)) => out.push(Ok(m)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn decoding_in_place_gives_what_decode_gives_wherever_the_input_is_cut() {
        let mut stream = Vec::new();
        let k = Some([9, 8, 7, 6]);
        encode_frame(&mut stream, true, OpCode::Text, "héllo".as_bytes(), k);
        encode_frame(&mut stream, true, OpCode::Binary, &[0u8; 300], k);
        encode_frame(&mut stream, false, OpCode::Text, b"frag", k);
        encode_frame(&mut stream, true, OpCode::Ping, b"p", k);
        encode_frame(&mut stream, true, OpCode::Continuation, b"ment", k);
        encode_frame(&mut stream, true, OpCode::Binary, &[], k);
        encode_frame(&mut stream, true, OpCode::Text, &[0xff, 0xfe], k); // not UTF-8
        let limits = Limits::default();
        let expected = owned_outcomes(&stream, 0, limits);
        assert_eq!(expected.len(), 6, "{expected:?}");
        assert_eq!(expected[5], Err(ProtocolError::InvalidUtf8));
        for cut in 0..=stream.len() {
            assert_eq!(
                in_place_outcomes(&stream, cut, limits),
                expected,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn decoding_in_place_keeps_the_limits_and_the_rules() {
        let limits = Limits {
            max_frame_size: 10,
            max_message_size: 10,
        };
        for (frame, error) in [
            (
                client_frame(true, OpCode::Text, &[b'x'; 11]),
                ProtocolError::FrameTooBig { len: 11, limit: 10 },
            ),
            (
                {
                    let mut unmasked = Vec::new();
                    encode_frame(&mut unmasked, true, OpCode::Text, b"hi", None);
                    unmasked
                },
                ProtocolError::UnmaskedFrame,
            ),
        ] {
            assert_eq!(
                in_place_outcomes(&frame, frame.len(), limits),
                [Err(error.clone())]
            );
            assert_eq!(owned_outcomes(&frame, frame.len(), limits), [Err(error)]);
        }
    }
}
