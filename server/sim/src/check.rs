//! What must hold once the faults stop and the cluster has gone quiet:
//!
//! - every replica of every key holds byte-identical state;
//! - no acknowledged write is lost: its value is live, or some write that could have been
//!   applied had seen it (its context covered it);
//! - nothing superseded comes back: no value an acknowledged write had seen is live;
//! - siblings stay bounded by write concurrency: live values are distinct values that
//!   clients wrote, no more than the writers plus the writes sent blind (no or an old
//!   context) plus the writes whose outcome their client never learned;
//! - every node holds the same layout history;
//! - CRDT keys: a counter holds at least the sum of its acknowledged increments and at most
//!   the sum of every attempt sent (a retry that reaches a replica which has not yet heard of
//!   the first attempt applies it again: request ids deduplicate only where the first
//!   attempt's record has arrived, as with any counter that is not coordinated); a set holds
//!   every acknowledged add of an element no one removed, and nothing never added.

use crate::client::Record;
use crate::node::SimNode;
use meridian_core::crdt::{Crdt, CrdtKind, Field, Op, Value};
use meridian_core::partition::{partition_of, storage_key};
use meridian_core::replica;
use meridian_core::{KeyspaceSpec, StoredObject, ValueKind};
use std::collections::BTreeMap as Map;
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
            match ks.kind.crdt() {
                Some(kind) => {
                    check_crdt(&name, kind, object.as_ref(), &writes, died, &mut violations)
                }
                None => check_key(&name, ks, &live, &writes, died, &mut violations),
            }
            if violations.len() > before
                && ks.kind.crdt().is_some()
                && std::env::var_os("MERIDIAN_SIM_VERBOSE").is_some()
            {
                for r in &writes {
                    eprintln!(
                        "  {name} update {:?} by c{} acked {} attempts {}",
                        r.ops, r.client, r.acked, r.attempts
                    );
                }
                for n in nodes {
                    let state = n.keeper().load(&skey).ok().flatten();
                    eprintln!(
                        "  node {} {} up {} inc {}: {}",
                        n.id,
                        n.dc,
                        n.up,
                        n.incarnation,
                        state.map(|o| o.describe()).unwrap_or_default()
                    );
                }
            } else if violations.len() > before
                && std::env::var_os("MERIDIAN_SIM_VERBOSE").is_some()
            {
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

fn check_crdt(
    name: &str,
    kind: CrdtKind,
    object: Option<&StoredObject>,
    writes: &[&Record],
    died: bool,
    violations: &mut Vec<String>,
) {
    let value = match object {
        None => Crdt::new(kind).value(),
        Some(StoredObject::Crdt(c)) => c.state.value(),
        Some(other) => {
            violations.push(format!("{name}: holds a {} object", other.kind_name()));
            return;
        }
    };
    let top = |r: &Record| r.ops.clone();
    match value {
        Value::Counter(v) => check_counter(name, v, writes, died, &top, violations),
        Value::Set(m) => check_set(name, &m, writes, died, &top, violations),
        Value::Map(fields) => {
            // The workload's fields (see `Client::crdt_ops`): each judged like a key of its
            // own type, over the operations that reached it.
            let inner = |path: &'static [&'static str]| {
                move |r: &Record| -> Vec<Op> {
                    let mut ops = r.ops.clone();
                    for step in path {
                        ops = ops
                            .into_iter()
                            .filter_map(|op| match op {
                                Op::Update { field, op } if field.name == *step => Some(*op),
                                _ => None,
                            })
                            .collect();
                    }
                    ops
                }
            };
            let get =
                |f: &Map<Field, Value>, n: &str, k: CrdtKind| f.get(&Field::new(n, k)).cloned();
            let visits = get(&fields, "visits", CrdtKind::Counter).unwrap_or(Value::Counter(0));
            if let Value::Counter(v) = visits {
                check_counter(
                    &format!("{name}.visits"),
                    v,
                    writes,
                    died,
                    &inner(&["visits"]),
                    violations,
                );
            }
            let tags = get(&fields, "tags", CrdtKind::Set).unwrap_or(Value::Set(Vec::new()));
            if let Value::Set(m) = tags {
                check_set(
                    &format!("{name}.tags"),
                    &m,
                    writes,
                    died,
                    &inner(&["tags"]),
                    violations,
                );
            }
            // Nothing disables the flag: an acknowledged enable keeps it on, and it is on
            // only if some enable was sent.
            let enables = inner(&["prefs", "dark"]);
            let sent = writes.iter().any(|r| !enables(r).is_empty());
            let kept = writes
                .iter()
                .filter(|r| r.acked && !(died && r.single_copy))
                .any(|r| !enables(r).is_empty());
            let dark = match get(&fields, "prefs", CrdtKind::Map) {
                Some(Value::Map(p)) => get(&p, "dark", CrdtKind::Flag) == Some(Value::Flag(true)),
                _ => false,
            };
            if (kept && !dark) || (dark && !sent) {
                violations.push(format!(
                    "{name}.prefs.dark is {dark}; an enable was sent: {sent}, acknowledged: {kept}"
                ));
            }
        }
        other => violations.push(format!("{name}: unexpected value {other:?}")),
    }
}

fn check_counter(
    name: &str,
    v: i64,
    writes: &[&Record],
    died: bool,
    ops: &dyn Fn(&Record) -> Vec<Op>,
    violations: &mut Vec<String>,
) {
    let amount = |r: &Record| -> i64 {
        ops(r)
            .iter()
            .map(|op| match op {
                Op::Increment(n) => *n,
                _ => 0,
            })
            .sum()
    };
    let attempted: i64 = writes
        .iter()
        .map(|r| amount(r) * i64::from(r.attempts))
        .sum();
    let acked: i64 = writes
        .iter()
        .filter(|r| r.acked && !(died && r.single_copy))
        .map(|r| amount(r))
        .sum();
    if v < acked || v > attempted {
        violations.push(format!(
            "{name}: counter is {v}; acknowledged increments sum to {acked}, attempts to \
             {attempted}"
        ));
    }
}

fn check_set(
    name: &str,
    members: &[serde_bytes::ByteBuf],
    writes: &[&Record],
    died: bool,
    ops: &dyn Fn(&Record) -> Vec<Op>,
    violations: &mut Vec<String>,
) {
    let elements = |r: &Record, add: bool| -> Vec<Vec<u8>> {
        ops(r)
            .into_iter()
            .flat_map(|op| match op {
                Op::Add(e) if add => e,
                Op::Remove(e) if !add => e,
                _ => Vec::new(),
            })
            .map(|b| b.into_vec())
            .collect()
    };
    let added: BTreeSet<Vec<u8>> = writes.iter().flat_map(|r| elements(r, true)).collect();
    let removed: BTreeSet<Vec<u8>> = writes.iter().flat_map(|r| elements(r, false)).collect();
    let members: BTreeSet<Vec<u8>> = members.iter().map(|b| b.to_vec()).collect();
    for m in members.difference(&added) {
        violations.push(format!("{name}: member {} was never added", show(m)));
    }
    for e in writes
        .iter()
        .filter(|r| r.acked && !(died && r.single_copy))
        .flat_map(|r| elements(r, true))
    {
        if !removed.contains(&e) && !members.contains(&e) {
            violations.push(format!(
                "{name}: acknowledged add of {} is lost (no one removed it)",
                show(&e)
            ));
        }
    }
}

fn show(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}
