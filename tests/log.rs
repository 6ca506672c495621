//! The hub owns the store behind `hub::log::Log`: any implementation, not
//! only the embedded log, gets the same guarantees from the hub. A small
//! app over a log whose commits fail on demand, over real sockets on
//! 127.0.0.1:
//!
//! * while commits fail, a published message reaches nobody, its sender
//!   gets `unavailable`, the app is told its id (`App::refused`) and
//!   `/metrics` knows why;
//! * once a commit succeeds again, messages flow and the failure is
//!   cleared.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use wschat::WebSocket;
use wschat::hub::log::{Conversation, Log, Page, Record};
use wschat::hub::{App, ConnId, ConnInfo, Ctx, UNAVAILABLE};
use wschat::server::{Server, ServerConfig};
use wschat::ws::Message;

/// A log that keeps nothing but counts what it was given, and whose
/// commits fail while `failing` is set, as a store whose disk (or whose
/// Redis) is gone.
#[derive(Debug)]
struct FlakyLog {
    last_id: u64,
    pending: usize,
    failing: Arc<AtomicBool>,
}

impl Log for FlakyLog {
    fn take_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    fn append(&mut self, _record: Record<'_>) {
        self.pending += 1;
    }

    fn commit(&mut self) -> io::Result<bool> {
        let wrote = std::mem::take(&mut self.pending) > 0;
        if self.failing.load(Ordering::SeqCst) && wrote {
            return Err(io::Error::other("the store is gone"));
        }
        Ok(wrote)
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

/// Every text is stored as a message and published to everyone.
struct Relay {
    refused: Arc<Mutex<Vec<u64>>>,
}

impl App for Relay {
    fn opened(&mut self, _ctx: &mut Ctx, _conn: ConnId, _info: ConnInfo) {}

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        let id = ctx.log().take_id();
        let json = serde_json::json!({"id": id, "text": text}).to_string();
        ctx.log().append(Record::Message { json: &json });
        let everyone: Vec<ConnId> = ctx.connections().collect();
        ctx.publish(id, Some(conn), everyone, &Ctx::json_frame(&json));
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
fn a_refused_commit_of_any_log_delivers_nothing_and_tells_the_sender() {
    let failing = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let (log_failing, app_refused) = (failing.clone(), refused.clone());
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let builder = Server::builder(config);
    let behavior = builder.behavior();
    let server = builder
        .app("/", "test", behavior)
        .bind_with_log(move || {
            let log: Box<dyn Log> = Box::new(FlakyLog {
                last_id: 0,
                pending: 0,
                failing: log_failing,
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
    let mut alice = client(&url);
    let mut bob = client(&url);
    // Both are in once each receives what bob says.
    say(&mut bob, "ready");
    assert_eq!(next(&mut bob)["text"], "ready");
    assert_eq!(next(&mut alice)["text"], "ready");

    failing.store(true, Ordering::SeqCst);
    say(&mut alice, "lost");
    let error = next(&mut alice);
    let unavailable: Value = serde_json::from_str(UNAVAILABLE).unwrap();
    assert_eq!(error, unavailable, "the sender is told");
    assert!(
        server.metrics().store_failing().is_some(),
        "/metrics and /healthz know the store fails"
    );
    let lost_id = {
        let refused = refused.lock().unwrap();
        assert_eq!(refused.len(), 1, "the app is told the refused id");
        refused[0]
    };

    failing.store(false, Ordering::SeqCst);
    say(&mut alice, "kept");
    // The next thing either receives is the message that was stored: the
    // refused one reached nobody.
    for ws in [&mut bob, &mut alice] {
        let kept = next(ws);
        assert_eq!(kept["text"], "kept", "{kept}");
        assert!(kept["id"].as_u64().unwrap() > lost_id);
    }
    assert!(
        server.metrics().store_failing().is_none(),
        "a commit that succeeds clears the failure"
    );
    drop((alice, bob));
    server.stop();
}
