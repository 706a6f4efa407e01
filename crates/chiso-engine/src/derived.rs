//! The derived tables `dossier_facts` and `dossier_history`, materialised as
//! Parquet once per version of the events table.
//!
//! Deriving dossiers from events is the expensive part of every KPI: it
//! groups the whole event log by dossier. Its T-independent part is computed
//! the first time a version of the events is queried, in three steps
//! (`queries/README.md`): `dossier_milestones.sql` (kept in memory),
//! `dossier_history.sql` and `dossier_facts.sql` (the milestones with each
//! dossier's history after its last event), and kept under
//! `STORE/derived/events-vN-F/`, so every later query of that version (in
//! this process or another) reads ~one row per dossier instead of ~seven
//! events. The version N in the folder name is what keeps the tables in
//! agreement with the events: a new ingest makes a new version, which is
//! derived afresh. F, a fingerprint of the SQL, does the same for a new
//! release whose definitions changed.
//!
//! A big city is derived in chunks of dossiers (`dossier_chunk`, a stable
//! hash of the id): one pass over the log splits the events by chunk into
//! temporary files, then each step runs once per chunk,
//! with `events` bound to that chunk's events, and writes one Parquet file
//! per chunk and table. Grouping 100 million events by dossier in one query needs
//! memory in proportion to the whole log; a chunk needs memory in proportion to its share, at the price of
//! writing the events once more. A dossier's events all fall in one chunk,
//! so every derived row is the same as in one query.
//!
//! Folders are built under a temporary name and renamed into place, so a
//! crash or a concurrent reader never sees half a table; two processes that
//! build the same version at once both succeed and one rename wins.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};

use chiso_exec::datafusion::catalog::TableProvider;
use chiso_exec::datafusion::common::config::TableParquetOptions;
use chiso_exec::datafusion::common::{Column, ScalarValue};
use chiso_exec::datafusion::dataframe::DataFrameWriteOptions;
use chiso_exec::datafusion::datasource::empty::EmptyTable;
use chiso_exec::datafusion::functions_aggregate::expr_fn::min;
use chiso_exec::datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use chiso_exec::datafusion::prelude::{
    DataFrame, Expr, ParquetReadOptions, SessionContext, cast as cast_expr, col, lit, not,
};
use chiso_store::{EVENTS_PARTITION, Store, Table, local_month};
use chrono::{DateTime, Utc};

use crate::{EngineError, queries};

/// The steps of the derivation, in dependency order: the table each makes,
/// the SQL that makes it, and how it is kept.
const STEPS: [(&str, &str, Kept); 4] = [
    (
        "dossier_milestones",
        queries::DOSSIER_MILESTONES,
        Kept::InMemory,
    ),
    (ORPHANS, queries::DOSSIER_ORPHANS, Kept::Aside),
    ("dossier_history", queries::DOSSIER_HISTORY, Kept::Stored),
    ("dossier_facts", queries::DOSSIER_FACTS, Kept::Stored),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Only in memory, for the later steps of the same chunk.
    InMemory,
    /// Stored, and read by queries.
    Stored,
    /// Stored for the next update, and read by no query.
    Aside,
}

/// The derived tables that queries read.
fn stored_tables() -> impl Iterator<Item = &'static str> {
    STEPS
        .iter()
        .filter(|(_, _, kept)| *kept == Kept::Stored)
        .map(|(table, _, _)| *table)
}

/// The derived tables written to disk: those queries read, and those kept
/// aside for updates.
fn written_tables() -> impl Iterator<Item = &'static str> {
    STEPS
        .iter()
        .filter(|(_, _, kept)| *kept != Kept::InMemory)
        .map(|(table, _, _)| *table)
}

/// The dossiers with events but no `received` (dossier_orphans.sql). A
/// full derivation's folder holds them per chunk, an update's the whole
/// list at its version.
const ORPHANS: &str = "dossier_orphans";

/// A short fingerprint of the derivation's SQL, part of the folder's name:
/// tables derived by other definitions are never read, but derived afresh.
fn definitions_fingerprint() -> String {
    let sql = STEPS.iter().map(|(_, sql, _)| *sql);
    fingerprint(sql.chain([queries::HISTORY_AT]))
}

/// FNV-1a of the texts, its upper 32 bits in hex: stable across builds and
/// releases, unlike std's hasher.
fn fingerprint<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in texts.into_iter().flat_map(str::bytes) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}

/// Row groups small enough that a period's query skips most of a big city.
const ROW_GROUP_ROWS: usize = 64 * 1024;
const PAGE_ROWS: usize = 8 * 1024;

/// Events per chunk of the derivation: a chunk's memory, not the log's,
/// bounds the derivation's (peaks in benches/README.md, "Why these
/// settings").
pub const EVENTS_PER_CHUNK: u64 = 12_000_000;

/// The folder for the derived tables of the store's loaded events version.
fn folder(store: &Store) -> PathBuf {
    store.derived_folder(&definitions_fingerprint())
}

/// A table's folder: one Parquet file per chunk.
fn table_folder(folder: &Path, table: &str) -> PathBuf {
    folder.join(table)
}

fn chunk_file(folder: &Path, table: &str, chunk: u64) -> PathBuf {
    table_folder(folder, table).join(format!("chunk-{chunk:04}.parquet"))
}

/// How the derived tables of an engine's events version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    /// Derived earlier, by this process or another, and read as they are.
    Reused,
    /// Derived from every event.
    Full,
    /// An earlier version's tables with the dossiers that the events since
    /// its full derivation touched derived again (`dossiers` of them).
    Updated { dossiers: u64 },
}

/// What a derived folder holds, written into it before it is renamed into
/// place. A folder without one is half-built or from an earlier release,
/// and is derived afresh.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Manifest {
    /// The events table's files (as its log names them) derived from.
    events_files: BTreeSet<String>,
    /// Dossiers of the full derivation: the base's, for an update.
    base_dossiers: u64,
    /// For an update: the folder of the full derivation it amends.
    #[serde(default)]
    base: Option<String>,
    /// For an update: the dossiers it holds rows for, all touched since
    /// its base.
    #[serde(default)]
    updated_dossiers: u64,
    /// For an update: the events version it was derived from.
    #[serde(default)]
    since_version: Option<i64>,
    /// For an update: the instant (µs) before which no period's figures
    /// changed since `since_version` (see [`Change`]); none when no
    /// figure changed.
    #[serde(default)]
    unchanged_until_us: Option<i64>,
}

/// What an update changed since the version it was derived from.
///
/// A period's figures are those of its dossiers as of its instant T
/// (docs/kpis.md): they count only dossiers received before T, and read
/// only events before T. So events added since `since` leave a period
/// whose T is at or before either of two instants as it was: the earliest
/// reception of a dossier they touched (adding events never makes a
/// reception later, so every changed dossier was received at or after it,
/// before and after), and the earliest of the events themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The events version the update was derived from.
    pub since: i64,
    /// Periods whose T is at or before this instant have the figures they
    /// had at `since`; `None` when no period's figures changed (the events
    /// touched no dossier with a `received` event).
    pub unchanged_until: Option<DateTime<Utc>>,
}

impl Manifest {
    fn change(&self) -> Option<Change> {
        Some(Change {
            since: self.since_version?,
            unchanged_until: self
                .unchanged_until_us
                .and_then(DateTime::<Utc>::from_timestamp_micros),
        })
    }
}

const MANIFEST: &str = "manifest.json";
/// An update's rows of a stored table, in that table's folder.
const UPDATE_FILE: &str = "update.parquet";
/// The earlier update's rows of the dossiers an update did not touch, in
/// the same folder.
const KEPT_FILE: &str = "kept.parquet";
/// An update's dossiers: `dossier_id`, and `base_key`, the key of the row
/// it replaces in the base (null for a dossier the base does not hold).
const TOUCHED: &str = "touched.parquet";

/// In an update's folder: every event added since its base, so that the
/// next update reads them from one file instead of one small file per
/// ingest (a live feed adds a file a second).
const SINCE_BASE: &str = "events_since_base.parquet";
/// Keys of an update's rows start here: above every key of its base, whose
/// keys count rows (`chunks × row_number + chunk`), so the two never meet.
const UPDATE_KEYS: u64 = 1 << 50;

/// The most dossiers an update derives again, for a base of `dossiers`:
/// beyond a quarter of the city, or 100,000 dossiers, deriving everything
/// costs little more and leaves nothing to filter.
fn update_limit(dossiers: u64) -> u64 {
    (dossiers / 4).clamp(1_000, 100_000)
}

/// Registers the derived tables in `context`, deriving them first if this
/// version of the events has not been derived yet: as an update of the
/// latest earlier version when every file of that version is still in the
/// events table and the events added since touch few dossiers, otherwise in
/// full. `events_per_chunk` overrides [`EVENTS_PER_CHUNK`].
///
/// An update re-derives each touched dossier from all of its events, so
/// late, out-of-order and backdated events, and orphans whose `received`
/// arrives later, come out as a full derivation would give them; its rows
/// replace the base's rows of the same dossiers (see [`attach`]). Updates
/// chain: each re-derives the dossiers its own events touched and keeps
/// the earlier update's rows of the others, so a version is its base plus
/// one update, whatever came between, and an update costs what its events
/// touch.
///
/// `afresh` derives in full even when the version was derived already, for
/// `chiso store rederive`.
pub async fn register(
    store: &Store,
    context: &SessionContext,
    events_per_chunk: Option<u64>,
    afresh: bool,
) -> Result<(Derivation, Option<Change>), EngineError> {
    let target = folder(store);
    let derivation = if !afresh && usable(&target).is_some() {
        Derivation::Reused
    } else {
        if target.exists() {
            // Half-built, or derived by an earlier release: derive afresh.
            std::fs::remove_dir_all(&target).map_err(EngineError::io(&target))?;
        }
        let events_files = store.file_paths(Table::Events)?;
        let updated = match earlier(&target, &events_files).filter(|_| !afresh) {
            Some(earlier) => update(store, context, &target, &earlier, &events_files).await?,
            None => None,
        };
        match updated {
            Some(dossiers) => Derivation::Updated { dossiers },
            None => {
                let events = store.rows(Table::Events)?;
                let per_chunk = events_per_chunk.unwrap_or(EVENTS_PER_CHUNK).max(1);
                let chunks = events.div_ceil(per_chunk).max(1);
                build(context, &target, chunks, &events_files).await?;
                Derivation::Full
            }
        }
    };
    // Read back whatever won the rename: this process's folder or another's.
    let manifest = usable(&target).ok_or_else(|| {
        EngineError::Query(format!(
            "the derived tables in {} are incomplete",
            target.display()
        ))
    })?;
    attach(context, &target, &manifest).await?;
    if derivation != Derivation::Reused {
        remove_old_versions(&target);
    }
    Ok((derivation, manifest.change()))
}

/// The manifest of a complete derived folder whose base, for an update, is
/// complete too; `None` for anything else.
fn usable(folder: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(folder.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_str(&text).ok()?;
    if !written_tables().all(|table| table_folder(folder, table).is_dir()) {
        return None;
    }
    if let Some(base) = &manifest.base {
        let base = usable(&folder.parent()?.join(base))?;
        if base.base.is_some() {
            return None;
        }
    }
    Some(manifest)
}

/// The latest derived folder of an earlier events version, by the same
/// definitions, whose events files are all still in the table (a
/// compaction rewrites them, and then nothing earlier can be updated).
struct Earlier {
    name: String,
    folder: PathBuf,
    manifest: Manifest,
}

fn earlier(target: &Path, events_files: &BTreeMap<String, PathBuf>) -> Option<Earlier> {
    let parent = target.parent()?;
    let name = target.file_name()?.to_str()?;
    let version = events_version(name)?;
    let suffix = format!("-{}", definitions_fingerprint());
    let mut candidates: Vec<(i64, String)> = std::fs::read_dir(parent)
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(&suffix))
        .filter_map(|name| Some((events_version(&name)?, name)))
        .filter(|(v, _)| *v < version)
        .collect();
    candidates.sort();
    let (_, name) = candidates.pop()?;
    let folder = parent.join(&name);
    let manifest = usable(&folder)?;
    let kept = manifest
        .events_files
        .iter()
        .all(|file| events_files.contains_key(file));
    kept.then_some(Earlier {
        name,
        folder,
        manifest,
    })
}

/// Derives `target` as an update of `earlier`; `None` (nothing written)
/// when it would touch too many dossiers. Returns the dossiers derived.
async fn update(
    store: &Store,
    context: &SessionContext,
    target: &Path,
    earlier: &Earlier,
    events_files: &BTreeMap<String, PathBuf>,
) -> Result<Option<u64>, EngineError> {
    let added: Vec<&PathBuf> = events_files
        .iter()
        .filter(|(name, _)| !earlier.manifest.events_files.contains(*name))
        .map(|(_, location)| location)
        .collect();
    let (base, earlier_update) = match &earlier.manifest.base {
        Some(base) => (base.clone(), Some(earlier.folder.as_path())),
        None => (earlier.name.clone(), None),
    };
    let clock = Laps::start();
    let lap = |step: &str| clock.lap(step);
    let mut touched = match earlier_update {
        Some(folder) => read_touched(context, folder).await?,
        None => BTreeMap::new(),
    };
    lap("touched read");
    let (added_dossiers, earliest_event) = added_events(context, &added).await?;
    lap("added events read");
    let dossiers = added_dossiers
        .iter()
        .filter(|id| !touched.contains_key(*id))
        .count()
        + touched.len();
    if dossiers as u64 > update_limit(earlier.manifest.base_dossiers) {
        return Ok(None);
    }
    let base_folder = earlier.folder.with_file_name(&base);
    let Some(sources) = EventSources::of(store, earlier, &base_folder, events_files).await? else {
        return Ok(None);
    };
    let in_base = in_base(context, &base_folder, &added_dossiers).await?;
    lap("base facts read");
    let first_event = first_event(context, earlier, &in_base, &added_dossiers)
        .await?
        .into_iter()
        .chain(earliest_event)
        .min();
    lap("first event found");
    let version = target
        .file_name()
        .and_then(|name| events_version(&name.to_string_lossy()))
        .ok_or_else(|| EngineError::Query(format!("{} names no version", target.display())))?;
    let first_key = UPDATE_KEYS + (u64::try_from(version).unwrap_or_default() << KEYS_PER_UPDATE);
    let mut manifest = Manifest {
        events_files: events_files.keys().cloned().collect(),
        base_dossiers: earlier.manifest.base_dossiers,
        base: Some(base.clone()),
        updated_dossiers: dossiers as u64,
        since_version: events_version(&earlier.name),
        unchanged_until_us: None,
    };
    let derived = added_dossiers.len() as u64;
    staged(target, |staging| async move {
        let update = Update {
            in_base: &in_base,
            sources,
            earlier: earlier_update,
            dossiers: &added_dossiers,
            first_event,
            first_key,
        };
        write_update(context, &staging, &update, &mut touched, &lap).await?;
        // Orphans are kept whole at every version, whether its base or an update.
        keep_other_rows(context, &staging, &earlier.folder, ORPHANS, &added_dossiers).await?;
        lap("orphans kept");
        let facts = table_folder(&staging, "dossier_facts").join(UPDATE_FILE);
        let earliest_reception = earliest_reception(context, &facts, &added_dossiers).await?;
        manifest.unchanged_until_us =
            earliest_reception.map(|r| r.max(earliest_event.unwrap_or(r)));
        write_manifest(&staging, &manifest)
    })
    .await?;
    lap("written");
    Ok(Some(derived))
}

/// The earliest `received_at` (µs) among `dossiers` in a derived facts file.
async fn earliest_reception(
    context: &SessionContext,
    facts: &Path,
    dossiers: &BTreeSet<String>,
) -> Result<Option<i64>, EngineError> {
    earliest(context, facts, dossiers, "received_at").await
}

/// A dossier's row in the base derivation: its key and its first event (µs).
struct BaseRow {
    key: i64,
    first_event: Option<i64>,
}

/// The base derivation's facts of `dossiers`, read in one scan: the keys
/// an update's rows replace, and where their events begin.
async fn in_base(
    context: &SessionContext,
    base: &Path,
    dossiers: &BTreeSet<String>,
) -> Result<HashMap<String, BaseRow>, EngineError> {
    let facts = table_folder(base, "dossier_facts");
    if dossiers.is_empty() || !holds_parquet(&facts) {
        return Ok(HashMap::new());
    }
    let ids: Vec<Expr> = dossiers.iter().map(|id| lit(id.as_str())).collect();
    let batches = context
        .read_parquet(location(&facts), ParquetReadOptions::default())
        .await?
        .filter(col(DOSSIER_ID).in_list(ids, false))?
        .select(vec![
            cast_expr(col(DOSSIER_ID), DataType::Utf8).alias(DOSSIER_ID),
            cast_expr(col(DOSSIER_KEY), DataType::Int64).alias(BASE_KEY),
            cast_expr(col(FIRST_EVENT_AT), DataType::Int64).alias(FIRST_EVENT_AT),
        ])?
        .collect()
        .await?;
    let mut rows = HashMap::new();
    for batch in &batches {
        let id = batch.column(0).as_string::<i32>();
        let key = batch.column(1).as_primitive::<Int64Type>();
        let first = batch.column(2).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            if id.is_valid(row) && key.is_valid(row) {
                let first_event = first.is_valid(row).then(|| first.value(row));
                rows.insert(
                    id.value(row).to_owned(),
                    BaseRow {
                        key: key.value(row),
                        first_event,
                    },
                );
            }
        }
    }
    Ok(rows)
}

/// The earliest first event (µs) of the `touched` dossiers as `earlier`
/// knows them: from the base's facts (`in_base`), its update's facts and
/// its orphans. A touched dossier found in none had no event before the
/// files the update adds.
async fn first_event(
    context: &SessionContext,
    earlier: &Earlier,
    in_base: &HashMap<String, BaseRow>,
    touched: &BTreeSet<String>,
) -> Result<Option<i64>, EngineError> {
    let mut first = in_base.values().filter_map(|row| row.first_event).min();
    let mut sources = vec![table_folder(&earlier.folder, ORPHANS)];
    if earlier.manifest.base.is_some() {
        sources.push(table_folder(&earlier.folder, "dossier_facts"));
    }
    for source in &sources {
        let found = earliest(context, source, touched, FIRST_EVENT_AT).await?;
        first = first.into_iter().chain(found).min();
    }
    Ok(first)
}

/// The least value (µs) of the timestamp `column` among `dossiers` in a
/// derived Parquet file or folder; `None` when none of them is there.
async fn earliest(
    context: &SessionContext,
    source: &Path,
    dossiers: &BTreeSet<String>,
    column: &str,
) -> Result<Option<i64>, EngineError> {
    if dossiers.is_empty() || !holds_parquet(source) {
        return Ok(None);
    }
    let ids: Vec<Expr> = dossiers.iter().map(|id| lit(id.as_str())).collect();
    let batches = context
        .read_parquet(location(source), ParquetReadOptions::default())
        .await?
        .filter(col(DOSSIER_ID).in_list(ids, false))?
        .aggregate(
            vec![],
            vec![min(cast_expr(col(column), DataType::Int64)).alias("earliest")],
        )?
        .collect()
        .await?;
    Ok(first_integer(&batches))
}

/// Whether `path` is a Parquet file, or a folder holding one.
fn holds_parquet(path: &Path) -> bool {
    if path.is_file() {
        return true;
    }
    std::fs::read_dir(path).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().extension().is_some_and(|e| e == "parquet"))
    })
}

/// Writes the earlier version's rows of `table` for the dossiers other
/// than `touched` into the update's `kept.parquet`, beside the rows its
/// step derived for the touched ones (nothing when the earlier version has
/// no such file).
async fn keep_other_rows(
    context: &SessionContext,
    staging: &Path,
    earlier: &Path,
    table: &str,
    touched: &BTreeSet<String>,
) -> Result<(), EngineError> {
    let earlier = table_folder(earlier, table);
    if !holds_parquet(&earlier) {
        return Ok(());
    }
    let ids: Vec<Expr> = touched.iter().map(|id| lit(id.as_str())).collect();
    let path = table_folder(staging, table).join(KEPT_FILE);
    context
        .read_parquet(location(&earlier), ParquetReadOptions::default())
        .await?
        .filter(col(DOSSIER_ID).in_list(ids, true))?
        .write_parquet(
            path.to_string_lossy().as_ref(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    Ok(())
}

/// The distinct dossiers of some events files, and the earliest instant
/// (µs) of their events.
async fn added_events(
    context: &SessionContext,
    files: &[&PathBuf],
) -> Result<(BTreeSet<String>, Option<i64>), EngineError> {
    if files.is_empty() {
        return Ok((BTreeSet::new(), None));
    }
    let paths: Vec<String> = files
        .iter()
        .map(|path| path.to_string_lossy().into_owned())
        .collect();
    let events = context
        .read_parquet(paths, ParquetReadOptions::default())
        .await?;
    let batches = events
        .clone()
        .select_columns(&[DOSSIER_ID])?
        .distinct()?
        .collect()
        .await?;
    let mut ids = BTreeSet::new();
    for batch in &batches {
        let column = cast(batch.column(0), &DataType::Utf8).map_err(arrow_error)?;
        ids.extend(
            column
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned),
        );
    }
    let earliest = events
        .aggregate(
            vec![],
            vec![min(cast_expr(col("occurred_at"), DataType::Int64)).alias("earliest")],
        )?
        .collect()
        .await?;
    Ok((ids, first_integer(&earliest)))
}

/// The first row's first column of a one-row result, as an integer.
fn first_integer(batches: &[RecordBatch]) -> Option<i64> {
    let batch = batches.iter().find(|batch| batch.num_rows() > 0)?;
    let value = batch.column(0).as_primitive_opt::<Int64Type>()?;
    value.is_valid(0).then(|| value.value(0))
}

/// Where an update's time goes, in the log at debug level.
struct Laps(std::time::Instant);

impl Laps {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    fn lap(&self, step: &str) {
        tracing::debug!(step, ms = self.0.elapsed().as_secs_f64() * 1e3, "update");
    }
}

/// Where an update reads the events of the dossiers it derives.
struct EventSources {
    /// The files its base was derived from.
    base: Arc<dyn TableProvider>,
    /// The earlier update's copy of every event added since the base.
    copied: Option<PathBuf>,
    /// The files added since (since the base, without a copy).
    fresh: Arc<dyn TableProvider>,
}

impl EventSources {
    /// `None` when the events table cannot be read file by file (another
    /// Delta writer's reader features), or the base is gone: then the
    /// update is not made and the version is derived in full.
    async fn of(
        store: &Store,
        earlier: &Earlier,
        base: &Path,
        events_files: &BTreeMap<String, PathBuf>,
    ) -> Result<Option<Self>, EngineError> {
        let base_files = match &earlier.manifest.base {
            Some(_) => match usable(base) {
                Some(manifest) => manifest.events_files,
                None => return Ok(None),
            },
            None => earlier.manifest.events_files.clone(),
        };
        let copied = Some(earlier.folder.join(SINCE_BASE))
            .filter(|_| earlier.manifest.base.is_some())
            .filter(|path| path.is_file());
        let seen = match copied {
            Some(_) => &earlier.manifest.events_files,
            None => &base_files,
        };
        let fresh: BTreeSet<&str> = events_files
            .keys()
            .map(String::as_str)
            .filter(|file| !seen.contains(*file))
            .collect();
        let base = store
            .files_table(Table::Events, &|file| base_files.contains(file))
            .await?;
        let fresh = store
            .files_table(Table::Events, &|file| fresh.contains(file))
            .await?;
        Ok(base.zip(fresh).map(|(base, fresh)| Self {
            base,
            copied,
            fresh,
        }))
    }

    /// Every event added since the base: the earlier copy and the fresh files.
    async fn since_base(&self, context: &SessionContext) -> Result<DataFrame, EngineError> {
        let fresh = context.read_table(Arc::clone(&self.fresh))?;
        let Some(copied) = &self.copied else {
            return Ok(fresh);
        };
        // Read back as the events table reads them, so that the two unite.
        let columns: Vec<Expr> = self
            .fresh
            .schema()
            .fields()
            .iter()
            .map(|field| {
                cast_expr(
                    col(Column::from_name(field.name())),
                    field.data_type().clone(),
                )
                .alias(field.name())
            })
            .collect();
        let copied = context
            .read_parquet(location(copied), ParquetReadOptions::default())
            .await?
            .select(columns)?;
        Ok(copied.union(fresh)?)
    }
}

/// An update's dossiers, each with the key of the base row it replaces
/// (none for a dossier the base does not hold).
async fn read_touched(
    context: &SessionContext,
    folder: &Path,
) -> Result<BTreeMap<String, Option<i64>>, EngineError> {
    let path = folder.join(TOUCHED);
    let batches = context
        .read_parquet(
            path.to_string_lossy().into_owned(),
            ParquetReadOptions::default(),
        )
        .await?
        .collect()
        .await?;
    let mut touched = BTreeMap::new();
    for batch in &batches {
        let column = |name: &str, data_type: &DataType| {
            let array = batch.column_by_name(name).ok_or_else(|| {
                EngineError::Query(format!("{} has no column {name}", path.display()))
            })?;
            cast(array, data_type).map_err(arrow_error)
        };
        let id = column(DOSSIER_ID, &DataType::Utf8)?;
        let key = column(BASE_KEY, &DataType::Int64)?;
        for (id, key) in id
            .as_string::<i32>()
            .iter()
            .zip(key.as_primitive::<Int64Type>().iter())
        {
            if let Some(id) = id {
                touched.insert(id.to_owned(), key);
            }
        }
    }
    Ok(touched)
}

const DOSSIER_ID: &str = "dossier_id";
const DOSSIER_KEY: &str = "dossier_key";
const BASE_KEY: &str = "base_key";
const FIRST_EVENT_AT: &str = "first_event_at";

/// What an update derives, and from what.
struct Update<'a> {
    /// The base derivation's rows of the dossiers it derives.
    in_base: &'a HashMap<String, BaseRow>,
    /// Where their events are.
    sources: EventSources,
    /// The update it follows, if the earlier version was one.
    earlier: Option<&'a Path>,
    /// The dossiers the added events touched, derived again.
    dossiers: &'a BTreeSet<String>,
    /// The earliest event (µs) those dossiers can have.
    first_event: Option<i64>,
    /// The first key of their rows, above every key of the base and of
    /// earlier updates.
    first_key: u64,
}

/// Bits of the keys each update numbers its rows with: updates touch at
/// most 100,000 dossiers (under 2²⁰), and each version's keys start at
/// [`UPDATE_KEYS`] + its number × 2²⁰.
const KEYS_PER_UPDATE: u32 = 20;

/// Writes an update into `staging`: each stored table's rows of the
/// dossiers the added events touched, derived from all of their events
/// (`update.parquet`), the earlier update's rows of the other dossiers it
/// held (`kept.parquet`), so an update costs what its own events touch;
/// and `touched`, every dossier updated since the base, with the keys of
/// the base rows they replace.
async fn write_update(
    context: &SessionContext,
    staging: &Path,
    update: &Update<'_>,
    touched: &mut BTreeMap<String, Option<i64>>,
    lap: &(dyn Fn(&str) + Sync),
) -> Result<(), EngineError> {
    let Update {
        in_base,
        ref sources,
        earlier,
        dossiers,
        first_event,
        first_key,
    } = *update;
    for table in written_tables() {
        let path = table_folder(staging, table);
        std::fs::create_dir_all(&path).map_err(EngineError::io(&path))?;
    }
    let ids = || -> Vec<Expr> { dossiers.iter().map(|id| lit(id.as_str())).collect() };
    let events = context.table_provider(EVENTS).await?;
    // The base's files are read for the dossier ids first and the other
    // columns of the matching rows only (the session pushes filters into
    // Parquet), and only from the month of the touched dossiers' first
    // event on (the events' partitions), from that event on within it (row
    // groups). The events added since the base come from the earlier
    // update's copy and the fresh files: a few files, however many ingests.
    let mut in_base_files = context
        .read_table(Arc::clone(&sources.base))?
        .filter(col(DOSSIER_ID).in_list(ids(), false))?;
    if let Some(first) = first_event.and_then(DateTime::<Utc>::from_timestamp_micros) {
        let since =
            ScalarValue::TimestampMicrosecond(Some(first.timestamp_micros()), Some("UTC".into()));
        in_base_files = in_base_files
            .filter(col(EVENTS_PARTITION).gt_eq(lit(local_month(first))))?
            .filter(col("occurred_at").gt_eq(lit(since)))?;
    }
    let since_base = sources.since_base(context).await?;
    since_base
        .clone()
        .write_parquet(
            staging.join(SINCE_BASE).to_string_lossy().as_ref(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    lap("events since the base copied");
    let theirs = in_base_files
        .union(since_base.filter(col(DOSSIER_ID).in_list(ids(), false))?)?
        .into_view();
    let result = match context
        .deregister_table(EVENTS)
        .and_then(|_| context.register_table(EVENTS, theirs))
    {
        Ok(_) => {
            write_steps(context, 1, first_key, &|table| {
                table_folder(staging, table).join(UPDATE_FILE)
            })
            .await
        }
        Err(error) => Err(error.into()),
    };
    let restored = context
        .deregister_table(EVENTS)
        .and_then(|_| context.register_table(EVENTS, events))
        .map_err(EngineError::query);
    result.and(restored.map(drop))?;
    lap("dossiers derived");

    if let Some(earlier) = earlier {
        for table in stored_tables() {
            keep_other_rows(context, staging, earlier, table, dossiers).await?;
        }
    }
    lap("earlier update's rows kept");

    for id in dossiers {
        if !touched.contains_key(id) {
            touched.insert(id.clone(), in_base.get(id).map(|row| row.key));
        }
    }
    lap("touched dossiers listed");
    let schema = Arc::new(Schema::new(vec![
        Field::new(DOSSIER_ID, DataType::Utf8, false),
        Field::new(BASE_KEY, DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(touched.keys())),
            Arc::new(Int64Array::from_iter(touched.values().copied())),
        ],
    )
    .map_err(arrow_error)?;
    let path = staging.join(TOUCHED);
    context
        .read_batch(batch)?
        .write_parquet(
            path.to_string_lossy().as_ref(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    Ok(())
}

fn write_manifest(folder: &Path, manifest: &Manifest) -> Result<(), EngineError> {
    let path = folder.join(MANIFEST);
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| EngineError::Query(format!("writing {}: {e}", path.display())))?;
    std::fs::write(&path, text + "\n").map_err(EngineError::io(&path))
}

/// Registers the stored tables of a derived folder. A full derivation's
/// are its Parquet folders; an update's are views: its base's rows but
/// those of the touched dossiers, then its own rows. The base rows left
/// out are told by their keys, one hash lookup per row; each view is a
/// union of two scans, so a query's filters still reach both Parquet
/// scans and prune their row groups.
async fn attach(
    context: &SessionContext,
    folder: &Path,
    manifest: &Manifest,
) -> Result<(), EngineError> {
    let Some(base) = &manifest.base else {
        for table in stored_tables() {
            register_path(context, table, &table_folder(folder, table)).await?;
        }
        return Ok(());
    };
    let base = folder.with_file_name(base);
    let replaced: HashSet<i64> = read_touched(context, folder)
        .await?
        .into_values()
        .flatten()
        .collect();
    let replaced = Arc::new(replaced);
    let is_replaced = create_udf(
        "replaced_by_update",
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let keys = match &args[0] {
                ColumnarValue::Array(array) => array.as_primitive::<Int64Type>().clone(),
                ColumnarValue::Scalar(scalar) => {
                    let array = scalar.to_array()?;
                    array.as_primitive::<Int64Type>().clone()
                }
            };
            let flags: BooleanArray = keys
                .iter()
                .map(|key| key.map(|key| replaced.contains(&key)))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(flags)))
        }),
    );
    for table in stored_tables() {
        let kept = context
            .read_parquet(
                location(&table_folder(&base, table)),
                ParquetReadOptions::default(),
            )
            .await?
            .filter(not(
                is_replaced.call(vec![cast_expr(col(DOSSIER_KEY), DataType::Int64)])
            ))?;
        let updated = context
            .read_parquet(
                location(&table_folder(folder, table)),
                ParquetReadOptions::default(),
            )
            .await?;
        let view = kept.union(updated)?.into_view();
        context
            .deregister_table(table)
            .and_then(|_| context.register_table(table, view))
            .map_err(EngineError::query)?;
    }
    Ok(())
}

fn arrow_error(error: arrow::error::ArrowError) -> EngineError {
    EngineError::Query(error.to_string())
}

/// A path as DataFusion reads it: a trailing separator is how it tells a
/// folder from a file.
fn location(path: &Path) -> String {
    let mut location = path.to_string_lossy().into_owned();
    if path.is_dir() {
        location.push(std::path::MAIN_SEPARATOR);
    }
    location
}

/// Registers a Parquet file, or a folder of them, as `table`.
async fn register_path(
    context: &SessionContext,
    table: &str,
    path: &Path,
) -> Result<(), EngineError> {
    context
        .deregister_table(table)
        .map_err(EngineError::query)?;
    context
        .register_parquet(table, &location(path), ParquetReadOptions::default())
        .await
        .map_err(EngineError::query)
}

/// Derives every dossier into `target`, in `chunks` chunks.
async fn build(
    context: &SessionContext,
    target: &Path,
    chunks: u64,
    events_files: &BTreeMap<String, PathBuf>,
) -> Result<(), EngineError> {
    staged(target, |staging| async move {
        write_tables(context, &staging, chunks).await?;
        let dossiers = context
            .read_parquet(
                location(&table_folder(&staging, "dossier_facts")),
                ParquetReadOptions::default(),
            )
            .await?
            .count()
            .await?;
        let manifest = Manifest {
            events_files: events_files.keys().cloned().collect(),
            base_dossiers: dossiers as u64,
            base: None,
            updated_dossiers: 0,
            since_version: None,
            unchanged_until_us: None,
        };
        write_manifest(&staging, &manifest)
    })
    .await
}

/// Runs `write` on a new staging folder, then renames it to `target`: a
/// crash or a concurrent reader never sees half a folder. When another
/// process derived the same version first, its folder stays.
async fn staged<F, Fut>(target: &Path, write: F) -> Result<(), EngineError>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Result<(), EngineError>>,
{
    let parent = target.parent().unwrap_or(target);
    std::fs::create_dir_all(parent).map_err(EngineError::io(parent))?;
    let staging = parent.join(format!(
        ".building-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&staging).map_err(EngineError::io(&staging))?;
    if let Err(error) = write(staging.clone()).await {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    if let Err(error) = std::fs::rename(&staging, target) {
        let _ = std::fs::remove_dir_all(&staging);
        if !target.is_dir() {
            return Err(EngineError::io(target)(error));
        }
    }
    Ok(())
}

async fn write_tables(
    context: &SessionContext,
    staging: &Path,
    chunks: u64,
) -> Result<(), EngineError> {
    for table in written_tables() {
        let path = table_folder(staging, table);
        std::fs::create_dir_all(&path).map_err(EngineError::io(&path))?;
    }
    if chunks == 1 {
        return write_steps(context, 1, 0, &|table| chunk_file(staging, table, 0)).await;
    }
    // The events split by chunk in one pass; each chunk is then derived from
    // its own files, with `events` meaning that chunk's events.
    let split = staging.join(SPLIT_EVENTS);
    split_events(context, &split, chunks).await?;
    let events = context
        .table_provider(EVENTS)
        .await
        .map_err(EngineError::query)?;
    let mut result = Ok(());
    for chunk in 0..chunks {
        result = bind_events(context, &split.join(format!("chunk={chunk}")), &events).await;
        if result.is_ok() {
            result = write_steps(context, chunks, chunk, &|table| {
                chunk_file(staging, table, chunk)
            })
            .await;
        }
        if result.is_err() {
            break;
        }
    }
    let restored = context
        .deregister_table(EVENTS)
        .and_then(|_| context.register_table(EVENTS, events))
        .map_err(EngineError::query);
    let _ = std::fs::remove_dir_all(&split);
    result.and(restored.map(drop))
}

/// The folder of the events split by chunk, inside the staging folder (and
/// removed before it is renamed into place).
const SPLIT_EVENTS: &str = ".events-by-chunk";
const EVENTS: &str = "events";

/// Writes the events' contract columns to `split/chunk=N/`, one folder per
/// chunk of dossiers. Scanning the whole log once per chunk instead (a
/// `dossier_chunk` filter in the derivation) decompressed every column of
/// every file once per chunk and per derived table: most of the time of a
/// scale-10 city.
async fn split_events(
    context: &SessionContext,
    split: &Path,
    chunks: u64,
) -> Result<(), EngineError> {
    let columns: Vec<String> = chiso_core::event::event_schema()
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    let sql = format!(
        "SELECT {}, dossier_chunk(dossier_id, {chunks}) AS chunk FROM {EVENTS}",
        columns.join(", ")
    );
    let mut options = TableParquetOptions::default();
    // Read once per chunk, then deleted: fast to write and read over small.
    options.global.compression = Some("lz4_raw".into());
    let location = format!("{}{}", split.to_string_lossy(), std::path::MAIN_SEPARATOR);
    let in_split = |error| EngineError::Query(format!("splitting the events by chunk: {error}"));
    context
        .sql(&sql)
        .await
        .map_err(in_split)?
        .write_parquet(
            &location,
            DataFrameWriteOptions::new().with_partition_by(vec!["chunk".into()]),
            Some(options),
        )
        .await
        .map_err(in_split)?;
    Ok(())
}

/// Registers the events of one chunk as `events`; a chunk with no events
/// (no folder) is an empty table of the same columns.
async fn bind_events(
    context: &SessionContext,
    folder: &Path,
    events: &Arc<dyn TableProvider>,
) -> Result<(), EngineError> {
    if folder.is_dir() {
        return register_path(context, EVENTS, folder).await;
    }
    let arrow = |error: arrow::error::ArrowError| EngineError::Query(error.to_string());
    let all = events.schema();
    let columns = chiso_core::event::event_schema()
        .fields()
        .iter()
        .map(|f| all.index_of(f.name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow)?;
    let schema = Arc::new(all.project(&columns).map_err(arrow)?);
    context
        .deregister_table(EVENTS)
        .and_then(|_| context.register_table(EVENTS, Arc::new(EmptyTable::new(schema))))
        .map(drop)
        .map_err(EngineError::query)
}

/// Derives every derived table from `events` (a chunk's, or an update's
/// dossiers'), writing each stored one to `destination(table)`. Keys are
/// `chunks × row_number + chunk`.
async fn write_steps(
    context: &SessionContext,
    chunks: u64,
    chunk: u64,
    destination: &(dyn Fn(&str) -> PathBuf + Send + Sync),
) -> Result<(), EngineError> {
    let mut options = TableParquetOptions::default();
    options.global.max_row_group_size = ROW_GROUP_ROWS;
    // Pages of 8 K rows: the page index then skips most of a row group that
    // a period only touches at one end.
    options.global.data_page_row_count_limit = PAGE_ROWS;
    // A cache read by every query: fast decoding matters more than size.
    options.global.compression = Some("lz4_raw".into());
    let parameters = [
        ("chunks", chunks.to_string()),
        ("chunk", chunk.to_string()),
        ("history_at", queries::HISTORY_AT.to_owned()),
        ("end_of_time", queries::end_of_time()),
    ];
    for (table, sql, kept) in STEPS {
        let in_query = |error| EngineError::Query(format!("queries/{table}.sql: {error}"));
        let frame = context
            .sql(&queries::render(sql, &parameters)?)
            .await
            .map_err(in_query)?;
        // Later steps build on the same chunk of earlier ones.
        match kept {
            Kept::InMemory => {
                let rows = frame.cache().await.map_err(in_query)?;
                context
                    .deregister_table(table)
                    .and_then(|_| context.register_table(table, rows.into_view()))
                    .map_err(EngineError::query)?;
            }
            Kept::Stored | Kept::Aside => {
                let path = destination(table);
                frame
                    .write_parquet(
                        path.to_string_lossy().as_ref(),
                        DataFrameWriteOptions::new().with_single_file_output(true),
                        Some(options.clone()),
                    )
                    .await
                    .map_err(in_query)?;
                register_path(context, table, &path).await?;
            }
        }
    }
    for (table, _, kept) in STEPS {
        if kept == Kept::InMemory {
            context
                .deregister_table(table)
                .map_err(EngineError::query)?;
        }
    }
    Ok(())
}

/// Keeps the folder just built and the one before it (a process that opened
/// the previous version may still be reading it), and the full derivations
/// either updates; removes the rest.
fn remove_old_versions(current: &Path) {
    let Some(parent) = current.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut others: Vec<(i64, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != current)
        .filter_map(|p| events_version(p.file_name()?.to_str()?).map(|v| (v, p)))
        .collect();
    others.sort();
    let previous = others.pop().map(|(_, path)| path);
    let bases: Vec<PathBuf> = [Some(current.to_owned()), previous]
        .into_iter()
        .flatten()
        .filter_map(|folder| Some(folder.with_file_name(usable(&folder)?.base?)))
        .collect();
    for (_, path) in others {
        if !bases.contains(&path) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// The events version a derived folder was built from: `events-vN-F`, or
/// `events-vN` from releases before the fingerprint.
fn events_version(folder_name: &str) -> Option<i64> {
    folder_name
        .strip_prefix("events-v")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_folders_are_told_apart_by_version_and_definitions() {
        // FNV-1a's published offset basis and the hash of "a".
        assert_eq!(fingerprint([]), "cbf29ce4");
        assert_eq!(fingerprint(["a"]), "af63dc4c");
        assert_ne!(fingerprint(["SELECT 1"]), fingerprint(["SELECT 2"]));
        let folder = format!("events-v12-{}", definitions_fingerprint());
        assert_eq!(events_version(&folder), Some(12));
        assert_eq!(events_version("events-v7"), Some(7));
        assert_eq!(events_version(".building-1-2"), None);
    }
}
