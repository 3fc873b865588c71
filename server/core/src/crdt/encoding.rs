//! The stored and shipped form of a CRDT: actors are written once, in a table, and every dot
//! names its actor by its index there. A dot is then a few bytes instead of twenty, which is
//! most of a set element's cost.
//!
//! The table is sorted and indices follow it, so the dots of an encoding sort as the dots
//! themselves do: equal states still encode to equal bytes.

use super::counter::CounterStore;
use super::dots::DotContext;
use super::register::Stamped;
use super::store::{DotFun, DotMap, DotSet};
use super::typed::Store;
use super::{Crdt, Field};
use crate::actor::ActorId;
use crate::dvv::Dot;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, BTreeSet};

/// A dot as (index in the actor table, counter).
type Short = (u32, u64);

#[derive(Serialize, Deserialize)]
enum Form {
    Counter(BTreeMap<Short, i64>),
    Set(BTreeMap<ByteBuf, BTreeSet<Short>>),
    Register(BTreeMap<Short, Stamped>),
    MvRegister(BTreeMap<Short, Stamped>),
    Flag(BTreeSet<Short>),
    Map(BTreeMap<Field, Form>),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Encoded {
    actors: Vec<ActorId>,
    vv: Vec<Short>,
    cloud: Vec<Short>,
    store: Form,
}

struct Table(BTreeMap<ActorId, u32>);

impl Table {
    fn short(&self, d: &Dot) -> Short {
        (self.0.get(&d.actor).copied().unwrap_or(u32::MAX), d.counter)
    }

    fn set(&self, s: &BTreeSet<Dot>) -> BTreeSet<Short> {
        s.iter().map(|d| self.short(d)).collect()
    }

    fn fun<V: Clone>(&self, s: &BTreeMap<Dot, V>) -> BTreeMap<Short, V> {
        s.iter().map(|(d, v)| (self.short(d), v.clone())).collect()
    }

    fn form(&self, s: &Store) -> Form {
        match s {
            Store::Counter(c) => Form::Counter(self.fun(&c.0.0)),
            Store::Set(m) => Form::Set(
                m.0.iter()
                    .map(|(e, d)| (e.clone(), self.set(&d.0)))
                    .collect(),
            ),
            Store::Register(r) => Form::Register(self.fun(&r.0)),
            Store::MvRegister(r) => Form::MvRegister(self.fun(&r.0)),
            Store::Flag(f) => Form::Flag(self.set(&f.0)),
            Store::Map(fields) => Form::Map(
                fields
                    .iter()
                    .map(|(f, s)| (f.clone(), self.form(s)))
                    .collect(),
            ),
        }
    }
}

impl From<&Crdt> for Encoded {
    fn from(c: &Crdt) -> Self {
        let mut dots = Vec::new();
        c.store().collect_dots(&mut dots);
        let ctx = c.context();
        let actors: BTreeSet<ActorId> = ctx
            .vector()
            .keys()
            .copied()
            .chain(ctx.cloud().iter().map(|d| d.actor))
            .chain(dots.iter().map(|d| d.actor))
            .collect();
        let table = Table(
            actors
                .iter()
                .enumerate()
                .map(|(i, a)| (*a, i as u32))
                .collect(),
        );
        Encoded {
            vv: ctx
                .vector()
                .iter()
                .map(|(a, n)| {
                    table.short(&Dot {
                        actor: *a,
                        counter: *n,
                    })
                })
                .collect(),
            cloud: ctx.cloud().iter().map(|d| table.short(d)).collect(),
            store: table.form(c.store()),
            actors: actors.into_iter().collect(),
        }
    }
}

fn long(actors: &[ActorId], (i, counter): Short) -> Result<Dot, String> {
    let actor = *actors
        .get(i as usize)
        .ok_or_else(|| format!("a dot names actor {i} of {}", actors.len()))?;
    Ok(Dot { actor, counter })
}

fn set(actors: &[ActorId], s: BTreeSet<Short>) -> Result<BTreeSet<Dot>, String> {
    s.into_iter().map(|d| long(actors, d)).collect()
}

fn fun<V>(actors: &[ActorId], s: BTreeMap<Short, V>) -> Result<BTreeMap<Dot, V>, String> {
    s.into_iter()
        .map(|(d, v)| Ok((long(actors, d)?, v)))
        .collect()
}

fn store(actors: &[ActorId], f: Form) -> Result<Store, String> {
    Ok(match f {
        Form::Counter(c) => Store::Counter(CounterStore(DotFun(fun(actors, c)?))),
        Form::Set(m) => Store::Set(DotMap(
            m.into_iter()
                .map(|(e, d)| Ok((e, DotSet(set(actors, d)?))))
                .collect::<Result<_, String>>()?,
        )),
        Form::Register(r) => Store::Register(DotFun(fun(actors, r)?)),
        Form::MvRegister(r) => Store::MvRegister(DotFun(fun(actors, r)?)),
        Form::Flag(f) => Store::Flag(DotSet(set(actors, f)?)),
        Form::Map(fields) => Store::Map(
            fields
                .into_iter()
                .map(|(f, s)| Ok((f, store(actors, s)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

impl TryFrom<Encoded> for Crdt {
    type Error = String;

    fn try_from(e: Encoded) -> Result<Self, String> {
        if e.actors.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the actor table is not sorted".into());
        }
        let vv =
            e.vv.into_iter()
                .map(|d| long(&e.actors, d).map(|d| (d.actor, d.counter)))
                .collect::<Result<BTreeMap<_, _>, _>>()?;
        let cloud = set(&e.actors, e.cloud.into_iter().collect())?;
        Ok(Crdt::from_parts(
            DotContext::from_parts(vv, cloud),
            store(&e.actors, e.store)?,
        ))
    }
}
