//! `rewardlens dataset export|import`: the user's comparisons, rankings and ratings as training
//! data (ImageRewardDB-style rows, preference pairs, reward-weighted rows), and merging such files
//! back into a library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rewardlens::library::dataset::{Format, export_dataset, import_dataset};
use rewardlens::library::store::Store;

/// Arguments of `rewardlens dataset`.
#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    #[command(subcommand)]
    command: DatasetCommand,
}

/// The dataset shapes, as named on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    /// ImageRewardDB-style rows (imagereward.jsonl) and the reference training code's imagereward.json.
    Imagereward,
    /// pairs.jsonl: {"prompt", "chosen", "rejected"} for pairwise reward training or DPO-style tuning.
    Pairs,
    /// weighted.jsonl: {"prompt", "image", "reward", "label"} for reward-weighted fine-tuning.
    Weighted,
}

#[derive(clap::Subcommand, Debug)]
enum DatasetCommand {
    /// Write the judgments as a dataset into a folder.
    Export {
        /// Which shape.
        #[arg(long)]
        format: FormatArg,
        /// The folder (made if absent).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Library database; the platform data directory's by default.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Copy the images into DIR/images (named by content hash) and point the rows there.
        #[arg(long)]
        copy_images: bool,
    },
    /// Merge an imagereward.jsonl or pairs.jsonl file into the library (images it lacks are added).
    Import {
        /// The file.
        path: PathBuf,
        /// Library database; the platform data directory's by default.
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

fn open(db: &Option<PathBuf>) -> anyhow::Result<Store> {
    let path = match db {
        Some(p) => p.clone(),
        None => Store::default_path().context("no place for the library database; pass --db")?,
    };
    Store::open(&path).with_context(|| format!("cannot open the library {}", path.display()))
}

/// Runs the subcommand.
pub fn run(args: &DatasetArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DatasetCommand::Export { format, to, db, copy_images } => {
            let store = open(db)?;
            let format = match format {
                FormatArg::Imagereward => Format::ImageReward,
                FormatArg::Pairs => Format::Pairs,
                FormatArg::Weighted => Format::Weighted,
            };
            let model = store.last_model_id().context("cannot read the library")?;
            let s = export_dataset(&store, format, to, *copy_images, model.as_deref())?;
            for f in &s.files {
                println!("{}", f.display());
            }
            eprintln!("{} prompt(s), {} image row(s), {} pair(s)", s.prompts, s.images, s.pairs);
            if s.missing > 0 {
                eprintln!("{} judged image(s) have no file on disk and were left out", s.missing);
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasetCommand::Import { path, db } => {
            let mut store = open(db)?;
            let s = import_dataset(&mut store, path)?;
            for (line, why) in &s.errors {
                eprintln!("{}:{line}: {why}", path.display());
            }
            for folder in &s.folders_added {
                eprintln!("added {} to the library for images it did not have", folder.display());
            }
            println!(
                "imported {} comparison(s), {} ranking(s), {} rating(s); {} already there; {} line(s) not imported",
                s.comparisons,
                s.rankings,
                s.ratings,
                s.duplicates,
                s.errors.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
