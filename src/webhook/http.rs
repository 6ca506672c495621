//! The webhook's HTTP/1.1 client: one `POST` per attempt on a connection
//! of its own (`Connection: close`), over TCP or TLS, with every step under
//! a timeout. Only the response's status line and headers are read
//! (RFC 9112 §4, parsed by `httparse`); the body is not needed.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Largest response head read from a receiver; past it the attempt fails.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A receiver's address, from `--webhook URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether it is `https://`.
    pub tls: bool,
    /// The host name or address, without brackets for IPv6.
    pub host: String,
    /// The port (default 80 or 443).
    pub port: u16,
    /// The path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parse `http://HOST[:PORT][/PATH]` or `https://…` (RFC 3986 §3;
    /// no user info, no fragment).
    ///
    /// ```
    /// use wschat::webhook::http::Url;
    /// let u = Url::parse("https://hooks.example.com/in?x=1").unwrap();
    /// assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()),
    ///            (true, "hooks.example.com", 443, "/in?x=1"));
    /// assert_eq!(Url::parse("http://[::1]:8080").unwrap().port, 8080);
    /// assert!(Url::parse("ftp://x/").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "{url:?}: the path may hold no fragment, space or control character"
            ));
        }
        if authority.contains('@') {
            return Err(format!("{url:?}: user information is not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url:?}: bad host")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("{url:?}: bad port"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == b'/') {
            return Err(format!("{url:?}: no host"));
        }
        Ok(Url {
            tls,
            host,
            port,
            path,
        })
    }

    /// The `Host` header's value (RFC 9110 §7.2): the port only when it is
    /// not the scheme's default.
    fn host_header(&self) -> String {
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

/// `sha256=` and the hex HMAC-SHA256 (RFC 2104) of `body` with `secret`:
/// the `X-Wschat-Signature` header.
///
/// ```
/// // RFC 4231 test case 2.
/// let sig = wschat::webhook::http::signature(b"Jefe", b"what do ya want for nothing?");
/// assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
/// ```
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The request's bytes: the head and `body`.
pub fn request(url: &Url, event: &str, body: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wschat/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Wschat-Event: {event}\r\nX-Wschat-Signature: {}\r\nConnection: close\r\n\r\n",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len(),
        signature(secret, body),
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Send one request to `url` and return the response's status code. Every
/// connect, read and write waits at most `timeout`. An `https://` URL
/// needs `https` (and a loaded OpenSSL: else nothing is connected).
pub fn post(
    url: &Url,
    https: Option<&super::tls::Https>,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<u16> {
    let https = match (url.tls, https) {
        (false, _) => None,
        (true, Some(https)) => {
            https.ready()?;
            Some(https)
        }
        (true, None) => return Err(io::Error::other("https is not set up")),
    };
    let addrs = (url.host.as_str(), url.port).to_socket_addrs()?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = stream.ok_or(last)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    tcp.set_nodelay(true)?;
    match https {
        None => exchange(tcp, bytes),
        Some(https) => exchange(https.connect(tcp, &url.host)?, bytes),
    }
}

/// Write the request, read the response head, return its status.
fn exchange(mut stream: impl Read + Write, bytes: &[u8]) -> io::Result<u16> {
    stream.write_all(bytes)?;
    stream.flush()?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the receiver closed before answering",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                return response
                    .code
                    .ok_or_else(|| io::Error::other("no status code"));
            }
            Ok(httparse::Status::Partial) if head.len() <= MAX_RESPONSE_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(io::Error::other("the response head is too long"));
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an HTTP response: {e}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(u.path, "/");
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        assert_eq!(Url::parse("http://h?q").unwrap().path, "/?q");
        assert_eq!(Url::parse("https://h/").unwrap().host_header(), "h");
        assert_eq!(Url::parse("http://[::1]/").unwrap().host_header(), "[::1]");
        for bad in [
            "http://",
            "http://u@h/",
            "http://h:x/",
            "http://h/a b",
            "h/x",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_head() {
        let u = Url::parse("http://example.com/hook").unwrap();
        let r = String::from_utf8(request(&u, "message.created", b"{}", b"k")).unwrap();
        assert!(r.starts_with("POST /hook HTTP/1.1\r\nHost: example.com\r\n"));
        assert!(r.contains("\r\nContent-Length: 2\r\n"));
        assert!(r.contains("\r\nX-Wschat-Event: message.created\r\n"));
        assert!(r.contains(&format!(
            "\r\nX-Wschat-Signature: {}\r\n",
            signature(b"k", b"{}")
        )));
        assert!(r.ends_with("\r\n\r\n{}"));
    }
}
