//! Webhooks over real sockets: an in-process wschat with a temporary data
//! directory, and a receiver in the test, a small HTTP (or HTTPS) server
//! thread on 127.0.0.1:0 that records each request and answers as the
//! test says. Every signature is checked here with HMAC-SHA256.
//!
//! Every wait is a socket read or a channel receive with a timeout, or a
//! bounded poll of a server counter; nothing is timed.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crossbeam_channel::Receiver;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use wschat::config::Config;
use wschat::conn::WebSocket;
use wschat::desk::agents;
use wschat::server::Server;
use wschat::ws::Message;

use common::{TlsRelay, certificate};

/// The longest any one read or receive may wait. Generous: it only
/// matters when something is broken.
const TIMEOUT: Duration = Duration::from_secs(20);

const SECRET: &str = "test-webhook-secret";

/// A temporary data directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wschat-webhook-{tag}-{}-{}",
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

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    request_line: String,
    /// Header names in lower case.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// The checks every webhook request must pass: a POST with the JSON
    /// content type, the event's name in `X-Wschat-Event`, and a valid
    /// `X-Wschat-Signature` over the raw body.
    fn check(&self) -> Value {
        assert!(self.request_line.starts_with("POST /hook "), "{self:?}");
        assert_eq!(self.headers["content-type"], "application/json");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&self.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            self.headers["x-wschat-signature"],
            format!("sha256={hex}"),
            "signature of {}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert_eq!(self.headers["x-wschat-event"], v["event"].as_str().unwrap());
        // The fields in the documented order, at the top level.
        let text = String::from_utf8_lossy(&self.body);
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        assert!(text.starts_with("{\"id\":"), "{text}");
        assert!(at("id") < at("event") && at("event") < at("time") && at("time") < at("data"));
        assert!(v["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(v["time"].as_u64().is_some());
        assert!(v["data"]["conversation"].as_u64().is_some(), "{v}");
        v
    }
}

/// Read one HTTP request: the head, then `Content-Length` bytes.
fn read_request(stream: &mut impl Read) -> Option<Hit> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    if request_line.is_empty() {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Hit {
        request_line: request_line.trim_end().to_string(),
        headers,
        body,
    })
}

/// What the receiver answers the n-th request (from 0): a status, or
/// `None` to keep the connection open without ever answering.
type Answer = Box<dyn Fn(usize) -> Option<u16> + Send>;

/// A receiver on `listener`: every request it reads is sent on the
/// returned channel. For HTTPS, a TLS relay goes in front of it
/// ([`TlsRelay`]).
fn receiver(listener: TcpListener, answer: Answer) -> Receiver<Hit> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        let mut hanging: Vec<TcpStream> = Vec::new();
        let mut n = 0;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            let Some(hit) = read_request(&mut s) else {
                continue;
            };
            let _ = tx.send(hit);
            match answer(n) {
                Some(status) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.flush();
                }
                None => hanging.push(s),
            }
            n += 1;
        }
    });
    rx
}

fn listen() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// The next request, or the test fails.
fn next_hit(rx: &Receiver<Hit>) -> Hit {
    rx.recv_timeout(TIMEOUT)
        .expect("the receiver got a request in time")
}

fn config(dir: &TempDir, url: String) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.0.clone()),
        rate_limit: 0,
        webhooks: vec![url],
        webhook_secret: SECRET.into(),
        ..Config::default()
    }
}

/// A WebSocket client.
struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr, path: &str) -> Client {
        let ws = wschat::client::connect(&format!("ws://{addr}{path}")).unwrap();
        ws.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
        Client { ws }
    }

    fn agent(addr: SocketAddr, token: &str) -> Client {
        let mut c = Client::connect(addr, "/agent");
        c.send(json!({"type": "auth", "token": token}));
        c.expect("ready");
        c
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string())).unwrap();
    }

    fn next(&mut self) -> Value {
        loop {
            match self.ws.read_message() {
                Ok(Message::Text(t)) => return serde_json::from_str(&t).unwrap(),
                Ok(Message::Close(c)) => panic!("closed: {c:?}"),
                Ok(_) => {}
                Err(e) => panic!("reading: {e}"),
            }
        }
    }

    fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next();
            if v["type"] == kind && pred(&v) {
                return v;
            }
        }
    }

    fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true)
    }
}

/// One figure of `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let reply = common::http_exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = reply.body_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// A visitor's first message: returns the conversation's id.
fn open(addr: SocketAddr, text: &str) -> (Client, u64) {
    let mut v = Client::connect(addr, "/support");
    v.expect("welcome");
    v.send(json!({"type": "message", "text": text}));
    let m = v.expect_where("desk_message", |m| m["text"] == text);
    let cid = m["conversation"].as_u64().unwrap();
    (v, cid)
}

/// Every event of a conversation's life reaches the receiver, signed, in
/// order, each with its own id; `message.created` carries the text of
/// the visitor's and the agent's messages; `/metrics` counts them.
#[test]
fn every_event_reaches_the_receiver_signed() {
    let dir = TempDir::new("all");
    let alice = agents::add(&dir.0, "alice").unwrap();
    let bob = agents::add(&dir.0, "bob").unwrap();
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|_| Some(200)));
    let server = Server::bind(config(&dir, format!("http://{addr}/hook")))
        .unwrap()
        .spawn()
        .unwrap();
    let mut a = Client::agent(server.addr(), &alice);
    let (mut v, cid) = open(server.addr(), "hello, I need help");
    a.expect_where("assigned", |x| x["conversation"] == cid);
    a.send(json!({"type": "message", "conversation": cid, "text": "how can I help?"}));
    v.expect_where("desk_message", |m| m["text"] == "how can I help?");
    let mut b = Client::agent(server.addr(), &bob);
    a.send(json!({"type": "transfer", "conversation": cid, "to": "bob", "note": "billing"}));
    b.expect_where("assigned", |x| x["conversation"] == cid);
    b.send(json!({"type": "resolve", "conversation": cid}));
    v.expect("resolved");
    v.send(json!({"type": "rate", "rating": 5}));
    v.expect("rated");

    let expected = [
        "conversation.created",
        "message.created",
        "conversation.assigned",
        "message.created",
        "conversation.transferred",
        "conversation.assigned",
        "conversation.resolved",
        "conversation.rated",
    ];
    let mut got = Vec::new();
    for _ in expected {
        let e = next_hit(&hits).check();
        assert_eq!(e["data"]["conversation"], cid, "{e}");
        got.push(e);
    }
    let names: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    // Events of one turn keep their order; the assignment may come in the
    // same turn as the first message or after it.
    let mut sorted_names = names.clone();
    sorted_names.sort();
    let mut sorted_expected = expected.to_vec();
    sorted_expected.sort();
    assert_eq!(sorted_names, sorted_expected, "{names:?}");
    let find = |event: &str, pred: &dyn Fn(&Value) -> bool| {
        got.iter()
            .find(|e| e["event"] == event && pred(&e["data"]))
            .unwrap_or_else(|| panic!("no {event} like that in {got:#?}"))
            .clone()
    };
    let created = find("conversation.created", &|_| true);
    assert!(!created["data"]["visitor"].as_str().unwrap().is_empty());
    let m = find("message.created", &|d| d["from"] == "visitor");
    assert_eq!(m["data"]["text"], "hello, I need help");
    let m = find("message.created", &|d| d["from"] == "agent");
    assert_eq!(m["data"]["text"], "how can I help?");
    assert_eq!(m["data"]["name"], "alice");
    find("conversation.assigned", &|d| d["agent"] == "alice");
    find("conversation.assigned", &|d| d["agent"] == "bob");
    let t = find("conversation.transferred", &|_| true);
    assert_eq!(
        (&t["data"]["from"], &t["data"]["to"], &t["data"]["note"]),
        (&json!("alice"), &json!("bob"), &json!("billing"))
    );
    find("conversation.resolved", &|d| d["agent"] == "bob");
    find("conversation.rated", &|d| d["stars"] == 5);
    let mut ids: Vec<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected.len(), "every event has its own id");

    common::eventually(TIMEOUT, "delivered counted, none pending", || {
        metric(server.addr(), "wschat_webhook_delivered_total") == expected.len() as u64
            && metric(server.addr(), "wschat_webhook_pending") == 0
    });
    assert_eq!(
        metric(server.addr(), "wschat_webhook_failed_attempts_total"),
        0
    );
    assert_eq!(metric(server.addr(), "wschat_webhook_dropped_total"), 0);
    drop((a, b, v));
    server.stop();
}

/// The newer fields, over a real socket to a local receiver: a message left
/// out of hours (`--desk-hours`) opens a conversation with `"offline":true`;
/// a supervisor's reassignment is a `conversation.transferred` whose `by`
/// names the supervisor (`from`, the agent who had it); the visitor ending
/// the chat is a `conversation.resolved` with `"by":"visitor"`; a rating's
/// `comment` rides on `conversation.rated`. An agent's own transfer has no
/// `by` (see `every_event_reaches_the_receiver_signed`).
#[test]
fn offline_messages_who_acted_and_rating_comments_reach_the_receiver() {
    use agents::Role::{Agent, Supervisor};
    // Hours that are closed now: every day, the hour that begins two hours
    // from now (UTC).
    let now = wschat::clock::now_ms();
    let start = (now / 3_600_000 + 2) % 24;
    let spec = format!("mon-sun {start:02}:00-{:02}:00 +00:00", start + 1);
    let dir = TempDir::new("newer");
    let alice = agents::add_with(&dir.0, "alice", None, Agent).unwrap();
    let sam = agents::add_with(&dir.0, "sam", None, Supervisor).unwrap();
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|_| Some(200)));
    let config = Config {
        desk_hours: Some(wschat::desk::hours::Hours::parse(&spec).unwrap()),
        ..config(&dir, format!("http://{addr}/hook"))
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    // alice is signed in but away: the message waits.
    let mut a = Client::agent(server.addr(), &alice);
    a.send(json!({"type": "presence", "status": "away"}));
    a.expect("presence");
    let mut v = Client::connect(server.addr(), "/support?lang=en");
    v.expect("welcome");
    assert_eq!(v.expect("hours")["open"], false);
    v.send(json!({"type": "contact", "email": "zhou@example.com"}));
    v.expect("contact");
    v.send(json!({"type": "message", "text": "please call me back"}));
    let cid =
        v.expect_where("desk_message", |m| m["text"] == "please call me back")["conversation"]
            .as_u64()
            .unwrap();
    // alice comes back and gets it; sam, a supervisor, gives it to himself
    // with a note; the visitor ends the chat and rates it with a comment.
    a.send(json!({"type": "presence", "status": "online"}));
    a.expect_where("assigned", |x| x["conversation"] == cid);
    let mut s = Client::agent(server.addr(), &sam);
    s.send(json!({"type": "reassign", "conversation": cid, "to": "sam", "note": "a VIP"}));
    s.expect_where("assigned", |x| x["conversation"] == cid);
    v.send(json!({"type": "end"}));
    v.expect("resolved");
    v.send(json!({"type": "rate", "rating": 2, "comment": "slow to answer"}));
    v.expect("rated");

    let mut got: Vec<Value> = Vec::new();
    while !got.iter().any(|e| e["event"] == "conversation.rated") {
        assert!(got.len() < 20, "no conversation.rated in {got:#?}");
        got.push(next_hit(&hits).check());
    }
    let find = |event: &str| {
        got.iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {got:#?}"))["data"]
            .clone()
    };
    assert_eq!(
        find("conversation.created"),
        json!({"conversation": cid, "visitor": find("conversation.created")["visitor"], "sub": null, "offline": true})
    );
    assert!(find("conversation.created")["visitor"].is_string());
    assert_eq!(
        find("conversation.transferred"),
        json!({"conversation": cid, "from": "alice", "to": "sam", "note": "a VIP", "by": "sam"})
    );
    assert_eq!(
        find("conversation.resolved"),
        json!({"conversation": cid, "agent": "sam", "by": "visitor"})
    );
    assert_eq!(
        find("conversation.rated"),
        json!({"conversation": cid, "stars": 2, "comment": "slow to answer"})
    );
    drop((a, s, v));
    server.stop();
}

/// A receiver that answers 500 twice gets the same event (same id, same
/// bytes, same signature) a third time, and then the next one; the
/// failed attempts are counted.
#[test]
fn failures_are_retried_with_the_same_id() {
    let dir = TempDir::new("retry");
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|n| Some(if n < 2 { 500 } else { 200 })));
    let server = Server::bind(config(&dir, format!("http://{addr}/hook")))
        .unwrap()
        .spawn()
        .unwrap();
    let (_v, cid) = open(server.addr(), "anyone there?");
    let first = next_hit(&hits);
    let second = next_hit(&hits);
    let third = next_hit(&hits);
    let e = third.check();
    assert_eq!(e["event"], "conversation.created");
    assert_eq!(e["data"]["conversation"], cid);
    assert_eq!(first.body, third.body);
    assert_eq!(second.body, third.body);
    assert_eq!(
        first.headers["x-wschat-signature"],
        third.headers["x-wschat-signature"]
    );
    let next = next_hit(&hits).check();
    assert_eq!(next["event"], "message.created");
    assert_eq!(next["data"]["text"], "anyone there?");
    assert_ne!(next["id"], e["id"]);
    assert_eq!(
        metric(server.addr(), "wschat_webhook_failed_attempts_total"),
        2
    );
    common::eventually(TIMEOUT, "both delivered", || {
        metric(server.addr(), "wschat_webhook_delivered_total") == 2
    });
    server.stop();
}

/// Events that could not be delivered while the receiver was down are
/// kept in the data directory: after a restart of wschat, with the
/// receiver up again, they arrive.
#[test]
fn pending_events_survive_a_restart() {
    let dir = TempDir::new("restart");
    // A port with nobody on it: connections are refused.
    let (listener, addr) = listen();
    drop(listener);
    let config = config(&dir, format!("http://{addr}/hook"));
    let server = Server::bind(config.clone()).unwrap().spawn().unwrap();
    let (v, cid) = open(server.addr(), "written while the receiver was down");
    common::eventually(TIMEOUT, "two events pending and tried", || {
        metric(server.addr(), "wschat_webhook_pending") == 2
            && metric(server.addr(), "wschat_webhook_failed_attempts_total") >= 1
    });
    drop(v);
    server.stop();
    let pending = std::fs::read_to_string(dir.0.join("webhooks.pending")).unwrap();
    assert!(pending.contains("written while the receiver was down"));

    let listener = TcpListener::bind(addr).expect("the receiver's port again");
    let hits = receiver(listener, Box::new(|_| Some(204)));
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let created = next_hit(&hits).check();
    assert_eq!(created["event"], "conversation.created");
    assert_eq!(created["data"]["conversation"], cid);
    let message = next_hit(&hits).check();
    assert_eq!(message["event"], "message.created");
    assert_eq!(
        message["data"]["text"],
        "written while the receiver was down"
    );
    common::eventually(TIMEOUT, "nothing pending", || {
        metric(server.addr(), "wschat_webhook_pending") == 0
    });
    server.stop();
    assert!(
        hits.try_recv().is_err(),
        "each event was delivered once after the restart"
    );
}

/// A receiver that takes the request and never answers holds up nobody:
/// visitors, agents and chat users go on talking while events pile up.
#[test]
fn chat_and_desk_flow_while_the_receiver_hangs() {
    let dir = TempDir::new("hang");
    let alice = agents::add(&dir.0, "alice").unwrap();
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|_| None));
    let config = Config {
        webhook_timeout: Duration::from_secs(600),
        ..config(&dir, format!("http://{addr}/hook"))
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let mut a = Client::agent(server.addr(), &alice);
    let (mut v, cid) = open(server.addr(), "first");
    a.expect_where("assigned", |x| x["conversation"] == cid);
    // The receiver has the first event and will never answer it.
    next_hit(&hits);
    for i in 0..20 {
        let text = format!("visitor {i}");
        v.send(json!({"type": "message", "text": text}));
        a.expect_where("desk_message", |m| m["text"] == text);
        let text = format!("agent {i}");
        a.send(json!({"type": "message", "conversation": cid, "text": text}));
        v.expect_where("desk_message", |m| m["text"] == text);
    }
    let mut chat = Client::connect(server.addr(), "/chat?name=carol");
    chat.send(json!({"type": "chat", "text": "still here"}));
    chat.expect_where("chat", |m| m["text"] == "still here");
    common::eventually(TIMEOUT, "the events wait", || {
        metric(server.addr(), "wschat_webhook_pending") >= 40
    });
    assert_eq!(metric(server.addr(), "wschat_webhook_delivered_total"), 0);
    assert!(
        hits.try_recv().is_err(),
        "one attempt at a time per receiver"
    );
    drop((a, v, chat));
    server.stop();
}

/// A wschat whose one receiver is `https://HOST:PORT/hook` through a TLS
/// relay, and a visitor who opened a conversation.
struct HttpsCase {
    relay: TlsRelay,
    hits: Receiver<Hit>,
    server: wschat::server::ServerHandle,
    cid: u64,
    _visitor: Client,
    _dir: TempDir,
}

impl HttpsCase {
    /// The relay serves `cert`, which `--webhook-ca` trusts when `ca`.
    fn start(cert: &(PathBuf, PathBuf), ca: bool, host: &str) -> HttpsCase {
        let (listener, addr) = listen();
        let hits = receiver(listener, Box::new(|_| Some(200)));
        let relay = TlsRelay::start(cert, addr);
        let dir = TempDir::new("tls-case");
        let config = Config {
            webhook_ca: ca.then(|| cert.0.clone()),
            ..config(&dir, format!("https://{host}:{}/hook", relay.port))
        };
        let server = Server::bind(config).unwrap().spawn().unwrap();
        let (visitor, cid) = open(server.addr(), "over TLS");
        HttpsCase {
            relay,
            hits,
            server,
            cid,
            _visitor: visitor,
            _dir: dir,
        }
    }

    /// The relay refused the handshake, the attempt is counted, nothing
    /// was delivered and nothing reached the receiver.
    fn refused(self) {
        let why = self.relay.next("refused:");
        let addr = self.server.addr();
        common::eventually(TIMEOUT, "a failed attempt", || {
            metric(addr, "wschat_webhook_failed_attempts_total") >= 1
        });
        assert_eq!(metric(addr, "wschat_webhook_delivered_total"), 0);
        assert!(self.hits.try_recv().is_err(), "nothing passed ({why})");
        self.server.stop();
    }
}

/// `https://` receivers: a receiver whose certificate the system does not
/// trust is refused (nothing delivered, the attempt counted and tried
/// again); with its certificate given by `--webhook-ca` the events arrive
/// over TLS, by address (checked against the certificate's IP SAN, no
/// SNI) and by name (checked against its DNS SAN, sent as SNI).
#[test]
fn https_receiver_with_a_private_ca() {
    let dir = TempDir::new("tls");
    let cert = certificate(
        &dir.0,
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    );

    // Not trusted: refused, counted, tried again later.
    HttpsCase::start(&cert, false, "127.0.0.1").refused();

    // Trusted with --webhook-ca, by address.
    let case = HttpsCase::start(&cert, true, "127.0.0.1");
    let e = next_hit(&case.hits).check();
    assert_eq!(e["event"], "conversation.created");
    assert_eq!(e["data"]["conversation"], case.cid);
    let e = next_hit(&case.hits).check();
    assert_eq!(e["data"]["text"], "over TLS");
    assert_eq!(
        case.relay.next("sni:"),
        "sni: None",
        "no SNI for an address"
    );
    case.server.stop();

    // Trusted, by name: the name goes as SNI.
    let case = HttpsCase::start(&cert, true, "localhost");
    let e = next_hit(&case.hits).check();
    assert_eq!(e["data"]["conversation"], case.cid);
    assert_eq!(case.relay.next("sni:"), "sni: localhost");
    case.server.stop();
}

/// A trusted certificate for another name is refused: by name (its DNS
/// SAN is `other.example`, the URL says `localhost`) and by address (it
/// has no IP SAN for 127.0.0.1).
#[test]
fn https_receiver_with_another_name_is_refused() {
    let dir = TempDir::new("tls-name");
    let cert = certificate(&dir.0, "other.example", "subjectAltName=DNS:other.example");
    HttpsCase::start(&cert, true, "localhost").refused();
    HttpsCase::start(&cert, true, "127.0.0.1").refused();
}

/// The receiver docs/customer-service.md shows (the block after
/// `<!-- receiver: python -->`) runs: it accepts wschat's events and
/// prints them, and refuses a request whose signature is wrong.
#[test]
fn the_documented_receiver_verifies_signatures() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/customer-service.md"),
    )
    .unwrap();
    let lines: Vec<&str> = page.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "<!-- receiver: python -->")
        .expect("the receiver example is marked");
    assert!(lines[at + 1].starts_with("```python"));
    let program: String = lines[at + 2..]
        .iter()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(&program)
        .env("PORT", "0")
        .env("WSCHAT_WEBHOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().unwrap();
    let _child = KillOnDrop(child);
    let (tx, lines_rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        lines_rx
            .recv_timeout(TIMEOUT)
            .expect("a line from the receiver")
    };
    let first = next_line();
    let port: u16 = first
        .strip_prefix("listening on ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("first line {first:?}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // A forged request: refused.
    let forged =
        b"{\"id\":\"x\",\"event\":\"message.created\",\"time\":1,\"data\":{\"conversation\":1}}";
    let mut request = format!(
        "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Wschat-Event: message.created\r\nX-Wschat-Signature: sha256={}\r\nConnection: close\r\n\r\n",
        forged.len(),
        "0".repeat(64)
    )
    .into_bytes();
    request.extend_from_slice(forged);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&request).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.0 401") || answer.starts_with("HTTP/1.1 401"),
        "{answer}"
    );

    let dir = TempDir::new("docs");
    let server = Server::bind(config(&dir, format!("http://{addr}/hook")))
        .unwrap()
        .spawn()
        .unwrap();
    let (_v, cid) = open(server.addr(), "hello docs");
    assert_eq!(
        next_line().trim_end(),
        format!("conversation.created {cid}")
    );
    assert_eq!(next_line(), format!("message.created {cid} hello docs"));
    common::eventually(TIMEOUT, "both delivered", || {
        metric(server.addr(), "wschat_webhook_delivered_total") == 2
    });
    server.stop();
}

/// A child process stopped (by its PID) when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With several receivers each gets every event; one that is down holds
/// up only its own events; a URL given twice is one receiver.
#[test]
fn each_receiver_gets_every_event_and_a_dead_one_holds_up_nobody() {
    let dir = TempDir::new("two");
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|_| Some(200)));
    let (dead, dead_addr) = listen();
    drop(dead);
    let good = format!("http://{addr}/hook");
    let config = Config {
        webhooks: vec![
            format!("http://{dead_addr}/hook"),
            good.clone(),
            good.clone(),
        ],
        ..config(&dir, good)
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let (_v, cid) = open(server.addr(), "two receivers");
    let created = next_hit(&hits).check();
    assert_eq!(created["event"], "conversation.created");
    assert_eq!(created["data"]["conversation"], cid);
    let message = next_hit(&hits).check();
    assert_eq!(message["data"]["text"], "two receivers");
    common::eventually(TIMEOUT, "the dead receiver's events wait", || {
        metric(server.addr(), "wschat_webhook_delivered_total") == 2
            && metric(server.addr(), "wschat_webhook_pending") == 2
            && metric(server.addr(), "wschat_webhook_failed_attempts_total") >= 1
    });
    server.stop();
    assert!(
        hits.try_recv().is_err(),
        "the doubled URL got each event once"
    );
}

/// A wschat process that is killed (SIGKILL, no shutdown at all) while the
/// receiver is down: the next process on the same data directory delivers
/// what the first had taken in.
#[test]
fn pending_events_survive_a_killed_process() {
    let dir = TempDir::new("kill");
    let (dead, addr) = listen();
    drop(dead);
    let url = format!("http://{addr}/hook");
    let (mut first, server) = spawn_wschat(&dir, &url);
    let (_v, cid) = open(server, "before the crash");
    common::eventually(TIMEOUT, "two events pending and tried", || {
        metric(server, "wschat_webhook_pending") == 2
            && metric(server, "wschat_webhook_failed_attempts_total") >= 1
    });
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let listener = TcpListener::bind(addr).expect("the receiver's port again");
    let hits = receiver(listener, Box::new(|_| Some(200)));
    let (_second, _server) = spawn_wschat(&dir, &url);
    let created = next_hit(&hits).check();
    assert_eq!(created["event"], "conversation.created");
    assert_eq!(created["data"]["conversation"], cid);
    let message = next_hit(&hits).check();
    assert_eq!(message["data"]["text"], "before the crash");
}

/// `wschat serve` as a child process on `dir`, sending webhooks to `url`;
/// returns it and the address it listens on (from its log).
fn spawn_wschat(dir: &TempDir, url: &str) -> (KillOnDrop, SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--rate-limit", "0"])
        .arg("--data-dir")
        .arg(&dir.0)
        .args(["--webhook", url, "--webhook-secret", SECRET])
        .env("RUST_LOG", "wschat=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wschat");
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, lines) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .expect("wschat says where it listens");
        if let Some(at) = line.split("listening on http://").nth(1) {
            return (child, at.trim().parse().unwrap());
        }
    }
}

/// A desk message the store could not write (a file-size limit standing
/// in for a full disk) is refused with `unavailable` and is no event; the
/// messages before and after it are.
#[cfg(target_os = "linux")]
#[test]
fn a_message_the_store_refused_is_no_event() {
    let dir = TempDir::new("fault");
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|_| Some(200)));
    let (wschat, server) = spawn_wschat(&dir, &format!("http://{addr}/hook"));
    let (mut v, cid) = open(server, "stored before");
    assert_eq!(next_hit(&hits).check()["event"], "conversation.created");
    assert_eq!(next_hit(&hits).check()["data"]["text"], "stored before");

    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .collect();
    segments.sort();
    let size = std::fs::metadata(segments.last().unwrap()).unwrap().len();
    set_fsize_limit(wschat.0.id(), Some(size));
    v.send(json!({"type": "message", "text": "refused"}));
    v.expect_where("error", |e| e["code"] == "unavailable");
    set_fsize_limit(wschat.0.id(), None);
    v.send(json!({"type": "message", "text": "stored after"}));
    v.expect_where("desk_message", |m| m["text"] == "stored after");
    let e = next_hit(&hits).check();
    assert_eq!(e["event"], "message.created");
    assert_eq!(e["data"]["conversation"], cid);
    assert_eq!(
        e["data"]["text"], "stored after",
        "no event for the refused one"
    );
}

/// Set the soft file-size limit of process `pid` (the hard one stays
/// unlimited, so it can be lifted again).
#[cfg(target_os = "linux")]
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

/// Run `wschat ARGS` where no OpenSSL can load: in a mount namespace of
/// its own (`unshare -m`, which needs root) with `/dev/null` bound over
/// every `libssl.so.3` and `libssl.so` the loader knows. `None` where
/// namespaces are not allowed.
fn without_openssl(args: &[&str]) -> Option<std::process::Command> {
    let allowed = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        return None;
    }
    let script = r#"
        libs=$(ldconfig -p | awk '/libssl\.so(\.3)? /{print $NF}')
        [ -n "$libs" ] || { echo "no libssl known to ldconfig" >&2; exit 97; }
        for f in $libs; do mount --bind /dev/null "$f" || exit 97; done
        exec "$@"
    "#;
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "sh", "-c", script, "sh", env!("CARGO_BIN_EXE_wschat")])
        .args(args)
        .env("RUST_LOG", "wschat=info");
    Some(command)
}

/// Without OpenSSL, `check-config` fails naming libssl3, `serve` says so
/// at start, `http://` receivers get their events and the `https://`
/// one's wait, pending (nothing lost). Needs root for a mount namespace;
/// says so and checks nothing elsewhere.
#[cfg(target_os = "linux")]
#[test]
fn without_openssl_https_events_wait() {
    let dir = TempDir::new("no-openssl");
    let (listener, addr) = listen();
    let hits = receiver(listener, Box::new(|_| Some(200)));
    let http = format!("http://{addr}/hook");
    let https = "https://127.0.0.1:9/hook";
    let flags = [
        "--webhook",
        &http,
        "--webhook",
        https,
        "--webhook-secret",
        SECRET,
    ];
    let mut check = vec!["check-config"];
    check.extend(flags);
    let Some(mut command) = without_openssl(&check) else {
        eprintln!("without_openssl_https_events_wait: no mount namespace here (not root?)");
        return;
    };
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("libssl3"), "{stderr}");

    let data = dir.0.to_string_lossy().to_string();
    let mut serve = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &data];
    serve.extend(flags);
    let mut child = without_openssl(&serve)
        .unwrap()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _child = KillOnDrop(child);
    let (tx, lines) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    let server: SocketAddr = loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("wschat says where it listens: {said:#?}"));
        if let Some(at) = line.split("listening on http://").nth(1) {
            break at.trim().parse().unwrap();
        }
        said.push(line);
    };
    assert!(
        said.iter()
            .any(|l| l.contains("ERROR") && l.contains("libssl")),
        "{said:#?}"
    );
    let (_v, cid) = open(server, "no TLS here");
    let e = next_hit(&hits).check();
    assert_eq!(e["event"], "conversation.created");
    assert_eq!(e["data"]["conversation"], cid);
    assert_eq!(next_hit(&hits).check()["data"]["text"], "no TLS here");
    common::eventually(TIMEOUT, "the https events pending, attempts failed", || {
        metric(server, "wschat_webhook_delivered_total") == 2
            && metric(server, "wschat_webhook_pending") == 2
            && metric(server, "wschat_webhook_failed_attempts_total") >= 1
    });
}
