//! The tests' WAN proxy as a process, for benchmarks that need a slow link between DCs.
//!
//! `wan_proxy IP...` listens on port 0 of each IP and prints `proxy I ADDR` for each; a node
//! of another DC reaches node I through that address when it starts with `--wan-grpc-addr
//! ADDR`. Commands on stdin, one per line, steer it while the nodes run (a node's gRPC port is
//! only known once it started):
//!
//! - `target I ADDR`: where proxy I's connections go;
//! - `delay MS`: one-way delay of every proxy, each direction;
//! - `block` / `unblock`: cut and heal every link.
//!
//! It exits when stdin closes.

#[path = "../tests/common/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::io::{BufRead, Write};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ips: Vec<String> = std::env::args().skip(1).collect();
    if ips.is_empty() {
        return Err("usage: wan_proxy IP... (one proxy per IP)".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    let proxies: Vec<proxy::WanProxy> = ips.iter().map(|ip| proxy::WanProxy::start(ip)).collect();
    let mut out = std::io::stdout();
    for (i, p) in proxies.iter().enumerate() {
        writeln!(out, "proxy {} {}", i + 1, p.addr)?;
    }
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["target", i, addr] => {
                let i: usize = i.parse()?;
                let p = proxies
                    .get(i.wrapping_sub(1))
                    .ok_or_else(|| format!("no proxy {i}: there are {}", proxies.len()))?;
                p.set_target(addr.parse()?);
            }
            ["delay", ms] => {
                let d = Duration::from_millis(ms.parse()?);
                proxies.iter().for_each(|p| p.delay(d));
            }
            ["block"] => proxies.iter().for_each(|p| p.block()),
            ["unblock"] => proxies.iter().for_each(|p| p.unblock()),
            [] => {}
            _ => return Err(format!("unknown command {line:?}").into()),
        }
        writeln!(out, "ok {line}")?;
        out.flush()?;
    }
    Ok(())
}
