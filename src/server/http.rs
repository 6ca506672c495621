//! Reading the HTTP request on a new connection, and routing it: a plain
//! GET gets a page, an upgrade gets the RFC 6455 handshake and an endpoint.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use crate::ws::handshake::{self, Rejection, Request, http_response};

/// Bytes read at a time while the request head arrives.
const REQUEST_CHUNK: usize = 1024;

/// Serve one connection from its first byte to its last.
pub fn handle_connection(mut stream: TcpStream, shared: &Arc<Shared>) {
    let config = &shared.config;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let (request, leftover) = match read_request(
        &mut stream,
        config.max_header_bytes,
        config.handshake_timeout,
    ) {
        Ok(Some(parts)) => parts,
        Ok(None) => return,
        Err(rejection) => {
            log::debug!("{peer}: {rejection}");
            respond(&mut stream, &rejection.to_response());
            return;
        }
    };
    let path = request.path().to_string();
    if !request.is_upgrade() {
        log::debug!("{peer}: {} {}", request.method, request.target);
        respond(&mut stream, &plain_response(&request));
        return;
    }
    let is_echo = config.echo_everywhere || path == "/echo";
    if !is_echo {
        let rejection = Rejection::new(
            404,
            format!("no WebSocket endpoint at {path}; the echo endpoint is /echo"),
        );
        log::debug!("{peer}: upgrade refused: {rejection}");
        respond(&mut stream, &rejection.to_response());
        return;
    }
    let accept = match handshake::validate_upgrade(&request, &config.protocols) {
        Ok(accept) => accept,
        Err(rejection) => {
            log::debug!("{peer}: upgrade refused: {rejection}");
            respond(&mut stream, &rejection.to_response());
            return;
        }
    };
    if stream.write_all(&accept.response()).is_err() {
        return;
    }
    log::debug!("{peer}: WebSocket open on {path}");
    let started = Instant::now();
    let code = super::echo::run(stream, &leftover, config);
    log::debug!(
        "{peer}: WebSocket on {path} closed after {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        code.map_or("no close code".to_string(), |c| c.to_string())
    );
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
    let mut buf = Vec::new();
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
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Rejection::new(
                    408,
                    "the request head did not arrive in time",
                ));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        }
        if let Some((request, used)) = handshake::parse_request(&buf, max_header_bytes)? {
            let _ = stream.set_read_timeout(None);
            return Ok(Some((request, buf[used..].to_vec())));
        }
    }
}

/// The answer to a request that is not an upgrade.
fn plain_response(request: &Request) -> Vec<u8> {
    if request.method != "GET" && request.method != "HEAD" {
        let body = format!("{} is not allowed here\n", request.method);
        return http_response(
            405,
            "text/plain; charset=utf-8",
            &[("Allow", "GET, HEAD")],
            body.as_bytes(),
        );
    }
    let (status, content_type, body): (u16, &str, &[u8]) = match request.path() {
        "/" => (200, "text/html; charset=utf-8", INDEX_PAGE.as_bytes()),
        "/healthz" => (200, "text/plain; charset=utf-8", b"ok\n"),
        _ => (404, "text/plain; charset=utf-8", b"not found\n"),
    };
    let mut response = http_response(status, content_type, &[("Cache-Control", "no-store")], body);
    if request.method == "HEAD" {
        response.truncate(response.len() - body.len());
    }
    response
}

/// Write a whole HTTP response and end the connection.
fn respond(stream: &mut TcpStream, response: &[u8]) {
    let _ = stream.write_all(response);
    let _ = stream.shutdown(Shutdown::Write);
    // Read what the client may still send, briefly, so the answer is not
    // lost to a TCP reset.
    super::finish(stream, std::time::Duration::from_millis(500));
}

/// The page at `/` until the chat lands: what is here, said plainly.
const INDEX_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>wschat</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>wschat</h1>
<p>A WebSocket server with a hand-written RFC 6455 handshake and frame codec.</p>
<p>This build serves the WebSocket echo endpoint at <code>/echo</code>: every text and binary message is sent back unchanged.</p>
<p>Try it from the browser console: <code>ws = new WebSocket(`ws://${location.host}/echo`); ws.onmessage = e =&gt; console.log(e.data); ws.onopen = () =&gt; ws.send("你好")</code></p>
</body></html>
"#;
