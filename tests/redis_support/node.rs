//! wschat nodes on a test's `redis-server`, shared by the cluster tests
//! (`tests/cluster.rs`, `tests/cluster_desk.rs`): each node a child process
//! of the test binary started with `--redis`, killed by its PID when
//! dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::RedisServer;
use super::redis_support::START_ATTEMPTS;

/// How long a node may take to become healthy, and a Redis call to answer.
pub const NODE_WAIT: Duration = Duration::from_secs(30);

/// A wschat node, killed (by its PID) when dropped.
pub struct Node {
    pub child: Child,
    pub addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node on `redis` (in memory, no rate limit) with `extra` flags, once
/// it serves and says it is healthy. A node that exits before that (its
/// port taken since [`free_port`] found it free) is started again on
/// another port, up to [`START_ATTEMPTS`] times.
pub fn node_with(redis: &RedisServer, extra: &[&str]) -> Node {
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .args(["serve", "--listen", &addr, "--rate-limit", "0", "--memory"])
            .args(["--redis", &redis.url()])
            .args(extra)
            .env("RUST_LOG", "wschat=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wschat");
        let mut node = Node { child, addr };
        let deadline = Instant::now() + NODE_WAIT;
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                exits.push(format!("{}: {status}", node.addr));
                break;
            }
            // Healthy, and still running: the answer was this node's, not
            // that of whatever took the port after it failed to bind.
            if healthz(&node.addr).0 == 200 && matches!(node.child.try_wait(), Ok(None)) {
                return node;
            }
            assert!(Instant::now() < deadline, "the node did not become healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the node exited before it was healthy at every start: {exits:?}");
}

/// `GET /healthz`: the status (0 if not answered) and the body.
pub fn healthz(addr: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}
