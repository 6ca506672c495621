//! The client side: connect to a `ws://` URL (or, with [`connect_tls`], a
//! `wss://` one) and get a [`WebSocket`].
//!
//! Used by the tests, the tools and the benchmarks. The handshake is the
//! sans-I/O [`crate::ws::handshake`] client half; frames are masked with a
//! fresh random key each (RFC 6455 §5.3).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::conn::{Error, WebSocket};
use crate::ws::deflate;
use crate::ws::handshake::{self, DEFAULT_MAX_HEADER_BYTES};
use crate::ws::{Limits, Role};

/// A `ws://` or `wss://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: TLS under the WebSocket (RFC 6455 §3).
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80, or 443 for `wss://`, when the URL gives none).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl WsUrl {
    /// Parse `ws://host[:port][/path][?query]` or the same with `wss://`.
    ///
    /// ```
    /// let url = wschat::client::WsUrl::parse("ws://127.0.0.1:3000/chat?name=ann").unwrap();
    /// assert_eq!((url.host.as_str(), url.port, url.target.as_str()), ("127.0.0.1", 3000, "/chat?name=ann"));
    /// let url = wschat::client::WsUrl::parse("wss://chat.example/").unwrap();
    /// assert_eq!((url.tls, url.port, url.host_header().as_str()), (true, 443, "chat.example"));
    /// ```
    pub fn parse(url: &str) -> Result<WsUrl, Error> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else {
            return Err(Error::Url(format!(
                "{url:?} does not start with ws:// or wss://"
            )));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| Error::Url("unclosed [ in the host".into()))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(Error::Url("no host in the URL".into()));
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| Error::Url(format!("bad port {p:?}")))?,
            None if tls => 443,
            None => 80,
        };
        Ok(WsUrl {
            tls,
            host: host.to_string(),
            port,
            target,
        })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Options for [`connect_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// Extra request headers, such as `Origin`.
    pub headers: Vec<(String, String)>,
    /// Limits for what the server sends.
    pub limits: Limits,
    /// Timeout for connecting and for the handshake.
    pub timeout: Duration,
    /// Offer permessage-deflate ([`deflate::CLIENT_OFFER`], RFC 7692). When
    /// the server accepts, compressed messages are read, and messages of at
    /// least [`deflate::DEFAULT_MIN_SIZE`] bytes are sent compressed when
    /// that makes them smaller, each on its own (no context takeover). Off
    /// by default.
    pub deflate: bool,
    /// For `wss://` ([`connect_tls`]): PEM certificates to trust besides
    /// the system's store (a private CA, or a self-signed certificate).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            protocols: Vec::new(),
            headers: Vec::new(),
            limits: Limits::default(),
            timeout: Duration::from_secs(10),
            deflate: false,
            ca_file: None,
        }
    }
}

/// Connect to `url` with default options.
pub fn connect(url: &str) -> Result<WebSocket<TcpStream>, Error> {
    connect_with(url, &Options::default()).map(|(ws, _)| ws)
}

/// Connect to a `ws://` `url`; returns the socket and the subprotocol
/// the server chose. A `wss://` URL is refused: see [`connect_tls`].
pub fn connect_with(
    url: &str,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, Option<String>), Error> {
    let url = WsUrl::parse(url)?;
    if url.tls {
        return Err(Error::Url(
            "wss:// is TLS: wschat::client::connect_tls speaks it, this connection does not".into(),
        ));
    }
    let stream = tcp(&url, options)?;
    handshake_over(stream, &url, options)
}

/// Connect to a `wss://` (or `ws://`: then plain) `url` through the
/// system's OpenSSL ([`crate::sys::tls`], loaded at run time): the
/// server's certificate chain must verify, against the system's store and
/// [`Options::ca_file`], and name the URL's host. Returns the socket and
/// the subprotocol the server chose. Fails, saying so, when no OpenSSL
/// library is found.
pub fn connect_tls(
    url: &str,
    options: &Options,
) -> Result<(WebSocket<MaybeTls>, Option<String>), Error> {
    let url = WsUrl::parse(url)?;
    // OpenSSL first: without it, nothing is worth connecting for.
    let connector = match url.tls {
        true => Some(
            crate::sys::tls::Connector::new(options.ca_file.as_deref()).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::NotFound => Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("wss:// needs OpenSSL (libssl), and none was found: {e}"),
                    )),
                    _ => Error::Io(e),
                }
            })?,
        ),
        false => None,
    };
    let stream = tcp(&url, options)?;
    let stream = match connector {
        Some(connector) => {
            stream.set_write_timeout(Some(options.timeout))?;
            MaybeTls::Tls(connector.connect(stream, &url.host)?)
        }
        None => MaybeTls::Plain(stream),
    };
    handshake_over(stream, &url, options)
}

/// What [`connect_tls`] talks over: TLS for `wss://`, else plain TCP.
#[derive(Debug)]
pub enum MaybeTls {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(crate::sys::tls::TlsStream),
}

impl Read for MaybeTls {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            MaybeTls::Tls(s) => s.read(buf),
        }
    }
}

impl Write for MaybeTls {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.write(buf),
            MaybeTls::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            MaybeTls::Tls(s) => s.flush(),
        }
    }
}

/// A TCP connection to `url`'s host and port, within the timeout, with
/// no Nagle delay and the timeout on reads (for the handshake).
fn tcp(url: &WsUrl, options: &Options) -> Result<TcpStream, Error> {
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(url.host.as_str(), url.port))?;
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, options.timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = match stream {
        Some(s) => s,
        None => {
            return Err(Error::Io(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
            })));
        }
    };
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(options.timeout))?;
    Ok(stream)
}

/// The opening handshake (RFC 6455 §4.1) over `stream`; the read timeout
/// set by [`tcp`] is lifted once it is done.
fn handshake_over<S: Read + Write + ReadTimeout>(
    mut stream: S,
    url: &WsUrl,
    options: &Options,
) -> Result<(WebSocket<S>, Option<String>), Error> {
    let key = handshake::generate_key(crate::random::random_16());
    let protocols: Vec<&str> = options.protocols.iter().map(String::as_str).collect();
    let mut headers: Vec<(&str, &str)> = options
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if options.deflate {
        headers.push(("Sec-WebSocket-Extensions", deflate::CLIENT_OFFER));
    }
    stream.write_all(&handshake::client_request(
        &url.host_header(),
        &url.target,
        &key,
        &protocols,
        &headers,
    ))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let (response, used) = loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A signal arrived while waiting: nothing was read, wait again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        if n == 0 {
            return Err(Error::Handshake(
                "the server closed the connection during the handshake".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) =
            handshake::parse_response(&buf, DEFAULT_MAX_HEADER_BYTES).map_err(Error::Handshake)?
        {
            break done;
        }
    };
    let (chosen, extensions) =
        handshake::verify_response_with_extensions(&response, &key, &protocols).map_err(|e| {
            let body = String::from_utf8_lossy(&buf[used..]).trim().to_string();
            if body.is_empty() {
                Error::Handshake(e)
            } else {
                Error::Handshake(format!("{e}: {body}"))
            }
        })?;
    // RFC 6455 §9.1: an extension the client did not offer fails the
    // connection; so does an answer RFC 7692 §7.1 does not allow.
    let agreement = match extensions {
        None => None,
        Some(_) if !options.deflate => {
            return Err(Error::Handshake(
                "the server chose an extension that was not offered".into(),
            ));
        }
        Some(value) => Some(deflate::accept_response(&value).map_err(Error::Handshake)?),
    };
    stream.clear_read_timeout()?;
    let mut ws = WebSocket::with_leftover(stream, Role::Client, options.limits, &buf[used..]);
    if let Some(agreement) = agreement {
        ws.set_deflate(agreement, deflate::DEFAULT_MIN_SIZE, None);
    }
    Ok((ws, chosen))
}

/// A stream whose read timeout can be lifted after the handshake.
trait ReadTimeout {
    fn clear_read_timeout(&self) -> std::io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn clear_read_timeout(&self) -> std::io::Result<()> {
        self.set_read_timeout(None)
    }
}

impl ReadTimeout for MaybeTls {
    fn clear_read_timeout(&self) -> std::io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.set_read_timeout(None),
            MaybeTls::Tls(s) => s.tcp().set_read_timeout(None),
        }
    }
}
