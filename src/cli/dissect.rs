//! `wschat dissect`: take WebSocket frames apart, field by field, and name
//! every rule of RFC 6455 they break with the close code a receiver sends;
//! with `--deflate`, compressed messages (RFC 7692) are inflated too.
//! The work is done by [`crate::dissect`]; this is its command line.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use super::{EXIT_USAGE, parse_hex};
use crate::dissect::{Direction, Options, dissect};

/// The largest capture read, from a file or standard input.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// `wschat dissect --help`.
pub const USAGE: &str = "wschat dissect: take WebSocket frames apart (RFC 6455 §5)

Usage:
  wschat dissect [--server] [--deflate] [--json] HEX...
                                               bytes as hex (spaces, 0x, \\x allowed)
  wschat dissect [--server] [--deflate] [--json] [-]
                                               hex read from standard input
  wschat dissect [--server] [--deflate] [--json] --file PATH
                                               a capture file of raw bytes

The bytes are one direction of a connection, after the handshake.

Options:
  --client      the bytes go client → server (the default): frames must be masked
  --server      the bytes go server → client: frames must not be masked
  --deflate     permessage-deflate was negotiated (RFC 7692): RSV1 marks a
                compressed message, shown inflated
  --file PATH   read raw bytes from PATH
  --json        print JSON instead of annotated text
  -h, --help    print this help

Exit status: 0 when every frame is whole and valid, 1 when a rule is broken or
the last frame is cut short (everything is printed either way), 2 on a usage
error.

Example (RFC 6455 §5.7, a masked \"Hello\" from a client):
  wschat dissect 818537fa213d7f9f4d5158
Example (RFC 7692 §7.2.3.1, \"Hello\" compressed, from a server):
  wschat dissect --server --deflate c107f248cdc9c90700
";

/// Where the bytes come from.
enum Source {
    Hex(String),
    Stdin,
    File(String),
}

/// Run `wschat dissect` with `args`, the arguments after `dissect`.
pub fn main(args: &[String]) -> ExitCode {
    let mut direction = Direction::ClientToServer;
    let mut json = false;
    let mut deflate = false;
    let mut file = None;
    let mut hex_args = Vec::new();
    let mut stdin = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--server" => direction = Direction::ServerToClient,
            "--client" => direction = Direction::ClientToServer,
            "--json" => json = true,
            "--deflate" => deflate = true,
            "--file" => match args.next() {
                Some(path) => file = Some(path.clone()),
                None => return usage("--file needs a path"),
            },
            "-" => stdin = true,
            other if other.starts_with("--") => {
                return usage(&format!("unknown option {other}"));
            }
            other => hex_args.push(other.to_string()),
        }
    }
    let sources =
        usize::from(file.is_some()) + usize::from(stdin) + usize::from(!hex_args.is_empty());
    if sources > 1 {
        return usage("give the bytes one way: HEX, -, or --file PATH");
    }
    let source = match (file, hex_args.is_empty()) {
        (Some(path), _) => Source::File(path),
        (None, false) => Source::Hex(hex_args.join(" ")),
        (None, true) => {
            if !stdin && std::io::stdin().is_terminal() {
                return usage("no bytes given");
            }
            Source::Stdin
        }
    };
    let bytes = match read_source(source) {
        Ok(bytes) => bytes,
        Err(e) => return usage(&e),
    };
    if bytes.is_empty() {
        return usage("no bytes to dissect");
    }
    let dissection = dissect(&bytes, &Options::new(direction).with_deflate(deflate));
    if json {
        // Pretty-printing a dissection cannot fail (its JSON form has
        // only string keys).
        println!(
            "{}",
            serde_json::to_string_pretty(&dissection).unwrap_or_default()
        );
    } else {
        print!("{}", dissection.to_text());
    }
    if dissection.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn read_source(source: Source) -> Result<Vec<u8>, String> {
    match source {
        Source::Hex(text) => parse_hex(&text),
        Source::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_INPUT_BYTES + 1)
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read hex from standard input: {e}"))?;
            if text.len() as u64 > MAX_INPUT_BYTES {
                return Err(format!(
                    "more than {MAX_INPUT_BYTES} bytes on standard input"
                ));
            }
            parse_hex(&text)
        }
        Source::File(path) => {
            let file =
                std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
            let mut bytes = Vec::new();
            file.take(MAX_INPUT_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read {path}: {e}"))?;
            if bytes.len() as u64 > MAX_INPUT_BYTES {
                return Err(format!("{path} is larger than {MAX_INPUT_BYTES} bytes"));
            }
            Ok(bytes)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("wschat dissect: {problem}\n\n{USAGE}");
    ExitCode::from(EXIT_USAGE)
}
