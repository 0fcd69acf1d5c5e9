//! Subcommands of the `rewardlens` binary.

pub mod bench;
pub mod bench_rerank;
pub mod interrupt;
pub mod meta;
pub mod scan;
pub mod score;
