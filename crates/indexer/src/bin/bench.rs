//! Indexer benchmark (placeholder until written).
fn main() {}
