//! The opening handshake over real sockets (RFC 6455 §4): every answer the
//! running server gives to an upgrade request, good or bad, with its status,
//! its headers and its one-line reason.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{
    HttpReply, RFC_ACCEPT, RawClient, client_frame, config, http_exchange, read_http_reply,
    request, start, start_default, tcp, upgrade_lines, upgrade_request,
};
use wschat::client::{self, Options};
use wschat::ws::frame::OpCode;

/// Send `upgrade_lines` edited by `edit` as `request_line` to a default
/// server, and return the answer.
fn ask(request_line: &str, edit: impl FnOnce(&mut Vec<String>)) -> HttpReply {
    let server = start_default();
    let mut lines = upgrade_lines(&server.addr().to_string());
    edit(&mut lines);
    http_exchange(server.addr(), &request(request_line, &lines))
}

/// Replace the header line that starts with `name:` by `line`, or remove it
/// when `line` is `None`.
fn set(lines: &mut Vec<String>, name: &str, line: Option<&str>) {
    let i = lines
        .iter()
        .position(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line to replace"));
    match line {
        Some(line) => lines[i] = line.to_string(),
        None => {
            lines.remove(i);
        }
    }
}

/// A rejection: `status`, a plain-text body of one line that contains
/// `reason`, and a connection the server closes.
fn assert_rejected(reply: &HttpReply, status: u16, reason: &str) {
    assert_eq!(reply.status, status, "{reply:?}: {}", reply.body_text());
    let body = reply.body_text();
    assert!(
        body.ends_with('\n') && body.trim_end().lines().count() == 1,
        "the body is one line: {body:?}"
    );
    assert!(body.contains(reason), "{body:?} should mention {reason:?}");
    assert_eq!(reply.header("Connection"), Some("close"));
    assert!(
        reply
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{reply:?}"
    );
    assert_eq!(reply.header("Sec-WebSocket-Accept"), None);
}

#[test]
fn a_valid_upgrade_gets_101_with_the_rfc_accept_key() {
    let server = start_default();
    let mut stream = tcp(server.addr());
    stream
        .write_all(&upgrade_request(server.addr(), "/echo"))
        .unwrap();
    let reply = read_http_reply(&mut stream);
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.status_line, "HTTP/1.1 101 Switching Protocols");
    // RFC 6455 §4.2.2 step 5: Upgrade, Connection, and the accept key of
    // §1.3's worked example.
    assert_eq!(
        reply.header("Upgrade").map(str::to_ascii_lowercase),
        Some("websocket".into())
    );
    assert_eq!(
        reply.header("Connection").map(str::to_ascii_lowercase),
        Some("upgrade".into())
    );
    assert_eq!(reply.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
    assert_eq!(reply.header("Sec-WebSocket-Protocol"), None);
    assert_eq!(reply.header("Sec-WebSocket-Extensions"), None);
    assert!(reply.leftover.is_empty(), "nothing before the first frame");
}

#[test]
fn the_accept_key_follows_the_client_key() {
    // A second key, so that a server that always answers the RFC's value
    // fails. base64("wschat teaching!") and its accept value, computed outside
    // wschat with `printf '%s' "$KEY$GUID" | sha1sum | xxd -r -p | base64`.
    let server = start_default();
    let mut lines = upgrade_lines(&server.addr().to_string());
    set(
        &mut lines,
        "Sec-WebSocket-Key",
        Some("Sec-WebSocket-Key: d3NjaGF0IHRlYWNoaW5nIQ=="),
    );
    let reply = http_exchange(server.addr(), &request("GET /echo HTTP/1.1", &lines));
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(
        reply.header("Sec-WebSocket-Accept"),
        Some("Dd5itakhzkWDzLMxW/hCOGrIOuE=")
    );
}

#[test]
fn http_1_0_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.0", |_| {});
    assert_rejected(&reply, 400, "HTTP/1.1");
}

#[test]
fn a_missing_host_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.1", |l| set(l, "Host", None));
    assert_rejected(&reply, 400, "Host");
}

#[test]
fn an_upgrade_to_something_else_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        set(l, "Upgrade", Some("Upgrade: h2c"))
    });
    assert_rejected(&reply, 400, "websocket");
}

#[test]
fn a_connection_header_without_upgrade_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        set(l, "Connection", Some("Connection: keep-alive"))
    });
    assert_rejected(&reply, 400, "Connection");
}

#[test]
fn connection_and_upgrade_are_token_lists_in_any_case() {
    // Firefox sends `Connection: keep-alive, Upgrade`; the tokens are
    // case-insensitive (RFC 6455 §4.2.1 items 3 and 4).
    let reply = ask("GET /echo HTTP/1.1", |l| {
        set(l, "Connection", Some("Connection: keep-alive, UPGRADE"));
        set(l, "Upgrade", Some("Upgrade: WebSocket"));
    });
    assert_eq!(reply.status, 101, "{reply:?}");
}

#[test]
fn a_missing_version_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        set(l, "Sec-WebSocket-Version", None)
    });
    assert_rejected(&reply, 400, "Sec-WebSocket-Version");
}

#[test]
fn a_key_that_is_not_base64_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        set(
            l,
            "Sec-WebSocket-Key",
            Some("Sec-WebSocket-Key: !!!!not*base64*at*all!!!"),
        )
    });
    assert_rejected(&reply, 400, "16 bytes");
}

#[test]
fn a_key_of_other_than_16_bytes_is_refused_with_400() {
    // base64 of the 11 bytes "the sample " and of 17 bytes.
    for key in ["dGhlIHNhbXBsZSA=", "dGhlIHNhbXBsZSBub25jZSE="] {
        let reply = ask("GET /echo HTTP/1.1", |l| {
            set(
                l,
                "Sec-WebSocket-Key",
                Some(&format!("Sec-WebSocket-Key: {key}")),
            )
        });
        assert_rejected(&reply, 400, "16 bytes");
    }
}

#[test]
fn a_missing_key_is_refused_with_400() {
    let reply = ask("GET /echo HTTP/1.1", |l| set(l, "Sec-WebSocket-Key", None));
    assert_rejected(&reply, 400, "Sec-WebSocket-Key");
}

#[test]
fn a_post_upgrade_is_refused_with_405() {
    let reply = ask("POST /echo HTTP/1.1", |_| {});
    assert_rejected(&reply, 405, "GET");
    assert_eq!(reply.header("Allow"), Some("GET"));
}

#[test]
fn version_8_is_refused_with_426_naming_version_13() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        set(l, "Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8"))
    });
    assert_rejected(&reply, 426, "13");
    // RFC 6455 §4.2.2 (/version/) and §4.4: the versions the server speaks.
    assert_eq!(reply.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn a_hixie_76_request_is_refused_with_426_naming_its_successor() {
    let server = start_default();
    // The shape of draft-hixie-thewebsocketprotocol-76: two number keys in
    // the head and eight key bytes after it.
    let mut bytes = request(
        "GET /echo HTTP/1.1",
        &[
            format!("Host: {}", server.addr()),
            "Connection: Upgrade".to_string(),
            "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00".to_string(),
            "Upgrade: WebSocket".to_string(),
            "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5".to_string(),
            "Origin: http://example.com".to_string(),
        ],
    );
    bytes.extend_from_slice(b"^n:ds[4U");
    let reply = http_exchange(server.addr(), &bytes);
    assert_rejected(&reply, 426, "RFC 6455 replaced");
    assert_eq!(reply.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn a_header_block_over_the_default_8_kib_is_refused_with_431() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        l.push(format!("X-Padding: {}", "a".repeat(9000)));
    });
    assert_rejected(&reply, 431, "8192");
}

#[test]
fn a_header_block_just_under_the_limit_is_accepted() {
    // The limit counts the whole head; pad it to exactly 8192 bytes.
    let server = start_default();
    let lines = upgrade_lines(&server.addr().to_string());
    let base = request("GET /echo HTTP/1.1", &lines).len();
    let filler_overhead = "X-Padding: \r\n".len();
    let mut padded = lines.clone();
    padded.push(format!(
        "X-Padding: {}",
        "a".repeat(8192 - base - filler_overhead)
    ));
    let bytes = request("GET /echo HTTP/1.1", &padded);
    assert_eq!(bytes.len(), 8192);
    let reply = http_exchange(server.addr(), &bytes);
    assert_eq!(reply.status, 101, "{reply:?}");
}

#[test]
fn a_small_max_header_bytes_is_honoured_with_431() {
    let server = start(wschat::config::Config {
        max_header_bytes: 128,
        ..config()
    });
    // The plain valid request is longer than 128 bytes.
    let bytes = upgrade_request(server.addr(), "/echo");
    assert!(bytes.len() > 128);
    let reply = http_exchange(server.addr(), &bytes);
    assert_rejected(&reply, 431, "128");
}

#[test]
fn too_many_header_lines_are_refused_with_431() {
    let reply = ask("GET /echo HTTP/1.1", |l| {
        l.extend((0..150).map(|i| format!("X-{i}: v")));
    });
    assert_rejected(&reply, 431, "header lines");
}

#[test]
fn an_upgrade_on_a_path_without_an_endpoint_is_refused_with_404() {
    let reply = ask("GET /no-such-endpoint HTTP/1.1", |_| {});
    assert_rejected(&reply, 404, "/no-such-endpoint");
}

#[test]
fn a_head_that_does_not_arrive_in_time_gets_408() {
    let server = start(wschat::config::Config {
        handshake_timeout: Duration::from_millis(300),
        ..config()
    });
    let mut stream = tcp(server.addr());
    // Half a head, then nothing: the server must answer on its own.
    stream
        .write_all(format!("GET /echo HTTP/1.1\r\nHost: {}\r\nUpg", server.addr()).as_bytes())
        .unwrap();
    let reply = read_http_reply(&mut stream);
    assert_rejected(&reply, 408, "in time");
    common::assert_eof(&mut stream);
}

#[test]
fn past_max_connections_the_next_one_gets_503_until_one_leaves() {
    let server = start(wschat::config::Config {
        max_connections: 2,
        ..config()
    });
    let url = common::ws_url(&server, "/echo");
    let mut first = client::connect(&url).expect("first connection");
    let second = client::connect(&url).expect("second connection");
    assert_eq!(server.open_connections(), 2);

    let reply = http_exchange(server.addr(), &upgrade_request(server.addr(), "/echo"));
    assert_rejected(&reply, 503, "limit");
    assert!(reply.header("Retry-After").is_some(), "{reply:?}");
    // A plain page is refused too: the cap counts sockets, not upgrades.
    let reply = http_exchange(server.addr(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.status, 503);

    // One leaves with a close handshake; its slot is given back.
    first
        .close(wschat::ws::CloseCode::NORMAL, "")
        .expect("send close");
    assert!(matches!(
        first.read_message(),
        Ok(wschat::ws::Message::Close(_))
    ));
    drop(first);
    common::eventually(Duration::from_secs(10), "the slot is given back", || {
        server.open_connections() == 1
    });
    let third = client::connect(&url).expect("a slot is free again");
    drop((second, third));
}

#[test]
fn past_max_connections_per_ip_one_address_gets_503_until_one_leaves() {
    let server = start(wschat::config::Config {
        max_connections_per_ip: 2,
        ..config()
    });
    let url = common::ws_url(&server, "/echo");
    let first = client::connect(&url).expect("first connection");
    let second = client::connect(&url).expect("second connection");
    let reply = http_exchange(server.addr(), &upgrade_request(server.addr(), "/echo"));
    assert_rejected(&reply, 503, "from your address");
    assert!(reply.header("Retry-After").is_some(), "{reply:?}");
    drop(first);
    common::eventually(
        Duration::from_secs(10),
        "the address's slot is given back",
        || server.open_connections() == 1,
    );
    let third = client::connect(&url).expect("a slot is free again");
    drop((second, third));

    // A trusted proxy carries many clients: it is not capped.
    let proxied = start(wschat::config::Config {
        max_connections_per_ip: 1,
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..config()
    });
    let url = common::ws_url(&proxied, "/echo");
    let held: Vec<_> = (0..3)
        .map(|_| client::connect(&url).expect("through the proxy"))
        .collect();
    assert_eq!(held.len(), 3);
}

#[test]
fn the_first_offered_subprotocol_the_server_supports_is_chosen() {
    let server = start(wschat::config::Config {
        protocols: vec!["superchat".into(), "chat".into()],
        ..config()
    });
    let cases: [(&str, Option<&str>); 4] = [
        // The client's order wins, not the server's.
        ("chat, superchat", Some("chat")),
        ("superchat, chat", Some("superchat")),
        ("v2.other, chat", Some("chat")),
        ("v2.other", None),
    ];
    for (offer, chosen) in cases {
        let mut lines = upgrade_lines(&server.addr().to_string());
        lines.push(format!("Sec-WebSocket-Protocol: {offer}"));
        let reply = http_exchange(server.addr(), &request("GET /echo HTTP/1.1", &lines));
        assert_eq!(reply.status, 101, "{reply:?}");
        assert_eq!(
            reply.header("Sec-WebSocket-Protocol"),
            chosen,
            "offer {offer:?}"
        );
    }

    // The same through wschat's client, which checks the answer itself.
    let options = Options {
        protocols: vec!["chat".into(), "superchat".into()],
        ..Options::default()
    };
    let (_ws, chosen) =
        client::connect_with(&common::ws_url(&server, "/echo"), &options).expect("connect");
    assert_eq!(chosen.as_deref(), Some("chat"));
}

#[test]
fn extensions_are_declined_by_leaving_the_header_out() {
    // permessage-deflate is accepted (tests/deflate.rs); anything else is
    // declined by saying nothing of it (RFC 6455 §9.1).
    let reply = ask("GET /echo HTTP/1.1", |l| {
        l.push("Sec-WebSocket-Extensions: x-webkit-deflate-frame; no_context_takeover".to_string());
    });
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.header("Sec-WebSocket-Extensions"), None);
}

#[test]
fn plain_get_serves_the_page_and_healthz() {
    let server = start_default();
    let page = http_exchange(
        server.addr(),
        format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr()).as_bytes(),
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{page:?}"
    );
    assert!(page.body_text().contains("<html"), "{}", page.body_text());

    let health = http_exchange(
        server.addr(),
        format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr()).as_bytes(),
    );
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body_text(), "ok\n");

    let missing = http_exchange(
        server.addr(),
        format!(
            "GET /nothing-here HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr()
        )
        .as_bytes(),
    );
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[test]
fn frames_written_with_the_handshake_are_not_lost() {
    let server = start_default();
    // The head and two masked frames in one write: the server reads them
    // together and must keep what follows the head.
    let mut bytes = upgrade_request(server.addr(), "/echo");
    bytes.extend(client_frame(true, OpCode::Text, b"first"));
    bytes.extend(client_frame(true, OpCode::Binary, &[1, 2, 3]));
    let mut ws = RawClient::connect_with(server.addr(), &bytes);
    assert_eq!(ws.expect(OpCode::Text), b"first");
    assert_eq!(ws.expect(OpCode::Binary), [1, 2, 3]);
    // And the connection goes on as usual.
    ws.send_frame(true, OpCode::Text, b"third");
    assert_eq!(ws.expect(OpCode::Text), b"third");
}

#[test]
fn the_client_reports_the_servers_reason_for_a_refusal() {
    let server = start_default();
    let err = client::connect(&common::ws_url(&server, "/no-such-endpoint"))
        .expect_err("no endpoint there");
    let text = err.to_string();
    assert!(text.contains("404"), "{text}");
    assert!(text.contains("/no-such-endpoint"), "{text}");
}

#[test]
fn a_handshake_that_completes_while_the_server_stops_is_answered_503() {
    let server = start_default();
    let addr = server.addr();
    let mut stream = tcp(addr);
    let bytes = upgrade_request(addr, "/");
    let (head, rest) = bytes.split_at(16);
    stream.write_all(head).unwrap();
    // The listener has taken the connection: its thread waits for the rest
    // of the request.
    common::eventually(Duration::from_secs(5), "the connection accepted", || {
        server.open_connections() == 1
    });
    server.stop();
    stream.write_all(rest).unwrap();
    let reply = read_http_reply(&mut stream);
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.body_text().contains("shutting down"), "{reply:?}");
}
