//! RESP2, the Redis serialization protocol, sans-I/O: commands out as
//! bytes, replies and pub/sub pushes in from bytes, however the bytes are
//! chunked. Nothing here reads a socket or looks at a clock (the client's
//! threads in [`super::client`] do).
//!
//! The protocol (redis.io, "Redis serialization protocol specification",
//! RESP2): every value starts with a type byte and its header line ends
//! with CRLF.
//!
//! | byte | type | here |
//! |---|---|---|
//! | `+` | simple string | [`Value::Status`] |
//! | `-` | error | [`Value::Error`] |
//! | `:` | integer | [`Value::Int`] |
//! | `$` | bulk string: length, CRLF, bytes, CRLF; `$-1` is nil | [`Value::Bulk`], [`Value::Nil`] |
//! | `*` | array: count, then that many values; `*-1` is nil | [`Value::Array`], [`Value::Nil`] |
//!
//! A client sends every command as an array of bulk strings
//! ([`encode_command`]); several commands may be written before their
//! replies are read (pipelining), and the replies come back in order. A
//! connection that subscribed to channels receives pushes instead: arrays
//! such as `message <channel> <payload>` ([`Push::parse`]).
//!
//! Every value a peer can make this decoder hold is bounded by the limits
//! below: a reply past them is a [`RespError`], never an allocation of the
//! size a header claims.
//!
//! ```
//! use wschat::cluster::resp::{Decoder, Value, encode_command};
//! let mut out = Vec::new();
//! encode_command(&mut out, &[&b"GET"[..], b"k"]);
//! assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
//!
//! let mut decoder = Decoder::new();
//! decoder.feed(b"$5\r\nhel").unwrap();
//! assert_eq!(decoder.decode().unwrap(), None); // not all there yet
//! decoder.feed(b"lo\r\n:7\r\n").unwrap();
//! assert_eq!(decoder.decode().unwrap(), Some(Value::Bulk(b"hello".to_vec())));
//! assert_eq!(decoder.decode().unwrap(), Some(Value::Int(7)));
//! assert_eq!(decoder.decode().unwrap(), None);
//! ```

use std::fmt;

/// Longest bulk string accepted in a reply (a stored chat message is far
/// smaller: see the chat's message size limit).
pub const MAX_BULK: usize = 8 * 1024 * 1024;
/// Longest header line (simple string, error, integer, length), CRLF
/// excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Most array elements one reply may announce, all its arrays together
/// (each costs 32 bytes decoded, however few it took on the wire).
pub const MAX_ARRAY: usize = 1024 * 1024;
/// Deepest nesting of arrays (a stream range reply is three deep, `XREAD`
/// four).
pub const MAX_DEPTH: usize = 8;
/// Most bytes one reply may take on the wire, and so the most the decoder
/// buffers while a reply is incomplete (plus the last chunk fed).
pub const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Elements reserved up front for an array, whatever its header claims:
/// the rest grows as elements actually arrive.
const RESERVE: usize = 64;

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`: a simple string (no CR or LF inside).
    Status(Vec<u8>),
    /// `-ERR …`: an error reply; the command failed, the connection is fine.
    Error(Vec<u8>),
    /// `:42`.
    Int(i64),
    /// `$n`: a binary-safe string.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`: no value (a missing key, a timed-out block).
    Nil,
    /// `*n`: values of any type, nested up to [`MAX_DEPTH`].
    Array(Vec<Value>),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Status(b) => Some(b),
            _ => None,
        }
    }

    /// An integer, or a bulk/simple string that holds one in decimal (Lua
    /// scripts and stream ids hand numbers back as strings).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bulk(b) | Value::Status(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The elements of an array (a nil array is empty).
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            Value::Nil => Some(&[]),
            _ => None,
        }
    }

    /// An error reply's text.
    pub fn error_text(&self) -> Option<String> {
        match self {
            Value::Error(e) => Some(String::from_utf8_lossy(e).into_owned()),
            _ => None,
        }
    }
}

/// Why bytes from the server are not RESP2 within the limits. The
/// connection cannot go on after one: its replies no longer line up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// A type byte that is not one of `+ - : $ *`.
    BadType(u8),
    /// A header line that is not what its type requires (a length that is
    /// not a decimal, a CR or LF inside, no CRLF after a bulk string).
    BadLine,
    /// A line, bulk, array, nesting or reply past its limit (named).
    TooLarge(&'static str),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::BadType(b) => write!(f, "RESP: unknown type byte 0x{b:02x}"),
            RespError::BadLine => write!(f, "RESP: malformed line"),
            RespError::TooLarge(what) => write!(f, "RESP: {what} past its limit"),
        }
    }
}

impl std::error::Error for RespError {}

/// Append `args` to `out` as one RESP2 command: an array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        encode_bulk(out, arg.as_ref());
    }
}

fn encode_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Append any value to `out` as a server would send it (tests and fuzzing
/// play the server with it). A [`Value::Status`] or [`Value::Error`] must
/// hold no CR or LF: those are written as they are, and would not decode
/// back to the same value.
pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Status(s) => line(out, b'+', s),
        Value::Error(e) => line(out, b'-', e),
        Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(b) => encode_bulk(out, b),
        Value::Nil => out.extend_from_slice(b"$-1\r\n"),
        Value::Array(items) => {
            line(out, b'*', items.len().to_string().as_bytes());
            for item in items {
                encode_value(out, item);
            }
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// The incremental reply decoder: [`Decoder::feed`] it bytes as they
/// arrive, then take whole values with [`Decoder::decode`] until it says
/// `None` (more bytes needed).
///
/// It keeps the arrays it has begun between calls, so each byte is read
/// once however finely the input is chunked (only an incomplete header
/// line or bulk string is looked at again, and a bulk string not before
/// all its announced bytes are there).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the undecoded bytes start in `buf`.
    start: usize,
    /// Undecoded bytes needed at least before trying again.
    need: usize,
    /// The arrays begun: their elements so far, and how many are to come.
    stack: Vec<(Vec<Value>, usize)>,
    /// Bytes of the reply being decoded already taken from `buf`.
    taken: usize,
    /// Array elements the reply being decoded has announced.
    elements: usize,
}

/// One step of decoding: a whole leaf value, or an array's header.
enum Step {
    Leaf(Value),
    Array(usize),
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Add bytes read from the server. Fails once the reply being decoded
    /// has taken more than [`MAX_REPLY`] bytes; the bytes are kept either
    /// way (the connection is over then).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), RespError> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.taken + self.buffered() > MAX_REPLY {
            return Err(RespError::TooLarge("reply"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes fed and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole value, or `None` until more bytes are fed.
    pub fn decode(&mut self) -> Result<Option<Value>, RespError> {
        loop {
            let pending = &self.buf[self.start..];
            if pending.is_empty() || pending.len() < self.need {
                return Ok(None);
            }
            let Some((step, used)) = step(pending, &mut self.need)? else {
                if self.taken + pending.len() > MAX_REPLY {
                    return Err(RespError::TooLarge("reply"));
                }
                return Ok(None);
            };
            self.need = 0;
            self.start += used;
            self.taken += used;
            if self.taken > MAX_REPLY {
                return Err(RespError::TooLarge("reply"));
            }
            let value = match step {
                Step::Leaf(value) => value,
                Step::Array(0) => Value::Array(Vec::new()),
                Step::Array(count) => {
                    if self.stack.len() + 1 >= MAX_DEPTH {
                        return Err(RespError::TooLarge("nesting"));
                    }
                    self.elements += count;
                    if self.elements > MAX_ARRAY {
                        return Err(RespError::TooLarge("array"));
                    }
                    self.stack
                        .push((Vec::with_capacity(count.min(RESERVE)), count));
                    continue;
                }
            };
            if let Some(done) = self.complete(value) {
                self.taken = 0;
                self.elements = 0;
                return Ok(Some(done));
            }
        }
    }

    /// Put `value` into the innermost array begun, closing every array it
    /// completes; the whole reply once the outermost is complete.
    fn complete(&mut self, mut value: Value) -> Option<Value> {
        loop {
            let Some((items, left)) = self.stack.last_mut() else {
                return Some(value);
            };
            items.push(value);
            *left -= 1;
            if *left > 0 {
                return None;
            }
            let (items, _) = self.stack.pop()?;
            value = Value::Array(items);
        }
    }
}

/// The header line at the start of `buf` (after its type byte), without
/// CRLF, and the bytes it takes with them; `None` while incomplete.
fn header(buf: &[u8]) -> Result<Option<(&[u8], usize)>, RespError> {
    let limit = buf.len().min(MAX_LINE + 2);
    for i in 1..limit {
        match buf[i] {
            b'\r' => {
                if i + 1 >= buf.len() {
                    return Ok(None);
                }
                if buf[i + 1] != b'\n' {
                    return Err(RespError::BadLine);
                }
                return Ok(Some((&buf[1..i], i + 2)));
            }
            b'\n' => return Err(RespError::BadLine),
            _ => {}
        }
    }
    if buf.len() >= MAX_LINE + 2 {
        return Err(RespError::TooLarge("line"));
    }
    Ok(None)
}

/// A decimal integer: an optional `-`, then 1 to 19 digits, nothing else.
fn number(text: &[u8]) -> Result<i64, RespError> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadLine);
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::BadLine)
}

/// A length: a non-negative number, or -1 for nil (`None`).
fn length(text: &[u8], max: usize, what: &'static str) -> Result<Option<usize>, RespError> {
    match number(text)? {
        -1 => Ok(None),
        n if n < 0 => Err(RespError::BadLine),
        n if n as u64 > max as u64 => Err(RespError::TooLarge(what)),
        n => Ok(Some(n as usize)),
    }
}

/// Decode one leaf value or array header at the start of `buf`, and the
/// bytes it takes; `None` while incomplete, with `need` set to the bytes
/// needed at least.
fn step(buf: &[u8], need: &mut usize) -> Result<Option<(Step, usize)>, RespError> {
    let Some(&kind) = buf.first() else {
        *need = 1;
        return Ok(None);
    };
    if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(RespError::BadType(kind));
    }
    let Some((text, used)) = header(buf)? else {
        *need = buf.len() + 1;
        return Ok(None);
    };
    let leaf = |v| Ok(Some((Step::Leaf(v), used)));
    match kind {
        b'+' => leaf(Value::Status(text.to_vec())),
        b'-' => leaf(Value::Error(text.to_vec())),
        b':' => leaf(Value::Int(number(text)?)),
        b'$' => {
            let Some(len) = length(text, MAX_BULK, "bulk string")? else {
                return leaf(Value::Nil);
            };
            let end = used + len;
            if buf.len() < end + 2 {
                *need = end + 2;
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::BadLine);
            }
            Ok(Some((
                Step::Leaf(Value::Bulk(buf[used..end].to_vec())),
                end + 2,
            )))
        }
        _ => match length(text, MAX_ARRAY, "array")? {
            None => leaf(Value::Nil),
            Some(count) => Ok(Some((Step::Array(count), used))),
        },
    }
}

/// What a subscribed connection receives (RESP2 pushes are arrays whose
/// first element names their kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// `message <channel> <payload>`: something was published.
    Message {
        /// The channel it was published to.
        channel: Vec<u8>,
        /// What was published.
        payload: Vec<u8>,
    },
    /// `subscribe <channel> <count>`: the subscription holds from now on.
    Subscribed {
        /// The channel.
        channel: Vec<u8>,
    },
    /// `unsubscribe <channel> <count>`.
    Unsubscribed {
        /// The channel.
        channel: Vec<u8>,
    },
    /// `pong <data>`: the answer to a `PING` on a subscribed connection.
    Pong,
}

impl Push {
    /// Read a push; `None` for anything else (an error reply included).
    pub fn parse(value: &Value) -> Option<Push> {
        let items = match value {
            Value::Array(items) => items,
            // A PING before any SUBSCRIBE answers like a plain command.
            Value::Status(s) if s == b"PONG" => return Some(Push::Pong),
            _ => return None,
        };
        let kind = items.first()?.as_bytes()?;
        let second = || items.get(1).and_then(Value::as_bytes).map(<[u8]>::to_vec);
        match kind {
            b"message" if items.len() == 3 => Some(Push::Message {
                channel: second()?,
                payload: items[2].as_bytes()?.to_vec(),
            }),
            b"subscribe" => Some(Push::Subscribed { channel: second()? }),
            b"unsubscribe" => Some(Push::Unsubscribed { channel: second()? }),
            b"pong" => Some(Push::Pong),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], chunk: usize) -> Result<Vec<Value>, RespError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            d.feed(piece)?;
            while let Some(v) = d.decode()? {
                out.push(v);
            }
        }
        assert_eq!(d.buffered(), 0, "bytes left over");
        Ok(out)
    }

    fn sample() -> Vec<Value> {
        vec![
            Value::Status(b"OK".to_vec()),
            Value::Error(b"ERR unknown command".to_vec()),
            Value::Int(-42),
            Value::Int(i64::MAX),
            Value::Bulk(b"bin\r\nary\0".to_vec()),
            Value::Bulk(Vec::new()),
            Value::Nil,
            Value::Array(vec![]),
            Value::Array(vec![
                Value::Bulk(b"5-0".to_vec()),
                Value::Array(vec![
                    Value::Bulk(b"m".to_vec()),
                    Value::Bulk(b"{}".to_vec()),
                ]),
            ]),
        ]
    }

    #[test]
    fn round_trip_in_every_chunking() {
        let values = sample();
        let mut wire = Vec::new();
        for v in &values {
            encode_value(&mut wire, v);
        }
        for chunk in [1, 2, 3, 7, 64, wire.len()] {
            assert_eq!(decode_all(&wire, chunk).unwrap(), values, "chunk {chunk}");
        }
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &["SET", "k", "v w"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv w\r\n");
        let decoded = decode_all(&out, 5).unwrap();
        assert_eq!(
            decoded,
            vec![Value::Array(vec![
                Value::Bulk(b"SET".to_vec()),
                Value::Bulk(b"k".to_vec()),
                Value::Bulk(b"v w".to_vec()),
            ])]
        );
    }

    #[test]
    fn nil_array_and_nil_bulk() {
        assert_eq!(
            decode_all(b"*-1\r\n$-1\r\n", 1).unwrap(),
            vec![Value::Nil, Value::Nil]
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b":\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"+a\nb\r\n",
            b"+a\rb\r\n",
            b":99999999999999999999\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn limits_refuse_before_allocating() {
        let big = format!("${}\r\n", MAX_BULK + 1);
        assert_eq!(
            decode_all(big.as_bytes(), 3),
            Err(RespError::TooLarge("bulk string"))
        );
        let many = format!("*{}\r\n", MAX_ARRAY + 1);
        assert_eq!(
            decode_all(many.as_bytes(), 3),
            Err(RespError::TooLarge("array"))
        );
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert_eq!(
            decode_all(deep.as_bytes(), 4),
            Err(RespError::TooLarge("nesting"))
        );
        let long = vec![b'+'; MAX_LINE + 10];
        assert_eq!(decode_all(&long, 4096), Err(RespError::TooLarge("line")));
    }

    #[test]
    fn an_endless_array_stops_at_the_reply_limit() {
        let mut d = Decoder::new();
        d.feed(b"*1000000\r\n").unwrap();
        let item = b"$4096\r\n"
            .iter()
            .copied()
            .chain([b'x'; 4096])
            .chain(*b"\r\n")
            .collect::<Vec<_>>();
        let mut failed = false;
        for _ in 0..(MAX_REPLY / item.len() + 10) {
            if d.feed(&item).is_err() || d.decode().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        assert!(d.buffered() <= item.len() + 16);
    }

    #[test]
    fn elements_are_counted_across_nested_arrays() {
        let half = MAX_ARRAY / 2 + 1;
        let mut wire = b"*2\r\n".to_vec();
        for _ in 0..2 {
            wire.extend_from_slice(format!("*{half}\r\n").as_bytes());
        }
        assert_eq!(decode_all(&wire, 64), Err(RespError::TooLarge("array")));
    }

    #[test]
    fn pushes() {
        let msg = Value::Array(vec![
            Value::Bulk(b"message".to_vec()),
            Value::Bulk(b"ch".to_vec()),
            Value::Bulk(b"hi".to_vec()),
        ]);
        assert_eq!(
            Push::parse(&msg),
            Some(Push::Message {
                channel: b"ch".to_vec(),
                payload: b"hi".to_vec()
            })
        );
        let sub = Value::Array(vec![
            Value::Bulk(b"subscribe".to_vec()),
            Value::Bulk(b"ch".to_vec()),
            Value::Int(1),
        ]);
        assert_eq!(
            Push::parse(&sub),
            Some(Push::Subscribed {
                channel: b"ch".to_vec()
            })
        );
        assert_eq!(Push::parse(&Value::Int(1)), None);
    }
}
