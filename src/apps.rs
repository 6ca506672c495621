//! The applications wschat serves out of the box, and [`Server::bind`],
//! which mounts them: the chat on `/` and `/chat`, the support desk on
//! `/support` and `/agent` (both on the hub thread, over one store that the hub owns),
//! `/echo` and `/inspect` (on the connection's own thread), each with its
//! page.
//!
//! This module sits above the server and the applications: the server
//! ([`Server::builder`]) runs whatever is mounted on it and names none of
//! them. Every path wschat serves is named here, or in the server's own
//! routes (`/healthz`, `/metrics`, `/api/`: `src/server/routes.rs`). Each
//! mount of the hub's application gets a name ([`CHAT_MOUNT`], the desk's
//! [`VISITOR_MOUNT`](crate::desk::VISITOR_MOUNT),
//! [`AGENT_MOUNT`](crate::desk::AGENT_MOUNT) and
//! [`API_MOUNT`](crate::desk::API_MOUNT)), and the [`Router`] hands each
//! connection and API request to the chat or the desk by that name.

use std::io;

use crate::chat::Chat;
use crate::config::Config;
use crate::desk::Desk;
use crate::hub::log::Log;
use crate::router::Router;
use crate::server::{Builder, Resource, Server, Service, inspect};
use crate::store::Store;

/// The chat's paths: its WebSocket and its page.
pub const CHAT_PATHS: [&str; 2] = ["/", "/chat"];

/// The support desk's paths: the visitor's widget and the agent's console.
pub const DESK_PATHS: [&str; 2] = ["/support", "/agent"];

/// The desk's part of the HTTP API (docs/api.md).
pub const DESK_API_PREFIX: &str = "/api/desk/";

/// The name of the chat's mounts ([`CHAT_PATHS`]). The chat is the
/// router's root (it serves what no other app was given), so the router
/// does not look this name up; the server needs one for every mount.
pub const CHAT_MOUNT: &str = "chat";

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
        let mut builder = mount(Server::builder(config.server()));
        // A node of a cluster forwards the desk's connections to the node
        // that runs the desk (docs/cluster.md, "The desk").
        let forward = config.redis.as_ref().map(|_| {
            let paths: Vec<&'static str> = DESK_PATHS.to_vec();
            crate::server::forward::Forward::new(&paths, &[DESK_API_PREFIX])
                .with_connect_timeout(config.forward_connect_timeout)
        });
        if let Some(forward) = &forward {
            builder = builder.forward(forward.clone());
        }
        builder.bind_with_log(move || standard(&config, forward))
    }
}

/// Mount wschat's own applications and pages on `builder`, each endpoint
/// of the hub's application under its mount's name, with the behavior
/// the builder's settings give: the chat on [`CHAT_PATHS`], the desk on
/// [`DESK_PATHS`] and [`DESK_API_PREFIX`], `/echo`, `/inspect` (with its
/// own behavior) and the pages. [`Server::bind`] binds the result.
pub fn mount(builder: Builder) -> Builder {
    let behavior = builder.behavior();
    let page = |html| Resource::Page {
        html,
        framed_by_allowed: false,
    };
    let [support, agent] = DESK_PATHS;
    let mut builder = builder
        .ws("/echo", Service::Echo, behavior)
        .ws("/inspect", Service::Inspect, inspect::behavior(behavior))
        .resource("/inspect", page(INSPECT_PAGE))
        .app(support, crate::desk::VISITOR_MOUNT, behavior)
        .resource(
            support,
            Resource::Page {
                html: SUPPORT_PAGE,
                framed_by_allowed: true,
            },
        )
        .app(agent, crate::desk::AGENT_MOUNT, behavior)
        .resource(agent, page(AGENT_PAGE))
        .api(DESK_API_PREFIX, crate::desk::API_MOUNT)
        .resource("/widget.js", Resource::EmbedScript(WIDGET_JS))
        .hint("try / (chat) or /echo");
    for path in CHAT_PATHS {
        builder = builder
            .app(path, CHAT_MOUNT, behavior)
            .resource(path, page(CHAT_PAGE));
    }
    builder
}

/// The store of one node, or of a node of the cluster.
// One value, on the stack once while the apps are built: its size does
// not matter.
#[allow(clippy::large_enum_variant)]
enum Node {
    One(Store),
    Cluster(crate::cluster::log::RedisLog),
}

/// Open the store of `config` (logging what recovery found), build the
/// chat and the support desk on it (each rebuilds its own state from the
/// log), routed by the name of the mount, and give both: the hub owns the
/// store. With `config.redis`, room and private messages go through
/// Redis, the node's desk runs while the node holds the desk, and
/// `forward` (the server's, for the desk's paths) is told where it runs
/// otherwise.
pub fn standard(
    config: &Config,
    forward: Option<crate::server::forward::Forward>,
) -> io::Result<(Router, Box<dyn Log>)> {
    let store = Store::open(&config.store())?;
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
    // A node of the cluster: room and private messages through Redis. The
    // store is the chat's and the desk's from the start (the chat reads
    // the cluster's bans from it).
    let budget = store.budget();
    let mut node = match &config.redis {
        Some(url) => Node::Cluster(crate::cluster::log::RedisLog::start(
            store,
            url,
            config.cluster,
        )?),
        None => Node::One(store),
    };
    let log: &mut dyn Log = match &mut node {
        Node::Cluster(redis) => redis,
        Node::One(store) => store,
    };
    let chat = Chat::new(config.chat(), log);
    // The webhooks' sender thread: the hub hands it the desk's events
    // once their turn is stored.
    let webhooks = crate::webhook::Emitter::start(config.webhook())?;
    let desk = Desk::new(config.desk(), log).with_webhooks(webhooks);
    let mut router = Router::new(chat);
    let desk_mounts = vec![
        crate::desk::VISITOR_MOUNT,
        crate::desk::AGENT_MOUNT,
        crate::desk::API_MOUNT,
    ];
    let log: Box<dyn Log> = match node {
        // A node of the cluster: the desk on the node that holds it.
        Node::Cluster(redis) => {
            let me = format!(
                "{:016x} {}",
                crate::random::random_u64(),
                config.advertise.as_deref().unwrap_or(&config.listen)
            );
            let forward = forward.unwrap_or_else(|| crate::server::forward::Forward::new(&[], &[]));
            let desk = crate::desk::cluster::ClusterDesk::new(desk, config.desk(), budget);
            router.mount(desk_mounts, Box::new(desk));
            Box::new(redis.with_desk(me, forward))
        }
        Node::One(store) => {
            router.mount(desk_mounts, Box::new(desk));
            Box::new(store)
        }
    };
    Ok((router, log))
}
