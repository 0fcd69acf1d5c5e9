//! RewardLens: rank AI-generated images the way people would, with the ImageReward
//! human-preference reward model running natively.
//!
//! Dependencies point one way: `ui` → `scoring`/`library` → `model`; `model` and `library`
//! never touch a GUI crate.

pub mod disk_cache;
pub mod files;
pub mod library;
pub mod model;
pub mod scoring;
