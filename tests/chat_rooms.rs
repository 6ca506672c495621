//! Several rooms at once over real sockets (docs/chat-protocol.md, "Rooms"):
//! `join` with `also`, messages that carry their room, `leave` of one room,
//! the `rooms` list with member counts, and read markers per room that give
//! the same unread counts after a reconnect, on another device and after a
//! restart. A one-room client (plain text, plain `join`) is unchanged:
//! tests/chat.rs.
//!
//! "Nobody else receives it" is shown without waiting for silence: the
//! outsider sends a marker of its own and reads up to it (the hub handles
//! events in order, and each connection's frames go out in order).

mod common;

use common::{ChatClient, Incoming, TempDir, config, start};
use serde_json::{Value, json};
use wschat::config::Config;
use wschat::server::ServerHandle;

fn settings(dir: Option<&TempDir>) -> Config {
    Config {
        data_dir: dir.map(|d| d.0.clone()),
        rate_limit: 0,
        ..config()
    }
}

/// Connect to `target` and read up to the first `history` (the current
/// room's); returns the client and its `welcome`.
fn arrive(server: &ServerHandle, target: &str) -> (ChatClient, Value) {
    let mut c = ChatClient::open(server, target);
    let welcome = c.until_type("welcome");
    c.id = welcome["user"]["id"].as_u64().unwrap();
    c.name = welcome["user"]["name"].as_str().unwrap().to_string();
    c.until_type("history");
    (c, welcome)
}

/// `client` joins `room` besides its other rooms, and reads up to the
/// `rooms` answer that lists it among its own.
fn join_also(client: &mut ChatClient, room: &str) -> Value {
    client.send_json(&json!({"type": "join", "room": room, "also": true}));
    client.until(&format!("rooms with {room}"), |m| {
        m["type"] == "rooms" && mine(m).contains(&room.to_string())
    })
}

/// The names of the user's own rooms in a `rooms` answer.
fn mine(rooms: &Value) -> Vec<String> {
    rooms["mine"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["room"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The entry of `room` among the user's own in a `rooms` answer.
fn my_room<'a>(rooms: &'a Value, room: &str) -> &'a Value {
    rooms["mine"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["room"] == room))
        .unwrap_or_else(|| panic!("{room} is not among {rooms}"))
}

/// Ask for `rooms` and return the answer.
fn rooms(client: &mut ChatClient) -> Value {
    client.send_json(&json!({"type": "rooms"}));
    client.until_type("rooms")
}

/// `client` says `marker` in `room` and reads up to it; nothing read before
/// may be a chat message with `text`.
fn never_got(client: &mut ChatClient, room: &str, marker: &str, text: &str) {
    client.send_json(&json!({"type": "chat", "room": room, "text": marker}));
    let id = client.id;
    let (_, before) = client.until_chat_from(id, marker);
    assert!(
        !before
            .iter()
            .any(|m| matches!(m, Incoming::Json(v) if v["type"] == "chat" && v["text"] == text)),
        "user {id} received {text:?}: {before:?}"
    );
}

#[test]
fn a_user_in_several_rooms_hears_each_and_speaks_to_each() {
    let server = start(settings(None));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    let (mut cat, _) = arrive(&server, "/?name=Cat&room=rust");

    // Ann enters rust too: Cat hears of it, Ann gets rust's members and
    // history, and lobby is still hers.
    ann.send_json(&json!({"type": "join", "room": "rust", "also": true}));
    let users = ann.until("rust's members", |m| {
        m["type"] == "users" && m["room"] == "rust"
    });
    assert!(common::names_user(&users["users"], cat.id), "{users}");
    ann.until("rust's history", |m| {
        m["type"] == "history" && m["room"] == "rust"
    });
    let listed = ann.until_type("rooms");
    assert_eq!(mine(&listed), ["lobby", "rust"]);
    assert_eq!(
        listed["current"], "rust",
        "the room joined is the current one"
    );
    let ann_id = ann.id;
    cat.until("Ann's join", |m| {
        m["type"] == "join" && m["room"] == "rust" && common::names_user(&m["users"], ann_id)
    });

    // Bob in the lobby and Cat in rust both reach Ann, each message with
    // its room.
    let bob_id = bob.id;
    bob.say("lobby hello");
    let heard = ann.until_chat_from(bob_id, "lobby hello").0;
    assert_eq!(heard["room"], "lobby");
    let cat_id = cat.id;
    cat.say("rust hello");
    let heard = ann.until_chat_from(cat_id, "rust hello").0;
    assert_eq!(heard["room"], "rust");
    never_got(&mut bob, "lobby", "bob's marker", "rust hello");

    // Ann speaks to a room by name; plain text goes to her current room.
    ann.send_json(&json!({"type": "chat", "room": "lobby", "text": "to the lobby"}));
    let got = bob.until_chat_from(ann_id, "to the lobby").0;
    assert_eq!(got["room"], "lobby");
    never_got(&mut cat, "rust", "cat's marker", "to the lobby");
    ann.send_text("plain text");
    let got = cat.until_chat_from(ann_id, "plain text").0;
    assert_eq!(got["room"], "rust");
    never_got(&mut bob, "lobby", "bob's second marker", "plain text");

    // Typing in a room by name reaches that room.
    ann.send_json(&json!({"type": "typing", "room": "lobby"}));
    let typing = bob.until_type("typing");
    assert_eq!(typing["room"], "lobby");
    assert_eq!(typing["user"]["id"], ann_id);

    // A room she is not in is refused, and the connection stays.
    ann.send_json(&json!({"type": "chat", "room": "go", "text": "x"}));
    ann.expect_error("not_member");
    ann.send_json(&json!({"type": "join", "room": "go", "also": "yes"}));
    ann.expect_error("bad_command");
    ann.say("still here");
}

#[test]
fn rooms_lists_public_rooms_with_member_counts_and_leave_leaves_one() {
    let server = start(settings(None));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut cat, _) = arrive(&server, "/?name=Cat&room=rust");
    let (_dan, _) = arrive(&server, "/?name=Dan&room=rust");
    join_also(&mut ann, "rust");
    let listed = rooms(&mut cat);
    let public = listed["rooms"].as_array().expect("rooms");
    let count = |room: &str| {
        public
            .iter()
            .find(|r| r["room"] == room)
            .map(|r| r["members"].clone())
    };
    assert_eq!(count("rust"), Some(json!(3)), "{listed}");
    assert_eq!(count("lobby"), Some(json!(1)), "{listed}");
    assert_eq!(public[0]["room"], "rust", "busiest first: {listed}");
    assert_eq!(mine(&listed), ["rust"]);

    // Ann leaves rust: its members are told, she hears it no more, and
    // her current room is the lobby again.
    ann.send_json(&json!({"type": "leave", "room": "rust"}));
    let after = ann.until_type("rooms");
    assert_eq!(mine(&after), ["lobby"]);
    assert_eq!(after["current"], "lobby");
    let ann_id = ann.id;
    let left = cat.until("Ann's leave", |m| {
        m["type"] == "leave" && common::names_user(&m["users"], ann_id)
    });
    assert_eq!(left["room"], "rust");
    assert_eq!(left["count"], 2);
    cat.say("after ann left");
    never_got(&mut ann, "lobby", "ann's marker", "after ann left");
    ann.send_json(&json!({"type": "leave", "room": "rust"}));
    ann.expect_error("not_member");

    // Leaving her last room puts her back in the lobby.
    ann.send_json(&json!({"type": "leave", "room": "lobby"}));
    let after = ann.until_type("rooms");
    assert_eq!(mine(&after), ["lobby"]);
    ann.say("in the lobby");
}

#[test]
fn a_user_is_in_at_most_max_rooms_per_user_rooms() {
    let server = start(Config {
        max_rooms_per_user: 2,
        ..settings(None)
    });
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    join_also(&mut ann, "one");
    ann.send_json(&json!({"type": "join", "room": "two", "also": true}));
    let error = ann.expect_error("too_many");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("--max-rooms-per-user")),
        "{error}"
    );
    // Moving (a plain join) is still allowed: the room count stays.
    ann.send_json(&json!({"type": "join", "room": "two"}));
    ann.until("two's history", |m| {
        m["type"] == "history" && m["room"] == "two"
    });
    let listed = rooms(&mut ann);
    assert_eq!(mine(&listed), ["lobby", "two"]);
}

#[test]
fn unread_counts_per_room_hold_across_reconnects_devices_and_restarts() {
    let dir = TempDir::new("rooms-unread");
    let server = start(settings(Some(&dir)));
    let (mut ann, welcome) = arrive(&server, "/?name=Ann");
    let session = welcome["session"].as_str().unwrap().to_string();
    join_also(&mut ann, "rust");
    let (mut cat, _) = arrive(&server, "/?name=Cat&room=rust");
    let first = cat.say("one")["id"].as_u64().unwrap();
    cat.say("two");
    let cat_id = cat.id;
    ann.until_chat_from(cat_id, "two");
    // Ann read rust up to "one"; her own messages never count.
    ann.send_json(&json!({"type": "read", "room": "rust", "upto": first}));
    ann.send_json(&json!({"type": "chat", "room": "rust", "text": "mine"}));
    ann.until_own_chat("mine");
    let listed = rooms(&mut ann);
    assert_eq!(my_room(&listed, "rust")["unread"], 1, "{listed}");
    assert_eq!(my_room(&listed, "rust")["read"], first);
    drop(ann);

    // While she is away, two more.
    cat.say("three");
    let last = cat.say("four")["id"].as_u64().unwrap();

    // Back with her session: both rooms are hers again, each with its
    // history, and the count is what she has not read.
    let target = format!("/?session={session}");
    let (mut ann, again) = arrive(&server, &target);
    assert_eq!(again["room"], "rust", "her current room");
    let lobby = ann.until("the lobby's history", |m| {
        m["type"] == "history" && m["room"] == "lobby"
    });
    assert_eq!(lobby["complete"], true);
    let listed = rooms(&mut ann);
    assert_eq!(mine(&listed), ["lobby", "rust"]);
    assert_eq!(my_room(&listed, "rust")["unread"], 3, "{listed}");
    assert_eq!(my_room(&listed, "lobby")["unread"], 0, "{listed}");

    // Another device of the same user reads everything: the first sees it.
    let (mut phone, _) = arrive(&server, &target);
    phone.send_json(&json!({"type": "read", "room": "rust", "upto": last}));
    let listed = rooms(&mut phone);
    assert_eq!(my_room(&listed, "rust")["unread"], 0, "{listed}");
    let listed = rooms(&mut ann);
    assert_eq!(my_room(&listed, "rust")["unread"], 0, "{listed}");
    cat.say("five");
    drop(ann);
    drop(phone);
    drop(cat);
    drop(server);

    // After a restart: the same rooms, the same marker.
    let server = start(settings(Some(&dir)));
    let (mut ann, after) = arrive(&server, &target);
    assert_eq!(after["room"], "rust");
    let listed = rooms(&mut ann);
    assert_eq!(mine(&listed), ["lobby", "rust"]);
    assert_eq!(my_room(&listed, "rust")["unread"], 1, "{listed}");
    assert_eq!(my_room(&listed, "rust")["read"], last);
    // A marker needs a room name and a message id.
    ann.send_json(&json!({"type": "read", "room": "rust"}));
    ann.expect_error("bad_command");
}

#[test]
fn a_reconnect_with_since_resumes_every_room_of_the_user() {
    let server = start(settings(None));
    let (mut ann, welcome) = arrive(&server, "/?name=Ann");
    let session = welcome["session"].as_str().unwrap().to_string();
    join_also(&mut ann, "rust");
    let since = ann.say("before")["id"].as_u64().unwrap();
    drop(ann);
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    let (mut cat, _) = arrive(&server, "/?name=Cat&room=rust");
    bob.say("lobby while away");
    cat.say("rust while away");
    let mut ann = ChatClient::open(&server, &format!("/?session={session}&since={since}"));
    let mut resumed = Vec::new();
    while resumed.len() < 2 {
        let m = ann.until_type("resume");
        let texts: Vec<Value> = m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].clone())
            .collect();
        resumed.push((m["room"].clone(), texts));
    }
    resumed.sort_by_key(|(room, _)| room.to_string());
    assert_eq!(
        resumed,
        [
            (json!("lobby"), vec![json!("lobby while away")]),
            (json!("rust"), vec![json!("rust while away")]),
        ]
    );
    // A resume command for one room by name.
    ann.send_json(&json!({"type": "resume", "room": "lobby", "since": since}));
    let again = ann.until_type("resume");
    assert_eq!(again["room"], "lobby");
    assert_eq!(again["messages"][0]["text"], "lobby while away");
}
