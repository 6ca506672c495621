//! The chat over real sockets, with wschat's own client against an
//! in-process server on 127.0.0.1: what a newcomer gets, messages to a room
//! and to one user, rooms, names, typing, mistakes that keep the connection
//! open, binary relay, the rate limit, the connection cap, the idle timeout,
//! graceful shutdown and /metrics (docs/chat-protocol.md).
//!
//! "Nobody else receives it" is shown without waiting for silence: after
//! the message, the outsider sends a marker of its own and reads up to it.
//! The hub handles events one at a time and each connection's frames go out
//! in order, so anything sent to the outsider before the marker would have
//! arrived before it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{ChatClient, Incoming, READ_TIMEOUT, RawClient, eventually, names_user};
use serde_json::{Value, json};
use wschat::chat::{CROWD_SIZE, PRESENCE_INTERVAL, USERS_PAGE};
use wschat::clock::now_ms;
use wschat::config::Config;
use wschat::server::ServerHandle;
use wschat::ws::frame::OpCode;
use wschat::ws::{CloseCode, CloseFrame};

/// The default configuration on an ephemeral port, without the rate limit
/// (tests that send many messages quickly are not testing it).
fn unlimited() -> Config {
    Config {
        rate_limit: 0,
        ..common::config()
    }
}

fn start(config: Config) -> ServerHandle {
    common::start(config)
}

/// The user ids in a JSON array of `{"id","name"}`.
fn ids(users: &Value) -> Vec<u64> {
    users
        .as_array()
        .unwrap_or_else(|| panic!("not an array of users: {users}"))
        .iter()
        .map(|u| u["id"].as_u64().expect("a user has an id"))
        .collect()
}

/// `client` sends `marker` to its own room and reads up to it; nothing it
/// read before may match `forbidden`.
fn assert_never_got(client: &mut ChatClient, marker: &str, forbidden: impl Fn(&Incoming) -> bool) {
    client.send_text(marker);
    let id = client.id;
    let (_, before) = client.until_chat_from(id, marker);
    if let Some(bad) = before.iter().find(|m| forbidden(m)) {
        panic!("user {id} received what was not meant for it: {bad:?} (all: {before:?})");
    }
}

/// A chat message from user `from` with `text`.
fn is_chat(m: &Incoming, from: u64, text: &str) -> bool {
    matches!(m, Incoming::Json(v) if v["type"] == "chat" && v["user"]["id"] == from && v["text"] == text)
}

/// Read until the `rename` notice of `client`'s own user.
fn own_rename(client: &mut ChatClient) -> Value {
    let id = client.id;
    client.until("my own rename", |m| {
        m["type"] == "rename" && m["user"]["id"] == id
    })
}

/// A message of type `kind`.
fn is_type(m: &Incoming, kind: &str) -> bool {
    matches!(m, Incoming::Json(v) if v["type"] == kind)
}

// ---- Connecting and leaving ----

#[test]
fn a_newcomer_gets_welcome_users_history_and_a_join_notice_in_that_order() {
    let server = start(unlimited());
    let mut ann = ChatClient::open(&server, "/?name=Ann");
    let first: Vec<Value> = (0..4)
        .map(|_| match ann.next() {
            Incoming::Json(v) => v,
            other => panic!("expected JSON, got {other:?}"),
        })
        .collect();
    let kinds: Vec<&str> = first.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["welcome", "users", "history", "join"], "{first:?}");

    let welcome = &first[0];
    let ann_id = welcome["user"]["id"].as_u64().expect("welcome.user.id");
    assert!(ann_id > 0, "{welcome}");
    assert_eq!(welcome["user"]["name"], "Ann");
    assert_eq!(welcome["room"], "lobby");
    assert!(
        welcome["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("wschat ")),
        "{welcome}"
    );
    let users = &first[1];
    assert_eq!(users["room"], "lobby");
    assert_eq!(users["count"], 1);
    assert_eq!(users["offset"], 0);
    assert_eq!(users["more"], false);
    assert_eq!(users["users"], json!([{"id": ann_id, "name": "Ann"}]));
    let history = &first[2];
    assert_eq!(history["room"], "lobby");
    assert_eq!(history["messages"], json!([]));
    let join = &first[3];
    assert_eq!(join["room"], "lobby");
    assert_eq!(join["users"], json!([{"id": ann_id, "name": "Ann"}]));
    assert_eq!(join["count"], 1);
    assert!(join["time"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
    ann.id = ann_id;
    ann.name = "Ann".into();

    // A second user: the list holds both, and the room (the newcomer
    // included) hears of the join.
    let mut bob = ChatClient::open(&server, "/?name=Bob");
    let welcome = bob.until_type("welcome");
    let bob_id = welcome["user"]["id"].as_u64().unwrap();
    assert_ne!(bob_id, ann_id);
    let users = bob.until_type("users");
    assert_eq!(users["count"], 2);
    let mut listed = ids(&users["users"]);
    listed.sort();
    let mut both = vec![ann_id, bob_id];
    both.sort();
    assert_eq!(listed, both);
    bob.until_type("history");
    let join = bob.until_type("join");
    assert_eq!(join["users"], json!([{"id": bob_id, "name": "Bob"}]));
    assert_eq!(join["count"], 2);
    let join = ann.until_type("join");
    assert_eq!(join["room"], "lobby");
    assert_eq!(join["users"], json!([{"id": bob_id, "name": "Bob"}]));
    assert_eq!(join["count"], 2);
    bob.id = bob_id;

    // Leaving with the close handshake: a leave notice.
    bob.ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert!(matches!(
        bob.until_close(),
        Some(CloseFrame {
            code: CloseCode::NORMAL,
            ..
        })
    ));
    let leave = ann.until_type("leave");
    assert_eq!(leave["room"], "lobby");
    assert_eq!(leave["users"], json!([{"id": bob_id, "name": "Bob"}]));
    assert_eq!(leave["count"], 1);

    // Leaving by dropping TCP: a leave notice too.
    let carol = ChatClient::join(&server, Some("Carol"));
    let carol_id = carol.id;
    ann.until("Carol's join", |m| {
        m["type"] == "join" && names_user(&m["users"], carol_id)
    });
    drop(carol);
    let leave = ann.until_type("leave");
    assert_eq!(leave["users"], json!([{"id": carol_id, "name": "Carol"}]));
    assert_eq!(leave["count"], 1);
}

/// A burst from one user (several messages per hub turn, each turn's
/// messages going to the same members) reaches every other member whole
/// and in the order it was sent.
#[test]
fn a_burst_reaches_every_member_whole_and_in_order() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let mut cat = ChatClient::join(&server, Some("Cat"));
    ann.until_type("join");
    ann.until_type("join");
    bob.until_type("join");
    const COUNT: usize = 300;
    for i in 0..COUNT {
        ann.send_text(&format!("m{i}"));
    }
    let expected: Vec<String> = (0..COUNT).map(|i| format!("m{i}")).collect();
    for member in [&mut bob, &mut cat] {
        let mut texts = Vec::new();
        member.until("Ann's last message", |m| {
            if m["type"] == "chat" && m["user"]["name"] == "Ann" {
                texts.push(m["text"].as_str().unwrap_or_default().to_string());
            }
            texts.len() == COUNT
        });
        assert_eq!(texts, expected, "{}", member.name);
    }
    ann.until_own_chat(&format!("m{}", COUNT - 1));
}

#[test]
fn history_keeps_the_last_50_messages_in_order() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    for i in 0..60 {
        ann.send_text(&format!("m{i}"));
    }
    ann.until_own_chat("m59");

    let mut bob = ChatClient::open(&server, "/");
    bob.until_type("welcome");
    let history = bob.until_type("history");
    assert_eq!(history["room"], "lobby");
    let messages = history["messages"].as_array().expect("messages");
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (10..60).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    let mut last = 0;
    for m in messages {
        assert_eq!(m["type"], "chat");
        assert_eq!(m["room"], "lobby");
        assert_eq!(m["user"], json!({"id": ann.id, "name": "Ann"}));
        let id = m["id"].as_u64().unwrap();
        assert!(id > last, "ids increase: {id} after {last}");
        last = id;
        assert!(m["time"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
    }

    // History is per room.
    bob.send_json(&json!({"type": "join", "room": "empty"}));
    let history = bob.until_type("history");
    assert_eq!(history["room"], "empty");
    assert_eq!(history["messages"], json!([]));
}

// ---- Chat messages ----

#[test]
fn chat_reaches_every_member_of_the_room_verbatim_and_nobody_else() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let mut carol = ChatClient::join(&server, Some("Carol"));
    carol.send_json(&json!({"type": "join", "room": "elsewhere"}));
    carol.until("my join in elsewhere", |m| {
        m["type"] == "join" && m["room"] == "elsewhere"
    });

    // (what is sent, the text the room must get)
    let cases: Vec<(String, String)> = vec![
        ("你好，世界".into(), "你好，世界".into()),
        (
            r#"she said "hi" and 'bye'"#.into(),
            r#"she said "hi" and 'bye'"#.into(),
        ),
        ("{oops".into(), "{oops".into()),
        (r#"{"type":"chat""#.into(), r#"{"type":"chat""#.into()),
        ("[1, 2]".into(), "[1, 2]".into()),
        ("\"just a string\"".into(), "\"just a string\"".into()),
        ("  spaced  ".into(), "  spaced  ".into()),
        (
            "back\\slash, tab\t, new\nline, \u{1F600}".into(),
            "back\\slash, tab\t, new\nline, \u{1F600}".into(),
        ),
        (
            json!({"type": "chat", "text": "命令: \"quoted\" {x}"}).to_string(),
            "命令: \"quoted\" {x}".into(),
        ),
    ];
    let mut last_id = 0;
    for (sent, text) in &cases {
        let before = now_ms();
        ann.send_text(sent);
        let mine = ann.until_own_chat(text);
        let (theirs, _) = bob.until_chat_from(ann.id, text);
        let after = now_ms();
        assert_eq!(mine, theirs, "everyone gets the same message");
        assert_eq!(mine["room"], "lobby");
        assert_eq!(mine["user"], json!({"id": ann.id, "name": "Ann"}));
        assert_eq!(&mine["text"], text.as_str());
        let id = mine["id"].as_u64().expect("id");
        assert!(id > last_id, "ids increase: {id} after {last_id}");
        last_id = id;
        let time = mine["time"].as_u64().expect("time");
        assert!(
            before.saturating_sub(1000) <= time && time <= after + 1000,
            "time {time} is not between {before} and {after} (epoch ms)"
        );
    }
    // Bob's message reaches Ann, with the next id.
    let from_bob = bob.say("from Bob");
    let (got, _) = ann.until_chat_from(bob.id, "from Bob");
    assert_eq!(got, from_bob);
    assert!(got["id"].as_u64().unwrap() > last_id);
    last_id = got["id"].as_u64().unwrap();

    // Carol, in another room, got none of it.
    let ann_id = ann.id;
    let bob_id = bob.id;
    carol.send_text("marker");
    let (marker, before) = carol.until_chat_from(carol.id, "marker");
    assert_eq!(marker["room"], "elsewhere");
    assert!(
        marker["id"].as_u64().unwrap() > last_id,
        "ids are server-wide: {marker} after {last_id}"
    );
    assert!(
        !before.iter().any(|m| is_type(m, "chat")),
        "a chat of another room reached Carol: {before:?}"
    );
    assert!(!before.iter().any(|m| matches!(m, Incoming::Json(v)
        if v["user"]["id"] == ann_id || v["user"]["id"] == bob_id)));
}

#[test]
fn each_turn_is_delivered_at_once_not_on_the_hub_tick() {
    // A conversation where each side answers the other: a server that
    // holds a turn's messages until its periodic tick (500 ms) cannot fit
    // 40 exchanges in READ_TIMEOUT, while a server that delivers at the
    // end of each turn takes milliseconds. Not a timing measurement: the
    // bound is the one every read in these tests has.
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let started = Instant::now();
    for i in 0..40 {
        let ping = format!("ping {i}");
        ann.send_text(&ping);
        bob.until_chat_from(ann.id, &ping);
        let pong = format!("pong {i}");
        bob.send_text(&pong);
        ann.until_chat_from(bob.id, &pong);
        assert!(
            started.elapsed() < READ_TIMEOUT,
            "only {i} of 40 exchanges in {READ_TIMEOUT:?}: messages wait for the hub's tick"
        );
    }
}

// ---- Rooms ----

#[test]
fn join_and_leave_move_a_user_between_rooms() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));

    ann.send_json(&json!({"type": "join", "room": " rust "}));
    let users = ann.until_type("users");
    assert_eq!(users["room"], "rust", "room names are trimmed");
    assert_eq!(users["count"], 1);
    assert_eq!(ids(&users["users"]), [ann.id]);
    let history = ann.until_type("history");
    assert_eq!(history["room"], "rust");
    let join = ann.until_type("join");
    assert_eq!(join["room"], "rust");
    assert_eq!(join["count"], 1);
    assert_eq!(ids(&join["users"]), [ann.id]);
    let leave = bob.until_type("leave");
    assert_eq!(leave["room"], "lobby");
    assert_eq!(ids(&leave["users"]), [ann.id]);
    assert_eq!(leave["count"], 1);

    // A message in rust stays in rust.
    let in_rust = ann.say("in rust");
    assert_eq!(in_rust["room"], "rust");
    let ann_id = ann.id;
    assert_never_got(&mut bob, "bob marker", |m| is_chat(m, ann_id, "in rust"));

    // Bob follows: both hear it.
    bob.send_json(&json!({"type": "join", "room": "rust"}));
    let users = bob.until_type("users");
    assert_eq!(users["count"], 2);
    let history = bob.until_type("history");
    let texts: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["text"])
        .collect();
    assert_eq!(texts, [&json!("in rust")], "rust's own history");
    let join = ann.until_type("join");
    assert_eq!(join["room"], "rust");
    assert_eq!(ids(&join["users"]), [bob.id]);
    assert_eq!(join["count"], 2);

    // `leave` goes back to the lobby.
    ann.send_json(&json!({"type": "leave"}));
    let users = ann.until_type("users");
    assert_eq!(users["room"], "lobby");
    let join = ann.until_type("join");
    assert_eq!(join["room"], "lobby");
    assert_eq!(ids(&join["users"]), [ann.id]);
    let leave = bob.until_type("leave");
    assert_eq!(leave["room"], "rust");
    assert_eq!(ids(&leave["users"]), [ann.id]);
    assert_eq!(leave["count"], 1);
    let bob_id = bob.id;
    bob.say("bob in rust");
    assert_never_got(&mut ann, "ann marker", |m| {
        is_chat(m, bob_id, "bob in rust")
    });

    // Joining the room one is in sends the list and history again.
    ann.send_json(&json!({"type": "join", "room": "lobby"}));
    assert_eq!(ann.until_type("users")["room"], "lobby");
    assert_eq!(ann.until_type("history")["room"], "lobby");
}

#[test]
fn the_room_limit_and_bad_room_names_are_errors() {
    let server = start(Config {
        max_rooms: 2,
        ..unlimited()
    });
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    ann.send_json(&json!({"type": "join", "room": "r1"}));
    assert_eq!(ann.until_type("users")["room"], "r1");

    // Lobby and r1: the limit.
    bob.send_json(&json!({"type": "join", "room": "r2"}));
    bob.expect_error("room_limit");
    // Bob is still in the lobby and can talk.
    assert_eq!(bob.say("still here")["room"], "lobby");
    // An existing room can still be joined.
    bob.send_json(&json!({"type": "join", "room": "r1"}));
    assert_eq!(bob.until_type("users")["room"], "r1");
    bob.send_json(&json!({"type": "leave"}));
    assert_eq!(bob.until_type("users")["room"], "lobby");

    // Once r1 is empty it is gone, and r2 fits.
    ann.send_json(&json!({"type": "leave"}));
    ann.until("my join in the lobby", |m| {
        m["type"] == "join" && m["room"] == "lobby"
    });
    bob.send_json(&json!({"type": "join", "room": "r2"}));
    assert_eq!(bob.until_type("users")["room"], "r2");

    for bad in [
        json!(""),
        json!("   "),
        json!("r".repeat(33)),
        json!("名".repeat(33)),
        json!("a\u{1}b"),
        json!("tab\there"),
        json!("new\nline"),
    ] {
        ann.send_json(&json!({"type": "join", "room": bad}));
        ann.expect_error("bad_room");
        assert_eq!(ann.say(&format!("after {bad}"))["room"], "lobby");
    }
    // 32 characters are fine (Bob leaves r2 first, to stay under the limit).
    bob.send_json(&json!({"type": "leave"}));
    assert_eq!(bob.until_type("users")["room"], "lobby");
    let long = "名".repeat(32);
    ann.send_json(&json!({"type": "join", "room": long}));
    assert_eq!(ann.until_type("users")["room"], long.as_str());
}

#[test]
fn users_are_paged_past_100_members() {
    const EXTRA: usize = 120;
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    // Lightweight members: connected, never read from (what they are sent
    // is small enough for their socket buffers).
    let extras: Vec<_> = (0..EXTRA).map(|_| ChatClient::open(&server, "/")).collect();
    let total = EXTRA + 1;
    // Ann hears the arrivals by name while the room has 100 members or
    // fewer; past that, as a count.
    let mut named = BTreeSet::from([ann.id]);
    loop {
        let m = ann.until("a join or presence", |m| {
            m["type"] == "join" || m["type"] == "presence"
        });
        if m["type"] == "join" {
            assert!(m["count"].as_u64().unwrap() <= CROWD_SIZE as u64, "{m}");
            named.extend(ids(&m["users"]));
        } else if m["count"] == total {
            break;
        }
    }
    assert!(named.len() <= CROWD_SIZE, "{} named", named.len());

    ann.send_json(&json!({"type": "users"}));
    let first = ann.until_type("users");
    assert_eq!(first["room"], "lobby");
    assert_eq!(first["count"], total);
    assert_eq!(first["offset"], 0);
    assert_eq!(first["more"], true);
    let first_ids = ids(&first["users"]);
    assert_eq!(first_ids.len(), 100);

    ann.send_json(&json!({"type": "users", "offset": 100}));
    let second = ann.until_type("users");
    assert_eq!(second["count"], total);
    assert_eq!(second["offset"], 100);
    assert_eq!(second["more"], false);
    let second_ids = ids(&second["users"]);
    assert_eq!(second_ids.len(), total - 100);

    let paged: BTreeSet<u64> = first_ids.iter().chain(&second_ids).copied().collect();
    assert_eq!(paged.len(), total, "no one listed twice");
    assert!(paged.is_superset(&named), "every member listed");

    ann.send_json(&json!({"type": "users", "offset": 1000}));
    let past = ann.until_type("users");
    assert_eq!(past["users"], json!([]));
    assert_eq!(past["more"], false);
    drop(extras);
}

/// A newcomer to a room past 100 members gets its welcome, the count with
/// the first page of the member list, and the history; nobody is sent a
/// notice naming it, and the members (it included) see it in the next
/// `presence` count. When the crowd is back to 100 or fewer, the members
/// get the whole list and names again.
#[test]
fn a_crowd_tells_a_newcomer_the_count_and_its_members_a_coalesced_presence() {
    const EXTRA: usize = 110;
    let server = start(unlimited());
    let mut ann = ChatClient::open(&server, "/?name=Ann&room=crowd");
    ann.settle();
    let extras: Vec<_> = (0..EXTRA)
        .map(|_| ChatClient::open(&server, "/?room=crowd"))
        .collect();
    ann.until("the crowd's count", |m| {
        m["type"] == "presence" && m["count"] == EXTRA + 1
    });

    let mut newcomer = ChatClient::open(&server, "/?name=Newcomer&room=crowd");
    let kinds: Vec<Value> = (0..3)
        .map(|_| match newcomer.next() {
            Incoming::Json(v) => v,
            other => panic!("expected JSON, got {other:?}"),
        })
        .collect();
    let types: Vec<&str> = kinds.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["welcome", "users", "history"], "{kinds:?}");
    let me = kinds[0]["user"]["id"].as_u64().unwrap();
    let users = &kinds[1];
    assert_eq!(users["room"], "crowd");
    assert_eq!(users["count"], EXTRA + 2);
    assert_eq!(users["offset"], 0);
    assert_eq!(users["more"], true);
    assert_eq!(ids(&users["users"]).len(), USERS_PAGE);
    // Its own arrival comes as a count, to it and to Ann, and never as a
    // notice that names it.
    for client in [&mut newcomer, &mut ann] {
        let (presence, before) = client.until_seen("the newcomer's presence", |m| {
            m["type"] == "presence" && m["count"] == EXTRA + 2
        });
        assert_eq!(presence["room"], "crowd");
        assert_eq!(presence["joined"], 1, "{presence}");
        assert_eq!(presence["left"], 0, "{presence}");
        assert!(
            presence["time"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000)
        );
        assert!(
            !before.iter().any(|m| is_type(m, "join")),
            "no join notice in a crowd: {before:?}"
        );
    }
    // Paging finds the newcomer.
    let mut found = false;
    let mut offset = 0;
    loop {
        newcomer.send_json(&json!({"type": "users", "offset": offset}));
        let page = newcomer.until(&format!("users from {offset}"), |m| {
            m["type"] == "users" && m["offset"] == offset
        });
        found |= ids(&page["users"]).contains(&me);
        offset += ids(&page["users"]).len();
        if page["more"] == false {
            break;
        }
    }
    assert!(found, "the newcomer is on a page");
    assert_eq!(offset, EXTRA + 2);

    // Back to 100 or fewer: a count with the departures, the whole list,
    // and leave notices that name users again.
    const KEEP: usize = CROWD_SIZE - 3;
    let mut extras = extras;
    extras.truncate(KEEP);
    // The departures come as counts, and once the room is no crowd (on a
    // presence tick), the whole list; a tick that falls between the last
    // two departures leaves the last to a named `leave`.
    let (mut left, mut listed) = (0, false);
    while left < (EXTRA - KEEP) as u64 || !listed {
        let m = ann.until("the departures and the list", |m| {
            ["presence", "leave", "users"].contains(&m["type"].as_str().unwrap_or_default())
        });
        match m["type"].as_str() {
            Some("presence") => left += m["left"].as_u64().unwrap(),
            Some("leave") => {
                assert!(listed, "names only after the whole list: {m}");
                left += ids(&m["users"]).len() as u64;
            }
            _ => {
                assert!(m["count"].as_u64().unwrap() <= CROWD_SIZE as u64, "{m}");
                assert_eq!(m["more"], false, "{m}");
                assert_eq!(ids(&m["users"]).len() as u64, m["count"], "{m}");
                listed = true;
            }
        }
    }
    assert_eq!(left, (EXTRA - KEEP) as u64);
    ann.send_json(&json!({"type": "users"}));
    let list = ann.until_type("users");
    assert_eq!(list["count"], KEEP + 2);
    assert_eq!(list["more"], false);
    drop(newcomer);
    let leave = ann.until_type("leave");
    assert_eq!(leave["users"][0]["id"], me, "{leave}");
    assert_eq!(leave["count"], KEEP + 1);
    drop(extras);
}

/// Bytes the server writes to its clients while `n` users join one room
/// (after one early member), and what that early member received.
struct Storm {
    server_bytes: u64,
    member_bytes: u64,
    member_presences: usize,
    seconds: f64,
}

fn join_storm(n: usize) -> Storm {
    let server = start(unlimited());
    let mut early = ChatClient::open(&server, "/?name=Early&room=storm");
    early.settle();
    let before = server.metrics().bytes_out.load(Ordering::SeqCst);
    let started = Instant::now();
    // The joiners never read: each is sent its welcome, its first page of
    // members and the history, which their socket buffers hold.
    let joiners: Vec<_> = (0..n)
        .map(|_| ChatClient::open(&server, "/?room=storm"))
        .collect();
    let (mut member_bytes, mut member_presences) = (0u64, 0);
    loop {
        let m = match early.next() {
            Incoming::Json(v) => v,
            other => panic!("expected JSON, got {other:?}"),
        };
        member_bytes += m.to_string().len() as u64;
        match m["type"].as_str() {
            Some("join") => assert!(m["count"].as_u64().unwrap() <= CROWD_SIZE as u64, "{m}"),
            Some("presence") => {
                member_presences += 1;
                if m["count"] == n + 1 {
                    break;
                }
            }
            _ => panic!("an early member of a storm got {m}"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // The last `presence` went to every member in the same turn.
    let mut server_bytes = 0;
    eventually(Duration::from_secs(5), "the bytes written settle", || {
        let now = server.metrics().bytes_out.load(Ordering::SeqCst) - before;
        let settled = now == server_bytes;
        server_bytes = now;
        std::thread::sleep(Duration::from_millis(100));
        settled
    });
    drop(joiners);
    Storm {
        server_bytes,
        member_bytes,
        member_presences,
        seconds,
    }
}

/// 150 and then 300 users join one room: the bytes the server writes grow
/// about linearly (×2 for twice the users), far from the ×4 of notices that
/// name every joiner to every member; an early member hears of them as at
/// most one `presence` a second.
#[test]
fn a_join_storm_costs_bytes_linear_in_the_joiners() {
    let small = join_storm(150);
    let large = join_storm(300);
    for storm in [&small, &large] {
        // At most one presence a second (and one for the turn in progress).
        assert!(
            storm.member_presences as f64 <= storm.seconds / PRESENCE_INTERVAL.as_secs_f64() + 2.0,
            "{} presence updates in {:.2} s",
            storm.member_presences,
            storm.seconds
        );
    }
    let ratio = large.server_bytes as f64 / small.server_bytes as f64;
    eprintln!(
        "join storm: 150 users {} bytes, 300 users {} bytes (×{ratio:.2}), {} and {} presence ticks; an early member got {} and {} bytes",
        small.server_bytes,
        large.server_bytes,
        small.member_presences,
        large.member_presences,
        small.member_bytes,
        large.member_bytes
    );
    // The 150 more joiners cost what each joiner is sent (its welcome, a
    // page of 100 members, history: a few KB) plus the presence counts,
    // which go to every member once a second whatever the number of
    // joiners, so they grow with how long the storm lasts on a busy
    // machine, not with the square of the joiners. Naming every joiner to
    // every member would cost about (300² - 150²) / 2 names: over 2 MB.
    let per_joiner = 6_000;
    let per_presence = |storm: &Storm, n: u64| storm.member_presences as u64 * (n + 1) * 150;
    let more = large.server_bytes.saturating_sub(small.server_bytes);
    let budget = 150 * per_joiner + per_presence(&large, 300);
    assert!(
        more <= budget,
        "150 more joiners cost {more} bytes, over the linear budget {budget} ({} → {})",
        small.server_bytes,
        large.server_bytes
    );
    // An early member hears the first 100 names, then a count a second:
    // its bytes do not grow with the joiners.
    for (storm, n) in [(&small, 150), (&large, 300)] {
        let limit = 12_000 + storm.member_presences as u64 * 200;
        assert!(
            storm.member_bytes <= limit,
            "with {n} joiners an early member got {} bytes ({} presence updates)",
            storm.member_bytes,
            storm.member_presences
        );
    }
}

// ---- Private messages ----

#[test]
fn a_private_message_reaches_only_the_addressee_and_is_echoed() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let mut carol = ChatClient::join(&server, Some("Carol"));
    let last_chat = ann.say("public")["id"].as_u64().unwrap();

    ann.send_json(&json!({"type": "private", "to": bob.id, "text": "只给你 \"secret\""}));
    let echoed = ann.until_type("private");
    let received = bob.until_type("private");
    assert_eq!(echoed, received);
    assert_eq!(received["from"], json!({"id": ann.id, "name": "Ann"}));
    assert_eq!(received["to"], json!({"id": bob.id, "name": "Bob"}));
    assert_eq!(received["text"], "只给你 \"secret\"");
    assert!(received["id"].as_u64().unwrap() > last_chat, "{received}");
    assert!(
        received["time"]
            .as_u64()
            .is_some_and(|t| t.abs_diff(now_ms()) < 60_000)
    );
    assert_never_got(&mut carol, "carol marker", |m| is_type(m, "private"));

    // To oneself: one copy.
    ann.send_json(&json!({"type": "private", "to": ann.id, "text": "note to self"}));
    ann.send_text("after the note");
    let (_, before) = ann.until_chat_from(ann.id, "after the note");
    let copies = before
        .iter()
        .filter(|m| matches!(m, Incoming::Json(v) if v["type"] == "private" && v["text"] == "note to self"))
        .count();
    assert_eq!(copies, 1, "{before:?}");

    ann.send_json(&json!({"type": "private", "to": 999_999, "text": "anyone?"}));
    ann.expect_error("unknown_user");
    ann.send_json(&json!({"type": "private", "to": bob.id, "text": " "}));
    ann.expect_error("empty_text");
    ann.send_json(&json!({"type": "private", "text": "to whom?"}));
    ann.expect_error("bad_command");
    // Bob got none of those; a user who left is still someone to write to
    // (the message waits for them: tests/identity.rs).
    let ann_id = ann.id;
    assert_never_got(
        &mut bob,
        "bob marker",
        |m| matches!(m, Incoming::Json(v) if v["type"] == "private" && v["from"]["id"] == ann_id),
    );
    let carol_id = carol.id;
    drop(carol);
    ann.until("Carol's leave", |m| {
        m["type"] == "leave" && names_user(&m["users"], carol_id)
    });
    ann.send_json(&json!({"type": "private", "to": carol_id, "text": "gone?"}));
    let kept = ann.until_type("private");
    assert_eq!(kept["text"], "gone?");
    assert_eq!(kept["to"]["id"], carol_id);
}

// ---- Names ----

#[test]
fn renames_are_announced_and_names_stay_unique() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let mut carol = ChatClient::join(&server, Some("Carol"));
    carol.send_json(&json!({"type": "join", "room": "other"}));
    carol.until_type("history");

    ann.send_json(&json!({"type": "name", "name": " 小明 "}));
    let ann_id = ann.id;
    for client in [&mut ann, &mut bob] {
        let rename = client.until_type("rename");
        assert_eq!(rename["room"], "lobby");
        assert_eq!(rename["user"], json!({"id": ann_id, "name": "小明"}));
        assert_eq!(rename["old"], "Ann");
        assert!(rename["time"].as_u64().is_some());
    }
    assert_never_got(&mut carol, "carol marker", |m| is_type(m, "rename"));
    assert_eq!(bob.say("hi")["user"]["name"], "Bob");
    assert_eq!(ann.say("hi")["user"]["name"], "小明");

    // A taken name gets a suffix.
    bob.send_json(&json!({"type": "name", "name": "小明"}));
    assert_eq!(own_rename(&mut bob)["user"]["name"], "小明2");
    // Case-insensitively.
    ann.send_json(&json!({"type": "name", "name": "Alice"}));
    assert_eq!(own_rename(&mut ann)["user"]["name"], "Alice");
    bob.send_json(&json!({"type": "name", "name": "ALICE"}));
    let rename = own_rename(&mut bob);
    assert_eq!(rename["user"]["name"], "ALICE2");
    assert_eq!(rename["old"], "小明2");
    // A name given up is free again.
    let mut dan = ChatClient::join(&server, Some("小明"));
    assert_eq!(dan.name, "小明");
    // And ?name= takes suffixes too.
    let eve = ChatClient::join(&server, Some("cAROL"));
    assert_eq!(eve.name, "cAROL2");

    for bad in [
        json!(""),
        json!("   "),
        json!("x".repeat(33)),
        json!("名".repeat(33)),
        json!("a\u{7}b"),
        json!("new\nline"),
        json!("del\u{7f}"),
    ] {
        dan.send_json(&json!({"type": "name", "name": bad}));
        dan.expect_error("bad_name");
        assert_eq!(dan.say(&format!("after {bad}"))["user"]["name"], "小明");
    }
    let long = "名".repeat(32);
    dan.send_json(&json!({"type": "name", "name": long}));
    assert_eq!(own_rename(&mut dan)["user"]["name"], long.as_str());
    dan.send_json(&json!({"type": "name", "name": 5}));
    dan.expect_error("bad_command");
}

#[test]
fn the_name_in_the_url_is_percent_decoded_and_checked() {
    let server = start(unlimited());
    let mut red = ChatClient::open(&server, "/?name=%E5%B0%8F%E7%BA%A2");
    red.settle();
    assert_eq!(red.name, "小红");
    let mut spaced = ChatClient::open(&server, "/chat?lang=zh&name=Mr+Smith%21");
    spaced.settle();
    assert_eq!(spaced.name, "Mr Smith!");
    let helped = ChatClient::join(&server, Some("王 五"));
    assert_eq!(helped.name, "王 五");

    // A bad name in the URL: an error, then an automatic name.
    let mut bad = ChatClient::open(&server, &format!("/?name={}", "x".repeat(33)));
    bad.expect_error("bad_name");
    bad.settle();
    assert!(bad.name.starts_with("用户"), "{}", bad.name);
    let mut auto = ChatClient::join(&server, None);
    assert!(auto.name.starts_with("用户"), "{}", auto.name);
    assert_ne!(auto.name, bad.name);
    assert_eq!(auto.say("hi")["user"]["name"], auto.name.as_str());
}

// ---- Typing ----

#[test]
fn typing_goes_to_the_others_in_the_room_at_most_once_a_second() {
    let server = start(unlimited());
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let mut carol = ChatClient::join(&server, Some("Carol"));
    carol.send_json(&json!({"type": "join", "room": "other"}));
    carol.until_type("history");

    // Ten at once: one notice.
    for _ in 0..10 {
        ann.send_json(&json!({"type": "typing"}));
    }
    ann.send_text("done typing");
    let (_, before) = bob.until_chat_from(ann.id, "done typing");
    let notices: Vec<&Value> = before
        .iter()
        .filter_map(|m| match m {
            Incoming::Json(v) if v["type"] == "typing" => Some(v),
            _ => None,
        })
        .collect();
    assert!(
        !notices.is_empty() && notices.len() <= 2,
        "ten typing commands at once gave {} notices (one a second allowed)",
        notices.len()
    );
    assert_eq!(
        notices[0],
        &json!({"type": "typing", "room": "lobby", "user": {"id": ann.id, "name": "Ann"}, "active": true})
    );
    // Not to oneself, not to another room.
    let (_, before) = ann.until_chat_from(ann.id, "done typing");
    assert!(!before.iter().any(|m| is_type(m, "typing")), "{before:?}");
    assert_never_got(&mut carol, "carol marker", |m| is_type(m, "typing"));

    // Later, another notice is allowed: keep typing until one arrives.
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no second typing notice within {READ_TIMEOUT:?}"
        );
        ann.send_json(&json!({"type": "typing", "active": true}));
        match bob.next_within(Duration::from_millis(200)) {
            Some(Incoming::Json(v)) if v["type"] == "typing" => {
                assert_eq!(v["user"]["id"], ann.id);
                break;
            }
            Some(Incoming::Json(_)) | None => {}
            other => panic!("{other:?}"),
        }
    }
    // Stopping is announced as well.
    ann.send_json(&json!({"type": "typing", "active": false}));
    let stop = bob.until("typing stopped", |m| {
        m["type"] == "typing" && m["active"] == false
    });
    assert_eq!(stop["user"]["id"], ann.id);
}

// ---- Mistakes ----

#[test]
fn mistakes_get_an_error_and_the_connection_stays_open() {
    let server = start(Config {
        max_text_bytes: 16,
        ..unlimited()
    });
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let long = "x".repeat(17);
    let cases: Vec<(String, &str)> = vec![
        (r#"{"type": oops}"#.into(), "bad_json"),
        (r#"  {"type":"chat","text":"x",}  "#.into(), "bad_json"),
        (r#"{"type":"nope"}"#.into(), "unknown_type"),
        (r#"{"type":"chat"}"#.into(), "bad_command"),
        (r#"{"type":"chat","text":5}"#.into(), "bad_command"),
        (r#"{"type":"join"}"#.into(), "bad_command"),
        (r#"{"type":"name"}"#.into(), "bad_command"),
        (r#"{"text":"no type"}"#.into(), "bad_command"),
        (r#"{"type":7}"#.into(), "bad_command"),
        (
            r#"{"type":"private","to":"x","text":"y"}"#.into(),
            "bad_command",
        ),
        (r#"{"type":"users","offset":-1}"#.into(), "bad_command"),
        (r#"{"type":"typing","active":"yes"}"#.into(), "bad_command"),
        (long.clone(), "text_too_long"),
        ("中".repeat(6), "text_too_long"), // 6 characters, 18 bytes
        (
            json!({"type": "chat", "text": long}).to_string(),
            "text_too_long",
        ),
        (
            json!({"type": "private", "to": bob.id, "text": long}).to_string(),
            "text_too_long",
        ),
        (String::new(), "empty_text"),
        ("   ".into(), "empty_text"),
        (r#"{"type":"chat","text":""}"#.into(), "empty_text"),
    ];
    let ann_id = ann.id;
    for (i, (sent, code)) in cases.iter().enumerate() {
        ann.send_text(sent);
        let error = ann.expect_error(code);
        assert_eq!(error.as_object().unwrap().len(), 3, "{error}");
        // Still open: the next message goes through, to both.
        let ok = format!("ok {i}");
        ann.say(&ok);
        let (_, before) = bob.until_chat_from(ann_id, &ok);
        assert!(
            !before.iter().any(|m| is_type(m, "error")
                || matches!(m, Incoming::Json(v) if v["user"]["id"] == ann_id)),
            "after {sent:?}, Bob got {before:?}"
        );
    }
    // Exactly the limit is fine.
    ann.say(&"y".repeat(16));
}

// ---- Binary ----

#[test]
fn binary_is_relayed_to_the_room_and_too_long_binary_is_an_error() {
    let server = start(Config {
        max_binary_bytes: 64,
        ..unlimited()
    });
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    let mut carol = ChatClient::join(&server, Some("Carol"));
    carol.send_json(&json!({"type": "join", "room": "other"}));
    carol.until_type("history");

    let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    ann.send_binary(&data);
    let got = loop {
        match bob.next() {
            Incoming::Binary(b) => break b,
            Incoming::Json(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(got, data);
    let data_for_carol = data.clone();
    assert_never_got(
        &mut carol,
        "carol marker",
        move |m| matches!(m, Incoming::Binary(b) if *b == data_for_carol),
    );

    ann.send_binary(&[7u8; 65]);
    ann.expect_error("binary_too_long");
    assert_never_got(
        &mut bob,
        "bob marker",
        |m| matches!(m, Incoming::Binary(b) if b.len() == 65),
    );
    ann.say("still open");
}

// ---- The rate limit ----

fn rate_limited(rate: u32, burst: u32) -> Config {
    Config {
        rate_limit: rate,
        rate_burst: burst,
        ..common::config()
    }
}

/// A burst is refused past the burst size, with one `rate_limited` error,
/// and the connection stays open: "a recoverable mistake (... rate
/// exceeded) gets an error and the connection stays open" (DESIGN.md).
/// Only a sustained flood is closed (next test).
#[test]
fn a_burst_over_the_rate_limit_is_refused_and_the_connection_stays_open() {
    let server = start(rate_limited(5, 5));
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    for i in 0..20 {
        ann.send_text(&format!("burst {i}"));
    }
    // Then slower, reading for 300 ms between messages (the limit refills
    // one every 200 ms), until one is accepted.
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut errors = 0;
    let mut accepted: Option<String> = None;
    let mut attempt = 0;
    while accepted.is_none() {
        assert!(
            Instant::now() < deadline,
            "nothing accepted after the burst"
        );
        ann.send_text(&format!("slow {attempt}"));
        attempt += 1;
        let pause = Instant::now() + Duration::from_millis(300);
        while let Some(m) = ann.next_within(pause.saturating_duration_since(Instant::now())) {
            match m {
                Incoming::Json(v) if v["type"] == "error" => {
                    assert_eq!(v["code"], "rate_limited", "{v}");
                    errors += 1;
                }
                Incoming::Json(v)
                    if v["type"] == "chat"
                        && v["text"].as_str().is_some_and(|t| t.starts_with("slow ")) =>
                {
                    accepted = v["text"].as_str().map(String::from);
                    break;
                }
                Incoming::Json(_) => {}
                other => panic!(
                    "after a burst of 20 (rate 5/s, burst 5) the connection ended: {other:?}"
                ),
            }
        }
    }
    assert!(errors >= 1, "the burst got no rate_limited error");
    let accepted = accepted.unwrap();
    let ann_id = ann.id;
    let (_, before) = bob.until_chat_from(ann_id, &accepted);
    let delivered = before
        .iter()
        .filter(|m| {
            matches!(m, Incoming::Json(v) if v["type"] == "chat" && v["user"]["id"] == ann_id
                && v["text"].as_str().is_some_and(|t| t.starts_with("burst ")))
        })
        .count();
    assert!(
        (5..20).contains(&delivered),
        "{delivered} of a burst of 20 were delivered"
    );
    assert!(server.metrics().rate_limited.load(Ordering::Relaxed) >= 1);
    assert_eq!(server.metrics().closes_sent(CloseCode::POLICY), 0);
}

#[test]
fn a_sustained_flood_is_closed_with_1008() {
    let server = start(rate_limited(5, 5));
    let mut raw = RawClient::connect(server.addr(), "/");
    let mut writer = raw.stream.try_clone().unwrap();
    let stop = AtomicBool::new(false);
    let close = std::thread::scope(|scope| {
        let flooder = scope.spawn(|| {
            use std::io::Write;
            let deadline = Instant::now() + READ_TIMEOUT;
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let frame =
                    common::client_frame(true, OpCode::Text, format!("flood {sent}").as_bytes());
                if writer.write_all(&frame).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let close = loop {
            let frame = raw.read_frame();
            match frame.header.opcode {
                OpCode::Text | OpCode::Ping => {}
                OpCode::Close => break frame,
                other => panic!("unexpected {other:?}"),
            }
        };
        stop.store(true, Ordering::Relaxed);
        let sent = flooder.join().unwrap();
        assert!(sent > 10, "the flood sent {sent}");
        close
    });
    let close = CloseFrame::parse(&close.payload).unwrap().unwrap();
    assert_eq!(close.code, CloseCode::POLICY, "{close:?}");
    assert!(close.reason.contains("rate"), "{close:?}");
    let _ = raw.stream.shutdown(std::net::Shutdown::Write);
    raw.expect_eof();
    assert!(server.metrics().rate_limited.load(Ordering::Relaxed) > 5);
    assert_eq!(server.metrics().closes_sent(CloseCode::POLICY), 1);
}

#[test]
fn a_rate_limit_of_zero_is_no_limit() {
    let server = start(rate_limited(0, 1));
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    for i in 0..300 {
        ann.send_text(&format!("n{i}"));
    }
    let (_, before) = bob.until_chat_from(ann.id, "n299");
    let texts: Vec<String> = before
        .iter()
        .filter_map(|m| match m {
            Incoming::Json(v) if v["type"] == "chat" => {
                Some(v["text"].as_str().unwrap().to_string())
            }
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..299).map(|i| format!("n{i}")).collect();
    assert_eq!(texts, expected);
    let (_, before) = ann.until_chat_from(ann.id, "n299");
    assert!(!before.iter().any(|m| is_type(m, "error")), "{before:?}");
    assert_eq!(server.metrics().rate_limited.load(Ordering::Relaxed), 0);
}

// ---- Connections ----

#[test]
fn past_the_connection_cap_the_next_gets_503() {
    let server = start(Config {
        max_connections: 3,
        ..unlimited()
    });
    let ann = ChatClient::join(&server, Some("Ann"));
    let bob = ChatClient::join(&server, Some("Bob"));
    let carol = ChatClient::join(&server, Some("Carol"));
    let reply = common::http_exchange(server.addr(), &common::upgrade_request(server.addr(), "/"));
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.header("Retry-After").is_some(), "{reply:?}");
    match wschat::client::connect(&common::ws_url(&server, "/")) {
        Err(wschat::Error::Handshake(e)) => assert!(e.contains("503"), "{e}"),
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
    assert!(server.metrics().connections_refused.load(Ordering::Relaxed) >= 2);

    // One leaves: there is room again.
    drop(carol);
    eventually(READ_TIMEOUT, "the server notices Carol left", || {
        server.open_connections() < 3
    });
    let mut dan = ChatClient::join(&server, Some("Dan"));
    dan.say("in");
    drop((ann, bob));
}

#[test]
fn a_silent_connection_is_closed_for_idleness_and_a_live_one_stays() {
    let server = start(Config {
        ping_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(800),
        close_timeout: Duration::from_secs(1),
        ..unlimited()
    });
    let mut ann = ChatClient::join(&server, Some("Ann"));
    let done = AtomicBool::new(false);
    let (close, pings) = std::thread::scope(|scope| {
        // Ann reads (and so answers pings) until the silent one is closed.
        let live = scope.spawn(|| {
            let mut pings = 0;
            while !done.load(Ordering::Relaxed) {
                ann.ws
                    .get_ref()
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                match ann.ws.read_message() {
                    Ok(wschat::ws::Message::Ping(_)) => pings += 1,
                    Ok(wschat::ws::Message::Close(c)) => {
                        panic!("the live client was closed: {c:?}")
                    }
                    Ok(_) => {}
                    Err(wschat::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("the live client: {e}"),
                }
            }
            pings
        });
        // A raw client that completes the handshake and then says nothing.
        let mut silent = RawClient::connect(server.addr(), "/");
        let close = loop {
            let frame = silent.read_frame();
            match frame.header.opcode {
                OpCode::Text | OpCode::Ping => {}
                OpCode::Close => break frame,
                other => panic!("unexpected {other:?}"),
            }
        };
        silent.expect_eof();
        done.store(true, Ordering::Relaxed);
        (close, live.join().unwrap())
    });
    let close = CloseFrame::parse(&close.payload).unwrap().unwrap();
    assert_eq!(close.code, CloseCode::GOING_AWAY, "{close:?}");
    assert_eq!(close.reason, "idle timeout");
    assert!(pings >= 1, "the live client was never pinged");
    // Ann has been connected longer than the idle timeout and still talks.
    ann.say("still here");
    assert_eq!(server.metrics().closes_sent(CloseCode::GOING_AWAY), 1);
}

#[test]
fn stop_closes_every_connection_with_1001_and_returns() {
    let server = start(Config {
        close_timeout: Duration::from_secs(1),
        ..unlimited()
    });
    let mut clients = vec![
        ChatClient::join(&server, Some("Ann")),
        ChatClient::join(&server, Some("Bob")),
        ChatClient::join(&server, Some("Carol")),
    ];
    clients[2].send_json(&json!({"type": "join", "room": "other"}));
    clients[2].until_type("history");
    // One that never answers the Close: stop() must not wait for it
    // forever. Its welcome shows the hub knows it.
    let mut deaf = RawClient::connect(server.addr(), "/");
    let welcome = deaf.expect(OpCode::Text);
    assert!(String::from_utf8_lossy(&welcome).contains("\"welcome\""));

    let (tx, rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        server.stop();
        let _ = tx.send(());
    });
    for client in &mut clients {
        let close = client.until_close().expect("a Close with a code");
        assert_eq!(close.code, CloseCode::GOING_AWAY, "{close:?}");
        assert_eq!(close.reason, "server shutting down");
    }
    let close = loop {
        let frame = deaf.read_frame();
        if frame.header.opcode == OpCode::Close {
            break CloseFrame::parse(&frame.payload).unwrap().unwrap();
        }
    };
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    rx.recv_timeout(READ_TIMEOUT + Duration::from_secs(5))
        .expect("stop() returned");
    stopper.join().unwrap();
    for client in &mut clients {
        assert_eq!(client.next(), Incoming::End);
    }
}

// ---- /metrics ----

/// Parse the Prometheus text format: every line that is not a comment must
/// be `name{labels} value`; returns `name{labels}` → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                Some(
                    rest.strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels in {line:?}")),
                ),
            ),
            None => (series, None),
        };
        assert!(
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = labels {
            for pair in labels.split(',') {
                let (key, value) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                assert!(
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name in {line:?}"
                );
                assert!(
                    value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
                    "unquoted label value in {line:?}"
                );
            }
        }
        // A histogram's series (`_bucket`, `_sum`, `_count`) share the
        // TYPE line of its name.
        let histogram = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| text.contains(&format!("# TYPE {base} histogram")))
        });
        assert!(
            histogram || text.contains(&format!("# TYPE {name} ")),
            "no TYPE line for {name}"
        );
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    out
}

fn scrape(server: &ServerHandle) -> BTreeMap<String, f64> {
    let reply = common::http_exchange(
        server.addr(),
        format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr()).as_bytes(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{reply:?}"
    );
    parse_metrics(&reply.body_text())
}

/// The status of `GET path` on `server`, with `extra` header lines.
fn get_status(server: &ServerHandle, path: &str, extra: &str) -> (u16, String) {
    let reply = common::http_exchange(
        server.addr(),
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n",
            server.addr()
        )
        .as_bytes(),
    );
    (reply.status, reply.body_text())
}

#[test]
fn metrics_are_served_only_to_metrics_from_addresses() {
    // The default: this machine only (the tests connect from 127.0.0.1).
    let local = start(common::config());
    assert_eq!(get_status(&local, "/metrics", "").0, 200);

    let elsewhere = start(Config {
        metrics_from: vec![wschat::config::IpRange::parse("10.0.0.0/8").unwrap()],
        ..common::config()
    });
    let (status, body) = get_status(&elsewhere, "/metrics", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--metrics-from"), "{body}");
    assert_eq!(
        get_status(&elsewhere, "/healthz", "").0,
        200,
        "/healthz stays open"
    );

    // Behind a trusted proxy the address it reports is the one that counts.
    let proxied = start(Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..common::config()
    });
    let outside = "X-Forwarded-For: 203.0.113.9\r\n";
    assert_eq!(get_status(&proxied, "/metrics", outside).0, 403);
    let inside = "X-Forwarded-For: 127.0.0.1\r\n";
    assert_eq!(get_status(&proxied, "/metrics", inside).0, 200);
}

#[test]
fn metrics_move_during_a_chat() {
    let server = start(unlimited());
    let before = scrape(&server);
    let value = |m: &BTreeMap<String, f64>, key: &str| -> f64 {
        *m.get(key)
            .unwrap_or_else(|| panic!("{key} is not in /metrics: {m:?}"))
    };
    assert_eq!(value(&before, "wschat_messages_in_total"), 0.0);
    assert_eq!(
        value(&before, r#"wschat_http_responses_total{status="101"}"#),
        0.0
    );

    let mut ann = ChatClient::join(&server, Some("Ann"));
    let mut bob = ChatClient::join(&server, Some("Bob"));
    for i in 0..5 {
        ann.say(&format!("m{i}"));
        bob.until_chat_from(ann.id, &format!("m{i}"));
    }
    // Counted before the hub welcomed them.
    assert_eq!(server.metrics().websockets_open.load(Ordering::Relaxed), 2);
    let during = scrape(&server);
    let delta = |key: &str| value(&during, key) - value(&before, key);
    assert_eq!(delta("wschat_messages_in_total"), 5.0);
    // Each chat to both, plus welcome, users, history and joins.
    assert!(delta("wschat_messages_out_total") >= 10.0 + 6.0);
    assert_eq!(delta(r#"wschat_http_responses_total{status="101"}"#), 2.0);
    assert_eq!(value(&during, "wschat_slow_consumer_closes_total"), 0.0);
    assert!(delta(r#"wschat_http_responses_total{status="200"}"#) >= 1.0);
    assert!(delta("wschat_bytes_in_total") > 0.0);
    assert!(delta("wschat_bytes_out_total") > 0.0);
    assert!(delta("wschat_connections_accepted_total") >= 3.0);
    assert_eq!(value(&during, "wschat_websockets_open"), 2.0);

    drop(bob);
    ann.until_type("leave");
    // Uncounted before the hub heard of the close.
    assert_eq!(server.metrics().websockets_open.load(Ordering::Relaxed), 1);
    // The leave notice is counted once the hub has handed it out, which
    // may be just after Ann read it.
    let out_during = value(&during, "wschat_messages_out_total");
    eventually(READ_TIMEOUT, "the leave notice counted", || {
        server.metrics().messages_out.load(Ordering::Relaxed) as f64 > out_during
    });
    let after = scrape(&server);
    assert_eq!(value(&after, "wschat_websockets_open"), 1.0);
    assert!(value(&after, "wschat_messages_out_total") > out_during);
}

#[test]
fn server_messages_have_their_fields_in_the_order_the_protocol_page_shows() {
    let documented =
        common::documented_field_orders("docs/chat-protocol.md", &["## Server → client"]);
    assert!(documented.len() >= 10, "{documented:?}");
    let server = start(Config {
        jwt_secrets: vec![b"order".to_vec()],
        ..unlimited()
    });
    let admin = wschat::auth::sign(
        json!({"sub": "admin", "exp": u64::MAX / 2000, "role": "admin"})
            .to_string()
            .as_bytes(),
        b"order",
    );
    let connect = |target: &str| {
        let ws = wschat::client::connect(&common::ws_url(&server, target)).expect("connect");
        ws.get_ref().set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        ws
    };
    // Every text message read goes to `seen`, until one of type `kind`.
    let mut seen: Vec<String> = Vec::new();
    let mut until = |ws: &mut wschat::WebSocket<std::net::TcpStream>, kind: &str| -> Value {
        loop {
            match ws.read_message() {
                Ok(wschat::ws::Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON");
                    seen.push(text);
                    if value["type"] == kind {
                        return value;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("waiting for {kind}: {e}"),
            }
        }
    };
    let say = |ws: &mut wschat::WebSocket<std::net::TcpStream>, json: Value| {
        ws.send(wschat::ws::Message::Text(json.to_string()))
            .expect("send");
    };
    let mut ann = connect("/?name=Ann");
    until(&mut ann, "history");
    let mut bob = connect("/?name=Bob");
    let bob_id = until(&mut bob, "welcome")["user"]["id"].as_u64().unwrap();
    until(&mut ann, "join");
    say(&mut ann, json!({"type": "chat", "text": "hi"}));
    let first = until(&mut ann, "chat")["id"].as_u64().unwrap();
    say(&mut ann, json!({"type": "name", "name": "Anna"}));
    until(&mut ann, "rename");
    say(
        &mut ann,
        json!({"type": "private", "to": bob_id, "text": "psst"}),
    );
    until(&mut ann, "private");
    say(&mut ann, json!({"type": "typing"}));
    until(&mut bob, "typing");
    say(&mut ann, json!({"type": "history", "before": first + 1}));
    until(&mut ann, "history");
    say(&mut ann, json!({"type": "resume", "since": 0}));
    until(&mut ann, "resume");
    say(&mut ann, json!({"type": "find", "name": "bo"}));
    until(&mut ann, "found");
    say(&mut ann, json!({"type": "privates"}));
    until(&mut ann, "privates");
    say(&mut ann, json!({"type": "rooms"}));
    until(&mut ann, "rooms");
    // Messages: a reply, an edit, a reaction, a mention.
    say(
        &mut bob,
        json!({"type": "chat", "text": "@Anna yes", "reply": first}),
    );
    until(&mut ann, "mention");
    say(
        &mut ann,
        json!({"type": "edit", "id": first, "text": "hi!"}),
    );
    until(&mut ann, "edited");
    say(
        &mut bob,
        json!({"type": "react", "id": first, "emoji": "👍"}),
    );
    until(&mut ann, "reactions");
    say(&mut ann, json!({"type": "search", "text": "HI"}));
    until(&mut ann, "results");
    say(
        &mut ann,
        json!({"type": "search", "text": "psst", "with": bob_id}),
    );
    until(&mut ann, "results");
    say(&mut ann, json!({"type": "private_history", "with": bob_id}));
    until(&mut ann, "private_history");
    say(&mut ann, json!({"type": "no_such_type"}));
    until(&mut ann, "error");
    // A verified user's welcome, and an administrator's delete.
    let mut boss = connect(&format!("/?token={admin}"));
    until(&mut boss, "history");
    say(&mut boss, json!({"type": "delete", "id": first}));
    until(&mut ann, "deleted");
    drop(boss);
    drop(bob);
    until(&mut ann, "leave");
    // A crowd: more than 100 members hear of arrivals as a `presence`.
    let mut watcher = connect("/?room=big");
    until(&mut watcher, "history");
    let crowd: Vec<_> = (0..CROWD_SIZE)
        .map(|_| wschat::client::connect(&common::ws_url(&server, "/?room=big")).expect("connect"))
        .collect();
    until(&mut watcher, "presence");
    drop(crowd);
    drop(watcher);
    drop(ann);
    server.stop();

    let checked: BTreeSet<String> = seen
        .iter()
        .map(|text| common::check_field_order(&documented, "docs/chat-protocol.md", text, true))
        .collect();
    let shown: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(
        checked, shown,
        "every type the page shows was seen and checked"
    );
}
