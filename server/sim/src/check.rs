//! What must hold once the faults stop and the cluster has gone quiet:
//!
//! - every replica of every key holds byte-identical state;
//! - no acknowledged write is lost: its value is live, or some write that could have been
//!   applied had seen it (its context covered it);
//! - nothing superseded comes back: no value an acknowledged write had seen is live;
//! - siblings stay bounded by write concurrency: live values are distinct values that
//!   clients wrote, no more than the writers plus the writes sent blind (no or an old
//!   context) plus the writes whose outcome their client never learned;
//! - every node holds the same layout history.

use crate::client::Record;
use crate::node::SimNode;
use meridian_core::partition::{partition_of, storage_key};
use meridian_core::replica;
use meridian_core::{KeyspaceSpec, StoredObject, ValueKind};
use std::collections::{BTreeMap, BTreeSet};

/// `view`: a live node with the newest layout, whose ownership the checks use.
/// `died`: some node died for good during the run (then a write acknowledged by one replica
/// may have died with it; that is what `ONE` means).
pub fn check(
    nodes: &[SimNode],
    view: usize,
    died: bool,
    keyspaces: &[KeyspaceSpec],
    keys: usize,
    records: &[Record],
) -> Vec<String> {
    let mut violations = Vec::new();
    let up: BTreeSet<_> = nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
    let Some(first) = nodes.get(view) else {
        return violations;
    };
    let own = first.ownership(&up);
    let fingerprint = first.fingerprint;
    for n in nodes.iter().filter(|n| n.up) {
        if n.fingerprint != fingerprint {
            violations.push(format!(
                "node {} holds a different layout (version {} vs {})",
                n.id,
                n.version(),
                first.version()
            ));
        }
    }
    if own.chain().len() != 1 {
        let waiting: Vec<String> = own
            .chain()
            .last()
            .map(|v| {
                v.members()
                    .iter()
                    .filter(|m| !own.history.acked(&m.id, v))
                    .map(|m| {
                        let up = nodes.iter().any(|n| n.id == m.id && n.up);
                        format!("{} ({}, up {up})", m.id, m.dc)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if std::env::var_os("MERIDIAN_SIM_VERBOSE").is_some() {
            for n in nodes.iter().filter(|n| n.up) {
                eprintln!(
                    "  node {} {} v{} acked {:?} chain {:?}",
                    n.id,
                    n.dc,
                    n.version(),
                    n.history.acked_version(&n.id),
                    n.history
                        .chain()
                        .iter()
                        .map(|v| v.version)
                        .collect::<Vec<_>>()
                );
            }
        }
        violations.push(format!(
            "the layout did not settle: versions {:?} still active; not acknowledged by {waiting:?}",
            own.chain().iter().map(|v| v.version).collect::<Vec<_>>()
        ));
    }
    for ks in keyspaces {
        for k in 0..keys {
            let key = format!("k{k}").into_bytes();
            let skey = storage_key(ks.id(), &key);
            let p = partition_of(ks.id(), &key);
            let mut states: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
            let mut object: Option<StoredObject> = None;
            for dc in own.replicas(ks, p) {
                for slot in dc.replicas {
                    let Some(node) = nodes.iter().find(|n| n.id == slot.node) else {
                        continue;
                    };
                    let state = match node.keeper().load(&skey) {
                        Ok(s) => s,
                        Err(e) => {
                            violations.push(format!("{}: unreadable state: {e:?}", ks.name));
                            None
                        }
                    };
                    let bytes = state
                        .as_ref()
                        .map(|o| o.replicated_bytes())
                        .unwrap_or_default();
                    states.entry(bytes).or_default().push(node.id.to_string());
                    object = object.or(state);
                }
            }
            let name = format!("{}/k{k}", ks.name);
            let before = violations.len();
            if states.len() > 1 {
                violations.push(format!(
                    "{name}: replicas disagree ({} different states among {:?})",
                    states.len(),
                    states.values().collect::<Vec<_>>()
                ));
            }
            let live: Vec<Vec<u8>> = replica::read(object.as_ref()).values;
            let writes: Vec<&Record> = records
                .iter()
                .filter(|r| r.keyspace == ks.name && r.key == key)
                .collect();
            check_key(&name, ks, &live, &writes, died, &mut violations);
            if violations.len() > before && std::env::var_os("MERIDIAN_SIM_VERBOSE").is_some() {
                for r in &writes {
                    eprintln!(
                        "  {name} write {:?} by c{} seen {:?} acked {} attempts {} blind {}",
                        r.value.as_deref().map(show),
                        r.client,
                        r.seen.iter().map(|v| show(v)).collect::<Vec<_>>(),
                        r.acked,
                        r.attempts,
                        r.blind
                    );
                }
                eprintln!(
                    "  final {:?}: {:?}",
                    object,
                    live.iter().map(|v| show(v)).collect::<Vec<_>>()
                );
                for n in nodes {
                    let state = n.keeper().load(&skey).ok().flatten();
                    let hints = n
                        .hints
                        .entries()
                        .iter()
                        .filter(|(_, v)| v.windows(skey.len()).any(|w| w == skey.as_slice()))
                        .count();
                    eprintln!(
                        "  node {} {} up {} inc {}: {:?} hints {hints}",
                        n.id,
                        n.dc,
                        n.up,
                        n.incarnation,
                        replica::read(state.as_ref())
                            .values
                            .iter()
                            .map(|v| show(v))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }
    violations
}

/// After anti-entropy had time to converge: every replica of every partition holds an equal
/// Merkle tree for each keyspace, and every node's trees equal what a scan of its data
/// builds (writes never missed an update).
pub fn trees_agree(nodes: &[SimNode], view: usize, keyspaces: &[KeyspaceSpec]) -> Vec<String> {
    use meridian_core::merkle::{PARTITION_LEVEL, PartitionSet};
    let mut violations = Vec::new();
    let up: BTreeSet<_> = nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
    let Some(first) = nodes.get(view) else {
        return violations;
    };
    let own = first.ownership(&up);
    let all = PartitionSet::all();
    for n in nodes.iter().filter(|n| n.up) {
        for p in 0..meridian_core::partition::PARTITIONS as u16 {
            let drifted = n
                .forest
                .rebuild(p, || {
                    Ok::<_, std::convert::Infallible>(n.data.scan(&p.to_be_bytes()))
                })
                .unwrap_or_else(|e| match e {});
            if drifted {
                violations.push(format!(
                    "node {}: the Merkle tree of partition {p} differs from its data",
                    n.id
                ));
            }
        }
    }
    for ks in keyspaces {
        for p in 0..meridian_core::partition::PARTITIONS as u16 {
            let roots: Vec<(Option<u64>, meridian_core::ActorId)> = own
                .replicas(ks, p)
                .into_iter()
                .flat_map(|d| d.replicas)
                .filter_map(|slot| nodes.iter().find(|n| n.id == slot.node && n.up))
                .map(|n| {
                    (
                        n.forest.hash(ks.id(), PARTITION_LEVEL, u32::from(p), &all),
                        n.id,
                    )
                })
                .collect();
            if roots.windows(2).any(|w| w[0].0 != w[1].0) {
                violations.push(format!(
                    "{}/partition {p}: replicas' Merkle roots differ after anti-entropy: {:?}",
                    ks.name,
                    roots
                        .iter()
                        .map(|(r, id)| format!("{id}: {r:x?}"))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    violations
}

fn check_key(
    name: &str,
    ks: &KeyspaceSpec,
    live: &[Vec<u8>],
    writes: &[&Record],
    died: bool,
    violations: &mut Vec<String>,
) {
    let written: BTreeSet<&Vec<u8>> = writes.iter().filter_map(|r| r.value.as_ref()).collect();
    let live_set: BTreeSet<&Vec<u8>> = live.iter().collect();
    if live_set.len() != live.len() {
        violations.push(format!("{name}: a value is live twice"));
    }
    for v in live {
        if !written.contains(v) {
            violations.push(format!("{name}: live value {} was never written", show(v)));
        }
    }
    // Lost acknowledged writes and revived values are judged only where acknowledged writes
    // are durable: a power cut may take an unsynced write (and a tombstone) with it.
    if ks.sync_writes != Some(true) {
        return;
    }
    // A write acknowledged by one replica that died for good may be gone, and with it the
    // supersession it carried: only the others must keep what they replaced replaced.
    for x in writes
        .iter()
        .filter(|r| r.acked && !(died && r.single_copy))
    {
        for v in &x.seen {
            if live_set.contains(v) {
                let origin = writes.iter().find(|r| r.value.as_ref() == Some(v));
                violations.push(format!(
                    "{name}: value {} is live though acknowledged write {} had seen it \
                     (it was sent {} times, acknowledged: {})",
                    show(v),
                    x.value.as_deref().map_or("(delete)".into(), show),
                    origin.map_or(0, |r| r.attempts),
                    origin.is_some_and(|r| r.acked),
                ));
            }
        }
    }
    if ks.kind == ValueKind::Lww {
        // Concurrent LWW writes lose by design; what matters is above.
        return;
    }
    // A write that could have been applied: acknowledged, or its value turned up somewhere,
    // or a delete whose fate is unknown.
    let seen_anywhere: BTreeSet<&Vec<u8>> = writes.iter().flat_map(|r| r.seen.iter()).collect();
    let applied = |r: &Record| {
        r.acked
            || r.value
                .as_ref()
                .is_none_or(|v| live_set.contains(v) || seen_anywhere.contains(v))
    };
    for w in writes
        .iter()
        .filter(|r| r.acked && !(died && r.single_copy))
    {
        let Some(v) = &w.value else { continue };
        if live_set.contains(v) {
            continue;
        }
        let covered = writes.iter().any(|x| applied(x) && x.seen.contains(v));
        if !covered {
            violations.push(format!(
                "{name}: acknowledged write {} is lost (not live, and no write had seen it)",
                show(v)
            ));
        }
    }
    // Each client's acknowledged writes with a fresh context replace what it saw; what can
    // stay side by side is one value per writer, plus every write sent blind, plus every
    // write whose fate its client never learned (a later read may not have seen it), plus
    // every write whose context came from a read that missed the client's own earlier
    // acknowledged write (a read at ONE need not see it: seed 590266).
    let writers: BTreeSet<usize> = writes.iter().map(|r| r.client).collect();
    let stale_read = |i: usize, r: &Record| {
        writes[..i].iter().any(|x| {
            x.client == r.client
                && x.acked
                && x.value.as_ref().is_some_and(|v| {
                    !r.seen.contains(v)
                        && !writes.iter().any(|w| {
                            w.value.as_ref().is_some_and(|wv| r.seen.contains(wv))
                                && w.seen.contains(v)
                        })
                })
        })
    };
    let blind = writes
        .iter()
        .enumerate()
        .filter(|(i, r)| r.blind || stale_read(*i, r))
        .count();
    let unknown = writes.iter().filter(|r| !r.acked).count();
    if live.len() > writers.len() + blind + unknown {
        violations.push(format!(
            "{name}: {} siblings from {} writers, {blind} blind writes and {unknown} \
             unacknowledged ones",
            live.len(),
            writers.len()
        ));
    }
}

fn show(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}
