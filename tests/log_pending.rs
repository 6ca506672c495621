//! A store whose commits complete later (`Commit::Pending`, as a store
//! over the network's does): the hub keeps each waiting turn's sends,
//! settles turns in the order they were committed, refuses a turn whose
//! result is a failure, and hands the app the messages the store delivers
//! itself. Over real sockets on 127.0.0.1, with a log whose results the
//! test releases one at a time.

use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use wschat::WebSocket;
use wschat::hub::log::{Commit, Conversation, Log, LogEvent, Outcome, Page, Record};
use wschat::hub::{App, ConnId, ConnInfo, Ctx, UNAVAILABLE};
use wschat::server::{Server, ServerConfig};
use wschat::ws::Message;

/// What the test tells the log: the oldest waiting commit's result, and
/// whether the log delivers the turn's messages itself.
struct Release {
    ok: bool,
    by_log: bool,
}

/// A release of a turn that succeeded with its messages refused one by
/// one (a store whose appends each have their own answer).
struct RefuseEach;

/// A release of a turn that succeeded with its first message refused and
/// the others stored and delivered by the log (a store whose appends each
/// have their own answer, one of them lost).
struct RefuseFirst;

/// A log that keeps nothing; a turn with records is `Pending` until the
/// test releases its result (the ids of the turn are told to the test on
/// `pending`).
#[derive(Debug)]
struct DeferredLog {
    last_id: u64,
    turn: Vec<(u64, String)>,
    waiting: std::collections::VecDeque<Vec<(u64, String)>>,
    pending: Sender<Vec<u64>>,
    events: Receiver<LogEvent>,
}

impl Log for DeferredLog {
    fn take_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    fn append(&mut self, record: Record<'_>) {
        let json = record.json().to_string();
        let id = serde_json::from_str::<Value>(&json).unwrap()["id"]
            .as_u64()
            .unwrap();
        self.turn.push((id, json));
    }

    fn commit(&mut self) -> io::Result<bool> {
        Err(io::Error::other("commits complete later"))
    }

    fn commit_turn(&mut self) -> Commit {
        if self.turn.is_empty() {
            return Commit::Done(Ok(false));
        }
        let turn = std::mem::take(&mut self.turn);
        self.pending
            .send(turn.iter().map(|t| t.0).collect())
            .unwrap();
        self.waiting.push_back(turn);
        Commit::Pending
    }

    fn events(&self) -> Option<Receiver<LogEvent>> {
        Some(self.events.clone())
    }

    fn handle(&mut self, event: LogEvent) -> Vec<Outcome> {
        let turn = self.waiting.pop_front().expect("a waiting turn");
        let event = match event.downcast::<RefuseFirst>() {
            Ok(_) => {
                let mut out: Vec<Outcome> = turn[1..]
                    .iter()
                    .map(|(_, json)| Outcome::Deliver {
                        room: "r".into(),
                        json: json.as_str().into(),
                    })
                    .collect();
                out.push(Outcome::Committed {
                    result: Ok(true),
                    delivered_by_log: turn[1..].iter().map(|t| t.0).collect(),
                    refused: vec![turn[0].0],
                    final_ids: Vec::new(),
                });
                return out;
            }
            Err(event) => event,
        };
        let release = match event.downcast::<Release>() {
            Ok(release) => release,
            Err(_) => {
                return vec![Outcome::Committed {
                    result: Ok(true),
                    delivered_by_log: Vec::new(),
                    refused: turn.iter().map(|t| t.0).collect(),
                    final_ids: Vec::new(),
                }];
            }
        };
        if !release.ok {
            return vec![Outcome::Committed {
                result: Err(io::Error::other("the network is gone")),
                delivered_by_log: Vec::new(),
                refused: Vec::new(),
                final_ids: Vec::new(),
            }];
        }
        let mut out = Vec::new();
        if release.by_log {
            for (_, json) in &turn {
                out.push(Outcome::Deliver {
                    room: "r".into(),
                    json: json.as_str().into(),
                });
            }
        }
        out.push(Outcome::Committed {
            result: Ok(true),
            delivered_by_log: if release.by_log {
                turn.iter().map(|t| t.0).collect()
            } else {
                Vec::new()
            },
            refused: Vec::new(),
            final_ids: Vec::new(),
        });
        out
    }

    fn history(&mut self, _room: &str, _before: Option<u64>, _limit: usize) -> Page {
        Page::default()
    }

    fn since(&mut self, _room: &str, _key: &str, _after: u64) -> Page {
        Page::default()
    }

    fn privates_since(&mut self, _key: &str, _after: u64) -> Vec<Arc<str>> {
        Vec::new()
    }

    fn private_page(&mut self, _pair: (&str, &str), _before: Option<u64>, _limit: usize) -> Page {
        Page::default()
    }

    fn private_peers(&mut self, _me: &str, _read: &dyn Fn(&str) -> u64) -> Vec<Conversation> {
        Vec::new()
    }

    fn delete(&mut self, _id: u64) -> Option<String> {
        None
    }

    fn replay(&self, _needles: &[&str], _each: &mut dyn FnMut(&str, &Value)) {}
}

/// `ping` is answered to its sender alone, with nothing stored; any other
/// text is stored as a message and published to everyone. A message the
/// log delivers goes to everyone.
struct Relay {
    refused: Arc<Mutex<Vec<u64>>>,
}

impl App for Relay {
    fn opened(&mut self, _ctx: &mut Ctx, _conn: ConnId, _info: ConnInfo) {}

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        if text == "ping" {
            ctx.send_json(conn, r#"{"text":"pong"}"#);
            return;
        }
        // "a+b" is two messages of one turn.
        for text in text.split('+') {
            let id = ctx.log().take_id();
            let json = serde_json::json!({"id": id, "text": text}).to_string();
            ctx.log().append(Record::Room {
                room: "r",
                json: &json,
            });
            let everyone: Vec<ConnId> = ctx.connections().collect();
            ctx.publish(id, Some(conn), everyone, &Ctx::json_frame(&json));
        }
    }

    fn log_message(&mut self, ctx: &mut Ctx, _room: &str, json: &Arc<str>) {
        let everyone: Vec<ConnId> = ctx.connections().collect();
        ctx.broadcast(everyone, &Ctx::json_frame(json));
    }

    fn closed(&mut self, _ctx: &mut Ctx, _conn: ConnId) {}

    fn refused(&mut self, _ctx: &mut Ctx, ids: &[u64]) {
        self.refused.lock().unwrap().extend_from_slice(ids);
    }
}

fn client(url: &str) -> WebSocket<TcpStream> {
    let ws = wschat::client::connect(url).expect("connect");
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

fn say(ws: &mut WebSocket<TcpStream>, text: &str) {
    ws.send(Message::Text(text.into())).expect("send");
}

fn next(ws: &mut WebSocket<TcpStream>) -> Value {
    match ws.read_message().expect("a message within 10 s") {
        Message::Text(text) => serde_json::from_str(&text).expect("JSON"),
        other => panic!("not a text: {other:?}"),
    }
}

#[test]
fn pending_commits_settle_in_order_refused_or_delivered_by_the_log() {
    let (pending_tx, pending) = crossbeam_channel::unbounded();
    let (release, events) = crossbeam_channel::unbounded::<LogEvent>();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let app_refused = refused.clone();
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let builder = Server::builder(config);
    let behavior = builder.behavior();
    let server = builder
        .app("/", "test", behavior)
        .bind_with_log(move || {
            let log: Box<dyn Log> = Box::new(DeferredLog {
                last_id: 0,
                turn: Vec::new(),
                waiting: Default::default(),
                pending: pending_tx,
                events,
            });
            Ok((
                Relay {
                    refused: app_refused,
                },
                log,
            ))
        })
        .unwrap()
        .spawn()
        .unwrap();
    let url = format!("ws://{}/", server.addr());
    let wait = Duration::from_secs(10);
    let ok = |by_log| -> LogEvent { Box::new(Release { ok: true, by_log }) };
    let mut alice = client(&url);
    let mut bob = client(&url);
    say(&mut bob, "ping");
    assert_eq!(next(&mut bob)["text"], "pong");
    say(&mut alice, "ping");
    assert_eq!(next(&mut alice)["text"], "pong");

    // A turn that waits for its commit holds back a later turn that has
    // nothing to write: bob's pong comes after the message before it.
    say(&mut alice, "one");
    let one = pending.recv_timeout(wait).expect("pending")[0];
    say(&mut bob, "ping");
    release.send(ok(false)).unwrap();
    assert_eq!(next(&mut bob)["text"], "one");
    assert_eq!(next(&mut bob)["text"], "pong");
    assert_eq!(next(&mut alice)["text"], "one");

    // Two turns waiting: the first fails (refused: its sender is told,
    // nobody receives it), the second succeeds, and they settle in order.
    say(&mut alice, "lost");
    let lost = pending.recv_timeout(wait).expect("pending")[0];
    say(&mut bob, "two");
    pending.recv_timeout(wait).expect("pending");
    release
        .send(Box::new(Release {
            ok: false,
            by_log: false,
        }))
        .unwrap();
    release.send(ok(false)).unwrap();
    let unavailable: Value = serde_json::from_str(UNAVAILABLE).unwrap();
    assert_eq!(next(&mut alice), unavailable, "the sender is told");
    assert_eq!(next(&mut alice)["text"], "two");
    assert_eq!(
        next(&mut bob)["text"],
        "two",
        "the refused one reached nobody"
    );
    assert_eq!(*refused.lock().unwrap(), vec![lost]);
    assert!(lost > one);

    // A message the log delivers itself reaches everyone once: through
    // the app's `log_message`, the turn's own send of it dropped.
    say(&mut bob, "three");
    pending.recv_timeout(wait).expect("pending");
    release.send(ok(true)).unwrap();
    say(&mut bob, "ping");
    assert_eq!(next(&mut alice)["text"], "three");
    assert_eq!(next(&mut bob)["text"], "three");
    assert_eq!(next(&mut bob)["text"], "pong", "three came once");
    say(&mut alice, "ping");
    assert_eq!(next(&mut alice)["text"], "pong", "three came once");

    // A turn that succeeds with a message refused on its own: its sender
    // is told, the app too, nobody receives it, and the store is not
    // reported failing.
    say(&mut alice, "four");
    let four = pending.recv_timeout(wait).expect("pending")[0];
    release.send(Box::new(RefuseEach)).unwrap();
    assert_eq!(next(&mut alice), unavailable);
    say(&mut bob, "ping");
    assert_eq!(next(&mut bob)["text"], "pong", "four reached nobody");
    assert_eq!(*refused.lock().unwrap(), vec![lost, four]);
    assert!(server.metrics().store_failing().is_none());

    // A turn that succeeds with one message refused and the others
    // delivered by the log: the sender is told of the refused one, and
    // the stored ones reach everyone once, from the log only (the turn's
    // own sends of them are dropped too).
    say(&mut alice, "five+six+seven");
    let turn = pending.recv_timeout(wait).expect("pending");
    assert_eq!(turn.len(), 3, "one turn");
    release.send(Box::new(RefuseFirst)).unwrap();
    let mut at_alice: Vec<Value> = (0..3).map(|_| next(&mut alice)).collect();
    let told = at_alice.iter().position(|m| *m == unavailable);
    at_alice.remove(told.expect("the sender is told"));
    assert_eq!(at_alice[0]["text"], "six");
    assert_eq!(at_alice[1]["text"], "seven");
    say(&mut alice, "ping");
    assert_eq!(next(&mut alice)["text"], "pong", "six and seven came once");
    assert_eq!(next(&mut bob)["text"], "six");
    assert_eq!(next(&mut bob)["text"], "seven");
    say(&mut bob, "ping");
    assert_eq!(next(&mut bob)["text"], "pong", "six and seven came once");
    assert_eq!(*refused.lock().unwrap(), vec![lost, four, turn[0]]);
    drop((alice, bob));
    server.stop();
}
