//! The client: endpoints, streams, retries and the read-modify-write helpers.

use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::options::{Consistency, KeyspaceOptions, ReadOptions, ValueKind, WriteOptions};
use crate::resolver::Resolver;
use crate::routing::RoutingTable;
use crate::stream::MuxStream;
use bytes::Bytes;
use meridian_proto::v1 as pb;
use meridian_proto::v1::admin_client::AdminClient;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The result of a read: every live sibling and the context to write back with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetResult {
    /// Empty when the key does not exist or was deleted.
    pub values: Vec<Bytes>,
    /// Pass this to the next `put` or `delete` of the key.
    pub context: Context,
}

impl GetResult {
    pub fn is_found(&self) -> bool {
        !self.values.is_empty()
    }

    pub fn has_siblings(&self) -> bool {
        self.values.len() > 1
    }
}

/// What a write returns.
///
/// When values concurrent with the write survived it, `siblings` holds every live value
/// (this write's included) and `context` covers them all: writing again with that context
/// supersedes them, so look at them first (resolve, or keep them). When only this write is
/// live, `siblings` is empty and the context is safe to reuse as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteResult {
    pub context: Context,
    pub siblings: Vec<Bytes>,
}

impl WriteResult {
    pub fn has_siblings(&self) -> bool {
        !self.siblings.is_empty()
    }
}

/// A keyspace as the admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceInfo {
    pub name: String,
    pub kind: ValueKind,
    pub replication: BTreeMap<String, u32>,
    pub max_value_bytes: u32,
    pub max_siblings: u32,
}

#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    streams_per_endpoint: usize,
    max_in_flight_per_stream: usize,
    timeout: Duration,
    connect_timeout: Duration,
    retries: usize,
    local_dc: Option<String>,
    routing: bool,
    topology_refresh: Duration,
    dc_failover: bool,
    resolver_timeout: Duration,
}

impl ClientBuilder {
    fn new(endpoints: Vec<String>) -> Self {
        Self {
            // "127.0.0.1:7070" as the node prints it is as good as "http://127.0.0.1:7070".
            endpoints: endpoints
                .into_iter()
                .map(|e| {
                    if e.contains("://") {
                        e
                    } else {
                        format!("http://{e}")
                    }
                })
                .collect(),
            streams_per_endpoint: 4,
            max_in_flight_per_stream: 1024,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            retries: 2,
            local_dc: None,
            routing: true,
            topology_refresh: Duration::from_secs(5),
            dc_failover: false,
            resolver_timeout: Duration::from_secs(1),
        }
    }

    /// Streams opened to each endpoint (default 4); each multiplexes many requests.
    pub fn streams_per_endpoint(mut self, n: usize) -> Self {
        self.streams_per_endpoint = n.max(1);
        self
    }

    pub fn max_in_flight_per_stream(mut self, n: usize) -> Self {
        self.max_in_flight_per_stream = n.max(1);
        self
    }

    /// Default per-request deadline (default 5 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Extra attempts for requests that failed with UNAVAILABLE (default 2), all within the
    /// request's one deadline. Writes keep their request id across attempts, and a write that
    /// reached a node and got no answer is retried at that node first (it may have stored
    /// it), so a retry never creates a sibling.
    pub fn retries(mut self, n: usize) -> Self {
        self.retries = n;
        self
    }

    /// The datacenter this client runs in: requests go to replicas there first, and only
    /// fail over to other datacenters when none is reachable. Default: the DC of the first
    /// endpoint that answers.
    pub fn local_dc(mut self, dc: impl Into<String>) -> Self {
        self.local_dc = Some(dc.into());
        self
    }

    /// Let `LOCAL_*` requests (and requests at the keyspace's default level, which may be
    /// `LOCAL_*`) go to another datacenter when no node of the client's own is reachable
    /// (default off). There, `LOCAL_*` means *that* datacenter: the data may not be what
    /// this datacenter last wrote. Off, such a request fails with UNAVAILABLE naming the
    /// datacenter instead.
    pub fn failover_to_other_dcs(mut self, on: bool) -> Self {
        self.dc_failover = on;
        self
    }

    /// Route each request to a replica of its key using the cluster topology (default on).
    /// Off: requests go to the given endpoints only.
    pub fn routing(mut self, on: bool) -> Self {
        self.routing = on;
        self
    }

    /// How often the topology is refreshed (default 5 s).
    pub fn topology_refresh(mut self, every: Duration) -> Self {
        self.topology_refresh = every;
        self
    }

    /// How long a resolver may run (default 1 s). Past it the caller gets
    /// [`ErrorCode::ResolverTimeout`], nothing is written and the siblings stay.
    pub fn resolver_timeout(mut self, t: Duration) -> Self {
        self.resolver_timeout = t;
        self
    }

    /// Opens the first stream, so a wrong address fails here rather than on first use.
    pub async fn connect(self) -> Result<Client> {
        if self.endpoints.is_empty() {
            return Err(Error::new(ErrorCode::InvalidArgument, "no endpoints given"));
        }
        let mut nodes = Vec::new();
        for url in &self.endpoints {
            nodes.push(Arc::new(Node::new(url, &self)?));
        }
        let client = Client {
            inner: Arc::new(Inner {
                nodes,
                active: AtomicUsize::new(0),
                next_stream: AtomicUsize::new(0),
                routed: Mutex::new(HashMap::new()),
                table: RwLock::new(None),
                local_dc: RwLock::new(self.local_dc.clone()),
                refreshing: std::sync::atomic::AtomicBool::new(false),
                resolvers: RwLock::new(HashMap::new()),
                closed: std::sync::atomic::AtomicBool::new(false),
                options: self,
            }),
        };
        let mut last = None;
        for i in 0..client.inner.nodes.len() {
            let node = &client.inner.nodes[i];
            // A listener that accepts and never speaks HTTP/2 must not hang the connect.
            let opened = tokio::time::timeout(
                client.inner.options.connect_timeout,
                client.stream_on(node, 0),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorCode::Unavailable,
                    format!("{}: no stream opened within the connect timeout", node.url),
                ))
            });
            match opened {
                Ok(_) => {
                    client.inner.active.store(i, Ordering::Relaxed);
                    if client.inner.options.routing {
                        client.refresh_topology().await;
                        spawn_refresher(Arc::downgrade(&client.inner));
                    }
                    return Ok(client);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorCode::Unavailable, "no endpoint reachable")))
    }
}

struct Node {
    url: String,
    channel: Channel,
    streams: Vec<tokio::sync::Mutex<Option<Arc<MuxStream>>>>,
}

impl Node {
    fn new(url: &str, opts: &ClientBuilder) -> Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("bad endpoint {url:?}: {e}"),
                )
            })?
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        Ok(Node {
            url: url.to_string(),
            channel: endpoint.connect_lazy(),
            streams: (0..opts.streams_per_endpoint)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
        })
    }
}

/// Refreshes the topology in the background for as long as the client lives.
fn spawn_refresher(inner: Weak<Inner>) {
    tokio::spawn(async move {
        loop {
            let every = match inner.upgrade() {
                Some(i) => i.options.topology_refresh,
                None => return,
            };
            tokio::time::sleep(every).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            Client { inner }.refresh_topology().await;
        }
    });
}

struct Inner {
    /// The endpoints the client was given.
    nodes: Vec<Arc<Node>>,
    /// Nodes learned from the topology, by gRPC URL.
    routed: Mutex<HashMap<String, Arc<Node>>>,
    table: RwLock<Option<Arc<RoutingTable>>>,
    local_dc: RwLock<Option<String>>,
    /// A topology refresh is under way (one at a time).
    refreshing: std::sync::atomic::AtomicBool,
    /// The endpoint requests go to; moves on when it becomes unreachable.
    active: AtomicUsize,
    next_stream: AtomicUsize,
    /// Resolvers registered per keyspace, used when a call names none.
    resolvers: RwLock<HashMap<String, Arc<dyn Resolver>>>,
    closed: std::sync::atomic::AtomicBool,
    options: ClientBuilder,
}

/// A handle to a Meridian cluster. Cheap to clone; clones share streams.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field(
                "endpoints",
                &self.inner.nodes.iter().map(|n| &n.url).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Client {
    pub fn builder<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::new(endpoints.into_iter().map(Into::into).collect())
    }

    pub async fn connect<I, S>(endpoints: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder(endpoints).connect().await
    }

    /// Reads every live sibling of a key. A missing or deleted key gives an empty result
    /// (with a context that covers any tombstone), not an error.
    pub async fn get(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Result<GetResult> {
        self.get_with(keyspace, key, &ReadOptions::default()).await
    }

    pub async fn get_with(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        opts: &ReadOptions,
    ) -> Result<GetResult> {
        let op = pb::operation::Op::Get(pb::GetRequest {
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            consistency: consistency(opts.consistency),
            r: 0,
        });
        let result = self.execute(op, opts.timeout).await?;
        let get = match result.result {
            Some(pb::operation_result::Result::Get(g)) => g,
            _ => return Err(unexpected()),
        };
        Ok(GetResult {
            values: get.values,
            context: Context(get.context),
        })
    }

    /// Writes a value. With the context of an earlier read it replaces exactly what that read
    /// saw; without one it becomes a sibling of whatever is there. Returns the new context,
    /// with the values it covers when concurrent ones survived (see [`WriteResult`]).
    pub async fn put(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<WriteResult> {
        self.put_with(keyspace, key, value, context, &WriteOptions::default())
            .await
    }

    pub async fn put_with(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let op = pb::operation::Op::Put(pb::PutRequest {
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            value: value.into(),
            context: context.map(|c| c.0.clone()).unwrap_or_default(),
            request_id: request_id(opts.request_id),
            consistency: consistency(opts.consistency),
            w: 0,
        });
        self.write(op, opts.timeout).await
    }

    /// Deletes a key. With a context it removes what that read saw; without one it removes
    /// what the replica holds now. Concurrent values it has not seen survive as siblings.
    pub async fn delete(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<WriteResult> {
        self.delete_with(keyspace, key, context, &WriteOptions::default())
            .await
    }

    pub async fn delete_with(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        let op = pb::operation::Op::Delete(pb::DeleteRequest {
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            context: context.map(|c| c.0.clone()).unwrap_or_default(),
            request_id: request_id(opts.request_id),
            consistency: consistency(opts.consistency),
            w: 0,
        });
        self.write(op, opts.timeout).await
    }

    /// Reads a key and, if it has siblings, resolves them and writes the result back with
    /// the read's context, so the siblings are gone for every later reader. `resolver`
    /// `None`: the one registered for the keyspace ([`Client::set_resolver`]).
    pub async fn get_resolved(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Option<Bytes>> {
        let opts = (ReadOptions::default(), WriteOptions::default());
        self.get_resolved_with(keyspace, key, resolver, &opts.0, &opts.1)
            .await
    }

    pub async fn get_resolved_with(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        resolver: Option<&dyn Resolver>,
        read: &ReadOptions,
        write: &WriteOptions,
    ) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        let found = self.get_with(keyspace, key, read).await?;
        match found.values.len() {
            0 => Ok(None),
            1 => Ok(found.values.into_iter().next()),
            _ => {
                let merged = self.resolve(keyspace, key, found.values, resolver).await?;
                self.put_with(keyspace, key, merged.clone(), Some(&found.context), write)
                    .await?;
                Ok(Some(merged))
            }
        }
    }

    /// Read-modify-write: reads the key (resolving siblings with `resolver`, or the one
    /// registered for the keyspace, if there are several), applies `f` to the current value,
    /// and writes the result with the read's context. `f` returning `None` deletes the key.
    /// Returns what the write returned: check [`WriteResult::siblings`] when concurrent
    /// writes may race the update.
    pub async fn update<F>(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        resolver: Option<&dyn Resolver>,
        f: F,
    ) -> Result<WriteResult>
    where
        F: FnOnce(Option<Bytes>) -> Option<Bytes>,
    {
        let opts = (ReadOptions::default(), WriteOptions::default());
        self.update_with(keyspace, key, resolver, &opts.0, &opts.1, |v| {
            std::future::ready(Ok(f(v)))
        })
        .await
    }

    /// [`Client::update`] with options, and an `f` that may await or fail: an error from `f`
    /// reaches the caller and nothing is written.
    pub async fn update_with<F, Fut>(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        resolver: Option<&dyn Resolver>,
        read: &ReadOptions,
        write: &WriteOptions,
        f: F,
    ) -> Result<WriteResult>
    where
        F: FnOnce(Option<Bytes>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Bytes>>>,
    {
        let key = key.as_ref();
        let found = self.get_with(keyspace, key, read).await?;
        let current = match found.values.len() {
            0 => None,
            1 => found.values.into_iter().next(),
            _ => Some(self.resolve(keyspace, key, found.values, resolver).await?),
        };
        match f(current).await? {
            Some(next) => {
                self.put_with(keyspace, key, next, Some(&found.context), write)
                    .await
            }
            None => {
                self.delete_with(keyspace, key, Some(&found.context), write)
                    .await
            }
        }
    }

    /// Registers the resolver that [`Client::get_resolved`] and [`Client::update`] use for
    /// `keyspace` when a call names none. Clones of this client share the registry.
    pub fn set_resolver(&self, keyspace: &str, resolver: Arc<dyn Resolver>) {
        self.inner
            .resolvers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(keyspace.to_string(), resolver);
    }

    pub fn clear_resolver(&self, keyspace: &str) {
        self.inner
            .resolvers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(keyspace);
    }

    /// Turns siblings into one value with the given or the registered resolver, within the
    /// client's resolver timeout.
    async fn resolve(
        &self,
        keyspace: &str,
        key: &[u8],
        siblings: Vec<Bytes>,
        given: Option<&dyn Resolver>,
    ) -> Result<Bytes> {
        let timeout = self.inner.options.resolver_timeout;
        if let Some(r) = given {
            return crate::resolver::run(r, key, siblings, timeout).await;
        }
        let registered = self
            .inner
            .resolvers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(keyspace)
            .cloned();
        match registered {
            Some(r) => crate::resolver::run(r.as_ref(), key, siblings, timeout).await,
            None => Err(Error::new(
                ErrorCode::UnresolvedSiblings,
                format!(
                    "key has {} siblings and no resolver was given or registered for keyspace \
                     {keyspace}",
                    siblings.len()
                ),
            )),
        }
    }

    /// Ends every stream; later calls fail with CANCELLED. Idempotent. Dropping every clone
    /// of the client does the same.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let routed: Vec<Arc<Node>> = self
            .inner
            .routed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .map(|(_, n)| n)
            .collect();
        for node in self.inner.nodes.iter().chain(routed.iter()) {
            for slot in &node.streams {
                slot.lock().await.take();
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Creates a keyspace (idempotent for an identical definition).
    pub async fn create_keyspace(
        &self,
        name: &str,
        kind: ValueKind,
        replication: BTreeMap<String, u32>,
    ) -> Result<KeyspaceInfo> {
        let opts = KeyspaceOptions {
            kind: Some(kind),
            replication,
            ..Default::default()
        };
        self.create_keyspace_with(name, &opts).await
    }

    /// Creates a keyspace with limits and default levels (idempotent for an identical
    /// definition; ALREADY_EXISTS for a different one).
    pub async fn create_keyspace_with(
        &self,
        name: &str,
        opts: &KeyspaceOptions,
    ) -> Result<KeyspaceInfo> {
        let spec = pb::KeyspaceSpec {
            name: name.to_string(),
            kind: pb::ValueKind::from(opts.kind.unwrap_or(ValueKind::Siblings)) as i32,
            replication: opts.replication.clone().into_iter().collect(),
            read_consistency: consistency(opts.read_consistency),
            write_consistency: consistency(opts.write_consistency),
            max_value_bytes: opts.max_value_bytes.unwrap_or(0),
            max_siblings: opts.max_siblings.unwrap_or(0),
            sync_writes: None,
        };
        self.create_keyspace_spec(spec).await
    }

    /// Creates a keyspace from a full protocol spec (limits, default consistency, ...).
    ///
    /// Returns once every node that is up knows the keyspace, or when the client's timeout
    /// has passed: definitions spread by gossip, and a request routed to a node that has not
    /// heard of the keyspace yet would fail with NOT_FOUND.
    pub async fn create_keyspace_spec(&self, spec: pb::KeyspaceSpec) -> Result<KeyspaceInfo> {
        let ks = self
            .admin()?
            .create_keyspace(pb::CreateKeyspaceRequest { spec: Some(spec) })
            .await?
            .into_inner();
        let info = keyspace_info(ks)?;
        self.await_keyspace(&info.name).await;
        Ok(info)
    }

    async fn await_keyspace(&self, name: &str) {
        let Some(table) = self.table() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + self.inner.options.timeout;
        for url in table.up_urls() {
            let Ok(node) = self.routed_node(&url) else {
                continue;
            };
            loop {
                let mut admin = AdminClient::new(node.channel.clone());
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let listed = tokio::time::timeout(
                    remaining,
                    admin.list_keyspaces(pb::ListKeyspacesRequest {}),
                )
                .await;
                let known = matches!(&listed, Ok(Ok(r)) if r.get_ref().keyspaces.iter().any(
                    |k| k.spec.as_ref().is_some_and(|s| s.name == name)
                ));
                if known || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    pub async fn list_keyspaces(&self) -> Result<Vec<KeyspaceInfo>> {
        let list = self
            .admin()?
            .list_keyspaces(pb::ListKeyspacesRequest {})
            .await?
            .into_inner();
        list.keyspaces.into_iter().map(keyspace_info).collect()
    }

    pub async fn node_info(&self) -> Result<pb::NodeInfoResponse> {
        Ok(self
            .admin()?
            .node_info(pb::NodeInfoRequest {})
            .await?
            .into_inner())
    }

    /// Fetches the topology from the first endpoint that answers. Failures keep the old
    /// table (or none: requests then go to the given endpoints).
    async fn refresh_topology(&self) {
        let n = self.inner.nodes.len();
        let start = self.inner.active.load(Ordering::Relaxed);
        for k in 0..n {
            let node = &self.inner.nodes[(start + k) % n];
            let mut admin = AdminClient::new(node.channel.clone());
            let call = admin.topology(pb::TopologyRequest {});
            let Ok(Ok(resp)) = tokio::time::timeout(self.inner.options.timeout, call).await else {
                continue;
            };
            let resp = resp.into_inner();
            let answering_dc = resp
                .members
                .iter()
                .find(|m| m.node_id == resp.node_id)
                .map(|m| m.datacenter.clone());
            if let Some(table) = RoutingTable::from_proto(resp) {
                let mut dc = self
                    .inner
                    .local_dc
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if dc.is_none() {
                    *dc = answering_dc;
                }
                // Drop connections to addresses no member has any more (restarted nodes
                // come back on new ports).
                self.inner
                    .routed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retain(|url, _| table.has_url(url));
                *self
                    .inner
                    .table
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(table));
            }
            return;
        }
    }

    /// The topology epoch the client routes by, if it has one.
    pub fn topology_epoch(&self) -> Option<u64> {
        self.inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|t| t.epoch)
    }

    /// Where `op` may go, best first; empty when the client has no topology. `local_only`
    /// keeps to the client's DC.
    fn candidates(&self, op: &pb::operation::Op, local_only: bool) -> Vec<String> {
        let (keyspace, key) = op_key(op);
        let Some(table) = self.table() else {
            return Vec::new();
        };
        let dc = self.local_dc();
        table.candidates(dc.as_deref(), keyspace, key, local_only)
    }

    /// The routing table as of now (refreshes replace it whole).
    fn table(&self) -> Option<Arc<RoutingTable>> {
        self.inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn local_dc(&self) -> Option<String> {
        self.inner
            .local_dc
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn has_table(&self) -> bool {
        self.table().is_some()
    }

    fn routed_node(&self, url: &str) -> Result<Arc<Node>> {
        let mut map = self
            .inner
            .routed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get(url) {
            return Ok(n.clone());
        }
        let node = Arc::new(Node::new(url, &self.inner.options)?);
        map.insert(url.to_string(), node.clone());
        Ok(node)
    }

    fn admin(&self) -> Result<AdminClient<Channel>> {
        if self.is_closed() {
            return Err(Error::new(ErrorCode::Cancelled, "the client is closed"));
        }
        let i = self.inner.active.load(Ordering::Relaxed) % self.inner.nodes.len();
        Ok(AdminClient::new(self.inner.nodes[i].channel.clone()))
    }

    /// Runs a put or delete and returns the context it produced, with surviving siblings.
    async fn write(&self, op: pb::operation::Op, timeout: Option<Duration>) -> Result<WriteResult> {
        use pb::operation_result::Result as R;
        match self.execute(op, timeout).await?.result {
            Some(R::Put(pb::PutResponse { context, siblings }))
            | Some(R::Delete(pb::DeleteResponse { context, siblings })) => Ok(WriteResult {
                context: Context(context),
                siblings,
            }),
            _ => Err(unexpected()),
        }
    }

    /// Sends one operation within one deadline, retrying on UNAVAILABLE. The operation is
    /// resent unchanged, request id included, so the server recognises the retry. A write
    /// that reached a node and failed there is retried at that node first (it may have
    /// minted it; another replica would mint it again); one that never got there moves on.
    pub(crate) async fn execute(
        &self,
        op: pb::operation::Op,
        timeout: Option<Duration>,
    ) -> Result<pb::OperationResult> {
        if self.is_closed() {
            return Err(Error::new(ErrorCode::Cancelled, "the client is closed"));
        }
        let timeout = timeout.unwrap_or(self.inner.options.timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let local_only = !self.inner.options.dc_failover && may_be_local(&op);
        let candidates = self.candidates(&op, local_only);
        if local_only
            && candidates.is_empty()
            && self.has_table()
            && let Some(dc) = self.local_dc()
        {
            return Err(Error::new(
                ErrorCode::Unavailable,
                format!(
                    "no node of datacenter {dc} is reachable, and {} requests do not fail over \
                     to other datacenters: use a level that is not LOCAL_*, or \
                     ClientBuilder::failover_to_other_dcs",
                    level_of(&op)
                ),
            ));
        }
        let is_write = !matches!(op, pb::operation::Op::Get(_) | pb::operation::Op::Fetch(_));
        let operation = pb::Operation { op: Some(op) };
        let mut attempt = 0;
        let mut pick = 0;
        loop {
            let node = self.inner.active.load(Ordering::Relaxed) % self.inner.nodes.len();
            // Routed: a replica candidate; otherwise the endpoints.
            let routed = match candidates.get(pick % candidates.len().max(1)) {
                Some(url) => Some(self.routed_node(url)?),
                None => None,
            };
            let target = routed.as_ref().unwrap_or(&self.inner.nodes[node]).clone();
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut reached = false;
            let outcome = async {
                // Opening a stream waits at most for what is left of the deadline.
                let stream = tokio::time::timeout(remaining, self.stream(&target))
                    .await
                    .map_err(|_| {
                        Error::new(
                            ErrorCode::Unavailable,
                            format!("{}: no stream opened within the deadline", target.url),
                        )
                    })??;
                reached = true;
                stream.call(operation.clone(), remaining).await
            }
            .await;
            let err = match outcome {
                Ok(result) => return check(result),
                Err(e) => e,
            };
            if !err.code.is_retryable() || attempt >= self.inner.options.retries {
                return Err(err);
            }
            attempt += 1;
            let backoff = Duration::from_millis(20 * attempt as u64);
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(Error::new(
                    ErrorCode::DeadlineExceeded,
                    format!(
                        "deadline of {timeout:?} reached after {attempt} attempts; last: {}",
                        err.message
                    ),
                ));
            }
            if !(is_write && reached && attempt == 1) {
                pick += 1;
            }
            if routed.is_some() {
                // A routed node failed: the topology may be stale.
                if attempt == 1 && !self.inner.refreshing.swap(true, Ordering::AcqRel) {
                    let me = self.clone();
                    tokio::spawn(async move {
                        me.refresh_topology().await;
                        me.inner.refreshing.store(false, Ordering::Release);
                    });
                }
            } else if pick > 0 || !is_write {
                let _ = self.inner.active.compare_exchange(
                    node,
                    (node + 1) % self.inner.nodes.len(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            tokio::time::sleep(backoff).await;
        }
    }

    async fn stream(&self, target: &Node) -> Result<Arc<MuxStream>> {
        let n = target.streams.len();
        let slot = self.inner.next_stream.fetch_add(1, Ordering::Relaxed) % n;
        self.stream_on(target, slot).await
    }

    async fn stream_on(&self, target: &Node, slot: usize) -> Result<Arc<MuxStream>> {
        let mut guard = target.streams[slot].lock().await;
        if let Some(s) = guard.as_ref().filter(|s| s.is_alive()) {
            return Ok(s.clone());
        }
        let opened = MuxStream::open(
            target.channel.clone(),
            self.inner.options.max_in_flight_per_stream,
        )
        .await
        // Nothing was sent yet: whatever stopped the stream from opening, the node is
        // unavailable to us and another one may be tried.
        .map_err(|e| {
            Error::new(
                ErrorCode::Unavailable,
                format!("{}: {} ({})", target.url, e.message, e.code.as_str()),
            )
        })?;
        *guard = Some(opened.clone());
        Ok(opened)
    }
}

/// What routing and retries need of an operation: its keyspace and key, its level, and its
/// explicit replica count.
fn op_fields(op: &pb::operation::Op) -> (&String, &Bytes, i32, u32) {
    use pb::operation::Op;
    match op {
        Op::Get(g) => (&g.keyspace, &g.key, g.consistency, g.r),
        Op::Put(p) => (&p.keyspace, &p.key, p.consistency, p.w),
        Op::Delete(d) => (&d.keyspace, &d.key, d.consistency, d.w),
        Op::Update(u) => (&u.keyspace, &u.key, u.consistency, u.w),
        Op::Fetch(f) => (&f.keyspace, &f.key, f.consistency, f.r),
    }
}

fn op_key(op: &pb::operation::Op) -> (&String, &Bytes) {
    let (ks, key, _, _) = op_fields(op);
    (ks, key)
}

fn level_of(op: &pb::operation::Op) -> String {
    match pb::Consistency::try_from(op_fields(op).2) {
        Ok(pb::Consistency::Unspecified) | Err(_) => "default-level (possibly LOCAL_*)".into(),
        Ok(c) => c.as_str_name().to_string(),
    }
}

/// Whether `op` is counted in the coordinator's datacenter: LOCAL_* levels, and the
/// keyspace's default level, which the client cannot see and may be LOCAL_*.
fn may_be_local(op: &pb::operation::Op) -> bool {
    let (_, _, level, explicit) = op_fields(op);
    if explicit > 0 {
        return false;
    }
    matches!(
        pb::Consistency::try_from(level),
        Ok(pb::Consistency::Unspecified | pb::Consistency::LocalOne | pb::Consistency::LocalQuorum)
            | Err(_)
    )
}

fn check(result: pb::OperationResult) -> Result<pb::OperationResult> {
    let status = result.status.clone().unwrap_or_default();
    if status.code == 0 {
        return Ok(result);
    }
    let code = tonic::Code::from_i32(status.code);
    // A get of a missing key is NOT_FOUND with its context attached: an empty result.
    if code == tonic::Code::NotFound
        && matches!(result.result, Some(pb::operation_result::Result::Get(_)))
    {
        return Ok(result);
    }
    Err(Error::new(ErrorCode::from_grpc(code), status.message))
}

pub(crate) fn unexpected() -> Error {
    Error::new(
        ErrorCode::Internal,
        "server answered with the wrong result type",
    )
}

pub(crate) fn consistency(c: Option<Consistency>) -> i32 {
    c.map_or(pb::Consistency::Unspecified, pb::Consistency::from) as i32
}

pub(crate) fn request_id(id: Option<[u8; 16]>) -> Bytes {
    let id = id.unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes());
    Bytes::copy_from_slice(&id)
}

fn keyspace_info(ks: pb::Keyspace) -> Result<KeyspaceInfo> {
    let spec = ks
        .spec
        .ok_or_else(|| Error::new(ErrorCode::Internal, "keyspace without a spec"))?;
    let kind = meridian_proto::crdt::value_kind_from_wire(spec.kind)
        .map_err(|e| Error::new(ErrorCode::Internal, e))?;
    Ok(KeyspaceInfo {
        name: spec.name,
        kind,
        replication: spec.replication.into_iter().collect(),
        max_value_bytes: spec.max_value_bytes,
        max_siblings: spec.max_siblings,
    })
}
