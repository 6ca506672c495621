//! The store as the hub owns it: the [`Log`] an application records
//! through and reads back from.
//!
//! The hub thread owns one `Box<dyn Log>` and lends it to the application
//! through [`Ctx::log`](super::Ctx::log) for the length of each call, so no
//! lock is needed. An application takes ids and appends the records of
//! its turn; the hub calls [`Log::commit`] once at the end of the turn,
//! *before* anything the turn sent goes out, and on failure delivers none
//! of the turn's published messages (their senders get `unavailable`, and
//! [`App::refused`](super::App::refused) is told their ids).
//!
//! Two implementations exist or are planned: the embedded log
//! ([`crate::store::Store`], segment files in a data directory) and, for
//! several nodes, Redis (docs/architecture.md, "The store behind the
//! hub"). [`NoLog`] keeps nothing, for applications that store nothing.
//!
//! ```
//! use wschat::hub::log::{Log, NoLog, Record};
//!
//! let mut log = NoLog::default();
//! let id = log.take_id();
//! let json = format!(r#"{{"type":"chat","id":{id},"room":"lobby","text":"hi"}}"#);
//! log.append(Record::Room { room: "lobby", json: &json });
//! assert_eq!(log.commit().unwrap(), false); // nothing to write
//! assert!(log.history("lobby", None, 10).messages.is_empty());
//! ```

use std::any::Any;
use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use serde_json::Value;

use crate::memory::Budget;

/// One record of a turn, as the application appends it: the JSON exactly
/// as it is stored (and, for a message, as clients receive it), and what
/// the log needs to know to file it without reading the JSON: which
/// stream it is read back from, and what happens to it when the turn's
/// write fails.
///
/// Every record's JSON has a numeric `id` taken with [`Log::take_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A message of room `room` (`{"type":"chat",…}`): read back by
    /// [`Log::history`] and [`Log::since`]. Refused if the write fails.
    Room {
        /// The room: the stream it belongs to.
        room: &'a str,
        /// The record.
        json: &'a str,
    },
    /// A private message from session key `from` to session key `to`
    /// (keys, never names: see [`crate::store::digest_hex`]): read back by
    /// [`Log::private_page`], [`Log::since`] and [`Log::privates_since`].
    /// Refused if the write fails.
    Private {
        /// The sender's session key.
        from: &'a str,
        /// The addressee's session key.
        to: &'a str,
        /// The record.
        json: &'a str,
    },
    /// Another message (a desk message): refused if the write fails,
    /// read back only by [`Log::replay`].
    Message {
        /// The record.
        json: &'a str,
    },
    /// A state record (a membership change, an identity, a desk event):
    /// the state it records has happened, so if the write fails it is
    /// kept and written with the next one. Read back by [`Log::replay`].
    State {
        /// The record.
        json: &'a str,
    },
}

impl Record<'_> {
    /// The record's JSON.
    pub fn json(&self) -> &str {
        match *self {
            Record::Room { json, .. }
            | Record::Private { json, .. }
            | Record::Message { json }
            | Record::State { json } => json,
        }
    }

    /// Whether it is a message: refused, not carried over, when the
    /// turn's write fails.
    pub fn is_message(&self) -> bool {
        !matches!(self, Record::State { .. })
    }
}

/// What [`Log::commit_turn`] answers: the turn's result now, or later.
#[derive(Debug)]
pub enum Commit {
    /// The write is done (or failed): what [`Log::commit`] answers.
    Done(io::Result<bool>),
    /// The write was sent and completes later: the log reports its result
    /// as an [`Outcome::Committed`] from [`Log::handle`], in the order the
    /// turns were committed. The hub keeps the turn's sends and answers
    /// until then.
    Pending,
}

/// Something a log's own threads tell the hub (a reply from the network,
/// a subscription's push): opaque to the hub, which hands it back to
/// [`Log::handle`] on the hub thread.
pub type LogEvent = Box<dyn Any + Send>;

/// What [`Log::handle`] makes of a [`LogEvent`].
#[derive(Debug)]
pub enum Outcome {
    /// The oldest turn still waiting ([`Commit::Pending`]) has its result.
    Committed {
        /// As [`Log::commit`]'s.
        result: io::Result<bool>,
        /// On success, the ids (as taken with [`Log::take_id`] and given
        /// to [`Ctx::publish`](super::Ctx::publish)) of the turn's messages
        /// that the log delivers itself, through [`Outcome::Deliver`]: the
        /// hub drops the turn's sends of them.
        delivered_by_log: Vec<u64>,
        /// On success, the ids of the turn's messages that were not stored
        /// after all: refused as a failed turn's are (their senders told
        /// `unavailable`, [`App::refused`](super::App::refused)), while
        /// the rest of the turn goes out.
        refused: Vec<u64>,
        /// On success, (provisional, final) for each of the turn's
        /// messages whose id the store decided itself (a Redis append
        /// script): the turn's API answers name the final ids.
        final_ids: Vec<(u64, u64)>,
    },
    /// A stored message of `room`, to deliver to this server's members of
    /// the room, in the log's order (through
    /// [`App::log_message`](super::App::log_message)).
    Deliver {
        /// The room.
        room: String,
        /// The message as stored (its id the one it is stored under).
        json: Arc<str>,
    },
    /// A stored private message from key `from` to key `to`, to deliver to
    /// this server's connections of both users (through
    /// [`App::log_private`](super::App::log_private)).
    Private {
        /// The sender's key.
        from: String,
        /// The addressee's key.
        to: String,
        /// The message as stored (its id the one it is stored under).
        json: Arc<str>,
    },
    /// A user's presence in a room on *other* servers of the cluster
    /// changed (through
    /// [`App::log_presence`](super::App::log_presence)): `Some(name)`, it
    /// is there now (it was on none before); `None`, it is on none any
    /// more (it left, or its server died).
    Presence {
        /// The room.
        room: String,
        /// The user's id.
        user: u64,
        /// Its name while present; `None` once gone.
        name: Option<String>,
    },
    /// An event another server of the cluster published to `room` (not
    /// stored: typing, a new name), through
    /// [`App::log_event`](super::App::log_event).
    Event {
        /// The room.
        room: String,
        /// The event, as the app published it ([`Log::publish`]).
        json: Arc<str>,
    },
    /// A ban made on another server of the cluster (through
    /// [`App::log_ban`](super::App::log_ban)).
    Banned {
        /// What is banned (as the app gave it to [`Log::ban`]).
        key: String,
        /// When the ban ends, epoch ms.
        until: u64,
    },
    /// The log's health: `Some(why)` while it cannot write (`/healthz`
    /// answers 503 with `why`), `None` again when it can.
    Health(Option<String>),
}

/// Where the desk runs ([`Log::desk_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeskRole {
    /// Here, on this server's own records (no cluster).
    Alone,
    /// On another server of the cluster (this one forwards its
    /// connections there).
    Elsewhere,
    /// This server took the desk and is reading its records: it serves
    /// nobody yet.
    Loading,
    /// Here, rebuilt from [`Log::take_desk_records`]; the number changes
    /// each time this server takes the desk again.
    Here(u64),
}

/// A range of messages read back, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The messages' JSON, as stored.
    pub messages: Vec<Arc<str>>,
    /// `None` when nothing in the range is missing; else the first id from
    /// which the answer is known to be whole (older messages are gone:
    /// retention, a corrupt record, or memory let them go with no log to
    /// read them from). The chat says `"complete":false` then.
    pub missing: Option<u64>,
}

/// A private conversation of one session key, as [`Log::private_peers`]
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The other side's session key.
    pub peer: String,
    /// The latest message's JSON.
    pub last: Arc<str>,
    /// Messages from the peer after what the key has read.
    pub unread: usize,
}

/// The store the hub owns: ids, the turn's records, the write at the end
/// of the turn, and the ranges an application reads back.
///
/// Calls come from the hub thread only, in the order the application
/// makes them. What a turn appends is visible to reads at once (the same
/// turn's history page shows a message just sent); it is durable only
/// once [`Log::commit`] has returned `Ok`.
pub trait Log: Send + Debug {
    /// The next id, taken: ids increase across the server (the cluster,
    /// with Redis) and never repeat, restarts included.
    fn take_id(&mut self) -> u64;

    /// The user id of the verified identity `sub` on every node of the
    /// cluster: the one given to it first, anywhere, or `proposed` (a
    /// fresh id of this node's) if it has none yet. A store that serves
    /// one node alone answers `proposed`.
    fn identity_of(&mut self, _sub: &str, proposed: u64) -> u64 {
        proposed
    }

    /// The desk's agent accounts, when the store keeps them (a cluster's,
    /// in Redis: docs/cluster.md): a version that changes whenever they
    /// do, and each account's JSON. `None`: the store keeps none, and the
    /// desk reads `agents.json` in its data directory.
    fn agent_accounts(&mut self) -> Option<(String, Arc<Vec<String>>)> {
        None
    }

    /// The desk's canned replies, when the store keeps them (a cluster's):
    /// a version that changes whenever they do, and each reply's JSON.
    /// `None`: the store keeps none, and the desk reads `canned.json`.
    fn canned_replies(&mut self) -> Option<(String, Arc<Vec<String>>)> {
        None
    }

    /// Set canned reply `shortcut` to `json` (`None`: remove it) in the
    /// store that keeps them ([`Log::canned_replies`]), unless it is new
    /// and there are `most` already; without waiting. False: not sent
    /// (the store keeps none, or cannot reach where it keeps them).
    fn change_canned(&mut self, _shortcut: &str, _json: Option<&str>, _most: usize) -> bool {
        false
    }

    /// Where the desk runs: here alone (a single server's store), or, with
    /// a store several servers share (a cluster's: docs/cluster.md, "The
    /// desk"), on whichever holds it now.
    fn desk_role(&mut self) -> DeskRole {
        DeskRole::Alone
    }

    /// The desk's records as read when this server took the desk
    /// ([`DeskRole::Here`]), oldest first: given once.
    fn take_desk_records(&mut self) -> Option<Vec<Arc<str>>> {
        None
    }

    /// An anonymous user was created with the session whose digest is
    /// `digest`: a cluster's store records it for the other nodes.
    fn session_created(&mut self, _digest: &str, _user: u64) {}

    /// The user id the session with this `digest` was created with on
    /// another node, if any (a single node's store knows none).
    fn session_of(&mut self, _digest: &str) -> Option<u64> {
        None
    }

    /// User `user` is named `name` now (created or renamed): a cluster's
    /// store records it, so that other nodes can name the user.
    fn user_named(&mut self, _user: u64, _name: &str) {}

    /// The name of user `user` as a node of the cluster last recorded it,
    /// for a user this node does not know (a single node's store knows
    /// none).
    fn user_name(&mut self, _user: u64) -> Option<String> {
        None
    }

    /// User `user` (named `name`) is in `room` on this server now (its
    /// first connection there): a cluster's store tells the other nodes.
    fn present(&mut self, _room: &str, _user: u64, _name: &str) {}

    /// User `user` is no longer in `room` on this server.
    fn absent(&mut self, _room: &str, _user: u64) {}

    /// The members of `room` on the cluster's other servers, with their
    /// names (none for a store that serves one server alone); changes
    /// come as [`Outcome::Presence`].
    fn members(&mut self, _room: &str) -> Vec<(u64, String)> {
        Vec::new()
    }

    /// Publish `json` (not stored) to `room` on the cluster's other
    /// servers ([`Outcome::Event`] there); a single server's store drops
    /// it.
    fn publish(&mut self, _room: &str, _json: &str) {}

    /// Ban `keys` until `until` (epoch ms) on every server of the cluster
    /// ([`Outcome::Banned`] on the others; [`Log::bans`] at their start).
    fn ban(&mut self, _keys: &[String], _until: u64) {}

    /// The bans made on the cluster (key, end), read at start.
    fn bans(&mut self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// Append a record of this turn. It is indexed at once and written by
    /// the next [`Log::commit`].
    fn append(&mut self, record: Record<'_>);

    /// Write what this turn appended, before anything the turn sent is
    /// delivered. `Ok(true)`: written; `Ok(false)`: there was nothing to
    /// write (or the log keeps nothing). An error means none of the
    /// turn's messages ([`Record::is_message`]) was stored: they are taken
    /// out of the indexes and must reach nobody; its state records are
    /// kept for the next write.
    fn commit(&mut self) -> io::Result<bool>;

    /// What the hub calls at the end of a turn: a log whose writes go over
    /// the network answers [`Commit::Pending`] and the result later, from
    /// [`Log::handle`]. By default, [`Log::commit`]'s result at once.
    fn commit_turn(&mut self) -> Commit {
        Commit::Done(self.commit())
    }

    /// Where the log's own threads send what the hub must hand back to
    /// [`Log::handle`]; `None` (the default) for a log with no threads.
    fn events(&self) -> Option<Receiver<LogEvent>> {
        None
    }

    /// One of the log's events, on the hub thread: what follows from it.
    fn handle(&mut self, event: LogEvent) -> Vec<Outcome> {
        let _ = event;
        Vec::new()
    }

    /// Called on every hub tick: evict what is over the memory budget,
    /// apply retention now and then.
    fn tick(&mut self) {}

    /// The last `limit` messages of `room` with an id below `before`,
    /// oldest first.
    fn history(&mut self, room: &str, before: Option<u64>, limit: usize) -> Page;

    /// Everything after id `after` that the user with session key `key`
    /// in `room` should have seen: the room's messages and the private
    /// messages to or from `key`, in id order (a resume).
    fn since(&mut self, room: &str, key: &str, after: u64) -> Page;

    /// The private messages to or from session key `key` after id
    /// `after`, in id order: what a user who was offline missed.
    fn privates_since(&mut self, key: &str, after: u64) -> Vec<Arc<str>>;

    /// The last `limit` private messages between session keys `a` and `b`
    /// (either way) with an id below `before`, oldest first.
    fn private_page(&mut self, pair: (&str, &str), before: Option<u64>, limit: usize) -> Page;

    /// The private conversations of session key `me`, newest first;
    /// `read(peer)` is the id up to which `me` has read `peer`'s messages.
    fn private_peers(&mut self, me: &str, read: &dyn Fn(&str) -> u64) -> Vec<Conversation>;

    /// Delete room message `id` (moderation): never served again, and a
    /// tombstone is recorded. Returns its room, or `None` when there is no
    /// such room message (or it was deleted already).
    fn delete(&mut self, id: u64) -> Option<String>;

    /// Room message `id` as it is served now (its latest version), or
    /// `None` when there is no such room message (or it was deleted). A
    /// log that keeps no versions answers `None`.
    fn message(&mut self, _id: u64) -> Option<Arc<str>> {
        None
    }

    /// Replace room message `id` by `json`, a later version of it (an
    /// edit, a reaction): history and resume serve it from now on, and a
    /// `replaced` record in the log keeps it across restarts. Returns the
    /// message's room, or `None` when there is no such room message (or
    /// the log keeps no versions).
    fn replace(&mut self, _id: u64, _json: &str) -> Option<String> {
        None
    }

    /// Hand every stored record whose JSON contains one of `needles` to
    /// `each` (its JSON and its parsed value), oldest first: how an
    /// application rebuilds state of its own at start.
    fn replay(&self, needles: &[&str], each: &mut dyn FnMut(&str, &Value));

    /// The memory budget the log's kept messages count against, if it
    /// has one (shared with the applications and `/metrics`).
    fn budget(&self) -> Option<Arc<Budget>> {
        None
    }

    /// The data directory, when the log writes to one (administrative
    /// files such as `bans.json` live beside it).
    fn data_dir(&self) -> Option<&Path> {
        None
    }
}

/// A log that keeps nothing: ids count up from 1, records are dropped,
/// every commit succeeds with nothing written, every range is empty. What
/// the hub runs an application with when it was given no store.
#[derive(Debug, Default)]
pub struct NoLog {
    last_id: u64,
}

impl Log for NoLog {
    fn take_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    fn append(&mut self, _record: Record<'_>) {}

    fn commit(&mut self) -> io::Result<bool> {
        Ok(false)
    }

    fn history(&mut self, _room: &str, _before: Option<u64>, _limit: usize) -> Page {
        Page::default()
    }

    fn since(&mut self, _room: &str, _key: &str, _after: u64) -> Page {
        Page::default()
    }

    fn privates_since(&mut self, _key: &str, _after: u64) -> Vec<Arc<str>> {
        Vec::new()
    }

    fn private_page(&mut self, _pair: (&str, &str), _before: Option<u64>, _limit: usize) -> Page {
        Page::default()
    }

    fn private_peers(&mut self, _me: &str, _read: &dyn Fn(&str) -> u64) -> Vec<Conversation> {
        Vec::new()
    }

    fn delete(&mut self, _id: u64) -> Option<String> {
        None
    }

    fn replay(&self, _needles: &[&str], _each: &mut dyn FnMut(&str, &Value)) {}
}
