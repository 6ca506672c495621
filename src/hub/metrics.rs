//! Counters for `/metrics`, in the Prometheus text format, written by hand.
//!
//! Every counter is an atomic that the thread doing the work bumps; nothing
//! takes a lock. `/metrics` reads them all and prints one line each.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::ws::CloseCode;

/// Close codes counted one by one; any other code is counted as `other`.
const CLOSE_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 4001, 4003,
];

/// HTTP statuses counted for handshakes; any other is counted as `other`.
const STATUSES: [u16; 10] = [101, 400, 403, 404, 405, 408, 426, 431, 503, 200];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// TCP connections accepted.
    pub connections_accepted: AtomicU64,
    /// Connections refused with 503 at the connection cap.
    pub connections_refused: AtomicU64,
    /// WebSocket connections open now.
    pub websockets_open: AtomicUsize,
    /// Answers to requests, by status (101 = handshake accepted).
    responses: [AtomicU64; STATUSES.len() + 1],
    /// Data messages received from clients.
    pub messages_in: AtomicU64,
    /// Data messages handed to clients' outboxes (a broadcast counts once per recipient).
    pub messages_out: AtomicU64,
    /// Bytes read from WebSocket clients.
    pub bytes_in: AtomicU64,
    /// Bytes written to WebSocket clients.
    pub bytes_out: AtomicU64,
    /// Clients closed because their outbox filled.
    pub slow_consumer_closes: AtomicU64,
    /// Close frames sent, by code.
    closes_sent: [AtomicU64; CLOSE_CODES.len() + 1],
    /// Bytes waiting in all outboxes now.
    pub outbox_bytes: AtomicUsize,
    /// The most bytes ever waiting in all outboxes at once.
    pub outbox_bytes_peak: AtomicUsize,
    /// Events waiting for the hub thread (set by the hub each turn).
    pub hub_queue_depth: AtomicUsize,
    /// Records written by the store.
    pub store_writes: AtomicU64,
    /// Writes of the store that failed.
    pub store_write_errors: AtomicU64,
    /// Why the store's writes fail now (`None` while they succeed): what
    /// `/healthz` answers with its 503.
    store_failing: std::sync::Mutex<Option<String>>,
    /// The memory budget and what each kind keeps, once the store is open.
    memory: std::sync::OnceLock<std::sync::Arc<crate::memory::Budget>>,
    /// Messages refused by the rate limit.
    pub rate_limited: AtomicU64,
    /// The support desk's figures.
    pub desk: DeskMetrics,
}

/// Upper bounds, in seconds, of the buckets of `wschat_desk_wait_seconds`
/// (a last bucket, `+Inf`, holds every wait).
pub const DESK_WAIT_BUCKETS: [u64; 9] = [5, 15, 30, 60, 120, 300, 600, 1800, 3600];

/// The support desk's figures: gauges the desk sets after each change,
/// a histogram of waits and a counter of ratings.
#[derive(Debug, Default)]
pub struct DeskMetrics {
    /// Conversations waiting in the queue.
    pub queue_length: AtomicUsize,
    /// Agents signed in and not away.
    pub agents_online: AtomicUsize,
    /// Conversations with an agent (assigned, not yet resolved).
    pub conversations_open: AtomicUsize,
    /// Waits from entering the queue to being assigned, by bucket
    /// ([`DESK_WAIT_BUCKETS`], then `+Inf`), not cumulative.
    wait_buckets: [AtomicU64; DESK_WAIT_BUCKETS.len() + 1],
    /// The sum of all waits, in milliseconds.
    wait_sum_ms: AtomicU64,
    /// Ratings given, by stars (index 0: one star).
    ratings: [AtomicU64; 5],
}

impl DeskMetrics {
    /// Count a wait of `ms` milliseconds from the queue to an agent.
    pub fn observe_wait(&self, ms: u64) {
        let i = DESK_WAIT_BUCKETS
            .iter()
            .position(|&b| ms <= b * 1000)
            .unwrap_or(DESK_WAIT_BUCKETS.len());
        self.wait_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.wait_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Count a rating of `stars` (1-5; anything else is ignored).
    pub fn count_rating(&self, stars: u64) {
        if let Some(n) = (1..=5)
            .contains(&stars)
            .then(|| &self.ratings[stars as usize - 1])
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The desk's lines of `/metrics`.
    fn render(&self, out: &mut String) {
        let gauges = [
            (
                "wschat_desk_queue_length",
                "Support conversations waiting in the queue.",
                &self.queue_length,
            ),
            (
                "wschat_desk_agents_online",
                "Support agents signed in and not away.",
                &self.agents_online,
            ),
            (
                "wschat_desk_conversations_open",
                "Support conversations with an agent, not yet resolved.",
                &self.conversations_open,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP wschat_desk_wait_seconds Time from entering the support queue to being assigned.\n# TYPE wschat_desk_wait_seconds histogram"
        );
        let mut total = 0;
        for (i, n) in self.wait_buckets.iter().enumerate() {
            total += n.load(Ordering::Relaxed);
            let le = DESK_WAIT_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "wschat_desk_wait_seconds_bucket{{le=\"{le}\"}} {total}"
            );
        }
        let sum = self.wait_sum_ms.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "wschat_desk_wait_seconds_sum {}.{:03}\nwschat_desk_wait_seconds_count {total}",
            sum / 1000,
            sum % 1000
        );
        let _ = writeln!(
            out,
            "# HELP wschat_desk_ratings_total Ratings visitors gave support conversations, by stars.\n# TYPE wschat_desk_ratings_total counter"
        );
        for (i, n) in self.ratings.iter().enumerate() {
            let _ = writeln!(
                out,
                "wschat_desk_ratings_total{{stars=\"{}\"}} {}",
                i + 1,
                n.load(Ordering::Relaxed)
            );
        }
    }
}

impl Metrics {
    /// Set (or with `None` clear) why the store cannot write.
    pub fn set_store_failing(&self, why: Option<String>) {
        *self.store_failing.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Report the memory budget's figures from now on.
    pub fn set_memory(&self, budget: std::sync::Arc<crate::memory::Budget>) {
        let _ = self.memory.set(budget);
    }

    /// Why the store cannot write now, if it cannot.
    pub fn store_failing(&self) -> Option<String> {
        self.store_failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Count an HTTP answer (101 for an accepted handshake).
    pub fn count_response(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len());
        self.responses[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Count a Close frame sent with `code`.
    pub fn count_close_sent(&self, code: CloseCode) {
        let i = CLOSE_CODES
            .iter()
            .position(|&c| c == code.0)
            .unwrap_or(CLOSE_CODES.len());
        self.closes_sent[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Close frames sent with `code` so far.
    pub fn closes_sent(&self, code: CloseCode) -> u64 {
        let i = CLOSE_CODES
            .iter()
            .position(|&c| c == code.0)
            .unwrap_or(CLOSE_CODES.len());
        self.closes_sent[i].load(Ordering::Relaxed)
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "wschat_connections_accepted_total",
            "TCP connections accepted.",
            "counter",
            load(&self.connections_accepted),
        );
        counter(
            "wschat_connections_refused_total",
            "Connections refused with 503 at the connection cap.",
            "counter",
            load(&self.connections_refused),
        );
        counter(
            "wschat_websockets_open",
            "WebSocket connections open now.",
            "gauge",
            self.websockets_open.load(Ordering::Relaxed) as u64,
        );
        counter(
            "wschat_messages_in_total",
            "Data messages received from clients.",
            "counter",
            load(&self.messages_in),
        );
        counter(
            "wschat_messages_out_total",
            "Data messages delivered to clients (per recipient).",
            "counter",
            load(&self.messages_out),
        );
        counter(
            "wschat_bytes_in_total",
            "Bytes read from WebSocket clients.",
            "counter",
            load(&self.bytes_in),
        );
        counter(
            "wschat_bytes_out_total",
            "Bytes written to WebSocket clients.",
            "counter",
            load(&self.bytes_out),
        );
        counter(
            "wschat_slow_consumer_closes_total",
            "Clients closed because their outbox filled.",
            "counter",
            load(&self.slow_consumer_closes),
        );
        counter(
            "wschat_rate_limited_total",
            "Messages refused by the rate limit.",
            "counter",
            load(&self.rate_limited),
        );
        counter(
            "wschat_outbox_bytes",
            "Bytes waiting in all outboxes.",
            "gauge",
            self.outbox_bytes.load(Ordering::Relaxed) as u64,
        );
        counter(
            "wschat_hub_queue_depth",
            "Events waiting for the hub thread.",
            "gauge",
            self.hub_queue_depth.load(Ordering::Relaxed) as u64,
        );
        counter(
            "wschat_store_writes_total",
            "Records written by the store.",
            "counter",
            load(&self.store_writes),
        );
        counter(
            "wschat_store_write_errors_total",
            "Writes of the store that failed (nothing of their turn was confirmed).",
            "counter",
            load(&self.store_write_errors),
        );
        counter(
            "wschat_store_healthy",
            "1 while the store's writes succeed, 0 while they fail.",
            "gauge",
            u64::from(self.store_failing().is_none()),
        );
        if let Some(budget) = self.memory.get() {
            let limit = budget.limit();
            counter(
                "wschat_memory_budget_bytes",
                "The memory budget (--memory-budget); 0: no ceiling.",
                "gauge",
                if limit == usize::MAX { 0 } else { limit as u64 },
            );
            let _ = writeln!(
                out,
                "# HELP wschat_memory_bytes Bytes of users' input kept in memory, by kind.\n# TYPE wschat_memory_bytes gauge"
            );
            for kind in crate::memory::Kept::ALL {
                let _ = writeln!(
                    out,
                    "wschat_memory_bytes{{kept=\"{}\"}} {}",
                    kind.name(),
                    budget.used(kind)
                );
            }
            let _ = writeln!(
                out,
                "# HELP wschat_memory_evictions_total Entries let go from memory to stay within the budget, by kind.\n# TYPE wschat_memory_evictions_total counter"
            );
            for kind in crate::memory::Kept::ALL {
                let _ = writeln!(
                    out,
                    "wschat_memory_evictions_total{{kept=\"{}\"}} {}",
                    kind.name(),
                    budget.evictions(kind)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP wschat_http_responses_total Answers to requests by status (101: handshake accepted).\n# TYPE wschat_http_responses_total counter"
        );
        for (i, n) in self.responses.iter().enumerate() {
            let label = STATUSES
                .get(i)
                .map_or("other".to_string(), |s| s.to_string());
            let _ = writeln!(
                out,
                "wschat_http_responses_total{{status=\"{label}\"}} {}",
                load(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP wschat_closes_sent_total Close frames sent by code.\n# TYPE wschat_closes_sent_total counter"
        );
        for (i, n) in self.closes_sent.iter().enumerate() {
            let label = CLOSE_CODES
                .get(i)
                .map_or("other".to_string(), |c| c.to_string());
            let _ = writeln!(
                out,
                "wschat_closes_sent_total{{code=\"{label}\"}} {}",
                load(n)
            );
        }
        self.desk.render(&mut out);
        out
    }
}
