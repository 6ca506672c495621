//! The server's routes: the one place where a request's path decides what
//! serves it. An application is mounted on paths with [`Builder::ws`]
//! (`server::Builder`), each mount with its own [`Behavior`] (message
//! limits, rate limit, keepalive), as uWebSockets' `App.ws(pattern,
//! behavior)` does; pages and scripts with [`Builder::resource`]. Nothing
//! else in `src/server/` compares a path: `/healthz`, `/metrics` and the
//! HTTP API's prefix are the server's own routes, kept here too.
//!
//! Nor does anything above the server: the hub's application learns, for
//! each connection, the *name* of the mount it came through
//! ([`Service::Hub`], given by [`Builder::app`]), and for each API request
//! the name of the API mount its path falls under ([`Builder::api`]), and
//! dispatches by that name.
//!
//! [`Builder::ws`]: super::Builder::ws
//! [`Builder::app`]: super::Builder::app
//! [`Builder::api`]: super::Builder::api
//! [`Builder::resource`]: super::Builder::resource

use std::time::Duration;

use super::ServerConfig;
use super::driver::Timeouts;
use crate::ws::Limits;

/// What a WebSocket mount allows its connections, per mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behavior {
    /// Largest frame payload accepted (close 1009 past it).
    pub max_frame_size: usize,
    /// Largest message accepted, fragments together (close 1009 past it).
    pub max_message_size: usize,
    /// Messages a second one connection may send (0: no limit).
    pub rate_limit: u32,
    /// Messages one connection may send at once.
    pub rate_burst: u32,
    /// Silence after which the server pings.
    pub ping_interval: Duration,
    /// Silence after which the server closes with 1001.
    pub idle_timeout: Duration,
    /// Whether permessage-deflate (RFC 7692) may be negotiated.
    pub deflate: bool,
}

impl Behavior {
    /// The limits for the codec.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
        }
    }

    /// The driver's clock, with the server's close timeout.
    pub fn timeouts(&self, close_timeout: Duration) -> Timeouts {
        Timeouts {
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            close_timeout,
        }
    }
}

impl Default for Behavior {
    /// What the server's default settings allow.
    fn default() -> Behavior {
        ServerConfig::default().behavior()
    }
}

/// What serves the WebSocket connections of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The hub's application ([`crate::hub::App`]), which gets each
    /// connection with this name of the mount
    /// ([`ConnInfo::mount`](crate::hub::ConnInfo::mount)).
    Hub(&'static str),
    /// Every message back, on the connection's own thread.
    Echo,
    /// Every frame answered with its dissection, on the connection's own
    /// thread.
    Inspect,
}

/// A WebSocket mount: what serves it, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    /// What serves its connections.
    pub service: Service,
    /// What they may do.
    pub behavior: Behavior,
}

/// A plain HTTP resource (answers GET and HEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// An HTML page, sent with a fresh nonce for its script and style.
    /// `framed_by_allowed`: other sites may frame it (any site, or with
    /// `--allowed-origin` the listed ones); otherwise only the server's
    /// own pages may.
    Page {
        /// The page.
        html: &'static str,
        /// Whether sites other than this one may frame it.
        framed_by_allowed: bool,
    },
    /// A script other sites embed: with `--allowed-origin`, only the
    /// listed sites may load it.
    EmbedScript(&'static str),
    /// `ok`, or 503 while the store fails.
    Health,
    /// The Prometheus counters, for `--metrics-from` addresses.
    Metrics,
}

/// Where each path goes: the server's routing table, built by
/// [`super::Builder`].
#[derive(Debug, Clone)]
pub struct Routes {
    sockets: Vec<(&'static str, Mount)>,
    resources: Vec<(&'static str, Resource)>,
    /// Parts of the HTTP API (path prefixes under `/api/`) and the names
    /// of the mounts that serve them.
    apis: Vec<(&'static str, &'static str)>,
    /// Serve this on every path (`--echo-everywhere`).
    everywhere: Option<Mount>,
    /// Named in the 404 for an upgrade on a path nothing is mounted on.
    hint: Option<String>,
    /// Paths served by another server while it says so.
    forward: Option<super::forward::Forward>,
}

impl Default for Routes {
    /// The server's own routes: `/healthz` and `/metrics`.
    fn default() -> Routes {
        Routes {
            sockets: Vec::new(),
            resources: vec![
                ("/healthz", Resource::Health),
                ("/metrics", Resource::Metrics),
            ],
            apis: Vec::new(),
            everywhere: None,
            hint: None,
            forward: None,
        }
    }
}

impl Routes {
    /// Serve WebSockets on `path` with `mount` (a later mount of the same
    /// path replaces the earlier).
    pub fn mount(&mut self, path: &'static str, mount: Mount) {
        self.sockets.retain(|(p, _)| *p != path);
        self.sockets.push((path, mount));
    }

    /// Serve `resource` on `path`.
    pub fn resource(&mut self, path: &'static str, resource: Resource) {
        self.resources.retain(|(p, _)| *p != path);
        self.resources.push((path, resource));
    }

    /// Give the API requests whose path is `prefix` (`/api/desk/`: a
    /// prefix under [`API_PREFIX`](crate::hub::api::API_PREFIX), ending in
    /// `/`) or lies under it the mount name `mount` (a later mount of the
    /// same prefix replaces the earlier).
    pub fn api(&mut self, prefix: &'static str, mount: &'static str) {
        self.apis.retain(|(p, _)| *p != prefix);
        self.apis.push((prefix, mount));
    }

    /// Serve every upgrade with `mount`, whatever its path.
    pub fn everywhere(&mut self, mount: Mount) {
        self.everywhere = Some(mount);
    }

    /// What the 404 for an unknown WebSocket path suggests instead.
    pub fn hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }

    /// Hand what `forward` covers to the server it names.
    pub fn forward(&mut self, forward: super::forward::Forward) {
        self.forward = Some(forward);
    }

    /// The server a request for `path` goes to, if another.
    pub fn forwarded(&self, path: &str) -> Option<String> {
        self.forward.as_ref()?.target_for(path)
    }

    /// How long a forwarded connection waits to reach its target.
    pub fn forward_connect_timeout(&self) -> std::time::Duration {
        self.forward.as_ref().map_or(
            super::forward::FORWARD_CONNECT_TIMEOUT,
            super::forward::Forward::connect_timeout,
        )
    }

    /// The mount that serves an upgrade on `path`, if any.
    pub fn socket(&self, path: &str) -> Option<Mount> {
        self.everywhere.or_else(|| {
            self.sockets
                .iter()
                .find(|(p, _)| *p == path)
                .map(|&(_, mount)| mount)
        })
    }

    /// The path of the socket mounted at `path` as the routes hold it
    /// (with no allocation), if one is mounted there by name.
    pub fn socket_path(&self, path: &str) -> Option<&'static str> {
        self.sockets
            .iter()
            .find(|(p, _)| *p == path)
            .map(|&(p, _)| p)
    }

    /// Why an upgrade on `path` is refused when nothing is mounted there.
    pub fn no_socket(&self, path: &str) -> String {
        match &self.hint {
            Some(hint) => format!("no WebSocket endpoint at {path}; {hint}"),
            None => format!("no WebSocket endpoint at {path}"),
        }
    }

    /// The resource a plain GET of `path` gets, if any.
    pub fn page(&self, path: &str) -> Option<Resource> {
        self.resources
            .iter()
            .find(|(p, _)| *p == path)
            .map(|&(_, resource)| resource)
    }

    /// Whether `path` belongs to the HTTP API (docs/api.md): `/api` and
    /// everything under [`API_PREFIX`](crate::hub::api::API_PREFIX).
    pub fn is_api(&self, path: &str) -> bool {
        let prefix = crate::hub::api::API_PREFIX;
        path.starts_with(prefix) || path == prefix.trim_end_matches('/')
    }

    /// The name of the API mount that serves `path` (the longest prefix
    /// given to [`Routes::api`] that `path` is or lies under; `/api/desk`
    /// counts as `/api/desk/`), if any.
    pub fn api_mount(&self, path: &str) -> Option<&'static str> {
        self.apis
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix) || path == prefix.trim_end_matches('/'))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|&(_, mount)| mount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_where_they_are_mounted() {
        let mut routes = Routes::default();
        let echo = Mount {
            service: Service::Echo,
            behavior: Behavior::default(),
        };
        routes.mount("/echo", echo);
        routes.hint("try /echo");
        assert_eq!(routes.socket("/echo"), Some(echo));
        assert_eq!(routes.socket("/echo/"), None);
        assert_eq!(
            routes.no_socket("/x"),
            "no WebSocket endpoint at /x; try /echo"
        );
        assert_eq!(routes.page("/healthz"), Some(Resource::Health));
        assert!(routes.is_api("/api") && routes.is_api("/api/rooms") && !routes.is_api("/apix"));
        routes.everywhere(echo);
        assert_eq!(routes.socket("/anything"), Some(echo));
    }

    #[test]
    fn hub_mounts_and_api_parts_are_named() {
        let mut routes = Routes::default();
        let agent = Mount {
            service: Service::Hub("agent"),
            behavior: Behavior::default(),
        };
        routes.mount("/agent", agent);
        assert_eq!(routes.socket("/agent"), Some(agent));
        assert_eq!(routes.socket("/agent/"), None);
        routes.api("/api/desk/", "desk");
        routes.api("/api/desk/agents/", "agents");
        assert_eq!(routes.api_mount("/api/desk/queue"), Some("desk"));
        assert_eq!(routes.api_mount("/api/desk/"), Some("desk"));
        assert_eq!(routes.api_mount("/api/desk"), Some("desk"));
        assert_eq!(routes.api_mount("/api/desk/agents/x"), Some("agents"));
        assert_eq!(routes.api_mount("/api/deskx"), None);
        assert_eq!(routes.api_mount("/api/des"), None);
        assert_eq!(routes.api_mount("/api/rooms"), None);
    }
}
