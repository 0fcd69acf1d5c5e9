//! `rewardlens synth`: writes a fixture library of generated-looking PNGs with AUTOMATIC1111
//! parameters (prompt groups, checkpoints, seeds), for the screenshot script, the app benchmark
//! and trying the app without real images.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

/// Arguments of `rewardlens synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Folder to write into (created if needed).
    pub dir: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 240)]
    pub count: usize,
    /// Number of prompt groups (1..12).
    #[arg(long, default_value_t = 12)]
    pub groups: usize,
    /// Side of each image in pixels.
    #[arg(long, default_value_t = 192)]
    pub px: u32,
}

/// Writes the images.
pub fn run(args: &SynthArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    rewardlens::synthetic::write_fixture_library(&args.dir, args.count, args.groups, args.px)
        .with_context(|| format!("writing images into {}", args.dir.display()))?;
    println!("wrote {} images in {} prompt groups to {}", args.count, args.groups.clamp(1, 12), args.dir.display());
    Ok(ExitCode::SUCCESS)
}
