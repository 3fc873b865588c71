//! Replica-aware routing: the client keeps the cluster's topology (members, epoch, partition
//! owners, from the Admin `Topology` RPC) and sends each request straight to a replica of
//! its key in the client's local datacenter, so a write needs no forwarding hop. The same
//! placement hash as the servers (meridian-core) finds the partition.

use meridian_core::keyspace::keyspace_id;
use meridian_core::partition::partition_of;
use meridian_proto::v1 as pb;
use std::collections::BTreeMap;

/// A topology snapshot reduced to what routing needs.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    pub epoch: u64,
    members: Vec<RoutedMember>,
    /// Per DC: preference-list width and owners (member indexes), partition by partition.
    dcs: BTreeMap<String, (usize, Vec<u32>)>,
    partitions: u32,
}

#[derive(Debug, Clone)]
struct RoutedMember {
    dc: String,
    url: String,
    up: bool,
}

impl RoutingTable {
    pub fn from_proto(t: pb::TopologyResponse) -> Option<Self> {
        if t.partitions == 0 || t.members.is_empty() {
            return None;
        }
        let members = t
            .members
            .into_iter()
            .map(|m| RoutedMember {
                up: m.state == "up",
                dc: m.datacenter,
                url: m.grpc_addr,
            })
            .collect();
        let dcs = t
            .datacenters
            .into_iter()
            .filter(|d| {
                d.width > 0
                    && (d.width as usize).checked_mul(t.partitions as usize) == Some(d.owners.len())
            })
            .map(|d| (d.datacenter, (d.width as usize, d.owners)))
            .collect();
        Some(Self {
            epoch: t.epoch,
            members,
            dcs,
            partitions: t.partitions,
        })
    }

    /// The gRPC URLs of the members that are up.
    pub fn up_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.up)
            .map(|m| m.url.clone())
            .collect()
    }

    pub fn has_url(&self, url: &str) -> bool {
        self.members.iter().any(|m| m.url == url)
    }

    /// Where to send a request for `key`, best first: live owners of its partition in the
    /// local DC (first owner first: it is a replica for any factor), then the rest of the
    /// local DC, then owners elsewhere, then everyone else up.
    /// Nodes to send a request for `key` to, best first: the key's live replicas in
    /// `local_dc`, then the rest of that DC, then (unless `local_only`) replicas elsewhere and
    /// everyone else.
    pub fn candidates(
        &self,
        local_dc: Option<&str>,
        keyspace: &str,
        key: &[u8],
        local_only: bool,
    ) -> Vec<String> {
        let partition = u32::from(partition_of(keyspace_id(keyspace), key));
        if partition >= self.partitions {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        let push = |i: usize, out: &mut Vec<String>| {
            if let Some(m) = self.members.get(i)
                && m.up
                && !out.contains(&m.url)
            {
                out.push(m.url.clone());
            }
        };
        let owners_in = |dc: &str| -> Vec<usize> {
            self.dcs
                .get(dc)
                .map(|(w, owners)| {
                    let start = partition as usize * w;
                    owners
                        .get(start..start + w)
                        .map(|s| s.iter().map(|i| *i as usize).collect())
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        };
        if let Some(local) = local_dc {
            for i in owners_in(local) {
                push(i, &mut out);
            }
            for (i, m) in self.members.iter().enumerate() {
                if m.dc == local {
                    push(i, &mut out);
                }
            }
            if local_only {
                return out;
            }
        }
        for dc in self.dcs.keys() {
            for i in owners_in(dc) {
                push(i, &mut out);
            }
        }
        for i in 0..self.members.len() {
            push(i, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, dc: &str, state: &str) -> pb::Member {
        pb::Member {
            node_id: id.into(),
            datacenter: dc.into(),
            grpc_addr: format!("http://{id}"),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn local_owners_come_first_and_down_nodes_are_skipped() {
        let partitions = meridian_core::partition::PARTITIONS;
        // dc1: members 0,1,2; dc2: members 3,4. Width 2; owners rotate.
        let mut dc1 = Vec::new();
        let mut dc2 = Vec::new();
        for p in 0..partitions {
            dc1.extend([p % 3, (p + 1) % 3]);
            dc2.extend([3 + p % 2, 3 + (p + 1) % 2]);
        }
        let t = RoutingTable::from_proto(pb::TopologyResponse {
            epoch: 7,
            partitions,
            members: vec![
                member("a", "dc1", "up"),
                member("b", "dc1", "down"),
                member("c", "dc1", "up"),
                member("d", "dc2", "up"),
                member("e", "dc2", "up"),
            ],
            datacenters: vec![
                pb::DcOwners {
                    datacenter: "dc1".into(),
                    width: 2,
                    owners: dc1,
                },
                pb::DcOwners {
                    datacenter: "dc2".into(),
                    width: 2,
                    owners: dc2,
                },
            ],
            node_id: "a".into(),
            ..Default::default()
        })
        .expect("table");
        let key = b"some-key";
        let p = partition_of(keyspace_id("demo"), key) as u32;
        let c = t.candidates(Some("dc2"), "demo", key, false);
        let first_dc2 = if p.is_multiple_of(2) {
            "http://d"
        } else {
            "http://e"
        };
        assert_eq!(c[0], first_dc2);
        assert!(
            c[..2].iter().all(|u| u == "http://d" || u == "http://e"),
            "{c:?}"
        );
        assert!(
            !c.contains(&"http://b".to_string()),
            "down nodes are skipped: {c:?}"
        );
        assert_eq!(c.len(), 4);
        let c1 = t.candidates(Some("dc1"), "demo", key, false);
        assert!(c1[0] == "http://a" || c1[0] == "http://c", "{c1:?}");
        // LOCAL_* requests never leave the client's DC.
        let mut local = t.candidates(Some("dc2"), "demo", key, true);
        local.sort();
        assert_eq!(local, vec!["http://d".to_string(), "http://e".to_string()]);
    }
}
