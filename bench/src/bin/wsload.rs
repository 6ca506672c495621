//! The load generator: one async client process (tokio, one thread, no
//! thread per connection) that drives a WebSocket server on 127.0.0.1 and
//! prints one markdown table row per run.
//!
//! ```text
//! wsload header SCENARIO                 the table head for a scenario
//! wsload echo      --port P [--pid PID] [--target NAME] [--conns 50] [--size 32] [--duration 10]
//! wsload broadcast --port P [--pid PID] [--target NAME] [--receivers 500] [--senders 5]
//!                  [--rate 100] [--size 32] [--duration 10] [--report-memory 0|1] [--hold 1]
//!                  [--deflate 0|1] [--words 0|1] [--wire 0|1]
//! wsload broadcast --ports P1,P2,P3 --pids PID1,PID2,PID3,REDIS_PID --redis-port R
//!                  [--socketio 0|1] ...      the `cluster` table: a room spread over nodes
//! wsload idle      --port P [--pid PID] [--target NAME] [--conns 5000] [--concurrency 64]
//!                  [--path /echo] [--hold 1] [--deflate 0|1]
//! wsload history   --port P [--target NAME] [--messages 50] [--size 120]
//! wsload join-storm --port P [--pid PID] [--target NAME] [--users 10000] [--concurrency 64]
//!                  [--path /] [--quiet 1.5]
//! wsload wait-port --port P [--timeout 10]
//! wsload median [--max-col N]            rows of one target's rounds on stdin → one row
//! ```
//!
//! `--pid` names the server process: its CPU time (utime+stime from
//! /proc/PID/stat), resident memory (VmRSS) and thread count (Threads, from
//! /proc/PID/status) are read before and after the measured window. Every
//! loop is bounded in count and time; only loopback addresses are accepted.
//!
//! `broadcast --report-memory 1` (the `broadcast-10k` table) tolerates
//! receivers that do not open, and adds to the row the connection errors
//! and the server's RSS and threads once every connection is open (`--hold`
//! after the last one, before the first send).
//!
//! `join-storm` opens `--users` connections to one room (`--path`, the
//! lobby on `/`), `--concurrency` handshakes in flight, each reading and
//! counting every byte from the moment it opens, and waits until nothing
//! has arrived for `--quiet` seconds after the last one opened. Its row:
//! the handshakes per second, the bytes the clients received (what the
//! server sent them, framing included), the server's `wchar` from
//! /proc/PID/io over the same span, and the server's CPU time.
//!
//! `--deflate 1` makes the raw connections (broadcast receivers, idle
//! connections) offer permessage-deflate (RFC 7692) and fail unless the
//! server accepts; compressed messages are inflated before they count.
//! `--words 1` pads probes with words rather than dots, `--wire 1` adds
//! the bytes the receivers read per delivery to the broadcast row, and
//! `history` compares a room's history page as sent plain and compressed.
//! `broadcast --ports` (the `cluster` table's row) spreads the receivers and senders over several
//! servers, round-robin (the nodes of a cluster), and `--pids` sums the CPU
//! time of several processes (every node and redis-server). With
//! `--redis-port`, the row is the `cluster` table's: Redis's `INFO stats
//! commandstats` is read at the start of the send window and after the
//! drain, and the CPU time of redis-server (the last of `--pids`), the commands Redis ran (those called from scripts included,
//! as commandstats counts them; the two `INFO`s not) and the bytes it read
//! and wrote are divided by the chat messages sent; the commands by name go
//! to stderr as one line starting `redis commands per message:`.
//! `--socketio 1` speaks socket.io 4's protocol (Engine.IO 4 over a
//! WebSocket at `/socket.io/?EIO=4&transport=websocket`: `40` joins the
//! default namespace, a message is the event `42["chat","TEXT"]`).
//!
//! On failure the error goes to stderr as one line and the exit code is 1.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = String;

/// Time allowed for one TCP connect plus handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections opened at once while setting up echo and broadcast.
const SETUP_CONCURRENCY: usize = 64;
/// Longest time the broadcast receivers may take to open: a receiver whose
/// turn comes later does not try, and counts as not opened.
const SETUP_DEADLINE: Duration = Duration::from_secs(45);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first().cloned() else {
        eprintln!(
            "usage: wsload header|echo|broadcast|idle|join-storm|api-publish|wait-port [--flag value]..."
        );
        return ExitCode::from(2);
    };
    let opts = match Opts::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if command == "median" {
        let max_col = opts.max_col;
        let rows: Vec<String> = std::io::stdin()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        return match median_row(&rows, max_col) {
            Some(row) => {
                println!("{row}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no rows on stdin");
                ExitCode::from(2)
            }
        };
    }
    if command == "header" {
        let scenario = args.get(1).map(String::as_str).unwrap_or("");
        return match header(scenario) {
            Some(h) => {
                println!("{h}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no scenario {scenario:?}");
                ExitCode::from(2)
            }
        };
    }
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match command.as_str() {
            "echo" => echo(&opts).await,
            "broadcast" => broadcast(&opts).await,
            "idle" => idle(&opts).await,
            "history" => history(&opts).await,
            "join-storm" => join_storm(&opts).await,
            "api-publish" => api_publish(&opts).await,
            "wait-port" => wait_port(&opts).await.map(|()| String::new()),
            other => Err(format!("unknown scenario {other:?}")),
        }
    });
    // Close whatever is left without waiting for a graceful shutdown.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(row) => {
            if !row.is_empty() {
                println!("{row}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", e.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn header(scenario: &str) -> Option<&'static str> {
    Some(match scenario {
        "echo" => {
            "| target | conns | msgs/s | RTT p50 ms | RTT p99 ms | server CPU µs/msg | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|"
        }
        "broadcast" | "broadcast-light" => {
            "| target | receivers | offered deliveries/s | deliveries/s | latency p50 ms | latency p99 ms | lost | server CPU µs/delivery | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        }
        "broadcast-10k" => {
            "| target | receivers | offered deliveries/s | deliveries/s | latency p50 ms | latency p99 ms | lost | connection errors | RSS before→open MiB | KiB/conn | threads before→open | server CPU µs/delivery | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        }
        "join-storm" => {
            "| target | users | handshakes/s | bytes to clients MiB | bytes/user | server wchar MiB | server CPU s | server CPU µs/user | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        }
        "api-publish" => {
            "| target (publisher) | receivers | messages/s | deliveries/s | lost | server CPU µs/delivery | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|"
        }
        "broadcast-deflate" => {
            "| target | receivers | offered deliveries/s | deliveries/s | latency p50 ms | latency p99 ms | lost | server CPU µs/delivery | wire bytes/delivery | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        }
        "history" => {
            "| target | messages in the room | history frame, plain bytes | history frame, deflate bytes | saved |\n|---|---:|---:|---:|---:|"
        }
        "cluster" => {
            "| target | nodes | receivers | offered deliveries/s | deliveries/s | latency p50 ms | latency p99 ms | lost | CPU µs/delivery, all nodes + Redis | redis-server CPU µs/message | Redis commands/message | Redis bytes in/message | Redis bytes out/message | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        }
        "idle" | "idle-chat" => {
            "| target | connections | handshakes/s | RSS before MiB | RSS after MiB | KiB/conn | threads before→after | threads/conn | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------- options

struct Opts {
    host: IpAddr,
    port: u16,
    pid: Option<u32>,
    target: String,
    duration: Duration,
    conns: usize,
    size: usize,
    receivers: usize,
    senders: usize,
    rate: f64,
    concurrency: usize,
    path: String,
    hold: Duration,
    timeout: Duration,
    report_memory: bool,
    /// `join-storm`: users joining, and the quiet that ends the run.
    users: usize,
    quiet: Duration,
    /// `median`: the column (0 = target) whose worst cell is kept.
    max_col: Option<usize>,
    /// Offer permessage-deflate (RFC 7692) on the raw connections
    /// (broadcast receivers, idle connections) and inflate what comes.
    deflate: bool,
    /// Pad probes with words instead of dots: text that compresses like
    /// chat text, not like a run of one byte.
    words: bool,
    /// `broadcast`: add the bytes the receivers read per delivery.
    wire: bool,
    /// `history`: chat messages put in the room before reading its history.
    messages: usize,
    /// `broadcast`: servers to spread the connections over (round-robin);
    /// empty: `port` alone.
    ports: Vec<u16>,
    /// Processes whose CPU time is summed; empty: `pid` alone.
    pids: Vec<u32>,
    /// A Redis on 127.0.0.1 whose commands and bytes are counted.
    redis_port: Option<u16>,
    /// Speak socket.io 4 (Engine.IO 4) on the connections.
    socketio: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, Error> {
        let mut o = Opts {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            pid: None,
            target: "server".into(),
            duration: Duration::from_secs(10),
            conns: 0,
            size: 32,
            receivers: 500,
            senders: 5,
            rate: 100.0,
            concurrency: 64,
            path: "/echo".into(),
            hold: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            report_memory: false,
            users: 10_000,
            quiet: Duration::from_millis(1500),
            max_col: None,
            deflate: false,
            words: false,
            wire: false,
            messages: 50,
            ports: Vec::new(),
            pids: Vec::new(),
            redis_port: None,
            socketio: false,
        };
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            if !flag.starts_with("--") {
                i += 1; // the scenario name after `header`
                continue;
            }
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("{flag} needs a value"))?
                .as_str();
            let num = |v: &str| {
                v.parse::<f64>()
                    .map_err(|_| format!("{flag}: {v:?} is not a number"))
            };
            match flag {
                "--host" => {
                    o.host = v
                        .parse()
                        .map_err(|_| format!("--host: {v:?} is not an IP address"))?;
                    if !o.host.is_loopback() {
                        return Err(format!("--host {v}: only loopback addresses are allowed"));
                    }
                }
                "--port" => o.port = num(v)? as u16,
                "--pid" => o.pid = Some(num(v)? as u32),
                "--target" => o.target = v.to_string(),
                "--duration" => o.duration = Duration::from_secs_f64(num(v)?),
                "--conns" => o.conns = num(v)? as usize,
                "--size" => o.size = (num(v)? as usize).max(32),
                "--receivers" => o.receivers = num(v)? as usize,
                "--senders" => o.senders = num(v)? as usize,
                "--rate" => o.rate = num(v)?,
                "--concurrency" => o.concurrency = (num(v)? as usize).max(1),
                "--path" => o.path = v.to_string(),
                "--hold" => o.hold = Duration::from_secs_f64(num(v)?),
                "--timeout" => o.timeout = Duration::from_secs_f64(num(v)?),
                "--report-memory" => o.report_memory = num(v)? != 0.0,
                "--users" => o.users = num(v)? as usize,
                "--quiet" => o.quiet = Duration::from_secs_f64(num(v)?),
                "--max-col" => o.max_col = Some(num(v)? as usize),
                "--deflate" => o.deflate = num(v)? != 0.0,
                "--words" => o.words = num(v)? != 0.0,
                "--wire" => o.wire = num(v)? != 0.0,
                "--messages" => o.messages = (num(v)? as usize).min(1000),
                "--ports" => {
                    o.ports = list(v)?;
                    o.port = o.ports[0];
                }
                "--pids" => o.pids = list(v)?,
                "--redis-port" => o.redis_port = Some(num(v)? as u16),
                "--socketio" => o.socketio = num(v)? != 0.0,
                other => return Err(format!("unknown flag {other}")),
            }
            i += 2;
        }
        if o.duration > Duration::from_secs(600) {
            return Err("--duration is capped at 600 s".into());
        }
        if o.hold > Duration::from_secs(60) {
            return Err("--hold is capped at 60 s".into());
        }
        if o.quiet > Duration::from_secs(30) {
            return Err("--quiet is capped at 30 s".into());
        }
        if o.users > 100_000 {
            return Err("--users is capped at 100,000".into());
        }
        Ok(o)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The server the `i`th connection goes to: round-robin over `--ports`.
    fn addr_of(&self, i: usize) -> SocketAddr {
        match self.ports.len() {
            0 => self.addr(),
            n => SocketAddr::new(self.host, self.ports[i % n]),
        }
    }

    /// The processes whose CPU time counts.
    fn cpu_pids(&self) -> Vec<u32> {
        if self.pids.is_empty() {
            self.pid.into_iter().collect()
        } else {
            self.pids.clone()
        }
    }

    /// The path a chat connection opens.
    fn chat_path(&self) -> &'static str {
        if self.socketio { SOCKETIO_PATH } else { "/" }
    }
}

/// A comma-separated list of numbers.
fn list<T: std::str::FromStr>(v: &str) -> Result<Vec<T>, Error> {
    let items: Result<Vec<T>, _> = v.split(',').map(|x| x.trim().parse::<T>()).collect();
    match items {
        Ok(items) if !items.is_empty() => Ok(items),
        _ => Err(format!("{v:?} is not a comma-separated list of numbers")),
    }
}

/// Where socket.io 4 takes a WebSocket without HTTP long-polling first.
const SOCKETIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";
/// Engine.IO `4` (message) + socket.io `0` (CONNECT) to the default
/// namespace, as a masked client text frame (mask key 0: the payload as is,
/// RFC 6455 §5.3).
const SOCKETIO_CONNECT_FRAME: [u8; 8] = [0x81, 0x82, 0, 0, 0, 0, b'4', b'0'];

/// The summed CPU time of `pids`, if every one could be read.
fn procs_cpu(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&p| proc_cpu(Some(p))).sum()
}

/// What `INFO stats commandstats` says of a Redis: calls per command (the
/// `INFO`s left out) and the bytes it read and wrote.
#[derive(Default, Debug, PartialEq)]
struct RedisCounts {
    calls: std::collections::BTreeMap<String, u64>,
    net_in: u64,
    net_out: u64,
}

/// Parse the text of `INFO stats commandstats`.
fn parse_redis_info(info: &str) -> RedisCounts {
    let mut c = RedisCounts::default();
    for line in info.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|n| n.parse().ok());
            if let Some(calls) = calls
                && name != "info"
            {
                c.calls.insert(name.to_string(), calls);
            }
        } else if let Some(n) = line.strip_prefix("total_net_input_bytes:") {
            c.net_in = n.parse().unwrap_or(0);
        } else if let Some(n) = line.strip_prefix("total_net_output_bytes:") {
            c.net_out = n.parse().unwrap_or(0);
        }
    }
    c
}

/// `INFO stats commandstats` from the Redis on 127.0.0.1:`port` (a
/// blocking call of a few milliseconds, at the window's two ends only),
/// with the length of the reply (its own bytes out, taken off later).
fn redis_info(port: u16) -> Result<(RedisCounts, u64), Error> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("redis on {port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"*3\r\n$4\r\nINFO\r\n$5\r\nstats\r\n$12\r\ncommandstats\r\n")
        .map_err(|e| format!("redis: {e}"))?;
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).map_err(|e| format!("redis: {e}"))?;
    let len: usize = head
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("redis: INFO answered {head:?}"))?;
    let mut body = vec![0u8; len + 2];
    r.read_exact(&mut body).map_err(|e| format!("redis: {e}"))?;
    let text = String::from_utf8_lossy(&body[..len]);
    Ok((parse_redis_info(&text), (head.len() + len + 2) as u64))
}

// ---------------------------------------------------------------- /proc

/// Server CPU time (user + system, all threads) in seconds.
fn proc_cpu(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime); `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// A number from /proc/PID/status (`VmRSS` in KiB, `Threads`).
fn proc_status(pid: Option<u32>, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// A number from /proc/PID/io (`wchar`: bytes the process handed to
/// write(2) and its kin; not those of send(2) or sendmsg(2)).
fn proc_io(pid: Option<u32>, key: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{}/io", pid?)).ok()?;
    io.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().parse().ok()
    })
}

/// This process's CPU time in seconds.
fn self_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Measures the generator's own CPU and the server's over a window.
struct Window {
    started: Instant,
    server_cpu: Option<f64>,
    self_cpu: f64,
}

impl Window {
    fn start(pid: Option<u32>) -> Window {
        Window {
            started: Instant::now(),
            server_cpu: proc_cpu(pid),
            self_cpu: self_cpu(),
        }
    }

    /// (wall seconds, server CPU seconds, generator CPU share of one core)
    fn end(&self, pid: Option<u32>) -> (f64, Option<f64>, f64) {
        let wall = self.started.elapsed().as_secs_f64();
        let server = match (self.server_cpu, proc_cpu(pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        (wall, server, (self_cpu() - self.self_cpu) / wall)
    }
}

// ---------------------------------------------------------------- median

/// The cells of a markdown table row, trimmed.
fn cells(row: &str) -> Vec<&str> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(str::trim).collect()
}

/// The number a cell starts with (`98%` is 98, `0 (3 receivers dropped)`
/// is 0), if any.
fn leading_number(cell: &str) -> Option<f64> {
    let end = cell
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(cell.len());
    cell[..end].parse().ok()
}

/// One row from the rows of several rounds of one target: each numeric
/// column is the median of the rounds (printed with the first round's
/// decimals, `%` kept), column `max_col` (the lost messages) is the worst
/// round's cell, and any other column is the first round's. If a round
/// failed (an `n/a` row, whose cells do not line up), its row is the
/// answer: a failure is never hidden by a median.
fn median_row(rows: &[&str], max_col: Option<usize>) -> Option<String> {
    let table: Vec<Vec<&str>> = rows.iter().map(|r| cells(r)).collect();
    let width = table.first()?.len();
    if let Some(bad) = table.iter().position(|c| c.len() != width) {
        return Some(rows[bad].to_string());
    }
    let mut out = Vec::with_capacity(width);
    for col in 0..width {
        let column: Vec<&str> = table.iter().map(|c| c[col]).collect();
        if col == 0 {
            out.push(column[0].to_string());
            continue;
        }
        if Some(col) == max_col {
            let worst = column
                .iter()
                .max_by(|a, b| {
                    let (a, b) = (leading_number(a), leading_number(b));
                    a.unwrap_or(f64::MAX).total_cmp(&b.unwrap_or(f64::MAX))
                })
                .expect("one row at least");
            out.push(worst.to_string());
            continue;
        }
        let numbers: Option<Vec<f64>> = column
            .iter()
            .map(|c| c.strip_suffix('%').unwrap_or(c).parse::<f64>().ok())
            .collect();
        match numbers {
            Some(mut numbers) => {
                numbers.sort_by(f64::total_cmp);
                let median = numbers[(numbers.len() - 1) / 2];
                let first = column[0];
                let decimals = first
                    .strip_suffix('%')
                    .unwrap_or(first)
                    .split_once('.')
                    .map_or(0, |(_, d)| d.len());
                let percent = if first.ends_with('%') { "%" } else { "" };
                out.push(format!("{median:.decimals$}{percent}"));
            }
            None => out.push(column[0].to_string()),
        }
    }
    Some(format!("| {} |", out.join(" | ")))
}

// ---------------------------------------------------------------- helpers

fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn client_config() -> WebSocketConfig {
    // Small read buffers: thousands of connections share one process.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

async fn connect(addr: SocketAddr, path: &str) -> Result<Ws, Error> {
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let url = format!("ws://{addr}{path}");
        let (ws, _response) = tokio_tungstenite::client_async_with_config(
            url,
            MaybeTlsStream::Plain(tcp),
            Some(client_config()),
        )
        .await
        .map_err(|e| format!("handshake on {path}: {e}"))?;
        Ok(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("connect to {path}: no handshake in {CONNECT_TIMEOUT:?}"))?
}

/// Bytes a raw receiver reads at once; it grows for a larger frame.
const RECEIVE_BUFFER: usize = 16 * 1024;
/// Largest frame or message a raw receiver accepts.
const RECEIVE_MAX: usize = 16 << 20;

/// A broadcast receiver's connection, read without a WebSocket library.
///
/// At 250,000 deliveries/s on one core, the generator's own cost per
/// delivery decides the latencies it reports: through tokio-tungstenite a
/// delivery cost a message allocation, UTF-8 validation, zeroing of read
/// buffer space and one task wake-up per frame. This reads whatever the
/// socket holds into one buffer (under load, many frames per `recv`) and
/// hands each message's payload over in place. Server frames are unmasked
/// (RFC 6455 §5.1); pings are answered; a close frame ends it. Every target
/// is read the same way.
struct RawReceiver {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// The unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A fragmented message being put together.
    fragments: Vec<u8>,
    /// Every byte read from the socket, the handshake's response included.
    received: u64,
    /// permessage-deflate was negotiated: compressed messages are inflated
    /// (by the generator thread's one inflater, reset for each message: the
    /// server takes no context over, §7.1.1.1), into this buffer.
    deflate: bool,
    inflated: Vec<u8>,
    /// The fragmented message being put together is compressed.
    fragments_compressed: bool,
    /// Bytes on the wire of the message last handed over (its frames,
    /// headers included), readable from inside `on_message`.
    last_wire: Arc<std::sync::atomic::AtomicUsize>,
    fragments_wire: usize,
}

thread_local! {
    /// One inflater for every connection of the generator's thread: the
    /// server's messages are independent streams, so one is enough, and a
    /// few KiB of state stay in the cache instead of one per receiver.
    static INFLATER: std::cell::RefCell<flate2::Decompress> =
        std::cell::RefCell::new(flate2::Decompress::new(false));
}

/// [`inflate_into`] with the thread's inflater.
fn inflate(payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    INFLATER.with(|d| inflate_into(&mut d.borrow_mut(), payload, out))
}

/// Inflate one compressed message (RFC 7692 §7.2.2: its payload, then
/// `00 00 ff ff`) into `out`, with an inflater reset for it.
fn inflate_into(
    inflater: &mut flate2::Decompress,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    inflater.reset(false);
    out.clear();
    let tail = [0x00, 0x00, 0xff, 0xff];
    for piece in [payload, &tail[..]] {
        let start = inflater.total_in();
        while ((inflater.total_in() - start) as usize) < piece.len() {
            if out.len() == out.capacity() {
                if out.len() >= RECEIVE_MAX {
                    return Err("a message larger than the receive limit".into());
                }
                out.reserve(out.capacity().max(1024));
            }
            let at = (inflater.total_in() - start) as usize;
            inflater
                .decompress_vec(&piece[at..], out, flate2::FlushDecompress::Sync)
                .map_err(|e| format!("inflating: {e}"))?;
        }
    }
    // Whatever the sync flush still holds.
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1024));
        }
        let before = out.len();
        inflater
            .decompress_vec(&[], out, flate2::FlushDecompress::Sync)
            .map_err(|e| format!("inflating: {e}"))?;
        if out.len() == before {
            return Ok(());
        }
    }
}

/// Where a frame lies at the front of a buffer.
struct RawFrame {
    fin: bool,
    opcode: u8,
    /// The payload's bytes, from the frame's first byte.
    payload: std::ops::Range<usize>,
    /// The whole frame's length.
    len: usize,
}

/// The whole frame at the front of `buf`; `None` if more bytes are needed.
/// Masked frames (which a server must not send) are an error.
fn parse_frame(buf: &[u8]) -> Result<Option<RawFrame>, Error> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err("the server sent a masked frame".into());
    }
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10),
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if len > RECEIVE_MAX as u64 {
        return Err(format!("a frame of {len} bytes"));
    }
    let total = header + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(RawFrame {
        fin: buf[0] & 0x80 != 0,
        opcode: buf[0] & 0x0f,
        payload: header..total,
        len: total,
    }))
}

impl RawReceiver {
    /// Read until the socket would block, handing each complete text or
    /// binary message to `on_message`. An error or the end of the
    /// connection is `Err`.
    async fn read_available(&mut self, on_message: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        loop {
            self.parse(on_message).await?;
            if self.end == self.buf.len() {
                // A frame larger than the buffer: make room.
                if self.buf.len() >= RECEIVE_MAX + 14 {
                    return Err("a frame larger than the receive limit".into());
                }
                let grown = (self.buf.len() * 2).min(RECEIVE_MAX + 14);
                self.buf.resize(grown, 0);
            }
            let space = self.buf.len() - self.end;
            let got = self.recv()?;
            if got == 0 {
                return Ok(());
            }
            self.end += got;
            if got < space {
                // A short read emptied the socket: what came is handed
                // over, and the next bytes wake us.
                return self.parse(on_message).await;
            }
        }
    }

    /// One `recv` into the buffer's free space: the bytes read (0 when
    /// there were none yet). A read that leaves space free has emptied the
    /// socket, so tokio is told to wait for the next readiness event right
    /// away (`try_io` with `WouldBlock`), which saves the `recv` that would
    /// only have found nothing: one system call per wake-up, not two. tokio
    /// keeps the readiness if an event came in between.
    fn recv(&mut self) -> Result<usize, Error> {
        use std::os::fd::AsRawFd;
        let fd = self.tcp.as_raw_fd();
        let space = &mut self.buf[self.end..];
        let mut got = 0usize;
        let result = self.tcp.try_io(tokio::io::Interest::READABLE, || {
            // SAFETY: `space` is valid for writes of its length for the
            // whole call; fd is the stream's open socket.
            let n = unsafe { libc::recv(fd, space.as_mut_ptr().cast(), space.len(), 0) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            got = n as usize;
            if got == 0 {
                return Ok(false); // the end of the stream
            }
            if got < space.len() {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(true)
        });
        self.received += got as u64;
        match result {
            Ok(false) => Err("connection closed".into()),
            Ok(true) => Ok(got),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(got),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Hand over every whole frame in the buffer and keep the rest at its
    /// front.
    async fn parse(&mut self, on_message: &mut impl FnMut(&[u8])) -> Result<(), Error> {
        while let Some(RawFrame {
            fin,
            opcode,
            payload,
            len,
        }) = parse_frame(&self.buf[self.start..self.end])?
        {
            let at = self.start;
            // RSV1 on a message's first frame: compressed (RFC 7692 §6).
            let rsv1 = self.buf[at] & 0x40 != 0;
            if rsv1 && !self.deflate {
                return Err("a compressed frame without permessage-deflate".into());
            }
            let payload = &self.buf[at + payload.start..at + payload.end];
            match opcode {
                0x1 | 0x2 if fin && self.fragments.is_empty() && rsv1 => {
                    self.last_wire.store(len, Ordering::Relaxed);
                    inflate(payload, &mut self.inflated)?;
                    on_message(&self.inflated);
                }
                0x1 | 0x2 if fin && self.fragments.is_empty() => {
                    self.last_wire.store(len, Ordering::Relaxed);
                    on_message(payload)
                }
                0x0..=0x2 => {
                    if self.fragments.len() + payload.len() > RECEIVE_MAX {
                        return Err("a message larger than the receive limit".into());
                    }
                    if opcode != 0x0 {
                        self.fragments_compressed = rsv1;
                    }
                    self.fragments.extend_from_slice(payload);
                    self.fragments_wire += len;
                    if fin {
                        self.last_wire.store(self.fragments_wire, Ordering::Relaxed);
                        self.fragments_wire = 0;
                        if self.fragments_compressed {
                            inflate(&self.fragments, &mut self.inflated)?;
                            on_message(&self.inflated);
                        } else {
                            on_message(&self.fragments);
                        }
                        self.fragments.clear();
                        self.fragments_compressed = false;
                    }
                }
                0x8 => return Err("the server closed the connection".into()),
                0x9 => {
                    // A pong with the same payload, masked with a zero key.
                    let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    pong.extend_from_slice(payload);
                    self.tcp.write_all(&pong).await.map_err(|e| e.to_string())?;
                }
                _ => {}
            }
            self.start += len;
        }
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        Ok(())
    }
}

/// Open a receiver's connection: the opening handshake (RFC 6455 §4.1)
/// written by hand, answered by `101`.
///
/// With `deflate`, it offers permessage-deflate as Chromium does
/// (`permessage-deflate; client_max_window_bits`) and fails unless the
/// server accepts: a row labelled deflate is never measured without it.
async fn connect_raw(addr: SocketAddr, path: &str, deflate: bool) -> Result<RawReceiver, Error> {
    let attempt = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let offer = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        let mut end = 0;
        let head_end = loop {
            if let Some(at) = buf[..end].windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if end == buf.len() {
                return Err(format!("handshake on {path}: no end to the response head"));
            }
            let n = tcp.read(&mut buf[end..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("handshake on {path}: connection closed"));
            }
            end += n;
        };
        let status = buf[..head_end]
            .split(|&b| b == b'\r')
            .next()
            .unwrap_or_default();
        if !status.starts_with(b"HTTP/1.1 101") {
            return Err(format!(
                "handshake on {path}: {}",
                String::from_utf8_lossy(status)
            ));
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let accepted = head.lines().any(|l| {
            l.starts_with("sec-websocket-extensions:") && l.contains("permessage-deflate")
        });
        if deflate && !accepted {
            return Err(format!(
                "handshake on {path}: permessage-deflate was not accepted"
            ));
        }
        Ok(RawReceiver {
            tcp,
            buf,
            start: head_end,
            end,
            fragments: Vec::new(),
            received: end as u64,
            deflate: accepted,
            inflated: Vec::new(),
            fragments_compressed: false,
            last_wire: Arc::default(),
            fragments_wire: 0,
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("connect to {path}: no handshake in {CONNECT_TIMEOUT:?}"))?
}

/// Open `n` connections with at most `in_flight` handshakes at once.
/// Returns the connections and the errors, in no particular order.
async fn connect_many(
    addr: SocketAddr,
    path: &str,
    n: usize,
    in_flight: usize,
) -> (Vec<Ws>, Vec<Error>) {
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        let path = path.to_string();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            connect(addr, &path).await
        });
    }
    let mut ok = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(ws)) => ok.push(ws),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (ok, errors)
}

/// [`connect_many`] with raw connections that offer permessage-deflate.
async fn connect_many_raw(
    addr: SocketAddr,
    path: &str,
    n: usize,
    in_flight: usize,
) -> (Vec<RawReceiver>, Vec<Error>) {
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        let path = path.to_string();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            connect_raw(addr, &path, true).await
        });
    }
    let mut ok = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(ws)) => ok.push(ws),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (ok, errors)
}

async fn connect_all(addr: SocketAddr, path: &str, n: usize) -> Result<Vec<Ws>, Error> {
    let (ok, errors) = connect_many(addr, path, n, SETUP_CONCURRENCY).await;
    match errors.first() {
        None => Ok(ok),
        Some(e) => Err(format!(
            "{} of {n} connections to {path} failed: {e}",
            errors.len()
        )),
    }
}

/// (p50, p99) of microsecond samples, in milliseconds.
fn percentiles(samples: &mut [u32]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i] as f64 / 1000.0
    };
    (at(0.50), at(0.99))
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "?".into(),
    }
}

fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        "?".into()
    } else if v < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

// ---------------------------------------------------------------- history

/// A room's history page, plain and compressed: `--messages` chat messages
/// of `--size` bytes of words go to a fresh room, then two members join it,
/// one without and one with permessage-deflate, and the bytes on the wire
/// of the `history` message each receives on joining are compared.
async fn history(o: &Opts) -> Result<String, Error> {
    let room = format!("history-{}", now_us());
    let mut writer = connect(o.addr(), &format!("/?name=writer&room={room}")).await?;
    let mut last = String::new();
    for seq in 0..o.messages as u64 {
        last = probe_words(0, seq, o.size);
        writer
            .send(Message::text(last.clone()))
            .await
            .map_err(|e| e.to_string())?;
    }
    // Every message stored: the writer has its own last one back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, writer.next())
            .await
            .map_err(|_| "the writer's messages did not come back".to_string())?;
        match next {
            Some(Ok(Message::Text(t))) if t.contains(last.as_str()) => break,
            Some(Ok(_)) => {}
            _ => return Err("the writer's connection ended".into()),
        }
    }
    let mut sizes = Vec::new();
    for deflate in [false, true] {
        let name = if deflate { "packed" } else { "plain" };
        let mut member =
            connect_raw(o.addr(), &format!("/?name={name}&room={room}"), deflate).await?;
        let wire = member.last_wire.clone();
        let mut found = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while found.is_none() {
            if Instant::now() > deadline {
                return Err("no history message".into());
            }
            member
                .read_available(&mut |payload: &[u8]| {
                    if payload.starts_with(br#"{"type":"history""#) && found.is_none() {
                        found = Some((wire.load(Ordering::Relaxed), payload.len()));
                    }
                })
                .await?;
            if found.is_none() {
                tokio::time::timeout(Duration::from_secs(1), member.tcp.readable())
                    .await
                    .ok();
            }
        }
        sizes.push(found.expect("found"));
    }
    let ((plain, json_len), (packed, json_len2)) = (sizes[0], sizes[1]);
    if json_len != json_len2 {
        return Err(format!(
            "the two history pages differ: {json_len} and {json_len2} bytes of JSON"
        ));
    }
    Ok(format!(
        "| {} | {} | {} | {} | {:.0}% |",
        o.target,
        o.messages,
        plain,
        packed,
        (1.0 - packed as f64 / plain as f64) * 100.0
    ))
}

// ---------------------------------------------------------------- wait-port

async fn wait_port(o: &Opts) -> Result<(), Error> {
    let deadline = Instant::now() + o.timeout;
    loop {
        if TcpStream::connect(o.addr()).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nothing listens on {} after {:?}",
                o.addr(),
                o.timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- echo

async fn echo(o: &Opts) -> Result<String, Error> {
    let conns = if o.conns == 0 { 50 } else { o.conns };
    let clients = connect_all(o.addr(), "/echo", conns).await?;
    let text: String = "e".repeat(o.size);
    let window = Window::start(o.pid);
    let deadline = tokio::time::Instant::now() + o.duration;
    let mut set = JoinSet::new();
    for mut ws in clients {
        let text = text.clone();
        set.spawn(async move {
            let mut rtts: Vec<u32> = Vec::with_capacity(1 << 16);
            while tokio::time::Instant::now() < deadline {
                let sent = Instant::now();
                ws.send(Message::text(text.clone()))
                    .await
                    .map_err(|e| format!("echo send: {e}"))?;
                // Bounded: a server that stops answering ends the run.
                let reply = tokio::time::timeout_at(deadline + Duration::from_secs(5), async {
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) => return Ok(t),
                            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                            Some(Ok(other)) => return Err(format!("echo: unexpected {other}")),
                            Some(Err(e)) => return Err(format!("echo read: {e}")),
                            None => return Err("echo: the server closed the connection".into()),
                        }
                    }
                })
                .await
                .map_err(|_| "echo: no reply within 5 s of the deadline".to_string())??;
                if reply.as_str() != text {
                    return Err("echo: the reply differs from what was sent".into());
                }
                rtts.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok::<_, Error>((ws, rtts))
        });
    }
    let mut rtts = Vec::new();
    let mut keep = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (ws, mut r) = joined.map_err(|e| e.to_string())??;
        rtts.append(&mut r);
        keep.push(ws);
    }
    let (wall, server_cpu, gen_cpu) = window.end(o.pid);
    drop(keep);
    let count = rtts.len() as f64;
    let (p50, p99) = percentiles(&mut rtts);
    Ok(format!(
        "| {} | {} | {:.0} | {} | {} | {} | {} |",
        o.target,
        conns,
        count / wall,
        fmt_ms(p50),
        fmt_ms(p99),
        fmt_opt(server_cpu.map(|c| c * 1e6 / count), 2),
        pct(gen_cpu),
    ))
}

// ---------------------------------------------------------------- broadcast

/// The text a sender sends: a marker, the sender, the sequence number and
/// the send time in microseconds since the generator started, padded.
fn probe_text(sender: usize, seq: u64, size: usize) -> String {
    let mut s = format!("B{sender} {seq} {} ", now_us());
    while s.len() < size {
        s.push('.');
    }
    s
}

/// A probe padded to `size` bytes with words, as a chat line would be:
/// the same header as [`probe_text`], then words drawn from a list of 64
/// by a generator seeded with the sender and sequence, so that no two
/// probes are alike and the text compresses about as chat text does, not
/// as a run of one byte.
fn probe_words(sender: usize, seq: u64, size: usize) -> String {
    const WORDS: [&str; 64] = [
        "the", "a", "and", "to", "of", "in", "is", "it", "you", "that", "we", "for", "on", "are",
        "with", "this", "be", "have", "not", "at", "but", "from", "they", "will", "can", "just",
        "what", "about", "if", "so", "there", "time", "meeting", "order", "ticket", "thanks",
        "today", "tomorrow", "please", "check", "update", "sure", "good", "morning", "deploy",
        "server", "release", "bug", "fixed", "coffee", "lunch", "later", "team", "room", "message",
        "customer", "support", "question", "answer", "price", "delivery", "week", "ok", "yes",
    ];
    let mut s = format!("B{sender} {seq} {} ", now_us());
    let mut state = (sender as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq.wrapping_add(1);
    while s.len() < size {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        s.push_str(WORDS[(state % 64) as usize]);
        s.push(' ');
    }
    s.truncate(size);
    s
}

/// The send time out of a probe text, if it is one.
fn parse_probe(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('B')?;
    let mut parts = rest.split(' ');
    let _sender: u32 = parts.next()?.parse().ok()?;
    let _seq: u64 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// The send time carried by a message from the server: plain text (the
/// peers relay it as is) or wschat's `{"type":"chat",...,"text":"..."}`.
/// Other messages (welcome, users, history, join, leave, ...) give `None`.
///
/// The JSON is not parsed into values: the generator reads every delivery
/// on one core, and at 250,000 deliveries/s a full parse of each of
/// wschat's ~150-byte messages made the generator, not the server, the
/// bottleneck of the latencies. [`top_level_strings`] finds the two
/// top-level string fields it needs in one pass, without allocating.
fn probe_time(message: impl AsRef<[u8]>) -> Option<u64> {
    let message = message.as_ref();
    if let Some(event) = message.strip_prefix(b"42[\"chat\",\"") {
        // socket.io: `42["chat","TEXT"]` (a probe holds no escapes).
        let text = event.strip_suffix(b"\"]")?;
        return parse_probe(std::str::from_utf8(text).ok()?);
    }
    if message.starts_with(b"{") {
        let (kind, text) = top_level_strings(message)?;
        if kind != b"chat" {
            return None;
        }
        parse_probe(std::str::from_utf8(text).ok()?)
    } else {
        parse_probe(std::str::from_utf8(message).ok()?)
    }
}

/// The raw values of the top-level `"type"` and `"text"` fields of a JSON
/// object, when both are strings without escapes (a probe never has any);
/// `None` for anything else. Nested objects and arrays are skipped, so the
/// chat messages inside a `history` reply are not taken for its own.
fn top_level_strings(json: &[u8]) -> Option<(&[u8], &[u8])> {
    let (mut kind, mut text) = (None, None);
    let mut depth = 0usize;
    let mut i = 0;
    // The key of the top-level field whose value comes next, if any.
    let mut key: Option<&[u8]> = None;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                while j < json.len() && json[j] != b'"' {
                    if json[j] == b'\\' {
                        escaped = true;
                        j += 1;
                    }
                    j += 1;
                }
                if j >= json.len() {
                    return None; // an unterminated string
                }
                let string = &json[start..j];
                i = j + 1;
                if depth != 1 {
                    continue;
                }
                // A key is followed by a colon; a value is not.
                let mut k = i;
                while k < json.len() && json[k].is_ascii_whitespace() {
                    k += 1;
                }
                if json.get(k) == Some(&b':') {
                    key = Some(string);
                    i = k + 1;
                } else {
                    match key.take() {
                        Some(b"type") if !escaped => kind = Some(string),
                        Some(b"text") if !escaped => text = Some(string),
                        _ => {}
                    }
                }
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > 1 {
                    key = None;
                }
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
        i += 1;
    }
    Some((kind?, text?))
}

#[derive(Default)]
struct Counters {
    /// Every message the receivers saw, of any kind (for settling).
    any: AtomicU64,
    /// Probe deliveries to receivers, and those inside the send window.
    delivered: AtomicU64,
    in_window: AtomicU64,
    /// Probes sent.
    sent: AtomicU64,
    /// Receivers whose connection ended early.
    dropped: AtomicU64,
    /// Senders whose connection ended early.
    senders_dropped: AtomicU64,
    /// Receivers that opened, and those that did not (with the first error).
    opened: AtomicU64,
    not_opened: AtomicU64,
    first_error: OnceLock<Error>,
    /// Bytes the receivers read from their sockets (frames as sent).
    wire: AtomicU64,
}

async fn wait_quiet(counter: &AtomicU64, quiet: Duration, max: Duration) {
    let end = Instant::now() + max;
    let mut last = counter.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while Instant::now() < end && since.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

async fn broadcast(o: &Opts) -> Result<String, Error> {
    let rss_before = proc_status(o.pid, "VmRSS");
    let threads_before = proc_status(o.pid, "Threads");
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let window_end_us = Arc::new(AtomicU64::new(u64::MAX));

    // Each receiver opens (at most SETUP_CONCURRENCY handshakes at once) and
    // reads from then on, as a client would: the welcome, history and join
    // notices of the others arriving never pile up unread.
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let setup_deadline = Instant::now() + SETUP_DEADLINE;
    let mut receiver_set = JoinSet::new();
    let deflate = o.deflate;
    let socketio = o.socketio;
    let path = o.chat_path();
    for i in 0..o.receivers {
        let addr = o.addr_of(i);
        let gate = gate.clone();
        let counters = counters.clone();
        let mut stop = stop_rx.clone();
        let window_end_us = window_end_us.clone();
        receiver_set.spawn(async move {
            let opened = {
                let _permit = gate.acquire_owned().await.expect("semaphore open");
                if Instant::now() < setup_deadline {
                    match connect_raw(addr, path, deflate).await {
                        Ok(mut r) if socketio => r
                            .tcp
                            .write_all(&SOCKETIO_CONNECT_FRAME)
                            .await
                            .map(|()| r)
                            .map_err(|e| format!("socket.io connect: {e}")),
                        other => other,
                    }
                } else {
                    Err(format!("not tried within {SETUP_DEADLINE:?} of setup"))
                }
            };
            let mut receiver = match opened {
                Ok(receiver) => {
                    counters.opened.fetch_add(1, Ordering::Relaxed);
                    receiver
                }
                Err(e) => {
                    let _ = counters.first_error.set(e);
                    counters.not_opened.fetch_add(1, Ordering::Relaxed);
                    return (None, Vec::new());
                }
            };
            let mut latencies: Vec<u32> = Vec::new();
            let mut on_message = |payload: &[u8]| {
                counters.any.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = probe_time(payload) {
                    let now = now_us();
                    latencies.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    if now <= window_end_us.load(Ordering::Relaxed) {
                        counters.in_window.fetch_add(1, Ordering::Relaxed);
                    }
                }
            };
            let mut counted = receiver.received;
            loop {
                // Everything the socket holds, then wait for more.
                let read = receiver.read_available(&mut on_message).await;
                counters
                    .wire
                    .fetch_add(receiver.received - counted, Ordering::Relaxed);
                counted = receiver.received;
                match read {
                    Ok(()) => {}
                    Err(_) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    ready = receiver.tcp.readable() => if ready.is_err() {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    },
                }
            }
            (Some(receiver), latencies)
        });
    }
    // Every receiver task ends its setup by SETUP_DEADLINE + CONNECT_TIMEOUT.
    let give_up = setup_deadline + CONNECT_TIMEOUT + Duration::from_secs(1);
    let n = o.receivers as u64;
    while counters.opened.load(Ordering::Relaxed) + counters.not_opened.load(Ordering::Relaxed) < n
        && Instant::now() < give_up
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = counters.opened.load(Ordering::Relaxed);
    let not_opened = n - opened;
    let first_error = counters.first_error.get().map_or("", String::as_str);
    if not_opened > 0 && !o.report_memory {
        return Err(format!(
            "{not_opened} of {n} connections to / failed: {first_error}"
        ));
    }
    if opened == 0 && n > 0 {
        return Err(format!("no receiver opened on /: {first_error}"));
    }
    let mut senders = Vec::new();
    for i in 0..o.senders {
        let mut ws = connect(o.addr_of(i), path).await?;
        if socketio {
            ws.send(Message::text("40"))
                .await
                .map_err(|e| format!("socket.io connect: {e}"))?;
        }
        senders.push(ws);
    }
    let all_open = Instant::now();

    // The senders read too (they are members of the room), and discard.
    let mut sinks = Vec::new();
    let mut drains = JoinSet::new();
    for ws in senders {
        let (sink, mut stream) = ws.split();
        sinks.push(sink);
        let mut stop = stop_rx.clone();
        let counters = counters.clone();
        drains.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    next = stream.next() => if !matches!(next, Some(Ok(_))) {
                        counters.senders_dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    },
                }
            }
            stream
        });
    }

    // Let join notices, user lists and history settle before measuring.
    wait_quiet(
        &counters.any,
        Duration::from_millis(300),
        Duration::from_secs(5),
    )
    .await;
    let base_delivered = counters.delivered.load(Ordering::Relaxed);
    if base_delivered != 0 {
        return Err("probes arrived before any were sent".into());
    }
    // The server's memory with every connection open, before the first send.
    let (rss_open, threads_open) = if o.report_memory {
        tokio::time::sleep_until((all_open + o.hold).into()).await;
        (proc_status(o.pid, "VmRSS"), proc_status(o.pid, "Threads"))
    } else {
        (None, None)
    };

    let window = Window::start(o.pid);
    let cpu_pids = o.cpu_pids();
    let cpu_start = procs_cpu(&cpu_pids);
    // With --redis-port, the last of --pids is redis-server.
    let redis_pid = o.redis_port.and(o.pids.last().copied());
    let redis_cpu_start = redis_pid.and_then(|p| proc_cpu(Some(p)));
    let redis_start = o.redis_port.map(redis_info).transpose()?;
    let wire_start = counters.wire.load(Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    window_end_us.store(now_us() + o.duration.as_micros() as u64, Ordering::Relaxed);
    let period = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
    let per_sender = (o.duration.as_secs_f64() * o.rate).floor() as u64;
    let mut sender_set = JoinSet::new();
    for (id, mut sink) in sinks.into_iter().enumerate() {
        let counters = counters.clone();
        let size = o.size;
        let words = o.words;
        let socketio = o.socketio;
        // Spread the senders' ticks over one period.
        let offset = period.mul_f64(id as f64 / o.senders.max(1) as f64);
        let hard_stop = start + o.duration + Duration::from_secs(5);
        sender_set.spawn(async move {
            for seq in 0..per_sender {
                let at = start + offset + period.mul_f64(seq as f64);
                tokio::time::sleep_until(at).await;
                if tokio::time::Instant::now() >= hard_stop {
                    break; // the server holds us back: stop offering
                }
                let mut text = if words {
                    probe_words(id, seq, size)
                } else {
                    probe_text(id, seq, size)
                };
                if socketio {
                    text = format!("42[\"chat\",\"{text}\"]");
                }
                sink.send(Message::text(text))
                    .await
                    .map_err(|e| format!("sender {id}: {e}"))?;
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, Error>(sink)
        });
    }
    let mut sinks = Vec::new();
    let mut send_error = None;
    while let Some(joined) = sender_set.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(sink) => sinks.push(sink),
            Err(e) => send_error = Some(e),
        }
    }
    let sent = counters.sent.load(Ordering::Relaxed);
    let expected = sent * opened;
    // Drain: until every delivery arrived, or none for 1 s, at most 5 s.
    let drain_end = Instant::now() + Duration::from_secs(5);
    let mut last = counters.delivered.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while Instant::now() < drain_end && since.elapsed() < Duration::from_secs(1) {
        let now = counters.delivered.load(Ordering::Relaxed);
        if now >= expected {
            break;
        }
        if now != last {
            last = now;
            since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wire = counters.wire.load(Ordering::Relaxed) - wire_start;
    let server_cpu = match (cpu_start, procs_cpu(&cpu_pids)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let redis_end = o.redis_port.map(redis_info).transpose()?;
    let redis_cpu = match (redis_cpu_start, redis_pid.and_then(|p| proc_cpu(Some(p)))) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let gen_cpu = (self_cpu() - window.self_cpu) / window.started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);

    let mut latencies = Vec::new();
    let mut keep = Vec::new();
    while let Some(joined) = receiver_set.join_next().await {
        let (ws, mut l) = joined.map_err(|e| e.to_string())?;
        latencies.append(&mut l);
        keep.push(ws);
    }
    let mut streams = Vec::new();
    while let Some(joined) = drains.join_next().await {
        streams.extend(joined.ok());
    }
    drop((keep, sinks, streams));
    if let Some(e) = send_error {
        return Err(e);
    }

    let delivered = counters.delivered.load(Ordering::Relaxed);
    let in_window = counters.in_window.load(Ordering::Relaxed);
    let dropped = counters.dropped.load(Ordering::Relaxed);
    let (p50, p99) = percentiles(&mut latencies);
    let secs = o.duration.as_secs_f64();
    let offered = o.senders as f64 * o.rate * o.receivers as f64;
    let lost = expected.saturating_sub(delivered);
    let server_cpu = fmt_opt(server_cpu.map(|c| c * 1e6 / delivered.max(1) as f64), 2);
    if !o.ports.is_empty() {
        let sent = counters.sent.load(Ordering::Relaxed).max(1) as f64;
        let lost = if dropped > 0 {
            format!("{lost} ({dropped} receivers dropped)")
        } else {
            lost.to_string()
        };
        let redis = match (redis_start, redis_end) {
            (Some(start), Some(end)) => format!(
                "{} | {}",
                fmt_opt(redis_cpu.map(|c| c * 1e6 / sent), 1),
                redis_cells(start, end, sent)
            ),
            _ => "– | – | – | –".to_string(),
        };
        return Ok(format!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            o.target,
            o.ports.len(),
            o.receivers,
            offered,
            in_window as f64 / secs,
            fmt_ms(p50),
            fmt_ms(p99),
            lost,
            server_cpu,
            redis,
            pct(gen_cpu),
        ));
    }
    if o.wire {
        let lost = if dropped > 0 {
            format!("{lost} ({dropped} receivers dropped)")
        } else {
            lost.to_string()
        };
        return Ok(format!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {:.1} | {} |",
            o.target,
            o.receivers,
            offered,
            in_window as f64 / secs,
            fmt_ms(p50),
            fmt_ms(p99),
            lost,
            server_cpu,
            wire as f64 / delivered.max(1) as f64,
            pct(gen_cpu),
        ));
    }
    if !o.report_memory {
        let lost = if dropped > 0 {
            format!("{lost} ({dropped} receivers dropped)")
        } else {
            lost.to_string()
        };
        return Ok(format!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
            o.target,
            o.receivers,
            offered,
            in_window as f64 / secs,
            fmt_ms(p50),
            fmt_ms(p99),
            lost,
            server_cpu,
            pct(gen_cpu),
        ));
    }

    let receivers = if not_opened > 0 {
        format!("{opened} of {n}")
    } else {
        n.to_string()
    };
    let senders_dropped = counters.senders_dropped.load(Ordering::Relaxed);
    let errors = not_opened + dropped + senders_dropped;
    let errors = if errors == 0 {
        "0".to_string()
    } else {
        let mut parts = Vec::new();
        if not_opened > 0 {
            parts.push(format!(
                "{not_opened} not opened: {}",
                first_error.replace('|', "\\|")
            ));
        }
        if dropped > 0 {
            parts.push(format!("{dropped} receivers closed"));
        }
        if senders_dropped > 0 {
            parts.push(format!("{senders_dropped} senders closed"));
        }
        format!("{errors} ({})", parts.join("; "))
    };
    let mib = |v: Option<u64>| fmt_opt(v.map(|k| k as f64 / 1024.0), 1);
    let per_conn = match (rss_before, rss_open) {
        (Some(a), Some(b)) => {
            Some((b as f64 - a as f64) / (opened as f64 + o.senders as f64).max(1.0))
        }
        _ => None,
    };
    let count = |v: Option<u64>| v.map_or("?".into(), |t| t.to_string());
    Ok(format!(
        "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {}→{} | {} | {}→{} | {} | {} |",
        o.target,
        receivers,
        offered,
        in_window as f64 / secs,
        fmt_ms(p50),
        fmt_ms(p99),
        lost,
        errors,
        mib(rss_before),
        mib(rss_open),
        fmt_opt(per_conn, 1),
        count(threads_before),
        count(threads_open),
        server_cpu,
        pct(gen_cpu),
    ))
}

/// The `cluster` row's Redis cells (commands, bytes in, bytes out, per
/// message) from `INFO` at the window's two ends; the commands by name go
/// to stderr.
fn redis_cells(start: (RedisCounts, u64), end: (RedisCounts, u64), sent: f64) -> String {
    let ((before, first_reply), (after, _)) = (start, end);
    let mut total = 0u64;
    let mut by_name = Vec::new();
    for (name, &calls) in &after.calls {
        let n = calls.saturating_sub(before.calls.get(name).copied().unwrap_or(0));
        total += n;
        if n > 0 {
            by_name.push((n, name.clone()));
        }
    }
    by_name.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let named: Vec<String> = by_name
        .iter()
        .map(|(n, name)| format!("{name} {:.2}", *n as f64 / sent))
        .collect();
    eprintln!(
        "redis commands per message: {} ({sent} messages)",
        named.join(", ")
    );
    // The second INFO request (40 bytes) and the first one's reply are
    // the generator's own.
    let net_in = after.net_in.saturating_sub(before.net_in + 40);
    let net_out = after.net_out.saturating_sub(before.net_out + first_reply);
    format!(
        "{:.2} | {:.0} | {:.0}",
        total as f64 / sent,
        net_in as f64 / sent,
        net_out as f64 / sent
    )
}

// ---------------------------------------------------------------- join-storm

/// `--users` users join one room, `--concurrency` handshakes in flight,
/// each reading from the moment it opens; the run ends once nothing has
/// arrived for `--quiet` after the last one opened (a server that counts
/// arrivals once a second has sent its last count by then).
async fn join_storm(o: &Opts) -> Result<String, Error> {
    let n = o.users;
    let addr = o.addr();
    let bytes = Arc::new(AtomicU64::new(0));
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(o.concurrency));
    let setup_deadline = Instant::now() + SETUP_DEADLINE;
    let wchar_before = proc_io(o.pid, "wchar");
    let window = Window::start(o.pid);
    let mut set = JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        let counters = counters.clone();
        let bytes = bytes.clone();
        let mut stop = stop_rx.clone();
        let path = o.path.clone();
        set.spawn(async move {
            let opened = {
                let _permit = gate.acquire_owned().await.expect("semaphore open");
                if Instant::now() < setup_deadline {
                    connect_raw(addr, &path, false).await
                } else {
                    Err(format!("not tried within {SETUP_DEADLINE:?} of setup"))
                }
            };
            let mut user = match opened {
                Ok(user) => user,
                Err(e) => {
                    let _ = counters.first_error.set(e);
                    counters.not_opened.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            };
            let mut counted = user.received;
            bytes.fetch_add(counted, Ordering::Relaxed);
            counters.opened.fetch_add(1, Ordering::Relaxed);
            let mut ignore = |_: &[u8]| {};
            loop {
                let result = user.read_available(&mut ignore).await;
                bytes.fetch_add(user.received - counted, Ordering::Relaxed);
                counted = user.received;
                if result.is_err() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    ready = user.tcp.readable() => if ready.is_err() {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    },
                }
            }
            Some(user)
        });
    }
    let give_up = setup_deadline + CONNECT_TIMEOUT + Duration::from_secs(1);
    while counters.opened.load(Ordering::Relaxed) + counters.not_opened.load(Ordering::Relaxed)
        < n as u64
        && Instant::now() < give_up
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let opening = window.started.elapsed().as_secs_f64();
    let opened = counters.opened.load(Ordering::Relaxed);
    // The last presence count (or join notices) still on their way.
    wait_quiet(&bytes, o.quiet, Duration::from_secs(30)).await;
    let (_, server_cpu, gen_cpu) = window.end(o.pid);
    let wchar = match (wchar_before, proc_io(o.pid, "wchar")) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let received = bytes.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut keep = Vec::new();
    while let Some(joined) = set.join_next().await {
        keep.extend(joined.ok().flatten());
    }
    drop(keep);
    if opened == 0 && n > 0 {
        let first = counters.first_error.get().map_or("", String::as_str);
        return Err(format!("no user opened on {}: {first}", o.path));
    }
    let dropped = counters.dropped.load(Ordering::Relaxed);
    let mut users = opened.to_string();
    if opened < n as u64 {
        let first = counters.first_error.get().map_or("", String::as_str);
        users = format!("{opened} of {n} ({})", first.replace('|', "\\|"));
    }
    if dropped > 0 {
        users = format!("{users}; {dropped} closed by the server");
    }
    let mib = |v: Option<u64>| fmt_opt(v.map(|b| b as f64 / (1024.0 * 1024.0)), 2);
    Ok(format!(
        "| {} | {} | {:.0} | {} | {:.0} | {} | {} | {} | {} |",
        o.target,
        users,
        opened as f64 / opening.max(1e-6),
        mib(Some(received)),
        received as f64 / opened.max(1) as f64,
        mib(wchar),
        fmt_opt(server_cpu, 2),
        fmt_opt(server_cpu.map(|c| c * 1e6 / opened.max(1) as f64), 1),
        pct(gen_cpu),
    ))
}

// ---------------------------------------------------------------- api-publish

/// The key `api-publish` sends (run.sh starts wschat with it).
const BENCH_API_KEY: &str = "bench";

/// One publisher, one message at a time, to a room of `o.receivers`: first
/// as a WebSocket client (send, wait for its own message back), then
/// through the HTTP API (`POST /api/publish`, one connection per request,
/// as curl does; wait for the answer). Two rows: messages/s, deliveries/s
/// the receivers counted, and server CPU per delivery.
async fn api_publish(o: &Opts) -> Result<String, Error> {
    let addr = o.addr();
    let chats = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for _ in 0..o.receivers {
        let mut user = connect_raw(addr, "/", false).await?;
        let chats = chats.clone();
        let bytes = bytes.clone();
        let mut stop = stop_rx.clone();
        set.spawn(async move {
            let mut count = |m: &[u8]| {
                bytes.fetch_add(m.len() as u64, Ordering::Relaxed);
                if m.windows(13).any(|w| w == br#""type":"chat""#) {
                    chats.fetch_add(1, Ordering::Relaxed);
                }
            };
            loop {
                if user.read_available(&mut count).await.is_err() {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    ready = user.tcp.readable() => if ready.is_err() { break },
                }
            }
        });
    }
    wait_quiet(&bytes, Duration::from_millis(1000), Duration::from_secs(30)).await;
    let mut rows = Vec::new();
    for via in ["websocket", "http api"] {
        let before = chats.load(Ordering::Relaxed);
        let mut sender = if via == "websocket" {
            let mut ws = connect(addr, "/").await?;
            // Its welcome, users, history and join notice first.
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(300), ws.next()).await
            {}
            Some(ws)
        } else {
            None
        };
        wait_quiet(&bytes, Duration::from_millis(500), Duration::from_secs(10)).await;
        let before = chats.load(Ordering::Relaxed).max(before);
        let window = Window::start(o.pid);
        let mut sent = 0u64;
        while window.started.elapsed() < o.duration {
            let text = format!("bench {via} {sent}");
            match &mut sender {
                Some(ws) => {
                    ws.send(Message::Text(text.clone().into()))
                        .await
                        .map_err(|e| e.to_string())?;
                    loop {
                        let next = tokio::time::timeout(o.timeout, ws.next())
                            .await
                            .map_err(|_| "no echo of the sender's message".to_string())?;
                        match next {
                            Some(Ok(Message::Text(t))) if t.contains(&text) => break,
                            Some(Ok(_)) => {}
                            _ => return Err("the sender's connection ended".into()),
                        }
                    }
                }
                None => api_post(addr, &text, o.timeout).await?,
            }
            sent += 1;
        }
        let want = before + sent * o.receivers as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while chats.load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (wall, server_cpu, gen_cpu) = window.end(o.pid);
        let delivered = chats.load(Ordering::Relaxed) - before;
        rows.push(format!(
            "| {} ({via}) | {} | {:.0} | {:.0} | {} | {} | {} |",
            o.target,
            o.receivers,
            sent as f64 / wall,
            delivered as f64 / wall,
            (sent * o.receivers as u64).saturating_sub(delivered),
            fmt_opt(server_cpu.map(|c| c * 1e6 / delivered.max(1) as f64), 2),
            pct(gen_cpu),
        ));
        drop(sender);
    }
    let _ = stop_tx.send(true);
    while set.join_next().await.is_some() {}
    Ok(rows.join("\n"))
}

/// `POST /api/publish` of `text` to the lobby on a new connection; the
/// answer must be 200.
async fn api_post(addr: SocketAddr, text: &str, timeout: Duration) -> Result<(), Error> {
    let attempt = async {
        let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let body = format!(r#"{{"room":"lobby","text":"{text}"}}"#);
        let request = format!(
            "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {BENCH_API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        if answer.starts_with(b"HTTP/1.1 200") {
            Ok(())
        } else {
            let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
            Err(format!("publish: {}", String::from_utf8_lossy(line)))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| "publish: no answer in time".to_string())?
}

// ---------------------------------------------------------------- idle

async fn idle(o: &Opts) -> Result<String, Error> {
    let n = if o.conns == 0 { 5000 } else { o.conns };
    let rss_before = proc_status(o.pid, "VmRSS");
    let threads_before = proc_status(o.pid, "Threads");
    let window = Window::start(o.pid);
    // With --deflate 1 the connections open by hand, offering
    // permessage-deflate (tungstenite cannot), and are held unread too.
    let (clients, raw, errors) = if o.deflate {
        let (raw, errors) = connect_many_raw(o.addr(), &o.path, n, o.concurrency).await;
        (Vec::new(), raw, errors)
    } else {
        let (clients, errors) = connect_many(o.addr(), &o.path, n, o.concurrency).await;
        (clients, Vec::new(), errors)
    };
    let (wall, _, gen_cpu) = window.end(o.pid);
    let opened = clients.len() + raw.len();
    if opened == 0 {
        return Err(format!(
            "no connection to {} opened: {}",
            o.path,
            errors.first().map_or("", String::as_str)
        ));
    }
    // Let the server finish setting up after the last handshake.
    tokio::time::sleep(o.hold).await;
    let rss_after = proc_status(o.pid, "VmRSS");
    let threads_after = proc_status(o.pid, "Threads");
    drop((clients, raw));
    let per = |a: Option<u64>, b: Option<u64>, scale: f64| match (a, b) {
        (Some(a), Some(b)) => Some((b as f64 - a as f64) * scale / opened as f64),
        _ => None,
    };
    let mib = |v: Option<u64>| fmt_opt(v.map(|k| k as f64 / 1024.0), 1);
    let conns = if errors.is_empty() {
        opened.to_string()
    } else {
        format!("{opened} of {n} ({})", errors[0])
    };
    Ok(format!(
        "| {} | {} | {:.0} | {} | {} | {} | {}→{} | {} | {} |",
        o.target,
        conns,
        opened as f64 / wall,
        mib(rss_before),
        mib(rss_after),
        fmt_opt(per(rss_before, rss_after, 1.0), 1),
        threads_before.map_or("?".into(), |t| t.to_string()),
        threads_after.map_or("?".into(), |t| t.to_string()),
        fmt_opt(per(threads_before, threads_after, 1.0), 2),
        pct(gen_cpu),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_probes_are_probes_and_compressed_messages_inflate() {
        let t = probe_words(2, 7, 120);
        assert_eq!(t.len(), 120);
        assert!(probe_time(&t).is_some());
        assert_ne!(t, probe_words(2, 8, 120));
        let mut packed = Vec::new();
        wschat::ws::deflate::Compressor::new().compress(t.as_bytes(), &mut packed);
        assert!(packed.len() < t.len());
        let mut inflater = flate2::Decompress::new(false);
        let mut out = Vec::new();
        for _ in 0..2 {
            inflate_into(&mut inflater, &packed, &mut out).unwrap();
            assert_eq!(out, t.as_bytes());
        }
    }

    #[test]
    fn probes_are_found_in_plain_text_and_in_wschat_json() {
        let t = probe_text(3, 42, 32);
        assert_eq!(t.len(), 32);
        let sent = parse_probe(&t).unwrap();
        assert_eq!(probe_time(&t), Some(sent));
        let json = format!(
            r#"{{"type":"chat","id":7,"room":"lobby","user":{{"id":1,"name":"用户1"}},"text":"{t}","time":1}}"#
        );
        assert_eq!(probe_time(&json), Some(sent));
        let history = format!(r#"{{"type":"history","room":"lobby","messages":[{json}]}}"#);
        assert_eq!(probe_time(&history), None);
        let quoted = format!(r#"{{"text":"{t}","type":"chat","user":{{"name":"a \"b\" {{["}}}}"#);
        assert_eq!(probe_time(&quoted), Some(sent));
        let escaped = r#"{"text":"B1 2 3\u0020","type":"chat"}"#;
        assert_eq!(probe_time(escaped), None);
        assert_eq!(probe_time(r#"{"type":"chat"}"#), None);
        assert_eq!(probe_time(r#"{"type":"chat","text":"B1 2 3"#), None);
        assert_eq!(probe_time(r#"{"type":"join","users":[]}"#), None);
        assert_eq!(probe_time("hello"), None);
    }

    #[test]
    fn socketio_events_carry_probes() {
        let probe = probe_text(2, 7, 40);
        let event = format!("42[\"chat\",\"{probe}\"]");
        assert_eq!(probe_time(&event), parse_probe(&probe));
        assert!(probe_time(&event).is_some());
        assert_eq!(probe_time("40{\"sid\":\"x\"}"), None);
        assert_eq!(probe_time("42[\"other\",\"B1 2 3 \"]"), None);
    }

    #[test]
    fn redis_info_counts_calls_without_info_and_the_bytes() {
        let info = "# Stats\r\ntotal_net_input_bytes:1200\r\ntotal_net_output_bytes:3400\r\n\
                    # Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\n\
                    cmdstat_info:calls=3,usec=1\r\ncmdstat_xadd:calls=10,usec=2\r\n";
        let c = parse_redis_info(info);
        assert_eq!(c.net_in, 1200);
        assert_eq!(c.net_out, 3400);
        assert_eq!(c.calls.get("evalsha"), Some(&10));
        assert_eq!(c.calls.get("xadd"), Some(&10));
        assert_eq!(c.calls.get("info"), None);
    }

    #[test]
    fn raw_frames_are_found_whole_or_not_at_all() {
        let mut wire = Vec::new();
        wschat::ws::frame::encode_frame(
            &mut wire,
            true,
            wschat::ws::frame::OpCode::Text,
            &[b'x'; 300],
            None,
        );
        for cut in 0..wire.len() {
            assert!(parse_frame(&wire[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let frame = parse_frame(&wire).unwrap().unwrap();
        assert!(frame.fin);
        assert_eq!(frame.opcode, 1);
        assert_eq!(frame.payload, 4..304);
        assert_eq!(frame.len, 304);
        assert!(parse_frame(&[0x81, 0x81, 1, 2, 3, 4, 5]).is_err()); // masked
    }

    #[test]
    fn the_median_row_takes_medians_the_worst_loss_and_any_failure() {
        let rows = [
            "| wschat | 500 | 250000 | 249900 | 1.500 | 5.1 | 0 | 3.25 | 91% |",
            "| wschat | 500 | 250000 | 249950 | 1.200 | 4.0 | 2 (1 receivers dropped) | 3.10 | 88% |",
            "| wschat | 500 | 250000 | 249800 | 1.700 | 4.5 | 0 | 3.40 | 95% |",
        ];
        assert_eq!(
            median_row(&rows, Some(6)).unwrap(),
            "| wschat | 500 | 250000 | 249900 | 1.500 | 4.5 | 2 (1 receivers dropped) | 3.25 | 91% |"
        );
        let failed = "| wschat | n/a (error: boom) |";
        assert_eq!(
            median_row(&[rows[0], failed, rows[2]], Some(6)).unwrap(),
            failed
        );
        assert_eq!(median_row(&[rows[1]], None).unwrap(), rows[1]);
        assert!(median_row(&[], None).is_none());
    }

    #[test]
    fn percentiles_pick_ranks() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentiles(&mut v), (50.0, 99.0));
    }
}
