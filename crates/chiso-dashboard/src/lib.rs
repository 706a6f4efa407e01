//! # chiso-dashboard: pages and panels as files
//!
//! A dashboard page is a TOML file in `dashboards/`: its path, its titles in
//! Vietnamese and English, and its panels. A panel is a read-only SQL query
//! over the engine's objects (usually a table function such as
//! `kpi_change({{period}}, 'ward')`) and a way to show the result: headline
//! tiles, a table, or a chart (line, horizontal bar, stacked bar, heatmap).
//! Adding a panel or a page is editing a file; no Rust changes.
//!
//! The flow is: [`Dashboards::load`] reads and checks every file (a mistake
//! is reported with file, line and reason), [`Params`] turns a request's
//! period, ward and filters into SQL literals, [`evaluate`] runs a panel into
//! a [`Table`] of plain values, and [`present`] turns tables into display
//! text and charts. The server renders these as HTML; reports reuse them.
//!
//! Architecture invariant: this crate knows the engine and Arrow but not
//! HTTP or HTML; what it hands out are plain values, texts and
//! [`chiso_chart::Chart`]s.

mod model;
mod pack;
mod params;
pub mod present;
mod table;

pub use model::{Column, Dashboards, Page, Panel, PanelKind, Text, Thresholds};
pub use pack::Pack;
pub use params::{Filter, Params};
pub use present::{Format, Lang};
pub use table::{Table, Value};

use std::path::PathBuf;

use chiso_engine::{Engine, EngineError};

/// Why a dashboard could not be loaded or a panel evaluated.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A dashboard file that is not valid: where and why.
    #[error("{}:{line}: {reason}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A panel's query failed.
    #[error("panel `{panel}`: {source}")]
    Query {
        panel: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error("{0}")]
    Data(String),
}

/// How many rows a panel keeps for display; the count of all rows is kept.
pub const PANEL_ROWS: usize = 2000;

/// Runs a panel's query with `params`.
pub async fn evaluate(
    engine: &Engine,
    panel: &Panel,
    params: &Params,
) -> Result<Table, DashboardError> {
    let failed = |source| DashboardError::Query {
        panel: panel.id.clone(),
        source: Box::new(source),
    };
    let sql = params.render(&panel.sql).map_err(failed)?;
    let frame = engine.sql(&sql).await.map_err(failed)?;
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = frame
        .collect()
        .await
        .map_err(|e| failed(EngineError::from(e)))?;
    let mut table = Table::from_batches(&batches, panel.limit.unwrap_or(PANEL_ROWS))?;
    // No batches, no schema: the plan still knows the columns.
    if table.columns.is_empty() {
        table.columns = columns;
    }
    Ok(table)
}
