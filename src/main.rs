//! `rewardlens`: score and rank images with ImageReward, or read their generation metadata, from the command line (the desktop app
//! will open when no subcommand is given).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rank AI-generated images the way people would.
#[derive(Parser, Debug)]
#[command(name = "rewardlens", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Time the model (image tower, text part, whole) and report load time and peak memory.
    Bench(cli::bench::BenchArgs),
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
        Some(Command::Bench(a)) => cli::bench::run(&a),
        Some(Command::GpuServe) => {
            rewardlens::scoring::remote::serve(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        None => {
            eprintln!(
                "rewardlens: the desktop app is not part of this build yet; use a subcommand (see `rewardlens --help`)"
            );
            return ExitCode::from(2);
        }
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
