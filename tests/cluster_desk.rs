//! The support desk across wschat nodes on one `redis-server` (issue 23
//! item 4, docs/cluster.md "The desk"): each node a child process started
//! with `--redis`, clients on real sockets of 127.0.0.1.
//!
//! * agent accounts kept in Redis (`wschat agent … --redis URL`): made
//!   once, they sign an agent in on every node; a change or a removal
//!   made on the command line reaches the consoles of every node;
//! * one desk for every node: an agent on one node and visitors on
//!   others share one queue and exchange messages, whichever node runs
//!   the desk (the others forward its connections there);
//! * the node that runs the desk killed (`kill -9`) in the middle of a
//!   conversation: another node takes the desk over from its records in
//!   Redis, the visitor and the agent reconnect through other nodes, and
//!   the conversation goes on with everything said before;
//! * an agent who leaves through a forwarding node: the grace period and
//!   the re-queue to an agent on another node, as on one node;
//! * the lease and the desk's stream in Redis: one holder, renewed,
//!   given up, taken over once expired; records added only by the holder
//!   (fencing), read back in order across pages; a node stopped
//!   gracefully gives the lease up.
#![cfg(target_os = "linux")]

#[path = "redis_support/node.rs"]
mod node;
#[path = "redis_support/mod.rs"]
mod redis_support;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wschat::WebSocket;
use wschat::ws::Message;

use node::{Node, node_with};
use redis_support::RedisServer;
use wschat::cluster::Keys;
use wschat::cluster::client::Cmd;
use wschat::cluster::desk::DESK_RANGE;

const WAIT: Duration = Duration::from_secs(30);

/// A node on `redis` with `extra` flags, once it serves and is healthy.
fn node(redis: &RedisServer, extra: &[&str]) -> Node {
    node_with(redis, extra)
}

/// `wschat agent ARGS --redis URL`: whether it succeeded, and its output.
fn agent_cli(redis: &RedisServer, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .arg("agent")
        .args(args)
        .args(["--redis", &redis.url()])
        .env_remove("WSCHAT_DATA_DIR")
        .output()
        .expect("run wschat agent");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `wschat agent add NAME … --redis`: the token it printed.
fn add_agent(redis: &RedisServer, name: &str, extra: &[&str]) -> String {
    let (ok, out) = agent_cli(redis, &[&["add", name], extra].concat());
    assert!(ok, "{out}");
    let token = out.lines().last().unwrap().trim().to_string();
    assert_eq!(token.len(), 32, "{out}");
    token
}

/// A desk client: a visitor or an agent console.
struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    fn connect(node: &Node, path: &str) -> Client {
        Client::try_connect(node, path).expect("connect")
    }

    fn try_connect(node: &Node, path: &str) -> Option<Client> {
        let ws = wschat::client::connect(&format!("ws://{}{path}", node.addr)).ok()?;
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Some(Client { ws })
    }

    /// The first message of type `kind` on a new connection to `path` on
    /// `node`, after sending `first` (if any); `None` if the connection
    /// failed or closed before it (the desk is moving: try again).
    fn try_open(
        node: &Node,
        path: &str,
        first: Option<&Value>,
        kind: &str,
    ) -> Option<(Client, Value)> {
        let mut c = Client::try_connect(node, path)?;
        if let Some(first) = first {
            c.ws.send(Message::Text(first.to_string())).ok()?;
        }
        loop {
            match c.ws.read_message().ok()? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON");
                    if v["type"] == kind {
                        return Some((c, v));
                    }
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// [`Client::try_open`] again until it succeeds (within [`WAIT`]).
    fn open_retrying(
        node: &Node,
        path: &str,
        first: Option<&Value>,
        kind: &str,
    ) -> (Client, Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(opened) = Client::try_open(node, path, first, kind) {
                return opened;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} from {path} on {}",
                node.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A visitor on `node` (`query`: `?session=…` to resume): its
    /// `welcome`.
    fn visitor(node: &Node, query: &str) -> (Client, Value) {
        let mut c = Client::connect(node, &format!("/support{query}"));
        let welcome = c.expect("welcome");
        (c, welcome)
    }

    fn say(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).expect("send");
    }

    /// The next message of type `kind` for which `pred` holds.
    fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next() {
                Ok(m) if m["type"] == kind && pred(&m) => return m,
                Ok(_) => {}
                Err(code) => panic!("closed ({code}) before a {kind:?}"),
            }
        }
    }

    /// The next message of type `kind`, or the Close's code.
    fn next_of(&mut self, kind: &str) -> Result<Value, u16> {
        loop {
            let m = self.next()?;
            if m["type"] == kind {
                return Ok(m);
            }
        }
    }

    /// An agent console on `node` signed in with `token`: its `ready`.
    fn agent(node: &Node, token: &str) -> (Client, Value) {
        let mut c = Client::connect(node, "/agent");
        c.send(json!({"type": "auth", "token": token}));
        let ready = c.expect("ready");
        (c, ready)
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string())).expect("send");
    }

    /// The next JSON message, or the Close's code.
    fn next(&mut self) -> Result<Value, u16> {
        loop {
            match self.ws.read_message().expect("a message within 20 s") {
                Message::Text(t) => return Ok(serde_json::from_str(&t).expect("JSON")),
                Message::Close(c) => return Err(c.map_or(1005, |c| c.code.0)),
                _ => {}
            }
        }
    }

    /// The next message of type `kind` (others skipped).
    fn expect(&mut self, kind: &str) -> Value {
        loop {
            match self.next() {
                Ok(m) if m["type"] == kind => return m,
                Ok(_) => {}
                Err(code) => panic!("closed ({code}) before a {kind:?}"),
            }
        }
    }
}

#[test]
fn agent_accounts_in_redis_sign_in_on_every_node_and_changes_reach_them() {
    let Some(redis) = RedisServer::start("cluster_desk_accounts") else {
        return;
    };
    // Made on the command line, kept in Redis only.
    let token = add_agent(&redis, "alice", &["--capacity", "2"]);
    let (ok, out) = agent_cli(&redis, &["add", "Alice"]);
    assert!(!ok, "a name is taken whatever its case: {out}");
    let (ok, out) = agent_cli(&redis, &["list"]);
    assert!(ok && out.contains("alice\tcapacity 2\tagent"), "{out}");

    // The same token signs alice in on either node (neither has a data
    // directory: the accounts come from Redis).
    let nodes = [node(&redis, &[]), node(&redis, &[])];
    let (mut on_a, ready) = Client::agent(&nodes[0], &token);
    assert_eq!(ready["agent"], "alice");
    assert_eq!(ready["capacity"], 2);
    let (mut on_b, ready) = Client::agent(&nodes[1], &token);
    assert_eq!(ready["agent"], "alice");
    let mut wrong = Client::connect(&nodes[1], "/agent");
    wrong.send(json!({"type": "auth", "token": "0123456789abcdef0123456789abcdef"}));
    let refused = loop {
        if let Err(code) = wrong.next() {
            break code;
        }
    };
    assert_eq!(refused, 4001);

    // A change made on the command line reaches the consoles on both.
    let (ok, out) = agent_cli(
        &redis,
        &["set", "ALICE", "--capacity", "4", "--role", "supervisor"],
    );
    assert!(ok, "{out}");
    for console in [&mut on_a, &mut on_b] {
        let account = console.expect("account");
        assert_eq!(account["agent"], "alice");
        assert_eq!(account["capacity"], 4);
        assert_eq!(account["role"], "supervisor");
    }
    let (ok, out) = agent_cli(&redis, &["list"]);
    assert!(ok && out.contains("alice\tcapacity 4\tsupervisor"), "{out}");
    assert!(!agent_cli(&redis, &["set", "nobody", "--capacity", "2"]).0);

    // Removed: signed out on both nodes, and no longer signing in.
    let (ok, out) = agent_cli(&redis, &["remove", "alice"]);
    assert!(ok, "{out}");
    for console in [&mut on_a, &mut on_b] {
        let code = loop {
            if let Err(code) = console.next() {
                break code;
            }
        };
        assert_eq!(code, 4001);
    }
    let mut again = Client::connect(&nodes[0], "/agent");
    again.send(json!({"type": "auth", "token": token}));
    let refused = loop {
        match again.next() {
            Err(code) => break code,
            Ok(m) => assert_ne!(m["type"], "ready"),
        }
    };
    assert_eq!(refused, 4001);
    assert!(!agent_cli(&redis, &["remove", "alice"]).0);
    let (ok, out) = agent_cli(&redis, &["list"]);
    assert!(ok && out.contains("no agents"), "{out}");

    // Without a Redis to reach, the command line says so. Port 0, which
    // no connect reaches: a port that was free a moment ago may by now be
    // a Redis that another test of this file started (seen once).
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["agent", "list", "--redis", "redis://127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
}

/// A visitor's first message: the conversation's id and its agent
/// (`None`: queued).
fn open(visitor: &mut Client, text: &str) -> (u64, Option<String>) {
    visitor.say(text);
    loop {
        let v = visitor.next().expect("assigned or queued");
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
fn one_queue_for_every_node_an_agent_and_visitors_on_different_nodes_talk() {
    let Some(redis) = RedisServer::start("cluster_desk_queue") else {
        return;
    };
    let token = add_agent(&redis, "alice", &["--capacity", "1"]);
    // A is started first and runs the desk; B and C forward to it.
    let nodes = [node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let (mut alice, _) = Client::agent(&nodes[0], &token);
    let (mut v1, welcome) = Client::visitor(&nodes[1], "");
    assert_eq!(welcome["resumed"], false);
    let (c1, agent) = open(&mut v1, "hello from B");
    assert_eq!(agent.as_deref(), Some("alice"));
    let assigned = alice.expect_where("assigned", |a| a["conversation"] == c1);
    assert_eq!(assigned["messages"][0]["text"], "hello from B");
    // Both ways, through the node in between.
    alice.send(json!({"type": "message", "conversation": c1, "text": "hi, alice here"}));
    v1.expect_where("desk_message", |m| m["text"] == "hi, alice here");
    v1.say("a question");
    alice.expect_where("desk_message", |m| {
        m["conversation"] == c1 && m["text"] == "a question"
    });
    // One queue: alice is at capacity (1), so a visitor on C waits, first
    // in line, and gets her once the first conversation is resolved.
    let (mut v2, _) = Client::visitor(&nodes[2], "");
    let (c2, agent) = open(&mut v2, "hello from C");
    assert_eq!(agent, None);
    alice.send(json!({"type": "resolve", "conversation": c1}));
    v1.expect_where("resolved", |r| r["conversation"] == c1);
    assert_eq!(v2.expect("assigned")["agent"], "alice");
    alice.expect_where("assigned", |a| a["conversation"] == c2);
    // A console on another node than the desk's sees the same desk.
    let (mut alice_b, ready) = Client::agent(&nodes[1], &token);
    assert_eq!(ready["agent"], "alice");
    let list = alice_b.expect("conversations");
    let ids: Vec<u64> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [c2]);
    alice_b.send(json!({"type": "message", "conversation": c2, "text": "from B's console"}));
    v2.expect_where("desk_message", |m| m["text"] == "from B's console");
    // The cluster's desk, reported and exported from its records in Redis
    // (no data directory: the command runs where no node's data is).
    let (ok, out) = desk_cli(&redis, &["export"]);
    assert!(ok, "{out}");
    let exported: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let first = exported
        .iter()
        .find(|c| c["conversation"] == c1)
        .expect("the first conversation exported");
    assert_eq!(first["agent"], "alice");
    assert!(first["resolved"].is_u64(), "{first}");
    assert_eq!(
        texts(&first["messages"]),
        ["hello from B", "hi, alice here", "a question"]
    );
    let (ok, out) = desk_cli(&redis, &["report", "--format", "json"]);
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).expect("a JSON report");
    assert_eq!(report["overall"]["conversations"], 2, "{report}");
    assert_eq!(report["overall"]["resolved"], 1, "{report}");
}

/// `wschat desk ARGS --redis URL`, run in an empty directory: whether it
/// succeeded, and its output.
fn desk_cli(redis: &RedisServer, args: &[&str]) -> (bool, String) {
    let empty = std::env::temp_dir().join(format!("wschat-desk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .arg("desk")
        .args(args)
        .args(["--redis", &redis.url()])
        .current_dir(&empty)
        .env_remove("WSCHAT_DATA_DIR")
        .output()
        .expect("run wschat desk");
    let _ = std::fs::remove_dir_all(&empty);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The texts of a conversation's `messages`.
fn texts(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_desk_node_killed_mid_conversation_the_conversation_goes_on_through_other_nodes() {
    let Some(redis) = RedisServer::start("cluster_desk_kill") else {
        return;
    };
    let token = add_agent(&redis, "alice", &[]);
    // A runs the desk; the agent is on B and the visitor on C, both
    // forwarded to A.
    let mut nodes = vec![node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let (mut alice, _) = Client::agent(&nodes[1], &token);
    let (mut visitor, welcome) = Client::visitor(&nodes[2], "");
    let session = welcome["session"].as_str().unwrap().to_string();
    let (cid, agent) = open(&mut visitor, "my order is late");
    assert_eq!(agent.as_deref(), Some("alice"));
    alice.expect_where("assigned", |a| a["conversation"] == cid);
    let mut said = vec!["my order is late".to_string()];
    for i in 0..5 {
        let text = format!("agent {i}");
        alice.send(json!({"type": "message", "conversation": cid, "text": text}));
        visitor.expect_where("desk_message", |m| m["text"] == text.as_str());
        said.push(text);
        let text = format!("visitor {i}");
        visitor.say(&text);
        alice.expect_where("desk_message", |m| m["text"] == text.as_str());
        said.push(text);
    }

    // kill -9 of the node that runs the desk, by its PID.
    let mut a = nodes.remove(0);
    let _ = a.child.kill();
    let _ = a.child.wait();
    drop((alice, visitor));

    // The visitor comes back through C with its session, the agent through
    // B: once B or C has taken the desk over, both are served again.
    let (mut visitor, welcome) = Client::open_retrying(
        &nodes[1],
        &format!("/support?session={session}"),
        None,
        "welcome",
    );
    assert_eq!(welcome["resumed"], true);
    assert_eq!(welcome["conversation"], cid);
    let transcript = visitor.expect("transcript");
    assert_eq!(transcript["agent"], "alice");
    assert_eq!(texts(&transcript["messages"]), said);
    let auth = json!({"type": "auth", "token": token});
    let (mut alice, ready) = Client::open_retrying(&nodes[0], "/agent", Some(&auth), "ready");
    assert_eq!(ready["agent"], "alice");
    let list = alice.expect("conversations");
    let conv = &list["conversations"][0];
    assert_eq!(conv["conversation"], cid);
    assert_eq!(texts(&conv["messages"]), said);

    // The conversation goes on, both ways.
    alice.send(json!({"type": "message", "conversation": cid, "text": "still here"}));
    visitor.expect_where("desk_message", |m| m["text"] == "still here");
    visitor.say("thanks");
    alice.expect_where("desk_message", |m| {
        m["conversation"] == cid && m["text"] == "thanks"
    });
    alice.send(json!({"type": "resolve", "conversation": cid}));
    visitor.expect_where("resolved", |r| r["conversation"] == cid);
}

#[test]
fn an_agent_leaving_through_a_forwarding_node_gets_the_grace_period_then_the_queue() {
    let Some(redis) = RedisServer::start("cluster_desk_grace") else {
        return;
    };
    let alice_token = add_agent(&redis, "alice", &[]);
    let bob_token = add_agent(&redis, "bob", &[]);
    let grace = ["--agent-grace", "300ms"];
    let nodes = [
        node(&redis, &grace),
        node(&redis, &grace),
        node(&redis, &grace),
    ];
    // alice (through B) gets the visitor's (through C) conversation: she
    // has been waiting longer than bob, who signs in after her on A.
    let (alice, _) = Client::agent(&nodes[1], &alice_token);
    let (mut bob, _) = Client::agent(&nodes[0], &bob_token);
    let (mut visitor, _) = Client::visitor(&nodes[2], "");
    let (cid, agent) = open(&mut visitor, "hello");
    assert_eq!(agent.as_deref(), Some("alice"));
    // alice's console goes away: the desk (on A) sees it through B.
    drop(alice);
    let gone = visitor.expect("agent_status");
    assert_eq!(
        (gone["agent"].clone(), gone["online"].clone()),
        (json!("alice"), json!(false))
    );
    // Past the grace period the conversation is back in the queue, and
    // goes to bob on A, with its message.
    let assigned = bob.expect_where("assigned", |a| a["conversation"] == cid);
    assert_eq!(texts(&assigned["messages"]), ["hello"]);
    assert_eq!(visitor.expect("assigned")["agent"], "bob");
}

/// A command on the test's Redis, its reply.
fn redis_call(
    cluster: &wschat::cluster::Cluster,
    cmd: Cmd,
) -> Result<wschat::cluster::resp::Value, String> {
    cluster
        .client()
        .call(cmd, Duration::from_secs(5))
        .map_err(|e| e.to_string())
}

#[test]
fn the_desk_lease_has_one_holder_and_only_the_holder_adds_records() {
    let Some(mut redis) = RedisServer::start("cluster_desk_lease") else {
        return;
    };
    let cluster = wschat::cluster::accounts::connect(&redis.url(), Duration::from_secs(5)).unwrap();
    let lease = |me: &str| {
        let v = redis_call(
            &cluster,
            cluster.lease_cmd(me, wschat::cluster::desk::LEASE_TTL),
        )
        .unwrap();
        wschat::cluster::Cluster::parse_lease(v).unwrap()
    };
    let append = |me: &str, record: &str| redis_call(&cluster, cluster.desk_append_cmd(me, record));
    // The first caller takes it; the holder renews it; another is told who.
    assert_eq!(lease("n1 10.0.0.1:80"), "n1 10.0.0.1:80");
    assert_eq!(lease("n2 10.0.0.2:80"), "n1 10.0.0.1:80");
    assert_eq!(lease("n1 10.0.0.1:80"), "n1 10.0.0.1:80");
    // Only the holder adds records; they come back in order, across pages.
    let refused = append("n2 10.0.0.2:80", "{\"type\":\"desk_x\"}").unwrap_err();
    assert!(refused.contains("NOTHOLDER"), "{refused}");
    let count = DESK_RANGE + 500;
    for i in 0..count {
        let reply = append(
            "n1 10.0.0.1:80",
            &format!("{{\"type\":\"desk_x\",\"n\":{i}}}"),
        )
        .unwrap();
        assert!(reply.as_bytes().is_some(), "an entry id: {reply:?}");
    }
    let records = cluster.desk_records().unwrap();
    assert_eq!(records.len(), count);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r, &format!("{{\"type\":\"desk_x\",\"n\":{i}}}"));
    }
    // Given up by its holder only; then the next caller has it.
    let release = |me: &str| {
        redis_call(&cluster, cluster.release_cmd(me))
            .unwrap()
            .as_i64()
    };
    assert_eq!(release("n2 10.0.0.2:80"), Some(0));
    assert_eq!(release("n1 10.0.0.1:80"), Some(1));
    assert_eq!(lease("n2 10.0.0.2:80"), "n2 10.0.0.2:80");
    // Not renewed, it runs out, and another takes it; the former holder
    // adds nothing after that.
    let deadline = Instant::now() + WAIT;
    while lease("n3 10.0.0.3:80") != "n3 10.0.0.3:80" {
        assert!(Instant::now() < deadline, "the lease never ran out");
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = append("n2 10.0.0.2:80", "{}").unwrap_err();
    assert!(refused.contains("NOTHOLDER"), "{refused}");
    assert_eq!(cluster.desk_records().unwrap().len(), count);

    // A node stopped gracefully (SIGTERM) while it runs the desk gives the
    // lease up on its way out: right after it is gone, Redis no longer
    // names it (it would for up to LEASE_TTL otherwise).
    let key = Keys::new(wschat::cluster::DEFAULT_PREFIX).desk_lease();
    redis_call(&cluster, Cmd::new("DEL").arg(&key)).unwrap();
    let mut a = node(&redis, &[]);
    let held = redis_call(&cluster, Cmd::new("GET").arg(&key)).unwrap();
    let held = String::from_utf8(held.as_bytes().unwrap().to_vec()).unwrap();
    assert!(held.ends_with(&a.addr), "{held} runs the desk");
    let status = Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    a.child.wait().unwrap();
    let after = redis_call(&cluster, Cmd::new("GET").arg(&key)).unwrap();
    assert_eq!(after, wschat::cluster::resp::Value::Nil);
    redis.kill();
}

/// `wschat canned ARGS --redis URL`: whether it succeeded, and its output.
fn canned_cli(redis: &RedisServer, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .arg("canned")
        .args(args)
        .args(["--redis", &redis.url()])
        .env_remove("WSCHAT_DATA_DIR")
        .output()
        .expect("run wschat canned");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The shortcuts of a `canned` message.
fn shortcuts(canned: &Value) -> Vec<String> {
    canned["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shortcut"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn canned_replies_in_redis_are_the_whole_clusters() {
    let Some(redis) = RedisServer::start("cluster_desk_canned") else {
        return;
    };
    let token = add_agent(&redis, "alice", &[]);
    let (ok, out) = canned_cli(&redis, &["add", "hi", "Hello,", "how", "can", "I", "help?"]);
    assert!(ok, "{out}");
    // A runs the desk; the console on B is forwarded there.
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let (mut alice, _) = Client::agent(&b, &token);
    let canned = alice.expect_where("canned", |m| shortcuts(m) == ["hi"]);
    assert_eq!(canned["replies"][0]["text"], "Hello, how can I help?");
    // Added from the console: kept in Redis, seen by the command line.
    alice.send(json!({"type": "canned_add", "shortcut": "bye", "text": "Goodbye!"}));
    alice.expect_where("canned", |m| shortcuts(m) == ["bye", "hi"]);
    let (ok, out) = canned_cli(&redis, &["list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("/bye\tGoodbye!") && out.contains("/hi\t"),
        "{out}"
    );
    // Removed from the command line: every console is told.
    let (ok, out) = canned_cli(&redis, &["remove", "hi"]);
    assert!(ok, "{out}");
    alice.expect_where("canned", |m| shortcuts(m) == ["bye"]);
    let (ok, out) = canned_cli(&redis, &["remove", "hi"]);
    assert!(!ok && out.contains("no canned reply /hi"), "{out}");
    // A stops: B takes the desk, and its consoles get the cluster's list.
    drop(alice);
    drop(a);
    let deadline = Instant::now() + WAIT;
    loop {
        // Refused (503) while B still forwards to A, until it takes over.
        if let Some(mut again) = Client::try_connect(&b, "/agent") {
            again.send(json!({"type": "auth", "token": token}));
            if let Ok(canned) = again.next_of("canned")
                && shortcuts(&canned) == ["bye"]
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "B's desk never had the list");
        std::thread::sleep(Duration::from_millis(100));
    }
}
