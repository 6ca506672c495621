//! TLS for the tests of wschat's TLS clients (`https://` webhooks,
//! `wss://`): a self-signed certificate made with the `openssl` command,
//! and a TLS relay (Python's `ssl` module: another implementation's server
//! side) in front of a plain server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;

use std::time::Duration;

/// How long the relay may take to start or to print a line.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A certificate and key for `san` (`openssl req`'s `subjectAltName`),
/// self-signed: trusted by a client told to trust that certificate (`--webhook-ca`,
/// `wschat client --ca`). Needs the `openssl` command.
pub fn certificate(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={name}"), "-addext", san])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The TLS relay in front of a plain receiver: Python's `ssl` module
/// (another TLS implementation's server side than wschat's client, on
/// the same certificate files) accepts on 127.0.0.1, prints the SNI it
/// was sent (`sni: NAME`, `sni: None`) and each refused handshake
/// (`refused: …`), and pipes the plain text to `upstream` both ways.
const TLS_RELAY: &str = r#"
import socket, ssl, sys, threading
cert, key, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.sni_callback = lambda sock, name, c: print("sni:", name, flush=True)
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)

def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def serve(raw):
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except OSError as e:
        print("refused:", e, flush=True)
        raw.close()
        return
    up = socket.create_connection(("127.0.0.1", upstream))
    back = threading.Thread(target=pipe, args=(up, tls), daemon=True)
    back.start()
    pipe(tls, up)
    back.join()
    tls.close()
    up.close()

while True:
    raw, _ = srv.accept()
    threading.Thread(target=serve, args=(raw,), daemon=True).start()
"#;

/// A running [`TLS_RELAY`], killed when dropped.
pub struct TlsRelay {
    child: std::process::Child,
    /// The port it accepts TLS on, on 127.0.0.1.
    pub port: u16,
    lines: Receiver<String>,
}

impl TlsRelay {
    /// Start it in front of `upstream`, with the certificate and key of
    /// [`certificate`].
    pub fn start((cert, key): &(PathBuf, PathBuf), upstream: SocketAddr) -> TlsRelay {
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(TLS_RELAY)
            .arg(cert)
            .arg(key)
            .arg(upstream.port().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = lines
            .recv_timeout(TIMEOUT)
            .expect("the relay says its port")
            .parse()
            .expect("a port");
        TlsRelay { child, port, lines }
    }

    /// The relay's next line that starts with `prefix`.
    pub fn next(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("the relay printed no {prefix:?} line in time"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
