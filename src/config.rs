//! The settings of `wschat serve`, gathered: one [`Config`] with a field
//! per flag, which fills in each layer's own settings ([`Config::server`],
//! [`Config::chat`], [`Config::desk`], [`Config::store`]; the codec's
//! [`Config::limits`]).
//!
//! Each layer owns its settings type and its defaults, as named constants
//! (`server::settings` and [`ServerConfig`](crate::server::ServerConfig),
//! `chat::ChatConfig`, `desk::DeskConfig`, `store::StoreConfig`,
//! `ws::Limits`); [`Config::default`] takes its values from them, so a
//! default is written in one place, its layer. The flags that set these
//! fields, their parsing, `--help` and `check-config` are the command's:
//! [`crate::cli::serve`] (which also says how to add a flag).
//!
//! This module uses the layers' settings and nothing uses it but the
//! wiring (`apps.rs`) and the command: no application reads it.

use std::time::Duration;

// The server's settings and defaults live with the server; they are
// re-exported here, beside the settings of the other layers.
pub use crate::server::settings::{
    CONNECTION_STACK_SIZE, DEFAULT_API_MAX_BODY, DEFAULT_API_RATE, DEFAULT_CLOSE_TIMEOUT_MS,
    DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_OUTBOX_BYTES, DEFAULT_MAX_OUTBOX_FRAMES,
    DEFAULT_PING_INTERVAL_MS, DEFAULT_RATE_BURST, DEFAULT_RATE_LIMIT, IpRange, MAPS_PER_CONNECTION,
};

/// Everything `wschat serve` can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Limit on the handshake request's header block (431 past it).
    pub max_header_bytes: usize,
    /// Largest frame payload accepted (close 1009 past it).
    pub max_frame_size: usize,
    /// Largest message accepted, fragments together (close 1009 past it).
    /// A compressed message counts inflated.
    pub max_message_size: usize,
    /// Negotiate permessage-deflate (RFC 7692) when a client offers it.
    pub deflate: bool,
    /// Messages shorter than this go uncompressed even with deflate on.
    pub deflate_min_size: usize,
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
    /// Longest chat or private text, in bytes.
    pub max_text_bytes: usize,
    /// Longest binary message relayed to a room, in bytes.
    pub max_binary_bytes: usize,
    /// Most chat rooms at once.
    pub max_rooms: usize,
    /// Most rooms one chat user is a member of at once.
    pub max_rooms_per_user: usize,
    /// Most messages one chat `search` reads.
    pub search_scan: usize,
    /// Origins allowed to open WebSockets (empty: any).
    pub allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (empty: none).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most connections open at once from one address (0: no limit).
    pub max_connections_per_ip: usize,
    /// The data directory of the store; `None` keeps history in memory.
    /// The library's default is `None` (tests and embedders start clean);
    /// the `wschat` command's default is [`crate::store::DEFAULT_DATA_DIR`].
    pub data_dir: Option<std::path::PathBuf>,
    /// When a message counts as stored.
    pub durability: crate::store::Durability,
    /// `redis://HOST:PORT[/DB]`: the room messages go through this Redis,
    /// shared with the other nodes of the cluster (docs/cluster.md);
    /// `None`: the embedded log alone.
    pub redis: Option<String>,
    /// With `redis`: the `host:port` the other nodes reach this one at
    /// (the desk's connections are forwarded to the node that runs it);
    /// `None`: `listen`.
    pub advertise: Option<String>,
    /// With `redis`: how long a node waits to connect to the node that
    /// runs the desk when it forwards a connection there.
    pub forward_connect_timeout: std::time::Duration,
    /// The limits of the Redis store (with `redis`).
    pub cluster: crate::cluster::log::Settings,
    /// Whole log segments older than this many days are deleted.
    pub retain_days: u32,
    /// Log segment size before a new one is started.
    pub segment_bytes: u64,
    /// Recent messages per room kept in memory for history and resume.
    pub history_keep: usize,
    /// How long a chat identity lives unused.
    pub session_ttl: Duration,
    /// Secrets that sign the tokens of a site's users (HS256); several
    /// while keys rotate.
    pub jwt_secrets: Vec<Vec<u8>>,
    /// Whether anonymous users may chat.
    pub auth: crate::chat::AuthMode,
    /// Bytes of users' input kept in memory at most (histories, private
    /// messages, the desk's transcripts, sessions); 0 for no ceiling.
    pub memory_budget: usize,
    /// Open conversations the support desk gives one agent at once.
    pub agent_capacity: usize,
    /// How long a disconnected agent keeps their conversations.
    pub agent_grace: Duration,
    /// Most support conversations waiting in the queue.
    pub desk_max_queue: usize,
    /// Resolved support conversations kept in memory.
    pub desk_keep_resolved: usize,
    /// Messages of one support conversation kept in memory.
    pub desk_keep_messages: usize,
    /// How long a waiting visitor may be offline before its conversation
    /// leaves the queue as abandoned; zero: never.
    pub desk_abandon_after: Duration,
    /// When the support team is there (`--desk-hours`); `None`: always.
    pub desk_hours: Option<crate::desk::hours::Hours>,
    /// Run connection threads under `SCHED_BATCH` (Linux): no wake-up
    /// preemption, fewer context switches per message.
    pub batch_threads: bool,
    /// Client addresses that may read `/metrics` (others get 403); with
    /// `--trust-proxy`, the address the proxy reports.
    pub metrics_from: Vec<IpRange>,
    /// Keys of the HTTP API (`Authorization: Bearer KEY`); none: the API
    /// refuses everyone.
    pub api_keys: Vec<String>,
    /// Client addresses that may use the HTTP API (others get 403).
    pub api_from: Vec<IpRange>,
    /// Largest API request body (413 past it).
    pub api_max_body: usize,
    /// API requests a second per key (0: no limit).
    pub api_rate: u32,
    /// Receivers of the desk's webhook events (`http://` or `https://`).
    pub webhooks: Vec<String>,
    /// The key the webhook events are signed with (HMAC-SHA256).
    pub webhook_secret: String,
    /// PEM certificates trusted for `https://` receivers besides the
    /// system's.
    pub webhook_ca: Option<std::path::PathBuf>,
    /// Most webhook events waiting for their receivers.
    pub webhook_max_pending: usize,
    /// Longest time of one webhook attempt, per step.
    pub webhook_timeout: Duration,
    /// Longest wait between two attempts at one webhook receiver.
    pub webhook_backoff_max: Duration,
    /// Webhook events the hub can hand over before the sender thread takes
    /// them.
    pub webhook_handover: usize,
}

impl Default for Config {
    /// The library's defaults: each layer's own ([`ServerConfig`]'s, which
    /// holds the codec's limits, `ChatConfig`'s, `DeskConfig`'s and
    /// `StoreConfig`'s, which keeps the store in memory).
    ///
    /// [`ServerConfig`]: crate::server::ServerConfig
    fn default() -> Config {
        let server = crate::server::ServerConfig::default();
        let chat = crate::chat::ChatConfig::default();
        let desk = crate::desk::DeskConfig::default();
        let store = crate::store::StoreConfig::default();
        Config {
            listen: server.listen,
            max_header_bytes: server.max_header_bytes,
            max_frame_size: server.max_frame_size,
            max_message_size: server.max_message_size,
            deflate: server.deflate,
            deflate_min_size: server.deflate_min_size,
            handshake_timeout: server.handshake_timeout,
            close_timeout: server.close_timeout,
            max_connections: server.max_connections,
            ping_interval: server.ping_interval,
            idle_timeout: server.idle_timeout,
            protocols: server.protocols,
            echo_everywhere: server.echo_everywhere,
            rate_limit: server.rate_limit,
            rate_burst: server.rate_burst,
            max_outbox_bytes: server.max_outbox_bytes,
            max_outbox_frames: server.max_outbox_frames,
            max_text_bytes: chat.max_text_bytes,
            max_binary_bytes: chat.max_binary_bytes,
            max_rooms: chat.max_rooms,
            max_rooms_per_user: chat.max_rooms_per_user,
            search_scan: chat.search_scan,
            allowed_origins: server.allowed_origins,
            trusted_proxies: server.trusted_proxies,
            max_connections_per_ip: server.max_connections_per_ip,
            data_dir: store.dir,
            // What a store on disk does by default (in memory: nothing).
            durability: store.durability,
            redis: None,
            advertise: None,
            forward_connect_timeout: crate::server::forward::FORWARD_CONNECT_TIMEOUT,
            cluster: crate::cluster::log::Settings::default(),
            retain_days: store.retain_days,
            segment_bytes: store.segment_bytes,
            history_keep: store.keep_per_room,
            memory_budget: store.memory_budget,
            session_ttl: chat.session_ttl,
            jwt_secrets: chat.jwt_secrets,
            auth: chat.auth,
            agent_capacity: desk.capacity,
            agent_grace: desk.grace,
            desk_max_queue: desk.max_queue,
            desk_keep_resolved: desk.keep_resolved,
            desk_keep_messages: desk.keep_messages,
            desk_abandon_after: desk.abandon_after,
            desk_hours: desk.hours,
            batch_threads: server.batch_threads,
            metrics_from: server.metrics_from,
            api_keys: server.api_keys,
            api_from: server.api_from,
            api_max_body: server.api_max_body,
            api_rate: server.api_rate,
            webhooks: Vec::new(),
            webhook_secret: String::new(),
            webhook_ca: None,
            webhook_max_pending: crate::webhook::DEFAULT_MAX_PENDING,
            webhook_timeout: Duration::from_millis(crate::webhook::DEFAULT_TIMEOUT_MS),
            webhook_backoff_max: Duration::from_millis(crate::webhook::DEFAULT_BACKOFF_MAX_MS),
            webhook_handover: crate::webhook::HANDOVER_CAPACITY,
        }
    }
}

impl Config {
    /// The frame and message limits for the codec.
    pub fn limits(&self) -> crate::ws::Limits {
        crate::ws::Limits {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
        }
    }

    /// The defaults of the `wschat` command: the library's, with the store
    /// in `./wschat-data`.
    pub fn command_default() -> Config {
        Config {
            data_dir: Some(crate::store::DEFAULT_DATA_DIR.into()),
            ..Config::default()
        }
    }

    /// The server's settings.
    pub fn server(&self) -> crate::server::ServerConfig {
        crate::server::ServerConfig {
            listen: self.listen.clone(),
            deflate: self.deflate,
            deflate_min_size: self.deflate_min_size,
            max_header_bytes: self.max_header_bytes,
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            handshake_timeout: self.handshake_timeout,
            close_timeout: self.close_timeout,
            max_connections: self.max_connections,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            protocols: self.protocols.clone(),
            echo_everywhere: self.echo_everywhere,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            max_outbox_bytes: self.max_outbox_bytes,
            max_outbox_frames: self.max_outbox_frames,
            allowed_origins: self.allowed_origins.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            max_connections_per_ip: self.max_connections_per_ip,
            batch_threads: self.batch_threads,
            metrics_from: self.metrics_from.clone(),
            api_keys: self.api_keys.clone(),
            api_from: self.api_from.clone(),
            api_max_body: self.api_max_body,
            api_rate: self.api_rate,
        }
    }

    /// How to open the store.
    pub fn store(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            dir: self.data_dir.clone(),
            durability: if self.data_dir.is_some() {
                self.durability
            } else {
                crate::store::Durability::None
            },
            segment_bytes: self.segment_bytes,
            retain_days: self.retain_days,
            keep_per_room: self.history_keep,
            memory_budget: self.memory_budget,
        }
    }

    /// The support desk's settings.
    pub fn desk(&self) -> crate::desk::DeskConfig {
        crate::desk::DeskConfig {
            capacity: self.agent_capacity,
            grace: self.agent_grace,
            max_text_bytes: self.max_text_bytes,
            data_dir: self.data_dir.clone(),
            max_queue: self.desk_max_queue,
            keep_resolved: self.desk_keep_resolved,
            keep_messages: self.desk_keep_messages,
            abandon_after: self.desk_abandon_after,
            hours: self.desk_hours.clone(),
            jwt_secrets: self.jwt_secrets.clone(),
            auth: self.auth,
        }
    }

    /// The webhooks' settings (their pending file lives in the data
    /// directory).
    pub fn webhook(&self) -> crate::webhook::WebhookConfig {
        crate::webhook::WebhookConfig {
            urls: self.webhooks.clone(),
            secret: self.webhook_secret.as_bytes().to_vec(),
            ca_file: self.webhook_ca.clone(),
            data_dir: self.data_dir.clone(),
            max_pending: self.webhook_max_pending,
            timeout: self.webhook_timeout,
            backoff_max: self.webhook_backoff_max,
            handover: self.webhook_handover,
        }
    }

    /// The chat's limits.
    pub fn chat(&self) -> crate::chat::ChatConfig {
        crate::chat::ChatConfig {
            max_text_bytes: self.max_text_bytes,
            max_binary_bytes: self.max_binary_bytes,
            max_rooms: self.max_rooms,
            max_rooms_per_user: self.max_rooms_per_user,
            search_scan: self.search_scan,
            session_ttl: self.session_ttl,
            jwt_secrets: self.jwt_secrets.clone(),
            auth: self.auth,
        }
    }
}
