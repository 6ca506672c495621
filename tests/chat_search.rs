//! Search over real sockets (docs/chat-protocol.md, "Search"): a room's
//! history and one's own private conversations, case-insensitive substring
//! matching (Chinese included), newest first, paged with `next`, and a
//! bound on the messages one request reads (`--search-scan`).

mod common;

use common::{ChatClient, config, start};
use serde_json::{Value, json};
use wschat::config::Config;
use wschat::server::ServerHandle;

fn arrive(server: &ServerHandle, target: &str) -> ChatClient {
    let mut c = ChatClient::open(server, target);
    let welcome = c.until_type("welcome");
    c.id = welcome["user"]["id"].as_u64().unwrap();
    c.until_type("history");
    c
}

fn search(client: &mut ChatClient, query: Value) -> Value {
    client.send_json(&query);
    client.until_type("results")
}

fn texts(results: &Value) -> Vec<String> {
    results["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

fn unlimited() -> Config {
    Config {
        rate_limit: 0,
        ..config()
    }
}

#[test]
fn a_room_is_searched_ignoring_case_chinese_included_newest_first_and_paged() {
    let server = start(unlimited());
    let mut ann = arrive(&server, "/?name=Ann&room=search");
    for text in [
        "Rust is fast",
        "我喜欢 rust 语言",
        "nothing here",
        "今天天气很好",
        "RUSTACEANS unite",
        "天气预报说明天下雨",
    ] {
        ann.say(text);
    }
    let found = search(&mut ann, json!({"type": "search", "text": "rust"}));
    assert_eq!(
        texts(&found),
        ["RUSTACEANS unite", "我喜欢 rust 语言", "Rust is fast"]
    );
    assert_eq!(found["room"], "search");
    assert_eq!(found["next"], Value::Null, "everything was searched");
    let found = search(&mut ann, json!({"type": "search", "text": "天气"}));
    assert_eq!(texts(&found), ["天气预报说明天下雨", "今天天气很好"]);
    // Paged: two at a time, going on from `next`.
    let first = search(
        &mut ann,
        json!({"type": "search", "text": "RUST", "limit": 2}),
    );
    assert_eq!(texts(&first), ["RUSTACEANS unite", "我喜欢 rust 语言"]);
    let next = first["next"].as_u64().expect("more may follow");
    let second = search(
        &mut ann,
        json!({"type": "search", "text": "rust", "limit": 2, "before": next}),
    );
    assert_eq!(texts(&second), ["Rust is fast"]);
    assert_eq!(second["before"], next);
    // Another room, by name, from elsewhere; nothing found is an empty list.
    let mut bob = arrive(&server, "/?name=Bob");
    let found = search(
        &mut bob,
        json!({"type": "search", "text": "天气", "room": "search"}),
    );
    assert_eq!(texts(&found).len(), 2);
    let none = search(&mut bob, json!({"type": "search", "text": "天气"}));
    assert_eq!(none["room"], "lobby");
    assert!(texts(&none).is_empty());
    // Mistakes keep the connection.
    bob.send_json(&json!({"type": "search", "text": "  "}));
    bob.expect_error("bad_command");
    bob.send_json(&json!({"type": "search", "text": "x".repeat(101)}));
    bob.expect_error("bad_command");
    bob.send_json(&json!({"type": "search", "text": "x", "with": 999_999}));
    bob.expect_error("unknown_user");
}

#[test]
fn one_request_reads_at_most_search_scan_messages_and_says_where_to_go_on() {
    let server = start(Config {
        search_scan: 3,
        ..unlimited()
    });
    let mut ann = arrive(&server, "/?name=Ann");
    let needle = ann.say("needle one")["id"].as_u64().unwrap();
    for i in 0..5 {
        ann.say(&format!("hay {i}"));
    }
    // The newest 3 are hay: none found, and `next` goes on below them.
    let first = search(&mut ann, json!({"type": "search", "text": "needle"}));
    assert!(texts(&first).is_empty());
    let next = first["next"].as_u64().expect("the scan stopped");
    assert!(next > needle);
    let second = search(
        &mut ann,
        json!({"type": "search", "text": "needle", "before": next}),
    );
    assert_eq!(texts(&second), ["needle one"]);
    // It read its 3 with the needle, so it cannot know there is nothing
    // older: one more request says so.
    let next = second["next"].as_u64().expect("the scan stopped again");
    assert_eq!(next, needle);
    let third = search(
        &mut ann,
        json!({"type": "search", "text": "needle", "before": next}),
    );
    assert!(texts(&third).is_empty());
    assert_eq!(third["next"], Value::Null);
}

#[test]
fn private_conversations_are_searched_by_their_two_users_only() {
    let server = start(unlimited());
    let mut ann = arrive(&server, "/?name=Ann");
    let mut bob = arrive(&server, "/?name=Bob");
    let mut cat = arrive(&server, "/?name=Cat");
    let bob_id = bob.id;
    ann.send_json(&json!({"type": "private", "to": bob_id, "text": "秘密 Plan A"}));
    ann.until_type("private");
    cat.send_json(&json!({"type": "private", "to": bob_id, "text": "秘密 plan C"}));
    cat.until_type("private");
    ann.say("public plan");
    let found = search(
        &mut ann,
        json!({"type": "search", "text": "PLAN", "with": bob_id}),
    );
    assert_eq!(texts(&found), ["秘密 Plan A"]);
    assert_eq!(found["with"]["id"], bob_id);
    assert!(found.get("room").is_none());
    // Bob sees his conversation with Cat; Ann cannot read it.
    let cat_id = cat.id;
    let found = search(
        &mut bob,
        json!({"type": "search", "text": "秘密", "with": cat_id}),
    );
    assert_eq!(texts(&found), ["秘密 plan C"]);
    let found = search(
        &mut ann,
        json!({"type": "search", "text": "秘密", "with": cat_id}),
    );
    assert!(texts(&found).is_empty());
}
