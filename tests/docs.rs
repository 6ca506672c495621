//! The teaching pages quote bytes; this test makes sure wschat's own code
//! produces every one of them, so a page can never drift from the code.
//!
//! In `docs/handshake.md` and `docs/framing.md`:
//!
//! * `<!-- dump: NAME -->` before a fenced block marks bytes (```hex: lowercase,
//!   space-separated, 16 a line) or text (```http, ```text) that the generator
//!   `NAME` below rebuilds with wschat's code. HTTP text is shown with each
//!   CRLF as a plain line break.
//! * `<!-- request: NAME -->` before a ```http block marks a request the page
//!   explains; generators parse it with wschat's parser and answer it.
//! * Links to `../src/…` must name a file that exists, and a link whose text
//!   is `code` must name something that file defines.
//!
//! Every generator must be used exactly once across the pages, so removing
//! a dump fails the test as surely as changing one. On a mismatch the
//! message shows the block the page should hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use wschat::ws::deflate;
use wschat::ws::frame::{FrameHeader, OpCode, encode_frame};
use wschat::ws::handshake::{self, Request};
use wschat::ws::mask::apply_mask;
use wschat::ws::{CloseCode, CloseFrame, Connection, Limits, Message, ProtocolError, Role};

/// The pages this test checks.
const PAGES: [&str; 2] = ["docs/handshake.md", "docs/framing.md"];

/// The masking key of the RFC 6455 §5.7 examples.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The client request of RFC 6455 §1.3, as the RFC prints it.
const RFC_1_3_REQUEST: &str = "GET /chat HTTP/1.1
Host: server.example.com
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Origin: http://example.com
Sec-WebSocket-Protocol: chat, superchat
Sec-WebSocket-Version: 13";

/// A marked block of a page.
#[derive(Debug)]
struct Block {
    page: &'static str,
    line: usize,
    kind: &'static str,
    name: String,
    lang: String,
    content: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_page(page: &str) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("reading {page}: {e}"))
}

/// The marked blocks of `text`. A marker must be followed by a fenced block.
fn blocks(page: &'static str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let Some(inner) = line
            .strip_prefix("<!--")
            .and_then(|l| l.strip_suffix("-->"))
        else {
            continue;
        };
        let inner = inner.trim();
        let (kind, name) = if let Some(name) = inner.strip_prefix("dump:") {
            ("dump", name.trim())
        } else if let Some(name) = inner.strip_prefix("request:") {
            ("request", name.trim())
        } else {
            continue;
        };
        let fence = lines
            .get(i + 1)
            .and_then(|l| l.strip_prefix("```"))
            .unwrap_or_else(|| {
                panic!(
                    "{page}:{}: the marker {name:?} is not followed by a fenced block",
                    i + 1
                )
            });
        let end = lines[i + 2..]
            .iter()
            .position(|l| l.trim_end() == "```")
            .unwrap_or_else(|| panic!("{page}:{}: unclosed block {name:?}", i + 1));
        out.push(Block {
            page,
            line: i + 1,
            kind,
            name: name.to_string(),
            lang: fence.trim().to_string(),
            content: lines[i + 2..i + 2 + end].join("\n"),
        });
    }
    out
}

/// Bytes as lowercase hex, space-separated, 16 a line.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// HTTP bytes as the pages show them: CRLF as a line break, and without
/// the final empty line of a head with no body.
fn http_text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .expect("HTTP text is UTF-8")
        .replace("\r\n", "\n")
        .trim_end_matches('\n')
        .to_string()
}

/// A request block as wire bytes: each line ended by CRLF, then the empty
/// line.
fn request_bytes(text: &str) -> Vec<u8> {
    let mut out: String = text.lines().map(|l| format!("{l}\r\n")).collect();
    out.push_str("\r\n");
    out.into_bytes()
}

/// Parse a request block with wschat's parser; it must be whole.
fn parse(text: &str) -> Request {
    let bytes = request_bytes(text);
    let (request, used) = handshake::parse_request(&bytes, handshake::DEFAULT_MAX_HEADER_BYTES)
        .expect("the request parses")
        .expect("the request is complete");
    assert_eq!(used, bytes.len());
    request
}

/// The response wschat gives to `request` with the `supported`
/// subprotocols.
fn answer(request: &str, supported: &[&str]) -> Vec<u8> {
    let supported: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
    let request = parse(request);
    match handshake::validate_upgrade(&request, &supported) {
        Ok(mut accept) => {
            // As the server does (src/server/http.rs), with --deflate on.
            let offers = request.headers_named("Sec-WebSocket-Extensions");
            accept.extensions = deflate::negotiate(offers).map(|a| a.response());
            accept.response()
        }
        Err(rejection) => rejection.to_response(),
    }
}

/// A request block with the header line `name` replaced by `line`
/// (removed when `line` is empty).
fn edit(request: &str, name: &str, line: &str) -> String {
    let mut found = false;
    let lines: Vec<&str> = request
        .lines()
        .filter_map(|l| {
            if l.split(':').next() == Some(name) {
                found = true;
                (!line.is_empty()).then_some(line)
            } else {
                Some(l)
            }
        })
        .collect();
    assert!(found, "no {name} line in the request");
    lines.join("\n")
}

fn key_of(request: &str) -> String {
    parse(request)
        .header("Sec-WebSocket-Key")
        .expect("the request has a key")
        .to_string()
}

/// A client frame masked with the RFC key.
fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(MASK));
    out
}

fn unmasked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, None);
    out
}

fn header_only(payload_len: u64) -> Vec<u8> {
    let (bytes, n) = FrameHeader::new(OpCode::Binary, payload_len).encode();
    bytes[..n].to_vec()
}

/// A frame's bytes explained field by field, the way framing.md shows the
/// RFC's masked "Hello".
fn annotate(bytes: &[u8]) -> String {
    let (header, header_len) = FrameHeader::parse(bytes).expect("a whole header");
    let (b0, b1) = (bytes[0], bytes[1]);
    let mut lines = vec![
        format!(
            "{:<16}{:04b} {:04b}  FIN={} RSV={:03b} opcode=0x{:x} ({})",
            hex(&[b0]),
            b0 >> 4,
            b0 & 0x0f,
            u8::from(header.fin),
            header.rsv,
            header.opcode.as_u8(),
            header.opcode.name()
        ),
        format!(
            "{:<16}{:04b} {:04b}  MASK={} payload length={}",
            hex(&[b1]),
            b1 >> 4,
            b1 & 0x0f,
            u8::from(header.mask.is_some()),
            b1 & 0x7f
        ),
    ];
    let mut at = 2;
    if header_len - 2 - header.mask.map_or(0, |_| 4) > 0 {
        let ext = header_len - 2 - header.mask.map_or(0, |_| 4);
        lines.push(format!(
            "{:<16}extended payload length={}",
            hex(&bytes[2..2 + ext]),
            header.payload_len
        ));
        at += ext;
    }
    if let Some(key) = header.mask {
        lines.push(format!("{:<16}masking key", hex(&key)));
        at += 4;
    }
    let payload = &bytes[at..];
    let mut plain = payload.to_vec();
    if let Some(key) = header.mask {
        apply_mask(&mut plain, key, 0);
    }
    lines.push(format!(
        "{:<16}payload{}: {:?}",
        hex(payload),
        if header.mask.is_some() {
            ", masked"
        } else {
            ""
        },
        String::from_utf8_lossy(&plain)
    ));
    lines.join("\n")
}

/// Feed `frames` to a server-side connection one after the other, and
/// return what it writes back after each: its own replies (pong, close),
/// plus the echo of every data message, as the `/echo` endpoint does.
fn server_replies(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut conn = Connection::new(Role::Server, Limits::default());
    frames
        .iter()
        .map(|bytes| {
            let mut input = bytes.as_slice();
            while !input.is_empty() {
                if let Ok(Some(message @ (Message::Text(_) | Message::Binary(_)))) =
                    conn.receive(&mut input)
                {
                    conn.send(&message).expect("the connection is open");
                }
            }
            conn.take_output()
        })
        .collect()
}

/// Every error that fails a connection, with an example value.
fn every_error() -> Vec<ProtocolError> {
    vec![
        ProtocolError::UnmaskedFrame,
        ProtocolError::MaskedFrame,
        ProtocolError::ReservedBits(0b100),
        ProtocolError::ReservedOpcode(0x3),
        ProtocolError::LengthHighBit,
        ProtocolError::ControlFrameTooLong(126),
        ProtocolError::FragmentedControlFrame,
        ProtocolError::UnexpectedContinuation,
        ProtocolError::ExpectedContinuation,
        ProtocolError::InvalidUtf8,
        ProtocolError::FrameTooBig {
            len: 2_000_000,
            limit: 1 << 20,
        },
        ProtocolError::MessageTooBig {
            len: 1_100_000,
            limit: 1 << 20,
        },
        ProtocolError::CloseFrameOneByte,
        ProtocolError::InvalidCloseCode(1005),
        ProtocolError::MisplacedCompressionBit("ping"),
        ProtocolError::BadCompressedData,
    ]
}

/// Each generator by name: what its block must hold, built with wschat's
/// code. `requests` are the request blocks of the pages.
fn generate(name: &str, requests: &BTreeMap<String, String>) -> Option<String> {
    let request = |n: &str| {
        requests
            .get(n)
            .unwrap_or_else(|| panic!("no <!-- request: {n} --> block"))
            .as_str()
    };
    let rfc = || request("rfc");
    Some(match name {
        // handshake.md
        "rfc-nonce" => {
            let key = key_of(rfc());
            let nonce = BASE64.decode(&key).expect("the key is base64");
            let nonce: [u8; 16] = nonce.try_into().expect("16 bytes");
            assert_eq!(handshake::generate_key(nonce), key);
            hex(&nonce)
        }
        "rfc-key-guid" => format!("{}{}", key_of(rfc()), handshake::GUID),
        "rfc-sha1" => {
            let digest = BASE64
                .decode(handshake::accept_key(&key_of(rfc())))
                .expect("the accept value is base64");
            hex(&digest)
        }
        "rfc-accept" => handshake::accept_key(&key_of(rfc())).to_string(),
        "rfc-101" => http_text(&answer(rfc(), &["chat"])),
        "chrome-101" => http_text(&answer(request("chrome"), &[])),
        "version-8-426" => http_text(&answer(
            &edit(rfc(), "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"),
            &[],
        )),
        "rejections" => {
            let hixie = "GET /demo HTTP/1.1\nHost: example.com\nConnection: Upgrade\n\
                Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\nUpgrade: WebSocket\n\
                Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\nOrigin: http://example.com";
            let cases: Vec<String> = vec![
                rfc().replacen("GET", "POST", 1),
                hixie.to_string(),
                edit(rfc(), "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"),
                rfc().replacen("HTTP/1.1", "HTTP/1.0", 1),
                edit(rfc(), "Host", ""),
                edit(rfc(), "Upgrade", "Upgrade: h2c"),
                edit(rfc(), "Connection", "Connection: keep-alive"),
                edit(rfc(), "Sec-WebSocket-Version", ""),
                edit(rfc(), "Sec-WebSocket-Key", ""),
                edit(
                    rfc(),
                    "Sec-WebSocket-Key",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==",
                ),
            ];
            let mut lines: Vec<String> = cases
                .iter()
                .map(|text| {
                    let rejection = handshake::validate_upgrade(&parse(text), &[])
                        .expect_err("each case is refused");
                    rejection.to_string()
                })
                .collect();
            let too_big = format!("{}\nX-Padding: {}", rfc(), "a".repeat(9000));
            let too_many: String = format!(
                "{}\n{}",
                rfc(),
                (0..101)
                    .map(|i| format!("X-{i}: v"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let garbage = "GET /chat HTTP/1.1\nHost server.example.com".to_string();
            for text in [too_big, too_many, garbage] {
                let rejection = handshake::parse_request(
                    &request_bytes(&text),
                    handshake::DEFAULT_MAX_HEADER_BYTES,
                )
                .expect_err("each case is refused");
                lines.push(rejection.to_string());
            }
            lines.join("\n")
        }

        // framing.md
        "hello-masked" => hex(&masked(true, OpCode::Text, b"Hello")),
        "hello-fields" => annotate(&masked(true, OpCode::Text, b"Hello")),
        "hello-unmasked" => hex(&unmasked(OpCode::Text, b"Hello")),
        "len-125" => hex(&header_only(125)),
        "len-126" => hex(&header_only(126)),
        "len-65535" => hex(&header_only(65535)),
        "len-65536" => hex(&header_only(65536)),
        "len-max" => hex(&header_only(i64::MAX as u64)),
        "len-126-masked" => {
            let mut header = FrameHeader::new(OpCode::Binary, 126);
            header.mask = Some(MASK);
            let (bytes, n) = header.encode();
            annotate(&bytes[..n])
                .lines()
                .take(4)
                .collect::<Vec<_>>()
                .join("\n")
        }
        "mask-payload" => hex(b"Hello"),
        "mask-keystream" => {
            let mut zeros = [0u8; 5];
            apply_mask(&mut zeros, MASK, 0);
            hex(&zeros)
        }
        "mask-result" => {
            let mut data = *b"Hello";
            apply_mask(&mut data, MASK, 0);
            hex(&data)
        }
        "mask-word-0" | "mask-word-1" | "mask-word-3" => {
            let offset = name[name.len() - 1..].parse().unwrap();
            let mut zeros = [0u8; 8];
            apply_mask(&mut zeros, MASK, offset);
            hex(&zeros)
        }
        "frag-1" => hex(&masked(false, OpCode::Text, b"Hel")),
        "frag-ping" => hex(&masked(true, OpCode::Ping, b"?")),
        "frag-2" => hex(&masked(true, OpCode::Continuation, b"lo")),
        "frag-replies" => {
            let replies = server_replies(&[
                masked(false, OpCode::Text, b"Hel"),
                masked(true, OpCode::Ping, b"?"),
                masked(true, OpCode::Continuation, b"lo"),
            ]);
            assert!(replies[0].is_empty(), "nothing after the first fragment");
            format!(
                "after the ping:  {}\nafter the last:  {}",
                hex(&replies[1]),
                hex(&replies[2])
            )
        }
        "close-client" => {
            let payload = CloseFrame::new(CloseCode::NORMAL, "bye").to_payload();
            hex(&masked(true, OpCode::Close, &payload))
        }
        "close-server" => {
            let payload = CloseFrame::new(CloseCode::NORMAL, "bye").to_payload();
            let replies = server_replies(&[masked(true, OpCode::Close, &payload)]);
            hex(&replies[0])
        }
        "fail-unmasked" => {
            let replies = server_replies(&[unmasked(OpCode::Text, b"Hello")]);
            hex(&replies[0])
        }
        "deflate-answer" => {
            let chromium = "permessage-deflate; client_max_window_bits";
            let agreement = deflate::negotiate([chromium]).expect("accepted");
            format!(
                "Sec-WebSocket-Extensions: {chromium}\n\nSec-WebSocket-Extensions: {}",
                agreement.response()
            )
        }
        "deflate-hello" | "deflate-hello-masked" => {
            let role = if name == "deflate-hello" {
                Role::Server
            } else {
                Role::Client
            };
            let mut conn = Connection::new(role, Limits::default()).with_mask_source(|| MASK);
            conn.set_deflate(deflate::Agreement::default(), 0, None);
            conn.send(&Message::Text("Hello".into())).expect("open");
            hex(&conn.take_output())
        }
        "deflate-dissect" => {
            // RFC 7692 §7.2.3.1, the compressed "Hello" in two fragments.
            let bytes = [
                0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
            ];
            let options = wschat::dissect::Options::new(wschat::dissect::Direction::ServerToClient)
                .with_deflate(true);
            wschat::dissect::dissect(&bytes, &options)
                .to_text()
                .trim_end()
                .to_string()
        }
        "errors" => every_error()
            .iter()
            .map(|e| format!("{}  §{:<6} {}", e.close_code().0, e.rfc_section(), e))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    })
}

/// Every generator's name; each must appear exactly once across the pages.
const GENERATORS: &[&str] = &[
    "rfc-nonce",
    "rfc-key-guid",
    "rfc-sha1",
    "rfc-accept",
    "rfc-101",
    "chrome-101",
    "version-8-426",
    "rejections",
    "hello-masked",
    "hello-fields",
    "hello-unmasked",
    "len-125",
    "len-126",
    "len-65535",
    "len-65536",
    "len-max",
    "len-126-masked",
    "mask-payload",
    "mask-keystream",
    "mask-result",
    "mask-word-0",
    "mask-word-1",
    "mask-word-3",
    "frag-1",
    "frag-ping",
    "frag-2",
    "frag-replies",
    "close-client",
    "close-server",
    "fail-unmasked",
    "errors",
    "deflate-answer",
    "deflate-hello",
    "deflate-hello-masked",
    "deflate-dissect",
];

#[test]
fn every_dump_in_the_docs_is_what_wschat_produces() {
    let all: Vec<Block> = PAGES
        .iter()
        .flat_map(|page| blocks(page, &read_page(page)))
        .collect();
    let mut requests = BTreeMap::new();
    for block in all.iter().filter(|b| b.kind == "request") {
        assert_eq!(block.lang, "http", "{}:{}", block.page, block.line);
        assert!(
            requests
                .insert(block.name.clone(), block.content.clone())
                .is_none(),
            "request {:?} marked twice",
            block.name
        );
    }
    assert_eq!(
        requests.get("rfc").map(String::as_str),
        Some(RFC_1_3_REQUEST),
        "the page quotes RFC 6455 §1.3's request exactly"
    );

    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for block in all.iter().filter(|b| b.kind == "dump") {
        assert!(
            seen.insert(block.name.as_str()),
            "{}:{}: dump {:?} appears twice",
            block.page,
            block.line,
            block.name
        );
        let expected = generate(&block.name, &requests).unwrap_or_else(|| {
            panic!(
                "{}:{}: no generator for dump {:?}",
                block.page, block.line, block.name
            )
        });
        if block.content != expected {
            failures.push(format!(
                "{}:{}: dump {:?} differs; the page should hold:\n<!-- dump: {} -->\n```{}\n{}\n```",
                block.page, block.line, block.name, block.name, block.lang, expected
            ));
        }
        if block.lang == "hex" {
            assert!(
                expected
                    .split(['\n', ' '])
                    .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit())),
                "{}:{}: dump {:?} is marked hex but its generator makes text",
                block.page,
                block.line,
                block.name
            );
        }
    }
    let missing: Vec<&&str> = GENERATORS.iter().filter(|g| !seen.contains(**g)).collect();
    assert!(
        missing.is_empty(),
        "dumps missing from the pages: {missing:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Whether the Rust source `text` defines `ident` (an item or a variant).
fn defines(text: &str, ident: &str) -> bool {
    let items = [
        "fn", "struct", "enum", "const", "trait", "type", "mod", "static",
    ];
    text.lines().any(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        items
            .iter()
            .any(|item| {
                line.strip_prefix(item)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .is_some_and(|rest| {
                        rest.strip_prefix(ident).is_some_and(|after| {
                            after.is_empty() || !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                        })
                    })
            })
            // An enum variant: `Name,`, `Name(…)` or `Name {` on its own line.
            || line.strip_prefix(ident).is_some_and(|after| {
                after.starts_with(',') || after.starts_with('(') || after.starts_with(" {")
            })
    })
}

/// The headings of a Markdown page.
fn headings(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect()
}

/// The anchor a heading gets on GitHub: lower case, punctuation dropped,
/// spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_source_link_in_the_docs_names_real_code() {
    let mut checked = 0;
    for page in PAGES {
        let text = read_page(page);
        let dir = root().join(page);
        let dir = dir.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("](") {
            let label_start = rest[..start].rfind('[').unwrap_or(start);
            let label = &rest[label_start + 1..start];
            let after = &rest[start + 2..];
            let end = after.find(')').expect("a closed link");
            let target = &after[..end];
            rest = &after[end..];
            if target.starts_with("http") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target, None),
            };
            let path: &Path = &if file.is_empty() {
                root().join(page)
            } else {
                dir.join(file)
            };
            assert!(
                path.exists(),
                "{page}: link to {target}, which does not exist"
            );
            if let Some(anchor) = anchor {
                let markdown = std::fs::read_to_string(path).unwrap();
                assert!(
                    headings(&markdown).iter().any(|h| slug(h) == anchor),
                    "{page}: link to {target}, but no heading there has that anchor"
                );
                continue;
            }
            let Some(code) = label.strip_prefix('`').and_then(|l| l.strip_suffix('`')) else {
                continue;
            };
            if code.contains('/') || code.ends_with(".rs") {
                // A file name as the label: it must be the file linked.
                assert!(
                    file.ends_with(code),
                    "{page}: [`{code}`]({target}) links to another file"
                );
                continue;
            }
            if !file.ends_with(".rs") {
                continue;
            }
            let source = std::fs::read_to_string(path).unwrap();
            for ident in code.split("::") {
                let ident = ident.trim_end_matches("()");
                assert!(
                    defines(&source, ident),
                    "{page}: [`{code}`]({target}): {file} defines no {ident}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} code links: the pages lost their links"
    );
}

#[test]
fn the_generators_know_every_rfc_example() {
    // The generators themselves rest on values RFC 6455 prints; if wschat's
    // code changed under them, the pages would follow the code, so pin the
    // RFC's bytes here (§1.3 and §5.7).
    let mut requests = BTreeMap::new();
    requests.insert("rfc".to_string(), RFC_1_3_REQUEST.to_string());
    let gen_ = |name: &str| generate(name, &requests).unwrap();
    assert_eq!(gen_("rfc-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(
        gen_("rfc-sha1"),
        "b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45\nb2 be c4 ea"
    );
    assert_eq!(gen_("hello-masked"), "81 85 37 fa 21 3d 7f 9f 4d 51 58");
    assert_eq!(gen_("hello-unmasked"), "81 05 48 65 6c 6c 6f");
    assert_eq!(gen_("len-65536"), "82 7f 00 00 00 00 00 01 00 00");
    assert_eq!(hex(&header_only(256)), "82 7e 01 00");
}

/// docs/identity.md's three ways of minting a token (Python, Node, a
/// shell with openssl), each run as the page shows it: wschat accepts what
/// each prints. A missing interpreter skips its block, with a note.
#[test]
fn the_token_minting_examples_make_tokens_wschat_accepts() {
    let page = read_page("docs/identity.md");
    let lines: Vec<&str> = page.lines().collect();
    let mut ran = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(kind) = line
            .trim()
            .strip_prefix("<!-- mint:")
            .and_then(|l| l.strip_suffix("-->"))
            .map(str::trim)
        else {
            continue;
        };
        let body: String = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (program, args): (&str, Vec<&str>) = match kind {
            "python" => ("python3", vec!["-c", &body]),
            "node" => ("node", vec!["-e", &body]),
            "sh" => ("sh", vec!["-c", &body]),
            other => panic!("unknown mint block {other:?}"),
        };
        let out = match std::process::Command::new(program)
            .args(&args)
            .env("SECRET", "docs-secret")
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("note: {kind} example not run: {program}: {e}");
                continue;
            }
        };
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let now = wschat::clock::now_ms() / 1000;
        let claims = wschat::auth::verify(&token, &[b"docs-secret".to_vec()], now)
            .unwrap_or_else(|e| panic!("{kind}'s token {token:?}: {e}"));
        assert_eq!(claims.sub, "site-42", "{kind}");
        ran += 1;
    }
    assert!(ran >= 1, "at least one of the examples ran");
}

/// Whitespace collapsed, and none just inside brackets or before a
/// trailing comma's bracket: how a signature reads however it is wrapped.
fn signature_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(", )", ")")
        .replace(" )", ")")
}

/// docs/architecture.md, "The store behind the hub", quotes the `Log`
/// trait: every method it shows is one of `src/hub/log.rs`'s, with the
/// same signature, and it shows every one.
#[test]
fn the_store_interface_in_architecture_md_is_the_code() {
    let page = read_page("docs/architecture.md");
    let start = page
        .find("pub trait Log: Send + Debug {")
        .expect("architecture.md quotes the Log trait");
    let block = &page[start..];
    let block = &block[..block.find("\n}\n").expect("the trait's end")];
    let source = std::fs::read_to_string(root().join("src/hub/log.rs")).unwrap();
    let trait_start = source
        .find("pub trait Log: Send + Debug {")
        .expect("src/hub/log.rs defines the Log trait");
    let trait_end = trait_start + source[trait_start..].find("\n}\n").unwrap();
    let code: String = source[trait_start..trait_end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let code = signature_text(&code);
    let mut shown = 0;
    for line in block.lines().filter(|l| l.trim_start().starts_with("fn ")) {
        let line = line.split("//").next().unwrap();
        let signature = signature_text(line);
        assert!(
            code.contains(&signature),
            "architecture.md shows `{signature}`, which src/hub/log.rs's Log does not have"
        );
        shown += 1;
    }
    let methods = code.matches(" fn ").count();
    assert_eq!(
        shown, methods,
        "architecture.md shows {shown} of the Log trait's {methods} methods"
    );
}
