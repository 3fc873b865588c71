//! Placement at scale, computed by the core's own layout code: a cluster of many nodes in
//! several DCs with mixed capacities, each node's share of replica slots against its share of
//! its DC's capacity, and the share of slots one join moves against the ideal (the newcomer's
//! capacity share). `meridian-sim --placement NODES DCS` prints the figures.

use crate::rng::Rng;
use meridian_core::ActorId;
use meridian_core::layout::{LayoutMember, LayoutVersion, Role, StagedChange};
use meridian_core::partition::PARTITIONS;
use std::time::Instant;

/// Replicas per DC the shares are measured for.
const RF: usize = 3;

pub struct Figures {
    pub nodes: usize,
    pub dcs: usize,
    pub build_secs: f64,
    /// Largest |slot share ÷ capacity share − 1| over all nodes.
    pub worst_deviation: f64,
    /// Share of nodes within ±5%.
    pub within_5pct: f64,
    pub join_secs: f64,
    /// Slots that changed owner in the joined DC ÷ the newcomer's capacity share of them.
    pub moved_over_ideal: f64,
}

fn member(rng: &mut Rng, dc: &str, racks: u64) -> LayoutMember {
    let mut id = rng.bytes16();
    id[12..].copy_from_slice(&[0; 4]);
    LayoutMember {
        id: ActorId(id),
        dc: dc.to_string(),
        rack: format!("r{}", rng.range(0, racks)),
        capacity: [1, 2, 4][rng.range(0, 3) as usize],
        role: Role::Storage,
    }
}

fn slots(v: &LayoutVersion, dc: &str) -> Vec<Vec<ActorId>> {
    (0..PARTITIONS as u16)
        .map(|p| v.placement().owners(dc, p, RF))
        .collect()
}

pub fn measure(nodes: usize, dcs: usize, seed: u64) -> Figures {
    let mut rng = Rng::new(seed);
    let names: Vec<String> = (1..=dcs).map(|d| format!("dc{d}")).collect();
    let members: Vec<LayoutMember> = (0..nodes)
        .map(|i| member(&mut rng, &names[i % dcs], 10))
        .collect();
    let started = Instant::now();
    let mut history = crate::founding::cluster(&members, [7; 32], false);
    let build_secs = started.elapsed().as_secs_f64();
    let Some(v) = history.current().cloned() else {
        return Figures {
            nodes,
            dcs,
            build_secs,
            worst_deviation: f64::NAN,
            within_5pct: 0.0,
            join_secs: 0.0,
            moved_over_ideal: f64::NAN,
        };
    };
    let mut worst: f64 = 0.0;
    let mut within = 0usize;
    for dc in &names {
        let in_dc: Vec<&LayoutMember> = members.iter().filter(|m| &m.dc == dc).collect();
        let total_cap: u64 = in_dc.iter().map(|m| u64::from(m.capacity)).sum();
        let lists = slots(&v, dc);
        for m in &in_dc {
            let owned = lists.iter().filter(|l| l.contains(&m.id)).count() as f64;
            let share = owned / (PARTITIONS as f64 * RF as f64);
            let want = f64::from(m.capacity) / total_cap as f64;
            let dev = (share / want - 1.0).abs();
            worst = worst.max(dev);
            if dev <= 0.05 {
                within += 1;
            }
        }
    }
    // One more node joins the first DC.
    let newcomer = member(&mut rng, &names[0], 10);
    let before = slots(&v, &names[0]);
    let started = Instant::now();
    history.stage(newcomer.id, newcomer.id, StagedChange::join_of(&newcomer));
    history.commit();
    let join_secs = started.elapsed().as_secs_f64();
    let moved_over_ideal = match history.current() {
        Some(after) => {
            let after = slots(after, &names[0]);
            let moved: usize = before
                .iter()
                .zip(&after)
                .map(|(b, a)| a.iter().filter(|n| !b.contains(n)).count())
                .sum();
            let dc_cap: u64 = members
                .iter()
                .filter(|m| m.dc == names[0])
                .map(|m| u64::from(m.capacity))
                .sum::<u64>()
                + u64::from(newcomer.capacity);
            let ideal =
                f64::from(newcomer.capacity) / dc_cap as f64 * (PARTITIONS as f64 * RF as f64);
            moved as f64 / ideal
        }
        None => f64::NAN,
    };
    Figures {
        nodes,
        dcs,
        build_secs,
        worst_deviation: worst,
        within_5pct: within as f64 / nodes as f64,
        join_secs,
        moved_over_ideal,
    }
}
