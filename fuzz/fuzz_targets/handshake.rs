//! Fuzz target `handshake`: arbitrary bytes as the client's opening
//! handshake (RFC 6455 §4.1, §4.2.1) through [`parse_request`], with a small
//! header limit, and [`validate_upgrade`].
//!
//! The input is the raw request bytes, so real handshakes are seeds as they
//! are.
//!
//! What it proves:
//!
//! 1. no panic, whatever the bytes;
//! 2. `parse_request` is sans-I/O and keeps its limit: a complete head is
//!    parsed the same from exactly its own bytes and with the limit set to
//!    exactly its length; one byte less asks for more, or is a 431 when the
//!    limit is one byte less; a rejection is a 400 or a 431, an incomplete
//!    head under the limit asks for more;
//! 3. whenever `validate_upgrade` answers 101, the request met every rule of
//!    §4.2.1, checked here independently of wschat's own helpers: the raw
//!    request line is `GET <target> HTTP/1.1`; a `Host` with a value; an
//!    `Upgrade` listing the token `websocket` and a `Connection` listing the
//!    token `Upgrade` (ASCII case-insensitive); exactly one
//!    `Sec-WebSocket-Version`, equal to `13`; exactly one
//!    `Sec-WebSocket-Key` that base64-decodes to 16 bytes (decoded here by a
//!    separate decoder). Header values are trimmed only of HTTP's optional
//!    whitespace, space and tab (RFC 9110 §5.6.3);
//! 4. the 101 carries `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID)) as
//!    [`accept_key`] computes it, and a subprotocol only from those offered
//!    and supported (the first offered, §4.2.2); the client's checks
//!    ([`verify_response`]) accept the 101 as written;
//! 5. conversely, a request that meets every rule strictly (one `Host`,
//!    canonical base64, no Hixie-76 `Sec-WebSocket-Key1`/`Key2`) is
//!    accepted;
//! 6. a rejection is a 400, 405 or 426 whose response parses back with that
//!    status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::handshake::{
    Request, accept_key, parse_request, parse_response, validate_upgrade, verify_response,
};

/// A small limit on the request head, so that the 431 path is reached.
const MAX_HEADER_BYTES: usize = 1024;

/// The subprotocols this "server" supports.
const SUPPORTED: [&str; 2] = ["chat", "superchat"];

fuzz_target!(|data: &[u8]| {
    let (request, used) = match parse_request(data, MAX_HEADER_BYTES) {
        Ok(None) => {
            assert!(
                data.len() < MAX_HEADER_BYTES,
                "asked for more past the limit"
            );
            return;
        }
        Err(rejection) => {
            assert!(
                matches!(rejection.status(), 400 | 431),
                "parse_request rejected with {rejection}"
            );
            check_rejection_response(&rejection.to_response(), rejection.status());
            return;
        }
        Ok(Some(parsed)) => parsed,
    };
    check_parse_boundaries(data, &request, used);

    let supported: Vec<String> = SUPPORTED.iter().map(|s| s.to_string()).collect();
    let rules = Rules::check(&data[..used], &request);
    match validate_upgrade(&request, &supported) {
        Ok(accept) => {
            let key = rules.assert_all_met(&request);
            assert_eq!(accept.accept_key, accept_key(key), "the accept key");
            let offered: Vec<&str> = request
                .headers()
                .filter(|(name, _)| name.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
                .flat_map(|(_, value)| value.split(','))
                .map(ows_trim)
                .collect();
            let expected = offered
                .iter()
                .find(|offer| SUPPORTED.contains(offer))
                .map(|offer| offer.to_string());
            assert_eq!(accept.protocol, expected, "the chosen subprotocol");

            let response = accept.response();
            let (parsed, response_used) = parse_response(&response, 4096)
                .expect("the 101 parses")
                .expect("the 101 is complete");
            assert_eq!(response_used, response.len());
            assert_eq!(parsed.status, 101);
            assert_eq!(verify_response(&parsed, key, &offered), Ok(expected));
        }
        Err(rejection) => {
            assert!(
                matches!(rejection.status(), 400 | 405 | 426),
                "validate_upgrade rejected with {rejection}"
            );
            assert!(
                !rules.all_met_strictly(&request),
                "a request that meets every rule of §4.2.1 was rejected: {rejection}"
            );
            check_rejection_response(&rejection.to_response(), rejection.status());
        }
    }
});

/// The boundaries of a complete head of `used` bytes.
fn check_parse_boundaries(data: &[u8], request: &Request, used: usize) {
    assert!(used > 0 && used <= data.len().min(MAX_HEADER_BYTES));
    let same = Ok(Some((request.clone(), used)));
    assert_eq!(parse_request(&data[..used], MAX_HEADER_BYTES), same);
    assert_eq!(parse_request(data, used), same, "limit exactly the head");
    assert_eq!(parse_request(&data[..used - 1], MAX_HEADER_BYTES), Ok(None));
    assert_eq!(parse_request(&data[..used / 2], MAX_HEADER_BYTES), Ok(None));
    let over = parse_request(data, used - 1).expect_err("a head one byte over the limit");
    assert_eq!(over.status(), 431);
}

/// A rejection's response is an HTTP response with its status.
fn check_rejection_response(response: &[u8], status: u16) {
    let (parsed, used) = parse_response(response, 4096)
        .expect("the rejection parses")
        .expect("the rejection is complete");
    assert_eq!(parsed.status, status);
    assert!(used <= response.len());
}

/// HTTP's optional whitespace around a value or a list element: spaces and
/// tabs only (RFC 9110 §5.6.3), not every Unicode space.
fn ows_trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The values of header `name`, trimmed of optional whitespace.
fn values<'a>(request: &'a Request, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    request
        .headers()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| ows_trim(v))
}

/// Whether some value of header `name` lists `token` (§4.2.1 compares
/// ASCII case-insensitively).
fn lists_token(request: &Request, name: &str, token: &str) -> bool {
    values(request, name)
        .flat_map(|v| v.split(','))
        .any(|t| ows_trim(t).eq_ignore_ascii_case(token))
}

/// The rules of §4.2.1, each checked on its own.
#[derive(Debug)]
struct Rules {
    /// The raw request line is `GET <target> HTTP/1.1`.
    request_line: bool,
    /// Some `Host` header has a non-empty value.
    host: bool,
    /// `Upgrade` lists `websocket`.
    upgrade: bool,
    /// `Connection` lists `Upgrade`.
    connection: bool,
    /// Exactly one `Sec-WebSocket-Version`, equal to `13`.
    version: bool,
    /// Exactly one `Sec-WebSocket-Key`, base64 of 16 bytes.
    key: bool,
}

impl Rules {
    fn check(head: &[u8], request: &Request) -> Rules {
        let versions: Vec<&str> = values(request, "Sec-WebSocket-Version").collect();
        let keys: Vec<&str> = values(request, "Sec-WebSocket-Key").collect();
        Rules {
            request_line: raw_request_line_is_get_http11(head) && request.method() == "GET",
            host: values(request, "Host").any(|h| !h.is_empty()),
            upgrade: lists_token(request, "Upgrade", "websocket"),
            connection: lists_token(request, "Connection", "Upgrade"),
            version: versions == ["13"],
            key: matches!(keys.as_slice(), [key] if base64_decode(key, false).is_some_and(|k| k.len() == 16)),
        }
    }

    /// Panic unless every rule was met; the key.
    fn assert_all_met<'a>(&self, request: &'a Request) -> &'a str {
        assert!(
            self.request_line
                && self.host
                && self.upgrade
                && self.connection
                && self.version
                && self.key,
            "accepted a request that breaks RFC 6455 §4.2.1: {self:?}\n{request:#?}"
        );
        values(request, "Sec-WebSocket-Key")
            .next()
            .expect("one key")
    }

    /// Every rule met, in the strictest reading: one `Host`, a key in
    /// canonical base64, and nothing of the Hixie-76 handshake.
    fn all_met_strictly(&self, request: &Request) -> bool {
        let key_canonical = values(request, "Sec-WebSocket-Key")
            .all(|k| base64_decode(k, true).is_some_and(|k| k.len() == 16));
        let hixie = values(request, "Sec-WebSocket-Key1").next().is_some()
            || values(request, "Sec-WebSocket-Key2").next().is_some();
        self.request_line
            && self.host
            && values(request, "Host").count() == 1
            && self.upgrade
            && self.connection
            && self.version
            && self.key
            && key_canonical
            && !hixie
    }
}

/// Whether the request line in the raw bytes (after any empty lines, which
/// HTTP lets a server skip, RFC 9112 §2.2) is `GET <target> HTTP/1.1`.
fn raw_request_line_is_get_http11(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let line = &head[start..];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = line[..end].strip_suffix(b"\r").unwrap_or(&line[..end]);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [b"GET", target, b"HTTP/1.1"] if !target.is_empty())
}

/// Decode standard base64 with padding (RFC 4648 §4), written here so that
/// the check does not share code with wschat. With `canonical`, the unused
/// bits of the last character must be zero (RFC 4648 §3.5).
fn base64_decode(text: &str, canonical: bool) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::new();
    let groups = bytes.len() / 4;
    for (i, group) in bytes.chunks(4).enumerate() {
        let padding = group.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && i + 1 != groups) {
            return None;
        }
        let mut word = 0u32;
        for &c in &group[..4 - padding] {
            word = (word << 6) | value(c)?;
        }
        word <<= 6 * padding as u32;
        let decoded = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        let keep = 3 - padding;
        if canonical && decoded[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Some(out)
}
