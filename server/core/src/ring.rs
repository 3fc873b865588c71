//! Placement of partitions on nodes: the per-datacenter preference lists.
//!
//! Every datacenter holds all [`PARTITIONS`] partitions. For each partition it keeps an ordered
//! preference list of distinct nodes; a keyspace with replication factor `k` in that DC uses the
//! first `k` entries. Because any `k` may be in use, the laws below hold for *every* prefix:
//!
//! * **Rack diversity** (hard): the first `k` entries span `min(k, racks)` distinct racks.
//! * **Balance** (soft): over all partitions, a node's share of the first-`k` slots is its share
//!   of the DC's capacity, except where rack diversity makes that impossible (a rack can hold
//!   at most one of the first `racks` slots of a partition, and always holds exactly one when
//!   `k >= racks`); then it is the closest proportional allocation that the racks allow.
//! * **Minimal movement**: a membership change is applied to the *previous* assignment, which
//!   is kept wherever the laws allow, so a join or leave moves about the ideal amount.
//!
//! The assignment is a pure function of the member list and the previous assignment: no
//! randomness, no clock, no hash-map iteration order. Ties are broken by XXH3 of
//! (partition, node id), so every node and SDK computes the same lists.
//!
//! # How a datacenter is (re)computed
//!
//! Targets first: for every prefix `k`, the capacity-proportional share of the first `k` slots
//! of each node, clamped to what rack diversity allows (racks are water-filled, then their
//! nodes). Then rank by rank (`r = 0, 1, ...`), starting from the previous lists:
//!
//! 1. Every partition keeps a *projected* list: the ranks already decided, followed by what is
//!    left of its previous list in order (a node pushed down from an earlier rank, or the
//!    nearest one that can be promoted, where the previous occupant no longer fits). Where
//!    nothing is left, rank `r` gets the node furthest below its target.
//! 2. While some node's count for prefix `r + 1` is outside a 2% band around its target, a slot
//!    at rank `r` moves from a node above target to one below. Each candidate move is scored on
//!    the whole projected list it leads to: movement summed over all prefixes (a node new to
//!    the first `k` entries costs one, for each such `k`), plus the excess it would push onto
//!    later prefixes. Cheapest moves go first; chains through a third node (breadth-first
//!    search) are the last resort when no direct move fits the racks.
//! 3. Finally, any list that differs from its previous list's leftovers goes back to them if
//!    no node leaves its band by that: moves that balance turned out not to need are undone.
//!
//! Targets are cumulative (ranks `0..=r` together), so an error at one rank is made good at the
//! next instead of adding up, and every prefix stays balanced.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::actor::ActorId;
use crate::partition::PARTITIONS;

/// Longest preference list kept per partition and DC. Replication factors above this are not
/// placeable; lists are shorter only when the DC has fewer nodes.
pub const MAX_REPLICAS_PER_DC: usize = 5;

const P: usize = PARTITIONS as usize;
/// Fixed-point scale of targets, so that comparisons of deficits are exact integers.
const FP: i64 = 1 << 16;
/// Rebalancing leaves a node alone while its count for a prefix is within 1/BAND (2%) of its
/// target, rounded outwards. Chasing the last partition costs movement and buys nothing: the
/// contract is 5%. Fresh slots still go to whoever is furthest below the exact target.
const BAND: i64 = 50;
/// A departed node in a previous list; node indices within a DC are always below it.
const NONE: u16 = u16::MAX;
/// Placeholder in a projected list: "some node not chosen yet", counted as new everywhere.
const FRESH: u16 = u16::MAX - 1;

/// A node as placement sees it. Only these fields influence ownership (never liveness), so any
/// two nodes that agree on the member list agree on the owners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: ActorId,
    pub dc: String,
    pub rack: String,
    /// Relative weight of the node within its DC. Should be at least 1; 0 is treated as 1 so a
    /// member never owns nothing by accident.
    pub capacity: u32,
}

/// A membership change. These are the only events that change ownership, and each one that
/// changes something bumps the placement epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Adds a node, or updates its dc / rack / capacity if the id is already a member.
    Join(Member),
    /// Removes a node for good (decommission or remove), wherever it is.
    Leave(ActorId),
}

/// The preference lists of one datacenter.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DcRing {
    /// Sorted by id; slot values index into it.
    members: Vec<Member>,
    /// Length of every preference list: `min(members, MAX_REPLICAS_PER_DC)`.
    width: usize,
    /// `PARTITIONS * width` node indices, partition-major.
    slots: Vec<u16>,
}

impl fmt::Debug for DcRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: Vec<u8> = self.slots.iter().flat_map(|s| s.to_be_bytes()).collect();
        f.debug_struct("DcRing")
            .field("members", &self.members)
            .field("width", &self.width)
            .field("slots_xxh3", &format_args!("{:016x}", xxh3_64(&bytes)))
            .finish()
    }
}

impl DcRing {
    fn index_of(&self, id: &ActorId) -> Option<usize> {
        self.members.binary_search_by(|m| m.id.cmp(id)).ok()
    }

    fn row(&self, partition: usize) -> &[u16] {
        &self.slots[partition * self.width..(partition + 1) * self.width]
    }
}

/// Who owns which partition, in every datacenter, at one ownership epoch.
///
/// Laws: `from_changes` of the same list gives equal placements on every node; a change
/// touches only the datacenter(s) of the member it concerns; the epoch rises by one exactly
/// when a change alters the member list, so equal epochs from the same history mean equal
/// ownership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    epoch: u64,
    dcs: BTreeMap<String, DcRing>,
}

impl Placement {
    /// The placement before any member joined: epoch 0, owners of everything are nobody.
    pub fn empty() -> Self {
        Placement {
            epoch: 0,
            dcs: BTreeMap::new(),
        }
    }

    /// Applies one membership change to this placement.
    ///
    /// Only the datacenter(s) of the affected member are recomputed, starting from their
    /// current lists so that as little as possible moves; every other DC is left bit for bit
    /// unchanged. A change that changes nothing (joining with identical fields, leaving while
    /// not a member) returns an equal placement with the same epoch, so replays are harmless.
    /// A join with new fields updates the member (moving it to another DC if `dc` changed).
    ///
    /// Panics if a datacenter would exceed 65533 members (node indices are 16-bit).
    pub fn apply(&self, change: &Change) -> Placement {
        self.apply_all(std::slice::from_ref(change))
    }

    /// The placement reached by applying `changes` in order from [`Placement::empty`]. Every
    /// node that saw the same changes in the same order computes the same placement.
    pub fn from_changes(changes: &[Change]) -> Placement {
        changes
            .iter()
            .fold(Placement::empty(), |placement, change| {
                placement.apply(change)
            })
    }

    /// Applies several changes at once: each affected datacenter is recomputed once, from its
    /// current lists, with all of its changes (ordered by node id, a leave after a join of the
    /// same id). What a layout commit uses: the result depends only on the set of changes.
    pub fn apply_all(&self, changes: &[Change]) -> Placement {
        let mut joins: BTreeMap<ActorId, &Member> = BTreeMap::new();
        let mut leaves: Vec<ActorId> = Vec::new();
        for change in changes {
            match change {
                Change::Join(m) => {
                    joins.insert(m.id, m);
                }
                Change::Leave(id) => leaves.push(*id),
            }
        }
        let mut touched: BTreeMap<String, ()> = BTreeMap::new();
        for m in joins.values() {
            touched.insert(m.dc.clone(), ());
            if let Some(old) = self.member(&m.id) {
                touched.insert(old.dc.clone(), ());
            }
        }
        for id in &leaves {
            if let Some(old) = self.member(id) {
                touched.insert(old.dc.clone(), ());
            }
        }
        let mut next = self.clone();
        let mut changed = false;
        for dc in touched.keys() {
            let before = next.dcs.get(dc).map(|r| r.members.clone());
            let mut after = before.clone().unwrap_or_default();
            after.retain(|m| !joins.contains_key(&m.id) && !leaves.contains(&m.id));
            after.extend(
                joins
                    .values()
                    .filter(|m| m.dc == *dc && !leaves.contains(&m.id))
                    .map(|m| (*m).clone()),
            );
            after.sort_by_key(|m| m.id);
            if before.as_ref() == Some(&after) || (before.is_none() && after.is_empty()) {
                continue;
            }
            changed = true;
            next.recompute(dc, |members| *members = after);
        }
        if changed {
            next.epoch += 1;
        }
        next
    }

    /// Canonical bytes: the placement replicated verbatim inside a layout version.
    pub fn encode(&self) -> Vec<u8> {
        // Plain owned data into a Vec cannot fail to serialise.
        postcard::to_extend(self, Vec::new()).unwrap_or_default()
    }

    /// Decodes and checks bytes from a peer: every list names distinct members of its DC, and
    /// lists are as long as the DC allows. A placement that fails these checks is refused,
    /// never used.
    pub fn decode(bytes: &[u8]) -> Result<Placement, String> {
        let p: Placement = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        p.validate()?;
        Ok(p)
    }

    /// The checks [`Placement::decode`] makes, for a placement decoded as part of something
    /// larger.
    pub fn validate(&self) -> Result<(), String> {
        for (dc, ring) in &self.dcs {
            let n = ring.members.len();
            if n == 0 || n >= usize::from(FRESH) {
                return Err(format!("datacenter {dc} has {n} members"));
            }
            if ring.members.windows(2).any(|w| w[0].id >= w[1].id)
                || ring.members.iter().any(|m| m.dc != *dc)
            {
                return Err(format!("datacenter {dc}: members unsorted or misplaced"));
            }
            if ring.width != n.min(MAX_REPLICAS_PER_DC) || ring.slots.len() != P * ring.width {
                return Err(format!("datacenter {dc}: wrong list width"));
            }
            for row in ring.slots.chunks(ring.width) {
                for (i, s) in row.iter().enumerate() {
                    if usize::from(*s) >= n || row[..i].contains(s) {
                        return Err(format!("datacenter {dc}: a list names a bad node"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Ownership epoch: bumped by every change that altered the member list, so a node can
    /// tell whether its peer routes with the same map.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Datacenters with at least one member, in name order.
    pub fn dcs(&self) -> impl Iterator<Item = &str> {
        self.dcs.keys().map(String::as_str)
    }

    /// All members, sorted by (dc, id), so listings are identical on every node.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.dcs.values().flat_map(|ring| ring.members.iter())
    }

    /// The member with this id, in whichever DC it lives.
    pub fn member(&self, id: &ActorId) -> Option<&Member> {
        self.dcs
            .values()
            .find_map(|ring| ring.index_of(id).map(|i| &ring.members[i]))
    }

    /// First `rf` nodes of the partition's preference list in `dc` (fewer if the DC is smaller;
    /// empty if unknown dc).
    ///
    /// The result names distinct nodes on `min(len, racks)` distinct racks, and is a prefix of
    /// the result for any larger `rf`, so raising a keyspace's factor only adds replicas.
    pub fn owners(&self, dc: &str, partition: u16, rf: usize) -> Vec<ActorId> {
        self.owners_iter(dc, partition, rf).collect()
    }

    /// [`Placement::owners`] without the allocation, for loops over thousands of partitions.
    pub fn owners_iter<'a>(
        &'a self,
        dc: &str,
        partition: u16,
        rf: usize,
    ) -> impl Iterator<Item = ActorId> + 'a {
        let partition = usize::from(partition);
        let ring = self.dcs.get(dc).filter(|_| partition < P);
        let row = ring.map_or(&[][..], |r| {
            let row = r.row(partition);
            &row[..rf.min(row.len())]
        });
        row.iter()
            .filter_map(move |&i| ring.map(|r| r.members[usize::from(i)].id))
    }

    /// Partitions for which `node` is among the first `rf` owners in its DC, ascending.
    ///
    /// Over all nodes of a DC these lists cover every partition exactly `min(rf, len)` times.
    pub fn partitions_of(&self, node: &ActorId, rf: usize) -> Vec<u16> {
        let Some((ring, index)) = self
            .dcs
            .values()
            .find_map(|ring| ring.index_of(node).map(|i| (ring, i)))
        else {
            return Vec::new();
        };
        let k = rf.min(ring.width);
        (0..P)
            .filter(|&p| ring.row(p)[..k].contains(&(index as u16)))
            .map(|p| p as u16)
            .collect()
    }

    /// Rebuilds `dc` from its current lists after `edit` changed its member list.
    fn recompute(&mut self, dc: &str, edit: impl FnOnce(&mut Vec<Member>)) {
        let prev = self.dcs.remove(dc);
        let mut members = prev
            .as_ref()
            .map(|ring| ring.members.clone())
            .unwrap_or_default();
        edit(&mut members);
        if members.is_empty() {
            return;
        }
        members.sort_by_key(|m| m.id);
        let ring = assign(members, prev.as_ref());
        self.dcs.insert(dc.to_owned(), ring);
    }
}

/// Cumulative targets, in `FP` units: `targets[k][i]` is how many of the first `k` slots, over
/// all partitions, node `i` should hold.
///
/// Racks are filled first (capacity-proportional, clamped to what diversity allows), then the
/// nodes of each rack share the rack's slots in proportion to capacity, each at most once per
/// partition. With `k < racks`, a rack holds at most one of the first `k` slots of a partition;
/// with `k >= racks` it holds exactly one of the first `racks` slots and may repeat after that
/// only with other nodes of its own.
fn prefix_targets(caps: &[f64], rack_of: &[usize], racks: usize, width: usize) -> Vec<Vec<i64>> {
    let n = caps.len();
    let p = P as f64;
    let mut rack_weight = vec![0.0; racks];
    let mut rack_nodes: Vec<Vec<usize>> = vec![Vec::new(); racks];
    for i in 0..n {
        rack_weight[rack_of[i]] += caps[i];
        rack_nodes[rack_of[i]].push(i);
    }
    let mut out = vec![vec![0i64; n]; width + 1];
    for (k, out_k) in out.iter_mut().enumerate().skip(1) {
        let (lo, hi): (Vec<f64>, Vec<f64>) = (0..racks)
            .map(|z| {
                if k < racks {
                    (0.0, p)
                } else {
                    let spare = (k - racks + 1).min(rack_nodes[z].len());
                    (p, p * spare as f64)
                }
            })
            .unzip();
        let rack_total = water_fill(&rack_weight, &lo, &hi, k as f64 * p);
        for (z, nodes) in rack_nodes.iter().enumerate() {
            let weights: Vec<f64> = nodes.iter().map(|&i| caps[i]).collect();
            let zeros = vec![0.0; nodes.len()];
            let full = vec![p; nodes.len()];
            let shares = water_fill(&weights, &zeros, &full, rack_total[z]);
            for (&i, share) in nodes.iter().zip(shares) {
                out_k[i] = (share * FP as f64).round() as i64;
            }
        }
    }
    out
}

/// `clamp(lambda * w[i], lo[i], hi[i])` for the `lambda` at which the sum is `total`: the
/// proportional allocation closest to `w` within the bounds. Requires `lo <= hi`, positive
/// weights and `sum(lo) <= total <= sum(hi)`. Bisection with a fixed number of steps keeps it
/// bit-for-bit reproducible (IEEE-754 basic operations only).
fn water_fill(w: &[f64], lo: &[f64], hi: &[f64], total: f64) -> Vec<f64> {
    let alloc = |lambda: f64| -> Vec<f64> {
        w.iter()
            .zip(lo.iter().zip(hi))
            .map(|(w, (lo, hi))| (lambda * w).clamp(*lo, *hi))
            .collect()
    };
    let mut low = 0.0;
    let mut high = w
        .iter()
        .zip(hi)
        .map(|(w, hi)| hi / w)
        .fold(0.0_f64, f64::max);
    for _ in 0..128 {
        let mid = (low + high) / 2.0;
        if alloc(mid).iter().sum::<f64>() < total {
            low = mid;
        } else {
            high = mid;
        }
    }
    alloc(high)
}

type Row = [u16; MAX_REPLICAS_PER_DC];

/// Per-DC state while (re)computing the preference lists.
///
/// `rows` holds, for every partition, the ranks already decided followed by a *projection* of
/// the remaining ranks: what the partition would get if it just kept, in order, what is left of
/// its previous list (`FRESH` where nothing fits). `counts[k][i]` is how many projected rows
/// have node `i` among their first `k` entries, so the effect of a candidate move on every
/// prefix, decided or not, is known before the move is made.
struct Builder {
    n: usize,
    width: usize,
    /// Ranks below this must be on pairwise distinct racks: `min(width, racks)`.
    diverse: usize,
    rack: Vec<u16>,
    /// `targets[k][i]`, see [`prefix_targets`], and its integer floor and ceiling.
    targets: Vec<Vec<i64>>,
    floor: Vec<Vec<i64>>,
    ceil: Vec<Vec<i64>>,
    /// `P * n` tie-break keys: XXH3 of (partition, node id).
    ties: Vec<u64>,
    /// Previous list of each partition, as (node, rank); `NONE` for departed nodes.
    old: Vec<[(u16, u8); MAX_REPLICAS_PER_DC]>,
    rows: Vec<Row>,
    counts: Vec<Vec<i64>>,
}

fn assign(members: Vec<Member>, prev: Option<&DcRing>) -> DcRing {
    let n = members.len();
    assert!(n < usize::from(FRESH), "too many nodes in one datacenter");
    let width = n.min(MAX_REPLICAS_PER_DC);

    let mut rack_names: BTreeMap<&str, usize> =
        members.iter().map(|m| (m.rack.as_str(), 0)).collect();
    for (i, index) in rack_names.values_mut().enumerate() {
        *index = i;
    }
    let rack_of: Vec<usize> = members
        .iter()
        .map(|m| rack_names[m.rack.as_str()])
        .collect();
    let caps: Vec<f64> = members
        .iter()
        .map(|m| f64::from(m.capacity.max(1)))
        .collect();
    let racks = rack_names.len();

    let mut ties = Vec::with_capacity(P * n);
    let mut key = [0u8; 18];
    for p in 0..P {
        key[..2].copy_from_slice(&(p as u16).to_be_bytes());
        for m in &members {
            key[2..].copy_from_slice(m.id.as_bytes());
            ties.push(xxh3_64(&key));
        }
    }

    let mut old = vec![[(NONE, 0u8); MAX_REPLICAS_PER_DC]; P];
    if let Some(prev) = prev {
        let remap: Vec<u16> = prev
            .members
            .iter()
            .map(|m| {
                members
                    .binary_search_by(|x| x.id.cmp(&m.id))
                    .map_or(NONE, |i| i as u16)
            })
            .collect();
        for (p, entries) in old.iter_mut().enumerate() {
            for (rank, &node) in prev.row(p).iter().enumerate() {
                entries[rank] = (remap[usize::from(node)], rank as u8);
            }
        }
    }

    let targets = prefix_targets(&caps, &rack_of, racks, width);
    let floor = targets
        .iter()
        .map(|t| t.iter().map(|&t| (t - t / BAND).div_euclid(FP)).collect())
        .collect();
    let ceil = targets
        .iter()
        .map(|t| {
            t.iter()
                .map(|&t| (t + t / BAND + FP - 1).div_euclid(FP))
                .collect()
        })
        .collect();
    let mut builder = Builder {
        n,
        width,
        diverse: width.min(racks),
        rack: rack_of.iter().map(|&z| z as u16).collect(),
        targets,
        floor,
        ceil,
        ties,
        old,
        rows: vec![[FRESH; MAX_REPLICAS_PER_DC]; P],
        counts: vec![vec![0; n]; width + 1],
    };
    for p in 0..P {
        let mut row = [FRESH; MAX_REPLICAS_PER_DC];
        builder.complete(p, &mut row, 0, Fill::Keep);
        builder.set_row(p, row);
    }
    for rank in 0..width {
        builder.fill_rank(rank);
    }
    builder.revert();
    let slots = builder
        .rows
        .iter()
        .flat_map(|row| row[..width].iter().copied())
        .collect();
    DcRing {
        members,
        width,
        slots,
    }
}

/// How [`Builder::complete`] chooses among the leftovers of a previous list.
#[derive(Clone, Copy)]
enum Fill {
    Keep,
    Cheapest,
}

/// Which rebalancing move a rank needs, see [`Builder::wanted`].
#[derive(Clone, Copy)]
enum Need {
    /// Some node is above its band: it gives slots to nodes short of their exact target.
    Excess,
    /// Some node is below its band: it takes slots from nodes past their exact target.
    Shortfall,
}

impl Builder {
    /// Whether `node` may follow `before` in a list (distinct node; distinct rack while
    /// `before` is shorter than `diverse`). `FRESH` entries stand for a node of a fitting rack.
    fn fits(&self, before: &[u16], node: u16) -> bool {
        !before.contains(&node)
            && (before.len() >= self.diverse
                || before.iter().all(|&x| {
                    x == FRESH || self.rack[usize::from(x)] != self.rack[usize::from(node)]
                }))
    }

    /// Rank of `node` in the previous list of `p`, `width` if it was not there.
    fn old_rank(&self, p: usize, node: u16) -> usize {
        self.old[p]
            .iter()
            .find(|&&(x, _)| x == node)
            .map_or(self.width, |&(_, s)| usize::from(s).min(self.width))
    }

    /// Movement caused by a row: for every prefix, the entries that were not in the previous
    /// prefix. An entry at `rank` that was at `old_rank` before is new in prefixes
    /// `rank + 1 ..= old_rank`.
    fn row_cost(&self, p: usize, row: &Row) -> i64 {
        (0..self.width)
            .map(|rank| {
                let was = if row[rank] == FRESH {
                    self.width
                } else {
                    self.old_rank(p, row[rank])
                };
                was.saturating_sub(rank) as i64
            })
            .sum()
    }

    /// Projects ranks `from..width` of `row` from what is left of the previous list of `p`,
    /// `FRESH` where nothing fits. At each rank it takes the cheapest leftover: the previous
    /// occupant, or one pushed down from an earlier rank, cost nothing; a promotion costs the
    /// prefixes it enters. Among equally cheap ones `Fill::Keep` prefers the previous occupant
    /// and `Fill::Cheapest` the node furthest below its target for that prefix, so a node
    /// pushed down by a move lands where it is wanted.
    fn complete(&self, p: usize, row: &mut Row, from: usize, fill: Fill) {
        for rank in from..self.width {
            let mut best: Option<((i64, i64, bool, u8), u16)> = None;
            for &(node, was) in &self.old[p] {
                if node == NONE || !self.fits(&row[..rank], node) {
                    continue;
                }
                let cost = usize::from(was).min(self.width).saturating_sub(rank) as i64;
                let need = match fill {
                    Fill::Keep => 0,
                    Fill::Cheapest => -self.deficit(rank, node),
                };
                let key = (cost, need, usize::from(was) != rank, was);
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, node));
                }
            }
            row[rank] = best.map_or(FRESH, |(_, node)| node);
        }
    }

    /// Replaces the row of `p`, keeping `counts` in step.
    fn set_row(&mut self, p: usize, row: Row) {
        let before = self.rows[p];
        for rank in 0..self.width {
            for k in rank + 1..=self.width {
                if before[rank] != FRESH {
                    self.counts[k][usize::from(before[rank])] -= 1;
                }
                if row[rank] != FRESH {
                    self.counts[k][usize::from(row[rank])] += 1;
                }
            }
        }
        self.rows[p] = row;
    }

    /// Slots above the ceiling, summed over nodes and over prefixes `from..=width`, after
    /// replacing `before` by `after` in one row: the imbalance later ranks would have to undo.
    fn excess_change(&self, from: usize, before: &Row, after: &Row) -> i64 {
        let mut change = 0;
        for k in from.max(1)..=self.width {
            for rank in 0..k {
                for (node, delta) in [(before[rank], -1), (after[rank], 1)] {
                    if node == FRESH || before[..k].contains(&node) == after[..k].contains(&node) {
                        continue;
                    }
                    let i = usize::from(node);
                    let (count, ceil) = (self.counts[k][i], self.ceil[k][i]);
                    // Crossing the ceiling upwards costs, coming back down towards it gains.
                    if delta > 0 && count >= ceil {
                        change += 1;
                    } else if delta < 0 && count > ceil {
                        change -= 1;
                    }
                }
            }
        }
        change
    }

    /// How far `node` is below its cumulative target for ranks `0..=rank` (FP units).
    fn deficit(&self, rank: usize, node: u16) -> i64 {
        let i = usize::from(node);
        self.targets[rank + 1][i] - self.counts[rank + 1][i] * FP
    }

    /// Decides rank `rank` of every partition; ranks below it are final already.
    fn fill_rank(&mut self, rank: usize) {
        let mut order: Vec<(u64, usize)> = (0..P)
            .map(|p| {
                let key = [rank as u8, (p >> 8) as u8, p as u8];
                (xxh3_64(&key), p)
            })
            .collect();
        order.sort_unstable();
        let order: Vec<usize> = order.into_iter().map(|(_, p)| p).collect();

        // Where the projection has no node, take the neediest one that fits.
        for &p in &order {
            if self.rows[p][rank] != FRESH {
                continue;
            }
            let before = &self.rows[p][..rank];
            let node = (0..self.n as u16)
                .filter(|&y| self.fits(before, y))
                .max_by_key(|&y| {
                    (
                        self.deficit(rank, y),
                        std::cmp::Reverse(self.ties[p * self.n + usize::from(y)]),
                    )
                });
            // A node always fits: ranks below `diverse` leave a rack unused, and there are
            // more nodes than ranks.
            let Some(node) = node else {
                debug_assert!(false, "no node fits");
                continue;
            };
            let mut row = self.rows[p];
            row[rank] = node;
            self.complete(p, &mut row, rank + 1, Fill::Cheapest);
            self.set_row(p, row);
        }

        // Hand slots from nodes above target to nodes below it, cheapest moves first. Scores
        // go stale as counts change, so a move is re-scored before it is made and kept only if
        // it got no worse; the rest wait for the next round.
        for _round in 0..16 {
            if !self.unbalanced(rank) {
                break;
            }
            let mut moves: Vec<((i64, i64), usize)> = order
                .iter()
                .filter_map(|&p| self.best_move(p, rank).map(|(score, _)| (score, p)))
                .collect();
            moves.sort_by_key(|&(score, _)| score);
            let mut made = 0;
            for (score, p) in moves {
                if let Some((now, row)) = self.best_move(p, rank)
                    && now <= score
                {
                    self.set_row(p, row);
                    made += 1;
                }
            }
            if made == 0 {
                break;
            }
        }
        self.augment(rank);
    }

    /// Node `i` holds more of the first `rank + 1` slots than its band allows.
    fn above(&self, rank: usize, i: usize) -> bool {
        self.counts[rank + 1][i] > self.ceil[rank + 1][i]
    }

    /// Node `i` holds fewer of the first `rank + 1` slots than its band allows.
    fn below(&self, rank: usize, i: usize) -> bool {
        self.counts[rank + 1][i] < self.floor[rank + 1][i]
    }

    /// Node `i` holds more (`Ordering::Greater`) or fewer of the first `rank + 1` slots than
    /// its exact target.
    fn versus_target(&self, rank: usize, i: usize) -> std::cmp::Ordering {
        (self.counts[rank + 1][i] * FP).cmp(&self.targets[rank + 1][i])
    }

    /// The pairs of nodes a slot at `rank` may go between: from a node above its band to one
    /// short of its target, or from one past its target to one below its band. Moving only
    /// between such pairs never shuffles slots among nodes that are already within the band.
    fn wanted(&self, rank: usize, from: usize, to: usize, need: Need) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        from != to
            && match need {
                Need::Excess => self.above(rank, from) && self.versus_target(rank, to) == Less,
                Need::Shortfall => {
                    self.below(rank, to) && self.versus_target(rank, from) == Greater
                }
            }
    }

    /// Which kind of move rank `rank` still needs, if any.
    fn unbalanced_by(&self, rank: usize) -> Option<Need> {
        use std::cmp::Ordering::{Greater, Less};
        let any = |f: &dyn Fn(usize) -> bool| (0..self.n).any(f);
        if any(&|i| self.above(rank, i)) && any(&|i| self.versus_target(rank, i) == Less) {
            Some(Need::Excess)
        } else if any(&|i| self.below(rank, i)) && any(&|i| self.versus_target(rank, i) == Greater)
        {
            Some(Need::Shortfall)
        } else {
            None
        }
    }

    fn unbalanced(&self, rank: usize) -> bool {
        self.unbalanced_by(rank).is_some()
    }

    /// The best row for partition `p` in which the slot at `rank` goes to a node that needs
    /// it more than its holder, scored by (movement plus imbalance pushed onto later ranks,
    /// movement): both summed over all prefixes of the projected row.
    fn best_move(&self, p: usize, rank: usize) -> Option<((i64, i64), Row)> {
        let current = self.rows[p];
        let x = current[rank];
        let xi = usize::from(x);
        let need = if self.above(rank, xi) {
            Need::Excess
        } else if self.versus_target(rank, xi) == std::cmp::Ordering::Greater {
            Need::Shortfall
        } else {
            return None;
        };
        let base = self.row_cost(p, &current);
        let mut best: Option<((i64, i64, i64, u64), Row)> = None;
        for y in 0..self.n as u16 {
            let yi = usize::from(y);
            if !self.wanted(rank, xi, yi, need) || !self.fits(&current[..rank], y) {
                continue;
            }
            let mut row = current;
            row[rank] = y;
            self.complete(p, &mut row, rank + 1, Fill::Cheapest);
            let movement = self.row_cost(p, &row) - base;
            let score = movement + self.excess_change(rank + 2, &current, &row);
            let key = (
                score,
                movement,
                -self.deficit(rank, y),
                self.ties[p * self.n + yi],
            );
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, row));
            }
        }
        best.map(|((score, movement, _, _), row)| ((score, movement), row))
    }

    /// Takes back moves that balance turned out not to need: every row that differs from
    /// what is left of its previous list returns to it if no node, at any prefix, leaves its
    /// band (or goes further out of it) by that. Biggest savings first.
    fn revert(&mut self) {
        let mut candidates: Vec<(i64, usize)> = (0..P)
            .filter_map(|p| {
                let mut row = [FRESH; MAX_REPLICAS_PER_DC];
                self.complete(p, &mut row, 0, Fill::Keep);
                let saving = self.row_cost(p, &self.rows[p]) - self.row_cost(p, &row);
                (saving > 0 && !row[..self.width].contains(&FRESH)).then_some((-saving, p))
            })
            .collect();
        candidates.sort_unstable();
        for (_, p) in candidates {
            let mut row = [FRESH; MAX_REPLICAS_PER_DC];
            self.complete(p, &mut row, 0, Fill::Keep);
            if self.keeps_bands(&self.rows[p], &row) {
                self.set_row(p, row);
            }
        }
    }

    /// Whether replacing row `before` by `after` keeps every node whose count changes within
    /// its band at every prefix (or, if it is outside already, brings it no further out).
    fn keeps_bands(&self, before: &Row, after: &Row) -> bool {
        for k in 1..=self.width {
            for rank in 0..k {
                for (node, delta) in [(before[rank], -1), (after[rank], 1)] {
                    if node == FRESH || before[..k].contains(&node) == after[..k].contains(&node) {
                        continue;
                    }
                    let i = usize::from(node);
                    let now = self.counts[k][i];
                    let ok = if delta > 0 {
                        now < self.ceil[k][i]
                    } else {
                        now > self.floor[k][i]
                    };
                    if !ok {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Last resort for a rank the direct moves could not balance: moves slots along chains
    /// `x -> z -> ... -> y` (each step a partition where the next node fits), found by
    /// breadth-first search from the nodes with too many slots to those with too few.
    fn augment(&mut self, rank: usize) {
        let n = self.n;
        // For each node, the partitions it holds at this rank (lazily cleaned up).
        let mut held_at: Vec<Vec<usize>> = vec![Vec::new(); n];
        for p in 0..P {
            held_at[usize::from(self.rows[p][rank])].push(p);
        }
        for _ in 0..P {
            let Some(need) = self.unbalanced_by(rank) else {
                return;
            };
            let sources: Vec<usize> = (0..n)
                .filter(|&i| (0..n).any(|j| self.wanted(rank, i, j, need)))
                .collect();
            let sinks: Vec<usize> = (0..n)
                .filter(|&j| (0..n).any(|i| self.wanted(rank, i, j, need)))
                .collect();
            // BFS over nodes; an edge a -> b is a partition held by a at this rank where b fits.
            let mut via: Vec<Option<(usize, usize)>> = vec![None; n];
            let mut seen = vec![false; n];
            let mut queue = std::collections::VecDeque::new();
            for &s in &sources {
                seen[s] = true;
                queue.push_back(s);
            }
            let mut found = None;
            'bfs: while let Some(a) = queue.pop_front() {
                held_at[a].retain(|&p| usize::from(self.rows[p][rank]) == a);
                for &p in &held_at[a] {
                    let before = &self.rows[p][..rank];
                    for b in 0..n {
                        if !seen[b] && self.fits(before, b as u16) {
                            seen[b] = true;
                            via[b] = Some((a, p));
                            if sinks.contains(&b) {
                                found = Some(b);
                                break 'bfs;
                            }
                            queue.push_back(b);
                        }
                    }
                }
            }
            let Some(mut b) = found else {
                return;
            };
            while let Some((a, p)) = via[b] {
                let mut row = self.rows[p];
                row[rank] = b as u16;
                self.complete(p, &mut row, rank + 1, Fill::Cheapest);
                self.set_row(p, row);
                held_at[b].push(p);
                b = a;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn node(i: u32) -> ActorId {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        bytes[15] = 0x5a;
        ActorId::from_bytes(bytes)
    }

    fn member(i: u32, dc: &str, rack: &str, capacity: u32) -> Member {
        Member {
            id: node(i),
            dc: dc.to_owned(),
            rack: rack.to_owned(),
            capacity,
        }
    }

    fn join(i: u32, dc: &str, rack: &str, capacity: u32) -> Change {
        Change::Join(member(i, dc, rack, capacity))
    }

    /// Distinct nodes in every list, rack diversity of every prefix, list length.
    fn check_lists(placement: &Placement) {
        for (dc, ring) in &placement.dcs {
            let racks: BTreeSet<&str> = ring.members.iter().map(|m| m.rack.as_str()).collect();
            assert_eq!(ring.width, ring.members.len().min(MAX_REPLICAS_PER_DC));
            assert_eq!(ring.slots.len(), P * ring.width);
            for p in 0..P {
                let owners = placement.owners(dc, p as u16, MAX_REPLICAS_PER_DC);
                assert_eq!(owners.len(), ring.width);
                let distinct: BTreeSet<_> = owners.iter().collect();
                assert_eq!(
                    distinct.len(),
                    owners.len(),
                    "{dc} partition {p} repeats a node"
                );
                for k in 1..=owners.len() {
                    let spanned: BTreeSet<&str> = owners[..k]
                        .iter()
                        .map(|id| placement.member(id).map(|m| m.rack.as_str()).unwrap_or("?"))
                        .collect();
                    assert_eq!(
                        spanned.len(),
                        k.min(racks.len()),
                        "{dc} partition {p}: first {k} owners span too few racks"
                    );
                }
            }
        }
    }

    /// Prints and checks each node's share of the first `rf` slots for rf = 1..=3.
    /// Returns the largest relative deviation seen where balance is feasible.
    fn check_balance(label: &str, placement: &Placement, dc: &str) -> f64 {
        let ring = &placement.dcs[dc];
        let caps: Vec<f64> = ring
            .members
            .iter()
            .map(|m| f64::from(m.capacity.max(1)))
            .collect();
        let racks: BTreeSet<&str> = ring.members.iter().map(|m| m.rack.as_str()).collect();
        let targets = ring_targets(ring);
        let total_cap: f64 = caps.iter().sum();
        let mut worst = 0.0_f64;
        println!(
            "== balance: {label} ({} nodes, {} racks)",
            ring.members.len(),
            racks.len()
        );
        for (rf, target_rf) in targets.iter().enumerate().take(4).skip(1) {
            let mut counts = vec![0usize; ring.members.len()];
            for p in 0..P {
                for &i in &ring.row(p)[..rf] {
                    counts[usize::from(i)] += 1;
                }
            }
            let slots = (rf * P) as f64;
            for (i, m) in ring.members.iter().enumerate() {
                let cap_share = caps[i] / total_cap;
                let ideal = cap_share * slots;
                let target = target_rf[i] as f64 / FP as f64;
                let share = counts[i] as f64 / slots;
                let dev = (share - cap_share) / cap_share;
                let feasible = (target - ideal).abs() < 1e-6 * ideal;
                println!(
                    "  rf={rf} node={:<2} rack={} cap={} cap_share={:6.2}% replica_share={:6.2}% dev={:+6.2}%{}",
                    u32::from_be_bytes([m.id.0[0], m.id.0[1], m.id.0[2], m.id.0[3]]),
                    m.rack,
                    m.capacity,
                    100.0 * cap_share,
                    100.0 * share,
                    100.0 * dev,
                    if feasible {
                        String::new()
                    } else {
                        format!(
                            "  (rack-limited: best possible dev {:+.2}%)",
                            100.0 * (target - ideal) / ideal
                        )
                    }
                );
                if feasible {
                    worst = worst.max(dev.abs());
                    assert!(
                        dev.abs() <= 0.05,
                        "{label}: rf={rf} node {i} deviates {dev}"
                    );
                } else {
                    // As close as the racks allow: within 5% (of the ideal) of the optimum.
                    let off = (counts[i] as f64 - target).abs() / ideal;
                    assert!(
                        off <= 0.05,
                        "{label}: rf={rf} node {i} is {off} off its optimum"
                    );
                }
            }
        }
        worst
    }

    /// Replicas (within the first `rf` of each list) whose owner is new after the change.
    fn moved(before: &Placement, after: &Placement, dc: &str, rf: usize) -> usize {
        (0..P as u16)
            .map(|p| {
                let old = before.owners(dc, p, rf);
                after
                    .owners(dc, p, rf)
                    .iter()
                    .filter(|id| !old.contains(id))
                    .count()
            })
            .sum()
    }

    fn dc_changes(dc: &str, first: u32, n: u32, capacity: impl Fn(u32) -> u32) -> Vec<Change> {
        (0..n)
            .map(|i| join(first + i, dc, &format!("r{}", i % 3), capacity(i)))
            .collect()
    }

    #[test]
    fn determinism_and_isolation() {
        let mut changes = dc_changes("east", 0, 6, |i| 1 + i % 3);
        changes.extend(dc_changes("west", 100, 5, |_| 2));
        let a = Placement::from_changes(&changes);
        let b = Placement::from_changes(&changes);
        assert_eq!(a, b);
        assert_eq!(a.epoch(), 11);
        assert_eq!(a.dcs().collect::<Vec<_>>(), ["east", "west"]);
        let listed: Vec<(String, ActorId)> = a.members().map(|m| (m.dc.clone(), m.id)).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        check_lists(&a);

        // Replays and unknown leaves change nothing, not even the epoch.
        assert_eq!(a.apply(&changes[3]), a);
        assert_eq!(a.apply(&Change::Leave(node(999))), a);

        // A change in one DC leaves the other bit for bit unchanged.
        for change in [join(6, "east", "r1", 3), Change::Leave(node(2))] {
            let next = a.apply(&change);
            assert_eq!(next.epoch(), a.epoch() + 1);
            assert_eq!(next.dcs["west"], a.dcs["west"]);
            let west_moved = moved(&a, &next, "west", 5);
            let east_moved = moved(&a, &next, "east", 3);
            println!(
                "{change:?}: east moved {east_moved} replicas (rf 3), west moved {west_moved}"
            );
            assert_eq!(west_moved, 0);
            assert!(east_moved > 0);
        }
        // A capacity update is a change too, recomputed from the current lists.
        let heavier = a.apply(&join(4, "east", "r1", 4));
        assert_eq!(heavier.epoch(), a.epoch() + 1);
        assert_eq!(heavier.member(&node(4)).map(|m| m.capacity), Some(4));
        assert_eq!(heavier.dcs["west"], a.dcs["west"]);
        check_lists(&heavier);
        // Moving a node to another DC changes both, and only those.
        let moved_dc = a.apply(&join(1, "west", "r9", 1));
        assert!(moved_dc.member(&node(1)).is_some_and(|m| m.dc == "west"));
        assert_eq!(moved_dc.dcs["east"].members.len(), 5);
        check_lists(&moved_dc);

        // Queries.
        assert!(a.owners("nowhere", 0, 3).is_empty());
        assert_eq!(a.owners("east", 7, 9).len(), 5);
        assert_eq!(a.owners("east", 7, 2), a.owners("east", 7, 5)[..2]);
        let total: usize = a
            .members()
            .filter(|m| m.dc == "east")
            .map(|m| a.partitions_of(&m.id, 3).len())
            .sum();
        assert_eq!(total, 3 * P);
        assert!(a.partitions_of(&node(999), 3).is_empty());
        for p in a.partitions_of(&node(3), 2) {
            assert!(a.owners("east", p, 2).contains(&node(3)));
        }
        // Emptying a DC removes it.
        let gone = (100..105).fold(a.clone(), |pl, i| pl.apply(&Change::Leave(node(i))));
        assert_eq!(gone.dcs().collect::<Vec<_>>(), ["east"]);
    }

    #[test]
    fn distinct_nodes_small_and_large_dcs() {
        for n in 1..=8 {
            for racks in 1..=4 {
                let changes: Vec<Change> = (0..n)
                    .map(|i| join(i, "dc", &format!("r{}", i % racks), 1 + i % 2))
                    .collect();
                check_lists(&Placement::from_changes(&changes));
            }
        }
    }

    #[test]
    fn balance_equal_capacities() {
        let mut worst = 0.0_f64;
        for n in 3..=6 {
            let placement = Placement::from_changes(&dc_changes("dc", 0, n, |_| 1));
            check_lists(&placement);
            worst = worst.max(check_balance(&format!("{n} equal nodes"), &placement, "dc"));
        }
        println!(
            "worst feasible deviation, equal capacities: {:.2}%",
            100.0 * worst
        );
    }

    #[test]
    fn balance_unequal_capacities() {
        let changes: Vec<Change> = (0..4)
            .map(|i| join(i, "dc", &format!("r{i}"), i + 1))
            .collect();
        let placement = Placement::from_changes(&changes);
        check_lists(&placement);
        let worst = check_balance("capacities 1,2,3,4 on 4 racks", &placement, "dc");
        let changes: Vec<Change> = (0..8)
            .map(|i| join(i, "dc", &format!("r{}", i % 3), 1 + i % 4))
            .collect();
        let placement = Placement::from_changes(&changes);
        check_lists(&placement);
        let worst = worst.max(check_balance(
            "capacities 1..4 x2 on 3 racks",
            &placement,
            "dc",
        ));
        println!(
            "worst feasible deviation, unequal capacities: {:.2}%",
            100.0 * worst
        );
    }

    #[test]
    fn balance_unequal_racks() {
        // Racks of 1, 2 and 3 equal nodes: from rf 3 on, the lone node must be everywhere.
        let racks = ["a", "b", "b", "c", "c", "c"];
        let changes: Vec<Change> = racks
            .iter()
            .zip(0..)
            .map(|(r, i)| join(i, "dc", r, 1))
            .collect();
        let placement = Placement::from_changes(&changes);
        check_lists(&placement);
        check_balance("racks of 1, 2, 3 nodes", &placement, "dc");
        // A single small node alone on its rack, with unequal capacities elsewhere.
        let changes = [
            join(0, "dc", "a", 1),
            join(1, "dc", "b", 4),
            join(2, "dc", "b", 2),
            join(3, "dc", "c", 3),
            join(4, "dc", "c", 3),
            join(5, "dc", "c", 1),
        ];
        let placement = Placement::from_changes(&changes);
        check_lists(&placement);
        check_balance("small lone rack, unequal capacities", &placement, "dc");
    }

    /// `prefix_targets` of a DC as the placement sees it.
    fn ring_targets(ring: &DcRing) -> Vec<Vec<i64>> {
        let caps: Vec<f64> = ring
            .members
            .iter()
            .map(|m| f64::from(m.capacity.max(1)))
            .collect();
        let racks: BTreeMap<&str, usize> = ring
            .members
            .iter()
            .map(|m| m.rack.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        let rack_of: Vec<usize> = ring
            .members
            .iter()
            .map(|m| racks[m.rack.as_str()])
            .collect();
        prefix_targets(&caps, &rack_of, racks.len(), ring.width)
    }

    /// Ideal fraction of a DC's first-`rf` replicas that a change must move: the share of the
    /// joining (or leaving) node, by capacity, or, where its racks force it to hold more than
    /// that (a small rack still holds one of the first `racks` slots of every partition), its
    /// rack-limited target share, which it must receive (or hand over) whatever we do.
    fn ideal_share(ring: &DcRing, id: &ActorId, rf: usize) -> (f64, f64) {
        let i = ring.index_of(id).unwrap();
        let total: f64 = ring.members.iter().map(|m| f64::from(m.capacity)).sum();
        let by_capacity = f64::from(ring.members[i].capacity) / total;
        let rf = rf.min(ring.width);
        let limited = ring_targets(ring)[rf][i] as f64 / FP as f64 / (rf * P) as f64;
        (by_capacity, by_capacity.max(limited))
    }

    /// Applies `change` to `before`, prints moved / total replicas per rf against the ideal,
    /// checks the other DC did not move, and returns the ratio to the ideal at rf = 3.
    fn movement_case(label: &str, before: &Placement, change: &Change) -> f64 {
        let after = before.apply(change);
        check_lists(&after);
        assert_eq!(after.dcs["other"], before.dcs["other"]);
        assert_eq!(moved(before, &after, "other", 5), 0);
        let (ring, id) = match change {
            Change::Join(m) => (&after.dcs["dc"], m.id),
            Change::Leave(id) => (&before.dcs["dc"], *id),
        };
        let mut line = String::new();
        let mut ratio3 = 0.0;
        for rf in 1..=after.dcs["dc"].width.min(5) {
            let moved = moved(before, &after, "dc", rf) as f64;
            let total = (rf.min(after.dcs["dc"].width) * P) as f64;
            let (by_capacity, ideal) = ideal_share(ring, &id, rf);
            let ratio = moved / total / ideal;
            if rf == 3.min(after.dcs["dc"].width) {
                ratio3 = ratio;
                let note = if ideal > by_capacity * (1.0 + 1e-6) {
                    format!("rack-limited {:5.2}%", 100.0 * ideal)
                } else {
                    String::from("                  ")
                };
                line = format!("ideal {:5.2}% {note} |{line}", 100.0 * by_capacity);
            }
            line += &format!(" rf{rf}: {:5.2}% ({:.2}x)", 100.0 * moved / total, ratio);
        }
        println!("  {label:<20} {line}");
        ratio3
    }

    #[test]
    fn movement_join_and_leave() {
        let mut worst = 0.0_f64;
        type Capacity = fn(u32) -> u32;
        let schemes: [(&str, Capacity); 2] = [("equal", |_| 1), ("unequal", |i| 1 + i % 4)];
        for (scheme, capacity) in schemes {
            println!(
                "== movement, {scheme} capacities, racks r0,r1,r2 round robin (moved / total replicas, ratio to ideal)"
            );
            for n in 3..=8u32 {
                let mut changes = dc_changes("other", 100, 4, |_| 1);
                changes.extend(dc_changes("dc", 0, n, capacity));
                let before = Placement::from_changes(&changes);

                let joiner = join(n, "dc", &format!("r{}", n % 3), capacity(n));
                let r = movement_case(&format!("n={n} join"), &before, &joiner);
                assert!(r <= 1.1, "{scheme} n={n} join moved {r}x the ideal");
                worst = worst.max(r);

                // Leave: the most recent node (its rack is one of the fullest) and the oldest.
                for leaver in [n - 1, 0] {
                    let r = movement_case(
                        &format!("n={n} leave node {leaver}"),
                        &before,
                        &Change::Leave(node(leaver)),
                    );
                    assert!(
                        r <= 1.1,
                        "{scheme} n={n} leave {leaver} moved {r}x the ideal"
                    );
                    worst = worst.max(r);
                }
            }
        }
        println!("worst rf=3 movement: {worst:.3}x ideal");
    }

    #[test]
    fn apply_all_commits_a_set_of_changes_at_once() {
        let base = Placement::from_changes(
            &(0..6)
                .map(|i| join(i, "dc", &format!("r{}", i % 3), 1))
                .collect::<Vec<_>>(),
        );
        let one = join(6, "dc", "r0", 2);
        assert_eq!(base.apply_all(std::slice::from_ref(&one)), base.apply(&one));
        let many = vec![
            join(7, "dc", "r1", 1),
            Change::Leave(node(0)),
            join(8, "dc2", "x", 1),
            one,
        ];
        let all = base.apply_all(&many);
        check_lists(&all);
        check_balance("apply_all", &all, "dc");
        let mut reversed = many.clone();
        reversed.reverse();
        assert_eq!(all, base.apply_all(&reversed), "order does not matter");
        assert_eq!(Placement::decode(&all.encode()).unwrap(), all);
        assert_eq!(base.apply_all(&[]), base);
    }

    #[test]
    fn recompute_is_fast() {
        let changes: Vec<Change> = (0..20)
            .map(|i| join(i, "dc", &format!("r{}", i % 4), 1 + i % 3))
            .collect();
        let before = Placement::from_changes(&changes);
        let start = std::time::Instant::now();
        let after = before.apply(&join(20, "dc", "r0", 2));
        println!(
            "recompute of a 21-node DC: {:?} (debug builds are much slower)",
            start.elapsed()
        );
        check_lists(&after);
        check_balance("20 nodes + 1, 4 racks", &after, "dc");
    }

    fn arb_changes() -> impl Strategy<Value = Vec<Change>> {
        let change = (any::<bool>(), 0u32..9, 0usize..2, 0usize..3, 1u32..5).prop_map(
            |(leave, i, dc, rack, capacity)| {
                if leave {
                    Change::Leave(node(i))
                } else {
                    join(i, ["d0", "d1"][dc], ["a", "b", "c"][rack], capacity)
                }
            },
        );
        proptest::collection::vec(change, 1..10)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn lists_stay_valid_and_deterministic(changes in arb_changes()) {
            let mut placement = Placement::empty();
            for change in &changes {
                let next = placement.apply(change);
                let touched: BTreeSet<&str> = match change {
                    Change::Join(m) => [Some(m.dc.as_str()), placement.member(&m.id).map(|m| m.dc.as_str())]
                        .into_iter()
                        .flatten()
                        .collect(),
                    Change::Leave(id) => placement.member(id).map(|m| m.dc.as_str()).into_iter().collect(),
                };
                for (dc, ring) in &placement.dcs {
                    if !touched.contains(dc.as_str()) {
                        prop_assert_eq!(next.dcs.get(dc), Some(ring));
                    }
                }
                prop_assert!(next.epoch() == placement.epoch() || next.epoch() == placement.epoch() + 1);
                prop_assert_eq!(next.epoch() == placement.epoch(), next == placement);
                placement = next;
            }
            check_lists(&placement);
            prop_assert_eq!(&Placement::from_changes(&changes), &placement);
        }
    }
}
