//! A peer server in wschat's own shape, on tungstenite's codec: a std::net
//! listener, one thread per connection that does the handshake and reads,
//! and one broadcaster thread fed by a crossbeam channel that writes every
//! broadcast, encoded once, to every client of `/`.
//!
//! * `/echo`: every text and binary message goes back unchanged (the
//!   connection thread reads and writes).
//! * `/`: every text message from any client goes, as it is, to every
//!   client connected to `/` (the sender included).
//!
//! The broadcaster writes each frame with a non-blocking send; what the
//! kernel refuses is kept in a bounded per-client backlog, retried on the
//! next broadcast or after 1 ms, and a client whose backlog passes 1 MiB is
//! dropped (the shape DESIGN.md measured). The connection thread only reads;
//! it hands pongs and the closing handshake to the broadcaster so that one
//! writer owns each socket and frames never interleave.
//!
//! Usage: tungstenite-peer [PORT]   (listens on 127.0.0.1, default 3000)

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use tungstenite::handshake::server::{Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::{Bytes, Message};

const STACK_SIZE: usize = 128 * 1024;
const MAX_BACKLOG: usize = 1 << 20;

enum Event {
    Join(u64, Arc<TcpStream>),
    Leave(u64),
    /// A text to send to everyone on `/`.
    Broadcast(Bytes),
    /// Bytes for one client only (tungstenite's pongs and close replies).
    Control(u64, Box<[u8]>),
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("PORT"))
        .unwrap_or(3000);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("broadcaster".into())
        .spawn(move || broadcaster(rx))?;
    let mut next_id = 0u64;
    let mut accept_failed = false;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                if !accept_failed {
                    eprintln!("tungstenite-peer: accept: {e} (said once)");
                    accept_failed = true;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || connection(id, stream, tx));
        if let Err(e) = spawned {
            eprintln!("tungstenite-peer: cannot start a thread: {e}");
        }
    }
    Ok(())
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

fn encode(opcode: OpCode, payload: Bytes) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    Frame::message(payload, opcode, true)
        .format(&mut out)
        .expect("format into a Vec");
    out
}

/// The connection thread's side of a socket: reads come from the socket;
/// writes go to the socket until the client joins `/`, then to the
/// broadcaster (tungstenite's automatic pongs and close replies), so that a
/// single thread writes to each joined socket. The socket is shared with
/// the broadcaster through an `Arc` rather than a `dup`ed descriptor, so a
/// connection costs one file descriptor, as in wschat.
struct Conn {
    stream: Arc<TcpStream>,
    route: Option<(u64, Sender<Event>)>,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.stream).read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.route {
            None => (&*self.stream).write(buf),
            Some((id, tx)) => {
                tx.send(Event::Control(*id, buf.into()))
                    .map_err(|_| io::Error::from(ErrorKind::BrokenPipe))?;
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.route {
            None => (&*self.stream).flush(),
            Some(_) => Ok(()),
        }
    }
}

fn connection(id: u64, stream: TcpStream, tx: Sender<Event>) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    // The error type is tungstenite's (an HTTP response), not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let conn = Conn {
        stream: Arc::new(stream),
        route: None,
    };
    let Ok(mut ws) = tungstenite::accept_hdr_with_config(conn, callback, Some(config())) else {
        return;
    };
    if path == "/echo" {
        loop {
            match ws.read() {
                Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                    if ws.send(msg).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        return;
    }
    // `/`: from here on the broadcaster writes; this thread only reads.
    let writer = Arc::clone(&ws.get_ref().stream);
    if tx.send(Event::Join(id, writer)).is_err() {
        return;
    }
    ws.get_mut().route = Some((id, tx.clone()));
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                if tx.send(Event::Broadcast(text.into())).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Event::Leave(id));
}

struct Client {
    stream: Arc<TcpStream>,
    backlog: Vec<u8>,
}

impl Client {
    /// Write `bytes` after the backlog; false when the client must go.
    fn send(&mut self, bytes: &[u8]) -> bool {
        if !self.flush() {
            return false;
        }
        if !self.backlog.is_empty() {
            self.backlog.extend_from_slice(bytes);
            return self.backlog.len() <= MAX_BACKLOG;
        }
        match write_some(&self.stream, bytes) {
            Ok(n) => {
                self.backlog.extend_from_slice(&bytes[n..]);
                true
            }
            Err(_) => false,
        }
    }

    /// Write what the backlog holds; false when the client must go.
    fn flush(&mut self) -> bool {
        if self.backlog.is_empty() {
            return true;
        }
        match write_some(&self.stream, &self.backlog) {
            Ok(n) => {
                self.backlog.drain(..n);
                if self.backlog.capacity() > 64 * 1024 && self.backlog.is_empty() {
                    self.backlog = Vec::new();
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Write as much as the kernel takes now. The socket itself stays blocking
/// (the connection thread reads it with blocking reads, and the flag is
/// shared with the connection thread): each send is non-blocking.
fn write_some(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<usize> {
    let total = bytes.len();
    let fd = stream.as_raw_fd();
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid slice and `fd` an open socket.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            ErrorKind::WouldBlock => break,
            ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
    Ok(total - bytes.len())
}

fn broadcaster(rx: Receiver<Event>) {
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut backlogged = false;
    loop {
        let event = if backlogged {
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(event) => Some(event),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(_) => return,
            }
        } else {
            match rx.recv() {
                Ok(event) => Some(event),
                Err(_) => return,
            }
        };
        let mut gone = Vec::new();
        match event {
            Some(Event::Join(id, stream)) => {
                clients.insert(
                    id,
                    Client {
                        stream,
                        backlog: Vec::new(),
                    },
                );
            }
            Some(Event::Leave(id)) => {
                if let Some(client) = clients.remove(&id) {
                    let _ = client.stream.shutdown(Shutdown::Both);
                }
            }
            Some(Event::Broadcast(text)) => {
                // Encoded once; the same bytes go to every client.
                let frame = encode(OpCode::Data(Data::Text), text);
                for (&id, client) in clients.iter_mut() {
                    if !client.send(&frame) {
                        gone.push(id);
                    }
                }
            }
            Some(Event::Control(id, frame)) => {
                if let Some(client) = clients.get_mut(&id)
                    && !client.send(&frame)
                {
                    gone.push(id);
                }
            }
            None => {
                for (&id, client) in clients.iter_mut() {
                    if !client.flush() {
                        gone.push(id);
                    }
                }
            }
        }
        for id in gone {
            if let Some(client) = clients.remove(&id) {
                let _ = client.stream.shutdown(Shutdown::Both);
            }
        }
        backlogged = clients.values().any(|c| !c.backlog.is_empty());
    }
}
