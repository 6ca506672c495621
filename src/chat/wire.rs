//! The chat's messages as they go on the wire, and its records as they go
//! to the log: typed, one variant per `type`, with the fields in the order
//! they are declared here, which is the order docs/chat-protocol.md shows
//! (serde writes an internally tagged variant's tag first, then its fields
//! in declaration order; tests/chat.rs checks the pages' examples field by
//! field).
//!
//! Users are named by the `Value` of
//! [`Identities::user_ref`](super::identity::Identities::user_ref) (its
//! keys are in serde_json's sorted order, as before). Stored messages are
//! spliced into lists as the JSON they already are ([`Stored`]).
//!
//! ```
//! use wschat::chat::wire::Message;
//! let user = serde_json::json!({"id": 1, "name": "小明"});
//! let typing = Message::Typing { room: "lobby", user: &user, active: true };
//! assert_eq!(
//!     typing.to_json(),
//!     r#"{"type":"typing","room":"lobby","user":{"id":1,"name":"小明"},"active":true}"#
//! );
//! ```

use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeSeq;
use serde_json::Value;
use serde_json::value::RawValue;

/// `{"id","name"}`: a user as a page of members names it. The same JSON
/// as [`Identities::user_ref`](super::identity::Identities::user_ref)'s
/// `Value`, written without building one: a page of 100 members was 400
/// small allocations for each newcomer to a crowded room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UserRef<'a> {
    /// The user's id.
    pub id: u64,
    /// The user's name.
    pub name: &'a str,
}

/// A message the chat sends to its clients.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message<'a> {
    /// A room message, as broadcast and stored.
    Chat {
        /// Its id.
        id: u64,
        /// Its room.
        room: &'a str,
        /// Who said it (a user, or the HTTP API's bot).
        user: &'a Value,
        /// What was said.
        text: &'a str,
        /// When, in milliseconds since the epoch.
        time: u64,
        /// The message it answers: `{"id","text","user"}`, its text cut
        /// to [`MAX_QUOTE_CHARS`](super::MAX_QUOTE_CHARS).
        #[serde(skip_serializing_if = "Option::is_none")]
        reply: Option<&'a Value>,
        /// Its reactions: each emoji and the ids of who reacted with it.
        #[serde(skip_serializing_if = "Option::is_none")]
        reactions: Option<&'a Value>,
        /// When its author last edited it.
        #[serde(skip_serializing_if = "Option::is_none")]
        edited: Option<u64>,
    },
    /// A room message was edited by its author.
    Edited {
        /// The message's id.
        id: u64,
        /// Its room.
        room: &'a str,
        /// Its new text.
        text: &'a str,
        /// When it was edited.
        edited: u64,
    },
    /// A room message's reactions changed.
    Reactions {
        /// The message's id.
        id: u64,
        /// Its room.
        room: &'a str,
        /// Each emoji and the ids of who reacted with it (`{}`: none).
        reactions: &'a Value,
    },
    /// Someone named the user (`@name`) in a room message.
    Mention {
        /// The message's id.
        id: u64,
        /// Its room.
        room: &'a str,
        /// Who wrote it.
        from: &'a Value,
        /// What was said.
        text: &'a str,
    },
    /// A private message, as delivered and stored.
    Private {
        /// Its id.
        id: u64,
        /// The sender.
        from: &'a Value,
        /// The addressee.
        to: &'a Value,
        /// What was said.
        text: &'a str,
        /// When.
        time: u64,
    },
    /// The first message of a connection: who it is, where, and the
    /// session token to come back with.
    Welcome {
        /// The user, with `sub`, `verified` and `role` when signed in.
        user: &'a Value,
        /// The room it is in.
        room: &'a str,
        /// The session token (anonymous users only).
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// `wschat VERSION`.
        server: &'a str,
    },
    /// A page of a room's members.
    Users {
        /// The room.
        room: &'a str,
        /// How many members it has.
        count: usize,
        /// Where the page starts.
        offset: usize,
        /// Whether more pages follow.
        more: bool,
        /// The page.
        users: &'a [UserRef<'a>],
    },
    /// Who came into a room this turn.
    Join {
        /// The room.
        room: &'a str,
        /// Who came.
        users: &'a [Value],
        /// Its members now.
        count: usize,
        /// When.
        time: u64,
    },
    /// Who left a room this turn.
    Leave {
        /// The room.
        room: &'a str,
        /// Who left.
        users: &'a [Value],
        /// Its members now.
        count: usize,
        /// When.
        time: u64,
    },
    /// A crowd's arrivals and departures since its last `presence`.
    Presence {
        /// The room.
        room: &'a str,
        /// Its members now.
        count: usize,
        /// How many came.
        joined: usize,
        /// How many left.
        left: usize,
        /// When.
        time: u64,
    },
    /// A member changed name.
    Rename {
        /// The room told.
        room: &'a str,
        /// The user, with the new name.
        user: &'a Value,
        /// The old name.
        old: &'a str,
        /// When.
        time: u64,
    },
    /// Someone started or stopped typing.
    Typing {
        /// The room.
        room: &'a str,
        /// Who.
        user: &'a Value,
        /// Typing now or not.
        active: bool,
    },
    /// A message was deleted by moderation.
    Deleted {
        /// The message's id.
        id: u64,
        /// Its room.
        room: &'a str,
    },
    /// The online users whose names contain `name`.
    Found {
        /// What was looked for.
        name: &'a str,
        /// Who was found.
        users: &'a [Value],
    },
    /// A page of a room's history, oldest first.
    History {
        /// The room.
        room: &'a str,
        /// The page's upper bound, in a page asked for (`null`: the
        /// latest); absent in the history sent on entering a room.
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<Option<u64>>,
        /// Whether nothing in the range is missing.
        complete: bool,
        /// With `complete: false`, the id from which the page is whole.
        #[serde(skip_serializing_if = "Option::is_none")]
        first: Option<u64>,
        /// The stored messages.
        messages: StoredList<'a>,
    },
    /// What a connection missed after `since`.
    Resume {
        /// The room.
        room: &'a str,
        /// The id it resumed after.
        since: u64,
        /// Whether nothing after `since` is missing.
        complete: bool,
        /// With `complete: false`, the id from which the answer is whole.
        #[serde(skip_serializing_if = "Option::is_none")]
        first: Option<u64>,
        /// The stored messages, in id order.
        messages: StoredList<'a>,
    },
    /// The user's private conversations, newest first.
    Privates {
        /// Each conversation.
        conversations: &'a [PrivateSummary<'a>],
    },
    /// A page of one private conversation, oldest first.
    PrivateHistory {
        /// The other side.
        with: &'a Value,
        /// The page's upper bound (`null`: the latest).
        before: Option<u64>,
        /// Whether nothing in the range is missing.
        complete: bool,
        /// With `complete: false`, the id from which the page is whole.
        #[serde(skip_serializing_if = "Option::is_none")]
        first: Option<u64>,
        /// The stored messages.
        messages: StoredList<'a>,
    },
    /// A page of search results, newest first.
    Results {
        /// What was looked for.
        query: &'a str,
        /// The room searched.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        /// The other side of the private conversation searched.
        #[serde(skip_serializing_if = "Option::is_none")]
        with: Option<&'a Value>,
        /// Where the search started (`null`: the latest message).
        before: Option<u64>,
        /// Where to go on (as `before`), or `null` when everything older
        /// was searched.
        next: Option<u64>,
        /// The messages that matched.
        messages: StoredList<'a>,
    },
    /// The rooms: the busiest public ones with their member counts, and
    /// the user's own with what it has not read.
    Rooms {
        /// The user's current room (where plain text goes).
        current: &'a str,
        /// Public rooms, most members first.
        rooms: &'a [RoomCount<'a>],
        /// The user's rooms, by name.
        mine: &'a [MyRoom<'a>],
    },
}

/// One room of a `rooms` list.
#[derive(Debug, Serialize)]
pub struct RoomCount<'a> {
    /// Its name.
    pub room: &'a str,
    /// Its members online.
    pub members: usize,
}

/// One of the user's rooms, in a `rooms` answer.
#[derive(Debug, Serialize)]
pub struct MyRoom<'a> {
    /// Its name.
    pub room: &'a str,
    /// Its members online.
    pub members: usize,
    /// Messages from others after the user's read marker (counted among
    /// the latest [`MAX_UNREAD_COUNT`](super::MAX_UNREAD_COUNT)).
    pub unread: usize,
    /// The user's read marker: the last message it has read (0: none).
    pub read: u64,
}

/// One conversation of a `privates` list.
#[derive(Debug, Serialize)]
pub struct PrivateSummary<'a> {
    /// The other side.
    pub with: &'a Value,
    /// Messages from them not yet read.
    pub unread: usize,
    /// The latest message, as stored.
    pub last: Stored<'a>,
}

/// A record the chat writes to the log (besides its messages, which are
/// stored as sent).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry<'a> {
    /// A user came into existence: its session key or its `sub`.
    Identity {
        /// The record's id.
        id: u64,
        /// The user's id.
        user: u64,
        /// The SHA-1 of its session token (anonymous users).
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        /// Its `sub` (signed-in users).
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
        /// When.
        time: u64,
    },
    /// A user entered a room.
    Joined {
        /// The record's id.
        id: u64,
        /// The room.
        room: &'a str,
        /// The user.
        user: &'a Value,
        /// When.
        time: u64,
    },
    /// A user left a room.
    Left {
        /// The record's id.
        id: u64,
        /// The room.
        room: &'a str,
        /// The user.
        user: &'a Value,
        /// When.
        time: u64,
    },
    /// A user changed name.
    Renamed {
        /// The record's id.
        id: u64,
        /// The user, with the new name.
        user: &'a Value,
        /// The old name.
        old: &'a str,
        /// When.
        time: u64,
    },
    /// A user has read a private conversation up to a message.
    Read {
        /// The record's id.
        id: u64,
        /// The reader's id.
        user: u64,
        /// The other side's id.
        with: u64,
        /// The last message read.
        upto: u64,
        /// When.
        time: u64,
    },
    /// A user has read a room up to a message.
    RoomRead {
        /// The record's id.
        id: u64,
        /// The reader's id.
        user: u64,
        /// The room.
        room: &'a str,
        /// The last message read.
        upto: u64,
        /// When.
        time: u64,
    },
    /// The rooms a user is a member of now, and its current one.
    Memberships {
        /// The record's id.
        id: u64,
        /// The user's id.
        user: u64,
        /// Its current room.
        room: &'a str,
        /// Every room it is a member of.
        rooms: &'a [&'a str],
        /// When.
        time: u64,
    },
}

/// A stored message, written as the JSON it already is.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a>(pub &'a str);

impl Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Every stored message is JSON the log has parsed; one that were
        // not would be written as `null` rather than break the message.
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => serializer.serialize_unit(),
        }
    }
}

/// Stored messages, written as a list of the JSON they already are.
#[derive(Debug, Clone, Copy)]
pub struct StoredList<'a>(pub &'a [Arc<str>]);

impl Serialize for StoredList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            seq.serialize_element(&Stored(message))?;
        }
        seq.end()
    }
}

/// The JSON text of anything here.
fn to_json(value: &impl Serialize) -> String {
    // Writing into a String cannot fail, and nothing here has a map with
    // keys that are not strings.
    serde_json::to_string(value).unwrap_or_default()
}

impl Message<'_> {
    /// The message's JSON text.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

impl Entry<'_> {
    /// The record's JSON text.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

#[cfg(test)]
mod tests {
    //! Each message and record is byte for byte what the chat wrote with
    //! `ordered!` and `json::Object` before it was typed.
    use super::*;
    use crate::json::Object;
    use crate::ordered;
    use serde_json::json;

    #[test]
    fn messages_are_what_ordered_wrote() {
        let user = json!({"id": 7, "name": "小明 <b>"});
        let other = json!({"id": 8, "name": "\"q\""});
        let users = vec![user.clone(), other.clone()];
        // A page of members names them as `user_ref`'s Values do.
        let page = [
            UserRef {
                id: 7,
                name: "小明 <b>",
            },
            UserRef {
                id: 8,
                name: "\"q\"",
            },
        ];
        let stored: Vec<Arc<str>> = vec![
            r#"{"type":"chat","id":1,"room":"lobby","text":"a"}"#.into(),
            r#"{"type":"chat","id":2,"room":"lobby","text":"b\n"}"#.into(),
        ];
        let cases = [
            (
                Message::Chat {
                    id: 3,
                    room: "lobby",
                    user: &user,
                    text: "hi \u{1} there",
                    time: 9,
                    reply: None,
                    reactions: None,
                    edited: None,
                }
                .to_json(),
                ordered! {"type": "chat", "id": 3, "room": "lobby", "user": user, "text": "hi \u{1} there", "time": 9},
            ),
            (
                Message::Private {
                    id: 4,
                    from: &user,
                    to: &other,
                    text: "x",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "private", "id": 4, "from": user, "to": other, "text": "x", "time": 9},
            ),
            (
                Message::Users {
                    room: "r",
                    count: 2,
                    offset: 0,
                    more: false,
                    users: &page,
                }
                .to_json(),
                ordered! {"type": "users", "room": "r", "count": 2, "offset": 0, "more": false, "users": users},
            ),
            (
                Message::Join {
                    room: "r",
                    users: &users,
                    count: 2,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "join", "room": "r", "users": users, "count": 2, "time": 9},
            ),
            (
                Message::Leave {
                    room: "r",
                    users: &users[..1],
                    count: 1,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "leave", "room": "r", "users": users[..1], "count": 1, "time": 9},
            ),
            (
                Message::Presence {
                    room: "r",
                    count: 101,
                    joined: 3,
                    left: 1,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "presence", "room": "r", "count": 101, "joined": 3, "left": 1, "time": 9},
            ),
            (
                Message::Rename {
                    room: "r",
                    user: &user,
                    old: "old",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "rename", "room": "r", "user": user, "old": "old", "time": 9},
            ),
            (
                Message::Typing {
                    room: "r",
                    user: &user,
                    active: false,
                }
                .to_json(),
                ordered! {"type": "typing", "room": "r", "user": user, "active": false},
            ),
            (
                Message::Deleted { id: 5, room: "r" }.to_json(),
                ordered! {"type": "deleted", "id": 5, "room": "r"},
            ),
            (
                Message::Found {
                    name: "小",
                    users: &users,
                }
                .to_json(),
                ordered! {"type": "found", "name": "小", "users": users},
            ),
            (
                Message::Welcome {
                    user: &user,
                    room: "r",
                    session: Some("abc"),
                    server: "wschat 1",
                }
                .to_json(),
                ordered! {"type": "welcome", "user": user, "room": "r", "session": "abc", "server": "wschat 1"},
            ),
            (
                Message::Welcome {
                    user: &user,
                    room: "r",
                    session: None,
                    server: "wschat 1",
                }
                .to_json(),
                ordered! {"type": "welcome", "user": user, "room": "r", "server": "wschat 1"},
            ),
            (
                Message::History {
                    room: "r",
                    before: None,
                    complete: true,
                    first: None,
                    messages: StoredList(&stored),
                }
                .to_json(),
                Object::new()
                    .field("type", "history")
                    .field("room", "r")
                    .field("complete", true)
                    .json_list("messages", &stored)
                    .finish(),
            ),
            (
                Message::History {
                    room: "r",
                    before: Some(None),
                    complete: false,
                    first: Some(2),
                    messages: StoredList(&stored[1..]),
                }
                .to_json(),
                Object::new()
                    .field("type", "history")
                    .field("room", "r")
                    .field("before", Value::Null)
                    .field("complete", false)
                    .field("first", 2)
                    .json_list("messages", &stored[1..])
                    .finish(),
            ),
            (
                Message::Resume {
                    room: "r",
                    since: 1,
                    complete: true,
                    first: None,
                    messages: StoredList(&[]),
                }
                .to_json(),
                Object::new()
                    .field("type", "resume")
                    .field("room", "r")
                    .field("since", 1)
                    .field("complete", true)
                    .json_list::<&str>("messages", &[])
                    .finish(),
            ),
            (
                Message::PrivateHistory {
                    with: &other,
                    before: Some(10),
                    complete: true,
                    first: None,
                    messages: StoredList(&stored),
                }
                .to_json(),
                Object::new()
                    .field("type", "private_history")
                    .field("with", &other)
                    .field("before", Some(10))
                    .field("complete", true)
                    .json_list("messages", &stored)
                    .finish(),
            ),
            (
                Message::Privates {
                    conversations: &[PrivateSummary {
                        with: &other,
                        unread: 2,
                        last: Stored(&stored[0]),
                    }],
                }
                .to_json(),
                Object::new()
                    .field("type", "privates")
                    .json_list(
                        "conversations",
                        &[Object::new()
                            .field("with", &other)
                            .field("unread", 2)
                            .json("last", &stored[0])
                            .finish()],
                    )
                    .finish(),
            ),
        ];
        for (typed, written) in cases {
            assert_eq!(typed, written);
        }
    }

    #[test]
    fn records_are_what_ordered_wrote() {
        let user = json!({"id": 7, "name": "小明"});
        let cases = [
            (
                Entry::Joined {
                    id: 1,
                    room: "r",
                    user: &user,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "joined", "id": 1, "room": "r", "user": user, "time": 9},
            ),
            (
                Entry::Left {
                    id: 2,
                    room: "r",
                    user: &user,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "left", "id": 2, "room": "r", "user": user, "time": 9},
            ),
            (
                Entry::Renamed {
                    id: 3,
                    user: &user,
                    old: "o",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "renamed", "id": 3, "user": user, "old": "o", "time": 9},
            ),
            (
                Entry::Read {
                    id: 4,
                    user: 7,
                    with: 8,
                    upto: 3,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "read", "id": 4, "user": 7, "with": 8, "upto": 3, "time": 9},
            ),
            (
                Entry::Identity {
                    id: 5,
                    user: 5,
                    session: Some("k"),
                    sub: None,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "identity", "id": 5, "user": 5, "session": "k", "time": 9},
            ),
            (
                Entry::Identity {
                    id: 6,
                    user: 6,
                    session: None,
                    sub: Some("s"),
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "identity", "id": 6, "user": 6, "sub": "s", "time": 9},
            ),
        ];
        for (typed, written) in cases {
            assert_eq!(typed, written);
        }
    }
}
