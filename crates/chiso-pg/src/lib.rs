//! # chiso-pg: the store over the Postgres wire protocol
//!
//! Analysts already use psql, DBeaver, Metabase, Excel and Python: this
//! crate lets them connect to `chiso serve --pg-addr` as to a PostgreSQL
//! server and query the very catalogue of `chiso sql` (the stored tables,
//! `dossiers`, the reference tables and the KPI table functions).
//!
//! The protocol, the type mapping and the `pg_catalog` that clients read
//! (`\dt`, `\d events`, DBeaver's navigator) come from
//! [`datafusion_postgres`] (pgwire underneath). chiso adds what a shared
//! production server needs around it:
//!
//! * **who**: password authentication with SCRAM-SHA-256 against a users
//!   file of salted hashes ([`users`]), every sign-in and statement in the
//!   store's audit log ([`audit`]);
//! * **what**: the engine's read-only guard as the first query hook
//!   ([`guard`]), so a client can open transactions and set client settings
//!   but never write, `COPY` or `SET` the engine;
//! * **how much**: every statement passes the process's [`QueryGate`] (the
//!   one `POST /api/sql` uses), runs in a session with its own memory pool,
//!   and its rows stop at the deadline or at a cancel request
//!   ([`queries`]);
//! * **how fast**: psql's rows write their dates and timestamps a column at
//!   a time ([`text_rows`]), not one parsed pattern per value;
//! * **which data**: each statement runs on the store version being served
//!   at that moment ([`EngineSource`]), so an ingest shows up without
//!   reconnecting.
//!
//! Architecture invariant: only this crate knows the Postgres protocol. It
//! holds no SQL of its own beyond what clients send; what a query may do is
//! decided by `chiso_engine`.

mod audit;
mod cancel;
mod compat;
mod cursors;
mod guard;
mod queries;
mod sign_in;
mod text_rows;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chiso_engine::{Engine, QueryGate};
use datafusion_postgres::pgwire::api::PgWireServerHandlers;
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::ScramAuth;
use datafusion_postgres::pgwire::api::{ConnectionManager, NoopHandler};

pub use chiso_users::{FAILURE_WINDOW, MAX_FAILURES};
pub use chiso_users::{Hash, Users};
pub use datafusion_postgres::pgwire::tokio::TlsAcceptor;

/// Why the Postgres side could not start, or a users file is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Users(#[from] chiso_users::UsersError),
    #[error("{}: no users; add one with `chiso user add --users {} NAME --role analyst`", .0.display(), .0.display())]
    NoUsers(PathBuf),
    #[error("cannot draw random bytes for a salt: {0}")]
    Random(String),
    #[error("cannot listen for Postgres clients on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("preparing the Postgres catalogue: {0}")]
    Catalog(String),
}

/// Where each statement finds the data: the engine of the store version
/// being served now, and a key that changes when it does.
pub trait EngineSource: Send + Sync + 'static {
    fn current(&self) -> (String, Engine);
}

impl<F> EngineSource for F
where
    F: Fn() -> (String, Engine) + Send + Sync + 'static,
{
    fn current(&self) -> (String, Engine) {
        self()
    }
}

/// The Postgres side of a chiso server.
pub struct PgServer {
    queries: Arc<queries::Queries>,
    users: Arc<users::UserSource>,
    connections: Arc<ConnectionManager>,
    cancels: Arc<cancel::Cancels>,
    failures: Arc<chiso_users::Failures>,
    audit: audit::Audit,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer").finish_non_exhaustive()
    }
}

impl PgServer {
    /// A server for `users`, reading from `source`, admitting queries through
    /// `gate`, recording sign-ins and statements in `audit` when given.
    pub fn new(
        source: Arc<dyn EngineSource>,
        users: Users,
        gate: QueryGate,
        audit: Option<chiso_store::audit::AuditLog>,
    ) -> Result<Arc<Self>, PgError> {
        if users.is_empty() {
            return Err(PgError::NoUsers(users.path().to_owned()));
        }
        let cancels = Arc::new(cancel::Cancels::default());
        let scopes = Arc::new(users.clone());
        let audit = audit::Audit {
            log: audit,
            users: Some(users.clone()),
        };
        Ok(Arc::new(Self {
            queries: Arc::new(queries::Queries::new(
                source,
                scopes,
                gate,
                Arc::clone(&cancels),
                audit.clone(),
            )),
            users: Arc::new(users::UserSource::new(users)?),
            connections: Arc::new(ConnectionManager::new()),
            cancels,
            failures: Arc::default(),
            audit,
        }))
    }

    /// Serves clients on `listener` until `shutdown` resolves; with `tls`,
    /// clients may (`sslmode=prefer`) or must (`sslmode=require`) use TLS.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((socket, peer)) => {
                    let server = Arc::clone(&self);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Err(error) =
                            datafusion_postgres::pgwire::tokio::process_socket(socket, tls, server)
                                .await
                        {
                            tracing::warn!(%peer, %error, "Postgres connection ended with an error");
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "could not accept a Postgres connection"),
            }
        }
    }
}

/// What the server says about itself when a client connects.
fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = format!(
        "{} (chiso {})",
        compat::POSTGRES_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    parameters.time_zone = chiso_core::time::BUSINESS_TIME_ZONE.to_owned();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    parameters
}

impl PgWireServerHandlers for PgServer {
    fn simple_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    /// A new handler per connection: the SASL exchange keeps its state there.
    fn startup_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::auth::StartupHandler> {
        let users: Arc<dyn datafusion_postgres::pgwire::api::auth::AuthSource> =
            Arc::clone(&self.users) as _;
        let mut scram = ScramAuth::new(users);
        scram.set_iterations(chiso_users::ITERATIONS);
        Arc::new(sign_in::Throttled {
            inner: SASLAuthStartupHandler::new(Arc::new(server_parameters()))
                .with_scram(scram)
                .with_connection_manager(Arc::clone(&self.connections)),
            failures: Arc::clone(&self.failures),
            audit: self.audit.clone(),
        })
    }

    fn copy_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::copy::CopyHandler> {
        Arc::new(NoopHandler)
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        Arc::new(cancel::OnCancel {
            connections: Arc::clone(&self.connections),
            cancels: Arc::clone(&self.cancels),
        })
    }
}
