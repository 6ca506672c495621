//! The flags of `wschat serve` (and `wschat check-config`): parsing them
//! from the environment and the command line into a [`Config`], `--help`,
//! and the checks of `check-config`.
//!
//! Settings are read from, in increasing precedence: the defaults (each
//! layer's own, gathered by [`Config::default`], with the store in
//! `./wschat-data`), the environment (`WSCHAT_` and the flag's name in
//! capitals, `-` as `_`), and the command line.
//!
//! # Adding a flag
//!
//! Everything about a flag the user sees is its one entry in [`FLAGS`]:
//! its name, what its value looks like, its line of help, how it is read
//! (`apply`) and shown (`show`). `--help`, `check-config`, the environment
//! variable, the warning for a misspelt `WSCHAT_…` variable and the tests
//! that every flag is listed with its environment variable follow from
//! that entry. What it sets lives with the layer it limits:
//!
//! 1. the setting, with its default as a named constant, in the layer's
//!    settings type (`ServerConfig`, `ChatConfig`, `DeskConfig`,
//!    `StoreConfig`, or a new one for a new layer, with a `Default`);
//! 2. a field of [`Config`] taking that default in [`Config::default`], and
//!    handed to the layer by [`Config::server`] (or `chat`, `desk`,
//!    `store`);
//! 3. the entry in [`FLAGS`], in the place `--help` should list it, and a
//!    line in docs/ where the layer's limits are described.

use std::time::Duration;

use crate::config::Config;
use crate::server::settings::{IpRange, MAPS_PER_CONNECTION};

/// Parse a list of address ranges: addresses, `ADDR/BITS`, `loopback`,
/// `any`, `none` (comma list).
fn parse_ranges(v: &str) -> Result<Vec<IpRange>, String> {
    let mut ranges = Vec::new();
    for item in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match item {
            "loopback" => ranges.extend(IpRange::LOOPBACK),
            "any" => ranges.extend(IpRange::ANY),
            "none" => {}
            _ => ranges.push(IpRange::parse(item)?),
        }
    }
    Ok(ranges)
}

/// How [`parse_ranges`] reads back.
fn show_ranges(ranges: &[IpRange]) -> String {
    if ranges.is_empty() {
        return "none".to_string();
    }
    ranges
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

/// One flag of `wschat serve`.
pub struct Flag {
    /// The long name, without `--`.
    pub name: &'static str,
    /// What its value looks like (`None` for a switch).
    pub value: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
    /// Read the value into the config.
    apply: fn(&mut Config, &str) -> Result<(), String>,
    /// The value in a config, for `--help` (the default) and check-config.
    show: fn(&Config) -> String,
}

impl Flag {
    /// The environment variable that sets this flag.
    pub fn env_var(&self) -> String {
        format!(
            "WSCHAT_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

fn bytes(v: &str) -> Result<usize, String> {
    let v = v.trim();
    let (num, mult) = match v.as_bytes().last() {
        Some(b'K' | b'k') => (&v[..v.len() - 1], 1024),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 1024 * 1024),
        Some(b'G' | b'g') => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{v:?} is not a size (a number, optionally with K, M or G)"))
}

fn millis(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let parse = |n: &str, unit: u64| {
        n.parse::<u64>()
            .ok()
            .map(|n| Duration::from_millis(n.saturating_mul(unit)))
    };
    let d = if let Some(n) = v.strip_suffix("ms") {
        parse(n, 1)
    } else if let Some(n) = v.strip_suffix('s') {
        parse(n, 1000)
    } else if let Some(n) = v.strip_suffix('m') {
        parse(n, 60_000)
    } else if let Some(n) = v.strip_suffix('h') {
        parse(n, 3_600_000)
    } else if let Some(n) = v.strip_suffix('d') {
        parse(n, 86_400_000)
    } else {
        parse(v, 1000)
    };
    d.ok_or_else(|| format!("{v:?} is not a duration (like 500ms, 10s, 2m, 12h, 30d)"))
}

fn show_duration(d: Duration) -> String {
    if d.as_millis() > 0 && d.as_millis().is_multiple_of(86_400_000) {
        format!("{}d", d.as_secs() / 86_400)
    } else if d.as_millis() > 0 && d.as_millis().is_multiple_of(3_600_000) {
        format!("{}h", d.as_secs() / 3600)
    } else if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn nonzero(d: Duration, what: &str) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("{what} must be above 0"))
    } else {
        Ok(d)
    }
}

fn positive(n: usize, what: &str) -> Result<usize, String> {
    if n == 0 {
        Err(format!("{what} must be above 0"))
    } else {
        Ok(n)
    }
}

/// Every flag of `wschat serve`, in the order `--help` lists them.
pub const FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        value: Some("ADDR"),
        help: "address and port to listen on",
        apply: |c, v| {
            c.listen = v.to_string();
            Ok(())
        },
        show: |c| c.listen.clone(),
    },
    Flag {
        name: "max-header-bytes",
        value: Some("SIZE"),
        help: "largest handshake request head; past it: 431",
        apply: |c, v| {
            c.max_header_bytes = positive(bytes(v)?, "max-header-bytes")?;
            Ok(())
        },
        show: |c| c.max_header_bytes.to_string(),
    },
    Flag {
        name: "max-frame-size",
        value: Some("SIZE"),
        help: "largest frame payload; past it: close 1009",
        apply: |c, v| {
            c.max_frame_size = positive(bytes(v)?, "max-frame-size")?;
            Ok(())
        },
        show: |c| c.max_frame_size.to_string(),
    },
    Flag {
        name: "max-message-size",
        value: Some("SIZE"),
        help: "largest message, all fragments; past it: close 1009",
        apply: |c, v| {
            c.max_message_size = positive(bytes(v)?, "max-message-size")?;
            Ok(())
        },
        show: |c| c.max_message_size.to_string(),
    },
    Flag {
        name: "deflate",
        value: Some("on|off"),
        help: "permessage-deflate (RFC 7692) for clients that offer it",
        apply: |c, v| {
            c.deflate = parse_bool(v)?;
            Ok(())
        },
        show: |c| if c.deflate { "on" } else { "off" }.to_string(),
    },
    Flag {
        name: "deflate-min-size",
        value: Some("SIZE"),
        help: "messages shorter than this are sent uncompressed",
        apply: |c, v| {
            c.deflate_min_size = bytes(v)?;
            Ok(())
        },
        show: |c| c.deflate_min_size.to_string(),
    },
    Flag {
        name: "handshake-timeout",
        value: Some("DURATION"),
        help: "time a client has to send its whole request",
        apply: |c, v| {
            c.handshake_timeout = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.handshake_timeout),
    },
    Flag {
        name: "close-timeout",
        value: Some("DURATION"),
        help: "time to wait for the peer's Close before dropping TCP",
        apply: |c, v| {
            c.close_timeout = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.close_timeout),
    },
    Flag {
        name: "max-connections",
        value: Some("N"),
        help: "most connections open at once; past it: 503",
        apply: |c, v| {
            c.max_connections = positive(
                v.trim()
                    .parse()
                    .map_err(|_| format!("{v:?} is not a number"))?,
                "max-connections",
            )?;
            Ok(())
        },
        show: |c| c.max_connections.to_string(),
    },
    Flag {
        name: "max-connections-per-ip",
        value: Some("N"),
        help: "most connections from one address at once (0: no limit; proxies exempt); past it: 503",
        apply: |c, v| {
            c.max_connections_per_ip = number(v)?;
            Ok(())
        },
        show: |c| c.max_connections_per_ip.to_string(),
    },
    Flag {
        name: "ping-interval",
        value: Some("DURATION"),
        help: "ping a connection after this much silence",
        apply: |c, v| {
            c.ping_interval = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.ping_interval),
    },
    Flag {
        name: "idle-timeout",
        value: Some("DURATION"),
        help: "close a connection after this much silence (pongs count)",
        apply: |c, v| {
            c.idle_timeout = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.idle_timeout),
    },
    Flag {
        name: "protocol",
        value: Some("NAME"),
        help: "a subprotocol to accept (repeatable; env: comma list)",
        apply: |c, v| {
            c.protocols.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from),
            );
            Ok(())
        },
        show: |c| c.protocols.join(","),
    },
    Flag {
        name: "rate-limit",
        value: Some("N"),
        help: "messages a second one connection may send (0: no limit)",
        apply: |c, v| {
            c.rate_limit = number(v)?;
            Ok(())
        },
        show: |c| c.rate_limit.to_string(),
    },
    Flag {
        name: "rate-burst",
        value: Some("N"),
        help: "messages one connection may send at once",
        apply: |c, v| {
            c.rate_burst = number(v)?;
            Ok(())
        },
        show: |c| c.rate_burst.to_string(),
    },
    Flag {
        name: "max-outbox-bytes",
        value: Some("SIZE"),
        help: "bytes waiting for a slow reader before it is closed (1008)",
        apply: |c, v| {
            c.max_outbox_bytes = positive(bytes(v)?, "max-outbox-bytes")?;
            Ok(())
        },
        show: |c| c.max_outbox_bytes.to_string(),
    },
    Flag {
        name: "max-outbox-frames",
        value: Some("N"),
        help: "frames waiting for a slow reader before it is closed (1008)",
        apply: |c, v| {
            c.max_outbox_frames = positive(number(v)?, "max-outbox-frames")?;
            Ok(())
        },
        show: |c| c.max_outbox_frames.to_string(),
    },
    Flag {
        name: "max-text-bytes",
        value: Some("SIZE"),
        help: "longest chat or private text; past it: an error reply",
        apply: |c, v| {
            c.max_text_bytes = positive(bytes(v)?, "max-text-bytes")?;
            Ok(())
        },
        show: |c| c.max_text_bytes.to_string(),
    },
    Flag {
        name: "max-binary-bytes",
        value: Some("SIZE"),
        help: "longest binary message relayed to a room; past it: an error reply",
        apply: |c, v| {
            c.max_binary_bytes = positive(bytes(v)?, "max-binary-bytes")?;
            Ok(())
        },
        show: |c| c.max_binary_bytes.to_string(),
    },
    Flag {
        name: "max-rooms",
        value: Some("N"),
        help: "most chat rooms at once",
        apply: |c, v| {
            c.max_rooms = positive(number(v)?, "max-rooms")?;
            Ok(())
        },
        show: |c| c.max_rooms.to_string(),
    },
    Flag {
        name: "max-rooms-per-user",
        value: Some("N"),
        help: "most chat rooms one user is a member of at once",
        apply: |c, v| {
            c.max_rooms_per_user = positive(number(v)?, "max-rooms-per-user")?;
            Ok(())
        },
        show: |c| c.max_rooms_per_user.to_string(),
    },
    Flag {
        name: "search-scan",
        value: Some("N"),
        help: "most messages one chat search reads; past it the answer says where to go on",
        apply: |c, v| {
            c.search_scan = positive(number(v)?, "search-scan")?;
            Ok(())
        },
        show: |c| c.search_scan.to_string(),
    },
    Flag {
        name: "agent-capacity",
        value: Some("N"),
        help: "open conversations the support desk gives one agent at once",
        apply: |c, v| {
            c.agent_capacity = positive(number(v)?, "agent-capacity")?;
            Ok(())
        },
        show: |c| c.agent_capacity.to_string(),
    },
    Flag {
        name: "agent-grace",
        value: Some("DURATION"),
        help: "how long a disconnected agent keeps their conversations before they are re-queued",
        apply: |c, v| {
            c.agent_grace = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.agent_grace),
    },
    Flag {
        name: "desk-max-queue",
        value: Some("N"),
        help: "most support conversations waiting; past it: an error (desk_full)",
        apply: |c, v| {
            c.desk_max_queue = positive(number(v)?, "desk-max-queue")?;
            Ok(())
        },
        show: |c| c.desk_max_queue.to_string(),
    },
    Flag {
        name: "desk-keep-resolved",
        value: Some("N"),
        help: "resolved support conversations kept in memory; older ones: in the log only",
        apply: |c, v| {
            c.desk_keep_resolved = positive(number(v)?, "desk-keep-resolved")?;
            Ok(())
        },
        show: |c| c.desk_keep_resolved.to_string(),
    },
    Flag {
        name: "desk-keep-messages",
        value: Some("N"),
        help: "messages per support conversation kept in memory; older ones: in the log only",
        apply: |c, v| {
            c.desk_keep_messages = positive(number(v)?, "desk-keep-messages")?;
            Ok(())
        },
        show: |c| c.desk_keep_messages.to_string(),
    },
    Flag {
        name: "desk-abandon-after",
        value: Some("DURATION"),
        help: "how long a waiting support visitor may be offline before its conversation leaves the queue as abandoned; 0: never",
        apply: |c, v| {
            c.desk_abandon_after = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.desk_abandon_after),
    },
    Flag {
        name: "desk-hours",
        value: Some("HOURS"),
        help: "when the support team is there, e.g. \"mon-fri 09:00-18:00 +08:00\" (parts joined with ;); outside them visitors leave a message with an e-mail address; empty: always",
        apply: |c, v| {
            c.desk_hours = if v.trim().is_empty() {
                None
            } else {
                Some(crate::desk::hours::Hours::parse(v)?)
            };
            Ok(())
        },
        show: |c| {
            c.desk_hours
                .as_ref()
                .map_or_else(String::new, |h| h.to_string())
        },
    },
    Flag {
        name: "allowed-origin",
        value: Some("ORIGIN"),
        help: "an Origin allowed to open WebSockets, e.g. https://example.com (repeatable; env: comma list; none: any)",
        apply: |c, v| {
            c.allowed_origins.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from),
            );
            Ok(())
        },
        show: |c| c.allowed_origins.join(","),
    },
    Flag {
        name: "trust-proxy",
        value: Some("IP"),
        help: "a reverse proxy whose X-Forwarded-For is believed (repeatable; env: comma list)",
        apply: |c, v| {
            for ip in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                c.trusted_proxies.push(
                    ip.parse()
                        .map_err(|_| format!("{ip:?} is not an IP address"))?,
                );
            }
            Ok(())
        },
        show: |c| {
            c.trusted_proxies
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
    },
    Flag {
        name: "metrics-from",
        value: Some("RANGES"),
        help: "who may read /metrics: addresses or ADDR/BITS, loopback, any, none (comma list)",
        apply: |c, v| {
            c.metrics_from = parse_ranges(v)?;
            Ok(())
        },
        show: |c| show_ranges(&c.metrics_from),
    },
    Flag {
        name: "api-key",
        value: Some("KEYS"),
        help: "keys of the HTTP API (/api/, docs/api.md), sent as Authorization: Bearer KEY; a comma list accepts each; none: the API answers 401",
        apply: |c, v| {
            c.api_keys = v
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
            Ok(())
        },
        show: |c| match c.api_keys.len() {
            0 => "none".to_string(),
            n => format!("{n} (hidden)"),
        },
    },
    Flag {
        name: "api-from",
        value: Some("RANGES"),
        help: "who may use the HTTP API: addresses or ADDR/BITS, loopback, any, none (comma list)",
        apply: |c, v| {
            c.api_from = parse_ranges(v)?;
            Ok(())
        },
        show: |c| show_ranges(&c.api_from),
    },
    Flag {
        name: "api-max-body",
        value: Some("SIZE"),
        help: "largest HTTP API request body; past it: 413",
        apply: |c, v| {
            c.api_max_body = positive(bytes(v)?, "api-max-body")?;
            Ok(())
        },
        show: |c| c.api_max_body.to_string(),
    },
    Flag {
        name: "api-rate",
        value: Some("N"),
        help: "HTTP API requests a second per key (as many may come at once); past it: 429; 0: no limit",
        apply: |c, v| {
            c.api_rate = number(v)?;
            Ok(())
        },
        show: |c| c.api_rate.to_string(),
    },
    Flag {
        name: "data-dir",
        value: Some("DIR"),
        help: "where the message log is kept",
        apply: |c, v| {
            c.data_dir = Some(v.trim().into());
            Ok(())
        },
        show: |c| {
            c.data_dir
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string())
        },
    },
    Flag {
        name: "redis",
        value: Some("URL"),
        help: "redis://HOST:PORT[/DB]: join the cluster of every node on this Redis (room and private messages stored there)",
        apply: |c, v| {
            let v = v.trim();
            crate::cluster::client::ClientConfig::from_url(v)?;
            c.redis = Some(v.to_string());
            Ok(())
        },
        show: |c| c.redis.clone().unwrap_or_default(),
    },
    Flag {
        name: "advertise",
        value: Some("HOST:PORT"),
        help: "with --redis: the address the other nodes reach this one at (the desk runs on one node; the others forward its connections there); default --listen",
        apply: |c, v| {
            let v = v.trim();
            if v.rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(format!("--advertise is HOST:PORT, not {v:?}"));
            }
            c.advertise = Some(v.to_string());
            Ok(())
        },
        show: |c| c.advertise.clone().unwrap_or_default(),
    },
    Flag {
        name: "forward-connect-timeout",
        value: Some("DURATION"),
        help: "with --redis: longest a node waits to connect to the node that runs the desk when it forwards a desk connection there (past it: 503)",
        apply: |c, v| {
            c.forward_connect_timeout = nonzero(millis(v)?, "forward-connect-timeout")?;
            Ok(())
        },
        show: |c| show_duration(c.forward_connect_timeout),
    },
    Flag {
        name: "redis-desk-lease",
        value: Some("DURATION"),
        help: "with --redis: how long the desk's lease outlives its holder's last renewal (every hub tick): a node that runs the desk and dies is replaced this long (and a tick) later; at least 1s",
        apply: |c, v| {
            let d = millis(v)?;
            if d < 2 * crate::hub::TICK_INTERVAL {
                return Err(format!(
                    "redis-desk-lease must be at least {} (two hub ticks)",
                    show_duration(2 * crate::hub::TICK_INTERVAL)
                ));
            }
            c.cluster.desk_lease = d;
            Ok(())
        },
        show: |c| show_duration(c.cluster.desk_lease),
    },
    Flag {
        name: "redis-cache",
        value: Some("N"),
        help: "with --redis: messages of each room, and private messages of each user, kept on the node for history and resume",
        apply: |c, v| {
            c.cluster.cache_per_room = positive(number(v)?, "redis-cache")?;
            Ok(())
        },
        show: |c| c.cluster.cache_per_room.to_string(),
    },
    Flag {
        name: "redis-warm-timeout",
        value: Some("DURATION"),
        help: "with --redis: longest the node waits on Redis, each time it does (a room's or a user's first read, an identity new to the node)",
        apply: |c, v| {
            c.cluster.warm_timeout = nonzero(millis(v)?, "redis-warm-timeout")?;
            Ok(())
        },
        show: |c| show_duration(c.cluster.warm_timeout),
    },
    Flag {
        name: "redis-retry-wait",
        value: Some("DURATION"),
        help: "with --redis: how long a message whose reply from Redis was lost is asked again before it is refused",
        apply: |c, v| {
            c.cluster.retry_wait = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.cluster.retry_wait),
    },
    Flag {
        name: "redis-events-queue",
        value: Some("N"),
        help: "with --redis: events from Redis waiting for the hub; past it the node stops reading them and fills the gap from the streams",
        apply: |c, v| {
            c.cluster.events_queue = positive(number(v)?, "redis-events-queue")?;
            Ok(())
        },
        show: |c| c.cluster.events_queue.to_string(),
    },
    Flag {
        name: "redis-presence-ttl",
        value: Some("DURATION"),
        help: "with --redis: how long a node's members count without its heartbeat (it beats, and reaps dead nodes, every third of it)",
        apply: |c, v| {
            c.cluster.presence_ttl = nonzero(millis(v)?, "redis-presence-ttl")?;
            Ok(())
        },
        show: |c| show_duration(c.cluster.presence_ttl),
    },
    Flag {
        name: "redis-stream-maxlen",
        value: Some("N"),
        help: "with --redis: entries kept in each room's stream and each user's private messages in Redis (approximately, MAXLEN ~); 0: any number",
        apply: |c, v| {
            c.cluster.trim.max_len = number(v)?;
            Ok(())
        },
        show: |c| c.cluster.trim.max_len.to_string(),
    },
    Flag {
        name: "redis-stream-max-age",
        value: Some("DURATION"),
        help: "with --redis: oldest entry kept in each room's stream in Redis (trimmed as the room gets messages); 0: any age",
        apply: |c, v| {
            c.cluster.trim.max_age_ms = u64::try_from(millis(v)?.as_millis()).unwrap_or(u64::MAX);
            Ok(())
        },
        show: |c| show_duration(Duration::from_millis(c.cluster.trim.max_age_ms)),
    },
    Flag {
        name: "memory",
        value: None,
        help: "keep history in memory only (no data directory)",
        apply: |c, v| {
            if parse_bool(v)? {
                c.data_dir = None;
            }
            Ok(())
        },
        show: |c| c.data_dir.is_none().to_string(),
    },
    Flag {
        name: "durability",
        value: Some("MODE"),
        help: "process: logged before delivery; fsync: also fsynced; none: memory only",
        apply: |c, v| {
            c.durability = crate::store::Durability::parse(v)?;
            Ok(())
        },
        show: |c| c.durability.name().to_string(),
    },
    Flag {
        name: "retain-days",
        value: Some("N"),
        help: "delete whole log segments older than this",
        apply: |c, v| {
            c.retain_days = positive(number::<usize>(v)?, "retain-days")? as u32;
            Ok(())
        },
        show: |c| c.retain_days.to_string(),
    },
    Flag {
        name: "segment-bytes",
        value: Some("SIZE"),
        help: "start a new log segment past this size",
        apply: |c, v| {
            c.segment_bytes = positive(bytes(v)?, "segment-bytes")? as u64;
            Ok(())
        },
        show: |c| c.segment_bytes.to_string(),
    },
    Flag {
        name: "history-keep",
        value: Some("N"),
        help: "recent messages per room kept in memory for history pages and resume",
        apply: |c, v| {
            c.history_keep = positive(number(v)?, "history-keep")?;
            Ok(())
        },
        show: |c| c.history_keep.to_string(),
    },
    Flag {
        name: "session-ttl",
        value: Some("DURATION"),
        help: "how long an identity (an anonymous user's session, a signed-in user) is kept unused: reconnecting with ?session= within it gives the same user",
        apply: |c, v| {
            c.session_ttl = millis(v)?;
            Ok(())
        },
        show: |c| show_duration(c.session_ttl),
    },
    Flag {
        name: "jwt-secret",
        value: Some("SECRETS"),
        help: "secrets of the HS256 tokens (JWT) that sign in a site's users, as ?token= or a first {\"type\":\"auth\"} message; a comma list accepts each (key rotation); none: tokens are refused",
        apply: |c, v| {
            c.jwt_secrets = crate::auth::parse_secrets(v);
            Ok(())
        },
        show: |c| match c.jwt_secrets.len() {
            0 => "none".to_string(),
            n => format!("{n} (hidden)"),
        },
    },
    Flag {
        name: "auth",
        value: Some("MODE"),
        help: "optional: anyone may chat, a token makes a user verified; required: connections without a valid token are closed with 4001",
        apply: |c, v| {
            c.auth = crate::chat::AuthMode::parse(v)?;
            Ok(())
        },
        show: |c| c.auth.name().to_string(),
    },
    Flag {
        name: "memory-budget",
        value: Some("SIZE"),
        help: "most bytes of users' input kept in memory (histories, private messages, desk transcripts, sessions); past it the least recently used goes, and is read from the log when asked for; 0: no ceiling",
        apply: |c, v| {
            c.memory_budget = bytes(v)?;
            Ok(())
        },
        show: |c| c.memory_budget.to_string(),
    },
    Flag {
        name: "echo-everywhere",
        value: None,
        help: "echo on every path, for conformance suites that take only host:port",
        apply: |c, v| {
            c.echo_everywhere = parse_bool(v)?;
            Ok(())
        },
        show: |c| c.echo_everywhere.to_string(),
    },
    Flag {
        name: "batch-threads",
        value: Some("BOOL"),
        help: "connection threads under SCHED_BATCH: a wake-up does not preempt (Linux)",
        apply: |c, v| {
            c.batch_threads = parse_bool(v)?;
            Ok(())
        },
        show: |c| c.batch_threads.to_string(),
    },
    Flag {
        name: "webhook",
        value: Some("URL"),
        help: "an http:// or https:// URL the desk's events are POSTed to, signed (repeatable; env: comma list; docs/customer-service.md)",
        apply: |c, v| {
            for url in v.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                crate::webhook::http::Url::parse(url)?;
                c.webhooks.push(url.to_string());
            }
            Ok(())
        },
        show: |c| c.webhooks.join(","),
    },
    Flag {
        name: "webhook-secret",
        value: Some("SECRET"),
        help: "the key of the webhooks' X-Wschat-Signature (HMAC-SHA256 of the body); needed with --webhook",
        apply: |c, v| {
            c.webhook_secret = v.to_string();
            Ok(())
        },
        show: |c| {
            if c.webhook_secret.is_empty() {
                "none".to_string()
            } else {
                "(hidden)".to_string()
            }
        },
    },
    Flag {
        name: "webhook-ca",
        value: Some("FILE"),
        help: "PEM certificates trusted for https:// webhooks besides the system's (a private CA)",
        apply: |c, v| {
            c.webhook_ca = Some(v.trim().into());
            Ok(())
        },
        show: |c| {
            c.webhook_ca
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        },
    },
    Flag {
        name: "webhook-max-pending",
        value: Some("N"),
        help: "most webhook events waiting for their receivers (kept in the data directory); past it new events are dropped and counted",
        apply: |c, v| {
            c.webhook_max_pending = positive(number(v)?, "webhook-max-pending")?;
            Ok(())
        },
        show: |c| c.webhook_max_pending.to_string(),
    },
    Flag {
        name: "webhook-timeout",
        value: Some("DURATION"),
        help: "longest a webhook attempt may take to connect, send, or get the answer",
        apply: |c, v| {
            let d = millis(v)?;
            if d.is_zero() {
                return Err("webhook-timeout must be above 0".into());
            }
            c.webhook_timeout = d;
            Ok(())
        },
        show: |c| show_duration(c.webhook_timeout),
    },
    Flag {
        name: "webhook-backoff",
        value: Some("DURATION"),
        help: "longest wait between two attempts at a failing webhook receiver (the wait doubles from 1s)",
        apply: |c, v| {
            c.webhook_backoff_max = millis(v)?.max(crate::webhook::BACKOFF_FIRST);
            Ok(())
        },
        show: |c| show_duration(c.webhook_backoff_max),
    },
    Flag {
        name: "webhook-handover",
        value: Some("N"),
        help: "webhook events the hub can hand to the webhook thread before it takes them (it only appends them to the pending file); past it new events are dropped and counted",
        apply: |c, v| {
            c.webhook_handover = positive(number(v)?, "webhook-handover")?;
            Ok(())
        },
        show: |c| c.webhook_handover.to_string(),
    },
];

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

/// Build a config from the environment and the arguments after `serve`.
///
/// ```
/// use wschat::cli::serve::parse_args;
/// let args = ["--listen", "127.0.0.1:0", "--max-message-size=64K"].map(String::from);
/// let config = parse_args(&args, |_| None).unwrap();
/// assert_eq!(config.listen, "127.0.0.1:0");
/// assert_eq!(config.max_message_size, 65536);
/// ```
pub fn parse_args(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
    let mut config = Config::command_default();
    for flag in FLAGS {
        if let Some(value) = env(&flag.env_var()) {
            (flag.apply)(&mut config, &value).map_err(|e| format!("{}: {e}", flag.env_var()))?;
        }
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument {arg:?} (see wschat serve --help)"
            ));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("unknown flag --{name} (see wschat serve --help)"))?;
        let value = match (flag.value, inline) {
            (_, Some(v)) => v,
            (None, None) => "true".to_string(),
            (Some(_), None) => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))?
            }
        };
        (flag.apply)(&mut config, &value).map_err(|e| format!("--{name}: {e}"))?;
        i += 1;
    }
    Ok(config)
}

/// Check a configuration against itself and this machine. Returns every
/// problem found, each a sentence saying what to change.
pub fn check(config: &Config) -> Vec<String> {
    use std::net::ToSocketAddrs;
    let mut problems = Vec::new();
    if !config
        .listen
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some())
    {
        problems.push(format!(
            "--listen {:?} is not an address:port",
            config.listen
        ));
    }
    if config.max_frame_size > config.max_message_size {
        problems.push(format!(
            "--max-frame-size ({}) is above --max-message-size ({}): a single frame could never be accepted whole",
            config.max_frame_size, config.max_message_size
        ));
    }
    if config.ping_interval >= config.idle_timeout {
        problems.push(format!(
            "--ping-interval ({}) must be shorter than --idle-timeout ({}), or quiet clients are closed before they are pinged",
            show_duration(config.ping_interval),
            show_duration(config.idle_timeout)
        ));
    }
    if config.max_text_bytes > config.max_message_size {
        problems.push(
            "--max-text-bytes is above --max-message-size: such texts could never arrive".into(),
        );
    }
    for name in unknown_env_vars(std::env::vars().map(|(k, _)| k)) {
        problems.push(format!(
            "{name} is set but is not a wschat setting (see wschat --help): a typo?"
        ));
    }
    if let Some(dir) = &config.data_dir
        && let Err(e) = check_writable(dir)
    {
        problems.push(format!("--data-dir {}: {e}", dir.display()));
    }
    // Each connection is a thread with its own memory maps: the kernel's
    // map limit caps the number of threads.
    let maps_needed = config.max_connections as u64 * MAPS_PER_CONNECTION + 1000;
    if let Some(maps) = read_number("/proc/sys/vm/max_map_count")
        && maps_needed > maps
    {
        problems.push(format!(
            "--max-connections {} needs about {maps_needed} memory maps but vm.max_map_count is {maps}: raise it (sysctl vm.max_map_count={}) or lower --max-connections",
            config.max_connections,
            maps_needed * 2
        ));
    }
    if let Some(files) = crate::sys::open_file_limit()
        && config.max_connections as u64 + 64 > files
    {
        problems.push(format!(
            "--max-connections {} is above the open-file limit {files}: raise it (ulimit -n, or LimitNOFILE= in the systemd unit) or lower --max-connections",
            config.max_connections
        ));
    }
    if !config.webhooks.is_empty() && config.webhook_secret.is_empty() {
        problems.push(
            "--webhook needs --webhook-secret: receivers check each event's signature with it"
                .into(),
        );
    }
    if let Some(ca) = &config.webhook_ca
        && let Err(e) = std::fs::metadata(ca)
    {
        problems.push(format!("--webhook-ca {}: {e}", ca.display()));
    }
    if config.webhooks.iter().any(|u| u.starts_with("https://"))
        && let Err(why) = crate::sys::tls::available()
    {
        problems.push(format!(
            "--webhook https://…: {why} (http:// receivers work without it; events for https:// ones wait)"
        ));
    }
    problems
}

/// The `WSCHAT_*` names among `names` that no flag reads (`RUST_LOG` and
/// the like are not ours and are left alone).
///
/// ```
/// let names = ["WSCHAT_LISTEN", "WSCHAT_LISTNE", "HOME"].map(String::from);
/// assert_eq!(wschat::cli::serve::unknown_env_vars(names), ["WSCHAT_LISTNE"]);
/// ```
pub fn unknown_env_vars(names: impl IntoIterator<Item = String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| n.starts_with("WSCHAT_") && !FLAGS.iter().any(|f| f.env_var() == *n))
        .collect()
}

/// Whether files can be created in `dir` (or, if it does not exist yet, in
/// the folder that would hold it).
fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    let target = if dir.exists() {
        dir.to_path_buf()
    } else {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", parent.display()),
            ));
        }
        parent.to_path_buf()
    };
    let probe = target.join(format!(".wschat-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| std::io::Error::new(e.kind(), format!("not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every setting and its value, one per line, for `check-config`.
pub fn describe(config: &Config) -> String {
    FLAGS
        .iter()
        .map(|f| {
            let value = (f.show)(config);
            format!(
                "{:<20} {}\n",
                f.name,
                if value.is_empty() {
                    "none".into()
                } else {
                    value
                }
            )
        })
        .collect()
}

/// The `--help` text of `wschat serve`: every flag, its default and its
/// environment variable.
pub fn help() -> String {
    let defaults = Config::command_default();
    let mut out = String::from(
        "Usage: wschat [serve] [FLAGS]\n\nServe the chat, its pages and the /echo endpoint.\n\nFlags (each also read from its environment variable):\n",
    );
    let left = |flag: &Flag| match flag.value {
        Some(v) => format!("--{} {v}", flag.name),
        None => format!("--{}", flag.name),
    };
    // One column for every flag, as wide as the longest needs.
    let width = FLAGS
        .iter()
        .map(|f| left(f).len())
        .max()
        .unwrap_or(0)
        .max(28);
    for flag in FLAGS {
        let left = left(flag);
        let default = (flag.show)(&defaults);
        let default = if default.is_empty() {
            "none".to_string()
        } else {
            default
        };
        out.push_str(&format!(
            "  {left:<width$} {}\n  {:<width$} [default: {default}] [env: {}]\n",
            flag.help,
            "",
            flag.env_var()
        ));
    }
    out.push_str("\nSizes take K or M (64K); durations take ms, s or m (500ms, 10s, 2m).\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_from_takes_ranges_and_words() {
        let parse = |v: &str| {
            let args = [format!("--metrics-from={v}")];
            parse_args(&args, |_| None).map(|c| c.metrics_from)
        };
        assert_eq!(Config::default().metrics_from, IpRange::LOOPBACK.to_vec());
        assert_eq!(parse("any").unwrap(), IpRange::ANY.to_vec());
        assert!(parse("none").unwrap().is_empty());
        let mixed = parse("loopback, 10.0.0.0/8,2001:db8::/32").unwrap();
        assert_eq!(mixed.len(), 4);
        let allowed = |ip: &str| mixed.iter().any(|r| r.contains(ip.parse().unwrap()));
        assert!(allowed("127.0.0.1") && allowed("::1") && allowed("10.9.8.7"));
        assert!(allowed("2001:db8:1::5") && !allowed("2001:db9::1"));
        assert!(!allowed("192.168.1.1") && !allowed("11.0.0.1"));
        assert!(parse("10.0.0.0/40").is_err());
        assert!(parse("example.com").is_err());
    }

    #[test]
    fn env_then_args_with_precedence() {
        let env = |name: &str| match name {
            "WSCHAT_LISTEN" => Some("0.0.0.0:9".to_string()),
            "WSCHAT_IDLE_TIMEOUT" => Some("2m".to_string()),
            _ => None,
        };
        let args: Vec<String> = [
            "--listen=127.0.0.1:1",
            "--echo-everywhere",
            "--protocol",
            "chat",
        ]
        .map(String::from)
        .to_vec();
        let c = parse_args(&args, env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert!(c.echo_everywhere);
        assert_eq!(c.protocols, vec!["chat".to_string()]);
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse_args(&["--max-frame-size".into(), "lots".into()], |_| None).unwrap_err();
        assert!(err.contains("--max-frame-size"), "{err}");
        assert!(
            parse_args(&["--nope".into()], |_| None)
                .unwrap_err()
                .contains("unknown flag")
        );
        assert!(parse_args(&["--max-connections=0".into()], |_| None).is_err());
    }

    #[test]
    fn help_lists_every_flag_with_default_and_env() {
        let text = help();
        for flag in FLAGS {
            assert!(text.contains(&format!("--{}", flag.name)));
            assert!(text.contains(&flag.env_var()));
        }
        assert!(text.contains("[default: 127.0.0.1:3000]"));
    }
    #[test]
    fn webhooks_from_env_and_flags() {
        let env = |name: &str| match name {
            "WSCHAT_WEBHOOK" => Some("http://a.example/h, https://b.example/".to_string()),
            "WSCHAT_WEBHOOK_SECRET" => Some("s3cret".to_string()),
            _ => None,
        };
        let args = ["--webhook", "http://127.0.0.1:9/x", "--webhook-timeout=3s"].map(String::from);
        let c = parse_args(&args, env).unwrap();
        assert_eq!(
            c.webhooks,
            [
                "http://a.example/h",
                "https://b.example/",
                "http://127.0.0.1:9/x"
            ]
        );
        assert_eq!(c.webhook().secret, b"s3cret");
        assert_eq!(c.webhook().timeout, Duration::from_secs(3));
        assert!(check(&c).iter().all(|p| !p.contains("--webhook")));
        let err = parse_args(&["--webhook=ftp://x/".into()], |_| None).unwrap_err();
        assert!(err.contains("--webhook"), "{err}");
        let no_secret = parse_args(&["--webhook=http://x/".into()], |_| None).unwrap();
        assert!(
            check(&no_secret)
                .iter()
                .any(|p| p.contains("--webhook-secret"))
        );
    }

    #[test]
    fn webhook_handover_from_env_and_flag() {
        let defaults = parse_args(&[], |_| None).unwrap();
        assert_eq!(
            defaults.webhook().handover,
            crate::webhook::HANDOVER_CAPACITY
        );
        let env = |name: &str| (name == "WSCHAT_WEBHOOK_HANDOVER").then(|| "64".to_string());
        assert_eq!(parse_args(&[], env).unwrap().webhook().handover, 64);
        let c = parse_args(&["--webhook-handover=8".into()], env).unwrap();
        assert_eq!(c.webhook().handover, 8);
        assert!(parse_args(&["--webhook-handover=0".into()], |_| None).is_err());
        assert!(help().contains("WSCHAT_WEBHOOK_HANDOVER"));
    }

    #[test]
    fn redis_stream_trim_from_env_and_flags() {
        let defaults = parse_args(&[], |_| None).unwrap();
        assert_eq!(defaults.cluster.trim, crate::cluster::Trim::default());
        let env = |name: &str| (name == "WSCHAT_REDIS_STREAM_MAXLEN").then(|| "500".to_string());
        let c = parse_args(&["--redis-stream-max-age=7d".into()], env).unwrap();
        assert_eq!(c.cluster.trim.max_len, 500);
        assert_eq!(c.cluster.trim.max_age_ms, 7 * 86_400_000);
        let c = parse_args(&["--redis-stream-maxlen=0".into()], env).unwrap();
        assert_eq!(c.cluster.trim.max_len, 0, "0 keeps any number");
        assert!(parse_args(&["--redis-stream-maxlen=many".into()], |_| None).is_err());
        assert!(help().contains("WSCHAT_REDIS_STREAM_MAX_AGE"));
    }

    #[test]
    fn desk_across_nodes_timings_from_env_and_flags() {
        let defaults = parse_args(&[], |_| None).unwrap();
        assert_eq!(defaults.cluster.desk_lease, crate::cluster::desk::LEASE_TTL);
        assert_eq!(
            defaults.forward_connect_timeout,
            crate::server::forward::FORWARD_CONNECT_TIMEOUT
        );
        let env = |name: &str| (name == "WSCHAT_REDIS_DESK_LEASE").then(|| "10s".to_string());
        let c = parse_args(&["--forward-connect-timeout=500ms".into()], env).unwrap();
        assert_eq!(c.cluster.desk_lease, Duration::from_secs(10));
        assert_eq!(c.forward_connect_timeout, Duration::from_millis(500));
        let err = parse_args(&["--redis-desk-lease=600ms".into()], |_| None).unwrap_err();
        assert!(err.contains("two hub ticks"), "{err}");
        assert!(parse_args(&["--forward-connect-timeout=0".into()], |_| None).is_err());
    }
}
