//! The `amlsecrets` command line: `run` the operator, print `crds`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "amlsecrets", version, about = "Syncs Azure ML workspace secrets into Kubernetes Secrets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print both CustomResourceDefinitions as YAML (or write them into a directory).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Crds { dir: Some(dir) } => {
            if let Err(e) = amlsecrets::crds::write_all(&dir) {
                eprintln!("error: cannot write CRDs into {}: {e}", dir.display());
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Crds { dir: None } => {
            for crd in amlsecrets::crds::all() {
                print!("{}", amlsecrets::crds::to_yaml(&crd));
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
