//! The Redis client and the cluster's primitives (src/cluster/) against a
//! real redis-server of the test's own (tests/redis_support/): replies of
//! every type, pipelining, re-dial and re-subscribe after `kill -9`, the
//! append script's ids under concurrent callers, stream ranges, pub/sub,
//! presence with heartbeats and expiry. Run by `.ci/cluster.sh`.

mod redis_support;

use crossbeam_channel::{Receiver, bounded, unbounded};
use redis_support::RedisServer;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use wschat::cluster::client::{Client, ClientConfig, Cmd, Error, Event, Link};
use wschat::cluster::order::RoomOrder;
use wschat::cluster::resp::Value;
use wschat::cluster::{Cluster, Entry, Keys, Published, Template, Trim, complete_after};

/// How long anything may take before the test fails; generous, for a busy
/// machine. Never a pass condition.
const TIMEOUT: Duration = Duration::from_secs(20);

fn client(server: &RedisServer) -> (Client, Receiver<Event>) {
    let mut config = ClientConfig::from_url(&server.url()).unwrap();
    // Quick re-dials keep the reconnect test short; the logic is the same.
    config.backoff_max = Duration::from_millis(200);
    let (tx, rx) = unbounded();
    let client = Client::start(config, tx).unwrap();
    assert!(
        client.wait_up(Link::Commands, TIMEOUT),
        "the command link never came up"
    );
    (client, rx)
}

fn cluster(server: &RedisServer, prefix: &str, trim: Trim) -> (Cluster, Receiver<Event>) {
    let (client, events) = client(server);
    (
        Cluster::new(client, Keys::new(prefix), trim, TIMEOUT),
        events,
    )
}

/// The next event that `pick` takes, skipping others; fails after TIMEOUT.
fn wait_for<T>(
    events: &Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                if let Some(t) = pick(&event) {
                    return t;
                }
            }
            Err(_) => panic!("no {what} within {TIMEOUT:?}"),
        }
    }
}

fn bulk(s: &[u8]) -> Value {
    Value::Bulk(s.to_vec())
}

#[test]
fn replies_of_every_type_and_pipelining() {
    let Some(server) = RedisServer::start("replies_of_every_type_and_pipelining") else {
        return;
    };
    let (client, _events) = client(&server);
    let call = |cmd| client.call(cmd, TIMEOUT);
    // Binary-safe bulk strings, CRLF and NUL inside.
    let odd = b"a\r\nb\0c \xff".to_vec();
    assert_eq!(
        call(Cmd::new("SET").arg("k").arg(&odd)),
        Ok(Value::Status(b"OK".to_vec()))
    );
    assert_eq!(call(Cmd::new("GET").arg("k")), Ok(bulk(&odd)));
    assert_eq!(call(Cmd::new("GET").arg("missing")), Ok(Value::Nil));
    assert_eq!(
        call(Cmd::new("INCRBY").arg("n").arg("-5")),
        Ok(Value::Int(-5))
    );
    call(Cmd::new("RPUSH").arg("l").arg("x").arg("").arg("z")).unwrap();
    assert_eq!(
        call(Cmd::new("LRANGE").arg("l").arg("0").arg("-1")),
        Ok(Value::Array(vec![bulk(b"x"), bulk(b""), bulk(b"z")]))
    );
    // An error reply fails that command only.
    match call(Cmd::new("INCR").arg("k")) {
        Err(Error::Server(e)) => assert!(e.starts_with("ERR"), "{e}"),
        other => panic!("INCR of a string: {other:?}"),
    }
    assert_eq!(call(Cmd::new("PING")), Ok(Value::Status(b"PONG".to_vec())));

    // Pipelined: many requests written before their replies are read; the
    // replies come back in order, each with its request's tag.
    let (tx, rx) = unbounded();
    const N: u64 = 2000;
    for tag in 0..N {
        loop {
            match client.send(Cmd::new("INCR").arg("counter"), tag, &tx) {
                Ok(()) => break,
                Err(Error::Busy) => std::thread::yield_now(),
                Err(e) => panic!("send: {e}"),
            }
        }
    }
    for tag in 0..N {
        let reply = rx.recv_timeout(TIMEOUT).expect("a reply");
        assert_eq!(reply.tag, tag);
        assert_eq!(reply.result, Ok(Value::Int(tag as i64 + 1)));
    }
    // A large reply crosses many reads.
    let big = vec![b'x'; 3 * 1024 * 1024];
    call(Cmd::new("SET").arg("big").arg(&big)).unwrap();
    assert_eq!(call(Cmd::new("GET").arg("big")), Ok(Value::Bulk(big)));
}

#[test]
fn redial_and_resubscribe_after_kill() {
    let Some(mut server) = RedisServer::start("redial_and_resubscribe_after_kill") else {
        return;
    };
    let (client, events) = client(&server);
    client.subscribe("news");
    wait_for(&events, "Subscribed(news)", |e| {
        (*e == Event::Subscribed(b"news".to_vec())).then_some(())
    });
    let (publisher, _pe) = self::client(&server);

    server.kill();
    let mut down = HashSet::new();
    while down.len() < 2 {
        down.insert(wait_for(&events, "Down", |e| match e {
            Event::Down(link, _) => Some(*link),
            _ => None,
        }));
    }
    // While it is down, a request is refused at once: nobody waits on it.
    assert!(!client.is_up(Link::Commands));
    assert_eq!(
        client.call(Cmd::new("PING"), TIMEOUT),
        Err(Error::Unavailable)
    );

    server.restart();
    wait_for(&events, "Up(Subscriber)", |e| {
        (*e == Event::Up(Link::Subscriber)).then_some(())
    });
    wait_for(&events, "Subscribed(news) again", |e| {
        (*e == Event::Subscribed(b"news".to_vec())).then_some(())
    });
    assert!(client.wait_up(Link::Commands, TIMEOUT));
    assert!(publisher.wait_up(Link::Commands, TIMEOUT));
    assert_eq!(
        publisher.call(Cmd::new("PUBLISH").arg("news").arg("after"), TIMEOUT),
        Ok(Value::Int(1))
    );
    let payload = wait_for(&events, "the message", |e| match e {
        Event::Message { channel, payload } if channel == b"news" => Some(payload.clone()),
        _ => None,
    });
    assert_eq!(payload, b"after");
    assert_eq!(
        client.call(Cmd::new("PING"), TIMEOUT),
        Ok(Value::Status(b"PONG".to_vec()))
    );

    // Unsubscribed: what is published next is not received.
    client.unsubscribe("news");
    client.subscribe("other");
    wait_for(&events, "Subscribed(other)", |e| {
        (*e == Event::Subscribed(b"other".to_vec())).then_some(())
    });
    publisher
        .call(Cmd::new("PUBLISH").arg("news").arg("late"), TIMEOUT)
        .unwrap();
    publisher
        .call(Cmd::new("PUBLISH").arg("other").arg("marker"), TIMEOUT)
        .unwrap();
    let first = wait_for(&events, "a message", |e| match e {
        Event::Message { payload, .. } => Some(payload.clone()),
        _ => None,
    });
    assert_eq!(first, b"marker");
}

#[test]
fn appended_ids_are_unique_and_increasing_under_concurrent_callers() {
    let Some(server) = RedisServer::start("appended_ids_are_unique") else {
        return;
    };
    const THREADS: usize = 6;
    const EACH: usize = 60;
    // Every tenth append, a node also reserves a block of ids for its own
    // records: never a room message's id, nor another block's.
    const BLOCK: u64 = 5;
    let rooms = ["a", "b", "c"];
    let (first, _e) = cluster(&server, "t", Trim::default());
    // A node that served alone before joins: its ids stay below.
    assert_eq!(first.raise_ids(1000).unwrap(), 1000);
    assert_eq!(first.raise_ids(10).unwrap(), 1000);
    // Scripts go by their SHA-1; a server that forgot them (a restart, a
    // flush) is sent their text once more.
    assert_eq!(
        first
            .client()
            .call(Cmd::new("SCRIPT").arg("FLUSH"), TIMEOUT),
        Ok(Value::Status(b"OK".to_vec()))
    );
    assert_eq!(first.raise_ids(1000).unwrap(), 1000);
    let ids: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let server = &server;
                s.spawn(move || {
                    let (node, _e) = cluster(server, "t", Trim::default());
                    let mut mine = Vec::new();
                    for i in 0..EACH {
                        if i % 10 == 0 {
                            let block = node.reserve_ids(BLOCK, 0).unwrap();
                            assert_eq!(block.end - block.start, BLOCK);
                            mine.extend(block);
                        }
                        let room = rooms[(t + i) % rooms.len()];
                        let text = format!(r#","room":"{room}","text":"{t}/{i}"}}"#);
                        let got = node
                            .append(room, &Template::new(r#"{"id":"#, &text))
                            .unwrap();
                        assert!(got.prev < got.id);
                        mine.push(got.id);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = HashSet::new();
    for mine in &ids {
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one caller's ids grow"
        );
        for id in mine {
            assert!(*id > 1000);
            assert!(all.insert(*id), "id {id} given twice");
        }
    }
    let blocks = THREADS * (EACH / 10) * BLOCK as usize;
    assert_eq!(all.len(), THREADS * EACH + blocks);
    // A block reserved with a floor starts above it.
    assert_eq!(first.reserve_ids(3, 5000).unwrap(), 5001..5004);
    // Each room's stream: ids growing, each entry naming the one before,
    // each message holding its own id.
    let mut seen = 0;
    for room in rooms {
        let entries = first.read_after(room, 0, 1000).unwrap();
        assert!(complete_after(0, &entries, entries.last().unwrap().id));
        let mut prev = 0;
        for e in &entries {
            assert_eq!(e.prev, prev, "room {room}: the chain of prev ids");
            let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
            assert_eq!(v["id"].as_u64(), Some(e.id));
            assert_eq!(v["room"].as_str(), Some(room));
            prev = e.id;
        }
        seen += entries.len();
    }
    assert_eq!(seen, THREADS * EACH);
}

#[test]
fn stream_ranges_after_and_before_and_trimming() {
    let Some(server) = RedisServer::start("stream_ranges") else {
        return;
    };
    let (node, _e) = cluster(&server, "r", Trim::default());
    let (other, _o) = cluster(&server, "r", Trim::default());
    let mut ids = Vec::new();
    for i in 0..30 {
        // Another room takes ids in between: a room's ids are not consecutive.
        other
            .append("elsewhere", &Template::new(r#"{"id":"#, "}"))
            .unwrap();
        let got = node
            .append(
                "lobby",
                &Template::new(r#"{"id":"#, &format!(r#","n":{i}}}"#)),
            )
            .unwrap();
        ids.push(got.id);
    }
    let range = |entries: Vec<Entry>| entries.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(range(node.read_after("lobby", 0, 10).unwrap()), ids[..10]);
    assert_eq!(
        range(node.read_after("lobby", ids[9], 5).unwrap()),
        ids[10..15]
    );
    // `since` between two of the room's ids.
    assert_eq!(
        range(node.read_after("lobby", ids[9] + 1, 3).unwrap()),
        ids[10..13]
    );
    assert_eq!(
        range(node.read_after("lobby", ids[29], 5).unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        range(node.read_before("lobby", None, 4).unwrap()),
        ids[26..]
    );
    assert_eq!(
        range(node.read_before("lobby", Some(ids[20]), 5).unwrap()),
        ids[15..20]
    );
    assert_eq!(
        range(node.read_before("lobby", Some(ids[2]), 10).unwrap()),
        ids[..2]
    );
    assert_eq!(
        range(node.read_before("nowhere", None, 10).unwrap()),
        Vec::<u64>::new()
    );

    // Trimmed to about 10 entries: a read from the start is not complete.
    let (small, _s) = cluster(
        &server,
        "small",
        Trim {
            max_len: 10,
            max_age_ms: 0,
        },
    );
    let mut last = 0;
    for _ in 0..500 {
        last = small
            .append("r", &Template::new(r#"{"id":"#, "}"))
            .unwrap()
            .id;
    }
    let kept = small.read_after("r", 0, 1000).unwrap();
    assert!(
        kept.len() < 500 && kept.last().unwrap().id == last,
        "trimmed, newest kept"
    );
    assert!(!complete_after(0, &kept, last));
    let tail = small.read_after("r", last - 3, 10).unwrap();
    assert!(complete_after(last - 3, &tail, last));

    // Trimmed by age (50 ms): appending long enough drops the first ones.
    let (young, _y) = cluster(
        &server,
        "young",
        Trim {
            max_len: 0,
            max_age_ms: 50,
        },
    );
    let first = young
        .append("r", &Template::new(r#"{"id":"#, "}"))
        .unwrap()
        .id;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let last = young
            .append("r", &Template::new(r#"{"id":"#, "}"))
            .unwrap()
            .id;
        let kept = young.read_after("r", 0, 1).unwrap();
        if kept[0].id != first {
            assert!(!complete_after(0, &kept, last));
            break;
        }
        assert!(Instant::now() < deadline, "nothing was ever trimmed by age");
        std::thread::yield_now();
    }
}

#[test]
fn appended_messages_are_published_once_with_their_chain() {
    let Some(server) = RedisServer::start("appended_messages_are_published") else {
        return;
    };
    let (node, _e) = cluster(&server, "p", Trim::default());
    let (listener, events) = cluster(&server, "p", Trim::default());
    let channel = listener.keys().channel("lobby");
    listener.client().subscribe(&channel);
    wait_for(&events, "Subscribed", |e| {
        (*e == Event::Subscribed(channel.clone())).then_some(())
    });

    let a = node
        .append("lobby", &Template::new(r#"{"id":"#, r#","text":"one"}"#))
        .unwrap();
    let b = node
        .append("lobby", &Template::new(r#"{"id":"#, r#","text":"two"}"#))
        .unwrap();
    assert_eq!(
        node.publish_event("lobby", br#"{"type":"typing"}"#)
            .unwrap(),
        1
    );
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(wait_for(&events, "a publish", |e| match e {
            Event::Message {
                channel: c,
                payload,
            } if *c == channel => Published::parse(payload),
            _ => None,
        }));
    }
    assert_eq!(
        got,
        vec![
            Published::Message(Entry {
                id: a.id,
                prev: 0,
                json: format!(r#"{{"id":{},"text":"one"}}"#, a.id)
            }),
            Published::Message(Entry {
                id: b.id,
                prev: a.id,
                json: format!(r#"{{"id":{},"text":"two"}}"#, b.id)
            }),
            Published::Event(br#"{"type":"typing"}"#.to_vec()),
        ]
    );
    // What was published is what the stream holds.
    let stored = node.read_after("lobby", 0, 10).unwrap();
    assert_eq!(Published::Message(stored[1].clone()), got[1]);

    // An append asked again with its token (its reply was lost) is stored
    // and published once, and answers the same id.
    let t = Template::new(r#"{"id":"#, r#","text":"three"}"#);
    let c = node.append_once("lobby", &t, "node-1:17").unwrap();
    assert_eq!(node.append_once("lobby", &t, "node-1:17").unwrap(), c);
    let d = node.append_once("lobby", &t, "node-1:18").unwrap();
    assert_eq!((c.prev, d.prev), (b.id, c.id));
    let ids: Vec<u64> = node
        .read_after("lobby", b.id, 10)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [c.id, d.id]);
    let mut published = Vec::new();
    while published.len() < 2 {
        published.push(wait_for(&events, "a publish", |e| match e {
            Event::Message { payload, .. } => match Published::parse(payload) {
                Some(Published::Message(entry)) => Some(entry.id),
                _ => None,
            },
            _ => None,
        }));
    }
    assert_eq!(published, [c.id, d.id]);
}

#[test]
fn presence_heartbeats_expiry_and_departure() {
    let Some(server) = RedisServer::start("presence") else {
        return;
    };
    let (a, events) = cluster(&server, "q", Trim::default());
    let (b, _e) = cluster(&server, "q", Trim::default());
    let gone = a.keys().gone_channel();
    a.client().subscribe(&gone);
    wait_for(&events, "Subscribed(gone)", |e| {
        (*e == Event::Subscribed(gone.as_bytes().to_vec())).then_some(())
    });

    let long = Duration::from_secs(600);
    assert!(
        a.heartbeat("node-a", long).unwrap().rejoin,
        "a first beat asks for the members"
    );
    assert!(!a.heartbeat("node-a", long).unwrap().rejoin);
    assert!(b.heartbeat("node-b", long).unwrap().rejoin);
    a.join("node-a", "lobby", "u1", b"{\"name\":\"Ann\"}")
        .unwrap();
    a.join("node-a", "help", "u1", b"{}").unwrap();
    b.join("node-b", "lobby", "u2", b"{\"name\":\"Bo\"}")
        .unwrap();
    b.join("node-b", "lobby", "u3", b"{}").unwrap();
    b.leave("node-b", "lobby", "u3").unwrap();
    let names = |members: Vec<wschat::cluster::Member>| {
        let mut v: Vec<_> = members
            .into_iter()
            .map(|m| format!("{}/{}", m.node, m.member))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(a.members("lobby").unwrap()),
        ["node-a/u1", "node-b/u2"]
    );
    assert_eq!(
        a.members("lobby")
            .unwrap()
            .iter()
            .find(|m| m.member == "u1")
            .unwrap()
            .info,
        b"{\"name\":\"Ann\"}"
    );

    // node-b's heartbeat runs out (a TTL of 1 ms): it no longer counts,
    // and the next reap takes its members out and says so.
    b.heartbeat("node-b", Duration::from_millis(1)).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if a.reap().unwrap() == ["node-b"] {
            break;
        }
        assert!(Instant::now() < deadline, "node-b never expired");
        std::thread::yield_now();
    }
    assert_eq!(names(a.members("lobby").unwrap()), ["node-a/u1"]);
    let said = wait_for(&events, "node-b gone", |e| match e {
        Event::Message { payload, .. } => Some(payload.clone()),
        _ => None,
    });
    assert_eq!(said, b"node-b");
    // Back after a stall: told to record its members again.
    assert!(b.heartbeat("node-b", long).unwrap().rejoin);

    // node-a stops and says so.
    assert_eq!(a.depart("node-a").unwrap(), ["node-a"]);
    assert_eq!(names(a.members("lobby").unwrap()), Vec::<String>::new());
    assert_eq!(names(a.members("help").unwrap()), Vec::<String>::new());
}

#[test]
fn requests_never_wait_when_redis_is_absent() {
    // No server at all: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ClientConfig::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
    let (tx, events) = bounded(16);
    let client = Client::start(config, tx).unwrap();
    let down = wait_for(&events, "Down", |e| match e {
        Event::Down(Link::Commands, why) => Some(why.clone()),
        _ => None,
    });
    assert!(!down.is_empty());
    let (rtx, _rrx) = unbounded();
    assert_eq!(
        client.send(Cmd::new("PING"), 1, &rtx),
        Err(Error::Unavailable)
    );
}

#[test]
fn confirmed_appends_survive_kill_9_and_a_retried_token_appends_nothing() {
    let Some(mut server) = RedisServer::start("confirmed_appends_survive_kill_9") else {
        return;
    };
    let (node, events) = cluster(&server, "k", Trim::default());
    let mut confirmed = Vec::new();
    for i in 0..50 {
        let t = Template::new(r#"{"id":"#, &format!(r#","n":{i}}}"#));
        confirmed.push(
            node.append_once("lobby", &t, &format!("node-1:{i}"))
                .unwrap(),
        );
    }
    // kill -9 right after the last reply: with appendonly yes and
    // appendfsync always, what was confirmed is on disk.
    server.kill();
    wait_for(&events, "Down(Commands)", |e| {
        matches!(e, Event::Down(Link::Commands, _)).then_some(())
    });
    server.restart();
    assert!(node.client().wait_up(Link::Commands, TIMEOUT));
    let stored = node.read_after("lobby", 0, 100).unwrap();
    assert_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>(),
        confirmed.iter().map(|a| a.id).collect::<Vec<_>>()
    );
    // The last append asked again (as after a lost reply): the same id,
    // nothing appended; the counter went on from where it was.
    let t = Template::new(r#"{"id":"#, r#","n":49}"#);
    assert_eq!(
        node.append_once("lobby", &t, "node-1:49").unwrap(),
        confirmed[49]
    );
    let next = node
        .append("lobby", &Template::new(r#"{"id":"#, "}"))
        .unwrap();
    assert_eq!(next.prev, confirmed[49].id);
    assert!(next.id > confirmed[49].id);
    assert_eq!(node.read_after("lobby", 0, 100).unwrap().len(), 51);
}

#[test]
fn a_subscriber_cut_off_mid_stream_still_delivers_everything_once_in_order() {
    let Some(server) = RedisServer::start("a_subscriber_cut_off_mid_stream") else {
        return;
    };
    const N: usize = 300;
    const LIMIT: usize = 16;
    let (node, events) = cluster(&server, "g", Trim::default());
    let channel = node.keys().channel("lobby");
    node.client().subscribe(&channel);
    wait_for(&events, "Subscribed", |e| {
        (*e == Event::Subscribed(channel.clone())).then_some(())
    });

    // Another node appends; twice on the way Redis cuts this node's
    // subscriber connection off (as it does to a slow one).
    let (done_tx, mut done_rx) = bounded(1);
    let (back_tx, back_rx) = unbounded::<()>();
    let writer = std::thread::spawn({
        let url = server.url();
        move || {
            let mut config = ClientConfig::from_url(&url).unwrap();
            config.backoff_max = Duration::from_millis(200);
            let (tx, _rx) = unbounded();
            let client = Client::start(config, tx).unwrap();
            assert!(client.wait_up(Link::Commands, TIMEOUT));
            let other = Cluster::new(client, Keys::new("g"), Trim::default(), TIMEOUT);
            let mut ids = Vec::new();
            // Cut the subscriber connection; if the link is between
            // connections just then (a re-dial of its own, as after a PING
            // unanswered in time on a loaded machine), cut the next one
            // once it is subscribed.
            let cut = || {
                loop {
                    let killed = other.client().call(
                        Cmd::new("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"),
                        TIMEOUT,
                    );
                    match killed {
                        Ok(Value::Int(1)) => return,
                        Ok(Value::Int(0)) => back_rx
                            .recv_timeout(TIMEOUT)
                            .expect("the subscriber came back"),
                        other => panic!("CLIENT KILL: {other:?}"),
                    }
                }
            };
            for i in 0..N {
                if i == N / 3 {
                    // A subscription confirmed before this cut must not
                    // count as the come-back from it.
                    back_rx.try_iter().for_each(drop);
                    cut();
                }
                if i == 2 * N / 3 {
                    // Once the subscriber is back from the first cut.
                    back_rx
                        .recv_timeout(TIMEOUT)
                        .expect("the subscriber came back");
                    cut();
                }
                let t = Template::new(r#"{"id":"#, &format!(r#","n":{i}}}"#));
                ids.push(other.append("lobby", &t).unwrap().id);
            }
            done_tx.send(ids).unwrap();
        }
    });

    let mut room = RoomOrder::new(0);
    let mut delivered: Vec<Entry> = Vec::new();
    let mut downs = 0;
    let deadline = Instant::now() + TIMEOUT;
    let mut expected: Option<Vec<u64>> = None;
    loop {
        if let Some(ids) = &expected
            && room.last() == *ids.last().unwrap()
        {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let event = crossbeam_channel::select! {
            recv(events) -> event => event.unwrap(),
            recv(done_rx) -> ids => {
                expected = Some(ids.unwrap());
                done_rx = crossbeam_channel::never(); // it is closed now
                continue;
            }
            default(left) => panic!("not everything delivered: {} of {N}", delivered.len()),
        };
        let mut outcome = match event {
            Event::Message { payload, .. } => match Published::parse(&payload) {
                Some(Published::Message(entry)) => room.published(entry),
                _ => continue,
            },
            Event::Subscribed(_) => {
                let _ = back_tx.send(());
                room.resubscribed()
            }
            Event::Down(Link::Subscriber, _) => {
                downs += 1;
                continue;
            }
            _ => continue,
        };
        loop {
            delivered.append(&mut outcome.deliver);
            assert!(!outcome.trimmed);
            let Some(from) = outcome.fill_from else { break };
            outcome = match node.read_after("lobby", from, LIMIT) {
                Ok(entries) => room.filled(entries, LIMIT),
                Err(_) => room.fill_failed(),
            };
        }
    }
    writer.join().unwrap();
    let ids = expected.unwrap();
    assert_eq!(delivered.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    // Everything may be in before the node hears of the second cut (a
    // fill after the first come-back can read the log to its end): the
    // `Down` is still owed, and comes.
    while downs < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(Event::Down(Link::Subscriber, _)) => downs += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // Each cut killed a live subscriber connection, and each connection
    // lost is one `Down`; on a loaded machine the link may also give up
    // on a connection of its own (a PING unanswered in time), which is
    // one `Down` more and changes nothing of the above.
    assert!(
        downs >= 2,
        "the subscriber was cut off twice: {downs} downs"
    );
}
