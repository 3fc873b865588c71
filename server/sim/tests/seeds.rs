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
    let mut acked = 0;
    let mut crashes = 0;
    for seed in from..from + count {
        let report = meridian_sim::run(seed);
        assert!(
            report.violations.is_empty(),
            "seed {seed} violates:\n  {}\nreplay: cargo run -p meridian-sim --release -- --seed {seed}\n\
             trace each event: MERIDIAN_SIM_TRACE=1 MERIDIAN_SIM_VERBOSE=1 (same command)",
            report.violations.join("\n  ")
        );
        acked += report.stats.acked;
        crashes += report.stats.crashes;
    }
    // The runs did what they are for: writes were acknowledged, and nodes crashed under them.
    assert!(
        acked as u64 > count * 20,
        "only {acked} acknowledged writes"
    );
    assert!(crashes as u64 > count / 2, "only {crashes} crashes");
}

#[test]
fn a_seed_replays_to_the_same_trace() {
    let a = meridian_sim::run(42);
    let b = meridian_sim::run(42);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.stats.events, b.stats.events);
    assert_ne!(a.trace, meridian_sim::run(43).trace);
}
