//! The README's Rust section, run by the test command against `meridian dev`.

use bytes::Bytes;
use meridian_sdk::{Consistency, ErrorCode, FnResolver, ReadOptions};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint =
        std::env::var("MERIDIAN_DC1").unwrap_or_else(|_| "http://127.0.0.11:7070".into());
    // [start connect]
    let client = meridian_sdk::Client::builder([endpoint])
        .timeout(std::time::Duration::from_secs(5))
        .connect()
        .await?;
    // [end connect]

    // [start readwrite]
    client.put("demo", "cart:1", "apples", None).await?; // no context: a blind write
    let opts = ReadOptions {
        consistency: Some(Consistency::LocalQuorum),
        ..Default::default()
    };
    let read = client.get_with("demo", "cart:1", &opts).await?;
    println!("{:?}", read.values); // ["apples"]
    let written = client
        .put("demo", "cart:1", "apples,pears", Some(&read.context)) // replaces what it saw
        .await?;
    if written.has_siblings() { /* concurrent writes survived: written.siblings */ }
    let seen = client.get("demo", "cart:1").await?.context;
    client.delete("demo", "cart:1", Some(&seen)).await?;
    // [end readwrite]
    assert!(!client.get("demo", "cart:1").await?.is_found());

    // Start clean, so that the blind writes below make exactly two siblings on every run.
    client.delete("demo", "cart:2", None).await?;

    // [start resolve]
    fn union(_key: &[u8], siblings: Vec<Bytes>) -> meridian_sdk::Result<Bytes> {
        let mut items: Vec<&[u8]> = siblings
            .iter()
            .flat_map(|s| s.split(|b| *b == b','))
            .collect();
        items.sort();
        items.dedup();
        Ok(Bytes::from(items.join(&b","[..])))
    }
    let carts = client
        .keyspace("demo")
        .with_resolver(Arc::new(FnResolver(union))); // registered for the keyspace
    carts.put("cart:2", "apples", None).await?;
    carts.put("cart:2", "pears", None).await?; // two blind writes: siblings
    println!("{:?}", carts.get_resolved("cart:2", None).await?); // "apples,pears", written back
    carts
        .update("cart:2", None, |cart| {
            let mut cart = cart.map(|c| c.to_vec()).unwrap_or_default();
            cart.extend_from_slice(b",plums");
            Some(cart.into())
        })
        .await?;
    // [end resolve]
    let after = carts.get("cart:2").await?.values;
    assert_eq!(after, [Bytes::from("apples,pears,plums")]);

    // [start errors]
    match client.get("no-such-keyspace", "k").await {
        Err(e) if e.code == ErrorCode::NotFound => println!("{}", e.code), // NOT_FOUND
        other => anyhow::bail!("expected NOT_FOUND, got {other:?}"),
    }
    let too_big = vec![b'x'; 20_000];
    if let Err(e) = client.put("demo", "k", too_big, None).await {
        println!("{} {}", e.code, e.message); // INVALID_ARGUMENT ... limit
    }
    client.close().await;
    // [end errors]
    Ok(())
}
