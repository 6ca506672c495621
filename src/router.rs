//! The hub's application: routes each connection, by the path it opened,
//! to the chat or to another application (the support desk), all on the
//! one hub thread, recording through the one store the hub owns.

use std::collections::HashMap;

use crate::chat::Chat;
use crate::hub::api::{ApiRequest, ApiResponse};
use crate::hub::{App, ConnId, ConnInfo, Ctx};

/// An application the router can host beside the chat.
pub type BoxedApp = Box<dyn App + Send>;

/// Routes connections to the chat or to an app mounted on a path.
pub struct Router {
    chat: Chat,
    /// Other apps and the paths they serve.
    mounts: Vec<(Vec<&'static str>, BoxedApp)>,
    /// Which app each connection belongs to: `None` is the chat, `Some(i)`
    /// the i-th mount.
    routes: HashMap<ConnId, Option<usize>>,
    /// API path prefixes (`/api/desk/`) served by a mount, by its index;
    /// the rest of `/api/` is the chat's.
    api_prefixes: Vec<(&'static str, usize)>,
}

impl Router {
    /// A router with the chat only.
    pub fn new(chat: Chat) -> Router {
        Router {
            chat,
            mounts: Vec::new(),
            routes: HashMap::new(),
            api_prefixes: Vec::new(),
        }
    }

    /// Serve `paths` with `app`.
    pub fn mount(&mut self, paths: Vec<&'static str>, app: BoxedApp) {
        self.mounts.push((paths, app));
    }

    /// Serve `paths` with `app`, and the API requests whose path starts
    /// with `api_prefix` (`/api/desk/`) too.
    pub fn mount_with_api(
        &mut self,
        paths: Vec<&'static str>,
        api_prefix: &'static str,
        app: BoxedApp,
    ) {
        self.api_prefixes.push((api_prefix, self.mounts.len()));
        self.mount(paths, app);
    }

    fn app(&mut self, route: Option<usize>) -> &mut dyn App {
        match route.and_then(|i| self.mounts.get_mut(i)) {
            Some((_, app)) => app.as_mut(),
            None => &mut self.chat,
        }
    }
}

impl App for Router {
    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo) {
        let route = self
            .mounts
            .iter()
            .position(|(paths, _)| paths.contains(&info.path.as_str()));
        self.routes.insert(conn, route);
        self.app(route).opened(ctx, conn, info);
    }

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        let route = self.routes.get(&conn).copied().flatten();
        self.app(route).text(ctx, conn, text);
    }

    fn binary(&mut self, ctx: &mut Ctx, conn: ConnId, data: Vec<u8>) {
        let route = self.routes.get(&conn).copied().flatten();
        self.app(route).binary(ctx, conn, data);
    }

    fn closed(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let route = self.routes.remove(&conn).flatten();
        self.app(route).closed(ctx, conn);
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        self.chat.tick(ctx);
        for (_, app) in &mut self.mounts {
            app.tick(ctx);
        }
    }

    fn turn_end(&mut self, ctx: &mut Ctx) {
        self.chat.turn_end(ctx);
        for (_, app) in &mut self.mounts {
            app.turn_end(ctx);
        }
    }

    fn shutdown(&mut self, ctx: &mut Ctx) {
        self.chat.shutdown(ctx);
        for (_, app) in &mut self.mounts {
            app.shutdown(ctx);
        }
    }

    /// `/api/desk/…` (or another mount's prefix) to that mount; the rest
    /// to the chat.
    fn api(&mut self, ctx: &mut Ctx, request: &ApiRequest) -> ApiResponse {
        let route = self
            .api_prefixes
            .iter()
            .find(|(prefix, _)| {
                request.path.starts_with(prefix)
                    || request.path.len() + 1 == prefix.len() && prefix.starts_with(&request.path)
            })
            .map(|&(_, i)| i);
        self.app(route).api(ctx, request)
    }

    /// Rooms are the root app's (the chat's): a message the store
    /// delivers goes to it alone.
    fn log_message(&mut self, ctx: &mut Ctx, room: &str, json: &std::sync::Arc<str>) {
        self.chat.log_message(ctx, room, json);
    }

    fn refused(&mut self, ctx: &mut Ctx, ids: &[u64]) {
        self.chat.refused(ctx, ids);
        for (_, app) in &mut self.mounts {
            app.refused(ctx, ids);
        }
    }
}
