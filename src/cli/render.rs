//! Chat mode's view of the chat protocol (docs/chat-protocol.md): what the
//! server says, turned into lines a person reads, and what the client
//! remembers from it (who it is, the session to come back with, the last
//! message id seen, the room's members).
//!
//! Nothing here touches a socket or a terminal: [`ChatState::render`]
//! takes one server text and returns [`Line`]s, which the caller prints
//! (dimming notices on a terminal). Any input is accepted: a text that is
//! not the JSON the protocol describes is shown as it is, never a panic.

use serde_json::Value;

/// One line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text, without a line break at its end; control characters of
    /// the server's text are already made harmless ([`clean`]).
    pub text: String,
    /// A notice (joins, leaves, renames, errors, the client's own
    /// remarks): dimmed on a terminal.
    pub notice: bool,
}

impl Line {
    /// A chat line.
    pub fn chat(text: String) -> Line {
        Line {
            text,
            notice: false,
        }
    }

    /// A notice line, `* ` in front.
    pub fn notice(text: impl AsRef<str>) -> Line {
        Line {
            text: format!("* {}", text.as_ref()),
            notice: true,
        }
    }
}

/// A user as the protocol names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `user.id`.
    pub id: u64,
    /// `user.name`.
    pub name: String,
}

/// What the client knows of its chat, learnt from what the server sent.
#[derive(Debug, Clone, Default)]
pub struct ChatState {
    /// Who we are, from the last `welcome` (and our own `rename`s).
    pub me: Option<User>,
    /// The room we are in.
    pub room: Option<String>,
    /// The `session` of the last `welcome`, to reconnect as the same user.
    pub session: Option<String>,
    /// The highest message id seen (chat and private), for `?since=`.
    pub last_id: Option<u64>,
    /// Ids of the messages shown lately (the last [`SEEN_KEPT`]), so that
    /// a resume that overlaps what was shown prints nothing twice.
    pub seen: std::collections::BTreeSet<u64>,
    /// The members of the last `users` list (a page of it, in a crowd).
    pub users: Vec<User>,
    /// A `/msg` waiting for the `found` that names its addressee.
    pub pending_private: Option<(String, String)>,
    /// Local time's offset from UTC, in seconds, for `HH:MM`; `None` asks
    /// the system for each message (daylight saving may change it).
    pub utc_offset: Option<i64>,
}

/// How many message ids [`ChatState::seen`] keeps.
pub const SEEN_KEPT: usize = 2000;

/// What the caller should do besides printing, after a server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send this text (a command) to the server.
    Send(String),
}

impl ChatState {
    /// Take in one text message from the server: the lines to print and
    /// anything to send back (a `/msg` resolved by `found`).
    pub fn render(&mut self, text: &str) -> (Vec<Line>, Vec<Reply>) {
        let mut lines = Vec::new();
        let mut replies = Vec::new();
        let value: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                lines.push(Line::chat(clean(text)));
                return (lines, replies);
            }
        };
        match value["type"].as_str().unwrap_or("") {
            "welcome" => {
                let user = user(&value["user"]);
                let room = value["room"].as_str().map(str::to_string);
                if let Some(session) = value["session"].as_str() {
                    self.session = Some(session.to_string());
                }
                let name = user.as_ref().map_or("?".to_string(), |u| clean(&u.name));
                let verified = if value["user"]["verified"] == true {
                    " (signed in)"
                } else {
                    ""
                };
                let room_text = room.as_deref().map(clean).unwrap_or_default();
                lines.push(Line::notice(format!(
                    "you are {name}{verified} in #{room_text}"
                )));
                self.me = user;
                self.room = room;
            }
            "users" => {
                let users: Vec<User> = value["users"]
                    .as_array()
                    .map(|list| list.iter().filter_map(user).collect())
                    .unwrap_or_default();
                let count = value["count"].as_u64().unwrap_or(users.len() as u64);
                let room = clean(value["room"].as_str().unwrap_or("?"));
                const SHOWN: usize = 20;
                let mut names: Vec<String> =
                    users.iter().take(SHOWN).map(|u| clean(&u.name)).collect();
                if (count as usize) > names.len() {
                    names.push(format!("… {} more", count as usize - names.len()));
                }
                lines.push(Line::notice(format!(
                    "{count} in #{room}: {}",
                    names.join(", ")
                )));
                self.users = users;
                if let Some(room) = value["room"].as_str() {
                    self.room = Some(room.to_string());
                }
            }
            kind @ ("history" | "resume" | "private_history") => {
                if value["complete"] == false {
                    let first = value["first"]
                        .as_u64()
                        .map(|id| format!(" (whole from message {id} on)"))
                        .unwrap_or_default();
                    lines.push(Line::notice(format!(
                        "some earlier messages are no longer kept{first}"
                    )));
                }
                let messages = value["messages"].as_array().cloned().unwrap_or_default();
                // A resume after a reconnect may overlap what was shown:
                // nothing is printed twice. A page of older history asked
                // for is shown whole.
                for m in &messages {
                    if kind == "resume" && self.was_seen(m) {
                        continue;
                    }
                    lines.extend(self.message(m));
                }
            }
            "chat" | "private" => {
                if self.was_seen(&value) {
                    // Shown already (a resume raced a live message).
                    return (lines, replies);
                }
                lines.extend(self.message(&value));
            }
            "join" | "leave" => {
                let names = names(&value["users"]);
                let room = clean(value["room"].as_str().unwrap_or("?"));
                let verb = if value["type"] == "join" {
                    "joined"
                } else {
                    "left"
                };
                let count = value["count"]
                    .as_u64()
                    .map(|n| format!(" ({n} here)"))
                    .unwrap_or_default();
                lines.push(Line::notice(format!("{names} {verb} #{room}{count}")));
            }
            "presence" => {
                let room = clean(value["room"].as_str().unwrap_or("?"));
                let n = |k: &str| value[k].as_u64().unwrap_or(0);
                lines.push(Line::notice(format!(
                    "#{room}: {} here ({} came, {} left)",
                    n("count"),
                    n("joined"),
                    n("left")
                )));
            }
            "rename" => {
                let renamed = user(&value["user"]);
                let old = clean(value["old"].as_str().unwrap_or("?"));
                let new = renamed.as_ref().map_or("?".to_string(), |u| clean(&u.name));
                if let (Some(me), Some(renamed)) = (&mut self.me, &renamed)
                    && me.id == renamed.id
                {
                    me.name = renamed.name.clone();
                }
                if let Some(renamed) = renamed
                    && let Some(u) = self.users.iter_mut().find(|u| u.id == renamed.id)
                {
                    u.name = renamed.name;
                }
                lines.push(Line::notice(format!("{old} is now {new}")));
            }
            "error" => {
                let code = clean(value["code"].as_str().unwrap_or("error"));
                let message = clean(value["message"].as_str().unwrap_or(""));
                lines.push(Line::notice(format!("error {code}: {message}")));
                if code == "unknown_user" {
                    self.pending_private = None;
                }
            }
            "found" => {
                let found: Vec<User> = value["users"]
                    .as_array()
                    .map(|list| list.iter().filter_map(user).collect())
                    .unwrap_or_default();
                let asked = value["name"].as_str().unwrap_or("");
                match self.pending_private.take() {
                    Some((name, text)) if name == asked => {
                        let exact: Vec<&User> = found.iter().filter(|u| u.name == name).collect();
                        let only = match (exact.as_slice(), found.as_slice()) {
                            ([one], _) => Some(*one),
                            ([], [one]) => Some(one),
                            _ => None,
                        };
                        match only {
                            Some(to) => replies.push(Reply::Send(private_command(to.id, &text))),
                            None if found.is_empty() => lines.push(Line::notice(format!(
                                "nobody online is called {}: not sent",
                                clean(&name)
                            ))),
                            None => lines.push(Line::notice(format!(
                                "{} could be any of {}: not sent (say /msg with the full name)",
                                clean(&name),
                                user_list(&found)
                            ))),
                        }
                    }
                    other => {
                        self.pending_private = other;
                        lines.push(Line::notice(format!(
                            "online by {:?}: {}",
                            clean(asked),
                            if found.is_empty() {
                                "nobody".to_string()
                            } else {
                                user_list(&found)
                            }
                        )));
                    }
                }
            }
            "typing" => {}
            "deleted" => {
                let id = value["id"].as_u64().unwrap_or(0);
                lines.push(Line::notice(format!("message {id} was deleted")));
            }
            "rooms" => {
                let list = |key: &str| value[key].as_array().cloned().unwrap_or_default();
                let name = |r: &Value| clean(r["room"].as_str().unwrap_or("?"));
                let rooms: Vec<String> = list("rooms")
                    .iter()
                    .map(|r| format!("#{} ({})", name(r), r["members"].as_u64().unwrap_or(0)))
                    .collect();
                lines.push(Line::notice(format!("rooms: {}", rooms.join(", "))));
                let mine: Vec<String> = list("mine")
                    .iter()
                    .map(|r| match r["unread"].as_u64().unwrap_or(0) {
                        0 => format!("#{}", name(r)),
                        n => format!("#{} ({n} unread)", name(r)),
                    })
                    .collect();
                lines.push(Line::notice(format!("your rooms: {}", mine.join(", "))));
            }
            "privates" => {
                let list = value["conversations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if list.is_empty() {
                    lines.push(Line::notice("no private conversations"));
                }
                for c in &list {
                    let with = clean(c["with"]["name"].as_str().unwrap_or("?"));
                    let unread = c["unread"].as_u64().unwrap_or(0);
                    lines.push(Line::notice(format!(
                        "private with {with}: {unread} unread"
                    )));
                }
            }
            _ => lines.push(Line::chat(clean(text))),
        }
        (lines, replies)
    }

    fn was_seen(&self, m: &Value) -> bool {
        m["id"].as_u64().is_some_and(|id| self.seen.contains(&id))
    }

    /// The line of one `chat` or `private` message; remembers its id.
    fn message(&mut self, m: &Value) -> Vec<Line> {
        if !m.is_object() {
            return Vec::new();
        }
        if let Some(id) = m["id"].as_u64() {
            self.last_id = Some(self.last_id.map_or(id, |last| last.max(id)));
            self.seen.insert(id);
            while self.seen.len() > SEEN_KEPT {
                self.seen.pop_first();
            }
        }
        let time = m["time"]
            .as_u64()
            .map(|ms| hh_mm(ms, self.utc_offset))
            .unwrap_or_else(|| "--:--".into());
        let text = m["text"].as_str().unwrap_or("");
        if m["type"] == "private" {
            let from = clean(m["from"]["name"].as_str().unwrap_or("?"));
            let to = clean(m["to"]["name"].as_str().unwrap_or("?"));
            return vec![Line::chat(format!(
                "{time} [private] {from} → {to}: {}",
                clean(text)
            ))];
        }
        if m["type"] != "chat" {
            return vec![Line::chat(clean(&m.to_string()))];
        }
        let sender = user(&m["user"]);
        let name = clean(sender.as_ref().map_or("?", |u| u.name.as_str()));
        let mine = match (&sender, &self.me) {
            (Some(s), Some(me)) => s.id == me.id,
            _ => false,
        };
        let mark = if mine { " (you)" } else { "" };
        let bot = if m["user"]["bot"] == true {
            " [bot]"
        } else {
            ""
        };
        if let Some(action) = text.strip_prefix("/me ") {
            return vec![Line::chat(format!(
                "{time} * {name}{bot}{mark} {}",
                clean(action)
            ))];
        }
        vec![Line::chat(format!(
            "{time} {name}{bot}{mark}: {}",
            clean(text)
        ))]
    }

    /// A `/msg NAME TEXT`: the command to send now, or `None` when NAME is
    /// not in the last `users` list and a `find` went out instead (see
    /// [`ChatState::find_for_private`]).
    pub fn private_to(&self, name: &str, text: &str) -> Option<String> {
        let found: Vec<&User> = self.users.iter().filter(|u| u.name == name).collect();
        match found.as_slice() {
            [one] => Some(private_command(one.id, text)),
            _ => None,
        }
    }

    /// Remember a `/msg` whose addressee is not known yet; returns the
    /// `find` command to send.
    pub fn find_for_private(&mut self, name: &str, text: &str) -> String {
        self.pending_private = Some((name.to_string(), text.to_string()));
        crate::json::Object::new()
            .field("type", "find")
            .field("name", name)
            .finish()
    }
}

fn private_command(to: u64, text: &str) -> String {
    crate::json::Object::new()
        .field("type", "private")
        .field("to", to)
        .field("text", text)
        .finish()
}

fn user(v: &Value) -> Option<User> {
    Some(User {
        id: v["id"].as_u64()?,
        name: v["name"].as_str()?.to_string(),
    })
}

fn names(v: &Value) -> String {
    let names: Vec<String> = v
        .as_array()
        .map(|list| {
            list.iter()
                .map(|u| clean(u["name"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "someone".into()
    } else {
        names.join(", ")
    }
}

fn user_list(users: &[User]) -> String {
    users
        .iter()
        .map(|u| format!("{} (id {})", clean(&u.name), u.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `HH:MM` of `ms` (Unix epoch milliseconds) in local time: `offset`
/// seconds ahead of UTC, or the system's time zone when `None`.
///
/// ```
/// use wschat::cli::render::hh_mm;
/// assert_eq!(hh_mm(1_763_800_000_123, Some(0)), "08:26");
/// assert_eq!(hh_mm(1_763_800_000_123, Some(8 * 3600)), "16:26");
/// ```
pub fn hh_mm(ms: u64, offset: Option<i64>) -> String {
    let seconds = (ms / 1000) as i64;
    let offset = offset.unwrap_or_else(|| crate::sys::local_utc_offset(seconds));
    let minutes = (seconds + offset).rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Text from the server made safe for a terminal: control characters
/// (escape sequences that could move the cursor, clear the screen or
/// retitle the window) are shown as `^X` or `\u{…}`; line breaks become a
/// break and an indent, so a message's lines stay together.
///
/// ```
/// use wschat::cli::render::clean;
/// assert_eq!(clean("a\x1b[2Jb"), "a^[[2Jb");
/// assert_eq!(clean("one\ntwo"), "one\n    two");
/// assert_eq!(clean("你好"), "你好");
/// ```
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n    "),
            '\t' => out.push_str("    "),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push((b'@' + c as u8) as char);
            }
            '\u{7f}' => out.push_str("^?"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ChatState {
        ChatState {
            utc_offset: Some(0),
            ..ChatState::default()
        }
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn welcome_history_and_chat() {
        let mut s = state();
        let (lines, _) = s.render(
            r#"{"type":"welcome","user":{"id":1,"name":"ann"},"room":"lobby","session":"tok"}"#,
        );
        assert_eq!(texts(&lines), ["* you are ann in #lobby"]);
        assert_eq!(s.session.as_deref(), Some("tok"));
        let (lines, _) = s.render(
            r#"{"type":"history","room":"lobby","complete":true,"messages":[
            {"type":"chat","id":4,"room":"lobby","user":{"id":2,"name":"bob"},"text":"hi","time":60000},
            {"type":"chat","id":5,"room":"lobby","user":{"id":1,"name":"ann"},"text":"/me waves","time":120000}]}"#,
        );
        assert_eq!(texts(&lines), ["00:01 bob: hi", "00:02 * ann (you) waves"]);
        assert_eq!(s.last_id, Some(5));
        // A resume that overlaps prints only what is new.
        let (lines, _) = s.render(
            r#"{"type":"resume","room":"lobby","since":4,"complete":true,"messages":[
            {"type":"chat","id":5,"room":"lobby","user":{"id":1,"name":"ann"},"text":"x","time":0},
            {"type":"private","id":6,"from":{"id":2,"name":"bob"},"to":{"id":1,"name":"ann"},"text":"psst","time":0}]}"#,
        );
        assert_eq!(texts(&lines), ["00:00 [private] bob → ann: psst"]);
        assert_eq!(s.last_id, Some(6));
    }

    #[test]
    fn anything_at_all_is_shown_without_a_panic() {
        let mut s = state();
        for text in [
            "plain",
            "{}",
            "[]",
            "null",
            r#"{"type":5}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"history","messages":7}"#,
            r#"{"type":"users","users":[{"id":"x"}],"count":-1}"#,
            r#"{"type":"found","users":null}"#,
            r#"{"type":"rename","user":{}}"#,
            "{\"type\":\"chat\",\"text\":\"\\u001b[2J\",\"user\":{\"id\":1,\"name\":\"\\u0007\"},\"time\":1}",
        ] {
            let (lines, _) = s.render(text);
            for line in lines {
                assert!(!line.text.contains('\x1b'), "{text}: {line:?}");
            }
        }
    }

    #[test]
    fn msg_resolves_through_users_then_find() {
        let mut s = state();
        s.render(r#"{"type":"users","room":"lobby","count":2,"users":[{"id":1,"name":"ann"},{"id":2,"name":"bob"}]}"#);
        assert_eq!(
            s.private_to("bob", "hi").as_deref(),
            Some(r#"{"type":"private","to":2,"text":"hi"}"#)
        );
        assert_eq!(s.private_to("carol", "hi"), None);
        let find = s.find_for_private("carol", "hi");
        assert_eq!(find, r#"{"type":"find","name":"carol"}"#);
        let (lines, replies) =
            s.render(r#"{"type":"found","name":"carol","users":[{"id":7,"name":"carol"},{"id":8,"name":"carol2"}]}"#);
        assert!(lines.is_empty());
        assert_eq!(
            replies,
            [Reply::Send(
                r#"{"type":"private","to":7,"text":"hi"}"#.into()
            )]
        );
        s.find_for_private("dan", "yo");
        let (lines, replies) = s.render(
            r#"{"type":"found","name":"dan","users":[{"id":9,"name":"danny"},{"id":10,"name":"dana"}]}"#,
        );
        assert!(replies.is_empty());
        assert!(lines[0].text.contains("could be any of"), "{lines:?}");
    }
}
