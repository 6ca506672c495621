//! Streaming UTF-8 validation, RFC 6455 §5.6 and §8.1.
//!
//! A text message must be valid UTF-8 as a whole, but it may arrive split
//! across frames, and a frame across reads, with a split anywhere, even in the
//! middle of a multi-byte character. The endpoint should fail the connection
//! (close 1007) as soon as it sees a byte that cannot be part of valid UTF-8,
//! without waiting for the rest of the message: [`Utf8Validator`] does that.
//!
//! It leans on the standard library's validator (fast on ASCII) for each
//! piece, and keeps at most three bytes of a character that a piece ends in
//! the middle of, completing it with the first bytes of the next piece.

/// The first invalid byte of a text, found by [`Utf8Validator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates UTF-8 that arrives in pieces. Fails on the first invalid byte.
///
/// ```
/// use wschat::ws::utf8::Utf8Validator;
/// let text = "κόσμε".as_bytes(); // 2-byte characters
/// let mut v = Utf8Validator::new();
/// // Split in the middle of the first character.
/// assert!(v.feed(&text[..1]).is_ok());
/// assert!(!v.is_complete());
/// assert!(v.feed(&text[1..]).is_ok());
/// assert!(v.is_complete());
/// // 0xF4 0x90 is already wrong (above U+10FFFF): no need to see more.
/// let mut v = Utf8Validator::new();
/// assert!(v.feed(&[0xF4, 0x90]).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a character that the last piece ended in.
    partial: [u8; 4],
    /// How many bytes of `partial` are filled (0 when between characters).
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Utf8Validator {
        Utf8Validator::default()
    }

    /// Forget any partial character: start a new text.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Whether the text fed so far ends between characters, so that it is
    /// valid UTF-8 if it ends here.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Validate the next piece of the text. An error means the bytes fed so
    /// far can never be the start of valid UTF-8, whatever follows.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Utf8Error> {
        // First finish a character left open by the previous piece, one byte
        // at a time, so that a bad byte is caught at once. A prefix of 4
        // bytes is always either a whole character or invalid, so `partial`
        // never overflows.
        while self.partial_len > 0 {
            let Some((&byte, rest)) = input.split_first() else {
                return Ok(());
            };
            input = rest;
            self.partial[self.partial_len as usize] = byte;
            self.partial_len += 1;
            match std::str::from_utf8(&self.partial[..self.partial_len as usize]) {
                Ok(_) => self.reset(),
                Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {} // still a valid prefix
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Error),
            Err(e) => {
                // The piece ends inside a character that is valid so far.
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streaming_ok(bytes: &[u8], split: usize) -> bool {
        let mut v = Utf8Validator::new();
        v.feed(&bytes[..split]).is_ok() && v.feed(&bytes[split..]).is_ok() && v.is_complete()
    }

    #[test]
    fn agrees_with_std_at_every_split_point() {
        let samples: Vec<Vec<u8>> = vec![
            "Hello-µ@ßöäüàá-UTF-8!!".into(),
            "κόσμε".into(),
            "𝄞 music 中文 客服".into(),
            vec![
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            vec![0xf4, 0x90, 0x80, 0x80],
            vec![0xf0, 0x9f, 0x98],
            vec![0xe0, 0x80, 0xaf],
            vec![0xc0, 0xaf],
            vec![0xed, 0x9f, 0xbf],
            vec![0xef, 0xbf, 0xbf],
            vec![0x80],
            vec![],
        ];
        for s in &samples {
            let expected = std::str::from_utf8(s).is_ok();
            for split in 0..=s.len() {
                assert_eq!(streaming_ok(s, split), expected, "{s:x?} split at {split}");
            }
        }
    }

    #[test]
    fn fails_on_the_first_bad_byte_of_a_split_character() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[b'a', 0xe0]).is_ok());
        // E0 must be followed by A0..BF: 80 is wrong, whatever comes next.
        assert_eq!(v.feed(&[0x80]), Err(Utf8Error));
    }
}
