//! The node's identity, created on first start and kept in the data directory.
//!
//! The id is the node's DVV actor. It lives inside RocksDB, so wiping the data directory
//! wipes the id with the data: the node comes back as a new actor and can never mint a dot
//! that a peer already holds for a different value.

use crate::error::{NodeError, NodeResult};
use crate::storage::Storage;
use meridian_core::ActorId;

const NODE_ID_KEY: &str = "node/id";

pub fn load_or_create(storage: &Storage) -> NodeResult<uuid::Uuid> {
    if let Some(bytes) = storage.get_meta(NODE_ID_KEY)? {
        return uuid::Uuid::from_slice(&bytes)
            .map_err(|e| NodeError::Storage(format!("stored node id is corrupt: {e}")));
    }
    let id = uuid::Uuid::new_v4();
    storage.put_meta(NODE_ID_KEY, id.as_bytes())?;
    tracing::info!(node_id = %id, "created a new node identity");
    Ok(id)
}

pub fn actor(id: uuid::Uuid) -> ActorId {
    ActorId::from_bytes(*id.as_bytes())
}
