//! Signed identity: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256
//! (`HS256`, RFC 7518 §3.2), as a site's backend mints them for its
//! signed-in users. Pure: bytes and a clock reading in, claims or a refusal
//! out; the chat and the desk decide what to do with either.
//!
//! A token is `BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)`
//! (RFC 7515 §7.1, compact serialization). wschat accepts exactly one
//! algorithm, `HS256`: a token whose header names another (`none`, `HS512`,
//! `RS256`, …) is refused before its signature is looked at, so no one can
//! choose how their token is checked. The signature is checked against each
//! configured secret in turn (key rotation: the new secret first, the old one
//! until tokens signed with it have expired), in constant time.
//!
//! ```
//! use wschat::auth::{sign, verify, Refusal};
//! let secrets = vec![b"s3cret".to_vec()];
//! let token = sign(br#"{"sub":"42","exp":2000000000,"name":"Ann"}"#, b"s3cret");
//! let claims = verify(&token, &secrets, 1_800_000_000).unwrap();
//! assert_eq!((claims.sub.as_str(), claims.name.as_deref()), ("42", Some("Ann")));
//! assert_eq!(verify(&token, &secrets, 2_000_000_001), Err(Refusal::Expired));
//! assert_eq!(verify(&token, &[b"other".to_vec()], 1), Err(Refusal::BadSignature));
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde_json::Value;

/// Longest token accepted, in bytes: a token is refused (`malformed`) past
/// it before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The audience a token may name (`aud`), if it names one.
pub const AUDIENCE: &str = "wschat";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user's id at the site (`sub`): one `sub` is one wschat user.
    pub sub: String,
    /// When the token expires (`exp`), in seconds since the Unix epoch.
    pub exp: u64,
    /// The display name the site gives the user (`name`), if any.
    pub name: Option<String>,
    /// Whether the site made the user an administrator (`"role":"admin"`).
    pub admin: bool,
    /// The e-mail address the site gives the user (`email`), if any: the
    /// support desk shows it to the agent.
    pub email: Option<String>,
}

/// Why a token was refused. Each is the reason of the Close 4001 that
/// refuses the connection ([`Refusal::reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not three base64url parts with JSON objects in the first two, or
    /// longer than [`MAX_TOKEN_BYTES`].
    Malformed,
    /// The header's `alg` is not `HS256` (RFC 7518 §3.1 lists the others;
    /// `none` included).
    UnsupportedAlg,
    /// The signature matches none of the secrets.
    BadSignature,
    /// `exp` is missing or not a number.
    NoExpiry,
    /// `exp` is in the past.
    Expired,
    /// `nbf` (not before) is in the future.
    NotYetValid,
    /// `sub` is missing, empty or not a string.
    NoSubject,
    /// `aud` is present and does not name [`AUDIENCE`].
    WrongAudience,
    /// The server has no secret configured (`--jwt-secret`).
    NotConfigured,
    /// `--auth required`, and the connection presented no token.
    Required,
}

impl Refusal {
    /// The close reason: short, and naming the cause.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed token",
            Refusal::UnsupportedAlg => "unsupported token alg (only HS256)",
            Refusal::BadSignature => "bad token signature",
            Refusal::NoExpiry => "token has no exp",
            Refusal::Expired => "token expired",
            Refusal::NotYetValid => "token not yet valid",
            Refusal::NoSubject => "token has no sub",
            Refusal::WrongAudience => "token audience is not wschat",
            Refusal::NotConfigured => "this server takes no tokens",
            Refusal::Required => "authentication required",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Decode one base64url part into a JSON object.
fn json_part(part: &str) -> Result<serde_json::Map<String, Value>, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::Malformed),
    }
}

/// Verify `token` against `secrets` at `now` (seconds since the Unix epoch)
/// and return its claims, or why it is refused. The checks, in order: size
/// and shape, `alg` (RFC 7515 §4.1.1: only `HS256`), the signature over
/// `header.payload` (RFC 7515 §5.2), then the claims (RFC 7519 §4.1): `exp`
/// required and in the future, `nbf` if present in the past, `aud` if
/// present naming `wschat`, `sub` a non-empty string.
pub fn verify(token: &str, secrets: &[Vec<u8>], now: u64) -> Result<Claims, Refusal> {
    if secrets.is_empty() {
        return Err(Refusal::NotConfigured);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let head = json_part(header)?;
    if head.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(Refusal::UnsupportedAlg);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Refusal::Malformed)?;
    let signed = &token[..header.len() + 1 + payload.len()];
    let valid = secrets.iter().any(|secret| {
        HmacSha256::new_from_slice(secret).is_ok_and(|mut mac| {
            mac.update(signed.as_bytes());
            // verify_slice compares in constant time.
            mac.verify_slice(&signature).is_ok()
        })
    });
    if !valid {
        return Err(Refusal::BadSignature);
    }
    let claims = json_part(payload)?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(Refusal::NoExpiry)?;
    if exp <= now as f64 {
        return Err(Refusal::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
        && nbf > now as f64
    {
        return Err(Refusal::NotYetValid);
    }
    match claims.get("aud") {
        None => {}
        Some(Value::String(aud)) if aud == AUDIENCE => {}
        Some(Value::Array(auds)) if auds.iter().any(|a| a == AUDIENCE) => {}
        Some(_) => return Err(Refusal::WrongAudience),
    }
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(Refusal::NoSubject),
    };
    Ok(Claims {
        sub,
        exp: exp as u64,
        name: claims
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string),
        admin: claims.get("role").and_then(Value::as_str) == Some("admin"),
        email: claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Sign `payload` (a JSON object's text) with `secret` as an `HS256` token:
/// what a site's backend does (docs/identity.md), here for tests and for
/// `wschat token`.
pub fn sign(payload: &[u8], secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload);
    let signed = format!("{header}.{body}");
    let signature = match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Parse `--jwt-secret`: a comma-separated list, the first used for
/// nothing special (all are accepted), empty entries ignored.
pub fn parse_secrets(list: &str) -> Vec<Vec<u8>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn secrets() -> Vec<Vec<u8>> {
        vec![b"new".to_vec(), b"old".to_vec()]
    }

    fn with_header(header: &str, payload: &str, secret: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(payload);
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{h}.{p}.{s}")
    }

    #[test]
    fn both_keys_of_a_rotation_are_accepted() {
        let payload = br#"{"sub":"u1","exp":1900000000,"role":"admin","aud":"wschat"}"#;
        for key in [&b"new"[..], b"old"] {
            let claims = verify(&sign(payload, key), &secrets(), NOW).unwrap();
            assert_eq!(claims.sub, "u1");
            assert!(claims.admin);
        }
        assert_eq!(
            verify(&sign(payload, b"gone"), &secrets(), NOW),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn every_refusal_names_its_cause() {
        let ok = r#"{"sub":"u1","exp":1900000000}"#;
        let cases = [
            (
                sign(br#"{"sub":"u1","exp":1700000000}"#, b"new"),
                Refusal::Expired,
            ),
            (sign(br#"{"sub":"u1"}"#, b"new"), Refusal::NoExpiry),
            (sign(br#"{"exp":1900000000}"#, b"new"), Refusal::NoSubject),
            (
                sign(br#"{"sub":"","exp":1900000000}"#, b"new"),
                Refusal::NoSubject,
            ),
            (
                sign(br#"{"sub":7,"exp":1900000000}"#, b"new"),
                Refusal::NoSubject,
            ),
            (
                sign(br#"{"sub":"u","exp":1900000000,"aud":"other"}"#, b"new"),
                Refusal::WrongAudience,
            ),
            (
                sign(br#"{"sub":"u","exp":1900000000,"nbf":1850000000}"#, b"new"),
                Refusal::NotYetValid,
            ),
            (
                with_header(r#"{"alg":"none"}"#, ok, b"new"),
                Refusal::UnsupportedAlg,
            ),
            (
                with_header(r#"{"alg":"HS512"}"#, ok, b"new"),
                Refusal::UnsupportedAlg,
            ),
            (
                with_header(r#"{"typ":"JWT"}"#, ok, b"new"),
                Refusal::UnsupportedAlg,
            ),
            ("a.b".to_string(), Refusal::Malformed),
            ("a.b.c.d".to_string(), Refusal::Malformed),
            ("!!.??.**".to_string(), Refusal::Malformed),
            ("x".repeat(MAX_TOKEN_BYTES + 1), Refusal::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(verify(&token, &secrets(), NOW), Err(want), "{token}");
        }
        // alg none with an empty signature: refused for its alg.
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(ok);
        assert_eq!(
            verify(&format!("{h}.{p}."), &secrets(), NOW),
            Err(Refusal::UnsupportedAlg)
        );
        assert_eq!(verify(ok, &[], NOW), Err(Refusal::NotConfigured));
    }

    #[test]
    fn every_reason_fits_a_close_frame() {
        for r in [
            Refusal::Malformed,
            Refusal::UnsupportedAlg,
            Refusal::BadSignature,
            Refusal::NoExpiry,
            Refusal::Expired,
            Refusal::NotYetValid,
            Refusal::NoSubject,
            Refusal::WrongAudience,
            Refusal::NotConfigured,
            Refusal::Required,
        ] {
            assert!(r.reason().len() <= 123, "{r}");
        }
    }
}
