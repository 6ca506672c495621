//! The command-line tools beside the server, each a `main(&args) -> ExitCode`
//! that `src/main.rs` calls with the arguments after the subcommand:
//!
//! * [`dissect`] — `wschat dissect HEX`: frames taken apart, every broken
//!   rule named with its close code.
//! * [`serve`] — the flags of `wschat serve` and `check-config`: parsing,
//!   `--help`, the checks.
//! * [`client`] — `wschat client ws://…`: an interactive terminal client;
//!   its chat mode is [`chat`], with [`render`] (the protocol as lines) and
//!   [`editor`] (the line being typed).
//!
//! Exit codes follow one convention: 0 for success, 1 for a failure the
//! tool found or met (a broken rule, a connection error), 2 for a usage
//! error.

pub mod chat;
pub mod client;
pub mod dissect;
pub mod editor;
pub mod render;
pub mod serve;
pub mod wire;

/// Exit code for a command line that cannot be used.
pub const EXIT_USAGE: u8 = 2;

/// Bytes from hex text as people paste it: whitespace, commas, colons,
/// `0x` and `\x` prefixes are ignored, case does not matter.
///
/// ```
/// use wschat::cli::parse_hex;
/// assert_eq!(parse_hex("81 85 0x37,FA:21\\x3d"), Ok(vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]));
/// assert!(parse_hex("8").is_err());
/// assert!(parse_hex("zz").is_err());
/// ```
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let cleaned = text.replace("0x", "").replace("0X", "").replace("\\x", "");
    let mut digits = Vec::with_capacity(cleaned.len());
    for c in cleaned.chars() {
        match c {
            c if c.is_whitespace() || c == ',' || c == ':' => {}
            c => match c.to_digit(16) {
                Some(d) => digits.push(d as u8),
                None => return Err(format!("{c:?} is not a hex digit")),
            },
        }
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "an odd number of hex digits ({}): each byte takes two",
            digits.len()
        ));
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}
