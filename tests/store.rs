//! Durable history and resume, over real sockets: a SIGKILL loses nothing
//! anyone saw, a client that reconnects with its last id misses nothing
//! and gets nothing twice, and recovery copes with damaged logs.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wschat::WebSocket;
use wschat::config::Config;
use wschat::server::Server;
use wschat::ws::Message;

const WAIT: Duration = Duration::from_secs(20);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wschat-test-{name}-{}-{}",
        std::process::id(),
        wschat::random::random_u64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn connect(addr: &str, query: &str) -> WebSocket<TcpStream> {
    let mut ws = wschat::client::connect(&format!("ws://{addr}/{query}")).expect("connect");
    ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    ws
}

/// Read JSON messages until one satisfies `want`; the others are returned
/// too, in order.
fn read_until(ws: &mut WebSocket<TcpStream>, want: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match ws.read_message() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                let done = want(&v);
                seen.push(v);
                if done {
                    return seen;
                }
            }
            Ok(_) => {}
            Err(e) => panic!(
                "read failed: {e}; seen {} messages, last {:?}",
                seen.len(),
                seen.last()
            ),
        }
    }
    panic!("timed out; seen {} messages", seen.len());
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == kind
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(dir: &Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        // A small memory window, so that deep history pages come from disk.
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate-limit",
            "0",
            "--history-keep",
            "500",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "wschat=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wschat");
    common::wait_until_serving(&format!("127.0.0.1:{port}"), &mut child, WAIT);
    child
}

/// Every chat message stored for `room`, paging back with `before`.
fn all_history(ws: &mut WebSocket<TcpStream>, room: &str) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    let mut before: Option<u64> = None;
    loop {
        let cmd = match before {
            Some(b) => format!(r#"{{"type":"history","room":"{room}","before":{b},"limit":100}}"#),
            None => format!(r#"{{"type":"history","room":"{room}","limit":100}}"#),
        };
        ws.send(Message::Text(cmd)).unwrap();
        let page = read_until(ws, |v| v["type"] == "history" && v.get("before").is_some());
        let messages = page.last().unwrap()["messages"].as_array().unwrap().clone();
        if messages.is_empty() {
            return out;
        }
        for m in &messages {
            out.insert(
                m["id"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            );
        }
        before = messages.first().and_then(|m| m["id"].as_u64());
    }
}

#[test]
fn a_sigkill_loses_nothing_anyone_received_and_ids_continue() {
    let dir = temp_dir("crash");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn_server(&dir, port);

    // Two receivers record every chat message they get.
    let (tx, rx) = mpsc::channel::<(u64, String)>();
    let mut receivers = Vec::new();
    for i in 0..2 {
        let tx = tx.clone();
        let mut ws = connect(&addr, &format!("?name=r{i}"));
        read_until(&mut ws, is("history"));
        receivers.push(std::thread::spawn(move || {
            while let Ok(Message::Text(t)) = ws.read_message() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "chat" {
                    let _ = tx.send((
                        v["id"].as_u64().unwrap(),
                        v["text"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }));
    }
    drop(tx);
    // A sender keeps talking, without waiting, while the server is killed.
    let sender_addr = addr.clone();
    let sender = std::thread::spawn(move || {
        let mut ws = connect(&sender_addr, "?name=sender");
        for n in 0..5_000 {
            if ws.send(Message::Text(format!("message {n}"))).is_err() {
                break;
            }
        }
        // Then stay connected, reading, until the server is killed. A
        // socket closed with bytes unread in it is reset (RFC 9293
        // §3.6.1, not a FIN), and a reset throws away what the server had
        // received but not yet read: the sender's last messages, before
        // the server could store them (this thread often ends before the
        // server's reader has read a thing).
        while ws.read_message().is_ok() {}
    });
    let mut received = BTreeMap::new();
    while received.len() < 300 {
        let (id, text) = rx.recv_timeout(WAIT).expect("messages flow");
        received.insert(id, text);
    }
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    while let Ok((id, text)) = rx.recv_timeout(Duration::from_secs(2)) {
        received.insert(id, text);
    }
    sender.join().unwrap();
    for r in receivers {
        r.join().unwrap();
    }

    let mut server = spawn_server(&dir, port);
    let mut ws = connect(&addr, "?name=after");
    read_until(&mut ws, is("history"));
    let stored = all_history(&mut ws, "lobby");
    for (id, text) in &received {
        assert_eq!(
            stored.get(id),
            Some(text),
            "message {id} was received but is not in the history"
        );
    }
    let max_seen = *received.keys().last().unwrap();
    ws.send(Message::Text("after the crash".into())).unwrap();
    let mine = read_until(&mut ws, |v| {
        v["type"] == "chat" && v["text"] == "after the crash"
    });
    let new_id = mine.last().unwrap()["id"].as_u64().unwrap();
    assert!(new_id > max_seen, "ids continue: {new_id} after {max_seen}");
    assert!(new_id > *stored.keys().last().unwrap());
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_reconnects_with_its_last_id_misses_nothing_and_gets_nothing_twice() {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        rate_limit: 0,
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let addr = server.addr().to_string();
    let mut alice = connect(&addr, "?name=alice");
    let mut bob = connect(&addr, "?name=bob");
    read_until(&mut alice, is("history"));
    read_until(&mut bob, is("history"));
    bob.send(Message::Text("before the drop".into())).unwrap();
    let last = read_until(&mut alice, |v| {
        v["type"] == "chat" && v["text"] == "before the drop"
    });
    let last_id = last.last().unwrap()["id"].as_u64().unwrap();
    alice.close(wschat::ws::CloseCode::NORMAL, "").unwrap();
    drop(alice);

    for n in 0..1000 {
        bob.send(Message::Text(format!("gap {n}"))).unwrap();
    }
    read_until(&mut bob, |v| v["type"] == "chat" && v["text"] == "gap 999");
    // Bob keeps talking while Alice reconnects.
    let mut bob_sender = bob;
    let talker = std::thread::spawn(move || {
        for n in 0..200 {
            bob_sender.send(Message::Text(format!("live {n}"))).unwrap();
        }
        bob_sender.send(Message::Text("the end".into())).unwrap();
        bob_sender
    });
    let mut alice = connect(&addr, &format!("?name=alice&since={last_id}"));
    // "the end" arrives live, or inside the resume if Bob finished first.
    let seen = read_until(&mut alice, |v| {
        (v["type"] == "chat" && v["text"] == "the end")
            || (v["type"] == "resume"
                && v["messages"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["text"] == "the end")))
    });
    talker.join().unwrap();

    let resume = seen
        .iter()
        .find(|v| v["type"] == "resume")
        .expect("a resume message");
    assert_eq!(resume["since"], last_id);
    assert_eq!(resume["complete"], true);
    let mut texts: Vec<String> = resume["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    let resumed = texts.len();
    assert!(
        resumed >= 1000,
        "at least the 1,000 sent while away, got {resumed}"
    );
    let expected_gap: Vec<String> = (0..1000).map(|n| format!("gap {n}")).collect();
    assert_eq!(
        texts[..1000],
        expected_gap[..],
        "exactly the missed messages, in order"
    );
    texts.extend(
        seen.iter()
            .filter(|v| v["type"] == "chat")
            .map(|v| v["text"].as_str().unwrap().to_string()),
    );
    let mut expected = expected_gap;
    expected.extend((0..200).map(|n| format!("live {n}")));
    expected.push("the end".into());
    assert_eq!(texts, expected, "resume then live: no gap, no duplicate");
    server.stop();
}

#[test]
fn an_empty_directory_starts_and_a_damaged_log_is_recovered_with_counts() {
    let dir = temp_dir("recover");
    std::fs::create_dir_all(&dir).unwrap();
    let good = |id: u64, text: &str| {
        format!(
            r#"{{"type":"chat","id":{id},"room":"lobby","user":{{"id":1,"name":"a"}},"text":"{text}","time":1}}"#
        )
    };
    let log = format!(
        "{}\n{{this is not json\n{}\n{}",
        good(1, "one"),
        good(2, "two"),
        r#"{"type":"chat","id":3,"room":"lo"#
    );
    std::fs::write(dir.join("log-00000001.jsonl"), log).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.clone()),
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let mut ws = connect(&server.addr().to_string(), "");
    let history = read_until(&mut ws, is("history"));
    let texts: Vec<&str> = history.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    ws.send(Message::Text("three".into())).unwrap();
    let mine = read_until(&mut ws, |v| v["type"] == "chat");
    assert!(
        mine.last().unwrap()["id"].as_u64().unwrap() >= 3,
        "ids never reuse one that was on disk"
    );
    server.stop();
    let on_disk = std::fs::read_to_string(dir.join("log-00000001.jsonl")).unwrap();
    assert!(
        on_disk.lines().all(|l| l.starts_with('{')),
        "the torn line was cut:\n{on_disk}"
    );
    assert!(on_disk.contains("\"three\""));
    let _ = std::fs::remove_dir_all(&dir);

    let empty = temp_dir("empty");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(empty.clone()),
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let mut ws = connect(&server.addr().to_string(), "");
    let history = read_until(&mut ws, is("history"));
    assert_eq!(
        history.last().unwrap()["messages"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn a_directory_that_cannot_be_written_is_a_clear_error_at_start() {
    // /proc refuses new files even to root, so this holds whoever runs it.
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(PathBuf::from("/proc/self")),
        ..Config::default()
    };
    let err = Server::bind(config).expect_err("must not start");
    let text = err.to_string();
    assert!(text.contains("/proc/self"), "names the directory: {text}");
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/proc/self",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/proc/self"), "{stderr}");
    let check = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["check-config", "--data-dir", "/proc/self"])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = BufReader::new(&out.stdout[..]).lines().count();
}

#[test]
fn private_messages_are_resumed_by_session_after_a_restart() {
    let dir = temp_dir("private-restart");
    let config = || Config {
        listen: "127.0.0.1:0".into(),
        rate_limit: 0,
        data_dir: Some(dir.clone()),
        ..Config::default()
    };
    let server = Server::bind(config()).unwrap().spawn().unwrap();
    let addr = server.addr().to_string();
    let mut ann = connect(&addr, "?name=ann");
    let mut bob = connect(&addr, "?name=bob");
    let welcome = read_until(&mut bob, is("welcome")).pop().unwrap();
    let bob_id = welcome["user"]["id"].as_u64().unwrap();
    let bob_session = welcome["session"].as_str().unwrap().to_string();
    read_until(&mut ann, is("history"));
    let psst =
        serde_json::json!({"type": "private", "to": bob_id, "text": "psst, after a restart too"});
    ann.send(Message::Text(psst.to_string())).unwrap();
    read_until(&mut bob, is("private"));
    drop((ann, bob));
    server.stop();

    // Memory is gone; the log is not.
    let server = Server::bind(config()).unwrap().spawn().unwrap();
    let addr = server.addr().to_string();
    let privates = |resume: &Value| -> Vec<String> {
        resume["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "private")
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };
    let mut bob = connect(&addr, &format!("?name=bob&session={bob_session}&since=0"));
    let seen = read_until(&mut bob, is("resume"));
    assert_eq!(
        seen[0]["session"], bob_session,
        "the session is recognised after the restart"
    );
    assert_eq!(
        privates(seen.last().unwrap()),
        ["psst, after a restart too"]
    );
    // A token this server never handed out is not taken up.
    let made_up = "0123456789abcdef0123456789abcdef";
    let mut eve = connect(&addr, &format!("?name=eve&session={made_up}&since=0"));
    let seen = read_until(&mut eve, is("resume"));
    assert_ne!(seen[0]["session"], made_up);
    assert!(privates(seen.last().unwrap()).is_empty());
    drop((bob, eve));
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
