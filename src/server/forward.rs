//! Handing a connection on to another server: what a node of a cluster
//! does with the desk's connections when another node runs the desk
//! (docs/cluster.md, "The desk").
//!
//! A [`Forward`] names the paths it covers and, while another server
//! should serve them, that server's address. A request on one of those
//! paths is written to that server as it came (its head again, with
//! [`FORWARDED_HEADER`] and `X-Forwarded-For` added, then whatever
//! followed it), and from then on the bytes of both directions are copied
//! as they are until either side closes: the WebSocket handshake and its
//! frames are the other server's business. A request that was forwarded
//! once is never forwarded again (it carries the header), so two servers
//! that disagree for a moment on who serves cannot pass a connection back
//! and forth.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ws::handshake::Request;

/// The header a forwarded request carries.
pub const FORWARDED_HEADER: &str = "X-Wschat-Forwarded";

/// How long a forwarding server waits to connect to the other one, by
/// default (`--forward-connect-timeout`).
pub const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes copied at once, each direction.
const SPLICE_BUFFER: usize = 16 * 1024;

/// Stack of the thread that copies the other server's bytes back.
const SPLICE_STACK_SIZE: usize = 64 * 1024;

/// Paths served elsewhere while a target is set (shared: whoever knows
/// where they go sets it, the connection threads read it).
#[derive(Debug, Clone)]
pub struct Forward {
    /// Paths forwarded as they are.
    paths: Vec<&'static str>,
    /// Path prefixes forwarded (`/api/desk/`), and the prefix without its
    /// last `/`.
    prefixes: Vec<&'static str>,
    target: Arc<Mutex<Option<String>>>,
    /// How long to wait to connect to the target.
    connect_timeout: Duration,
}

impl Forward {
    /// Forward `paths` and what lies under `prefixes`, once a target is
    /// set.
    pub fn new(paths: &[&'static str], prefixes: &[&'static str]) -> Forward {
        Forward {
            paths: paths.to_vec(),
            prefixes: prefixes.to_vec(),
            target: Arc::new(Mutex::new(None)),
            connect_timeout: FORWARD_CONNECT_TIMEOUT,
        }
    }

    /// Wait `timeout` to connect to the target instead of
    /// [`FORWARD_CONNECT_TIMEOUT`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Forward {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`splice`] waits to connect to the target.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Where the paths go from now on: another server's `host:port`, or
    /// `None`: served here.
    pub fn set(&self, target: Option<String>) {
        if let Ok(mut t) = self.target.lock() {
            *t = target;
        }
    }

    /// Where a request for `path` goes, if elsewhere.
    pub fn target_for(&self, path: &str) -> Option<String> {
        let covered = self.paths.contains(&path)
            || self
                .prefixes
                .iter()
                .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'));
        if !covered {
            return None;
        }
        self.target.lock().ok()?.clone()
    }
}

/// Write `request` (and `leftover`, what came after its head) to `target`
/// and copy both directions between it and `client` until either closes.
/// `Err` when `target` could not be reached within `connect_timeout`
/// (nothing was written to the client: the caller answers it).
pub fn splice(
    client: &TcpStream,
    request: &Request,
    leftover: &[u8],
    target: &str,
    connect_timeout: Duration,
    client_ip: Option<std::net::IpAddr>,
) -> io::Result<()> {
    let addr = target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{target}: no address")))?;
    let mut upstream = TcpStream::connect_timeout(&addr, connect_timeout)?;
    let _ = upstream.set_nodelay(true);
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        request.method(),
        request.target(),
        request.minor_version
    );
    let mut forwarded_for = client_ip.map(|ip| ip.to_string());
    for (name, value) in request.headers() {
        if name.eq_ignore_ascii_case("X-Forwarded-For")
            && let Some(ip) = forwarded_for.take()
        {
            head.push_str(&format!("{name}: {value}, {ip}\r\n"));
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(ip) = forwarded_for {
        head.push_str(&format!("X-Forwarded-For: {ip}\r\n"));
    }
    head.push_str(&format!("{FORWARDED_HEADER}: 1\r\n\r\n"));
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(leftover)?;
    let _ = client.set_read_timeout(None);
    let (back_from, back_to) = (upstream.try_clone()?, client.try_clone()?);
    let back = std::thread::Builder::new()
        .name("wschat-forward".into())
        .stack_size(SPLICE_STACK_SIZE)
        .spawn(move || copy_until_closed(back_from, back_to))?;
    copy_until_closed(client.try_clone()?, upstream);
    let _ = back.join();
    Ok(())
}

/// Copy `from` to `to` until either fails or `from` ends; then shut both
/// down, which ends the copy of the other direction too.
fn copy_until_closed(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; SPLICE_BUFFER];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_covered_paths_go_and_only_while_a_target_is_set() {
        let f = Forward::new(&["/support", "/agent"], &["/api/desk/"]);
        assert_eq!(f.target_for("/support"), None);
        f.set(Some("10.0.0.2:8080".into()));
        assert_eq!(f.target_for("/support").as_deref(), Some("10.0.0.2:8080"));
        assert_eq!(
            f.target_for("/api/desk/queue").as_deref(),
            Some("10.0.0.2:8080")
        );
        assert_eq!(f.target_for("/api/desk").as_deref(), Some("10.0.0.2:8080"));
        assert_eq!(f.target_for("/chat"), None);
        assert_eq!(f.target_for("/support/x"), None);
        f.set(None);
        assert_eq!(f.target_for("/agent"), None);
    }
}
