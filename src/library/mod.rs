//! The user's image collection: generation metadata now; the store, scan, watching and
//! thumbnails build on it. No GUI dependency.

pub mod metadata;
pub mod scan;
pub mod store;
