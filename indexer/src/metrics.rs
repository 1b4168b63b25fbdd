//! Counters for `/metrics` (Prometheus text format) and `/health`.

use std::sync::atomic::{AtomicU64, Ordering};

/// The indexer's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Last indexed block.
    pub indexed_block: AtomicU64,
    /// Chain head seen last.
    pub head_block: AtomicU64,
    /// Reorgs rolled back.
    pub reorgs: AtomicU64,
    /// RPC errors (retried).
    pub rpc_errors: AtomicU64,
    /// Database errors (retried).
    pub db_errors: AtomicU64,
    /// Event rows written.
    pub rows: AtomicU64,
    /// Batches written.
    pub batches: AtomicU64,
    /// 1 while this process holds the writer lock.
    pub writer: AtomicU64,
}

impl Metrics {
    /// Blocks between the head and the indexed block.
    pub fn lag(&self) -> u64 {
        self.head_block
            .load(Ordering::Relaxed)
            .saturating_sub(self.indexed_block.load(Ordering::Relaxed))
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        put(
            "medrec_indexer_indexed_block",
            "gauge",
            "Last block indexed.",
            g(&self.indexed_block),
        );
        put(
            "medrec_indexer_head_block",
            "gauge",
            "Chain head seen last.",
            g(&self.head_block),
        );
        put(
            "medrec_indexer_lag_blocks",
            "gauge",
            "Blocks between head and indexed block.",
            self.lag(),
        );
        put(
            "medrec_indexer_reorgs_total",
            "counter",
            "Reorgs rolled back.",
            g(&self.reorgs),
        );
        put(
            "medrec_indexer_rpc_errors_total",
            "counter",
            "RPC errors, retried.",
            g(&self.rpc_errors),
        );
        put(
            "medrec_indexer_db_errors_total",
            "counter",
            "Database errors, retried.",
            g(&self.db_errors),
        );
        put(
            "medrec_indexer_rows_total",
            "counter",
            "Event rows written.",
            g(&self.rows),
        );
        put(
            "medrec_indexer_batches_total",
            "counter",
            "Batches written.",
            g(&self.batches),
        );
        put(
            "medrec_indexer_writer",
            "gauge",
            "1 while this process holds the writer lock.",
            g(&self.writer),
        );
        out
    }
}
