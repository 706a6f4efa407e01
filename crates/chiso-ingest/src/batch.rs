//! Accepted events as Arrow batches of the store's events table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use chiso_core::event::{ContractEnum, Event};
use chiso_store::{events_schema, local_month};

/// Rows per batch handed to the writer.
pub const BATCH_ROWS: usize = 32 * 1024;

pub struct EventBatchBuilder {
    ingest_id: String,
    event_id: StringBuilder,
    dossier_id: StringBuilder,
    event_type: StringBuilder,
    occurred_at: TimestampMicrosecondBuilder,
    ward_code: StringBuilder,
    procedure_code: StringBuilder,
    department_code: StringBuilder,
    channel: StringBuilder,
    full_online: BooleanBuilder,
    due_at: TimestampMicrosecondBuilder,
    fee_required: BooleanBuilder,
    e_result: BooleanBuilder,
    paid_online: BooleanBuilder,
    rating: StringBuilder,
    month: StringBuilder,
    ingest: StringBuilder,
    hash: Int64Builder,
    rows: usize,
    /// The partition value of the last event, reused while months repeat.
    last_month: (i64, String),
}

fn timestamps() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC")
}

impl EventBatchBuilder {
    pub fn new(ingest_id: &str) -> Self {
        let strings = || StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16);
        let flags = || BooleanBuilder::with_capacity(BATCH_ROWS);
        Self {
            ingest_id: ingest_id.to_owned(),
            event_id: strings(),
            dossier_id: strings(),
            event_type: strings(),
            occurred_at: timestamps(),
            ward_code: strings(),
            procedure_code: strings(),
            department_code: strings(),
            channel: strings(),
            full_online: flags(),
            due_at: timestamps(),
            fee_required: flags(),
            e_result: flags(),
            paid_online: flags(),
            rating: strings(),
            month: strings(),
            ingest: strings(),
            hash: Int64Builder::with_capacity(BATCH_ROWS),
            rows: 0,
            last_month: (i64::MIN, String::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn push(&mut self, event: &Event, hash: u64) {
        self.event_id.append_value(&event.event_id);
        self.dossier_id.append_value(&event.dossier_id);
        self.event_type.append_value(event.event_type.as_str());
        self.occurred_at
            .append_value(event.occurred_at.timestamp_micros());
        self.ward_code.append_option(event.ward_code.as_deref());
        self.procedure_code
            .append_option(event.procedure_code.as_deref());
        self.department_code
            .append_option(event.department_code.as_deref());
        self.channel
            .append_option(event.channel.map(|c| c.as_str()));
        self.full_online.append_option(event.full_online);
        self.due_at
            .append_option(event.due_at.map(|t| t.timestamp_micros()));
        self.fee_required.append_option(event.fee_required);
        self.e_result.append_option(event.e_result);
        self.paid_online.append_option(event.paid_online);
        self.rating.append_option(event.rating.map(|r| r.as_str()));
        // Month boundaries are rare in a log: recompute the partition value
        // only when the local day changes.
        let day = (event.occurred_at.timestamp()
            + i64::from(chiso_core::time::BUSINESS_OFFSET_SECONDS))
        .div_euclid(86_400);
        if day != self.last_month.0 {
            self.last_month = (day, local_month(event.occurred_at));
        }
        self.month.append_value(&self.last_month.1);
        self.ingest.append_value(&self.ingest_id);
        self.hash.append_value(hash as i64);
        self.rows += 1;
    }

    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.dossier_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.ward_code.finish()),
            Arc::new(self.procedure_code.finish()),
            Arc::new(self.department_code.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.full_online.finish()),
            Arc::new(self.due_at.finish()),
            Arc::new(self.fee_required.finish()),
            Arc::new(self.e_result.finish()),
            Arc::new(self.paid_online.finish()),
            Arc::new(self.rating.finish()),
            Arc::new(self.month.finish()),
            Arc::new(self.ingest.finish()),
            Arc::new(self.hash.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(events_schema(), columns)
    }
}
