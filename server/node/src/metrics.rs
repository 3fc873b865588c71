//! Prometheus metrics, served at `/metrics` on the HTTP port.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub siblings: Histogram,
    pub sibling_warnings: IntCounter,
    pub sibling_rejections: IntCounter,
    pub duplicate_writes: IntCounter,
    pub hints_queued: IntGauge,
    pub hints_written: IntCounter,
    pub hints_dropped: IntCounter,
    pub hints_delivered: IntCounter,
    pub read_repairs: IntCounter,
    pub forwarded: IntCounter,
    pub streamed_objects: IntCounter,
    pub peer_errors: IntCounter,
    pub reclaimed_bytes: IntCounter,
    pub set_aside: IntCounter,
    pub ae_exchanges: IntCounter,
    pub ae_failures: IntCounter,
    pub tombstones_confirmed: IntCounter,
    pub tombstones_purged: IntCounter,
    pub reaper_failures: IntCounter,
    pub ae_repaired: IntCounter,
    pub ae_bytes: IntCounter,
    pub merkle_drift: IntCounter,
    pub stream_queued: IntGaugeVec,
    pub stream_queued_bytes: IntGaugeVec,
    pub stream_shed: IntCounterVec,
    pub stream_sent: IntCounterVec,
    pub stream_bytes: IntCounterVec,
    pub stream_payload_bytes: IntCounterVec,
    pub stream_gaps: IntCounter,
    pub stream_lag: HistogramVec,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("static metric definition")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "meridian_requests_total",
                "Requests by operation and status code",
            ),
            &["op", "code"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "meridian_request_duration_seconds",
                "Request latency inside the node, by operation",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["op"],
        )
        .expect("static metric definition");
        let siblings = Histogram::with_opts(
            HistogramOpts::new(
                "meridian_key_versions",
                "Versions (siblings incl. tombstones) a key holds after a read or write",
            )
            .buckets(vec![1.0, 2.0, 3.0, 5.0, 10.0, 25.0, 50.0, 100.0]),
        )
        .expect("static metric definition");
        let sibling_warnings = IntCounter::new(
            "meridian_sibling_warnings_total",
            "Keys that crossed 25 siblings (counted as they cross)",
        )
        .expect("static metric definition");
        let sibling_rejections = IntCounter::new(
            "meridian_sibling_rejections_total",
            "Writes refused because the key would pass its sibling limit",
        )
        .expect("static metric definition");
        let duplicate_writes = IntCounter::new(
            "meridian_duplicate_writes_total",
            "Retried writes recognised by request id and acknowledged without a new version",
        )
        .expect("static metric definition");
        let hints_queued = IntGauge::new(
            "meridian_hints_queued",
            "Hints this node holds for down or slow replicas",
        )
        .expect("static metric definition");
        let hints_written = counter("meridian_hints_written_total", "Hints stored");
        let hints_dropped = counter(
            "meridian_hints_dropped_total",
            "Hints dropped because they were too old or the queue was full",
        );
        let hints_delivered = counter(
            "meridian_hints_delivered_total",
            "Hints handed to their replica",
        );
        let read_repairs = counter(
            "meridian_read_repairs_total",
            "Stale replicas sent the merged state after a read",
        );
        let forwarded = counter(
            "meridian_forwarded_writes_total",
            "Writes received by a non-replica and forwarded to a replica",
        );
        let streamed_objects = counter(
            "meridian_streamed_objects_total",
            "Objects received while streaming partitions after a membership change",
        );
        let peer_errors = counter(
            "meridian_peer_errors_total",
            "Node-to-node requests that failed or timed out",
        );
        let reclaimed_bytes = counter(
            "meridian_reclaimed_bytes_total",
            "Bytes of data deleted because a retired layout version no longer gives this node its partitions",
        );
        let set_aside = counter(
            "meridian_objects_set_aside_total",
            "Replicated objects (hints, streamed partitions) that could not be merged: reported, kept under set-aside/ in the node's metadata, and skipped",
        );
        let ae_exchanges = counter(
            "meridian_anti_entropy_exchanges_total",
            "Anti-entropy exchanges this node started that finished",
        );
        let ae_failures = counter(
            "meridian_anti_entropy_failures_total",
            "Anti-entropy exchanges this node started that failed (peer down, timeout, bad reply)",
        );
        let tombstones_confirmed = counter(
            "meridian_tombstones_confirmed_total",
            "Tombstones this node (their partition's reaper) found held by every replica in every DC",
        );
        let tombstones_purged = counter(
            "meridian_tombstones_purged_total",
            "Tombstones this node purged from its own disk (as reaper, or asked by one)",
        );
        let reaper_failures = counter(
            "meridian_tombstone_sweep_failures_total",
            "Tombstone sweeps this node started that some replica did not answer (nothing is purged then)",
        );
        let ae_repaired = counter(
            "meridian_anti_entropy_repaired_keys_total",
            "Keys anti-entropy changed, here or on the peer, in exchanges this node started",
        );
        let ae_bytes = counter(
            "meridian_anti_entropy_bytes_total",
            "Bytes sent and received by anti-entropy exchanges this node started",
        );
        let merkle_drift = counter(
            "meridian_merkle_drift_total",
            "Partitions whose Merkle tree disagreed with a rescan of the data and was rebuilt",
        );
        let gauges = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["dc"]).expect("static metric definition")
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
        };
        let stream_queued = gauges(
            "meridian_stream_queued",
            "Writes queued on this node's replication stream to a remote DC, not yet acknowledged",
        );
        let stream_queued_bytes = gauges(
            "meridian_stream_queued_bytes",
            "Bytes queued on this node's replication stream to a remote DC",
        );
        let stream_shed = counters(
            "meridian_stream_shed_total",
            "Writes a full replication stream queued as references (kind=reference) or left to anti-entropy (kind=dropped)",
            &["dc", "kind"],
        );
        let stream_sent = counters(
            "meridian_stream_sent_total",
            "Writes a remote DC acknowledged on this node's replication stream",
            &["dc"],
        );
        let stream_bytes = counters(
            "meridian_stream_bytes_total",
            "Bytes of replication stream batches this node sent to a remote DC",
            &["dc"],
        );
        let stream_payload_bytes = counters(
            "meridian_stream_payload_bytes_total",
            "Storage keys and objects (value and causal metadata) of the writes in those batches: stream_bytes over this is the stream's overhead",
            &["dc"],
        );
        let stream_gaps = counter(
            "meridian_stream_gaps_total",
            "Replication stream batches this node refused because they did not follow what it had applied",
        );
        let stream_lag = HistogramVec::new(
            HistogramOpts::new(
                "meridian_stream_lag_seconds",
                "From a write's coordinator queueing it to this node applying it, by source DC",
            )
            // Every 10 ms up to 60 ms: a one-way WAN delay plus the lag on top of it must be
            // readable (`scripts/bench-wan.sh` reads "within delay + 20 ms" off a bucket).
            .buckets(vec![
                0.001, 0.002_5, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2,
                0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["source_dc"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(stream_queued.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stream_queued_bytes.clone()),
            Box::new(stream_shed.clone()),
            Box::new(stream_sent.clone()),
            Box::new(stream_bytes.clone()),
            Box::new(stream_payload_bytes.clone()),
            Box::new(stream_gaps.clone()),
            Box::new(stream_lag.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        for c in [
            Box::new(set_aside.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ae_exchanges.clone()),
            Box::new(ae_failures.clone()),
            Box::new(tombstones_confirmed.clone()),
            Box::new(tombstones_purged.clone()),
            Box::new(reaper_failures.clone()),
            Box::new(ae_repaired.clone()),
            Box::new(ae_bytes.clone()),
            Box::new(merkle_drift.clone()),
            Box::new(hints_queued.clone()),
            Box::new(hints_written.clone()),
            Box::new(hints_dropped.clone()),
            Box::new(hints_delivered.clone()),
            Box::new(read_repairs.clone()),
            Box::new(forwarded.clone()),
            Box::new(streamed_objects.clone()),
            Box::new(peer_errors.clone()),
            Box::new(reclaimed_bytes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(siblings.clone()),
            Box::new(sibling_warnings.clone()),
            Box::new(sibling_rejections.clone()),
            Box::new(duplicate_writes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            siblings,
            sibling_warnings,
            sibling_rejections,
            duplicate_writes,
            hints_queued,
            hints_written,
            hints_dropped,
            hints_delivered,
            read_repairs,
            forwarded,
            streamed_objects,
            peer_errors,
            reclaimed_bytes,
            set_aside,
            ae_exchanges,
            ae_failures,
            tombstones_confirmed,
            tombstones_purged,
            reaper_failures,
            ae_repaired,
            ae_bytes,
            merkle_drift,
            stream_queued,
            stream_queued_bytes,
            stream_shed,
            stream_sent,
            stream_bytes,
            stream_payload_bytes,
            stream_gaps,
            stream_lag,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "rendering metrics failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
