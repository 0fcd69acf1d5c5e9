//! `rewardlens`: the desktop app (no subcommand), or score and rank images with ImageReward and read
//! their generation metadata from the command line.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rank AI-generated images the way people would.
#[derive(Parser, Debug)]
#[command(name = "rewardlens", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The app's model folder for this run (ImageReward.pt or model.safetensors, med_config.json).
    #[arg(long, value_name = "DIR")]
    model: Option<std::path::PathBuf>,
    /// The app's library database (default: the platform data folder).
    #[arg(long, value_name = "PATH")]
    db: Option<std::path::PathBuf>,
    /// Folders to open in the app: added to the library and watched.
    #[arg(value_name = "FOLDER")]
    folders: Vec<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score images with ImageReward and print them best first.
    Score(cli::score::ScoreArgs),
    /// Print the generation parameters (prompt, model, seed, …) each image carries.
    Meta(cli::meta::MetaArgs),
    /// Add folders to the image library and import new, changed and moved files.
    Scan(cli::scan::ScanArgs),
    /// List the library's images best first (or by date, name, rating, size), filtered.
    List(cli::list::ListArgs),
    /// Sum the library up by prompt, or rank its checkpoints with intervals and paired comparisons.
    Groups(cli::groups::GroupsArgs),
    /// Copy (or move) the best or favorite images into a folder with their sidecars and a manifest.
    Export(cli::export::ExportArgs),
    /// Send the worst-ranked images to the system trash (or list them with --dry-run).
    Cull(cli::cull::CullArgs),
    /// Export the judgments as training data (imagereward, pairs, weighted) or import such a file.
    Dataset(cli::dataset::DatasetArgs),
    /// How often the scorer prefers the image you preferred (your comparisons and rankings).
    Agreement(cli::agreement::AgreementArgs),
    /// Find the ImageReward model (list, path) or download it into the Hugging Face cache.
    Model(cli::model::ModelArgs),
    /// Time the model (image tower, text part, whole) and report load time and peak memory.
    Bench(cli::bench::BenchArgs),
    /// Write a fixture library of generated-looking images with prompts and checkpoints.
    #[command(hide = true)]
    Synth(cli::synth::SynthArgs),
    /// Serve the model on stdin/stdout for the app (what the `rewardlens-gpu` helper runs).
    #[command(hide = true)]
    GpuServe,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Some(Command::Score(a)) => cli::score::run(&a),
        Some(Command::Meta(a)) => cli::meta::run(&a),
        Some(Command::Scan(a)) => cli::scan::run(&a),
        Some(Command::List(a)) => cli::list::run(&a),
        Some(Command::Groups(a)) => cli::groups::run(&a),
        Some(Command::Export(a)) => cli::export::run(&a),
        Some(Command::Cull(a)) => cli::cull::run(&a),
        Some(Command::Dataset(a)) => cli::dataset::run(&a),
        Some(Command::Agreement(a)) => cli::agreement::run(&a),
        Some(Command::Model(a)) => cli::model::run(&a),
        Some(Command::Bench(a)) => cli::bench::run(&a),
        Some(Command::Synth(a)) => cli::synth::run(&a),
        Some(Command::GpuServe) => {
            rewardlens::scoring::remote::serve(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        None => cli::app::run(args.model, args.db, args.folders),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`rewardlens score … | head`) is the reader's choice, not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rewardlens: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether an error comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// mimalloc reuses freed tensor buffers instead of returning them to the OS and faulting fresh
/// pages back in on the next forward pass (several percent of CPU inference time with glibc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
