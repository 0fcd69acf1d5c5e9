//! `rewardlens score`: rank image files by ImageReward, best first.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;

use rewardlens::files::collect_images;
use rewardlens::library::metadata::generation_params_from_bytes;
use rewardlens::model::{self, LoadedModel, PromptTokens, preprocess};

/// Arguments of `rewardlens score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Model folder (ImageReward.pt or model.safetensors, med_config.json) or its weight file.
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt to score every image against; without it each image's own generation prompt is used.
    #[arg(long)]
    pub prompt: Option<String>,
    /// One JSON object per line on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Image files or folders (searched recursively for .png, .jpg, .jpeg, .webp).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// One scored image.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The file.
    pub path: PathBuf,
    /// The prompt it was scored against.
    pub prompt: String,
    /// The normalised reward.
    pub score: f32,
}

/// An image ready for the model.
struct Prepared {
    path: PathBuf,
    prompt: String,
    pixels: Vec<f32>,
}

/// Runs the subcommand; exits non-zero when nothing could be scored.
pub fn run(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let dtype = model::parse_dtype(&args.dtype)?;
    let device = model::select_device(&args.device)?;
    let (files, walk_errors) = collect_images(&args.paths);
    for e in &walk_errors {
        eprintln!("{}: {}", e.path.display(), e.reason);
    }
    if files.is_empty() {
        anyhow::bail!("no image files found in the given paths");
    }
    let loaded = model::load_model(&args.model, &device, dtype)
        .with_context(|| format!("cannot load the model from {}", args.model.display()))?;
    if !loaded.unexpected_keys.is_empty() {
        eprintln!(
            "note: {} checkpoint keys were not used (first: {})",
            loaded.unexpected_keys.len(),
            loaded.unexpected_keys[0]
        );
    }
    let mut results = score_files(&loaded, &files, args.prompt.as_deref(), args.batch as usize)?;
    if results.is_empty() {
        anyhow::bail!("no image was scored ({} file(s) tried; see the messages above)", files.len());
    }
    results.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for r in &results {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        print_table(&mut out, &results)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Scores `files`, reporting each unreadable file or missing prompt on stderr and going on.
fn score_files(
    loaded: &LoadedModel,
    files: &[PathBuf],
    prompt: Option<&str>,
    batch: usize,
) -> anyhow::Result<Vec<Scored>> {
    let total = files.len();
    let (tx, rx) = mpsc::sync_channel::<Vec<Prepared>>(2);
    // Decoding and resizing the next batch overlaps the model's work on this one.
    let prompt_owned = prompt.map(str::to_string);
    let files_owned = files.to_vec();
    let producer = std::thread::Builder::new().name("score-preprocess".into()).spawn(move || {
        for chunk in files_owned.chunks(batch) {
            let prepared: Vec<Prepared> = chunk
                .par_iter()
                .filter_map(|path| match prepare(path, prompt_owned.as_deref()) {
                    Ok(p) => Some(p),
                    Err(line) => {
                        eprintln!("{line}");
                        None
                    }
                })
                .collect();
            if tx.send(prepared).is_err() {
                return;
            }
        }
    })?;

    let progress = Progress::new(total);
    let mut tokens: HashMap<String, PromptTokens> = HashMap::new();
    let mut results = Vec::with_capacity(total);
    let mut done = 0usize;
    for batch in rx {
        done += batch.len();
        if batch.is_empty() {
            continue;
        }
        let mut prompts = Vec::with_capacity(batch.len());
        for item in &batch {
            if !tokens.contains_key(&item.prompt) {
                let t = loaded.tokenizer.encode(&item.prompt)?;
                if t.truncated {
                    eprintln!(
                        "note: prompt longer than {} tokens, the model reads only the start: {:?}",
                        model::MAX_TOKENS,
                        item.prompt
                    );
                }
                tokens.insert(item.prompt.clone(), t);
            }
            prompts.push(tokens[&item.prompt].clone());
        }
        let same_prompt = batch.iter().all(|b| b.prompt == batch[0].prompt);
        let prompts = if same_prompt { vec![prompts.swap_remove(0)] } else { prompts };
        let pixels: Vec<&[f32]> = batch.iter().map(|b| b.pixels.as_slice()).collect();
        let tensor = loaded.model.pixels_to_tensor(&pixels)?;
        let scores = loaded.model.score(&prompts, &tensor).context("the model failed on a batch")?;
        for (item, score) in batch.into_iter().zip(scores) {
            results.push(Scored { path: item.path, prompt: item.prompt, score });
        }
        progress.update(done);
    }
    progress.finish();
    producer.join().map_err(|_| anyhow::anyhow!("the preprocessing thread panicked"))?;
    Ok(results)
}

/// Finds the prompt and preprocesses one file, reading it once; the error is the line to report, path first.
fn prepare(path: &Path, prompt: Option<&str>) -> Result<Prepared, String> {
    // Preprocessing errors already start with the path.
    let bytes = preprocess::read_image_file(path).map_err(|e| e.to_string())?;
    let no_prompt = |why: String| format!("{}: {why} (pass --prompt)", path.display());
    let prompt = match prompt {
        Some(p) => p.to_string(),
        None => match generation_params_from_bytes(path, &bytes) {
            Ok(Some(params)) => {
                params.prompt.ok_or_else(|| no_prompt("its generation metadata has no prompt".into()))?
            }
            Ok(None) => return Err(no_prompt("no prompt in its metadata".into())),
            Err(e) => return Err(no_prompt(format!("unreadable metadata: {e}"))),
        },
    };
    let image = preprocess::decode_image(&bytes).map_err(|e| e.at(path).to_string())?;
    let pixels = preprocess::preprocess_image(&image);
    Ok(Prepared { path: path.to_path_buf(), prompt, pixels })
}

fn print_table(out: &mut impl Write, results: &[Scored]) -> std::io::Result<()> {
    writeln!(out, "{:>5}  {:>8}  {:<40}  path", "rank", "score", "prompt")?;
    for (i, r) in results.iter().enumerate() {
        let one_line = r.prompt.replace('\n', " ");
        let prompt: String = if one_line.chars().count() > 40 {
            one_line.chars().take(39).chain(std::iter::once('…')).collect()
        } else {
            one_line
        };
        writeln!(out, "{:>5}  {:>8.4}  {:<40}  {}", i + 1, r.score, prompt, r.path.display())?;
    }
    Ok(())
}

/// Progress on stderr: a rewritten line on a terminal, a line every few seconds otherwise.
struct Progress {
    total: usize,
    started: Instant,
    tty: bool,
    last_line: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Self { total, started: now, tty: std::io::stderr().is_terminal(), last_line: std::cell::Cell::new(now) }
    }

    fn update(&self, done: usize) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let eta = (self.total - done.min(self.total)) as f64 / rate.max(1e-9);
        let line = format!("scored {done}/{} images, {rate:.2} img/s, about {eta:.0} s left", self.total);
        if self.tty {
            eprint!("\r{line}   ");
        } else if self.last_line.get().elapsed().as_secs_f64() >= 5.0 {
            eprintln!("{line}");
            self.last_line.set(Instant::now());
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
