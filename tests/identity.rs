//! Identities over real sockets: sessions that name a user across
//! reconnects and restarts, signed-in users (HS256 tokens) as one user on
//! every connection, refusals with 4001 and their reasons, moderation with
//! 4003, deletion for good, and private messages that wait for an offline
//! user.

mod common;

use std::path::PathBuf;

use common::{ChatClient, Incoming, config, percent_encode, start};
use serde_json::{Value, json};
use wschat::auth::sign;
use wschat::config::Config;
use wschat::server::ServerHandle;

const SECRET: &str = "test-secret";
const OLD_SECRET: &str = "old-secret";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wschat-identity-{tag}-{}-{}",
            std::process::id(),
            wschat::random::random_u64()
        ));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn with_secrets(dir: Option<&TempDir>) -> Config {
    Config {
        data_dir: dir.map(|d| d.0.clone()),
        jwt_secrets: vec![SECRET.into(), OLD_SECRET.into()],
        rate_limit: 0,
        ..config()
    }
}

fn far() -> u64 {
    wschat::clock::now_ms() / 1000 + 3600
}

fn token(claims: Value) -> String {
    sign(claims.to_string().as_bytes(), SECRET.as_bytes())
}

/// A client that connects to `target` and reads its `welcome`, `users`,
/// `history` and whatever precedes the first of them it does not skip.
fn arrive(server: &ServerHandle, target: &str) -> (ChatClient, Value) {
    let mut c = ChatClient::open(server, target);
    let welcome = c.until_type("welcome");
    c.id = welcome["user"]["id"].as_u64().unwrap();
    c.name = welcome["user"]["name"].as_str().unwrap().to_string();
    c.until_type("history");
    (c, welcome)
}

/// Connect and expect a Close with `code` before anything else.
fn refused(server: &ServerHandle, target: &str, code: u16) -> String {
    let mut c = ChatClient::open(server, target);
    match c.next() {
        Incoming::Close(Some(frame)) => {
            assert_eq!(frame.code.0, code, "{frame:?}");
            frame.reason
        }
        other => panic!(
            "{target}: expected a Close {code} first, got {:?}",
            other.kind()
        ),
    }
}

#[test]
fn a_session_is_the_same_user_after_a_reconnect_and_a_restart() {
    let dir = TempDir::new("session");
    let server = start(with_secrets(Some(&dir)));
    let (mut ann, welcome) = arrive(&server, "/?name=Ann");
    let session = welcome["session"].as_str().unwrap().to_string();
    ann.send_json(&json!({"type": "join", "room": "garden"}));
    ann.until("a message", |m| {
        m["type"] == "join" && m["room"] == "garden"
    });
    drop(ann);

    let (_, again) = arrive(&server, &format!("/?session={session}"));
    assert_eq!(again["user"], welcome["user"], "same id and name");
    assert_eq!(again["room"], "garden", "same room");
    assert_eq!(again["session"], session.as_str());
    drop(server);

    let server = start(with_secrets(Some(&dir)));
    let (_, after) = arrive(&server, &format!("/?session={session}"));
    assert_eq!(after["user"], welcome["user"], "same user after a restart");
    assert_eq!(after["room"], "garden");
    // An unknown session is no error: a new user.
    let (_, other) = arrive(&server, "/?session=0123456789abcdef0123456789abcdef");
    assert_ne!(other["user"]["id"], welcome["user"]["id"]);
    assert_ne!(other["session"], "0123456789abcdef0123456789abcdef");
}

#[test]
fn two_tabs_of_one_session_are_one_user_and_both_get_what_it_is_sent() {
    let server = start(with_secrets(None));
    let (a1, welcome) = arrive(&server, "/?name=Ann");
    let session = welcome["session"].as_str().unwrap();
    let (mut a2, second) = arrive(&server, &format!("/?session={session}"));
    assert_eq!(second["user"]["id"], welcome["user"]["id"]);
    let mut a1 = a1;
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    bob.send_json(&json!({"type": "private", "to": a1.id, "text": "to both tabs"}));
    for tab in [&mut a1, &mut a2] {
        let got = tab.until_type("private");
        assert_eq!(got["text"], "to both tabs");
    }
    // The room lists Ann once.
    bob.send_json(&json!({"type": "users"}));
    let users = bob.until_type("users");
    let anns = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["id"] == a1.id)
        .count();
    assert_eq!(anns, 1, "{users}");
}

#[test]
fn one_sub_is_one_user_on_every_connection_and_tokens_rotate() {
    let server = start(with_secrets(None));
    let t = token(json!({"sub": "site-42", "exp": far(), "name": "小红", "aud": "wschat"}));
    let old = sign(
        json!({"sub": "site-42", "exp": far()})
            .to_string()
            .as_bytes(),
        OLD_SECRET.as_bytes(),
    );
    let (mut phone, w1) = arrive(&server, &format!("/?token={t}"));
    let (mut laptop, w2) = arrive(&server, &format!("/?token={old}"));
    assert_eq!(w1["user"]["id"], w2["user"]["id"], "one sub, one user");
    assert_eq!(w1["user"]["sub"], "site-42");
    assert_eq!(w1["user"]["verified"], true);
    assert_eq!(w1["user"]["name"], "小红");
    assert!(
        w1.get("session").is_none(),
        "a verified user needs no session"
    );
    // The name from the token cannot be taken.
    let (_, imposter) = arrive(&server, &format!("/?name={}", percent_encode("小红")));
    assert_ne!(imposter["user"]["name"], "小红");
    // A private message reaches both connections.
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    bob.send_json(&json!({"type": "private", "to": phone.id, "text": "both devices"}));
    for c in [&mut phone, &mut laptop] {
        assert_eq!(c.until_type("private")["text"], "both devices");
    }
    // A first-message auth turns an anonymous connection into the user.
    let (mut late, anon) = arrive(&server, "/");
    assert!(anon["user"].get("verified").is_none());
    late.send_json(&json!({"type": "auth", "token": t}));
    let w3 = late.until_type("welcome");
    assert_eq!(w3["user"]["id"], w1["user"]["id"]);
    assert_eq!(w3["user"]["verified"], true);
}

#[test]
fn bad_tokens_are_refused_with_4001_and_a_reason() {
    let server = start(with_secrets(None));
    let now = wschat::clock::now_ms() / 1000;
    let none_alg = {
        use base64::Engine as _;
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.",
            e(r#"{"alg":"none"}"#),
            e(&json!({"sub": "x", "exp": far()}).to_string())
        )
    };
    let hs512 = {
        use base64::Engine as _;
        let e = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = sign(
            json!({"sub": "x", "exp": far()}).to_string().as_bytes(),
            SECRET.as_bytes(),
        );
        let mut parts = t.split('.');
        let (_, p, s) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        format!("{}.{p}.{s}", e(br#"{"alg":"HS512","typ":"JWT"}"#))
    };
    let cases = [
        (token(json!({"sub": "x", "exp": now - 10})), "token expired"),
        (
            sign(
                json!({"sub": "x", "exp": far()}).to_string().as_bytes(),
                b"wrong",
            ),
            "bad token signature",
        ),
        (none_alg, "unsupported token alg"),
        (hs512, "unsupported token alg"),
        (token(json!({"exp": far()})), "token has no sub"),
        ("not-a-token".to_string(), "malformed token"),
    ];
    for (t, reason) in cases {
        for path in ["/", "/chat"] {
            let got = refused(&server, &format!("{path}?token={t}"), 4001);
            assert!(got.contains(reason), "{path} {reason}: {got}");
        }
    }
    // The same through a first message.
    let (mut c, _) = arrive(&server, "/");
    c.send_json(&json!({"type": "auth", "token": token(json!({"sub": "x", "exp": now - 10}))}));
    let close = c.until_close().expect("a close frame");
    assert_eq!(close.code.0, 4001);
    assert_eq!(close.reason, "token expired");
}

#[test]
fn auth_required_refuses_anonymous_users() {
    let server = start(Config {
        auth: wschat::chat::AuthMode::Required,
        ..with_secrets(None)
    });
    let reason = {
        let mut c = ChatClient::open(&server, "/?name=anon");
        c.send_text("hello?");
        c.until_close().expect("a close").reason
    };
    assert_eq!(reason, "authentication required");
    let t = token(json!({"sub": "u1", "exp": far()}));
    let (_, w) = arrive(&server, &format!("/?token={t}"));
    assert_eq!(w["user"]["verified"], true);
    // Or with a first message.
    let mut c = ChatClient::open(&server, "/");
    c.send_json(&json!({"type": "auth", "token": t}));
    assert_eq!(c.until_type("welcome")["user"]["sub"], "u1");
}

#[test]
fn admins_kick_ban_and_delete_and_nobody_else_may() {
    let dir = TempDir::new("moderation");
    let server = start(with_secrets(Some(&dir)));
    let admin_token = token(json!({"sub": "boss", "exp": far(), "role": "admin"}));
    let (mut admin, _) = arrive(&server, &format!("/?token={admin_token}"));
    let (mut spammer, sw) = arrive(&server, "/?name=Spammer");
    let spam_session = sw["session"].as_str().unwrap().to_string();
    let (mut bystander, _) = arrive(&server, "/?name=Bystander");

    // Anyone else is forbidden.
    bystander.send_json(&json!({"type": "kick", "user": spammer.id}));
    bystander.expect_error("forbidden");

    // Delete: the room is told, and the text never comes back.
    let spam = spammer.say("buy cheap stuff");
    let spam_id = spam["id"].as_u64().unwrap();
    admin.send_json(&json!({"type": "delete", "id": spam_id}));
    let deleted = bystander.until_type("deleted");
    assert_eq!(deleted["id"], spam_id);

    // Kick: 4003.
    admin.send_json(&json!({"type": "kick", "user": spammer.id}));
    assert_eq!(spammer.until_close().expect("close").code.0, 4003);

    // Ban: 4003 now and at reconnect, before any other frame.
    let (mut spammer, _) = arrive(&server, &format!("/?session={spam_session}"));
    admin.send_json(&json!({"type": "ban", "user": spammer.id, "minutes": 10}));
    assert_eq!(spammer.until_close().expect("close").code.0, 4003);
    let reason = refused(&server, &format!("/?session={spam_session}"), 4003);
    assert!(reason.contains("banned"), "{reason}");

    let no_spam = |messages: &Value| !messages.to_string().contains("buy cheap stuff");
    let (mut fresh, _) = arrive(&server, "/?name=Fresh");
    fresh.send_json(&json!({"type": "history", "limit": 100}));
    let page = fresh.until("a message", |m| {
        m["type"] == "history" && m.get("before").is_some()
    });
    assert!(no_spam(&page["messages"]), "{page}");
    drop(server);

    // After a restart: still gone, and the ban still holds.
    let server = start(with_secrets(Some(&dir)));
    let (mut d, _) = arrive(&server, "/?name=Later2");
    d.send_json(&json!({"type": "history", "limit": 100}));
    let page = d.until("a message", |m| {
        m["type"] == "history" && m.get("before").is_some()
    });
    assert!(no_spam(&page["messages"]), "{page}");
    let mut r = ChatClient::open(&server, &format!("/?name=Later3&since={}", spam_id - 1));
    let resume = r.until_type("resume");
    assert!(no_spam(&resume["messages"]), "{resume}");
    refused(&server, &format!("/?session={spam_session}"), 4003);

    // From the command line: the ban is listed, and lifting it lets the
    // user back in (the running server sees the file change).
    let ban = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
            .arg("ban")
            .args(args)
            .arg("--data-dir")
            .arg(&dir.0)
            .output()
            .expect("wschat ban");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let spammer_id = spammer.id.to_string();
    assert!(ban(&["list"]).contains(&format!("user {spammer_id} (Spammer)")));
    assert!(ban(&["remove", &spammer_id]).contains("lifted"));
    assert!(ban(&["list"]).contains("no bans"));
    let deadline = std::time::Instant::now() + common::READ_TIMEOUT;
    loop {
        let mut c = ChatClient::open(&server, &format!("/?session={spam_session}"));
        match c.next() {
            Incoming::Json(v) if v["type"] == "welcome" => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "the ban was not lifted"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_private_message_to_an_offline_user_reaches_them_later_even_after_a_restart() {
    let dir = TempDir::new("offline");
    let server = start(with_secrets(Some(&dir)));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (carol, cw) = arrive(&server, "/?name=Carol");
    let carol_id = carol.id;
    let session = cw["session"].as_str().unwrap().to_string();
    drop(carol);
    // Carol is gone (her last connection closed) before Ann writes.
    ann.until("Carol's leave", |m| {
        m["type"] == "leave" && common::names_user(&m["users"], carol_id)
    });
    ann.send_json(&json!({"type": "private", "to": carol_id, "text": "while you were out"}));
    assert_eq!(ann.until_type("private")["text"], "while you were out");
    // A user known only by a token's sub is someone to write to as well.
    let t = token(json!({"sub": "later", "exp": far()}));
    let (dave, dw) = arrive(&server, &format!("/?token={t}"));
    let dave_id = dw["user"]["id"].as_u64().unwrap();
    drop(dave);
    ann.until("Dave's leave", |m| {
        m["type"] == "leave" && common::names_user(&m["users"], dave_id)
    });
    ann.send_json(&json!({"type": "private", "to": dave_id, "text": "for your token"}));
    ann.until_type("private");
    drop(server);

    let server = start(with_secrets(Some(&dir)));
    let mut back = ChatClient::open(&server, &format!("/?session={session}"));
    let got = back.until_type("private");
    assert_eq!(got["text"], "while you were out");
    assert_eq!(got["to"]["id"], carol_id);
    let mut dave = ChatClient::open(&server, &format!("/?token={t}"));
    assert_eq!(dave.until_type("private")["text"], "for your token");
}

#[test]
fn a_verified_visitor_is_one_visitor_on_every_device_and_its_agent_sees_who() {
    let dir = TempDir::new("desk");
    let agent_token = wschat::desk::agents::add(&dir.0, "alice").expect("add agent");
    let server = start(with_secrets(Some(&dir)));
    let mut agent = ChatClient::open(&server, "/agent");
    agent.send_json(&json!({"type": "auth", "token": agent_token}));
    agent.until_type("ready");

    let t = token(json!({"sub": "customer-7", "exp": far(), "name": "王先生"}));
    let mut phone = ChatClient::open(&server, &format!("/support?token={t}"));
    let welcome = phone.until_type("welcome");
    assert_eq!(welcome["sub"], "customer-7");
    assert_eq!(welcome["verified"], true);
    assert_eq!(welcome["name"], "王先生");
    assert!(welcome.get("session").is_none());
    phone.send_json(&json!({"type": "message", "text": "my order?"}));
    let assigned = agent.until_type("assigned");
    assert_eq!(assigned["visitor"], "王先生");
    assert_eq!(assigned["sub"], "customer-7", "the agent sees who it is");
    let cid = assigned["conversation"].as_u64().unwrap();

    // The same customer on a laptop: the same conversation, its transcript.
    let mut laptop = ChatClient::open(&server, &format!("/support?token={t}"));
    let again = laptop.until_type("welcome");
    assert_eq!(again["conversation"], cid);
    let transcript = laptop.until_type("transcript");
    assert!(transcript.to_string().contains("my order?"), "{transcript}");
    agent.send_json(&json!({"type": "message", "conversation": cid, "text": "on its way"}));
    for device in [&mut phone, &mut laptop] {
        device.until("the agent's answer", |m| {
            m["type"] == "desk_message" && m["text"] == "on its way"
        });
    }

    // A bad token on the visitor URL: 4001 with its reason.
    let bad = sign(
        json!({"sub": "x", "exp": far()}).to_string().as_bytes(),
        b"not-the-secret",
    );
    let reason = refused(&server, &format!("/support?token={bad}"), 4001);
    assert_eq!(reason, "bad token signature");
}

#[test]
fn private_conversations_are_listed_with_unread_counts_and_paged_after_a_restart() {
    let dir = TempDir::new("privates");
    let server = start(with_secrets(Some(&dir)));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, bw) = arrive(&server, "/?name=Bob");
    let bob_session = bw["session"].as_str().unwrap().to_string();
    for text in ["one", "two", "three"] {
        ann.send_json(&json!({"type": "private", "to": bob.id, "text": text}));
        bob.until("a private", |m| m["type"] == "private" && m["text"] == text);
    }
    bob.send_json(&json!({"type": "private", "to": ann.id, "text": "hi Ann"}));
    let reply = bob.until("my reply", |m| {
        m["type"] == "private" && m["text"] == "hi Ann"
    });
    bob.send_json(&json!({"type": "privates"}));
    let list = bob.until_type("privates");
    let conv = &list["conversations"][0];
    assert_eq!(conv["with"]["id"], ann.id, "{list}");
    assert_eq!(conv["last"]["text"], "hi Ann");
    assert_eq!(conv["unread"], 3, "nothing marked read yet: {list}");
    // Bob reads up to "two".
    bob.send_json(&json!({"type": "private_history", "with": ann.id, "limit": 2}));
    let page = bob.until_type("private_history");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["three", "hi Ann"]);
    assert_eq!(page["complete"], true);
    let before = page["messages"][0]["id"].as_u64().unwrap();
    bob.send_json(&json!({"type": "private_history", "with": ann.id, "before": before}));
    let older = bob.until_type("private_history");
    assert_eq!(older["messages"].as_array().unwrap().len(), 2, "{older}");
    let two = older["messages"][1]["id"].as_u64().unwrap();
    bob.send_json(&json!({"type": "read", "with": ann.id, "upto": two}));
    // One more round trip: the read marker was handled (and stored).
    bob.send_json(&json!({"type": "privates"}));
    assert_eq!(bob.until_type("privates")["conversations"][0]["unread"], 1);
    let _ = reply;
    drop(bob);
    drop(ann);
    drop(server);

    let server = start(with_secrets(Some(&dir)));
    let (mut bob, _) = arrive(&server, &format!("/?session={bob_session}"));
    bob.send_json(&json!({"type": "privates"}));
    let list = bob.until_type("privates");
    assert_eq!(
        list["conversations"][0]["unread"], 1,
        "only \"three\" is unread: {list}"
    );
    bob.send_json(
        &json!({"type": "private_history", "with": list["conversations"][0]["with"]["id"]}),
    );
    let page = bob.until_type("private_history");
    assert_eq!(page["messages"].as_array().unwrap().len(), 4, "{page}");
}

#[test]
fn anyone_online_can_be_found_by_name_in_any_room_and_written_to() {
    let server = start(with_secrets(None));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, _) = arrive(&server, "/?name=Bobby&room=elsewhere");
    ann.send_json(&json!({"type": "find", "name": "BOB"}));
    let found = ann.until_type("found");
    assert_eq!(
        found["users"],
        json!([{"id": bob.id, "name": "Bobby"}]),
        "{found}"
    );
    ann.send_json(&json!({"type": "private", "to": bob.id, "text": "found you"}));
    assert_eq!(bob.until_type("private")["text"], "found you");
    ann.send_json(&json!({"type": "find", "name": ""}));
    ann.expect_error("bad_command");
}
