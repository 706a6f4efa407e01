//! The data being served: an engine over the latest committed store version,
//! replaced (never mutated) when an ingest lands, here or in another process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::http::StatusCode;
use chiso_core::wards::{WardCode, WardRegistry};
use chiso_engine::{Engine, EngineError, EngineOptions, Scope};

use crate::error::AppError;
use chiso_store::{Store, Table};
use chrono::{DateTime, NaiveDate, Utc};

/// One store version, opened for querying.
#[derive(Debug)]
pub struct Snapshot {
    pub engine: Engine,
    /// Whose view of the store this is (`Scope::everything()` for the
    /// whole engine).
    pub scope: Scope,
    /// Versions of the events, quarantine and ingests tables.
    pub versions: [i64; 3],
    /// The first and last local day with data.
    pub data_range: Option<(NaiveDate, NaiveDate)>,
    pub opened_at: DateTime<Utc>,
}

impl Snapshot {
    async fn open(store: Store, options: &EngineOptions) -> Result<Self, EngineError> {
        let versions = versions(&store);
        let started = Instant::now();
        let engine = Engine::from_store(store, options.clone()).await?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "engine opened");
        let data_range = engine.data_range().await?;
        tracing::info!(
            events_version = versions[0],
            derived = ?engine.derivation(),
            seconds = started.elapsed().as_secs_f64(),
            "serving store version"
        );
        Ok(Self {
            engine,
            scope: Scope::everything(),
            versions,
            data_range,
            opened_at: Utc::now(),
        })
    }

    /// The prefix of every cache key computed from this snapshot: the
    /// version's key, then the scope's.
    pub fn key(&self) -> String {
        let [events, quarantine, ingests] = self.versions;
        if self.scope == Scope::everything() {
            format!("v{events}.{quarantine}.{ingests}/")
        } else {
            format!("v{events}.{quarantine}.{ingests}/{:?}/", self.scope)
        }
    }

    /// This snapshot as a reader of `scope` sees it.
    pub async fn scoped(&self, scope: &Scope) -> Result<Self, EngineError> {
        Ok(Self {
            engine: self.engine.scoped(scope).await?,
            scope: scope.clone(),
            versions: self.versions,
            data_range: self.data_range,
            opened_at: self.opened_at,
        })
    }

    /// The ward of `code`, if the snapshot's reader sees it: 404 for no
    /// ward of the city, 403 for another ward's.
    pub fn ward(&self, code: &str) -> Result<WardCode, AppError> {
        let code = WardRegistry::builtin().code(code)?;
        if self.scope.sees(&code) {
            Ok(code)
        } else {
            Err(AppError::new(
                StatusCode::FORBIDDEN,
                format!("ward {code} is outside what you may see"),
            ))
        }
    }

    pub fn events_version(&self) -> i64 {
        self.versions[0]
    }
}

fn versions(store: &Store) -> [i64; 3] {
    [
        store.version(Table::Events),
        store.version(Table::Quarantine),
        store.version(Table::Ingests),
    ]
}

/// The snapshot being served, and how to move to a newer one.
#[derive(Debug)]
pub struct Live {
    root: PathBuf,
    options: EngineOptions,
    current: RwLock<Arc<Snapshot>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl Live {
    pub async fn open(root: &Path, options: EngineOptions) -> Result<Self, EngineError> {
        let store = Store::open(root).await?;
        let snapshot = Snapshot::open(store, &options).await?;
        Ok(Self {
            root: root.to_owned(),
            options,
            current: RwLock::new(Arc::new(snapshot)),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Moves to the latest committed version, if it is newer, calling
    /// `prepare` on it before it is served; `true` when it moved. Requests
    /// keep being served from the old snapshot meanwhile.
    pub async fn refresh<F, Fut>(&self, prepare: F) -> Result<bool, EngineError>
    where
        F: FnOnce(Arc<Snapshot>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let _one_at_a_time = self.refreshing.lock().await;
        let started = Instant::now();
        let store = Store::open(&self.root).await?;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "store opened");
        if versions(&store) == self.current().versions {
            return Ok(false);
        }
        let snapshot = Arc::new(Snapshot::open(store, &self.options).await?);
        // Periods the new events cannot have changed are not computed again.
        snapshot.engine.carry_over(&self.current().engine);
        prepare(Arc::clone(&snapshot)).await;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        Ok(true)
    }
}
