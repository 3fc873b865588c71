//! Runs simulated seeds: `meridian-sim --seed N` replays one and prints its trace hash and
//! violations; `meridian-sim --seeds N [--from S]` runs N seeds and stops at the first that
//! fails, printing the command that replays it (`--geo` runs the geo scenario: anti-entropy,
//! long DC partitions, no read-repair pass); `meridian-sim --placement NODES [DCS]`
//! prints placement figures for a cluster of that size; `meridian-sim --converge NODES [DCS]`
//! how long one join takes to reach every node.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(nodes) = value("--placement") {
        let dcs = args
            .iter()
            .position(|a| a == "--placement")
            .and_then(|i| args.get(i + 2))
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let f = meridian_sim::placement::measure(nodes as usize, dcs, value("--from").unwrap_or(1));
        println!(
            "{} nodes in {} DCs: layout computed in {:.1} s; slot share vs capacity share: \
             worst {:.1}%, {:.1}% of nodes within ±5%; one join computed in {:.1} s, moved \
             {:.3} × the ideal",
            f.nodes,
            f.dcs,
            f.build_secs,
            f.worst_deviation * 100.0,
            f.within_5pct * 100.0,
            f.join_secs,
            f.moved_over_ideal
        );
        return ExitCode::SUCCESS;
    }
    if let Some(nodes) = value("--converge") {
        let dcs = args
            .iter()
            .position(|a| a == "--converge")
            .and_then(|i| args.get(i + 2))
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let c = meridian_sim::converge::measure(nodes as usize, dcs, value("--from").unwrap_or(1));
        println!(
            "{} nodes in {} DCs, one joins: committed after {} ms, every node holds it after \
             {} ms (simulated), {} history exchanges of about {} KiB each",
            c.nodes,
            c.dcs,
            c.committed_ms,
            c.converged_ms,
            c.exchanges,
            c.history_bytes / 1024
        );
        return ExitCode::SUCCESS;
    }
    let scenario = if args.iter().any(|a| a == "--geo") {
        meridian_sim::Scenario::Geo
    } else {
        meridian_sim::Scenario::Classic
    };
    let flag = if scenario == meridian_sim::Scenario::Geo {
        " --geo"
    } else {
        ""
    };
    if let Some(seed) = value("--seed") {
        let r = meridian_sim::run_scenario(seed, scenario);
        println!("seed {seed}: trace {} {:?}", r.trace, r.stats);
        for v in &r.violations {
            println!("  violation: {v}");
        }
        return if r.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let Some(count) = value("--seeds") else {
        eprintln!("usage: meridian-sim --seed N [--geo] | --seeds N [--from S] [--geo]");
        return ExitCode::from(2);
    };
    let from = value("--from").unwrap_or(0);
    let started = std::time::Instant::now();
    for seed in from..from.saturating_add(count) {
        let r = meridian_sim::run_scenario(seed, scenario);
        if !r.violations.is_empty() {
            println!("seed {seed} FAILED:");
            for v in &r.violations {
                println!("  {v}");
            }
            println!("replay: cargo run -p meridian-sim --release -- --seed {seed}{flag}");
            return ExitCode::FAILURE;
        }
        if (seed - from + 1) % 1000 == 0 {
            println!("{} seeds ok ({:.0?})", seed - from + 1, started.elapsed());
        }
    }
    println!(
        "{count} seeds from {from}: no violation ({:.1?})",
        started.elapsed()
    );
    ExitCode::SUCCESS
}
