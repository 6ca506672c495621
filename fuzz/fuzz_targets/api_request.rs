//! `api_request`: an arbitrary HTTP API request (docs/api.md) handed to
//! wschat's own applications, as the hub hands it.
//!
//! The input is `METHOD TARGET` on its first line and the body after it;
//! the request gets the name of its API mount from the routes `wschat
//! serve` mounts (`apps::mount`), as the server gives it.
//! Every request is answered, never a panic: with a status the API
//! documents, a JSON body, and for an error `{"error":{"code","message"}}`.
//! The chat and the desk run in memory, built once; what a request
//! publishes or stores stays for the next input, so sequences of requests
//! get explored too.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wschat::hub::api::{ApiRequest, exercise};
use wschat::hub::metrics::Metrics;
use wschat::hub::{App, Ctx};
use wschat::router::Router;
use wschat::server::{Routes, Server, ServerConfig};

const STATUSES: [u16; 9] = [200, 400, 404, 405, 408, 409, 411, 413, 503];

/// Inputs after which the apps start afresh, so that what the inputs
/// stored does not grow without end.
const FRESH_EVERY: u64 = 5_000;

/// The apps, and the hub's context over the store they were built on
/// (committed after every request, as the hub commits every turn).
fn fresh() -> (Router, Ctx) {
    let (router, log) =
        wschat::apps::standard(&wschat::config::Config::default(), None).expect("in-memory apps");
    (router, Ctx::with_log(Arc::new(Metrics::default()), log))
}

thread_local! {
    static APPS: RefCell<((Router, Ctx), u64)> = RefCell::new((fresh(), 0));
    static ROUTES: Routes =
        wschat::apps::mount(Server::builder(ServerConfig::default())).routes().clone();
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (method, target) = head.split_once(' ').unwrap_or(("GET", &head));
    // The pure parsing helpers first.
    let _ = exercise(method, target, body);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = format!("/api/{}", path.trim_start_matches('/'));
    let request = ApiRequest {
        method: method.to_string(),
        mount: ROUTES.with(|routes| routes.api_mount(&path)),
        path,
        query: query.to_string(),
        body: body.to_vec(),
    };
    let answer = APPS.with(|apps| {
        let mut apps = apps.borrow_mut();
        apps.1 += 1;
        if apps.1 % FRESH_EVERY == 0 {
            apps.0 = fresh();
        }
        let (router, ctx) = &mut apps.0;
        let answer = router.api(ctx, &request);
        let _ = ctx.log().commit();
        answer
    });
    assert!(
        STATUSES.contains(&answer.status),
        "undocumented status {}",
        answer.status
    );
    let json: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON answer");
    if answer.status != 200 {
        assert!(json["error"]["code"].is_string(), "{json}");
        assert!(json["error"]["message"].is_string(), "{json}");
    }
});
