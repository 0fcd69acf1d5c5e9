//! Reading image files safely: which formats we read, the limits a file must respect, a guarded
//! read that never blocks on a FIFO or loads a huge file, a header probe that never decodes a
//! pixel, and the structure check that tells a half-written file from a whole one.
//!
//! Every function that looks at bytes returns an [`ImageFileErrorKind`]; the caller attaches the
//! path once with [`ImageFileErrorKind::at`], so a bad file is one reported item that names
//! itself exactly once (ripgrep's pattern). The library (scan, watch, thumbnails), the scoring
//! worker and the model's preprocessing all read image files through here.

mod content_hash;
mod error;
mod format;
mod limits;
mod probe;
mod read;
mod structure;
mod walk;

pub use content_hash::ContentHash;
pub use error::{ImageFileError, ImageFileErrorKind};
pub use format::ImageFormat;
pub use limits::{MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE_PX, check_dimensions};
pub use probe::{Header, jpeg_decoder, png_reader, probe, webp_decoder};
pub use read::{open, read};
pub use structure::{check_whole, ends_whole, looks_complete};
pub use walk::{IMAGE_EXTENSIONS, WalkError, collect_images, has_image_extension};
