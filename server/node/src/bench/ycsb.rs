//! YCSB core workloads and the scrambled Zipfian key chooser (after Gray et al., "Quickly
//! Generating Billion-Record Synthetic Databases", as YCSB uses it).

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub name: char,
    /// Fraction of operations that read; the rest update.
    pub read_fraction: f64,
    /// Not YCSB: every operation creates a new key and deletes one created earlier, so a
    /// fixed number of keys stays live while keys churn through (a session store). Shows
    /// whether tombstones keep the disk growing.
    pub sessions: bool,
    /// Not YCSB: every operation increments a counter (Meridian's counter CRDT, Redis
    /// INCR), on keys chosen as the other workloads choose them.
    pub increments: bool,
}

impl Workload {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a" => Ok(Self {
                name: 'A',
                read_fraction: 0.5,
                sessions: false,
                increments: false,
            }),
            "b" => Ok(Self {
                name: 'B',
                read_fraction: 0.95,
                sessions: false,
                increments: false,
            }),
            "c" => Ok(Self {
                name: 'C',
                read_fraction: 1.0,
                sessions: false,
                increments: false,
            }),
            "sessions" => Ok(Self {
                name: 'S',
                read_fraction: 0.0,
                sessions: true,
                increments: false,
            }),
            "incr" => Ok(Self {
                name: 'I',
                read_fraction: 0.0,
                sessions: false,
                increments: true,
            }),
            other => Err(format!(
                "unknown workload {other:?}; expected a, b, c, sessions or incr"
            )),
        }
    }
}

/// Zipfian over `0..n` with YCSB's constant 0.99, then scrambled by a hash so the hot keys
/// are spread over the key space rather than clustered at the low ids.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl ScrambledZipfian {
    pub fn new(n: u64) -> Self {
        let n = n.max(1);
        let theta = 0.99;
        let zeta = |k: u64| (1..=k).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Self {
            n,
            theta,
            alpha,
            zetan,
            eta,
        }
    }

    fn rank(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }

    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        fnv1a(self.rank(rng)) % self.n
    }
}

fn fnv1a(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn key_name(i: u64) -> String {
    format!("user{i:012}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let z = ScrambledZipfian::new(1000);
        let mut rng = rand::rng();
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.next(&mut rng) as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // The hottest key takes far more than a uniform share (100).
        assert!(counts[0] > 2_000, "hottest key got {}", counts[0]);
        assert!(counts.iter().filter(|c| **c > 0).count() > 500);
    }

    #[test]
    fn workloads_parse() {
        assert_eq!(Workload::parse("A").unwrap().read_fraction, 0.5);
        assert!(Workload::parse("z").is_err());
    }
}
