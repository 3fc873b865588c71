//! Makes siblings on purpose and resolves them: several "devices" add items to one shopping
//! cart at the same time without reading first, then a resolver merges the carts (set
//! union) and writes the result back with the read's context, so the siblings are gone.
//!
//! Run a node (`meridian server`), then: `cargo run -p meridian-examples --bin siblings`
//! (`MERIDIAN_ENDPOINT` picks the node; default http://127.0.0.1:7070).

use async_trait::async_trait;
use bytes::Bytes;
use meridian_sdk::{Client, Resolver};
use std::collections::BTreeSet;

/// Carts are comma-separated item lists; merging two carts keeps every item of both.
struct CartUnion;

#[async_trait]
impl Resolver for CartUnion {
    async fn resolve(&self, _key: &[u8], siblings: Vec<Bytes>) -> meridian_sdk::Result<Bytes> {
        let items: BTreeSet<String> = siblings
            .iter()
            .flat_map(|s| {
                String::from_utf8_lossy(s)
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Bytes::from(items.into_iter().collect::<Vec<_>>().join(",")))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint =
        std::env::var("MERIDIAN_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let client = Client::connect([endpoint]).await?;
    let key = format!("cart:{}", std::process::id());

    // Four devices write at once, none having read the cart: four siblings.
    let writes = ["apples", "bread", "coffee", "dates"].map(|item| {
        let client = client.clone();
        let key = key.clone();
        tokio::spawn(async move { client.put("default", &key, item, None).await })
    });
    for w in writes {
        w.await??;
    }
    let read = client.get("default", &key).await?;
    println!("{} siblings after concurrent writes:", read.values.len());
    for v in &read.values {
        println!("  {}", String::from_utf8_lossy(v));
    }

    let merged = client
        .get_resolved("default", &key, Some(&CartUnion))
        .await?;
    let after = client.get("default", &key).await?;
    println!(
        "resolved: {} ({} value(s) stored now)",
        merged
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default(),
        after.values.len()
    );

    // A read-modify-write that carries the context adds an item without making a sibling.
    client
        .update("default", &key, Some(&CartUnion), |cart| {
            let mut cart = cart
                .map(|c| String::from_utf8_lossy(&c).into_owned())
                .unwrap_or_default();
            cart.push_str(",eggs");
            Some(Bytes::from(cart))
        })
        .await?;
    let last = client.get("default", &key).await?;
    println!(
        "after update: {:?}",
        last.values
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
    );
    anyhow::ensure!(last.values.len() == 1, "expected one value after resolving");
    Ok(())
}
