//! The node's view of ownership: the core's [`Ownership`] (active layout versions and
//! replica sets) built from this node's layout history and gossip's liveness, plus gossip's
//! addresses.

use crate::cluster::membership::{ClusterView, MemberState};
use meridian_core::ActorId;
use meridian_core::layout::LayoutHistory;
pub use meridian_core::layout::ownership::{Ownership, Standing};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Topology {
    /// From gossip: addresses, liveness, the layout each node holds.
    pub members: BTreeMap<ActorId, MemberState>,
    ownership: Ownership,
    my_dc: String,
}

impl Topology {
    pub fn build(
        me: ActorId,
        my_dc: &str,
        view: &ClusterView,
        history: Arc<LayoutHistory>,
    ) -> Self {
        let up = view
            .members
            .iter()
            .filter(|(_, m)| m.alive)
            .map(|(id, _)| *id)
            .collect();
        Self {
            members: view.members.clone(),
            ownership: Ownership::new(me, my_dc, history, up),
            my_dc: my_dc.to_string(),
        }
    }

    /// Where this node reaches `node`'s gRPC: its WAN address when it is in another DC and
    /// published one.
    pub fn grpc_of(&self, node: &ActorId) -> Option<&str> {
        self.members.get(node).map(|m| {
            if m.meta.dc != self.my_dc && !m.meta.wan_grpc.is_empty() {
                m.meta.wan_grpc.as_str()
            } else {
                m.meta.grpc.as_str()
            }
        })
    }
}

impl std::ops::Deref for Topology {
    type Target = Ownership;

    fn deref(&self) -> &Ownership {
        &self.ownership
    }
}
