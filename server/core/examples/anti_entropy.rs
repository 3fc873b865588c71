//! How many bytes and round trips anti-entropy needs to find and repair a few diverged keys
//! among many, against a full scan: two in-memory replicas running the real exchange
//! (`meridian_core::merkle::exchange`) with every message encoded as it goes on the wire.
//!
//! cargo run --release -p meridian-core --example anti_entropy -- [KEYS] [DIVERGED] [VALUE_BYTES]

use meridian_core::keeper::{ClientWrite, Keeper, KeeperError};
use meridian_core::merkle::exchange::{Exchange, Merged, Replica, Reply, Request, Step, answer};
use meridian_core::merkle::{Forest, PartitionSet, Tracked};
use meridian_core::store::{MemStore, Store};
use meridian_core::{ActorId, ContextSeal, KeyspaceSpec, ValueKind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

struct Mem {
    store: Rc<MemStore>,
    forest: Arc<Forest>,
    keeper: Keeper<Tracked<Rc<MemStore>>>,
}

impl Mem {
    fn new(actor: u8) -> Self {
        let store = Rc::new(MemStore::new());
        let forest = Arc::new(Forest::new(true));
        let tracked = Tracked {
            inner: store.clone(),
            forest: forest.clone(),
        };
        Self {
            store,
            forest,
            keeper: Keeper::new(tracked, ActorId([actor; 16]), ContextSeal::new([7; 32])),
        }
    }
}

impl Replica for Mem {
    type Error = std::convert::Infallible;

    fn forest(&self) -> &Forest {
        &self.forest
    }

    fn scan(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Self::Error> {
        for (k, v) in self.store.scan(prefix) {
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn merge(&self, skey: &[u8], object: &[u8]) -> Result<Merged, Self::Error> {
        match self.keeper.merge(skey, object, false) {
            Ok(true) => Ok(Merged::Changed),
            Ok(false) => Ok(Merged::Unchanged),
            Err(KeeperError::Core(e)) => Ok(Merged::Rejected(e.to_string())),
            Err(KeeperError::Store(e)) => match e {},
        }
    }
}

struct Run {
    bytes: usize,
    round_trips: u32,
    exchanges: u32,
    secs: f64,
}

/// Exchanges from `a` to `b` until one finds nothing more to do.
fn converge(a: &Mem, b: &Mem, ks: u64) -> Run {
    let start = Instant::now();
    let mut run = Run {
        bytes: 0,
        round_trips: 0,
        exchanges: 0,
        secs: 0.0,
    };
    loop {
        run.exchanges += 1;
        let (mut ex, mut req) = Exchange::start(ks, PartitionSet::all());
        let stats = loop {
            let wire = req.encode();
            run.bytes += wire.len();
            let reply = answer(b, Request::decode(&wire).expect("request")).expect("answer");
            let wire = reply.encode();
            run.bytes += wire.len();
            match ex
                .on_reply(a, Reply::decode(&wire).expect("reply"))
                .expect("step")
            {
                Step::Send(r) => req = r,
                Step::Done(stats) => break stats,
            }
        };
        run.round_trips += stats.round_trips;
        if !stats.more {
            break;
        }
    }
    run.secs = start.elapsed().as_secs_f64();
    run
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let keys = args.first().copied().unwrap_or(1_000_000);
    let diverged = args.get(1).copied().unwrap_or(1_000);
    let value_bytes = args.get(2).copied().unwrap_or(100);
    let ks = KeyspaceSpec::new("bench", ValueKind::Siblings);
    let (a, b) = (Mem::new(1), Mem::new(2));
    let write = |m: &Mem, i: usize, tag: u8| {
        let key = format!("user:{i:08}");
        let mut value = vec![tag; value_bytes];
        value[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let mut id = [tag; 16];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        m.keeper
            .mint(
                &ks,
                ClientWrite {
                    key: key.as_bytes(),
                    value: Some(&value),
                    context: &[],
                    request_id: id,
                },
                1_700_000_000_000 + i as u64,
                false,
            )
            .expect("mint")
    };
    let t = Instant::now();
    let mut full_scan = 0usize;
    for i in 0..keys {
        let minted = write(&a, i, 1);
        full_scan += minted.storage_key.len() + minted.object.len();
        b.keeper
            .merge(&minted.storage_key, &minted.object, false)
            .expect("merge");
    }
    eprintln!(
        "loaded {keys} keys on two replicas in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let steady = converge(&a, &b, ks.id());

    // Diverge: every `step`-th key gets a newer write on replica a only.
    let step = (keys / diverged.max(1)).max(1);
    let mut diverged_bytes = 0usize;
    let mut changed = Vec::new();
    for n in 0..diverged {
        let i = n * step;
        let minted = write(&a, i, 2);
        diverged_bytes += minted.storage_key.len() + minted.object.len();
        changed.push(minted.storage_key);
    }
    let repair = converge(&a, &b, ks.id());
    for k in &changed {
        assert_eq!(a.store.get(k).unwrap(), b.store.get(k).unwrap(), "repaired");
    }
    let after = converge(&a, &b, ks.id());
    assert_eq!(after.round_trips, 1, "in sync afterwards");

    println!("keys {keys}, diverged {diverged}, value {value_bytes} B");
    println!(
        "in sync:   {} bytes, {} round trip(s), {:.3} s",
        steady.bytes, steady.round_trips, steady.secs
    );
    println!(
        "repair:    {} bytes, {} round trips in {} exchange(s), {:.3} s",
        repair.bytes, repair.round_trips, repair.exchanges, repair.secs
    );
    println!("diverged objects: {diverged_bytes} bytes");
    println!(
        "ratio exchanged / diverged objects: {:.2}",
        repair.bytes as f64 / diverged_bytes as f64
    );
    println!(
        "full scan (every object once): {full_scan} bytes, {:.0}x the exchange",
        full_scan as f64 / repair.bytes as f64
    );
}
