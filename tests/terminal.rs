//! `wschat client` in chat mode, run as a program against an in-process
//! server on 127.0.0.1: readable lines, the slash commands, Ctrl-C, the
//! reconnect with resume, a refusal that is final, and a person at a
//! pseudo-terminal typing while messages arrive.
//!
//! The client reaches the server through a small relay in this file, which
//! reports each connection's request line and every frame the client sends
//! (dissected), and can cut the connections to make the client reconnect.
//! Every wait has a timeout; a child that overstays is killed by its pid.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wschat::config::Config;
use wschat::conn::{Error, WebSocket};
use wschat::dissect::{Direction, Dissector, FrameReport, Options};
use wschat::server::{Server, ServerHandle};
use wschat::ws::Message;
use wschat::ws::frame::{OpCode, encode_frame};

/// The longest any one step may take. Generous: it only matters when
/// something is broken, and the machine may be busy.
const TIMEOUT: Duration = Duration::from_secs(20);

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

// ---------------------------------------------------------------- the relay

/// A TCP relay in front of the server: every connection is passed through
/// to `upstream`; the request line of each and the client's frames are
/// reported; [`Relay::cut`] ends every connection at once.
struct Relay {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    requests: Receiver<String>,
    frames: Receiver<FrameReport>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (req_tx, requests) = mpsc::channel();
        let (frame_tx, frames) = mpsc::channel();
        let open = Arc::new(Mutex::new(Vec::new()));
        let sockets = open.clone();
        let upstream = Arc::new(Mutex::new(upstream));
        let target = upstream.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let to = *target.lock().unwrap();
                // Nobody there: the client's connection just ends.
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                {
                    let mut open = sockets.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(s2, c2));
                let (req_tx, frame_tx) = (req_tx.clone(), frame_tx.clone());
                std::thread::spawn(move || upstream_copy(client, server, req_tx, frame_tx));
            }
        });
        Relay {
            addr,
            upstream,
            requests,
            frames,
            open,
        }
    }

    /// Pass new connections to `addr` from now on.
    fn retarget(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap() = addr;
    }

    /// End every connection open now, as a network failure would.
    fn cut(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn next_request(&self) -> String {
        self.requests
            .recv_timeout(TIMEOUT)
            .expect("a connection through the relay")
    }

    /// Wait for the client's Close frame; its code.
    fn close_code(&self) -> Option<u16> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self
                .frames
                .recv_timeout(left)
                .expect("a Close from the client");
            if frame.header.opcode == OpCode::Close {
                return frame.close.and_then(|c| c.code).map(|c| c.0);
            }
        }
    }
}

/// Server to client, as it is.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// Client to server: the request line reported, then every frame.
fn upstream_copy(
    mut client: TcpStream,
    mut server: TcpStream,
    requests: Sender<String>,
    frames: Sender<FrameReport>,
) {
    let mut head = Vec::new();
    let mut dissector: Option<Dissector> = None;
    let mut buf = [0u8; 4096];
    while let Ok(n) = client.read(&mut buf) {
        if n == 0 || server.write_all(&buf[..n]).is_err() {
            break;
        }
        let mut bytes = &buf[..n];
        if dissector.is_none() {
            head.extend_from_slice(bytes);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&head[..end]).to_string();
            let _ = requests.send(text.lines().next().unwrap_or("").to_string());
            dissector = Some(Dissector::new(Options::new(Direction::ClientToServer)));
            let rest = head.split_off(end + 4);
            for f in dissector.as_mut().unwrap().feed(&rest) {
                let _ = frames.send(f);
            }
            continue;
        }
        if let Some(d) = &mut dissector {
            for f in d.feed(std::mem::take(&mut bytes)) {
                let _ = frames.send(f);
            }
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}

// ------------------------------------------------------- the other user

/// A chat user on the library client, to talk with the terminal.
struct Peer {
    ws: WebSocket<TcpStream>,
    id: u64,
}

impl Peer {
    fn join(server: &ServerHandle, query: &str) -> Peer {
        let ws = wschat::client::connect(&format!("ws://{}/?{query}", server.addr()))
            .expect("connect the peer");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut peer = Peer { ws, id: 0 };
        let welcome = peer.wait_for("welcome", |v| v["type"] == "welcome");
        peer.id = welcome["user"]["id"].as_u64().unwrap();
        peer.wait_for("history", |v| v["type"] == "history");
        peer
    }

    fn say(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).expect("send");
    }

    fn wait_for(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.ws.read_message() {
                Ok(Message::Text(text)) => {
                    let v: Value = serde_json::from_str(&text).expect("JSON from the server");
                    if wanted(&v) {
                        return v;
                    }
                    seen.push(v);
                }
                Ok(Message::Close(f)) => panic!("the peer was closed ({f:?}) before {what}"),
                Ok(_) => {}
                Err(Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("the peer failed before {what}: {e}; seen {seen:#?}"),
            }
        }
        panic!("the peer got no {what}; seen {seen:#?}");
    }
}

fn hh_mm_utc(ms: u64) -> String {
    let minutes = (ms / 1000 / 60) % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

// --------------------------------------------------- the client, piped

/// `wschat client` with piped stdin and stdout (no terminal): its stdout
/// lines on a channel.
struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Piped {
    fn start(args: &[&str]) -> Piped {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .arg("client")
            .args(args)
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wschat client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        Piped {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The first stdout line that `wanted` accepts; the lines skipped on
    /// the way come back too.
    fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return (line, seen),
                Ok(line) => seen.push(line),
                Err(e) => self.fail(&format!("no {what} ({e}); stdout had {seen:#?}")),
            }
        }
    }

    fn expect_line(&mut self, exact: &str) -> Vec<String> {
        self.wait_line(exact, |l| l == exact).1
    }

    /// Wait for the exit (stdin closed first when `close_stdin`): status
    /// and the stdout lines not read yet.
    fn finish(&mut self, close_stdin: bool) -> (ExitStatus, Vec<String>) {
        if close_stdin {
            drop(self.stdin.take());
        }
        let deadline = Instant::now() + TIMEOUT;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("stdout did not end: {rest:#?}"))
                }
            }
        }
        match wait_exit(&mut self.child) {
            Some(status) => (status, rest),
            None => self.fail("the client did not exit"),
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }

    fn fail(&mut self, why: &str) -> ! {
        kill(&mut self.child);
        panic!("{why}\nstderr:\n{}", self.stderr());
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Wait for `child` to exit, at most [`TIMEOUT`]: a thread waits on its
/// pid with `waitpid`, this one on a channel.
fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: waitpid on our own child's pid, into a local int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = tx.send((r, status));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok((r, status)) if r == pid => {
            use std::os::unix::process::ExitStatusExt;
            Some(ExitStatus::from_raw(status))
        }
        _ => None,
    }
}

/// Kill `child` by its pid if it still runs, and reap it.
fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Send `signal` to `child` by its pid.
fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(r, 0, "kill {}", child.id());
}

// ----------------------------------------------------------------- tests

#[test]
fn chat_mode_shows_lines_and_speaks_the_commands() {
    let server = chat_server();
    let mut bob = Peer::join(&server, "name=bob");
    bob.say("早上好");
    let early = bob.wait_for("its own chat", |v| v["type"] == "chat");
    // carol is in another room: /msg finds her with `find`.
    let mut carol = Peer::join(&server, "name=carol&room=garden");

    let mut ann = Piped::start(&[&format!("ws://{}/?name=ann", server.addr())]);
    ann.expect_line("* you are ann in #lobby");
    ann.expect_line("* 2 in #lobby: bob, ann");
    // History, oldest first, as lines with the local time (TZ=UTC).
    let time = hh_mm_utc(early["time"].as_u64().unwrap());
    ann.expect_line(&format!("{time} bob: 早上好"));
    bob.wait_for("ann's join", |v| v["type"] == "join");

    // A line is chat; the sender's own comes back marked.
    ann.type_line("hello 你好");
    let chat = bob.wait_for("ann's chat", |v| v["type"] == "chat");
    assert_eq!(chat["text"], "hello 你好");
    let time = hh_mm_utc(chat["time"].as_u64().unwrap());
    ann.expect_line(&format!("{time} ann (you): hello 你好"));

    // bob's messages, and his binary.
    bob.say("{\"type\":\"chat\",\"text\":\"/me waves\"}");
    let wave = bob.wait_for("the wave", |v| v["type"] == "chat");
    ann.expect_line(&format!(
        "{} * bob waves",
        hh_mm_utc(wave["time"].as_u64().unwrap())
    ));
    bob.ws.send(Message::Binary(vec![1, 2])).unwrap();
    ann.expect_line("[binary 2 bytes] 01 02");

    // /me
    ann.type_line("/me smiles");
    let me = bob.wait_for("ann's action", |v| v["type"] == "chat");
    assert_eq!(me["text"], "/me smiles");
    ann.expect_line(&format!(
        "{} * ann (you) smiles",
        hh_mm_utc(me["time"].as_u64().unwrap())
    ));

    // /msg to someone in the room's member list...
    ann.type_line("/msg bob just for you");
    let private = bob.wait_for("a private message", |v| v["type"] == "private");
    assert_eq!(private["text"], "just for you");
    assert_eq!(private["to"]["id"], bob.id);
    ann.expect_line(&format!(
        "{} [private] ann → bob: just for you",
        hh_mm_utc(private["time"].as_u64().unwrap())
    ));
    // ... and to someone elsewhere, found by name.
    ann.type_line("/msg carol 你好 carol");
    let private = carol.wait_for("a private message", |v| v["type"] == "private");
    assert_eq!(private["text"], "你好 carol");
    ann.wait_line("the private line", |l| {
        l.ends_with("[private] ann → carol: 你好 carol")
    });
    ann.type_line("/msg nobody-here hi");
    ann.wait_line("the notice", |l| {
        l.contains("nobody online is called nobody-here")
    });

    // /rooms lists the rooms with their members, and hers.
    ann.type_line("/rooms");
    ann.wait_line("the rooms", |l| l.contains("rooms: #lobby (2)"));
    ann.wait_line("her rooms", |l| l.contains("your rooms: #lobby"));

    // /name, then /join.
    ann.type_line("/name anna");
    let rename = bob.wait_for("the rename", |v| v["type"] == "rename");
    assert_eq!(rename["user"]["name"], "anna");
    ann.expect_line("* ann is now anna");
    ann.type_line("/join rust");
    bob.wait_for("anna's leave", |v| v["type"] == "leave");
    ann.expect_line("* anna joined #rust (1 here)");

    // /users asks again.
    ann.type_line("/users");
    ann.expect_line("* 1 in #rust: anna");

    // End of input: a Close 1000, exit 0.
    let (status, rest) = ann.finish(true);
    assert!(status.success(), "{status:?} {rest:?}\n{}", ann.stderr());
    assert!(rest.iter().any(|l| l == "* close 1000"), "{rest:#?}");
}

#[test]
fn raw_keeps_the_json_and_echo_stays_raw() {
    let server = chat_server();
    let mut raw = Piped::start(&["--raw", &format!("ws://{}/?name=r", server.addr())]);
    let (welcome, _) = raw.wait_line("the welcome JSON", |l| {
        l.starts_with("{\"type\":\"welcome\"")
    });
    assert!(welcome.contains("\"name\":\"r\""), "{welcome}");
    raw.finish(true);
    let mut echo = Piped::start(&[&format!("ws://{}/echo", server.addr())]);
    echo.type_line("{\"type\":\"x\"}");
    echo.expect_line("{\"type\":\"x\"}");
    let (status, _) = echo.finish(true);
    assert!(status.success());
}

#[test]
fn ctrl_c_on_a_pipe_sends_a_close_1000() {
    let server = chat_server();
    let relay = Relay::start(server.addr());
    let mut ann = Piped::start(&[&format!("ws://{}/?name=ann", relay.addr)]);
    relay.next_request();
    ann.expect_line("* you are ann in #lobby");
    signal(&ann.child, libc::SIGINT);
    assert_eq!(relay.close_code(), Some(1000));
    let (status, rest) = ann.finish(false);
    assert!(status.success(), "{status:?} {rest:?}\n{}", ann.stderr());
}

#[test]
fn a_dropped_connection_is_resumed_with_nothing_missed_or_repeated() {
    let server = chat_server();
    let relay = Relay::start(server.addr());
    let mut bob = Peer::join(&server, "name=bob");
    let mut ann = Piped::start(&[&format!("ws://{}/?name=ann&room=lobby", relay.addr)]);
    let first = relay.next_request();
    assert!(first.contains("name=ann"), "{first}");
    ann.expect_line("* you are ann in #lobby");
    bob.say("one");
    ann.wait_line("one", |l| l.ends_with("bob: one"));
    let one = bob.wait_for("one", |v| v["type"] == "chat");

    relay.cut();
    bob.say("two");
    ann.wait_line("the notice", |l| l.starts_with("* connection lost"));
    // Typed while the connection is down: sent once it is back.
    ann.type_line("typed while away");
    ann.wait_line("the reconnect notice", |l| l.starts_with("* reconnected"));
    let again = relay.next_request();
    assert!(again.contains("session="), "{again}");
    assert!(
        again.contains(&format!("since={}", one["id"])),
        "{again} (one was {})",
        one["id"]
    );
    assert!(!again.contains("name="), "{again}");
    let typed = bob.wait_for("what ann typed", |v| {
        v["type"] == "chat" && v["user"]["name"] == "ann"
    });
    assert_eq!(typed["text"], "typed while away");
    bob.say("three");
    let (_, lines) = ann.wait_line("three", |l| l.ends_with("bob: three"));
    let count = |t: &str| lines.iter().filter(|l| l.ends_with(t)).count();
    assert_eq!(count("bob: two"), 1, "{lines:#?}");
    assert_eq!(count("bob: one"), 0, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l == "* you are ann in #lobby"),
        "{lines:#?}"
    );

    let (status, _) = ann.finish(true);
    assert!(status.success(), "{}", ann.stderr());
}

/// A one-connection server made by hand: it answers the handshake, sends
/// `script` (which ends with a Close) right behind the 101, reads the
/// client's answer and closes. Once
/// it is done nobody listens, so a client that reconnected would find
/// nobody.
fn scripted(script: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        drop(listener);
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let request = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the client left during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some((request, _)) = wschat::ws::handshake::parse_request(&buf, 8192).unwrap() {
                break request;
            }
        };
        let accept = wschat::ws::handshake::validate_upgrade(&request, &[]).unwrap();
        let mut out = accept.response();
        out.extend(script);
        stream.write_all(&out).unwrap();
        // The client's answer to the Close that ends every script; then
        // the server closes TCP first, as RFC 6455 §7.1.1 asks.
        let _ = stream.read(&mut chunk);
    });
    addr
}

fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, None);
    out
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend(reason.as_bytes());
    server_frame(OpCode::Close, &payload)
}

#[test]
fn ctrl_c_while_reconnecting_ends_at_once() {
    let server = chat_server();
    let relay = Relay::start(server.addr());
    let mut ann = Piped::start(&[&format!("ws://{}/", relay.addr)]);
    ann.wait_line("the welcome", |l| l.starts_with("* you are "));
    // From now on the relay finds nobody behind it.
    let nobody = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    relay.retarget(nobody);
    relay.cut();
    ann.wait_line("the notice", |l| l.starts_with("* connection lost"));
    ann.wait_line("a failed attempt", |l| l.starts_with("* cannot reconnect"));
    signal(&ann.child, libc::SIGINT);
    let (status, rest) = ann.finish(false);
    assert!(status.success(), "{status:?} {rest:#?}\n{}", ann.stderr());
}

/// A temporary data directory, removed at the end.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_server_restart_is_resumed_as_the_same_user_in_the_same_room() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "wschat-terminal-{}-{}",
        std::process::id(),
        wschat::random::random_u64()
    )));
    let config = || Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        ..Default::default()
    };
    let server = Server::bind(config()).unwrap().spawn().unwrap();
    let relay = Relay::start(server.addr());
    let mut ann = Piped::start(&[&format!("ws://{}/?name=ann", relay.addr)]);
    ann.expect_line("* you are ann in #lobby");
    ann.type_line("/join garden");
    ann.expect_line("* ann joined #garden (1 here)");
    ann.type_line("before");
    ann.wait_line("its own line", |l| l.ends_with("ann (you): before"));

    // The server goes away (1001), and another starts on the same data.
    drop(server);
    ann.wait_line("the notice", |l| {
        l.starts_with("* connection lost (close 1001")
    });
    let server = Server::bind(config()).unwrap().spawn().unwrap();
    let mut bob = Peer::join(&server, "name=bob&room=garden");
    bob.say("while you were away");
    bob.wait_for("its own chat", |v| v["type"] == "chat");
    relay.retarget(server.addr());

    let (_, lines) = ann.wait_line("the missed message", |l| {
        l.ends_with("bob: while you were away")
    });
    assert!(
        lines.iter().any(|l| l == "* you are ann in #garden"),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.ends_with(": before")), "{lines:#?}");
    let (status, rest) = ann.finish(true);
    assert!(status.success(), "{rest:#?}\n{}", ann.stderr());
    assert!(
        !rest.iter().any(|l| l.ends_with("while you were away")),
        "shown twice: {rest:#?}"
    );
}

#[test]
fn a_refusal_is_final_with_its_reason() {
    let addr = scripted(close_frame(4003, "kicked by an administrator"));
    let mut ann = Piped::start(&[&format!("ws://{addr}/chat")]);
    let (status, rest) = ann.finish(false);
    assert_eq!(status.code(), Some(1), "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l == "* close 4003 kicked by an administrator"),
        "{rest:#?}"
    );
    assert!(!rest.iter().any(|l| l.contains("reconnect")), "{rest:#?}");
}

#[test]
fn whatever_the_server_sends_is_shown_harmlessly() {
    let texts = [
        "not json at all",
        "plain \x1b[31mred",
        "{}",
        "[1,2]",
        r#"{"type":7}"#,
        r#"{"type":"welcome","user":"nobody"}"#,
        r#"{"type":"users","count":99999999999999999999,"users":{"a":1}}"#,
        r#"{"type":"history","messages":[1,null,{"type":"chat"},{"type":"chat","id":-1,"time":"x"}]}"#,
        r#"{"type":"chat","id":18446744073709551615,"time":18446744073709551615,"user":{"id":1,"name":"\u001b]0;pwned\u0007"},"text":"\u001b[2J\u001b[Hclear?\r\nline two"}"#,
        r#"{"type":"private","from":null,"to":[],"text":null}"#,
        r#"{"type":"found","name":null,"users":[{"id":"x"}]}"#,
        r#"{"type":"rename","user":{"id":1},"old":{}}"#,
        r#"{"type":"presence"}"#,
        r#"{"type":"error"}"#,
        r#"{"type":"privates","conversations":[{}]}"#,
    ];
    let mut script = Vec::new();
    for text in texts {
        script.extend(server_frame(OpCode::Text, text.as_bytes()));
    }
    script.extend(server_frame(OpCode::Binary, &[0x1b; 40]));
    script.extend(close_frame(1000, "bye \u{1b}[2J"));
    let addr = scripted(script);
    let mut ann = Piped::start(&[&format!("ws://{addr}/")]);
    let (status, rest) = ann.finish(false);
    assert!(status.success(), "{status:?} {rest:#?}\n{}", ann.stderr());
    assert!(rest.iter().any(|l| l == "not json at all"), "{rest:#?}");
    assert!(rest.iter().any(|l| l == "plain ^[[31mred"), "{rest:#?}");
    assert!(
        rest.iter().any(|l| l.contains("^[[2J^[[Hclear?^M")),
        "{rest:#?}"
    );
    assert!(rest.iter().any(|l| l == "    line two"), "{rest:#?}");
    // A message that is not the protocol's JSON is shown as it is, made
    // harmless too.
    assert!(rest.iter().any(|l| l.contains("^[]0;pwned^G")), "{rest:#?}");
    assert!(rest.iter().any(|l| l == "[binary 40 bytes]"), "{rest:#?}");
    for line in &rest {
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
    }
}

// ------------------------------------------------------- the terminal

/// What the client drew on the pseudo-terminal so far, read by a thread.
struct Screen {
    bytes: Vec<u8>,
    incoming: Receiver<Vec<u8>>,
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Read until the screen (from byte `from` on) holds `wanted`; where
    /// it starts.
    fn wait_for(&mut self, from: usize, wanted: &str, child: &mut Child) -> usize {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(at) = find(&self.bytes[from.min(self.bytes.len())..], wanted.as_bytes()) {
                return from + at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(bytes) => self.bytes.extend(bytes),
                Err(e) => {
                    kill(child);
                    panic!(
                        "{wanted:?} not on the screen ({e}); it shows {:?}",
                        self.text()
                    );
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn on_a_terminal_the_typed_line_survives_incoming_messages() {
    let server = chat_server();
    let relay = Relay::start(server.addr());
    let mut bob = Peer::join(&server, "name=bob");
    let (controller, terminal) = wschat::sys::open_pty().expect("a pseudo-terminal");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .arg("client")
        .arg(format!("ws://{}/?name=ann", relay.addr))
        .env("TZ", "UTC")
        .stdin(Stdio::from(terminal.try_clone().unwrap()))
        .stdout(Stdio::from(terminal.try_clone().unwrap()))
        .stderr(Stdio::from(terminal))
        .spawn()
        .expect("start wschat client on the terminal");
    let mut keyboard = std::fs::File::from(controller.try_clone().unwrap());
    let mut display = std::fs::File::from(controller);
    let (tx, incoming) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once the client is gone and the terminal closed.
        while let Ok(n) = display.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Screen {
        bytes: Vec::new(),
        incoming,
    };
    // The hint comes once the terminal is in raw mode: typing may start.
    screen.wait_for(0, "Ctrl-C quits", &mut child);
    // Notices are dimmed on a terminal.
    let at = screen.wait_for(0, "you are ann in #lobby", &mut child);
    assert!(
        screen.text()[..at].ends_with("\x1b[2m* "),
        "{:?}",
        screen.text()
    );
    bob.wait_for("ann's join", |v| v["type"] == "join");

    keyboard.write_all("hello 世".as_bytes()).unwrap();
    let typed = screen.wait_for(0, "> hello 世", &mut child);
    bob.say("incoming 你好");
    let shown = screen.wait_for(typed, "bob: incoming 你好", &mut child);
    // The message is printed on the typed line's row, erased first, and
    // the line is drawn again below it, intact.
    let redrawn = screen.wait_for(shown, "\r\x1b[K> hello 世", &mut child);
    let between = &screen.text()[shown..redrawn];
    assert!(between.contains('\n'), "{between:?}");
    assert!(
        screen.text()[typed..shown].contains("\r\x1b[K"),
        "{:?}",
        screen.text()
    );

    // A Backspace, then the rest of the line and Enter: the server gets it
    // whole.
    keyboard.write_all(b"X\x7f").unwrap();
    keyboard.write_all("界 and more\r".as_bytes()).unwrap();
    let chat = bob.wait_for("ann's line", |v| {
        v["type"] == "chat" && v["user"]["name"] == "ann"
    });
    assert_eq!(chat["text"], "hello 世界 and more");
    screen.wait_for(redrawn, "ann (you): hello 世界 and more", &mut child);

    // Ctrl-C: a Close 1000, and exit 0.
    assert!(relay.next_request().contains("name=ann"));
    keyboard.write_all(b"\x03").unwrap();
    assert_eq!(relay.close_code(), Some(1000));
    bob.wait_for("ann's leave", |v| v["type"] == "leave");
    let status = wait_exit(&mut child);
    kill(&mut child);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}; screen {:?}",
        screen.text()
    );
}
