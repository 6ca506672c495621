//! Several wschat nodes as one chat through a real `redis-server`
//! (issue 23, docs/cluster.md): each node a child process started with
//! `--redis`, clients on real sockets of 127.0.0.1.
//!
//! * a room across three nodes: 300 messages sent at once by clients on
//!   every node reach every client exactly once, in one order;
//! * a resume (`?since=`) on another node than the one the messages were
//!   sent to;
//! * a node killed (`kill -9`) while its clients send: they resume on
//!   another node with nothing they received or had confirmed lost;
//! * Redis cutting the nodes' connections (`CLIENT KILL`) while messages
//!   are on their way: every message answered, stored at most once,
//!   delivered once in order, the node healthy again after each cut;
//! * Redis restarted while a client sends: `unavailable` and `/healthz`
//!   503 while it is down, every confirmed message kept, and a resume
//!   after it without a gap.
#![cfg(target_os = "linux")]

#[path = "redis_support/node.rs"]
mod node;
#[path = "redis_support/mod.rs"]
mod redis_support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use wschat::WebSocket;
use wschat::ws::Message;

use node::{Node, healthz, node_with};
use redis_support::RedisServer;

const WAIT: Duration = Duration::from_secs(30);

/// Start a node on `redis` and wait until it serves and says it is healthy.
fn node(redis: &RedisServer) -> Node {
    node_with(redis, &[])
}

/// The secret of the tokens the nodes of `node_with(.., SIGNED_IN)` accept.
const SECRET: &str = "cluster-test-secret";
/// The flags of a node that signs users in with tokens of [`SECRET`].
const SIGNED_IN: [&str; 2] = ["--jwt-secret", SECRET];

impl Node {
    /// A node started later than the others (its state read from Redis).
    fn later(redis: &RedisServer, extra: &[&str]) -> Node {
        node_with(redis, extra)
    }
}

/// A client of `redis` for the test's own commands, connected.
pub fn admin(redis: &RedisServer) -> wschat::cluster::client::Client {
    use wschat::cluster::client::{Client, ClientConfig, Link};
    let (tx, _events) = crossbeam_channel::unbounded();
    let admin = Client::start(ClientConfig::from_url(&redis.url()).unwrap(), tx).unwrap();
    assert!(admin.wait_up(Link::Commands, WAIT));
    admin
}

/// A chat client.
struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connect to `target` on `node` and read up to `until` (a type).
    fn open(node: &Node, target: &str, until: &str) -> (Client, Value) {
        let ws = wschat::client::connect(&format!("ws://{}{target}", node.addr)).expect("connect");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut c = Client { ws };
        let v = c.until(|m| m["type"] == until);
        (c, v)
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.to_string())).expect("send");
    }

    fn next(&mut self) -> Value {
        loop {
            match self.ws.read_message().expect("a message within 20 s") {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Read until the server closes: the close code.
    fn until_close(&mut self) -> u16 {
        loop {
            if let Message::Close(c) = self.ws.read_message().expect("a message within 20 s") {
                return c.map_or(0, |c| c.code.0);
            }
        }
    }

    fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let m = self.next();
            if pred(&m) {
                return m;
            }
        }
    }
}

#[test]
fn a_room_across_three_nodes_gets_300_concurrent_messages_once_each_in_one_order() {
    let Some(redis) = RedisServer::start("cluster_room") else {
        return;
    };
    let nodes = [node(&redis), node(&redis), node(&redis)];
    const CLIENTS: usize = 6;
    const EACH: usize = 50;
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| Client::open(&nodes[i % 3], "/?room=shared", "history").0)
        .collect();
    // Everyone is in once a message from each node reached every client.
    for (i, c) in clients.iter_mut().enumerate().take(3) {
        c.send(&format!("ready {i}"));
    }
    for c in &mut clients {
        let mut seen = HashSet::new();
        while seen.len() < 3 {
            let m = c.until(|m| m["type"] == "chat");
            seen.insert(m["text"].as_str().unwrap().to_string());
        }
    }
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                for n in 0..EACH {
                    c.send(&format!("c{i} m{n}"));
                }
                let mut got = Vec::new();
                while got.len() < CLIENTS * EACH {
                    let m = c.until(|m| m["type"] == "chat");
                    let text = m["text"].as_str().unwrap().to_string();
                    if !text.starts_with("ready") {
                        got.push((m["id"].as_u64().unwrap(), text));
                    }
                }
                got
            })
        })
        .collect();
    let received: Vec<Vec<(u64, String)>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let first = &received[0];
    let texts: HashSet<&String> = first.iter().map(|(_, t)| t).collect();
    assert_eq!(texts.len(), CLIENTS * EACH, "every message once");
    assert!(
        first.windows(2).all(|w| w[0].0 < w[1].0),
        "in the log's order (ids increasing)"
    );
    for (i, other) in received.iter().enumerate() {
        assert_eq!(
            other, first,
            "client {i} got the same messages in the same order"
        );
    }
}

#[test]
fn a_resume_on_another_node_brings_what_was_sent_on_the_first() {
    let Some(redis) = RedisServer::start("cluster_resume") else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let (mut ann, _) = Client::open(&a, "/?room=resume", "history");
    let mut ids = Vec::new();
    for n in 0..5 {
        let text = format!("r{n}");
        ann.send(&text);
        let m = ann.until(|m| m["type"] == "chat" && m["text"] == text.as_str());
        ids.push(m["id"].as_u64().unwrap());
    }
    let since = ids[1];
    let (_bob, resume) = Client::open(&b, &format!("/?room=resume&since={since}"), "resume");
    assert_eq!(resume["complete"], true, "{resume}");
    let got: Vec<u64> = resume["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "chat")
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, ids[2..], "{resume}");
}

#[test]
fn a_redis_restart_refuses_while_down_and_loses_nothing_confirmed() {
    let Some(mut redis) = RedisServer::start("cluster_restart") else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let (mut ann, _) = Client::open(&a, "/?room=outage", "history");
    let (mut bob, _) = Client::open(&b, "/?room=outage", "history");
    let mut confirmed: Vec<(u64, String)> = Vec::new();
    let mut refused = 0;
    let mut restarted = false;
    let mut n = 0;
    // Send one at a time; each gets its own chat back (confirmed) or
    // `unavailable`. Redis is killed after 10, started again after the
    // first refusal (with /healthz 503 seen), and 10 more are confirmed.
    while !(restarted && confirmed.len() >= 20) {
        n += 1;
        let text = format!("o{n}");
        ann.send(&text);
        let m = ann
            .until(|m| (m["type"] == "chat" && m["text"] == text.as_str()) || m["type"] == "error");
        if m["type"] == "chat" {
            confirmed.push((m["id"].as_u64().unwrap(), text));
        } else {
            assert_eq!(m["code"], "unavailable", "{m}");
            refused += 1;
            if !restarted {
                let (status, why) = healthz(&a.addr);
                assert_eq!(status, 503, "/healthz while Redis is down: {why}");
                // A newcomer's join is written to the node's own store
                // meanwhile: that does not make the node healthy.
                let (_dan, _) = Client::open(&a, "/?room=outage", "history");
                let (status, why) = healthz(&a.addr);
                assert_eq!(
                    status, 503,
                    "/healthz after a join while Redis is down: {why}"
                );
                assert!(why.contains("Redis"), "{why}");
                redis.restart();
                restarted = true;
                let deadline = Instant::now() + WAIT;
                while healthz(&a.addr).0 != 200 {
                    assert!(Instant::now() < deadline, "healthy again after the restart");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if confirmed.len() == 10 && !restarted && refused == 0 {
            redis.kill();
        }
        assert!(n < 10_000, "no end");
    }
    assert!(refused > 0);
    // Everything confirmed reached bob on the other node, in order.
    let mut at_bob = Vec::new();
    while at_bob.len() < confirmed.len() {
        let m = bob.until(|m| m["type"] == "chat");
        let text = m["text"].as_str().unwrap().to_string();
        if confirmed.iter().any(|(_, t)| *t == text) {
            at_bob.push((m["id"].as_u64().unwrap(), text));
        }
    }
    assert_eq!(
        at_bob, confirmed,
        "bob got every confirmed message, in order"
    );
    // And a resume on the other node from before the outage has no gap.
    let since = confirmed[0].0;
    let (_carl, resume) = Client::open(&b, &format!("/?room=outage&since={since}"), "resume");
    assert_eq!(resume["complete"], true, "{resume}");
    let got: Vec<(u64, String)> = resume["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "chat")
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = confirmed[1..].to_vec();
    for c in &want {
        assert!(got.contains(c), "{c:?} confirmed, and in the resume");
    }
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn a_node_killed_under_load_its_clients_resume_elsewhere_with_nothing_lost() {
    let Some(redis) = RedisServer::start("cluster_kill") else {
        return;
    };
    let a = node(&redis);
    let mut b = node(&redis);
    let (mut ann, _) = Client::open(&a, "/?room=kill", "history");
    let (mut bob, _) = Client::open(&b, "/?room=kill", "history");
    // Ann (on a) sends without waiting; bob (on b) confirms his own.
    let sender = std::thread::spawn(move || {
        for n in 0..200 {
            ann.send(&format!("a{n}"));
        }
        ann
    });
    let mut bob_confirmed = Vec::new();
    let mut bob_received: Vec<(u64, String)> = Vec::new();
    for n in 0..20 {
        let text = format!("b{n}");
        bob.send(&text);
        let m = bob.until(|m| {
            if m["type"] == "chat" {
                let t = m["text"].as_str().unwrap().to_string();
                bob_received.push((m["id"].as_u64().unwrap(), t));
            }
            m["type"] == "chat" && m["text"] == text.as_str()
        });
        bob_confirmed.push(m["id"].as_u64().unwrap());
    }
    // kill -9 of bob's node, by its PID, in the middle of ann's sends.
    let _ = b.child.kill();
    let _ = b.child.wait();
    let mut ann = sender.join().unwrap();
    let last_seen = bob_received.last().unwrap().0;
    // Bob resumes on node a after the last message he received.
    let (_bob2, resume) = Client::open(&a, &format!("/?room=kill&since={last_seen}"), "resume");
    assert_eq!(resume["complete"], true, "{resume}");
    let resumed: Vec<u64> = resume["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "chat")
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(resumed.iter().all(|&id| id > last_seen));
    // Everything ann's node delivered to her is in the stream: what bob
    // received plus his resume (as far as the resume reached) has no gap.
    let mut at_ann = Vec::new();
    while at_ann.len() < 220 {
        let m = ann.until(|m| m["type"] == "chat");
        at_ann.push(m["id"].as_u64().unwrap());
    }
    let known: Vec<u64> = bob_received
        .iter()
        .map(|(id, _)| *id)
        .chain(resumed.iter().copied())
        .collect();
    let first_known = known[0];
    let last_known = *known.last().unwrap();
    let expected: Vec<u64> = at_ann
        .iter()
        .copied()
        .filter(|id| (first_known..=last_known).contains(id))
        .collect();
    assert_eq!(
        known, expected,
        "bob's messages before and after the kill, without gap or repeat"
    );
    for id in bob_confirmed {
        assert!(at_ann.contains(&id), "bob's confirmed {id} reached ann");
    }
}

#[test]
fn connections_to_redis_cut_mid_stream_store_and_deliver_each_message_once() {
    use wschat::cluster::client::{Client as Redis, ClientConfig, Cmd, Link};
    let Some(redis) = RedisServer::start("cluster_cut") else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let (mut ann, _) = Client::open(&a, "/?room=cut", "history");
    let (mut bob, _) = Client::open(&b, "/?room=cut", "history");
    let (tx, _events) = crossbeam_channel::unbounded();
    let admin = Redis::start(ClientConfig::from_url(&redis.url()).unwrap(), tx).unwrap();
    assert!(admin.wait_up(Link::Commands, WAIT));
    const BATCH: usize = 40;
    const CUTS: [&str; 4] = ["normal", "pubsub", "normal", "pubsub"];
    let (ready_tx, ready) = crossbeam_channel::unbounded::<()>();
    let (go, go_rx) = crossbeam_channel::unbounded::<()>();
    let a_addr = a.addr.clone();
    // Ann sends a batch; Redis cuts the nodes' connections of one kind
    // while the batch is on its way (replies in flight are lost and asked
    // again with their tokens; what is still to send is refused while the
    // link is down); every message is answered, her own chat back or
    // `unavailable`; once her node is healthy again, the next batch. The
    // last batch goes with no cut: all of it is confirmed.
    let sender = std::thread::spawn(move || {
        let (mut mine, mut refused) = (Vec::new(), 0);
        for batch in 0..=CUTS.len() {
            for n in 0..BATCH {
                ann.send(&format!("x{batch}-{n}"));
            }
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            let mut answered = 0;
            let mut batch_refused = 0;
            while answered < BATCH {
                let m = ann.until(|m| m["type"] == "chat" || m["type"] == "error");
                answered += 1;
                if m["type"] == "error" {
                    assert_eq!(m["code"], "unavailable", "{m}");
                    batch_refused += 1;
                } else {
                    let text = m["text"].as_str().unwrap().to_string();
                    mine.push((m["id"].as_u64().unwrap(), text));
                }
            }
            if batch == CUTS.len() {
                assert_eq!(
                    batch_refused, 0,
                    "the batch after the cuts is all confirmed"
                );
            }
            refused += batch_refused;
            let deadline = Instant::now() + WAIT;
            while healthz(&a_addr).0 != 200 {
                assert!(Instant::now() < deadline, "healthy again after the cut");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        (ann, mine, refused)
    });
    for kind in CUTS {
        ready.recv().unwrap();
        let cut = admin.call(Cmd::new("CLIENT").arg("KILL").arg("TYPE").arg(kind), WAIT);
        assert!(cut.is_ok(), "{cut:?}");
        go.send(()).unwrap();
    }
    ready.recv().unwrap();
    go.send(()).unwrap();
    let (mut ann, mine, refused) = sender.join().unwrap();
    let texts: HashSet<&String> = mine.iter().map(|(_, t)| t).collect();
    assert_eq!(
        texts.len(),
        mine.len(),
        "ann got each of hers once: {mine:?}"
    );
    // The end marker, confirmed, closes what bob must have.
    let end = loop {
        ann.send("end");
        let m = ann.until(|m| m["type"] == "chat" || m["type"] == "error");
        if m["type"] == "chat" {
            break m["id"].as_u64().unwrap();
        }
    };
    let mut at_bob: Vec<(u64, String)> = Vec::new();
    loop {
        let m = bob.until(|m| m["type"] == "chat");
        let id = m["id"].as_u64().unwrap();
        if id == end {
            break;
        }
        at_bob.push((id, m["text"].as_str().unwrap().to_string()));
    }
    assert!(
        at_bob.windows(2).all(|w| w[0].0 < w[1].0),
        "bob: in order, once each"
    );
    let bob_texts: HashSet<&String> = at_bob.iter().map(|(_, t)| t).collect();
    assert_eq!(bob_texts.len(), at_bob.len(), "no message stored twice");
    for m in &mine {
        assert!(at_bob.contains(m), "{m:?} confirmed to ann reached bob");
    }
    // A refused message may have been stored (its reply lost); at most once.
    assert!(at_bob.len() <= mine.len() + refused);
}

#[test]
fn ids_of_private_and_room_messages_never_repeat_across_nodes() {
    let Some(redis) = RedisServer::start("cluster_ids") else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let (mut ann, _) = Client::open(&a, "/?room=ids", "history");
    let (mut amy, welcome) = Client::open(&a, "/?room=ids", "welcome");
    let amy_id = welcome["user"]["id"].as_u64().expect("amy's id");
    let (mut bob, _) = Client::open(&b, "/?room=ids", "history");
    // Room messages on both nodes (ids from Redis's counter) and private
    // messages on one (ids of the node's own records), interleaved.
    let mut seen: Vec<(u64, String)> = Vec::new();
    for n in 0..10 {
        let text = format!("b{n}");
        bob.send(&serde_json::json!({"type": "chat", "text": text}).to_string());
        let m = bob.until(|m| m["type"] == "chat" && m["text"] == text.as_str());
        seen.push((m["id"].as_u64().unwrap(), text));
        let text = format!("p{n}");
        ann.send(&serde_json::json!({"type": "private", "to": amy_id, "text": text}).to_string());
        let m = amy.until(|m| m["type"] == "private" && m["text"] == text.as_str());
        seen.push((m["id"].as_u64().unwrap(), text));
        let text = format!("a{n}");
        ann.send(&serde_json::json!({"type": "chat", "text": text}).to_string());
        let m = ann.until(|m| m["type"] == "chat" && m["text"] == text.as_str());
        seen.push((m["id"].as_u64().unwrap(), text));
    }
    let mut ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "an id given twice: {seen:?}");
}

#[test]
fn one_sub_is_one_user_id_on_every_node() {
    let Some(redis) = RedisServer::start("cluster_identity") else {
        return;
    };
    let (a, b) = (node_with(&redis, &SIGNED_IN), node_with(&redis, &SIGNED_IN));
    let far = 4_000_000_000u64;
    let token = |sub: &str| {
        wschat::auth::sign(
            serde_json::json!({"sub": sub, "exp": far})
                .to_string()
                .as_bytes(),
            SECRET.as_bytes(),
        )
    };
    let user = |node: &Node, sub: &str| -> u64 {
        let (_c, w) = Client::open(node, &format!("/?token={}", token(sub)), "welcome");
        assert_eq!(w["user"]["sub"], sub, "{w}");
        w["user"]["id"].as_u64().expect("an id")
    };
    // First seen on b, then on a; first on a, then on b.
    let kim_b = user(&b, "kim");
    let kim_a = user(&a, "kim");
    let lee_a = user(&a, "lee");
    let lee_b = user(&b, "lee");
    assert_eq!(kim_a, kim_b, "kim is one user on both nodes");
    assert_eq!(lee_a, lee_b, "lee is one user on both nodes");
    assert_ne!(kim_a, lee_a);
    // And stays so on a node that starts later.
    let c = node_with(&redis, &SIGNED_IN);
    assert_eq!(user(&c, "kim"), kim_a);
    // Anonymous users of different nodes never share an id.
    let (_x, wx) = Client::open(&a, "/", "welcome");
    let (_y, wy) = Client::open(&b, "/", "welcome");
    let anon = [wx["user"]["id"].as_u64(), wy["user"]["id"].as_u64()];
    assert_ne!(anon[0], anon[1]);
    for id in anon {
        assert!(![Some(kim_a), Some(lee_a)].contains(&id));
    }
}

#[test]
fn with_redis_down_private_messages_are_refused_and_no_id_repeats() {
    use wschat::cluster::log::NO_ID_BASE;
    let Some(mut redis) = RedisServer::start("cluster_no_ids") else {
        return;
    };
    let a = node(&redis);
    let (mut ann, _) = Client::open(&a, "/?room=down", "history");
    let (mut amy, welcome) = Client::open(&a, "/?room=down", "welcome");
    let amy_id = welcome["user"]["id"].as_u64().expect("amy's id");
    let private = |ann: &mut Client, text: &str| -> Option<u64> {
        ann.send(&serde_json::json!({"type": "private", "to": amy_id, "text": text}).to_string());
        let m =
            ann.until(|m| (m["type"] == "private" && m["text"] == text) || m["type"] == "error");
        if m["type"] == "error" {
            assert_eq!(m["code"], "unavailable", "{m}");
            return None;
        }
        Some(m["id"].as_u64().unwrap())
    };
    let mut ids = vec![private(&mut ann, "before").expect("confirmed with Redis up")];
    redis.kill();
    let deadline = Instant::now() + WAIT;
    while healthz(&a.addr).0 != 503 {
        assert!(Instant::now() < deadline, "unhealthy without Redis");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Private messages are stored in Redis: none is confirmed while it
    // is down.
    for n in 0..20 {
        assert_eq!(private(&mut ann, &format!("d{n}")), None, "refused");
    }
    redis.restart();
    let deadline = Instant::now() + WAIT;
    while healthz(&a.addr).0 != 200 {
        assert!(Instant::now() < deadline, "healthy again after the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = private(&mut ann, "back").expect("confirmed with Redis back");
    ids.push(after);
    ann.send(r#"{"type":"chat","text":"room"}"#);
    let m = ann.until(|m| m["type"] == "chat" && m["text"] == "room");
    ids.push(m["id"].as_u64().unwrap());
    assert!(ids.iter().all(|&id| id < NO_ID_BASE));
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an id given twice");
    // Amy got the confirmed ones and none of the refused.
    let got: Vec<String> = (0..2)
        .map(|_| {
            amy.until(|m| m["type"] == "private")["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ["before", "back"]);
}

#[test]
fn an_anonymous_session_resumes_on_another_node_as_the_same_user() {
    use wschat::cluster::client::{Client as Redis, ClientConfig, Cmd, Link};
    let Some(redis) = RedisServer::start("cluster_session") else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let (first, welcome) = Client::open(&a, "/?room=s", "welcome");
    let id = welcome["user"]["id"].as_u64().expect("an id");
    let session = welcome["session"].as_str().expect("a session").to_string();
    drop(first);
    // The node records the session without waiting: wait until Redis has
    // it (a client reconnecting elsewhere comes later than this).
    let (tx, _events) = crossbeam_channel::unbounded();
    let admin = Redis::start(ClientConfig::from_url(&redis.url()).unwrap(), tx).unwrap();
    assert!(admin.wait_up(Link::Commands, WAIT));
    let deadline = Instant::now() + WAIT;
    loop {
        let keys = admin.call(Cmd::new("KEYS").arg("wschat:session:*"), WAIT);
        if matches!(&keys, Ok(wschat::cluster::resp::Value::Array(k)) if k.len() == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the session reached Redis");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_again, w) = Client::open(&b, &format!("/?room=s&session={session}"), "welcome");
    assert_eq!(
        w["user"]["id"].as_u64(),
        Some(id),
        "the same user on b: {w}"
    );
    assert_eq!(w["session"], session.as_str());
    // An unknown session is a new user, as on one node.
    let (_new, w) = Client::open(
        &b,
        "/?room=s&session=00112233445566778899aabbccddeeff",
        "welcome",
    );
    assert_ne!(w["user"]["id"].as_u64(), Some(id));
}

/// A token of [`SECRET`] for `sub`.
fn token_of(sub: &str) -> String {
    wschat::auth::sign(
        serde_json::json!({"sub": sub, "exp": 4_000_000_000u64})
            .to_string()
            .as_bytes(),
        SECRET.as_bytes(),
    )
}

/// Send a private message from `c` to `to` until it is confirmed (the
/// addressee's name reaches Redis without the sender's node waiting for
/// it, so the first try may find no such user yet); its id.
fn private_confirmed(c: &mut Client, to: u64, text: &str) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        c.send(&serde_json::json!({"type": "private", "to": to, "text": text}).to_string());
        let m = c.until(|m| (m["type"] == "private" && m["text"] == text) || m["type"] == "error");
        if m["type"] == "private" {
            return m["id"].as_u64().expect("an id");
        }
        assert_eq!(m["code"], "unknown_user", "{m}");
        assert!(Instant::now() < deadline, "the addressee became known");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rooms_and_private_messages_across_three_nodes_reach_every_device() {
    let Some(redis) = RedisServer::start("cluster_private") else {
        return;
    };
    let nodes = [
        node_with(&redis, &SIGNED_IN),
        node_with(&redis, &SIGNED_IN),
        node_with(&redis, &SIGNED_IN),
    ];
    let open = |n: usize, sub: &str| {
        let (mut c, w) = Client::open(
            &nodes[n],
            &format!("/?room=pm&token={}", token_of(sub)),
            "welcome",
        );
        c.until(|m| m["type"] == "history");
        (c, w["user"]["id"].as_u64().expect("an id"))
    };
    // Ann on node 0 and 2, Bob on node 1 and 2, Cy (a bystander) on 0.
    let (mut ann, ann_id) = open(0, "ann");
    let (mut bob, bob_id) = open(1, "bob");
    let (mut bob2, _) = open(2, "bob");
    let (mut ann2, _) = open(2, "ann");
    let (mut cy, _) = open(0, "cy");
    // A room message reaches everyone, on every node.
    ann.send(r#"{"type":"chat","text":"hello room"}"#);
    let room_id = ann.until(|m| m["type"] == "chat" && m["text"] == "hello room")["id"]
        .as_u64()
        .unwrap();
    for c in [&mut bob, &mut bob2, &mut ann2, &mut cy] {
        let m = c.until(|m| m["type"] == "chat" && m["text"] == "hello room");
        assert_eq!(m["id"].as_u64(), Some(room_id));
    }
    // Ann (node 0, where Bob never was) writes to Bob: every device of
    // Bob's, Ann's other device, and Ann herself get it, with one id.
    let first = private_confirmed(&mut ann, bob_id, "psst bob");
    for c in [&mut bob, &mut bob2, &mut ann2] {
        let m = c.until(|m| m["type"] == "private" && m["text"] == "psst bob");
        assert_eq!(m["id"].as_u64(), Some(first), "{m}");
        assert_eq!(m["from"]["id"].as_u64(), Some(ann_id));
        assert_eq!(m["to"]["id"].as_u64(), Some(bob_id));
    }
    // Bob answers from node 2.
    let second = private_confirmed(&mut bob2, ann_id, "hi ann");
    assert!(second > first, "ids in the order they were stored");
    for c in [&mut ann, &mut ann2, &mut bob] {
        let m = c.until(|m| m["type"] == "private" && m["text"] == "hi ann");
        assert_eq!(m["id"].as_u64(), Some(second), "{m}");
    }
    // The bystander got neither: the next thing it sees is a later room
    // message.
    bob.send(r#"{"type":"chat","text":"after"}"#);
    let m = cy.until(|m| m["type"] == "chat" || m["type"] == "private");
    assert_eq!(
        (&m["type"], &m["text"]),
        (&"chat".into(), &"after".into()),
        "no private message for a bystander: {m}"
    );
    // Bob resumes on node 0 (where he never was) from before it all: the
    // room message and both private messages, in id order.
    let (mut back, _) = Client::open(
        &nodes[0],
        &format!("/?room=pm&token={}&since={}", token_of("bob"), room_id - 1),
        "welcome",
    );
    let resume = back.until(|m| m["type"] == "resume");
    assert_eq!(resume["complete"], true, "{resume}");
    let ids: Vec<u64> = resume["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    for id in [room_id, first, second] {
        assert!(ids.contains(&id), "{id} in the resume: {resume}");
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    // His conversations and their history, read on node 0 too.
    back.send(r#"{"type":"privates"}"#);
    let list = back.until(|m| m["type"] == "privates");
    let with = &list["conversations"][0];
    assert_eq!(with["with"]["id"].as_u64(), Some(ann_id), "{list}");
    assert_eq!(with["last"]["id"].as_u64(), Some(second), "{list}");
    back.send(&serde_json::json!({"type": "private_history", "with": ann_id}).to_string());
    let page = back.until(|m| m["type"] == "private_history");
    let got: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(got, [first, second], "{page}");
    assert_eq!(page["complete"], true, "{page}");
}

/// The flags of a node whose presence runs out 3 s after its last
/// heartbeat (beating and reaping every second).
const QUICK_PRESENCE: [&str; 2] = ["--redis-presence-ttl", "3s"];

/// The ids of the users a `users` or `join`/`leave` message names.
fn user_ids(m: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = m["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

/// Wait until Redis lists `n` members of `room` (the nodes record their
/// members without waiting: a client arriving elsewhere comes later).
fn wait_members(redis: &RedisServer, room: &str, n: usize) {
    use wschat::cluster::client::Cmd;
    let admin = admin(redis);
    let deadline = Instant::now() + WAIT;
    loop {
        let cmd = Cmd::new("HLEN").arg(format!("wschat:presence:{room}"));
        if matches!(admin.call(cmd, WAIT), Ok(wschat::cluster::resp::Value::Int(k)) if k as usize == n)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{n} members of {room} in Redis");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn member_lists_and_notices_span_the_nodes_and_a_killed_node_leaves() {
    let Some(redis) = RedisServer::start("cluster_presence") else {
        return;
    };
    let flags = [SIGNED_IN.as_slice(), QUICK_PRESENCE.as_slice()].concat();
    let mut nodes: Vec<Node> = (0..3).map(|_| node_with(&redis, &flags)).collect();
    let open = |node: &Node, sub: &str| {
        let target = format!("/?room=here&token={}", token_of(sub));
        let (mut c, w) = Client::open(node, &target, "welcome");
        let users = c.until(|m| m["type"] == "users");
        (c, w["user"]["id"].as_u64().expect("an id"), users)
    };
    let notice = |c: &mut Client, kind: &str, who: u64| -> Value {
        c.until(|m| m["type"] == kind && user_ids(m) == [who])
    };
    let (mut ann, ann_id, users) = open(&nodes[0], "ann");
    assert_eq!(users["count"], 1, "{users}");
    // Bob on node 1: his list has Ann, Ann hears of him.
    wait_members(&redis, "here", 1);
    let (bob, bob_id, users) = open(&nodes[1], "bob");
    assert_eq!(user_ids(&users), [ann_id, bob_id], "{users}");
    assert_eq!(users["count"], 2);
    assert_eq!(notice(&mut ann, "join", bob_id)["count"], 2);
    // Cy on node 2: everyone is in everyone's list.
    wait_members(&redis, "here", 2);
    let (mut cy, cy_id, users) = open(&nodes[2], "cy");
    let mut all = vec![ann_id, bob_id, cy_id];
    all.sort_unstable();
    assert_eq!(user_ids(&users), all, "{users}");
    assert_eq!(users["count"], 3);
    notice(&mut cy, "join", cy_id);
    let mut bob = bob;
    for c in [&mut ann, &mut bob] {
        assert_eq!(notice(c, "join", cy_id)["count"], 3);
        c.send(r#"{"type":"users"}"#);
        let users = c.until(|m| m["type"] == "users");
        assert_eq!(user_ids(&users), all, "{users}");
    }
    // A second device of Ann's, on node 2, comes and goes: no news to
    // anyone (she is there all along); then Bob closes and leaves every
    // list: the next notice Cy and Ann get is that.
    let (ann2, _, users) = open(&nodes[2], "ann");
    assert_eq!(user_ids(&users), all, "{users}");
    drop(ann2);
    drop(bob);
    for c in [&mut ann, &mut cy] {
        let m = c.until(|m| m["type"] == "join" || m["type"] == "leave");
        assert_eq!(
            (m["type"].as_str(), user_ids(&m)),
            (Some("leave"), vec![bob_id]),
            "{m}"
        );
        assert_eq!(m["count"], 2, "{m}");
    }
    // Node 2 is killed (-9): within the presence TTL and a reap, Cy
    // leaves Ann's list.
    nodes[2].child.kill().expect("kill -9");
    let _ = nodes[2].child.wait();
    drop(cy);
    let leave = notice(&mut ann, "leave", cy_id);
    assert_eq!(leave["count"], 1, "{leave}");
    ann.send(r#"{"type":"users"}"#);
    let users = ann.until(|m| m["type"] == "users");
    assert_eq!(user_ids(&users), [ann_id], "{users}");
    drop(nodes);
}

#[test]
fn a_crowd_spread_over_two_nodes_is_counted_as_one() {
    let Some(redis) = RedisServer::start("cluster_crowd") else {
        return;
    };
    let nodes = [node(&redis), node(&redis)];
    let (mut watchers, _): (Vec<Client>, Vec<Value>) = nodes
        .iter()
        .map(|n| Client::open(n, "/?room=crowd", "users"))
        .unzip();
    // 50 more on each node: 102 members, past CROWD_SIZE (100), half of
    // them on the other node for each watcher.
    let mut crowd = Vec::new();
    for i in 0..100 {
        crowd.push(Client::open(&nodes[i % 2], "/?room=crowd", "history").0);
    }
    assert_eq!(wschat::chat::CROWD_SIZE, 100);
    for w in &mut watchers {
        // Notices name users until the room is a crowd; then a coalesced
        // count, which reaches every member of the cluster.
        let m = w.until(|m| m["type"] == "presence" && m["count"] == 102);
        assert_eq!(m["room"], "crowd", "{m}");
        w.send(r#"{"type":"users"}"#);
        let users = w.until(|m| m["type"] == "users");
        assert_eq!(users["count"], 102, "{users}");
        assert_eq!(users["more"], true, "a page of 100: {users}");
    }
    drop(crowd);
}

#[test]
fn typing_names_and_bans_reach_every_node() {
    let Some(redis) = RedisServer::start("cluster_events") else {
        return;
    };
    let (a, b) = (node_with(&redis, &SIGNED_IN), node_with(&redis, &SIGNED_IN));
    let open = |node: &Node, sub: &str| {
        let target = format!("/?room=t&name={sub}&token={}", token_of(sub));
        let (mut c, w) = Client::open(node, &target, "welcome");
        c.until(|m| m["type"] == "history");
        (c, w["user"]["id"].as_u64().expect("an id"))
    };
    let (mut ann, ann_id) = open(&a, "ann");
    wait_members(&redis, "t", 1);
    let (mut bob, _) = open(&b, "bob");
    ann.until(|m| m["type"] == "join" && m["users"][0]["name"] == "bob");
    // Typing on node A reaches Bob on node B.
    ann.send(r#"{"type":"typing","active":true}"#);
    let m = bob.until(|m| m["type"] == "typing");
    assert_eq!(m["user"]["id"].as_u64(), Some(ann_id), "{m}");
    assert_eq!((&m["room"], &m["active"]), (&"t".into(), &true.into()));
    // A new name on node A: Bob is told, and his list says it.
    ann.send(r#"{"type":"name","name":"annie"}"#);
    let m = bob.until(|m| m["type"] == "rename");
    assert_eq!(
        (&m["user"]["id"], &m["user"]["name"]),
        (&ann_id.into(), &"annie".into()),
        "{m}"
    );
    assert_eq!(m["old"], "ann");
    bob.send(r#"{"type":"users"}"#);
    let users = bob.until(|m| m["type"] == "users");
    let listed = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"].as_u64() == Some(ann_id))
        .cloned();
    assert_eq!(
        listed.map(|u| u["name"].clone()),
        Some("annie".into()),
        "{users}"
    );
    // An administrator on node B bans Ann: her connection on node A is
    // closed with 4003, and she cannot come back on either node, nor on
    // a node started after the ban.
    let admin_token = wschat::auth::sign(
        serde_json::json!({"sub": "mod", "exp": 4_000_000_000u64, "role": "admin"})
            .to_string()
            .as_bytes(),
        SECRET.as_bytes(),
    );
    let (mut admin, _) = Client::open(&b, &format!("/?room=t&token={admin_token}"), "history");
    admin.send(&serde_json::json!({"type": "ban", "user": ann_id, "minutes": 5}).to_string());
    assert_eq!(ann.until_close(), 4003, "closed on node A");
    let c = Node::later(&redis, &SIGNED_IN);
    for node in [&a, &b, &c] {
        let target = format!("ws://{}/?room=t&token={}", node.addr, token_of("ann"));
        let ws = wschat::client::connect(&target).expect("connect");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut again = Client { ws };
        assert_eq!(again.until_close(), 4003, "banned on {}", node.addr);
    }
}

#[test]
fn edits_reactions_replies_and_deletions_of_room_messages_on_every_node() {
    let Some(redis) = RedisServer::start("cluster_versions") else {
        return;
    };
    let (a, b) = (node_with(&redis, &SIGNED_IN), node_with(&redis, &SIGNED_IN));
    let open = |node: &Node, sub: &str| {
        let target = format!("/?room=e&name={sub}&token={}", token_of(sub));
        let (mut c, w) = Client::open(node, &target, "welcome");
        c.until(|m| m["type"] == "history");
        (c, w["user"]["id"].as_u64().expect("an id"))
    };
    let (mut ann, _) = open(&a, "ann");
    let (mut bob, bob_id) = open(&b, "bob");
    let chat = |c: &mut Client, body: Value| -> u64 {
        let text = body["text"].as_str().unwrap().to_string();
        c.send(&body.to_string());
        c.until(|m| m["type"] == "chat" && m["text"] == text.as_str())["id"]
            .as_u64()
            .unwrap()
    };
    let hello = chat(
        &mut ann,
        serde_json::json!({"type": "chat", "text": "hello"}),
    );
    bob.until(|m| m["type"] == "chat" && m["id"].as_u64() == Some(hello));
    // Bob (node B) answers Ann's message (stored on node A's turn): the
    // quote is there on both nodes.
    let answer = chat(
        &mut bob,
        serde_json::json!({"type": "chat", "text": "agreed", "reply": hello}),
    );
    let m = ann.until(|m| m["type"] == "chat" && m["id"].as_u64() == Some(answer));
    assert_eq!(m["reply"]["id"].as_u64(), Some(hello), "{m}");
    assert_eq!(m["reply"]["text"], "hello", "{m}");
    // Ann edits on A: Bob hears it; Bob reacts on B: Ann hears it.
    ann.send(&serde_json::json!({"type": "edit", "id": hello, "text": "hello all"}).to_string());
    let m = bob.until(|m| m["type"] == "edited");
    assert_eq!(
        (m["id"].as_u64(), &m["text"]),
        (Some(hello), &"hello all".into()),
        "{m}"
    );
    bob.send(&serde_json::json!({"type": "react", "id": hello, "emoji": "👍"}).to_string());
    let m = ann.until(|m| m["type"] == "reactions");
    assert_eq!(m["reactions"]["👍"], serde_json::json!([bob_id]), "{m}");
    // Bob's message, retracted by him on B; gone for Ann.
    let oops = chat(
        &mut bob,
        serde_json::json!({"type": "chat", "text": "oops"}),
    );
    bob.send(&serde_json::json!({"type": "retract", "id": oops}).to_string());
    let m = ann.until(|m| m["type"] == "deleted");
    assert_eq!(m["id"].as_u64(), Some(oops), "{m}");
    // An administrator on A deletes Bob's answer; Bob hears it.
    let admin_token = wschat::auth::sign(
        serde_json::json!({"sub": "mod", "exp": 4_000_000_000u64, "role": "admin"})
            .to_string()
            .as_bytes(),
        SECRET.as_bytes(),
    );
    let (mut admin, _) = Client::open(&a, &format!("/?room=e&token={admin_token}"), "history");
    admin.send(&serde_json::json!({"type": "delete", "id": answer}).to_string());
    let m = bob.until(|m| m["type"] == "deleted" && m["id"].as_u64() != Some(oops));
    assert_eq!(m["id"].as_u64(), Some(answer), "{m}");
    // History on every node, a node started now included: the latest
    // version, without what was deleted.
    let c = Node::later(&redis, &SIGNED_IN);
    for node in [&a, &b, &c] {
        let (_c, history) = Client::open(node, "/?room=e", "history");
        let messages = history["messages"].as_array().unwrap();
        let ids: Vec<u64> = messages.iter().filter_map(|m| m["id"].as_u64()).collect();
        assert_eq!(ids, [hello], "{history}");
        assert_eq!(messages[0]["text"], "hello all", "{history}");
        assert!(messages[0]["edited"].is_u64(), "{history}");
        assert_eq!(messages[0]["reactions"]["👍"], serde_json::json!([bob_id]));
    }
}

#[test]
fn history_and_resume_older_than_the_cache_come_from_the_stream() {
    let Some(redis) = RedisServer::start("cluster_older") else {
        return;
    };
    let a = node(&redis);
    // Node B keeps 5 messages of a room.
    let b = node_with(&redis, &["--redis-cache", "5"]);
    let (mut ann, _) = Client::open(&a, "/?room=old", "history");
    let mut ids = Vec::new();
    for n in 0..20 {
        let text = format!("m{n}");
        ann.send(&serde_json::json!({"type": "chat", "text": text}).to_string());
        let m = ann.until(|m| m["type"] == "chat" && m["text"] == text.as_str());
        ids.push(m["id"].as_u64().unwrap());
    }
    // One deleted (by its author, on A): never served again.
    ann.send(&serde_json::json!({"type": "retract", "id": ids[3]}).to_string());
    ann.until(|m| m["type"] == "deleted");
    let live: Vec<u64> = ids.iter().copied().filter(|&id| id != ids[3]).collect();
    let ids_of = |m: &Value| -> Vec<u64> {
        m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_u64())
            .collect()
    };
    // On B: the first history (50) reaches back past its cache of 5.
    let (mut bob, history) = Client::open(&b, "/?room=old", "history");
    assert_eq!(ids_of(&history), live, "{history}");
    assert_eq!(history["complete"], true, "{history}");
    // A page before the 10th: the three before it, whole.
    bob.send(&serde_json::json!({"type": "history", "before": ids[9], "limit": 3}).to_string());
    let page = bob.until(|m| m["type"] == "history");
    assert_eq!(ids_of(&page), &ids[6..9], "{page}");
    assert_eq!(page["complete"], true, "{page}");
    // A resume on B from after the 2nd: everything since, in order.
    let (_c, resume) = Client::open(&b, &format!("/?room=old&since={}", ids[1]), "resume");
    assert_eq!(ids_of(&resume), &live[2..], "{resume}");
    assert_eq!(resume["complete"], true, "{resume}");
}

/// The entries of `key`'s stream in `redis`.
fn stream_len(redis: &RedisServer, key: &str) -> i64 {
    use wschat::cluster::client::Cmd;
    let admin = admin(redis);
    match admin.call(Cmd::new("XLEN").arg(key), WAIT) {
        Ok(wschat::cluster::resp::Value::Int(n)) => n,
        other => panic!("XLEN {key}: {other:?}"),
    }
}

#[test]
fn a_rooms_stream_is_trimmed_to_redis_stream_maxlen() {
    let Some(redis) = RedisServer::start("cluster_trim") else {
        return;
    };
    // Trimming is approximate (MAXLEN ~): Redis drops whole nodes of its
    // radix tree, 100 entries each by default, so 10 keeps at most 110.
    let short = node_with(&redis, &["--redis-stream-maxlen", "10"]);
    let mut c = Client::open(&short, "/?room=short", "history").0;
    const SENT: usize = 400;
    for n in 0..SENT {
        c.send(&format!("m{n}"));
    }
    // The last confirmation: every message before it is stored.
    c.until(|m| m["type"] == "chat" && m["text"] == format!("m{}", SENT - 1));
    let kept = stream_len(&redis, "wschat:room:short:log");
    assert!(
        (10..=110).contains(&kept),
        "{kept} of {SENT} entries kept with --redis-stream-maxlen 10"
    );
    // 0 keeps any number.
    let all = node_with(&redis, &["--redis-stream-maxlen", "0"]);
    let mut c = Client::open(&all, "/?room=all", "history").0;
    for n in 0..SENT {
        c.send(&format!("m{n}"));
    }
    c.until(|m| m["type"] == "chat" && m["text"] == format!("m{}", SENT - 1));
    assert_eq!(stream_len(&redis, "wschat:room:all:log"), SENT as i64);
}

#[test]
fn the_desk_lease_lasts_redis_desk_lease() {
    use wschat::cluster::client::Cmd;
    let Some(redis) = RedisServer::start("cluster_lease") else {
        return;
    };
    let _node = node_with(&redis, &["--redis-desk-lease", "20s"]);
    let admin = admin(&redis);
    // The node takes the lease at its first tick; the default (3 s) could
    // never leave more than 3,000 ms.
    let deadline = Instant::now() + WAIT;
    loop {
        let ttl = match admin.call(Cmd::new("PTTL").arg("wschat:desk:lease"), WAIT) {
            Ok(wschat::cluster::resp::Value::Int(ms)) => ms,
            other => panic!("PTTL: {other:?}"),
        };
        if ttl > 3_000 {
            assert!(ttl <= 20_000, "{ttl} ms");
            return;
        }
        assert!(Instant::now() < deadline, "no lease of 20 s (PTTL {ttl})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `POST path` with `body` and the API key `key` to `node`: the status and
/// the JSON body.
fn api_post(node: &Node, key: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(&node.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn the_http_api_answers_the_id_every_node_delivers() {
    let Some(redis) = RedisServer::start("cluster_api") else {
        return;
    };
    let a = node_with(&redis, &["--api-key", "site-key"]);
    let b = node(&redis);
    let mut here = Client::open(&a, "/?room=news&name=reader1", "history").0;
    let mut there = Client::open(&b, "/?room=news&name=reader2", "history").0;
    // Ids the counter gave out before, so that a provisional id of node
    // A's own block could not be the final one by chance.
    for n in 0..5 {
        there.send(&format!("before {n}"));
        there.until(|m| m["type"] == "chat" && m["text"] == format!("before {n}"));
    }
    let (status, answer) = api_post(
        &a,
        "site-key",
        "/api/publish",
        r#"{"room":"news","text":"from the site"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let id = answer["id"].as_u64().expect("an id");
    for c in [&mut here, &mut there] {
        let m = c.until(|m| m["type"] == "chat" && m["text"] == "from the site");
        assert_eq!(m["id"].as_u64(), Some(id), "the answer names the stored id");
    }
}
