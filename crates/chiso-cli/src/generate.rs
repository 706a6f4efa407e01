//! `chiso gen`: the sample city.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate};
use clap::Args;

use chiso_core::format::thousands;
use chiso_gen::summary::{Tally, rate};
use chiso_gen::{City, Format, Params, dirty, write, xlsx};

use crate::ingest::CATALOGUE_FILE;

#[derive(Debug, Args)]
#[command(
    about = "Generate the sample city: the dossier events of Cần Thơ's 103 communes and wards",
    long_about = "Generate the sample city: the dossier events of Cần Thơ's 103 communes and \
wards, calibrated to published figures (on-time, online, digitization, e-results, payment, \
satisfaction; weekday rhythm, the Tết dip, the 1 July 2025 merger). The same seed and options \
always give the same bytes. Prints a summary measured from the written events.",
    after_help = "Examples:\n  chiso gen --scale 0.01 --out city.csv\n  chiso gen --format parquet --out city.parquet\n  chiso gen --scale 0.1 --dirty --out dirty.ndjson\n  chiso gen --scale 0.01 --out city.csv --dossier-list ninh-kieu-2025-07.xlsx --ward 31135 --month 2025-07"
)]
pub struct GenArgs {
    /// Random seed; the same seed and options give identical files.
    #[arg(long, default_value_t = chiso_gen::DEFAULT_SEED)]
    seed: u64,
    /// Volume relative to the real city: 1 ≈ 1.5 million dossiers a year (0.0001 … 10).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// First day of the range (YYYY-MM-DD, local time).
    #[arg(long, default_value = "2025-01-01", value_parser = parse_date)]
    from: NaiveDate,
    /// Last day of the range, inclusive (YYYY-MM-DD). Events after it have not happened yet.
    #[arg(long, default_value = "2025-12-31", value_parser = parse_date)]
    to: NaiveDate,
    /// Output format: csv, ndjson or parquet [default: from the extension of --out, else csv].
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// The event log to write [default: events.<format> in the current folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Add realistic faults (duplicates, conflicts, unknown wards, bad dates, late and orphaned
    /// events) and write a manifest of them, to exercise ingestion.
    #[arg(long)]
    dirty: bool,
    /// Where to write the dirty-mode manifest [default: <out>.manifest.json].
    #[arg(long, requires = "dirty")]
    manifest: Option<PathBuf>,
    /// Also write one ward's month as the dossier-list spreadsheet (XLSX, Vietnamese headers)
    /// that ward staff export. With --dirty, a re-export of the same list is written too.
    #[arg(long, value_name = "FILE.xlsx")]
    dossier_list: Option<PathBuf>,
    /// Where to write the procedure catalogue of the sample city (codes, Vietnamese names,
    /// departments, statutory days) as CSV [default: procedures.csv beside the event log,
    /// which `chiso ingest` loads into a store that has no names yet].
    #[arg(long, value_name = "FILE.csv")]
    procedures: Option<PathBuf>,
    /// Ward code for --dossier-list (31135 is Ninh Kiều).
    #[arg(long, requires = "dossier_list", default_value = "31135")]
    ward: String,
    /// Month for --dossier-list, YYYY-MM [default: the month of --to].
    #[arg(long, requires = "dossier_list", value_parser = parse_month)]
    month: Option<NaiveDate>,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date like 2025-07-14"))
}

fn parse_month(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a month like 2025-07"))
}

fn parse_format(text: &str) -> Result<Format, String> {
    Format::parse(text).ok_or_else(|| format!("`{text}` is not csv, ndjson or parquet"))
}

pub fn run(args: GenArgs) -> anyhow::Result<()> {
    let format = match (args.format, &args.out) {
        (Some(format), _) => format,
        (None, Some(out)) => out
            .extension()
            .and_then(|e| Format::parse(&e.to_string_lossy()))
            .unwrap_or(Format::Csv),
        (None, None) => Format::Csv,
    };
    let events_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("events.{}", format.extension())));
    let params = Params {
        seed: args.seed,
        scale: args.scale,
        from: args.from,
        to: args.to,
    };
    create_parent(&events_path)?;
    if let Some(list) = &args.dossier_list {
        create_parent(list)?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let started = Instant::now();
    let city = chiso_gen::generate(&params)?;
    let generated = started.elapsed();

    let rows = if args.dirty {
        let plan = dirty::plan(&city, format);
        let rows = write::write_rows(&city, plan.rows(&city), format, &events_path)?;
        let companion = sibling(&events_path, "-late");
        write::write_rows(&city, plan.companion_rows(&city), format, &companion)?;
        let manifest_path = args.manifest.clone().unwrap_or_else(|| {
            let mut name = events_path.as_os_str().to_owned();
            name.push(".manifest.json");
            PathBuf::from(name)
        });
        let json = serde_json::to_string_pretty(&plan.manifest)?;
        std::fs::write(&manifest_path, json + "\n")
            .with_context(|| format!("cannot write {}", manifest_path.display()))?;
        writeln!(
            out,
            "dirty: {} faulty rows, {} late arrivals, {} orphaned dossiers completed by {}; manifest {}",
            plan.manifest.faults.len(),
            plan.manifest.late_arrivals,
            plan.manifest.orphan_dossiers.len(),
            companion.display(),
            manifest_path.display()
        )?;
        rows
    } else {
        write::write_city(&city, format, &events_path)?
    };
    let size = std::fs::metadata(&events_path)
        .map(|m| m.len())
        .unwrap_or(0);
    writeln!(
        out,
        "wrote {} ({}, {} rows, {:.1} MB) in {:.1} s (simulation {:.1} s)",
        events_path.display(),
        format.name(),
        thousands(rows),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        generated.as_secs_f64()
    )?;

    if let Some(list) = &args.dossier_list {
        let month = args.month.unwrap_or_else(|| month_start(params.to));
        if month < month_start(params.from) || month > params.to {
            bail!(
                "--month {} is outside the generated range {} … {}",
                month.format("%Y-%m"),
                params.from,
                params.to
            );
        }
        let count = xlsx::write_dossier_list(&city, &args.ward, month, false, list)?;
        writeln!(
            out,
            "wrote {} ({count} dossiers of ward {}, {})",
            list.display(),
            args.ward,
            month.format("%m/%Y")
        )?;
        if args.dirty {
            let again = sibling(list, "-reexport");
            xlsx::write_dossier_list(&city, &args.ward, month, true, &again)?;
            writeln!(
                out,
                "wrote {} (the same list exported again, rows reordered)",
                again.display()
            )?;
        }
    }
    // The names travel with the events: `chiso ingest` of the log loads the
    // catalogue beside it, so a new store's pages never show bare codes.
    let catalogue = args.procedures.clone().unwrap_or_else(|| {
        events_path.parent().map_or_else(
            || PathBuf::from(CATALOGUE_FILE),
            |dir| dir.join(CATALOGUE_FILE),
        )
    });
    create_parent(&catalogue)?;
    let file = std::fs::File::create(&catalogue)
        .with_context(|| format!("cannot write {}", catalogue.display()))?;
    chiso_gen::catalogue::write_csv(std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", catalogue.display()))?;
    writeln!(
        out,
        "wrote {} ({} procedures)",
        catalogue.display(),
        chiso_gen::catalogue::PROCEDURES.len()
    )?;
    print_summary(&mut out, &city)?;
    Ok(())
}

fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display())),
        _ => Ok(()),
    }
}

/// `dir/name.ext` → `dir/name<suffix>.ext`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}"),
    };
    path.with_file_name(name)
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.2} %"))
}

fn print_summary(out: &mut impl Write, city: &City) -> std::io::Result<()> {
    let t: &Tally = &city.stats.total;
    let p = &city.params;
    writeln!(out)?;
    writeln!(
        out,
        "Sample city: seed {}, scale {}, {} … {} (figures as of the end of the range)",
        p.seed, p.scale, p.from, p.to
    )?;

    line(out, "wards", city.wards.len().to_string())?;
    line(out, "dossiers received", thousands(t.received))?;
    line(out, "events", thousands(city.stats.events))?;
    line(
        out,
        "channels",
        format!(
            "online {} · direct {} · postal {}",
            pct(rate(t.online, t.received)),
            pct(rate(t.direct, t.received)),
            pct(rate(t.postal, t.received))
        ),
    )?;
    line(
        out,
        "full-process online",
        pct(rate(t.full_online, t.received)),
    )?;
    line(out, "digitization", pct(rate(t.digitized, t.received)))?;
    line(
        out,
        "online payment (of fees)",
        pct(rate(t.paid_online, t.fee_required)),
    )?;
    line(out, "resolved", thousands(t.resolved))?;
    line(
        out,
        "on-time rate (resolved)",
        format!(
            "{} (early {})",
            pct(t.on_time_rate()),
            pct(rate(t.resolved_early, t.resolved))
        ),
    )?;
    line(
        out,
        "late with apology",
        pct(rate(t.late_apologized, t.resolved_late)),
    )?;
    line(out, "electronic results", pct(rate(t.e_result, t.resolved)))?;
    line(out, "satisfaction", pct(rate(t.satisfied, t.rated)))?;
    line(
        out,
        "supplement requested",
        pct(rate(t.supplemented, t.received)),
    )?;
    line(
        out,
        "stopped · withdrawn",
        format!("{} · {}", thousands(t.stopped), thousands(t.withdrawn)),
    )?;
    line(
        out,
        "backlog at the end",
        format!(
            "{} in progress, {} overdue, {} awaiting supplement",
            thousands(t.in_progress),
            thousands(t.in_progress_overdue),
            thousands(t.awaiting_supplement)
        ),
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<8} {:>9} {:>8} {:>8} {:>8}   766 split: finished on time · late · in progress within time",
        "month", "received", "online", "on time", "766"
    )?;
    for (month, m) in &city.stats.months {
        writeln!(
            out,
            "  {:<8} {:>9} {:>8} {:>8} {:>8}   {} · {} · {}",
            month.format("%Y-%m").to_string(),
            thousands(m.received),
            pct(m.online_rate()),
            pct(m.on_time_rate()),
            pct(m.progress_ratio()),
            pct(rate(m.progress_finished_good, m.progress_universe)),
            pct(rate(m.progress_finished_late, m.progress_universe)),
            pct(rate(m.progress_pending_good, m.progress_universe))
        )?;
    }
    Ok(())
}

fn line(out: &mut impl Write, label: &str, value: String) -> std::io::Result<()> {
    writeln!(out, "  {label:<28} {value}")
}
