//! What an ingest did, for people and for machines.

use std::collections::BTreeMap;
use std::fmt;

use chiso_core::format::thousands;
use serde::Serialize;

use crate::source::{Layout, SourceFormat};

/// A rejected row, as shown in a report.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub line: u64,
    pub column: Option<String>,
    pub reason: String,
    pub message: String,
}

/// The outcome of ingesting one file.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub ingest_id: String,
    pub source: String,
    pub format: SourceFormat,
    pub layout: Layout,
    pub gzip: bool,
    pub bytes: u64,
    /// Physical rows read (a dossier-list row yields several events).
    pub rows_read: u64,
    pub events_read: u64,
    /// New events stored by this ingest.
    pub accepted: u64,
    /// Events already stored with the same content: skipped.
    pub duplicate: u64,
    /// Events whose id is stored with other content: quarantined.
    pub conflict: u64,
    /// Rows that broke the contract: quarantined.
    pub rejected: u64,
    /// Accepted events whose dossier has no `received` event yet: kept,
    /// counted in no rate until the reception arrives.
    pub orphans: u64,
    /// The events-table version with this ingest's events, if any were new.
    pub events_version: Option<i64>,
    /// The events-table version after this ingest.
    pub store_version: i64,
    /// Quarantined rows (rejections and conflicts) by reason code.
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// The first quarantined rows, to show where to look.
    pub examples: Vec<Rejected>,
    pub seconds: f64,
}

/// How many quarantined rows a report shows.
pub const EXAMPLES: usize = 10;

impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gzip = if self.gzip { ", gzip" } else { "" };
        writeln!(
            f,
            "{} ({} {}{gzip}, {:.1} MB) — ingest {}",
            self.source,
            self.format.name(),
            self.layout.describe(),
            self.bytes as f64 / 1e6,
            self.ingest_id
        )?;
        let line = |f: &mut fmt::Formatter<'_>, label: &str, n: u64| {
            writeln!(f, "  {label:<16} {:>12}", thousands(n))
        };
        line(f, "rows read", self.rows_read)?;
        if self.events_read != self.rows_read {
            line(f, "events read", self.events_read)?;
        }
        line(f, "accepted", self.accepted)?;
        line(f, "duplicates", self.duplicate)?;
        line(f, "conflicts", self.conflict)?;
        line(f, "rejected", self.rejected)?;
        if self.orphans > 0 {
            writeln!(
                f,
                "  {:<16} {:>12}  (kept; they count once their dossier's `received` event arrives)",
                "orphan events",
                thousands(self.orphans)
            )?;
        }
        match self.events_version {
            Some(v) => writeln!(f, "  {:<16} {:>12}", "committed as", format!("version {v}"))?,
            None => writeln!(f, "  {:<16} {:>12}", "committed", "nothing new")?,
        }
        let rate = if self.seconds > 0.0 {
            self.events_read as f64 / self.seconds
        } else {
            0.0
        };
        writeln!(
            f,
            "  {:<16} {:>12}  ({} events/s)",
            "time",
            format!("{:.2} s", self.seconds),
            thousands(rate as u64)
        )?;
        if !self.quarantined_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .quarantined_by_reason
                .iter()
                .map(|(reason, n)| format!("{reason} {}", thousands(*n)))
                .collect();
            writeln!(f, "  quarantined by reason: {}", reasons.join(", "))?;
            for example in &self.examples {
                let column = example
                    .column
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "    line {}{column}: {} — {}",
                    example.line, example.reason, example.message
                )?;
            }
            let shown = self.examples.len() as u64;
            let total = self.rejected + self.conflict;
            if total > shown {
                writeln!(
                    f,
                    "    … and {} more: `chiso store quarantine --ingest {}`",
                    thousands(total - shown),
                    self.ingest_id
                )?;
            }
        }
        Ok(())
    }
}
