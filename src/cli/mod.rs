//! Subcommands of the `rewardlens` binary.

pub mod bench;
pub mod score;
