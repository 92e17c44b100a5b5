//! The process-wide RocksDB memory budget shared by every RocksDB store.

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options, WriteBufferManager};

/// Process-wide RocksDB memory: one block cache and one write-buffer manager charged to it.
/// Cheap to clone; clones share the same budget.
#[derive(Clone)]
pub struct RocksDbResources {
    cache: Cache,
    write_buffers: WriteBufferManager,
    budget: usize,
}

impl std::fmt::Debug for RocksDbResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbResources")
            .field("budget", &self.budget)
            .field("cache_usage", &self.cache.get_usage())
            .field("memtable_usage", &self.write_buffers.get_usage())
            .finish()
    }
}

/// The smallest RocksDB budget we accept: below it RocksDB cannot keep even one memtable
/// per store in memory and stalls.
pub const MIN_ROCKSDB_BUDGET: usize = 8 << 20;

impl RocksDbResources {
    /// Resources bounded by `budget` bytes: the block cache holds `budget` bytes, of which
    /// memtables may take half (they are charged to the cache).
    pub fn with_budget(budget: usize) -> Self {
        let budget = budget.max(MIN_ROCKSDB_BUDGET);
        let cache = Cache::new_lru_cache(budget);
        // allow_stall: when memtables reach their share, writers wait for flushes instead
        // of growing past it (without, a loaded machine whose flushes lag let usage pass
        // the budget: 102 MB against 64 MiB was seen).
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            budget / 2,
            true,
            cache.clone(),
        );
        Self {
            cache,
            write_buffers,
            budget,
        }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held by the block cache, memtables included (they are charged to it).
    pub fn cache_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// Bytes held by memtables of every store.
    pub fn memtable_usage(&self) -> usize {
        self.write_buffers.get_usage()
    }

    /// Options for a store: shared cache and write-buffer manager, small memtables, LZ4.
    pub fn options(&self) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_bloom_filter(10.0, false);
        table.set_block_size(16 << 10);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&table);
        opts.set_write_buffer_manager(&self.write_buffers);
        // Small memtables: the manager flushes early when the shared budget fills.
        opts.set_write_buffer_size((self.budget / 16).clamp(1 << 20, 8 << 20));
        opts.set_arena_block_size(256 << 10);
        opts.set_max_write_buffer_number(3);
        // A bloom filter in each memtable (whole keys, and the prefixes of a store that has
        // a prefix extractor): a lookup of a key the memtable lacks skips its skip list.
        // RocksDB allocates it whole with the memtable and charges it to the write-buffer
        // manager, empty memtables included: 2 % of the memtable size (still ~20 bits per
        // entry of 100 bytes), so that hundreds of column families do not fill the budget
        // with filters.
        opts.set_memtable_prefix_bloom_ratio(0.02);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_max_open_files(64);
        opts.set_max_background_jobs(2);
        opts
    }
}
