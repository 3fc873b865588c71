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
                let Some((winner, conflict)) = choose(&candidates) else {
                    continue;
                };
                if conflict && !reported.contains_key(name) {
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

/// The definition every node settles on, and whether the candidates disagree on the value
/// kind (which must be reported, never silently mixed). Independent of the order the
/// candidates arrive in, so every node picks the same one.
pub fn choose(candidates: &[KeyspaceSpec]) -> Option<(KeyspaceSpec, bool)> {
    let winner = candidates
        .iter()
        .min_by_key(|s| serde_json::to_string(s).unwrap_or_default())?
        .clone();
    let conflict = candidates.iter().any(|c| c.kind != winner.kind);
    Some((winner, conflict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::ValueKind;

    #[test]
    fn every_order_picks_the_same_definition_and_kind_conflicts_are_flagged() {
        let mut a = KeyspaceSpec::new("carts", ValueKind::Siblings);
        a.replication.insert("dc1".into(), 3);
        let mut b = a.clone();
        b.replication.insert("dc2".into(), 3);
        let c = KeyspaceSpec::new("carts", ValueKind::Lww);
        let orders = [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]];
        let picks: Vec<_> = orders.iter().map(|o| choose(o).expect("pick")).collect();
        assert_eq!(picks[0], picks[1]);
        assert!(!picks[0].1, "same kind: no conflict");
        let (_, conflict) = choose(&[a.clone(), c.clone()]).expect("pick");
        assert!(conflict, "siblings vs lww must be reported");
        assert_eq!(choose(&[a.clone(), c.clone()]), choose(&[c, a]));
    }
}
