//! The customer-service desk over real sockets: an in-process server on
//! 127.0.0.1 with a temporary data directory, agents created with the same
//! code `wschat agent add` runs, visitors on `/support`, agents on `/agent`.
//!
//! Every wait is a socket read with a timeout (a broken server fails the
//! test instead of hanging it); nothing sleeps and nothing is timed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use wschat::config::Config;
use wschat::conn::WebSocket;
use wschat::desk::agents;
use wschat::server::{Server, ServerHandle};
use wschat::ws::Message;

/// The longest any one read may wait. Generous: it only matters when
/// something is broken.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A temporary data directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wschat-desk-{tag}-{}-{}",
            std::process::id(),
            wschat::random::random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server with agents `names` (their tokens returned in order).
fn desk(
    tag: &str,
    capacity: usize,
    grace: Duration,
    names: &[&str],
) -> (ServerHandle, Vec<String>, TempDir) {
    let dir = TempDir::new(tag);
    let tokens = names
        .iter()
        .map(|n| agents::add(&dir.0, n).expect("add agent"))
        .collect();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        agent_capacity: capacity,
        agent_grace: grace,
        rate_limit: 0,
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    (server, tokens, dir)
}

/// One WebSocket client and everything it has received.
struct Client {
    ws: WebSocket<TcpStream>,
    seen: Vec<Value>,
    /// The text of everything received, checked when the client is dropped.
    raw: Vec<String>,
}

/// Every message a test's clients received has its fields in the order
/// docs/customer-service.md shows (`type` first); checked as each client
/// goes, in every test of this file.
impl Drop for Client {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let page = "docs/customer-service.md";
        let orders = common::documented_field_orders(
            page,
            &["### Server → visitor", "### Server → agent", "### Errors"],
        );
        for text in &self.raw {
            common::check_field_order(&orders, page, text, false);
        }
    }
}

impl Client {
    fn connect(server: &ServerHandle, path: &str) -> Client {
        let url = format!("ws://{}{path}", server.addr());
        let ws = wschat::client::connect(&url).expect("connect");
        ws.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            ws,
            seen: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// A visitor that has had its `welcome`.
    fn visitor(server: &ServerHandle, query: &str) -> (Client, Value) {
        let mut c = Client::connect(server, &format!("/support{query}"));
        let welcome = c.expect("welcome");
        (c, welcome)
    }

    /// An agent that has signed in with `token`.
    fn agent(server: &ServerHandle, token: &str) -> Client {
        let mut c = Client::connect(server, "/agent");
        c.send(json!({"type": "auth", "token": token}));
        c.expect("ready");
        c
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string())).expect("send");
    }

    fn say(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).expect("send");
    }

    /// The next JSON message (pings and pongs skipped).
    fn next(&mut self) -> Value {
        loop {
            match self.ws.read_message() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON from the server");
                    self.raw.push(t);
                    self.seen.push(v.clone());
                    return v;
                }
                Ok(Message::Close(c)) => panic!("closed by the server: {c:?}"),
                Ok(_) => {}
                Err(e) => panic!("reading (seen so far: {:?}): {e}", self.seen),
            }
        }
    }

    /// The next message of type `kind` for which `pred` holds.
    fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next();
            if v["type"] == kind && pred(&v) {
                return v;
            }
        }
    }

    /// Like [`Client::expect_where`], but a matching message that arrived
    /// already (and was passed over) counts too.
    fn seen_or_expect(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| v["type"] == kind && pred(v)) {
            return v.clone();
        }
        self.expect_where(kind, pred)
    }

    fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true)
    }

    /// A round trip that proves everything sent to this client before now
    /// has arrived: an unknown command is answered with an error.
    fn sync(&mut self) {
        self.send(json!({"type": "sync-probe"}));
        self.expect_where("error", |v| v["code"] == "unknown_type");
    }
}

/// A visitor's first message; returns the conversation id and the agent it
/// went to (`None`: queued).
fn open(visitor: &mut Client, text: &str) -> (u64, Option<String>) {
    visitor.say(text);
    loop {
        let v = visitor.next();
        match v["type"].as_str() {
            Some("assigned") => {
                return (
                    v["conversation"].as_u64().unwrap(),
                    Some(v["agent"].as_str().unwrap().to_string()),
                );
            }
            Some("queued") => return (v["conversation"].as_u64().unwrap(), None),
            _ => {}
        }
    }
}

#[test]
fn least_loaded_with_capacity_and_idle_tie_break() {
    let (server, tokens, _dir) = desk("load", 2, Duration::from_secs(30), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let mut bob = Client::agent(&server, &tokens[1]);
    let mut visitors: Vec<Client> = (0..5).map(|_| Client::visitor(&server, "").0).collect();
    let mut got = Vec::new();
    for (i, v) in visitors.iter_mut().enumerate() {
        got.push(open(v, &format!("hello {i}")));
    }
    // Tie at 0: alice has been idle longest. Then bob has fewer. Tie at 1:
    // alice got hers first. Then bob. Then both are at capacity.
    let agents: Vec<Option<&str>> = got.iter().map(|(_, a)| a.as_deref()).collect();
    assert_eq!(
        agents,
        [Some("alice"), Some("bob"), Some("alice"), Some("bob"), None]
    );
    assert_eq!(visitors[4].seen.last().unwrap()["position"], 1);
    // The agents got their conversations with the first message.
    let a1 = alice.expect_where("assigned", |v| v["conversation"] == got[0].0);
    assert_eq!(a1["messages"][0]["text"], "hello 0");
    assert_eq!(a1["messages"][0]["from"], "visitor");
    bob.expect_where("assigned", |v| v["conversation"] == got[1].0);
    bob.expect_where("assigned", |v| v["conversation"] == got[3].0);
    // Bob resolves one: the waiting visitor goes to bob, who has room.
    bob.send(json!({"type": "resolve", "conversation": got[1].0}));
    let r = visitors[1].expect("resolved");
    assert_eq!(r["conversation"], got[1].0);
    visitors[1].send(json!({"type": "rate", "rating": 5}));
    assert_eq!(visitors[1].expect("rated")["rating"], 5);
    let a = visitors[4].expect("assigned");
    assert_eq!(a["agent"], "bob");
    let b = bob.expect_where("assigned", |v| v["conversation"] == got[4].0);
    assert_eq!(b["messages"][0]["text"], "hello 4");
    // A rating out of range is refused.
    visitors[1].send(json!({"type": "rate", "rating": 9}));
    visitors[1].expect("error");
}

#[test]
fn queue_positions_are_told_and_updated() {
    let (server, tokens, _dir) = desk("queue", 1, Duration::from_secs(30), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let _bob = Client::agent(&server, &tokens[1]);
    let mut visitors: Vec<Client> = (0..5).map(|_| Client::visitor(&server, "").0).collect();
    let mut convs = Vec::new();
    for (i, v) in visitors.iter_mut().enumerate() {
        convs.push(open(v, &format!("q{i}")));
    }
    assert_eq!(convs[0].1.as_deref(), Some("alice"));
    assert_eq!(convs[1].1.as_deref(), Some("bob"));
    for (i, v) in visitors.iter_mut().enumerate().skip(2) {
        let q = v.seen.last().unwrap().clone();
        assert_eq!(q["position"], i - 1, "visitor {i}");
        assert_eq!(q["agents_online"], 2);
    }
    // The agents see the queue, in order.
    let queue = alice.expect_where("queue", |v| v["queue"].as_array().unwrap().len() == 3);
    let ids: Vec<u64> = queue["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [convs[2].0, convs[3].0, convs[4].0]);
    alice.send(json!({"type": "resolve", "conversation": convs[0].0}));
    assert_eq!(visitors[2].expect("assigned")["agent"], "alice");
    assert_eq!(visitors[3].expect("queued")["position"], 1);
    assert_eq!(visitors[4].expect("queued")["position"], 2);
}

#[test]
fn transfer_to_an_agent_and_back_to_the_queue() {
    let (server, tokens, _dir) = desk("transfer", 5, Duration::from_secs(30), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let mut bob = Client::agent(&server, &tokens[1]);
    let (mut v, _) = Client::visitor(&server, "?name=Wang");
    let (cid, agent) = open(&mut v, "my order is late");
    assert_eq!(agent.as_deref(), Some("alice"));
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    // To someone who is not there: refused, nothing changes.
    alice.send(json!({"type": "transfer", "conversation": cid, "to": "nobody"}));
    alice.expect_where("error", |e| e["code"] == "agent_unavailable");
    alice.send(
        json!({"type": "transfer", "conversation": cid, "to": "bob", "note": "VIP, order 42"}),
    );
    let b = bob.expect_where("assigned", |x| x["conversation"] == cid);
    assert_eq!(b["from"], "alice");
    assert_eq!(b["note"], "VIP, order 42");
    assert_eq!(b["visitor"], "Wang");
    assert_eq!(b["messages"][0]["text"], "my order is late");
    alice.expect_where("unassigned", |x| {
        x["conversation"] == cid && x["to"] == "bob"
    });
    assert_eq!(v.expect("assigned")["agent"], "bob");
    // Alice may no longer write in it.
    alice.send(json!({"type": "message", "conversation": cid, "text": "still here?"}));
    alice.expect_where("error", |e| e["code"] == "not_yours");
    bob.send(json!({"type": "message", "conversation": cid, "text": "bob here"}));
    let m = v.expect("desk_message");
    assert_eq!(
        (m["from"].clone(), m["name"].clone(), m["text"].clone()),
        (json!("agent"), json!("bob"), json!("bob here"))
    );
    // Back to the queue: it goes to whoever is free and idle longest (alice).
    bob.send(json!({"type": "transfer", "conversation": cid, "to": null}));
    bob.expect_where("unassigned", |x| {
        x["conversation"] == cid && x["to"].is_null()
    });
    assert_eq!(v.expect("assigned")["agent"], "alice");
    let a = alice.expect_where("assigned", |x| x["conversation"] == cid);
    assert_eq!(a["messages"].as_array().unwrap().len(), 2);
}

#[test]
fn dropped_agent_conversations_requeue_after_grace() {
    let (server, tokens, _dir) = desk("grace", 5, Duration::from_millis(300), &["alice", "bob"]);
    let alice = Client::agent(&server, &tokens[0]);
    let (mut v1, _) = Client::visitor(&server, "");
    let (c1, agent) = open(&mut v1, "first");
    assert_eq!(agent.as_deref(), Some("alice"));
    drop(alice);
    let gone = v1.expect("agent_status");
    assert_eq!(
        (gone["agent"].clone(), gone["online"].clone()),
        (json!("alice"), json!(false))
    );
    // With no agent online the visitor is told so and may leave messages.
    let (mut v2, _) = Client::visitor(&server, "");
    let (c2, agent) = open(&mut v2, "anyone there?");
    assert!(agent.is_none());
    assert_eq!(v2.seen.last().unwrap()["agents_online"], 0);
    v2.say("I'll wait");
    v2.expect_where("desk_message", |m| m["text"] == "I'll wait");
    // After the grace period alice's conversation is back at the front.
    let q = v1.expect("queued");
    assert_eq!(q["position"], 1);
    assert_eq!(q["conversation"], c1);
    assert_eq!(
        v2.seen_or_expect("queued", |q| q["position"] == 2)["conversation"],
        c2
    );
    // Bob arrives: the re-queued conversation first, then the waiting one
    // with every message it left.
    let mut bob = Client::agent(&server, &tokens[1]);
    let first = bob.expect("assigned");
    assert_eq!(first["conversation"], c1);
    let second = bob.expect("assigned");
    assert_eq!(second["conversation"], c2);
    let texts: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["anyone there?", "I'll wait"]);
    assert_eq!(v1.expect("assigned")["agent"], "bob");
}

#[test]
fn visitor_resumes_with_token_and_agent_console_reloads() {
    let (server, tokens, _dir) = desk("resume", 5, Duration::from_secs(30), &["alice"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let (mut v, welcome) = Client::visitor(&server, "");
    let session = welcome["session"].as_str().unwrap().to_string();
    let (cid, _) = open(&mut v, "one");
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    alice.send(json!({"type": "message", "conversation": cid, "text": "two"}));
    v.expect_where("desk_message", |m| m["text"] == "two");
    v.send(json!({"type": "typing", "active": true}));
    let t = alice.expect("typing");
    assert_eq!(
        (t["from"].clone(), t["conversation"].clone()),
        (json!("visitor"), json!(cid))
    );
    drop(v);
    alice.expect_where("visitor_status", |s| {
        s["conversation"] == cid && s["online"] == false
    });
    let (mut v, welcome) = Client::visitor(&server, &format!("?session={session}"));
    assert_eq!(welcome["resumed"], true);
    assert_eq!(welcome["conversation"], cid);
    let t = v.expect("transcript");
    assert_eq!(t["state"], "assigned");
    assert_eq!(t["agent"], "alice");
    let texts: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    alice.expect_where("visitor_status", |s| {
        s["conversation"] == cid && s["online"] == true
    });
    // The console reloads: its open conversations, with their histories.
    drop(alice);
    let mut alice = Client::agent(&server, &tokens[0]);
    let list = alice.expect("conversations");
    let convs = list["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["conversation"], cid);
    assert_eq!(convs[0]["messages"].as_array().unwrap().len(), 2);
    // A made-up session is not a resume.
    let (_, other) = Client::visitor(&server, "?session=0123456789abcdef0123456789abcdef");
    assert_eq!(other["resumed"], false);
    assert_ne!(other["session"], "0123456789abcdef0123456789abcdef");
}

#[test]
fn conversation_messages_never_reach_a_third_party() {
    let (server, tokens, _dir) = desk("private", 5, Duration::from_secs(30), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let mut bob = Client::agent(&server, &tokens[1]);
    let (mut v1, _) = Client::visitor(&server, "");
    let (mut v2, _) = Client::visitor(&server, "");
    let (mut v3, _) = Client::visitor(&server, "");
    let (c1, a1) = open(&mut v1, "secret-from-visitor");
    let (_, a2) = open(&mut v2, "other conversation");
    assert_eq!((a1.as_deref(), a2.as_deref()), (Some("alice"), Some("bob")));
    alice.expect_where("assigned", |x| x["conversation"] == c1);
    alice.send(json!({"type": "message", "conversation": c1, "text": "secret-from-agent"}));
    v1.expect_where("desk_message", |m| m["text"] == "secret-from-agent");
    // Bob cannot write into alice's conversation either.
    bob.send(json!({"type": "message", "conversation": c1, "text": "intrusion"}));
    bob.expect_where("error", |e| e["code"] == "not_yours");
    for third in [&mut bob, &mut v2, &mut v3] {
        third.sync();
        let leaked = third
            .seen
            .iter()
            .any(|m| m.to_string().contains("secret-from"));
        assert!(!leaked, "leaked to a third party: {:?}", third.seen);
    }
    v1.sync();
    assert!(!v1.seen.iter().any(|m| m.to_string().contains("intrusion")));
}

#[test]
fn bad_agent_token_is_closed_with_4001() {
    let (server, _tokens, _dir) = desk("auth", 5, Duration::from_secs(30), &["alice"]);
    for attempt in [
        json!({"type": "auth", "token": "0123456789abcdef0123456789abcdef"}).to_string(),
        "hello, I am an agent".to_string(),
    ] {
        let mut c = Client::connect(&server, "/agent");
        c.say(&attempt);
        let code = loop {
            match c.ws.read_message() {
                Ok(Message::Close(frame)) => break frame.map(|f| f.code.0),
                Ok(_) => {}
                Err(e) => panic!("expected a close, got {e}"),
            }
        };
        assert_eq!(code, Some(4001));
    }
}

/// The desk rebuilds its conversations from the log: after a restart on
/// the same data directory the visitor resumes with its whole transcript,
/// and the agent's console gets the conversation back.
#[test]
fn conversations_survive_a_restart() {
    let dir = TempDir::new("restart");
    let token = agents::add(&dir.0, "alice").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        ..Config::default()
    };
    let server = Server::bind(config.clone()).unwrap().spawn().unwrap();
    let mut alice = Client::agent(&server, &token);
    let (mut v, welcome) = Client::visitor(&server, "");
    let session = welcome["session"].as_str().unwrap().to_string();
    let (cid, _) = open(&mut v, "before the restart");
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    alice.send(json!({"type": "message", "conversation": cid, "text": "noted"}));
    v.expect_where("desk_message", |m| m["text"] == "noted");
    drop((alice, v));
    server.stop();
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let (mut v, welcome) = Client::visitor(&server, &format!("?session={session}"));
    assert_eq!(welcome["resumed"], true);
    let t = v.expect("transcript");
    assert_eq!(t["conversation"], cid);
    assert_eq!(t["messages"].as_array().unwrap().len(), 2);
    let mut alice = Client::agent(&server, &token);
    let list = alice.expect("conversations");
    assert_eq!(list["conversations"][0]["conversation"], cid);
    assert_eq!(list["conversations"][0]["messages"][1]["text"], "noted");
}

/// `wschat agent add` from the command line: the token is printed once and
/// works; `list` shows the name; `remove` removes it.
#[test]
fn agent_admin_commands() {
    let dir = TempDir::new("cli");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
            .arg("agent")
            .args(args)
            .arg("--data-dir")
            .arg(&dir.0)
            .output()
            .expect("run wschat agent");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = run(&["add", "carol"]);
    assert!(ok, "{out}");
    let token = out.lines().last().unwrap().trim().to_string();
    assert_eq!(token.len(), 32);
    let stored = std::fs::read_to_string(agents::path(&dir.0)).unwrap();
    assert!(!stored.contains(&token));
    let accounts = agents::load(&dir.0).unwrap();
    assert_eq!(agents::verify(&accounts, &token).unwrap().name, "carol");
    assert!(run(&["list"]).1.contains("carol"));
    assert!(!run(&["add", "carol"]).0);
    assert!(run(&["remove", "carol"]).0);
    assert!(!run(&["list"]).1.contains("carol"));
    // Capacity and role, given at creation and changed later.
    assert!(run(&["add", "dora", "--capacity", "3", "--role", "supervisor"]).0);
    let dora = |dir: &std::path::Path| {
        let accounts = agents::load(dir).unwrap();
        let a = accounts.iter().find(|a| a.name == "dora").unwrap().clone();
        (a.capacity, a.role)
    };
    assert_eq!(dora(&dir.0), (Some(3), agents::Role::Supervisor));
    assert!(run(&["set", "dora", "--capacity=7"]).0);
    assert_eq!(dora(&dir.0), (Some(7), agents::Role::Supervisor));
    assert!(run(&["set", "dora", "--role", "agent"]).0);
    assert_eq!(dora(&dir.0), (Some(7), agents::Role::Agent));
    assert!(run(&["list"]).1.contains("capacity 7"));
    assert!(!run(&["set", "dora", "--capacity", "0"]).0);
    assert!(!run(&["set", "nobody", "--capacity", "2"]).0);
    assert!(!run(&["add", "eve", "--role", "boss"]).0);
}

/// The pages: the visitor widget, the agent console and the embed script.
#[test]
fn pages_are_served() {
    let (server, _tokens, _dir) = desk("pages", 5, Duration::from_secs(30), &[]);
    for (path, needle) in [
        ("/support", "<html"),
        ("/agent", "<html"),
        ("/widget.js", "iframe"),
    ] {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        assert!(body.starts_with("HTTP/1.1 200"), "{path}: {body}");
        assert!(body.contains(needle), "{path}");
    }
}

#[test]
fn only_the_latest_resolved_conversations_and_messages_stay_in_memory() {
    let dir = TempDir::new("keep");
    let token = agents::add(&dir.0, "alice").expect("add agent");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        desk_keep_resolved: 1,
        desk_keep_messages: 2,
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let mut alice = Client::agent(&server, &token);

    // The first visitor writes three messages; the conversation is resolved
    // and the visitor leaves.
    let (mut first, welcome) = Client::visitor(&server, "");
    let first_session = welcome["session"].as_str().unwrap().to_string();
    let (first_cid, _) = open(&mut first, "a1");
    for text in ["a2", "a3"] {
        first.send(json!({"type": "message", "text": text}));
        alice.expect_where("desk_message", |m| m["text"] == text);
    }
    alice.send(json!({"type": "resolve", "conversation": first_cid}));
    first.expect("resolved");
    drop(first);

    // A second one is resolved while its visitor stays.
    let (mut second, welcome) = Client::visitor(&server, "");
    let second_session = welcome["session"].as_str().unwrap().to_string();
    let (second_cid, _) = open(&mut second, "b1");
    alice.expect_where("assigned", |x| x["conversation"] == second_cid);
    alice.send(json!({"type": "resolve", "conversation": second_cid}));
    second.expect("resolved");
    second.sync();

    // Only one resolved conversation is kept: the first is forgotten, and
    // so is its visitor, who was not connected.
    let (_, again) = Client::visitor(&server, &format!("?session={first_session}"));
    assert_eq!(again["resumed"], false);
    assert_eq!(again["conversation"], Value::Null);
    // The second is kept, and can still be rated.
    let (mut back, again) = Client::visitor(&server, &format!("?session={second_session}"));
    assert_eq!(again["conversation"], second_cid);
    back.expect("transcript");
    back.send(json!({"type": "rate", "rating": 5}));
    back.expect("rated");

    // A transcript holds the last two messages, and says how many came before.
    let (mut third, _) = Client::visitor(&server, "");
    let (third_cid, _) = open(&mut third, "c1");
    for text in ["c2", "c3"] {
        third.send(json!({"type": "message", "text": text}));
        alice.expect_where("desk_message", |m| m["text"] == text);
    }
    drop(alice);
    let mut alice = Client::agent(&server, &token);
    let list = alice.expect("conversations");
    let conv = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"] == third_cid)
        .expect("the open conversation")
        .clone();
    let texts: Vec<&str> = conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["c2", "c3"]);
    assert_eq!(conv["earlier"], 1);
}

#[test]
fn markup_in_a_message_goes_out_escaped_for_html() {
    let (server, tokens, _dir) = desk("escape", 5, Duration::from_secs(30), &["alice"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let (mut v, _) = Client::visitor(&server, "");
    let (cid, _) = open(&mut v, "hello");
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    v.send(json!({"type": "message", "text": "<img src=x onerror=alert(1)> & more"}));
    // Read the agent's frames as they are on the wire.
    let raw = loop {
        if let Message::Text(t) = alice.ws.read_message().expect("a frame") {
            let v: Value = serde_json::from_str(&t).expect("JSON");
            if v["type"] == "desk_message" {
                break t;
            }
        }
    };
    assert!(!raw.contains(['<', '>', '&']), "{raw}");
    assert!(
        raw.contains(r"\u003cimg src=x onerror=alert(1)\u003e \u0026 more"),
        "{raw}"
    );
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["text"], "<img src=x onerror=alert(1)> & more");
}

#[test]
fn removing_an_agent_signs_out_its_console_and_requeues_its_conversations() {
    let (server, tokens, dir) = desk("remove", 5, Duration::from_secs(300), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let (mut v, _) = Client::visitor(&server, "");
    let (cid, agent) = open(&mut v, "hello");
    assert_eq!(agent.as_deref(), Some("alice"));
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    assert!(agents::remove(&dir.0, "alice").unwrap());
    // The console is closed with 4001 (read until the Close arrives).
    let code = loop {
        match alice.ws.read_message() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code.0),
            Ok(_) => {}
            Err(e) => panic!("no Close for the removed agent: {e}"),
        }
    };
    assert_eq!(code, Some(4001));
    // The conversation is queued again, and goes to the next agent.
    v.expect_where("queued", |q| q["conversation"] == cid);
    let mut bob = Client::agent(&server, &tokens[1]);
    bob.seen_or_expect("assigned", |x| x["conversation"] == cid);
    // The removed token no longer signs in.
    let mut again = Client::connect(&server, "/agent");
    again.send(json!({"type": "auth", "token": tokens[0]}));
    let code = loop {
        match again.ws.read_message() {
            Ok(Message::Close(frame)) => break frame.map(|f| f.code.0),
            Ok(_) => {}
            Err(e) => panic!("no Close for the removed token: {e}"),
        }
    };
    assert_eq!(code, Some(4001));
}

/// A server whose agents each have their own capacity and role.
fn desk_with(
    tag: &str,
    accounts: &[(&str, Option<usize>, agents::Role)],
) -> (ServerHandle, Vec<String>, TempDir) {
    let (server, _, dir) = desk(tag, 5, Duration::from_secs(300), &[]);
    let tokens = accounts
        .iter()
        .map(|(n, c, r)| agents::add_with(&dir.0, n, *c, *r).expect("add agent"))
        .collect();
    (server, tokens, dir)
}

#[test]
fn per_agent_capacity_and_agent_set_while_running() {
    use agents::Role::Agent;
    let (server, tokens, dir) = desk_with("capacity", &[("alice", Some(1), Agent)]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let ready = alice.seen.last().unwrap().clone();
    assert_eq!(
        (ready["capacity"].clone(), ready["role"].clone()),
        (json!(1), json!("agent"))
    );
    let (mut v1, _) = Client::visitor(&server, "");
    let (mut v2, _) = Client::visitor(&server, "");
    assert_eq!(open(&mut v1, "one").1.as_deref(), Some("alice"));
    // Alice's own capacity is 1 (the server's is 5): the second waits.
    let (c2, agent) = open(&mut v2, "two");
    assert_eq!(agent, None);
    // Raised while the server runs: the waiting visitor goes to alice.
    agents::set(&dir.0, "alice", Some(2), None).unwrap();
    let account = alice.expect("account");
    assert_eq!(account["capacity"], 2);
    assert_eq!(v2.expect("assigned")["agent"], "alice");
    alice.expect_where("assigned", |x| x["conversation"] == c2);
    let list = alice.expect_where("agents", |a| a["agents"][0]["load"] == 2);
    assert_eq!(list["agents"][0]["capacity"], 2);
    assert_eq!(list["agents"][0]["role"], "agent");
    // Lowered to 1: nothing is taken away, but nothing new comes.
    agents::set(&dir.0, "alice", Some(1), None).unwrap();
    alice.expect_where("account", |a| a["capacity"] == 1);
    let (mut v3, _) = Client::visitor(&server, "");
    assert_eq!(open(&mut v3, "three").1, None);
    // Made a supervisor while signed in: told so, with every open
    // conversation (here, her own two).
    agents::set(&dir.0, "alice", None, Some(agents::Role::Supervisor)).unwrap();
    alice.expect_where("account", |a| a["role"] == "supervisor");
    let all = alice.expect("conversations");
    assert_eq!(all["conversations"].as_array().unwrap().len(), 2);
}

#[test]
fn a_supervisor_sees_every_conversation_and_reassigns() {
    use agents::Role::{Agent, Supervisor};
    let (server, tokens, _dir) = desk_with(
        "supervisor",
        &[
            ("alice", None, Agent),
            ("bob", None, Agent),
            ("sam", None, Supervisor),
        ],
    );
    let mut alice = Client::agent(&server, &tokens[0]);
    let (mut v, _) = Client::visitor(&server, "?name=Li");
    let (cid, agent) = open(&mut v, "where is my parcel");
    assert_eq!(agent.as_deref(), Some("alice"));
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    // The supervisor signs in: it sees alice's conversation, with its
    // transcript, and alice's load.
    let mut sam = Client::agent(&server, &tokens[2]);
    assert_eq!(sam.seen.last().unwrap()["role"], "supervisor");
    let all = sam.expect("conversations");
    let conv = &all["conversations"][0];
    assert_eq!(conv["conversation"], cid);
    assert_eq!(conv["agent"], "alice");
    assert_eq!(conv["messages"][0]["text"], "where is my parcel");
    sam.seen_or_expect("agents", |a| {
        a["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "alice" && x["load"] == 1 && x["status"] == "online")
    });
    // It follows the conversation as it goes on.
    v.say("it was due Monday");
    let m = sam.expect("desk_message");
    assert_eq!(m["text"], "it was due Monday");
    // An agent may not reassign.
    alice.send(json!({"type": "reassign", "conversation": cid, "to": "alice"}));
    alice.expect_where("error", |e| e["code"] == "forbidden");
    // The supervisor gives it to bob, with a note.
    let mut bob = Client::agent(&server, &tokens[1]);
    sam.send(json!({"type": "reassign", "conversation": cid, "to": "bob", "note": "parcels"}));
    let b = bob.expect_where("assigned", |x| x["conversation"] == cid);
    assert_eq!(
        (b["from"].clone(), b["note"].clone()),
        (json!("alice"), json!("parcels"))
    );
    alice.expect_where("unassigned", |x| {
        x["conversation"] == cid && x["to"] == "bob"
    });
    assert_eq!(v.expect("assigned")["agent"], "bob");
    sam.expect_where("assigned", |x| {
        x["conversation"] == cid && x["agent"] == "bob"
    });
    // Then takes it over itself.
    sam.send(json!({"type": "reassign", "conversation": cid, "to": "sam"}));
    bob.expect_where("unassigned", |x| {
        x["conversation"] == cid && x["to"] == "sam"
    });
    assert_eq!(v.expect("assigned")["agent"], "sam");
    sam.send(json!({"type": "message", "conversation": cid, "text": "sam here"}));
    assert_eq!(v.expect("desk_message")["name"], "sam");
    // And back to the queue, from where it is routed again.
    sam.send(json!({"type": "reassign", "conversation": cid, "to": null}));
    sam.expect_where("unassigned", |x| {
        x["conversation"] == cid && x["to"].is_null()
    });
    let again = v.expect("assigned");
    assert_ne!(
        again["agent"], "sam",
        "sam had it last, so others are idle longer"
    );
}

#[test]
fn an_agent_claims_a_conversation_from_the_queue() {
    let (server, tokens, _dir) = desk("claim", 1, Duration::from_secs(300), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let mut bob = Client::agent(&server, &tokens[1]);
    // Bob is away: routing passes him over, but he may still claim.
    bob.send(json!({"type": "presence", "status": "away"}));
    bob.expect("presence");
    let mut visitors: Vec<Client> = (0..3).map(|_| Client::visitor(&server, "").0).collect();
    let convs: Vec<(u64, Option<String>)> = visitors
        .iter_mut()
        .enumerate()
        .map(|(i, v)| open(v, &format!("c{i}")))
        .collect();
    assert_eq!(convs[0].1.as_deref(), Some("alice"));
    assert_eq!((convs[1].1.clone(), convs[2].1.clone()), (None, None));
    // Bob picks the second in the queue.
    bob.send(json!({"type": "claim", "conversation": convs[2].0}));
    let got = bob.expect_where("assigned", |x| x["conversation"] == convs[2].0);
    assert_eq!(got["messages"][0]["text"], "c2");
    assert_eq!(visitors[2].expect("assigned")["agent"], "bob");
    // The one before it keeps its place: first.
    let q = bob.expect_where("queue", |q| q["queue"].as_array().unwrap().len() == 1);
    assert_eq!(q["queue"][0]["conversation"], convs[1].0);
    // Alice is full: she may not claim; nobody may claim what is not queued.
    alice.send(json!({"type": "claim", "conversation": convs[1].0}));
    alice.expect_where("error", |e| e["code"] == "agent_full");
    bob.send(json!({"type": "claim", "conversation": convs[0].0}));
    bob.expect_where("error", |e| e["code"] == "not_queued");
}

/// `/metrics` as name (with labels) → value.
fn scrape(server: &ServerHandle) -> std::collections::BTreeMap<String, f64> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr());
    let reply = common::http_exchange(server.addr(), request.as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
        .body_text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_resolving_agent_is_told_the_rating_and_metrics_count_the_desk() {
    let (server, tokens, _dir) = desk("rated", 1, Duration::from_secs(300), &["alice"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let (mut v1, _) = Client::visitor(&server, "?name=Zhao");
    let (mut v2, _) = Client::visitor(&server, "");
    let (c1, _) = open(&mut v1, "hi");
    let (c2, agent) = open(&mut v2, "hello");
    assert_eq!(agent, None);
    let m = scrape(&server);
    assert_eq!(m["wschat_desk_queue_length"], 1.0);
    assert_eq!(m["wschat_desk_agents_online"], 1.0);
    assert_eq!(m["wschat_desk_conversations_open"], 1.0);
    assert_eq!(m["wschat_desk_wait_seconds_count"], 1.0);
    assert_eq!(m["wschat_desk_wait_seconds_bucket{le=\"+Inf\"}"], 1.0);
    alice.send(json!({"type": "resolve", "conversation": c1}));
    v1.expect("resolved");
    assert_eq!(v2.expect("assigned")["agent"], "alice");
    // A comment past the limit is refused; the rating can still be given.
    let long = "好".repeat(wschat::desk::MAX_COMMENT_CHARS + 1);
    v1.send(json!({"type": "rate", "rating": 4, "comment": long}));
    v1.expect_where("error", |e| e["code"] == "bad_rating");
    v1.send(json!({"type": "rate", "rating": 4, "comment": "quick, thanks"}));
    let mine = v1.expect("rated");
    // The visitor's confirmation names the number `stars`, as the agent's
    // does, and keeps `rating` (the same number) for earlier clients.
    assert_eq!(
        (
            mine["stars"].clone(),
            mine["rating"].clone(),
            mine["comment"].clone()
        ),
        (json!(4), json!(4), json!("quick, thanks"))
    );
    let told = alice.expect("rated");
    assert_eq!(told["conversation"], c1);
    assert_eq!(told["stars"], 4);
    assert_eq!(told["comment"], "quick, thanks");
    assert_eq!(told["visitor"], "Zhao");
    let m = scrape(&server);
    for stars in 1..=5 {
        let n = m[&format!("wschat_desk_ratings_total{{stars=\"{stars}\"}}")];
        assert_eq!(n, if stars == 4 { 1.0 } else { 0.0 }, "{stars} stars");
    }
    assert_eq!(m["wschat_desk_queue_length"], 0.0);
    assert_eq!(m["wschat_desk_conversations_open"], 1.0);
    assert_eq!(m["wschat_desk_wait_seconds_count"], 2.0);
    assert_eq!(m["wschat_desk_wait_seconds_bucket{le=\"+Inf\"}"], 2.0);
    // Only once.
    v1.send(json!({"type": "rate", "rating": 1}));
    v1.expect_where("error", |e| e["code"] == "not_resolved");
    let _ = c2;
}

#[test]
fn a_waiting_visitor_offline_too_long_leaves_the_queue_as_abandoned() {
    let dir = TempDir::new("abandon");
    let token = agents::add(&dir.0, "alice").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        desk_abandon_after: Duration::from_secs(1),
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    // Alice is away, so both visitors wait.
    let mut alice = Client::agent(&server, &token);
    alice.send(json!({"type": "presence", "status": "away"}));
    alice.expect("presence");
    let (mut gone, welcome) = Client::visitor(&server, "");
    let session = welcome["session"].as_str().unwrap().to_string();
    let (c1, _) = open(&mut gone, "anyone there?");
    let (mut stays, _) = Client::visitor(&server, "");
    let (c2, _) = open(&mut stays, "I'll wait");
    alice.expect_where("queue", |q| q["queue"].as_array().unwrap().len() == 2);
    // One leaves; after a second offline its conversation leaves the queue.
    // The other, still connected, keeps waiting however long it takes.
    drop(gone);
    let q = alice.expect_where("queue", |q| q["queue"].as_array().unwrap().len() == 1);
    assert_eq!(q["queue"][0]["conversation"], c2);
    // Alice comes back: only the visitor who stayed is given to her.
    alice.send(json!({"type": "presence", "status": "online"}));
    let a = alice.expect("assigned");
    assert_eq!(a["conversation"], c2);
    // The visitor who left finds it closed on return, and may write anew.
    let (mut back, _) = Client::visitor(&server, &format!("?session={session}"));
    let t = back.expect("transcript");
    assert_eq!(
        (t["conversation"].as_u64(), t["state"].as_str()),
        (Some(c1), Some("resolved"))
    );
    let (c3, _) = open(&mut back, "sorry, I was away");
    assert_ne!(c3, c1);
    // Alice sees the abandoned one among the visitor's earlier conversations.
    alice.expect_where("assigned", |x| x["conversation"] == c3);
    alice.send(json!({"type": "visitor", "conversation": c3}));
    let v = alice.expect("visitor");
    assert_eq!(v["previous"][0]["conversation"], c1);
    assert_eq!(v["previous"][0]["state"], "abandoned");
}

#[test]
fn a_returning_visitor_brings_its_contact_and_earlier_conversations() {
    let dir = TempDir::new("contact");
    let token = agents::add(&dir.0, "alice").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        ..Config::default()
    };
    let server = Server::bind(config.clone()).unwrap().spawn().unwrap();
    let mut alice = Client::agent(&server, &token);
    let query = "?lang=en-GB&page=https%3A%2F%2Fshop.example%2Fcart&referrer=https%3A%2F%2Fsearch.example%2F";
    let (mut v, welcome) = Client::visitor(&server, query);
    let default_name = welcome["name"].as_str().unwrap().to_string();
    assert!(default_name.starts_with("Visitor "), "{default_name}");
    // The widget counts a message's bytes against the server's own limit.
    assert_eq!(welcome["max_text_bytes"], 4096);
    let session = welcome["session"].as_str().unwrap().to_string();
    // The pre-chat form.
    v.send(json!({"type": "contact", "name": "Ann", "email": "not an address"}));
    v.expect_where("error", |e| e["code"] == "bad_email");
    v.send(json!({"type": "contact", "name": "Ann", "email": "ann@example.com"}));
    let c = v.expect("contact");
    assert_eq!(
        (c["name"].clone(), c["email"].clone()),
        (json!("Ann"), json!("ann@example.com"))
    );
    let (c1, _) = open(&mut v, "the cart is empty");
    let a = alice.expect_where("assigned", |x| x["conversation"] == c1);
    assert_eq!(a["visitor"], "Ann");
    assert_eq!(a["contact"]["email"], "ann@example.com");
    assert_eq!(a["contact"]["page"], "https://shop.example/cart");
    assert_eq!(a["contact"]["referrer"], "https://search.example/");
    assert!(a["contact"]["first_seen"].as_u64().unwrap() > 0);
    assert_eq!(a["previous"], 0);
    alice.send(json!({"type": "message", "conversation": c1, "text": "try again now"}));
    v.expect_where("desk_message", |m| m["text"] == "try again now");
    // The visitor ends the chat itself, and rates it.
    v.send(json!({"type": "end"}));
    assert_eq!(v.expect("resolved")["by"], "visitor");
    alice.expect_where("resolved", |r| {
        r["conversation"] == c1 && r["by"] == "visitor"
    });
    v.send(json!({"type": "rate", "rating": 5, "comment": "fixed"}));
    v.expect("rated");
    v.send(json!({"type": "end"}));
    v.expect_where("error", |e| e["code"] == "not_open");
    drop((alice, v));
    server.stop();
    // Days later (a restart between): the same visitor writes again.
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let mut alice = Client::agent(&server, &token);
    let (mut v, welcome) = Client::visitor(&server, &format!("?session={session}&lang=en"));
    assert_eq!(welcome["name"], "Ann");
    let (c2, _) = open(&mut v, "it is empty again");
    let a = alice.expect_where("assigned", |x| x["conversation"] == c2);
    assert_eq!(a["previous"], 1);
    assert_eq!(a["contact"]["email"], "ann@example.com");
    alice.send(json!({"type": "visitor", "conversation": c2}));
    let info = alice.expect("visitor");
    assert_eq!(info["visitor"], "Ann");
    assert_eq!(info["contact"]["page"], "https://shop.example/cart");
    let earlier = &info["previous"][0];
    assert_eq!(earlier["conversation"], c1);
    assert_eq!(earlier["state"], "resolved");
    assert_eq!(earlier["agent"], "alice");
    assert_eq!(
        (earlier["rating"].clone(), earlier["comment"].clone()),
        (json!(5), json!("fixed"))
    );
    let texts: Vec<&str> = earlier["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["the cart is empty", "try again now"]);
    // A new visitor's default name is never one given before the restart.
    let (_, fresh) = Client::visitor(&server, "?lang=zh-CN");
    let name = fresh["name"].as_str().unwrap();
    assert!(name.starts_with("访客"), "{name}");
    let n = |s: &str| {
        s.trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<u64>()
            .unwrap()
    };
    assert!(n(name) > n(&default_name), "{name} after {default_name}");
    // Another agent's conversation is not shown to alice.
    alice.send(json!({"type": "visitor", "conversation": 999_999}));
    alice.expect_where("error", |e| e["code"] == "not_yours");
}

/// `wschat desk …` on data directory `dir`: success and standard output.
fn desk_command(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
        .arg("desk")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run wschat desk");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A scripted day of conversations, written as the desk writes its records,
/// and the report on it, worked out by hand.
#[test]
fn desk_report_on_a_scripted_day() {
    let dir = TempDir::new("report");
    let day = wschat::desk::report::parse_since("2026-03-02").unwrap();
    let t0 = day + 9 * 3_600_000; // 09:00 UTC
    let at = |s: i64| (t0 as i64 + s * 1000) as u64;
    let mut id = 0;
    let mut log = String::new();
    let mut rec = |v: Value| {
        id += 1;
        let mut v = v;
        v["id"] = json!(id);
        log.push_str(&v.to_string());
        log.push('\n');
    };
    let open = |rec: &mut dyn FnMut(Value), c: u64, s: i64| {
        rec(
            json!({"type": "desk_opened", "conversation": c, "session": "x", "visitor": format!("v{c}"), "time": at(s)}),
        );
        rec(
            json!({"type": "desk_message", "conversation": c, "from": "visitor", "name": format!("v{c}"), "text": "help", "time": at(s)}),
        );
    };
    let assign = |c: u64, agent: &str, s: i64| json!({"type": "desk_assigned", "conversation": c, "agent": agent, "time": at(s)});
    let reply = |c: u64, agent: &str, s: i64| json!({"type": "desk_message", "conversation": c, "from": "agent", "name": agent, "text": "on it", "time": at(s)});
    let resolve = |c: u64, agent: &str, by: &str, s: i64| json!({"type": "desk_resolved", "conversation": c, "agent": agent, "by": by, "time": at(s)});
    let rate = |c: u64, r: u64, s: i64| json!({"type": "desk_rated", "conversation": c, "rating": r, "time": at(s)});
    // The day before: counted only without --since.
    open(&mut rec, 5, -86_400);
    rec(assign(5, "alice", -86_390));
    rec(reply(5, "alice", -86_300));
    rec(resolve(5, "alice", "agent", -86_000));
    rec(rate(5, 1, -85_990));
    // c10: alice answers in 30 s, resolves at 300 s, rated 5 with a comment.
    open(&mut rec, 10, 0);
    rec(assign(10, "alice", 10));
    rec(reply(10, "alice", 30));
    rec(resolve(10, "alice", "agent", 300));
    rec(
        json!({"type": "desk_rated", "conversation": 10, "rating": 5, "comment": "great, thanks", "time": at(310)}),
    );
    // c20: bob answers in 60 s, resolves at 600 s, rated 3.
    open(&mut rec, 20, 60);
    rec(assign(20, "bob", 70));
    rec(reply(20, "bob", 120));
    rec(resolve(20, "bob", "agent", 660));
    rec(rate(20, 3, 700));
    // c30: alice answers in 30 s and transfers it to bob, who resolves it
    // at 1200 s: bob's, rated 4.
    open(&mut rec, 30, 120);
    rec(assign(30, "alice", 130));
    rec(reply(30, "alice", 150));
    rec(
        json!({"type": "desk_assigned", "conversation": 30, "agent": "bob", "from": "alice", "note": "", "time": at(200)}),
    );
    rec(reply(30, "bob", 250));
    rec(resolve(30, "bob", "agent", 1320));
    rec(rate(30, 4, 1330));
    // c40: waits, its visitor leaves: abandoned.
    open(&mut rec, 40, 200);
    rec(json!({"type": "desk_resolved", "conversation": 40, "by": "abandoned", "time": at(800)}));
    // c50: alice answers in 90 s; the visitor ends it at 200 s.
    open(&mut rec, 50, 300);
    rec(assign(50, "alice", 310));
    rec(reply(50, "alice", 390));
    rec(resolve(50, "alice", "visitor", 500));
    // c60: alice's, not answered yet.
    open(&mut rec, 60, 400);
    rec(assign(60, "alice", 410));
    std::fs::write(dir.0.join("log-00000001.jsonl"), log).unwrap();

    let (ok, out) = desk_command(
        &dir.0,
        &["report", "--since", "2026-03-02", "--format", "json"],
    );
    assert!(ok, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["since"], day);
    let line = |v: &Value| {
        json!([
            v["agent"],
            v["conversations"],
            v["resolved"],
            v["abandoned"],
            v["first_response"]["median"],
            v["first_response"]["p90"],
            v["resolution"]["median"],
            v["resolution"]["p90"],
            v["ratings"]["count"],
            v["ratings"]["average"],
        ])
    };
    assert_eq!(r["agents"].as_array().unwrap().len(), 2);
    assert_eq!(
        line(&r["agents"][0]),
        json!(["alice", 3, 2, 0, 30.0, 90.0, 200.0, 300.0, 1, 5.0])
    );
    assert_eq!(
        line(&r["agents"][1]),
        json!(["bob", 2, 2, 0, 30.0, 60.0, 600.0, 1200.0, 2, 3.5])
    );
    assert_eq!(
        line(&r["overall"]),
        json!([null, 6, 4, 1, 30.0, 90.0, 300.0, 1200.0, 3, 4.0])
    );
    assert_eq!(
        r["overall"]["ratings"]["stars"],
        json!({"1": 0, "2": 0, "3": 1, "4": 1, "5": 1})
    );
    // The same as CSV, and as a table.
    let (ok, csv) = desk_command(&dir.0, &["report", "--since=2026-03-02", "--format=csv"]);
    assert!(ok);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[0].starts_with("agent,conversations,resolved,abandoned,first_response_median_s"));
    assert_eq!(rows[1], "alice,3,2,0,30,90,200,300,1,5,0,0,0,0,1");
    assert_eq!(rows[2], "bob,2,2,0,30,60,600,1200,2,3.5,0,0,1,1,0");
    assert_eq!(rows[3], "(all),6,4,1,30,90,300,1200,3,4,0,0,1,1,1");
    let (ok, table) = desk_command(&dir.0, &["report", "--since", "2026-03-02"]);
    assert!(ok);
    assert!(
        table.lines().nth(1).unwrap().starts_with("alice  "),
        "{table}"
    );
    // Without --since, the day before counts too.
    let (_, all) = desk_command(&dir.0, &["report", "--format", "json"]);
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["overall"]["conversations"], 7);
    assert_eq!(all["overall"]["ratings"]["stars"]["1"], 1);
    // A bad date or format is refused.
    assert!(!desk_command(&dir.0, &["report", "--since", "yesterday"]).0);
    assert!(!desk_command(&dir.0, &["report", "--format", "xml"]).0);
    // The export: one conversation a line, with its transcript.
    let (ok, lines) = desk_command(&dir.0, &["export", "--since", "2026-03-02"]);
    assert!(ok);
    let convs: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(convs.len(), 6);
    let c30 = convs.iter().find(|c| c["conversation"] == 30).unwrap();
    assert_eq!(
        (
            c30["agent"].clone(),
            c30["by"].clone(),
            c30["rating"].clone()
        ),
        (json!("bob"), json!("agent"), json!(4))
    );
    let names: Vec<&str> = c30["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v30", "alice", "bob"]);
    assert_eq!(convs[0]["comment"], "great, thanks");
}

/// The export of a conversation held over real sockets, read while the
/// server still runs.
#[test]
fn desk_export_of_a_live_data_directory() {
    let (server, tokens, dir) = desk("export", 5, Duration::from_secs(30), &["alice"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    let (mut v, _) = Client::visitor(&server, "?name=Qian");
    let (cid, _) = open(&mut v, "退款怎么办?");
    alice.expect_where("assigned", |x| x["conversation"] == cid);
    alice.send(json!({"type": "message", "conversation": cid, "text": "请提供订单号"}));
    v.expect_where("desk_message", |m| m["from"] == "agent");
    alice.send(json!({"type": "resolve", "conversation": cid}));
    v.expect("resolved");
    v.send(json!({"type": "rate", "rating": 2, "comment": "slow"}));
    alice.expect("rated");
    let (ok, out) = desk_command(&dir.0, &["export"]);
    assert!(ok);
    let line: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(line["conversation"], cid);
    assert_eq!(line["visitor"], "Qian");
    assert_eq!(
        (line["agent"].clone(), line["by"].clone()),
        (json!("alice"), json!("agent"))
    );
    assert_eq!(
        (line["rating"].clone(), line["comment"].clone()),
        (json!(2), json!("slow"))
    );
    let texts: Vec<&str> = line["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["退款怎么办?", "请提供订单号"]);
    let (ok, report) = desk_command(&dir.0, &["report", "--format", "json"]);
    assert!(ok);
    let r: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["agents"][0]["agent"], "alice");
    assert_eq!(r["agents"][0]["ratings"]["count"], 1);
}

#[test]
fn canned_replies_are_shared_by_the_team() {
    let (server, tokens, dir) = desk("canned", 5, Duration::from_secs(30), &["alice", "bob"]);
    let mut alice = Client::agent(&server, &tokens[0]);
    assert_eq!(alice.expect("canned")["replies"], json!([]));
    let canned = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
            .arg("canned")
            .args(args)
            .arg("--data-dir")
            .arg(&dir.0)
            .output()
            .expect("run wschat canned");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // From the command line, while the server runs: every console hears.
    assert!(canned(&["add", "hi", "您好,请问有什么可以帮您?"]).0);
    let list = alice.expect_where("canned", |c| c["replies"].as_array().unwrap().len() == 1);
    assert_eq!(list["replies"][0]["shortcut"], "hi");
    assert_eq!(list["replies"][0]["text"], "您好,请问有什么可以帮您?");
    // From a console: the other agents get it too.
    let mut bob = Client::agent(&server, &tokens[1]);
    bob.expect_where("canned", |c| c["replies"].as_array().unwrap().len() == 1);
    alice.send(json!({"type": "canned_add", "shortcut": "/bye", "text": "Goodbye!"}));
    let list = bob.expect_where("canned", |c| c["replies"].as_array().unwrap().len() == 2);
    assert_eq!(list["replies"][0]["shortcut"], "bye");
    assert_eq!(list["replies"][0]["by"], "alice");
    alice.send(json!({"type": "canned_add", "shortcut": "two words", "text": "x"}));
    alice.expect_where("error", |e| e["code"] == "bad_canned");
    bob.send(json!({"type": "canned_remove", "shortcut": "hi"}));
    alice.expect_where("canned", |c| {
        c["replies"] == json!([{"shortcut": "bye", "text": "Goodbye!", "by": "alice"}])
    });
    let (ok, out) = canned(&["list"]);
    assert!(ok);
    assert_eq!(out, "/bye\tGoodbye!\n");
    assert!(canned(&["remove", "bye"]).0);
    assert!(!canned(&["remove", "bye"]).0);
    bob.expect_where("canned", |c| c["replies"] == json!([]));
}

#[test]
fn out_of_hours_messages_wait_for_the_first_agent() {
    // Hours that are closed now: every day, for the hour that begins two
    // hours from now (UTC).
    let now = wschat::clock::now_ms();
    let start = (now / 3_600_000 + 2) % 24;
    let spec = format!("mon-sun {start:02}:00-{:02}:00 +00:00", start + 1);
    let dir = TempDir::new("hours");
    let token = agents::add(&dir.0, "alice").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        desk_abandon_after: Duration::from_secs(1),
        desk_hours: Some(wschat::desk::hours::Hours::parse(&spec).unwrap()),
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    // Alice is signed in but away (out of hours).
    let mut alice = Client::agent(&server, &token);
    alice.send(json!({"type": "presence", "status": "away"}));
    alice.expect("presence");
    let (mut v, _) = Client::visitor(&server, "?lang=en");
    let hours = v.expect("hours");
    assert_eq!(
        (hours["open"].clone(), hours["email"].clone()),
        (json!(false), json!(false))
    );
    let back = hours["back"].as_u64().unwrap();
    assert!(
        back > now && back - now <= 24 * 3_600_000,
        "{back} after {now}"
    );
    assert_eq!(back % 3_600_000, 0);
    assert_eq!((back / 3_600_000) % 24, start);
    // No message without an address to answer to.
    v.say("are you there?");
    v.expect_where("error", |e| e["code"] == "email_required");
    v.send(json!({"type": "contact", "email": "zhou@example.com"}));
    v.expect("contact");
    let (cid, agent) = open(&mut v, "please call me back about order 7");
    assert_eq!(agent, None);
    // The visitor leaves. Two refused agent sign-ins, each closed at a tick
    // at least a second after it came, prove that ticks ran more than
    // `--desk-abandon-after` later: the message is still waiting.
    drop(v);
    for _ in 0..2 {
        let mut bad = Client::connect(&server, "/agent");
        bad.send(json!({"type": "auth", "token": "wrong"}));
        loop {
            match bad.ws.read_message() {
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(e) => panic!("no Close for a bad token: {e}"),
            }
        }
    }
    alice.sync();
    let queue = alice
        .seen
        .iter()
        .rev()
        .find(|m| m["type"] == "queue")
        .unwrap();
    assert_eq!(queue["queue"][0]["conversation"], cid, "{queue}");
    // It goes to the first agent who is there, with the address.
    alice.send(json!({"type": "presence", "status": "online"}));
    let a = alice.expect_where("assigned", |x| x["conversation"] == cid);
    assert_eq!(a["offline"], true);
    assert_eq!(a["online"], false);
    assert_eq!(a["contact"]["email"], "zhou@example.com");
    assert_eq!(
        a["messages"][0]["text"],
        "please call me back about order 7"
    );
}

#[test]
fn a_verified_visitor_brings_the_email_of_its_token() {
    let dir = TempDir::new("verified");
    let token = agents::add(&dir.0, "alice").unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        jwt_secrets: vec![b"s3cret".to_vec()],
        ..Config::default()
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let mut alice = Client::agent(&server, &token);
    let jwt = wschat::auth::sign(
        br#"{"sub":"customer-9","exp":4000000000,"name":"Zhang","email":"zhang@example.com"}"#,
        b"s3cret",
    );
    let (mut v, welcome) = Client::visitor(&server, &format!("?token={jwt}"));
    assert_eq!(welcome["verified"], true);
    let (cid, _) = open(&mut v, "hello");
    let a = alice.expect_where("assigned", |x| x["conversation"] == cid);
    assert_eq!(a["visitor"], "Zhang");
    assert_eq!(a["sub"], "customer-9");
    assert_eq!(a["contact"]["email"], "zhang@example.com");
}

/// Visitors' contact records count in the memory budget (issue 21's
/// `--memory-budget`, `wschat_memory_bytes{kept="desk"}`): a visitor whose
/// widget sent a long page address and browser adds at least their bytes
/// while it is connected, a pre-chat address adds its bytes too, and all of
/// it goes when the visitor leaves with nothing to resume.
#[test]
fn contact_records_count_in_the_memory_budget() {
    let (server, _tokens, _dir) = desk("contact-budget", 5, Duration::from_secs(30), &[]);
    const DESK: &str = "wschat_memory_bytes{kept=\"desk\"}";
    // The figure is there once the hub has started.
    common::eventually(TIMEOUT, "the memory figures in /metrics", || {
        scrape(&server).contains_key(DESK)
    });
    let desk_bytes = || scrape(&server)[DESK] as usize;
    let before = desk_bytes();
    let page = format!("https://shop.example/{}", "p".repeat(1900));
    assert!(page.len() <= wschat::desk::MAX_URL_BYTES);
    let (mut v, _) = Client::visitor(&server, &format!("?lang=en&page={page}"));
    let connected = desk_bytes();
    assert!(
        connected >= before + page.len(),
        "{before} bytes, then {connected} with a {}-byte page",
        page.len()
    );
    let email = format!("{}@example.com", "z".repeat(200));
    v.send(json!({"type": "contact", "email": email}));
    v.expect("contact");
    let with_email = desk_bytes();
    assert!(
        with_email >= connected + email.len(),
        "{connected}, then {with_email} with a {}-byte address",
        email.len()
    );
    drop(v);
    common::eventually(TIMEOUT, "the visitor's bytes go with it", || {
        desk_bytes() == before
    });
}
