//! `wschat client URL`: an interactive terminal client, in the manner of
//! wscat and websocat.
//!
//! Each line typed is sent as a text message; incoming text goes to
//! standard output as it is, binary as hex, and notices (pings, pongs, the
//! close, errors, `--trace` frames) go to standard error, so that the output
//! can be piped. Lines that start with `/` are commands (`/help`).
//!
//! Two threads share the socket. A reader thread blocks on a clone of the
//! `TcpStream` and feeds what it reads to the sans-I/O
//! [`crate::ws::Connection`]; the main thread turns stdin lines into
//! messages. Both encode and write under one mutex (the `Link`), so the
//! pongs and Close replies the connection queues (RFC 6455 §5.5.2, §5.5.1)
//! never interleave with a frame the main thread is writing.

use std::io::{self, BufRead, ErrorKind, IsTerminal, Read, Write};
use std::net::Shutdown;

use super::wire::Wire;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, select};

use super::{EXIT_USAGE, parse_hex};
use crate::client::{Options, WsUrl};
use crate::conn::Error;
use crate::dissect::{Direction, Dissector, Options as DissectOptions};
use crate::ws::frame::MAX_CONTROL_PAYLOAD;
use crate::ws::{CloseCode, CloseFrame, Connection, Message, ProtocolError};

/// How long to wait for the server's answer to our Close, and then for it
/// to close the TCP connection (§7.1.1: the server closes it first).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may block before the connection is given up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `wschat client --help`.
pub const USAGE: &str = "wschat client: an interactive WebSocket client

Usage:
  wschat client [OPTIONS] ws://HOST[:PORT][/PATH]
  wschat client [OPTIONS] wss://HOST[:PORT][/PATH]

Options:
  --chat                    chat mode, whatever the path
  --raw                     raw mode, even on the chat's paths
  --protocol NAME           offer a subprotocol (repeat for more)
  --header 'Name: value'    add a request header (repeat for more)
  --deflate on|off          offer permessage-deflate, RFC 7692 (default: on in
                            chat mode, off in raw mode)
  --trace                   print every frame in (<) and out (>) on stderr
  --ca FILE                 for wss://, trust the PEM certificates in FILE too
                            (a private CA); the system's store is always trusted
  -h, --help                print this help

Chat mode (the default on / and /chat; see docs/client.md) shows the chat
as lines: 'HH:MM name: text' in local time, your own marked (you), private
messages as 'HH:MM [private] from → to: text', and notices (joins, leaves,
renames, errors) after '* ', dimmed on a terminal. A line typed is a chat
message. On a terminal the line being typed stays below what arrives;
Ctrl-C and Ctrl-D close with 1000. If the connection drops, the client
reconnects (0.5 s, doubling to 10 s, 12 attempts) as the same user, and
shows what it missed, once; a refusal (4001, 4003) is final. Its own
commands are /name NAME, /join ROOM, /msg NAME TEXT, /me ACTION, /users
and /rooms (its /help explains them), besides those below.

Raw mode (any other path, or --raw) sends each line read as a text
message and prints incoming text as it is, binary as hex; pings, pongs and
the close are noted on stderr.

Commands:
  /ping [TEXT]              send a ping
  /close [CODE [REASON]]    start the close handshake (default 1000)
  /binary HEX               send a binary message
  /quit                     close with 1000 and exit (as end of input and Ctrl-C do)
  //TEXT                    send a line that starts with /
  /help                     list the commands

Exit status: 0 after a normal close, 1 on an error, 2 on a usage error.
";

/// The parsed command line.
#[derive(Debug)]
pub(super) struct Args {
    pub(super) url: String,
    pub(super) options: Options,
    pub(super) trace: bool,
    /// `--chat` (`Some(true)`) or `--raw` (`Some(false)`); by default chat
    /// mode on `/` and `/chat`.
    pub(super) chat: Option<bool>,
}

impl Args {
    /// Whether to run in chat mode: asked for, or the URL's path is the
    /// chat's (`/` or `/chat`).
    pub(super) fn chat_mode(&self) -> bool {
        self.chat.unwrap_or_else(|| {
            WsUrl::parse(&self.url).is_ok_and(|u| {
                let path = u.target.split('?').next().unwrap_or("");
                matches!(path, "/" | "/chat")
            })
        })
    }
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut url = None;
    let mut options = Options::default();
    let mut trace = false;
    let mut chat = None;
    let mut deflate = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--trace" => trace = true,
            "--ca" => {
                let file = args.next().ok_or("--ca needs a file")?;
                options.ca_file = Some(file.into());
            }
            "--deflate" => {
                deflate = Some(match args.next().map(String::as_str) {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err("--deflate needs on or off".into()),
                });
            }
            "--chat" => chat = Some(true),
            "--raw" => chat = Some(false),
            "--protocol" => {
                let name = args.next().ok_or("--protocol needs a name")?;
                options.protocols.push(name.clone());
            }
            "--header" => {
                let header = args.next().ok_or("--header needs 'Name: value'")?;
                let (name, value) = header
                    .split_once(':')
                    .ok_or_else(|| format!("--header {header:?} is not 'Name: value'"))?;
                let name = name.trim();
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(format!("--header {header:?} has no usable name"));
                }
                options
                    .headers
                    .push((name.to_string(), value.trim().to_string()));
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other if url.is_none() => url = Some(other.to_string()),
            other => return Err(format!("one URL only (got {other:?} too)")),
        }
    }
    let url = url.ok_or("no URL given")?;
    let mut args = Args {
        url,
        options,
        trace,
        chat,
    };
    // permessage-deflate: on in chat mode, where history pages and long
    // messages shrink; off in raw mode, unless asked (docs/client.md).
    args.options.deflate = deflate.unwrap_or_else(|| args.chat_mode());
    Ok(Some(args))
}

/// Run `wschat client` with `args`, the arguments after `client`.
pub fn main(args: &[String]) -> ExitCode {
    let args = match parse_args(args) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wschat client: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = WsUrl::parse(&args.url) {
        eprintln!("wschat client: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let result = if args.chat_mode() {
        super::chat::run(&args)
    } else {
        run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat client: {e}");
            ExitCode::from(1)
        }
    }
}

/// The writing half of the connection, shared by both threads: the
/// sans-I/O connection (which encodes and masks) and the socket it writes.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) stream: Wire,
    pub(super) conn: Connection,
    /// Dissects what goes out, for `--trace`.
    pub(super) trace: Option<Dissector>,
}

impl Link {
    /// Write whatever the connection has queued.
    fn flush(&mut self) -> io::Result<()> {
        if !self.conn.has_output() {
            return Ok(());
        }
        let out = self.conn.take_output();
        if let Some(dissector) = &mut self.trace {
            for frame in dissector.feed(&out) {
                eprintln!("> {}", frame.one_line());
            }
        }
        self.stream.write_all(&out)?;
        self.stream.flush()
    }

    /// Queue `message` and write it.
    pub(super) fn send(&mut self, message: &Message) -> Result<(), String> {
        self.conn
            .send(message)
            .map_err(|_| "the connection is closing: nothing more may be sent".to_string())?;
        self.flush().map_err(|e| format!("cannot write: {e}"))
    }

    /// Start the close handshake and write the Close.
    pub(super) fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), String> {
        if self.conn.close_sent() {
            return Ok(());
        }
        self.conn.close(code, reason);
        self.flush().map_err(|e| format!("cannot write: {e}"))
    }
}

pub(super) fn lock(link: &Mutex<Link>) -> MutexGuard<'_, Link> {
    link.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the connection ended, as the reader thread saw it.
#[derive(Debug)]
pub(super) enum End {
    /// The server's Close arrived; `we_started` when ours went first.
    Closed {
        frame: Option<CloseFrame>,
        we_started: bool,
    },
    /// The server broke a rule; a Close with its code was sent.
    Failed(ProtocolError),
    /// The TCP connection ended without a Close frame.
    Eof,
    /// Reading or writing failed.
    Io(io::Error),
}

/// Connect, then run the two loops until the connection ends.
fn run(args: &Args) -> Result<(), String> {
    let (stream, leftover, protocol, conn) = open(&args.url, &args.options)
        .map_err(|e| format!("cannot connect to {}: {e}", args.url))?;
    let deflate = conn.deflate().is_some();
    let compressed = if deflate { ", permessage-deflate" } else { "" };
    match &protocol {
        Some(p) => eprintln!("* connected to {} (subprotocol {p}{compressed})", args.url),
        None if deflate => eprintln!("* connected to {} (permessage-deflate)", args.url),
        None => eprintln!("* connected to {}", args.url),
    }
    let interactive = io::stdin().is_terminal();
    if interactive {
        eprintln!("* type a line to send it; /help lists the commands");
    }
    let dissector = |direction| {
        args.trace
            .then(|| Dissector::new(DissectOptions::new(direction).with_deflate(deflate)))
    };
    let setup = |stream: &Wire| -> io::Result<Wire> {
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.try_clone()
    };
    let reader = setup(&stream).map_err(|e| format!("cannot set up the socket: {e}"))?;
    // Before any other thread starts, so that all of them inherit the mask.
    #[cfg(unix)]
    let signals = crate::sys::TerminationSignals::block();
    let link = Arc::new(Mutex::new(Link {
        stream,
        conn,
        trace: dissector(Direction::ClientToServer),
    }));
    // Ctrl-C (SIGINT) and SIGTERM close with 1000, as end of input does;
    // the reader then sees the answer and the main loop ends.
    #[cfg(unix)]
    {
        let link = link.clone();
        std::thread::Builder::new()
            .name("wschat-client-signals".into())
            .spawn(move || {
                while signals.wait().is_some() {
                    let mut link = lock(&link);
                    if link.conn.close_sent() {
                        // A second one: stop waiting for the server.
                        let _ = link.stream.shutdown(Shutdown::Both);
                    } else if let Err(e) = link.close(CloseCode::NORMAL, "") {
                        eprintln!("* {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    }

    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let trace_in = dissector(Direction::ServerToClient);
    let reader_link = link.clone();
    std::thread::Builder::new()
        .name("wschat-client-reader".into())
        .spawn(move || {
            let end = read_loop(reader, &reader_link, &leftover, trace_in, &mut show);
            let _ = done_tx.send(end);
        })
        .map_err(|e| format!("cannot start the reader thread: {e}"))?;

    // Lines come from their own thread, so that the main thread can also
    // notice the connection ending while nobody types.
    let (lines_tx, lines_rx) = crossbeam_channel::bounded::<io::Result<Vec<u8>>>(64);
    std::thread::Builder::new()
        .name("wschat-client-stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut stdin = stdin.lock();
            loop {
                let mut line = Vec::new();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if lines_tx.send(Ok(line)).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = lines_tx.send(Err(e));
                        break;
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the input thread: {e}"))?;

    loop {
        select! {
            recv(lines_rx) -> line => match line {
                Ok(Ok(line)) => match handle_line(&line, &link) {
                    Step::Continue => {}
                    Step::Closing => break,
                },
                Ok(Err(e)) => {
                    eprintln!("* cannot read standard input: {e}");
                    let _ = lock(&link).close(CloseCode::NORMAL, "");
                    break;
                }
                // End of input: close normally and wait for the answer.
                Err(_) => {
                    if let Err(e) = lock(&link).close(CloseCode::NORMAL, "") {
                        eprintln!("* {e}");
                    }
                    break;
                }
            },
            recv(done_rx) -> end => return finish(end.ok(), &link),
        }
    }
    match done_rx.recv_timeout(CLOSE_TIMEOUT * 2) {
        Ok(end) => finish(Some(end), &link),
        Err(RecvTimeoutError::Timeout) => {
            let _ = lock(&link).stream.shutdown(Shutdown::Both);
            Err(format!(
                "the server did not finish the close handshake within {} s",
                (CLOSE_TIMEOUT * 2).as_secs()
            ))
        }
        Err(RecvTimeoutError::Disconnected) => finish(None, &link),
    }
}

/// Report how the connection ended and turn it into the exit status.
pub(super) fn finish(end: Option<End>, link: &Mutex<Link>) -> Result<(), String> {
    let _ = lock(link).stream.shutdown(Shutdown::Both);
    match end {
        Some(End::Closed {
            we_started: true, ..
        }) => Ok(()),
        Some(End::Closed {
            frame,
            we_started: false,
        }) => match frame {
            None => Ok(()),
            Some(f) if matches!(f.code, CloseCode::NORMAL | CloseCode::GOING_AWAY) => Ok(()),
            Some(f) => Err(format!("the server closed the connection with {}", f.code)),
        },
        Some(End::Failed(e)) => Err(format!(
            "the server broke RFC 6455 §{}: {e} (closed with {})",
            e.rfc_section(),
            e.close_code()
        )),
        Some(End::Eof) => Err("the server closed the TCP connection without a Close frame".into()),
        Some(End::Io(e)) => Err(format!("connection error: {e}")),
        None => Err("the reader thread stopped".into()),
    }
}

/// What the main loop does after a line.
enum Step {
    Continue,
    /// A Close went out (or cannot): wait for the reader to end.
    Closing,
}

/// Act on one line of input: a command, or text to send.
fn handle_line(line: &[u8], link: &Mutex<Link>) -> Step {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        eprintln!("* the line is not valid UTF-8, so it was not sent (/binary HEX sends bytes)");
        return Step::Continue;
    };
    let message = if let Some(text) = line.strip_prefix("//") {
        Message::Text(format!("/{text}"))
    } else if let Some(command) = line.strip_prefix('/') {
        match command_message(command) {
            Ok(Command::Send(message)) => message,
            Ok(Command::Close(code, reason)) => {
                if let Err(e) = lock(link).close(code, &reason) {
                    eprintln!("* {e}");
                }
                return Step::Closing;
            }
            Ok(Command::Help) => {
                let commands = USAGE.split("Commands:\n").nth(1).unwrap_or_default();
                let commands = commands.split("\nExit").next().unwrap_or_default();
                eprint!("{commands}");
                return Step::Continue;
            }
            Err(e) => {
                eprintln!("* {e}");
                return Step::Continue;
            }
        }
    } else {
        Message::Text(line.to_string())
    };
    let mut link = lock(link);
    match link.send(&message) {
        Ok(()) => Step::Continue,
        Err(e) => {
            eprintln!("* {e}");
            if !link.conn.close_sent() {
                // The socket is broken: end it, and let the reader report.
                let _ = link.stream.shutdown(Shutdown::Both);
            }
            Step::Closing
        }
    }
}

/// A slash command, parsed.
pub(super) enum Command {
    Send(Message),
    Close(CloseCode, String),
    Help,
}

pub(super) fn command_message(command: &str) -> Result<Command, String> {
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    match name {
        "ping" => {
            if rest.len() > MAX_CONTROL_PAYLOAD {
                return Err(format!(
                    "a ping carries at most {MAX_CONTROL_PAYLOAD} bytes (RFC 6455 §5.5)"
                ));
            }
            Ok(Command::Send(Message::Ping(rest.as_bytes().to_vec())))
        }
        "binary" => Ok(Command::Send(Message::Binary(parse_hex(rest)?))),
        "close" => {
            let rest = rest.trim_start();
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = if code.is_empty() {
                CloseCode::NORMAL
            } else {
                let n: u16 = code
                    .parse()
                    .map_err(|_| format!("{code:?} is not a close code (1000-4999)"))?;
                CloseCode(n)
            };
            if !code.is_allowed_on_wire() {
                eprintln!(
                    "* {} may not be sent (RFC 6455 §7.4): sending a Close without a code",
                    code.0
                );
            }
            if reason.len() > crate::ws::close::MAX_REASON_BYTES {
                eprintln!(
                    "* the reason is cut to {} bytes (RFC 6455 §5.5)",
                    crate::ws::close::MAX_REASON_BYTES
                );
            }
            Ok(Command::Close(code, reason.to_string()))
        }
        "quit" | "exit" => Ok(Command::Close(CloseCode::NORMAL, String::new())),
        "help" => Ok(Command::Help),
        other => Err(format!(
            "unknown command /{other} (/help lists them; //text sends a line that starts with /)"
        )),
    }
}

/// The reader thread: read, decode, answer (under the link's lock), and
/// hand each message to `sink` (which prints it, in the raw mode).
pub(super) fn read_loop(
    mut stream: Wire,
    link: &Mutex<Link>,
    leftover: &[u8],
    mut trace: Option<Dissector>,
    sink: &mut dyn FnMut(Message),
) -> End {
    if !leftover.is_empty()
        && let Some(end) = process(leftover, link, &mut trace, &mut stream, sink)
    {
        return end;
    }
    let mut buf = vec![0u8; crate::conn::READ_CHUNK];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return End::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return End::Io(e),
        };
        if let Some(end) = process(&buf[..n], link, &mut trace, &mut stream, sink) {
            return end;
        }
    }
}

/// Handle bytes from the server; `Some` when the connection is over.
fn process(
    bytes: &[u8],
    link: &Mutex<Link>,
    trace: &mut Option<Dissector>,
    stream: &mut Wire,
    sink: &mut dyn FnMut(Message),
) -> Option<End> {
    if let Some(dissector) = trace {
        for frame in dissector.feed(bytes) {
            eprintln!("< {}", frame.one_line());
        }
    }
    let mut messages = Vec::new();
    let mut failure = None;
    let (we_started, write) = {
        let mut link = lock(link);
        let we_started = link.conn.close_sent();
        let mut input = bytes;
        while !input.is_empty() {
            match link.conn.receive(&mut input) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Pongs, the answering Close, or the failing Close.
        (we_started, link.flush())
    };
    let mut close = None;
    for message in messages {
        if let Message::Close(frame) = &message {
            close = Some(frame.clone());
        }
        sink(message);
    }
    if let Some(e) = failure {
        return Some(End::Failed(e));
    }
    if let Err(e) = write {
        return Some(End::Io(e));
    }
    if let Some(frame) = close {
        drain(stream);
        return Some(End::Closed { frame, we_started });
    }
    None
}

/// After the close handshake, wait (bounded) for the server to close TCP.
fn drain(stream: &mut Wire) {
    if stream.set_read_timeout(Some(CLOSE_TIMEOUT)).is_err() {
        return;
    }
    let mut scratch = [0u8; 1024];
    while let Ok(n) = stream.read(&mut scratch) {
        if n == 0 {
            break;
        }
    }
}

/// Print one incoming message.
fn show(message: Message) {
    match message {
        Message::Text(text) => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        Message::Binary(data) => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "[binary {} bytes] {}", data.len(), spaced_hex(&data));
            let _ = out.flush();
        }
        Message::Ping(payload) => eprintln!("* ping {} (answered)", text_or_hex(&payload)),
        Message::Pong(payload) => eprintln!("* pong {}", text_or_hex(&payload)),
        Message::Close(frame) => show_close(frame.as_ref()),
    }
}

pub(super) fn show_close(frame: Option<&CloseFrame>) {
    match frame {
        Some(f) if f.reason.is_empty() => eprintln!("* close {}", f.code),
        Some(f) => eprintln!("* close {} {:?}", f.code, f.reason),
        None => eprintln!("* close (no status code)"),
    }
}

/// A control payload for a notice: quoted text, or hex.
pub(super) fn text_or_hex(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("0x{}", crate::dissect::hex(payload)),
    }
}

pub(super) fn spaced_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Connect with [`crate::client::connect_tls`] (TLS for `wss://`, then the
/// opening handshake of RFC 6455 §4.1), then take the socket apart: this
/// client reads and writes the socket from two threads, so it wants the
/// stream as a [`Wire`] and the bytes read past the handshake.
/// The connection comes back too: it speaks permessage-deflate when that
/// was negotiated (`--deflate`).
pub(super) fn open(
    url: &str,
    options: &Options,
) -> Result<(Wire, Vec<u8>, Option<String>, Connection), Error> {
    let (ws, chosen) = crate::client::connect_tls(url, options)?;
    let (stream, connection, leftover) = ws.into_parts();
    Ok((Wire::new(stream)?, leftover, chosen, connection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert!(matches!(
            command_message("ping hi"),
            Ok(Command::Send(Message::Ping(p))) if p == b"hi"
        ));
        assert!(matches!(
            command_message("binary 01 02"),
            Ok(Command::Send(Message::Binary(b))) if b == [1, 2]
        ));
        assert!(matches!(
            command_message("close 4000 bye now"),
            Ok(Command::Close(CloseCode(4000), r)) if r == "bye now"
        ));
        assert!(matches!(
            command_message("close"),
            Ok(Command::Close(CloseCode::NORMAL, r)) if r.is_empty()
        ));
        assert!(command_message("close abc").is_err());
        assert!(command_message("ping ".repeat(40).trim_end()).is_err());
        assert!(command_message("nope").is_err());
    }

    #[test]
    fn arguments_parse() {
        let args: Vec<String> = [
            "ws://h/x",
            "--protocol",
            "chat",
            "--header",
            "Origin: http://a",
            "--trace",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = parse_args(&args).unwrap().unwrap();
        assert_eq!(parsed.url, "ws://h/x");
        assert_eq!(parsed.options.protocols, ["chat"]);
        assert_eq!(
            parsed.options.headers,
            [("Origin".to_string(), "http://a".to_string())]
        );
        assert!(parsed.trace);
        assert!(parse_args(&["--header".into(), "nocolon".into()]).is_err());
        let mode = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            parse_args(&args).unwrap().unwrap().chat_mode()
        };
        assert!(mode(&["ws://h:1"]));
        assert!(mode(&["ws://h:1/?name=a"]));
        assert!(mode(&["ws://h:1/chat?name=a"]));
        assert!(!mode(&["ws://h:1/echo"]));
        assert!(!mode(&["ws://h:1/support"]));
        assert!(!mode(&["--raw", "ws://h:1/"]));
        assert!(mode(&["--chat", "ws://h:1/echo"]));
        assert!(mode(&["wss://h/?name=a"]));
        assert!(parse_args(&[]).is_err());
        let ca: Vec<String> = ["--ca", "ca.pem", "wss://h/"].map(String::from).to_vec();
        let parsed = parse_args(&ca).unwrap().unwrap();
        assert_eq!(
            parsed.options.ca_file.as_deref(),
            Some(std::path::Path::new("ca.pem"))
        );
        assert!(parse_args(&["--ca".to_string()]).is_err());
        // permessage-deflate: on in chat mode, off in raw mode, unless told.
        let deflate = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            parse_args(&args).unwrap().unwrap().options.deflate
        };
        assert!(deflate(&["ws://h:1/"]));
        assert!(!deflate(&["ws://h:1/echo"]));
        assert!(deflate(&["--deflate", "on", "ws://h:1/echo"]));
        assert!(!deflate(&["ws://h:1/", "--deflate", "off"]));
        assert!(parse_args(&["--deflate".into(), "maybe".into()]).is_err());
    }
}
