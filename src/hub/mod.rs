//! The hub: one thread that owns all application state.
//!
//! Connection threads never touch chat state. They decode messages and push
//! [`Event`]s onto a crossbeam channel; the hub thread takes them one at a
//! time and hands them to an [`App`] — the chat, the support desk, or one of
//! your own. Since only the hub thread ever sees the state, there are no
//! locks around it.
//!
//! The hub handles events in *turns*: it blocks for one event, then takes
//! whatever else is already waiting (up to [`MAX_TURN_EVENTS`]), and calls
//! [`App::turn_end`] once, so that an app can send one notice for many joins.
//!
//! An app talks back through a [`Ctx`]: send a frame to one connection, the
//! same encoded bytes to many, or close one. It records through the hub's
//! store, [`Ctx::log`] (a [`log::Log`]: the embedded log, or any other
//! implementation). What a turn sends goes out at the end of the turn,
//! after the hub has committed the turn's records ([`log::Log::commit`]).
//! Delivery never blocks the hub (see [`peer`]).
//!
//! ```
//! use wschat::hub::{App, ConnId, ConnInfo, Ctx};
//!
//! /// Every text message goes back to everyone, as the first seed's
//! /// nodejs-websocket broadcast does with `server.connections`.
//! #[derive(Default)]
//! struct Broadcast;
//!
//! impl App for Broadcast {
//!     fn opened(&mut self, _ctx: &mut Ctx, _conn: ConnId, _info: ConnInfo) {}
//!     fn text(&mut self, ctx: &mut Ctx, _from: ConnId, text: String) {
//!         let frame = Ctx::text_frame(&text);
//!         let everyone: Vec<ConnId> = ctx.connections().collect();
//!         ctx.broadcast(everyone, &frame);
//!     }
//!     fn closed(&mut self, _ctx: &mut Ctx, _conn: ConnId) {}
//! }
//! ```

pub mod api;
pub mod log;
pub mod metrics;
pub mod peer;
pub mod prepared;
mod reply;

pub use reply::ErrorReply;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::ws::handshake::Request;
use crate::ws::{CloseCode, Message};
use api::{ApiRequest, ApiResponse};
use log::{Commit, Log, LogEvent, NoLog, Outcome};
use metrics::Metrics;
use peer::{Bytes, Delivery, Peer};
use prepared::{PeerDeflate, PreparedFrame};

/// Most events handled in one turn before [`App::turn_end`] runs.
pub const MAX_TURN_EVENTS: usize = 1024;

/// How often [`App::tick`] runs.
pub const TICK_INTERVAL: Duration = Duration::from_millis(500);

/// A connection's id: unique for the life of the process, starting at 1.
pub type ConnId = u64;

/// What the hub learns about a new connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The name of the mount it came through (`chat`, `support`,
    /// `agent`, …: what the server was told with `server::Builder::app`),
    /// which says which of the application's endpoints this is. The
    /// server's routes decided it from the path; the hub and its
    /// applications do not look at paths.
    pub mount: &'static str,
    /// The upgrade request (query parameters, headers).
    pub request: Request,
    /// The client's address (after `--trust-proxy`, the forwarded one).
    pub addr: String,
    /// Its write side.
    pub peer: Arc<Peer>,
}

/// What connection threads tell the hub.
#[derive(Debug)]
pub enum Event {
    /// A WebSocket connection completed its handshake.
    Opened(ConnId, ConnInfo),
    /// A text message arrived.
    Text(ConnId, String),
    /// A binary message arrived.
    Binary(ConnId, Vec<u8>),
    /// The connection ended (its reader is gone).
    Closed(ConnId),
    /// A request of the HTTP API, and where its answer goes (after the
    /// turn's store write; see [`App::api`]).
    Api(ApiRequest, Sender<ApiResponse>),
    /// Stop: close every connection with 1001 and return.
    Shutdown,
}

/// An application run by the hub. Each method runs on the hub thread.
pub trait App {
    /// A connection opened.
    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo);
    /// A text message arrived from `conn`.
    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String);
    /// A binary message arrived from `conn`; ignored unless overridden.
    fn binary(&mut self, ctx: &mut Ctx, conn: ConnId, data: Vec<u8>) {
        let _ = (ctx, conn, data);
    }
    /// `conn` is gone; it can no longer be sent to.
    fn closed(&mut self, ctx: &mut Ctx, conn: ConnId);
    /// Called every [`TICK_INTERVAL`] or so.
    fn tick(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    /// Called after each turn of events.
    fn turn_end(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    /// A stored message of `room` that the store delivers itself (a
    /// store shared by several servers, whose messages reach this one in
    /// the log's order: [`log::Outcome::Deliver`]): send it to this
    /// server's members of the room. Ignored unless overridden.
    fn log_message(&mut self, ctx: &mut Ctx, room: &str, json: &Arc<str>) {
        let _ = (ctx, room, json);
    }
    /// A stored private message from key `from` to key `to` that the
    /// store delivers itself ([`log::Outcome::Private`]): send it to this
    /// server's connections of both users. Ignored unless overridden.
    fn log_private(&mut self, ctx: &mut Ctx, from: &str, to: &str, json: &Arc<str>) {
        let _ = (ctx, from, to, json);
    }
    /// A user's presence in `room` on the cluster's other servers changed
    /// ([`log::Outcome::Presence`]): `Some(name)`, there now; `None`, gone.
    /// Ignored unless overridden.
    fn log_presence(&mut self, ctx: &mut Ctx, room: &str, user: u64, name: Option<&str>) {
        let _ = (ctx, room, user, name);
    }
    /// An event another server published to `room`
    /// ([`log::Outcome::Event`]). Ignored unless overridden.
    fn log_event(&mut self, ctx: &mut Ctx, room: &str, json: &Arc<str>) {
        let _ = (ctx, room, json);
    }
    /// A ban made on another server ([`log::Outcome::Banned`]). Ignored
    /// unless overridden.
    fn log_ban(&mut self, ctx: &mut Ctx, key: &str, until: u64) {
        let _ = (ctx, key, until);
    }
    /// The server is stopping: last words before every connection gets
    /// Close 1001.
    fn shutdown(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    /// The memory budget the app's kept data counts against, if it has
    /// one: `/metrics` reports it (see [`crate::memory`]).
    fn budget(&self) -> Option<Arc<crate::memory::Budget>> {
        None
    }
    /// The app's own figures for `/metrics`, if it has some.
    fn figures(&self) -> Vec<Arc<dyn metrics::Figures>> {
        Vec::new()
    }
    /// The turn's records are stored ([`Log::commit`] returned `Ok`, and
    /// with them the state records a failed write had kept back): what
    /// the app held back until then may leave now (the desk's webhook
    /// events). Called before the turn's messages are delivered.
    fn stored(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }
    /// The turn's store write ([`Log::commit`]) failed: the messages with these ids (given
    /// to [`Ctx::publish`]) were not stored and reach nobody; their senders
    /// have been told `unavailable`. An app that keeps them in memory
    /// forgets them here.
    fn refused(&mut self, ctx: &mut Ctx, ids: &[u64]) {
        let _ = (ctx, ids);
    }
    /// A request of the HTTP API (docs/api.md): the answer. What the app
    /// sends meanwhile goes out with the turn, like any other; a request
    /// that writes ([`ApiRequest::writes`]) is answered only once the
    /// turn's records are stored, and 503 `unavailable` if they could not
    /// be. The default knows no endpoint: 404.
    fn api(&mut self, ctx: &mut Ctx, request: &ApiRequest) -> ApiResponse {
        let _ = ctx;
        ApiResponse::no_route(request)
    }
}

/// What the sender of a message gets when the message cannot be stored.
pub const UNAVAILABLE: &str = r#"{"type":"error","code":"unavailable","message":"the message could not be stored, so it was not sent; try again later"}"#;

/// Something to do once the turn's records are stored.
#[derive(Debug)]
enum Out {
    One(ConnId, PreparedFrame),
    Many(Vec<ConnId>, PreparedFrame),
    Close(ConnId, CloseCode, String),
    /// A connection's place for a frame the app gives later in the turn
    /// ([`Ctx::hold`]); sends nothing if it never does.
    Held(ConnId),
}

/// A connection's place in a turn's sends, kept by [`Ctx::hold`] for a
/// frame given later in the same turn with [`Ctx::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The turn it belongs to ([`Ctx::turn`]).
    turn: u64,
    /// Its index in that turn's queue.
    at: usize,
    /// The connection it is for.
    conn: ConnId,
}

impl Held {
    /// The connection the place is for.
    pub fn conn(&self) -> ConnId {
        self.conn
    }
}

/// The hub's side of the connections: what an [`App`] uses to send.
///
/// Sends are queued during a turn and carried out after the hub has
/// committed the turn's records ([`Log::commit`]): so a message reaches
/// nobody before it is in the log (docs/storage.md), and everything one
/// turn sends goes out in order.
#[derive(Debug)]
pub struct Ctx {
    /// The store: owned by the hub, lent to the app with the context.
    log: Box<dyn Log>,
    peers: HashMap<ConnId, Arc<Peer>>,
    /// The connections that opened this turn: their 101s went out with
    /// what the turn sent them, or go out alone at its end
    /// ([`Peer::release_handshake`]).
    opened: Vec<Arc<Peer>>,
    metrics: Arc<Metrics>,
    queue: Vec<Out>,
    /// The sends of this turn that carry a stored message: their place in
    /// `queue`, the message's id and its sender.
    published: Vec<(usize, u64, Option<ConnId>)>,
    /// The API answers of this turn, sent after its store write: where
    /// each goes, the answer, and whether it waits on the write.
    answers: Vec<(Sender<ApiResponse>, ApiResponse, bool)>,
    /// Turns whose sends wait for their commit ([`Commit::Pending`]), or
    /// for an earlier turn's, oldest first: settled in this order.
    waiting: VecDeque<Waiting>,
    /// Why the store cannot write, as the store itself said
    /// ([`Outcome::Health`]): a write that succeeds meanwhile (a part of
    /// the store that still works) does not make `/healthz` healthy.
    log_unhealthy: Option<String>,
    /// How many times the store has said how it is ([`Outcome::Health`]):
    /// a failure of a turn parked before the latest such news is old news
    /// and does not set `/healthz`.
    health_news: u64,
    /// Turns ended so far: a [`Held`] place is good only in its own turn.
    turn: u64,
}

/// A turn's commit result: as [`Log::commit`]'s, with the messages the
/// store delivers itself and those it refused of a turn that succeeded
/// ([`Outcome::Committed`]).
#[derive(Debug)]
struct Settled {
    result: std::io::Result<bool>,
    by_log: Vec<u64>,
    refused: Vec<u64>,
    final_ids: Vec<(u64, u64)>,
}

impl Settled {
    fn now(result: std::io::Result<bool>) -> Settled {
        Settled {
            result,
            by_log: Vec::new(),
            refused: Vec::new(),
            final_ids: Vec::new(),
        }
    }
}

/// A turn kept until its commit's result arrives: its sends, published
/// ids and API answers, and the result once known.
#[derive(Debug)]
struct Waiting {
    queue: Vec<Out>,
    published: Vec<(usize, u64, Option<ConnId>)>,
    answers: Vec<(Sender<ApiResponse>, ApiResponse, bool)>,
    result: Option<Settled>,
    /// [`Ctx::health_news`] when it was parked.
    news: u64,
}

impl Ctx {
    /// A context with no connections and a store that keeps nothing
    /// ([`NoLog`]).
    pub fn new(metrics: Arc<Metrics>) -> Ctx {
        Ctx::with_log(metrics, Box::new(NoLog::default()))
    }

    /// A context with no connections, over the store `log`.
    pub fn with_log(metrics: Arc<Metrics>, log: Box<dyn Log>) -> Ctx {
        Ctx {
            log,
            peers: HashMap::new(),
            opened: Vec::new(),
            metrics,
            queue: Vec::new(),
            published: Vec::new(),
            answers: Vec::new(),
            waiting: VecDeque::new(),
            log_unhealthy: None,
            health_news: 0,
            turn: 0,
        }
    }

    /// The server's counters (an app keeps its own figures there, as the
    /// desk does in [`Metrics::desk`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The hub's store: take ids, append the turn's records, read ranges
    /// back. The hub commits it at the end of the turn.
    pub fn log(&mut self) -> &mut dyn Log {
        self.log.as_mut()
    }

    /// Encode a text message once, as a server frame, for sending to many
    /// (compressed at most once, for those who negotiated permessage-deflate:
    /// see [`PreparedFrame`]).
    pub fn text_frame(text: &str) -> PreparedFrame {
        Ctx::frame_of(crate::ws::OpCode::Text, text.len(), |payload| {
            payload.copy_from_slice(text.as_bytes())
        })
    }

    /// A final unmasked frame of `opcode` whose `len` payload bytes `fill`
    /// writes, made in one allocation of its exact size: the bytes every
    /// recipient shares, with no buffer first and a copy into the shared
    /// one after (`From<Vec<u8>>` for an `Arc<[u8]>` allocates and copies).
    fn frame_of(
        opcode: crate::ws::OpCode,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> PreparedFrame {
        let (header, header_len) = crate::ws::frame::FrameHeader::new(opcode, len as u64).encode();
        // `repeat_n` has an exact length, so the slice is allocated once,
        // at its size (zeroed), and written while nobody else holds it:
        // `make_mut` copies nothing then.
        let mut bytes: Bytes = std::iter::repeat_n(0u8, header_len + len).collect();
        let (head, payload) = Arc::make_mut(&mut bytes).split_at_mut(header_len);
        head.copy_from_slice(&header[..header_len]);
        fill(payload);
        PreparedFrame::new(bytes)
    }

    /// Encode a JSON text once, as a server frame, with `<`, `>` and `&`
    /// written as `\u003c`, `\u003e` and `\u0026`. That is the same JSON
    /// to any parser, and it keeps clients that put what they receive into
    /// `innerHTML` (as two of the seeds' pages do) from running markup a
    /// user typed. Only for JSON: in JSON those characters can only stand
    /// inside strings, where the escape means the same character.
    ///
    /// ```
    /// use wschat::hub::Ctx;
    /// let frame = Ctx::json_frame(r#"{"text":"<b>&"}"#);
    /// assert_eq!(&frame[2..], br#"{"text":"\u003cb\u003e\u0026"}"#);
    /// ```
    pub fn json_frame(json: &str) -> PreparedFrame {
        let bytes = json.as_bytes();
        // Counted a block at a time with no early exit inside a block, which
        // the compiler turns into vector compares: every newcomer to a
        // crowded room gets a page of 100 names (about 3 KB) through here.
        let specials: usize = bytes
            .chunks(64)
            .map(|block| block.iter().filter(|&&b| is_markup(b)).count())
            .sum();
        if specials == 0 {
            return Ctx::text_frame(json);
        }
        // Each of `<`, `>`, `&` (one byte, and never part of a longer UTF-8
        // sequence) becomes six: the payload's length is known before it is
        // written, so the frame is written once, in a buffer of its size.
        Ctx::frame_of(crate::ws::OpCode::Text, bytes.len() + 5 * specials, |out| {
            let mut plain = 0;
            let mut at_out = 0;
            let mut put = |piece: &[u8]| {
                out[at_out..at_out + piece.len()].copy_from_slice(piece);
                at_out += piece.len();
            };
            for (at, &b) in bytes.iter().enumerate() {
                let escaped: &[u8] = match b {
                    b'<' => b"\\u003c",
                    b'>' => b"\\u003e",
                    b'&' => b"\\u0026",
                    _ => continue,
                };
                put(&bytes[plain..at]);
                put(escaped);
                plain = at + 1;
            }
            put(&bytes[plain..]);
        })
    }

    /// Send a JSON text to one connection (see [`Ctx::json_frame`]).
    pub fn send_json(&mut self, conn: ConnId, json: &str) -> bool {
        self.send_frame(conn, &Ctx::json_frame(json))
    }

    /// Encode a binary message once, as a server frame.
    pub fn binary_frame(data: &[u8]) -> PreparedFrame {
        Ctx::frame_of(crate::ws::OpCode::Binary, data.len(), |payload| {
            payload.copy_from_slice(data)
        })
    }

    /// The open connections.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.peers.keys().copied()
    }

    /// Send an encoded frame to one connection. Returns whether it is open.
    pub fn send_frame(&mut self, conn: ConnId, frame: &PreparedFrame) -> bool {
        let open = self.peers.contains_key(&conn);
        if open {
            self.queue.push(Out::One(conn, frame.clone()));
        }
        open
    }

    /// Send a text message to one connection.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> bool {
        self.send_frame(conn, &Ctx::text_frame(text))
    }

    /// Keep `conn`'s place in this turn's sends for a frame that is made
    /// later in the turn, at the latest in [`App::turn_end`], and given with
    /// [`Ctx::fill`]; whatever is sent to `conn` after this call goes after
    /// it. A place never filled sends nothing.
    ///
    /// What it is for: a frame many connections of one turn get, but that
    /// is best made once, when the turn's events are all in. A crowd's
    /// newcomers each get the room's first page of members (100 names,
    /// about 3 KB): made once per turn for all of them instead of once per
    /// newcomer, and with the count as the turn leaves it.
    pub fn hold(&mut self, conn: ConnId) -> Held {
        self.queue.push(Out::Held(conn));
        Held {
            turn: self.turn,
            at: self.queue.len() - 1,
            conn,
        }
    }

    /// Put `frame` in the place `held` kept. Returns false, and sends
    /// nothing, if that place is not there to fill (kept in another turn,
    /// or filled already): the caller then sends the frame as usual.
    pub fn fill(&mut self, held: Held, frame: &PreparedFrame) -> bool {
        if held.turn != self.turn {
            return false;
        }
        match self.queue.get_mut(held.at) {
            Some(slot) if matches!(*slot, Out::Held(conn) if conn == held.conn) => {
                *slot = Out::One(held.conn, frame.clone());
                true
            }
            _ => false,
        }
    }

    /// Send the same encoded frame to every connection in `conns`.
    pub fn broadcast(&mut self, conns: impl IntoIterator<Item = ConnId>, frame: &PreparedFrame) {
        let conns: Vec<ConnId> = conns.into_iter().collect();
        if !conns.is_empty() {
            self.queue.push(Out::Many(conns, frame.clone()));
        }
    }

    /// Send a message the app has just appended to the store (message
    /// `id`, from `sender`): it goes out with the turn only if the turn's
    /// records are stored. If the store's write fails, nobody receives it,
    /// the sender gets an `unavailable` error ([`UNAVAILABLE`]) instead,
    /// and [`App::refused`] is told its id (docs/storage.md, "Faults").
    pub fn publish(
        &mut self,
        id: u64,
        sender: Option<ConnId>,
        conns: impl IntoIterator<Item = ConnId>,
        frame: &PreparedFrame,
    ) {
        let conns: Vec<ConnId> = conns.into_iter().collect();
        self.published.push((self.queue.len(), id, sender));
        self.queue.push(Out::Many(conns, frame.clone()));
    }

    /// Take the turn's published sends of the messages `which` picks out
    /// of the queue (all the turn's published records are gone after).
    /// Returns each picked message once: its id and its sender.
    fn drop_published(&mut self, which: impl Fn(u64) -> bool) -> Vec<(u64, Option<ConnId>)> {
        let published = std::mem::take(&mut self.published);
        let mut picked: Vec<(u64, Option<ConnId>)> = Vec::with_capacity(published.len());
        let mut drop = vec![false; self.queue.len()];
        for (at, id, sender) in published {
            if !which(id) {
                continue;
            }
            drop[at] = true;
            if !picked.iter().any(|(seen, _)| *seen == id) {
                picked.push((id, sender));
            }
        }
        let mut i = 0;
        self.queue.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
        picked
    }

    /// Tell the senders of `refused` messages `unavailable`; returns the
    /// messages' ids.
    fn tell_refused(&mut self, refused: Vec<(u64, Option<ConnId>)>) -> Vec<u64> {
        let error = Ctx::json_frame(UNAVAILABLE);
        let mut ids = Vec::with_capacity(refused.len());
        for (id, sender) in refused {
            ids.push(id);
            if let Some(sender) = sender {
                self.send_frame(sender, &error);
            }
        }
        ids
    }

    /// The turn's write failed: take its published sends out of the queue
    /// and tell each sender. Returns the refused messages' ids.
    fn refuse_published(&mut self) -> Vec<u64> {
        let picked = self.drop_published(|_| true);
        self.tell_refused(picked)
    }

    /// Close one connection with `code` and `reason`.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        self.queue.push(Out::Close(conn, code, reason.to_string()));
    }

    /// Send a message built on the spot (for one recipient).
    pub fn send_message(&mut self, conn: ConnId, message: &Message) -> bool {
        let mut out = Vec::new();
        message.encode(&mut out, None);
        self.send_frame(conn, &out.into())
    }

    /// Carry out the turn's sends: per connection, in order, and with
    /// everything one connection gets this turn handed to the kernel in one
    /// system call where possible (see [`Peer::send_batch`]).
    fn deliver(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        let mut delivered = 0usize;
        if let [Out::One(..) | Out::Many(..)] = queue.as_slice() {
            // One message this turn (the common case when the hub keeps up):
            // no grouping needed.
            for out in queue {
                match out {
                    Out::One(conn, frame) => delivered += self.send_now(conn, &frame),
                    Out::Many(conns, frame) => {
                        for conn in conns {
                            delivered += self.send_now(conn, &frame);
                        }
                    }
                    Out::Close(..) | Out::Held(_) => {}
                }
            }
        } else if let Some((conns, frames)) = one_audience(&queue) {
            // Every message of the turn goes to the same connections (a
            // busy room): each connection gets them all in one call, with
            // no grouping per connection. The frames' wire forms are worked
            // out once for plain peers and once per kind of deflate peer
            // (in practice one: every peer has the server's settings).
            let plain: Vec<Bytes> = frames.iter().map(|f| f.plain().clone()).collect();
            let mut deflated: Vec<(PeerDeflate, Vec<Bytes>)> = Vec::new();
            for conn in conns {
                let Some(peer) = self.peers.get(conn) else {
                    continue;
                };
                let wire = match peer.deflate() {
                    None => &plain,
                    Some(d) => {
                        let at = match deflated.iter().position(|(k, _)| k == d) {
                            Some(at) => at,
                            None => {
                                let forms = frames.iter().map(|f| f.for_peer(Some(d)).clone());
                                deflated.push((*d, forms.collect()));
                                deflated.len() - 1
                            }
                        };
                        &deflated[at].1
                    }
                };
                delivered += peer.send_batch(wire);
            }
        } else {
            let mut order: Vec<ConnId> = Vec::new();
            let mut per_conn: HashMap<ConnId, Vec<Item>> = HashMap::new();
            let mut add = |conn: ConnId, item: Item| {
                per_conn
                    .entry(conn)
                    .or_insert_with(|| {
                        order.push(conn);
                        Vec::new()
                    })
                    .push(item);
            };
            for out in queue {
                match out {
                    Out::One(conn, frame) => add(conn, Item::Frame(frame)),
                    Out::Many(conns, frame) => {
                        for conn in conns {
                            add(conn, Item::Frame(frame.clone()));
                        }
                    }
                    Out::Close(conn, code, reason) => add(conn, Item::Close(code, reason)),
                    Out::Held(_) => {}
                }
            }
            let mut frames: Vec<Bytes> = Vec::new();
            for conn in order {
                let Some(peer) = self.peers.get(&conn) else {
                    continue;
                };
                for item in per_conn.remove(&conn).unwrap_or_default() {
                    match item {
                        Item::Frame(frame) => frames.push(frame.for_peer(peer.deflate()).clone()),
                        Item::Close(code, reason) => {
                            delivered += peer.send_batch(&frames);
                            frames.clear();
                            peer.close(code, &reason);
                        }
                    }
                }
                delivered += peer.send_batch(&frames);
                frames.clear();
            }
        }
        self.metrics
            .messages_out
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }

    fn send_now(&self, conn: ConnId, frame: &PreparedFrame) -> usize {
        self.peers.get(&conn).map_or(0, |peer| {
            usize::from(matches!(
                peer.send(frame.for_peer(peer.deflate())),
                Delivery::Sent | Delivery::Queued
            ))
        })
    }
}

/// When every send of a turn is a broadcast to the same connections, in
/// the same order: those connections, and the turn's frames in order.
fn one_audience(queue: &[Out]) -> Option<(&[ConnId], Vec<PreparedFrame>)> {
    let Some(Out::Many(first, _)) = queue.first() else {
        return None;
    };
    let mut frames = Vec::with_capacity(queue.len());
    for out in queue {
        match out {
            Out::Many(conns, frame) if conns == first => frames.push(frame.clone()),
            _ => return None,
        }
    }
    Some((first, frames))
}

/// One connection's share of a turn.
enum Item {
    Frame(PreparedFrame),
    Close(CloseCode, String),
}

/// Store the turn's records, then deliver the turn's messages: all of
/// them when the write succeeded; when it failed, all but the stored
/// messages, whose senders are told `unavailable` (nothing confirmed is
/// ever lost), and `/healthz` says why until a write succeeds again.
///
/// A store whose commit completes later ([`Commit::Pending`]) keeps the
/// turn waiting, and every later turn behind it, so that turns settle in
/// the order they were committed; each is settled when its result arrives
/// ([`settle_waiting`]).
fn end_turn<A: App>(app: &mut A, ctx: &mut Ctx) {
    app.turn_end(ctx);
    // Places held this turn are filled by now ([`Ctx::hold`]).
    ctx.turn += 1;
    settle_waiting(app, ctx);
    match ctx.log.commit_turn() {
        Commit::Done(result) if ctx.waiting.is_empty() => {
            settle(app, ctx, Settled::now(result), false)
        }
        Commit::Done(result) => ctx.park(Some(Settled::now(result))),
        Commit::Pending => ctx.park(None),
    }
    // A newcomer's 101 waits for no commit: what the turn sent it has
    // gone out with it; if nothing did (its welcome waits for a commit,
    // or it must sign in first), it goes now, alone.
    for peer in ctx.opened.drain(..) {
        peer.release_handshake();
    }
}

impl Ctx {
    /// Keep this turn's sends and answers until its result is known.
    fn park(&mut self, result: Option<Settled>) {
        self.waiting.push_back(Waiting {
            queue: std::mem::take(&mut self.queue),
            published: std::mem::take(&mut self.published),
            answers: std::mem::take(&mut self.answers),
            result,
            news: self.health_news,
        });
    }
}

/// Settle the waiting turns whose results are in, oldest first, up to the
/// first still waiting. The current turn's sends are set aside meanwhile.
fn settle_waiting<A: App>(app: &mut A, ctx: &mut Ctx) {
    while ctx.waiting.front().is_some_and(|w| w.result.is_some()) {
        let Some(turn) = ctx.waiting.pop_front() else {
            break;
        };
        let Some(result) = turn.result else {
            break;
        };
        let queue = std::mem::replace(&mut ctx.queue, turn.queue);
        let published = std::mem::replace(&mut ctx.published, turn.published);
        let answers = std::mem::replace(&mut ctx.answers, turn.answers);
        let stale = turn.news != ctx.health_news;
        settle(app, ctx, result, stale);
        // What `settle` sent went out with the settled turn.
        ctx.queue = queue;
        ctx.published = published;
        ctx.answers = answers;
    }
}

/// What the store's own threads told the hub: a pending commit's result
/// (recorded on the oldest turn still waiting for one), a message the
/// store delivers itself (handed to the app), a change of health.
fn handle_log<A: App>(app: &mut A, ctx: &mut Ctx, event: LogEvent) {
    for outcome in ctx.log.handle(event) {
        match outcome {
            Outcome::Committed {
                result,
                delivered_by_log,
                refused,
                final_ids,
            } => {
                if let Some(turn) = ctx.waiting.iter_mut().find(|w| w.result.is_none()) {
                    turn.result = Some(Settled {
                        result,
                        by_log: delivered_by_log,
                        refused,
                        final_ids,
                    });
                }
            }
            Outcome::Deliver { room, json } => app.log_message(ctx, &room, &json),
            Outcome::Private { from, to, json } => app.log_private(ctx, &from, &to, &json),
            Outcome::Event { room, json } => app.log_event(ctx, &room, &json),
            Outcome::Banned { key, until } => app.log_ban(ctx, &key, until),
            Outcome::Presence { room, user, name } => {
                app.log_presence(ctx, &room, user, name.as_deref())
            }
            Outcome::Health(why) => {
                ctx.metrics.set_store_failing(why.clone());
                ctx.log_unhealthy = why;
                ctx.health_news += 1;
            }
        }
    }
}

/// The turn's commit has a result: answer the API requests, refuse the
/// published messages if it failed, and deliver (on success, all but the
/// messages the store delivers itself, `by_log`: docs/architecture.md,
/// "The store behind the hub"). A failure is `stale` when the store has
/// said how it is since the turn was parked: it refuses the turn but
/// leaves `/healthz` to that later news.
fn settle<A: App>(app: &mut A, ctx: &mut Ctx, settled: Settled, stale: bool) {
    let Settled {
        result,
        by_log,
        refused,
        final_ids,
    } = settled;
    match result {
        Ok(wrote) => {
            if wrote {
                ctx.metrics.store_writes.fetch_add(1, Ordering::Relaxed);
            }
            if wrote && ctx.log_unhealthy.is_none() && ctx.metrics.store_failing().is_some() {
                ctx.metrics.set_store_failing(None);
            }
            // In one pass (the turn's published records go with it): the
            // messages of the turn the store could not keep after all, and
            // those it delivers itself (with their ids from the store).
            let picked = ctx.drop_published(|id| refused.contains(&id) || by_log.contains(&id));
            let not_kept: Vec<(u64, Option<ConnId>)> = picked
                .into_iter()
                .filter(|(id, _)| refused.contains(id))
                .collect();
            let ids = ctx.tell_refused(not_kept);
            if !ids.is_empty() {
                app.refused(ctx, &ids);
            }
            ctx.published.clear();
            for (to, mut answer, _) in std::mem::take(&mut ctx.answers) {
                answer.rename_ids(&final_ids);
                let _ = to.try_send(answer);
            }
            app.stored(ctx);
        }
        Err(e) => {
            ctx.metrics
                .store_write_errors
                .fetch_add(1, Ordering::Relaxed);
            if ctx.log_unhealthy.is_none() && !stale {
                ctx.metrics
                    .set_store_failing(Some(format!("store: writing the log failed: {e}")));
            }
            let refused = ctx.refuse_published();
            if !refused.is_empty() {
                app.refused(ctx, &refused);
            }
            for (to, answer, writes) in std::mem::take(&mut ctx.answers) {
                let answer = if writes && answer.is_success() {
                    ApiResponse::unavailable()
                } else {
                    answer
                };
                let _ = to.try_send(answer);
            }
        }
    }
    ctx.deliver();
}

/// Run `app` on the current thread, over the store `log`, until
/// [`Event::Shutdown`] arrives or every sender is gone.
pub fn run<A: App>(mut app: A, log: Box<dyn Log>, events: Receiver<Event>, metrics: Arc<Metrics>) {
    if let Some(budget) = app.budget().or_else(|| log.budget()) {
        metrics.set_memory(budget);
    }
    for figures in app.figures() {
        metrics.add_figures(figures);
    }
    let mut ctx = Ctx::with_log(metrics.clone(), log);
    let log_events = ctx.log.events();
    let mut next_tick = Instant::now() + TICK_INTERVAL;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let first = match &log_events {
            None => match events.recv_timeout(wait) {
                Ok(event) => Some(Next::Hub(event)),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            Some(from_log) => crossbeam_channel::select! {
                recv(events) -> event => match event {
                    Ok(event) => Some(Next::Hub(event)),
                    Err(_) => break,
                },
                recv(from_log) -> event => event.ok().map(Next::Log),
                default(wait) => None,
            },
        };
        let mut stop = false;
        if let Some(next) = first {
            stop |= next.handle(&mut app, &mut ctx);
            for _ in 1..MAX_TURN_EVENTS {
                if stop {
                    break;
                }
                let next = match events.try_recv() {
                    Ok(event) => Next::Hub(event),
                    Err(_) => match log_events.as_ref().and_then(|l| l.try_recv().ok()) {
                        Some(event) => Next::Log(event),
                        None => break,
                    },
                };
                stop |= next.handle(&mut app, &mut ctx);
            }
            end_turn(&mut app, &mut ctx);
        }
        metrics
            .hub_queue_depth
            .store(events.len(), Ordering::Relaxed);
        if Instant::now() >= next_tick {
            ctx.log.tick();
            app.tick(&mut ctx);
            end_turn(&mut app, &mut ctx);
            next_tick = Instant::now() + TICK_INTERVAL;
        }
        if stop {
            app.shutdown(&mut ctx);
            end_turn(&mut app, &mut ctx);
            for peer in ctx.peers.values() {
                peer.close(CloseCode::GOING_AWAY, "server shutting down");
            }
            break;
        }
    }
}

/// The next thing the hub handles: an event of a connection thread (or
/// the API), or one of the store's own threads.
enum Next {
    Hub(Event),
    Log(LogEvent),
}

impl Next {
    fn handle<A: App>(self, app: &mut A, ctx: &mut Ctx) -> bool {
        match self {
            Next::Hub(event) => handle(app, ctx, event),
            Next::Log(event) => {
                handle_log(app, ctx, event);
                false
            }
        }
    }
}

fn handle<A: App>(app: &mut A, ctx: &mut Ctx, event: Event) -> bool {
    match event {
        Event::Opened(conn, info) => {
            ctx.peers.insert(conn, info.peer.clone());
            ctx.opened.push(info.peer.clone());
            app.opened(ctx, conn, info);
        }
        Event::Text(conn, text) => {
            if ctx.peers.contains_key(&conn) {
                app.text(ctx, conn, text);
            }
        }
        Event::Binary(conn, data) => {
            if ctx.peers.contains_key(&conn) {
                app.binary(ctx, conn, data);
            }
        }
        Event::Closed(conn) => {
            if ctx.peers.remove(&conn).is_some() {
                app.closed(ctx, conn);
            }
        }
        Event::Api(request, reply) => {
            let answer = app.api(ctx, &request);
            ctx.answers.push((reply, answer, request.writes()));
        }
        Event::Shutdown => return true,
    }
    false
}

/// `<`, `>` or `&`: what [`Ctx::json_frame`] escapes.
fn is_markup(b: u8) -> bool {
    matches!(b, b'<' | b'>' | b'&')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context with one open connection over real loopback sockets: the
    /// context, the connection's id, and the client's end.
    fn one_peer() -> (Ctx, ConnId, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let metrics = Arc::new(Metrics::default());
        let limits = peer::OutboxLimits {
            max_bytes: 1 << 20,
            max_frames: 1024,
            write_timeout: Duration::from_secs(5),
        };
        let peer = Peer::new(7, server, limits, metrics.clone());
        let mut ctx = Ctx::new(metrics);
        ctx.peers.insert(7, Arc::new(peer));
        (ctx, 7, client)
    }

    /// Read exactly `len` bytes from `client` (a timeout, not a hang, if
    /// they never come).
    fn read_exactly(client: &mut std::net::TcpStream, len: usize) -> Vec<u8> {
        use std::io::Read;
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = vec![0; len];
        client.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn a_held_place_goes_out_where_it_was_kept_with_what_filled_it() {
        let (mut ctx, conn, mut client) = one_peer();
        let first = ctx.hold(conn);
        assert!(ctx.send_text(conn, "second"));
        let never = ctx.hold(conn);
        assert!(ctx.send_text(conn, "third"));
        assert!(ctx.fill(first, &Ctx::text_frame("first")));
        // Filled once only; the second place stays empty and sends nothing.
        assert!(!ctx.fill(first, &Ctx::text_frame("again")));
        ctx.deliver();
        let want: Vec<u8> = ["first", "second", "third"]
            .iter()
            .flat_map(|t| Ctx::text_frame(t).to_vec())
            .collect();
        assert_eq!(read_exactly(&mut client, want.len()), want);
        // A place of an ended turn cannot be filled into a later one.
        ctx.turn += 1;
        assert!(!ctx.fill(never, &Ctx::text_frame("late")));
        let later = ctx.hold(conn);
        assert!(ctx.fill(later, &Ctx::text_frame("fourth")));
        ctx.deliver();
        let fourth = Ctx::text_frame("fourth").to_vec();
        assert_eq!(read_exactly(&mut client, fourth.len()), fourth);
    }

    #[test]
    fn a_held_handshake_goes_out_first_by_every_way_and_once() {
        let response: Bytes = Arc::from(&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]);
        let frame = |t: &str| -> Bytes { Arc::from(Ctx::text_frame(t).to_vec()) };
        // A peer holding the 101, and what its client must read: the 101,
        // then `after`.
        let held = || {
            let (ctx, conn, client) = one_peer();
            let peer = ctx.peers[&conn].clone();
            peer.hold_handshake(response.clone());
            (ctx, conn, peer, client)
        };
        let expect = |client: &mut std::net::TcpStream, after: &[u8]| {
            let want = [&response[..], after].concat();
            assert_eq!(read_exactly(client, want.len()), want);
        };
        // With the turn's frames, in front of them.
        let (mut ctx, conn, peer, mut client) = held();
        assert!(ctx.send_text(conn, "welcome"));
        assert!(ctx.send_text(conn, "users"));
        ctx.deliver();
        peer.release_handshake();
        expect(
            &mut client,
            &[&frame("welcome")[..], &frame("users")].concat(),
        );
        // Released alone when nothing was sent, and then never again.
        let (_ctx, _, peer, mut client) = held();
        peer.release_handshake();
        peer.release_handshake();
        assert!(matches!(
            peer.send(&frame("later")),
            Delivery::Sent | Delivery::Queued
        ));
        expect(&mut client, &frame("later"));
        // In front of a single frame.
        let (_ctx, _, peer, mut client) = held();
        assert!(matches!(
            peer.send(&frame("pong")),
            Delivery::Sent | Delivery::Queued
        ));
        expect(&mut client, &frame("pong"));
        // In front of a Close.
        let (_ctx, _, peer, mut client) = held();
        peer.close(CloseCode::GOING_AWAY, "bye");
        let mut close = Vec::new();
        Message::Close(Some(crate::ws::CloseFrame::new(
            CloseCode::GOING_AWAY,
            "bye",
        )))
        .encode(&mut close, None);
        expect(&mut client, &close);
    }

    /// The escape as its doc says it, a character at a time.
    fn reference(json: &str) -> Vec<u8> {
        let mut safe = String::new();
        for c in json.chars() {
            match c {
                '<' => safe.push_str("\\u003c"),
                '>' => safe.push_str("\\u003e"),
                '&' => safe.push_str("\\u0026"),
                c => safe.push(c),
            }
        }
        Ctx::text_frame(&safe).to_vec()
    }

    #[test]
    fn json_frames_escape_markup_as_the_reference_does_at_every_length() {
        let pieces = ["a", "<", ">", "&", "小明", "\"", "é<b>&amp;", "{}"];
        // Lengths across the 125- and 65,535-byte header forms, markup at
        // the start, the end, inside blocks and across their edges.
        for n in [0, 1, 2, 63, 64, 65, 100, 200, 5_000, 40_000] {
            let text: String = (0..n).map(|i| pieces[(i * 7 + n) % pieces.len()]).collect();
            let json = format!(r#"{{"text":"{text}"}}"#);
            assert_eq!(
                &Ctx::json_frame(&json)[..],
                &reference(&json)[..],
                "n = {n}"
            );
        }
        assert_eq!(&Ctx::json_frame("<")[..], &reference("<")[..]);
        assert_eq!(&Ctx::json_frame("plain")[..], &reference("plain")[..]);
    }
}
