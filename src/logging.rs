//! The server's log: which lines are written is `RUST_LOG`'s to say (the
//! same filter syntax as ever, parsed by `env_logger`; default
//! `wschat=info`), and each line is formatted on the stack of the thread
//! that logs it and written to standard error in one `write(2)`.
//!
//! Why not `env_logger`'s own writer: it formats every line in a buffer it
//! keeps per thread for the thread's whole life. wschat runs a thread per
//! connection and each one logs its `open` line, so that buffer (and the
//! allocator's per-thread cache it brings along) stayed on the heap of
//! every idle connection; docs/performance.md measured it. A line formatted
//! into [`LINE_BYTES`] on the stack costs nothing once it is written. A
//! longer line is written piece by piece under the lock of standard error,
//! so it still comes out whole between other threads' lines.
//!
//! The format is `env_logger`'s default as this crate builds it (no colour,
//! no timestamp): `[LEVEL target] message`, the level padded to five
//! characters, the lines after the first of a message indented by four
//! spaces.
//!
//! ```
//! use wschat::logging::format_line;
//! let mut line = String::new();
//! let record = log::Record::builder()
//!     .level(log::Level::Info)
//!     .target("wschat::server")
//!     .args(format_args!("open 127.0.0.1:5000 /echo\nsecond line"))
//!     .build();
//! format_line(&mut line, &record).unwrap();
//! assert_eq!(line, "[INFO  wschat::server] open 127.0.0.1:5000 /echo\n    second line\n");
//! ```

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};

use log::{Log, Metadata, Record};

/// Bytes of a log line formatted on the stack and written at once; a longer
/// line is written in pieces under standard error's lock.
pub const LINE_BYTES: usize = 512;

/// The filter `RUST_LOG` falls back to when it is not set.
pub const DEFAULT_FILTER: &str = "wschat=info";

/// Spaces before each line of a message after its first.
const INDENT: &str = "    ";

/// The process's logger: `env_logger`'s filter, this module's writer.
#[derive(Debug)]
pub struct Logger {
    filter: env_logger::Logger,
}

impl Logger {
    /// A logger whose filter is `RUST_LOG`, or `default_filter` when that
    /// is not set.
    pub fn from_env(default_filter: &str) -> Logger {
        let filter = env_logger::Builder::from_env(
            env_logger::Env::default().default_filter_or(default_filter),
        )
        .build();
        Logger { filter }
    }

    /// Install this logger for the process (once, before any thread logs).
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        let max = self.filter.filter();
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(max);
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let mut line = StackLine {
            bytes: [0; LINE_BYTES],
            len: 0,
        };
        if format_line(&mut line, record).is_ok() {
            let _ = io::stderr().write_all(&line.bytes[..line.len]);
        } else {
            // Too long for the stack: format it again, straight to standard
            // error, holding its lock so no other line cuts into it.
            let mut locked = LockedStderr(io::stderr().lock());
            let _ = format_line(&mut locked, record);
        }
    }

    fn flush(&self) {
        let _ = io::stderr().flush();
    }
}

/// Format `record` as one log line (ending in a newline) into `out`.
pub fn format_line(out: &mut impl fmt::Write, record: &Record<'_>) -> fmt::Result {
    write!(out, "[{:<5} {}] ", record.level(), record.target())?;
    write!(Indented(&mut *out), "{}", record.args())?;
    out.write_char('\n')
}

/// Writes what it is given, with [`INDENT`] after every newline.
struct Indented<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Indented<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut lines = s.split('\n');
        if let Some(first) = lines.next() {
            self.0.write_str(first)?;
        }
        for line in lines {
            self.0.write_char('\n')?;
            self.0.write_str(INDENT)?;
            self.0.write_str(line)?;
        }
        Ok(())
    }
}

/// A line being formatted on the stack; a write past its end fails.
struct StackLine {
    bytes: [u8; LINE_BYTES],
    len: usize,
}

impl fmt::Write for StackLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Standard error, locked, as a `fmt::Write`.
struct LockedStderr(io::StderrLock<'static>);

impl fmt::Write for LockedStderr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: log::Level, args: fmt::Arguments<'_>) -> String {
        let record = Record::builder()
            .level(level)
            .target("wschat::t")
            .args(args)
            .build();
        let mut out = String::new();
        format_line(&mut out, &record).unwrap();
        out
    }

    #[test]
    fn a_line_has_env_loggers_default_shape() {
        assert_eq!(
            line(log::Level::Warn, format_args!("x {}", 1)),
            "[WARN  wschat::t] x 1\n"
        );
        assert_eq!(
            line(log::Level::Error, format_args!("a\nb\nc")),
            "[ERROR wschat::t] a\n    b\n    c\n"
        );
    }

    /// `args` formatted as an info line into a stack line.
    fn on_the_stack(args: fmt::Arguments<'_>) -> Result<Vec<u8>, fmt::Error> {
        let mut stack = StackLine {
            bytes: [0; LINE_BYTES],
            len: 0,
        };
        format_line(
            &mut stack,
            &Record::builder()
                .level(log::Level::Info)
                .target("t")
                .args(args)
                .build(),
        )?;
        Ok(stack.bytes[..stack.len].to_vec())
    }

    #[test]
    fn a_line_longer_than_the_stack_buffer_does_not_fit_it() {
        assert_eq!(
            on_the_stack(format_args!("short")).unwrap(),
            b"[INFO  t] short\n"
        );
        let fits = "y".repeat(LINE_BYTES - "[INFO  t] \n".len());
        assert_eq!(
            on_the_stack(format_args!("{fits}")).unwrap().len(),
            LINE_BYTES
        );
        let long = "y".repeat(LINE_BYTES);
        assert!(on_the_stack(format_args!("{long}")).is_err());
    }
}
