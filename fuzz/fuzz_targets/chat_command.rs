//! `chat_command`: arbitrary text as a client's chat message.
//!
//! `chat::command::parse` returns a command or an error, never panics; an
//! error carries one of the documented codes (docs/chat-protocol.md) and
//! renders as a JSON object; a text that is not a JSON object is always a
//! chat message with the text verbatim. Moderation and sign-in commands
//! (`kick`, `ban`, `delete`, `auth`) carry exactly what their JSON said,
//! and so do the message commands (`edit`, `retract`, `react`, `search`),
//! within their limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::chat::command::{Command, parse};

const CODES: [&str; 2] = ["bad_json", "bad_command"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(Command::Chat {
            text: said,
            room,
            reply,
        }) => {
            // Either not an object at all, or a JSON object with type chat.
            let trimmed = text.trim();
            if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
                assert_eq!(said, text, "plain text must pass through verbatim");
                assert_eq!(room, None, "plain text goes to the current room");
                assert_eq!(reply, None, "plain text answers nothing");
            } else if let Some(room) = room {
                let value: serde_json::Value = serde_json::from_str(trimmed).expect("JSON");
                assert_eq!(value["room"].as_str(), Some(room.as_str()));
            }
        }
        Ok(command) => {
            let value: serde_json::Value =
                serde_json::from_str(text.trim()).expect("a command was valid JSON");
            assert!(value.get("type").is_some_and(|t| t.is_string()));
            // Moderation commands carry whole numbers; a ban lasts a minute at least.
            match command {
                Command::Kick { user } => assert_eq!(value["user"].as_u64(), Some(user)),
                Command::Ban { user, minutes } => {
                    assert_eq!(value["user"].as_u64(), Some(user));
                    assert!(minutes >= 1);
                }
                Command::Delete { id } => assert_eq!(value["id"].as_u64(), Some(id)),
                Command::Auth { token } => {
                    assert_eq!(value["token"].as_str(), Some(token.as_str()))
                }
                // Rooms: the names and flags their JSON said.
                Command::Join { room, also } => {
                    assert_eq!(value["room"].as_str(), Some(room.as_str()));
                    assert_eq!(value["also"].as_bool().unwrap_or(false), also);
                }
                Command::Leave { room } => assert_eq!(value["room"].as_str(), room.as_deref()),
                Command::Typing { room, .. } => assert_eq!(value["room"].as_str(), room.as_deref()),
                // Messages: ids and texts as their JSON said, within their limits.
                Command::Edit { id, text: new } => {
                    assert_eq!(value["id"].as_u64(), Some(id));
                    assert_eq!(value["text"].as_str(), Some(new.as_str()));
                }
                Command::Retract { id } => assert_eq!(value["id"].as_u64(), Some(id)),
                Command::React { id, emoji } => {
                    assert_eq!(value["id"].as_u64(), Some(id));
                    assert_eq!(value["emoji"].as_str(), Some(emoji.as_str()));
                    assert!(!emoji.is_empty() && emoji.len() <= wschat::chat::MAX_EMOJI_BYTES);
                    assert!(!emoji.chars().any(|c| c.is_control() || c.is_whitespace()));
                }
                Command::Search {
                    text: query,
                    room,
                    with,
                    before,
                    limit,
                } => {
                    assert_eq!(value["text"].as_str().map(str::trim), Some(query.as_str()));
                    let chars = query.chars().count();
                    assert!(chars >= 1 && chars <= wschat::chat::MAX_QUERY_CHARS);
                    assert_eq!(value["with"].as_u64(), with);
                    assert_eq!(value["before"].as_u64(), before);
                    assert_eq!(value["limit"].as_u64(), limit);
                    if with.is_none() {
                        assert_eq!(value["room"].as_str(), room.as_deref());
                    } else {
                        assert_eq!(room, None, "a private search names no room");
                    }
                }
                Command::Other { kind, .. } => {
                    for typed in [
                        "chat", "edit", "retract", "react", "search", "join", "leave",
                    ] {
                        assert_ne!(kind, typed, "{typed} has a typed command");
                    }
                }
                _ => {}
            }
        }
        Err(e) => {
            assert!(CODES.contains(&e.code), "undocumented code {}", e.code);
            let rendered: serde_json::Value =
                serde_json::from_str(&e.to_json()).expect("error is JSON");
            assert_eq!(rendered["type"], "error");
            assert_eq!(rendered["code"], e.code);
        }
    }
});
