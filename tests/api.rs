//! The HTTP API (docs/api.md) over real sockets: an in-process server on
//! 127.0.0.1, requests written by hand on TCP, WebSocket clients seeing
//! the effects. docs/openapi.yaml is checked against the routes the code
//! serves, both ways.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{ChatClient, HttpReply, read_http_reply, tcp};
use serde_json::{Value, json};
use wschat::config::Config;
use wschat::server::{IpRange, ServerHandle};

const KEY: &str = "test-key-1";
const SECRET: &str = "api-test-secret";

/// A temporary data directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wschat-api-{tag}-{}-{}",
            std::process::id(),
            wschat::random::random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn api_config() -> Config {
    Config {
        api_keys: vec!["other-key".into(), KEY.into()],
        rate_limit: 0,
        jwt_secrets: vec![SECRET.as_bytes().to_vec()],
        ..common::config()
    }
}

/// Send one request with `key` (none: no `Authorization`) and read the
/// answer.
fn call_with(
    addr: SocketAddr,
    key: Option<&str>,
    method: &str,
    target: &str,
    body: &[u8],
) -> HttpReply {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(key) = key {
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut stream = tcp(addr);
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    let _ = stream.write_all(&bytes);
    read_http_reply(&mut stream)
}

/// A request with the right key; the answer's status and JSON body.
fn call(server: &ServerHandle, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let reply = call_with(server.addr(), Some(KEY), method, target, body.as_bytes());
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/json"),
        "{}",
        reply.body_text()
    );
    let value: Value = serde_json::from_slice(&reply.body).expect("a JSON body");
    (reply.status, value)
}

/// An error answer: `status`, and the body `{"error":{"code","message"}}`.
fn assert_error(answer: (u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn token(claims: Value) -> String {
    wschat::auth::sign(claims.to_string().as_bytes(), SECRET.as_bytes())
}

fn future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

#[test]
fn keys_addresses_and_sizes_are_checked_at_the_door() {
    let server = common::start(api_config());
    let addr = server.addr();
    let reply = call_with(addr, None, "GET", "/api/rooms", b"");
    assert_eq!(reply.status, 401);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let reply = call_with(addr, Some("wrong"), "GET", "/api/rooms", b"");
    assert_eq!(reply.status, 401);
    assert!(!reply.body_text().contains(KEY));
    // Either key of the list opens the door.
    assert_eq!(
        call_with(addr, Some("other-key"), "GET", "/api/rooms", b"").status,
        200
    );
    assert_eq!(call(&server, "GET", "/api/rooms", None).0, 200);

    assert_error(call(&server, "POST", "/api/publish", None), 400, "bad_json");
    let (status, _) = call(&server, "GET", "/api/nothing-here", None);
    assert_eq!(status, 404);
    assert_error(
        call(&server, "GET", "/api/publish", None),
        405,
        "method_not_allowed",
    );

    let big = vec![b'x'; wschat::config::DEFAULT_API_MAX_BODY + 1];
    let reply = call_with(addr, Some(KEY), "POST", "/api/publish", &big);
    assert_eq!(reply.status, 413);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    drop(server);

    // Outside --api-from: 403, even with the key.
    let server = common::start(Config {
        api_from: vec![IpRange::parse("10.0.0.0/8").unwrap()],
        ..api_config()
    });
    let reply = call_with(server.addr(), Some(KEY), "GET", "/api/rooms", b"");
    assert_eq!(reply.status, 403);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    drop(server);

    // No key configured: nobody gets in.
    let server = common::start(common::config());
    let reply = call_with(server.addr(), Some(KEY), "GET", "/api/rooms", b"");
    assert_eq!(reply.status, 401);
}

#[test]
fn the_rate_limit_is_per_key() {
    let server = common::start(Config {
        api_rate: 3,
        ..api_config()
    });
    let addr = server.addr();
    // A full bucket: the first three pass, whatever the time.
    for _ in 0..3 {
        assert_eq!(
            call_with(addr, Some(KEY), "GET", "/api/rooms", b"").status,
            200
        );
    }
    // Then, at far more than 3 a second, a refusal comes (a slow machine
    // may refill a token or two in between).
    let limited = (0..50)
        .map(|_| call_with(addr, Some(KEY), "GET", "/api/rooms", b""))
        .find(|r| r.status != 200)
        .expect("a 429 within 50 quick requests");
    assert_eq!(limited.status, 429);
    assert!(limited.header("Retry-After").is_some());
    let body: Value = serde_json::from_slice(&limited.body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another key has its own bucket.
    assert_eq!(
        call_with(addr, Some("other-key"), "GET", "/api/rooms", b"").status,
        200
    );
}

#[test]
fn publish_reaches_the_room_as_a_bot_and_is_stored() {
    let server = common::start(api_config());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let (status, body) = call(
        &server,
        "POST",
        "/api/publish",
        Some(json!({"room": "lobby", "text": "your order has shipped", "name": "Shop"})),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().expect("an id");
    let msg = ann.until("the bot's message", |m| {
        m["type"] == "chat" && m["id"] == id
    });
    assert_eq!(msg["user"]["bot"], true);
    assert_eq!(msg["user"]["name"], "Shop");
    assert_eq!(msg["user"]["id"], 0);
    assert_eq!(msg["text"], "your order has shipped");

    // Default name, and history carries it.
    let (_, body) = call(
        &server,
        "POST",
        "/api/publish",
        Some(json!({"room": "lobby", "text": "second"})),
    );
    let second = body["id"].as_u64().unwrap();
    let msg = ann.until("the second", |m| m["type"] == "chat" && m["id"] == second);
    assert_eq!(msg["user"]["name"], "system");
    let (status, page) = call(&server, "GET", "/api/rooms/lobby/history?limit=10", None);
    assert_eq!(status, 200);
    assert_eq!(page["complete"], true);
    let ids: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(ids, [id, second]);
    let (_, page) = call(
        &server,
        "GET",
        &format!("/api/rooms/lobby/history?before={second}"),
        None,
    );
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_error(
        call(&server, "GET", "/api/rooms/lobby/history?limit=x", None),
        400,
        "bad_request",
    );

    // A new connection's history has it too.
    let mut bob = ChatClient::open(&server, "/?name=Bob");
    let history = bob.until_type("history");
    assert!(
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == id && m["user"]["bot"] == true)
    );

    assert_error(
        call(
            &server,
            "POST",
            "/api/publish",
            Some(json!({"room": "nowhere", "text": "x"})),
        ),
        404,
        "unknown_room",
    );
    assert_error(
        call(
            &server,
            "POST",
            "/api/publish",
            Some(json!({"room": "lobby"})),
        ),
        400,
        "bad_request",
    );
    assert_error(
        call(
            &server,
            "POST",
            "/api/publish",
            Some(json!({"room": "lobby", "text": 5})),
        ),
        400,
        "bad_request",
    );
    let long = "x".repeat(wschat::chat::DEFAULT_MAX_TEXT_BYTES + 1);
    assert_error(
        call(
            &server,
            "POST",
            "/api/publish",
            Some(json!({"room": "lobby", "text": long})),
        ),
        400,
        "text_too_long",
    );
}

#[test]
fn rooms_and_members() {
    let server = common::start(api_config());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    ann.send_json(&json!({"type": "join", "room": "garden"}));
    ann.until_type("history");
    let _bob = ChatClient::join(&server, Some("Bob"));
    let (status, body) = call(&server, "GET", "/api/rooms", None);
    assert_eq!(status, 200);
    let rooms = body["rooms"].as_array().unwrap();
    assert!(
        rooms.contains(&json!({"room": "garden", "members": 1})),
        "{body}"
    );
    assert!(
        rooms.contains(&json!({"room": "lobby", "members": 1})),
        "{body}"
    );
    let (status, body) = call(&server, "GET", "/api/rooms/garden/members", None);
    assert_eq!(status, 200);
    assert_eq!(body["members"], json!([{"id": ann.id, "name": "Ann"}]));
    assert_error(
        call(&server, "GET", "/api/rooms/nowhere/members", None),
        404,
        "unknown_room",
    );
    assert_error(
        call(&server, "GET", "/api/rooms/nowhere/history", None),
        404,
        "unknown_room",
    );
}

#[test]
fn private_messages_by_id_and_by_sub_wait_for_the_user() {
    let dir = TempDir::new("private");
    let config = Config {
        data_dir: Some(dir.0.clone()),
        ..api_config()
    };
    let server = common::start(config.clone());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let (status, body) = call(
        &server,
        "POST",
        "/api/private",
        Some(json!({"user": ann.id, "text": "hello Ann", "name": "Shop"})),
    );
    assert_eq!(status, 200, "{body}");
    let msg = ann.until_type("private");
    assert_eq!(msg["text"], "hello Ann");
    assert_eq!(msg["from"]["bot"], true);
    assert_eq!(msg["from"]["name"], "Shop");
    // The conversation list names the bot as its messages do.
    ann.send_json(&json!({"type": "privates"}));
    let list = ann.until_type("privates");
    assert_eq!(
        list["conversations"][0]["with"],
        json!({"id": 0, "name": "Shop", "bot": true}),
        "{list}"
    );

    // A sub never seen: kept until they sign in, across a restart.
    let (status, body) = call(
        &server,
        "POST",
        "/api/private",
        Some(json!({"sub": "carol-42", "text": "your order has shipped"})),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().unwrap();
    drop(ann);
    drop(server);
    let server = common::start(config);
    let jwt = token(json!({"sub": "carol-42", "exp": future()}));
    let mut carol = ChatClient::open(&server, &format!("/?token={jwt}"));
    let msg = carol.until("the kept private", |m| {
        m["type"] == "private" && m["id"] == id
    });
    assert_eq!(msg["text"], "your order has shipped");
    assert_eq!(msg["from"]["bot"], true);

    assert_error(
        call(
            &server,
            "POST",
            "/api/private",
            Some(json!({"user": 999_999, "text": "x"})),
        ),
        404,
        "unknown_user",
    );
    assert_error(
        call(&server, "POST", "/api/private", Some(json!({"text": "x"}))),
        400,
        "bad_request",
    );
    assert_error(
        call_json_text(&server, "/api/private", "{\"sub\":"),
        400,
        "bad_json",
    );
}

fn call_json_text(server: &ServerHandle, target: &str, text: &str) -> (u16, Value) {
    let reply = call_with(server.addr(), Some(KEY), "POST", target, text.as_bytes());
    (reply.status, serde_json::from_slice(&reply.body).unwrap())
}

#[test]
fn kick_ban_and_delete() {
    let server = common::start(api_config());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let said = ann.say("spam spam");
    let id = said["id"].as_u64().unwrap();
    let (status, body) = call(&server, "DELETE", &format!("/api/messages/{id}"), None);
    assert_eq!(status, 200, "{body}");
    bob.until("the deletion", |m| m["type"] == "deleted" && m["id"] == id);
    assert_error(
        call(&server, "DELETE", &format!("/api/messages/{id}"), None),
        404,
        "unknown_message",
    );
    assert_error(
        call(&server, "DELETE", "/api/messages/x", None),
        400,
        "bad_request",
    );

    let (status, body) = call(&server, "POST", "/api/kick", Some(json!({"user": ann.id})));
    assert_eq!(status, 200, "{body}");
    let close = ann.until_close().expect("a close frame");
    assert_eq!(close.code.0, 4003);
    assert_error(
        call(&server, "POST", "/api/kick", Some(json!({"user": 999_999}))),
        404,
        "unknown_user",
    );

    let (status, body) = call(
        &server,
        "POST",
        "/api/ban",
        Some(json!({"user": bob.id, "minutes": 5})),
    );
    assert_eq!(status, 200, "{body}");
    let close = bob.until_close().expect("a close frame");
    assert_eq!(close.code.0, 4003);
    assert_error(
        call(&server, "POST", "/api/ban", Some(json!({"user": 1}))),
        400,
        "bad_request",
    );
    assert_error(
        call(
            &server,
            "POST",
            "/api/ban",
            Some(json!({"user": 999_999, "minutes": 1})),
        ),
        404,
        "unknown_user",
    );
    // A sub never seen is banned from its first sign-in.
    let (status, body) = call(
        &server,
        "POST",
        "/api/ban",
        Some(json!({"sub": "spammer-9", "minutes": 10})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed"], 0);
    let jwt = token(json!({"sub": "spammer-9", "exp": future()}));
    let mut spammer = ChatClient::open(&server, &format!("/?token={jwt}"));
    assert_eq!(spammer.until_close().expect("a close frame").code.0, 4003);
}

/// A desk with one agent; the visitor's conversation.
#[test]
fn desk_conversations_bot_replies_and_resolve() {
    let dir = TempDir::new("desk");
    let token = wschat::desk::agents::add(&dir.0, "alice").unwrap();
    let server = common::start(Config {
        data_dir: Some(dir.0.clone()),
        ..api_config()
    });
    let mut visitor = ChatClient::open(&server, "/support?name=Vic");
    visitor.until_type("welcome");
    visitor.send_text("my parcel is late");
    let queued = visitor.until("queued", |m| m["type"] == "queued");
    let cid = queued["conversation"].as_u64().unwrap();

    let (status, body) = call(&server, "GET", "/api/desk/conversations?state=queued", None);
    assert_eq!(status, 200, "{body}");
    let list = body["conversations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["id"], cid);
    assert_eq!(list[0]["state"], "queued");
    assert_eq!(list[0]["visitor"]["name"], "Vic");
    let (_, body) = call(&server, "GET", "/api/desk/conversations?state=open", None);
    assert_eq!(body["conversations"], json!([]));
    assert_error(
        call(
            &server,
            "GET",
            "/api/desk/conversations?state=sideways",
            None,
        ),
        400,
        "bad_request",
    );

    let (status, body) = call(
        &server,
        "POST",
        &format!("/api/desk/conversations/{cid}/messages"),
        Some(json!({"text": "A person will be with you soon", "name": "Helper"})),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_u64().unwrap();
    let msg = visitor.until("the bot's reply", |m| {
        m["type"] == "desk_message" && m["id"] == id
    });
    assert_eq!(msg["from"], "bot");
    assert_eq!(msg["bot"], true);
    assert_eq!(msg["name"], "Helper");

    // The agent arrives, gets the conversation, and sees the bot too.
    let mut agent = ChatClient::open(&server, "/agent");
    agent.send_json(&json!({"type": "auth", "token": token}));
    agent.until_type("ready");
    agent.until("assigned", |m| {
        m["type"] == "assigned" && m["conversation"] == cid
    });
    let (_, body) = call(
        &server,
        "GET",
        &format!("/api/desk/conversations/{cid}"),
        None,
    );
    assert_eq!(body["state"], "open");
    assert_eq!(body["agent"], "alice");
    let texts: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["my parcel is late", "A person will be with you soon"]
    );
    call(
        &server,
        "POST",
        &format!("/api/desk/conversations/{cid}/messages"),
        Some(json!({"text": "second"})),
    );
    let msg = agent.until("the bot in the console", |m| {
        m["type"] == "desk_message" && m["text"] == "second"
    });
    assert_eq!(msg["bot"], true);

    let (status, _) = call(
        &server,
        "POST",
        &format!("/api/desk/conversations/{cid}/resolve"),
        None,
    );
    assert_eq!(status, 200);
    visitor.until("resolved", |m| {
        m["type"] == "resolved" && m["conversation"] == cid
    });
    assert_error(
        call(
            &server,
            "POST",
            &format!("/api/desk/conversations/{cid}/resolve"),
            None,
        ),
        409,
        "resolved",
    );
    assert_error(
        call(&server, "GET", "/api/desk/conversations/424242", None),
        404,
        "unknown_conversation",
    );
    assert_error(
        call(
            &server,
            "POST",
            "/api/desk/conversations/424242/messages",
            Some(json!({"text": "x"})),
        ),
        404,
        "unknown_conversation",
    );
}

/// The `paths:` of docs/openapi.yaml: each path and its methods, read
/// with no YAML parser (two-space indentation, as the file is written).
fn openapi_routes() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml"),
    )
    .expect("docs/openapi.yaml");
    let mut routes = Vec::new();
    let mut in_paths = false;
    let mut path = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            path = Some(p.trim_end().trim_end_matches(':').to_string());
        } else if let Some(m) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')) {
            let method = m.trim_end().trim_end_matches(':').to_uppercase();
            if ["GET", "POST", "DELETE", "PUT", "PATCH"].contains(&method.as_str()) {
                routes.push((method, path.clone().expect("a path before its methods")));
            }
        }
    }
    routes
}

#[test]
fn openapi_describes_every_route_and_every_route_it_describes_answers() {
    let mut code: Vec<(String, String)> = wschat::chat::api::ROUTES
        .iter()
        .chain(wschat::desk::api::ROUTES)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut documented = openapi_routes();
    code.sort();
    documented.sort();
    assert_eq!(code, documented, "the code's routes and docs/openapi.yaml");

    let server = common::start(api_config());
    for (method, path) in &documented {
        let target = path.replace("{room}", "lobby").replace("{id}", "1");
        let body = if method == "POST" {
            Some(json!({}))
        } else {
            None
        };
        let (_, answer) = call(&server, method, &target, body);
        assert_ne!(
            answer["error"]["code"], "not_found",
            "{method} {path} is not served: {answer}"
        );
    }
}

#[test]
fn every_endpoint_is_in_api_md() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"),
    )
    .expect("docs/api.md");
    for (method, path) in openapi_routes() {
        let heading = format!("{method} {path}");
        assert!(text.contains(&heading), "docs/api.md lacks {heading}");
    }
}

#[test]
fn a_slow_body_is_given_up() {
    // Only the head: the server waits for the body, then answers 408 at
    // its deadline; here we only check that the connection is answered
    // once the body arrives late but complete.
    let server = common::start(api_config());
    let mut stream = tcp(server.addr());
    let body = json!({"room": "lobby", "text": "late"}).to_string();
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(body.as_bytes()).unwrap();
    let reply = read_http_reply(&mut stream);
    assert_eq!(reply.status, 200, "{}", reply.body_text());
}
