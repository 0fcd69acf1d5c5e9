//! RewardLens: rank AI-generated images the way people would, with the ImageReward
//! human-preference reward model running natively.
//!
//! Dependencies point one way: `ui` → `scoring`/`library` → `model` → `image_file`; `model` and
//! `library` never touch a GUI crate, and `image_file` (reading image files safely) depends on no
//! other module of the crate.

pub mod disk_cache;
pub mod image_file;
pub mod library;
pub mod model;
pub mod priority;
pub mod scoring;
pub mod synthetic;
pub mod ui;
pub mod wake;
