//! The applications wschat serves out of the box, and [`Server::bind`],
//! which mounts them: the chat on `/` and `/chat`, the support desk on
//! `/support` and `/agent`, on the hub thread, sharing one store.
//!
//! This module sits above the server and the applications: the server
//! ([`Server::bind_with`]) runs any [`App`](crate::hub::App) and names
//! none of them.

use std::io;
use std::sync::{Arc, Mutex};

use crate::chat::Chat;
use crate::config::Config;
use crate::desk::Desk;
use crate::router::Router;
use crate::server::Server;
use crate::store::{SharedStore, Store};

impl Server {
    /// Bind the listening socket of `config.listen` and serve wschat's own
    /// applications ([`standard`]) with the settings of `config`.
    pub fn bind(config: Config) -> io::Result<Server> {
        Server::bind_with(config.server(), move || standard(&config))
    }
}

/// Open the store of `config` (logging what recovery found) and build the
/// chat and the support desk on it, routed by path.
pub fn standard(config: &Config) -> io::Result<Router> {
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
    let store: SharedStore = Arc::new(Mutex::new(store));
    let chat = Chat::new(config.chat(), store.clone());
    // The webhooks' sender thread: the hub hands it the desk's events.
    let webhooks = crate::webhook::Emitter::start(config.webhook())?;
    let desk = Desk::new(config.desk(), store.clone()).with_webhooks(webhooks);
    let mut router = Router::new(chat);
    router.mount_with_api(vec!["/support", "/agent"], "/api/desk/", Box::new(desk));
    Ok(router)
}
