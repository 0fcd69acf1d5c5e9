//! The user's image collection: store, views and groups, scan, generation metadata, watching and
//! thumbnails.
//! No GUI dependency.

pub mod agreement;
pub mod cull;
pub mod dataset;
pub mod export;
pub mod groups;
pub mod judgments;
pub mod metadata;
pub mod query;
pub mod scan;
pub mod store;
pub mod thumbnails;
pub mod trash;
pub mod views;
pub mod watch;
