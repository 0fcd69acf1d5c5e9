//! Integration tests, built into one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod cli;
mod layers;
mod meta;
mod parity;
mod scan;
mod util;
mod worker;
