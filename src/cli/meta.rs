//! `rewardlens meta`: print the generation parameters each image carries.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::json_path::JsonPath;
use rewardlens::image_file::{self, ImageFileErrorKind, ImageFormat, collect_images};
use rewardlens::library::metadata::{GenerationParams, generation_params_from_bytes};

/// Arguments of `rewardlens meta`.
#[derive(clap::Args, Debug)]
pub struct MetaArgs {
    /// One JSON object per line on stdout instead of readable blocks.
    #[arg(long)]
    pub json: bool,
    /// Image files or folders (searched recursively for .png, .jpg, .jpeg, .webp).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// One `--json` line: the fields a user compares across generators, `null` where absent.
#[derive(Debug, Serialize)]
struct MetaLine<'a> {
    #[serde(flatten)]
    path: JsonPath,
    generator: Option<&'a str>,
    prompt: Option<&'a str>,
    negative_prompt: Option<&'a str>,
    model: Option<&'a str>,
    seed: Option<i64>,
    steps: Option<u32>,
    sampler: Option<&'a str>,
    cfg: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
}

impl<'a> MetaLine<'a> {
    fn new(path: &'a Path, p: Option<&'a GenerationParams>) -> Self {
        Self {
            path: JsonPath::new(path),
            generator: p.and_then(|p| p.generator.as_deref()),
            prompt: p.and_then(|p| p.prompt.as_deref()),
            negative_prompt: p.and_then(|p| p.negative_prompt.as_deref()),
            model: p.and_then(|p| p.model.as_deref()),
            seed: p.and_then(|p| p.seed),
            steps: p.and_then(|p| p.steps),
            sampler: p.and_then(|p| p.sampler.as_deref()),
            cfg: p.and_then(|p| p.cfg),
            width: p.and_then(|p| p.width),
            height: p.and_then(|p| p.height),
        }
    }
}

/// Reads one file as the library scan does (guarded read, format, header and dimension limits,
/// whole-file check; no pixel decode), then its metadata; the error names the file once.
fn file_params(path: &Path) -> Result<Option<GenerationParams>, String> {
    let bytes = image_file::read(path).map_err(|e| e.to_string())?;
    let checked: Result<(), ImageFileErrorKind> = ImageFormat::of(&bytes)
        .and_then(|_| image_file::probe(&bytes))
        .and_then(|header| image_file::check_whole(header.format, &bytes));
    checked.map_err(|kind| kind.at(path).to_string())?;
    generation_params_from_bytes(path, &bytes).map_err(|e| e.to_string())
}

/// Runs the subcommand; a damaged file or one whose metadata cannot be read is reported on
/// stderr and the run goes on; fails only when no file could be read at all.
pub fn run(args: &MetaArgs) -> anyhow::Result<ExitCode> {
    let (files, walk_errors) = collect_images(&args.paths);
    for e in &walk_errors {
        eprintln!("{}: {}", e.path.display(), e.reason);
    }
    if files.is_empty() {
        anyhow::bail!("no image files found in the given paths");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut read = 0usize;
    for path in &files {
        let params = match file_params(path) {
            Ok(p) => p,
            Err(e) => {
                // The error names the path.
                eprintln!("{e}");
                continue;
            }
        };
        read += 1;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&MetaLine::new(path, params.as_ref()))?)?;
        } else {
            if read > 1 {
                writeln!(out)?;
            }
            print_block(&mut out, path, params.as_ref())?;
        }
    }
    if read == 0 {
        anyhow::bail!("no file could be read ({} tried; see the messages above)", files.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// A readable block: the path, then one `name: value` line per recorded field.
fn print_block(out: &mut impl Write, path: &Path, params: Option<&GenerationParams>) -> std::io::Result<()> {
    writeln!(out, "{}", path.display())?;
    let Some(p) = params else {
        return writeln!(out, "  no generation metadata found");
    };
    let size = match (p.width, p.height) {
        (Some(w), Some(h)) => Some(format!("{w}x{h}")),
        _ => None,
    };
    let model = match (&p.model, &p.model_hash) {
        (Some(m), Some(h)) => Some(format!("{m} [{h}]")),
        (Some(m), None) => Some(m.clone()),
        (None, h) => h.clone(),
    };
    let rows = [
        ("generator", p.generator.clone()),
        ("prompt", p.prompt.clone().or_else(|| Some("(unknown)".into()))),
        ("negative prompt", p.negative_prompt.clone()),
        ("model", model),
        ("seed", p.seed.map(|s| s.to_string())),
        ("steps", p.steps.map(|s| s.to_string())),
        ("sampler", p.sampler.clone()),
        ("scheduler", p.scheduler.clone()),
        ("cfg", p.cfg.map(|c| c.to_string())),
        ("size", size),
    ];
    for (name, value) in rows {
        if let Some(value) = value {
            // Continuation lines of multi-line prompts stay inside the block.
            let value = value.trim_end().replace('\n', "\n      ");
            writeln!(out, "  {name}: {value}")?;
        }
    }
    Ok(())
}
