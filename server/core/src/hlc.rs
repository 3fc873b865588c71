//! Hybrid logical clock timestamps.
//!
//! A timestamp is wall-clock milliseconds shifted left 16 bits plus a logical counter in the
//! low bits. Ticking never goes backwards even if the wall clock does, and a replica that has
//! seen a timestamp always issues a larger one, so "last writer" in an `lww` keyspace
//! respects causality on each replica. The wall clock is an input: the core never reads it.

pub const LOGICAL_BITS: u32 = 16;

/// The next timestamp after `last` (the largest this node has issued or seen), given the
/// current wall clock in milliseconds since the Unix epoch.
pub fn tick(last: u64, wall_ms: u64) -> u64 {
    let physical = wall_ms << LOGICAL_BITS;
    physical.max(last.saturating_add(1))
}

/// The wall-clock part of a timestamp, in milliseconds.
pub fn wall_ms(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_even_when_wall_clock_goes_back() {
        let a = tick(0, 1_000);
        let b = tick(a, 900);
        let c = tick(b, 900);
        assert!(a < b && b < c);
        assert_eq!(wall_ms(a), 1_000);
        assert!(tick(c, 2_000) > c);
        assert_eq!(wall_ms(tick(c, 2_000)), 2_000);
    }
}
