//! Webhooks: the desk's events POSTed, signed, to other systems (a CRM,
//! email, Slack), at least once, by a thread of their own
//! (docs/customer-service.md, "Webhooks").
//!
//! The hub side is an [`Emitter`]: the desk calls [`Emitter::emit`] where
//! something happens. The events of a turn wait until the turn's records
//! are stored (a message the store refused is no event: [`Emitter::refused`])
//! and are then handed to the sender thread over a bounded channel with
//! `try_send`: the hub never waits. The sender thread appends each event,
//! once per receiver, to `webhooks.pending` in the data directory
//! ([`pending`]) and gives it to the receiver's worker thread, which POSTs
//! it ([`http`]); a failure or an answer other than 2xx is tried again
//! after a backoff that doubles from [`BACKOFF_FIRST`] up to
//! `--webhook-backoff`, with the same body and so the same `id`.
//! Events of one receiver go out in order, one at a time; a receiver that
//! hangs holds up its own events only, each attempt for at most
//! `--webhook-timeout`.
//!
//! When the receivers fall behind so far that `--webhook-max-pending`
//! events wait, new events are not queued: each is counted in
//! `wschat_webhook_dropped_total` and logged as an error (the hub does not
//! wait, and nothing goes silently).

pub mod http;
pub mod pending;
mod sender;
pub mod tls;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use crate::hub::metrics::Figures;
use crate::json::Object;

/// Default for the most events waiting for their receivers
/// (`--webhook-max-pending`), one per receiver; past it new events are
/// dropped and counted.
pub const DEFAULT_MAX_PENDING: usize = 10_000;
/// Default for how long one attempt may take to connect, send and get the
/// answer's head (`--webhook-timeout`).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default for the longest wait between two attempts at one receiver
/// (`--webhook-backoff`).
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 300_000;
/// The wait after a receiver's first failure; it doubles with each
/// failure in a row, up to `--webhook-backoff`.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Events the hub can hand over before the sender thread takes them; the
/// sender thread only appends them to the pending file, so a full
/// channel means a stuck disk. Past it events are dropped and counted.
pub const HANDOVER_CAPACITY: usize = 4096;

/// The events a receiver gets (`X-Wschat-Event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A visitor's first message opened a conversation.
    ConversationCreated,
    /// An agent got a conversation (from the queue or by a transfer).
    ConversationAssigned,
    /// An agent handed a conversation on, to another agent or the queue.
    ConversationTransferred,
    /// A conversation was resolved.
    ConversationResolved,
    /// The visitor rated a resolved conversation.
    ConversationRated,
    /// A visitor, an agent or a bot wrote in a conversation.
    MessageCreated,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::ConversationCreated,
        Kind::ConversationAssigned,
        Kind::ConversationTransferred,
        Kind::ConversationResolved,
        Kind::ConversationRated,
        Kind::MessageCreated,
    ];

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConversationCreated => "conversation.created",
            Kind::ConversationAssigned => "conversation.assigned",
            Kind::ConversationTransferred => "conversation.transferred",
            Kind::ConversationResolved => "conversation.resolved",
            Kind::ConversationRated => "conversation.rated",
            Kind::MessageCreated => "message.created",
        }
    }
}

/// Where and how events are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The receivers (`--webhook`); none: no events, no thread.
    pub urls: Vec<String>,
    /// The HMAC-SHA256 key of `X-Wschat-Signature` (`--webhook-secret`).
    pub secret: Vec<u8>,
    /// PEM certificates trusted for `https://` besides the system's
    /// (`--webhook-ca`).
    pub ca_file: Option<PathBuf>,
    /// Where `webhooks.pending` is kept; `None`: in memory only.
    pub data_dir: Option<PathBuf>,
    /// Most events waiting at once.
    pub max_pending: usize,
    /// Longest time of one attempt, per step.
    pub timeout: Duration,
    /// Longest wait between two attempts at one receiver.
    pub backoff_max: Duration,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            urls: Vec::new(),
            secret: Vec::new(),
            ca_file: None,
            data_dir: None,
            max_pending: DEFAULT_MAX_PENDING,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            backoff_max: Duration::from_millis(DEFAULT_BACKOFF_MAX_MS),
        }
    }
}

/// The webhooks' counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events a receiver answered with 2xx.
    pub delivered: AtomicU64,
    /// Attempts that failed (no answer, or not 2xx).
    pub failed: AtomicU64,
    /// Events waiting for their receivers now.
    pub pending: AtomicUsize,
    /// Events dropped because `--webhook-max-pending` were waiting.
    pub dropped: AtomicU64,
}

impl Figures for Stats {
    fn render(&self, out: &mut String) {
        let mut line = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        line(
            "wschat_webhook_delivered_total",
            "Webhook events a receiver answered with 2xx.",
            "counter",
            load(&self.delivered),
        );
        line(
            "wschat_webhook_failed_attempts_total",
            "Webhook attempts that failed (no answer, or not 2xx); each is tried again.",
            "counter",
            load(&self.failed),
        );
        line(
            "wschat_webhook_pending",
            "Webhook events waiting for their receivers, one per receiver.",
            "gauge",
            self.pending.load(Ordering::Relaxed) as u64,
        );
        line(
            "wschat_webhook_dropped_total",
            "Webhook events dropped because --webhook-max-pending were waiting.",
            "counter",
            load(&self.dropped),
        );
    }
}

/// One event on its way: its name, its body, and the message it tells of.
#[derive(Debug)]
struct Queued {
    message: Option<u64>,
    event: &'static str,
    body: String,
}

/// The hub's side: takes the desk's events and hands them to the sender
/// thread once their turn is stored. Without receivers it does nothing.
#[derive(Debug, Default)]
pub struct Emitter {
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    to_sender: Option<Sender<(&'static str, String)>>,
    /// This turn's events.
    turn: Vec<Queued>,
    /// The previous turn's events, sent at the next turn's end (its
    /// records are stored by then, or its refused messages taken out).
    stored: Vec<Queued>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
}

impl Emitter {
    /// No receivers: [`Emitter::emit`] does nothing.
    pub fn none() -> Emitter {
        Emitter::default()
    }

    /// Start the sender thread for `config` (none when it names no URL):
    /// reads what `webhooks.pending` still holds, checks every URL and
    /// sets up TLS when one is `https://`.
    pub fn start(config: WebhookConfig) -> std::io::Result<Emitter> {
        if config.urls.is_empty() {
            return Ok(Emitter::none());
        }
        let stats = Arc::new(Stats::default());
        let (tx, rx) = crossbeam_channel::bounded(HANDOVER_CAPACITY);
        let thread = sender::start(config, rx, stats.clone())?;
        Ok(Emitter {
            inner: Some(Inner {
                to_sender: Some(tx),
                turn: Vec::new(),
                stored: Vec::new(),
                stats,
                thread: Some(thread),
            }),
        })
    }

    /// The counters, when there are receivers.
    pub fn stats(&self) -> Option<Arc<Stats>> {
        self.inner.as_ref().map(|i| i.stats.clone())
    }

    /// An event of `kind` with `data` (a JSON object naming its
    /// `conversation`): `{"id":…,"event":…,"time":…,"data":…}`.
    pub fn emit(&mut self, kind: Kind, data: String) {
        self.queue(None, kind, data);
    }

    /// A `message.created` for the stored message `id`: dropped if the
    /// turn's write fails ([`Emitter::refused`]).
    pub fn emit_message(&mut self, id: u64, data: String) {
        self.queue(Some(id), Kind::MessageCreated, data);
    }

    fn queue(&mut self, message: Option<u64>, kind: Kind, data: String) {
        let Some(inner) = &mut self.inner else {
            return;
        };
        let r = crate::random::random_16();
        let id: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let body = Object::new()
            .field("id", id)
            .field("event", kind.name())
            .field("time", crate::clock::now_ms())
            .json("data", &data)
            .finish();
        inner.turn.push(Queued {
            message,
            event: kind.name(),
            body,
        });
    }

    /// The turn ends (before its store write): hand the previous turn's
    /// events to the sender thread, and keep this turn's until the next.
    pub fn turn_end(&mut self) {
        let Some(inner) = &mut self.inner else {
            return;
        };
        let ready = std::mem::replace(&mut inner.stored, std::mem::take(&mut inner.turn));
        let Some(tx) = &inner.to_sender else {
            return;
        };
        for q in ready {
            match tx.try_send((q.event, q.body)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    let n = inner.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        log::error!(
                            "webhook: the sender thread is not taking events; {n} dropped so far"
                        );
                    }
                }
            }
        }
    }

    /// The turn's write failed: the messages `ids` were not stored, so no
    /// event tells of them.
    pub fn refused(&mut self, ids: &[u64]) {
        if let Some(inner) = &mut self.inner {
            inner
                .stored
                .retain(|q| !q.message.is_some_and(|id| ids.contains(&id)));
        }
    }
}

impl Drop for Inner {
    /// Hand over what is left, then let the sender thread write it to the
    /// pending file and stop (it does not wait for attempts under way).
    fn drop(&mut self) {
        if let Some(tx) = self.to_sender.take() {
            for q in self.stored.drain(..).chain(self.turn.drain(..)) {
                let _ = tx.try_send((q.event, q.body));
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
