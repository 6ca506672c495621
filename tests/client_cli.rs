//! `wschat client` run as a program against real sockets on 127.0.0.1: the
//! in-process echo server, and hand-made servers that misbehave. Every wait
//! has a timeout; a child that overstays is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use wschat::config::Config;
use wschat::dissect::{Direction, Dissector, FrameReport, Options};
use wschat::server::{Server, ServerHandle};
use wschat::ws::frame::{OpCode, encode_frame};
use wschat::ws::handshake;

const TIMEOUT: Duration = Duration::from_secs(20);

fn echo_server() -> ServerHandle {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    Server::bind(config).unwrap().spawn().unwrap()
}

/// A running `wschat client`, its stdout as lines on a channel and its
/// stderr gathered in a thread.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Client {
    fn start(args: &[&str]) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .arg("client")
            .args(args)
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
        Client {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Wait for the next stdout line.
    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(e) => self.fail(&format!("no line on stdout: {e}")),
        }
    }

    /// Close stdin, read stdout to its end, and wait for the exit:
    /// (exit code, remaining stdout lines, stderr).
    fn finish(mut self, close_stdin: bool) -> (i32, Vec<String>, String) {
        if close_stdin {
            drop(self.stdin.take());
        }
        let mut rest = Vec::new();
        loop {
            match self.lines.recv_timeout(TIMEOUT) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => self.fail("stdout did not end"),
            }
        }
        let stderr = match self.stderr.recv_timeout(TIMEOUT) {
            Ok(s) => s,
            Err(_) => self.fail("stderr did not end"),
        };
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the client");
        (status.code().unwrap_or(-1), rest, stderr)
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_default();
        panic!("{why}; stderr:\n{stderr}");
    }
}

#[test]
fn lines_binary_and_ping_are_echoed_then_end_of_input_closes_normally() {
    let server = echo_server();
    let url = format!("ws://{}/echo", server.addr());
    let mut client = Client::start(&["--trace", &url]);
    client.type_line("hello");
    client.type_line("你好, wschat");
    client.type_line("/binary 0102");
    client.type_line("/ping hi");
    client.type_line("//not a command");
    assert_eq!(client.next_line(), "hello");
    let (code, rest, stderr) = client.finish(true);
    assert_eq!(code, 0, "stdout {rest:?}\nstderr:\n{stderr}");
    assert_eq!(
        rest,
        ["你好, wschat", "[binary 2 bytes] 01 02", "/not a command"],
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains("pong \"hi\""), "{stderr}");
    assert!(stderr.contains("close 1000"), "{stderr}");
    // --trace shows frames both ways in the dissector's one-line form.
    assert!(stderr.contains("> ping fin=1 rsv=000 mask="), "{stderr}");
    assert!(
        stderr.contains("< text fin=1 rsv=000 mask=- len=5 \"hello\""),
        "{stderr}"
    );
    assert!(stderr.contains("> close fin=1"), "{stderr}");
}

#[test]
fn with_deflate_on_long_lines_go_compressed_both_ways_and_trace_shows_them_inflated() {
    let server = echo_server();
    let url = format!("ws://{}/echo", server.addr());
    let mut client = Client::start(&["--deflate", "on", "--trace", &url]);
    let line = "A line long enough to be compressed, compressed by the client, yes it is.";
    client.type_line(line);
    client.type_line("short");
    assert_eq!(client.next_line(), line);
    assert_eq!(client.next_line(), "short");
    let (code, _, stderr) = client.finish(true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("(permessage-deflate)"), "{stderr}");
    let inflated = format!("[inflated to {} bytes:", line.len());
    // Out and back: RSV1 set, shown inflated; the short line goes plain.
    for way in ["> text fin=1 rsv=100 ", "< text fin=1 rsv=100 "] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(way) && l.contains(&inflated)),
            "{way:?} in\n{stderr}"
        );
    }
    assert!(
        stderr.contains("< text fin=1 rsv=000 mask=- len=5 \"short\""),
        "{stderr}"
    );
    // Raw mode's default is off: the same line goes plain.
    let mut client = Client::start(&["--trace", &url]);
    client.type_line(line);
    assert_eq!(client.next_line(), line);
    let (_, _, stderr) = client.finish(true);
    assert!(!stderr.contains("rsv=100"), "{stderr}");
}

#[test]
fn close_command_with_a_code_and_reason_ends_with_0() {
    let server = echo_server();
    let url = format!("ws://{}/echo", server.addr());
    let mut client = Client::start(&[&url]);
    client.type_line("one");
    assert_eq!(client.next_line(), "one");
    client.type_line("/close 4000 done here");
    let (code, rest, stderr) = client.finish(false);
    assert_eq!(code, 0, "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(stderr.contains("close 4000"), "{stderr}");
}

#[test]
fn ctrl_c_closes_with_1000_in_raw_mode_too() {
    let server = echo_server();
    let url = format!("ws://{}/echo", server.addr());
    let mut client = Client::start(&[&url]);
    client.type_line("one");
    assert_eq!(client.next_line(), "one");
    // SIGINT, as Ctrl-C sends it to a program whose input is a pipe.
    // SAFETY: kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(client.child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
    let (code, rest, stderr) = client.finish(false);
    assert_eq!(code, 0, "stdout {rest:?}\nstderr:\n{stderr}");
    assert!(stderr.contains("close 1000"), "{stderr}");
}

#[test]
fn bad_urls_and_unreachable_servers() {
    let (code, _, stderr) = Client::start(&["http://127.0.0.1:1/"]).finish(true);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = Client::start(&[]).finish(true);
    assert_eq!(code, 2, "{stderr}");
    // A port nobody listens on: take one and release it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, stderr) = Client::start(&[&format!("ws://127.0.0.1:{port}/")]).finish(true);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    let server = echo_server();
    let (code, _, stderr) =
        Client::start(&[&format!("ws://{}/nowhere", server.addr())]).finish(true);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("404"), "{stderr}");
}

/// A one-connection server made by hand: it answers the handshake, then
/// writes `after_101` in the same write as the 101 (so the client finds
/// frames among the handshake bytes), then reads what the client sends
/// until its Close, and sends those frames, dissected, on the channel.
fn scripted_server(after_101: Vec<u8>) -> (SocketAddr, Receiver<Vec<FrameReport>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let (request, used) = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the client left during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(done) = handshake::parse_request(&buf, 8192).unwrap() {
                break done;
            }
        };
        assert_eq!(request.header("X-Test"), Some("yes"));
        let accept = handshake::validate_upgrade(&request, &["chat".to_string()]).unwrap();
        let mut out = accept.response();
        out.extend(after_101);
        stream.write_all(&out).unwrap();
        let _ = tx.send(collect_frames(stream, &buf[used..]));
    });
    (addr, rx)
}

/// Dissect what the client sends until its Close frame or EOF.
fn collect_frames(mut stream: TcpStream, first: &[u8]) -> Vec<FrameReport> {
    let mut dissector = Dissector::new(Options::new(Direction::ClientToServer));
    let mut frames = dissector.feed(first);
    let deadline = Instant::now() + TIMEOUT;
    let mut chunk = [0u8; 1024];
    while !frames.iter().any(|f| f.header.opcode == OpCode::Close) && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => frames.extend(dissector.feed(&chunk[..n])),
        }
    }
    frames
}

fn server_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, mask);
    out
}

#[test]
fn a_server_that_breaks_a_rule_gets_1002_and_the_client_exits_1() {
    // Right behind the 101: a greeting, a ping, then a masked frame, which
    // no server may send (RFC 6455 §5.1).
    let mut script = server_frame(OpCode::Text, b"welcome", None);
    script.extend(server_frame(OpCode::Ping, b"hi", None));
    script.extend(server_frame(OpCode::Text, b"bad", Some([1, 2, 3, 4])));
    let (addr, server) = scripted_server(script);
    let mut client = Client::start(&[
        "--raw",
        "--protocol",
        "chat",
        "--header",
        "X-Test: yes",
        &format!("ws://{addr}/"),
    ]);
    assert_eq!(client.next_line(), "welcome");
    let (code, rest, stderr) = client.finish(false);
    assert_eq!(code, 1, "stdout {rest:?}\nstderr:\n{stderr}");
    assert!(stderr.contains("subprotocol chat"), "{stderr}");
    assert!(stderr.contains("server frame is masked"), "{stderr}");
    assert!(stderr.contains("1002"), "{stderr}");
    let frames = server.recv_timeout(TIMEOUT).expect("the server's report");
    let lines: Vec<String> = frames.iter().map(FrameReport::one_line).collect();
    assert_eq!(frames.len(), 2, "{lines:?}");
    assert!(frames.iter().all(FrameReport::is_valid), "{lines:?}");
    assert_eq!(frames[0].header.opcode, OpCode::Pong);
    assert_eq!(frames[0].payload, b"hi");
    let close = frames[1].close.as_ref().expect("a close frame");
    assert_eq!(close.code.map(|c| c.0), Some(1002));
}

#[test]
fn a_server_close_is_answered_and_its_code_decides_the_exit() {
    for (code, exit) in [(1000u16, 0), (1011, 1)] {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend(b"bye");
        let (addr, server) = scripted_server(server_frame(OpCode::Close, &payload, None));
        let mut client =
            Client::start(&["--raw", "--header", "X-Test: yes", &format!("ws://{addr}/")]);
        // The server closes TCP once it has the answer, so the client does
        // not wait out its close timeout.
        let Ok(frames) = server.recv_timeout(TIMEOUT) else {
            client.fail("the server saw no Close");
        };
        let (status, _, stderr) = client.finish(false);
        assert_eq!(status, exit, "close {code}: {stderr}");
        assert!(stderr.contains(&format!("close {code}")), "{stderr}");
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].close.as_ref().and_then(|c| c.code).map(|c| c.0),
            Some(code),
            "the Close is echoed"
        );
    }
}
