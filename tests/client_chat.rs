//! `wschat client ws://ADDR/` as a chat user: the terminal client, run as a
//! program, talks with a second user who connects with the library client
//! (`wschat::client::connect`), both on an in-process server on 127.0.0.1.
//!
//! The client runs with `--raw` (every text printed as it came), so that
//! the test reads the protocol's JSON; tests/terminal.rs checks chat mode.
//!
//! Every wait is bounded: the program's stdout is read by a thread into a
//! channel, each wait is a `recv_timeout`, the library user's socket has a
//! read timeout, and a program that overstays (or outlives a failed test)
//! is killed.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;
use wschat::config::Config;
use wschat::conn::{Error, WebSocket};
use wschat::server::{Server, ServerHandle};
use wschat::ws::Message;

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

/// `wschat client URL` running as a child process: its stdout as lines on
/// a channel, its stderr gathered by a thread (shown when a step fails).
struct Terminal {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Terminal {
    fn start(url: &str) -> Terminal {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .arg("client")
            // The JSON as it comes: this test reads the protocol itself.
            .arg("--raw")
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wschat client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        Terminal {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// Type `line` and Enter.
    fn type_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            self.fail("stdin is closed already");
        };
        let written = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush());
        if let Err(e) = written {
            self.fail(&format!("cannot type into the client: {e}"));
        }
    }

    /// The first stdout line that is a JSON object matching `wanted`,
    /// skipping the others; every line read is kept in `seen`.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && wanted(&v)
                    {
                        return v;
                    }
                    seen.push(line);
                }
                Err(e) => self.fail(&format!(
                    "no {what} on the client's stdout ({e}); it printed {seen:#?}"
                )),
            }
        }
    }

    /// Close stdin (end of input), then wait for stdout to end and the
    /// program to exit: its status and the stdout lines after that point.
    fn end_input(&mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let deadline = Instant::now() + TIMEOUT;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("stdout did not end after stdin closed: {rest:#?}"))
                }
            }
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return (status, rest),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => self.fail("the client did not exit after its stdout ended"),
                Err(e) => self.fail(&format!("cannot wait for the client: {e}")),
            }
        }
    }

    /// The program's stderr, once it has exited (or been killed).
    fn stderr(&self) -> String {
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "(stderr not available)".into())
    }

    /// Kill the program and fail the test with its stderr.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("{why}\nstderr of wschat client:\n{}", self.stderr());
    }
}

impl Drop for Terminal {
    /// A test that fails between steps must not leave the program running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The library user's next JSON message that matches `wanted` (others are
/// skipped), within [`TIMEOUT`].
fn lib_wait_for(
    ws: &mut WebSocket<TcpStream>,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match ws.read_message() {
            Ok(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("the server sent non-JSON {text:?}: {e}"));
                if wanted(&v) {
                    return v;
                }
                seen.push(v);
            }
            Ok(Message::Close(frame)) => {
                panic!(
                    "the server closed the library user ({frame:?}) before {what}; seen {seen:#?}"
                )
            }
            Ok(_) => {}
            // The read timeout: look at the deadline and read again.
            Err(Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                panic!("the library user's connection failed before {what}: {e}; seen {seen:#?}")
            }
        }
    }
    panic!("the library user got no {what} within {TIMEOUT:?}; seen {seen:#?}");
}

fn is(v: &Value, kind: &str) -> bool {
    v["type"] == kind
}

/// Whether `v` lists a user named `name` in `"users"`.
fn names(v: &Value, name: &str) -> bool {
    v["users"]
        .as_array()
        .is_some_and(|users| users.iter().any(|u| u["name"] == name))
}

#[test]
fn the_terminal_client_chats_with_a_library_user() {
    let server = chat_server();
    let addr = server.addr();

    // The library user is in the lobby first.
    let mut lib = wschat::client::connect(&format!("ws://{addr}/?name=lib")).expect("connect");
    lib.get_ref()
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let welcome = lib_wait_for(&mut lib, "welcome", |v| is(v, "welcome"));
    assert_eq!(welcome["user"]["name"], "lib", "{welcome}");

    // The terminal user connects: its stdout shows the welcome (the JSON
    // line as it came), and the lobby hears that `term` joined.
    let mut term = Terminal::start(&format!("ws://{addr}/?name=term"));
    let welcome = term.wait_for("welcome", |v| is(v, "welcome"));
    assert_eq!(welcome["user"]["name"], "term", "{welcome}");
    assert_eq!(welcome["room"], "lobby", "{welcome}");
    let term_id = welcome["user"]["id"].clone();
    assert!(term_id.is_u64(), "{welcome}");
    lib_wait_for(&mut lib, "join of term", |v| {
        is(v, "join") && names(v, "term")
    });

    // A line typed into the terminal reaches the other user as a chat
    // message from `term`, its text verbatim.
    let typed = "hello from the terminal, 你好";
    term.type_line(typed);
    let chat = lib_wait_for(&mut lib, "chat from term", |v| is(v, "chat"));
    assert_eq!(chat["text"], typed, "{chat}");
    assert_eq!(chat["user"]["name"], "term", "{chat}");
    assert_eq!(chat["user"]["id"], term_id, "{chat}");
    assert_eq!(chat["room"], "lobby", "{chat}");
    assert!(chat["id"].is_u64() && chat["time"].is_u64(), "{chat}");
    // The sender gets its own message back: the confirmation.
    let own = term.wait_for("its own chat back", |v| is(v, "chat"));
    assert_eq!(own["id"], chat["id"], "{own}");

    // The other user's message appears on the terminal's stdout.
    let answer = "hi term, this is lib";
    lib.send(Message::Text(answer.into())).expect("send");
    let shown = term.wait_for("chat from lib", |v| {
        is(v, "chat") && v["user"]["name"] == "lib"
    });
    assert_eq!(shown["text"], answer, "{shown}");

    // End of input: the client closes normally and exits 0, and the lobby
    // hears that `term` left.
    let (status, rest) = term.end_input();
    assert!(
        status.success(),
        "exit {status:?}; stdout after stdin closed {rest:#?}\nstderr:\n{}",
        term.stderr()
    );
    let stderr = term.stderr();
    assert!(stderr.contains("close 1000"), "{stderr}");
    let leave = lib_wait_for(&mut lib, "leave of term", |v| is(v, "leave"));
    assert!(names(&leave, "term"), "{leave}");
}
