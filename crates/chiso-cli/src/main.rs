//! `chiso`: the one binary of the product.
//!
//! Each subcommand is a thin layer over a library crate: it parses flags,
//! calls the library, and prints. Errors become `anyhow` reports here and
//! nowhere else.

mod generate;

use clap::{Parser, Subcommand};

/// chiso (chỉ số): administrative-reform KPIs for the communes and wards of
/// Cần Thơ City, from the dossier events of their one-stop desks.
#[derive(Debug, Parser)]
#[command(name = "chiso", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the sample city: a year of dossier events for the 103 wards.
    Gen(generate::GenArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gen(args) => generate::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chiso: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A reader that stopped reading (`chiso … | head`) is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
