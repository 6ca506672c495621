//! `desk_command`: arbitrary text as a visitor's or an agent's desk message.
//!
//! The first byte picks who says it (even: a visitor, odd: an agent) and
//! the message-size limit (`--max-text-bytes`, 1-256 bytes or the default);
//! the rest is the text. `desk::command::parse_visitor` and `parse_agent`
//! return a typed command or an error, never panic. An error carries one of
//! the documented codes and renders as a JSON object. A command that parses
//! is within its limits: a message's text is not blank and at most the
//! limit, a rating is 1-5 and its comment at most `MAX_COMMENT_CHARS`
//! characters and not blank, a name is a valid chat name, an address is
//! plausible (at most `MAX_EMAIL_BYTES`), a note at most `MAX_NOTE_CHARS`
//! characters; a text that is not a JSON object is a message, verbatim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::desk::command::{
    AgentCommand, CODES, Limits, VisitorCommand, parse_agent, parse_visitor,
};
use wschat::desk::{MAX_COMMENT_CHARS, MAX_EMAIL_BYTES, MAX_NOTE_CHARS};

fn message_ok(text: &str, limits: Limits) {
    assert!(!text.trim().is_empty(), "a blank message parsed");
    assert!(
        text.len() <= limits.max_text_bytes,
        "{} bytes over {}",
        text.len(),
        limits.max_text_bytes
    );
}

fn error_ok(e: &wschat::hub::ErrorReply) {
    assert!(CODES.contains(&e.code), "undocumented code {}", e.code);
    let rendered: serde_json::Value = serde_json::from_str(&e.to_json()).expect("error is JSON");
    assert_eq!(rendered["type"], "error");
    assert_eq!(rendered["code"], e.code);
}

fn is_object(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('{') && t.ends_with('}')
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let limits = match first >> 1 {
        0 => Limits::default(),
        n => Limits {
            max_text_bytes: usize::from(n) * 2,
        },
    };
    if first & 1 == 0 {
        match parse_visitor(text, limits) {
            Ok(VisitorCommand::Message { text: said }) => {
                message_ok(&said, limits);
                if !is_object(text) {
                    assert_eq!(said, text, "plain text passes through verbatim");
                }
            }
            Ok(VisitorCommand::Contact { name, email }) => {
                if let Some(name) = name {
                    assert_eq!(
                        wschat::chat::valid_name(&name).as_deref(),
                        Ok(name.as_str())
                    );
                }
                if let Some(email) = email {
                    assert!(email.len() <= MAX_EMAIL_BYTES && email.contains('@'));
                    assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
                }
            }
            Ok(VisitorCommand::Rate { rating, comment }) => {
                assert!((1..=5).contains(&rating));
                if let Some(c) = comment {
                    assert!(!c.is_empty() && c.chars().count() <= MAX_COMMENT_CHARS);
                    assert_eq!(c.trim(), c);
                }
            }
            Ok(_) => assert!(is_object(text), "only a JSON object is another command"),
            Err(e) => error_ok(&e),
        }
    } else {
        match parse_agent(text, limits) {
            Ok(AgentCommand::Message {
                text: said,
                conversation,
            }) => {
                message_ok(&said, limits);
                if !is_object(text) {
                    assert_eq!(said, text, "plain text passes through verbatim");
                    assert_eq!(conversation, None, "plain text names no conversation");
                }
            }
            Ok(AgentCommand::Transfer { note, .. } | AgentCommand::Reassign { note, .. }) => {
                assert!(note.chars().count() <= MAX_NOTE_CHARS);
            }
            Ok(_) => assert!(is_object(text), "only a JSON object is another command"),
            Err(e) => error_ok(&e),
        }
    }
});
