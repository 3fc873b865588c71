//! Runs simulated seeds: `meridian-sim --seed N` replays one and prints its trace hash and
//! violations; `meridian-sim --seeds N [--from S]` runs N seeds and stops at the first that
//! fails, printing the command that replays it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(seed) = value("--seed") {
        let r = meridian_sim::run(seed);
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
        eprintln!("usage: meridian-sim --seed N | --seeds N [--from S]");
        return ExitCode::from(2);
    };
    let from = value("--from").unwrap_or(0);
    let started = std::time::Instant::now();
    for seed in from..from.saturating_add(count) {
        let r = meridian_sim::run(seed);
        if !r.violations.is_empty() {
            println!("seed {seed} FAILED:");
            for v in &r.violations {
                println!("  {v}");
            }
            println!("replay: cargo run -p meridian-sim --release -- --seed {seed}");
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
