//! The opening handshake, RFC 6455 §4: an HTTP/1.1 Upgrade request from the
//! client, a `101 Switching Protocols` from the server.
//!
//! Sans-I/O: [`parse_request`] takes whatever bytes have arrived so far and
//! either asks for more (`Ok(None)`), or returns the parsed request and how
//! many bytes it used (anything after it already belongs to the WebSocket).
//! [`validate_upgrade`] applies the rules of §4.2.1 and answers with an
//! [`Accept`] (the 101) or a [`HandshakeError`] (the rule broken, with its
//! HTTP status and RFC section); [`Policy`] adds the server's own rules
//! (the origins it allows, its subprotocols).
//! The client side is [`client_request`] and [`verify_response`].
//!
//! ```
//! use wschat::ws::handshake::{parse_request, validate_upgrade};
//! let bytes = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
//!               Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!               Sec-WebSocket-Version: 13\r\n\r\n";
//! // Half the request: ask for more bytes.
//! assert!(parse_request(&bytes[..40], 8192).unwrap().is_none());
//! let (request, used) = parse_request(bytes, 8192).unwrap().unwrap();
//! assert_eq!(used, bytes.len());
//! let accept = validate_upgrade(&request, &[]).unwrap();
//! assert_eq!(accept.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

/// The GUID of §1.3 that the server appends to the client's key. It makes
/// the answer something only a WebSocket server would compute, so a plain
/// HTTP server (or a cache) cannot be tricked into "accepting" an upgrade.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Default limit on the request's header block, in bytes: 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// Most header lines accepted in one request; more is answered 431.
pub const MAX_HEADERS: usize = 100;

/// The whitespace HTTP allows around header values and list items (RFC 9110
/// §5.6.3: `OWS = *( SP / HTAB )`). Not `str::trim`, which would also strip
/// Unicode spaces such as U+00A0 and let `\u{a0}websocket` pass as a token.
pub const HTTP_WS: [char; 2] = [' ', '\t'];

/// The only protocol version RFC 6455 defines (§4.1, §11.6).
pub const VERSION: &str = "13";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (§4.2.2 step
/// 5.4): base64 of the SHA-1 of the key followed by [`GUID`].
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     wschat::ws::handshake::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &str) -> AcceptKey {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    let mut text = [0u8; ACCEPT_KEY_LEN];
    // Base64 of SHA-1's 20 bytes is always 28 characters (§4.2.2): the
    // buffer is exactly that long, so this cannot fail.
    let written = BASE64.encode_slice(sha.finalize(), &mut text).unwrap_or(0);
    debug_assert_eq!(written, ACCEPT_KEY_LEN);
    AcceptKey(text)
}

/// Characters of a `Sec-WebSocket-Accept` value: base64 of 20 bytes.
pub const ACCEPT_KEY_LEN: usize = 28;

/// A `Sec-WebSocket-Accept` value, held in place (no allocation: a
/// connection's thread keeps what it freed cached while the connection is
/// idle, docs/performance.md). Reads as a `&str`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptKey([u8; ACCEPT_KEY_LEN]);

impl AcceptKey {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Base64's alphabet is ASCII; `accept_key` is the only maker.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::ops::Deref for AcceptKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for AcceptKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for AcceptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for AcceptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for AcceptKey {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AcceptKey {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<AcceptKey> for &str {
    fn eq(&self, other: &AcceptKey) -> bool {
        *self == other.as_str()
    }
}

/// A parsed HTTP request head.
///
/// Its strings (method, target, every header's name and value) lie one
/// after another in one buffer, with their places in a second: two
/// allocations for a whole request, not one per string. What a connection's
/// thread allocates and frees while it shakes hands stays cached by the
/// allocator for that thread while the connection is idle
/// (docs/performance.md).
///
/// ```
/// use wschat::ws::handshake::Request;
/// let r = Request::new("GET", "/chat?name=ann", 1, &[("Host", "a"), ("X-Two", "1"), ("x-two", "2")]);
/// assert_eq!((r.method(), r.path(), r.header("host")), ("GET", "/chat", Some("a")));
/// assert_eq!(r.headers_named("X-TWO").collect::<Vec<_>>(), ["1", "2"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, the target, then each header's name and value.
    text: String,
    method: Span,
    target: Span,
    /// The HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// Each header line's name and value, in order.
    headers: Vec<(Span, Span)>,
}

/// Append `s` to `text`; where it lies there.
fn push_span(text: &mut String, s: &str) -> Span {
    let start = text.len();
    text.push_str(s);
    Span {
        start,
        end: text.len(),
    }
}

/// Where a string of a [`Request`] lies in its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Request {
    /// A request with these parts: header names as given, values as given.
    pub fn new(method: &str, target: &str, minor_version: u8, headers: &[(&str, &str)]) -> Request {
        let len = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        let headers = headers.iter().map(|&(n, v)| (n, Cow::Borrowed(v)));
        Request::from_parts(method, target, minor_version, len, headers)
    }

    /// A request from its parts; `headers_len` is what the headers' names
    /// and values add up to (a value may grow by the replacement of
    /// invalid UTF-8).
    fn from_parts<'a>(
        method: &str,
        target: &str,
        minor_version: u8,
        headers_len: usize,
        headers: impl ExactSizeIterator<Item = (&'a str, Cow<'a, str>)>,
    ) -> Request {
        let mut text = String::with_capacity(method.len() + target.len() + headers_len);
        let method = push_span(&mut text, method);
        let target = push_span(&mut text, target);
        let headers = headers
            .map(|(n, v)| (push_span(&mut text, n), push_span(&mut text, &v)))
            .collect();
        Request {
            text,
            method,
            target,
            minor_version,
            headers,
        }
    }

    fn at(&self, span: Span) -> &str {
        &self.text[span.start..span.end]
    }

    /// The method, such as `GET`.
    pub fn method(&self) -> &str {
        self.at(self.method)
    }

    /// The request target as sent: path and query (`/chat?name=ann`).
    pub fn target(&self) -> &str {
        self.at(self.target)
    }

    /// Header lines in order: names as sent, values with invalid UTF-8
    /// replaced.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers.iter().map(|&(n, v)| (self.at(n), self.at(v)))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether some value of header `name` holds `token` in its comma list
    /// (case-insensitive), as `Connection: keep-alive, Upgrade` does.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim_matches(HTTP_WS).eq_ignore_ascii_case(token))
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target().split(['?', '#']).next().unwrap_or("")
    }

    /// The value of query parameter `name`, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.target().split_once('?')?.1;
        let query = query.split('#').next().unwrap_or("");
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// Whether the client asks for a WebSocket: an `Upgrade: websocket`, a
    /// `Sec-WebSocket-Key`, or the old draft's `Sec-WebSocket-Key1`. Such a
    /// request goes to [`validate_upgrade`]; anything else is plain HTTP.
    pub fn is_upgrade(&self) -> bool {
        self.has_token("Upgrade", "websocket")
            || self.header("Sec-WebSocket-Key").is_some()
            || self.header("Sec-WebSocket-Key1").is_some()
    }
}

/// Decode `%XX` escapes and `+` in a URL query component. Invalid escapes
/// stay as they are; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer that refuses a request: an HTTP status with a one-line reason.
/// A [`HandshakeError`] becomes one; the server makes its own for what is
/// not a rule of the handshake (no endpoint at a path, a request head too
/// slow, a server shutting down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status code.
    pub status: u16,
    /// Why, in one line; sent as the body.
    pub reason: String,
    /// Extra headers (such as `Sec-WebSocket-Version: 13` with a 426).
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    /// A rejection with `status` and `reason`.
    pub fn new(status: u16, reason: impl Into<String>) -> Rejection {
        Rejection {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// The full HTTP response, ending the connection.
    pub fn to_response(&self) -> Vec<u8> {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = format!("{}\n", self.reason);
        http_response(
            self.status,
            "text/plain; charset=utf-8",
            &headers,
            body.as_bytes(),
        )
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            status_text(self.status),
            self.reason
        )
    }
}

/// A handshake the server refuses: one variant per rule of RFC 6455 §4 (and
/// of the HTTP beneath it), each with the HTTP status it is answered with
/// ([`HandshakeError::status`]) and the section that states the rule
/// ([`HandshakeError::section`]), as [`ProtocolError`](super::ProtocolError)
/// does for the rules of framing. [`HandshakeError::to_response`] is the
/// whole answer: the status, any header the rule calls for, and the reason.
///
/// ```
/// use wschat::ws::handshake::{HandshakeError, parse_request, validate_upgrade};
/// let head = b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
///              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///              Sec-WebSocket-Version: 8\r\n\r\n";
/// let (request, _) = parse_request(head, 8192).unwrap().unwrap();
/// let refused = validate_upgrade(&request, &[]).unwrap_err();
/// assert_eq!(refused, HandshakeError::UnsupportedVersion("8".into()));
/// assert_eq!((refused.status(), refused.section()), (426, "RFC 6455 §4.4"));
/// assert!(String::from_utf8(refused.to_response()).unwrap().contains("Sec-WebSocket-Version: 13\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The request head passed the header limit (the limit, in bytes): 431.
    HeadTooLarge(usize),
    /// More than [`MAX_HEADERS`] header lines: 431.
    TooManyHeaders,
    /// Bytes that are not an HTTP request (the parser's words): 400.
    Malformed(String),
    /// A method other than GET: 405, with `Allow: GET`.
    NotGet,
    /// A Hixie-76 request (`Sec-WebSocket-Key1`/`Key2`): 426, with
    /// `Sec-WebSocket-Version: 13`.
    Hixie76,
    /// HTTP older than 1.1: 400.
    OldHttp,
    /// No `Host`, or an empty one: 400.
    MissingHost,
    /// More than one `Host`: 400.
    DuplicateHost,
    /// An `Upgrade` header without the token `websocket`: 400.
    NoUpgradeToken,
    /// A `Connection` header without the token `Upgrade`: 400.
    NoConnectionToken,
    /// No `Sec-WebSocket-Version`: 400.
    MissingVersion,
    /// A version other than 13 (the versions offered, comma-separated): 426,
    /// with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion(String),
    /// No `Sec-WebSocket-Key`: 400.
    MissingKey,
    /// More than one `Sec-WebSocket-Key`: 400.
    DuplicateKey,
    /// A key that is not base64 of exactly 16 bytes: 400.
    InvalidKey,
    /// A page from an origin the server's [`Policy`] does not allow (the
    /// origin as sent): 403.
    OriginNotAllowed(String),
}

impl HandshakeError {
    /// The HTTP status the server answers with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge(_) | HandshakeError::TooManyHeaders => 431,
            HandshakeError::NotGet => 405,
            HandshakeError::Hixie76 | HandshakeError::UnsupportedVersion(_) => 426,
            HandshakeError::OriginNotAllowed(_) => 403,
            HandshakeError::Malformed(_)
            | HandshakeError::OldHttp
            | HandshakeError::MissingHost
            | HandshakeError::DuplicateHost
            | HandshakeError::NoUpgradeToken
            | HandshakeError::NoConnectionToken
            | HandshakeError::MissingVersion
            | HandshakeError::MissingKey
            | HandshakeError::DuplicateKey
            | HandshakeError::InvalidKey => 400,
        }
    }

    /// The section that states the rule broken.
    pub fn section(&self) -> &'static str {
        match self {
            HandshakeError::HeadTooLarge(_) | HandshakeError::TooManyHeaders => "RFC 6585 §5",
            HandshakeError::Malformed(_) => "RFC 6455 §4.1, RFC 9112 §2",
            HandshakeError::NotGet | HandshakeError::OldHttp | HandshakeError::MissingHost => {
                "RFC 6455 §4.1"
            }
            HandshakeError::DuplicateHost => "RFC 9112 §3.2",
            HandshakeError::Hixie76 | HandshakeError::UnsupportedVersion(_) => "RFC 6455 §4.4",
            HandshakeError::NoUpgradeToken
            | HandshakeError::NoConnectionToken
            | HandshakeError::MissingVersion
            | HandshakeError::MissingKey
            | HandshakeError::InvalidKey => "RFC 6455 §4.2.1",
            HandshakeError::DuplicateKey => "RFC 6455 §11.3.1",
            HandshakeError::OriginNotAllowed(_) => "RFC 6455 §4.2.2, §10.2",
        }
    }

    /// Why, in one line: the body of the answer.
    pub fn reason(&self) -> String {
        match self {
            HandshakeError::HeadTooLarge(limit) => {
                format!("the request header block is over the {limit}-byte limit")
            }
            HandshakeError::TooManyHeaders => format!("more than {MAX_HEADERS} header lines"),
            HandshakeError::Malformed(why) => format!("malformed HTTP request: {why}"),
            HandshakeError::NotGet => {
                "a WebSocket upgrade must use the GET method (RFC 6455 §4.1)".into()
            }
            HandshakeError::Hixie76 => {
                "this is a Hixie-76 (draft-ietf-hybi-thewebsocketprotocol-00) handshake, which RFC 6455 replaced in 2011; \
                 use Sec-WebSocket-Key and Sec-WebSocket-Version: 13"
                    .into()
            }
            HandshakeError::OldHttp => {
                "a WebSocket upgrade needs HTTP/1.1 or later (RFC 6455 §4.1)".into()
            }
            HandshakeError::MissingHost => "missing Host header (RFC 6455 §4.1)".into(),
            HandshakeError::DuplicateHost => "more than one Host header (RFC 9112 §3.2)".into(),
            HandshakeError::NoUpgradeToken => {
                "the Upgrade header must hold the token websocket (RFC 6455 §4.2.1)".into()
            }
            HandshakeError::NoConnectionToken => {
                "the Connection header must hold the token Upgrade (RFC 6455 §4.2.1)".into()
            }
            HandshakeError::MissingVersion => {
                "missing Sec-WebSocket-Version header (RFC 6455 §4.2.1)".into()
            }
            HandshakeError::UnsupportedVersion(versions) => format!(
                "unsupported Sec-WebSocket-Version {versions:?}: this server speaks version 13 (RFC 6455 §4.4)"
            ),
            HandshakeError::MissingKey => {
                "missing Sec-WebSocket-Key header (RFC 6455 §4.2.1)".into()
            }
            HandshakeError::DuplicateKey => "more than one Sec-WebSocket-Key header".into(),
            HandshakeError::InvalidKey => {
                "Sec-WebSocket-Key must be base64 of exactly 16 bytes (RFC 6455 §4.2.1)".into()
            }
            HandshakeError::OriginNotAllowed(origin) => format!("origin {origin} is not allowed"),
        }
    }

    /// The headers the answer carries besides the usual ones.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            HandshakeError::NotGet => vec![("Allow", "GET".to_string())],
            HandshakeError::Hixie76 | HandshakeError::UnsupportedVersion(_) => {
                vec![("Sec-WebSocket-Version", VERSION.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The full HTTP response, ending the connection.
    pub fn to_response(&self) -> Vec<u8> {
        Rejection::from(self.clone()).to_response()
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.status();
        write!(f, "{status} {}: {}", status_text(status), self.reason())
    }
}

impl std::error::Error for HandshakeError {}

impl From<HandshakeError> for Rejection {
    fn from(error: HandshakeError) -> Rejection {
        Rejection {
            status: error.status(),
            reason: error.reason(),
            headers: error.headers(),
        }
    }
}

/// What a server accepts beyond the rules every upgrade must meet: the
/// subprotocols it speaks, and the origins whose pages may connect. The
/// server passes its settings in; [`Policy::accept`] applies them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    /// Subprotocols, in no order: the first the client offers is chosen.
    pub protocols: &'a [String],
    /// Origins (`scheme://host[:port]`) whose pages may connect besides the
    /// server's own; empty: every origin.
    pub allowed_origins: &'a [String],
}

impl Policy<'_> {
    /// The origin check ([`check_origin`]), then the rules of §4.2.1
    /// ([`validate_upgrade`]).
    ///
    /// ```
    /// use wschat::ws::handshake::{HandshakeError, Policy, parse_request};
    /// let head = b"GET / HTTP/1.1\r\nHost: chat.example\r\nOrigin: http://evil.example\r\n\
    ///              Upgrade: websocket\r\nConnection: Upgrade\r\n\
    ///              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// let (request, _) = parse_request(head, 8192).unwrap().unwrap();
    /// let allowed = ["https://shop.example".to_string()];
    /// let policy = Policy { protocols: &[], allowed_origins: &allowed };
    /// let refused = policy.accept(&request).unwrap_err();
    /// assert_eq!(refused, HandshakeError::OriginNotAllowed("http://evil.example".into()));
    /// assert_eq!(refused.status(), 403);
    /// assert!(Policy::default().accept(&request).is_ok()); // no list: any origin
    /// ```
    pub fn accept(&self, request: &Request) -> Result<Accept, HandshakeError> {
        check_origin(request, self.allowed_origins)?;
        validate_upgrade(request, self.protocols)
    }
}

/// The Origin allowlist (RFC 6455 §4.2.2, §10.2): with none, every origin
/// is accepted; with some, a page from any other origin is refused (403).
/// This is the defence against cross-site WebSocket hijacking: browsers
/// always send `Origin`, and a page elsewhere cannot forge it. A request
/// without `Origin` comes from no browser page and is accepted.
pub fn check_origin(request: &Request, allowed: &[String]) -> Result<(), HandshakeError> {
    let origin = request.header("Origin");
    if allowed.is_empty() {
        log::debug!(
            target: "wschat::server::http",
            "origin {:?} accepted (no --allowed-origin configured)",
            origin.unwrap_or("none")
        );
        return Ok(());
    }
    match origin {
        Some(o) if origin_allowed(o, request, allowed) => Ok(()),
        Some(o) => Err(HandshakeError::OriginNotAllowed(o.to_string())),
        None => Ok(()),
    }
}

/// Whether a page at `origin` may use this server: it is on the list, or
/// it is this server's own page (its host is the request's `Host`), which
/// is always allowed.
pub fn origin_allowed(origin: &str, request: &Request, allowed: &[String]) -> bool {
    let origin = origin.trim();
    let own = request.header("Host").is_some_and(|host| {
        let host = host.trim();
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|h| h.eq_ignore_ascii_case(host))
    });
    own || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// The reason phrase for the status codes wschat sends.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A complete HTTP/1.1 response that closes the connection afterwards.
pub fn http_response(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status_text(status),
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Parse an HTTP request head from the bytes received so far (§4.1 says the
/// handshake is a valid HTTP/1.1 request).
///
/// * `Ok(None)`: the head is not complete; read more and call again.
/// * `Ok(Some((request, used)))`: bytes after `used` are not part of it.
/// * `Err(rejection)`: 431 past `max_header_bytes` or [`MAX_HEADERS`]
///   lines, 400 for bytes that are not an HTTP request.
pub fn parse_request(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let window = &buf[..buf.len().min(max_header_bytes)];
    // On the heap: 3 KiB on a connection thread's stack would stay resident
    // for the life of every connection.
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(window) {
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_header_bytes {
                Err(HandshakeError::HeadTooLarge(max_header_bytes))
            } else {
                Ok(None)
            }
        }
        Ok(httparse::Status::Complete(used)) => {
            // Values are bytes: invalid UTF-8 is replaced (which only a
            // value that has some needs an allocation for).
            let len = req
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum();
            let request = Request::from_parts(
                req.method.unwrap_or(""),
                req.path.unwrap_or(""),
                req.version.unwrap_or(0),
                len,
                req.headers
                    .iter()
                    .map(|h| (h.name, String::from_utf8_lossy(h.value))),
            );
            Ok(Some((request, used)))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
        Err(e) => Err(HandshakeError::Malformed(e.to_string())),
    }
}

/// A request the server accepts: what goes into the 101 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// `Sec-WebSocket-Accept`, computed by [`accept_key`].
    pub accept_key: AcceptKey,
    /// The subprotocol chosen from the client's offers, if any.
    pub protocol: Option<String>,
    /// The extensions accepted, as the value of `Sec-WebSocket-Extensions`
    /// (§9.1), if any: see [`crate::ws::deflate::negotiate`].
    pub extensions: Option<String>,
}

impl Accept {
    /// The `101 Switching Protocols` response (§4.2.2 step 5). Extension
    /// offers not in [`Accept::extensions`] are declined by leaving them
    /// out of `Sec-WebSocket-Extensions` (§9.1).
    ///
    /// ```
    /// use wschat::ws::handshake::{Accept, accept_key};
    /// let accept = Accept {
    ///     accept_key: accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
    ///     protocol: None,
    ///     extensions: None,
    /// };
    /// assert_eq!(
    ///     String::from_utf8(accept.response()).unwrap(),
    ///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///      Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    /// );
    /// ```
    pub fn response(&self) -> Vec<u8> {
        let mut out = vec![0; self.response_len()];
        self.write_response(&mut out);
        out
    }

    /// The response's lines after the status line's fixed part, each a
    /// name and its value, if it has one.
    fn lines(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("Sec-WebSocket-Accept: ", Some(self.accept_key.as_str())),
            ("Sec-WebSocket-Protocol: ", self.protocol.as_deref()),
            ("Sec-WebSocket-Extensions: ", self.extensions.as_deref()),
        ]
    }

    /// The length of [`Accept::response`] in bytes.
    pub fn response_len(&self) -> usize {
        RESPONSE_HEAD.len()
            + self
                .lines()
                .iter()
                .filter_map(|(name, value)| value.map(|v| name.len() + v.len() + 2))
                .sum::<usize>()
            + 2
    }

    /// Write [`Accept::response`] at the start of `out` and return its
    /// length, or `None` (nothing written) if `out` is shorter than
    /// [`Accept::response_len`]. A server can answer from a buffer on its
    /// stack: no allocation for the common 101.
    ///
    /// ```
    /// use wschat::ws::handshake::{Accept, accept_key};
    /// let accept = Accept { accept_key: accept_key("x3JJHMbDL1EzLkh9GBhXDw=="), protocol: None, extensions: None };
    /// let mut buf = [0u8; 256];
    /// let n = accept.write_response(&mut buf).unwrap();
    /// assert_eq!(&buf[..n], &accept.response()[..]);
    /// assert_eq!(accept.write_response(&mut [0u8; 10]), None);
    /// ```
    pub fn write_response(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.response_len();
        let mut rest = out.get_mut(..len)?;
        let mut put = |bytes: &[u8]| {
            let (here, after) = std::mem::take(&mut rest).split_at_mut(bytes.len());
            here.copy_from_slice(bytes);
            rest = after;
        };
        put(RESPONSE_HEAD.as_bytes());
        for (name, value) in self.lines() {
            if let Some(value) = value {
                put(name.as_bytes());
                put(value.as_bytes());
                put(b"\r\n");
            }
        }
        put(b"\r\n");
        Some(len)
    }
}

/// The fixed start of every 101 (§4.2.2 step 5, items 1-3).
const RESPONSE_HEAD: &str =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";

/// Apply the server's rules of RFC 6455 §4.2.1 to an upgrade request, and
/// choose a subprotocol: the first the client offers that is in `supported`.
///
/// The answers, each with a one-line reason:
/// 405 for a method other than GET; 426 for a Hixie-76 request (it has
/// `Sec-WebSocket-Key1`/`Key2`) and for a version other than 13; 400 for
/// HTTP older than 1.1, a missing `Host`, an `Upgrade` without `websocket`,
/// a `Connection` without `Upgrade`, a missing version, or a key that is not
/// base64 of 16 bytes.
pub fn validate_upgrade(request: &Request, supported: &[String]) -> Result<Accept, HandshakeError> {
    if request.method() != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if request.header("Sec-WebSocket-Key1").is_some()
        || request.header("Sec-WebSocket-Key2").is_some()
    {
        return Err(HandshakeError::Hixie76);
    }
    if request.minor_version < 1 {
        return Err(HandshakeError::OldHttp);
    }
    match single(request.headers_named("Host")) {
        Ok(Some(host)) if !host.trim_matches(HTTP_WS).is_empty() => {}
        Ok(_) => return Err(HandshakeError::MissingHost),
        Err(()) => return Err(HandshakeError::DuplicateHost),
    }
    if !request.has_token("Upgrade", "websocket") {
        return Err(HandshakeError::NoUpgradeToken);
    }
    if !request.has_token("Connection", "Upgrade") {
        return Err(HandshakeError::NoConnectionToken);
    }
    match single(request.headers_named("Sec-WebSocket-Version")) {
        Ok(None) => return Err(HandshakeError::MissingVersion),
        Ok(Some(v)) if v.trim_matches(HTTP_WS) == VERSION => {}
        _ => {
            let versions: Vec<&str> = request.headers_named("Sec-WebSocket-Version").collect();
            return Err(HandshakeError::UnsupportedVersion(versions.join(", ")));
        }
    }
    let key = match single(request.headers_named("Sec-WebSocket-Key")) {
        Ok(Some(key)) => key.trim_matches(HTTP_WS),
        Ok(None) => return Err(HandshakeError::MissingKey),
        Err(()) => return Err(HandshakeError::DuplicateKey),
    };
    if !is_valid_key(key) {
        return Err(HandshakeError::InvalidKey);
    }
    let protocol = request
        .headers_named("Sec-WebSocket-Protocol")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim_matches(HTTP_WS))
        .find(|offer| supported.iter().any(|s| s == offer))
        .map(str::to_string);
    Ok(Accept {
        accept_key: accept_key(key),
        protocol,
        extensions: None,
    })
}

/// The one value an iterator of header values holds: `Ok(None)` when the
/// header is absent, `Err(())` when it is repeated. Nothing is collected:
/// an accepted handshake allocates as little as it can, since what a
/// connection's thread frees stays cached for it while it is idle.
fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Result<Option<&'a str>, ()> {
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        (Some(_), Some(_)) | (None, Some(_)) => Err(()),
    }
}

/// Whether `key` is base64 of exactly 16 bytes (24 characters with `==`).
pub fn is_valid_key(key: &str) -> bool {
    // 24 characters decode to at most 18 bytes: room on the stack.
    let mut bytes = [0u8; 18];
    key.len() == 24 && BASE64.decode_slice(key, &mut bytes) == Ok(16)
}

/// A new `Sec-WebSocket-Key`: base64 of 16 random bytes (§4.1 step 7).
pub fn generate_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// The client's opening handshake request (§4.1) for `host` (with port, as
/// it goes in the `Host` header) and `target` (path and query).
///
/// ```
/// use wschat::ws::handshake::client_request;
/// let req = client_request("server.example.com", "/chat", "dGhlIHNhbXBsZSBub25jZQ==", &[], &[]);
/// assert!(req.starts_with(b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
/// ```
pub fn client_request(
    host: &str,
    target: &str,
    key: &str,
    protocols: &[&str],
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {VERSION}\r\n"
    );
    if !protocols.is_empty() {
        out.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            protocols.join(", ")
        ));
    }
    for (name, value) in extra_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A parsed HTTP response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines in order.
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the server's response head from the bytes received so far; as
/// [`parse_request`], `Ok(None)` asks for more.
pub fn parse_response(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(Response, usize)>, String> {
    let window = &buf[..buf.len().min(max_header_bytes)];
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(window) {
        Ok(httparse::Status::Partial) if buf.len() >= max_header_bytes => Err(format!(
            "response header block over {max_header_bytes} bytes"
        )),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => Ok(Some((
            Response {
                status: resp.code.unwrap_or(0),
                headers: resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            },
            used,
        ))),
        Err(e) => Err(format!("malformed HTTP response: {e}")),
    }
}

/// Check the server's answer to a request sent with `key` (§4.1, the
/// client's checks): status 101, `Upgrade: websocket`, `Connection: Upgrade`,
/// the right `Sec-WebSocket-Accept`, no extension, and a subprotocol only
/// from `offered`. Returns the chosen subprotocol.
pub fn verify_response(
    response: &Response,
    key: &str,
    offered: &[&str],
) -> Result<Option<String>, String> {
    match verify_response_with_extensions(response, key, offered)? {
        (_, Some(_)) => Err("the server chose an extension that was not offered".into()),
        (protocol, None) => Ok(protocol),
    }
}

/// [`verify_response`] for a request that offered extensions: the same
/// checks, except that a `Sec-WebSocket-Extensions` answer is returned
/// (its lines joined with `, `, RFC 9110 §5.3) for the caller to check
/// against what it offered (§9.1), beside the chosen subprotocol.
pub fn verify_response_with_extensions(
    response: &Response,
    key: &str,
    offered: &[&str],
) -> Result<(Option<String>, Option<String>), String> {
    if response.status != 101 {
        return Err(format!(
            "the server answered {} instead of 101",
            response.status
        ));
    }
    let has = |name: &str, token: &str| {
        response
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim_matches(HTTP_WS).eq_ignore_ascii_case(token))
    };
    if !has("Upgrade", "websocket") {
        return Err("the 101 response lacks Upgrade: websocket".into());
    }
    if !has("Connection", "Upgrade") {
        return Err("the 101 response lacks Connection: Upgrade".into());
    }
    let expected = accept_key(key);
    match response.header("Sec-WebSocket-Accept") {
        Some(v) if v.trim_matches(HTTP_WS) == expected => {}
        Some(v) => {
            return Err(format!(
                "wrong Sec-WebSocket-Accept {v:?}, expected {expected:?}"
            ));
        }
        None => return Err("the 101 response lacks Sec-WebSocket-Accept".into()),
    }
    let extensions: Vec<&str> = response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .map(|(_, v)| v.trim_matches(HTTP_WS))
        .collect();
    let extensions = (!extensions.is_empty()).then(|| extensions.join(", "));
    let protocol = match response.header("Sec-WebSocket-Protocol") {
        None => None,
        Some(p) if offered.contains(&p.trim_matches(HTTP_WS)) => {
            Some(p.trim_matches(HTTP_WS).to_string())
        }
        Some(p) => {
            return Err(format!(
                "the server chose subprotocol {p:?}, which was not offered"
            ));
        }
    };
    Ok((protocol, extensions))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parse(text: &str) -> Request {
        parse_request(text.as_bytes(), DEFAULT_MAX_HEADER_BYTES)
            .unwrap()
            .unwrap()
            .0
    }

    fn status_of(text: &str) -> u16 {
        match validate_upgrade(&parse(text), &[]) {
            Ok(_) => 101,
            Err(r) => r.status(),
        }
    }

    #[test]
    fn rfc_1_3_example_is_accepted_with_the_rfc_accept_key() {
        let supported = vec!["superchat".to_string()];
        let accept = validate_upgrade(&parse(GOOD), &supported).unwrap();
        assert_eq!(accept.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(accept.protocol.as_deref(), Some("superchat"));
        let none = validate_upgrade(&parse(GOOD), &[]).unwrap();
        assert_eq!(none.protocol, None);
    }

    #[test]
    fn partial_requests_ask_for_more_at_every_cut() {
        for cut in 0..GOOD.len() {
            assert_eq!(
                parse_request(&GOOD.as_bytes()[..cut], 8192),
                Ok(None),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn each_rule_has_its_status() {
        let replace = |from: &str, to: &str| GOOD.replace(from, to);
        assert_eq!(status_of(GOOD), 101);
        assert_eq!(status_of(&replace("GET", "POST")), 405);
        assert_eq!(status_of(&replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(status_of(&replace("Host: server.example.com\r\n", "")), 400);
        assert_eq!(
            status_of(&replace("Upgrade: websocket", "Upgrade: h2c")),
            400
        );
        assert_eq!(
            status_of(&replace("Connection: Upgrade", "Connection: keep-alive")),
            400
        );
        assert_eq!(
            status_of(&replace(
                "Connection: Upgrade",
                "connection: keep-alive, UPGRADE"
            )),
            101
        );
        assert_eq!(
            status_of(&replace("Upgrade: websocket", "Upgrade: WebSocket")),
            101
        );
        assert_eq!(status_of(&replace("Version: 13", "Version: 8")), 426);
        assert_eq!(
            status_of(&replace("Sec-WebSocket-Version: 13\r\n", "")),
            400
        );
        assert_eq!(
            status_of(&replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==")),
            400
        );
        assert_eq!(
            status_of(&replace(
                "dGhlIHNhbXBsZSBub25jZQ==",
                "not base64 at all!!!!!!!"
            )),
            400
        );
        let hixie = "GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\n\
            Upgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
            Origin: http://example.com\r\n\r\n^n:ds[4U";
        let r = validate_upgrade(&parse(hixie), &[]).unwrap_err();
        assert_eq!(r, HandshakeError::Hixie76);
        assert_eq!(r.status(), 426);
        assert!(r.reason().contains("RFC 6455 replaced"));
        assert!(
            r.headers()
                .contains(&("Sec-WebSocket-Version", "13".to_string()))
        );
    }

    #[test]
    fn header_limit_gives_431() {
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "a".repeat(9000));
        let r = parse_request(big.as_bytes(), 8192).unwrap_err();
        assert_eq!(r.status(), 431);
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        let r =
            parse_request(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), 8192).unwrap_err();
        assert_eq!(r.status(), 431);
    }

    #[test]
    fn client_side_round_trip() {
        let key = generate_key(*b"the sample nonce");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        let req = client_request(
            "h:1",
            "/x?name=a%20b",
            &key,
            &["chat"],
            &[("Origin", "http://h")],
        );
        let (parsed, _) = parse_request(&req, 8192).unwrap().unwrap();
        assert_eq!(parsed.query_param("name").as_deref(), Some("a b"));
        let accept = validate_upgrade(&parsed, &["chat".to_string()]).unwrap();
        let (resp, used) = parse_response(&accept.response(), 8192).unwrap().unwrap();
        assert_eq!(used, accept.response().len());
        assert_eq!(
            verify_response(&resp, &key, &["chat"]),
            Ok(Some("chat".to_string()))
        );
        let other = generate_key([7; 16]);
        assert!(verify_response(&resp, &other, &["chat"]).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%E7%94%A8%E6%88%B7"), "用户");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }
}
