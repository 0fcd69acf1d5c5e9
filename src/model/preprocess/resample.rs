//! Pillow's resampling restricted to the centre crop: `Image.resize(BICUBIC)` (NEAREST for "1"
//! and "P", premultiplied alpha for "LA"/"RGBA"), torchvision's `CenterCrop`, then
//! `convert("RGB")`. Sources (python-pillow/Pillow, 13.0.0): `src/PIL/Image.py` `Image.resize`,
//! `src/libImaging/Resample.c` (separable bicubic, a = −0.5, support scaled by the downscale
//! factor, 22-bit fixed point for 8-bit images, double precision for "I;16"),
//! `src/libImaging/Geometry.c` `ImagingScaleAffine` (NEAREST) and `src/libImaging/Convert.c`
//! (premultiply, unpremultiply, every mode → RGB).
//!
//! Only the 224×224 crop window of the resized image is computed: each output pixel depends only
//! on its own source window, so the result is identical to resizing in full and then cropping,
//! and a 1×20000 image costs kilobytes instead of the gigabytes of a full resize.

use super::IMAGE_SIZE;
use super::decode::{PillowPixels, SourceImage};

/// Fractional bits of Pillow's 8-bit resampling coefficients (`PRECISION_BITS` = 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// Rounding offset Pillow starts every 8-bit accumulator with.
const ROUND_HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Bicubic support radius of Pillow's `BICUBIC` filter before scaling.
const BICUBIC_SUPPORT: f64 = 2.0;

/// torchvision `Resize(224)` output size `(width, height)`: shorter side → 224, longer →
/// `int(224 * long / short)` (Python true division, then truncation).
pub fn resized_size(width: usize, height: usize) -> (usize, usize) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    // `224 * long` is exact in f64 and the division is correctly rounded, as Python's int / int.
    let new_long = ((IMAGE_SIZE * long) as f64 / short as f64) as usize;
    if width <= height { (IMAGE_SIZE, new_long) } else { (new_long, IMAGE_SIZE) }
}

/// torchvision `CenterCrop(224)` offset on one axis: `int(round((size - 224) / 2.0))`, where
/// Python's `round` sends halves to the even neighbour.
pub fn center_crop_offset(size: usize) -> usize {
    let excess = size.saturating_sub(IMAGE_SIZE);
    let half = excess / 2;
    if excess % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
}

/// Where the crop lies in the resized image, and whether there is a resize at all.
#[derive(Clone, Copy, Debug)]
struct CropPlan {
    width: usize,
    height: usize,
    new_width: usize,
    new_height: usize,
    left: usize,
    top: usize,
}

impl CropPlan {
    fn new(width: usize, height: usize) -> Self {
        let (new_width, new_height) = resized_size(width, height);
        Self {
            width,
            height,
            new_width,
            new_height,
            left: center_crop_offset(new_width),
            top: center_crop_offset(new_height),
        }
    }

    /// Pillow returns a plain copy when the size is unchanged (no premultiply round trip).
    fn is_resize(&self) -> bool {
        self.new_width != self.width || self.new_height != self.height
    }
}

/// The 224×224×3 RGB crop (HWC, u8), identical to
/// `np.array(CenterCrop(224)(Resize(224, BICUBIC)(img)).convert("RGB"))`.
pub fn resize_crop_rgb(img: &SourceImage) -> Vec<u8> {
    let plan = CropPlan::new(img.width() as usize, img.height() as usize);
    match img.pixels() {
        PillowPixels::Bilevel(v) => gray_to_rgb(&nearest_crop(v, &plan)),
        PillowPixels::L(v) => gray_to_rgb(&bicubic_crop::<1>(v, &plan, false)),
        PillowPixels::La(v) => {
            let premultiplied = plan.is_resize();
            let crop = bicubic_crop::<2>(v, &plan, premultiplied);
            crop.chunks_exact(2)
                .flat_map(|p| {
                    let l = if premultiplied { unpremultiply(p[0], p[1]) } else { p[0] };
                    [l, l, l]
                })
                .collect()
        }
        PillowPixels::Rgb(v) => bicubic_crop::<3>(v, &plan, false),
        PillowPixels::Rgba(v) => {
            let premultiplied = plan.is_resize();
            let crop = bicubic_crop::<4>(v, &plan, premultiplied);
            crop.chunks_exact(4)
                .flat_map(|p| {
                    if premultiplied {
                        [unpremultiply(p[0], p[3]), unpremultiply(p[1], p[3]), unpremultiply(p[2], p[3])]
                    } else {
                        [p[0], p[1], p[2]]
                    }
                })
                .collect()
        }
        PillowPixels::Palette { indices, palette } => {
            nearest_crop(indices, &plan).iter().flat_map(|&i| palette[usize::from(i)]).collect()
        }
        // Convert.c `I16_RGB`: values above 255 saturate.
        PillowPixels::I16(v) => bicubic_crop_i16(v, &plan)
            .iter()
            .flat_map(|&x| {
                let g = x.min(255) as u8;
                [g, g, g]
            })
            .collect(),
    }
}

/// Grey → RGB by repetition (Convert.c `l2rgb`, `bit2rgb`).
fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&g| [g, g, g]).collect()
}

/// The crop of an image that is not resized: rows `top..`, columns `left..` (`Image.crop`).
fn plain_crop<T: Copy>(data: &[T], plan: &CropPlan, channels: usize) -> Vec<T> {
    let row_len = IMAGE_SIZE * channels;
    let mut out = Vec::with_capacity(IMAGE_SIZE * row_len);
    for y in plan.top..plan.top + IMAGE_SIZE {
        let start = (y * plan.width + plan.left) * channels;
        out.extend_from_slice(&data[start..start + row_len]);
    }
    out
}

/// Pillow's `MULDIV255(a, b)`: `a * b / 255` rounded, in integers.
fn muldiv255(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// Convert.c `rgba2rgbA` / `la2lA` on one channel: undo premultiplication, truncating.
fn unpremultiply(c: u8, alpha: u8) -> u8 {
    if alpha == 255 || alpha == 0 { c } else { ((255 * u32::from(c)) / u32::from(alpha)).min(255) as u8 }
}

/// Convert.c `rgbA2rgba` / `lA2la` on a row of interleaved pixels whose last channel is alpha.
fn premultiply_row<const C: usize>(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(C).zip(dst.chunks_exact_mut(C)) {
        let alpha = s[C - 1];
        for c in 0..C - 1 {
            d[c] = muldiv255(s[c], alpha);
        }
        d[C - 1] = alpha;
    }
}

/// Pillow's bicubic kernel with a = −0.5 (Resample.c `bicubic_filter`), same operation order.
fn bicubic(x: f64) -> f64 {
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        (1.5 * x - 2.5) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
    } else {
        0.0
    }
}

/// One output pixel's source window on one axis.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: usize,
    len: usize,
}

/// Resample.c `precompute_coeffs` for the outputs `first..first + count` of an axis resized from
/// `in_size` to `out_size`: windows and normalised f64 weights, `ksize` weights per output.
#[derive(Debug)]
struct Weights {
    windows: Vec<Window>,
    ksize: usize,
    weights: Vec<f64>,
}

impl Weights {
    fn bicubic(in_size: usize, out_size: usize, first: usize, count: usize) -> Self {
        // The box is (0, in_size) in f32, exact for any size we accept.
        let scale = in_size as f64 / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let mut windows = Vec::with_capacity(count);
        let mut weights = vec![0.0f64; count * ksize];
        for (i, k) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = ((first + i) as f64 + 0.5) * scale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).clamp(0, ksize as i64) as usize;
            let xmin = xmin as usize;
            let mut sum = 0.0;
            for (x, w) in k[..len].iter_mut().enumerate() {
                *w = bicubic(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
                sum += *w;
            }
            if sum != 0.0 {
                for w in &mut k[..len] {
                    *w /= sum;
                }
            }
            windows.push(Window { start: xmin, len });
        }
        Self { windows, ksize, weights }
    }

    /// One output's weights.
    fn of(&self, i: usize) -> &[f64] {
        &self.weights[i * self.ksize..][..self.windows[i].len]
    }
}

/// Resample.c `normalize_coeffs_8bpc`: weights in 22-bit fixed point, rounded away from zero.
#[derive(Debug)]
struct FixedWeights {
    windows: Vec<Window>,
    ksize: usize,
    coeffs: Vec<i32>,
}

impl FixedWeights {
    fn from_weights(w: &Weights) -> Self {
        let scale = f64::from(1u32 << PRECISION_BITS);
        let coeffs = w
            .weights
            .iter()
            .map(|&k| if k < 0.0 { (-0.5 + k * scale) as i32 } else { (0.5 + k * scale) as i32 })
            .collect();
        Self { windows: w.windows.clone(), ksize: w.ksize, coeffs }
    }

    fn of(&self, i: usize) -> &[i32] {
        &self.coeffs[i * self.ksize..][..self.windows[i].len]
    }
}

/// Resample.c `clip8`: drop the fraction, clamp to 0..=255.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resample.c `ROUND_UP` then `CLIP16`, for the "I;16" passes.
fn round_clip16(ss: f64) -> u16 {
    let v = if ss >= 0.0 { (ss + 0.5) as i32 } else { (ss - 0.5) as i32 };
    v.clamp(0, 65535) as u16
}

/// Horizontal 8-bit pass over one source row slice that starts at column `col0`.
fn horizontal_row_u8<const C: usize>(src: &[u8], col0: usize, taps: &FixedWeights, out: &mut [u8]) {
    for (i, px) in out.chunks_exact_mut(C).enumerate() {
        let start = taps.windows[i].start - col0;
        let k = taps.of(i);
        let mut acc = [ROUND_HALF; C];
        for (s, &kv) in src[start * C..].chunks_exact(C).zip(k) {
            for c in 0..C {
                acc[c] = acc[c].wrapping_add(i32::from(s[c]).wrapping_mul(kv));
            }
        }
        for c in 0..C {
            px[c] = clip8(acc[c]);
        }
    }
}

/// Vertical 8-bit pass over rows (each `row_len` long) that start at source row `row0`.
fn vertical_u8(tmp: &[u8], row0: usize, row_len: usize, taps: &FixedWeights) -> Vec<u8> {
    let mut out = vec![0u8; taps.windows.len() * row_len];
    let mut acc = vec![0i32; row_len];
    for (i, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        acc.fill(ROUND_HALF);
        let start = taps.windows[i].start - row0;
        for (row, &kv) in tmp[start * row_len..].chunks_exact(row_len).zip(taps.of(i)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i32::from(v).wrapping_mul(kv));
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Pillow's bicubic resize of an 8-bit image with `C` interleaved channels, restricted to the
/// crop (Resample.c `ImagingResampleInner`: horizontal pass first, each pass only where the
/// size changes). With `premultiply`, alpha is premultiplied first as `Image.resize` does for
/// "LA"/"RGBA"; the result stays premultiplied.
fn bicubic_crop<const C: usize>(data: &[u8], plan: &CropPlan, premultiply: bool) -> Vec<u8> {
    if !plan.is_resize() {
        return plain_crop(data, plan, C);
    }
    let (w, h) = (plan.width, plan.height);
    let horizontal = (plan.new_width != w)
        .then(|| FixedWeights::from_weights(&Weights::bicubic(w, plan.new_width, plan.left, IMAGE_SIZE)));
    let vertical = (plan.new_height != h)
        .then(|| FixedWeights::from_weights(&Weights::bicubic(h, plan.new_height, plan.top, IMAGE_SIZE)));
    let (col0, col1) = horizontal.as_ref().map_or((plan.left, plan.left + IMAGE_SIZE), |t| source_range(&t.windows));
    let (row0, row1) = vertical.as_ref().map_or((plan.top, plan.top + IMAGE_SIZE), |t| source_range(&t.windows));

    let row_len = IMAGE_SIZE * C;
    let mut tmp = vec![0u8; (row1 - row0) * row_len];
    let mut scratch = vec![0u8; (col1 - col0) * C];
    for (y, out_row) in (row0..row1).zip(tmp.chunks_exact_mut(row_len)) {
        let src = &data[(y * w + col0) * C..(y * w + col1) * C];
        let src = if premultiply {
            premultiply_row::<C>(src, &mut scratch);
            &scratch[..]
        } else {
            src
        };
        match &horizontal {
            Some(taps) => horizontal_row_u8::<C>(src, col0, taps, out_row),
            None => out_row.copy_from_slice(src),
        }
    }
    match &vertical {
        Some(taps) => vertical_u8(&tmp, row0, row_len, taps),
        None => tmp,
    }
}

/// The source range `lo..hi` that a set of windows reads together.
fn source_range(windows: &[Window]) -> (usize, usize) {
    let lo = windows.iter().map(|w| w.start).min().unwrap_or(0);
    let hi = windows.iter().map(|w| w.start + w.len).max().unwrap_or(0);
    (lo, hi.max(lo))
}

/// Pillow's bicubic resize of an "I;16" image restricted to the crop (Resample.c
/// `_ImagingResample{Horizontal,Vertical}_16bpc`: f64 sums in window order, rounded and
/// clamped to 16 bits after each pass).
fn bicubic_crop_i16(data: &[u16], plan: &CropPlan) -> Vec<u16> {
    if !plan.is_resize() {
        return plain_crop(data, plan, 1);
    }
    let (w, h) = (plan.width, plan.height);
    let horizontal = (plan.new_width != w).then(|| Weights::bicubic(w, plan.new_width, plan.left, IMAGE_SIZE));
    let vertical = (plan.new_height != h).then(|| Weights::bicubic(h, plan.new_height, plan.top, IMAGE_SIZE));
    let (col0, col1) = horizontal.as_ref().map_or((plan.left, plan.left + IMAGE_SIZE), |t| source_range(&t.windows));
    let (row0, row1) = vertical.as_ref().map_or((plan.top, plan.top + IMAGE_SIZE), |t| source_range(&t.windows));

    let mut tmp = vec![0u16; (row1 - row0) * IMAGE_SIZE];
    for (y, out_row) in (row0..row1).zip(tmp.chunks_exact_mut(IMAGE_SIZE)) {
        let src = &data[y * w + col0..y * w + col1];
        match &horizontal {
            Some(taps) => {
                for (i, o) in out_row.iter_mut().enumerate() {
                    let start = taps.windows[i].start - col0;
                    let mut ss = 0.0f64;
                    for (&v, &k) in src[start..].iter().zip(taps.of(i)) {
                        ss += f64::from(v) * k;
                    }
                    *o = round_clip16(ss);
                }
            }
            None => out_row.copy_from_slice(src),
        }
    }
    let Some(taps) = vertical else {
        return tmp;
    };
    let mut out = vec![0u16; IMAGE_SIZE * IMAGE_SIZE];
    let mut acc = vec![0.0f64; IMAGE_SIZE];
    for (i, out_row) in out.chunks_exact_mut(IMAGE_SIZE).enumerate() {
        acc.fill(0.0);
        let start = taps.windows[i].start - row0;
        for (row, &k) in tmp[start * IMAGE_SIZE..].chunks_exact(IMAGE_SIZE).zip(taps.of(i)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += f64::from(v) * k;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = round_clip16(a);
        }
    }
    out
}

/// Geometry.c `ImagingScaleAffine` source index of the outputs `first..first + count` on one
/// axis: the position starts at half a step and accumulates one step per output (in f64, as
/// Pillow does), then truncates; `None` outside the source, where Pillow leaves the fill (0).
fn nearest_indices(in_size: usize, out_size: usize, first: usize, count: usize) -> Vec<Option<usize>> {
    let step = in_size as f64 / out_size as f64;
    let mut pos = step * 0.5;
    let mut table = Vec::with_capacity(count);
    for x in 0..first + count {
        if x >= first {
            // COORD: negative → −1, else truncate.
            let index = if pos < 0.0 { None } else { Some(pos as usize) };
            table.push(index.filter(|&i| i < in_size));
        }
        pos += step;
    }
    table
}

/// NEAREST resize of a one-byte-per-pixel image ("1", "P"), restricted to the crop.
fn nearest_crop(data: &[u8], plan: &CropPlan) -> Vec<u8> {
    if !plan.is_resize() {
        return plain_crop(data, plan, 1);
    }
    let cols = nearest_indices(plan.width, plan.new_width, plan.left, IMAGE_SIZE);
    let rows = nearest_indices(plan.height, plan.new_height, plan.top, IMAGE_SIZE);
    let mut out = vec![0u8; IMAGE_SIZE * IMAGE_SIZE];
    for (row, out_row) in rows.iter().zip(out.chunks_exact_mut(IMAGE_SIZE)) {
        let Some(y) = *row else { continue };
        let src = &data[y * plan.width..(y + 1) * plan.width];
        for (col, o) in cols.iter().zip(out_row.iter_mut()) {
            if let Some(x) = *col {
                *o = src[x];
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house style rule 11).
mod tests {
    use super::*;
    use crate::model::preprocess::tests::pattern;
    use std::time::{Duration, Instant};

    /// FNV-1a 64, to pin whole crops against values recorded from Pillow 13.0.0.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// The golden test pattern: channel c of pixel (x, y).
    fn image(width: u32, height: u32, pixels: PillowPixels) -> SourceImage {
        SourceImage::new(width, height, pixels).unwrap()
    }

    #[test]
    fn bicubic_kernel_has_pillows_values() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        assert_eq!(bicubic(0.5), 0.5625);
        assert_eq!(bicubic(-1.5), -0.0625);
    }

    #[test]
    fn weights_are_normalised_and_fixed_point_sums_stay_near_one() {
        for (in_size, out_size, first) in [
            (1024, 224, 0),
            (64, 358, 67),
            (1, 224, 0),
            (1, 67_200, 33_488),
            (20_000, 224, 0),
            (225, 224, 0),
            (300, 224, 0),
        ] {
            let w = Weights::bicubic(in_size, out_size, first, IMAGE_SIZE);
            let fixed = FixedWeights::from_weights(&w);
            for (i, win) in w.windows.iter().enumerate() {
                assert!(win.len >= 1 && win.len <= w.ksize);
                assert!(win.start + win.len <= in_size);
                let sum: f64 = w.of(i).iter().sum();
                assert!((sum - 1.0).abs() < 1e-12, "{in_size}->{out_size} #{i}: {sum}");
                let fixed_sum: i64 = fixed.of(i).iter().map(|&k| i64::from(k)).sum();
                assert!((fixed_sum - (1 << PRECISION_BITS)).abs() <= win.len as i64);
            }
        }
    }

    #[test]
    fn resized_size_matches_torchvision() {
        assert_eq!(resized_size(64, 40), (358, 224));
        assert_eq!(resized_size(40, 64), (224, 358));
        assert_eq!(resized_size(224, 500), (224, 500));
        assert_eq!(resized_size(1, 300), (224, 67_200));
        assert_eq!(resized_size(1000, 60), (3733, 224));
        assert_eq!(resized_size(225, 301), (224, 299));
        assert_eq!(resized_size(256, 256), (224, 224));
    }

    #[test]
    fn center_crop_offset_rounds_halves_to_even() {
        let cases = [(224, 0), (225, 0), (226, 1), (227, 2), (228, 2), (229, 2), (231, 4), (233, 4)];
        for (size, offset) in cases {
            assert_eq!(center_crop_offset(size), offset, "size {size}");
        }
    }

    #[test]
    fn premultiply_helpers_match_convert_c() {
        for x in 0..=255u8 {
            assert_eq!(muldiv255(x, 255), x);
            assert_eq!(muldiv255(x, 0), 0);
        }
        assert_eq!(muldiv255(128, 128), 64);
        assert_eq!(unpremultiply(64, 128), 127);
        assert_eq!(unpremultiply(200, 100), 255);
        assert_eq!(unpremultiply(37, 0), 37);
    }

    #[test]
    fn crops_match_pillow_golden_hashes() {
        // Values from Pillow 13.0.0 (resize BICUBIC / NEAREST, crop, convert("RGB")) on the same
        // patterns; the fixture script next to the integration tests regenerates them.
        let rgb = image(300, 257, PillowPixels::Rgb(pattern(300, 257, 3)));
        assert_eq!(fnv1a(&resize_crop_rgb(&rgb)), 0xca67_44ba_5456_dfb9);
        let rgba = image(301, 225, PillowPixels::Rgba(pattern(301, 225, 4)));
        assert_eq!(fnv1a(&resize_crop_rgb(&rgba)), 0xcb43_8ecb_dbe8_f0d7);
        let l = image(64, 40, PillowPixels::L(pattern(64, 40, 1)));
        assert_eq!(fnv1a(&resize_crop_rgb(&l)), 0x3501_c7d9_5602_2267);
        let i16: Vec<u16> = (0..230u16)
            .flat_map(|y| (0..250u16).map(move |x| ((u32::from(x) * 97 + u32::from(y) * 131) % 1000) as u16))
            .collect();
        let i16 = image(250, 230, PillowPixels::I16(i16));
        assert_eq!(fnv1a(&resize_crop_rgb(&i16)), 0x2b08_39b5_476d_9733);
        let mut palette = Box::new([[0u8; 3]; 256]);
        for (i, entry) in palette.iter_mut().enumerate().take(16) {
            *entry = [(i * 16) as u8, (255 - i * 16) as u8, ((i * 37) % 256) as u8];
        }
        let indices = (0..300).flat_map(|y| (0..40).map(move |x| ((x * 3 + y * 5) % 16) as u8)).collect();
        let p = image(40, 300, PillowPixels::Palette { indices, palette });
        assert_eq!(fnv1a(&resize_crop_rgb(&p)), 0xcc6d_e27f_e800_2ae5);
    }

    #[test]
    fn uniform_image_stays_uniform() {
        let px = [13u8, 200, 77];
        let img = image(300, 257, PillowPixels::Rgb(px.repeat(300 * 257)));
        let crop = resize_crop_rgb(&img);
        assert_eq!(crop.len(), IMAGE_SIZE * IMAGE_SIZE * 3);
        assert!(crop.chunks_exact(3).all(|p| p == px));
    }

    #[test]
    fn alpha_is_dropped_without_premultiply_only_when_size_is_unchanged() {
        let transparent = [200u8, 100, 50, 0];
        let same = image(224, 224, PillowPixels::Rgba(transparent.repeat(224 * 224)));
        assert!(resize_crop_rgb(&same).chunks_exact(3).all(|p| p == [200, 100, 50]));
        // Resized: premultiplied to black, and alpha 0 cannot bring the colour back.
        let resized = image(300, 300, PillowPixels::Rgba(transparent.repeat(300 * 300)));
        assert!(resize_crop_rgb(&resized).iter().all(|&v| v == 0));
    }

    #[test]
    fn sixteen_bit_grey_saturates_at_255() {
        let bright = image(224, 224, PillowPixels::I16(vec![1000; 224 * 224]));
        assert!(resize_crop_rgb(&bright).iter().all(|&v| v == 255));
        let dark = image(300, 300, PillowPixels::I16(vec![100; 300 * 300]));
        assert!(resize_crop_rgb(&dark).iter().all(|&v| v == 100));
    }

    #[test]
    fn palette_is_resized_by_index_with_nearest() {
        let mut palette = Box::new([[0u8; 3]; 256]);
        palette[0] = [255, 0, 0];
        palette[1] = [0, 0, 255];
        let img = image(2, 1, PillowPixels::Palette { indices: vec![0, 1], palette });
        let crop = resize_crop_rgb(&img);
        // 2×1 → 448×224, crop columns 112..336: left half index 0, right half index 1.
        for row in crop.chunks_exact(IMAGE_SIZE * 3) {
            assert!(row[..112 * 3].chunks_exact(3).all(|p| p == [255, 0, 0]));
            assert!(row[112 * 3..].chunks_exact(3).all(|p| p == [0, 0, 255]));
        }
    }

    #[test]
    fn tall_thin_image_is_cheap() {
        // Resizing in full would make 224 × 4,480,000 pixels (4 GB in Pillow); we touch a few rows.
        let gray: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let img = image(1, 20_000, PillowPixels::L(gray));
        let start = Instant::now();
        let crop = resize_crop_rgb(&img);
        assert_eq!(crop.len(), IMAGE_SIZE * IMAGE_SIZE * 3);
        assert!(start.elapsed() < Duration::from_secs(2));
        let bilevel = image(1, 20_000, PillowPixels::Bilevel(vec![255; 20_000]));
        assert!(resize_crop_rgb(&bilevel).iter().all(|&v| v == 255));
    }
}
