//! Webhooks: the desk's events POSTed, signed, to other systems (a CRM,
//! email, Slack), at least once, by a thread of their own
//! (docs/customer-service.md, "Webhooks").
//!
//! The hub side is an [`Emitter`]: the desk calls [`Emitter::emit`] where
//! something happens. The events of a turn wait until the hub has stored
//! the turn's records ([`App::stored`](crate::hub::App::stored); a
//! message the store refused is no event: [`Emitter::refused`]) and are
//! then handed to the sender thread over a bounded channel with
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
use serde::Serialize;

use crate::hub::metrics::Figures;

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
/// Events the hub can hand over before the sender thread takes them, by
/// default (`--webhook-handover`); the sender thread only appends them to
/// the pending file, so a full channel means a stuck disk. Past it events
/// are dropped and counted.
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
    /// Events the hub can hand over to the sender thread before it takes
    /// them (`--webhook-handover`, default [`HANDOVER_CAPACITY`]).
    pub handover: usize,
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
            handover: HANDOVER_CAPACITY,
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

/// An event's `data`, typed: one variant per [`Kind`], its fields in the
/// order they are declared here, which is the order
/// docs/customer-service.md ("Webhooks") shows. Every one names its
/// `conversation` first.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Event<'a> {
    /// `conversation.created`.
    ConversationCreated {
        /// The conversation.
        conversation: u64,
        /// The visitor's name.
        visitor: &'a str,
        /// The `sub` of a verified visitor's token (`null`: anonymous).
        sub: Option<&'a str>,
        /// `true` for a message left out of hours (`--desk-hours`), which
        /// waits for the first agent; left out otherwise.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
    },
    /// `conversation.assigned`.
    ConversationAssigned {
        /// The conversation.
        conversation: u64,
        /// The agent who got it.
        agent: &'a str,
    },
    /// `conversation.transferred`.
    ConversationTransferred {
        /// The conversation.
        conversation: u64,
        /// The agent who handed it on.
        from: &'a str,
        /// The agent it went to (`null`: back to the queue).
        to: Option<&'a str>,
        /// The handover note.
        note: &'a str,
        /// The supervisor who reassigned it, when `from` did not hand it on
        /// themselves; left out otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<&'a str>,
    },
    /// `conversation.resolved`.
    ConversationResolved {
        /// The conversation.
        conversation: u64,
        /// The agent who had it (`null`: it was still queued).
        agent: Option<&'a str>,
        /// Who ended it when not its agent: `visitor` or `abandoned` (a
        /// waiting visitor offline past `--desk-abandon-after`); left out
        /// otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<&'a str>,
    },
    /// `conversation.rated`.
    ConversationRated {
        /// The conversation.
        conversation: u64,
        /// 1-5, as in the `rated` notice of DESIGN.md.
        stars: u64,
        /// The visitor's comment, if any; left out otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
    },
    /// `message.created`.
    MessageCreated {
        /// The conversation.
        conversation: u64,
        /// The stored message's id.
        id: u64,
        /// `visitor`, `agent` or `bot`.
        from: &'a str,
        /// Who wrote it.
        name: &'a str,
        /// What was written.
        text: &'a str,
    },
}

impl Event<'_> {
    /// Which event it is.
    pub fn kind(&self) -> Kind {
        match self {
            Event::ConversationCreated { .. } => Kind::ConversationCreated,
            Event::ConversationAssigned { .. } => Kind::ConversationAssigned,
            Event::ConversationTransferred { .. } => Kind::ConversationTransferred,
            Event::ConversationResolved { .. } => Kind::ConversationResolved,
            Event::ConversationRated { .. } => Kind::ConversationRated,
            Event::MessageCreated { .. } => Kind::MessageCreated,
        }
    }

    /// The whole body a receiver gets, `{"id":…,"event":…,"time":…,"data":…}`,
    /// with the event's own `id` (32 hex digits) and `time` (ms).
    pub fn body(&self, id: &str, time: u64) -> String {
        #[derive(Serialize)]
        struct Body<'b> {
            id: &'b str,
            event: &'static str,
            time: u64,
            data: &'b Event<'b>,
        }
        let body = Body {
            id,
            event: self.kind().name(),
            time,
            data: self,
        };
        // Writing into a String cannot fail, and there is no map here.
        serde_json::to_string(&body).unwrap_or_default()
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
/// thread once their turn is stored ([`Emitter::stored`]). Without
/// receivers it does nothing.
#[derive(Debug, Default)]
pub struct Emitter {
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    to_sender: Option<Sender<(&'static str, String)>>,
    /// Events whose records are not stored yet: this turn's, and those of
    /// a turn whose write failed that told of state (its state records
    /// are written with the next write; its messages were taken out).
    held: Vec<Queued>,
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
        let (tx, rx) = crossbeam_channel::bounded(config.handover.max(1));
        let thread = sender::start(config, rx, stats.clone())?;
        Ok(Emitter {
            inner: Some(Inner {
                to_sender: Some(tx),
                held: Vec::new(),
                stats,
                thread: Some(thread),
            }),
        })
    }

    /// The counters, when there are receivers.
    pub fn stats(&self) -> Option<Arc<Stats>> {
        self.inner.as_ref().map(|i| i.stats.clone())
    }

    /// `event` happened this turn: it waits until the turn's records are
    /// stored ([`Emitter::stored`]); a `message.created` whose message the
    /// store refused is dropped ([`Emitter::refused`]).
    pub fn emit(&mut self, event: Event<'_>) {
        let Some(inner) = &mut self.inner else {
            return;
        };
        let r = crate::random::random_16();
        let id: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let message = match event {
            Event::MessageCreated { id, .. } => Some(id),
            _ => None,
        };
        inner.held.push(Queued {
            message,
            event: event.kind().name(),
            body: event.body(&id, crate::clock::now_ms()),
        });
    }

    /// The turn's records are stored (the hub's [`App::stored`](crate::hub::App::stored)):
    /// hand every held event to the sender thread, without waiting.
    pub fn stored(&mut self) {
        let Some(inner) = &mut self.inner else {
            return;
        };
        let ready = std::mem::take(&mut inner.held);
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
    /// event tells of them. The turn's other events stay held: the state
    /// they tell of is written with the next write, and they leave then.
    pub fn refused(&mut self, ids: &[u64]) {
        if let Some(inner) = &mut self.inner {
            inner
                .held
                .retain(|q| !q.message.is_some_and(|id| ids.contains(&id)));
        }
    }
}

impl Drop for Inner {
    /// Let the sender thread write what it was handed to the pending
    /// file, and stop (it does not wait for attempts under way). Events
    /// still held tell of records never stored (the last write failed):
    /// they are dropped, and said so.
    fn drop(&mut self) {
        if !self.held.is_empty() {
            log::error!(
                "webhook: {} events dropped at shutdown: the store never wrote their records",
                self.held.len()
            );
        }
        drop(self.to_sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each event's body, byte for byte: `id, event, time, data`, and
    /// `data`'s fields in the order of docs/customer-service.md's table.
    #[test]
    fn bodies_are_in_wire_order() {
        let cases = [
            (
                Event::ConversationCreated {
                    conversation: 7,
                    visitor: "访客3",
                    sub: None,
                    offline: false,
                },
                r#"{"conversation":7,"visitor":"访客3","sub":null}"#,
            ),
            (
                Event::ConversationCreated {
                    conversation: 8,
                    visitor: "访客4",
                    sub: None,
                    offline: true,
                },
                r#"{"conversation":8,"visitor":"访客4","sub":null,"offline":true}"#,
            ),
            (
                Event::ConversationAssigned {
                    conversation: 7,
                    agent: "alice",
                },
                r#"{"conversation":7,"agent":"alice"}"#,
            ),
            (
                Event::ConversationTransferred {
                    conversation: 7,
                    from: "alice",
                    to: None,
                    note: "billing",
                    by: None,
                },
                r#"{"conversation":7,"from":"alice","to":null,"note":"billing"}"#,
            ),
            (
                Event::ConversationTransferred {
                    conversation: 7,
                    from: "alice",
                    to: Some("bob"),
                    note: "",
                    by: Some("sam"),
                },
                r#"{"conversation":7,"from":"alice","to":"bob","note":"","by":"sam"}"#,
            ),
            (
                Event::ConversationResolved {
                    conversation: 7,
                    agent: Some("bob"),
                    by: None,
                },
                r#"{"conversation":7,"agent":"bob"}"#,
            ),
            (
                Event::ConversationResolved {
                    conversation: 9,
                    agent: None,
                    by: Some("abandoned"),
                },
                r#"{"conversation":9,"agent":null,"by":"abandoned"}"#,
            ),
            (
                Event::ConversationRated {
                    conversation: 7,
                    stars: 5,
                    comment: None,
                },
                r#"{"conversation":7,"stars":5}"#,
            ),
            (
                Event::ConversationRated {
                    conversation: 7,
                    stars: 4,
                    comment: Some("快"),
                },
                r#"{"conversation":7,"stars":4,"comment":"快"}"#,
            ),
            (
                Event::MessageCreated {
                    conversation: 7,
                    id: 9,
                    from: "visitor",
                    name: "访客3",
                    text: "你好",
                },
                r#"{"conversation":7,"id":9,"from":"visitor","name":"访客3","text":"你好"}"#,
            ),
        ];
        for (event, data) in cases {
            let name = event.kind().name();
            assert_eq!(
                event.body("3f2c", 1_763_800_000_123),
                format!(r#"{{"id":"3f2c","event":"{name}","time":1763800000123,"data":{data}}}"#)
            );
        }
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 6);
    }

    /// Nothing leaves before the hub says the turn is stored; a refused
    /// turn's messages never leave, and its other events leave with the
    /// next stored turn (their state records are written with it).
    #[test]
    fn events_wait_for_the_store() {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let mut emitter = Emitter {
            inner: Some(Inner {
                to_sender: Some(tx),
                held: Vec::new(),
                stats: Arc::new(Stats::default()),
                thread: None,
            }),
        };
        let message = |id| Event::MessageCreated {
            conversation: 1,
            id,
            from: "visitor",
            name: "v",
            text: "t",
        };
        emitter.emit(message(2));
        assert!(rx.try_recv().is_err(), "held until stored");
        emitter.stored();
        assert_eq!(rx.try_recv().unwrap().0, "message.created");

        // A turn whose write failed.
        emitter.emit(message(3));
        emitter.emit(Event::ConversationResolved {
            conversation: 1,
            agent: None,
            by: None,
        });
        emitter.refused(&[3]);
        assert!(rx.try_recv().is_err(), "a refused turn emits nothing");
        // The next turn is stored, and with it the resolved record.
        emitter.emit(message(4));
        emitter.stored();
        let got: Vec<(&str, String)> = rx.try_iter().collect();
        let names: Vec<&str> = got.iter().map(|g| g.0).collect();
        assert_eq!(names, ["conversation.resolved", "message.created"]);
        assert!(got[1].1.contains(r#""id":4,"#), "{}", got[1].1);
    }
}
