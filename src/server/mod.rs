//! The server: a `std::net` listener and one thread per connection.
//!
//! The listener thread accepts, enforces the connection cap (503 past it),
//! and hands each socket to a thread with a small stack. That thread reads
//! the HTTP request ([`http`]), answers a plain GET, or performs the RFC 6455
//! handshake and runs the endpoint the path names ([`echo`]).

pub mod echo;
pub mod http;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{CONNECTION_STACK_SIZE, Config};

/// State shared by the listener and the connection threads.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub config: Config,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Set when the server stops accepting.
    pub stopping: AtomicBool,
}

/// A bound server, not yet running.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// A server running on its own thread (see [`Server::spawn`]).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Bind the listening socket of `config.listen`.
    pub fn bind(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(&config.listen)?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                open: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
            }),
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections until stopped.
    pub fn run(self) -> io::Result<()> {
        log::info!("wschat listening on http://{}", self.local_addr()?);
        for stream in self.listener.incoming() {
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            match stream {
                Ok(stream) => accept(stream, &self.shared),
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        Ok(())
    }

    /// Run on a new thread; the handle stops it.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let addr = self.local_addr()?;
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("wschat-listener".into())
            .spawn(move || self.run())?;
        Ok(ServerHandle {
            addr,
            shared,
            thread: Some(thread),
        })
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Stop accepting new connections and wait for the listener to end.
    pub fn stop(mut self) {
        self.stop_listener();
    }

    fn stop_listener(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
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

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept(stream: TcpStream, shared: &Arc<Shared>) {
    let open = shared.open.fetch_add(1, Ordering::SeqCst);
    let guard = OpenGuard(shared.clone());
    if open >= shared.config.max_connections {
        reject_busy(stream, shared.config.max_connections);
        return;
    }
    let result = std::thread::Builder::new()
        .name("wschat-conn".into())
        .stack_size(CONNECTION_STACK_SIZE)
        .spawn(move || {
            let _guard = guard;
            http::handle_connection(stream, &_guard.0);
        });
    if let Err(e) = result {
        log::warn!("could not start a connection thread: {e}");
    }
}

/// Answer 503 from the listener thread without blocking it: the socket is
/// made non-blocking, what already arrived is read (so closing does not
/// reset the connection), and the short answer fits the send buffer.
fn reject_busy(mut stream: TcpStream, cap: usize) {
    log::warn!("connection cap of {cap} reached: answering 503");
    let _ = stream.set_nonblocking(true);
    let mut scratch = [0u8; 2048];
    let _ = stream.read(&mut scratch);
    let body = format!("the server is at its connection limit ({cap}); try again later\n");
    let response = crate::ws::handshake::http_response(
        503,
        "text/plain; charset=utf-8",
        &[("Retry-After", "5")],
        body.as_bytes(),
    );
    let _ = stream.write(&response);
    let _ = stream.shutdown(Shutdown::Write);
}

/// End a connection the way RFC 6455 §7.1.1 asks of a server: close our
/// side of TCP first, then read and discard until the peer closes its side
/// (so that our last frames are not lost to a reset), for at most `timeout`.
pub fn finish(stream: &mut TcpStream, timeout: Duration) {
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
