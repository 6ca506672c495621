//! Storage faults, over real sockets, with the server as a child process:
//! a write that fails (a file-size limit, RLIMIT_FSIZE, standing in for a
//! full disk) confirms and delivers nothing, tells the sender
//! `unavailable`, turns `/healthz` to 503, leaves the log readable, and
//! loses nothing that was confirmed before, during or after the fault;
//! retention never makes ids repeat or a gap look complete.
#![cfg(target_os = "linux")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use wschat::WebSocket;
use wschat::ws::Message;

const WAIT: Duration = Duration::from_secs(20);

use common::ChildServer as Server;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wschat-faults-{name}-{}-{}",
        std::process::id(),
        wschat::random::random_u64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec![std::ffi::OsStr::new("--data-dir"), dir.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    common::spawn_serve(args, WAIT)
}

/// Set the soft file-size limit of process `pid` (the hard one stays
/// unlimited, so it can be lifted again).
fn set_fsize_limit(pid: u32, bytes: Option<u64>) {
    let limit = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `limit` and writes nothing (old is null).
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn connect(addr: &str, query: &str) -> WebSocket<TcpStream> {
    let mut ws = wschat::client::connect(&format!("ws://{addr}/{query}")).expect("connect");
    ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    ws
}

fn next_json(ws: &mut WebSocket<TcpStream>) -> Value {
    loop {
        match ws.read_message().expect("read") {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            _ => continue,
        }
    }
}

fn until(ws: &mut WebSocket<TcpStream>, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let v = next_json(ws);
        if want(&v) {
            return v;
        }
    }
    panic!("timed out");
}

/// `GET path` → (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(addr: &str, name: &str) -> u64 {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// The newest segment of the log in `dir`, and its size.
fn newest_segment(dir: &Path) -> (PathBuf, u64) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .collect();
    segments.sort();
    let path = segments.pop().expect("a segment");
    let len = std::fs::metadata(&path).unwrap().len();
    (path, len)
}

/// Every chat message stored for `room`, by paging back with `before`.
fn all_history(ws: &mut WebSocket<TcpStream>, room: &str) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    let mut before: Option<u64> = None;
    loop {
        let b = before.map_or("null".to_string(), |b| b.to_string());
        let cmd = format!(r#"{{"type":"history","room":"{room}","before":{b},"limit":100}}"#);
        ws.send(Message::Text(cmd)).unwrap();
        let page = until(ws, |v| v["type"] == "history" && v.get("before").is_some());
        let messages = page["messages"].as_array().unwrap().clone();
        if messages.is_empty() {
            return out;
        }
        for m in &messages {
            let id = m["id"].as_u64().unwrap();
            let old = out.insert(id, m["text"].as_str().unwrap().to_string());
            assert!(old.is_none(), "id {id} twice in history");
        }
        before = messages.first().and_then(|m| m["id"].as_u64());
    }
}

/// What the sender learnt of one message: confirmed with this id, or
/// refused with `unavailable`.
enum Outcome {
    Confirmed(u64),
    Refused,
}

fn send(ws: &mut WebSocket<TcpStream>, text: &str) -> Outcome {
    ws.send(Message::Text(text.to_string())).unwrap();
    let v = until(ws, |v| {
        (v["type"] == "chat" && v["text"] == text) || v["type"] == "error"
    });
    match v["type"].as_str() {
        Some("chat") => Outcome::Confirmed(v["id"].as_u64().unwrap()),
        _ => {
            assert_eq!(v["code"], "unavailable", "{v}");
            Outcome::Refused
        }
    }
}

#[test]
fn a_failing_disk_confirms_nothing_loses_nothing_and_repeats_no_id() {
    let dir = temp_dir("fsize");
    let server = start(&dir, &[]);
    let addr = server.addr.clone();
    let pid = server.child.id();

    // A receiver records every chat message it is sent, on its own thread.
    let mut receiver = connect(&addr, "?name=receiver");
    until(&mut receiver, |v| v["type"] == "history");
    let (tx, rx) = std::sync::mpsc::channel::<(u64, String)>();
    let reader = std::thread::spawn(move || {
        while let Ok(Message::Text(t)) = receiver.read_message() {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "chat" {
                let _ = tx.send((v["id"].as_u64().unwrap(), v["text"].to_string()));
            }
            if v["type"] == "chat" && v["text"] == "last" {
                break;
            }
        }
    });
    let mut sender = connect(&addr, "?name=sender");
    until(&mut sender, |v| v["type"] == "history");
    let mut visitor = connect(&addr, "support");
    until(&mut visitor, |v| v["type"] == "welcome");

    let mut confirmed = BTreeMap::new();
    let mut refused = BTreeSet::new();
    let mut say = |ws: &mut WebSocket<TcpStream>, text: String| match send(ws, &text) {
        Outcome::Confirmed(id) => {
            assert!(confirmed.insert(id, text).is_none(), "id {id} repeated");
            true
        }
        Outcome::Refused => {
            refused.insert(text);
            false
        }
    };
    for n in 0..20 {
        assert!(say(&mut sender, format!("before {n}")));
    }
    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".to_string()));

    // The disk "fills": the segment may grow by 40 more bytes, less than
    // any record, so each write is cut short and must be cut back.
    let (segment, len) = newest_segment(&dir);
    set_fsize_limit(pid, Some(len + 40));
    for n in 0..20 {
        assert!(
            !say(&mut sender, format!("during {n}")),
            "a message was confirmed while writes fail"
        );
    }
    visitor
        .send(Message::Text("a visitor's question".into()))
        .unwrap();
    let v = until(&mut visitor, |v| v["type"] == "error");
    assert_eq!(
        v["code"], "unavailable",
        "the desk refuses as the chat does"
    );
    let (status, body) = http_get(&addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("writing the log failed"), "{body}");
    assert!(metric(&addr, "wschat_store_write_errors_total") >= 20);
    assert_eq!(metric(&addr, "wschat_store_healthy"), 0);
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        len,
        "a failed write leaves the log as it was"
    );

    // The disk comes back: the store notices by itself.
    set_fsize_limit(pid, None);
    eventually("/healthz to be ok again", || {
        http_get(&addr, "/healthz").0 == 200
    });
    assert_eq!(metric(&addr, "wschat_store_healthy"), 1);
    for n in 0..20 {
        assert!(say(&mut sender, format!("after {n}")));
    }
    assert!(say(&mut sender, "last".to_string()));
    reader.join().unwrap();
    let received: Vec<(u64, String)> = rx.try_iter().collect();
    for (_, text) in &received {
        let text: String = serde_json::from_str(text).unwrap();
        assert!(
            !refused.contains(&text),
            "{text:?} was refused but delivered"
        );
    }
    assert_eq!(
        received.len(),
        confirmed.len(),
        "every confirmed message arrived"
    );
    drop(server);

    // After a restart, everything confirmed is there, and ids go on.
    let server = start(&dir, &[]);
    let mut ws = connect(&server.addr, "?name=later");
    until(&mut ws, |v| v["type"] == "history");
    let stored = all_history(&mut ws, "lobby");
    for (id, text) in &confirmed {
        assert_eq!(stored.get(id), Some(text), "confirmed message {id} lost");
    }
    assert!(
        stored.values().all(|t| !refused.contains(t)),
        "a refused message came back"
    );
    let max = *confirmed.keys().last().unwrap();
    match send(&mut ws, "after the restart") {
        Outcome::Confirmed(id) => assert!(id > max, "id {id} after {max}"),
        Outcome::Refused => panic!("refused after the restart"),
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Age every segment file of `dir` but the `keep` newest by `days`.
fn age_segments(dir: &Path, days: u64, keep: usize) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .collect();
    segments.sort();
    segments.truncate(segments.len().saturating_sub(keep));
    let old = SystemTime::now() - Duration::from_secs(days * 86_400);
    for path in segments {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(old).unwrap();
    }
}

#[test]
fn a_resume_across_segments_retention_deleted_is_not_complete() {
    let dir = temp_dir("retention-gap");
    let small = ["--segment-bytes", "2000", "--retain-days", "30"];
    let mut ids = Vec::new();
    {
        let server = start(&dir, &small);
        let mut ws = connect(&server.addr, "?name=writer");
        until(&mut ws, |v| v["type"] == "history");
        for n in 0..60 {
            match send(&mut ws, &format!("message {n}")) {
                Outcome::Confirmed(id) => ids.push(id),
                Outcome::Refused => panic!("refused"),
            }
        }
    }
    // The older half of the segments is past retention.
    let count = std::fs::read_dir(&dir).unwrap().count();
    assert!(count > 4, "segments rotate at 2000 bytes");
    age_segments(&dir, 40, 2);
    let server = start(&dir, &small);
    let mut ws = connect(&server.addr, &format!("?name=back&since={}", ids[0]));
    let resume = until(&mut ws, |v| v["type"] == "resume");
    assert_eq!(resume["complete"], false, "{resume}");
    let first = resume["first"].as_u64().unwrap();
    assert!(first > ids[0], "{resume}");
    let got: Vec<u64> = resume["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(got.iter().all(|&id| id >= first));
    // A resume from a point retention kept is complete.
    assert!(matches!(send(&mut ws, "fresh"), Outcome::Confirmed(_)));
    let last = ids[ids.len() - 1];
    let mut ws = connect(&server.addr, &format!("?name=near&since={last}"));
    let resume = until(&mut ws, |v| v["type"] == "resume");
    assert_eq!(resume["complete"], true, "{resume}");
    assert_eq!(resume["messages"].as_array().unwrap().len(), 1, "{resume}");
    // So does a history page that reaches below what is left.
    ws.send(Message::Text(r#"{"type":"history","limit":100}"#.into()))
        .unwrap();
    let page = until(&mut ws, |v| {
        v["type"] == "history" && v.get("before").is_some()
    });
    assert_eq!(page["complete"], false, "{page}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ids_stay_above_every_id_given_out_when_retention_deletes_every_segment() {
    let dir = temp_dir("retention-ids");
    let small = ["--segment-bytes", "2000", "--retain-days", "30"];
    let mut max = 0;
    std::fs::create_dir_all(&dir).unwrap();
    for round in 0..3 {
        // Everything on disk is past retention before each start.
        age_segments(&dir, 40, 0);
        let server = start(&dir, &small);
        let mut ws = connect(&server.addr, &format!("?name=w{round}"));
        until(&mut ws, |v| v["type"] == "history");
        for n in 0..30 {
            match send(&mut ws, &format!("round {round} message {n}")) {
                Outcome::Confirmed(id) => {
                    assert!(id > max, "id {id} given out again (max {max})");
                    max = id;
                }
                Outcome::Refused => panic!("refused"),
            }
        }
        drop(server);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `POST path` with an API key and a JSON body → (status, body).
fn api_post(addr: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn an_api_publish_the_log_refuses_is_answered_503_and_reaches_nobody() {
    let dir = temp_dir("api");
    let server = start(&dir, &["--api-key", "k"]);
    let (addr, pid) = (server.addr.clone(), server.child.id());
    let mut member = connect(&addr, "?name=member");
    until(&mut member, |v| v["type"] == "history");
    let publish = |text: &str| {
        api_post(
            &addr,
            "/api/publish",
            "k",
            &format!(r#"{{"room":"lobby","text":"{text}"}}"#),
        )
    };
    let (status, body) = publish("before");
    assert_eq!(status, 200, "{body}");
    until(&mut member, |v| {
        v["type"] == "chat" && v["text"] == "before"
    });

    let (_, len) = newest_segment(&dir);
    set_fsize_limit(pid, Some(len + 40));
    let (status, body) = publish("during");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"unavailable\""), "{body}");
    let (status, body) = api_post(
        &addr,
        "/api/private",
        "k",
        r#"{"sub":"someone","text":"during"}"#,
    );
    assert_eq!(status, 503, "{body}");

    set_fsize_limit(pid, None);
    eventually("writes succeed again", || publish("after").0 == 200);
    // The member sees "after" and never "during".
    let v = until(&mut member, |v| {
        v["type"] == "chat" && v["text"] != "before"
    });
    assert_eq!(v["text"], "after", "a refused message was delivered: {v}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
