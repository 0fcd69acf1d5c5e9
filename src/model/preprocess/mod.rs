//! Image file → model input, bit for bit as ImageReward's reference preprocessing.
//!
//! Reference: THUDM/ImageReward `c1392c6`, `ImageReward/ImageReward.py` `_transform(224)` (copied
//! from openai/CLIP): `Resize(224, BICUBIC)` → `CenterCrop(224)` → `convert("RGB")` → `ToTensor()`
//! → `Normalize(MEAN, STD)`, run by torchvision 0.26 on an image opened by Pillow 13.0.0.
//!
//! Split by concept: [`decode`] (bytes → pixels in Pillow's mode), [`resample`] (Pillow's resize
//! restricted to the centre crop) and [`normalize`] (the tensor). Reading the file goes through
//! [`crate::image_file`].

pub mod decode;
pub mod normalize;
pub mod resample;

use std::path::Path;

use crate::image_file::{self, ImageFileError};

pub use decode::{PillowPixels, SourceImage, decode_image};
pub use normalize::normalize_chw;
pub use resample::{center_crop_offset, resize_crop_rgb, resized_size};

/// Side of the square model input in pixels (`_transform(224)`, `config.yaml` `image_size`).
pub const IMAGE_SIZE: usize = 224;

/// Per-channel mean of `Normalize` (CLIP's), quoted from the reference; torch rounds it to f32.
pub const MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];

/// Per-channel standard deviation of `Normalize` (CLIP's), quoted; torch rounds it to f32.
pub const STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Reads and decodes an image file through the guarded read (format sniffed from its content,
/// not its extension).
pub fn load_image(path: &Path) -> Result<SourceImage, ImageFileError> {
    decode_image(&image_file::read(path)?).map_err(|kind| kind.at(path))
}

/// The model input `[3, 224, 224]` for a decoded image.
pub fn preprocess_image(img: &SourceImage) -> Vec<f32> {
    normalize_chw(&resize_crop_rgb(img))
}

/// The model input `[3, 224, 224]` for an image file, exactly as the reference computes it.
pub fn preprocess_path(path: &Path) -> Result<Vec<f32>, ImageFileError> {
    Ok(preprocess_image(&load_image(path)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house style rule 11).
pub(crate) mod tests {
    use super::*;
    use crate::image_file::ImageFileErrorKind;

    /// The golden test pattern: channel c of pixel (x, y).
    pub(crate) fn pattern(width: usize, height: usize, channels: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(width * height * channels);
        for y in 0..height {
            for x in 0..width {
                let all = [(x * 31 + y * 17) % 256, (x * x + y * 3) % 256, (x ^ y) % 256, (x * y + 5) % 256];
                out.extend(all[..channels].iter().map(|&v| v as u8));
            }
        }
        out
    }

    #[test]
    fn load_image_names_the_file() {
        let path = Path::new("/nonexistent/rewardlens/missing.png");
        let err = load_image(path).unwrap_err();
        assert_eq!(err.path, path);
        assert!(matches!(err.kind, ImageFileErrorKind::Read { .. }));
        assert!(err.to_string().contains("missing.png"));
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.png");
        std::fs::write(&text, b"not an image").unwrap();
        let err = load_image(&text).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: not a PNG, JPEG or WebP image", text.display()));
    }
}
