//! What a user does with messages, over real sockets (docs/chat-protocol.md,
//! "Messages"): edit and retract its own (the room is told; history and
//! resume carry the latest version, after a restart too), reply with a
//! quote, react with emoji, and `@name` mentions that notify the person
//! named wherever they are.

mod common;

use common::{ChatClient, TempDir, config, start};
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

/// Connect to `target` and read up to the current room's `history`.
fn arrive(server: &ServerHandle, target: &str) -> (ChatClient, Value) {
    let mut c = ChatClient::open(server, target);
    let welcome = c.until_type("welcome");
    c.id = welcome["user"]["id"].as_u64().unwrap();
    c.name = welcome["user"]["name"].as_str().unwrap().to_string();
    let history = c.until_type("history");
    (c, history)
}

/// The message with `id` in a `history` or `resume`.
fn find(list: &Value, id: u64) -> Option<&Value> {
    list["messages"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["id"] == id))
}

fn history(client: &mut ChatClient) -> Value {
    client.send_json(&json!({"type": "history"}));
    client.until("a history page", |m| {
        m["type"] == "history" && m.get("before").is_some()
    })
}

#[test]
fn the_author_edits_a_message_the_room_sees_it_and_history_keeps_the_latest() {
    let dir = TempDir::new("messages-edit");
    let server = start(settings(Some(&dir)));
    let (mut ann, welcome_history) = arrive(&server, "/?name=Ann");
    assert!(welcome_history["messages"].as_array().unwrap().is_empty());
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    let id = ann.say("teh first")["id"].as_u64().unwrap();
    ann.send_json(&json!({"type": "edit", "id": id, "text": "the first 你好"}));
    let edited = bob.until_type("edited");
    assert_eq!(edited["id"], id);
    assert_eq!(edited["room"], "lobby");
    assert_eq!(edited["text"], "the first 你好");
    assert!(edited["edited"].as_u64().is_some());
    ann.until_type("edited");
    let page = history(&mut bob);
    let latest = find(&page, id).expect("the message is in history");
    assert_eq!(latest["text"], "the first 你好");
    assert_eq!(latest["edited"], edited["edited"]);
    assert_eq!(latest["user"]["id"], ann.id);
    // Resume carries the latest version too.
    bob.send_json(&json!({"type": "resume", "since": id - 1}));
    let resumed = bob.until_type("resume");
    assert_eq!(find(&resumed, id).unwrap()["text"], "the first 你好");
    // Someone else's message: forbidden; no such message: unknown_message;
    // the connection stays.
    bob.send_json(&json!({"type": "edit", "id": id, "text": "mine now"}));
    bob.expect_error("forbidden");
    ann.send_json(&json!({"type": "edit", "id": id + 1000, "text": "x"}));
    ann.expect_error("unknown_message");
    ann.send_json(&json!({"type": "edit", "id": id, "text": " "}));
    ann.expect_error("empty_text");
    drop(ann);
    drop(bob);
    drop(server);

    // After a restart: the latest version, from the log.
    let server = start(settings(Some(&dir)));
    let (_, after) = arrive(&server, "/");
    let latest = find(&after, id).expect("still in history");
    assert_eq!(latest["text"], "the first 你好");
    assert!(!after.to_string().contains("teh first"), "{after}");
}

#[test]
fn the_author_retracts_a_message_and_its_text_never_comes_back() {
    let dir = TempDir::new("messages-retract");
    let server = start(settings(Some(&dir)));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    let id = ann.say("oops, a secret")["id"].as_u64().unwrap();
    let kept = bob.say("bob's own")["id"].as_u64().unwrap();
    // Not Bob's to retract; an ordinary user's `delete` stays forbidden.
    bob.send_json(&json!({"type": "retract", "id": id}));
    bob.expect_error("forbidden");
    ann.send_json(&json!({"type": "delete", "id": id}));
    ann.expect_error("forbidden");
    ann.send_json(&json!({"type": "retract", "id": id}));
    let deleted = bob.until_type("deleted");
    assert_eq!(
        deleted,
        json!({"type": "deleted", "id": id, "room": "lobby"})
    );
    let page = history(&mut bob);
    assert!(find(&page, id).is_none());
    assert!(find(&page, kept).is_some());
    ann.send_json(&json!({"type": "retract", "id": id}));
    ann.expect_error("unknown_message");
    drop(ann);
    drop(bob);
    drop(server);
    let server = start(settings(Some(&dir)));
    let (_, after) = arrive(&server, "/");
    assert!(!after.to_string().contains("a secret"), "{after}");
    assert!(find(&after, kept).is_some());
}

#[test]
fn a_reply_quotes_the_message_it_answers() {
    let server = start(settings(None));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    let long = "问".repeat(300);
    let asked = ann.say(&long)["id"].as_u64().unwrap();
    bob.send_json(&json!({"type": "chat", "text": "答", "reply": asked}));
    let answer = ann.until_chat_from(bob.id, "答").0;
    assert_eq!(answer["reply"]["id"], asked);
    assert_eq!(answer["reply"]["user"]["id"], ann.id);
    assert_eq!(
        answer["reply"]["text"].as_str().unwrap().chars().count(),
        wschat::chat::MAX_QUOTE_CHARS
    );
    let page = history(&mut ann);
    assert_eq!(
        find(&page, answer["id"].as_u64().unwrap()).unwrap()["reply"]["id"],
        asked
    );
    // A message of another room, or none: unknown_message.
    bob.send_json(&json!({"type": "chat", "text": "?", "reply": asked + 1000}));
    bob.expect_error("unknown_message");
    bob.send_json(&json!({"type": "chat", "text": "?", "reply": "x"}));
    bob.expect_error("bad_command");
    let (mut cat, _) = arrive(&server, "/?name=Cat&room=elsewhere");
    cat.send_json(&json!({"type": "chat", "text": "?", "reply": asked}));
    cat.expect_error("unknown_message");
}

#[test]
fn reactions_count_who_reacted_and_toggle() {
    let dir = TempDir::new("messages-react");
    let server = start(settings(Some(&dir)));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, _) = arrive(&server, "/?name=Bob");
    let id = ann.say("react to me")["id"].as_u64().unwrap();
    bob.send_json(&json!({"type": "react", "id": id, "emoji": "👍"}));
    let r = ann.until_type("reactions");
    assert_eq!(
        r,
        json!({"type": "reactions", "id": id, "room": "lobby", "reactions": {"👍": [bob.id]}})
    );
    ann.send_json(&json!({"type": "react", "id": id, "emoji": "👍"}));
    let r = bob.until("two thumbs", |m| {
        m["type"] == "reactions"
            && m["reactions"]["👍"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
    });
    assert_eq!(r["reactions"]["👍"], json!([bob.id, ann.id]));
    ann.send_json(&json!({"type": "react", "id": id, "emoji": "🎉"}));
    bob.until("a party", |m| {
        m["type"] == "reactions" && m["reactions"]["🎉"].is_array()
    });
    // Bob takes his thumb back.
    bob.send_json(&json!({"type": "react", "id": id, "emoji": "👍"}));
    let r = ann.until("one thumb", |m| {
        m["type"] == "reactions"
            && m["reactions"]["👍"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
    });
    assert_eq!(r["reactions"], json!({"👍": [ann.id], "🎉": [ann.id]}));
    // Bad emoji, unknown messages.
    bob.send_json(&json!({"type": "react", "id": id, "emoji": "a b"}));
    bob.expect_error("bad_command");
    bob.send_json(&json!({"type": "react", "id": id, "emoji": ""}));
    bob.expect_error("bad_command");
    bob.send_json(&json!({"type": "react", "id": id + 1000, "emoji": "👍"}));
    bob.expect_error("unknown_message");
    // An edit keeps the reactions; history carries both.
    ann.send_json(&json!({"type": "edit", "id": id, "text": "react to me!"}));
    bob.until_type("edited");
    let page = history(&mut bob);
    let m = find(&page, id).unwrap();
    assert_eq!(m["text"], "react to me!");
    assert_eq!(m["reactions"], json!({"👍": [ann.id], "🎉": [ann.id]}));
    drop(ann);
    drop(bob);
    drop(server);
    let server = start(settings(Some(&dir)));
    let (_, after) = arrive(&server, "/");
    assert_eq!(
        find(&after, id).unwrap()["reactions"]["🎉"],
        json!([after_id(&after, id)])
    );
}

/// The author of message `id` in a history (who reacted with 🎉 above).
fn after_id(page: &Value, id: u64) -> Value {
    find(page, id).unwrap()["user"]["id"].clone()
}

#[test]
fn a_mention_notifies_the_person_named_in_any_room_and_nobody_else() {
    let server = start(settings(None));
    let (mut ann, _) = arrive(&server, "/?name=Ann");
    let (mut bob, _) = arrive(&server, "/?name=%E5%B0%8F%E6%98%8E&room=elsewhere");
    let (mut cat, _) = arrive(&server, "/?name=Cat");
    assert_eq!(bob.name, "小明");
    let said = ann.say("hey @小明, and @ann and @nobody")["id"]
        .as_u64()
        .unwrap();
    let mention = bob.until_type("mention");
    assert_eq!(mention["id"], said);
    assert_eq!(mention["room"], "lobby");
    assert_eq!(mention["from"]["id"], ann.id);
    assert_eq!(mention["text"], "hey @小明, and @ann and @nobody");
    // Ann named herself: no notice; Cat was not named: none either.
    for client in [&mut ann, &mut cat] {
        client.send_text("marker");
        let id = client.id;
        let (_, before) = client.until_chat_from(id, "marker");
        assert!(
            !before
                .iter()
                .any(|m| matches!(m, common::Incoming::Json(v) if v["type"] == "mention")),
            "{before:?}"
        );
    }
}
