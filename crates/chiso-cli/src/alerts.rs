//! `chiso alerts test`: what the alert rules of `chiso serve --alerts` would
//! send at an instant, without sending or recording anything.

use std::path::PathBuf;

use anyhow::Context;
use chiso_engine::{Engine, EngineOptions};
use clap::{Args, Subcommand};

use crate::query::{StoreArg, store_or_sample};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Show the messages the rules give now (or at --at), to whom, without
    /// sending them: every rule, whatever its time of day.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The alert rules (TOML; dashboards/alerts.example.toml).
    #[arg(long, value_name = "FILE")]
    alerts: PathBuf,
    #[command(flatten)]
    store: StoreArg,
    /// The instant to evaluate at (ISO-8601, e.g. 2025-10-06T07:30:00+07:00);
    /// now by default.
    #[arg(long)]
    at: Option<String>,
    /// Print each message as the JSON its webhook receives.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: AlertsCommand) -> anyhow::Result<()> {
    let AlertsCommand::Test(args) = command;
    let alerts = chiso_server::alerts::Alerts::load(
        &args.alerts,
        chiso_core::calendar::WorkCalendar::builtin(),
    )?;
    let now = args
        .at
        .as_deref()
        .map(chiso_core::time::parse_timestamp)
        .transpose()?;
    let (store, _) = store_or_sample(&args.store.store).await?;
    let engine = Engine::open(
        &store,
        EngineOptions {
            now,
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("cannot open the store {}", store.display()))?;
    let deliveries = alerts.deliveries(&engine).await?;
    let at = chiso_core::time::format_local(engine.now());
    if deliveries.is_empty() {
        eprintln!("chiso: no rule of {} fires at {at}", args.alerts.display());
    }
    for delivery in &deliveries {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "recipient": delivery.recipient,
                    "body": delivery.body,
                })
            );
        } else {
            println!(
                "── {} → {} ({})\n{}\n",
                delivery.rule,
                delivery.recipient,
                delivery.ward_code.as_deref().unwrap_or("city"),
                delivery.text()
            );
        }
    }
    eprintln!(
        "chiso: {} message(s) at {at}; nothing was sent (`chiso serve --alerts` sends them)",
        deliveries.len()
    );
    Ok(())
}
