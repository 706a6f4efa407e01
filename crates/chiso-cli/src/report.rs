//! `chiso report`: the review packs as PDF, XLSX or HTML files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chiso_dashboard::{Dashboards, Lang, Params};
use chiso_engine::{Engine, EngineOptions, Grain};
use chiso_report::DocumentFormat;
use clap::{Args, ValueEnum};

use crate::query::store_or_sample;

/// Which review: it sets the period's length and the default period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cadence {
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Cadence {
    fn grain(self) -> Grain {
        match self {
            Cadence::Weekly => Grain::Week,
            Cadence::Monthly => Grain::Month,
            Cadence::Quarterly => Grain::Quarter,
            Cadence::Yearly => Grain::Year,
        }
    }

    fn example(self) -> &'static str {
        match self {
            Cadence::Weekly => "2025-W40",
            Cadence::Monthly => "2025-07",
            Cadence::Quarterly => "2025-Q3",
            Cadence::Yearly => "2025",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Pdf,
    Xlsx,
    Html,
}

impl FileFormat {
    fn document(self) -> DocumentFormat {
        match self {
            FileFormat::Pdf => DocumentFormat::Pdf,
            FileFormat::Xlsx => DocumentFormat::Xlsx,
            FileFormat::Html => DocumentFormat::Html,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    about = "The review pack of a week, month, quarter or year: PDF, XLSX or HTML",
    after_help = "The city pack opens with its message: a summary written from the figures, the 10 wards \
needing attention with their reasons, and the headline figures with their change; then the 766 index and \
the ranking of all 103 wards, the red flags, the backlog by ward, the trends, and the methods. With --ward, \
that ward's pack: its figures and its 766 points per indicator, its overdue dossiers, departments and \
procedures, and its unapologised late dossiers. The sections are the panels listed in dashboards/packs/.\n\n\
Examples:\n  chiso report weekly --week 2025-W40 --format pdf\n  chiso report monthly --month 2025-07 --ward 31135 --format xlsx\n  \
chiso report weekly --week 2025-W40 --lang en --out review.pdf\n  chiso report weekly --week 2025-W40 --all --out-dir packs/"
)]
pub struct ReportArgs {
    /// weekly, monthly, quarterly or yearly.
    #[arg(value_enum)]
    cadence: Cadence,
    #[command(flatten)]
    store: crate::query::StoreArg,
    /// The period (2025-W40, 2025-07, 2025-Q3, 2025); the last one that ended
    /// by default.
    #[arg(long, visible_aliases = ["week", "month", "quarter", "year"])]
    period: Option<String>,
    /// One ward's pack (its code, as in `chiso sql "SELECT * FROM wards"`).
    #[arg(long)]
    ward: Option<String>,
    #[arg(long, value_enum, default_value = "pdf")]
    format: FileFormat,
    /// vi or en.
    #[arg(long, default_value = "vi")]
    lang: String,
    /// The file to write; by default a name like chiso-city-2025-W40.pdf here.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Every pack of the period: the city's and each ward's, as PDF and XLSX,
    /// into --out-dir (files already there are kept).
    #[arg(long, conflicts_with_all = ["ward", "out"])]
    all: bool,
    /// The folder of --all.
    #[arg(long, requires = "all")]
    out_dir: Option<PathBuf>,
    /// The dashboard files (their packs/ too); without it, ./dashboards when
    /// it exists, else the built-in ones.
    #[arg(long)]
    dashboards: Option<PathBuf>,
}

/// The dashboards to use: the ones given, ./dashboards, or the built-in.
pub fn dashboards(dir: Option<&Path>) -> anyhow::Result<Dashboards> {
    Ok(match dir {
        Some(dir) => Dashboards::load(dir)?,
        None if Path::new("dashboards").is_dir() => Dashboards::load(Path::new("dashboards"))?,
        None => Dashboards::builtin()?,
    })
}

pub async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let lang = Lang::parse(&args.lang)
        .with_context(|| format!("unknown language `{}`; use vi or en", args.lang))?;
    let dashboards = dashboards(args.dashboards.as_deref())?;
    let (store, _) = store_or_sample(&args.store.store).await?;
    let engine = Engine::open(&store, EngineOptions::default())
        .await
        .with_context(|| format!("cannot open the store {}", store.display()))?;
    let grain = args.cadence.grain();
    let period = match &args.period {
        Some(text) => engine.period(text)?,
        None => {
            chiso_engine::Period::of(grain, chiso_core::time::local_date(engine.now())).previous()
        }
    };
    if period.grain != grain {
        bail!(
            "a {} report is of a {}: give it as {} (got `{period}`)",
            format!("{:?}", args.cadence).to_lowercase(),
            format!("{grain:?}").to_lowercase(),
            args.cadence.example()
        );
    }
    if let Some((first, last)) = engine.data_range().await?
        && (period.end <= first || period.start > last)
    {
        eprintln!(
            "chiso: the store has no data for {period} (it holds {} to {}); the report says so",
            first.format("%d/%m/%Y"),
            last.format("%d/%m/%Y")
        );
    }

    if args.all {
        let dir = args.out_dir.unwrap_or_else(|| PathBuf::from("."));
        let started = Instant::now();
        let archive = chiso_report::archive::Archive::new(&dir);
        let run = archive.write_period(&engine, &dashboards, period).await?;
        eprintln!(
            "chiso: wrote {} files in {:.1} s, kept {} already there, in {}",
            run.written.len(),
            started.elapsed().as_secs_f64(),
            run.kept,
            dir.join(period.to_string()).display()
        );
        return Ok(());
    }

    let mut params = Params::new(period, lang, engine.now());
    if let Some(code) = &args.ward {
        params.ward = Some(chiso_core::wards::WardRegistry::builtin().code(code)?);
    }
    let pack_id = if params.ward.is_some() {
        "ward"
    } else {
        "city"
    };
    let pack = dashboards.pack(pack_id).with_context(|| {
        format!("the dashboards have no `{pack_id}` pack (dashboards/packs/{pack_id}.toml)")
    })?;
    let started = Instant::now();
    let tables = chiso_report::Tables::new(&engine);
    let document = chiso_report::pack_document(&tables, &dashboards, pack, &params).await?;
    let format = args.format.document();
    let bytes = format.write(&document)?;
    let path = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.{}", document.file_stem, format.extension())));
    chiso_report::archive::write_atomically(&path, &bytes)?;
    eprintln!(
        "chiso: wrote {} ({} kB) in {:.1} s",
        path.display(),
        bytes.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
