//! The `amlsecrets` command line: `run` the operator, print `crds`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "amlsecrets", version, about = "Syncs Azure ML workspace secrets into Kubernetes Secrets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print both CustomResourceDefinitions as YAML.
    Crds,
}

fn main() {
    match Cli::parse().command {
        Command::Crds => {
            for crd in amlsecrets::crds::all() {
                print!("{}", amlsecrets::crds::to_yaml(&crd));
            }
        }
    }
}
