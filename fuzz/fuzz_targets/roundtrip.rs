//! Fuzz target `roundtrip`: what one side encodes, the other side decodes
//! to the same frames and messages (RFC 6455 §5.2-§5.6), for both roles.
//!
//! The input is structured ([`Input`], built by `arbitrary`): a list of
//! messages, each text or binary, cut into fragments at points the input
//! chooses (a text may be cut in the middle of a character, as §5.4
//! allows), with pings and pongs between the fragments, and an optional
//! Close at the end. The sender masks every frame with keys from the input
//! when it is a client, and masks nothing when it is a server (§5.1).
//!
//! What it proves:
//!
//! 1. [`encode_frame`] and [`Message::encode`] write frames that
//!    [`Frame::parse`] reads back as the same headers and payloads, that
//!    pass the receiver's rules ([`FrameHeader::check`]) and that
//!    [`Frame::encode`] writes out again byte for byte;
//! 2. the receiver's [`Decoder`] yields exactly the control frames and the
//!    reassembled messages that were sent, in order, whether the bytes come
//!    in one piece or in chunks the input chooses;
//! 3. a decoder in the sender's own role rejects the first frame as masked
//!    the wrong way (§5.1).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wschat::ws::frame::{Frame, FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, encode_frame};
use wschat::ws::{CloseCode, CloseFrame, Decoder, Limits, Message, ProtocolError, Role};

/// A conversation one side sends.
#[derive(Arbitrary, Debug)]
struct Input {
    /// Whether the sender is the client (masks) or the server (does not).
    sender_is_client: bool,
    /// The messages and control frames, in order.
    items: Vec<Item>,
    /// A Close frame to end with, if any.
    close: Option<CloseSpec>,
    /// Masking keys, used in turn for each frame a client sends.
    masks: Vec<[u8; 4]>,
    /// Chunk sizes for the second decoding, used in a cycle.
    chunks: Vec<u8>,
}

/// One thing the sender sends.
#[derive(Arbitrary, Debug)]
enum Item {
    /// A text message.
    Text {
        /// The text.
        text: String,
        /// How it is fragmented, and what comes between the fragments.
        fragments: Fragments,
    },
    /// A binary message.
    Binary {
        /// The bytes.
        data: Vec<u8>,
        /// Extra bytes to append (twice this many), so that the 16-bit and
        /// 64-bit length forms of §5.2 are reached too.
        padding: Option<u16>,
        /// How it is fragmented, and what comes between the fragments.
        fragments: Fragments,
    },
    /// A control frame on its own.
    Control(Control),
}

/// How a data message is cut into frames (§5.4).
#[derive(Arbitrary, Debug)]
struct Fragments {
    /// The size of each fragment but the last, which takes the rest.
    sizes: Vec<u8>,
    /// Control frames, each placed after fragment `position % count`.
    between: Vec<(u8, Control)>,
}

/// A ping or a pong (§5.5.2, §5.5.3).
#[derive(Arbitrary, Debug, Clone)]
enum Control {
    /// A ping with this payload (cut to 125 bytes).
    Ping(Vec<u8>),
    /// A pong with this payload (cut to 125 bytes).
    Pong(Vec<u8>),
}

/// A Close frame's contents (§5.5.1).
#[derive(Arbitrary, Debug)]
struct CloseSpec {
    /// The status code; `None` sends an empty payload. A code that may not
    /// go on the wire is replaced by one that may.
    code: Option<u16>,
    /// The reason (cut to 123 bytes at a character boundary).
    reason: String,
}

/// Total payload bytes one input may add with padding, to keep runs fast:
/// enough for one frame with a 64-bit length.
const PADDING_BUDGET: usize = 1 << 17;

/// One frame as the sender meant it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

/// Builds the byte stream and records what should come back.
struct Sender<'a> {
    is_client: bool,
    masks: &'a [[u8; 4]],
    frames_sent: usize,
    bytes: Vec<u8>,
    frames: Vec<Sent>,
    messages: Vec<Message>,
}

impl Sender<'_> {
    /// The key for the next frame: from the input when the sender is a
    /// client, none for a server.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        if !self.is_client {
            return None;
        }
        let key = if self.masks.is_empty() {
            [0x37, 0xfa, 0x21, 0x3d]
        } else {
            self.masks[self.frames_sent % self.masks.len()]
        };
        Some(key)
    }

    /// Send one frame with [`encode_frame`].
    fn frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        encode_frame(&mut self.bytes, fin, opcode, payload, mask);
        self.record(fin, opcode, mask, payload);
    }

    /// Send a whole message as one frame with [`Message::encode`].
    fn message(&mut self, message: Message) {
        let mask = self.next_mask();
        message.encode(&mut self.bytes, mask);
        self.record(true, message.opcode(), mask, &message.payload());
        self.messages.push(message);
    }

    fn record(&mut self, fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) {
        self.frames_sent += 1;
        self.frames.push(Sent {
            fin,
            opcode,
            mask,
            payload: payload.to_vec(),
        });
    }

    /// Send a data message, fragmented as `fragments` says, with control
    /// frames between the fragments.
    fn data(&mut self, message: Message, fragments: &Fragments) {
        let payload = message.payload().into_owned();
        let mut pieces = Vec::new();
        let mut rest = payload.as_slice();
        for &size in &fragments.sizes {
            let (piece, tail) = rest.split_at(usize::from(size).min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces.push(rest);
        if pieces.len() == 1 && fragments.between.is_empty() {
            self.message(message);
            return;
        }
        // Control frames go after fragment `position % (count - 1)`, that is
        // between two fragments; with one fragment, before it.
        let mut after: Vec<Vec<Control>> = vec![Vec::new(); pieces.len()];
        let mut before = Vec::new();
        for (position, control) in &fragments.between {
            if pieces.len() == 1 {
                before.push(control.clone());
            } else {
                after[usize::from(*position) % (pieces.len() - 1)].push(control.clone());
            }
        }
        for control in before {
            self.control(control);
        }
        let last = pieces.len() - 1;
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 {
                message.opcode()
            } else {
                OpCode::Continuation
            };
            self.frame(i == last, opcode, piece);
            for control in std::mem::take(&mut after[i]) {
                self.control(control);
            }
        }
        self.messages.push(message);
    }

    /// Send a ping or a pong.
    fn control(&mut self, control: Control) {
        let message = match control {
            Control::Ping(mut data) => {
                data.truncate(MAX_CONTROL_PAYLOAD);
                Message::Ping(data)
            }
            Control::Pong(mut data) => {
                data.truncate(MAX_CONTROL_PAYLOAD);
                Message::Pong(data)
            }
        };
        self.message(message);
    }
}

fuzz_target!(|input: Input| {
    let mut sender = Sender {
        is_client: input.sender_is_client,
        masks: &input.masks,
        frames_sent: 0,
        bytes: Vec::new(),
        frames: Vec::new(),
        messages: Vec::new(),
    };
    let mut budget = PADDING_BUDGET;
    for item in &input.items {
        match item {
            Item::Text { text, fragments } => sender.data(Message::Text(text.clone()), fragments),
            Item::Binary {
                data,
                padding,
                fragments,
            } => {
                let mut data = data.clone();
                let extra = padding.map_or(0, |p| usize::from(p) * 2).min(budget);
                budget -= extra;
                data.extend((0..extra).map(|i| i as u8));
                sender.data(Message::Binary(data), fragments);
            }
            Item::Control(control) => sender.control(control.clone()),
        }
    }
    if let Some(close) = &input.close {
        let frame = close.code.map(|code| {
            let code = if CloseCode(code).is_allowed_on_wire() {
                CloseCode(code)
            } else {
                CloseCode(1000 + code % 4)
            };
            CloseFrame::new(code, &close.reason)
        });
        sender.message(Message::Close(frame));
    }
    let Sender {
        bytes,
        frames,
        messages,
        ..
    } = sender;
    let receiver = if input.sender_is_client {
        Role::Server
    } else {
        Role::Client
    };

    check_frames(&bytes, &frames, receiver);

    let limits = Limits::default();
    let whole = decode(receiver, limits, &bytes, &mut std::iter::once(bytes.len()));
    assert_eq!(whole, Ok(messages.clone()), "decoded in one piece");
    // Chunks grow with the stream, so that a padded stream is not fed a
    // byte at a time.
    let scale = 1 + bytes.len() / 4096;
    let chunks: Vec<usize> = if input.chunks.iter().all(|&c| c == 0) {
        vec![scale]
    } else {
        input
            .chunks
            .iter()
            .map(|&c| usize::from(c) * scale)
            .collect()
    };
    let chunked = decode(
        receiver,
        limits,
        &bytes,
        &mut chunks.iter().copied().cycle(),
    );
    assert_eq!(chunked, Ok(messages), "decoded in chunks of {chunks:?}");

    // §5.1: the sender's own role rejects the very first frame.
    if !bytes.is_empty() {
        let sender_role = if input.sender_is_client {
            Role::Client
        } else {
            Role::Server
        };
        let expected = if input.sender_is_client {
            ProtocolError::MaskedFrame
        } else {
            ProtocolError::UnmaskedFrame
        };
        let wrong = decode(
            sender_role,
            limits,
            &bytes,
            &mut std::iter::once(bytes.len()),
        );
        assert_eq!(wrong, Err(expected));
    }
});

/// [`Frame::parse`] finds exactly the frames that were sent, and each one
/// passes the receiver's header rules and encodes back to the same bytes.
fn check_frames(mut bytes: &[u8], sent: &[Sent], receiver: Role) {
    for expected in sent {
        let (frame, used) = Frame::parse(bytes).expect("a whole frame");
        let got = Sent {
            fin: frame.header.fin,
            opcode: frame.header.opcode,
            mask: frame.header.mask,
            payload: frame.payload.clone(),
        };
        assert_eq!(&got, expected);
        assert_eq!(frame.header.rsv, 0);
        assert_eq!(frame.header.check(receiver), Ok(()));
        assert_eq!(
            FrameHeader::parse(bytes).map(|(h, _)| h),
            Some(frame.header)
        );
        assert_eq!(used, frame.header.encoded_len() + frame.payload.len());
        let mut again = Vec::new();
        frame.encode(&mut again);
        assert_eq!(again, &bytes[..used]);
        // Every shorter prefix asks for more bytes.
        assert!(Frame::parse(&bytes[..used - 1]).is_none());
        bytes = &bytes[used..];
    }
    assert!(
        bytes.is_empty(),
        "{} bytes after the last frame",
        bytes.len()
    );
}

/// Decode `bytes` in chunks; the messages, or the first error.
fn decode(
    role: Role,
    limits: Limits,
    bytes: &[u8],
    chunks: &mut dyn Iterator<Item = usize>,
) -> Result<Vec<Message>, ProtocolError> {
    let mut decoder = Decoder::new(role, limits);
    let mut messages = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let size = chunks.next().expect("endless chunk sizes").min(rest.len());
        let (mut chunk, tail) = rest.split_at(size);
        rest = tail;
        while let Some(message) = decoder.decode(&mut chunk)? {
            messages.push(message);
            if chunk.is_empty() {
                break;
            }
        }
    }
    Ok(messages)
}
