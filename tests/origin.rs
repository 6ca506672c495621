//! The Origin allowlist (`--allowed-origin`) over real sockets: other
//! sites are refused, the server's own pages never are, and only listed
//! sites may embed the support widget. And the pages' own
//! Content-Security-Policy: only their own script and style run.

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
    let policy = support.header("Content-Security-Policy").unwrap_or("");
    assert!(
        policy.ends_with("; frame-ancestors 'self' https://shop.example"),
        "{policy}"
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

/// The value of `directive` in a Content-Security-Policy, if present.
fn directive<'a>(policy: &'a str, directive: &str) -> Option<&'a str> {
    policy
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(directive)?.strip_prefix(' '))
}

#[test]
fn every_page_runs_only_its_own_script_and_style() {
    let server = start(config());
    let addr = server.addr();
    let get = |path: &str| {
        let lines = vec![format!("Host: {addr}")];
        http_exchange(addr, &request(&format!("GET {path} HTTP/1.1"), &lines))
    };
    for path in ["/", "/chat", "/support", "/agent", "/inspect"] {
        let page = get(path);
        assert_eq!(page.status, 200, "{path}");
        let policy = page
            .header("Content-Security-Policy")
            .unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"));
        assert_eq!(directive(policy, "default-src"), Some("'none'"), "{path}");
        assert_eq!(directive(policy, "connect-src"), Some("'self'"), "{path}");
        let script = directive(policy, "script-src").unwrap_or_default();
        let nonce = script
            .strip_prefix("'nonce-")
            .and_then(|n| n.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{path}: script-src is {script:?}"));
        assert!(nonce.len() >= 22, "{path}: a nonce of 128 bits or more");
        assert_eq!(
            directive(policy, "style-src"),
            Some(format!("'nonce-{nonce}'").as_str()),
            "{path}"
        );
        // Every script and style element carries the nonce, and nothing in
        // the page needs what the policy forbids (it would be refused).
        let body = String::from_utf8_lossy(&page.body);
        let marked = |tag: &str| body.matches(&format!("<{tag} nonce=\"{nonce}\">")).count();
        assert_eq!(body.matches("<script").count(), marked("script"), "{path}");
        assert_eq!(body.matches("<style").count(), marked("style"), "{path}");
        assert_eq!(marked("script"), 1, "{path}");
        assert!(
            !body.contains(" style=\""),
            "{path}: an inline style attribute"
        );
        assert!(!body.contains("javascript:"), "{path}: a javascript: URL");
        // An attribute such as ` onclick="…"`: letters after " on", then `="`.
        let handler = body.match_indices(" on").any(|(i, _)| {
            let rest = &body[i + 3..];
            let name = rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_ascii_lowercase())
                    .len();
            name > 0 && rest[name..].starts_with("=\"")
        });
        assert!(!handler, "{path}: an inline event handler attribute");
        // Only the desk's widget may be framed elsewhere (by anyone, with
        // no allowlist); the other pages only by themselves.
        let ancestors = directive(policy, "frame-ancestors");
        if path == "/support" {
            assert_eq!(ancestors, None, "{path}");
        } else {
            assert_eq!(ancestors, Some("'self'"), "{path}");
        }
        assert_eq!(
            page.header("Referrer-Policy"),
            Some("same-origin"),
            "{path}"
        );
        // A fresh nonce for every response.
        let again = get(path);
        let policy2 = again.header("Content-Security-Policy").unwrap_or("");
        assert_ne!(directive(policy2, "script-src"), Some(script), "{path}");
    }
    // What is not a page has no policy to keep.
    assert_eq!(get("/healthz").header("Content-Security-Policy"), None);
    server.stop();
}
