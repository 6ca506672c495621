//! The sender thread: takes the hub's events, keeps them in the pending
//! file, and hands each receiver's events, one at a time and in order, to
//! that receiver's worker thread, which does the HTTP. Only the workers
//! ever wait on the network.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use super::http::{self, Url};
use super::pending::{Item, Pending};
use super::{BACKOFF_FIRST, Stats, WebhookConfig};

/// One receiver: its events and its state.
struct Lane {
    url: String,
    queue: VecDeque<Item>,
    /// Failures in a row.
    failures: u32,
    /// Not before then.
    next_at: Instant,
    /// Its worker has an attempt under way.
    busy: bool,
    jobs: Sender<Item>,
}

/// What a worker found.
struct Outcome {
    lane: usize,
    seq: u64,
    result: std::io::Result<u16>,
}

/// Open the pending file and start the thread.
pub(super) fn start(
    config: WebhookConfig,
    events: Receiver<(&'static str, String)>,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    let mut urls: Vec<String> = Vec::new();
    for u in &config.urls {
        Url::parse(u).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if !urls.contains(u) {
            urls.push(u.clone());
        }
    }
    // New events go to these (the first lanes); a URL given twice once.
    let configured = urls.len();
    let (pending, items) = Pending::open(config.data_dir.as_deref())?;
    // Events kept for a URL no longer given still go to it.
    for item in &items {
        if !urls.contains(&item.url) && Url::parse(&item.url).is_ok() {
            urls.push(item.url.clone());
        }
    }
    let tls = if urls.iter().any(|u| u.starts_with("https://")) {
        Some(super::tls::Https::setup(config.ca_file.as_deref())?)
    } else {
        None
    };
    if !items.is_empty() {
        log::info!("webhook: {} events pending from before", items.len());
    }
    let (results_tx, results) = crossbeam_channel::unbounded();
    let mut lanes = Vec::new();
    for (i, raw) in urls.iter().enumerate() {
        let url = Url::parse(raw).map_err(std::io::Error::other)?;
        let (jobs, work) = crossbeam_channel::bounded::<Item>(1);
        let results = results_tx.clone();
        let secret = config.secret.clone();
        let timeout = config.timeout;
        let tls = tls.clone();
        std::thread::Builder::new()
            .name("wschat-webhook-send".into())
            .spawn(move || {
                for item in work {
                    let bytes = http::request(&url, &item.event, item.body.as_bytes(), &secret);
                    let result = http::post(&url, tls.as_ref(), &bytes, timeout);
                    let outcome = Outcome {
                        lane: i,
                        seq: item.seq,
                        result,
                    };
                    if results.send(outcome).is_err() {
                        break;
                    }
                }
            })?;
        lanes.push(Lane {
            url: raw.clone(),
            queue: VecDeque::new(),
            failures: 0,
            next_at: Instant::now(),
            busy: false,
            jobs,
        });
    }
    for item in items {
        if let Some(lane) = lanes.iter_mut().find(|l| l.url == item.url) {
            lane.queue.push_back(item);
        }
    }
    std::thread::Builder::new()
        .name("wschat-webhook".into())
        .spawn(move || {
            let mut s = State {
                lanes,
                pending,
                stats,
                config,
                configured,
            };
            s.run(events, results);
        })
}

struct State {
    lanes: Vec<Lane>,
    pending: Pending,
    stats: Arc<Stats>,
    config: WebhookConfig,
    /// The first `configured` lanes are the `--webhook` URLs (new events
    /// go to them); the rest hold events kept from before.
    configured: usize,
}

impl State {
    fn run(&mut self, events: Receiver<(&'static str, String)>, results: Receiver<Outcome>) {
        loop {
            self.dispatch();
            self.stats.pending.store(self.count(), Ordering::Relaxed);
            let wait = self.next_wait();
            select! {
                recv(events) -> first => {
                    let Ok(first) = first else { break };
                    let mut batch = vec![first];
                    batch.extend(events.try_iter());
                    self.take_in(batch);
                }
                recv(results) -> outcome => {
                    if let Ok(outcome) = outcome {
                        self.finished(outcome);
                    }
                }
                default(wait) => {}
            }
        }
        // The hub is gone: what is pending is in the file; attempts under
        // way end on their own (their outcome is not waited for).
    }

    fn count(&self) -> usize {
        self.lanes.iter().map(|l| l.queue.len()).sum()
    }

    /// Until the next lane is due (at most a minute).
    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        self.lanes
            .iter()
            .filter(|l| !l.busy && !l.queue.is_empty())
            .map(|l| l.next_at.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(60))
    }

    /// Give each idle, due receiver its next event.
    fn dispatch(&mut self) {
        let now = Instant::now();
        for lane in &mut self.lanes {
            if lane.busy || lane.next_at > now {
                continue;
            }
            if let Some(item) = lane.queue.front()
                && lane.jobs.try_send(item.clone()).is_ok()
            {
                lane.busy = true;
            }
        }
    }

    /// New events from the hub: one per configured receiver, written to
    /// the pending file; past `max_pending`, dropped and counted.
    fn take_in(&mut self, batch: Vec<(&'static str, String)>) {
        let mut room = self.config.max_pending.saturating_sub(self.count());
        let mut add = Vec::new();
        for (event, body) in batch {
            if room < self.configured {
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::error!(
                        "webhook: {} events are waiting (--webhook-max-pending); new events are dropped, {n} so far",
                        self.count()
                    );
                }
                continue;
            }
            room -= self.configured;
            for lane in &self.lanes[..self.configured] {
                add.push((lane.url.clone(), event.to_string(), body.clone()));
            }
        }
        if add.is_empty() {
            return;
        }
        let items = match self.pending.add(add.clone()) {
            Ok(items) => items,
            Err(e) => {
                // Still delivered, but not kept across a restart.
                log::error!("webhook: cannot write the pending file: {e}");
                add.into_iter()
                    .map(|(url, event, body)| Item {
                        seq: 0,
                        url,
                        event,
                        body,
                    })
                    .collect()
            }
        };
        for item in items {
            if let Some(lane) = self.lanes.iter_mut().find(|l| l.url == item.url) {
                lane.queue.push_back(item);
            }
        }
        self.stats.pending.store(self.count(), Ordering::Relaxed);
    }

    fn finished(&mut self, outcome: Outcome) {
        let Some(lane) = self.lanes.get_mut(outcome.lane) else {
            return;
        };
        lane.busy = false;
        let delivered = matches!(outcome.result, Ok(status) if (200..300).contains(&status));
        if !delivered {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            lane.failures = lane.failures.saturating_add(1);
            let wait = BACKOFF_FIRST
                .saturating_mul(1u32 << (lane.failures - 1).min(20))
                .min(self.config.backoff_max);
            lane.next_at = Instant::now() + wait;
            let why = match &outcome.result {
                Ok(status) => format!("answered {status}"),
                Err(e) => e.to_string(),
            };
            log::warn!(
                "webhook: {} {why}; trying again in {}s ({} failures in a row)",
                lane.url,
                wait.as_secs(),
                lane.failures
            );
            return;
        }
        lane.failures = 0;
        lane.next_at = Instant::now();
        if lane.queue.front().is_some_and(|i| i.seq == outcome.seq) {
            lane.queue.pop_front();
        }
        self.stats.pending.store(self.count(), Ordering::Relaxed);
        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        let left: Vec<&Item> = self.lanes.iter().flat_map(|l| l.queue.iter()).collect();
        if outcome.seq != 0
            && let Err(e) = self.pending.done(outcome.seq, &left)
        {
            log::error!("webhook: cannot write the pending file: {e}");
        }
    }
}
