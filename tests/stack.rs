//! A quiet connection thread keeps only a few pages of its stack resident.
//!
//! Thousands of idle connections are thousands of parked threads, so what
//! each keeps of its stack is most of the server's memory per connection
//! (docs/performance.md, "idle"). The handshake and the handling of
//! messages go deeper than a parked reader; those pages are given back
//! (`sys::trim_stack`) after the handshake and whenever a reader's read
//! times out after activity. What stays is the frames that are live while
//! the thread waits in `read`: the thread's start, `handle_connection` and
//! the endpoint's read loop. A frame that grows there (a large function
//! inlined into one of them, say) costs a page per connection, silently:
//! this test reads, for each connection thread, the resident size of the
//! memory mapping its stack pointer is in.
//!
//! In a file of its own: it finds the connection threads by their
//! scheduling policy (`SCHED_BATCH`), so no other server may run beside it.

#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::ChatClient;
use wschat::ws::Message;

/// The stack pointer of thread `tid` while it waits in a system call
/// (`/proc/self/task/TID/syscall`: number, six arguments, stack pointer,
/// program counter), or None while it runs.
fn parked_stack_pointer(tid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 9 {
        return None; // "running", or "-1 sp pc" between system calls
    }
    u64::from_str_radix(fields[7].trim_start_matches("0x"), 16).ok()
}

/// The resident bytes of the mapping of this process that holds `address`.
fn resident_bytes_of_mapping_at(address: u64) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            inside = (start..end).contains(&address);
        } else if inside && let Some(rest) = line.strip_prefix("Rss:") {
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().unwrap();
            return kib * 1024;
        }
    }
    panic!("no mapping holds {address:#x}");
}

/// Stack pages a connection thread may keep once it has exchanged a
/// message and gone quiet: two in an optimised build (glibc's thread control
/// block and TLS take most of the first, the frames of the read loop end in
/// the second); three in an unoptimised build, whose frames are larger.
/// `.ci/run` runs this test both ways.
const MAX_STACK_PAGES: u64 = if cfg!(debug_assertions) { 3 } else { 2 };

/// The resident stack bytes of each connection thread parked in a system
/// call; empty unless both connection threads are parked.
fn parked_stacks() -> Vec<u64> {
    let threads = common::sched_batch_threads();
    let parked: Vec<u64> = threads
        .iter()
        .filter_map(|&tid| parked_stack_pointer(tid))
        .map(resident_bytes_of_mapping_at)
        .collect();
    if threads.len() == 2 && parked.len() == 2 {
        parked
    } else {
        Vec::new()
    }
}

#[test]
fn quiet_connection_threads_keep_few_stack_pages() {
    // A short ping interval: the chat's reader wakes every 100 ms and
    // /echo's every 300 ms, and a reader that wakes after messages gives
    // back the pages they touched.
    let mut config = common::config();
    config.ping_interval = Duration::from_millis(300);
    let server = common::start(config);
    // Each connection has been through a message both ways, so the frames
    // of decoding and answering have come and gone after the handshake.
    let mut chat = ChatClient::join(&server, Some("stack"));
    chat.say("hello");
    let mut echo = wschat::client::connect(&common::ws_url(&server, "/echo")).expect("connect");
    echo.get_ref()
        .set_read_timeout(Some(common::READ_TIMEOUT))
        .unwrap();
    echo.send(Message::Text("hi".into())).unwrap();
    assert_eq!(echo.read_message().unwrap(), Message::Text("hi".into()));

    let limit = MAX_STACK_PAGES * 4096;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = parked_stacks();
    while last.is_empty() || last.iter().any(|&resident| resident > limit) {
        assert!(
            Instant::now() < deadline,
            "quiet connection threads keep {last:?} bytes of their stacks (at most \
             {MAX_STACK_PAGES} pages each expected): every idle connection pays for it"
        );
        std::thread::sleep(Duration::from_millis(20));
        last = parked_stacks();
    }
}
