//! The simulation as part of the test command: every seed must hold every invariant, and a
//! seed must replay to the same trace.
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N seeds (300 by default), from `MERIDIAN_SIM_FROM` (0).

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_seed_holds_every_invariant() {
    let count = env("MERIDIAN_SIM_SEEDS", 300);
    let from = env("MERIDIAN_SIM_FROM", 0);
    // Seeds are independent: half on each of two threads (the machines have two cores).
    let halves: Vec<std::thread::JoinHandle<Totals>> = (0..2u64)
        .map(|t| std::thread::spawn(move || run_seeds((from..from + count).filter(|s| s % 2 == t))))
        .collect();
    let mut total = Totals::default();
    for h in halves {
        let t = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        total.acked += t.acked;
        total.crashes += t.crashes;
        total.changes += t.changes;
    }
    // The runs did what they are for: writes were acknowledged, nodes crashed under them,
    // and the layout changed under them.
    assert!(
        total.acked as u64 > count * 20,
        "only {} acknowledged writes",
        total.acked
    );
    assert!(
        total.crashes as u64 > count / 2,
        "only {} crashes",
        total.crashes
    );
    assert!(
        total.changes as u64 > count / 2,
        "only {} layout changes",
        total.changes
    );
}

#[derive(Default)]
struct Totals {
    acked: usize,
    crashes: u32,
    changes: u32,
}

fn run_seeds(seeds: impl Iterator<Item = u64>) -> Totals {
    let mut t = Totals::default();
    for seed in seeds {
        let report = meridian_sim::run(seed);
        assert!(
            report.violations.is_empty(),
            "seed {seed} violates:\n  {}\nreplay: cargo run -p meridian-sim --release -- --seed {seed}\n\
             trace each event: MERIDIAN_SIM_TRACE=1 MERIDIAN_SIM_VERBOSE=1 (same command)",
            report.violations.join("\n  ")
        );
        t.acked += report.stats.acked;
        t.crashes += report.stats.crashes;
        t.changes += report.stats.joins
            + report.stats.dcs_added
            + report.stats.decommissions
            + report.stats.removals;
    }
    t
}

/// The geo scenario: anti-entropy on every node, DC partitions of 3–12 s, no read-repair
/// pass. `MERIDIAN_SIM_GEO_SEEDS=N` runs N (60 by default).
#[test]
fn every_geo_seed_converges_by_anti_entropy_alone() {
    let count = env("MERIDIAN_SIM_GEO_SEEDS", 60);
    let from = env("MERIDIAN_SIM_FROM", 0);
    let halves: Vec<std::thread::JoinHandle<u64>> = (0..2u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut repaired = 0;
                for seed in (from..from + count).filter(|s| s % 2 == t) {
                    let report = meridian_sim::run_scenario(seed, meridian_sim::Scenario::Geo);
                    assert!(
                        report.violations.is_empty(),
                        "geo seed {seed} violates:\n  {}\nreplay: cargo run -p meridian-sim \
                         --release -- --seed {seed} --geo",
                        report.violations.join("\n  ")
                    );
                    repaired += report.stats.ae_repaired;
                }
                repaired
            })
        })
        .collect();
    let repaired: u64 = halves
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .sum();
    // Anti-entropy did the converging: it changed keys in most runs.
    assert!(
        repaired > count,
        "anti-entropy repaired only {repaired} keys"
    );
}

/// Seeds that once found a defect (see docs/simulation.md), kept whatever the seed range.
#[test]
fn the_seeds_that_found_defects_hold() {
    run_seeds([5, 260, 326, 2910, 7044, 11464, 362880, 462348, 590266].into_iter());
}

#[test]
fn a_seed_replays_to_the_same_trace() {
    let a = meridian_sim::run(42);
    let b = meridian_sim::run(42);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.stats.events, b.stats.events);
    assert_ne!(a.trace, meridian_sim::run(43).trace);
}
