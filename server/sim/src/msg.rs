//! What travels on the simulated network: requests and their answers, matched by an rpc id
//! the sender chose.

use meridian_core::keeper::{ReadReply, WriteAck};
use meridian_core::{ActorId, Consistency};

#[derive(Debug, Clone)]
pub enum Req {
    /// Merge `object` (or keep it as a hint for `hint_for`).
    Replicate {
        skey: Vec<u8>,
        object: Vec<u8>,
        hint_for: Option<ActorId>,
    },
    /// A remote DC's share of a write.
    Relay {
        keyspace: String,
        skey: Vec<u8>,
        object: Vec<u8>,
        wait_for: usize,
        strict: bool,
    },
    /// A replica's state of one key.
    Read { skey: Vec<u8> },
    /// A client's put, delete or CRDT update.
    ClientWrite {
        keyspace: String,
        key: Vec<u8>,
        change: meridian_core::keeper::Change,
        context: Vec<u8>,
        request_id: [u8; 16],
        level: Consistency,
        /// Forwarded by a node that is not a replica: coordinate, never forward again.
        forwarded: bool,
    },
    /// Push-pull of layout histories. Carried as the structure, not bytes: encoding is the
    /// node's transport (protobuf), and it would cost most of a simulated run.
    Layout {
        history: std::sync::Arc<meridian_core::layout::LayoutHistory>,
    },
    /// Every object of these partitions (only these keyspaces, unless empty).
    Stream {
        partitions: Vec<u16>,
        keyspaces: Vec<u64>,
    },
    /// One step of an anti-entropy exchange (carried as the structure, like layouts).
    AntiEntropy(meridian_core::merkle::exchange::Request),
    /// A batch of the sender's replication stream to this node's DC.
    StreamBatch(meridian_core::stream::Batch),
    /// A tombstone reaper's question (see `meridian_core::tombstones`).
    Tombstones(meridian_core::tombstones::Request),
    /// A client's read; `repair` asks every replica in scope (a read-repair pass).
    ClientRead {
        keyspace: String,
        key: Vec<u8>,
        level: Consistency,
        repair: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Resp {
    Stored,
    Relayed(Vec<(ActorId, bool)>),
    State(Option<Vec<u8>>),
    Layout(std::sync::Arc<meridian_core::layout::LayoutHistory>),
    Objects(Vec<(Vec<u8>, Vec<u8>)>),
    Written(Result<WriteAck, String>),
    ReadDone(Result<ReadReply, String>),
    AntiEntropy(meridian_core::merkle::exchange::Reply),
    StreamReply(meridian_core::stream::Reply),
    Tombstones(meridian_core::tombstones::Reply),
    /// Refused or given up on.
    Refused,
}

#[derive(Debug, Clone)]
pub enum Msg {
    Req { rpc: u64, req: Req },
    Resp { rpc: u64, resp: Resp },
}

impl Msg {
    /// A short, stable description for the trace hash.
    pub fn describe(&self) -> String {
        match self {
            Msg::Req { rpc, req } => {
                let kind = match req {
                    Req::Replicate { hint_for, .. } => {
                        if hint_for.is_some() {
                            "standin"
                        } else {
                            "replicate"
                        }
                    }
                    Req::Relay { .. } => "relay",
                    Req::Read { .. } => "read",
                    Req::Layout { .. } => "layout",
                    Req::Stream { .. } => "stream",
                    Req::ClientWrite { .. } => "cwrite",
                    Req::ClientRead { .. } => "cread",
                    Req::AntiEntropy(_) => "ae",
                    Req::Tombstones(r) => {
                        return format!("req{rpc}:gc{}/{}", r.ask.len(), r.purge.len());
                    }
                    Req::StreamBatch(b) => return format!("req{rpc}:batch{}-{}", b.first, b.end),
                };
                format!("req{rpc}:{kind}")
            }
            Msg::Resp { rpc, resp } => {
                let kind = match resp {
                    Resp::Stored => "stored".to_string(),
                    Resp::Relayed(a) => format!("relayed{}", a.len()),
                    Resp::State(s) => format!("state{}", s.as_ref().map_or(0, Vec::len)),
                    Resp::Layout(_) => "layout".into(),
                    Resp::Objects(o) => format!("objects{}", o.len()),
                    Resp::Written(r) => format!("written{}", r.is_ok()),
                    Resp::ReadDone(r) => format!("readdone{}", r.is_ok()),
                    Resp::AntiEntropy(_) => "ae".into(),
                    Resp::StreamReply(r) => format!("{r:?}"),
                    Resp::Tombstones(r) => format!("gc{:?}{:?}", r.held, r.purged),
                    Resp::Refused => "refused".into(),
                };
                format!("resp{rpc}:{kind}")
            }
        }
    }
}
