//! The Redis client: two connections, each on threads of its own, that the
//! rest of the program reaches only through crossbeam channels.
//!
//! * The **command link** writes commands as they come ([`Client::send`]
//!   never blocks: a full queue or a link that is down answers at once with
//!   an [`Error`]), several at a time when several are waiting (pipelining),
//!   and hands each reply to the channel its request named, in order.
//! * The **subscriber link** holds the pub/sub subscriptions and turns what
//!   is published into [`Event::Message`]s.
//!
//! Each link re-dials on its own when its connection fails, waiting
//! [`DEFAULT_BACKOFF_MIN`] at first and twice as long after each failed
//! dial, up to [`DEFAULT_BACKOFF_MAX`] (with jitter, so that a cluster's
//! nodes do not all dial in step). The subscriber link subscribes again to
//! every channel it held. Each change is an [`Event::Up`] or
//! [`Event::Down`]; the subscriptions confirmed after a dial are
//! [`Event::Subscribed`]s, after which the caller fills what it missed from
//! the streams.
//!
//! A connection is judged dead when a reply is owed for longer than
//! [`ClientConfig::reply_timeout`]: an idle link sends `PING` every
//! [`ClientConfig::ping_interval`], so a Redis that vanished without a
//! word is noticed within the sum of the two.
//!
//! A request whose connection fails before its reply comes gets
//! [`Error::Disconnected`]: it may or may not have run.

use super::resp::{Decoder, Push, RespError, Value, encode_command};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select, unbounded};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a dial may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a reply may be owed before the connection counts as dead.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an idle link pings.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);
/// The first wait before dialing again.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two dials.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Most requests waiting to be written; past it [`Client::send`] answers
/// [`Error::Busy`].
pub const REQUEST_QUEUE: usize = 4096;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Channels named in one `SUBSCRIBE` when subscribing again after a dial.
const SUBSCRIBE_BATCH: usize = 512;

/// Where and how to reach Redis.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`.
    pub addr: String,
    /// The database (`SELECT`), 0 by default.
    pub db: u32,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_REPLY_TIMEOUT`].
    pub reply_timeout: Duration,
    /// See [`DEFAULT_PING_INTERVAL`].
    pub ping_interval: Duration,
    /// See [`DEFAULT_BACKOFF_MIN`].
    pub backoff_min: Duration,
    /// See [`DEFAULT_BACKOFF_MAX`].
    pub backoff_max: Duration,
}

impl ClientConfig {
    /// The settings for `redis://HOST:PORT[/DB]` (the form `--redis`
    /// takes), every timing at its default.
    ///
    /// ```
    /// use wschat::cluster::client::ClientConfig;
    /// let c = ClientConfig::from_url("redis://10.0.0.5:6380/2").unwrap();
    /// assert_eq!((c.addr.as_str(), c.db), ("10.0.0.5:6380", 2));
    /// assert_eq!(ClientConfig::from_url("redis://cache").unwrap().addr, "cache:6379");
    /// assert!(ClientConfig::from_url("http://x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<ClientConfig, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("{url}: a Redis URL starts with redis://"))?;
        let (host, db) = match rest.split_once('/') {
            Some((host, "")) => (host, 0),
            Some((host, db)) => (
                host,
                db.parse()
                    .map_err(|_| format!("{url}: the database must be a number"))?,
            ),
            None => (rest, 0),
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("{url}: expected redis://HOST:PORT[/DB]"));
        }
        let has_port = match host.rsplit_once(':') {
            Some((h, port)) => !h.ends_with(':') && port.parse::<u16>().is_ok(),
            None => false,
        };
        let addr = if has_port {
            host.to_string()
        } else {
            format!("{host}:6379")
        };
        Ok(ClientConfig {
            addr,
            db,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
        })
    }
}

/// A Lua script, called by its SHA-1 (`EVALSHA`); a server that does not
/// know it yet (`NOSCRIPT`: it restarted, or its cache was flushed) gets
/// the script's text once (`EVAL`), which loads it again.
#[derive(Debug)]
pub struct Script {
    text: String,
    sha: String,
}

impl Script {
    /// A script from its source.
    pub fn new(text: &str) -> Script {
        use sha1::{Digest, Sha1};
        let digest = Sha1::digest(text.as_bytes());
        let sha = digest.iter().map(|b| format!("{b:02x}")).collect();
        Script {
            text: text.to_string(),
            sha,
        }
    }

    /// The SHA-1 Redis knows it by, in lowercase hex.
    pub fn sha(&self) -> &str {
        &self.sha
    }
}

/// One command: its arguments, the first being its name.
#[derive(Debug, Clone)]
pub struct Cmd {
    args: Vec<Vec<u8>>,
    /// For `EVALSHA`: the script, to send as `EVAL` on `NOSCRIPT`.
    script: Option<Arc<Script>>,
}

impl Cmd {
    /// A command by name; add its arguments with [`Cmd::arg`].
    pub fn new(name: &str) -> Cmd {
        Cmd {
            args: vec![name.as_bytes().to_vec()],
            script: None,
        }
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Cmd {
        self.args.push(arg.as_ref().to_vec());
        self
    }

    /// A call of `script` with these keys and arguments.
    pub fn eval<K: AsRef<[u8]>, A: AsRef<[u8]>>(
        script: &Arc<Script>,
        keys: &[K],
        args: &[A],
    ) -> Cmd {
        let mut cmd = Cmd::new("EVALSHA")
            .arg(&script.sha)
            .arg(keys.len().to_string());
        for k in keys {
            cmd = cmd.arg(k);
        }
        for a in args {
            cmd = cmd.arg(a);
        }
        cmd.script = Some(Arc::clone(script));
        cmd
    }

    /// The arguments, name first.
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    /// The same call with the script's text (`EVAL`).
    fn as_eval(&self) -> Option<Cmd> {
        let script = self.script.as_ref()?;
        let mut args = self.args.clone();
        *args.first_mut()? = b"EVAL".to_vec();
        *args.get_mut(1)? = script.text.as_bytes().to_vec();
        Some(Cmd { args, script: None })
    }
}

/// Why a request got no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The link is down: the request was not sent.
    Unavailable,
    /// [`REQUEST_QUEUE`] requests are waiting already: not sent.
    Busy,
    /// Sent, and the connection failed before its reply: it may or may not
    /// have run.
    Disconnected,
    /// No reply within the time [`Client::call`] was given.
    Timeout,
    /// Redis answered with an error (the command did not run, or a script
    /// stopped there).
    Server(String),
    /// The reply was not of the shape the command has.
    Reply(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable => write!(f, "Redis unreachable"),
            Error::Busy => write!(f, "too many Redis requests waiting"),
            Error::Disconnected => write!(f, "connection to Redis lost before the reply"),
            Error::Timeout => write!(f, "no reply from Redis in time"),
            Error::Server(e) => write!(f, "Redis: {e}"),
            Error::Reply(e) => write!(f, "unexpected Redis reply: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The answer to one request, on the channel the request named.
#[derive(Debug)]
pub struct Reply {
    /// The request's tag, as given to [`Client::send`].
    pub tag: u64,
    /// The value (an error reply is [`Error::Server`]).
    pub result: Result<Value, Error>,
}

/// Which of the client's two connections an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// The one that runs commands.
    Commands,
    /// The one that holds the subscriptions.
    Subscriber,
}

/// What the client tells the rest of the program, on the events channel
/// given to [`Client::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The link is connected (after a dial, the subscriber link has asked
    /// for every subscription again; each is confirmed by a
    /// [`Event::Subscribed`]).
    Up(Link),
    /// The link is down, and why; it is being dialed again.
    Down(Link, String),
    /// A subscription holds from now on: what is published to it from now
    /// on arrives.
    Subscribed(Vec<u8>),
    /// Something published to a subscribed channel.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// What was published.
        payload: Vec<u8>,
    },
}

/// A request on its way to the command link.
struct Request {
    cmd: Cmd,
    tag: u64,
    reply_to: Sender<Reply>,
}

enum SubRequest {
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
}

/// The Redis client: see the module's text. Dropping it closes both
/// connections.
pub struct Client {
    requests: Sender<Request>,
    subs: Sender<SubRequest>,
    commands_up: Arc<UpFlag>,
    subscriber_up: Arc<UpFlag>,
}

/// Whether a link is connected, and a way to wait until it is.
#[derive(Default)]
struct UpFlag {
    up: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl UpFlag {
    fn get(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn set(&self, up: bool) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.up.store(up, Ordering::Release);
        self.changed.notify_all();
    }

    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.get() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Client {
    /// Start both links (an error if a thread cannot be started); they
    /// dial at once, and events go to `events`. A
    /// bounded `events` channel is right: when it is full the subscriber
    /// link stops reading, Redis buffers for it and, past its
    /// `client-output-buffer-limit pubsub`, closes the connection: the link
    /// then re-dials, and the caller fills the gap from the streams.
    pub fn start(config: ClientConfig, events: Sender<Event>) -> std::io::Result<Client> {
        let (requests, requests_rx) = bounded(REQUEST_QUEUE);
        let (subs, subs_rx) = unbounded();
        let commands_up = Arc::new(UpFlag::default());
        let subscriber_up = Arc::new(UpFlag::default());
        let up = Arc::clone(&commands_up);
        let (c, e) = (config.clone(), events.clone());
        std::thread::Builder::new()
            .name("redis-commands".into())
            .spawn(move || CommandLink::new(c, e, up).run(requests_rx))?;
        let up = Arc::clone(&subscriber_up);
        // If this one cannot start, dropping `requests` ends the other.
        std::thread::Builder::new()
            .name("redis-subscriber".into())
            .spawn(move || SubscriberLink::new(config, events, up).run(subs_rx))?;
        Ok(Client {
            requests,
            subs,
            commands_up,
            subscriber_up,
        })
    }

    /// Queue `cmd`; its [`Reply`], tagged `tag`, goes to `reply_to`. Never
    /// blocks: a link that is down or a full queue is an error at once.
    pub fn send(&self, cmd: Cmd, tag: u64, reply_to: &Sender<Reply>) -> Result<(), Error> {
        if !self.commands_up.get() {
            return Err(Error::Unavailable);
        }
        let request = Request {
            cmd,
            tag,
            reply_to: reply_to.clone(),
        };
        self.requests.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => Error::Busy,
            TrySendError::Disconnected(_) => Error::Unavailable,
        })
    }

    /// Run `cmd` and wait at most `timeout` for its reply: for the command
    /// line and the tests, never for the hub.
    pub fn call(&self, cmd: Cmd, timeout: Duration) -> Result<Value, Error> {
        let (tx, rx) = bounded(1);
        self.send(cmd, 0, &tx)?;
        match rx.recv_timeout(timeout) {
            Ok(reply) => reply.result,
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Subscribe to `channel`, now if the subscriber link is up and after
    /// every dial from now on ([`Event::Subscribed`] confirms it).
    pub fn subscribe(&self, channel: impl AsRef<[u8]>) {
        let _ = self
            .subs
            .send(SubRequest::Subscribe(channel.as_ref().to_vec()));
    }

    /// Stop receiving what is published to `channel`.
    pub fn unsubscribe(&self, channel: impl AsRef<[u8]>) {
        let _ = self
            .subs
            .send(SubRequest::Unsubscribe(channel.as_ref().to_vec()));
    }

    /// Whether the link is connected now.
    pub fn is_up(&self, link: Link) -> bool {
        match link {
            Link::Commands => self.commands_up.get(),
            Link::Subscriber => self.subscriber_up.get(),
        }
    }

    /// Wait at most `timeout` for the link to be connected; whether it is.
    /// For the command line and the tests (a first dial takes a moment).
    pub fn wait_up(&self, link: Link, timeout: Duration) -> bool {
        match link {
            Link::Commands => self.commands_up.wait(timeout),
            Link::Subscriber => self.subscriber_up.wait(timeout),
        }
    }
}

// ---------------------------------------------------------------- dialing

/// The wait before the next dial, doubled per failure, with up to a
/// quarter of jitter.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    fn step(&mut self) -> Duration {
        let base = self.next.min(self.max);
        self.next = (base * 2).min(self.max);
        let quarter = base.as_micros() as u64 / 4;
        let jitter = if quarter == 0 {
            0
        } else {
            crate::random::random_u64() % quarter
        };
        base - Duration::from_micros(jitter)
    }
}

/// Open a connection and select the database, waiting at most the
/// configured times.
fn dial(config: &ClientConfig) -> Result<TcpStream, String> {
    let addrs: Vec<_> = config
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", config.addr))?
        .collect();
    let mut last = format!("{}: no address", config.addr);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, config.connect_timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                stream
                    .set_write_timeout(Some(config.reply_timeout))
                    .map_err(|e| e.to_string())?;
                if config.db != 0 {
                    select_db(&stream, config)?;
                }
                return Ok(stream);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// `SELECT db`, answered before the connection is handed to its reader.
fn select_db(mut stream: &TcpStream, config: &ClientConfig) -> Result<(), String> {
    let mut out = Vec::new();
    encode_command(&mut out, &["SELECT".to_string(), config.db.to_string()]);
    stream.write_all(&out).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(config.reply_timeout))
        .map_err(|e| e.to_string())?;
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 256];
    let value = loop {
        if let Some(v) = decoder.decode().map_err(|e| e.to_string())? {
            break v;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during SELECT".into());
        }
        decoder.feed(&buf[..n]).map_err(|e| e.to_string())?;
    };
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    match value {
        Value::Status(_) if decoder.buffered() == 0 => Ok(()),
        other => Err(format!("SELECT {}: {other:?}", config.db)),
    }
}

/// Read values off `stream` until it fails, giving each to `each`; the
/// reason it stopped comes back.
fn read_values(mut stream: TcpStream, mut each: impl FnMut(Value) -> Result<(), String>) -> String {
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return "connection closed by Redis".into(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return e.to_string(),
        };
        if let Err(e) = decoder.feed(&buf[..n]) {
            return e.to_string();
        }
        loop {
            match decoder.decode() {
                Ok(Some(value)) => {
                    if let Err(e) = each(value) {
                        return e;
                    }
                }
                Ok(None) => break,
                Err(e) => return RespError::to_string(&e),
            }
        }
    }
}

/// What a reader thread tells its link's thread.
enum Internal {
    /// Connection `generation` failed.
    Dead(u64, String),
    /// A script call came back `NOSCRIPT`: send it again as `EVAL`.
    Retry(u64, Pending),
}

// ---------------------------------------------------------------- commands

/// A request written and waiting for its reply.
struct Pending {
    tag: u64,
    reply_to: Option<Sender<Reply>>,
    /// Kept for script calls only, to resend them as `EVAL`.
    cmd: Option<Cmd>,
    sent: Instant,
}

impl Pending {
    fn answer(self, result: Result<Value, Error>) {
        if let Some(to) = self.reply_to {
            let _ = to.send(Reply {
                tag: self.tag,
                result,
            });
        }
    }
}

struct Live {
    stream: TcpStream,
    generation: u64,
    pending: Arc<Mutex<VecDeque<Pending>>>,
    last_write: Instant,
    /// The scripts sent on this connection: each one's first call goes as
    /// `EVAL`, so that the server has it before any later command (an
    /// `EVALSHA` answered `NOSCRIPT` and sent again would come after the
    /// commands behind it, out of order).
    loaded: std::collections::HashSet<String>,
}

struct CommandLink {
    config: ClientConfig,
    events: Sender<Event>,
    up: Arc<UpFlag>,
    internal: (Sender<Internal>, Receiver<Internal>),
    live: Option<Live>,
    generation: u64,
    backoff: Backoff,
    next_dial: Instant,
    /// Whether `Down` was said since the last `Up` (or since the start).
    said_down: bool,
}

impl CommandLink {
    fn new(config: ClientConfig, events: Sender<Event>, up: Arc<UpFlag>) -> CommandLink {
        let backoff = Backoff::new(config.backoff_min, config.backoff_max);
        CommandLink {
            config,
            events,
            up,
            internal: unbounded(),
            live: None,
            generation: 0,
            backoff,
            next_dial: Instant::now(),
            said_down: false,
        }
    }

    fn run(mut self, requests: Receiver<Request>) {
        loop {
            if self.live.is_none() && Instant::now() >= self.next_dial {
                self.connect();
            }
            let wait = self.wait();
            let internal = self.internal.1.clone();
            select! {
                recv(requests) -> request => match request {
                    Ok(request) => {
                        let mut batch = vec![request];
                        while batch.len() < 256 {
                            match requests.try_recv() {
                                Ok(r) => batch.push(r),
                                Err(_) => break,
                            }
                        }
                        self.write(batch);
                    }
                    Err(_) => break,
                },
                recv(internal) -> msg => match msg {
                    Ok(Internal::Dead(generation, why)) => self.lost(generation, why),
                    Ok(Internal::Retry(generation, pending)) => self.retry(generation, pending),
                    Err(_) => break,
                },
                default(wait) => self.tick(),
            }
        }
        if let Some(live) = self.live.take() {
            let _ = live.stream.shutdown(Shutdown::Both);
        }
        self.up.set(false);
    }

    /// How long to sleep when nothing comes: till the next dial, ping or
    /// reply deadline.
    fn wait(&self) -> Duration {
        let now = Instant::now();
        match &self.live {
            None => self.next_dial.saturating_duration_since(now),
            Some(_) => self.config.ping_interval.min(self.config.reply_timeout) / 2,
        }
    }

    fn connect(&mut self) {
        match dial(&self.config) {
            Ok(stream) => {
                let reader = match stream.try_clone() {
                    Ok(r) => r,
                    Err(e) => return self.failed_dial(e.to_string()),
                };
                self.generation += 1;
                let generation = self.generation;
                let pending = Arc::new(Mutex::new(VecDeque::<Pending>::new()));
                let (p, tx) = (Arc::clone(&pending), self.internal.0.clone());
                let spawned = std::thread::Builder::new()
                    .name("redis-replies".into())
                    .spawn(move || read_replies(reader, generation, p, tx));
                if let Err(e) = spawned {
                    return self.failed_dial(e.to_string());
                }
                self.live = Some(Live {
                    stream,
                    generation,
                    pending,
                    last_write: Instant::now(),
                    loaded: std::collections::HashSet::new(),
                });
                self.backoff.reset();
                self.said_down = false;
                self.up.set(true);
                let _ = self.events.send(Event::Up(Link::Commands));
            }
            Err(e) => self.failed_dial(e),
        }
    }

    fn failed_dial(&mut self, why: String) {
        self.next_dial = Instant::now() + self.backoff.step();
        if !self.said_down {
            self.said_down = true;
            let _ = self.events.send(Event::Down(Link::Commands, why));
        }
    }

    fn write(&mut self, batch: Vec<Request>) {
        let Some(live) = &mut self.live else {
            for r in batch {
                let _ = r.reply_to.send(Reply {
                    tag: r.tag,
                    result: Err(Error::Unavailable),
                });
            }
            return;
        };
        let mut out = Vec::new();
        let now = Instant::now();
        {
            let mut pending = live.pending.lock().unwrap_or_else(|e| e.into_inner());
            for r in batch {
                let first = r
                    .cmd
                    .script
                    .as_ref()
                    .is_some_and(|s| live.loaded.insert(s.sha.clone()));
                match r.cmd.as_eval().filter(|_| first) {
                    Some(eval) => encode_command(&mut out, &eval.args),
                    None => encode_command(&mut out, &r.cmd.args),
                }
                let keep = r.cmd.script.is_some().then_some(r.cmd);
                pending.push_back(Pending {
                    tag: r.tag,
                    reply_to: Some(r.reply_to),
                    cmd: keep,
                    sent: now,
                });
            }
        }
        self.send_bytes(&out);
    }

    fn send_bytes(&mut self, out: &[u8]) {
        let Some(live) = &mut self.live else { return };
        live.last_write = Instant::now();
        if let Err(e) = (&live.stream).write_all(out) {
            let generation = live.generation;
            self.lost(generation, format!("write: {e}"));
        }
    }

    fn retry(&mut self, generation: u64, pending: Pending) {
        let again = pending.cmd.as_ref().and_then(Cmd::as_eval);
        match (&self.live, again) {
            (Some(live), Some(cmd)) if live.generation == generation => {
                let mut out = Vec::new();
                encode_command(&mut out, &cmd.args);
                live.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(Pending {
                        cmd: None,
                        sent: Instant::now(),
                        ..pending
                    });
                self.send_bytes(&out);
            }
            _ => pending.answer(Err(Error::Disconnected)),
        }
    }

    /// Connection `generation` is over: fail what it owed, dial again.
    fn lost(&mut self, generation: u64, why: String) {
        let Some(live) = self.live.take_if(|l| l.generation == generation) else {
            return;
        };
        let _ = live.stream.shutdown(Shutdown::Both);
        self.up.set(false);
        let owed: Vec<Pending> = live
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for p in owed {
            p.answer(Err(Error::Disconnected));
        }
        self.said_down = true;
        let _ = self.events.send(Event::Down(Link::Commands, why));
        self.next_dial = Instant::now() + self.backoff.step();
    }

    /// Nothing came for a while: check the oldest reply owed, ping when
    /// idle.
    fn tick(&mut self) {
        let Some(live) = &self.live else { return };
        let now = Instant::now();
        let oldest = live
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .map(|p| p.sent);
        match oldest {
            Some(sent) if now.duration_since(sent) > self.config.reply_timeout => {
                let generation = live.generation;
                self.lost(generation, "no reply in time".into());
            }
            None if now.duration_since(live.last_write) >= self.config.ping_interval => {
                live.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(Pending {
                        tag: 0,
                        reply_to: None,
                        cmd: None,
                        sent: now,
                    });
                let mut out = Vec::new();
                encode_command(&mut out, &["PING"]);
                self.send_bytes(&out);
            }
            _ => {}
        }
    }
}

/// The reader of one command connection: each reply answers the oldest
/// request written.
fn read_replies(
    stream: TcpStream,
    generation: u64,
    pending: Arc<Mutex<VecDeque<Pending>>>,
    internal: Sender<Internal>,
) {
    let why = read_values(stream, |value| {
        let next = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let Some(p) = next else {
            return Err("a reply that no request asked for".into());
        };
        match value {
            Value::Error(e) if e.starts_with(b"NOSCRIPT") && p.cmd.is_some() => {
                let _ = internal.send(Internal::Retry(generation, p));
            }
            Value::Error(e) => {
                p.answer(Err(Error::Server(String::from_utf8_lossy(&e).into_owned())))
            }
            value => p.answer(Ok(value)),
        }
        Ok(())
    });
    let _ = internal.send(Internal::Dead(generation, why));
}

// ---------------------------------------------------------------- pub/sub

struct SubscriberLink {
    config: ClientConfig,
    events: Sender<Event>,
    up: Arc<UpFlag>,
    internal: (Sender<Internal>, Receiver<Internal>),
    wanted: BTreeSet<Vec<u8>>,
    live: Option<(TcpStream, u64)>,
    generation: u64,
    /// The generation of the live connection, for its reader to see when
    /// it is no longer the one.
    current: Arc<AtomicU64>,
    /// Milliseconds since `epoch` when the live connection last said
    /// anything, and when it was last pinged.
    heard: Arc<AtomicU64>,
    pinged: u64,
    epoch: Instant,
    backoff: Backoff,
    next_dial: Instant,
    said_down: bool,
}

impl SubscriberLink {
    fn new(config: ClientConfig, events: Sender<Event>, up: Arc<UpFlag>) -> SubscriberLink {
        let backoff = Backoff::new(config.backoff_min, config.backoff_max);
        SubscriberLink {
            config,
            events,
            up,
            internal: unbounded(),
            wanted: BTreeSet::new(),
            live: None,
            generation: 0,
            current: Arc::new(AtomicU64::new(0)),
            heard: Arc::new(AtomicU64::new(0)),
            pinged: 0,
            epoch: Instant::now(),
            backoff,
            next_dial: Instant::now(),
            said_down: false,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn run(mut self, requests: Receiver<SubRequest>) {
        loop {
            if self.live.is_none() && Instant::now() >= self.next_dial {
                self.connect();
            }
            let wait = match self.live {
                None => self.next_dial.saturating_duration_since(Instant::now()),
                Some(_) => self.config.ping_interval.min(self.config.reply_timeout) / 2,
            };
            let internal = self.internal.1.clone();
            select! {
                recv(requests) -> request => match request {
                    Ok(SubRequest::Subscribe(ch)) => {
                        if self.wanted.insert(ch.clone()) {
                            self.command("SUBSCRIBE", &[ch]);
                        }
                    }
                    Ok(SubRequest::Unsubscribe(ch)) => {
                        if self.wanted.remove(&ch) {
                            self.command("UNSUBSCRIBE", &[ch]);
                        }
                    }
                    Err(_) => break,
                },
                recv(internal) -> msg => match msg {
                    Ok(Internal::Dead(generation, why)) => self.lost(generation, why),
                    Ok(Internal::Retry(..)) => {}
                    Err(_) => break,
                },
                default(wait) => self.tick(),
            }
        }
        if let Some((stream, _)) = self.live.take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.up.set(false);
    }

    fn connect(&mut self) {
        let stream = match dial(&self.config) {
            Ok(s) => s,
            Err(e) => return self.failed_dial(e),
        };
        let reader = match stream.try_clone() {
            Ok(r) => r,
            Err(e) => return self.failed_dial(e.to_string()),
        };
        self.generation += 1;
        let generation = self.generation;
        self.current.store(generation, Ordering::Release);
        let watch = Watch {
            generation,
            current: Arc::clone(&self.current),
            heard: Arc::clone(&self.heard),
            epoch: self.epoch,
        };
        let (events, tx) = (self.events.clone(), self.internal.0.clone());
        self.heard.store(self.now_ms(), Ordering::Release);
        self.pinged = 0;
        let spawned = std::thread::Builder::new()
            .name("redis-pushes".into())
            .spawn(move || read_pushes(reader, watch, events, tx));
        if let Err(e) = spawned {
            return self.failed_dial(e.to_string());
        }
        self.live = Some((stream, generation));
        self.backoff.reset();
        self.said_down = false;
        self.up.set(true);
        let _ = self.events.send(Event::Up(Link::Subscriber));
        let all: Vec<Vec<u8>> = self.wanted.iter().cloned().collect();
        for chunk in all.chunks(SUBSCRIBE_BATCH) {
            self.command("SUBSCRIBE", chunk);
        }
    }

    fn failed_dial(&mut self, why: String) {
        self.next_dial = Instant::now() + self.backoff.step();
        if !self.said_down {
            self.said_down = true;
            let _ = self.events.send(Event::Down(Link::Subscriber, why));
        }
    }

    fn command(&mut self, name: &str, channels: &[Vec<u8>]) {
        let Some((stream, generation)) = &self.live else {
            return;
        };
        let mut args = vec![name.as_bytes().to_vec()];
        args.extend(channels.iter().cloned());
        let mut out = Vec::new();
        encode_command(&mut out, &args);
        if let Err(e) = (&*stream).write_all(&out) {
            let generation = *generation;
            self.lost(generation, format!("write: {e}"));
        }
    }

    fn lost(&mut self, generation: u64, why: String) {
        let Some((stream, _)) = self.live.take_if(|(_, g)| *g == generation) else {
            return;
        };
        let _ = stream.shutdown(Shutdown::Both);
        self.up.set(false);
        self.said_down = true;
        let _ = self.events.send(Event::Down(Link::Subscriber, why));
        self.next_dial = Instant::now() + self.backoff.step();
    }

    /// Ping when the connection has been quiet; give up on it when a ping
    /// went unanswered for the reply timeout.
    fn tick(&mut self) {
        let Some((_, generation)) = self.live else {
            return;
        };
        let now = self.now_ms();
        let heard = self.heard.load(Ordering::Acquire);
        let timeout = self.config.reply_timeout.as_millis() as u64;
        if self.pinged > heard && now.saturating_sub(self.pinged) > timeout {
            return self.lost(generation, "no answer to PING in time".into());
        }
        let quiet = now.saturating_sub(heard.max(self.pinged));
        if quiet >= self.config.ping_interval.as_millis() as u64 {
            self.pinged = now.max(heard + 1);
            self.command("PING", &[]);
        }
    }
}

/// What a subscriber connection's reader knows of its link.
struct Watch {
    generation: u64,
    /// The link's live generation: once it is another, this reader's
    /// connection was given up (a push it still holds would arrive after
    /// the new connection's, so it is dropped: the streams have it).
    current: Arc<AtomicU64>,
    heard: Arc<AtomicU64>,
    epoch: Instant,
}

/// The reader of the subscriber connection: pushes become events.
fn read_pushes(stream: TcpStream, watch: Watch, events: Sender<Event>, internal: Sender<Internal>) {
    let why = read_values(stream, |value| {
        if watch.current.load(Ordering::Acquire) != watch.generation {
            return Err("replaced".into());
        }
        watch
            .heard
            .store(watch.epoch.elapsed().as_millis() as u64, Ordering::Release);
        let event = match Push::parse(&value) {
            Some(Push::Message { channel, payload }) => Event::Message { channel, payload },
            Some(Push::Subscribed { channel }) => Event::Subscribed(channel),
            Some(Push::Unsubscribed { .. } | Push::Pong) => return Ok(()),
            None => {
                return Err(match value.error_text() {
                    Some(e) => format!("Redis: {e}"),
                    None => format!("unexpected push {value:?}"),
                });
            }
        };
        events.send(event).map_err(|_| "nobody listens".to_string())
    });
    let _ = internal.send(Internal::Dead(watch.generation, why));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let waits: Vec<_> = (0..6).map(|_| b.step()).collect();
        for (wait, base) in waits.iter().zip([100u64, 200, 400, 800, 1000, 1000]) {
            let base = Duration::from_millis(base);
            assert!(
                *wait <= base && *wait >= base * 3 / 4,
                "{wait:?} for {base:?}"
            );
        }
        b.reset();
        assert!(b.step() <= Duration::from_millis(100));
    }

    #[test]
    fn noscript_falls_back_to_eval() {
        let script = Arc::new(Script::new("return 1"));
        assert_eq!(script.sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        let cmd = Cmd::eval(&script, &["k"], &["a"]);
        assert_eq!(cmd.args()[0], b"EVALSHA");
        let eval = cmd.as_eval().unwrap();
        let args: Vec<&[u8]> = eval.args().iter().map(Vec::as_slice).collect();
        assert_eq!(args, [&b"EVAL"[..], b"return 1", b"1", b"k", b"a"]);
    }

    #[test]
    fn urls() {
        assert!(ClientConfig::from_url("redis://").is_err());
        assert!(ClientConfig::from_url("redis://h:1/x").is_err());
        assert!(ClientConfig::from_url("redis://u:p@h:1").is_err());
        assert_eq!(
            ClientConfig::from_url("redis://[::1]:7000/").unwrap().addr,
            "[::1]:7000"
        );
    }
}
