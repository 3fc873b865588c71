//! The node's identity, created on first start and kept in the data directory, and its
//! incarnation, bumped after every unclean stop.
//!
//! The id names the node in the cluster. It lives inside RocksDB, so wiping the data
//! directory wipes the id with the data: the node comes back as a new member.
//!
//! The actor that mints dots is the id plus the incarnation. Writes are acknowledged once in
//! the WAL, which is not fsynced by default: a power loss can drop the last acknowledged
//! writes, and the counters they minted, after peers already hold those dots. A node that
//! finds its "running" marker on start did not stop cleanly, so it takes the next
//! incarnation, and every dot it mints from then on is new.

use crate::error::{NodeError, NodeResult};
use crate::storage::Storage;
use meridian_core::ActorId;

const NODE_ID_KEY: &str = "node/id";
const INCARNATION_KEY: &str = "node/incarnation";
const RUNNING_KEY: &str = "node/running";
/// 2026-01-01T00:00:00Z: no replaced disk's node can have counted incarnations this far.
const CLOCK_FLOOR_SECS: u64 = 1_767_225_600;

/// The stored id; on an empty directory, `wanted` (a node whose disk was replaced) or a new
/// one. A directory that holds another node's id is refused.
pub fn load_or_create(storage: &Storage, wanted: Option<uuid::Uuid>) -> NodeResult<uuid::Uuid> {
    if let Some(bytes) = storage.get_meta(NODE_ID_KEY)? {
        let stored = uuid::Uuid::from_slice(&bytes)
            .map_err(|e| NodeError::Storage(format!("stored node id is corrupt: {e}")))?;
        if let Some(w) = wanted.filter(|w| *w != stored) {
            return Err(NodeError::InvalidArgument(format!(
                "this data directory belongs to node {stored}, not {w}: node_id only names \
                 the node an empty directory comes back as"
            )));
        }
        return Ok(stored);
    }
    let Some(id) = wanted else {
        let id = uuid::Uuid::new_v4();
        storage.put_meta(NODE_ID_KEY, id.as_bytes())?;
        tracing::info!(node_id = %id, "created a new node identity");
        return Ok(id);
    };
    // The dots this node minted before its disk was lost are unknown here, and peers hold
    // them: mint under an incarnation none of its earlier lives can have used. Incarnations
    // count up from 0 by one per unclean stop; the time in seconds is far beyond that, and
    // beyond any earlier replacement's.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A clock that was never set (a fresh board, a dead RTC) would give a small number an
    // earlier life may have used.
    if secs < CLOCK_FLOOR_SECS {
        return Err(NodeError::InvalidArgument(format!(
            "this machine's clock reads {secs} s since 1970, before 2026: set the clock \
             before bringing node {id} back on a new disk (its incarnation comes from it)"
        )));
    }
    let incarnation = u32::try_from(secs).unwrap_or(u32::MAX - 1);
    storage.put_meta(INCARNATION_KEY, &incarnation.to_be_bytes())?;
    storage.put_meta(NODE_ID_KEY, id.as_bytes())?;
    tracing::warn!(
        node_id = %id,
        incarnation,
        "came back as an existing node on an empty data directory: anti-entropy refills it \
         (`meridian admin repair --this-node` does it now)"
    );
    Ok(id)
}

/// The node's id as the cluster (membership, placement) knows it.
pub fn node(id: uuid::Uuid) -> ActorId {
    ActorId::from_bytes(*id.as_bytes())
}

/// Marks the node running and returns the incarnation to mint with: the stored one, or the
/// next one when the previous run did not end with [`stopped_cleanly`]. Both are fsynced
/// before any write is taken.
pub fn start_incarnation(storage: &Storage) -> NodeResult<u32> {
    let stored = match storage.get_meta(INCARNATION_KEY)? {
        None => 0,
        Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| NodeError::Storage("stored incarnation is corrupt".into()))?,
    };
    let unclean = storage.get_meta(RUNNING_KEY)?.is_some();
    let incarnation = if unclean {
        let next = stored.checked_add(1).ok_or_else(|| {
            NodeError::Storage("incarnations exhausted; wipe and re-add this node".into())
        })?;
        tracing::warn!(
            incarnation = next,
            "the previous run did not stop cleanly: minting under a new incarnation"
        );
        next
    } else {
        stored
    };
    storage.put_meta(INCARNATION_KEY, &incarnation.to_be_bytes())?;
    storage.put_meta(RUNNING_KEY, &[1])?;
    Ok(incarnation)
}

/// Moves to the next incarnation while running (fsynced before it returns): the node is
/// about to delete data it minted into (see `Keeper::set_actor`).
pub fn next_incarnation(storage: &Storage) -> NodeResult<u32> {
    let stored = match storage.get_meta(INCARNATION_KEY)? {
        None => 0,
        Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| NodeError::Storage("stored incarnation is corrupt".into()))?,
    };
    let next = stored.checked_add(1).ok_or_else(|| {
        NodeError::Storage("incarnations exhausted; wipe and re-add this node".into())
    })?;
    storage.put_meta(INCARNATION_KEY, &next.to_be_bytes())?;
    Ok(next)
}

/// Records a clean stop: everything acknowledged is fsynced, so the next start may keep the
/// incarnation.
pub fn stopped_cleanly(storage: &Storage) -> NodeResult<()> {
    storage.flush_wal()?;
    storage.delete_meta(RUNNING_KEY)
}

/// The actor this node mints with.
pub fn actor(id: uuid::Uuid, incarnation: u32) -> ActorId {
    ActorId::for_incarnation(*id.as_bytes(), incarnation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    #[test]
    fn a_replaced_disk_comes_back_as_its_node_under_an_unused_incarnation() {
        let open =
            |d: &tempfile::TempDir| Storage::open(d.path(), &StorageConfig::default()).unwrap();
        let first = tempfile::tempdir().unwrap();
        let s = open(&first);
        let id = load_or_create(&s, None).unwrap();
        assert_eq!(start_incarnation(&s).unwrap(), 0);
        drop(s);
        // The disk is replaced: an empty directory told which node it is.
        let second = tempfile::tempdir().unwrap();
        let s = open(&second);
        assert_eq!(load_or_create(&s, Some(id)).unwrap(), id);
        let inc = start_incarnation(&s).unwrap();
        assert!(
            inc > 1_000_000_000,
            "incarnation {inc} could have been used before"
        );
        assert_ne!(actor(id, inc), actor(id, 0));
        // A directory that holds this node refuses to become another one.
        let other = uuid::Uuid::new_v4();
        let e = load_or_create(&s, Some(other)).unwrap_err().to_string();
        assert!(
            e.contains(&id.to_string()) && e.contains(&other.to_string()),
            "{e}"
        );
        assert_eq!(load_or_create(&s, Some(id)).unwrap(), id);
    }

    #[test]
    fn incarnation_moves_on_only_after_an_unclean_stop() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Storage::open(dir.path(), &StorageConfig::default()).unwrap();
        let s = open();
        assert_eq!(start_incarnation(&s).unwrap(), 0);
        stopped_cleanly(&s).unwrap();
        drop(s);
        let s = open();
        assert_eq!(start_incarnation(&s).unwrap(), 0, "clean stop keeps it");
        drop(s); // no clean stop: as after kill -9 or power loss
        let s = open();
        assert_eq!(start_incarnation(&s).unwrap(), 1);
        drop(s);
        let s = open();
        assert_eq!(start_incarnation(&s).unwrap(), 2);
        let id = load_or_create(&s, None).unwrap();
        assert_ne!(actor(id, 1), actor(id, 2));
        assert_eq!(actor(id, 2).incarnation(), 2);
    }
}
