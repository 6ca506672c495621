//! The applications wschat serves out of the box, and [`Server::bind`],
//! which mounts them: the chat on `/` and `/chat`, the support desk on
//! `/support` and `/agent` (both on the hub thread, over one store that the hub owns),
//! `/echo` and `/inspect` (on the connection's own thread), each with its
//! page.
//!
//! This module sits above the server and the applications: the server
//! ([`Server::builder`]) runs whatever is mounted on it and names none of
//! them. Every path wschat serves is named here, or in the server's own
//! routes (`/healthz`, `/metrics`, `/api/`: `src/server/routes.rs`).

use std::io;

use crate::chat::Chat;
use crate::config::Config;
use crate::desk::Desk;
use crate::hub::log::Log;
use crate::router::Router;
use crate::server::{Resource, Server, Service, inspect};
use crate::store::Store;

/// The chat's paths: its WebSocket and its page.
pub const CHAT_PATHS: [&str; 2] = ["/", "/chat"];

/// The support desk's paths: the visitor's widget and the agent's console.
pub const DESK_PATHS: [&str; 2] = ["/support", "/agent"];

/// The desk's part of the HTTP API (docs/api.md).
pub const DESK_API_PREFIX: &str = "/api/desk/";

/// The chat page, embedded in the binary (plain HTML, CSS and JS).
const CHAT_PAGE: &str = include_str!("web/chat.html");

/// The support desk's visitor widget (embeddable in an iframe).
const SUPPORT_PAGE: &str = include_str!("web/support.html");

/// The support desk's agent console.
const AGENT_PAGE: &str = include_str!("web/agent.html");

/// The one-line embed: a chat bubble that opens the visitor widget.
const WIDGET_JS: &str = include_str!("web/widget.js");

/// The frame inspector's page.
const INSPECT_PAGE: &str = include_str!("web/inspect.html");

impl Server {
    /// Bind the listening socket of `config.listen` and serve wschat's own
    /// applications ([`standard`]) with the settings of `config`: the chat
    /// and the desk on the hub, `/echo` and `/inspect`, and their pages.
    pub fn bind(config: Config) -> io::Result<Server> {
        let builder = Server::builder(config.server());
        let behavior = builder.behavior();
        let page = |html| Resource::Page {
            html,
            framed_by_allowed: false,
        };
        let mut builder = builder
            .ws("/echo", Service::Echo, behavior)
            .ws("/inspect", Service::Inspect, inspect::behavior(behavior))
            .resource("/inspect", page(INSPECT_PAGE))
            .resource(
                DESK_PATHS[0],
                Resource::Page {
                    html: SUPPORT_PAGE,
                    framed_by_allowed: true,
                },
            )
            .resource(DESK_PATHS[1], page(AGENT_PAGE))
            .resource("/widget.js", Resource::EmbedScript(WIDGET_JS))
            .hint("try / (chat) or /echo");
        for path in CHAT_PATHS {
            builder = builder.app(path, behavior).resource(path, page(CHAT_PAGE));
        }
        for path in DESK_PATHS {
            builder = builder.app(path, behavior);
        }
        builder.bind_with_log(move || standard(&config))
    }
}

/// Open the store of `config` (logging what recovery found), build the
/// chat and the support desk on it (each rebuilds its own state from the
/// log), routed by path, and give both: the hub owns the store.
pub fn standard(config: &Config) -> io::Result<(Router, Box<dyn Log>)> {
    let mut store = Store::open(&config.store())?;
    let recovery = store.recovery();
    if store.is_durable() {
        // The target this line had when the server opened the store.
        log::info!(
            target: "wschat::server",
            "store: {} records from {} segments in {}{}{}",
            recovery.records,
            recovery.segments,
            config
                .data_dir
                .as_deref()
                .map_or("?".into(), |d| d.display().to_string()),
            if recovery.torn_bytes > 0 {
                format!(", cut a torn last line of {} bytes", recovery.torn_bytes)
            } else {
                String::new()
            },
            if recovery.corrupt > 0 {
                format!(", skipped {} corrupt records", recovery.corrupt)
            } else {
                String::new()
            },
        );
    }
    let chat = Chat::new(config.chat(), &mut store);
    let desk = Desk::new(config.desk(), &mut store);
    let mut router = Router::new(chat);
    router.mount_with_api(DESK_PATHS.to_vec(), DESK_API_PREFIX, Box::new(desk));
    let log: Box<dyn Log> = match &config.redis {
        // A node of the cluster: room messages through Redis.
        Some(url) => Box::new(crate::cluster::log::RedisLog::start(store, url)?),
        None => Box::new(store),
    };
    Ok((router, log))
}
