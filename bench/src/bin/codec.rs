//! In-process codec throughput: wschat's codec beside tungstenite's on the
//! same bytes, and beside a plain memcpy of those bytes (the physical limit).
//!
//! Rows: decode+unmask of masked client binary frames (the server's receive
//! path), encode of unmasked server frames (the server's send path), memcpy.
//! Columns: payload sizes. Each cell runs for about `--cell-ms` (default 500)
//! after a calibration, in five rounds, and reports the median round's
//! payload bytes per second in GB/s (10^9).
//!
//! Both decoders are fed the way a socket feeds them: the "socket" bytes are
//! copied into the codec's read buffer in reads of at most 128 KiB (for
//! tungstenite through its `Read`-based API, for wschat into a buffer that is
//! then handed to `Decoder::decode`), so each pays one copy standing in for
//! read(2).
//!
//! Usage: codec [--cell-ms N] [--sizes 16,1024,65536,1048576] [--rows wschat,memcpy]
//!
//! `--rows` keeps only the rows whose name contains one of the given words
//! (to profile one codec at a time, say under `perf record`).
//!
//! Every copy here runs between buffers placed half a page apart (their
//! addresses differ by 2,048 modulo 4,096). glibc copies blocks of 2 KiB and
//! more with `rep movsb`, and on AMD Zen CPUs with FSRM that instruction
//! slows to about 3 GB/s when the destination lies just after the source
//! modulo 4 KiB: wherever the allocator happened to put two buffers, a
//! memcpy row could read 3 GB/s or 90 GB/s on the same machine. Placing them
//! measures the copy, not that accident of layout.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::Frame as TFrame;
use tungstenite::protocol::frame::coding::{Data as TData, OpCode as TOpCode};
use tungstenite::protocol::{Role as TRole, WebSocketConfig, WebSocketContext};
use wschat::ws::frame::{OpCode, encode_frame};
use wschat::ws::{Decoded, Decoder, Limits, Message, Role};

/// Bytes one simulated read(2) hands the codec.
const READ_CHUNK: usize = 128 * 1024;
/// The input of one decode pass holds at least this many bytes of frames.
const BATCH_BYTES: usize = 1 << 20;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One benchmark: payload size and time per cell in, payload bytes/s out.
type Cell = fn(usize, Duration) -> f64;

fn main() {
    let mut cell = Duration::from_millis(500);
    let mut sizes = vec![16usize, 1024, 64 * 1024, 1024 * 1024];
    let mut only: Vec<String> = Vec::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--cell-ms" => cell = Duration::from_millis(value.parse().expect("--cell-ms N")),
            "--sizes" => {
                sizes = value
                    .split(',')
                    .map(|s| s.trim().parse().expect("--sizes 16,1024,..."))
                    .collect()
            }
            "--rows" => only = value.split(',').map(|s| s.trim().to_string()).collect(),
            "--help" | "-h" => {
                println!(
                    "usage: codec [--cell-ms N] [--sizes 16,1024,65536,1048576] [--rows WORD,...]"
                );
                return;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }

    let rows: [(&str, Cell); 6] = [
        ("wschat decode+unmask", wschat_decode),
        ("wschat decode+unmask in place", wschat_decode_in_place),
        ("tungstenite decode+unmask", tungstenite_decode),
        ("wschat encode", wschat_encode),
        ("tungstenite encode", tungstenite_encode),
        ("memcpy (limit)", memcpy),
    ];
    print!("| codec, GB/s of payload |");
    for &size in &sizes {
        print!(" {} |", size_name(size));
    }
    println!();
    print!("|---|");
    for _ in &sizes {
        print!("---:|");
    }
    println!();
    for (name, run) in rows {
        if !only.is_empty() && !only.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        print!("| {name} |");
        for &size in &sizes {
            let bytes_per_sec = run(size, cell);
            print!(" {:.2} |", bytes_per_sec / 1e9);
            io::stdout().flush().ok();
        }
        println!();
    }
}

fn size_name(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// Timed rounds per cell; the cell reports their median.
const ROUNDS: usize = 5;

/// Run `pass` (which handles `bytes_per_pass` payload bytes) for about
/// `cell`, after doubling the pass count until a batch takes 50 ms; returns
/// payload bytes per second: the median of [`ROUNDS`] rounds of `cell /
/// ROUNDS` each, so that a round disturbed by the rest of the machine (a
/// virtual machine's neighbours, an interrupt storm) does not decide the
/// figure.
fn measure(cell: Duration, bytes_per_pass: usize, mut pass: impl FnMut()) -> f64 {
    let mut n: u64 = 1;
    let per_pass = loop {
        let start = Instant::now();
        for _ in 0..n {
            pass();
        }
        let took = start.elapsed();
        if took >= Duration::from_millis(50) || n >= 1 << 30 {
            break took.as_secs_f64() / n as f64;
        }
        n *= 2;
    };
    let n = ((cell.as_secs_f64() / ROUNDS as f64 / per_pass).ceil() as u64).max(1);
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                pass();
            }
            (n as f64 * bytes_per_pass as f64) / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

/// Page size, for placing buffers (see the module comment).
const PAGE: usize = 4096;

/// Where in a buffer of `len + PAGE` bytes starting at `base` a slice must
/// begin so that it lies `PAGE / 2` bytes (modulo a page) after `other`.
fn half_page_from(base: *const u8, other: *const u8) -> usize {
    let want = (other as usize + PAGE / 2) % PAGE;
    (want + PAGE - base as usize % PAGE) % PAGE
}

/// `bytes` copied into a fresh buffer at an offset such that the copy
/// starts half a page after `dst` (modulo a page); returns the buffer and
/// the offset of the copy in it.
fn placed(bytes: &[u8], dst: *const u8) -> (Vec<u8>, usize) {
    let mut backing = vec![0u8; bytes.len() + PAGE];
    let at = half_page_from(backing.as_ptr(), dst);
    backing[at..at + bytes.len()].copy_from_slice(bytes);
    (backing, at)
}

/// Frames per pass: enough that a pass holds about 1 MiB (at least one).
fn frames_per_pass(size: usize) -> usize {
    (BATCH_BYTES / size.max(1)).max(1)
}

/// Masked client binary frames of `size`, as a client puts them on the wire.
fn masked_stream(size: usize) -> (Vec<u8>, usize) {
    let data = payload(size);
    let count = frames_per_pass(size);
    let mut wire = Vec::new();
    for _ in 0..count {
        encode_frame(&mut wire, true, OpCode::Binary, &data, Some(MASK));
    }
    (wire, count)
}

fn limits(size: usize) -> Limits {
    Limits {
        max_frame_size: size.max(1 << 20) * 2,
        max_message_size: size.max(1 << 20) * 2,
    }
}

/// Feed wschat's server-side decoder the masked stream through a read
/// buffer; `decode_read` decodes the bytes of one read and returns how many
/// messages they completed.
fn wschat_decode_with(
    size: usize,
    cell: Duration,
    mut decode_read: impl FnMut(&mut Decoder, &mut [u8]) -> usize,
) -> f64 {
    let (stream, count) = masked_stream(size);
    let mut decoder = Decoder::new(Role::Server, limits(size));
    let mut read_buf = vec![0u8; READ_CHUNK];
    let (backing, at) = placed(&stream, read_buf.as_ptr());
    let wire = &backing[at..at + stream.len()];
    measure(cell, size * count, || {
        let mut got = 0;
        for chunk in wire.chunks(READ_CHUNK) {
            // The stand-in for read(2): the bytes land in the read buffer.
            read_buf[..chunk.len()].copy_from_slice(chunk);
            got += decode_read(&mut decoder, &mut read_buf[..chunk.len()]);
        }
        assert_eq!(got, count);
    })
}

/// `Decoder::decode`: every message is assembled, owned.
fn wschat_decode(size: usize, cell: Duration) -> f64 {
    wschat_decode_with(size, cell, |decoder, buf| {
        let mut input: &[u8] = buf;
        let mut got = 0;
        while !input.is_empty() {
            match decoder.decode(&mut input) {
                Ok(Some(Message::Binary(data))) => {
                    black_box(&data);
                    got += 1;
                }
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Ok(None) => break,
                Err(e) => panic!("wschat decode failed: {e}"),
            }
        }
        got
    })
}

/// `Decoder::decode_in_place`: a frame that lies whole in the read buffer
/// is unmasked there and lent out; one cut by the end of a read is
/// assembled as `decode` does.
fn wschat_decode_in_place(size: usize, cell: Duration) -> f64 {
    wschat_decode_with(size, cell, |decoder, buf| {
        let mut at = 0;
        let mut got = 0;
        while at < buf.len() {
            match decoder.decode_in_place(&mut buf[at..]) {
                Ok((used, Some(Decoded::Binary(data)))) => {
                    black_box(data);
                    got += 1;
                    at += used;
                }
                Ok((used, Some(Decoded::Message(Message::Binary(data))))) => {
                    black_box(&data);
                    got += 1;
                    at += used;
                }
                Ok((_, Some(other))) => panic!("unexpected {other:?}"),
                Ok((_, None)) => break,
                Err(e) => panic!("wschat decode failed: {e}"),
            }
        }
        got
    })
}

/// An in-memory socket: reads come from `wire` at most `READ_CHUNK` at a
/// time; writes are discarded.
struct MemSocket<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl Read for MemSocket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(READ_CHUNK).min(self.wire.len() - self.pos);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        buf[..n].copy_from_slice(&self.wire[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemSocket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite_decode(size: usize, cell: Duration) -> f64 {
    let (wire, count) = masked_stream(size);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_frame_size(Some(size.max(1 << 20) * 2))
        .max_message_size(Some(size.max(1 << 20) * 2));
    let mut ctx = WebSocketContext::new(TRole::Server, Some(config));
    measure(cell, size * count, || {
        let mut socket = MemSocket {
            wire: &wire,
            pos: 0,
        };
        for _ in 0..count {
            match ctx.read(&mut socket) {
                Ok(tungstenite::Message::Binary(data)) => {
                    black_box(&data);
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("tungstenite decode failed: {e}"),
            }
        }
        assert_eq!(socket.pos, wire.len());
    })
}

fn wschat_encode(size: usize, cell: Duration) -> f64 {
    let count = frames_per_pass(size);
    let mut out: Vec<u8> = Vec::with_capacity(size + 16);
    // The payload lands after the header: place the source against that.
    let header = encoded_header_len(size);
    let (backing, at) = placed(&payload(size), out.as_ptr().wrapping_add(header));
    let data = &backing[at..at + size];
    measure(cell, size * count, || {
        for _ in 0..count {
            out.clear();
            encode_frame(&mut out, true, OpCode::Binary, black_box(data), None);
            black_box(&out);
        }
    })
}

/// Bytes of an unmasked server frame header for a payload of `size` (§5.2).
fn encoded_header_len(size: usize) -> usize {
    match size {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

fn tungstenite_encode(size: usize, cell: Duration) -> f64 {
    // A `Bytes` made once and cloned (a reference count), so that building
    // the frame does not copy the payload: only formatting it does.
    let count = frames_per_pass(size);
    let mut out: Vec<u8> = Vec::with_capacity(size + 16);
    let header = encoded_header_len(size);
    let (backing, at) = placed(&payload(size), out.as_ptr().wrapping_add(header));
    let data = tungstenite::Bytes::from(backing).slice(at..at + size);
    measure(cell, size * count, || {
        for _ in 0..count {
            out.clear();
            let frame =
                TFrame::message(black_box(data.clone()), TOpCode::Data(TData::Binary), true);
            frame.format(&mut out).expect("format into a Vec");
            black_box(&out);
        }
    })
}

fn memcpy(size: usize, cell: Duration) -> f64 {
    let count = frames_per_pass(size);
    let mut out = vec![0u8; size];
    let (backing, at) = placed(&payload(size), out.as_ptr());
    let data = &backing[at..at + size];
    measure(cell, size * count, || {
        for _ in 0..count {
            out.copy_from_slice(black_box(data));
            black_box(&out);
        }
    })
}
