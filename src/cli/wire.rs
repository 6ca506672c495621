//! The terminal client's socket, plain (`ws://`) or TLS (`wss://`), in a
//! shape two threads can share: the reader thread reads its own handle
//! while the writer writes through the link's.
//!
//! A plain TCP stream is simply cloned. A TLS connection is one OpenSSL
//! object, which only one thread may use at a time, so the handles share
//! it behind a lock. The reader waits for bytes with `peek` on the TCP
//! socket, without the lock, and takes the lock only to decrypt: the
//! socket's read timeout is [`TLS_POLL`], so a read that finds a record
//! incomplete (or no application data, only a session ticket) gives the
//! lock back soon and a write never waits long.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::client::MaybeTls;
use crate::sys::tls::TlsStream;

/// How long a TLS read holds the lock waiting for the rest of a record
/// before giving it back (and how often a waiting reader looks again).
pub const TLS_POLL: Duration = Duration::from_millis(50);

/// One handle on the connection.
#[derive(Debug)]
pub enum Wire {
    /// `ws://`: a TCP stream (each handle its own clone).
    Plain(TcpStream),
    /// `wss://`: the shared TLS connection.
    Tls(TlsHandle),
}

/// A handle on a shared TLS connection.
#[derive(Debug)]
pub struct TlsHandle {
    tls: Arc<Mutex<TlsStream>>,
    /// A clone of the TCP socket under the TLS, to wait on (`peek`) and
    /// shut down without the lock.
    tcp: TcpStream,
    /// This handle's read timeout (`None`: wait for ever).
    read_timeout: Option<Duration>,
    /// The last read returned data: OpenSSL may hold more already
    /// decrypted, so the next read asks it before waiting on the socket.
    maybe_buffered: bool,
}

impl Wire {
    /// The wire of a connection [`crate::client::connect_tls`] opened.
    pub fn new(stream: MaybeTls) -> io::Result<Wire> {
        Ok(match stream {
            MaybeTls::Plain(tcp) => Wire::Plain(tcp),
            MaybeTls::Tls(tls) => {
                let tcp = tls.tcp().try_clone()?;
                tcp.set_read_timeout(Some(TLS_POLL))?;
                Wire::Tls(TlsHandle {
                    tls: Arc::new(Mutex::new(tls)),
                    tcp,
                    read_timeout: None,
                    maybe_buffered: true,
                })
            }
        })
    }

    /// Another handle on the same connection.
    pub fn try_clone(&self) -> io::Result<Wire> {
        Ok(match self {
            Wire::Plain(tcp) => Wire::Plain(tcp.try_clone()?),
            Wire::Tls(h) => Wire::Tls(TlsHandle {
                tls: h.tls.clone(),
                tcp: h.tcp.try_clone()?,
                read_timeout: h.read_timeout,
                maybe_buffered: true,
            }),
        })
    }

    /// The write timeout of the socket (every handle's).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.set_write_timeout(timeout),
            Wire::Tls(h) => h.tcp.set_write_timeout(timeout),
        }
    }

    /// The read timeout: of the socket for a plain one, of this handle's
    /// reads for TLS (whose socket keeps [`TLS_POLL`]).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.set_read_timeout(timeout),
            Wire::Tls(h) => {
                h.read_timeout = timeout;
                Ok(())
            }
        }
    }

    /// Shut the TCP connection down (what a blocked reader wakes from).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.shutdown(how),
            Wire::Tls(h) => h.tcp.shutdown(how),
        }
    }
}

fn lock(tls: &Mutex<TlsStream>) -> MutexGuard<'_, TlsStream> {
    tls.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let h = match self {
            Wire::Plain(tcp) => return tcp.read(buf),
            Wire::Tls(h) => h,
        };
        let deadline = h.read_timeout.map(|t| Instant::now() + t);
        loop {
            if h.maybe_buffered {
                match lock(&h.tls).read(buf) {
                    Ok(n) => {
                        h.maybe_buffered = n > 0;
                        return Ok(n);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                        h.maybe_buffered = false;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::Error::new(ErrorKind::TimedOut, "reading timed out"));
            }
            // Wait for bytes on the socket, without the lock.
            match h.tcp.peek(&mut [0u8; 1]) {
                // Bytes, or the end: let OpenSSL see them.
                Ok(_) => h.maybe_buffered = true,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.write(buf),
            Wire::Tls(h) => lock(&h.tls).write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.write_all(buf),
            // One lock for the whole: no read between the records.
            Wire::Tls(h) => lock(&h.tls).write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.flush(),
            Wire::Tls(h) => lock(&h.tls).flush(),
        }
    }
}
