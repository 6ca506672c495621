//! An in-process server on an ephemeral port of 127.0.0.1, and TCP
//! connections to it.

use std::net::{SocketAddr, TcpStream};

use wschat::config::Config;
use wschat::server::{Server, ServerHandle};

use super::READ_TIMEOUT;

/// The default configuration, listening on an ephemeral port of 127.0.0.1.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".to_string(),
        ..Config::default()
    }
}

/// Start an in-process server with `config`; it stops when the handle is
/// dropped.
pub fn start(config: Config) -> ServerHandle {
    Server::bind(config)
        .expect("bind 127.0.0.1:0")
        .spawn()
        .expect("spawn the server")
}

/// Start a server with the default configuration.
pub fn start_default() -> ServerHandle {
    start(config())
}

/// The `ws://` URL of `path` on `server`.
pub fn ws_url(server: &ServerHandle, path: &str) -> String {
    format!("ws://{}{path}", server.addr())
}

/// A TCP connection to `addr` with the test read timeout set.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Wait until the wschat process `child` serves HTTP on `addr`: `/healthz`
/// answers with a status line. A bare `connect` is not enough: while
/// nothing listens on a port of the ephemeral range, a connect to it may
/// be given that same port as its own and connect to itself (TCP's
/// simultaneous open), and the test would go on before the server listens
/// (seen once in CI: the test's first WebSocket refused). Fails the test
/// if the child exits first or nothing answers within `wait` (the child
/// then killed).
pub fn wait_until_serving(addr: &str, child: &mut std::process::Child, wait: std::time::Duration) {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            panic!("wschat exited before it served on {addr}: {status}");
        }
        if answers_http(addr) {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wschat did not serve on {addr} within {wait:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether `GET /healthz` on `addr` gets an HTTP status line back (a socket
/// connected to itself reads its own request instead).
fn answers_http(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(READ_TIMEOUT));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 9];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 "
}

/// `wschat serve` run by the test as a child process; killed (by its PID)
/// and waited for when dropped.
pub struct ChildServer {
    /// The process.
    pub child: std::process::Child,
    /// Where it serves, `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's log: warnings, and the one line that says where it listens
/// (not a line per connection).
const CHILD_LOG: &str = "wschat=warn,wschat::server=info,wschat::server::http=warn";

/// Start `wschat serve --listen 127.0.0.1:0 --rate-limit 0` followed by
/// `args`, on a port the kernel picks as it binds, and wait until it
/// serves ([`wait_until_serving`]). The address comes from the log line
/// that says where it listens: no port is found free first and handed to
/// the child, which another test's server could take in between (tests of
/// one file run in parallel). Its log goes on being read, so the child
/// never blocks on a full pipe. Fails the test if the child exits first or
/// says nothing within `wait`.
pub fn spawn_serve<I, S>(args: I, wait: std::time::Duration) -> ChildServer
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--rate-limit", "0"])
        .args(args)
        .env("RUST_LOG", CHILD_LOG)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wschat");
    let log = child.stderr.take().expect("the child's piped stderr");
    let (tx, said) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.split("listening on http://").nth(1) {
                let _ = tx.try_send(at.trim().to_string());
            }
        }
    });
    let mut server = match said.recv_timeout(wait) {
        Ok(addr) => ChildServer { child, addr },
        Err(_) => {
            let _ = child.kill();
            let status = child.wait();
            panic!("wschat did not say where it listens within {wait:?} ({status:?})");
        }
    };
    wait_until_serving(&server.addr.clone(), &mut server.child, wait);
    server
}
