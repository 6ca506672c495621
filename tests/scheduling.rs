//! Connection threads run under Linux's `SCHED_BATCH` policy unless
//! `--batch-threads false` says otherwise (see `sys::batch_scheduling`).
//!
//! One test in a file of its own: it counts the threads of this test
//! process by scheduling policy, so no other server may run beside it.

#![cfg(target_os = "linux")]

mod common;

use common::{config, start};
use wschat::config::Config;
use wschat::ws::Message;

/// Threads of this process whose scheduling policy is `SCHED_BATCH`.
fn batch_threads() -> usize {
    common::sched_batch_threads().len()
}

/// Open `/echo` on a server with `config` and see a message come back, so
/// that its connection thread is surely past its start.
fn echo_once(
    config: Config,
) -> (
    wschat::server::ServerHandle,
    wschat::WebSocket<std::net::TcpStream>,
) {
    let server = start(config);
    let mut ws = wschat::client::connect(&common::ws_url(&server, "/echo")).expect("connect");
    ws.get_ref()
        .set_read_timeout(Some(common::READ_TIMEOUT))
        .unwrap();
    ws.send(Message::Text("hi".into())).unwrap();
    assert_eq!(ws.read_message().unwrap(), Message::Text("hi".into()));
    (server, ws)
}

#[test]
fn connection_threads_run_under_sched_batch_unless_told_not_to() {
    assert_eq!(batch_threads(), 0, "no batch threads before any server");

    let normal = Config {
        batch_threads: false,
        ..config()
    };
    let (_server_a, _ws_a) = echo_once(normal);
    assert_eq!(batch_threads(), 0, "--batch-threads false keeps the policy");

    let (_server_b, _ws_b) = echo_once(config());
    assert_eq!(
        batch_threads(),
        1,
        "the default server's one connection thread"
    );
}
