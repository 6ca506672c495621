//! The client side: connect to a `ws://` URL and get a [`WebSocket`].
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

/// A `ws://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when the URL gives none).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl WsUrl {
    /// Parse `ws://host[:port][/path][?query]`.
    ///
    /// ```
    /// let url = wschat::client::WsUrl::parse("ws://127.0.0.1:3000/chat?name=ann").unwrap();
    /// assert_eq!((url.host.as_str(), url.port, url.target.as_str()), ("127.0.0.1", 3000, "/chat?name=ann"));
    /// ```
    pub fn parse(url: &str) -> Result<WsUrl, Error> {
        let rest = if let Some(rest) = url.strip_prefix("ws://") {
            rest
        } else if url.starts_with("wss://") {
            return Err(Error::Url(
                "wss:// needs TLS, which wschat leaves to a proxy in front (see docs/deployment.md)".into(),
            ));
        } else {
            return Err(Error::Url(format!("{url:?} does not start with ws://")));
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
            None => 80,
        };
        Ok(WsUrl {
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
        if self.port == 80 {
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
}

impl Default for Options {
    fn default() -> Options {
        Options {
            protocols: Vec::new(),
            headers: Vec::new(),
            limits: Limits::default(),
            timeout: Duration::from_secs(10),
            deflate: false,
        }
    }
}

/// Connect to `url` with default options.
pub fn connect(url: &str) -> Result<WebSocket<TcpStream>, Error> {
    connect_with(url, &Options::default()).map(|(ws, _)| ws)
}

/// Connect to `url`; returns the socket and the subprotocol the server chose.
pub fn connect_with(
    url: &str,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, Option<String>), Error> {
    let url = WsUrl::parse(url)?;
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
    let mut stream = match stream {
        Some(s) => s,
        None => {
            return Err(Error::Io(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
            })));
        }
    };
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(options.timeout))?;
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
    stream.set_read_timeout(None)?;
    let mut ws = WebSocket::with_leftover(stream, Role::Client, options.limits, &buf[used..]);
    if let Some(agreement) = agreement {
        ws.set_deflate(agreement, deflate::DEFAULT_MIN_SIZE, None);
    }
    Ok((ws, chosen))
}
