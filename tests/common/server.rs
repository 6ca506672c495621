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
