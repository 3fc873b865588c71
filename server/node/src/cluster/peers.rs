//! Connections to other nodes: one lazily connected HTTP/2 channel per peer, shared by all
//! requests to it (tonic multiplexes them), each request bounded by the peer timeout.

use super::pipe::Pipe;
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_proto::v1 as pb;
use pb::peer_client::PeerClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Deadline of one bulk call (see [`Peers::bulk_client`]).
const BULK_TIMEOUT: Duration = Duration::from_secs(30);

type Channels = Mutex<HashMap<ActorId, (String, Channel)>>;

pub struct Peers {
    timeout: Duration,
    channels: Channels,
    bulk: Channels,
    pipes: tokio::sync::Mutex<HashMap<ActorId, (String, Arc<Pipe>)>>,
}

impl Peers {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            channels: Mutex::new(HashMap::new()),
            bulk: Mutex::new(HashMap::new()),
            pipes: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client for `node` at `url` (its gRPC address); reconnects if the address changed.
    pub fn client(&self, node: ActorId, url: &str) -> NodeResult<PeerClient<Channel>> {
        self.client_in(&self.channels, node, url, self.timeout)
    }

    /// A client for bulk calls (anti-entropy steps that scan partitions and carry megabytes):
    /// its own connection, so they never queue behind or ahead of replication, and a
    /// deadline of `BULK_TIMEOUT` instead of the peer timeout.
    pub fn bulk_client(&self, node: ActorId, url: &str) -> NodeResult<PeerClient<Channel>> {
        self.client_in(&self.bulk, node, url, BULK_TIMEOUT.max(self.timeout))
    }

    fn client_in(
        &self,
        channels: &Channels,
        node: ActorId,
        url: &str,
        timeout: Duration,
    ) -> NodeResult<PeerClient<Channel>> {
        let mut map = channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((known, ch)) = map.get(&node)
            && known == url
        {
            return Ok(client(ch.clone()));
        }
        let ch = Endpoint::from_shared(url.to_string())
            .map_err(|e| NodeError::Internal(format!("peer address {url:?} is invalid: {e}")))?
            .connect_timeout(self.timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect_lazy();
        map.insert(node, (url.to_string(), ch.clone()));
        Ok(client(ch))
    }
}

impl Peers {
    /// Sends one replication or read request to `node` over its pipe, opening (or
    /// reopening) the pipe as needed.
    pub async fn call(
        &self,
        node: ActorId,
        url: &str,
        op: pb::peer_request::Op,
    ) -> NodeResult<pb::PeerResponse> {
        let existing = self
            .pipes
            .lock()
            .await
            .get(&node)
            .filter(|(known, p)| known == url && p.is_alive())
            .map(|(_, p)| p.clone());
        let pipe = match existing {
            Some(p) => p,
            None => {
                // Opened without holding the map: a slow or dead peer must not hold up
                // calls to the others. Two racing opens are harmless; the last one stays.
                let client = self.client(node, url)?;
                let p = tokio::time::timeout(self.timeout, Pipe::open(client, 4096))
                    .await
                    .map_err(|_| {
                        NodeError::Unavailable(format!("node {node} did not open a pipe"))
                    })??;
                self.pipes
                    .lock()
                    .await
                    .insert(node, (url.to_string(), p.clone()));
                p
            }
        };
        pipe.call(op, self.timeout).await
    }
}

fn client(ch: Channel) -> PeerClient<Channel> {
    PeerClient::new(ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// Maps a failed peer call to the node's error type, naming the peer.
pub fn peer_error(node: &ActorId, what: &str, status: tonic::Status) -> NodeError {
    NodeError::Unavailable(format!(
        "{what} to node {node} failed: {} {}",
        crate::error::code_name(status.code()),
        status.message()
    ))
}
