//! The server: a `std::net` listener and one thread per connection.
//!
//! The listener thread accepts, enforces the connection cap (503 past it),
//! and hands each socket to a thread with a small stack. That thread reads
//! the HTTP request ([`http`]), answers a plain GET, or performs the RFC 6455
//! handshake and runs what is mounted on the path ([`routes`]): the hub's
//! application ([`reader`]), [`echo`] or [`inspect`], each on the one
//! [`driver`].

pub mod api;
pub mod driver;
pub mod echo;
pub mod forward;
pub mod http;
pub mod inspect;
pub mod reader;
pub mod routes;
pub mod settings;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::hub::log::{Log, NoLog};
use crate::hub::metrics::Metrics;
use crate::hub::peer::OutboxLimits;
use crate::hub::{App, Event};
pub use routes::{Behavior, Mount, Resource, Routes, Service};
use settings::CONNECTION_STACK_SIZE;
pub use settings::{IpRange, ServerConfig};

/// Room for events waiting for the hub; past it, connection threads wait
/// (their TCP windows fill, and the clients slow down).
pub const HUB_QUEUE: usize = 65_536;

/// State shared by the listener and the connection threads.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub config: ServerConfig,
    /// Where each path goes.
    pub routes: Routes,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Set when the server stops accepting.
    pub stopping: AtomicBool,
    /// The hub's event queue.
    pub hub: Sender<Event>,
    /// Counters for /metrics.
    pub metrics: Arc<Metrics>,
    /// The next connection id.
    pub next_conn_id: AtomicU64,
    /// Connections open now per client address, for
    /// `--max-connections-per-ip` (only addresses with one or more).
    pub per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Each API key's rate limit.
    pub api_buckets: api::ApiBuckets,
}

impl Shared {
    /// The outbox limits for a new connection.
    pub fn outbox_limits(&self) -> OutboxLimits {
        OutboxLimits {
            max_bytes: self.config.max_outbox_bytes,
            max_frames: self.config.max_outbox_frames,
            write_timeout: self.config.close_timeout,
        }
    }
}

/// A bound server, not yet running.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    hub: JoinHandle<()>,
}

/// Stops a running server from another thread (a signal handler, a test).
#[derive(Debug, Clone)]
pub struct Stopper {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Stopper {
    /// Stop accepting; the server then closes every connection with 1001
    /// and its `run` returns.
    pub fn stop(&self) {
        if !self.shared.stopping.swap(true, Ordering::SeqCst) {
            // Wake the blocking accept() with a connection of our own.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
    }
}

/// A server running on its own thread (see [`Server::spawn`]).
#[derive(Debug)]
pub struct ServerHandle {
    stopper: Stopper,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// A server with the settings of `config` and nothing mounted yet (but
    /// `/healthz` and `/metrics`): mount applications on paths with the
    /// [`Builder`], then [`Builder::bind`]. `wschat serve` mounts the
    /// chat, the desk, `/echo` and `/inspect` (`src/apps.rs`).
    ///
    /// The first seed's nodejs-websocket broadcast demo, every text to
    /// every connection on `/`:
    ///
    /// ```
    /// use wschat::hub::{App, ConnId, ConnInfo, Ctx};
    /// use wschat::server::{Behavior, Server, ServerConfig};
    ///
    /// struct Broadcast;
    /// impl App for Broadcast {
    ///     fn opened(&mut self, _: &mut Ctx, _: ConnId, _: ConnInfo) {}
    ///     fn text(&mut self, ctx: &mut Ctx, _: ConnId, text: String) {
    ///         let everyone: Vec<ConnId> = ctx.connections().collect();
    ///         ctx.broadcast(everyone, &Ctx::text_frame(&text));
    ///     }
    ///     fn closed(&mut self, _: &mut Ctx, _: ConnId) {}
    /// }
    /// let config = ServerConfig { listen: "127.0.0.1:0".into(), ..Default::default() };
    /// let server = Server::builder(config).app("/", "all", Behavior::default()).bind(|| Ok(Broadcast));
    /// # let server = server.unwrap().spawn().unwrap();
    /// # use wschat::ws::Message;
    /// # let url = format!("ws://{}/", server.addr());
    /// # // Each one's own echo says the hub has seen it open (a 101 may
    /// # // reach the client before the hub hears of the connection).
    /// # let mut alice = wschat::client::connect(&url).unwrap();
    /// # alice.send(Message::Text("here".into())).unwrap();
    /// # assert_eq!(alice.read_message().unwrap(), Message::Text("here".into()));
    /// # let mut bob = wschat::client::connect(&url).unwrap();
    /// # bob.send(Message::Text("hi".into())).unwrap();
    /// # assert_eq!(bob.read_message().unwrap(), Message::Text("hi".into())); // bob is in
    /// # assert_eq!(alice.read_message().unwrap(), Message::Text("hi".into()));
    /// # alice.send(Message::Text("hello".into())).unwrap();
    /// # assert_eq!(bob.read_message().unwrap(), Message::Text("hello".into()));
    /// # assert_eq!(alice.read_message().unwrap(), Message::Text("hello".into()));
    /// # drop((alice, bob));
    /// # server.stop();
    /// ```
    pub fn builder(config: ServerConfig) -> Builder {
        let mut routes = Routes::default();
        if config.echo_everywhere {
            routes.everywhere(Mount {
                service: Service::Echo,
                behavior: config.behavior(),
            });
        }
        Builder { config, routes }
    }

    /// A handle that stops this server from another thread.
    pub fn stopper(&self) -> io::Result<Stopper> {
        Ok(Stopper {
            addr: self.local_addr()?,
            shared: self.shared.clone(),
        })
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections until stopped; then shut down gracefully: every
    /// WebSocket gets Close 1001, and `run` waits (at most the close
    /// timeout) for their closing handshakes.
    pub fn run(self) -> io::Result<()> {
        log::info!("wschat listening on http://{}", self.local_addr()?);
        loop {
            // accept(2) hands over the peer's address too: no getpeername.
            let accepted = self.listener.accept();
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            match accepted {
                Ok((stream, addr)) => accept(stream, addr, &self.shared),
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        drop(self.listener);
        log::info!("shutting down: closing every connection with 1001");
        let _ = self.shared.hub.send(Event::Shutdown);
        let _ = self.hub.join();
        let deadline = Instant::now() + self.shared.config.close_timeout;
        while self.shared.metrics.websockets_open.load(Ordering::SeqCst) > 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Run on a new thread; the handle stops it.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let stopper = self.stopper()?;
        let thread = std::thread::Builder::new()
            .name("wschat-listener".into())
            .spawn(move || self.run())?;
        Ok(ServerHandle {
            stopper,
            thread: Some(thread),
        })
    }
}

/// A server being put together: applications mounted on paths, each with
/// its [`Behavior`]. Made by [`Server::builder`]; [`Builder::bind`] starts
/// it. Every path the server serves is decided by what is mounted here
/// ([`Routes`]).
#[derive(Debug)]
pub struct Builder {
    config: ServerConfig,
    routes: Routes,
}

impl Builder {
    /// Where each path goes, as mounted so far.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The behavior the server's settings give a mount by default.
    pub fn behavior(&self) -> Behavior {
        self.config.behavior()
    }

    /// Serve WebSockets on `path` with `service`, as `behavior` allows.
    pub fn ws(mut self, path: &'static str, service: Service, behavior: Behavior) -> Builder {
        self.routes.mount(path, Mount { service, behavior });
        self
    }

    /// Serve WebSockets on `path` with the hub's application (the one
    /// [`Builder::bind`] builds), as `behavior` allows: it gets each
    /// connection with the name `mount`
    /// ([`ConnInfo::mount`](crate::hub::ConnInfo::mount)), by which it
    /// tells its endpoints apart (several paths may share a name).
    pub fn app(self, path: &'static str, mount: &'static str, behavior: Behavior) -> Builder {
        self.ws(path, Service::Hub(mount), behavior)
    }

    /// Give the HTTP API requests under `prefix` (`/api/desk/`, a prefix
    /// under `/api/` ending in `/`) the mount name `mount`
    /// ([`ApiRequest::mount`](crate::hub::api::ApiRequest::mount)); the
    /// rest of `/api/` reaches the hub's application with none.
    pub fn api(mut self, prefix: &'static str, mount: &'static str) -> Builder {
        self.routes.api(prefix, mount);
        self
    }

    /// Answer a plain GET (or HEAD) of `path` with `resource`.
    pub fn resource(mut self, path: &'static str, resource: Resource) -> Builder {
        self.routes.resource(path, resource);
        self
    }

    /// Hand the requests `forward` covers to the server it names, while
    /// it names one ([`forward`]).
    pub fn forward(mut self, forward: forward::Forward) -> Builder {
        self.routes.forward(forward);
        self
    }

    /// What the 404 for an upgrade on an unknown path suggests instead.
    pub fn hint(mut self, hint: &str) -> Builder {
        self.routes.hint(hint);
        self
    }

    /// Bind the listening socket of the settings' `listen`, then build the
    /// hub's application with `build` and start the hub thread that runs
    /// it, with no store ([`crate::hub::log::NoLog`]).
    pub fn bind<A, F>(self, build: F) -> io::Result<Server>
    where
        A: App + Send + 'static,
        F: FnOnce() -> io::Result<A>,
    {
        self.bind_with_log(|| {
            let log: Box<dyn Log> = Box::new(NoLog::default());
            Ok((build()?, log))
        })
    }

    /// [`Builder::bind`] for an application that stores what it is sent:
    /// `build` gives the application and the store the hub thread will own
    /// and lend it ([`crate::hub::Ctx::log`]), committing it at the end of
    /// every turn before the turn's messages go out.
    pub fn bind_with_log<A, F>(self, build: F) -> io::Result<Server>
    where
        A: App + Send + 'static,
        F: FnOnce() -> io::Result<(A, Box<dyn Log>)>,
    {
        let Builder { config, routes } = self;
        let listener = TcpListener::bind(&config.listen)?;
        widen_backlog(&listener);
        let (events, inbox) = crossbeam_channel::bounded(HUB_QUEUE);
        let metrics = Arc::new(Metrics::default());
        let (app, log) = build()?;
        let hub_metrics = metrics.clone();
        let hub = std::thread::Builder::new()
            .name("wschat-hub".into())
            .spawn(move || crate::hub::run(app, log, inbox, hub_metrics))?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                routes,
                open: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                hub: events,
                metrics,
                next_conn_id: AtomicU64::new(1),
                per_ip: Mutex::new(HashMap::new()),
                api_buckets: api::ApiBuckets::default(),
            }),
            hub,
        })
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.stopper.addr
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.stopper.shared.open.load(Ordering::SeqCst)
    }

    /// The server's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.stopper.shared.metrics
    }

    /// Shut down gracefully (Close 1001 to everyone) and wait for it.
    pub fn stop(mut self) {
        self.stop_listener();
    }

    fn stop_listener(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_listener();
        }
    }
}

/// How many connections may wait for `accept`. The standard library asks
/// for 128, too few for a burst of clients (the kernel then drops SYNs and
/// clients retry a second later); Linux lets `listen` be called again.
const LISTEN_BACKLOG: i32 = 4096;

#[cfg(unix)]
fn widen_backlog(listener: &TcpListener) {
    crate::sys::relisten(listener, LISTEN_BACKLOG);
}

#[cfg(not(unix))]
fn widen_backlog(_listener: &TcpListener) {}

/// Counts a connection as open for as long as it lives (and against its
/// address, when that is counted).
struct OpenGuard(Arc<Shared>, Option<IpAddr>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        if let Some(ip) = self.1 {
            let mut per_ip = self.0.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Count a new connection from `peer` against `--max-connections-per-ip`:
/// the address to uncount when it ends (`None` when it is not counted), or
/// `Err` with the limit when it is reached.
fn count_address(peer: SocketAddr, shared: &Shared) -> Result<Option<IpAddr>, usize> {
    let limit = shared.config.max_connections_per_ip;
    if limit == 0 {
        return Ok(None);
    }
    let ip = peer.ip();
    if shared.config.trusted_proxies.contains(&ip) {
        return Ok(None);
    }
    let mut per_ip = shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
    let n = per_ip.entry(ip).or_insert(0);
    if *n >= limit {
        return Err(limit);
    }
    *n += 1;
    Ok(Some(ip))
}

fn accept(stream: TcpStream, addr: SocketAddr, shared: &Arc<Shared>) {
    let open = shared.open.fetch_add(1, Ordering::SeqCst);
    let mut guard = OpenGuard(shared.clone(), None);
    shared
        .metrics
        .connections_accepted
        .fetch_add(1, Ordering::Relaxed);
    if open >= shared.config.max_connections {
        let cap = shared.config.max_connections;
        refuse_over_cap(
            stream,
            addr,
            shared,
            &format!("the server is at its connection limit ({cap})"),
        );
        return;
    }
    match count_address(addr, shared) {
        Ok(ip) => guard.1 = ip,
        Err(limit) => {
            refuse_over_cap(
                stream,
                addr,
                shared,
                &format!("too many connections from your address (at most {limit})"),
            );
            return;
        }
    }
    let started = crate::sys::spawn_detached(
        CONNECTION_STACK_SIZE,
        (stream, addr, guard),
        |(stream, addr, guard)| {
            if guard.0.config.batch_threads {
                crate::sys::batch_scheduling();
            }
            http::handle_connection(stream, addr, &guard.0)
        },
    );
    if let Err((e, (stream, _, _guard))) = started {
        log::warn!("could not start a connection thread: {e}: answering 503");
        shared.metrics.count_response(503);
        reject_unavailable(stream, "the server could not take this connection now");
    }
}

/// Refuse a connection over a cap (`--max-connections`,
/// `--max-connections-per-ip`): counted as refused, logged with the
/// client's address, answered 503 with `why`.
fn refuse_over_cap(stream: TcpStream, addr: SocketAddr, shared: &Shared, why: &str) {
    shared
        .metrics
        .connections_refused
        .fetch_add(1, Ordering::Relaxed);
    shared.metrics.count_response(503);
    log::warn!("{addr}: answering 503: {why}");
    reject_unavailable(stream, why);
}

/// Answer 503 from the listener thread without blocking it: the socket is
/// made non-blocking, what already arrived is read (so closing does not
/// reset the connection), and the short answer fits the send buffer.
fn reject_unavailable(mut stream: TcpStream, why: &str) {
    let _ = stream.set_nonblocking(true);
    let mut scratch = [0u8; 2048];
    let _ = stream.read(&mut scratch);
    let body = format!("{why}; try again later\n");
    let response = crate::ws::handshake::http_response(
        503,
        "text/plain; charset=utf-8",
        &[("Retry-After", "5")],
        body.as_bytes(),
    );
    let _ = stream.write(&response);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Run `endpoint` on a connection served on its own thread (`/echo`,
/// `/inspect`), whose 101 was sent: the codec with `limits` and, if it was
/// negotiated, permessage-deflate (compressors from the shared pool: one is
/// too big to build on a connection thread's stack, and too big to keep per
/// connection), driven as `behavior` says until the connection ends; then
/// the TCP side is closed as [`finish`] does. Returns the code of the
/// Close the server sent, if any.
#[inline(always)] // no frame of its own under the parked reader's
fn serve_direct<E: driver::Endpoint>(
    stream: &TcpStream,
    leftover: &mut [u8],
    limits: crate::ws::Limits,
    behavior: &Behavior,
    config: &ServerConfig,
    deflate: Option<crate::ws::deflate::Agreement>,
    endpoint: &mut E,
) -> Option<crate::ws::CloseCode> {
    let mut conn = crate::ws::Connection::new(crate::ws::Role::Server, limits);
    if let Some(agreement) = deflate {
        conn.set_deflate(
            agreement,
            config.deflate_min_size,
            Some(crate::hub::prepared::compress),
        );
    }
    let timeouts = behavior.timeouts(config.close_timeout);
    let code = driver::drive(stream, leftover, conn, endpoint, timeouts);
    finish(stream, config.close_timeout);
    code
}

/// End a connection the way RFC 6455 §7.1.1 asks of a server: close our
/// side of TCP first, then read and discard until the peer closes its side
/// (so that our last frames are not lost to a reset), for at most `timeout`.
pub fn finish(mut stream: &TcpStream, timeout: Duration) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + timeout;
    let mut scratch = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
