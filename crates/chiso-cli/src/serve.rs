//! `chiso serve`: the weekly review in the browser.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chiso_dashboard::Dashboards;
use chiso_server::ServerConfig;
use clap::Args;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::query::{StoreArg, store_or_sample};

#[derive(Debug, Args)]
#[command(
    about = "Serve the dashboards, charts and JSON API in the browser",
    after_help = "Examples:\n  chiso serve                      # the built-in sample city at http://127.0.0.1:8080/\n  chiso serve --store city --addr 0.0.0.0:8080 --ingest-token \"$TOKEN\"\n  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/x-ndjson' \\\n       --data-binary @events.ndjson http://127.0.0.1:8080/api/events"
)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Turns on `POST /api/events`, for requests that carry this bearer token.
    #[arg(long, env = "CHISO_INGEST_TOKEN", hide_env_values = true)]
    ingest_token: Option<String>,
    /// The dashboard files; without it, ./dashboards when it exists, else the
    /// built-in ones.
    #[arg(long)]
    dashboards: Option<PathBuf>,
    /// The largest request body `POST /api/events` accepts, in megabytes.
    #[arg(long, default_value_t = 64)]
    max_body_mb: usize,
    /// How often to look for data ingested by other processes, in seconds.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // chiso's own events at info; the libraries' only when they warn.
    let filter = Targets::new()
        .with_target("chiso_server", Level::INFO)
        .with_default(Level::WARN);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
    let dashboards = match &args.dashboards {
        Some(dir) => Dashboards::load(dir)?,
        None if std::path::Path::new("dashboards").is_dir() => {
            Dashboards::load(std::path::Path::new("dashboards"))?
        }
        None => Dashboards::builtin()?,
    };
    if args
        .ingest_token
        .as_deref()
        .is_some_and(|t| t.trim().len() < 8)
    {
        anyhow::bail!("--ingest-token must be at least 8 characters");
    }
    let (store, sample) = store_or_sample(&args.store.store).await?;
    let config = ServerConfig {
        store: store.clone(),
        dashboards,
        ingest_token: args.ingest_token.map(|t| t.trim().to_owned()),
        body_limit: args.max_body_mb.saturating_mul(1024 * 1024),
        engine: Default::default(),
        poll_every: Duration::from_secs(args.poll_seconds.max(1)),
        prepare_pages: true,
        data_label: sample.then(|| {
            "Thành phố mẫu: dữ liệu sinh tự động (chiso gen) / sample city: generated data"
                .to_owned()
        }),
    };
    eprintln!(
        "chiso: open http://{}/ in a browser (Ctrl-C stops)",
        args.addr
    );
    chiso_server::serve(config, args.addr)
        .await
        .with_context(|| format!("serving the store {}", store.display()))
}
