//! Routing: the front of the queue to the least-loaded online agent under
//! capacity (ties to the longest idle), re-queueing, and the notices that
//! follow a change (docs/customer-service.md, "Routing").

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::Desk;
use super::model::ConversationState;
use super::wire::{Entry, Message};
use crate::clock::now_ms;
use crate::hub::Ctx;

impl Desk {
    /// Hand waiting conversations to agents: the front of the queue to the
    /// least-loaded online agent under capacity, ties to the longest idle.
    pub(super) fn route(&mut self, ctx: &mut Ctx) {
        while let Some(&cid) = self.queue.front() {
            let best = self
                .agents
                .iter()
                .filter(|(_, a)| !a.conns.is_empty() && !a.away)
                .map(|(name, a)| (self.load(name), a.last_assigned, name, a.capacity))
                .filter(|(load, _, _, capacity)| load < capacity)
                .map(|(load, idle, name, _)| (load, idle, name))
                .min()
                .map(|(_, _, name)| name.clone());
            let Some(agent) = best else {
                break;
            };
            self.queue.pop_front();
            self.assign(ctx, cid, &agent, None);
        }
    }

    /// Give conversation `cid` to `agent` (from `transfer`: the previous
    /// agent and a note).
    pub(super) fn assign(
        &mut self,
        ctx: &mut Ctx,
        cid: u64,
        agent: &str,
        from: Option<(&str, &str)>,
    ) {
        let id = ctx.log().take_id();
        let time = now_ms();
        let rec = Entry::DeskAssigned {
            id,
            conversation: cid,
            agent,
            from: from.map(|(prev, _)| prev),
            note: from.map(|(_, note)| note),
            time,
        };
        Desk::record(ctx, rec.to_json());
        let Some(conv) = self.conversations.get_mut(&cid) else {
            return;
        };
        if conv.state == ConversationState::Queued {
            let waited = time.saturating_sub(conv.queued_at);
            ctx.metrics().desk.observe_wait(waited);
        }
        self.queue.retain(|&c| c != cid);
        conv.state = ConversationState::Assigned(agent.to_string());
        self.told.remove(&cid);
        if let Some(a) = self.agents.get_mut(agent) {
            a.last_assigned = Instant::now();
        }
        let conv = &self.conversations[&cid];
        let text = Message::AssignedConversation(self.conversation_view(conv, from)).to_json();
        let frame = Ctx::json_frame(&text);
        let mut to = self.agent_conns(agent);
        to.extend(self.supervisor_conns(Some(agent)));
        ctx.broadcast(to, &frame);
        let to_visitor = Message::Assigned {
            conversation: cid,
            agent,
        }
        .to_json();
        ctx.broadcast(self.visitor_conns(conv), &Ctx::json_frame(&to_visitor));
        self.dirty = true;
    }

    /// Put `cid` back in the queue, at the front (it has waited already).
    pub(super) fn requeue(&mut self, ctx: &mut Ctx, cid: u64, reason: &str) {
        let id = ctx.log().take_id();
        let time = now_ms();
        Desk::record(
            ctx,
            Entry::DeskQueued {
                id,
                conversation: cid,
                reason,
                time,
            }
            .to_json(),
        );
        if let Some(conv) = self.conversations.get_mut(&cid) {
            conv.state = ConversationState::Queued;
            conv.queued_at = time;
            self.queue.retain(|&c| c != cid);
            self.queue.push_front(cid);
            self.told.remove(&cid);
            self.dirty = true;
        }
    }

    /// Take out of the queue, as abandoned, the conversations whose
    /// visitor has been offline for `abandon_after` (they are resolved,
    /// `"by":"abandoned"`, and no agent gets them). A message left outside
    /// the desk's hours is never abandoned: it waits for the first agent.
    pub(super) fn abandon(&mut self, ctx: &mut Ctx, now: Instant) {
        let after = self.config.abandon_after;
        if after.is_zero() {
            return;
        }
        let gone: Vec<u64> = self
            .queue
            .iter()
            .filter(|cid| self.conversations.get(cid).is_some_and(|c| !c.offline))
            .filter(|cid| {
                self.conversations
                    .get(cid)
                    .and_then(|c| self.sessions.get(&c.session))
                    .is_none_or(|s| {
                        s.conns.is_empty()
                            && s.offline_since
                                .is_none_or(|t| now.duration_since(t) >= after)
                    })
            })
            .copied()
            .collect();
        for cid in gone {
            let id = ctx.log().take_id();
            Desk::record(
                ctx,
                Entry::DeskResolved {
                    id,
                    conversation: cid,
                    agent: None,
                    by: "abandoned",
                    time: now_ms(),
                }
                .to_json(),
            );
            self.queue.retain(|&c| c != cid);
            if let Some(conv) = self.conversations.get_mut(&cid) {
                conv.abandoned = true;
            }
            self.mark_resolved(cid);
            log::info!("desk: conversation {cid} left the queue: its visitor was offline too long");
            // Webhook point: `conversation.resolved` (cid, "by":"abandoned").
            self.dirty = true;
        }
    }

    /// Route, then tell agents about the queue and the agent list, and
    /// waiting visitors their (changed) positions.
    pub(super) fn settle(&mut self, ctx: &mut Ctx) {
        self.route(ctx);
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // Every conversation in memory is queued, assigned or resolved (and
        // then in `resolved`): the assigned ones are counted without a scan.
        let open = self
            .conversations
            .len()
            .saturating_sub(self.resolved.len() + self.queue.len());
        let figures = &ctx.metrics().desk;
        figures.queue_length.store(self.queue.len(), Relaxed);
        figures.agents_online.store(self.online_agents(), Relaxed);
        figures.conversations_open.store(open, Relaxed);
        let conns = self.all_agent_conns();
        ctx.broadcast(conns.clone(), &Ctx::json_frame(&self.queue_json()));
        ctx.broadcast(conns, &Ctx::json_frame(&self.agents_json()));
        let online = self.online_agents();
        for (i, &cid) in self.queue.iter().enumerate() {
            let position = i + 1;
            if self.told.get(&cid) == Some(&(position, online)) {
                continue;
            }
            self.told.insert(cid, (position, online));
            if let Some(conv) = self.conversations.get(&cid) {
                let msg = Message::Queued {
                    conversation: cid,
                    position,
                    agents_online: online,
                }
                .to_json();
                ctx.broadcast(self.visitor_conns(conv), &Ctx::json_frame(&msg));
            }
        }
    }

    /// Forget agent `name` and put their conversations back in the queue,
    /// oldest first at the very front; returns how many.
    pub(super) fn drop_agent(&mut self, ctx: &mut Ctx, name: &str, reason: &str) -> usize {
        self.agents.remove(name);
        let theirs: Vec<u64> = self
            .conversations
            .values()
            .filter(|c| matches!(&c.state, ConversationState::Assigned(a) if a == name))
            .map(|c| c.id)
            .collect();
        for &cid in theirs.iter().rev() {
            self.requeue(ctx, cid, reason);
        }
        self.dirty = true;
        theirs.len()
    }
}
