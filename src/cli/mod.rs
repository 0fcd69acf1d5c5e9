//! Subcommands of the `rewardlens` binary.

pub mod agreement;
pub mod app;
pub mod bench;
pub mod bench_app;
pub mod bench_library;
pub mod bench_rerank;
pub mod cull;
pub mod dataset;
pub mod export;
pub mod groups;
pub mod interrupt;
pub mod json_path;
pub mod list;
pub mod meta;
pub mod model;
pub mod scan;
pub mod score;
pub mod synth;
pub mod view_args;
