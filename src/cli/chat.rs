//! Chat mode of `wschat client`: the chat protocol (docs/chat-protocol.md)
//! as readable lines, slash commands for it, a line editor on a terminal,
//! a Close frame on Ctrl-C, and reconnecting with resume when the
//! connection drops. docs/client.md describes it for users.
//!
//! One thread, the main one, owns everything a person sees: the chat's
//! state ([`ChatState`]), the line being typed ([`Editor`]) and the
//! screen. Other threads only feed it `Event`s through one channel: the
//! reader of each connection (messages, then how it ended), standard
//! input (keys on a terminal, lines otherwise), and the thread that waits
//! for SIGINT and SIGTERM. So an incoming message is printed between two
//! keys, never in the middle of one: the typed line is erased, the message
//! printed, and the line drawn again.

use std::io::{self, BufRead, ErrorKind, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::client::{
    Args, CLOSE_TIMEOUT, Command, End, Link, WRITE_TIMEOUT, command_message, finish, lock, open,
    read_loop, spaced_hex, text_or_hex,
};
use super::editor::{Action, Editor};
use super::render::{ChatState, Line, Reply};
use crate::dissect::{Direction, Dissector, Options as DissectOptions};
use crate::ws::{CloseCode, CloseFrame, Connection, Message};

/// The first wait before reconnecting; each failed attempt doubles it.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts to reconnect.
pub const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Attempts to reconnect before giving up (about a minute and a half of
/// waiting in all).
pub const RECONNECT_ATTEMPTS: u32 = 12;

/// Messages typed while reconnecting that are kept to send once the
/// connection is back; more are refused.
pub const MAX_WAITING: usize = 100;

/// The prompt in front of the line being typed.
const PROMPT: &str = "> ";

/// The commands of chat mode, for `/help` and `--help`.
pub const CHAT_COMMANDS: &str = "  /name NAME               change your name
  /join ROOM                go to another room (made on first use)
  /msg NAME TEXT            a private message (NAME as /users shows it;
                            \"A NAME\" in quotes when it has spaces)
  /me ACTION                an action: shown as * you ACTION
  /users                    who is in your room
  /rooms                    the busiest rooms, and yours with what is unread
  /ping [TEXT]              send a ping
  /close [CODE [REASON]]    start the close handshake (default 1000)
  /binary HEX               send a binary message
  /quit                     close with 1000 and exit (as Ctrl-C, Ctrl-D do)
  //TEXT                    send a line that starts with /
  /help                     list the commands
";

/// A connection just opened: the socket, the bytes read past the
/// handshake, the subprotocol.
type Opened = (super::wire::Wire, Vec<u8>, Option<String>, Connection);

/// What the main thread waits for.
#[derive(Debug)]
enum Event {
    /// A line of standard input (not a terminal).
    Line(Vec<u8>),
    /// Bytes typed on the terminal (raw mode).
    Keys(Vec<u8>),
    /// Standard input ended, or could not be read.
    InputEnd(Option<io::Error>),
    /// SIGINT or SIGTERM.
    Signal,
    /// A message from connection number `.0`.
    Message(u64, Message),
    /// Connection number `.0` ended.
    End(u64, End),
}

/// Where lines go: standard output, with the line being typed kept below
/// them on a terminal.
struct Screen {
    out: io::Stdout,
    /// Notices dimmed (SGR 2): standard output is a terminal.
    dim: bool,
    /// The line editor, when standard input and output are a terminal.
    editor: Option<Editor>,
}

impl Screen {
    fn columns(&self) -> usize {
        crate::sys::terminal_columns(&io::stdout()).map_or(80, usize::from)
    }

    /// Print one line above the line being typed.
    fn print(&mut self, line: &Line) {
        let mut out = self.out.lock();
        let mut text = String::new();
        if self.editor.is_some() {
            text.push_str("\r\x1b[K");
        }
        if line.notice && self.dim {
            text.push_str("\x1b[2m");
            text.push_str(&line.text);
            text.push_str("\x1b[0m\n");
        } else {
            text.push_str(&line.text);
            text.push('\n');
        }
        if let Some(editor) = &self.editor {
            text.push_str(&editor.draw(PROMPT, self.columns()));
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn notice(&mut self, text: impl AsRef<str>) {
        self.print(&Line::notice(text));
    }

    /// Draw the line being typed again.
    fn redraw(&mut self) {
        if let Some(editor) = &self.editor {
            let drawn = editor.draw(PROMPT, self.columns());
            let mut out = self.out.lock();
            let _ = out.write_all(drawn.as_bytes());
            let _ = out.flush();
        }
    }

    /// Leave the terminal's last row empty, at the end.
    fn done(&mut self) {
        if self.editor.is_some() {
            let mut out = self.out.lock();
            let _ = out.write_all(b"\r\x1b[K");
            let _ = out.flush();
        }
    }
}

/// One connection: its writing half, and its number (the reader thread of
/// an older one may still report; it is ignored).
struct Live {
    link: Arc<Mutex<Link>>,
    number: u64,
}

/// Everything the main thread owns.
struct Session<'a> {
    args: &'a Args,
    events: Sender<Event>,
    state: ChatState,
    screen: Screen,
    live: Option<Live>,
    connections: u64,
    /// We sent a Close (or end without one): the deadline for the end.
    closing: Option<Instant>,
    /// Reconnecting: when to try next.
    retry: Option<Instant>,
    /// What was typed while there was no connection, to send on the next.
    waiting: Vec<Message>,
    /// Attempts to reconnect since the server last said anything: a
    /// server that accepts and drops at once is given up on too.
    attempts: u32,
}

/// Run chat mode until the user quits or the connection ends for good.
pub(super) fn run(args: &Args) -> Result<(), String> {
    let tty = io::stdin().is_terminal() && io::stdout().is_terminal();
    // Connecting comes first, while Ctrl-C still simply ends the program.
    let opened = open(&args.url, &args.options)
        .map_err(|e| format!("cannot connect to {}: {e}", args.url))?;
    // Then, before any thread starts (so that every thread inherits the
    // mask and only the waiting thread below ever sees these signals),
    // SIGINT and SIGTERM are blocked.
    #[cfg(unix)]
    let signals = crate::sys::TerminationSignals::block();
    let (events, inbox) = crossbeam_channel::bounded::<Event>(256);
    let mut session = Session {
        args,
        events: events.clone(),
        state: ChatState::default(),
        screen: Screen {
            out: io::stdout(),
            dim: io::stdout().is_terminal(),
            editor: None,
        },
        live: None,
        connections: 0,
        closing: None,
        retry: None,
        attempts: 0,
        waiting: Vec::new(),
    };
    #[cfg(unix)]
    {
        let tx = events.clone();
        std::thread::Builder::new()
            .name("wschat-client-signals".into())
            .spawn(move || {
                while signals.wait().is_some() {
                    if tx.send(Event::Signal).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    }
    session.start(opened)?;

    // Raw mode lasts as long as this guard: it is restored when `run`
    // returns, and by a panic hook should anything panic.
    #[cfg(unix)]
    let _raw = if tty {
        match crate::sys::RawTerminal::enable(&io::stdin()) {
            Ok(guard) => {
                session.screen.editor = Some(Editor::new());
                Some(guard)
            }
            Err(e) => {
                session.screen.notice(format!(
                    "cannot put the terminal in raw mode ({e}): reading lines"
                ));
                None
            }
        }
    } else {
        None
    };
    let keys = session.screen.editor.is_some();
    if keys {
        session
            .screen
            .notice("type a message and Enter; /help lists the commands; Ctrl-C quits");
        session.screen.redraw();
    }
    spawn_input(events, keys)?;
    let result = session.main_loop(&inbox);
    session.screen.done();
    result
}

/// Standard input on its own thread: keys as they come on a terminal,
/// lines otherwise.
fn spawn_input(events: Sender<Event>, keys: bool) -> Result<(), String> {
    std::thread::Builder::new()
        .name("wschat-client-stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            let mut buf = [0u8; 256];
            loop {
                let event = if keys {
                    match stdin.read(&mut buf) {
                        Ok(0) => Event::InputEnd(None),
                        Ok(n) => Event::Keys(buf[..n].to_vec()),
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => Event::InputEnd(Some(e)),
                    }
                } else {
                    let mut line = Vec::new();
                    match stdin.read_until(b'\n', &mut line) {
                        Ok(0) => Event::InputEnd(None),
                        Ok(_) => Event::Line(line),
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => Event::InputEnd(Some(e)),
                    }
                };
                let last = matches!(event, Event::InputEnd(_));
                if events.send(event).is_err() || last {
                    break;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the input thread: {e}"))
}

impl Session<'_> {
    /// Open a connection to `url` and start its reader thread.
    fn connect(&mut self, url: &str) -> Result<(), String> {
        let opened = open(url, &self.args.options).map_err(|e| e.to_string())?;
        self.start(opened)
    }

    /// Start the reader thread of a connection just opened.
    fn start(&mut self, opened: Opened) -> Result<(), String> {
        let (stream, leftover, _protocol, conn) = opened;
        let deflate = conn.deflate().is_some();
        let reader = stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .and_then(|()| stream.try_clone())
            .map_err(|e| format!("cannot set up the socket: {e}"))?;
        let trace = |direction| {
            self.args
                .trace
                .then(|| Dissector::new(DissectOptions::new(direction).with_deflate(deflate)))
        };
        let link = Arc::new(Mutex::new(Link {
            stream,
            conn,
            trace: trace(Direction::ClientToServer),
        }));
        self.connections += 1;
        let number = self.connections;
        let events = self.events.clone();
        let reader_link = link.clone();
        let trace_in = trace(Direction::ServerToClient);
        std::thread::Builder::new()
            .name("wschat-client-reader".into())
            .spawn(move || {
                let mut sink = |message| {
                    let _ = events.send(Event::Message(number, message));
                };
                let end = read_loop(reader, &reader_link, &leftover, trace_in, &mut sink);
                let _ = events.send(Event::End(number, end));
            })
            .map_err(|e| format!("cannot start the reader thread: {e}"))?;
        self.live = Some(Live { link, number });
        Ok(())
    }

    fn main_loop(&mut self, inbox: &Receiver<Event>) -> Result<(), String> {
        loop {
            let deadline = match (self.closing, self.retry) {
                (Some(at), _) => Some(at),
                (None, Some(at)) => Some(at),
                (None, None) => None,
            };
            let event = match deadline {
                Some(at) => inbox.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let event = match event {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    if self.closing.is_some() {
                        self.shutdown();
                        return Err(format!(
                            "the server did not finish the close handshake within {} s",
                            (CLOSE_TIMEOUT * 2).as_secs()
                        ));
                    }
                    self.reconnect()?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the event channel closed".into());
                }
            };
            if let Some(done) = self.event(event) {
                return done;
            }
        }
    }

    /// Act on one event; `Some` when the client is done.
    fn event(&mut self, event: Event) -> Option<Result<(), String>> {
        match event {
            Event::Line(line) => {
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match std::str::from_utf8(line) {
                    Ok(line) => self.typed(line),
                    Err(_) => {
                        self.screen.notice(
                            "the line is not valid UTF-8, so it was not sent (/binary HEX sends bytes)",
                        );
                        None
                    }
                }
            }
            Event::Keys(bytes) => {
                let actions = match &mut self.screen.editor {
                    Some(editor) => editor.feed(&bytes),
                    None => return None,
                };
                let mut actions = actions.into_iter().peekable();
                while let Some(action) = actions.next() {
                    let done = match action {
                        // Enter comes next, which draws the line anyway.
                        Action::Redraw if matches!(actions.peek(), Some(Action::Submit(_))) => None,
                        Action::Redraw => {
                            self.screen.redraw();
                            None
                        }
                        Action::Submit(line) => {
                            self.screen.redraw();
                            self.typed(&line)
                        }
                        Action::Interrupt | Action::EndOfInput => self.quit(CloseCode::NORMAL, ""),
                    };
                    if done.is_some() {
                        return done;
                    }
                }
                None
            }
            Event::InputEnd(error) => {
                if let Some(e) = error {
                    self.screen
                        .notice(format!("cannot read standard input: {e}"));
                }
                self.quit(CloseCode::NORMAL, "")
            }
            Event::Signal => {
                if self.closing.is_some() {
                    // A second Ctrl-C: stop waiting for the server.
                    self.shutdown();
                    return Some(Ok(()));
                }
                self.quit(CloseCode::NORMAL, "")
            }
            Event::Message(number, message) => {
                if self.live.as_ref().is_some_and(|l| l.number == number) {
                    // The server is there: a later drop starts the
                    // count of attempts afresh.
                    self.attempts = 0;
                    self.incoming(message);
                }
                None
            }
            Event::End(number, end) => {
                if self.live.as_ref().is_none_or(|l| l.number != number) {
                    return None;
                }
                self.ended(end)
            }
        }
    }

    /// A line the user typed: a command or a chat message.
    fn typed(&mut self, line: &str) -> Option<Result<(), String>> {
        if line.trim().is_empty() {
            return None;
        }
        let text = if let Some(text) = line.strip_prefix("//") {
            format!("/{text}")
        } else if let Some(command) = line.strip_prefix('/') {
            return self.command(command);
        } else {
            line.to_string()
        };
        self.send_text(chat_command(&text));
        None
    }

    fn command(&mut self, command: &str) -> Option<Result<(), String>> {
        let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim();
        let object = |kind: &str| crate::json::Object::new().field("type", kind);
        match name {
            "name" | "nick" if !rest.is_empty() => {
                self.send_text(object("name").field("name", rest).finish())
            }
            "join" if !rest.is_empty() => {
                let room = rest.strip_prefix('#').unwrap_or(rest);
                self.send_text(object("join").field("room", room).finish())
            }
            "msg" => {
                let Some((to, text)) = split_name(rest) else {
                    self.screen
                        .notice("usage: /msg NAME TEXT (or /msg \"A NAME\" TEXT)");
                    return None;
                };
                match self.state.private_to(to, text) {
                    Some(command) => self.send_text(command),
                    None => {
                        let find = self.state.find_for_private(to, text);
                        self.send_text(find);
                    }
                }
            }
            "me" if !rest.is_empty() => self.send_text(chat_command(&format!("/me {rest}"))),
            "users" | "who" => self.send_text(object("users").finish()),
            "rooms" => self.send_text(object("rooms").finish()),
            "help" => {
                for line in CHAT_COMMANDS.lines() {
                    self.screen.print(&Line {
                        text: line.to_string(),
                        notice: true,
                    });
                }
            }
            "name" | "nick" | "join" | "me" => {
                let usage = match name {
                    "join" => "/join ROOM",
                    "me" => "/me ACTION",
                    _ => "/name NAME",
                };
                self.screen.notice(format!("usage: {usage}"));
            }
            _ => match command_message(command) {
                Ok(Command::Send(message)) => self.send(&message),
                Ok(Command::Close(code, reason)) => return self.quit(code, &reason),
                Ok(Command::Help) => {}
                Err(e) => self.screen.notice(e),
            },
        }
        None
    }

    fn send_text(&mut self, text: String) {
        self.send(&Message::Text(text));
    }

    fn send(&mut self, message: &Message) {
        let Some(live) = &self.live else {
            if self.waiting.len() < MAX_WAITING {
                self.waiting.push(message.clone());
                self.screen.notice("not connected: sent once reconnected");
            } else {
                self.screen.notice(format!(
                    "not connected, and {MAX_WAITING} messages wait already: not sent"
                ));
            }
            return;
        };
        let mut link = lock(&live.link);
        if let Err(e) = link.send(message) {
            let closing = link.conn.close_sent();
            drop(link);
            self.screen.notice(e);
            if !closing && self.closing.is_none() {
                // The socket broke under it: the reader is about to see
                // the end, and the message goes out on the next
                // connection.
                if let Some(live) = &self.live {
                    let _ = lock(&live.link).stream.shutdown(Shutdown::Both);
                }
                if self.waiting.len() < MAX_WAITING {
                    self.waiting.push(message.clone());
                }
            }
        }
    }

    /// Close with `code`, or end at once when there is no connection.
    fn quit(&mut self, code: CloseCode, reason: &str) -> Option<Result<(), String>> {
        let Some(live) = &self.live else {
            return Some(Ok(()));
        };
        if self.closing.is_none() {
            let mut link = lock(&live.link);
            if let Err(e) = link.close(code, reason) {
                drop(link);
                self.screen.notice(e);
                self.shutdown();
                return Some(Ok(()));
            }
            self.closing = Some(Instant::now() + CLOSE_TIMEOUT * 2);
        }
        None
    }

    fn shutdown(&mut self) {
        if let Some(live) = &self.live {
            let _ = lock(&live.link).stream.shutdown(Shutdown::Both);
        }
    }

    fn incoming(&mut self, message: Message) {
        match message {
            Message::Text(text) => {
                let (lines, replies) = self.state.render(&text);
                for line in &lines {
                    self.screen.print(line);
                }
                for Reply::Send(text) in replies {
                    self.send_text(text);
                }
            }
            Message::Binary(data) => {
                let shown = if data.len() <= 32 {
                    format!(" {}", spaced_hex(&data))
                } else {
                    String::new()
                };
                self.screen
                    .print(&Line::chat(format!("[binary {} bytes]{shown}", data.len())));
            }
            Message::Ping(_) => {}
            Message::Pong(payload) => self
                .screen
                .notice(format!("pong {}", text_or_hex(&payload))),
            Message::Close(frame) => self.screen.notice(close_text(frame.as_ref())),
        }
    }

    /// The connection ended: done, or reconnect.
    fn ended(&mut self, end: End) -> Option<Result<(), String>> {
        let link = self.live.take().map(|l| l.link);
        if self.closing.is_some() || !reconnectable(&end) {
            return Some(match (&end, &link) {
                (_, Some(link)) => finish(Some(end), link),
                (_, None) => Ok(()),
            });
        }
        if let Some(link) = &link {
            let _ = lock(link).stream.shutdown(Shutdown::Both);
        }
        let why = match &end {
            End::Eof => "the server closed the TCP connection".to_string(),
            End::Io(e) => e.to_string(),
            End::Closed { frame, .. } => close_text(frame.as_ref()),
            End::Failed(e) => e.to_string(),
        };
        if self.attempts >= RECONNECT_ATTEMPTS {
            return Some(Err(format!(
                "gave up reconnecting after {} attempts (last: {why})",
                self.attempts
            )));
        }
        let wait = backoff(self.attempts);
        self.screen.notice(format!(
            "connection lost ({why}); reconnecting in {:.1} s",
            wait.as_secs_f64()
        ));
        self.retry = Some(Instant::now() + wait);
        None
    }

    /// One attempt to reconnect, as the same user, from the last message
    /// seen.
    fn reconnect(&mut self) -> Result<(), String> {
        if self.retry.is_none() {
            return Ok(());
        }
        self.attempts += 1;
        let url = resume_url(
            &self.args.url,
            self.state.session.as_deref(),
            self.state.last_id,
        );
        match self.connect(&url) {
            Ok(()) => {
                self.retry = None;
                let since = self
                    .state
                    .last_id
                    .map(|id| format!(" after message {id}"))
                    .unwrap_or_default();
                self.screen
                    .notice(format!("reconnected; what was missed{since} follows"));
                for message in std::mem::take(&mut self.waiting) {
                    self.send(&message);
                }
                Ok(())
            }
            Err(e) => {
                if self.attempts >= RECONNECT_ATTEMPTS {
                    return Err(format!(
                        "gave up reconnecting after {} attempts (last: {e})",
                        self.attempts
                    ));
                }
                let wait = backoff(self.attempts);
                self.screen.notice(format!(
                    "cannot reconnect ({e}); next try in {:.1} s",
                    wait.as_secs_f64()
                ));
                self.retry = Some(Instant::now() + wait);
                Ok(())
            }
        }
    }
}

/// The wait before attempt `attempt + 1`: 0.5 s, doubling, at most 10 s.
///
/// ```
/// use std::time::Duration;
/// use wschat::cli::chat::backoff;
/// assert_eq!(backoff(0), Duration::from_millis(500));
/// assert_eq!(backoff(3), Duration::from_secs(4));
/// assert_eq!(backoff(9), Duration::from_secs(10));
/// ```
pub fn backoff(attempt: u32) -> Duration {
    RECONNECT_FIRST
        .saturating_mul(1u32 << attempt.min(16))
        .min(RECONNECT_MAX)
}

/// Whether a connection that ended so is worth opening again: it dropped,
/// or the server went away or was overloaded. A refusal (4001, 4003), a
/// normal close and a broken rule are final.
fn reconnectable(end: &End) -> bool {
    match end {
        End::Eof | End::Io(_) => true,
        End::Closed {
            frame,
            we_started: false,
        } => frame
            .as_ref()
            .is_some_and(|f| matches!(f.code.0, 1001 | 1006 | 1011 | 1012 | 1013 | 1014)),
        _ => false,
    }
}

fn close_text(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("close {}", f.code.0),
        Some(f) => format!("close {} {}", f.code.0, super::render::clean(&f.reason)),
        None => "close (no status code)".into(),
    }
}

/// `NAME TEXT` or `"A NAME" TEXT`: the name and the text, both non-empty.
///
/// ```
/// use wschat::cli::chat::split_name;
/// assert_eq!(split_name("bob hi there"), Some(("bob", "hi there")));
/// assert_eq!(split_name("\"小 明\"  你好"), Some(("小 明", "你好")));
/// assert_eq!(split_name("bob"), None);
/// assert_eq!(split_name("\"bob hi"), None);
/// ```
pub fn split_name(rest: &str) -> Option<(&str, &str)> {
    let (name, text) = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"')?,
        None => rest.split_once(' ')?,
    };
    let text = text.trim();
    (!name.is_empty() && !text.is_empty()).then_some((name, text))
}

/// `{"type":"chat","text":…}`: sent as a command, so that a line that
/// happens to look like JSON is still chat.
fn chat_command(text: &str) -> String {
    crate::json::Object::new()
        .field("type", "chat")
        .field("text", text)
        .finish()
}

/// `url` with `session` and `since` for reconnecting: earlier values of
/// both are replaced, and with a session `name` and `room` are dropped
/// (the session keeps the name and room the user has now).
///
/// ```
/// use wschat::cli::chat::resume_url;
/// assert_eq!(
///     resume_url("ws://h:1/?name=ann&room=a&x=1", Some("t0k"), Some(42)),
///     "ws://h:1/?x=1&session=t0k&since=42"
/// );
/// assert_eq!(resume_url("ws://h/chat?token=J", None, Some(7)), "ws://h/chat?token=J&since=7");
/// assert_eq!(resume_url("ws://h/", None, None), "ws://h/");
/// ```
pub fn resume_url(url: &str, session: Option<&str>, since: Option<u64>) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("");
            match key {
                "session" | "since" => false,
                "name" | "room" => session.is_none(),
                _ => true,
            }
        })
        .map(str::to_string)
        .collect();
    if let Some(session) = session {
        params.push(format!("session={}", percent_encode(session)));
    }
    if let Some(since) = since {
        params.push(format!("since={since}"));
    }
    if params.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
