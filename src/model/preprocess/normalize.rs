//! `ToTensor()` + `Normalize(MEAN, STD)`: the crop as the model's CHW f32 input.

use super::{MEAN, STD};

/// `ToTensor()` + `Normalize(MEAN, STD)` of an HWC RGB u8 crop into CHW f32, with torch's
/// arithmetic: `x as f32 / 255`, then `(x - mean_f32) / std_f32`.
pub fn normalize_chw(rgb: &[u8]) -> Vec<f32> {
    let pixels = rgb.len() / 3;
    let mut out = vec![0.0f32; 3 * pixels];
    for (c, plane) in out.chunks_exact_mut(pixels.max(1)).enumerate().take(3) {
        let mean = MEAN[c] as f32;
        let std = STD[c] as f32;
        for (o, px) in plane.iter_mut().zip(rgb.chunks_exact(3)) {
            *o = (f32::from(px[c]) / 255.0 - mean) / std;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::preprocess::IMAGE_SIZE;

    #[test]
    fn normalize_follows_torch_arithmetic() {
        let rgb = [0u8, 255, 128].repeat(IMAGE_SIZE * IMAGE_SIZE);
        let t = normalize_chw(&rgb);
        let n = IMAGE_SIZE * IMAGE_SIZE;
        assert_eq!(t.len(), 3 * n);
        assert_eq!(t[0], (0.0 - MEAN[0] as f32) / STD[0] as f32);
        assert_eq!(t[n], (1.0 - MEAN[1] as f32) / STD[1] as f32);
        assert_eq!(t[2 * n + 5], (128.0f32 / 255.0 - MEAN[2] as f32) / STD[2] as f32);
    }
}
