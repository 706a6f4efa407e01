//! The Arrow schemas of the store's tables, the single source of their shape.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chiso_core::event::{event_schema, timestamp_type};
use chrono::{DateTime, Datelike, Utc};

/// The tables of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Events,
    Quarantine,
    Ingests,
    Audit,
    Alerts,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Events,
        Table::Quarantine,
        Table::Ingests,
        Table::Audit,
        Table::Alerts,
    ];

    /// The table's folder in the store, and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Quarantine => "quarantine",
            Self::Ingests => "ingests",
            Self::Audit => "audit",
            Self::Alerts => "alerts",
        }
    }

    pub fn schema(self) -> SchemaRef {
        match self {
            Self::Events => events_schema(),
            Self::Quarantine => quarantine_schema(),
            Self::Ingests => ingests_schema(),
            Self::Audit => audit_schema(),
            Self::Alerts => alerts_schema(),
        }
    }

    /// Text columns that queries read as Arrow dictionaries. The Parquet
    /// files hold them dictionary-encoded; reading the dictionary and its
    /// keys as they are saves expanding every row to a string, and a filter
    /// compares each distinct value once. `event_type`, which nearly every
    /// query over events filters on, and `channel`, which analysts
    /// group by: the partial stage of such a grouping codes a dictionary's
    /// values once per dictionary (`dictionary_aggregate`), where
    /// DataFusion's row encoding would decode every row.
    pub fn dictionary_columns(self) -> &'static [&'static str] {
        match self {
            Self::Events => &[
                chiso_core::event::columns::EVENT_TYPE,
                chiso_core::event::columns::CHANNEL,
            ],
            Self::Quarantine | Self::Ingests | Self::Audit | Self::Alerts => &[],
        }
    }

    /// Columns whose every row holds a value of its own, which the files
    /// store plainly rather than dictionary-encoded: a dictionary of them
    /// only grows until the writer gives up on it, and building it cost
    /// ingests time for nothing.
    pub fn unique_columns(self) -> &'static [&'static str] {
        match self {
            Self::Events => &[chiso_core::event::columns::EVENT_ID, lineage::CONTENT_HASH],
            Self::Quarantine | Self::Ingests | Self::Audit | Self::Alerts => &[],
        }
    }

    /// The column whose equal values each written chunk of rows keeps
    /// together (see `TableWriter`). Nearly every query over events keeps
    /// one or a few event types; with the rows of a type side by side, the
    /// Parquet page index lets a scan skip the pages of the other types
    /// instead of decoding every page and throwing most rows away.
    pub fn cluster_column(self) -> Option<&'static str> {
        match self {
            Self::Events => Some(chiso_core::event::columns::EVENT_TYPE),
            Self::Quarantine | Self::Ingests | Self::Audit | Self::Alerts => None,
        }
    }

    pub fn partition_columns(self) -> &'static [&'static str] {
        match self {
            Self::Events => &[EVENTS_PARTITION],
            Self::Quarantine | Self::Ingests | Self::Audit | Self::Alerts => &[],
        }
    }
}

/// The events table is partitioned by the local month of `occurred_at`
/// (`2025-07`): KPI queries read one period at a time.
pub const EVENTS_PARTITION: &str = "occurred_month";

/// Columns the store adds to each event, for tracing a figure to its source.
pub mod lineage {
    /// The ingest that stored the event.
    pub const INGEST_ID: &str = "ingest_id";
    /// A hash of the event's validated content: two rows with the same
    /// `event_id` are duplicates when their hashes agree, a conflict otherwise.
    pub const CONTENT_HASH: &str = "content_hash";
}

/// The events table: the contract's columns, then the partition and lineage.
pub fn events_schema() -> SchemaRef {
    let mut fields: Vec<Field> = event_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(EVENTS_PARTITION, DataType::Utf8, false));
    fields.push(Field::new(lineage::INGEST_ID, DataType::Utf8, false));
    fields.push(Field::new(lineage::CONTENT_HASH, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Every rejected row, with enough to find and fix it at the source.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ingest_id", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, true),
        Field::new("column", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("quarantined_at", timestamp_type(), false),
    ]))
}

/// One row per ingest.
pub fn ingests_schema() -> SchemaRef {
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new("ingest_id", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_format", DataType::Utf8, false),
        Field::new("source_bytes", DataType::Int64, false),
        Field::new("started_at", timestamp_type(), false),
        Field::new("finished_at", timestamp_type(), false),
        count("rows_read"),
        count("events_read"),
        count("accepted"),
        count("duplicate"),
        count("conflict"),
        count("rejected"),
        count("orphans"),
        Field::new("events_version", DataType::Int64, true),
    ]))
}

/// One row per request or statement of a signed-in server (see
/// [`crate::audit`]).
pub fn audit_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("at", timestamp_type(), false),
        text("user_name", true),
        text("role", true),
        text("address", true),
        text("entry_point", false),
        text("action", false),
        text("target", false),
        text("outcome", false),
        Field::new("status", DataType::Int64, true),
        text("detail", true),
    ]))
}

/// One delivery of an alert (`chiso serve --alerts`): which rule, for
/// which ward (none: the city's summary), on which local day, to whom,
/// with what figures and message, and whether it arrived.
pub fn alerts_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("at", timestamp_type(), false),
        text("day", false),
        text("rule", false),
        text("ward_code", true),
        text("recipient", false),
        text("status", false),
        Field::new("attempts", DataType::Int64, false),
        text("figures", false),
        text("message", false),
        text("detail", true),
    ]))
}

/// The partition value of an instant: its local month, `YYYY-MM`.
pub fn local_month(instant: DateTime<Utc>) -> String {
    let date = chiso_core::time::local_date(instant);
    format!("{:04}-{:02}", date.year(), date.month())
}
