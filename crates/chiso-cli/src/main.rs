//! `chiso`: the one binary of the product.
//!
//! Each subcommand is a thin layer over a library crate: it parses flags,
//! calls the library, and prints. Errors become `anyhow` reports here and
//! nowhere else.

mod alerts;
mod generate;
mod ingest;
mod query;
mod report;
mod serve;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// DataFusion allocates and frees a buffer per batch and column, and a string
// per expression it names while planning, which glibc's allocator makes
// slower (benches/README.md, "Why these settings"). datafusion-cli ships
// mimalloc too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Validate dossier events and store them, never twice.
    Ingest(ingest::IngestArgs),
    Kpi(query::KpiArgs),
    Index(query::IndexArgs),
    Sql(query::SqlArgs),
    Report(report::ReportArgs),
    Serve(serve::ServeArgs),
    /// Inspect and maintain a store.
    #[command(subcommand)]
    Store(ingest::StoreCommand),
    #[command(subcommand, alias = "pg-user")]
    User(user::UserCommand),
    /// The alert rules of `chiso serve --alerts`.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gen(args) => generate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ingest(args) => runtime().and_then(|rt| {
            rt.block_on(ingest::ingest(args))
                .map(|outcome| match outcome {
                    ingest::Outcome::Success => ExitCode::SUCCESS,
                    ingest::Outcome::Failed => ExitCode::FAILURE,
                    ingest::Outcome::Strict => ExitCode::from(3),
                })
        }),
        Command::Kpi(args) => runtime()
            .and_then(|rt| rt.block_on(query::kpi(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::Index(args) => runtime()
            .and_then(|rt| rt.block_on(query::index(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::Sql(args) => runtime()
            .and_then(|rt| rt.block_on(query::sql(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::Report(args) => runtime()
            .and_then(|rt| rt.block_on(report::report(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => runtime()
            .and_then(|rt| rt.block_on(serve::serve(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::User(command) => user::run(command).map(|()| ExitCode::SUCCESS),
        Command::Alerts(command) => runtime()
            .and_then(|rt| rt.block_on(alerts::run(command)))
            .map(|()| ExitCode::SUCCESS),
        Command::Store(command) => runtime().and_then(|rt| {
            rt.block_on(ingest::store(command))
                .map(|()| ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chiso: {error:#}");
            ExitCode::FAILURE
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
