//! A session store: one value per session token, in a last-writer-wins keyspace, read and
//! written at LOCAL_QUORUM so each datacenter answers on its own.
//!
//! Run `meridian dev`, then `cargo run -p meridian-examples --bin sessions`
//! (`MERIDIAN_DC1`/`MERIDIAN_DC2` pick the nodes).

use anyhow::{Context as _, bail};
use meridian_sdk::{Client, Consistency, KeyspaceOptions, ValueKind};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

async fn wait_for<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await? {
        if Instant::now() > deadline {
            bail!("sessions example: {what} did not happen within 60 s");
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
    dc1.create_keyspace_with(
        "sessions",
        &KeyspaceOptions {
            kind: Some(ValueKind::Lww),
            read_consistency: Some(Consistency::LocalQuorum),
            write_consistency: Some(Consistency::LocalQuorum),
            ..Default::default()
        },
    )
    .await?;
    let sessions = dc1.keyspace("sessions");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let first = json!({"user": "ada", "expires": now + 3600});
    sessions.put(&token, first.to_string(), None).await?;
    // An lww keyspace never has siblings: the later write wins.
    let second = json!({"user": "ada", "expires": now + 7200, "cart": 3});
    sessions.put(&token, second.to_string(), None).await?;
    let read = sessions.get(&token).await?;
    let session: Value = match read.values.as_slice() {
        [one] => serde_json::from_slice(one)?,
        other => bail!("sessions example: expected one value, read {}", other.len()),
    };
    println!("dc1 session: {session}");
    if session["cart"] != 3 {
        bail!("sessions example: the later write did not win");
    }

    let remote = dc2.keyspace("sessions");
    wait_for("the session reaching dc2", || async {
        Ok(remote.get(&token).await?.values == read.values)
    })
    .await?;
    println!("dc2 reads the same session: ok");

    sessions.delete(&token, None).await?;
    wait_for("the logout reaching dc2", || async {
        Ok(!remote.get(&token).await?.is_found())
    })
    .await?;
    println!("logged out in dc1, gone in dc2: ok");
    Ok(())
}
