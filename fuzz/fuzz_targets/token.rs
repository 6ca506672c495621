//! `token`: arbitrary bytes as a sign-in token (src/auth.rs).
//!
//! `auth::verify` accepts or refuses with one of its documented reasons,
//! never panics, whatever the bytes. Two ways in, chosen by the first byte:
//! the rest as a token as it is (headers, signatures and base64 as the
//! fuzzer makes them), or the rest as a token's *claims*, correctly signed:
//! then the signature can never be the reason for a refusal, and an
//! accepted token's claims are the ones it carries (a `sub` that is a
//! non-empty string, an `exp` in the future).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::auth::{Refusal, sign, verify};

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let secrets = vec![b"fuzz-secret".to_vec(), b"old-secret".to_vec()];
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        if let Ok(claims) = verify(&token, &secrets, NOW) {
            assert!(!claims.sub.is_empty());
            assert!(claims.exp > NOW);
        }
        return;
    }
    let token = sign(rest, b"old-secret");
    match verify(&token, &secrets, NOW) {
        Ok(claims) => {
            let value: serde_json::Value =
                serde_json::from_slice(rest).expect("accepted claims are JSON");
            assert_eq!(value["sub"].as_str(), Some(claims.sub.as_str()));
            assert!(claims.exp > NOW);
        }
        Err(Refusal::BadSignature | Refusal::UnsupportedAlg | Refusal::NotConfigured) => {
            panic!("a correctly signed HS256 token was refused for its signature")
        }
        Err(_) => {}
    }
});
