//! Size limits on keys and values.
//!
//! They exist so one careless client cannot make a key too expensive to read, replicate or
//! repair; every refusal names the limit so the caller knows what to change.

use crate::error::CoreError;

/// Keys are non-empty and at most 1 KiB.
pub const MAX_KEY_BYTES: usize = 1024;
/// Default limit on key + value, per value (each sibling is checked on its own).
pub const DEFAULT_MAX_VALUE_BYTES: u32 = 10 * 1024;
/// The largest per-keyspace limit we accept: it must fit a gRPC message with room to spare.
pub const MAX_CONFIGURABLE_VALUE_BYTES: u32 = 2 * 1024 * 1024;
/// Hint deliveries and partition-stream messages carry at most this many bytes of objects (a
/// single larger object goes alone): far below the peers' 64 MiB message limit, so a run of
/// large values can never make a batch that is refused over and over and wedges the queue.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// A CRDT key's stored state may not grow past this: every replica rewrites it on each
/// update, and anti-entropy, read repair and partition streams ship it whole, within the
/// peers' 64 MiB messages and the SDKs' 16 MiB replies. An update that would grow a state
/// past it is refused; one that shrinks an oversized state (merges can make one) is not.
pub const MAX_CRDT_BYTES: usize = 8 << 20;
/// A key's live siblings together may not grow past this: a read returns them all (the
/// SDKs take replies of up to 16 MiB) and replication ships the whole object (peers take
/// 64 MiB messages). The sibling count limit alone would not bound it: 10,000 siblings of
/// 2 MiB each are allowed by the per-keyspace limits. A write that would grow the siblings
/// past it is refused; one that resolves them is always taken.
pub const MAX_SIBLINGS_BYTES: usize = 8 << 20;
/// Default cap on siblings of one key.
pub const DEFAULT_MAX_SIBLINGS: u32 = 100;
/// Past this many siblings a key is logged and counted as a warning.
pub const WARN_SIBLINGS: usize = 25;

/// Splits `items` into consecutive batches of at most `max_bytes` each by `size`; every
/// batch holds at least one item, so an item larger than the budget travels alone.
pub fn batches_by_bytes<T>(
    items: Vec<T>,
    size: impl Fn(&T) -> usize,
    max_bytes: usize,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        let n = size(&item);
        match out.last_mut() {
            Some(batch) if !batch.is_empty() && bytes.saturating_add(n) <= max_bytes => {
                bytes += n;
                batch.push(item);
            }
            _ => {
                bytes = n;
                out.push(vec![item]);
            }
        }
    }
    out
}

pub fn check_key(key: &[u8]) -> Result<(), CoreError> {
    if key.is_empty() {
        return Err(CoreError::EmptyKey {
            limit: MAX_KEY_BYTES,
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(CoreError::KeyTooLong {
            len: key.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

pub fn check_value(key: &[u8], value: &[u8], limit: u32) -> Result<(), CoreError> {
    let size = key.len() + value.len();
    if size > limit as usize {
        return Err(CoreError::ValueTooLarge {
            size,
            limit: limit as usize,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limits_name_the_limit() {
        assert!(check_key(b"k").is_ok());
        assert!(check_key(&[7; MAX_KEY_BYTES]).is_ok());
        let e = check_key(b"").unwrap_err();
        assert!(e.to_string().contains("1024"), "{e}");
        let e = check_key(&[7; MAX_KEY_BYTES + 1]).unwrap_err();
        assert_eq!(e.to_string(), "key is 1025 bytes; the limit is 1024 bytes");
    }

    #[test]
    fn value_limit_counts_key_and_value() {
        assert!(check_value(b"ab", &[0; 8], 10).is_ok());
        let e = check_value(b"abc", &[0; 8], 10).unwrap_err();
        assert_eq!(
            e,
            CoreError::ValueTooLarge {
                size: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn batches_stay_under_the_byte_budget_and_a_large_item_goes_alone() {
        let sizes = vec![3usize, 3, 3, 10, 1, 1];
        let batches = batches_by_bytes(sizes, |n| *n, 6);
        assert_eq!(batches, vec![vec![3, 3], vec![3], vec![10], vec![1, 1]]);
        assert!(batches_by_bytes(Vec::<usize>::new(), |n| *n, 6).is_empty());
    }
}
