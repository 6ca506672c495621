//! The Origin allowlist (`--allowed-origin`) over real sockets: other
//! sites are refused, the server's own pages never are, and only listed
//! sites may embed the support widget.

mod common;

use common::{config, http_exchange, request, start, upgrade_lines};
use wschat::config::Config;

fn with_allowlist() -> Config {
    Config {
        allowed_origins: vec!["https://shop.example".to_string()],
        ..config()
    }
}

#[test]
fn own_pages_and_listed_sites_may_connect_others_get_403() {
    let server = start(with_allowlist());
    let addr = server.addr();
    let upgrade = |origin: &str| {
        let mut lines = upgrade_lines(&addr.to_string());
        lines.push(format!("Origin: {origin}"));
        http_exchange(addr, &request("GET / HTTP/1.1", &lines)).status
    };
    assert_eq!(upgrade("https://shop.example"), 101);
    assert_eq!(
        upgrade(&format!("http://{addr}")),
        101,
        "the server's own chat page"
    );
    assert_eq!(upgrade("https://evil.example"), 403);
    assert_eq!(upgrade(&format!("http://{addr}.evil.example")), 403);
    server.stop();
}

#[test]
fn only_listed_sites_may_embed_the_widget() {
    let server = start(with_allowlist());
    let addr = server.addr();
    let get = |path: &str, extra: Option<String>| {
        let mut lines = vec![format!("Host: {addr}")];
        lines.extend(extra);
        http_exchange(addr, &request(&format!("GET {path} HTTP/1.1"), &lines))
    };
    let listed = get(
        "/widget.js",
        Some("Referer: https://shop.example/cart?x=1".into()),
    );
    assert_eq!(listed.status, 200);
    let other = get("/widget.js", Some("Referer: https://evil.example/".into()));
    assert_eq!(other.status, 403);
    assert!(String::from_utf8_lossy(&other.body).contains("evil.example"));
    let support = get("/support", None);
    assert_eq!(support.status, 200);
    assert_eq!(
        support.header("Content-Security-Policy"),
        Some("frame-ancestors 'self' https://shop.example")
    );
    server.stop();

    // With no allowlist, anyone may embed it.
    let open = start(config());
    let addr = open.addr();
    let mut lines = vec![format!("Host: {addr}")];
    lines.push("Referer: https://evil.example/".into());
    let reply = http_exchange(addr, &request("GET /widget.js HTTP/1.1", &lines));
    assert_eq!(reply.status, 200);
    open.stop();
}
