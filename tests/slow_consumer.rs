//! A client that stops reading must not stall the chat or grow the
//! server's memory: while three active clients exchange more than 20,000
//! messages of about 1.2 KiB, a fourth completes its handshake and never
//! reads. The active clients get every message, in order, with nothing
//! missing; the stuck one fills its bounded outbox and is closed with 1008
//! (docs/chat-protocol.md, "Closing"); the bytes waiting in outboxes stay
//! under the configured bound and drain to zero.
//!
//! The active clients read on their own threads, and the senders keep at
//! most [`WINDOW`] messages ahead of the slowest active reader, so that the
//! active clients are never the slow consumers themselves whatever the
//! machine's load. The stuck client is not part of that window: it is sent
//! about 25 MB, far more than the kernel's socket buffers hold.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{ChatClient, READ_TIMEOUT, RawClient};
use serde::Deserialize;
use wschat::WebSocket;
use wschat::config::Config;
use wschat::ws::frame::{Frame, OpCode};
use wschat::ws::{CloseCode, CloseFrame, Message};

/// Active clients; each also sends.
const ACTIVE: usize = 3;
/// Messages each active client sends.
const PER_SENDER: usize = 6_700;
/// Bytes of each message's text.
const TEXT_BYTES: usize = 1200;
/// Most messages the senders may be ahead of the slowest active reader.
const WINDOW: u64 = 64;
/// The outbox bound under test.
const MAX_OUTBOX: usize = 256 * 1024;
/// How long the whole exchange may take before the test gives up.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(180);

/// The parts of a server message the readers look at.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    id: Option<u64>,
    text: Option<String>,
    users: Option<Vec<UserRef>>,
}

#[derive(Deserialize)]
struct UserRef {
    id: u64,
}

/// The text of message `seq` from sender `sender`, `TEXT_BYTES` long.
fn text(sender: usize, seq: usize) -> String {
    let mut text = format!("s{sender}:{seq}:");
    let fill = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while text.len() < TEXT_BYTES {
        text.push(fill[(text.len() + seq) % fill.len()] as char);
    }
    text
}

/// What the senders and readers share.
struct Progress {
    /// Chat messages each active reader has received.
    seen: Mutex<Vec<u64>>,
    changed: Condvar,
    /// Messages written by all senders.
    sent: AtomicU64,
    /// Set when something failed, so that every thread stops waiting.
    abort: AtomicBool,
}

impl Progress {
    fn slowest(&self) -> u64 {
        self.seen.lock().unwrap().iter().copied().min().unwrap_or(0)
    }
}

/// What one active reader saw.
struct Seen {
    /// The ids of the chat messages, in order.
    ids: Vec<u64>,
    /// Whether a `leave` notice named the stuck client.
    stuck_left: bool,
    ws: WebSocket<TcpStream>,
}

fn read_active(
    index: usize,
    mut ws: WebSocket<TcpStream>,
    progress: &Progress,
    total: usize,
    stuck_id: u64,
) -> Result<Seen, String> {
    let mut stuck_left = false;
    ws.get_ref().set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut ids = Vec::with_capacity(total);
    let mut next_seq = [0usize; ACTIVE];
    while ids.len() < total {
        if progress.abort.load(Ordering::Relaxed) {
            return Err(format!("active {index}: stopped by another failure"));
        }
        let message = ws
            .read_message()
            .map_err(|e| format!("active {index}: reading after {} messages: {e}", ids.len()))?;
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                return Err(format!(
                    "active {index} was closed after {} messages: {frame:?}",
                    ids.len()
                ));
            }
            _ => continue,
        };
        let wire: Wire = serde_json::from_str(&text)
            .map_err(|e| format!("active {index}: not JSON ({e}): {text:.80}"))?;
        if wire.kind == "leave" {
            stuck_left |= wire.users.iter().flatten().any(|u| u.id == stuck_id);
        }
        if wire.kind != "chat" {
            continue;
        }
        let id = wire.id.ok_or("a chat without an id")?;
        let body = wire.text.ok_or("a chat without text")?;
        let mut parts = body.splitn(3, ':');
        let sender: usize = parts
            .next()
            .and_then(|s| s.strip_prefix('s'))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("active {index}: a stranger's text {body:.40}"))?;
        let seq: usize = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("active {index}: no sequence number in {body:.40}"))?;
        if sender >= ACTIVE || seq != next_seq[sender] {
            return Err(format!(
                "active {index}: from sender {sender} got #{seq}, expected #{}",
                next_seq.get(sender).copied().unwrap_or(0)
            ));
        }
        if body != self::text(sender, seq) {
            return Err(format!("active {index}: text of {sender}:{seq} altered"));
        }
        next_seq[sender] += 1;
        if let Some(&last) = ids.last()
            && id <= last
        {
            return Err(format!("active {index}: id {id} after {last}"));
        }
        ids.push(id);
        progress.seen.lock().unwrap()[index] += 1;
        progress.changed.notify_all();
    }
    Ok(Seen {
        ids,
        stuck_left,
        ws,
    })
}

fn send_active(
    index: usize,
    mut stream: TcpStream,
    progress: &Progress,
    deadline: Instant,
) -> Result<(), String> {
    for seq in 0..PER_SENDER {
        // Stay within the window of the slowest active reader.
        let mut seen = progress.seen.lock().unwrap();
        while progress.sent.load(Ordering::SeqCst)
            >= seen.iter().copied().min().unwrap_or(0) + WINDOW
        {
            if progress.abort.load(Ordering::Relaxed) {
                return Err(format!("sender {index}: stopped by another failure"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "sender {index}: the readers stopped at {:?} of {} sent",
                    *seen,
                    progress.sent.load(Ordering::SeqCst)
                ));
            }
            seen = progress
                .changed
                .wait_timeout(seen, left.min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
        drop(seen);
        let frame = common::client_frame(true, OpCode::Text, text(index, seq).as_bytes());
        stream
            .write_all(&frame)
            .map_err(|e| format!("sender {index}: writing #{seq}: {e}"))?;
        progress.sent.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

/// How the stuck client's connection ended, read once it was closed.
#[derive(Debug)]
enum StuckEnd {
    /// Whole frames, the last a Close with this payload.
    Close(CloseFrame, usize),
    /// The connection was reset.
    Reset(usize),
}

/// Read everything the stuck client was sent, to the end; every frame must
/// be whole and the last one a Close (or the connection reset).
fn drain_stuck(mut stuck: RawClient) -> Result<StuckEnd, String> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let reset = loop {
        match stuck.stream.read(&mut chunk) {
            Ok(0) => break false,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) => {
                return Err(format!(
                    "the stuck client, reading after {} bytes: {e}",
                    bytes.len()
                ));
            }
        }
    };
    let mut rest = &bytes[..];
    let mut frames = 0;
    let mut last = None;
    while !rest.is_empty() {
        let Some((frame, used)) = Frame::parse(rest) else {
            if reset {
                return Ok(StuckEnd::Reset(bytes.len()));
            }
            return Err(format!(
                "the stuck client's stream ended inside a frame ({} bytes left of {})",
                rest.len(),
                bytes.len()
            ));
        };
        rest = &rest[used..];
        frames += 1;
        if last
            .as_ref()
            .is_some_and(|f: &Frame| f.header.opcode == OpCode::Close)
        {
            return Err("a frame after the Close".into());
        }
        last = Some(frame);
    }
    match last {
        Some(frame) if frame.header.opcode == OpCode::Close => {
            let close = CloseFrame::parse(&frame.payload)
                .map_err(|e| format!("a bad Close payload: {e:?}"))?
                .ok_or("a Close without a code")?;
            Ok(StuckEnd::Close(close, frames))
        }
        _ if reset => Ok(StuckEnd::Reset(bytes.len())),
        other => Err(format!(
            "the stuck client's stream ended without a Close after {frames} frames ({} bytes); last {:?}",
            bytes.len(),
            other.map(|f| f.header.opcode)
        )),
    }
}

#[test]
fn a_client_that_never_reads_is_closed_and_the_others_get_everything() {
    let config = Config {
        rate_limit: 0,
        max_outbox_bytes: MAX_OUTBOX,
        // No pings during the test: the senders write raw frames beside the
        // readers, which would answer a ping on the same socket.
        ping_interval: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(1200),
        // Generous, so that the stuck client's blocked write does not time
        // out before it starts reading on a busy machine.
        close_timeout: Duration::from_secs(30),
        ..common::config()
    };
    let server = common::start(config);
    let addr = server.addr();

    // The stuck client: its welcome shows it is in the lobby, and then it
    // never reads again (until it has been closed).
    let mut stuck = RawClient::connect(addr, "/");
    let welcome = stuck.expect(OpCode::Text);
    let welcome: serde_json::Value = serde_json::from_slice(&welcome).unwrap();
    assert_eq!(welcome["type"], "welcome");
    let stuck_id = welcome["user"]["id"].as_u64().unwrap();

    let actives: Vec<ChatClient> = (0..ACTIVE)
        .map(|i| ChatClient::join(&server, Some(&format!("active{i}"))))
        .collect();
    let active_ids: Vec<u64> = actives.iter().map(|c| c.id).collect();

    let total = ACTIVE * PER_SENDER;
    let progress = Progress {
        seen: Mutex::new(vec![0; ACTIVE]),
        changed: Condvar::new(),
        sent: AtomicU64::new(0),
        abort: AtomicBool::new(false),
    };
    let deadline = Instant::now() + EXCHANGE_LIMIT;
    let metrics = server.metrics();

    let (seen, stuck_end) = std::thread::scope(|scope| {
        let progress = &progress;
        let mut readers = Vec::new();
        let mut senders = Vec::new();
        for (index, client) in actives.into_iter().enumerate() {
            let stream = client.ws.get_ref().try_clone().unwrap();
            stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            readers.push(scope.spawn(move || {
                let result = read_active(index, client.ws, progress, total, stuck_id);
                if result.is_err() {
                    progress.abort.store(true, Ordering::Relaxed);
                    progress.changed.notify_all();
                }
                result
            }));
            senders.push(scope.spawn(move || {
                let result = send_active(index, stream, progress, deadline);
                if result.is_err() {
                    progress.abort.store(true, Ordering::Relaxed);
                    progress.changed.notify_all();
                }
                result
            }));
        }
        // The stuck client reads only once the server has given up on it.
        let watcher = scope.spawn(move || {
            loop {
                if metrics.slow_consumer_closes.load(Ordering::Relaxed) > 0 {
                    break;
                }
                if progress.abort.load(Ordering::Relaxed) {
                    return Err("stopped by another failure".to_string());
                }
                if progress.slowest() >= total as u64 {
                    return Err(format!(
                        "every message was delivered and the stuck client is still open ({} bytes queued)",
                        metrics.outbox_bytes.load(Ordering::Relaxed)
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            drain_stuck(stuck)
        });
        let sent: Vec<Result<(), String>> =
            senders.into_iter().map(|s| s.join().unwrap()).collect();
        let seen: Vec<Result<Seen, String>> =
            readers.into_iter().map(|r| r.join().unwrap()).collect();
        let stuck_end = watcher.join().unwrap();
        for result in &sent {
            if let Err(e) = result {
                panic!("{e}");
            }
        }
        let seen: Vec<Seen> = seen
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        (seen, stuck_end)
    });

    // Every active client got every message, in the same order.
    for (index, s) in seen.iter().enumerate() {
        assert_eq!(s.ids.len(), total, "active {index}");
        assert_eq!(s.ids, seen[0].ids, "active {index} saw another order");
    }
    // Ids are server-wide and also number membership records: the only one
    // during the exchange is the stuck client's leaving.
    let ids = &seen[0].ids;
    let skipped = ids.last().unwrap() - ids.first().unwrap() + 1 - total as u64;
    assert!(
        skipped <= 1,
        "{skipped} ids missing between the chat messages"
    );

    // The stuck client was closed by the policy, and only it.
    assert_eq!(metrics.slow_consumer_closes.load(Ordering::Relaxed), 1);
    let stuck_end = stuck_end.unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "the stuck client: {stuck_end:?}; outbox peak {} bytes",
        metrics.outbox_bytes_peak.load(Ordering::Relaxed)
    );
    match stuck_end {
        StuckEnd::Close(close, frames) => {
            assert_eq!(
                close.code,
                CloseCode::POLICY,
                "{close:?} after {frames} frames"
            );
            assert!(frames > 3, "only {frames} frames before the Close");
        }
        StuckEnd::Reset(bytes) => assert!(bytes > 0),
    }
    assert_eq!(metrics.closes_sent(CloseCode::POLICY), 1);

    // Memory stayed bounded: at most every client's outbox full at once
    // (plus a frame each, which may go past the bound by less than itself,
    // and a Close).
    let clients = ACTIVE + 1;
    let peak = metrics.outbox_bytes_peak.load(Ordering::Relaxed);
    let bound = clients * MAX_OUTBOX + clients * (TEXT_BYTES + 512);
    assert!(
        peak <= bound,
        "outbox peak {peak} bytes; the bound is {bound}"
    );
    assert!(
        peak > 0,
        "nothing ever waited in an outbox: the test tested nothing"
    );
    common::eventually(READ_TIMEOUT, "every outbox drained", || {
        metrics.outbox_bytes.load(Ordering::Relaxed) == 0
    });
    common::eventually(READ_TIMEOUT, "the stuck client's socket closed", || {
        metrics.websockets_open.load(Ordering::Relaxed) == ACTIVE
    });

    // And the room heard that it left (during the exchange, or after).
    for (s, id) in seen.into_iter().zip(active_ids) {
        let mut client = ChatClient {
            ws: s.ws,
            id,
            name: String::new(),
        };
        if !s.stuck_left {
            let leave = client.until("the stuck client's leave", |m| {
                m["type"] == "leave" && common::names_user(&m["users"], stuck_id)
            });
            assert_eq!(leave["count"], ACTIVE);
        }
        let _ = client.ws.get_ref().shutdown(Shutdown::Both);
    }
}
