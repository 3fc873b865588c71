//! A shopping cart edited in two datacenters at once.
//!
//! Both datacenters change the cart from the same version without seeing each other's
//! change, so the cart gets two siblings. The application's resolver merges them: every item
//! added anywhere stays and every removal is honoured, because each addition carries a tag
//! and a removal deletes the tags it saw (an observed-remove set).
//!
//! Run `meridian dev`, then `cargo run -p meridian-examples --bin cart`
//! (`MERIDIAN_DC1`/`MERIDIAN_DC2` pick the nodes).

use anyhow::{Context as _, bail};
use bytes::Bytes;
use meridian_sdk::{Client, Consistency, FnResolver, ReadOptions, WriteOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// item -> tags of the additions not yet removed, and every removed tag.
#[derive(Default)]
struct Cart {
    items: BTreeMap<String, BTreeSet<String>>,
    removed: BTreeSet<String>,
}

impl Cart {
    fn load(value: Option<&[u8]>) -> Cart {
        let Some(doc) = value.and_then(|v| serde_json::from_slice::<Value>(v).ok()) else {
            return Cart::default();
        };
        let strings = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        Cart {
            items: doc["items"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(item, tags)| (item.clone(), strings(tags)))
                .collect(),
            removed: strings(&doc["removed"]),
        }
    }

    fn dump(&self) -> Bytes {
        Bytes::from(json!({"items": self.items, "removed": self.removed}).to_string())
    }

    fn add(mut self, item: &str) -> Cart {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        self.items.entry(item.to_string()).or_default().insert(tag);
        self
    }

    fn remove(mut self, item: &str) -> Cart {
        self.removed
            .extend(self.items.remove(item).unwrap_or_default());
        self
    }

    fn visible(&self) -> Vec<&str> {
        self.items.keys().map(String::as_str).collect()
    }
}

/// Union of additions, minus every tag some sibling removed.
fn merge_carts(_key: &[u8], siblings: Vec<Bytes>) -> meridian_sdk::Result<Bytes> {
    let mut merged = Cart::default();
    for sibling in &siblings {
        let theirs = Cart::load(Some(sibling));
        merged.removed.extend(theirs.removed);
        for (item, tags) in theirs.items {
            merged.items.entry(item).or_default().extend(tags);
        }
    }
    let removed = merged.removed.clone();
    merged.items.retain(|_, tags| {
        tags.retain(|t| !removed.contains(t));
        !tags.is_empty()
    });
    Ok(merged.dump())
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await? {
        if Instant::now() > deadline {
            bail!("cart example: {what} did not happen within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let dc1 = Client::builder([env("MERIDIAN_DC1", "http://127.0.0.11:7070")])
        .local_dc("dc1")
        .connect()
        .await
        .context("connecting to dc1")?;
    let dc2 = Client::builder([env("MERIDIAN_DC2", "http://127.0.0.21:7070")])
        .local_dc("dc2")
        .connect()
        .await
        .context("connecting to dc2")?;
    dc1.create_keyspace_with("carts", &Default::default())
        .await?;
    let level = Some(Consistency::LocalQuorum);
    let read = ReadOptions {
        consistency: level,
        ..Default::default()
    };
    let write = WriteOptions {
        consistency: level,
        ..Default::default()
    };
    let carts1 = dc1
        .keyspace("carts")
        .with_read_options(read.clone())
        .with_write_options(write.clone())
        .with_resolver(Arc::new(FnResolver(merge_carts)));
    let carts2 = dc2
        .keyspace("carts")
        .with_read_options(read)
        .with_write_options(write)
        .with_resolver(Arc::new(FnResolver(merge_carts)));
    let cart = format!("cart:{}", uuid::Uuid::new_v4().simple());

    for item in ["apples", "bread"] {
        carts1
            .update(&cart, None, |v| {
                Some(Cart::load(v.as_deref()).add(item).dump())
            })
            .await?;
    }
    wait_for("the cart reaching dc2", || async {
        let read = carts2.get(&cart).await?;
        Ok(read.values.len() == 1
            && Cart::load(read.values.first().map(|v| &v[..])).visible() == ["apples", "bread"])
    })
    .await?;

    // Both DCs edit the same version, each unaware of the other.
    let base1 = carts1.get(&cart).await?;
    let base2 = carts2.get(&cart).await?;
    let edit1 = Cart::load(base1.values.first().map(|v| &v[..]))
        .remove("bread")
        .add("coffee");
    let edit2 = Cart::load(base2.values.first().map(|v| &v[..])).add("dates");
    carts1
        .put(&cart, edit1.dump(), Some(&base1.context))
        .await?;
    carts2
        .put(&cart, edit2.dump(), Some(&base2.context))
        .await?;
    wait_for("both edits meeting in dc1", || async {
        Ok(carts1.get(&cart).await?.values.len() == 2)
    })
    .await?;
    let siblings = carts1.get(&cart).await?.values;
    let mut shown: Vec<Vec<String>> = siblings
        .iter()
        .map(|s| {
            Cart::load(Some(s))
                .visible()
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    shown.sort();
    println!("siblings in dc1: {shown:?}");

    let merged = carts1.get_resolved(&cart, None).await?;
    let merged = Cart::load(merged.as_deref());
    println!("merged cart: {:?}", merged.visible());
    let expected = ["apples", "coffee", "dates"];
    if merged.visible() != expected {
        bail!(
            "cart example: merged cart is {:?}, expected {expected:?}",
            merged.visible()
        );
    }
    wait_for("the merge reaching dc2", || async {
        let read = carts2.get(&cart).await?;
        Ok(read.values.len() == 1
            && Cart::load(read.values.first().map(|v| &v[..])).visible() == expected)
    })
    .await?;
    println!("dc2 reads the merged cart: ok");
    Ok(())
}
