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
}
