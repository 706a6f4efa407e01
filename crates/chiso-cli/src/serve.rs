//! `chiso serve`: the weekly review in the browser.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chiso_server::{AppState, ServerConfig};
use clap::Args;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::query::{LimitArgs, StoreArg, store_or_sample};

#[derive(Debug, Args)]
#[command(
    about = "Serve the dashboards, charts and JSON API in the browser",
    after_help = "Examples:\n  chiso serve                      # the built-in sample city at http://127.0.0.1:8080/\n  chiso serve --store city --addr 0.0.0.0:8443 --allowed-host review.example.vn \\\n      --tls-cert cert.pem --tls-key key.pem --users users\n  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/x-ndjson' \\\n       --data-binary @events.ndjson http://127.0.0.1:8080/api/events"
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
    /// The largest request body `POST /api/events` accepts, in megabytes;
    /// also what a gzip body may decompress to.
    #[arg(long, default_value_t = 64)]
    max_body_mb: usize,
    #[command(flatten)]
    limits: LimitArgs,
    /// How often to look for data ingested by other processes, in seconds.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
    /// Also serve Postgres clients (psql, DBeaver, Metabase, Python) on this
    /// address, for the users of --users. Off unless given.
    #[arg(long, requires = "users")]
    pg_addr: Option<SocketAddr>,
    /// Turn sign-in on: the users, roles and wards of this file (`chiso user
    /// add`) for the pages, the API and Postgres clients; each sees what
    /// their role and wards allow. Without it the server is open to whoever
    /// reaches it, and listens on loopback only.
    #[arg(long, alias = "pg-users", value_name = "FILE")]
    users: Option<PathBuf>,
    /// A host name (or address) the server answers to, besides localhost,
    /// 127.0.0.1 and ::1: the name people type to reach it (repeat for
    /// several). Requests for other names are refused (421), which stops
    /// other web sites from reading it through DNS rebinding.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// Serve HTTPS and Postgres over TLS with this PEM certificate chain.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Write the city pack and every ward's pack (PDF and XLSX) of the week
    /// just ended every Monday at 07:00 local time, and any missing at start.
    #[arg(long, value_enum)]
    schedule: Option<Schedule>,
    /// Where scheduled packs are kept and listed from (/reports); STORE/reports
    /// by default.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Check these alert rules every minute and send what is due to their
    /// webhooks (dashboards/alerts.example.toml; `chiso alerts test` shows
    /// what they would send).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    Weekly,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // chiso's own events at info (`CHISO_LOG=debug` for where an update's
    // time goes); the libraries' only when they warn.
    let level = match std::env::var("CHISO_LOG").as_deref() {
        Ok("debug") => Level::DEBUG,
        _ => Level::INFO,
    };
    let filter = Targets::new()
        .with_target("chiso_server", level)
        .with_target("chiso_pg", level)
        .with_target("chiso_engine", level)
        .with_target("chiso", level)
        .with_default(Level::WARN);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                // Colour codes only for a terminal, not in a log file or pipe.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
    let dashboards = crate::report::dashboards(args.dashboards.as_deref())?;
    if args
        .ingest_token
        .as_deref()
        .is_some_and(|t| t.trim().len() < 8)
    {
        anyhow::bail!("--ingest-token must be at least 8 characters");
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(chiso_server::transport::tls_acceptor(cert, key)?),
        _ => None,
    };
    let mut allowed_hosts = args.allowed_hosts.clone();
    // The address it was asked to listen on is a name it answers to.
    if !args.addr.ip().is_unspecified() {
        allowed_hosts.push(args.addr.ip().to_string());
    }
    let users = args
        .users
        .as_deref()
        .map(chiso_users::Users::load)
        .transpose()?;
    if users.is_none() {
        for addr in std::iter::once(&args.addr).chain(args.pg_addr.as_ref()) {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "{addr} is reachable from other machines, and without --users anyone \
                     there would read every dossier: give --users FILE (chiso user add), \
                     or listen on 127.0.0.1"
                );
            }
        }
    }
    warn_if_exposed(&args, tls.is_some());
    let alerts = args
        .alerts
        .as_deref()
        .map(|path| {
            chiso_server::alerts::Alerts::load(path, chiso_core::calendar::WorkCalendar::builtin())
        })
        .transpose()?
        .map(Arc::new);
    let (store, sample) = store_or_sample(&args.store.store).await?;
    let config = ServerConfig {
        alerts,
        store: store.clone(),
        dashboards,
        ingest_token: args.ingest_token.map(|t| t.trim().to_owned()),
        body_limit: args.max_body_mb.saturating_mul(1024 * 1024),
        engine: Default::default(),
        poll_every: Duration::from_secs(args.poll_seconds.max(1)),
        prepare_pages: true,
        query_limits: args.limits.limits(),
        archive: Some(
            args.archive
                .clone()
                .unwrap_or_else(|| store.join("reports")),
        ),
        schedule_weekly: args.schedule == Some(Schedule::Weekly),
        allowed_hosts,
        users: users.clone(),
        tls: tls.is_some(),
        data_label: sample.then(|| {
            "Thành phố mẫu: dữ liệu sinh tự động (chiso gen) / sample city: generated data"
                .to_owned()
        }),
    };
    let state = AppState::open(&config)
        .await
        .with_context(|| format!("cannot open the store {}", store.display()))?;
    let postgres = match (args.pg_addr, users) {
        (Some(addr), Some(users)) => Some(start_postgres(&state, addr, users, tls.clone()).await?),
        _ => None,
    };
    let listener = chiso_server::bind(args.addr).await?;
    // Announced once the port is open: a click on the address connects.
    let local = listener.local_addr().unwrap_or(args.addr);
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("chiso: open {scheme}://{local}/ in a browser (Ctrl-C stops)");
    let audit = state.audit().cloned();
    let served = chiso_server::serve(state, &config, listener, tls).await;
    if let Some(postgres) = postgres {
        postgres.abort();
    }
    if let Some(audit) = audit {
        audit.flush().await;
    }
    served.with_context(|| format!("serving the store {}", store.display()))
}

/// Says so when the server is reachable from other machines in the clear,
/// or by names it will refuse.
fn warn_if_exposed(args: &ServeArgs, tls: bool) {
    let exposed = |addr: &SocketAddr| !addr.ip().is_loopback();
    if !tls {
        for addr in std::iter::once(&args.addr).chain(args.pg_addr.as_ref()) {
            if exposed(addr) {
                eprintln!(
                    "chiso: warning: {addr} is reachable from other machines without TLS: \
                     passwords, tokens and dossiers cross the network in the clear; \
                     give --tls-cert and --tls-key"
                );
            }
        }
    }
    if args.addr.ip().is_unspecified() && args.allowed_hosts.is_empty() {
        eprintln!(
            "chiso: warning: listening on {} but answering only to localhost; \
             give --allowed-host NAME for the name other machines use",
            args.addr
        );
    }
}

/// The Postgres side, on the same snapshots and the same query gate.
async fn start_postgres(
    state: &Arc<AppState>,
    addr: SocketAddr,
    users: chiso_users::Users,
    tls: Option<chiso_server::TlsAcceptor>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let source = {
        let state = Arc::clone(state);
        move || state.current_engine()
    };
    let server = chiso_pg::PgServer::new(
        Arc::new(source),
        users,
        state.gate().clone(),
        state.audit().cloned(),
    )?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for Postgres clients on {addr}"))?;
    tracing::info!(%addr, "serving Postgres clients");
    eprintln!(
        "chiso: Postgres clients connect with: psql -h {} -p {} -U USER chiso{}",
        addr.ip(),
        addr.port(),
        if tls.is_some() {
            " (sslmode=require works)"
        } else {
            ""
        }
    );
    Ok(tokio::spawn(server.serve(
        listener,
        tls,
        std::future::pending(),
    )))
}
