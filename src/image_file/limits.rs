//! The limits an image must respect before anything is allocated for it.

use super::error::ImageFileErrorKind;

/// Largest accepted width or height, checked before decoding (JPEG's own maximum).
pub const MAX_SIDE_PX: u32 = 65_535;

/// Largest accepted pixel count (128 Mi px), checked before decoding so a decompression bomb
/// never allocates its declared size (Pillow refuses above 179 Mpx; we stop a little earlier).
pub const MAX_PIXELS: u64 = 128 * 1024 * 1024;

/// Largest file read into memory (no real PNG/JPEG/WebP within the pixel limit is larger).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Refuses empty and oversized images from their declared size, before any pixel buffer exists.
pub fn check_dimensions(width: u32, height: u32) -> Result<(), ImageFileErrorKind> {
    if width == 0 || height == 0 {
        return Err(ImageFileErrorKind::ZeroSize { width, height });
    }
    if width > MAX_SIDE_PX || height > MAX_SIDE_PX || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageFileErrorKind::TooLarge { width, height });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_and_pixel_count_are_both_limited() {
        assert!(check_dimensions(1, 1).is_ok());
        assert!(check_dimensions(MAX_SIDE_PX, 2048).is_ok());
        assert!(matches!(check_dimensions(0, 5), Err(ImageFileErrorKind::ZeroSize { width: 0, height: 5 })));
        assert!(matches!(check_dimensions(MAX_SIDE_PX + 1, 1), Err(ImageFileErrorKind::TooLarge { .. })));
        assert!(matches!(check_dimensions(60_000, 60_000), Err(ImageFileErrorKind::TooLarge { .. })));
    }
}
