//! Reading the HTTP request on a new connection, and routing it: a plain
//! GET gets a page, an upgrade gets the RFC 6455 handshake and an endpoint.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use super::routes::{Mount, Resource, Service};
use crate::ws::deflate::{self, Agreement};
use crate::ws::handshake::{self, Rejection, Request, http_response, origin_allowed};

/// Bytes read at a time while the request head arrives.
const REQUEST_CHUNK: usize = 1024;

/// Serve one connection from its first byte to its last; `tcp_peer` is the
/// address `accept` gave.
///
/// Two steps, in two frames: `open` reads the request and answers it (a
/// page, a refusal or the 101), then what is mounted on the path runs for
/// the connection's life, on the one driver (`driver::drive`). The first
/// step's frame, with whatever the compiler inlines into it, is gone by the
/// time the thread parks in `read`; what stays on the stack of each idle
/// connection is this function's small frame, the endpoint's and the
/// driver's (tests/stack.rs checks it: a page more here is 4 KiB more per
/// connection).
pub fn handle_connection(stream: TcpStream, tcp_peer: SocketAddr, shared: &Arc<Shared>) {
    let Some(Upgraded {
        stream,
        mount,
        request,
        mut leftover,
        peer,
        deflate,
        handshake,
    }) = open(stream, tcp_peer, shared)
    else {
        return;
    };
    let config = &shared.config;
    let path = log_path(shared, &request);
    log::info!("open {peer} {path}");
    let started = Instant::now();
    let behavior = &mount.behavior;
    let code = match mount.service {
        // The request's strings are not needed past the handshake: freed
        // here, they do not sit on the heap for the connection's life.
        Service::Echo => {
            drop(request);
            super::echo::run(stream, &mut leftover, behavior, config, deflate)
        }
        Service::Inspect => {
            drop(request);
            super::inspect::run(stream, &mut leftover, behavior, config, deflate)
        }
        Service::Hub(name) => super::reader::run(
            stream,
            &mut leftover,
            super::reader::Opening {
                mount: name,
                request,
                addr: peer.clone(),
                handshake,
            },
            behavior,
            shared,
            deflate,
        ),
    };
    log::info!(
        "close {peer} {path} after {:.1}s, code {}",
        started.elapsed().as_secs_f64(),
        code.map_or("none (connection dropped)".to_string(), |c| c.to_string())
    );
}

/// A connection that has been sent its 101, and what its endpoint needs.
struct Upgraded {
    stream: TcpStream,
    mount: Mount,
    request: Request,
    /// Bytes that came after the request head (the first frames, if the
    /// client did not wait for the 101).
    leftover: Vec<u8>,
    /// The client's address, for the log.
    peer: String,
    /// permessage-deflate, if it was negotiated (RFC 7692).
    deflate: Option<Agreement>,
    /// The 101, when it is not sent yet (a hub connection's goes out with
    /// the hub's first frames).
    handshake: Option<std::sync::Arc<[u8]>>,
}

/// The path for a connection's log lines: a mounted socket's path is
/// borrowed from the routes (a string made here would live as long as the
/// connection). A function of its own, never inlined: its temporaries stay
/// off the frame that lives while the connection does (tests/stack.rs).
#[inline(never)]
fn log_path(shared: &Shared, request: &Request) -> std::borrow::Cow<'static, str> {
    match shared.routes.socket_path(request.path()) {
        Some(mounted) => mounted.into(),
        None => request.path().to_string().into(),
    }
}

/// Read the request and answer it: a page or another plain answer, a
/// refusal, or the 101 of RFC 6455 §4.2.2, after which the connection is
/// handed back as [`Upgraded`]. None when the connection is done.
#[inline(never)] // see handle_connection: its frame must be gone before the endpoint runs
fn open(mut stream: TcpStream, tcp_peer: SocketAddr, shared: &Arc<Shared>) -> Option<Upgraded> {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let (request, leftover) = match read_request(
        &mut stream,
        config.max_header_bytes,
        config.handshake_timeout,
    ) {
        Ok(Some(parts)) => parts,
        Ok(None) => return None,
        Err(rejection) => {
            refuse(
                &mut stream,
                &tcp_peer.to_string(),
                &rejection,
                &shared.metrics,
            );
            return None;
        }
    };
    let peer = client_addr(Some(tcp_peer), &request, &config.trusted_proxies);
    let metrics = &shared.metrics;
    let path = request.path();
    let routes = &shared.routes;
    if request.header(super::forward::FORWARDED_HEADER).is_none()
        && let Some(target) = routes.forwarded(path)
    {
        log::debug!(
            "{peer}: {} {} forwarded to {target}",
            request.method(),
            redacted(path)
        );
        if let Err(e) = super::forward::splice(
            &stream,
            &request,
            &leftover,
            &target,
            routes.forward_connect_timeout(),
            client_ip(&peer),
        ) {
            let why = format!("the server that serves {path} ({target}) is unreachable: {e}");
            refuse(&mut stream, &peer, &Rejection::new(503, why), metrics);
        }
        return None;
    }
    if routes.is_api(path) {
        let started = Instant::now();
        let (status, response) =
            super::api::serve(&mut stream, &request, leftover, shared, client_ip(&peer));
        metrics.count_response(status);
        respond(&mut stream, &response);
        // The access log: never the key (it is in a header, not logged).
        log::info!(
            "api {peer} {} {} {status} {}ms",
            request.method(),
            redacted(path),
            started.elapsed().as_millis()
        );
        return None;
    }
    if !request.is_upgrade() {
        log::debug!(
            "{peer}: {} {}",
            request.method(),
            redacted(request.target())
        );
        let client_ip = client_ip(&peer);
        let (status, response) = plain_response(&request, shared, client_ip);
        metrics.count_response(status);
        respond(&mut stream, &response);
        return None;
    }
    let Some(mount) = routes.socket(request.path()) else {
        let rejection = Rejection::new(404, routes.no_socket(request.path()));
        refuse(&mut stream, &peer, &rejection, metrics);
        return None;
    };
    let policy = handshake::Policy {
        protocols: &config.protocols,
        allowed_origins: &config.allowed_origins,
    };
    let mut accept = match policy.accept(&request) {
        Ok(accept) => accept,
        Err(error) => {
            refuse(&mut stream, &peer, &error.into(), metrics);
            return None;
        }
    };
    if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        // A handshake that completes once stop() has begun: no 101 for a
        // connection the hub would only close again.
        let rejection = Rejection::new(503, "the server is shutting down".to_string());
        refuse(&mut stream, &peer, &rejection, metrics);
        return None;
    }
    // RFC 7692 §5: the first permessage-deflate offer we can keep, unless
    // `--deflate off`. /inspect shows frames as they are, so there only
    // when the page asks (`?deflate=on`): then it shows compressed frames
    // and what they inflate to.
    let wanted = match mount.service {
        Service::Inspect => {
            config.deflate && request.query_param("deflate").as_deref() == Some("on")
        }
        _ => mount.behavior.deflate,
    };
    let deflate = wanted
        .then(|| deflate::negotiate(request.headers_named("Sec-WebSocket-Extensions")))
        .flatten();
    accept.extensions = deflate.map(|agreement| agreement.response());
    let handshake = if let Service::Hub(_) = mount.service {
        // The hub's connection: its 101 goes out with the first frames
        // the hub sends it, in one system call (`Peer::hold_handshake`).
        // Written straight into the shared buffer the peer keeps: a `Vec`
        // turned into one would be freed here, and stay cached for this
        // thread while the connection idles.
        let mut response: std::sync::Arc<[u8]> =
            std::iter::repeat_n(0, accept.response_len()).collect();
        match std::sync::Arc::get_mut(&mut response).and_then(|buf| accept.write_response(buf)) {
            Some(_) => Some(response),
            None => Some(accept.response().into()),
        }
    } else {
        // The 101 from the stack: what this thread allocated and freed
        // would stay cached for it while the connection is idle.
        let mut on_stack = [0u8; RESPONSE_ON_STACK];
        let sent = match accept.write_response(&mut on_stack) {
            Some(len) => stream.write_all(&on_stack[..len]),
            None => stream.write_all(&accept.response()),
        };
        if sent.is_err() {
            return None;
        }
        None
    };
    metrics.count_response(101);
    Some(Upgraded {
        stream,
        mount,
        request,
        leftover,
        peer,
        deflate,
        handshake,
    })
}

/// The client's address: the TCP peer, or, when the peer is one of the
/// `--trust-proxy` addresses, the nearest address in `X-Forwarded-For` that
/// is not a trusted proxy (else `X-Real-IP`). Headers from anyone else are
/// ignored, since any client can write them.
///
/// ```
/// use wschat::server::http::client_addr;
/// use wschat::ws::handshake::parse_request;
/// let raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.2\r\n\r\n";
/// let (req, _) = parse_request(raw, 8192).unwrap().unwrap();
/// let proxy = "10.0.0.2:443".parse().ok();
/// let trusted = ["10.0.0.2".parse().unwrap()];
/// assert_eq!(client_addr(proxy, &req, &trusted), "203.0.113.9");
/// assert_eq!(client_addr(proxy, &req, &[]), "10.0.0.2:443");
/// ```
pub fn client_addr(peer: Option<SocketAddr>, request: &Request, trusted: &[IpAddr]) -> String {
    let Some(peer) = peer else {
        return "?".to_string();
    };
    if !trusted.contains(&peer.ip()) {
        // Written on the stack, then allocated at its exact size: this
        // string lives as long as the connection (a 15-byte address in a
        // 53-byte buffer would hold a 64-byte chunk instead of 32).
        let mut text = [0u8; SOCKET_ADDR_TEXT];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        if std::io::Write::write_fmt(&mut cursor, format_args!("{peer}")).is_ok() {
            let len = cursor.position() as usize;
            if let Ok(text) = std::str::from_utf8(&text[..len]) {
                return text.to_string();
            }
        }
        return peer.to_string();
    }
    let hops: Vec<&str> = request
        .headers_named("X-Forwarded-For")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let forwarded = hops
        .iter()
        .rev()
        .find(|h| {
            h.parse::<IpAddr>()
                .map_or(true, |ip| !trusted.contains(&ip))
        })
        .or(hops.first())
        .map(|h| h.to_string());
    forwarded
        .or_else(|| request.header("X-Real-IP").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| peer.to_string())
}

/// Room on the stack for a 101: one with a subprotocol and the
/// permessage-deflate answer fits; a longer one is written from the heap.
const RESPONSE_ON_STACK: usize = 384;

/// Bytes of the longest IPv6 socket address as text, scope id aside
/// (`[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535`).
const SOCKET_ADDR_TEXT: usize = 53;

/// The origin (`scheme://host[:port]`) of a URL such as a `Referer`.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

fn refuse(
    stream: &mut TcpStream,
    peer: &str,
    rejection: &Rejection,
    metrics: &crate::hub::metrics::Metrics,
) {
    log::debug!("{peer}: upgrade refused: {rejection}");
    metrics.count_response(rejection.status);
    respond(stream, &rejection.to_response());
}

/// Read the request head, within the header limit and the handshake
/// timeout (a deadline for the whole head, so that a client sending one
/// byte at a time cannot hold the thread). Returns the request and the
/// bytes that came after it, `None` when the peer went away or was too slow
/// (it was answered 408), or the rejection to send.
fn read_request(
    stream: &mut TcpStream,
    max_header_bytes: usize,
    timeout: std::time::Duration,
) -> Result<Option<(Request, Vec<u8>)>, Rejection> {
    let deadline = Instant::now() + timeout;
    // What arrived so far, when the head takes more than one read; a head
    // that comes in one read is parsed where it lies.
    let mut buf = Vec::new();
    // On the stack: the pages the handshake touches are given back before a
    // connection settles in (`sys::trim_stack`). A heap buffer would not
    // be: once freed, it stays cached for this thread by the allocator.
    let mut chunk = [0u8; REQUEST_CHUNK];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(Rejection::new(
                408,
                "the request head did not arrive in time",
            ));
        }
        let want = chunk
            .len()
            .min(max_header_bytes + 1 - buf.len().min(max_header_bytes));
        let n = match stream.read(&mut chunk[..want]) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Rejection::new(
                    408,
                    "the request head did not arrive in time",
                ));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        if !buf.is_empty() {
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = if buf.is_empty() {
            &chunk[..n]
        } else {
            &buf[..]
        };
        if let Some((request, used)) = handshake::parse_request(head, max_header_bytes)? {
            let _ = stream.set_read_timeout(None);
            return Ok(Some((request, head[used..].to_vec())));
        }
        if buf.is_empty() {
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The IP address in what [`client_addr`] returned (`addr` or
/// `addr:port`), if it holds one.
fn client_ip(peer: &str) -> Option<IpAddr> {
    peer.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| peer.parse::<IpAddr>())
        .ok()
}

/// The answer to a request that is not an upgrade, and its status.
/// `client` is the client's address (through a trusted proxy, the one the
/// proxy reports): `/metrics` is only for `--metrics-from`.
fn plain_response(request: &Request, shared: &Shared, client: Option<IpAddr>) -> (u16, Vec<u8>) {
    if request.method() != "GET" && request.method() != "HEAD" {
        let body = format!("{} is not allowed here\n", request.method());
        return (
            405,
            http_response(
                405,
                "text/plain; charset=utf-8",
                &[("Allow", "GET, HEAD")],
                body.as_bytes(),
            ),
        );
    }
    let metrics;
    let path = request.path();
    let resource = shared.routes.page(path);
    // Each page is sent with a fresh nonce on its own <script> and <style>:
    // the Content-Security-Policy below lets nothing else run or style it.
    let page = match resource {
        Some(Resource::Page {
            html,
            framed_by_allowed,
        }) => {
            let nonce = page_nonce();
            Some((with_nonce(html, &nonce), nonce, framed_by_allowed))
        }
        _ => None,
    };
    let unhealthy = (resource == Some(Resource::Health))
        .then(|| shared.metrics.store_failing())
        .flatten()
        .map(|why| format!("{why}\n"));
    let forbidden_metrics;
    let (status, content_type, body): (u16, &str, &[u8]) = if let Some((page, _, _)) = &page {
        (200, "text/html; charset=utf-8", page.as_bytes())
    } else {
        match resource {
            Some(Resource::EmbedScript(script)) => {
                (200, "text/javascript; charset=utf-8", script.as_bytes())
            }
            Some(Resource::Health) => match &unhealthy {
                // A load balancer drains this server while its store fails.
                Some(why) => (503, "text/plain; charset=utf-8", why.as_bytes()),
                None => (200, "text/plain; charset=utf-8", b"ok\n"),
            },
            Some(Resource::Metrics)
                if !client.is_some_and(|ip| {
                    shared.config.metrics_from.iter().any(|r| r.contains(ip))
                }) =>
            {
                forbidden_metrics =
                    format!("{path} is not served to your address (see --metrics-from)\n");
                (
                    403,
                    "text/plain; charset=utf-8",
                    forbidden_metrics.as_bytes(),
                )
            }
            Some(Resource::Metrics) => {
                metrics = shared.metrics.render();
                (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.as_bytes(),
                )
            }
            Some(Resource::Page { .. }) | None => {
                (404, "text/plain; charset=utf-8", b"not found\n")
            }
        }
    };
    let allowed = &shared.config.allowed_origins;
    let mut headers = vec![
        ("Cache-Control", "no-store".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
    ];
    if let Some((_, nonce, framed_by_allowed)) = &page {
        // Only a page made to be framed by other sites (the desk's visitor
        // widget) is: by any, or by the --allowed-origin ones when listed.
        let framed_by = match framed_by_allowed {
            true if allowed.is_empty() => None,
            true => Some(format!("'self' {}", allowed.join(" "))),
            false => Some("'self'".to_string()),
        };
        headers.push((
            "Content-Security-Policy",
            page_policy(nonce, framed_by.as_deref()),
        ));
        headers.push(("Referrer-Policy", "same-origin".to_string()));
    }
    // The Origin allowlist applies to embedding: only listed sites may
    // load an embed script.
    if !allowed.is_empty() && matches!(resource, Some(Resource::EmbedScript(_))) {
        let site = request
            .header("Origin")
            .or_else(|| request.header("Referer"))
            .map(origin_of);
        if let Some(site) = site.filter(|s| !origin_allowed(s, request, allowed)) {
            let body = format!("{site} may not embed this widget (see --allowed-origin)\n");
            return (
                403,
                http_response(403, "text/plain; charset=utf-8", &[], body.as_bytes()),
            );
        }
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut response = http_response(status, content_type, &headers, body);
    if request.method() == "HEAD" {
        response.truncate(response.len() - body.len());
    }
    (status, response)
}

/// Write a whole HTTP response and end the connection.
fn respond(stream: &mut TcpStream, response: &[u8]) {
    let _ = stream.write_all(response);
    let _ = stream.shutdown(Shutdown::Write);
    // Read what the client may still send, briefly, so the answer is not
    // lost to a TCP reset.
    super::finish(stream, std::time::Duration::from_millis(500));
}

/// A fresh nonce for one page response: 128 unpredictable bits in base64
/// (CSP Level 3 asks for at least 128).
fn page_nonce() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&crate::random::random_u64().to_ne_bytes());
    bytes[8..].copy_from_slice(&crate::random::random_u64().to_ne_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `html` with `nonce` on its `<script>` and `<style>` elements (the pages
/// write them without attributes).
fn with_nonce(html: &str, nonce: &str) -> String {
    html.replace("<script>", &format!("<script nonce=\"{nonce}\">"))
        .replace("<style>", &format!("<style nonce=\"{nonce}\">"))
}

/// The Content-Security-Policy of wschat's pages: their own nonce-marked
/// script and style and nothing else (no script or style another party
/// managed to put in the page runs or applies, even if it got there), images
/// only from `data:` URLs (the favicons), connections (the WebSocket) only
/// to this origin, no forms, no `<base>`; and who may frame the page
/// (`frame-ancestors`; `None`: anyone).
fn page_policy(nonce: &str, framed_by: Option<&str>) -> String {
    let mut policy = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
    );
    if let Some(ancestors) = framed_by {
        policy.push_str("; frame-ancestors ");
        policy.push_str(ancestors);
    }
    policy
}

/// A request target fit for a log: the values of `token` and `session`
/// (secrets that sign a user in) replaced by `…`.
///
/// ```
/// use wschat::server::http::redacted;
/// assert_eq!(redacted("/?name=a&token=eyJ.x.y&room=b"), "/?name=a&token=…&room=b");
/// assert_eq!(redacted("/support?session=abc"), "/support?session=…");
/// assert_eq!(redacted("/inspect"), "/inspect");
/// ```
pub fn redacted(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if matches!(key, "token" | "session") => format!("{key}=…"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}
