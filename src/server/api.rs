//! The door of the HTTP API (`/api/`, docs/api.md): on the connection's own
//! thread, check the client's address (`--api-from`), its key
//! (`--api-key`, compared in constant time), its rate (`--api-rate`) and
//! its body (`Content-Length`, at most `--api-max-body`), then hand the
//! request to the hub and wait for the answer (at most [`API_TIMEOUT`]).
//! Each request is logged in one line, without its key.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, TcpStream};
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::Shared;
use super::settings::API_TIMEOUT;
use crate::hub::Event;
use crate::hub::api::{ApiRequest, ApiResponse};
use crate::ws::handshake::{Request, http_response};

/// Each key's token bucket for `--api-rate`, by the key's place in the
/// list.
#[derive(Debug, Default)]
pub struct ApiBuckets {
    buckets: Mutex<HashMap<usize, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ApiBuckets {
    /// Take a token for key `key` at `rate` a second (as many at once):
    /// `Ok`, or `Err(seconds until one is back)`.
    pub fn take(&self, key: usize, rate: u32) -> Result<(), u64> {
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// Whether two secrets are equal, in time that depends on neither (both
/// are hashed first, so not even on their lengths).
///
/// ```
/// use wschat::server::api::same_secret;
/// assert!(same_secret("k1", "k1"));
/// assert!(!same_secret("k1", "k2"));
/// assert!(!same_secret("k1", "k10"));
/// ```
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The place in `keys` of the key the request's `Authorization: Bearer`
/// header carries. Every key is compared, whichever matches.
fn key_index(request: &Request, keys: &[String]) -> Option<usize> {
    let presented = request
        .header("Authorization")
        .map(str::trim)
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        })
        .map(|(_, key)| key.trim())?;
    let mut found = None;
    for (i, key) in keys.iter().enumerate() {
        if same_secret(presented, key) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// Serve an API request whose head has been read (`leftover`: the bytes
/// after it); returns the response's bytes and status. `client` is the
/// client's address (through a trusted proxy, the one it reports).
pub fn serve(
    stream: &mut TcpStream,
    request: &Request,
    leftover: Vec<u8>,
    shared: &Shared,
    client: Option<IpAddr>,
) -> (u16, Vec<u8>) {
    let answer = answer(stream, request, leftover, shared, client);
    let mut headers = vec![("Cache-Control", "no-store".to_string())];
    if answer.status == 401 {
        headers.push(("WWW-Authenticate", "Bearer realm=\"wschat\"".to_string()));
    }
    if let Some(seconds) = answer.retry_after {
        headers.push(("Retry-After", seconds.to_string()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut body = answer.body.into_bytes();
    body.push(b'\n');
    (
        answer.status,
        http_response(answer.status, "application/json", &headers, &body),
    )
}

fn answer(
    stream: &mut TcpStream,
    request: &Request,
    leftover: Vec<u8>,
    shared: &Shared,
    client: Option<IpAddr>,
) -> ApiResponse {
    let config = &shared.config;
    if !client.is_some_and(|ip| config.api_from.iter().any(|r| r.contains(ip))) {
        return ApiResponse::error(
            403,
            "forbidden",
            "the API is not served to your address (see --api-from)",
        );
    }
    let Some(key) = key_index(request, &config.api_keys) else {
        let why = if config.api_keys.is_empty() {
            "the API has no keys (see --api-key)"
        } else {
            "send a valid key as Authorization: Bearer KEY"
        };
        return ApiResponse::error(401, "unauthorized", why);
    };
    if let Err(seconds) = shared.api_buckets.take(key, config.api_rate) {
        return ApiResponse {
            retry_after: Some(seconds),
            ..ApiResponse::error(
                429,
                "rate_limited",
                format!(
                    "more than {} requests a second with this key (see --api-rate)",
                    config.api_rate
                ),
            )
        };
    }
    let body = match read_body(stream, request, leftover, config.api_max_body) {
        Ok(body) => body,
        Err(e) => return e,
    };
    let (path, query) = request
        .target()
        .split_once('?')
        .unwrap_or((request.target(), ""));
    let api = ApiRequest {
        method: request.method().to_string(),
        path: path.to_string(),
        query: query.split('#').next().unwrap_or("").to_string(),
        body,
        mount: shared.routes.api_mount(path),
    };
    let (reply, answer) = crossbeam_channel::bounded(1);
    if shared
        .hub
        .send_timeout(Event::Api(api, reply), API_TIMEOUT)
        .is_err()
    {
        return ApiResponse::unavailable();
    }
    answer
        .recv_timeout(API_TIMEOUT)
        .unwrap_or_else(|_| ApiResponse::unavailable())
}

/// The request's body: `Content-Length` bytes (none without one), at most
/// `max`, within [`API_TIMEOUT`].
fn read_body(
    stream: &mut TcpStream,
    request: &Request,
    mut body: Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, ApiResponse> {
    if request.header("Transfer-Encoding").is_some() {
        return Err(ApiResponse::error(
            411,
            "length_required",
            "send the body with Content-Length (no chunked encoding)",
        ));
    }
    let length = match request.header("Content-Length").map(str::trim) {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ApiResponse::bad_request("Content-Length is not a number"))?,
    };
    if length > max as u64 {
        return Err(ApiResponse::error(
            413,
            "too_large",
            format!("the body is {length} bytes; the limit is {max} (see --api-max-body)"),
        ));
    }
    let length = length as usize;
    body.truncate(length);
    let deadline = Instant::now() + API_TIMEOUT;
    let mut chunk = [0u8; 4096];
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        let late = || ApiResponse::error(408, "timeout", "the body did not arrive in time");
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(late());
        }
        let want = chunk.len().min(length - body.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(ApiResponse::bad_request("the body ended early")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(late());
            }
            Err(_) => return Err(ApiResponse::bad_request("the body could not be read")),
        }
    }
    let _ = stream.set_read_timeout(None);
    Ok(body)
}
