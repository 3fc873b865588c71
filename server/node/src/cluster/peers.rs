//! Connections to other nodes: one lazily connected HTTP/2 channel per peer, shared by all
//! requests to it (tonic multiplexes them), each request bounded by the peer timeout.

use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_proto::v1 as pb;
use pb::peer_client::PeerClient;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

pub struct Peers {
    timeout: Duration,
    channels: Mutex<HashMap<ActorId, (String, Channel)>>,
}

impl Peers {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client for `node` at `url` (its gRPC address); reconnects if the address changed.
    pub fn client(&self, node: ActorId, url: &str) -> NodeResult<PeerClient<Channel>> {
        let mut map = self
            .channels
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
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect_lazy();
        map.insert(node, (url.to_string(), ch.clone()));
        Ok(client(ch))
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
