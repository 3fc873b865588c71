//! Typed handles on one key of a CRDT keyspace (`client.counter('hits', 'home')`): every
//! method is one `apply` or `fetch` of the Rust SDK; values come back in their JSON form.

use crate::errors::to_js;
use crate::values::{BytesArg, Fetched, ReadOpts, WriteOpts, context, read_options, write_options};
use bytes::Bytes;
use meridian_sdk::crdt::Op;
use napi::bindgen_prelude::{BigInt, Buffer, Either};
use napi_derive::napi;
use serde_bytes::ByteBuf;

/// One key of a CRDT keyspace, shared by the typed handles.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) ks: meridian_sdk::Keyspace,
    pub(crate) key: Bytes,
}

impl Target {
    async fn apply(
        &self,
        op: Op,
        ctx: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<Fetched> {
        self.ks
            .apply_with(
                &self.key,
                vec![op],
                context(ctx).as_ref(),
                &write_options(options)?,
            )
            .await
            .map(Fetched::from)
            .map_err(to_js)
    }

    async fn fetch(&self, options: Option<ReadOpts>) -> napi::Result<Fetched> {
        self.ks
            .fetch_with(&self.key, &read_options(options)?)
            .await
            .map(Fetched::from)
            .map_err(to_js)
    }
}

fn elements(items: Vec<BytesArg>) -> Vec<ByteBuf> {
    items
        .into_iter()
        .map(|e| match e {
            Either::A(b) => ByteBuf::from(b.to_vec()),
            Either::B(s) => ByteBuf::from(s.into_bytes()),
        })
        .collect()
}

/// An amount as JavaScript gives it: a number must be a safe integer (napi would truncate
/// 1.5 to 1 and NaN to 0 without a word), a BigInt must fit in 64 bits.
fn amount(call: &str, by: Option<Either<f64, BigInt>>) -> napi::Result<i64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    let invalid = |why: String| {
        to_js(meridian_sdk::Error::new(
            meridian_sdk::ErrorCode::InvalidArgument,
            format!("{call}: {why}"),
        ))
    };
    match by {
        None => Ok(1),
        Some(Either::A(n)) if n.fract() == 0.0 && n.abs() <= MAX_SAFE => Ok(n as i64),
        Some(Either::A(n)) => Err(invalid(format!(
            "the amount must be an integer, and a number at most 2^53 - 1 in size \
             (pass a BigInt beyond that), not {n}"
        ))),
        Some(Either::B(b)) => match b.get_i64() {
            (v, true) => Ok(v),
            _ => Err(invalid(
                "a BigInt amount must fit in a 64-bit signed integer".to_string(),
            )),
        },
    }
}

fn negate(by: i64) -> napi::Result<i64> {
    by.checked_neg().ok_or_else(|| {
        to_js(meridian_sdk::Error::new(
            meridian_sdk::ErrorCode::InvalidArgument,
            format!("cannot decrement by {by}: its negation does not fit in 64 bits"),
        ))
    })
}

/// One key of a `counter` keyspace: increments from every datacenter add up.
#[napi]
pub struct Counter(pub(crate) Target);

#[napi]
impl Counter {
    /// Adds `by` (default 1; negative decrements): a safe integer, or a BigInt. Resolves to
    /// the value after it, a number, or a BigInt beyond 2^53 - 1.
    #[napi(
        ts_args_type = "by?: number | bigint | undefined | null, options?: WriteOpts | undefined | null",
        ts_return_type = "Promise<number | bigint>"
    )]
    pub async fn increment(
        &self,
        by: Option<Either<f64, BigInt>>,
        options: Option<WriteOpts>,
    ) -> napi::Result<serde_json::Value> {
        let op = Op::Increment(amount("Counter.increment()", by)?);
        Ok(self.0.apply(op, None, options).await?.value)
    }

    /// Subtracts `by` (default 1), as `increment` takes it; resolves to the value after it.
    #[napi(
        ts_args_type = "by?: number | bigint | undefined | null, options?: WriteOpts | undefined | null",
        ts_return_type = "Promise<number | bigint>"
    )]
    pub async fn decrement(
        &self,
        by: Option<Either<f64, BigInt>>,
        options: Option<WriteOpts>,
    ) -> napi::Result<serde_json::Value> {
        let op = Op::Increment(negate(amount("Counter.decrement()", by)?)?);
        Ok(self.0.apply(op, None, options).await?.value)
    }

    /// The counter's value (0 for a key never updated): a number, or a BigInt beyond 2^53 - 1.
    #[napi(ts_return_type = "Promise<number | bigint>")]
    pub async fn value(&self, options: Option<ReadOpts>) -> napi::Result<serde_json::Value> {
        Ok(self.0.fetch(options).await?.value)
    }
}

/// One key of a `set` keyspace: add-wins, a remove takes away only the adds it saw.
#[napi(js_name = "CrdtSet")]
pub struct Set(pub(crate) Target);

#[napi]
impl Set {
    /// Adds elements; resolves to the members after it.
    #[napi]
    pub async fn add(
        &self,
        elements: Vec<BytesArg>,
        options: Option<WriteOpts>,
    ) -> napi::Result<serde_json::Value> {
        let op = Op::Add(self::elements(elements));
        Ok(self.0.apply(op, None, options).await?.value)
    }

    /// Removes the adds of these elements that `context` (from `fetch`) saw, else all the
    /// coordinating replica holds; resolves to the members after it.
    #[napi]
    pub async fn remove(
        &self,
        elements: Vec<BytesArg>,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<serde_json::Value> {
        let op = Op::Remove(self::elements(elements));
        Ok(self.0.apply(op, context, options).await?.value)
    }

    /// The members, in byte order.
    #[napi]
    pub async fn members(&self, options: Option<ReadOpts>) -> napi::Result<serde_json::Value> {
        Ok(self.0.fetch(options).await?.value)
    }

    /// The members with the context for `remove`.
    #[napi]
    pub async fn fetch(&self, options: Option<ReadOpts>) -> napi::Result<Fetched> {
        self.0.fetch(options).await
    }
}

/// One key of a `flag` keyspace: enable wins over a concurrent disable.
#[napi]
pub struct Flag(pub(crate) Target);

#[napi]
impl Flag {
    /// Enables the flag; resolves to true.
    #[napi]
    pub async fn enable(&self, options: Option<WriteOpts>) -> napi::Result<serde_json::Value> {
        Ok(self.0.apply(Op::Enable, None, options).await?.value)
    }

    /// Disables what `context` saw (else all the coordinating replica holds).
    #[napi]
    pub async fn disable(
        &self,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<serde_json::Value> {
        Ok(self.0.apply(Op::Disable, context, options).await?.value)
    }

    /// Whether the flag is enabled (false for a key never updated).
    #[napi]
    pub async fn get(&self, options: Option<ReadOpts>) -> napi::Result<serde_json::Value> {
        Ok(self.0.fetch(options).await?.value)
    }
}

/// One key of a `register` (last writer wins) or `mvregister` (concurrent values kept)
/// keyspace.
#[napi]
pub struct Register(pub(crate) Target);

#[napi]
impl Register {
    /// Assigns a value, replacing what `context` saw (else what the coordinating replica
    /// holds).
    #[napi]
    pub async fn assign(
        &self,
        value: BytesArg,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<Fetched> {
        let op = Op::Assign(elements(vec![value]).remove(0));
        self.0.apply(op, context, options).await
    }

    /// The value (an array of concurrent values for an mvregister) and context.
    #[napi]
    pub async fn fetch(&self, options: Option<ReadOpts>) -> napi::Result<Fetched> {
        self.0.fetch(options).await
    }
}

/// One key of a `map` keyspace: named, typed fields, each a CRDT of its own.
#[napi(js_name = "CrdtMap")]
pub struct Map(pub(crate) Target);

#[napi]
impl Map {
    /// Applies field operations in their JSON form, e.g.
    /// `[{update: {field: 'visits:counter', op: {increment: 1}}}]`, all or none.
    #[napi(
        ts_args_type = "ops: Array<object>, context?: Buffer | undefined | null, options?: WriteOpts | undefined | null"
    )]
    pub async fn update(
        &self,
        ops: serde_json::Value,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<Fetched> {
        let ops = meridian_sdk::crdt::ops_from_json(&ops).map_err(to_js)?;
        self.0
            .ks
            .apply_with(
                &self.0.key,
                ops,
                crate::values::context(context).as_ref(),
                &write_options(options)?,
            )
            .await
            .map(Fetched::from)
            .map_err(to_js)
    }

    /// The fields (an object of "name:kind" keys) and context.
    #[napi]
    pub async fn fetch(&self, options: Option<ReadOpts>) -> napi::Result<Fetched> {
        self.0.fetch(options).await
    }
}
