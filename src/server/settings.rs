//! The server's settings: what the listener and the connection threads are
//! told, each limit a named default. `config.rs` fills a [`ServerConfig`] in
//! from flags and the environment (`Config::server`).

use std::net::IpAddr;
use std::time::Duration;

use crate::ws::handshake::DEFAULT_MAX_HEADER_BYTES;
use crate::ws::message::{DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE};

/// A range of client addresses: an address and how many of its leading
/// bits must match (`10.0.0.0/8`; a bare address is all of its bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The first address of the range.
    pub addr: IpAddr,
    /// Leading bits that must match (at most 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
}

impl IpRange {
    /// `127.0.0.0/8` and `::1`: this machine.
    pub const LOOPBACK: [IpRange; 2] = [
        IpRange {
            addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        },
        IpRange {
            addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ];
    /// Every address, IPv4 and IPv6.
    pub const ANY: [IpRange; 2] = [
        IpRange {
            addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            prefix: 0,
        },
        IpRange {
            addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            prefix: 0,
        },
    ];

    /// Parse `ADDR` or `ADDR/BITS`.
    ///
    /// ```
    /// use wschat::server::IpRange;
    /// let lan = IpRange::parse("10.1.0.0/16").unwrap();
    /// assert!(lan.contains("10.1.200.3".parse().unwrap()));
    /// assert!(!lan.contains("10.2.0.1".parse().unwrap()));
    /// // An IPv4 client seen through an IPv6 socket still matches.
    /// assert!(lan.contains("::ffff:10.1.0.9".parse().unwrap()));
    /// assert!(IpRange::parse("10.0.0.0/33").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or ADDRESS/BITS range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max} bits"))?,
        };
        Ok(IpRange { addr, prefix })
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Default address to listen on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default time a client has to send its whole handshake request.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default time to wait for the peer's side of the close handshake.
pub const DEFAULT_CLOSE_TIMEOUT_MS: u64 = 5_000;
/// Default cap on open connections; more are answered 503. It stays well
/// below what Linux's default `vm.max_map_count` (65,530 maps) allows one
/// process: [`MAPS_PER_CONNECTION`] each.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on connections open at once from one client address (0: no
/// cap), so that one host cannot take every connection there is. The
/// `--trust-proxy` addresses are exempt: everything behind a proxy comes
/// from it.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;
/// Default interval of server pings on a quiet connection.
pub const DEFAULT_PING_INTERVAL_MS: u64 = 30_000;
/// Default silence after which a connection is closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 75_000;
/// Memory maps one connection costs, for the `vm.max_map_count` check: its
/// thread's stack and guard page (see `sys::spawn_detached`), and room for
/// the flusher thread a slow reader gets for a while (a std thread: four).
pub const MAPS_PER_CONNECTION: u64 = 3;
/// Stack size of each connection thread: small, since thousands are idle.
pub const CONNECTION_STACK_SIZE: usize = 128 * 1024;
/// Default per-connection message rate, messages a second (0: no limit).
pub const DEFAULT_RATE_LIMIT: u32 = 20;
/// Default burst the rate limit allows at once.
pub const DEFAULT_RATE_BURST: u32 = 40;
/// Default limit on bytes waiting in one connection's outbox.
pub const DEFAULT_MAX_OUTBOX_BYTES: usize = 1024 * 1024;
/// Default limit on frames waiting in one connection's outbox.
pub const DEFAULT_MAX_OUTBOX_FRAMES: usize = 4096;
/// Default cap on an API request's body (`--api-max-body`; 413 past it).
pub const DEFAULT_API_MAX_BODY: usize = 64 * 1024;
/// Default API requests a second one key may make (`--api-rate`; the
/// same number may come at once; 0: no limit).
pub const DEFAULT_API_RATE: u32 = 50;
/// Time an API request has to send its body, and then to get the hub's
/// answer (503 `unavailable` past it).
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the server is told (the applications' settings are theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Negotiate permessage-deflate (RFC 7692) when a client offers it.
    pub deflate: bool,
    /// Messages shorter than this go uncompressed even with deflate on.
    pub deflate_min_size: usize,
    /// Limit on the handshake request's header block (431 past it).
    pub max_header_bytes: usize,
    /// Largest frame payload accepted (close 1009 past it).
    pub max_frame_size: usize,
    /// Largest message accepted, fragments together (close 1009 past it).
    pub max_message_size: usize,
    /// Time allowed for the whole handshake request.
    pub handshake_timeout: Duration,
    /// Time allowed for the peer's answer to a Close.
    pub close_timeout: Duration,
    /// Most connections open at once (503 past it).
    pub max_connections: usize,
    /// How often a quiet connection is pinged.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Subprotocols the server accepts, in order of preference.
    pub protocols: Vec<String>,
    /// Serve the echo endpoint on every path (for conformance suites that
    /// only take host:port).
    pub echo_everywhere: bool,
    /// Messages a second one connection may send (0: no limit).
    pub rate_limit: u32,
    /// Messages one connection may send at once.
    pub rate_burst: u32,
    /// Bytes that may wait in one connection's outbox before it is closed
    /// as a slow consumer (1008).
    pub max_outbox_bytes: usize,
    /// Frames that may wait in one connection's outbox.
    pub max_outbox_frames: usize,
    /// Origins allowed to open WebSockets (empty: any).
    pub allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (empty: none).
    pub trusted_proxies: Vec<IpAddr>,
    /// Most connections open at once from one address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Run connection threads under `SCHED_BATCH` (Linux): no wake-up
    /// preemption, fewer context switches per message.
    pub batch_threads: bool,
    /// Client addresses that may read `/metrics` (others get 403); with
    /// `--trust-proxy`, the address the proxy reports.
    pub metrics_from: Vec<IpRange>,
    /// Keys that open `/api/` (`Authorization: Bearer KEY`); none: every
    /// API request is refused 401.
    pub api_keys: Vec<String>,
    /// Client addresses that may use `/api/` (others get 403).
    pub api_from: Vec<IpRange>,
    /// Largest API request body (413 past it).
    pub api_max_body: usize,
    /// API requests a second per key (0: no limit).
    pub api_rate: u32,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            deflate: true,
            deflate_min_size: crate::ws::deflate::DEFAULT_MIN_SIZE,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_millis(DEFAULT_HANDSHAKE_TIMEOUT_MS),
            close_timeout: Duration::from_millis(DEFAULT_CLOSE_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            ping_interval: Duration::from_millis(DEFAULT_PING_INTERVAL_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            protocols: Vec::new(),
            echo_everywhere: false,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_burst: DEFAULT_RATE_BURST,
            max_outbox_bytes: DEFAULT_MAX_OUTBOX_BYTES,
            max_outbox_frames: DEFAULT_MAX_OUTBOX_FRAMES,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            batch_threads: true,
            metrics_from: IpRange::LOOPBACK.to_vec(),
            api_keys: Vec::new(),
            api_from: IpRange::LOOPBACK.to_vec(),
            api_max_body: DEFAULT_API_MAX_BODY,
            api_rate: DEFAULT_API_RATE,
        }
    }
}

impl ServerConfig {
    /// The frame and message limits for the codec.
    pub fn limits(&self) -> crate::ws::Limits {
        crate::ws::Limits {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
        }
    }

    /// What a mount allows by default: these settings' limits, rate limit,
    /// keepalive and deflate.
    pub fn behavior(&self) -> super::Behavior {
        super::Behavior {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            deflate: self.deflate,
        }
    }

    /// The driver's clock: ping, idle and close timeouts.
    pub fn timeouts(&self) -> super::driver::Timeouts {
        super::driver::Timeouts {
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            close_timeout: self.close_timeout,
        }
    }
}
