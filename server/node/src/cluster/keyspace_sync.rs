//! Keyspace definitions as cluster metadata: every node gossips the definitions it holds and
//! adopts the others'. When two nodes defined the same name differently (say, two DCs while
//! cut off), every node picks the same winner (the smallest canonical JSON), so all end with
//! one definition; a conflict of value kinds is logged as an error, never silently mixed.

use super::Cluster;
use meridian_core::KeyspaceSpec;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

impl Cluster {
    pub(super) async fn sync_keyspaces(self: Arc<Self>) {
        let mut published: BTreeMap<String, String> = BTreeMap::new();
        let mut reported: BTreeMap<String, bool> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        loop {
            tick.tick().await;
            let view = self.membership.watch().borrow().clone();
            for (name, defs) in &view.keyspaces {
                let mut candidates: Vec<KeyspaceSpec> = defs
                    .iter()
                    .filter_map(|d| serde_json::from_str(d).ok())
                    .collect();
                if let Ok(local) = self.engine.keyspaces().get(name) {
                    candidates.push((*local).clone());
                }
                let Some(winner) = candidates
                    .iter()
                    .min_by_key(|s| serde_json::to_string(s).unwrap_or_default())
                    .cloned()
                else {
                    continue;
                };
                if candidates.iter().any(|c| c.kind != winner.kind) && !reported.contains_key(name)
                {
                    reported.insert(name.clone(), true);
                    tracing::error!(
                        keyspace = %name,
                        chosen = %winner.kind,
                        "keyspace defined with different value kinds on different nodes; \
                         every node keeps the chosen definition, data written under the other \
                         kind will be reported as a kind mismatch"
                    );
                }
                if let Err(e) = self.engine.keyspaces().adopt(self.engine.storage(), winner) {
                    tracing::warn!(keyspace = %name, error = %e, "cannot adopt keyspace");
                }
            }
            for spec in self.engine.keyspaces().list() {
                let Ok(json) = serde_json::to_string(&*spec) else {
                    continue;
                };
                if published.get(&spec.name) != Some(&json) {
                    self.membership.publish_keyspace(&spec.name, &json).await;
                    published.insert(spec.name.clone(), json);
                }
            }
        }
    }
}
