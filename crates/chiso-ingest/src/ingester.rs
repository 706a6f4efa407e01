//! The ingest of one source, from the first row to the last commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::DataType;
use chiso_core::contract::{Contract, FieldSource, RejectReason, Rejection, parse_event};
use chiso_core::event::{Event, EventType, columns};
use chiso_core::wards::WardRegistry;
use chiso_store::{QuarantineRow, Store, StoreError, Table, column_as, lineage};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::IngestError;
use crate::batch::{BATCH_ROWS, EventBatchBuilder};
use crate::index::{Index, Seen, content_hash, dossier_key, id_key};
use crate::report::{EXAMPLES, IngestReport, Rejected};
use crate::source::{RowSink, Source, SourceFormat};
use crate::ward_gate::{Verdict, WardGate};

/// How to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Read the source as this format instead of recognising it.
    pub format: Option<SourceFormat>,
    /// The moment of ingestion, for the future-timestamp rule (default: now).
    pub now: Option<DateTime<Utc>>,
    /// The most bytes a gzip body ([`Ingester::ingest_bytes`]) may
    /// decompress to; unlimited when `None`.
    pub max_decompressed_bytes: Option<u64>,
    /// The wards the uploader may send events for (a ward's officers);
    /// `None` for every ward. See [`crate::ward_gate`].
    pub wards: Option<Vec<String>>,
}

/// Ingests sources into one store, keeping the id index between ingests.
#[derive(Debug)]
pub struct Ingester {
    store: Store,
    wards: &'static WardRegistry,
    index: Option<Index>,
}

/// Rows the parser hands to the writer.
enum Batch {
    Events(RecordBatch),
    Quarantine(RecordBatch),
}

const QUARANTINE_BATCH: usize = 4096;

impl Ingester {
    /// Opens the store at `root`, creating it if needed.
    pub async fn open(root: &Path) -> Result<Self, IngestError> {
        Ok(Self::new(Store::open_or_create(root).await?))
    }

    pub fn new(store: Store) -> Self {
        Self {
            store,
            wards: WardRegistry::builtin(),
            index: None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads the index of stored events now rather than at the first
    /// ingest: a server does this as it starts, so that its first `POST`
    /// does not wait seconds for the whole log's ids.
    pub async fn prepare(&mut self) -> Result<(), IngestError> {
        self.store.refresh().await?;
        let version = self.store.version(Table::Events);
        if self
            .index
            .as_ref()
            .is_none_or(|index| index.version != version)
        {
            self.index = Some(load_index(&self.store).await?);
        }
        Ok(())
    }

    pub fn into_store(self) -> Store {
        self.store
    }

    /// Ingests one file.
    pub async fn ingest_file(
        &mut self,
        path: &Path,
        options: &IngestOptions,
    ) -> Result<IngestReport, IngestError> {
        let source = Source::open(path, options.format)?;
        self.ingest(source, options).await
    }

    /// Ingests an in-memory body (an HTTP request) exactly as a file.
    pub async fn ingest_bytes(
        &mut self,
        name: &Path,
        data: bytes::Bytes,
        options: &IngestOptions,
    ) -> Result<IngestReport, IngestError> {
        let source =
            Source::from_bytes(name, data, options.format, options.max_decompressed_bytes)?;
        self.ingest(source, options).await
    }

    async fn ingest(
        &mut self,
        source: Source,
        options: &IngestOptions,
    ) -> Result<IngestReport, IngestError> {
        let clock = Instant::now();
        let started_at = Utc::now();
        let _lock = self.store.lock_for_writing().await?;
        self.store.refresh().await?;
        let version = self.store.version(Table::Events);
        let mut index = match self.index.take() {
            Some(index) if index.version == version => index,
            _ => load_index(&self.store).await?,
        };
        index.reserve_for_source(source.estimated_events());
        let gate = match &options.wards {
            Some(wards) => Some(WardGate::load(&self.store, wards).await?),
            None => None,
        };
        let source_name = source.name.display().to_string();
        let ingest_id = ingest_id(&source_name, started_at);
        let (format, layout, gzip, bytes) =
            (source.format, source.layout, source.gzip, source.bytes);

        let (sender, mut receiver) = mpsc::channel::<Batch>(4);
        let parser = {
            let wards = self.wards;
            let now = options.now.unwrap_or(started_at);
            let ingest_id = ingest_id.clone();
            let source_name = source_name.clone();
            tokio::task::spawn_blocking(move || {
                let mut parse = Parse::new(
                    wards,
                    now,
                    index,
                    &ingest_id,
                    &source_name,
                    started_at,
                    sender,
                );
                parse.gate = gate;
                let read = source.read_into(&mut parse);
                let flushed = parse.flush();
                (parse.into_outcome(), read.and(flushed))
            })
        };
        let mut events = self.store.writer(Table::Events)?;
        let mut quarantine = self.store.writer(Table::Quarantine)?;
        let mut write_error = None;
        while let Some(batch) = receiver.recv().await {
            let written = match batch {
                Batch::Events(batch) => events.write(batch).await,
                Batch::Quarantine(batch) => quarantine.write(batch).await,
            };
            if let Err(error) = written {
                write_error = Some(error);
                break;
            }
        }
        // Dropping the receiver stops a parser still sending.
        drop(receiver);
        let (outcome, read) = parser
            .await
            .map_err(|e| IngestError::Interrupted(e.to_string()))?;
        if let Some(error) = write_error {
            return Err(error.into());
        }
        read?;

        let metadata = |table: &str| {
            let mut m = serde_json::Map::new();
            m.insert("chiso.ingest_id".into(), ingest_id.clone().into());
            m.insert("chiso.source_file".into(), source_name.clone().into());
            m.insert("chiso.table".into(), table.into());
            m
        };
        // Events first: once they are committed the file is in; the
        // quarantine and the record follow, and re-running the same file
        // finds every event a duplicate.
        let events_version = self.store.commit(events, metadata("events")).await?;
        self.store
            .commit(quarantine, metadata("quarantine"))
            .await?;
        let mut index = outcome.index;
        index.version = self.store.version(Table::Events);
        let record = chiso_store::IngestRecord {
            ingest_id: ingest_id.clone(),
            source_file: source_name.clone(),
            source_format: format.name().to_owned(),
            source_bytes: bytes as i64,
            started_at,
            finished_at: Utc::now(),
            rows_read: outcome.counts.rows_read as i64,
            events_read: outcome.counts.events_read as i64,
            accepted: outcome.counts.accepted as i64,
            duplicate: outcome.counts.duplicate as i64,
            conflict: outcome.counts.conflict as i64,
            rejected: outcome.counts.rejected as i64,
            orphans: outcome.orphans as i64,
            events_version,
        };
        self.store
            .append(
                Table::Ingests,
                vec![record.to_batch()?],
                metadata("ingests"),
            )
            .await?;
        let store_version = index.version;
        self.index = Some(index);
        Ok(IngestReport {
            ingest_id,
            source: source_name,
            format,
            layout,
            gzip,
            bytes,
            rows_read: outcome.counts.rows_read,
            events_read: outcome.counts.events_read,
            accepted: outcome.counts.accepted,
            duplicate: outcome.counts.duplicate,
            conflict: outcome.counts.conflict,
            rejected: outcome.counts.rejected,
            orphans: outcome.orphans,
            events_version,
            store_version,
            quarantined_by_reason: outcome.by_reason,
            examples: outcome.examples,
            seconds: clock.elapsed().as_secs_f64(),
        })
    }
}

/// A readable, unique id: when, and a hash of where and when exactly.
fn ingest_id(source: &str, at: DateTime<Utc>) -> String {
    let salt = format!(
        "{source}{}{}",
        at.timestamp_nanos_opt().unwrap_or_default(),
        std::process::id()
    );
    format!(
        "{}-{:08x}",
        at.format("%Y%m%dT%H%M%SZ"),
        xxhash_rust::xxh3::xxh3_64(salt.as_bytes()) as u32
    )
}

/// Reads every stored id and content hash, and the dossiers received.
async fn load_index(store: &Store) -> Result<Index, IngestError> {
    let version = store.version(Table::Events);
    // Sized up front: growing a map of millions of entries rehashes it
    // several times over.
    let mut index = Index::with_capacity(version, store.rows(Table::Events)? as usize);
    let sql = format!(
        "SELECT {}, {} FROM events",
        columns::EVENT_ID,
        lineage::CONTENT_HASH
    );
    let mut stream = store.stream(&sql).await?;
    const PENDING: usize = 1 << 18;
    let mut pending: Vec<(u128, u64)> = Vec::with_capacity(PENDING);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| StoreError::Query(e.to_string()))?;
        let hashes = column_as::<Int64Array>(&batch, lineage::CONTENT_HASH, &DataType::Int64)
            .ok_or_else(|| StoreError::Query("the events table has no content hashes".into()))?;
        for_each_text(batch.column(0), |i, id| {
            pending.push((id_key(id), hashes.value(i) as u64))
        })?;
        if pending.len() >= PENDING {
            tokio::task::block_in_place(|| index.insert_stored(&pending));
            pending.clear();
        }
    }
    tokio::task::block_in_place(|| index.insert_stored(&pending));
    let sql = format!(
        "SELECT {} FROM events WHERE {} = 'received'",
        columns::DOSSIER_ID,
        columns::EVENT_TYPE
    );
    let mut stream = store.stream(&sql).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| StoreError::Query(e.to_string()))?;
        for_each_text(batch.column(0), |_, dossier| index.insert_received(dossier))?;
    }
    Ok(index)
}

/// Calls `f` with every non-null string of a column, reading string views
/// and plain strings in place (a scan may return either).
fn for_each_text(array: &ArrayRef, mut f: impl FnMut(usize, &str)) -> Result<(), IngestError> {
    match array.data_type() {
        DataType::Utf8View => {
            let strings = array.as_string_view();
            (0..strings.len())
                .filter(|i| strings.is_valid(*i))
                .for_each(|i| f(i, strings.value(i)));
        }
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            (0..strings.len())
                .filter(|i| strings.is_valid(*i))
                .for_each(|i| f(i, strings.value(i)));
        }
        _ => {
            let cast = arrow::compute::cast(array, &DataType::Utf8)?;
            let strings = cast.as_string::<i32>();
            (0..strings.len())
                .filter(|i| strings.is_valid(*i))
                .for_each(|i| f(i, strings.value(i)));
        }
    }
    Ok(())
}

/// What happened to the rows of one source.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    rows_read: u64,
    events_read: u64,
    accepted: u64,
    duplicate: u64,
    conflict: u64,
    rejected: u64,
}

struct Outcome {
    index: Index,
    counts: Counts,
    orphans: u64,
    by_reason: BTreeMap<String, u64>,
    examples: Vec<Rejected>,
}

/// The parsing side: validates, deduplicates and batches, on its own thread.
struct Parse<'a> {
    contract: Contract<'a>,
    index: Index,
    events: EventBatchBuilder,
    quarantine: Vec<QuarantineRow>,
    ingest_id: &'a str,
    source_name: &'a str,
    at: DateTime<Utc>,
    sender: mpsc::Sender<Batch>,
    counts: Counts,
    by_reason: BTreeMap<String, u64>,
    examples: Vec<Rejected>,
    /// Dossiers of accepted events other than `received`, checked at the end.
    orphan_candidates: Vec<u64>,
    /// The uploader's wards, when limited.
    gate: Option<WardGate>,
    /// Events the gate judges once the whole upload is read.
    waiting: Vec<Waiting>,
}

/// An event whose dossier was unknown when it was read.
struct Waiting {
    line: u64,
    event: Event,
    raw: String,
}

impl<'a> Parse<'a> {
    fn new(
        wards: &'a WardRegistry,
        now: DateTime<Utc>,
        index: Index,
        ingest_id: &'a str,
        source_name: &'a str,
        at: DateTime<Utc>,
        sender: mpsc::Sender<Batch>,
    ) -> Self {
        Self {
            contract: Contract { wards, now },
            index,
            events: EventBatchBuilder::new(ingest_id),
            quarantine: Vec::new(),
            ingest_id,
            source_name,
            at,
            sender,
            counts: Counts::default(),
            by_reason: BTreeMap::new(),
            examples: Vec::new(),
            orphan_candidates: Vec::new(),
            gate: None,
            waiting: Vec::new(),
        }
    }

    fn send(&self, batch: Batch) -> Result<(), IngestError> {
        self.sender
            .blocking_send(batch)
            .map_err(|_| IngestError::Interrupted("the store writer stopped".into()))
    }

    /// Counts a row the contract or the ward gate refused, and quarantines it.
    fn reject(
        &mut self,
        line: u64,
        rejection: Rejection,
        raw: String,
        event_id: Option<String>,
    ) -> Result<(), IngestError> {
        self.counts.rejected += 1;
        self.quarantine(QuarantineRow {
            line,
            column: rejection.column.map(str::to_owned),
            reason: rejection.reason.code().to_owned(),
            message: rejection.message,
            raw,
            event_id,
        })
    }

    fn quarantine(&mut self, row: QuarantineRow) -> Result<(), IngestError> {
        *self.by_reason.entry(row.reason.clone()).or_default() += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(Rejected {
                line: row.line,
                column: row.column.clone(),
                reason: row.reason.clone(),
                message: row.message.clone(),
            });
        }
        self.quarantine.push(row);
        if self.quarantine.len() >= QUARANTINE_BATCH {
            self.send_quarantine()?;
        }
        Ok(())
    }

    fn send_quarantine(&mut self) -> Result<(), IngestError> {
        let batch =
            QuarantineRow::batch(&self.quarantine, self.ingest_id, self.source_name, self.at)?;
        self.quarantine.clear();
        self.send(Batch::Quarantine(batch))
    }

    /// Sends what is still buffered, once the events that waited for the
    /// end of the upload are judged.
    fn flush(&mut self) -> Result<(), IngestError> {
        for Waiting { line, event, raw } in std::mem::take(&mut self.waiting) {
            let verdict = match &mut self.gate {
                Some(gate) => gate.judge_at_end(&event),
                None => Verdict::Admit,
            };
            self.admit(line, event, verdict, &|| raw.clone())?;
        }
        if self.events.len() > 0 {
            let batch = self.events.finish()?;
            self.send(Batch::Events(batch))?;
        }
        if !self.quarantine.is_empty() {
            self.send_quarantine()?;
        }
        Ok(())
    }

    fn into_outcome(mut self) -> Outcome {
        let orphans = self.index.orphans(&self.orphan_candidates);
        Outcome {
            index: self.index,
            counts: self.counts,
            orphans,
            by_reason: self.by_reason,
            examples: self.examples,
        }
    }
}

impl RowSink for Parse<'_> {
    fn row(&mut self) {
        self.counts.rows_read += 1;
    }

    fn upcoming(&mut self, event_ids: &mut dyn Iterator<Item = &str>) {
        self.index.warm(event_ids);
    }

    fn malformed(&mut self, line: u64, raw: String, message: String) {
        self.counts.rejected += 1;
        // A failed send surfaces at the next event or at the flush.
        let _ = self.quarantine(QuarantineRow {
            line,
            column: None,
            reason: RejectReason::MalformedRow.code().to_owned(),
            message,
            raw,
            event_id: None,
        });
    }

    fn event(
        &mut self,
        line: u64,
        fields: &dyn FieldSource,
        raw: &dyn Fn() -> String,
    ) -> Result<(), IngestError> {
        self.counts.events_read += 1;
        let event = match parse_event(fields, &self.contract) {
            Ok(event) => event,
            Err(rejection) => {
                let event_id = fields.field(columns::EVENT_ID).map(str::to_owned);
                return self.reject(line, rejection, raw(), event_id);
            }
        };
        let verdict = match &mut self.gate {
            Some(gate) => gate.judge(&event),
            None => Verdict::Admit,
        };
        if let Verdict::Wait = verdict {
            self.waiting.push(Waiting {
                line,
                event,
                raw: raw(),
            });
            return Ok(());
        }
        self.admit(line, event, verdict, raw)
    }
}

impl Parse<'_> {
    /// Stores a valid event the gate has judged: new, duplicate or conflict.
    fn admit(
        &mut self,
        line: u64,
        event: Event,
        verdict: Verdict,
        raw: &dyn Fn() -> String,
    ) -> Result<(), IngestError> {
        if let Verdict::Refuse(rejection) = verdict {
            return self.reject(line, rejection, raw(), Some(event.event_id));
        }
        let hash = content_hash(&event);
        match self.index.check(&event, hash) {
            Seen::Duplicate => self.counts.duplicate += 1,
            Seen::Conflict => {
                self.counts.conflict += 1;
                self.quarantine(QuarantineRow {
                    line,
                    column: None,
                    reason: RejectReason::Conflict.code().to_owned(),
                    message: format!(
                        "event `{}` is already stored with different content; the stored event stays",
                        event.event_id
                    ),
                    raw: raw(),
                    event_id: Some(event.event_id.clone()),
                })?;
            }
            Seen::New => {
                self.counts.accepted += 1;
                if event.event_type != EventType::Received {
                    self.orphan_candidates.push(dossier_key(&event.dossier_id));
                }
                self.events.push(&event, hash);
                if self.events.len() >= BATCH_ROWS {
                    let batch = self.events.finish()?;
                    self.send(Batch::Events(batch))?;
                }
            }
        }
        Ok(())
    }
}
