//! What the server allocates for a connection on its way to an idle
//! `/echo`, counted over real sockets on 127.0.0.1.
//!
//! Why it matters: a connection's thread parks in `read` for as long as the
//! connection is idle, and glibc keeps what that thread freed cached for it
//! all that time. Every allocation on the way in is memory per idle
//! connection (docs/performance.md, "Idle connections after the handshake's
//! diet": 27 allocations were 0.8 KiB of each one). The handshake was put
//! on a diet; this test keeps it there.
//!
//! The count: a global allocator that counts the allocations made by the
//! threads named `wschat-listener`, which are the listener and, since a
//! Linux thread is born with its creator's name, every connection thread
//! it starts. glibc's own allocations (`pthread_create`'s, say) do not go
//! through it and are not counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{start_default, tcp};

/// Counts the allocations of the threads named `wschat-listener`.
struct Counting;

static COUNTED: AtomicUsize = AtomicUsize::new(0);

/// Whether the calling thread is the listener or one of its connection
/// threads. Reads the name with `prctl`, which does not allocate.
fn on_a_server_thread() -> bool {
    const NAME: &[u8] = b"wschat-listener";
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into the
    // buffer given, which has 16.
    let rc = unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    rc == 0 && name.starts_with(NAME) && name[NAME.len()] == 0
}

// SAFETY: every call is handed to the system allocator unchanged; counting
// touches only an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_a_server_thread() {
            COUNTED.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_a_server_thread() {
            COUNTED.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What a browser sends, give or take its cookies: enough headers that a
/// string per header would show.
const REQUEST: &[u8] = b"GET /echo HTTP/1.1\r\n\
Host: 127.0.0.1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: zh-CN,zh;q=0.9,en;q=0.8\r\n\
Cache-Control: no-cache\r\n\
Pragma: no-cache\r\n\
Origin: http://127.0.0.1\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A masked, empty Ping (RFC 6455 §5.5.2) and the Pong that answers it.
const PING: [u8; 6] = [0x89, 0x80, 1, 2, 3, 4];
const PONG: [u8; 2] = [0x8a, 0x00];

/// Open a connection to `/echo` and see it through its handshake and one
/// Ping, so that its thread has gone all the way to the frame loop. The
/// client side allocates nothing on the server's threads.
fn open_echo(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = tcp(addr);
    stream.write_all(REQUEST).unwrap();
    let mut head = [0u8; 1024];
    let mut got = 0;
    while !head[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut head[got..]).expect("the 101");
        assert!(n > 0, "the server closed before its 101");
        got += n;
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&head[..got])
    );
    stream.write_all(&PING).unwrap();
    let mut pong = [0u8; 2];
    stream.read_exact(&mut pong).expect("the pong");
    assert_eq!(pong, PONG);
    stream
}

#[test]
fn an_idle_echo_connection_costs_a_few_allocations() {
    let server = start_default();
    let addr = server.addr();
    // Whatever is done once (lazy statics, the first log line) is not the
    // connection's.
    let first = open_echo(addr);
    const CONNECTIONS: usize = 40;
    let before = COUNTED.load(Ordering::Relaxed);
    let held: Vec<TcpStream> = (0..CONNECTIONS).map(|_| open_echo(addr)).collect();
    let per_connection = (COUNTED.load(Ordering::Relaxed) - before) as f64 / CONNECTIONS as f64;
    eprintln!("{per_connection:.2} allocations per idle /echo connection");
    // Six today: the thread's start arguments, the request's two buffers
    // and the parser's header array, the client's address kept for the
    // log, and the Pong. The accept key and the 101 are written on the
    // stack, and the path in the log is the route's own string. Before the
    // diet this request made 38 (a string per header and more).
    assert!(
        per_connection <= 6.0,
        "{per_connection:.1} allocations per idle /echo connection (at most 6)"
    );
    assert!(
        per_connection >= 1.0,
        "nothing was counted: is the listener thread still named wschat-listener?"
    );
    drop(held);
    drop(first);
}
