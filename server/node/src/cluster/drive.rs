//! Carries out the core's request machines (`meridian_core::coordinate`) over gRPC and
//! RocksDB: each `Send` becomes a peer call whose answer is fed back, each `KeepHint` a hint
//! in RocksDB, each `Repair` a replicate call, and timers are tokio sleeps. The machine
//! decides everything; this loop only moves bytes and waits.

use super::Cluster;
use crate::cluster::membership::now_ms;
use meridian_core::coordinate::{Answer, CallId, Effect, Machine, Message};
use meridian_core::{ActorId, StoredObject};
use meridian_proto::v1 as pb;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What the calls of one request carry: the object of a write, the key of a read.
#[derive(Clone)]
pub struct Payload {
    pub state: pb::ObjectState,
    pub keyspace: String,
    pub strict: bool,
}

impl Cluster {
    /// Runs `machine` (already started, with its first `effects`) to its end in the
    /// background; its reply goes to `reply` the moment it exists.
    pub(super) fn drive<M>(
        self: &Arc<Self>,
        mut machine: M,
        effects: Vec<Effect<M::Reply>>,
        payload: Payload,
        reply: oneshot::Sender<M::Reply>,
    ) where
        M: Machine + Send + 'static,
        M::Reply: Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let (tx, mut rx) = mpsc::unbounded_channel::<(CallId, Answer)>();
            let mut reply = Some(reply);
            let mut effects = effects;
            loop {
                for effect in effects.drain(..) {
                    me.carry_out(effect, &payload, &tx, &mut reply);
                }
                if machine.finished() {
                    return;
                }
                let timer = machine.next_timer().map(|ms| start + ms_duration(ms));
                effects = tokio::select! {
                    answer = rx.recv() => match answer {
                        Some((call, answer)) => machine.on_answer(call, answer),
                        // Unreachable: this loop holds a sender.
                        None => return,
                    },
                    _ = sleep_until(timer) => {
                        machine.on_timer(start.elapsed().as_millis() as u64)
                    }
                };
            }
        });
    }

    fn carry_out<R>(
        self: &Arc<Self>,
        effect: Effect<R>,
        payload: &Payload,
        answers: &mpsc::UnboundedSender<(CallId, Answer)>,
        reply: &mut Option<oneshot::Sender<R>>,
    ) {
        match effect {
            Effect::Reply(r) => {
                if let Some(t) = reply.take() {
                    let _ = t.send(r);
                }
            }
            Effect::KeepHint { target } => self.keep_hint(target, &payload.state),
            Effect::Stream { dc } => self.streams.append(
                &dc,
                &payload.state.storage_key,
                &payload.state.object,
                now_ms(),
                self.engine.syncs_storage_key(&payload.state.storage_key),
            ),
            Effect::Send { call, to, message } => {
                let me = self.clone();
                let answers = answers.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    let answer = me.call(to, message, &payload).await;
                    let _ = answers.send((call, answer));
                });
            }
            Effect::Repair { to, object } => {
                self.metrics.read_repairs.inc();
                let state = pb::ObjectState {
                    storage_key: payload.state.storage_key.clone(),
                    object: object.encode().into(),
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let r = if to == me.me {
                        me.merge_local(&state).map(|_| ())
                    } else {
                        me.replicate_to(to, &state, None).await
                    };
                    if let Err(e) = r {
                        tracing::debug!(node = %to, error = %e, "read repair failed");
                    }
                });
            }
        }
    }

    /// One call of a machine, answered whatever happens (the peer client has a timeout).
    async fn call(&self, to: ActorId, message: Message, payload: &Payload) -> Answer {
        match message {
            Message::Replicate { hint_for } => {
                match self.replicate_to(to, &payload.state, hint_for).await {
                    Ok(()) => Answer::Stored,
                    Err(_) => Answer::Failed,
                }
            }
            Message::Relay { wait_for } => match self.relay_to(to, payload, wait_for).await {
                Ok(acked) => Answer::Relayed(acked),
                Err(_) => Answer::Failed,
            },
            Message::Read => match self.read_from(to, &payload.state.storage_key).await {
                Ok(state) => Answer::State(state),
                Err(_) => Answer::Failed,
            },
        }
    }

    pub(super) fn keep_hint(&self, target: ActorId, state: &pb::ObjectState) {
        if state.object.is_empty() {
            return;
        }
        if let Err(e) = self.hints.add(
            target,
            &state.storage_key,
            &state.object,
            now_ms(),
            self.engine.syncs_storage_key(&state.storage_key),
        ) {
            tracing::error!(target_node = %target, error = %e, "cannot store hint");
        }
    }

    async fn read_from(
        &self,
        node: ActorId,
        skey: &[u8],
    ) -> crate::error::NodeResult<Option<StoredObject>> {
        if node == self.me {
            return self.engine.local_object(skey);
        }
        let url = self.address_of(&node)?;
        let op = pb::peer_request::Op::Read(pb::ReadRequest {
            storage_keys: vec![skey.to_vec().into()],
        });
        let r = self
            .peers
            .call(node, &url, op)
            .await
            .inspect_err(|_| self.metrics.peer_errors.inc())?;
        match r.read.as_ref().and_then(|r| r.objects.first()) {
            Some(o) if !o.object.is_empty() => Ok(Some(StoredObject::decode(&o.object)?)),
            _ => Ok(None),
        }
    }
}

fn ms_duration(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
