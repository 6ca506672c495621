//! The memory budget, over real sockets, with the server as a child
//! process whose RSS is read from /proc: what users' input fills (room
//! histories, edited versions, the desk's conversations, sessions) stays within
//! `--memory-budget`, and what memory let go is still served from the log.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wschat::WebSocket;
use wschat::ws::Message;

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;

use common::ChildServer as Server;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wschat-memory-{name}-{}-{}",
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

/// The child's resident set, in bytes.
fn rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn connect(addr: &str, query: &str) -> WebSocket<TcpStream> {
    let mut ws = wschat::client::connect(&format!("ws://{addr}{query}")).expect("connect");
    ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    ws
}

fn until(ws: &mut WebSocket<TcpStream>, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Message::Text(t) = ws.read_message().expect("read") {
            let v: Value = serde_json::from_str(&t).expect("JSON");
            if want(&v) {
                return v;
            }
        }
    }
    panic!("timed out");
}

/// A `/metrics` line's value: `name` may carry its labels.
fn metric(addr: &str, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// The figures a test asserts on, printed for whoever reads the log.
fn report(what: &str, before: u64, after: u64, addr: &str, kind: &str) {
    eprintln!(
        "{what}: RSS {:.1} -> {:.1} MiB; kept {kind} {:.1} MiB; evictions {}",
        before as f64 / MIB as f64,
        after as f64 / MIB as f64,
        metric(addr, &format!("wschat_memory_bytes{{kept=\"{kind}\"}}")) as f64 / MIB as f64,
        metric(
            addr,
            &format!("wschat_memory_evictions_total{{kept=\"{kind}\"}}")
        ),
    );
}

#[test]
fn room_histories_stay_within_the_budget_and_are_still_served_whole() {
    const ROOMS: usize = 300;
    const PER_ROOM: usize = 2000;
    let budget = 32 * MIB;
    let dir = temp_dir("rooms");
    let server = start(&dir, &["--memory-budget", "32M"]);
    let mut ws = connect(&server.addr, "/?name=filler");
    until(&mut ws, |v| v["type"] == "history");
    let before = rss(&server);

    // One client fills 300 rooms with 2,000 messages each, reading its
    // own echoes every 200 messages so that its outbox stays small.
    let mut writer = ws;
    let text = "x".repeat(60);
    for room in 0..ROOMS {
        writer
            .send(Message::Text(format!(
                r#"{{"type":"join","room":"r{room}"}}"#
            )))
            .unwrap();
        until(&mut writer, |v| v["type"] == "history");
        for n in 0..PER_ROOM {
            writer
                .send(Message::Text(format!("{room}/{n} {text}")))
                .unwrap();
            if n % 200 == 199 {
                // Read the echoes so far: the outbox stays small.
                let want = format!("{room}/{n} {text}");
                until(&mut writer, |v| v["type"] == "chat" && v["text"] == want);
            }
        }
    }
    let after = rss(&server);
    report(
        "300 rooms x 2,000",
        before,
        after,
        &server.addr,
        "histories",
    );
    assert!(
        metric(
            &server.addr,
            "wschat_memory_evictions_total{kept=\"histories\"}"
        ) > 0
    );
    assert!(
        metric(&server.addr, "wschat_memory_bytes{kept=\"histories\"}") <= budget,
        "the accounted bytes stay within the budget"
    );
    // The connection's own cost (its thread, buffers) is well under 4 MiB;
    // the rest of the growth must be what the budget allows.
    assert!(
        after.saturating_sub(before) <= budget + 4 * MIB,
        "RSS grew by {} MiB",
        (after - before) / MIB
    );

    // The first room's whole history, paged back from the newest, in order.
    writer
        .send(Message::Text(r#"{"type":"join","room":"r0"}"#.into()))
        .unwrap();
    until(&mut writer, |v| {
        v["type"] == "history" && v.get("before").is_none()
    });
    let mut texts = Vec::new();
    let mut before_id: Option<u64> = None;
    loop {
        let b = before_id.map_or("null".to_string(), |b| b.to_string());
        writer
            .send(Message::Text(format!(
                r#"{{"type":"history","room":"r0","before":{b},"limit":100}}"#
            )))
            .unwrap();
        let page = until(&mut writer, |v| {
            v["type"] == "history" && v.get("before").is_some()
        });
        assert_eq!(page["complete"], true, "nothing is gone from the log");
        let messages = page["messages"].as_array().unwrap();
        if messages.is_empty() {
            break;
        }
        for m in messages.iter().rev() {
            texts.push(m["text"].as_str().unwrap().to_string());
        }
        before_id = messages[0]["id"].as_u64();
    }
    texts.reverse();
    let expected: Vec<String> = (0..PER_ROOM).map(|n| format!("0/{n} {text}")).collect();
    assert_eq!(texts, expected, "room r0's history, whole and in order");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn many_sessions_stay_within_their_share_and_recent_ones_are_kept() {
    let dir = temp_dir("sessions");
    // 4,000 sessions are about 700 KiB: past a 256 KiB budget.
    let budget = 256 * 1024;
    let server = start(&dir, &["--memory-budget", "256K"]);
    let mut last = String::new();
    let mut churn = |from: usize, to: usize| {
        for i in from..to {
            let mut ws = connect(&server.addr, &format!("/?name=u{i}"));
            let welcome = until(&mut ws, |v| v["type"] == "welcome");
            last = welcome["session"].as_str().unwrap().to_string();
            let _ = ws.close(wschat::ws::CloseCode::NORMAL, "");
        }
        // The connections are gone before RSS is read: what is left is kept.
        let deadline = Instant::now() + WAIT;
        while metric(&server.addr, "wschat_websockets_open") > 0 {
            assert!(Instant::now() < deadline, "connections did not close");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // A first thousand fills the budget and warms what connection threads
    // leave behind in malloc's per-thread arenas; what the next 3,000 add
    // is then what is kept of them.
    churn(0, 1000);
    let before = rss(&server);
    churn(1000, 4000);
    let after = rss(&server);
    report("4,000 sessions", before, after, &server.addr, "sessions");
    let kept = metric(&server.addr, "wschat_memory_bytes{kept=\"sessions\"}");
    assert!(
        kept <= budget,
        "sessions keep {kept} bytes, budget {budget}"
    );
    assert!(
        metric(
            &server.addr,
            "wschat_memory_evictions_total{kept=\"sessions\"}"
        ) > 0
    );
    // The most recent session is still known: the same user comes back.
    let mut ws = connect(&server.addr, &format!("/?session={last}"));
    let welcome = until(&mut ws, |v| v["type"] == "welcome");
    assert_eq!(welcome["session"], last.as_str());
    assert!(
        after.saturating_sub(before) <= budget + 4 * MIB,
        "RSS grew by {} KiB",
        (after - before) / 1024
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resolved_desk_conversations_stay_within_the_desks_share() {
    let dir = temp_dir("desk");
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["agent", "add", "alice", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("wschat agent add");
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a token")
        .trim()
        .to_string();
    // 100 conversations of 20 KiB of text each: twice a 1 MiB budget.
    let budget = MIB;
    let server = start(&dir, &["--memory-budget", "1M"]);
    let mut agent = connect(&server.addr, "/agent");
    agent
        .send(Message::Text(format!(
            r#"{{"type":"auth","token":"{token}"}}"#
        )))
        .unwrap();
    until(&mut agent, |v| v["type"] == "ready");
    let before = rss(&server);
    let text = "y".repeat(1000);
    for i in 0..100 {
        let mut visitor = connect(&server.addr, &format!("/support?name=v{i}"));
        until(&mut visitor, |v| v["type"] == "welcome");
        for n in 0..20 {
            visitor
                .send(Message::Text(format!("{i}/{n} {text}")))
                .unwrap();
        }
        // The visitor sees its own messages once they are stored.
        let last = format!("{i}/19 {text}");
        until(&mut visitor, |v| {
            v["type"] == "desk_message" && v["text"] == last
        });
        let assigned = until(&mut agent, |v| v["type"] == "assigned");
        let cid = assigned["conversation"].as_u64().unwrap();
        agent
            .send(Message::Text(format!(
                r#"{{"type":"resolve","conversation":{cid}}}"#
            )))
            .unwrap();
        until(&mut visitor, |v| v["type"] == "resolved");
    }
    let after = rss(&server);
    report(
        "100 resolved conversations",
        before,
        after,
        &server.addr,
        "desk",
    );
    let kept = metric(&server.addr, "wschat_memory_bytes{kept=\"desk\"}");
    assert!(
        kept <= budget,
        "the desk keeps {kept} bytes, budget {budget}"
    );
    assert!(metric(&server.addr, "wschat_memory_evictions_total{kept=\"desk\"}") > 0);
    assert!(after.saturating_sub(before) <= budget + 4 * MIB);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Room `room`'s whole history, paged back from the newest with `history`
/// commands: every message, oldest first.
fn whole_history(ws: &mut WebSocket<TcpStream>, room: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before_id: Option<u64> = None;
    loop {
        let b = before_id.map_or("null".to_string(), |b| b.to_string());
        ws.send(Message::Text(format!(
            r#"{{"type":"history","room":"{room}","before":{b},"limit":100}}"#
        )))
        .unwrap();
        let page = until(ws, |v| v["type"] == "history" && v.get("before").is_some());
        assert_eq!(page["complete"], true, "nothing is gone from the log");
        let messages = page["messages"].as_array().unwrap().clone();
        if messages.is_empty() {
            break;
        }
        before_id = messages[0]["id"].as_u64();
        all.splice(0..0, messages);
    }
    all
}

#[test]
fn edits_and_reactions_stay_within_the_budget_and_history_serves_the_latest() {
    const MESSAGES: usize = 200;
    const ROUNDS: usize = 2;
    let budget = 512 * 1024;
    let dir = temp_dir("edits");
    let server = start(&dir, &["--memory-budget", "512K"]);
    let mut ws = connect(&server.addr, "/?name=editor");
    until(&mut ws, |v| v["type"] == "history");
    ws.send(Message::Text(r#"{"type":"join","room":"e"}"#.into()))
        .unwrap();
    until(&mut ws, |v| v["type"] == "history" && v["room"] == "e");
    let mut ids = Vec::new();
    for n in 0..MESSAGES {
        ws.send(Message::Text(format!("m{n}"))).unwrap();
        let want = format!("m{n}");
        let echo = until(&mut ws, |v| v["type"] == "chat" && v["text"] == want);
        ids.push(echo["id"].as_u64().unwrap());
    }
    // One is retracted before the edits push it out of memory.
    let retracted = ids[5];
    ws.send(Message::Text(format!(
        r#"{{"type":"retract","id":{retracted}}}"#
    )))
    .unwrap();
    until(&mut ws, |v| v["type"] == "deleted" && v["id"] == retracted);
    // Every other message edited again and again with long texts, then
    // reacted to: the latest versions alone are more than 512 KiB.
    let long = "y".repeat(3000);
    let text = |round: usize, n: usize| format!("edit{round}-{n} {long}");
    for round in 0..ROUNDS {
        for (n, &id) in ids.iter().enumerate().filter(|&(_, &id)| id != retracted) {
            let edit = serde_json::json!({"type":"edit","id":id,"text":text(round, n)});
            ws.send(Message::Text(edit.to_string())).unwrap();
            until(&mut ws, |v| v["type"] == "edited" && v["id"] == id);
        }
    }
    for &id in ids.iter().filter(|&&id| id != retracted) {
        ws.send(Message::Text(format!(
            r#"{{"type":"react","id":{id},"emoji":"👍"}}"#
        )))
        .unwrap();
        until(&mut ws, |v| v["type"] == "reactions" && v["id"] == id);
    }
    // The retracted one cannot be edited back.
    ws.send(Message::Text(format!(
        r#"{{"type":"edit","id":{retracted},"text":"back"}}"#
    )))
    .unwrap();
    until(&mut ws, |v| v["type"] == "error");
    eprintln!(
        "{MESSAGES} messages x {ROUNDS} edits + reactions: kept histories {} bytes, evictions {}",
        metric(&server.addr, "wschat_memory_bytes{kept=\"histories\"}"),
        metric(
            &server.addr,
            "wschat_memory_evictions_total{kept=\"histories\"}"
        )
    );
    assert!(
        metric(
            &server.addr,
            "wschat_memory_evictions_total{kept=\"histories\"}"
        ) > 0
    );
    assert!(
        metric(&server.addr, "wschat_memory_bytes{kept=\"histories\"}") <= budget,
        "the accounted bytes stay within the budget"
    );
    let check = |ws: &mut WebSocket<TcpStream>| {
        let history = whole_history(ws, "e");
        let want: Vec<u64> = ids.iter().copied().filter(|&id| id != retracted).collect();
        let got: Vec<u64> = history.iter().filter_map(|m| m["id"].as_u64()).collect();
        assert_eq!(got, want, "every message but the retracted one, in order");
        for m in &history {
            let n = ids.iter().position(|&id| m["id"] == id).unwrap();
            assert_eq!(m["text"], text(ROUNDS - 1, n), "the latest version");
            assert!(m["edited"].as_u64().is_some(), "{m}");
            assert_eq!(
                m["reactions"]["👍"].as_array().map(Vec::len),
                Some(1),
                "{m}"
            );
        }
        assert!(
            !history
                .iter()
                .any(|m| m["text"] == "m5" || m["text"] == "back")
        );
    };
    check(&mut ws);
    drop(ws);
    drop(server);

    // After a restart: rebuilt from the log within the budget, the same.
    let server = start(&dir, &["--memory-budget", "512K"]);
    let mut ws = connect(&server.addr, "/?name=reader");
    until(&mut ws, |v| v["type"] == "history");
    assert!(metric(&server.addr, "wschat_memory_bytes{kept=\"histories\"}") <= budget);
    check(&mut ws);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_markers_count_in_the_sessions_share() {
    const ROOMS: usize = 500;
    let dir = temp_dir("markers");
    let server = start(&dir, &["--memory-budget", "32M"]);
    let mut ws = connect(&server.addr, "/?name=reader");
    until(&mut ws, |v| v["type"] == "history");
    ws.send(Message::Text("hello".into())).unwrap();
    let hello = until(&mut ws, |v| v["type"] == "chat" && v["text"] == "hello");
    let upto = hello["id"].as_u64().unwrap();
    let before = metric(&server.addr, "wschat_memory_bytes{kept=\"sessions\"}");
    let name = |n: usize| format!("room-{n:04}-{}", "r".repeat(14));
    for n in 0..ROOMS {
        ws.send(Message::Text(format!(
            r#"{{"type":"read","room":"{}","upto":{upto}}}"#,
            name(n)
        )))
        .unwrap();
    }
    // The hub handles one connection's commands in order: a later echo
    // means every marker was counted.
    ws.send(Message::Text("done".into())).unwrap();
    until(&mut ws, |v| v["type"] == "chat" && v["text"] == "done");
    let after = metric(&server.addr, "wschat_memory_bytes{kept=\"sessions\"}");
    eprintln!("{ROOMS} room read markers: sessions {before} -> {after} bytes");
    assert!(
        after >= before + (ROOMS * name(0).len()) as u64,
        "the markers' room names are counted: {before} -> {after}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
