//! Synthetic images for the `bench` subcommands and tests: noisy PNGs that compress about as
//! badly as generated images, so timings and file sizes are realistic without shipping images.

use std::path::Path;

/// `len` bytes of xorshift noise from `seed`: pixels that compress about as badly as generated
/// images, for benchmarks and tests.
pub fn noise_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Writes `count` distinct 8×8 PNGs named `img_NNNNNN.png` into `dir`, for benchmarks and tests.
pub fn write_synthetic_pngs(dir: &Path, count: usize) -> std::io::Result<()> {
    write_synthetic_pngs_sized(dir, count, 8)
}

/// Writes `count` distinct `side_px`×`side_px` noisy PNGs (they compress about as badly as
/// generated images), so a benchmark can read realistic file sizes.
pub fn write_synthetic_pngs_sized(dir: &Path, count: usize, side_px: u32) -> std::io::Result<()> {
    let side = side_px.max(1);
    let len = side as usize * side as usize * 3;
    for i in 0..count {
        let file = std::fs::File::create(dir.join(format!("img_{i:06}.png")))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side, side);
        encoder.set_color(png::ColorType::Rgb);
        encoder
            .add_text_chunk("parameters".to_string(), format!("synthetic image {}\nSteps: 20, Seed: {i}", i % 50))
            .map_err(std::io::Error::other)?;
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        // Noise seeded by the index; the first bytes hold the index so every file differs.
        let mut pixels = noise_bytes((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), len);
        let id = (i as u64).to_le_bytes();
        let n = id.len().min(len);
        pixels[..n].copy_from_slice(&id[..n]);
        writer.write_image_data(&pixels).map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Prompts of the fixture library: varied enough to make distinct groups, some long enough to
/// pass the model's 35 tokens.
pub const FIXTURE_PROMPTS: [&str; 12] = [
    "a castle at dusk, dramatic clouds, oil painting",
    "a red fox in the snow, photograph, golden hour",
    "portrait of an astronaut, studio lighting, 85mm",
    "a cozy cabin in a pine forest, watercolor",
    "cyberpunk street at night, neon signs, rain, reflections",
    "a bowl of ramen, food photography, steam",
    "ancient library with towering shelves, volumetric light",
    "a lighthouse on a cliff during a storm, crashing waves",
    "a cat wearing a tiny wizard hat, digital art",
    "mountain lake at sunrise, mist, mirror reflection",
    "an isometric city block, low poly, pastel colours",
    "a sprawling fantasy landscape with floating islands, waterfalls pouring into the clouds, ancient ruins \
     covered in glowing moss, dragons circling in the distance, a lone traveler on a winding path, \
     highly detailed, matte painting, trending",
];

/// Checkpoints of the fixture library, so the leaderboard has something to compare.
pub const FIXTURE_CHECKPOINTS: [&str; 3] = ["dreamshaper_8", "juggernautXL_v9", "sd_xl_base_1.0"];

/// Writes `count` `side_px`-square PNGs that look like something (soft colour fields and discs,
/// one palette per prompt) with AUTOMATIC1111 parameters: prompts from [`FIXTURE_PROMPTS`] (the
/// first `groups`), checkpoints from [`FIXTURE_CHECKPOINTS`], seeds, steps and CFG. For the app's
/// tests, screenshots and benchmarks.
pub fn write_fixture_library(dir: &Path, count: usize, groups: usize, side_px: u32) -> std::io::Result<()> {
    let groups = groups.clamp(1, FIXTURE_PROMPTS.len());
    let side = side_px.max(8);
    for i in 0..count {
        let group = i % groups;
        let checkpoint = FIXTURE_CHECKPOINTS[(i / groups) % FIXTURE_CHECKPOINTS.len()];
        let noise = noise_bytes((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555, 16);
        let hue = (group as f32 / groups as f32 + f32::from(noise[0]) / 2550.0) % 1.0;
        let (cx, cy, r) = (
            f32::from(noise[1]) / 255.0 * side as f32,
            f32::from(noise[2]) / 255.0 * side as f32,
            (0.15 + f32::from(noise[3]) / 255.0 * 0.3) * side as f32,
        );
        let mut pixels = Vec::with_capacity(side as usize * side as usize * 3);
        for y in 0..side {
            for x in 0..side {
                let t = y as f32 / side as f32;
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                let disc = (1.0 - (d - r).max(0.0) / (side as f32 * 0.05)).clamp(0.0, 1.0);
                let base = hsv(hue, 0.55, 0.35 + 0.5 * t);
                let accent = hsv((hue + 0.45) % 1.0, 0.7, 0.95);
                let grain = f32::from(noise[4 + ((x ^ y) as usize & 7)]) / 255.0 * 0.04;
                for c in 0..3 {
                    let v = base[c] * (1.0 - disc) + accent[c] * disc + grain;
                    pixels.push((v.clamp(0.0, 1.0) * 255.0) as u8);
                }
            }
        }
        // The index in the corner keeps every file's content distinct.
        let id = (i as u64).to_le_bytes();
        let n = id.len().min(pixels.len());
        pixels[..n].copy_from_slice(&id[..n]);
        let name =
            format!("{:05}-{}.png", i, FIXTURE_PROMPTS[group].split(',').next().unwrap_or("image").replace(' ', "_"));
        let file = std::fs::File::create(dir.join(name))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side, side);
        encoder.set_color(png::ColorType::Rgb);
        let parameters = format!(
            "{}\nNegative prompt: blurry, lowres\nSteps: {}, Sampler: DPM++ 2M, CFG scale: {}, Seed: {}, Size: {side}x{side}, Model: {checkpoint}",
            FIXTURE_PROMPTS[group],
            20 + i % 3 * 5,
            5 + i % 4,
            1000 + i
        );
        encoder.add_text_chunk("parameters".to_string(), parameters).map_err(std::io::Error::other)?;
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer.write_image_data(&pixels).map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// HSV (each 0..1) to RGB (each 0..1).
fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    match i as i32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_file::{ImageFormat, check_whole, probe};

    #[test]
    fn synthetic_pngs_are_whole_distinct_and_sized() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic_pngs_sized(dir.path(), 3, 20).unwrap();
        let files: Vec<Vec<u8>> =
            (0..3).map(|i| std::fs::read(dir.path().join(format!("img_{i:06}.png"))).unwrap()).collect();
        for bytes in &files {
            let header = probe(bytes).unwrap();
            assert_eq!((header.format, header.width, header.height), (ImageFormat::Png, 20, 20));
            assert_eq!(check_whole(ImageFormat::Png, bytes), Ok(()));
        }
        assert!(files[0] != files[1] && files[1] != files[2]);
        assert_ne!(noise_bytes(1, 64), noise_bytes(2, 64));
    }

    #[test]
    fn the_fixture_library_carries_prompts_groups_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture_library(dir.path(), 24, 12, 32).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        assert_eq!(names.len(), 24);
        let params = crate::library::metadata::read_generation_params(&names[1]).unwrap().unwrap();
        assert_eq!(params.prompt.as_deref(), Some(FIXTURE_PROMPTS[1]));
        assert_eq!(params.model.as_deref(), Some(FIXTURE_CHECKPOINTS[0]));
        assert_eq!(params.seed, Some(1001));
        let last = crate::library::metadata::read_generation_params(&names[23]).unwrap().unwrap();
        assert_eq!(last.model.as_deref(), Some(FIXTURE_CHECKPOINTS[1]));
        // Words and commas are tokens each: past the model's 35 (with [CLS] and [SEP]).
        let p = FIXTURE_PROMPTS[11];
        assert!(p.split_whitespace().count() + p.matches(',').count() > 35);
    }
}
