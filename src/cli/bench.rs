//! `rewardlens bench`: images/s of the image tower, the text part on cached image tokens and the
//! whole model at a few batch sizes, with load time, peak memory and achieved GFLOP/s (`--rerank`
//! and `--library` time the scoring worker's rerank and the library's queries instead).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{Device, Tensor};

use rewardlens::model::weights::{WeightStore, Weights};
use rewardlens::model::{self, DeviceKind, ImageReward, MedConfig, Precision, PromptTokenizer, VisionConfig};

/// The prompt the reference Python benchmark times, so both timings measure the same work.
const PROMPT: &str = "a painting of an astronaut riding a horse on the moon, highly detailed, trending on artstation";

/// Arguments of `rewardlens bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model folder to time; without it a full-size ViT-L/16 + BERT-base model with random weights.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceKind,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: Precision,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 8])]
    pub batch_sizes: Vec<usize>,
    /// Timed repetitions per measurement (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Instead: score N synthetic images on the scoring worker, then rerank them with a new prompt
    /// from the image-embedding cache, and compare (a full-size random-weight model is written to a
    /// temporary folder when no --model is given).
    #[arg(long, value_name = "N")]
    pub rerank: Option<usize>,
    /// Images per forward pass for --rerank; by default the worker's choice for the device.
    #[arg(long, requires = "rerank")]
    pub batch: Option<usize>,
    /// Instead: build a synthetic library of N images (rows only, no files) in a temporary folder
    /// and time its views, a page of rows, a prompt search, prompt groups and the checkpoint
    /// leaderboard, cold and warm, with the view's memory per image.
    #[arg(long, value_name = "N", conflicts_with = "rerank", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub library: Option<u64>,
    /// Instead: open the app window on a fixture library of N image files (written and scanned
    /// first, into --app-dir if given, reused on the next run) and time the first frame with the
    /// grid filled, frame times while scrolling top to bottom (model idle, then while --model
    /// scores), and resident memory beyond the model.
    #[arg(long, value_name = "N", conflicts_with_all = ["rerank", "library"], requires = "model")]
    pub app: Option<usize>,
    /// Side of the --app images in pixels.
    #[arg(long, default_value_t = 64, requires = "app")]
    pub app_px: u32,
    /// Frames each --app scroll from top to bottom takes (the same distance every frame).
    #[arg(long, default_value_t = 1200, requires = "app")]
    pub app_frames: usize,
    /// Folder for the --app library (kept for the next run); a temporary one by default.
    #[arg(long, requires = "app")]
    pub app_dir: Option<PathBuf>,
}

/// Runs the benchmark and prints its table.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if let (Some(count), Some(model)) = (args.app, &args.model) {
        return super::bench_app::run(count, args.app_px, args.app_frames, model, args.app_dir.as_deref());
    }
    if let Some(count) = args.library {
        return super::bench_library::run(usize::try_from(count)?);
    }
    if let Some(count) = args.rerank {
        return super::bench_rerank::run(
            args.model.as_deref(),
            args.device,
            Some(args.dtype),
            args.batch,
            count.max(1),
        );
    }
    let dtype = args.dtype.dtype();
    let device = model::select_device(args.device)?;
    let started = Instant::now();
    let (net, tokenizer, source) = match &args.model {
        Some(dir) => {
            let loaded = model::load_model(dir, &device, dtype)
                .with_context(|| format!("cannot load the model from {}", dir.display()))?;
            (loaded.model, loaded.tokenizer, format!("{}", loaded.files.weights.display()))
        }
        None => {
            let store = WeightStore::random(0.02);
            let net = ImageReward::new(
                &VisionConfig::vit_large_224(),
                &MedConfig::bert_base(),
                &Weights::new(&store, dtype, &device),
            )?;
            (net, PromptTokenizer::bundled()?, "random weights, ViT-L/16 @224 + BERT-base (full size)".to_string())
        }
    };
    let load_secs = started.elapsed().as_secs_f64();
    let prompt = tokenizer.encode(PROMPT)?;
    let side = net.vision_config().image_size;

    // First score straight after loading: what a user waits for before the first result.
    let one = random_pixels(&net, 1, side)?;
    net.score(std::slice::from_ref(&prompt), &one)?;
    let first_score_secs = started.elapsed().as_secs_f64();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "model: {source}")?;
    writeln!(
        out,
        "device {}, dtype {}, {} threads; prompt {} tokens",
        DeviceKind::of(&device),
        args.dtype,
        candle_core::utils::get_num_threads(),
        prompt.len
    )?;
    writeln!(out, "load: {load_secs:.2} s; load to first score: {first_score_secs:.2} s")?;
    let vision_gflop = vision_gflop(net.vision_config());
    let text_gflop = text_gflop(net.text_config(), net.vision_config().num_tokens(), prompt.len);
    // The CPU's FMA peak says nothing about a GPU run.
    let peak = if matches!(device, Device::Cpu) { peak_gflops() } else { None };
    writeln!(
        out,
        "work per image: image tower {vision_gflop:.1} GFLOP, text part {text_gflop:.2} GFLOP; {}",
        peak.as_ref().map_or("peak not estimated for this device".to_string(), |(p, how)| format!(
            "machine f32 peak ≈ {p:.0} GFLOP/s ({how})"
        ))
    )?;
    writeln!(out)?;
    writeln!(out, "{:>5}  {:<22} {:>10} {:>8} {:>9}", "batch", "part", "s/batch", "img/s", "GFLOP/s")?;
    for &b in &args.batch_sizes {
        let pixels = random_pixels(&net, b, side)?;
        let tokens = net.image_features(&pixels)?;
        let vision = time(args.reps, &device, || net.image_features(&pixels).map(drop))?;
        let text = time(args.reps, &device, || {
            net.text_features(std::slice::from_ref(&prompt), &tokens)
                .and_then(|c| net.score_from_features(&c))
                .map(drop)
        })?;
        let full = time(args.reps, &device, || net.score(std::slice::from_ref(&prompt), &pixels).map(drop))?;
        for (part, d, gflop) in [
            ("image tower", vision, vision_gflop),
            ("text part (cached img)", text, text_gflop),
            ("full", full, vision_gflop + text_gflop),
        ] {
            let s = d.as_secs_f64();
            writeln!(out, "{b:>5}  {part:<22} {s:>10.4} {:>8.2} {:>9.1}", b as f64 / s, gflop * b as f64 / s)?;
        }
        writeln!(
            out,
            "{b:>5}  rerank speed-up: text part is {:.1}x faster than full scoring",
            full.as_secs_f64() / text.as_secs_f64()
        )?;
    }
    writeln!(out)?;
    match peak_rss_bytes() {
        Some(bytes) => writeln!(out, "peak memory (VmHWM): {:.2} GiB", bytes as f64 / (1u64 << 30) as f64)?,
        None => writeln!(out, "peak memory: unknown on this platform")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn random_pixels(net: &ImageReward, batch: usize, side: usize) -> anyhow::Result<Tensor> {
    let t = Tensor::randn(0f32, 1.0, (batch, 3, side, side), &Device::Cpu)?;
    Ok(t.to_device(net.device())?)
}

/// Median wall time of `reps` calls after one warm-up, waiting for the device each time.
fn time(
    reps: usize,
    device: &Device,
    mut f: impl FnMut() -> Result<(), model::ModelError>,
) -> anyhow::Result<Duration> {
    f()?;
    device.synchronize()?;
    let mut times = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Multiply-adds ×2 of the image tower for one image.
fn vision_gflop(c: &VisionConfig) -> f64 {
    let n = c.num_tokens() as f64;
    let w = c.width as f64;
    let patch = 2.0 * (n - 1.0) * (3 * c.patch_size * c.patch_size) as f64 * w;
    let block = 2.0 * n * w * 3.0 * w + 4.0 * n * n * w + 2.0 * n * w * w + 4.0 * n * w * c.mlp_dim as f64;
    (patch + c.depth as f64 * block) / 1e9
}

/// Multiply-adds ×2 of the text part for one image at `len` tokens against `n` image tokens.
fn text_gflop(c: &MedConfig, n: usize, len: usize) -> f64 {
    let (l, h, n, we, i) =
        (len as f64, c.hidden_size as f64, n as f64, c.encoder_width as f64, c.intermediate_size as f64);
    let self_attn = 8.0 * l * h * h + 4.0 * l * l * h;
    let cross = 4.0 * l * h * h + 4.0 * n * we * h + 4.0 * l * n * h;
    let ffn = 4.0 * l * h * i;
    c.num_hidden_layers as f64 * (self_attn + cross + ffn) / 1e9
}

/// Estimated f32 FMA peak of this CPU: cores × FLOP/cycle × clock, with how it was guessed.
fn peak_gflops() -> Option<(f64, String)> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info.lines().find(|l| l.starts_with("cpu MHz"))?.split(':').nth(1)?.trim().parse().ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let vendor_amd = info.contains("AuthenticAMD") || info.contains("AMD EPYC");
    let avx512 = flags.contains(" avx512f");
    // Two FMA pipes per core: 2×8 f32 lanes×2 FLOP with 256-bit FMA; Intel's 512-bit FMA doubles it.
    let per_cycle = if avx512 && !vendor_amd {
        64.0
    } else if flags.contains(" fma") {
        32.0
    } else {
        16.0
    };
    let cores = candle_core::utils::get_num_threads() as f64;
    let peak = cores * per_cycle * mhz / 1000.0;
    Some((peak, format!("{cores:.0} cores × {per_cycle:.0} FLOP/cycle × {:.2} GHz", mhz / 1000.0)))
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
