//! Objects that cannot be merged — corrupt bytes, another kind of value, a malformed key —
//! arriving through hint replay or a partition stream. Retrying them can never succeed, and
//! treating their batch as failed would stop everything queued behind them, so they are
//! reported (an error log naming the key, the peer and the reason, and
//! `meridian_objects_set_aside_total`) and kept in the node's metadata under `set-aside/` for
//! an operator to inspect, and the rest moves on.

use super::Cluster;
use super::membership::now_ms;
use meridian_core::ActorId;
use meridian_proto::v1 as pb;

impl Cluster {
    pub(super) fn set_aside(
        &self,
        path: &str,
        peer: ActorId,
        state: &pb::ObjectState,
        reason: &str,
    ) {
        self.metrics.set_aside.inc();
        let key_hex: String = state
            .storage_key
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        tracing::error!(
            path,
            peer = %peer,
            storage_key = %key_hex,
            reason,
            "an object cannot be merged: set aside, the rest continues"
        );
        let meta_key = format!("set-aside/{path}/{}/{key_hex}", now_ms());
        if let Err(e) = self.engine.storage().put_meta(&meta_key, &state.object) {
            tracing::error!(error = %e, "cannot keep the set-aside object");
        }
    }
}
