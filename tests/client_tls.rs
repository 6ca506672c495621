//! `wschat::client::connect_tls` over `wss://`: a TLS relay (Python's
//! `ssl` module, on a self-signed certificate made with the `openssl`
//! command) in front of an in-process wschat server on 127.0.0.1. A user
//! chats through it when the certificate is trusted (`Options::ca_file`)
//! and is refused without it, or when the certificate names another host;
//! a user on plain `ws://` sees the message, so it went through the server.
//!
//! Every wait is bounded: sockets have read timeouts, the relay's port is
//! read with `recv_timeout`, and the relay is killed when the test ends.

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use wschat::client::{self, MaybeTls, Options};
use wschat::config::Config;
use wschat::conn::WebSocket;
use wschat::server::{Server, ServerHandle};
use wschat::ws::Message;

/// The longest any one step may take; only matters when something is
/// broken.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wschat-client-tls-{}-{}",
            std::process::id(),
            wschat::random::random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (by its own PID) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chat_server() -> ServerHandle {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    Server::bind(config)
        .expect("bind 127.0.0.1:0")
        .spawn()
        .expect("spawn the server")
}

/// Read texts until one of `kind` comes; that one, parsed.
fn next_of<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>, kind: &str) -> Value {
    loop {
        match ws.read_message().expect("a message in time") {
            Message::Text(text) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
            _ => continue,
        }
    }
}

#[test]
fn wss_chats_through_tls_with_the_ca_and_is_refused_without() {
    if let Err(why) = wschat::sys::tls::available() {
        panic!("no OpenSSL to test with: {why}");
    }
    let dir = TempDir::new();
    let (cert, key) = common::certificate(&dir.0, "localhost", "subjectAltName=DNS:localhost");
    let server = chat_server();
    let relay = common::TlsRelay::start(&(cert.clone(), key.clone()), server.addr());
    let port = relay.port;

    let trusted = Options {
        ca_file: Some(cert.clone()),
        timeout: TIMEOUT,
        ..Options::default()
    };
    let url = format!("wss://localhost:{port}/?name=ann");
    let (mut ann, _) = client::connect_tls(&url, &trusted).expect("wss with the CA");
    assert!(matches!(ann.get_ref(), MaybeTls::Tls(_)));
    let MaybeTls::Tls(tls) = ann.get_ref() else {
        unreachable!()
    };
    tls.tcp().set_read_timeout(Some(TIMEOUT)).unwrap();
    let welcome = next_of(&mut ann, "welcome");
    assert_eq!(welcome["user"]["name"], "ann");

    let mut bob = client::connect(&format!("ws://{}/?name=bob", server.addr())).unwrap();
    bob.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
    next_of(&mut bob, "welcome");

    ann.send(Message::Text(
        r#"{"type":"chat","text":"你好, over TLS"}"#.into(),
    ))
    .unwrap();
    let mine = next_of(&mut ann, "chat");
    assert_eq!(mine["text"], "你好, over TLS");
    let seen = next_of(&mut bob, "chat");
    assert_eq!(seen["text"], "你好, over TLS");
    assert_eq!(seen["user"]["name"], "ann");
    ann.close(wschat::ws::CloseCode::NORMAL, "").unwrap();

    // Without the CA: the self-signed certificate is refused.
    let untrusted = Options {
        timeout: TIMEOUT,
        ..Options::default()
    };
    let err = client::connect_tls(&url, &untrusted)
        .map(|_| ())
        .expect_err("a self-signed certificate without --ca");
    assert!(err.to_string().contains("certificate"), "{err}");
    // With the CA but another host name than the certificate's.
    let err = client::connect_tls(&format!("wss://127.0.0.1:{port}/?name=cy"), &trusted)
        .map(|_| ())
        .expect_err("a certificate for localhost used for 127.0.0.1");
    assert!(err.to_string().contains("certificate"), "{err}");
    // The plain client says what to use for wss://.
    let err = client::connect(&url)
        .map(|_| ())
        .expect_err("connect is ws:// only");
    assert!(err.to_string().contains("connect_tls"), "{err}");
}

/// `wschat client ARGS` with `input` on its stdin (then end of input,
/// which closes with 1000); its exit success, stdout and stderr. Killed if
/// it overstays.
fn run_client(args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
        .arg("client")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wschat client");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        let _ = tx.send((out, err));
    });
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let (out, err) = rx.recv_timeout(TIMEOUT).expect("the client ended in time");
    let mut child = child;
    let status = child.0.wait().expect("wait");
    (status.success(), out, err)
}

#[test]
fn the_terminal_client_chats_over_wss_with_ca_and_is_refused_without() {
    let dir = TempDir::new();
    let (cert, key) = common::certificate(&dir.0, "localhost", "subjectAltName=DNS:localhost");
    let server = chat_server();
    let relay = common::TlsRelay::start(&(cert.clone(), key.clone()), server.addr());
    let port = relay.port;
    let url = format!("wss://localhost:{port}/?name=cy");
    let ca = cert.to_str().unwrap();

    let mut bob = client::connect(&format!("ws://{}/?name=bob", server.addr())).unwrap();
    bob.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
    next_of(&mut bob, "welcome");

    // Chat mode, piped: the line typed goes out, its echo comes back as a
    // line; end of input closes with 1000 (exit status 0).
    let (ok, out, err) = run_client(&["--ca", ca, &url], "你好 through wss\n");
    let seen = next_of(&mut bob, "chat");
    assert_eq!(seen["text"], "你好 through wss");
    assert_eq!(seen["user"]["name"], "cy");
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("* you are cy in #lobby"), "{out}");
    assert!(out.contains(" cy (you): 你好 through wss\n"), "{out}");
    assert!(out.contains("* close 1000"), "{out}");

    // Without --ca the self-signed certificate is refused, and said so.
    let (ok, out, err) = run_client(&[&url], "never sent\n");
    assert!(!ok, "stdout: {out}");
    assert!(
        err.contains("certificate of localhost was refused"),
        "{err}"
    );
    // A --ca that holds no certificate is an error too.
    let key = key.to_str().unwrap();
    let (ok, _, err) = run_client(&["--ca", key, &url], "");
    assert!(!ok);
    assert!(
        err.contains("cannot connect") && err.contains("localhost.key"),
        "{err}"
    );
}

/// Without OpenSSL (a mount namespace with `/dev/null` over every libssl
/// the loader knows: needs root), `wss://` fails at once and says why.
/// Says so and checks nothing where namespaces are not allowed.
#[cfg(target_os = "linux")]
#[test]
fn without_openssl_wss_says_so() {
    let allowed = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        eprintln!("without_openssl_wss_says_so: no mount namespace here (not root?)");
        return;
    }
    let script = r#"
        libs=$(ldconfig -p | awk '/libssl\.so(\.3)? /{print $NF}')
        [ -n "$libs" ] || { echo "no libssl known to ldconfig" >&2; exit 97; }
        for f in $libs; do mount --bind /dev/null "$f" || exit 97; done
        exec "$@"
    "#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh", env!("CARGO_BIN_EXE_wschat")])
        .args(["client", "wss://127.0.0.1:9/"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("wss:// needs OpenSSL (libssl), and none was found"),
        "{err}"
    );
    assert!(err.contains("libssl.so.3"), "{err}");
}
