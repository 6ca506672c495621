//! The applications wschat serves out of the box, and [`Server::bind`],
//! which mounts them: the chat on `/` and `/chat`, the support desk on
//! `/support` and `/agent`, on the hub thread, over one store that the hub
//! owns.
//!
//! This module sits above the server and the applications: the server
//! ([`Server::bind_with`]) runs any [`App`](crate::hub::App) and names
//! none of them.

use std::io;

use crate::chat::Chat;
use crate::config::Config;
use crate::desk::Desk;
use crate::hub::log::Log;
use crate::router::Router;
use crate::server::Server;
use crate::store::Store;

impl Server {
    /// Bind the listening socket of `config.listen` and serve wschat's own
    /// applications ([`standard`]) with the settings of `config`.
    pub fn bind(config: Config) -> io::Result<Server> {
        Server::bind_with_log(config.server(), move || standard(&config))
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
    // The webhooks' sender thread: the hub hands it the desk's events
    // once their turn is stored.
    let webhooks = crate::webhook::Emitter::start(config.webhook())?;
    let desk = Desk::new(config.desk(), &mut store).with_webhooks(webhooks);
    let mut router = Router::new(chat);
    router.mount_with_api(vec!["/support", "/agent"], "/api/desk/", Box::new(desk));
    Ok((router, Box::new(store)))
}
