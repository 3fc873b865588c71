//! Tombstone GC in the simulation: the node crate's `reaper.rs` over the simulated network.
//! The core's [`Sweep`] decides; the confirmation records live in a [`MemStore`] that a
//! crash truncates (losing one only means confirming again).

use super::{Ctx, Pending, SimNode};
use crate::msg::{Req, Resp};
use meridian_core::ActorId;
use meridian_core::partition::{parse_storage_key, slice_prefix};
use meridian_core::store::Store;
use meridian_core::tombstones::{self, Candidate, Confirmed, Purge, Sweep};
use std::collections::{BTreeMap, BTreeSet};

/// How tombstone GC runs on a node (geo runs only).
#[derive(Debug, Clone, Copy)]
pub struct GcSettings {
    /// From every replica holding a tombstone to its purge (ms).
    pub grace: u64,
    /// A sweep whose answers are not all in by then finishes with what it has.
    pub sweep_timeout: u64,
}

/// A sweep in flight: which peers have yet to answer.
pub(super) struct Sweeping {
    sweep: Sweep,
    waiting: BTreeSet<ActorId>,
    started: u64,
}

impl SimNode {
    /// Starts the next sweep (one keyspace of one partition this node is the reaper of),
    /// or finishes one whose peers are too slow.
    pub(super) fn reaper_tick(&mut self, ctx: &mut Ctx<'_>) {
        let Some(gc) = self.gc else { return };
        if let Some(s) = &self.sweeping {
            if ctx.now.saturating_sub(s.started) < gc.sweep_timeout {
                return;
            }
            self.finish_sweep(ctx);
        }
        // Slices where this node holds keys or records: the only ones a sweep can act on.
        let mut slices: BTreeSet<(u16, u64)> = BTreeSet::new();
        for (k, _) in self
            .data
            .entries()
            .into_iter()
            .chain(self.confirmed.entries())
        {
            if let Some((p, ks, _)) = parse_storage_key(&k) {
                slices.insert((p, ks));
            }
        }
        if slices.is_empty() {
            return;
        }
        let own = self.ownership(ctx.up);
        let slices: Vec<(u16, u64)> = slices.into_iter().collect();
        let start = self.reaper_next % slices.len();
        self.reaper_next = self.reaper_next.wrapping_add(1);
        let Some((p, ks_id)) = slices.get(start).copied() else {
            return;
        };
        let Some(ks) = self.keyspaces.iter().find(|k| k.id() == ks_id).cloned() else {
            return;
        };
        let Some(peers) = own.reaper_peers(&ks, p) else {
            return;
        };
        let prefix = slice_prefix(p, ks_id);
        let dead: Vec<Candidate> = self
            .data
            .scan(&prefix)
            .into_iter()
            .filter_map(|(k, v)| tombstones::candidate(&k, &v, ctx.now))
            .collect();
        let records: BTreeMap<Vec<u8>, Confirmed> = self
            .confirmed
            .scan(&prefix)
            .into_iter()
            .filter_map(|(k, v)| Some((k, Confirmed::decode(&v)?)))
            .collect();
        let sweep = Sweep::plan(dead, records, peers.len(), ctx.now, gc.grace);
        if sweep.is_empty() {
            return;
        }
        let request = sweep.request().clone();
        let asks = sweep.asks_peers();
        self.sweeping = Some(Sweeping {
            sweep,
            waiting: peers.iter().copied().collect(),
            started: ctx.now,
        });
        if !asks {
            self.finish_sweep(ctx);
            return;
        }
        for peer in peers {
            self.call(
                peer,
                Req::Tombstones(request.clone()),
                Pending::Tombstones(peer),
                ctx,
            );
        }
    }

    pub(super) fn reaper_reply(&mut self, peer: ActorId, resp: Resp, ctx: &mut Ctx<'_>) {
        let Some(s) = &mut self.sweeping else { return };
        if !s.waiting.remove(&peer) {
            return;
        }
        if let Resp::Tombstones(reply) = resp {
            s.sweep.on_reply(&reply);
        }
        if s.waiting.is_empty() {
            self.finish_sweep(ctx);
        }
    }

    fn finish_sweep(&mut self, ctx: &mut Ctx<'_>) {
        let Some(s) = self.sweeping.take() else {
            return;
        };
        let outcome = s.sweep.finish(ctx.now);
        for c in &outcome.purge {
            if self.purge(c) {
                self.confirmed.remove(&c.storage_key);
            }
        }
        for k in outcome.forget {
            self.confirmed.remove(&k);
        }
        for (k, c) in outcome.confirm {
            self.confirmed
                .put(&k, &c.encode(), false)
                .unwrap_or_else(|e| match e {});
        }
    }

    /// Purges a key if it still holds exactly the candidate's tombstone; whether it is gone.
    fn purge(&mut self, c: &Candidate) -> bool {
        let durable = self.durable(&c.storage_key);
        match self.keeper.purge(c, durable) {
            Ok(outcome) => {
                self.purged += u64::from(outcome == Purge::Removed);
                outcome.gone()
            }
            Err(_) => false,
        }
    }

    /// A reaper's question, answered here.
    pub(super) fn answer_reaper(&mut self, request: &tombstones::Request) -> Resp {
        let data = self.data.clone();
        let reply = tombstones::answer::<std::convert::Infallible>(
            request,
            |k| data.get(k),
            |c| Ok(self.purge(c)),
        )
        .unwrap_or_else(|e| match e {});
        Resp::Tombstones(reply)
    }
}
