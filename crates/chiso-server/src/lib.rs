//! # chiso-server: the weekly review in the browser
//!
//! A thin axum server over the engine: the dashboard pages of
//! `dashboards/*.toml` rendered as HTML on the server (no external resources,
//! a few lines of JavaScript for sorting), their charts as SVG inline and as
//! PNG from stable URLs, a JSON API mirroring the pages, and live ingestion
//! (`POST /api/events`) through the very ingestion path of the CLI.
//!
//! Data flow: [`live::Live`] holds the snapshot being served (an engine over
//! one store version); a panel's table, a page and a chart are computed once
//! per snapshot and kept in a [`chiso_engine::memo::Memo`]; a new store version, from an
//! ingest here or from another process (polled), replaces the snapshot.
//!
//! Architecture invariant: only this crate knows HTTP and HTML. It asks the
//! dashboard crate for tables and charts and the ingest crate for ingests;
//! it holds no KPI logic of its own.

pub mod alerts;
mod api;
mod audit;
mod console;
mod error;
mod export;
mod html;
mod ingest;
pub mod live;
mod pages;
mod request;
mod shield;
pub mod sign_in;
pub(crate) mod sql;
pub mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use chiso_core::wards::WardRegistry;
use chiso_dashboard::{Dashboards, Table};
use chiso_engine::memo::{Memo, Weight};
use chiso_engine::{Engine, EngineError, EngineOptions, QueryGate, QueryLimits, Scope};
use chiso_ingest::Ingester;
use chiso_store::audit::AuditLog;
use sign_in::Reader;

pub use error::AppError;
pub use shield::AllowedHosts;
pub use tokio_rustls::TlsAcceptor;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub store: PathBuf,
    pub dashboards: Dashboards,
    /// The token `POST /api/events` requires; `None` turns ingestion off.
    pub ingest_token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    pub engine: EngineOptions,
    /// How often to look for ingests made by other processes.
    pub poll_every: Duration,
    /// A line for the page footer saying whose data this is.
    pub data_label: Option<String>,
    /// The bounds of analysts' queries (`/api/sql`, the console, downloads).
    pub query_limits: QueryLimits,
    /// Where the scheduled packs are kept (`/reports` lists them).
    pub archive: Option<PathBuf>,
    /// Write the packs of the week just ended every Monday at 07:00 (and any
    /// missing ones at start).
    pub schedule_weekly: bool,
    /// Compute the default pages of a new store version before serving it
    /// (see [`AppState::refresh`]); tests turn it off for speed.
    pub prepare_pages: bool,
    /// Host names the server answers to besides the loopback ones
    /// (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// The users who may sign in (`--users`); `None` serves everyone
    /// everything, on loopback only.
    pub users: Option<chiso_users::Users>,
    /// Served over TLS: the session cookie is `Secure`.
    pub tls: bool,
    /// The alert rules to check every minute (`--alerts`).
    pub alerts: Option<Arc<alerts::Alerts>>,
}

/// A rendered response body, as cached.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Weight for Rendered {
    fn weight(&self) -> usize {
        self.body.len()
    }
}

/// Documents (PDF, XLSX) and chart images drawn at once: each is a core's
/// worth of work for a while, on the blocking pool.
const RENDERS_AT_ONCE: usize = 2;

/// The least time the pages' own queries get (see [`AppState::page_query`]).
const PAGE_QUERY_TIMEOUT: Duration = Duration::from_secs(300);

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub(crate) live: live::Live,
    pub(crate) dashboards: Dashboards,
    pub(crate) wards: &'static WardRegistry,
    pub(crate) tables: Memo<Arc<Table>>,
    pub(crate) rendered: Memo<Rendered>,
    pub(crate) ingester: Option<tokio::sync::Mutex<Ingester>>,
    pub(crate) ingest_token: Option<String>,
    pub(crate) users: Option<chiso_users::Users>,
    pub(crate) sessions: sign_in::Sessions,
    /// Failed sign-ins of the login page, per address.
    pub(crate) failures: chiso_users::Failures,
    /// Who asked for what; kept when sign-in is on.
    pub(crate) audit: Option<AuditLog>,
    pub(crate) tls: bool,
    /// The snapshot as each scope of the signed-in readers sees it, for
    /// the version being served.
    scoped: std::sync::Mutex<(
        String,
        std::collections::HashMap<Scope, Arc<live::Snapshot>>,
    )>,
    /// The largest request body, compressed or not, in bytes.
    pub(crate) body_limit: usize,
    pub(crate) data_label: Option<String>,
    pub(crate) prepare_pages: bool,
    /// Admission of analysts' queries, shared with the Postgres wire.
    pub(crate) gate: QueryGate,
    pub(crate) archive: Option<chiso_report::archive::Archive>,
    schedule_weekly: bool,
    pub(crate) started: Instant,
    allowed_hosts: AllowedHosts,
    /// The pages' own queries running at once (see [`AppState::page_query`]).
    page_slots: tokio::sync::Semaphore,
    page_timeout: Duration,
    /// Documents and chart images being drawn at once (see [`AppState::render`]).
    render_slots: tokio::sync::Semaphore,
}

impl AppState {
    /// Opens the store (deriving its dossier tables if needed).
    pub async fn open(config: &ServerConfig) -> Result<Arc<Self>, EngineError> {
        let live = live::Live::open(&config.store, config.engine.clone()).await?;
        let ingests = config.ingest_token.is_some() || config.users.is_some();
        let ingester = match ingests {
            true => Some(tokio::sync::Mutex::new(
                Ingester::open(&config.store)
                    .await
                    .map_err(|e| EngineError::Query(e.to_string()))?,
            )),
            false => None,
        };
        let audit = match config.users {
            Some(_) => Some(
                AuditLog::start(&config.store)
                    .await
                    .map_err(|e| EngineError::Query(format!("cannot open the audit log: {e}")))?,
            ),
            None => None,
        };
        let state = Arc::new(Self {
            live,
            audit,
            dashboards: config.dashboards.clone(),
            wards: WardRegistry::builtin(),
            tables: Memo::default(),
            rendered: Memo::default(),
            ingester,
            ingest_token: config.ingest_token.clone(),
            users: config.users.clone(),
            sessions: sign_in::Sessions::default(),
            failures: chiso_users::Failures::default(),
            tls: config.tls,
            scoped: std::sync::Mutex::default(),
            body_limit: config.body_limit,
            data_label: config.data_label.clone(),
            prepare_pages: config.prepare_pages,
            gate: QueryGate::new(config.query_limits),
            archive: config
                .archive
                .clone()
                .map(chiso_report::archive::Archive::new),
            schedule_weekly: config.schedule_weekly,
            started: Instant::now(),
            allowed_hosts: AllowedHosts::new(&config.allowed_hosts),
            page_slots: tokio::sync::Semaphore::new(config.query_limits.concurrent.max(4)),
            // Our own queries, not analysts': the analysts' limit may be
            // seconds, a cold page of a big city takes longer.
            page_timeout: config.query_limits.timeout.max(PAGE_QUERY_TIMEOUT),
            render_slots: tokio::sync::Semaphore::new(RENDERS_AT_ONCE),
        });
        // An ingest token is what the one-stop software's feed posts with:
        // its first batch should not wait seconds for the index of every
        // stored id. Without one (uploads by signed-in staff) the index is
        // read at the first upload and its memory not held before.
        if config.ingest_token.is_some() {
            let preparing = Arc::clone(&state);
            tokio::spawn(async move {
                if let Some(ingester) = &preparing.ingester {
                    let started = Instant::now();
                    match ingester.lock().await.prepare().await {
                        Ok(()) => tracing::info!(
                            seconds = started.elapsed().as_secs_f64(),
                            "read the index of stored events for ingestion"
                        ),
                        Err(error) => {
                            tracing::warn!(%error, "cannot read the index of stored events")
                        }
                    }
                }
            });
        }
        Ok(state)
    }

    /// The store version being served, as `reader` may see it: the whole
    /// snapshot, or one scoped before any query plans (made once per
    /// version and scope).
    pub(crate) async fn snapshot(&self, reader: &Reader) -> Result<Arc<live::Snapshot>, AppError> {
        let whole = self.live.current();
        let scope = reader.scope();
        if scope == Scope::everything() {
            return Ok(whole);
        }
        let key = whole.key();
        {
            let scoped = self.scoped.lock().unwrap_or_else(|e| e.into_inner());
            if scoped.0 == key
                && let Some(snapshot) = scoped.1.get(&scope)
            {
                return Ok(Arc::clone(snapshot));
            }
        }
        let snapshot = Arc::new(whole.scoped(&scope).await?);
        let mut scoped = self.scoped.lock().unwrap_or_else(|e| e.into_inner());
        if scoped.0 != key {
            *scoped = (key, std::collections::HashMap::new());
        }
        scoped.1.insert(scope, Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// The engine of the store version being served, and that version's key.
    pub fn current_engine(&self) -> (String, Engine) {
        let snapshot = self.live.current();
        (snapshot.key(), snapshot.engine.clone())
    }

    /// Runs one of the pages' own queries (a panel's table, an API answer):
    /// a few at once, the others waiting their turn, each within the query
    /// time limit. Asking for many periods or wards at once queues work
    /// instead of running it all together.
    pub(crate) async fn page_query<T>(
        &self,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        let limit = self.page_timeout;
        let busy = || {
            AppError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy computing other figures; try again in a moment",
            )
        };
        let _slot = tokio::time::timeout(limit, self.page_slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::time::timeout(limit, work).await.map_err(|_| {
            AppError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the figures took longer than {} s and were stopped",
                    limit.as_secs()
                ),
            )
        })?
    }

    /// Draws a document or an image on the blocking pool, a few at once;
    /// the others wait their turn (and give up past the pages' time limit).
    pub(crate) async fn render<T: Send + 'static>(
        &self,
        draw: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let busy = || {
            AppError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy drawing other documents; try again in a moment",
            )
        };
        let _slot = tokio::time::timeout(self.page_timeout, self.render_slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(draw)
            .await
            .map_err(|e| AppError::internal(e.to_string()))
    }

    /// The audit log, when sign-in is on: for the Postgres side, and to
    /// flush when the server stops.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The admission of analysts' queries, to share with other entry points.
    pub fn gate(&self) -> &QueryGate {
        &self.gate
    }

    /// Writes the scheduled packs that are due and missing: those of the
    /// week that ended last (as of the engine's clock).
    pub async fn write_due_packs(&self) -> Result<chiso_report::archive::RunReport, AppError> {
        let Some(archive) = &self.archive else {
            return Ok(Default::default());
        };
        let snapshot = self.live.current();
        let week = chiso_report::archive::week_ended(snapshot.engine.now());
        let started = Instant::now();
        let run = archive
            .write_period(&snapshot.engine, &self.dashboards, week)
            .await?;
        if !run.written.is_empty() {
            tracing::info!(
                period = %week,
                written = run.written.len(),
                kept = run.kept,
                seconds = started.elapsed().as_secs_f64(),
                folder = %archive.root().display(),
                "wrote the scheduled packs"
            );
        }
        Ok(run)
    }

    /// Serves the latest store version; drops what was cached for older ones.
    ///
    /// The pages of figures people open first (every page of the
    /// navigation, for the default period, in Vietnamese) are computed
    /// before the new version is served, so the first viewer after an ingest
    /// does not wait for them; pages that read the event log itself (data
    /// quality: orphans, silent wards), which scan every event, are computed
    /// right after, so that an ingest is not answered seconds later for them.
    pub async fn refresh(self: &Arc<Self>) -> Result<bool, EngineError> {
        let changed = self
            .live
            .refresh(|snapshot| async move {
                if self.prepare_pages {
                    pages::warm(self, &snapshot, pages::Warm::Figures).await;
                }
            })
            .await?;
        if changed {
            let key = self.live.current().key();
            self.tables.retain_version(&key);
            self.rendered.retain_version(&key);
            if self.prepare_pages {
                // Once ingests pause: under a steady stream each version
                // would be replaced before its scans of the log were used.
                let state = Arc::clone(self);
                tokio::spawn(async move {
                    let snapshot = state.live.current();
                    tokio::time::sleep(EVENT_LOG_PAGES_AFTER).await;
                    if state.live.current().key() == snapshot.key() {
                        pages::warm(&state, &snapshot, pages::Warm::EventLog).await;
                    }
                });
            }
        }
        Ok(changed)
    }
}

/// How long a version must stay the latest before the pages that scan the
/// event log are computed ahead of their first viewer.
const EVENT_LOG_PAGES_AFTER: Duration = Duration::from_secs(5);

/// Every route of the server.
pub fn app(state: Arc<AppState>) -> Router {
    let allowed_hosts = state.allowed_hosts.clone();
    Router::new()
        .route("/health", get(api::health))
        // Pages name no icon; browsers ask anyway.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NOT_FOUND }),
        )
        .route("/static/{file}", get(pages::asset))
        .route("/sql", get(console::console))
        .route("/export/{file}", get(export::page_export))
        .route("/pack/{file}", get(export::pack_export))
        .route("/reports", get(export::archive_page))
        .route("/reports/{period}/{file}", get(export::archived_file))
        .route("/chart/{page}/{file}", get(pages::chart))
        .route("/api/kpi", get(api::kpi))
        .route("/api/index", get(api::index))
        .route("/api/trend", get(api::trend))
        .route("/api/wards/{code}", get(api::ward))
        .route("/api/due-soon", get(api::due_soon))
        .route("/api/pages", get(api::pages))
        .route("/api/panels/{page}/{panel}", get(api::panel))
        // The handler reads the body itself, within the limit, after
        // checking the token.
        .route("/api/events", post(ingest::post_events))
        .route("/api/sql", post(sql::post_sql).get(sql::get_sql))
        .route("/api/me", get(sign_in::me))
        .route("/api/{*rest}", get(api::unknown))
        .route("/login", get(sign_in::login_page).post(sign_in::login))
        .route("/logout", post(sign_in::logout))
        .fallback(get(pages::page))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            sign_in::identify,
        ))
        .layer(middleware::from_fn_with_state(
            allowed_hosts,
            shield::check_host,
        ))
        .layer(middleware::from_fn(shield::headers))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, path, status, time.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Listens on `addr`; once this returns, connections are accepted (and
/// wait for [`serve`]), so the address can be announced.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|cause| ServeError::Bind { addr, cause })
}

/// Runs the server on `listener` (over TLS with `tls`) until Ctrl-C or
/// SIGTERM, finishing requests in flight.
pub async fn serve(
    state: Arc<AppState>,
    config: &ServerConfig,
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
) -> Result<(), ServeError> {
    let local = listener
        .local_addr()
        .map_err(|cause| ServeError::Serve { cause })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        url = %format!("{scheme}://{local}/"),
        store = %config.store.display(),
        dashboards = %config.dashboards.origin,
        ingestion = config.ingest_token.is_some(),
        "chiso is serving"
    );
    let warmer = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            if state.prepare_pages {
                let snapshot = state.live.current();
                pages::warm(&state, &snapshot, pages::Warm::Figures).await;
                pages::warm(&state, &snapshot, pages::Warm::EventLog).await;
            }
        })
    };
    let poller = {
        let state = Arc::clone(&state);
        let every = config.poll_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = state.refresh().await {
                    tracing::warn!(%error, "could not look for new data");
                }
            }
        })
    };
    let scheduler = state.schedule_weekly.then(|| {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                // At start (a Monday missed while down) and every Monday 07:00.
                if let Err(error) = state.write_due_packs().await {
                    tracing::warn!(%error, "could not write the scheduled packs");
                }
                let now = chrono::Utc::now();
                let next = chiso_report::archive::next_run(now);
                let wait = (next - now).to_std().unwrap_or(Duration::from_secs(60));
                tracing::info!(next = %next, "next scheduled packs");
                tokio::time::sleep(wait).await;
            }
        })
    });
    let alerting = config
        .alerts
        .clone()
        .map(|rules| tokio::spawn(alerts::run(rules, Arc::clone(&state))));
    transport::serve(listener, app(state), tls, shutdown_signal()).await;
    if let Some(alerting) = alerting {
        alerting.abort();
    }
    poller.abort();
    warmer.abort();
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    tracing::info!("chiso stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("the server stopped: {cause}")]
    Serve { cause: std::io::Error },
    #[error("{}: {reason}", .path.display())]
    Tls { path: PathBuf, reason: String },
}
