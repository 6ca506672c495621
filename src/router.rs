//! The hub's application: routes each connection, by the name of the
//! mount it came through, to the chat or to another application (the
//! support desk), all on the one hub thread, recording through the one
//! store the hub owns. Paths are the server's: its routes give every
//! connection and API request its mount's name (`server::Builder::app`,
//! `server::Builder::api`), and the router never sees a path.

use std::collections::HashMap;

use crate::chat::Chat;
use crate::hub::api::{ApiRequest, ApiResponse};
use crate::hub::{App, ConnId, ConnInfo, Ctx};

/// An application the router can host beside the chat.
pub type BoxedApp = Box<dyn App + Send>;

/// Routes connections and API requests to the chat or to another app, by
/// the name of the mount they came through.
pub struct Router {
    chat: Chat,
    /// Other apps and the names of the mounts they serve.
    mounts: Vec<(Vec<&'static str>, BoxedApp)>,
    /// Which app each connection belongs to: `None` is the chat, `Some(i)`
    /// the i-th mount.
    routes: HashMap<ConnId, Option<usize>>,
}

impl Router {
    /// A router with the chat only: it serves every mount no other app
    /// was given (its WebSockets, and the API requests of no API mount).
    pub fn new(chat: Chat) -> Router {
        Router {
            chat,
            mounts: Vec::new(),
            routes: HashMap::new(),
        }
    }

    /// Serve the connections and API requests that came through the
    /// mounts named `names` with `app` (the first app given a name gets
    /// it).
    pub fn mount(&mut self, names: Vec<&'static str>, app: BoxedApp) {
        self.mounts.push((names, app));
    }

    /// The app that serves mount `name`: `None` is the chat.
    fn route(&self, name: Option<&str>) -> Option<usize> {
        let name = name?;
        self.mounts
            .iter()
            .position(|(names, _)| names.contains(&name))
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
        let route = self.route(Some(info.mount));
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

    fn figures(&self) -> Vec<std::sync::Arc<dyn crate::hub::metrics::Figures>> {
        let mut all = self.chat.figures();
        for (_, app) in &self.mounts {
            all.extend(app.figures());
        }
        all
    }

    /// A request of an API mount (`desk` for `/api/desk/…`) to the app
    /// that serves it; the rest to the chat.
    fn api(&mut self, ctx: &mut Ctx, request: &ApiRequest) -> ApiResponse {
        let route = self.route(request.mount);
        self.app(route).api(ctx, request)
    }

    /// Rooms are the root app's (the chat's): a message the store
    /// delivers goes to it alone.
    fn log_message(&mut self, ctx: &mut Ctx, room: &str, json: &std::sync::Arc<str>) {
        self.chat.log_message(ctx, room, json);
    }

    /// Events of rooms, and bans, are the chat's.
    fn log_event(&mut self, ctx: &mut Ctx, room: &str, json: &std::sync::Arc<str>) {
        self.chat.log_event(ctx, room, json);
    }

    fn log_ban(&mut self, ctx: &mut Ctx, key: &str, until: u64) {
        self.chat.log_ban(ctx, key, until);
    }

    /// Presence in rooms is the chat's.
    fn log_presence(&mut self, ctx: &mut Ctx, room: &str, user: u64, name: Option<&str>) {
        self.chat.log_presence(ctx, room, user, name);
    }

    /// Private messages are the chat's too.
    fn log_private(&mut self, ctx: &mut Ctx, from: &str, to: &str, json: &std::sync::Arc<str>) {
        self.chat.log_private(ctx, from, to, json);
    }

    fn stored(&mut self, ctx: &mut Ctx) {
        self.chat.stored(ctx);
        for (_, app) in &mut self.mounts {
            app.stored(ctx);
        }
    }

    fn refused(&mut self, ctx: &mut Ctx, ids: &[u64]) {
        self.chat.refused(ctx, ids);
        for (_, app) in &mut self.mounts {
            app.refused(ctx, ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::chat::ChatConfig;
    use crate::hub::metrics::Metrics;
    use crate::store::Store;

    /// An app that answers every API request with its name.
    struct Named(&'static str);

    impl App for Named {
        fn opened(&mut self, _: &mut Ctx, _: ConnId, _: ConnInfo) {}
        fn text(&mut self, _: &mut Ctx, _: ConnId, _: String) {}
        fn closed(&mut self, _: &mut Ctx, _: ConnId) {}
        fn api(&mut self, _: &mut Ctx, _: &ApiRequest) -> ApiResponse {
            ApiResponse::ok(self.0)
        }
    }

    #[test]
    fn api_requests_go_by_their_mount_name_not_their_path() {
        let mut store = Store::memory();
        let mut router = Router::new(Chat::new(ChatConfig::default(), &mut store));
        router.mount(vec!["one", "uno"], Box::new(Named("first")));
        router.mount(vec!["two", "one"], Box::new(Named("second")));
        let mut ctx = Ctx::with_log(Arc::new(Metrics::default()), Box::new(store));
        let mut answer = |path: &str, mount| {
            let request = ApiRequest {
                method: "GET".into(),
                path: path.into(),
                query: String::new(),
                body: Vec::new(),
                mount,
            };
            router.api(&mut ctx, &request).body
        };
        assert_eq!(answer("/api/rooms", Some("one")), "first");
        assert_eq!(answer("/api/rooms", Some("uno")), "first");
        assert_eq!(answer("/api/rooms", Some("two")), "second");
        // The chat gets no name, and every name no app was given; a path
        // alone sends nothing to another app.
        let chat = answer("/api/rooms", None);
        assert!(chat.starts_with(r#"{"rooms":"#), "{chat}");
        assert_eq!(answer("/api/rooms", Some("three")), chat);
        assert!(answer("/api/one/x", None).contains("not_found"));
    }
}
