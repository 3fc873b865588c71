//! RocksDB storage: one column family for key data, one for node metadata.
//!
//! The write-ahead log is always on. Without `sync` a write is in the OS page cache when it
//! is acknowledged, so it survives the process being killed; with `sync` RocksDB fsyncs the
//! WAL before returning, and concurrent syncing writers are batched into one fsync by
//! RocksDB's write groups (group commit).

use crate::config::StorageConfig;
use crate::error::{NodeError, NodeResult};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteBatch,
    WriteOptions,
};
use std::path::Path;

const CF_DATA: &str = "data";
const CF_META: &str = "meta";
/// Writes held for down replicas: key = target node (16 bytes) + sequence (8 bytes, BE).
const CF_HINTS: &str = "hints";
/// Cross-DC replication queues: one key range per remote DC (see `cluster::streams`).
const CF_STREAMS: &str = "streams";
/// Tombstones every replica was known to hold, with when: key = storage key (so one
/// partition is one range), value = [`meridian_core::tombstones::Confirmed`].
const CF_REAPER: &str = "reaper";

pub struct Storage {
    db: DB,
}

impl Storage {
    pub fn open(dir: &Path, cfg: &StorageConfig) -> NodeResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            NodeError::Storage(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let cache = Cache::new_lru_cache(cfg.block_cache_mb.max(1) << 20);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        let compression = match cfg.compression.as_str() {
            "zstd" => DBCompressionType::Zstd,
            "none" => DBCompressionType::None,
            _ => DBCompressionType::Lz4,
        };
        let mut data_opts = Options::default();
        data_opts.set_block_based_table_factory(&table);
        data_opts.set_compression_type(compression);
        data_opts.set_write_buffer_size(cfg.write_buffer_mb.max(1) << 20);
        data_opts.optimize_level_style_compaction(cfg.write_buffer_mb.max(1) << 20);

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        // The small column families (streams, hints, reaper, meta) rarely fill a memtable,
        // and a WAL file lives until every column family with data in it has flushed: without
        // a cap, their trickle of writes keeps gigabytes of the data family's WAL on disk
        // (a delete-heavy workload's disk grew by the WAL alone, `bench-sessions-disk.sh`).
        // Past the cap RocksDB flushes whichever family holds the oldest WAL back.
        db_opts.set_max_total_wal_size((cfg.write_buffer_mb.max(1) as u64) << 22);

        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_DATA, data_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
            ColumnFamilyDescriptor::new(CF_HINTS, Options::default()),
            ColumnFamilyDescriptor::new(CF_REAPER, Options::default()),
            ColumnFamilyDescriptor::new(CF_STREAMS, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs)?;
        Ok(Self { db })
    }

    fn cf(&self, name: &str) -> NodeResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| NodeError::Internal(format!("column family {name} missing")))
    }

    pub fn get_data(&self, storage_key: &[u8]) -> NodeResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_DATA)?, storage_key)?)
    }

    pub fn put_data(&self, storage_key: &[u8], value: &[u8], sync: bool) -> NodeResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_DATA)?, storage_key, value);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// Deletes every data entry whose key starts with `prefix` (one partition) and returns
    /// the bytes of keys and values it held.
    pub fn delete_data_prefix(&self, prefix: &[u8]) -> NodeResult<u64> {
        let cf = self.cf(CF_DATA)?;
        let mut bytes = 0u64;
        let mut last: Option<Vec<u8>> = None;
        let iter = self.db.iterator_cf(
            cf,
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            bytes += (k.len() + v.len()) as u64;
            last = Some(k.to_vec());
        }
        self.delete_confirmed_prefix(prefix)?;
        let Some(mut end) = last else {
            return Ok(0);
        };
        // Range deletes exclude their end: one past the last key found.
        end.push(0);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, prefix, end.as_slice());
        self.db.write(batch)?;
        Ok(bytes)
    }

    /// Visits data entries under `prefix` in key order until `visit` returns false.
    pub fn scan_data(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> NodeResult<()> {
        let iter = self.db.iterator_cf(
            self.cf(CF_DATA)?,
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Up to `limit` data entries with keys starting with `prefix` and greater than `after`.
    pub fn data_range(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> NodeResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range(CF_DATA, prefix, after, limit)
    }

    fn range(
        &self,
        cf: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> NodeResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = after.unwrap_or(prefix);
        let iter = self.db.iterator_cf(
            self.cf(cf)?,
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|a| *k == *a) {
                continue;
            }
            out.push((k.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Removes a purged tombstone.
    pub fn delete_data(&self, storage_key: &[u8], sync: bool) -> NodeResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_DATA)?, storage_key);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// The reaper's confirmation records of one partition (`prefix`).
    pub fn confirmed_range(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> NodeResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range(CF_REAPER, prefix, after, limit)
    }

    /// Drops the reaper's records of a partition this node no longer holds.
    fn delete_confirmed_prefix(&self, prefix: &[u8]) -> NodeResult<()> {
        loop {
            let page = self.range(CF_REAPER, prefix, None, 1024)?;
            if page.is_empty() {
                return Ok(());
            }
            self.update_confirmed(&[], page.into_iter().map(|(k, _)| k))?;
        }
    }

    /// Records new confirmations and drops forgotten ones, in one batch.
    pub fn update_confirmed(
        &self,
        put: &[(Vec<u8>, Vec<u8>)],
        delete: impl Iterator<Item = Vec<u8>>,
    ) -> NodeResult<()> {
        let cf = self.cf(CF_REAPER)?;
        let mut batch = WriteBatch::default();
        for (k, v) in put {
            batch.put_cf(cf, k, v);
        }
        for k in delete {
            batch.delete_cf(cf, k);
        }
        Ok(self.db.write(batch)?)
    }

    pub fn put_hint(&self, key: &[u8], value: &[u8], sync: bool) -> NodeResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_HINTS)?, key, value);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    pub fn hints_range(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> NodeResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range(CF_HINTS, prefix, after, limit)
    }

    pub fn delete_hints(&self, keys: &[Vec<u8>]) -> NodeResult<()> {
        let cf = self.cf(CF_HINTS)?;
        let mut batch = WriteBatch::default();
        for k in keys {
            batch.delete_cf(cf, k);
        }
        Ok(self.db.write(batch)?)
    }

    pub fn put_stream(&self, key: &[u8], value: &[u8], sync: bool) -> NodeResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_STREAMS)?, key, value);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    pub fn stream_range(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> NodeResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range(CF_STREAMS, prefix, after, limit)
    }

    /// Deletes acknowledged queue entries, one point delete each: a range tombstone per
    /// acknowledgement would pile up and slow every later read of the queue.
    pub fn delete_streams(&self, keys: impl Iterator<Item = Vec<u8>>) -> NodeResult<()> {
        let cf = self.cf(CF_STREAMS)?;
        let mut batch = WriteBatch::default();
        for k in keys {
            batch.delete_cf(cf, k);
        }
        Ok(self.db.write(batch)?)
    }

    pub fn get_meta(&self, key: &str) -> NodeResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_META)?, key.as_bytes())?)
    }

    /// Metadata is rare and precious (identity, keyspaces): always fsynced.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> NodeResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, key.as_bytes(), value);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    pub fn delete_meta(&self, key: &str) -> NodeResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_META)?, key.as_bytes());
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// Fsyncs the WAL: every write acknowledged so far survives a power loss.
    pub fn flush_wal(&self) -> NodeResult<()> {
        Ok(self.db.flush_wal(true)?)
    }

    pub fn meta_with_prefix(&self, prefix: &str) -> NodeResult<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .prefix_iterator_cf(self.cf(CF_META)?, prefix.as_bytes())
        {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }
}

/// The data column family is where the core's replica rules keep keys.
impl meridian_core::store::Store for Storage {
    type Error = NodeError;

    fn get(&self, key: &[u8]) -> NodeResult<Option<Vec<u8>>> {
        self.get_data(key)
    }

    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> NodeResult<()> {
        self.put_data(key, value, durable)
    }

    fn delete(&self, key: &[u8], _old: &[u8], durable: bool) -> NodeResult<()> {
        self.delete_data(key, durable)
    }
}
