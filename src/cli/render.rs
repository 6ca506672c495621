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
    /// The rooms we are in (`mine` of the last `rooms`): with more than
    /// one, every message line names its room.
    pub rooms: Vec<String>,
    /// Who wrote the messages shown lately (the ids of [`ChatState::seen`]),
    /// to name the author when a message is edited, reacted to or deleted.
    pub authors: std::collections::BTreeMap<u64, String>,
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
                let whose = self.whose(&value);
                let room = self.room_mark(&value);
                lines.push(Line::notice(format!("{room}{whose} was deleted")));
            }
            "edited" => {
                let whose = self.whose(&value);
                let room = self.room_mark(&value);
                let time = value["edited"]
                    .as_u64()
                    .map(|ms| format!("{} ", hh_mm(ms, self.utc_offset)))
                    .unwrap_or_default();
                let text = clean(value["text"].as_str().unwrap_or(""));
                lines.push(Line::notice(format!(
                    "{time}{room}{whose} was edited: {text}"
                )));
            }
            "reactions" => {
                let whose = self.whose(&value);
                let room = self.room_mark(&value);
                let now = match reactions(&value["reactions"]) {
                    r if r.is_empty() => "none".to_string(),
                    r => r,
                };
                lines.push(Line::notice(format!("{room}reactions to {whose}: {now}")));
            }
            "mention" => {
                let from = clean(value["from"]["name"].as_str().unwrap_or("?"));
                let room = clean(value["room"].as_str().unwrap_or("?"));
                let text = clean(value["text"].as_str().unwrap_or(""));
                lines.push(Line::chat(format!(
                    "[mention] {from} named you in #{room}: {text}"
                )));
            }
            "results" => {
                let query = clean(value["query"].as_str().unwrap_or(""));
                let place = match (value["room"].as_str(), value["with"]["name"].as_str()) {
                    (Some(room), _) => format!("#{}", clean(room)),
                    (None, Some(with)) => format!("your private messages with {}", clean(with)),
                    (None, None) => "?".to_string(),
                };
                let messages = value["messages"].as_array().cloned().unwrap_or_default();
                let found = match messages.len() {
                    0 => "nothing found".to_string(),
                    1 => "1 message".to_string(),
                    n => format!("{n} messages"),
                };
                lines.push(Line::notice(format!(
                    "search {query:?} in {place}: {found}, newest first"
                )));
                for m in &messages {
                    lines.extend(self.message_line(m, true));
                }
                if let Some(next) = value["next"].as_u64() {
                    lines.push(Line::notice(format!(
                        "older results go on before message {next}"
                    )));
                }
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
                self.rooms = list("mine")
                    .iter()
                    .filter_map(|r| r["room"].as_str().map(str::to_string))
                    .collect();
                if let Some(current) = value["current"].as_str() {
                    self.room = Some(current.to_string());
                }
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

    /// `bob's message 42` (or `message 42` when its author is unknown).
    fn whose(&self, v: &Value) -> String {
        let id = v["id"].as_u64().unwrap_or(0);
        match self.authors.get(&id) {
            Some(name) => format!("{}'s message {id}", clean(name)),
            None => format!("message {id}"),
        }
    }

    /// `#room ` in front of a line about a message of another room than
    /// ours, or of any room while we are in several; else nothing.
    fn room_mark(&self, v: &Value) -> String {
        match v["room"].as_str() {
            Some(room)
                if self.rooms.len() > 1 || self.room.as_deref().is_some_and(|r| r != room) =>
            {
                format!("#{} ", clean(room))
            }
            _ => String::new(),
        }
    }

    /// The line of one `chat` or `private` message; remembers its id and
    /// author.
    fn message(&mut self, m: &Value) -> Vec<Line> {
        if !m.is_object() {
            return Vec::new();
        }
        if let Some(id) = m["id"].as_u64() {
            self.last_id = Some(self.last_id.map_or(id, |last| last.max(id)));
            self.seen.insert(id);
            if let Some(name) = m["user"]["name"].as_str().or(m["from"]["name"].as_str()) {
                self.authors.insert(id, name.to_string());
            }
            while self.seen.len() > SEEN_KEPT {
                self.seen.pop_first();
            }
            if self.authors.len() > SEEN_KEPT {
                let oldest = self.seen.first().copied().unwrap_or(0);
                self.authors.retain(|&id, _| id >= oldest);
                while self.authors.len() > SEEN_KEPT {
                    self.authors.pop_first();
                }
            }
        }
        self.message_line(m, false)
    }

    /// The line of one `chat` or `private` message, remembering nothing;
    /// `with_date` adds the day (a search result may be old).
    fn message_line(&self, m: &Value, with_date: bool) -> Vec<Line> {
        if !m.is_object() {
            return Vec::new();
        }
        let time = m["time"]
            .as_u64()
            .map(|ms| match with_date {
                true => format!(
                    "{} {}",
                    day(ms, self.utc_offset),
                    hh_mm(ms, self.utc_offset)
                ),
                false => hh_mm(ms, self.utc_offset),
            })
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
        let room = self.room_mark(m);
        let reply = match m["reply"]["id"].as_u64() {
            Some(id) => {
                let to = clean(m["reply"]["user"]["name"].as_str().unwrap_or("?"));
                let quote = m["reply"]["text"].as_str().unwrap_or("");
                let mut short: String = quote.chars().take(QUOTE_CHARS).collect();
                if short.len() < quote.len() {
                    short.push('…');
                }
                format!(" (↪ {to} #{id}: “{}”)", clean(&short.replace('\n', " ")))
            }
            None => String::new(),
        };
        let mut after = String::new();
        if m["edited"].is_u64() {
            after.push_str(" (edited)");
        }
        let reactions = reactions(&m["reactions"]);
        if !reactions.is_empty() {
            after.push_str(&format!(" [{reactions}]"));
        }
        if let Some(action) = text.strip_prefix("/me ") {
            return vec![Line::chat(format!(
                "{time} {room}* {name}{bot}{mark}{reply} {}{after}",
                clean(action)
            ))];
        }
        vec![Line::chat(format!(
            "{time} {room}{name}{bot}{mark}{reply}: {}{after}",
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

/// How many characters of a replied-to message a reply line quotes.
pub const QUOTE_CHARS: usize = 40;

/// `👍 2, ❤ 1`: each emoji of a `reactions` object with how many reacted.
fn reactions(v: &Value) -> String {
    v.as_object()
        .map(|map| {
            map.iter()
                .map(|(emoji, who)| {
                    let n = who.as_array().map_or(0, Vec::len);
                    format!("{} {n}", clean(emoji))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `YYYY-MM-DD` of `ms` (Unix epoch milliseconds) in local time, as
/// [`hh_mm`] reckons it.
///
/// ```
/// use wschat::cli::render::day;
/// assert_eq!(day(1_763_800_000_123, Some(0)), "2025-11-22");
/// ```
pub fn day(ms: u64, offset: Option<i64>) -> String {
    let seconds = (ms / 1000) as i64;
    let offset = offset.unwrap_or_else(|| crate::sys::local_utc_offset(seconds));
    let days = (seconds.saturating_add(offset)).div_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
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

    fn welcomed() -> ChatState {
        let mut s = state();
        s.render(r#"{"type":"welcome","user":{"id":1,"name":"ann"},"room":"lobby","session":"t"}"#);
        s.render(r#"{"type":"chat","id":42,"room":"lobby","user":{"id":2,"name":"bob"},"text":"hi all","time":60000}"#);
        s
    }

    #[test]
    fn a_reply_quotes_what_it_answers() {
        let mut s = welcomed();
        let (lines, _) = s.render(
            r#"{"type":"chat","id":44,"room":"lobby","user":{"id":1,"name":"ann"},"text":"同意","time":120000,"reply":{"id":42,"text":"hi all","user":{"id":2,"name":"bob"}}}"#,
        );
        assert_eq!(
            texts(&lines),
            ["00:02 ann (you) (↪ bob #42: “hi all”): 同意"]
        );
        assert!(!lines[0].notice);
        // A long quote is cut, its line breaks and escapes made harmless.
        let long = format!("{}\n\u{1b}[2J", "x".repeat(QUOTE_CHARS));
        let chat = serde_json::json!({"type":"chat","id":45,"room":"lobby","user":{"id":2,"name":"bob"},
            "text":"ok","time":0,"reply":{"id":44,"text":long,"user":{"id":1,"name":"ann"}}});
        let (lines, _) = s.render(&chat.to_string());
        assert_eq!(
            texts(&lines),
            [format!(
                "00:00 bob (↪ ann #44: “{}…”): ok",
                "x".repeat(QUOTE_CHARS)
            )]
        );
    }

    #[test]
    fn edits_reactions_and_deletes_name_the_message() {
        let mut s = welcomed();
        let (lines, _) = s.render(
            r#"{"type":"edited","id":42,"room":"lobby","text":"你好，大家","edited":180000}"#,
        );
        assert_eq!(
            texts(&lines),
            ["* 00:03 bob's message 42 was edited: 你好，大家"]
        );
        assert!(lines[0].notice);
        let (lines, _) = s.render(
            r#"{"type":"reactions","id":42,"room":"lobby","reactions":{"👍":[2,3],"❤":[1]}}"#,
        );
        assert_eq!(
            texts(&lines),
            ["* reactions to bob's message 42: ❤ 1, 👍 2"]
        );
        let (lines, _) = s.render(r#"{"type":"reactions","id":42,"room":"lobby","reactions":{}}"#);
        assert_eq!(texts(&lines), ["* reactions to bob's message 42: none"]);
        let (lines, _) = s.render(r#"{"type":"deleted","id":42,"room":"lobby"}"#);
        assert_eq!(texts(&lines), ["* bob's message 42 was deleted"]);
        // A message never shown is named by its id alone.
        let (lines, _) = s.render(r#"{"type":"deleted","id":7,"room":"lobby"}"#);
        assert_eq!(texts(&lines), ["* message 7 was deleted"]);
        // A history line carries its edit and its reactions.
        let (lines, _) = s.render(
            r#"{"type":"history","room":"lobby","complete":true,"messages":[{"type":"chat","id":42,"room":"lobby","user":{"id":2,"name":"bob"},"text":"你好，大家","time":60000,"reactions":{"👍":[2,3]},"edited":180000}]}"#,
        );
        assert_eq!(texts(&lines), ["00:01 bob: 你好，大家 (edited) [👍 2]"]);
    }

    #[test]
    fn a_mention_is_a_chat_line_naming_its_room() {
        let mut s = welcomed();
        let (lines, _) = s.render(
            r#"{"type":"mention","id":45,"room":"rust","from":{"id":2,"name":"小明"},"text":"@ann look at this"}"#,
        );
        assert_eq!(
            texts(&lines),
            ["[mention] 小明 named you in #rust: @ann look at this"]
        );
        assert!(!lines[0].notice);
    }

    #[test]
    fn in_several_rooms_each_line_names_its_room() {
        let mut s = welcomed();
        let (lines, _) = s.render(
            r#"{"type":"rooms","current":"rust","rooms":[{"room":"lobby","members":12},{"room":"rust","members":3}],"mine":[{"room":"lobby","members":12,"unread":0,"read":41},{"room":"rust","members":3,"unread":2,"read":40}]}"#,
        );
        assert_eq!(
            texts(&lines),
            [
                "* rooms: #lobby (12), #rust (3)",
                "* your rooms: #lobby, #rust (2 unread)"
            ]
        );
        assert_eq!(s.room.as_deref(), Some("rust"));
        assert_eq!(s.rooms, ["lobby", "rust"]);
        let (lines, _) = s.render(r#"{"type":"chat","id":50,"room":"lobby","user":{"id":2,"name":"bob"},"text":"yo","time":0}"#);
        assert_eq!(texts(&lines), ["00:00 #lobby bob: yo"]);
        let (lines, _) = s.render(r#"{"type":"chat","id":51,"room":"rust","user":{"id":2,"name":"bob"},"text":"/me waves","time":0}"#);
        assert_eq!(texts(&lines), ["00:00 #rust * bob waves"]);
        let (lines, _) = s.render(r#"{"type":"deleted","id":50,"room":"lobby"}"#);
        assert_eq!(texts(&lines), ["* #lobby bob's message 50 was deleted"]);
        // Back in one room: no mark on its own lines.
        s.render(r#"{"type":"rooms","current":"rust","rooms":[],"mine":[{"room":"rust","members":3,"unread":0,"read":51}]}"#);
        let (lines, _) = s.render(r#"{"type":"chat","id":52,"room":"rust","user":{"id":2,"name":"bob"},"text":"hi","time":0}"#);
        assert_eq!(texts(&lines), ["00:00 bob: hi"]);
    }

    #[test]
    fn search_results_are_dated_lines_after_a_heading() {
        let mut s = welcomed();
        let (lines, _) = s.render(
            r#"{"type":"results","query":"天气","room":"lobby","before":null,"next":null,"messages":[
            {"type":"chat","id":47,"room":"lobby","user":{"id":2,"name":"小明"},"text":"今天天气很好","time":1763800000700}]}"#,
        );
        assert_eq!(
            texts(&lines),
            [
                "* search \"天气\" in #lobby: 1 message, newest first",
                "2025-11-22 08:26 小明: 今天天气很好"
            ]
        );
        // Results change nothing of what a resume asks for.
        assert_eq!(s.last_id, Some(42));
        let (lines, _) = s.render(
            r#"{"type":"results","query":"plan","with":{"id":2,"name":"bob"},"before":1200,"next":880,"messages":[
            {"type":"private","id":900,"from":{"id":2,"name":"bob"},"to":{"id":1,"name":"ann"},"text":"the plan","time":0}]}"#,
        );
        assert_eq!(
            texts(&lines),
            [
                "* search \"plan\" in your private messages with bob: 1 message, newest first",
                "1970-01-01 00:00 [private] bob → ann: the plan",
                "* older results go on before message 880"
            ]
        );
        let (lines, _) =
            s.render(r#"{"type":"results","query":"zzz","room":"lobby","before":null,"next":null,"messages":[]}"#);
        assert_eq!(
            texts(&lines),
            ["* search \"zzz\" in #lobby: nothing found, newest first"]
        );
    }

    #[test]
    fn days_are_civil_dates() {
        assert_eq!(day(0, Some(0)), "1970-01-01");
        assert_eq!(day(951_782_400_000, Some(0)), "2000-02-29");
        assert_eq!(day(1_763_800_000_123, Some(-9 * 3600)), "2025-11-21");
        assert_eq!(day(u64::MAX, Some(i64::MAX)), day(u64::MAX, Some(i64::MAX)));
    }
}
