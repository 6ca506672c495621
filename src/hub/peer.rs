//! The write side of a connection: a bounded outbox shared by the hub (which
//! delivers messages) and the connection's reader thread (which answers
//! pings and closes), so frames never interleave.
//!
//! Delivery without a context switch: when nothing is queued, the sender
//! writes the frame itself with a non-blocking `send` (`MSG_DONTWAIT`). On a
//! healthy connection the kernel takes the whole frame and that is the end
//! of it: no thread wakes up. Only what the kernel refuses goes into the
//! outbox, and a *flusher* thread is started for as long as the outbox has
//! a backlog; it writes with blocking, vectored writes (many queued frames
//! in one system call) under a write timeout, and ends when the outbox is
//! empty.
//!
//! The outbox is bounded by bytes and by frames. A client that lets it fill
//! is a *slow consumer*: the queued frames are dropped, a Close 1008 is
//! queued after whatever frame was half-written, and once it is written (or
//! the write times out) the socket is shut down. The client never stalls the
//! hub or anyone else, and it is never silently skipped: a gap in a chat is
//! worse than a disconnect.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use super::prepared::PeerDeflate;
use crate::ws::{CloseCode, CloseFrame, Message};

/// A frame's bytes on the wire, shared by every recipient (server frames
/// are unmasked, so the same bytes serve everyone): cloning copies a
/// pointer, not the frame. [`super::prepared::PreparedFrame`] holds one
/// plain and, once needed, one compressed.
pub type Bytes = Arc<[u8]>;

/// Stack size of a flusher thread.
const FLUSHER_STACK_SIZE: usize = 64 * 1024;
/// Most frames handed to one vectored write.
const MAX_IOV: usize = 64;

/// Limits of one connection's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most bytes queued (not yet taken by the kernel).
    pub max_bytes: usize,
    /// Most frames queued.
    pub max_frames: usize,
    /// How long one blocking write may wait for the peer to read.
    pub write_timeout: Duration,
}

/// What became of a frame handed to [`Peer::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The kernel took all of it.
    Sent,
    /// Some or all of it waits in the outbox.
    Queued,
    /// The outbox was full: the peer is being closed as a slow consumer.
    Overflow,
    /// The connection is closing or gone; the frame was dropped.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// Frames may be sent.
    Open,
    /// A Close was queued: nothing more may follow it.
    Closing,
    /// The socket failed or was shut down.
    Dead,
}

#[derive(Debug)]
struct Outbox {
    queue: VecDeque<Bytes>,
    /// Bytes of `queue[0]` already written.
    head_offset: usize,
    /// Unwritten bytes in `queue` plus those the flusher holds.
    bytes: usize,
    /// A flusher thread is running (so senders must queue, not send).
    flushing: bool,
    state: OutState,
    /// When a Close was queued, for the close timeout.
    closing_since: Option<Instant>,
    /// The code of the Close queued, for the connection's log line.
    close_code: Option<CloseCode>,
    /// Shut the socket down once the outbox is empty (slow consumers).
    shutdown_when_empty: bool,
    /// The handshake's `101` response, held to go out in front of the
    /// first frames sent here ([`Peer::hold_handshake`]).
    handshake: Option<Bytes>,
}

/// One connection's write side.
#[derive(Debug)]
pub struct Peer {
    id: u64,
    /// The socket: written here (and by the flusher), read by the
    /// connection's reader through [`Peer::stream`].
    stream: TcpStream,
    limits: OutboxLimits,
    metrics: Arc<Metrics>,
    out: Mutex<Outbox>,
    drained: Condvar,
    /// permessage-deflate, if negotiated: what [`super::prepared::PreparedFrame`]
    /// frames become for this peer.
    deflate: Option<PeerDeflate>,
}

impl Peer {
    /// The write side of `stream`. The peer owns the socket (one allocation
    /// per connection, not two); the reader borrows it to read.
    pub fn new(id: u64, stream: TcpStream, limits: OutboxLimits, metrics: Arc<Metrics>) -> Peer {
        Peer {
            id,
            stream,
            limits,
            metrics,
            out: Mutex::new(Outbox {
                queue: VecDeque::new(),
                head_offset: 0,
                bytes: 0,
                flushing: false,
                state: OutState::Open,
                closing_since: None,
                close_code: None,
                shutdown_when_empty: false,
                handshake: None,
            }),
            drained: Condvar::new(),
            deflate: None,
        }
    }

    /// This peer negotiated permessage-deflate (RFC 7692) as `deflate` says.
    pub fn with_deflate(mut self, deflate: Option<PeerDeflate>) -> Peer {
        self.deflate = deflate;
        self
    }

    /// The socket, for the reader's side of the connection.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// What this peer negotiated of permessage-deflate, if anything.
    pub fn deflate(&self) -> Option<&PeerDeflate> {
        self.deflate.as_ref()
    }

    /// The connection id.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock would be a bug; the data is still
        // consistent enough to close the connection, so carry on.
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold `response`, the handshake's `101`, to go out in front of the
    /// first frames sent to this peer, in the same system call: for a chat
    /// newcomer the 101 and the hub's welcome, member page and history
    /// reach the client together, one wakeup of it instead of two. Every
    /// way out sends it first ([`Peer::send`], [`Peer::send_batch`],
    /// [`Peer::close`]), and the hub releases it at the end of the turn
    /// that saw the connection open ([`Peer::release_handshake`]) if
    /// nothing was sent by then.
    pub fn hold_handshake(self: &Arc<Self>, response: Bytes) {
        let mut out = self.lock();
        if out.state == OutState::Open && out.queue.is_empty() && !out.flushing {
            out.handshake = Some(response);
        } else {
            self.push_unbounded(&mut out, &response);
        }
    }

    /// Send the held `101` now, if it is still held.
    pub fn release_handshake(self: &Arc<Self>) {
        let mut out = self.lock();
        if let Some(response) = out.handshake.take()
            && out.state == OutState::Open
        {
            self.push_unbounded(&mut out, &response);
        }
    }

    /// Deliver one encoded frame.
    pub fn send(self: &Arc<Self>, frame: &Bytes) -> Delivery {
        let mut out = self.lock();
        if out.state != OutState::Open {
            return Delivery::Closed;
        }
        if let Some(response) = out.handshake.take() {
            return match self.write_batch(&mut out, &[response, frame.clone()], 1) {
                2 => Delivery::Queued,
                _ if out.state == OutState::Dead => Delivery::Closed,
                _ => Delivery::Overflow,
            };
        }
        self.push(&mut out, frame)
    }

    /// Deliver several frames, in order, with as few system calls as the
    /// kernel allows: when nothing is queued ahead, one vectored
    /// non-blocking `sendmsg` hands them all over. Returns how many were
    /// accepted (sent or queued).
    pub fn send_batch(self: &Arc<Self>, frames: &[Bytes]) -> usize {
        let mut out = self.lock();
        if out.state != OutState::Open {
            return 0;
        }
        if let Some(response) = out.handshake.take() {
            let mut all = Vec::with_capacity(frames.len() + 1);
            all.push(response);
            all.extend_from_slice(frames);
            return self.write_batch(&mut out, &all, 1).saturating_sub(1);
        }
        if let [frame] = frames {
            return usize::from(matches!(
                self.push(&mut out, frame),
                Delivery::Sent | Delivery::Queued
            ));
        }
        self.write_batch(&mut out, frames, 0)
    }

    /// [`Peer::send_batch`] on the locked outbox; frames from `traced` on
    /// are frames (before it, the held 101) for the trace log.
    fn write_batch(self: &Arc<Self>, out: &mut Outbox, frames: &[Bytes], traced: usize) -> usize {
        for frame in frames.iter().skip(traced) {
            trace_frame_out(self.id, frame);
        }
        let mut first_unsent = 0;
        if out.queue.is_empty() && !out.flushing {
            let written = match send_vectored_nonblocking(&self.stream, frames) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Err(_) => {
                    self.set_dead(out);
                    return 0;
                }
            };
            self.metrics
                .bytes_out
                .fetch_add(written as u64, Ordering::Relaxed);
            let mut left = written;
            while first_unsent < frames.len() && left >= frames[first_unsent].len() {
                left -= frames[first_unsent].len();
                first_unsent += 1;
            }
            if first_unsent == frames.len() {
                return frames.len();
            }
            // The kernel took part of a frame: it leads the outbox.
            let partial = &frames[first_unsent];
            out.queue.push_back(partial.clone());
            out.head_offset = left;
            self.add_bytes(out, partial.len() - left);
            first_unsent += 1;
            self.start_flusher(out);
        }
        let mut accepted = first_unsent;
        for frame in &frames[first_unsent..] {
            match self.push_queued(out, frame) {
                Delivery::Queued => accepted += 1,
                _ => break,
            }
        }
        accepted
    }

    /// Queue a frame behind a backlog, within the limits.
    fn push_queued(self: &Arc<Self>, out: &mut Outbox, frame: &Bytes) -> Delivery {
        if out.bytes + frame.len() > self.limits.max_bytes
            || out.queue.len() >= self.limits.max_frames
        {
            self.overflow(out);
            return Delivery::Overflow;
        }
        out.queue.push_back(frame.clone());
        self.add_bytes(out, frame.len());
        Delivery::Queued
    }

    /// Queue a Close frame with `code` and `reason` (RFC 6455 §7.1.2),
    /// after which nothing more is sent. Does nothing if one was queued.
    pub fn close(self: &Arc<Self>, code: CloseCode, reason: &str) {
        let mut out = self.lock();
        if out.state != OutState::Open {
            return;
        }
        // The 101 before the Close (its frame needs a WebSocket to be in).
        if let Some(response) = out.handshake.take() {
            self.push_unbounded(&mut out, &response);
        }
        let frame = code
            .is_allowed_on_wire()
            .then(|| CloseFrame::new(code, reason));
        let mut bytes = Vec::new();
        Message::Close(frame).encode(&mut bytes, None);
        self.metrics.count_close_sent(code);
        out.state = OutState::Closing;
        out.closing_since = Some(Instant::now());
        out.close_code = Some(code);
        // A Close goes out even past the limits: it is at most 127 bytes.
        self.push_unbounded(&mut out, &bytes.into());
    }

    /// When a Close was queued, if one was.
    pub fn closing_since(&self) -> Option<Instant> {
        self.lock().closing_since
    }

    /// The code of the Close sent (or queued), if one was.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.lock().close_code
    }

    /// Wait until the outbox is empty, at most `timeout`. Returns whether
    /// it emptied.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut out = self.lock();
        loop {
            if out.queue.is_empty() && !out.flushing || out.state == OutState::Dead {
                return out.queue.is_empty();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            out = self
                .drained
                .wait_timeout(out, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Stop all sending (the reader is done with the connection).
    pub fn abandon(&self) {
        let mut out = self.lock();
        self.set_dead(&mut out);
    }

    fn push(self: &Arc<Self>, out: &mut Outbox, frame: &Bytes) -> Delivery {
        trace_frame_out(self.id, frame);
        let queued = out.queue.len() + usize::from(out.flushing);
        if queued > 0
            && (out.bytes + frame.len() > self.limits.max_bytes
                || out.queue.len() >= self.limits.max_frames)
        {
            self.overflow(out);
            return Delivery::Overflow;
        }
        self.push_unbounded(out, frame)
    }

    fn push_unbounded(self: &Arc<Self>, out: &mut Outbox, frame: &Bytes) -> Delivery {
        if frame.first().is_some_and(|b| b & 0x0F == 0x8) {
            trace_frame_out(self.id, frame);
        }
        if out.queue.is_empty() && !out.flushing {
            // Nothing ahead of it: try to hand it to the kernel now.
            match send_nonblocking(&self.stream, frame) {
                Ok(n) if n == frame.len() => {
                    self.metrics
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                    if out.shutdown_when_empty {
                        let _ = self.stream.shutdown(Shutdown::Both);
                    }
                    return Delivery::Sent;
                }
                Ok(n) => {
                    self.metrics
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                    out.head_offset = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => out.head_offset = 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => out.head_offset = 0,
                Err(_) => {
                    self.set_dead(out);
                    return Delivery::Closed;
                }
            }
            out.queue.push_back(frame.clone());
            self.add_bytes(out, frame.len() - out.head_offset);
            self.start_flusher(out);
            return Delivery::Queued;
        }
        out.queue.push_back(frame.clone());
        self.add_bytes(out, frame.len());
        Delivery::Queued
    }

    fn add_bytes(&self, out: &mut Outbox, n: usize) {
        out.bytes += n;
        let total = self.metrics.outbox_bytes.fetch_add(n, Ordering::Relaxed) + n;
        self.metrics
            .outbox_bytes_peak
            .fetch_max(total, Ordering::Relaxed);
    }

    fn sub_bytes(&self, out: &mut Outbox, n: usize) {
        let n = n.min(out.bytes);
        out.bytes -= n;
        self.metrics.outbox_bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// The outbox is full: keep the frame that is half-written (cutting it
    /// would corrupt the stream), drop the rest, queue Close 1008, and shut
    /// the socket down once that is written.
    fn overflow(self: &Arc<Self>, out: &mut Outbox) {
        log::info!(
            "conn {}: slow consumer, outbox full ({} bytes queued): closing 1008",
            self.id,
            out.bytes
        );
        self.metrics
            .slow_consumer_closes
            .fetch_add(1, Ordering::Relaxed);
        // `head_offset > 0` means queue[0] is half-written and not yet taken
        // by the flusher; everything behind it is whole and can go.
        let keep = usize::from(out.head_offset > 0);
        while out.queue.len() > keep {
            if let Some(dropped) = out.queue.pop_back() {
                self.sub_bytes(out, dropped.len());
            }
        }
        out.state = OutState::Closing;
        out.closing_since = Some(Instant::now());
        out.close_code = Some(CloseCode::POLICY);
        out.shutdown_when_empty = true;
        let mut bytes = Vec::new();
        Message::Close(Some(CloseFrame::new(
            CloseCode::POLICY,
            "slow consumer: outbox full",
        )))
        .encode(&mut bytes, None);
        self.metrics.count_close_sent(CloseCode::POLICY);
        self.push_unbounded(out, &bytes.into());
    }

    fn set_dead(&self, out: &mut Outbox) {
        out.state = OutState::Dead;
        let queued = out.bytes;
        self.sub_bytes(out, queued);
        out.queue.clear();
        out.head_offset = 0;
        self.drained.notify_all();
    }

    fn start_flusher(self: &Arc<Self>, out: &mut Outbox) {
        out.flushing = true;
        let peer = self.clone();
        let spawned = std::thread::Builder::new()
            .name("wschat-flush".into())
            .stack_size(FLUSHER_STACK_SIZE)
            .spawn(move || peer.flush_loop());
        if spawned.is_err() {
            log::warn!(
                "conn {}: could not start a flusher thread; dropping the connection",
                self.id
            );
            out.flushing = false;
            self.set_dead(out);
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }

    /// The flusher: write out everything queued, then end.
    fn flush_loop(self: Arc<Self>) {
        let _ = self
            .stream
            .set_write_timeout(Some(self.limits.write_timeout));
        loop {
            let (batch, offset) = {
                let mut out = self.lock();
                if out.queue.is_empty() || out.state == OutState::Dead {
                    out.flushing = false;
                    if out.shutdown_when_empty {
                        let _ = self.stream.shutdown(Shutdown::Both);
                    }
                    self.drained.notify_all();
                    return;
                }
                let n = out.queue.len().min(MAX_IOV);
                let batch: Vec<Bytes> = out.queue.drain(..n).collect();
                let offset = std::mem::take(&mut out.head_offset);
                (batch, offset)
            };
            let result = write_all_vectored(&self.stream, &batch, offset);
            let mut out = self.lock();
            match result {
                Ok(written) => {
                    self.metrics
                        .bytes_out
                        .fetch_add(written as u64, Ordering::Relaxed);
                    self.sub_bytes(&mut out, written);
                }
                Err(e) => {
                    log::debug!("conn {}: write failed: {e}", self.id);
                    out.flushing = false;
                    self.set_dead(&mut out);
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Log an outgoing frame in the dissector's one-line form, at trace level
/// under `wschat::ws` (`RUST_LOG=wschat::ws=trace`).
fn trace_frame_out(id: u64, frame: &[u8]) {
    if log::log_enabled!(target: "wschat::ws", log::Level::Trace)
        && let Some((header, len)) = crate::ws::FrameHeader::parse(frame)
    {
        let line = header.line(Some(&frame[len..]));
        log::trace!(target: "wschat::ws", "conn {id}: frame out: {line}");
    }
}

/// Write every frame of `batch` (the first from `offset`) with as few
/// system calls as the kernel allows. Returns the bytes written.
fn write_all_vectored(mut stream: &TcpStream, batch: &[Bytes], offset: usize) -> io::Result<usize> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .enumerate()
        .map(|(i, b)| IoSlice::new(if i == 0 { &b[offset.min(b.len())..] } else { b }))
        .collect();
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let mut rest = &mut slices[..];
    let mut written = 0;
    while written < total {
        match stream.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// `send(2)` with `MSG_DONTWAIT`: write what the kernel takes now, never
/// block, on a socket that stays in blocking mode for its reader.
#[cfg(unix)]
fn send_nonblocking(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    crate::sys::send_nonblocking(stream, buf)
}

/// `sendmsg(2)` with `MSG_DONTWAIT` over several frames (at most
/// [`MAX_IOV`] at a time): returns the bytes the kernel took, which may end
/// in the middle of a frame.
#[cfg(unix)]
fn send_vectored_nonblocking(stream: &TcpStream, frames: &[Bytes]) -> io::Result<usize> {
    let mut total = 0;
    for chunk in frames.chunks(MAX_IOV) {
        let slices: Vec<IoSlice<'_>> = chunk.iter().map(|f| IoSlice::new(f)).collect();
        let want: usize = chunk.iter().map(|f| f.len()).sum();
        let n = match crate::sys::send_vectored_nonblocking(stream, &slices) {
            Ok(n) => n,
            Err(e) => return if total > 0 { Ok(total) } else { Err(e) },
        };
        total += n;
        if n < want {
            break;
        }
    }
    Ok(total)
}

#[cfg(not(unix))]
fn send_vectored_nonblocking(_stream: &TcpStream, _frames: &[Bytes]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Elsewhere every frame goes through the flusher.
#[cfg(not(unix))]
fn send_nonblocking(_stream: &TcpStream, _buf: &[u8]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}
