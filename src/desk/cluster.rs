//! The desk of a node of a cluster (`wschat serve --redis`): one desk for
//! every node, run by the node that holds the desk's lease in Redis
//! (docs/cluster.md, "The desk").
//!
//! [`ClusterDesk`] wraps the [`Desk`] and asks the store where the desk
//! runs ([`Log::desk_role`](crate::hub::log::Log::desk_role)) at every
//! event:
//!
//! * here ([`DeskRole::Here`]): the desk serves, as on a node alone. The
//!   first time with a new number, it is rebuilt from the records the
//!   store read from Redis ([`Log::take_desk_records`](crate::hub::log::Log::take_desk_records)):
//!   what the node that ran it before had stored, its conversations, queue,
//!   visitors' sessions and assignments (an assigned agent's grace period
//!   starts then, as after a restart);
//! * elsewhere, or still reading the records: the connections the desk
//!   gets are closed with 1013 (try again later); the server forwards new
//!   ones to the node that runs it ([`crate::server::forward`]). A node
//!   that lets the desk go closes the connections it served with 1012
//!   (service restart): their clients come back, through any node, to the
//!   node that runs it now.
//!
//! Without `--redis`, the desk is mounted as it is, without this.

use std::sync::Arc;

use super::{Desk, DeskConfig};
use crate::hub::log::DeskRole;
use crate::hub::{App, ConnId, ConnInfo, Ctx};
use crate::memory::Budget;
use crate::ws::CloseCode;

/// Close code for a desk connection to a node that does not run the desk
/// (RFC 6455 §7.4.1 registry: 1013, try again later).
pub const NOT_HERE: CloseCode = CloseCode(1013);
/// Close code for the desk's connections when their node lets the desk go
/// (1012, service restart): their clients reconnect.
pub const MOVED: CloseCode = CloseCode(1012);

/// The desk of a node of a cluster: see the module's text.
#[derive(Debug)]
pub struct ClusterDesk {
    desk: Desk,
    config: DeskConfig,
    budget: Arc<Budget>,
    /// The number of [`DeskRole::Here`] the desk was rebuilt for; `None`:
    /// it does not serve here.
    serving: Option<u64>,
}

impl ClusterDesk {
    /// Wrap `desk` (built with `config`, its data counted in `budget`).
    pub fn new(desk: Desk, config: DeskConfig, budget: Arc<Budget>) -> ClusterDesk {
        ClusterDesk {
            desk,
            config,
            budget,
            serving: None,
        }
    }

    /// Follow the store's word on where the desk runs; whether it serves
    /// here.
    fn here(&mut self, ctx: &mut Ctx) -> bool {
        match ctx.log().desk_role() {
            DeskRole::Alone => true,
            DeskRole::Here(n) if self.serving == Some(n) => true,
            DeskRole::Here(n) => {
                self.let_go(ctx);
                let records = ctx.log().take_desk_records().unwrap_or_default();
                log::info!(
                    "desk: runs on this node now, rebuilt from {} records",
                    records.len()
                );
                let webhooks = self.desk.take_webhooks();
                self.desk =
                    Desk::from_records(self.config.clone(), records, Arc::clone(&self.budget))
                        .with_webhooks(webhooks);
                self.serving = Some(n);
                true
            }
            DeskRole::Elsewhere | DeskRole::Loading => {
                self.let_go(ctx);
                false
            }
        }
    }

    /// If the desk served here: close its connections (they reconnect to
    /// the node that runs it) and forget its state.
    fn let_go(&mut self, ctx: &mut Ctx) {
        if self.serving.take().is_none() {
            return;
        }
        log::warn!("desk: no longer runs on this node; its connections are closed");
        for conn in self.desk.connections() {
            ctx.close(conn, MOVED, "the desk moved to another node: reconnect");
        }
        let webhooks = self.desk.take_webhooks();
        self.desk = Desk::from_records(self.config.clone(), Vec::new(), Arc::clone(&self.budget))
            .with_webhooks(webhooks);
    }
}

impl App for ClusterDesk {
    fn opened(&mut self, ctx: &mut Ctx, conn: ConnId, info: ConnInfo) {
        if self.here(ctx) {
            self.desk.opened(ctx, conn, info);
        } else {
            ctx.close(conn, NOT_HERE, "the desk runs on another node: reconnect");
        }
    }

    fn text(&mut self, ctx: &mut Ctx, conn: ConnId, text: String) {
        if self.here(ctx) {
            self.desk.text(ctx, conn, text);
        }
    }

    fn closed(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if self.here(ctx) {
            self.desk.closed(ctx, conn);
        }
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        if self.here(ctx) {
            self.desk.tick(ctx);
        }
    }

    fn turn_end(&mut self, ctx: &mut Ctx) {
        self.desk.turn_end(ctx);
    }

    fn figures(&self) -> Vec<Arc<dyn crate::hub::metrics::Figures>> {
        self.desk.figures()
    }

    fn api(
        &mut self,
        ctx: &mut Ctx,
        request: &crate::hub::api::ApiRequest,
    ) -> crate::hub::api::ApiResponse {
        if self.here(ctx) {
            self.desk.api(ctx, request)
        } else {
            crate::hub::api::ApiResponse::unavailable()
        }
    }

    fn stored(&mut self, ctx: &mut Ctx) {
        self.desk.stored(ctx);
    }

    fn refused(&mut self, ctx: &mut Ctx, ids: &[u64]) {
        self.desk.refused(ctx, ids);
    }
}
