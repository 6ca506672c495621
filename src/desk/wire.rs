//! The desk's messages as they go on the wire, and its records as they go
//! to the log: typed, one variant per `type`, with the fields in the order
//! they are declared here, which is the order docs/customer-service.md shows (serde
//! writes an internally tagged variant's tag first, then its fields in
//! declaration order). Stored messages (`desk_message` records, which are
//! also what visitors and agents receive) are spliced into lists as the
//! JSON they already are.

use serde::Serialize;

use crate::chat::wire::StoredList;

/// A message the desk sends to a visitor or an agent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message<'a> {
    /// An agent's connection, before it signs in.
    Hello {
        /// How to sign in.
        auth: &'a str,
    },
    /// An anonymous visitor's first message.
    Welcome {
        /// The session token to come back with.
        session: Option<&'a str>,
        /// The visitor's name.
        name: &'a str,
        /// Whether an earlier session was taken up again.
        resumed: bool,
        /// The visitor's conversation, if one is open.
        conversation: Option<u64>,
        /// The longest message text, in bytes (`--desk-max-text-bytes`).
        max_text_bytes: usize,
    },
    /// A signed-in visitor's first message.
    #[serde(rename = "welcome")]
    WelcomeVerified {
        /// The visitor's name.
        name: &'a str,
        /// The `sub` of its token.
        sub: &'a str,
        /// Always `true`.
        verified: bool,
        /// Whether an earlier session was taken up again.
        resumed: bool,
        /// The visitor's conversation, if one is open.
        conversation: Option<u64>,
        /// The longest message text, in bytes (`--desk-max-text-bytes`).
        max_text_bytes: usize,
    },
    /// Told to a visitor who arrives outside the desk's hours.
    Hours {
        /// Always `false`.
        open: bool,
        /// When the team is back, epoch ms (`null`: no hours at all).
        back: Option<u64>,
        /// Whether the desk has the visitor's e-mail address already.
        email: bool,
    },
    /// The answer to a visitor's pre-chat form (`contact`).
    Contact {
        /// The visitor's name.
        name: &'a str,
        /// Its e-mail address, if it gave one.
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<&'a str>,
    },
    /// The visitor's conversation so far.
    Transcript {
        /// The conversation.
        conversation: u64,
        /// `queued`, `assigned` or `resolved`.
        state: &'a str,
        /// Its agent, while assigned.
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<&'a str>,
        /// Its rating, once resolved (`null`: not rated).
        #[serde(skip_serializing_if = "Option::is_none")]
        rating: Option<Option<u64>>,
        /// Older messages memory no longer shows, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        earlier: Option<usize>,
        /// The messages.
        messages: StoredList<'a>,
    },
    /// A visitor's place in the queue.
    Queued {
        /// The conversation.
        conversation: u64,
        /// Its place, from 1.
        position: usize,
        /// Agents online now.
        agents_online: usize,
    },
    /// The conversation has an agent.
    Assigned {
        /// The conversation.
        conversation: u64,
        /// The agent.
        agent: &'a str,
    },
    /// A conversation as its agent sees it.
    Conversation(ConversationView<'a>),
    /// A conversation just given to the agent.
    #[serde(rename = "assigned")]
    AssignedConversation(ConversationView<'a>),
    /// The agent's open conversations (a supervisor's: every open one),
    /// when it signs in or its role changes.
    Conversations {
        /// Each one, a [`Message::Conversation`].
        conversations: &'a [Message<'a>],
    },
    /// The agent is signed in.
    Ready {
        /// Its name.
        agent: &'a str,
        /// `online` or `away`.
        status: &'a str,
        /// Conversations it may hold at once.
        capacity: usize,
        /// `agent` or `supervisor`.
        role: &'a str,
    },
    /// The agent's account changed while it was signed in (`wschat agent
    /// set`).
    Account {
        /// Its name.
        agent: &'a str,
        /// Conversations it may hold at once now.
        capacity: usize,
        /// `agent` or `supervisor`.
        role: &'a str,
    },
    /// The team's canned replies.
    Canned {
        /// Each reply.
        replies: &'a [super::canned::Reply],
    },
    /// A conversation's visitor, its contact and earlier conversations.
    Visitor {
        /// The conversation asked about.
        conversation: u64,
        /// The visitor's name.
        visitor: &'a str,
        /// The visitor's `sub`, when signed in.
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
        /// What the desk knows of the visitor.
        #[serde(skip_serializing_if = "Option::is_none")]
        contact: Option<&'a Contact>,
        /// Its earlier conversations, newest first.
        previous: &'a [PreviousView<'a>],
    },
    /// The agents and their loads.
    Agents {
        /// Conversations each may hold at once.
        capacity: usize,
        /// Each agent.
        agents: &'a [AgentRow<'a>],
    },
    /// The queue.
    Queue {
        /// Each waiting conversation, first first.
        queue: &'a [QueueRow<'a>],
    },
    /// The visitor came or went.
    VisitorStatus {
        /// The conversation.
        conversation: u64,
        /// Whether the visitor is connected.
        online: bool,
    },
    /// The agent came or went (grace period).
    AgentStatus {
        /// The conversation.
        conversation: u64,
        /// The agent.
        agent: &'a str,
        /// Whether the agent is connected.
        online: bool,
    },
    /// The agent's own presence, to all its connections.
    Presence {
        /// `online` or `away`.
        status: &'a str,
    },
    /// Someone is typing.
    Typing {
        /// The conversation.
        conversation: u64,
        /// `visitor` or `agent`.
        from: &'a str,
        /// Typing now or not.
        active: bool,
    },
    /// The conversation is resolved.
    Resolved {
        /// The conversation.
        conversation: u64,
        /// `visitor` when the visitor ended the chat.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<&'a str>,
    },
    /// The visitor rated the conversation (as the visitor is told): the
    /// number as `stars`, the agent's name for it (DESIGN.md), and again as
    /// `rating`, the request's name for it, kept for visitor clients written
    /// against the earlier shape (docs/customer-service.md).
    Rated {
        /// The conversation.
        conversation: u64,
        /// 1-5.
        stars: u64,
        /// The same number (compatibility: the earlier visitor shape).
        rating: u64,
        /// The comment, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
    },
    /// A rating, as the agent who resolved the conversation and the
    /// supervisors are told.
    #[serde(rename = "rated")]
    RatedAgent {
        /// The conversation.
        conversation: u64,
        /// 1-5.
        stars: u64,
        /// The comment, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
        /// The visitor's name.
        visitor: &'a str,
        /// The agent who resolved it (`null`: the API, or nobody).
        agent: Option<&'a str>,
        /// When.
        time: u64,
    },
    /// The conversation left agent `agent` (`to`: the agent it went to,
    /// or `null`: back to the queue).
    Unassigned {
        /// The conversation.
        conversation: u64,
        /// The agent it left.
        agent: &'a str,
        /// Where it went.
        to: Option<&'a str>,
    },
}

/// A conversation as an agent sees it.
#[derive(Debug, Serialize)]
pub struct ConversationView<'a> {
    /// The conversation.
    pub conversation: u64,
    /// The visitor's name.
    pub visitor: &'a str,
    /// The visitor's `sub`, when signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<&'a str>,
    /// Its agent, while assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
    /// What the desk knows of the visitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<&'a Contact>,
    /// How many earlier conversations the visitor has.
    pub previous: usize,
    /// `true` for a message left outside the desk's hours.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Whether the visitor is connected.
    pub online: bool,
    /// When it opened.
    pub opened: u64,
    /// When it last joined the queue.
    pub waiting_since: u64,
    /// The agent it came from, in a transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'a str>,
    /// The note of a transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
    /// Older messages memory no longer shows, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier: Option<usize>,
    /// The messages.
    pub messages: StoredList<'a>,
}

/// One agent of an `agents` list.
#[derive(Debug, Serialize)]
pub struct AgentRow<'a> {
    /// Its name.
    pub name: &'a str,
    /// `online`, `away` or `offline`.
    pub status: &'a str,
    /// Conversations it holds.
    pub load: usize,
    /// Conversations it may hold at once.
    pub capacity: usize,
    /// `agent` or `supervisor`.
    pub role: &'a str,
}

/// One of a visitor's earlier conversations, in a `visitor` message.
#[derive(Debug, Serialize)]
pub struct PreviousView<'a> {
    /// The conversation.
    pub conversation: u64,
    /// When it opened.
    pub opened: u64,
    /// `queued`, `assigned`, `resolved` or `abandoned`.
    pub state: &'a str,
    /// Its agent, or the one who resolved it.
    pub agent: Option<&'a str>,
    /// Its rating (`null`: not rated).
    pub rating: Option<u64>,
    /// The rating's comment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
    /// Older messages memory no longer shows, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier: Option<usize>,
    /// The messages.
    pub messages: StoredList<'a>,
}

/// What the desk knows of a visitor, shown to its agent: given in the
/// pre-chat form (`contact`), or by the widget when it connects. Each
/// field has a byte limit (`MAX_URL_BYTES`, …), so a contact stays under
/// 5 KiB; it lives in the visitor's session, which is kept only while the
/// visitor is connected or has a conversation in memory, and counts in the
/// memory budget (`--memory-budget`, the desk's share) with it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Contact {
    /// The address the visitor gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The page the widget was opened from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// That page's referrer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// The browser's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// When the visitor was first seen, epoch ms.
    pub first_seen: u64,
    /// When the visitor was last seen (connected), epoch ms.
    pub last_seen: u64,
}

/// One conversation of a `queue` list.
#[derive(Debug, Serialize)]
pub struct QueueRow<'a> {
    /// The conversation.
    pub conversation: u64,
    /// The visitor's name.
    pub visitor: &'a str,
    /// Whether the visitor is connected.
    pub online: bool,
    /// Since when it waits.
    pub waiting_since: u64,
    /// How many messages it has.
    pub messages: usize,
}

/// A record the desk writes to the log (`desk_message` is also what the
/// visitor and the agent receive).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry<'a> {
    /// A conversation opened (its id is the conversation's).
    DeskOpened {
        /// The record's id.
        id: u64,
        /// The conversation (the same).
        conversation: u64,
        /// The visitor's session key.
        session: &'a str,
        /// The visitor's name.
        visitor: &'a str,
        /// The visitor's `sub`, when signed in.
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
        /// `true` for a message left outside the desk's hours.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
        /// When.
        time: u64,
    },
    /// A visitor's name and contact (`number`: the default name's number,
    /// when one was just given out).
    DeskContact {
        /// The record's id.
        id: u64,
        /// The visitor's session key.
        session: &'a str,
        /// The number of its default name.
        #[serde(skip_serializing_if = "Option::is_none")]
        number: Option<u64>,
        /// The visitor's name.
        name: &'a str,
        /// Its e-mail address.
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<&'a str>,
        /// The page the widget was opened from.
        #[serde(skip_serializing_if = "Option::is_none")]
        page: Option<&'a str>,
        /// That page's referrer.
        #[serde(skip_serializing_if = "Option::is_none")]
        referrer: Option<&'a str>,
        /// The browser.
        #[serde(skip_serializing_if = "Option::is_none")]
        browser: Option<&'a str>,
        /// When.
        time: u64,
    },
    /// A message of a conversation.
    DeskMessage {
        /// The message's id.
        id: u64,
        /// The conversation.
        conversation: u64,
        /// `visitor`, `agent` or `bot`.
        from: &'a str,
        /// The sender's name.
        name: &'a str,
        /// `true` for the HTTP API's bot.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        bot: bool,
        /// What was said.
        text: &'a str,
        /// When.
        time: u64,
    },
    /// A conversation given to an agent.
    DeskAssigned {
        /// The record's id.
        id: u64,
        /// The conversation.
        conversation: u64,
        /// The agent.
        agent: &'a str,
        /// The agent it came from, in a transfer.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// The note of a transfer.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<&'a str>,
        /// When.
        time: u64,
    },
    /// A conversation back in the queue.
    DeskQueued {
        /// The record's id.
        id: u64,
        /// The conversation.
        conversation: u64,
        /// Why.
        reason: &'a str,
        /// When.
        time: u64,
    },
    /// A conversation resolved: `by` its agent, the API, the visitor, or
    /// `abandoned` (left the queue, its visitor offline too long: no
    /// `agent` field then).
    DeskResolved {
        /// The record's id.
        id: u64,
        /// The conversation.
        conversation: u64,
        /// Its agent (`null`: none); absent for `abandoned`.
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<Option<&'a str>>,
        /// `agent`, `api`, `visitor` or `abandoned`.
        by: &'a str,
        /// When.
        time: u64,
    },
    /// The visitor's rating.
    DeskRated {
        /// The record's id.
        id: u64,
        /// The conversation.
        conversation: u64,
        /// 1-5.
        rating: u64,
        /// The comment, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
        /// When.
        time: u64,
    },
}

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
    //! Each message and record is byte for byte what the desk wrote with
    //! `ordered!` and `json::Object` before it was typed.
    use std::sync::Arc;

    use super::*;
    use crate::json::Object;
    use crate::ordered;

    #[test]
    fn messages_are_what_ordered_wrote() {
        let stored: Vec<Arc<str>> =
            vec![r#"{"type":"desk_message","id":3,"conversation":2,"text":"<hi>"}"#.into()];
        let view =
            |from: Option<(&'static str, &'static str)>, earlier: Option<usize>| ConversationView {
                conversation: 2,
                visitor: "访客",
                sub: Some("s1"),
                agent: None,
                contact: None,
                previous: 0,
                offline: false,
                online: true,
                opened: 5,
                waiting_since: 6,
                from: from.map(|(f, _)| f),
                note: from.map(|(_, n)| n),
                earlier,
                messages: StoredList(&stored),
            };
        let written = |kind: &str, extra: &[(&str, &str)], earlier: usize| {
            let mut v = Object::new()
                .field("type", kind)
                .field("conversation", 2)
                .field("visitor", "访客")
                .field("sub", "s1")
                .field("previous", 0)
                .field("online", true)
                .field("opened", 5)
                .field("waiting_since", 6);
            for (k, x) in extra {
                v = v.field(k, x);
            }
            if earlier > 0 {
                v = v.field("earlier", earlier);
            }
            v.json_list("messages", &stored).finish()
        };
        let mine = [Message::Conversation(view(None, None))];
        let cases = [
            (
                Message::Hello { auth: "send \"x\"" }.to_json(),
                ordered! {"type": "hello", "auth": "send \"x\""},
            ),
            (
                Message::Welcome {
                    session: Some("t"),
                    name: "n",
                    resumed: false,
                    conversation: None,
                    max_text_bytes: 4096,
                }
                .to_json(),
                ordered! {"type": "welcome", "session": Some("t"), "name": "n", "resumed": false, "conversation": None::<u64>, "max_text_bytes": 4096},
            ),
            (
                Message::WelcomeVerified {
                    name: "n",
                    sub: "s",
                    verified: true,
                    resumed: true,
                    conversation: Some(2),
                    max_text_bytes: 4096,
                }
                .to_json(),
                ordered! {"type": "welcome", "name": "n", "sub": "s", "verified": true, "resumed": true, "conversation": Some(2), "max_text_bytes": 4096},
            ),
            (
                Message::Transcript {
                    conversation: 2,
                    state: "resolved",
                    agent: None,
                    rating: Some(None),
                    earlier: Some(4),
                    messages: StoredList(&stored),
                }
                .to_json(),
                Object::new()
                    .field("type", "transcript")
                    .field("conversation", 2)
                    .field("state", "resolved")
                    .field("rating", None::<u64>)
                    .field("earlier", 4)
                    .json_list("messages", &stored)
                    .finish(),
            ),
            (
                Message::Transcript {
                    conversation: 2,
                    state: "assigned",
                    agent: Some("a"),
                    rating: None,
                    earlier: None,
                    messages: StoredList(&stored),
                }
                .to_json(),
                Object::new()
                    .field("type", "transcript")
                    .field("conversation", 2)
                    .field("state", "assigned")
                    .field("agent", "a")
                    .json_list("messages", &stored)
                    .finish(),
            ),
            (
                Message::Queued {
                    conversation: 2,
                    position: 1,
                    agents_online: 0,
                }
                .to_json(),
                ordered! {"type": "queued", "conversation": 2, "position": 1, "agents_online": 0},
            ),
            (
                Message::Assigned {
                    conversation: 2,
                    agent: "a",
                }
                .to_json(),
                ordered! {"type": "assigned", "conversation": 2, "agent": "a"},
            ),
            (
                Message::Conversation(view(None, None)).to_json(),
                written("conversation", &[], 0),
            ),
            (
                Message::AssignedConversation(view(Some(("b", "note")), Some(3))).to_json(),
                written("assigned", &[("from", "b"), ("note", "note")], 3),
            ),
            (
                Message::Conversations {
                    conversations: &mine,
                }
                .to_json(),
                format!(
                    "{{\"type\":\"conversations\",\"conversations\":[{}]}}",
                    [written("conversation", &[], 0)].join(",")
                ),
            ),
            (
                Message::Ready {
                    agent: "a",
                    status: "online",
                    capacity: 3,
                    role: "agent",
                }
                .to_json(),
                ordered! {"type": "ready", "agent": "a", "status": "online", "capacity": 3, "role": "agent"},
            ),
            (
                Message::Agents {
                    capacity: 3,
                    agents: &[AgentRow {
                        name: "a",
                        status: "away",
                        load: 1,
                        capacity: 2,
                        role: "supervisor",
                    }],
                }
                .to_json(),
                Object::new()
                    .field("type", "agents")
                    .field("capacity", 3)
                    .json_list(
                        "agents",
                        &[ordered! {"name": "a", "status": "away", "load": 1, "capacity": 2, "role": "supervisor"}],
                    )
                    .finish(),
            ),
            (
                Message::Queue {
                    queue: &[QueueRow {
                        conversation: 2,
                        visitor: "v",
                        online: false,
                        waiting_since: 6,
                        messages: 7,
                    }],
                }
                .to_json(),
                Object::new()
                    .field("type", "queue")
                    .json_list(
                        "queue",
                        &[ordered! {"conversation": 2, "visitor": "v", "online": false, "waiting_since": 6, "messages": 7}],
                    )
                    .finish(),
            ),
            (
                Message::VisitorStatus {
                    conversation: 2,
                    online: true,
                }
                .to_json(),
                ordered! {"type": "visitor_status", "conversation": 2, "online": true},
            ),
            (
                Message::AgentStatus {
                    conversation: 2,
                    agent: "a",
                    online: false,
                }
                .to_json(),
                ordered! {"type": "agent_status", "conversation": 2, "agent": "a", "online": false},
            ),
            (
                Message::Presence { status: "away" }.to_json(),
                ordered! {"type": "presence", "status": "away"},
            ),
            (
                Message::Typing {
                    conversation: 2,
                    from: "agent",
                    active: true,
                }
                .to_json(),
                ordered! {"type": "typing", "conversation": 2, "from": "agent", "active": true},
            ),
            (
                Message::Resolved {
                    conversation: 2,
                    by: None,
                }
                .to_json(),
                ordered! {"type": "resolved", "conversation": 2},
            ),
            (
                Message::Rated {
                    conversation: 2,
                    stars: 5,
                    rating: 5,
                    comment: None,
                }
                .to_json(),
                ordered! {"type": "rated", "conversation": 2, "stars": 5, "rating": 5},
            ),
            (
                Message::Unassigned {
                    conversation: 2,
                    agent: "a",
                    to: None,
                }
                .to_json(),
                ordered! {"type": "unassigned", "conversation": 2, "agent": "a", "to": None::<&str>},
            ),
        ];
        for (typed, written) in cases {
            assert_eq!(typed, written);
        }
    }

    /// The messages and records the desk's later features added (capacity
    /// and role, contacts, earlier conversations, ratings with comments,
    /// end chat, abandon, hours, canned replies) are the lines
    /// docs/customer-service.md shows.
    #[test]
    fn later_messages_are_what_the_docs_show() {
        let contact = Contact {
            email: Some("wang@example.com".into()),
            first_seen: 1767125600000,
            last_seen: 1767225605000,
            ..Contact::default()
        };
        let none: Vec<Arc<str>> = Vec::new();
        let previous = [PreviousView {
            conversation: 30,
            opened: 1767125600000,
            state: "resolved",
            agent: Some("Lee"),
            rating: Some(5),
            comment: Some("great"),
            earlier: None,
            messages: StoredList(&none),
        }];
        let replies = [crate::desk::canned::Reply {
            shortcut: "hi".into(),
            text: "您好,请问有什么可以帮您?".into(),
            by: Some("小王".into()),
        }];
        let cases = [
            (
                Message::Contact {
                    name: "Ann",
                    email: Some("ann@example.com"),
                }
                .to_json(),
                r#"{"type":"contact","name":"Ann","email":"ann@example.com"}"#,
            ),
            (
                Message::Hours {
                    open: false,
                    back: Some(1767574800000),
                    email: false,
                }
                .to_json(),
                r#"{"type":"hours","open":false,"back":1767574800000,"email":false}"#,
            ),
            (
                Message::Account {
                    agent: "小王",
                    capacity: 3,
                    role: "agent",
                }
                .to_json(),
                r#"{"type":"account","agent":"小王","capacity":3,"role":"agent"}"#,
            ),
            (
                Message::AssignedConversation(ConversationView {
                    conversation: 45,
                    visitor: "王先生",
                    sub: Some("customer-7"),
                    agent: Some("小王"),
                    contact: Some(&contact),
                    previous: 0,
                    offline: true,
                    online: true,
                    opened: 1767225606000,
                    waiting_since: 1767225606000,
                    from: None,
                    note: None,
                    earlier: None,
                    messages: StoredList(&none),
                })
                .to_json(),
                r#"{"type":"assigned","conversation":45,"visitor":"王先生","sub":"customer-7","agent":"小王","contact":{"email":"wang@example.com","first_seen":1767125600000,"last_seen":1767225605000},"previous":0,"offline":true,"online":true,"opened":1767225606000,"waiting_since":1767225606000,"messages":[]}"#,
            ),
            (
                Message::Unassigned {
                    conversation: 41,
                    agent: "小王",
                    to: Some("Lee"),
                }
                .to_json(),
                r#"{"type":"unassigned","conversation":41,"agent":"小王","to":"Lee"}"#,
            ),
            (
                Message::Visitor {
                    conversation: 44,
                    visitor: "Wang",
                    sub: None,
                    contact: Some(&contact),
                    previous: &previous,
                }
                .to_json(),
                r#"{"type":"visitor","conversation":44,"visitor":"Wang","contact":{"email":"wang@example.com","first_seen":1767125600000,"last_seen":1767225605000},"previous":[{"conversation":30,"opened":1767125600000,"state":"resolved","agent":"Lee","rating":5,"comment":"great","messages":[]}]}"#,
            ),
            (
                Message::Resolved {
                    conversation: 41,
                    by: Some("visitor"),
                }
                .to_json(),
                r#"{"type":"resolved","conversation":41,"by":"visitor"}"#,
            ),
            (
                Message::Rated {
                    conversation: 41,
                    stars: 4,
                    rating: 4,
                    comment: Some("quick, thanks"),
                }
                .to_json(),
                r#"{"type":"rated","conversation":41,"stars":4,"rating":4,"comment":"quick, thanks"}"#,
            ),
            (
                Message::RatedAgent {
                    conversation: 41,
                    stars: 4,
                    comment: Some("quick, thanks"),
                    visitor: "访客3",
                    agent: Some("小王"),
                    time: 1767225900000,
                }
                .to_json(),
                r#"{"type":"rated","conversation":41,"stars":4,"comment":"quick, thanks","visitor":"访客3","agent":"小王","time":1767225900000}"#,
            ),
            (
                Message::Canned { replies: &replies }.to_json(),
                r#"{"type":"canned","replies":[{"shortcut":"hi","text":"您好,请问有什么可以帮您?","by":"小王"}]}"#,
            ),
            (
                Entry::DeskResolved {
                    id: 9,
                    conversation: 2,
                    agent: None,
                    by: "abandoned",
                    time: 7,
                }
                .to_json(),
                r#"{"type":"desk_resolved","id":9,"conversation":2,"by":"abandoned","time":7}"#,
            ),
            (
                Entry::DeskOpened {
                    id: 2,
                    conversation: 2,
                    session: "k",
                    visitor: "v",
                    sub: None,
                    offline: true,
                    time: 9,
                }
                .to_json(),
                r#"{"type":"desk_opened","id":2,"conversation":2,"session":"k","visitor":"v","offline":true,"time":9}"#,
            ),
            (
                Entry::DeskRated {
                    id: 8,
                    conversation: 2,
                    rating: 2,
                    comment: Some("slow"),
                    time: 9,
                }
                .to_json(),
                r#"{"type":"desk_rated","id":8,"conversation":2,"rating":2,"comment":"slow","time":9}"#,
            ),
            (
                Entry::DeskContact {
                    id: 3,
                    session: "k",
                    number: Some(3),
                    name: "访客3",
                    email: None,
                    page: Some("https://shop.example/cart"),
                    referrer: None,
                    browser: Some("Mozilla/5.0"),
                    time: 9,
                }
                .to_json(),
                r#"{"type":"desk_contact","id":3,"session":"k","number":3,"name":"访客3","page":"https://shop.example/cart","browser":"Mozilla/5.0","time":9}"#,
            ),
        ];
        for (typed, shown) in cases {
            assert_eq!(typed, shown);
        }
    }

    #[test]
    fn records_are_what_ordered_wrote() {
        let cases = [
            (
                Entry::DeskOpened {
                    id: 2,
                    conversation: 2,
                    session: "k",
                    visitor: "v",
                    sub: None,
                    offline: false,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_opened", "id": 2, "conversation": 2, "session": "k", "visitor": "v", "time": 9},
            ),
            (
                Entry::DeskMessage {
                    id: 3,
                    conversation: 2,
                    from: "visitor",
                    name: "v",
                    bot: false,
                    text: "t",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_message", "id": 3, "conversation": 2, "from": "visitor", "name": "v", "text": "t", "time": 9},
            ),
            (
                Entry::DeskMessage {
                    id: 4,
                    conversation: 2,
                    from: "bot",
                    name: "b",
                    bot: true,
                    text: "t",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_message", "id": 4, "conversation": 2, "from": "bot", "name": "b", "bot": true, "text": "t", "time": 9},
            ),
            (
                Entry::DeskAssigned {
                    id: 5,
                    conversation: 2,
                    agent: "a",
                    from: Some("b"),
                    note: Some("n"),
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_assigned", "id": 5, "conversation": 2, "agent": "a", "from": "b", "note": "n", "time": 9},
            ),
            (
                Entry::DeskQueued {
                    id: 6,
                    conversation: 2,
                    reason: "transferred",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_queued", "id": 6, "conversation": 2, "reason": "transferred", "time": 9},
            ),
            (
                Entry::DeskResolved {
                    id: 7,
                    conversation: 2,
                    agent: Some(None),
                    by: "api",
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_resolved", "id": 7, "conversation": 2, "agent": None::<&str>, "by": "api", "time": 9},
            ),
            (
                Entry::DeskRated {
                    id: 8,
                    conversation: 2,
                    rating: 4,
                    comment: None,
                    time: 9,
                }
                .to_json(),
                ordered! {"type": "desk_rated", "id": 8, "conversation": 2, "rating": 4, "time": 9},
            ),
        ];
        for (typed, written) in cases {
            assert_eq!(typed, written);
        }
    }
}
