//! The user's image collection: store, scan, generation metadata, watching and thumbnails.
//! No GUI dependency.

pub mod metadata;
pub mod scan;
pub mod store;
pub mod thumbnails;
pub mod watch;
