//! `chiso ingest` and `chiso store`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use chiso_ingest::{IngestOptions, Ingester, SourceFormat};
use chiso_store::Store;

/// Where the store lives unless `--store` says otherwise.
const DEFAULT_STORE: &str = "chiso-store";

/// The procedure catalogue `chiso gen` writes beside an event log, which
/// `chiso ingest` loads into a store that has none.
pub const CATALOGUE_FILE: &str = "procedures.csv";

#[derive(Debug, Args)]
pub struct StoreArg {
    /// The store directory (created by the first ingest).
    #[arg(long, env = "CHISO_STORE", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
}

#[derive(Debug, Args)]
#[command(
    about = "Validate dossier events and store them, never twice",
    long_about = "Validate dossier events and store them, never twice.\n\n\
Reads event logs (CSV, NDJSON, Parquet; gzip-compressed too) and the dossier lists ward staff \
export (XLSX or CSV, Vietnamese or English headers). The format is recognised from the content. \
Every row is checked against the event contract; rejected rows go to the quarantine with their \
line and reason; an event already stored is a duplicate (skipped) or, with other content, a \
conflict (quarantined). Each file is committed atomically: all of its accepted events or none.",
    after_help = "Exit status: 0 when every file was processed (even with rejected rows), 1 when a file \
could not be read or the store failed, 3 with --strict when any row was rejected or conflicted.\n\n\
Examples:\n  chiso ingest --store city events-2025-07.csv.gz\n  chiso ingest --store city ninh-kieu-07.xlsx --json"
)]
pub struct IngestArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Read the files as this format instead of recognising it: csv, ndjson, parquet or xlsx.
    #[arg(long, value_parser = parse_format)]
    format: Option<SourceFormat>,
    /// Print the reports as JSON (one object per file, in an array).
    #[arg(long)]
    json: bool,
    /// Exit with status 3 when any row was rejected or conflicted.
    #[arg(long)]
    strict: bool,
    /// The files to ingest, in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn parse_format(text: &str) -> Result<SourceFormat, String> {
    SourceFormat::parse(text).ok_or_else(|| format!("`{text}` is not csv, ndjson, parquet or xlsx"))
}

/// What the caller should exit with.
pub enum Outcome {
    Success,
    Failed,
    Strict,
}

/// Gives a store without procedure names the catalogue found beside one of
/// the files ingested (`chiso gen` writes it there), and says so.
fn name_procedures_from_beside(
    store: &Store,
    files: &[PathBuf],
    quiet: bool,
) -> anyhow::Result<()> {
    if store.has_procedure_catalogue() {
        return Ok(());
    }
    let beside = files.iter().find_map(|file| {
        let candidate = file.parent()?.join(CATALOGUE_FILE);
        candidate.is_file().then_some(candidate)
    });
    match beside {
        Some(catalogue) => {
            let count = store.set_procedure_catalogue(&catalogue)?;
            if !quiet {
                println!(
                    "{count} procedures named from {} (the store had no names)",
                    catalogue.display()
                );
            }
        }
        None if !quiet => eprintln!(
            "chiso: note: the store has no procedure names; pages show codes until \
             `chiso store procedures --store {} FILE.csv` (chiso gen writes one as {CATALOGUE_FILE})",
            store.root().display()
        ),
        None => {}
    }
    Ok(())
}

pub async fn ingest(args: IngestArgs) -> anyhow::Result<Outcome> {
    let mut ingester = Ingester::open(&args.store.store)
        .await
        .with_context(|| format!("cannot open the store {}", args.store.store.display()))?;
    let options = IngestOptions {
        format: args.format,
        ..IngestOptions::default()
    };
    let mut reports = Vec::new();
    let mut failed = false;
    let mut quarantined = false;
    name_procedures_from_beside(ingester.store(), &args.files, args.json)?;
    for file in &args.files {
        match ingester.ingest_file(file, &options).await {
            Ok(report) => {
                quarantined |= report.rejected + report.conflict > 0;
                if !args.json {
                    print!("{report}");
                }
                reports.push(serde_json::to_value(&report)?);
            }
            Err(error) => {
                failed = true;
                eprintln!("chiso: {error}");
                reports.push(serde_json::json!({ "source": file.display().to_string(), "error": error.to_string() }));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if failed {
        Outcome::Failed
    } else if args.strict && quarantined {
        Outcome::Strict
    } else {
        Outcome::Success
    })
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Tables, versions, row counts, sizes and the last ingests.
    Info {
        #[command(flatten)]
        store: StoreArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List rejected rows, by ingest or reason, or export them as CSV.
    Quarantine {
        #[command(flatten)]
        store: StoreArg,
        /// Only rows of this ingest.
        #[arg(long)]
        ingest: Option<String>,
        /// Only rows with this reason code (missing_field, unknown_ward, conflict, …).
        #[arg(long)]
        reason: Option<String>,
        /// Rows to show (ignored with --csv, which exports every row).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Write all matching rows to this CSV file.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },
    /// Who asked a signed-in server for what: pages, exports, SQL, ingests
    /// and sign-ins (failed ones too), newest first.
    Audit {
        #[command(flatten)]
        store: StoreArg,
        /// Only entries of this user (the name given, for a failed sign-in).
        #[arg(long)]
        user: Option<String>,
        /// Only this outcome: ok, refused, failed, error.
        #[arg(long)]
        outcome: Option<String>,
        /// Only this action: sign_in, sign_out, page, export, report, chart, api, sql, ingest.
        #[arg(long)]
        action: Option<String>,
        /// Only entries from this day (YYYY-MM-DD, Cần Thơ time) or instant (RFC 3339) on.
        #[arg(long)]
        since: Option<String>,
        /// Entries to show (ignored with --csv, which exports every entry).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Write all matching entries to this CSV file.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },
    /// Give the store the names of its procedures and departments (CSV with
    /// procedure_code, procedure_name, department_code, department_name,
    /// department_name_en; `chiso gen --procedures` writes one).
    Procedures {
        #[command(flatten)]
        store: StoreArg,
        /// The catalogue file.
        file: PathBuf,
    },
    /// Derive the dossier tables again from every event. An ingest updates
    /// them for the dossiers it touched; this rebuilds them whole, as a new
    /// store or a new release's definitions do. Stop servers of the store
    /// first: they read the tables being replaced.
    Rederive {
        #[command(flatten)]
        store: StoreArg,
    },
    /// Rewrite small files into large ones; safe while others read.
    Compact {
        #[command(flatten)]
        store: StoreArg,
    },
    /// Delete files no current version needs (old compacted files, files of crashed ingests).
    Vacuum {
        #[command(flatten)]
        store: StoreArg,
        /// Keep files younger than this many hours, for readers of older versions.
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

async fn open(store: &Path) -> anyhow::Result<Store> {
    Ok(Store::open(store).await?)
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Rows of a store table, as `chiso store quarantine` and `audit` list them:
/// the first `limit` on the screen, or every one to a CSV file.
struct Listing {
    table: &'static str,
    /// SQL conditions, all of which must hold.
    filters: Vec<String>,
    order: &'static str,
    /// What to print when no row matches.
    empty: &'static str,
}

impl Listing {
    async fn show(
        &self,
        store: &Store,
        columns: &str,
        on_screen: &str,
        limit: usize,
        csv: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let condition = match self.filters.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", self.filters.join(" AND ")),
        };
        let (table, order) = (self.table, self.order);
        if let Some(path) = csv {
            let sql = format!("SELECT {columns} FROM {table}{condition} ORDER BY {order}");
            store.export_csv(&sql, &path).await?;
            println!("wrote {}", path.display());
            return Ok(());
        }
        let sql =
            format!("SELECT {on_screen} FROM {table}{condition} ORDER BY {order} LIMIT {limit}");
        let batches = store.query(&sql).await?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            println!("{}", self.empty);
        } else {
            println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
        }
        Ok(())
    }
}

pub async fn store(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Info { store, json } => {
            let info = open(&store.store).await?.info(10).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!("store {}", info.root.display());
            println!(
                "  {:<11} {:>8} {:>7} {:>12} {:>10}",
                "table", "version", "files", "rows", "MB"
            );
            for t in &info.tables {
                println!(
                    "  {:<11} {:>8} {:>7} {:>12} {:>10.1}",
                    t.name,
                    t.version,
                    t.files,
                    t.rows,
                    t.bytes as f64 / 1e6
                );
            }
            if info.last_ingests.is_empty() {
                println!("no ingest yet");
            } else {
                println!("last ingests:");
                for i in &info.last_ingests {
                    println!(
                        "  {}  {}  read {}  accepted {}  duplicate {}  conflict {}  rejected {}  {}",
                        i.ingest_id,
                        i.source_file,
                        i.rows_read,
                        i.accepted,
                        i.duplicate,
                        i.conflict,
                        i.rejected,
                        i.events_version
                            .map_or("no new events".into(), |v| format!("events v{v}"))
                    );
                }
            }
        }
        StoreCommand::Quarantine {
            store,
            ingest,
            reason,
            limit,
            csv,
        } => {
            let store = open(&store.store).await?;
            let mut filters = Vec::new();
            if let Some(ingest) = &ingest {
                filters.push(format!("ingest_id = {}", quote(ingest)));
            }
            if let Some(reason) = &reason {
                filters.push(format!("reason = {}", quote(reason)));
            }
            let columns =
                "source_file, line, \"column\", reason, message, raw, event_id, ingest_id";
            let listing = Listing {
                table: "quarantine",
                filters,
                order: "quarantined_at, source_file, line",
                empty: "no quarantined rows",
            };
            listing.show(&store, columns, columns, limit, csv).await?;
        }
        StoreCommand::Audit {
            store,
            user,
            outcome,
            action,
            since,
            limit,
            csv,
        } => {
            let store = open(&store.store).await?;
            let mut filters = Vec::new();
            for (column, value) in [
                ("user_name", &user),
                ("outcome", &outcome),
                ("action", &action),
            ] {
                if let Some(value) = value {
                    filters.push(format!("{column} = {}", quote(value)));
                }
            }
            if let Some(since) = &since {
                let from = match chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d") {
                    Ok(day) => chiso_core::time::local_midnight(day),
                    Err(_) => chiso_core::time::parse_timestamp(since).map_err(|e| {
                        anyhow::anyhow!(
                            "--since {since}: give a day (2025-10-06) or an instant: {e}"
                        )
                    })?,
                };
                filters.push(format!(
                    "at >= TIMESTAMP {}",
                    quote(&from.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                ));
            }
            // Cần Thơ time, which has no daylight saving: UTC+7 all year.
            let columns = "to_char(at + INTERVAL '7 hours', '%Y-%m-%d %H:%M:%S') AS at_local, \
                 user_name, role, address, entry_point, action, target, outcome, status, detail";
            // A screen shows the start of a long query; --csv has it whole.
            let on_screen = columns.replace(
                "target,",
                "CASE WHEN character_length(target) > 100 THEN left(target, 100) || '…' \
                 ELSE target END AS target,",
            );
            let listing = Listing {
                table: "audit",
                filters,
                order: "at DESC",
                empty: "no audit entries (the log is kept by `chiso serve --users`)",
            };
            listing
                .show(&store, columns, &on_screen, limit, csv)
                .await?;
        }
        StoreCommand::Rederive { store } => {
            let started = std::time::Instant::now();
            let options = chiso_engine::EngineOptions {
                derive_afresh: true,
                ..chiso_engine::EngineOptions::default()
            };
            let engine = chiso_engine::Engine::open(&store.store, options)
                .await
                .with_context(|| format!("cannot open the store {}", store.store.display()))?;
            println!(
                "derived the dossiers of events version {} afresh in {:.1} s",
                engine.events_version(),
                started.elapsed().as_secs_f64()
            );
        }
        StoreCommand::Compact { store } => {
            let mut store = open(&store.store).await?;
            for report in store.compact().await? {
                println!(
                    "{}: {} files rewritten into {} (version {})",
                    report.table, report.files_removed, report.files_added, report.version
                );
            }
        }
        StoreCommand::Procedures { store, file } => {
            let store = open(&store.store).await?;
            let count = store.set_procedure_catalogue(&file)?;
            println!("{count} procedures named in {}", store.root().display());
        }
        StoreCommand::Vacuum {
            store,
            retention_hours,
            dry_run,
        } => {
            let mut store = open(&store.store).await?;
            let report = store
                .vacuum(Duration::from_secs(retention_hours * 3600), dry_run)
                .await?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!("{verb} {} files", report.files_deleted.len());
            for file in &report.files_deleted {
                println!("  {file}");
            }
        }
    }
    Ok(())
}
