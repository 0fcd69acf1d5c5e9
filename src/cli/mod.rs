//! Subcommands of the `rewardlens` binary.

pub mod bench;
pub mod interrupt;
pub mod meta;
pub mod scan;
pub mod score;
