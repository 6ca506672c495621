//! Fuzz target `utf8`: the streaming [`Utf8Validator`] (RFC 6455 §5.6,
//! §8.1) against the standard library's `std::str::from_utf8`, a
//! differential target.
//!
//! Input layout: byte 0's low 3 bits give `n` (0-7), the number of
//! piece-size bytes that follow; bytes 1..=n are piece sizes, used in a
//! cycle (a 0 is an empty piece; `n = 0` means one byte at a time); the rest
//! is the text.
//!
//! What it proves, for the text in one piece, in two pieces at every split
//! point (every point up to 512 bytes, a sample beyond), and in many pieces:
//!
//! 1. agreement: no error and `is_complete()` at the end exactly when
//!    `std::str::from_utf8` accepts the whole text;
//! 2. fail fast (§8.1): `feed` errs exactly on the piece that brings in the
//!    first byte after which no continuation can make the text valid, so
//!    that when it errs, `from_utf8` of the bytes fed so far reports an
//!    invalid sequence (`error_len()` is `Some`), and before that it never
//!    errs;
//! 3. `reset` forgets a character left open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::utf8::Utf8Validator;

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(config & 0b111).min(rest.len());
    let (sizes, text) = rest.split_at(n);
    let sizes: Vec<usize> = if sizes.iter().all(|&s| s == 0) {
        vec![1]
    } else {
        sizes.iter().map(|&s| usize::from(s)).collect()
    };
    let truth = Truth::of(text);

    // One piece.
    check_pieces(
        text,
        &truth,
        &mut std::iter::once(text.len()),
        Utf8Validator::new(),
    );

    // Two pieces, at every split point (or a sample of them).
    let splits: Vec<usize> = if text.len() <= 512 {
        (0..=text.len()).collect()
    } else {
        let step = text.len() / 256;
        let mut splits: Vec<usize> = (0..=text.len()).step_by(step).collect();
        if let Some(point) = truth.fails_at {
            splits.extend(point.saturating_sub(4)..=(point + 4).min(text.len()));
        }
        splits
    };
    for split in splits {
        check_pieces(
            text,
            &truth,
            &mut [split, text.len() - split].into_iter(),
            Utf8Validator::new(),
        );
    }

    // Many pieces, after a reset that must forget an open character.
    let mut validator = Utf8Validator::new();
    assert!(validator.feed(&[b'a', 0xF0, 0x9F]).is_ok());
    assert!(!validator.is_complete());
    validator.reset();
    assert!(validator.is_complete());
    check_pieces(text, &truth, &mut sizes.iter().copied().cycle(), validator);
});

/// What the standard library says about the whole text.
struct Truth {
    /// `from_utf8` accepts it.
    valid: bool,
    /// The length of the shortest prefix that no continuation can make
    /// valid, if there is one: the streaming validator must fail on the
    /// piece that reaches it, and not before.
    fails_at: Option<usize>,
}

impl Truth {
    fn of(text: &[u8]) -> Truth {
        match std::str::from_utf8(text) {
            Ok(_) => Truth {
                valid: true,
                fails_at: None,
            },
            Err(e) if e.error_len().is_none() => Truth {
                valid: false,
                fails_at: None,
            },
            Err(e) => {
                // `text[..valid_up_to]` is whole characters, so validity past
                // it depends only on the bytes after it; a broken sequence
                // shows within four bytes.
                let start = e.valid_up_to();
                let end = (start + 4).min(text.len());
                let fails_at = (start + 1..=end)
                    .find(|&k| is_invalid_prefix(&text[start..k]))
                    .expect("the error shows within four bytes");
                Truth {
                    valid: false,
                    fails_at: Some(fails_at),
                }
            }
        }
    }
}

/// Whether no continuation can make `bytes` valid UTF-8.
fn is_invalid_prefix(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_err_and(|e| e.error_len().is_some())
}

/// Feed `text` to `validator` in pieces whose sizes come from `pieces`, and
/// check each answer against `truth`.
fn check_pieces(
    text: &[u8],
    truth: &Truth,
    pieces: &mut dyn Iterator<Item = usize>,
    mut validator: Utf8Validator,
) {
    let mut fed = 0;
    loop {
        let size = pieces
            .next()
            .expect("endless piece sizes")
            .min(text.len() - fed);
        let before = fed;
        fed += size;
        let result = validator.feed(&text[before..fed]);
        let should_fail = truth.fails_at.is_some_and(|at| fed >= at);
        match result {
            Err(_) => {
                assert!(
                    is_invalid_prefix(&text[..fed]),
                    "error, but {:x?} can still be continued into valid UTF-8",
                    &text[..fed]
                );
                assert!(
                    should_fail,
                    "error on the piece {before}..{fed}, but the text is only broken at {:?}",
                    truth.fails_at
                );
                return;
            }
            Ok(()) => assert!(
                !should_fail,
                "no error after {fed} bytes, but the text is broken after {:?}: {:x?}",
                truth.fails_at,
                &text[..fed]
            ),
        }
        if fed == text.len() {
            break;
        }
    }
    assert_eq!(
        validator.is_complete(),
        truth.valid,
        "is_complete() at the end of {text:x?}"
    );
}
