//! [`RedisLog`]'s part of the desk across nodes (docs/cluster.md, "The
//! desk"): the agent accounts read from Redis, the desk's lease, the
//! desk's records written to and read from its stream. The hooks are in
//! the parent file (`append`, `commit_turn`, `tick`, the replies).

use std::sync::Arc;

use super::super::Cluster;
use super::super::desk::DeskRange;
use super::super::resp::Value;
use super::client;
use super::{RedisLog, Tag, WARM_TIMEOUT};
use crate::hub::log::DeskRole;

/// A desk record of the turn, on its way to Redis.
#[derive(Debug)]
pub(super) struct DeskRecord {
    pub(super) json: String,
    /// A message's id; `None`: a state record.
    pub(super) id: Option<u64>,
}

/// This node's side of the desk across nodes (docs/cluster.md, "The
/// desk"; [`crate::cluster::desk`]).
#[derive(Debug)]
pub(super) struct DeskSide {
    /// `<name> <addr>`: what the lease holds while this node has it.
    pub(super) me: String,
    /// Where this node's desk connections go while another node runs it.
    pub(super) forward: crate::server::forward::Forward,
    pub(super) role: DeskRole,
    /// Raised each time this node takes the desk.
    pub(super) epoch: u64,
    pub(super) asking_lease: bool,
    /// Records read so far while loading, and where the next read starts.
    pub(super) reading: Vec<Arc<str>>,
    pub(super) read_after: Option<String>,
    /// A read failed: sent again on the next tick.
    pub(super) read_owed: bool,
    /// The records read, until the desk takes them.
    pub(super) records: Option<Vec<Arc<str>>>,
    /// This turn's desk records.
    pub(super) turn: Vec<DeskRecord>,
    /// State records not stored yet: written before the next turn's.
    pub(super) owed: Vec<String>,
}

impl RedisLog {
    /// Run the desk across nodes: on this node while it holds the desk's
    /// lease (as `me`, `<name> <addr>`, `addr` where the other nodes reach
    /// it), else on the node that does, where `forward` sends this node's
    /// desk connections. Asks for the lease now (waiting at most
    /// [`WARM_TIMEOUT`], before the hub runs), and, given it, reads the
    /// desk's records.
    pub fn with_desk(mut self, me: String, forward: crate::server::forward::Forward) -> RedisLog {
        let mut side = DeskSide {
            me,
            forward,
            role: DeskRole::Elsewhere,
            epoch: 0,
            asking_lease: false,
            reading: Vec::new(),
            read_after: None,
            read_owed: false,
            records: None,
            turn: Vec::new(),
            owed: Vec::new(),
        };
        if self.up {
            let holder = self
                .cluster
                .client()
                .call(
                    self.cluster.lease_cmd(&side.me, self.settings.desk_lease),
                    WARM_TIMEOUT,
                )
                .and_then(Cluster::parse_lease);
            match holder {
                Ok(holder) if holder == side.me => match self.cluster.desk_records() {
                    Ok(records) => {
                        side.epoch = 1;
                        side.role = DeskRole::Here(1);
                        side.records = Some(records.into_iter().map(Arc::from).collect());
                    }
                    Err(e) => {
                        log::warn!(target: "wschat::cluster", "reading the desk's records: {e}");
                        side.role = DeskRole::Loading;
                        side.epoch = 1;
                        side.read_owed = true;
                    }
                },
                Ok(holder) => side.forward.set(address_of(&holder)),
                Err(e) => log::warn!(target: "wschat::cluster", "the desk's lease: {e}"),
            }
        }
        log::info!(target: "wschat::cluster", "desk: {:?} ({})", side.role, side.me);
        self.desk = Some(side);
        self
    }

    /// Renew or take the desk's lease, without waiting.
    pub(super) fn ask_lease(&mut self) {
        let Some(d) = &mut self.desk else {
            return;
        };
        if d.asking_lease || !self.up {
            return;
        }
        let cmd = self.cluster.lease_cmd(&d.me, self.settings.desk_lease);
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_ok() {
            self.tags.insert(tag, Tag::Lease);
            d.asking_lease = true;
        }
    }

    /// Who holds the lease: this node takes the desk (and reads its
    /// records), or lets it go.
    fn on_lease(&mut self, holder: String) {
        let Some(d) = &mut self.desk else {
            return;
        };
        if holder == d.me {
            d.forward.set(None);
            if d.role == DeskRole::Elsewhere {
                log::info!(target: "wschat::cluster", "desk: this node takes the desk; reading its records");
                d.role = DeskRole::Loading;
                d.epoch += 1;
                d.reading.clear();
                d.read_after = None;
                self.send_desk_read();
            }
            return;
        }
        d.forward.set(address_of(&holder));
        if d.role != DeskRole::Elsewhere {
            log::warn!(target: "wschat::cluster", "desk: {holder} holds the desk now; this node lets it go");
            d.role = DeskRole::Elsewhere;
            d.reading.clear();
            d.records = None;
            d.turn.clear();
            d.owed.clear();
        }
    }

    /// Read the next page of the desk's records (loading).
    pub(super) fn send_desk_read(&mut self) {
        let Some(d) = &mut self.desk else {
            return;
        };
        d.read_owed = false;
        let cmd = self.cluster.desk_after_cmd(d.read_after.as_deref());
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_ok() {
            self.tags.insert(tag, Tag::DeskRead);
        } else {
            d.read_owed = true;
        }
    }

    /// A page of the desk's records arrived.
    fn on_desk_read(&mut self, result: Result<DeskRange, client::Error>) {
        let Some(d) = &mut self.desk else {
            return;
        };
        if d.role != DeskRole::Loading {
            return;
        }
        match result {
            Ok(range) => {
                d.reading.extend(range.records.into_iter().map(Arc::from));
                match range.more_after {
                    Some(after) => {
                        d.read_after = Some(after);
                        self.send_desk_read();
                    }
                    None => {
                        d.records = Some(std::mem::take(&mut d.reading));
                        d.role = DeskRole::Here(d.epoch);
                        log::info!(target: "wschat::cluster", "desk: read; this node runs the desk");
                    }
                }
            }
            Err(e) => {
                log::warn!(target: "wschat::cluster", "reading the desk's records: {e}");
                d.read_owed = true;
            }
        }
    }

    /// Read the agent accounts unless their version is the one known (one
    /// short reply when they did not change), without waiting.
    pub(super) fn ask_accounts(&mut self) {
        if self.asking_accounts || !self.up {
            return;
        }
        let known = self.accounts.as_ref().map(|a| a.version.as_str());
        let cmd = self.cluster.accounts_cmd(known);
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_ok() {
            self.tags.insert(tag, Tag::Accounts);
            self.asking_accounts = true;
        }
    }

    /// Read the canned replies unless their version is the one known, as
    /// [`Self::ask_accounts`].
    pub(super) fn ask_canned(&mut self) {
        if self.asking_canned || !self.up {
            return;
        }
        let known = self.canned.as_ref().map(|c| c.version.as_str());
        let cmd = self.cluster.canned_cmd(known);
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cluster.client().send(cmd, tag, &self.replies).is_ok() {
            self.tags.insert(tag, Tag::Canned);
            self.asking_canned = true;
        }
    }

    /// The turn's desk records, after the state records owed by earlier
    /// turns.
    pub(super) fn desk_turn(&mut self) -> Vec<DeskRecord> {
        let Some(d) = &mut self.desk else {
            return Vec::new();
        };
        let mut records: Vec<DeskRecord> = std::mem::take(&mut d.owed)
            .into_iter()
            .map(|json| DeskRecord { json, id: None })
            .collect();
        records.append(&mut d.turn);
        records
    }

    /// Keep the state records of `records` for the next turn (their state
    /// has happened); messages are refused with their turn.
    pub(super) fn owe_desk_state(&mut self, records: Vec<DeskRecord>) {
        if let Some(d) = &mut self.desk {
            d.owed.extend(
                records
                    .into_iter()
                    .filter(|r| r.id.is_none())
                    .map(|r| r.json),
            );
        }
    }

    /// Send one desk record of turn `seq` (stored only if this node holds
    /// the lease: [`crate::cluster::desk::APPEND_LUA`]).
    pub(super) fn send_desk_record(
        &mut self,
        seq: u64,
        record: &DeskRecord,
    ) -> Result<(), client::Error> {
        let Some(d) = &self.desk else {
            return Err(client::Error::Unavailable);
        };
        let cmd = self.cluster.desk_append_cmd(&d.me, &record.json);
        let tag = self.next_tag;
        self.next_tag += 1;
        self.cluster.client().send(cmd, tag, &self.replies)?;
        self.tags.insert(
            tag,
            Tag::DeskAppend {
                turn: seq,
                id: record.id,
                state: record.id.is_none().then(|| record.json.clone()),
            },
        );
        Ok(())
    }

    /// A reply to one of this file's requests.
    pub(super) fn on_desk_reply(&mut self, tag: Tag, result: Result<Value, client::Error>) {
        match tag {
            Tag::Lease => {
                if let Some(d) = &mut self.desk {
                    d.asking_lease = false;
                }
                match result.and_then(Cluster::parse_lease) {
                    Ok(holder) => self.on_lease(holder),
                    Err(e) => log::warn!(target: "wschat::cluster", "the desk's lease: {e}"),
                }
            }
            Tag::DeskRead => {
                self.on_desk_read(result.and_then(Cluster::parse_desk_range));
            }
            Tag::DeskAppend { turn, id, state } => {
                let error = result.err().map(|e| e.to_string());
                if let Some(t) = self.turns.iter_mut().find(|t| t.seq == turn) {
                    t.outstanding = t.outstanding.saturating_sub(1);
                    match (&error, id) {
                        (None, _) => t.desk_stored += 1,
                        (Some(e), Some(id)) => {
                            t.refused.push(id);
                            t.error = Some(e.clone());
                        }
                        (Some(_), None) => {}
                    }
                }
                if let (Some(e), Some(json)) = (error, state)
                    && let Some(d) = &mut self.desk
                    && d.role != DeskRole::Elsewhere
                {
                    log::warn!(target: "wschat::cluster", "a desk record not stored ({e}): written again with the next");
                    d.owed.push(json);
                }
            }
            Tag::Canned => {
                self.asking_canned = false;
                match result.and_then(Cluster::parse_accounts) {
                    Ok(Some(canned)) => self.canned = Some(canned),
                    Ok(None) => {}
                    Err(e) => {
                        log::warn!(target: "wschat::cluster", "reading the canned replies: {e}");
                    }
                }
            }
            Tag::Accounts => {
                self.asking_accounts = false;
                match result.and_then(Cluster::parse_accounts) {
                    Ok(Some(accounts)) => self.accounts = Some(accounts),
                    Ok(None) => {}
                    Err(e) => {
                        log::warn!(target: "wschat::cluster", "reading the agent accounts: {e}");
                    }
                }
            }
            _ => {}
        }
    }
}

impl RedisLog {
    /// When the node stops while it runs the desk: give the lease up, so
    /// that another takes the desk at its next tick rather than after
    /// `--redis-desk-lease` (waiting at most [`WARM_TIMEOUT`]: the
    /// hub has stopped).
    pub(super) fn release_desk(&mut self) {
        if let Some(d) = &self.desk
            && matches!(d.role, DeskRole::Here(_) | DeskRole::Loading)
            && self.up
        {
            let cmd = self.cluster.release_cmd(&d.me);
            if let Err(e) = self.cluster.client().call(cmd, WARM_TIMEOUT) {
                log::warn!(target: "wschat::cluster", "giving the desk's lease up: {e}");
            }
        }
    }
}

/// The address in a lease's holder, `<name> <addr>`.
fn address_of(holder: &str) -> Option<String> {
    holder.split_once(' ').map(|(_, addr)| addr.to_string())
}
