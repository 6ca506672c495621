//! Requests of the HTTP API (`/api/`, docs/api.md) as the hub sees them.
//!
//! A connection thread reads an API request, checks its key, address and
//! size, and hands it to the hub as an [`Event::Api`](super::Event::Api)
//! with a channel for the answer. The hub gives it to the app
//! ([`App::api`](super::App::api)), which answers with an [`ApiResponse`];
//! the answer goes back only after the turn's store write (a write request
//! whose turn could not be stored is answered 503 `unavailable` instead).
//!
//! Everything here is pure: parsing a path, a query or a JSON body, and
//! building an answer. The fuzz target `api_request` drives it.

use serde_json::{Map, Value};

use crate::ws::handshake::percent_decode;

/// The path prefix of the API.
pub const API_PREFIX: &str = "/api/";

/// One API request, as read by a connection thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// `GET`, `POST`, `DELETE`, …
    pub method: String,
    /// The path, without the query string (`/api/rooms/lobby/history`).
    pub path: String,
    /// The query string, without the `?` (may be empty).
    pub query: String,
    /// The request body (empty for a `GET`).
    pub body: Vec<u8>,
    /// The name of the API mount the server routed it to (`desk` for
    /// `/api/desk/…`: `server::Builder::api`), `None` for the rest of
    /// `/api/`. The hub's application dispatches by this, not by the path.
    pub mount: Option<&'static str>,
}

/// The answer to an [`ApiRequest`]: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// Seconds to put in `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiResponse {
    /// Name final ids: where the body is an object whose `"id"` is the
    /// provisional id of a message that `ids` pairs with a final one (the
    /// store decided it, as the Redis append script does), write the final
    /// one. Every other body stays as it is.
    pub fn rename_ids(&mut self, ids: &[(u64, u64)]) {
        if ids.is_empty() || !self.body.contains("\"id\"") {
            return;
        }
        let Ok(serde_json::Value::Object(mut body)) = serde_json::from_str(&self.body) else {
            return;
        };
        let Some(id) = body.get("id").and_then(serde_json::Value::as_u64) else {
            return;
        };
        if let Some(&(_, last)) = ids.iter().find(|(provisional, _)| *provisional == id) {
            body.insert("id".into(), last.into());
            self.body = serde_json::Value::Object(body).to_string();
        }
    }

    /// 200 with `body`.
    pub fn ok(body: impl Into<String>) -> ApiResponse {
        ApiResponse {
            status: 200,
            body: body.into(),
            retry_after: None,
        }
    }

    /// An error: `status` and `{"error":{"code","message"}}`.
    ///
    /// ```
    /// use wschat::hub::api::ApiResponse;
    /// let e = ApiResponse::error(404, "unknown_room", "no room named x");
    /// assert_eq!(e.body, r#"{"error":{"code":"unknown_room","message":"no room named x"}}"#);
    /// ```
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> ApiResponse {
        let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
        ApiResponse {
            status,
            body: body.to_string(),
            retry_after: None,
        }
    }

    /// 404 `not_found`: no endpoint at this method and path.
    pub fn no_route(request: &ApiRequest) -> ApiResponse {
        ApiResponse::error(
            404,
            "not_found",
            format!(
                "no API endpoint {} {} (see docs/api.md)",
                request.method, request.path
            ),
        )
    }

    /// 400 `bad_request` with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiResponse {
        ApiResponse::error(400, "bad_request", message)
    }

    /// 503 `unavailable`: the store refused the turn's write.
    pub fn unavailable() -> ApiResponse {
        ApiResponse {
            retry_after: Some(1),
            ..ApiResponse::error(
                503,
                "unavailable",
                "the store could not write this request's records, so nothing was sent; try again later",
            )
        }
    }

    /// Whether the status is a success (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl ApiRequest {
    /// Whether the request changes state (anything but `GET` and `HEAD`):
    /// its answer waits for the turn's store write.
    pub fn writes(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }

    /// The path's segments after `/api/`, percent-decoded (`+` stays a
    /// `+`); an empty trailing segment (a final `/`) is dropped.
    ///
    /// ```
    /// use wschat::hub::api::ApiRequest;
    /// let r = ApiRequest { method: "GET".into(), path: "/api/rooms/a%20b/members".into(),
    ///     query: String::new(), body: Vec::new(), mount: None };
    /// assert_eq!(r.segments(), ["rooms", "a b", "members"]);
    /// ```
    pub fn segments(&self) -> Vec<String> {
        let rest = self.path.strip_prefix(API_PREFIX).unwrap_or("");
        let mut segments: Vec<String> = rest
            .split('/')
            .map(|s| percent_decode(&s.replace('+', "%2B")))
            .collect();
        if segments.last().is_some_and(String::is_empty) {
            segments.pop();
        }
        segments
    }

    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// Query parameter `name` as a whole number: `None` when absent, 400
    /// when it is something else.
    pub fn query_number(&self, name: &str) -> Result<Option<u64>, ApiResponse> {
        match self.query_param(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ApiResponse::bad_request(format!("query parameter {name} must be a whole number"))
            }),
        }
    }

    /// The body as a JSON object; 400 `bad_json` otherwise.
    ///
    /// ```
    /// use wschat::hub::api::ApiRequest;
    /// let mut r = ApiRequest { method: "POST".into(), path: "/api/publish".into(),
    ///     query: String::new(), body: br#"{"room":"lobby"}"#.to_vec(), mount: None };
    /// assert_eq!(r.json().unwrap()["room"], "lobby");
    /// r.body = b"[1]".to_vec();
    /// assert_eq!(r.json().unwrap_err().status, 400);
    /// ```
    pub fn json(&self) -> Result<Map<String, Value>, ApiResponse> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiResponse::error(
                400,
                "bad_json",
                "the body must be a JSON object",
            )),
            Err(e) => Err(ApiResponse::error(
                400,
                "bad_json",
                format!("the body is not JSON: {e}"),
            )),
        }
    }
}

/// Field `name` of a JSON body as a string: `None` when absent or null,
/// 400 when it is another type.
pub fn string_field(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiResponse> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiResponse::bad_request(format!(
            "\"{name}\" must be a string"
        ))),
    }
}

/// Field `name` of a JSON body as a whole number: `None` when absent or
/// null, 400 when it is another type.
pub fn number_field(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiResponse> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiResponse::bad_request(format!("\"{name}\" must be a whole number"))),
    }
}

/// Parse a request as the server does and hand it to `answer`; for the
/// fuzz target: every input is answered, never a panic.
pub fn exercise(method: &str, target: &str, body: &[u8]) -> ApiResponse {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = ApiRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        body: body.to_vec(),
        mount: None,
    };
    let _ = request.segments();
    let _ = request.query_number("limit");
    let _ = request.query_number("before");
    let _ = request.query_param("state");
    match request.json() {
        Ok(body) => {
            let _ = string_field(&body, "text");
            let _ = number_field(&body, "user");
            ApiResponse::ok("{}")
        }
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::ApiResponse;

    #[test]
    fn rename_ids_writes_the_final_id_of_a_provisional_one_only() {
        let mut a = ApiResponse::ok(r#"{"id":7}"#);
        a.rename_ids(&[(6, 60), (7, 70)]);
        assert_eq!(a.body, r#"{"id":70}"#);
        let mut other = ApiResponse::ok(r#"{"id":8}"#);
        other.rename_ids(&[(7, 70)]);
        assert_eq!(other.body, r#"{"id":8}"#, "not one of the turn's");
        let mut user = ApiResponse::ok(r#"{"user":7,"closed":1}"#);
        user.rename_ids(&[(7, 70)]);
        assert_eq!(user.body, r#"{"user":7,"closed":1}"#, "only \"id\"");
    }
}
