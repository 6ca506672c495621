//! What a chat client may say: the parser from a text message to a
//! [`Command`], or an [`ErrorReply`] that keeps the connection open.
//!
//! The rule (docs/chat-protocol.md): a text that is not a JSON object is a
//! chat message, so the seeds' clients, which send plain strings, work
//! unchanged. A JSON object with a `"type"` is a command. Text that starts
//! with `{`, ends with `}` and is not valid JSON is answered `bad_json`.

use serde_json::{Map, Value};

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Say `text` in `room`, or in the current room.
    Chat {
        /// The text, verbatim.
        text: String,
        /// One of the user's rooms (none: the current one).
        room: Option<String>,
        /// The id of the message it answers.
        reply: Option<u64>,
    },
    /// Take a new name.
    Name {
        /// The name asked for (validated by the chat).
        name: String,
    },
    /// Move to a room, or with `also`, enter it as well as the rooms the
    /// user is in; either way it becomes the current room.
    Join {
        /// The room's name.
        room: String,
        /// Keep the other rooms.
        also: bool,
    },
    /// Leave `room` (none: the current room, back to the lobby).
    Leave {
        /// The room to leave.
        room: Option<String>,
    },
    /// The member list of the current room, from `offset`.
    Users {
        /// The first member to list.
        offset: usize,
    },
    /// A message to one user.
    Private {
        /// The addressee's user id.
        to: u64,
        /// The text.
        text: String,
    },
    /// Typing started (or stopped).
    Typing {
        /// Whether the user is typing.
        active: bool,
        /// In which of the user's rooms (none: the current one).
        room: Option<String>,
    },
    /// Sign in with a token (a JWT from the site): becomes that user.
    Auth {
        /// The token, as the site minted it.
        token: String,
    },
    /// An administrator closes every connection of a user (4003).
    Kick {
        /// The user's id.
        user: u64,
    },
    /// An administrator closes a user's connections and refuses the user
    /// (its `sub`, or its session) for a while.
    Ban {
        /// The user's id.
        user: u64,
        /// For how long, in minutes (at least 1).
        minutes: u64,
    },
    /// An administrator deletes a message: the room is told, and its text
    /// never comes back.
    Delete {
        /// The message's id.
        id: u64,
    },
    /// The author changes the text of one of their room messages.
    Edit {
        /// The message's id.
        id: u64,
        /// The new text (checked against the chat's text limit by the chat).
        text: String,
    },
    /// The author deletes one of their room messages.
    Retract {
        /// The message's id.
        id: u64,
    },
    /// Add the user's reaction to a message, or take it back.
    React {
        /// The message's id.
        id: u64,
        /// 1-[`MAX_EMOJI_BYTES`](super::MAX_EMOJI_BYTES) bytes, no control
        /// characters or spaces.
        emoji: String,
    },
    /// Search a room's history or a private conversation.
    Search {
        /// What to look for: trimmed, 1-[`MAX_QUERY_CHARS`](super::MAX_QUERY_CHARS)
        /// characters.
        text: String,
        /// The room (none: the current one), unless `with` is given.
        room: Option<String>,
        /// The other user of a private conversation.
        with: Option<u64>,
        /// Search messages older than this id.
        before: Option<u64>,
        /// At most this many results (the chat bounds it).
        limit: Option<u64>,
    },
    /// A command the desk or another app understands: its type and body.
    Other {
        /// The `type` field.
        kind: String,
        /// The whole object.
        body: Map<String, Value>,
    },
}

/// A recoverable mistake, sent back as `{"type":"error","code","message"}`
/// (the hub's shape, shared with the desk and the server's rate limit).
pub use crate::hub::ErrorReply;

/// Parse one text message from a client.
///
/// ```
/// use wschat::chat::command::{parse, Command};
/// assert_eq!(parse("你好"), Ok(Command::Chat { text: "你好".into(), room: None, reply: None }));
/// assert_eq!(parse(r#"{"type":"join","room":"rust"}"#), Ok(Command::Join { room: "rust".into(), also: false }));
/// assert_eq!(parse(r#"{"type":"join","room":"go","also":true}"#), Ok(Command::Join { room: "go".into(), also: true }));
/// assert_eq!(parse(r#"{"type":"chat""#).unwrap(), Command::Chat { text: r#"{"type":"chat""#.into(), room: None, reply: None });
/// assert_eq!(parse(r#"{"type": oops}"#).unwrap_err().code, "bad_json");
/// ```
pub fn parse(text: &str) -> Result<Command, ErrorReply> {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return Ok(Command::Chat {
            text: text.to_string(),
            room: None,
            reply: None,
        });
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| {
        ErrorReply::new(
            "bad_json",
            format!("a message that looks like a JSON object must be one: {e}"),
        )
    })?;
    let Value::Object(body) = value else {
        return Ok(Command::Chat {
            text: text.to_string(),
            room: None,
            reply: None,
        });
    };
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(ErrorReply::new("bad_command", "\"type\" must be a string")),
        None => {
            return Err(ErrorReply::new(
                "bad_command",
                "a JSON command needs a \"type\"",
            ));
        }
    };
    let string = |field: &str| -> Result<String, ErrorReply> {
        match body.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ErrorReply::new(
                "bad_command",
                format!("\"{field}\" must be a string"),
            )),
            None => Err(ErrorReply::new(
                "bad_command",
                format!("{kind} needs \"{field}\""),
            )),
        }
    };
    let optional = |field: &str| -> Result<Option<String>, ErrorReply> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ErrorReply::new(
                "bad_command",
                format!("\"{field}\" must be a string"),
            )),
        }
    };
    let number = |field: &str| -> Result<u64, ErrorReply> {
        body.get(field).and_then(Value::as_u64).ok_or_else(|| {
            ErrorReply::new(
                "bad_command",
                format!("{kind} needs \"{field}\", a whole number"),
            )
        })
    };
    Ok(match kind.as_str() {
        "chat" => Command::Chat {
            text: string("text")?,
            room: optional("room")?,
            reply: match body.get("reply") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    ErrorReply::new("bad_command", "\"reply\" must be a message id")
                })?),
            },
        },
        "name" => Command::Name {
            name: string("name")?,
        },
        "join" => Command::Join {
            room: string("room")?,
            also: match body.get("also") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ErrorReply::new(
                        "bad_command",
                        "\"also\" must be true or false",
                    ));
                }
            },
        },
        "leave" => Command::Leave {
            room: optional("room")?,
        },
        "users" => Command::Users {
            offset: match body.get("offset") {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_u64()
                    .map(|n| n.min(usize::MAX as u64) as usize)
                    .ok_or_else(|| {
                        ErrorReply::new("bad_command", "\"offset\" must be a whole number")
                    })?,
            },
        },
        "auth" => Command::Auth {
            token: string("token")?,
        },
        "kick" => Command::Kick {
            user: number("user")?,
        },
        "ban" => Command::Ban {
            user: number("user")?,
            minutes: number("minutes")?.max(1),
        },
        "delete" => Command::Delete { id: number("id")? },
        "private" => Command::Private {
            to: body
                .get("to")
                .and_then(Value::as_u64)
                .ok_or_else(|| ErrorReply::new("bad_command", "private needs \"to\", a user id"))?,
            text: string("text")?,
        },
        "typing" => Command::Typing {
            room: optional("room")?,
            active: match body.get("active") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ErrorReply::new(
                        "bad_command",
                        "\"active\" must be true or false",
                    ));
                }
            },
        },
        "edit" => match (
            body.get("id").and_then(Value::as_u64),
            body.get("text").and_then(Value::as_str),
        ) {
            (Some(id), Some(text)) => Command::Edit {
                id,
                text: text.to_string(),
            },
            _ => {
                return Err(ErrorReply::new(
                    "bad_command",
                    "edit needs \"id\" (a message id) and \"text\"",
                ));
            }
        },
        "retract" => Command::Retract {
            id: body
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| ErrorReply::new("bad_command", "retract needs \"id\""))?,
        },
        "react" => {
            let (Some(id), Some(emoji)) = (
                body.get("id").and_then(Value::as_u64),
                body.get("emoji").and_then(Value::as_str),
            ) else {
                return Err(ErrorReply::new(
                    "bad_command",
                    "react needs \"id\" (a message id) and \"emoji\"",
                ));
            };
            let max = super::MAX_EMOJI_BYTES;
            if emoji.is_empty()
                || emoji.len() > max
                || emoji.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(ErrorReply::new(
                    "bad_command",
                    format!("an emoji is 1-{max} bytes without spaces"),
                ));
            }
            Command::React {
                id,
                emoji: emoji.to_string(),
            }
        }
        "search" => {
            let text = body
                .get("text")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            let max = super::MAX_QUERY_CHARS;
            if text.is_empty() || text.chars().count() > max {
                return Err(ErrorReply::new(
                    "bad_command",
                    format!("search needs \"text\", 1-{max} characters"),
                ));
            }
            let whole = |field: &str| match body.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    ErrorReply::new("bad_command", format!("\"{field}\" must be a whole number"))
                }),
            };
            let before = whole("before")?;
            let limit = whole("limit")?;
            let with =
                match body.get("with") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        ErrorReply::new("bad_command", "\"with\" must be a user id")
                    })?),
                };
            let room = match (with, body.get("room")) {
                (Some(_), _) | (None, None | Some(Value::Null)) => None,
                (None, Some(Value::String(r))) => Some(r.clone()),
                (None, Some(_)) => {
                    return Err(ErrorReply::new("bad_command", "\"room\" must be a string"));
                }
            };
            Command::Search {
                text: text.to_string(),
                room,
                with,
                before,
                limit,
            }
        }
        _ => Command::Other { kind, body },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_commands_are_typed_and_checked() {
        assert_eq!(
            parse(r#"{"type":"edit","id":7,"text":"fixed"}"#),
            Ok(Command::Edit {
                id: 7,
                text: "fixed".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"retract","id":7}"#),
            Ok(Command::Retract { id: 7 })
        );
        assert_eq!(
            parse(r#"{"type":"react","id":7,"emoji":"👍"}"#),
            Ok(Command::React {
                id: 7,
                emoji: "👍".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"search","text":" 天气 ","with":3,"room":"x","limit":5}"#),
            Ok(Command::Search {
                text: "天气".into(),
                room: None,
                with: Some(3),
                before: None,
                limit: Some(5),
            })
        );
        for bad in [
            r#"{"type":"edit","id":"7","text":"x"}"#,
            r#"{"type":"edit","id":7}"#,
            r#"{"type":"retract"}"#,
            r#"{"type":"react","id":7,"emoji":"a b"}"#,
            r#"{"type":"react","id":7,"emoji":""}"#,
            r#"{"type":"search","text":"   "}"#,
            r#"{"type":"search","text":"x","before":-1}"#,
            r#"{"type":"search","text":"x","room":5}"#,
            r#"{"type":"search","text":"x","with":"bob"}"#,
        ] {
            assert_eq!(parse(bad).map_err(|e| e.code), Err("bad_command"), "{bad}");
        }
        let long = format!(r#"{{"type":"react","id":1,"emoji":"{}"}}"#, "x".repeat(33));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn plain_text_and_non_objects_are_chat() {
        for text in [
            "hello",
            "  spaced  ",
            "[1,2]",
            "42",
            "\"quoted\"",
            "{not json",
            "}{",
            "",
        ] {
            assert_eq!(
                parse(text),
                Ok(Command::Chat {
                    text: text.to_string(),
                    room: None,
                    reply: None,
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn commands_and_their_errors() {
        assert_eq!(
            parse(r#"{"type":"chat","text":"hi"}"#),
            Ok(Command::Chat {
                text: "hi".into(),
                room: None,
                reply: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"chat","room":"rust","text":"hi"}"#),
            Ok(Command::Chat {
                text: "hi".into(),
                room: Some("rust".into()),
                reply: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"leave","room":"rust"}"#),
            Ok(Command::Leave {
                room: Some("rust".into())
            })
        );
        assert_eq!(
            parse(r#"{"type":"join","room":"x","also":1}"#)
                .unwrap_err()
                .code,
            "bad_command"
        );
        assert_eq!(
            parse(r#"{"type":"name","name":"小明"}"#),
            Ok(Command::Name {
                name: "小明".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"leave"}"#),
            Ok(Command::Leave { room: None })
        );
        assert_eq!(
            parse(r#"{"type":"users"}"#),
            Ok(Command::Users { offset: 0 })
        );
        assert_eq!(
            parse(r#"{"type":"users","offset":100}"#),
            Ok(Command::Users { offset: 100 })
        );
        assert_eq!(
            parse(r#"{"type":"private","to":2,"text":"x"}"#),
            Ok(Command::Private {
                to: 2,
                text: "x".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"typing"}"#),
            Ok(Command::Typing {
                active: true,
                room: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"typing","active":false}"#),
            Ok(Command::Typing {
                active: false,
                room: None
            })
        );
        assert!(matches!(
            parse(r#"{"type":"nope"}"#),
            Ok(Command::Other { .. })
        ));
        assert_eq!(
            parse(r#"{"text":"no type"}"#).unwrap_err().code,
            "bad_command"
        );
        assert_eq!(parse(r#"{"type":3}"#).unwrap_err().code, "bad_command");
        assert_eq!(parse(r#"{"type":"chat"}"#).unwrap_err().code, "bad_command");
        assert_eq!(
            parse(r#"{"type":"chat","text":5}"#).unwrap_err().code,
            "bad_command"
        );
        assert_eq!(
            parse(r#"{"type":"private","to":"x","text":"y"}"#)
                .unwrap_err()
                .code,
            "bad_command"
        );
        assert_eq!(
            parse(r#"{"type":"users","offset":-1}"#).unwrap_err().code,
            "bad_command"
        );
        assert_eq!(parse(r#"{"type": oops}"#).unwrap_err().code, "bad_json");
    }
}
