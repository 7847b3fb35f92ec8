//! The `berth` command line. Thin: parses arguments and calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "berth", version, about = "An AT Protocol Personal Data Server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the PDS (configured by PDS_* environment variables).
    Serve,
    /// CAR file tools.
    Car {
        #[command(subcommand)]
        command: CarCommand,
    },
}

#[derive(Subcommand)]
enum CarCommand {
    /// Print a CAR file's roots and a summary of its blocks, checking every block's hash.
    Inspect {
        /// Path to the .car file.
        path: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => {
            eprintln!("berth serve: not yet: the server is not built yet (see README.md)");
            return ExitCode::from(2);
        }
        Command::Car {
            command: CarCommand::Inspect { path },
        } => car_inspect(&path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn car_inspect(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = berth::car::CarReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    for root in reader.roots() {
        println!("root {root}");
    }
    let (mut blocks, mut bytes, mut cbor, mut raw) = (0u64, 0u64, 0u64, 0u64);
    for block in reader {
        let (cid, data) = block.with_context(|| format!("after {blocks} good blocks"))?;
        blocks += 1;
        bytes += data.len() as u64;
        match cid.codec() {
            berth::data::DAG_CBOR => cbor += 1,
            berth::data::RAW => raw += 1,
            _ => {}
        }
    }
    println!(
        "{blocks} blocks ({cbor} dag-cbor, {raw} raw), {bytes} bytes of block data; all hashes verified"
    );
    Ok(())
}
