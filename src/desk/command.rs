//! What a desk client may say: the parsers from a visitor's or an agent's
//! text message to a typed [`VisitorCommand`] or [`AgentCommand`], or an
//! [`ErrorReply`] that keeps the connection open (docs/customer-service.md,
//! "Visitor → server" and "Agent → server"), as `chat::command` does for
//! the chat.
//!
//! The rule: a text that is not a JSON object is a `message` with the text
//! verbatim; a JSON object needs a string `"type"`. The shapes and limits
//! are checked here (texts, ratings, comments, names, addresses, notes), so
//! a command that parses is within them; what depends on the desk's state
//! (whose conversation it is, whether it is resolved) is the desk's to
//! check afterwards.

use serde_json::{Map, Value};

use super::{MAX_COMMENT_CHARS, MAX_NOTE_CHARS, RATINGS};
use crate::hub::ErrorReply;

/// The limits the parsers check that are settings rather than constants.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest message, in UTF-8 bytes (`--max-text-bytes`).
    pub max_text_bytes: usize,
}

impl Default for Limits {
    /// The server's defaults.
    fn default() -> Limits {
        Limits {
            max_text_bytes: crate::chat::DEFAULT_MAX_TEXT_BYTES,
        }
    }
}

/// What a visitor asks of the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorCommand {
    /// Write in the open conversation, or open one: not blank, at most
    /// [`Limits::max_text_bytes`].
    Message {
        /// The text, verbatim.
        text: String,
    },
    /// The pre-chat form: a name (valid as a chat name) and an address
    /// (plausible, at most [`MAX_EMAIL_BYTES`](super::MAX_EMAIL_BYTES)),
    /// either or both; blank ones are none.
    Contact {
        /// The name, trimmed.
        name: Option<String>,
        /// The address, trimmed.
        email: Option<String>,
    },
    /// End the open conversation.
    End,
    /// The visitor is typing (or stopped).
    Typing {
        /// Whether it is typing (`true` when not said).
        active: bool,
    },
    /// Rate the resolved conversation.
    Rate {
        /// 1-5 ([`RATINGS`]).
        rating: u64,
        /// The comment, trimmed, not blank, at most [`MAX_COMMENT_CHARS`]
        /// characters.
        comment: Option<String>,
    },
    /// Sign in with the site's token after arriving anonymously.
    Auth {
        /// The token, as sent (empty when missing: refused by the desk).
        token: String,
    },
}

/// What a signed-in agent asks of the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Online, or away (no new conversations).
    Presence {
        /// Away.
        away: bool,
    },
    /// Take a waiting conversation from the queue.
    Claim {
        /// The conversation (none: not a whole number).
        conversation: Option<u64>,
    },
    /// A supervisor gives a conversation to an agent, or back to the queue.
    Reassign {
        /// The conversation.
        conversation: Option<u64>,
        /// The agent (none: the queue).
        to: Option<String>,
        /// The note, cut to [`MAX_NOTE_CHARS`] characters.
        note: String,
    },
    /// Add (or replace) a team canned reply (checked by `canned::add`).
    CannedAdd {
        /// Its shortcut.
        shortcut: String,
        /// Its text.
        text: String,
    },
    /// Remove a team canned reply.
    CannedRemove {
        /// Its shortcut.
        shortcut: String,
    },
    /// The visitor's contact and earlier conversations.
    Visitor {
        /// The conversation.
        conversation: Option<u64>,
    },
    /// Write in a conversation: not blank, at most
    /// [`Limits::max_text_bytes`].
    Message {
        /// The conversation.
        conversation: Option<u64>,
        /// The text, verbatim.
        text: String,
    },
    /// The agent is typing (or stopped).
    Typing {
        /// The conversation.
        conversation: Option<u64>,
        /// Whether it is typing (`true` when not said).
        active: bool,
    },
    /// Hand a conversation to another agent, or back to the queue.
    Transfer {
        /// The conversation.
        conversation: Option<u64>,
        /// The agent (none: the queue).
        to: Option<String>,
        /// The note, cut to [`MAX_NOTE_CHARS`] characters.
        note: String,
    },
    /// Close a conversation.
    Resolve {
        /// The conversation.
        conversation: Option<u64>,
    },
}

/// Every error code the parsers give (docs/customer-service.md, "Errors").
pub const CODES: [&str; 8] = [
    "bad_json",
    "bad_command",
    "unknown_type",
    "empty",
    "text_too_long",
    "bad_name",
    "bad_email",
    "bad_rating",
];

/// A text as a JSON object with a string `"type"`, or plain text as a
/// `message` with the text verbatim.
pub(super) fn object(text: &str) -> Result<Map<String, Value>, ErrorReply> {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        let mut body = Map::new();
        body.insert("type".into(), "message".into());
        body.insert("text".into(), text.into());
        return Ok(body);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(body)) if body.get("type").is_some_and(Value::is_string) => Ok(body),
        Ok(_) => Err(ErrorReply::new(
            "bad_command",
            "a command is a JSON object with a \"type\"",
        )),
        Err(e) => Err(ErrorReply::new("bad_json", format!("not valid JSON: {e}"))),
    }
}

fn kind(body: &Map<String, Value>) -> &str {
    body.get("type").and_then(Value::as_str).unwrap_or("")
}

fn unknown(kind: &str) -> ErrorReply {
    ErrorReply::new("unknown_type", format!("unknown message type {kind:?}"))
}

/// A message's `text`: a string, not blank, at most `limits.max_text_bytes`.
fn message_text(body: &Map<String, Value>, limits: Limits) -> Result<String, ErrorReply> {
    let Some(text) = body.get("text").and_then(Value::as_str) else {
        return Err(ErrorReply::new("bad_command", "\"text\" must be a string"));
    };
    if text.trim().is_empty() {
        return Err(ErrorReply::new("empty", "the message is empty"));
    }
    if text.len() > limits.max_text_bytes {
        return Err(ErrorReply::new(
            "text_too_long",
            format!("a message has at most {} bytes", limits.max_text_bytes),
        ));
    }
    Ok(text.to_string())
}

fn conversation(body: &Map<String, Value>) -> Option<u64> {
    body.get("conversation").and_then(Value::as_u64)
}

fn active(body: &Map<String, Value>) -> bool {
    body.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// A transfer's `to` (an agent's name, or null/absent: the queue) and
/// `note` (cut to [`MAX_NOTE_CHARS`] characters; not text: none).
fn handover(body: &Map<String, Value>) -> Result<(Option<String>, String), ErrorReply> {
    let to = match body.get("to") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => {
            return Err(ErrorReply::new(
                "bad_command",
                "\"to\" is an agent's name or null",
            ));
        }
    };
    let note = body
        .get("note")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(MAX_NOTE_CHARS)
        .collect();
    Ok((to, note))
}

/// Parse one text message from a visitor.
///
/// ```
/// use wschat::desk::command::{parse_visitor, Limits, VisitorCommand};
/// let limits = Limits::default();
/// assert_eq!(parse_visitor("你好", limits), Ok(VisitorCommand::Message { text: "你好".into() }));
/// assert_eq!(
///     parse_visitor(r#"{"type":"rate","rating":4,"comment":" quick "}"#, limits),
///     Ok(VisitorCommand::Rate { rating: 4, comment: Some("quick".into()) })
/// );
/// assert_eq!(parse_visitor(r#"{"type":"rate","rating":9}"#, limits).unwrap_err().code, "bad_rating");
/// assert_eq!(parse_visitor(r#"{"type":"end"}"#, limits), Ok(VisitorCommand::End));
/// assert_eq!(parse_visitor("{nope}", limits).unwrap_err().code, "bad_json");
/// ```
pub fn parse_visitor(text: &str, limits: Limits) -> Result<VisitorCommand, ErrorReply> {
    let body = object(text)?;
    Ok(match kind(&body) {
        "message" => VisitorCommand::Message {
            text: message_text(&body, limits)?,
        },
        "contact" => {
            let name = match body.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) if n.trim().is_empty() => None,
                Some(Value::String(n)) => {
                    Some(crate::chat::valid_name(n).map_err(|e| ErrorReply::new("bad_name", e))?)
                }
                Some(_) => return Err(ErrorReply::new("bad_name", "\"name\" is text")),
            };
            let email = match body.get("email") {
                None | Some(Value::Null) => None,
                Some(Value::String(e)) if e.trim().is_empty() => None,
                Some(Value::String(e)) if plausible_email(e.trim()) => Some(e.trim().to_string()),
                Some(_) => {
                    return Err(ErrorReply::new(
                        "bad_email",
                        "that does not look like an e-mail address",
                    ));
                }
            };
            VisitorCommand::Contact { name, email }
        }
        "end" => VisitorCommand::End,
        "typing" => VisitorCommand::Typing {
            active: active(&body),
        },
        "rate" => {
            let Some(rating) = body
                .get("rating")
                .and_then(Value::as_u64)
                .filter(|r| RATINGS.contains(r))
            else {
                return Err(ErrorReply::new(
                    "bad_rating",
                    "a rating is a whole number 1-5",
                ));
            };
            let comment = match body.get("comment") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if c.chars().count() <= MAX_COMMENT_CHARS => {
                    Some(c.trim().to_string()).filter(|c| !c.is_empty())
                }
                Some(_) => {
                    return Err(ErrorReply::new(
                        "bad_rating",
                        format!("a comment is text of at most {MAX_COMMENT_CHARS} characters"),
                    ));
                }
            };
            VisitorCommand::Rate { rating, comment }
        }
        "auth" => VisitorCommand::Auth {
            token: body
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        },
        other => return Err(unknown(other)),
    })
}

/// Parse one text message from a signed-in agent.
///
/// ```
/// use wschat::desk::command::{parse_agent, AgentCommand, Limits};
/// let limits = Limits::default();
/// assert_eq!(
///     parse_agent(r#"{"type":"transfer","conversation":7,"to":null,"note":"billing"}"#, limits),
///     Ok(AgentCommand::Transfer { conversation: Some(7), to: None, note: "billing".into() })
/// );
/// assert_eq!(
///     parse_agent(r#"{"type":"presence","status":"away"}"#, limits),
///     Ok(AgentCommand::Presence { away: true })
/// );
/// assert_eq!(parse_agent(r#"{"type":"presence","status":"busy"}"#, limits).unwrap_err().code, "bad_command");
/// assert_eq!(parse_agent(r#"{"type":"dance"}"#, limits).unwrap_err().code, "unknown_type");
/// ```
pub fn parse_agent(text: &str, limits: Limits) -> Result<AgentCommand, ErrorReply> {
    let body = object(text)?;
    let string = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(match kind(&body) {
        "presence" => AgentCommand::Presence {
            away: match body.get("status").and_then(Value::as_str) {
                Some("away") => true,
                Some("online") => false,
                _ => {
                    return Err(ErrorReply::new(
                        "bad_command",
                        "\"status\" is online or away",
                    ));
                }
            },
        },
        "claim" => AgentCommand::Claim {
            conversation: conversation(&body),
        },
        "reassign" => {
            let (to, note) = handover(&body)?;
            AgentCommand::Reassign {
                conversation: conversation(&body),
                to,
                note,
            }
        }
        "canned_add" => AgentCommand::CannedAdd {
            shortcut: string("shortcut"),
            text: string("text"),
        },
        "canned_remove" => AgentCommand::CannedRemove {
            shortcut: string("shortcut"),
        },
        "visitor" => AgentCommand::Visitor {
            conversation: conversation(&body),
        },
        "message" => AgentCommand::Message {
            conversation: conversation(&body),
            text: message_text(&body, limits)?,
        },
        "typing" => AgentCommand::Typing {
            conversation: conversation(&body),
            active: active(&body),
        },
        "transfer" => {
            let (to, note) = handover(&body)?;
            AgentCommand::Transfer {
                conversation: conversation(&body),
                to,
                note,
            }
        }
        "resolve" => AgentCommand::Resolve {
            conversation: conversation(&body),
        },
        other => return Err(unknown(other)),
    })
}

/// Whether `email` looks like an address: one `@` with text on both
/// sides, a dot in the domain, no spaces or controls, at most
/// [`MAX_EMAIL_BYTES`](super::MAX_EMAIL_BYTES).
pub fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= super::MAX_EMAIL_BYTES
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_a_message_and_limits_hold() {
        let l = Limits { max_text_bytes: 8 };
        assert_eq!(
            parse_visitor("hi there", l),
            Ok(VisitorCommand::Message {
                text: "hi there".into()
            })
        );
        assert_eq!(
            parse_visitor("好好好", l).unwrap_err().code,
            "text_too_long"
        );
        assert_eq!(parse_visitor("   ", l).unwrap_err().code, "empty");
        assert_eq!(
            parse_agent("hello", l),
            Ok(AgentCommand::Message {
                conversation: None,
                text: "hello".into()
            })
        );
        let note = "n".repeat(MAX_NOTE_CHARS + 9);
        let t = format!(r#"{{"type":"reassign","conversation":3,"to":"bob","note":"{note}"}}"#);
        let Ok(AgentCommand::Reassign { note, .. }) = parse_agent(&t, l) else {
            panic!("a reassignment");
        };
        assert_eq!(note.chars().count(), MAX_NOTE_CHARS);
        assert_eq!(
            parse_agent(r#"{"type":"transfer","to":5}"#, l)
                .unwrap_err()
                .code,
            "bad_command"
        );
        let long = "好".repeat(MAX_COMMENT_CHARS + 1);
        let t = format!(r#"{{"type":"rate","rating":3,"comment":"{long}"}}"#);
        assert_eq!(parse_visitor(&t, l).unwrap_err().code, "bad_rating");
        assert_eq!(
            parse_visitor(r#"{"type":"contact","email":"nope"}"#, l)
                .unwrap_err()
                .code,
            "bad_email"
        );
        assert_eq!(
            parse_visitor(r#"{"type":"contact","name":" Ann ","email":""}"#, l),
            Ok(VisitorCommand::Contact {
                name: Some("Ann".into()),
                email: None
            })
        );
        assert_eq!(
            parse_visitor(r#"{"kind":1}"#, l).unwrap_err().code,
            "bad_command"
        );
    }
}
