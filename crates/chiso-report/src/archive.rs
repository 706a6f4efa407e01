//! The archive of scheduled packs: every Monday at 07:00 (Cần Thơ time) the
//! city pack and every ward's pack of the week just ended, as PDF and XLSX,
//! in `DIR/2025-W40/`. A file is written under a temporary name and renamed,
//! and one already there is kept, so a run that is repeated (or resumed
//! after a crash) writes only what is missing.

use std::path::{Path, PathBuf};

use chiso_core::time::{business_offset, local_date};
use chiso_dashboard::{Dashboards, Lang, Params};
use chiso_engine::{Engine, Period, WardCode};
use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};

use crate::{DocumentFormat, ReportError, pack_document};

/// The weekly run: Monday, 07:00 local time.
const RUN_AT: (u32, u32) = (7, 0);

/// The formats archived.
pub const FORMATS: [DocumentFormat; 2] = [DocumentFormat::Pdf, DocumentFormat::Xlsx];

/// A folder of packs, one subfolder per period.
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
}

/// One period's files in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedPeriod {
    pub period: String,
    /// (file name, bytes), sorted by name.
    pub files: Vec<(String, u64)>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub written: Vec<PathBuf>,
    /// Files that were already there.
    pub kept: usize,
}

impl Archive {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file `name` of `period`, if the archive has it (names are checked:
    /// no path can leave the archive).
    pub fn file(&self, period: &str, name: &str) -> Option<PathBuf> {
        let safe = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !part.starts_with('.')
        };
        if !safe(period) || !safe(name) {
            return None;
        }
        let path = self.root.join(period).join(name);
        path.is_file().then_some(path)
    }

    /// Every period in the archive, newest first.
    pub fn list(&self) -> Result<Vec<ArchivedPeriod>, ReportError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |cause| ReportError::Io { path, cause }
        };
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let mut periods = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            if !entry.path().is_dir() {
                continue;
            }
            let mut files = Vec::new();
            for file in std::fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
                let file = file.map_err(io(&entry.path()))?;
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.ends_with(".tmp") {
                    continue;
                }
                let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                files.push((name, bytes));
            }
            files.sort();
            periods.push(ArchivedPeriod {
                period: entry.file_name().to_string_lossy().into_owned(),
                files,
            });
        }
        periods.sort_by(|a, b| b.period.cmp(&a.period));
        Ok(periods)
    }

    /// Writes every pack of `period` that is not there yet: the city pack,
    /// then each ward's, in each archived format and in Vietnamese.
    pub async fn write_period(
        &self,
        engine: &Engine,
        dashboards: &Dashboards,
        period: Period,
    ) -> Result<RunReport, ReportError> {
        let folder = self.root.join(period.to_string());
        std::fs::create_dir_all(&folder).map_err(|cause| ReportError::Io {
            path: folder.clone(),
            cause,
        })?;
        let mut report = RunReport::default();
        let tables = crate::Tables::new(engine);
        let mut writing: Option<Writing> = None;
        let wards = chiso_core::wards::WardRegistry::builtin();
        let mut jobs: Vec<(&chiso_dashboard::Pack, Option<WardCode>)> = Vec::new();
        for pack in &dashboards.packs {
            if pack.per_ward {
                jobs.extend(wards.codes().map(|code| (pack, Some(code))));
            } else {
                jobs.push((pack, None));
            }
        }
        for (pack, ward) in jobs {
            let mut params = Params::new(period, Lang::Vi, engine.now());
            params.ward = ward;
            let stem = crate::document::file_stem(&pack.id, &params);
            let missing: Vec<DocumentFormat> = FORMATS
                .into_iter()
                .filter(|f| !folder.join(format!("{stem}.{}", f.extension())).exists())
                .collect();
            report.kept += FORMATS.len() - missing.len();
            if missing.is_empty() {
                continue;
            }
            let document = pack_document(&tables, dashboards, pack, &params).await?;
            // Typesetting takes one core: it runs while the next pack's
            // queries take the others.
            if let Some(previous) = writing.take() {
                report.written.extend(finish(previous).await?);
            }
            let folder = folder.clone();
            writing = Some(tokio::task::spawn_blocking(move || {
                let mut written = Vec::new();
                for format in missing {
                    let path = folder.join(format!("{stem}.{}", format.extension()));
                    write_atomically(&path, &format.write(&document)?)?;
                    written.push(path);
                }
                Ok(written)
            }));
        }
        if let Some(last) = writing {
            report.written.extend(finish(last).await?);
        }
        Ok(report)
    }
}

/// The files of one pack being written on a blocking thread.
type Writing = tokio::task::JoinHandle<Result<Vec<PathBuf>, ReportError>>;

async fn finish(writing: Writing) -> Result<Vec<PathBuf>, ReportError> {
    writing
        .await
        .map_err(|e| ReportError::Data(format!("writing a pack: {e}")))?
}

/// `bytes` at `path`, never half-written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io = |cause| ReportError::Io {
        path: path.to_owned(),
        cause,
    };
    let temporary = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&temporary, bytes).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// The week a run at `now` writes: the last week that has ended.
pub fn week_ended(now: DateTime<Utc>) -> Period {
    Period::week_of(local_date(now)).previous()
}

/// The first Monday 07:00 (local) strictly after `now`.
pub fn next_run(now: DateTime<Utc>) -> DateTime<Utc> {
    let offset = business_offset();
    let local = now.with_timezone(&offset);
    let monday =
        local.date_naive() - Duration::days(i64::from(local.weekday().num_days_from_monday()));
    let at = NaiveTime::from_hms_opt(RUN_AT.0, RUN_AT.1, 0).unwrap_or(NaiveTime::MIN);
    let mut run = chiso_core::time::local_instant(monday, at);
    while run <= now {
        run += Duration::days(7);
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        chiso_core::time::parse_timestamp(text).expect("timestamp")
    }

    #[test]
    fn runs_are_on_monday_at_seven_local_time() {
        // Sunday evening local: the next morning.
        assert_eq!(
            next_run(at("2025-10-05T20:00:00+07:00")),
            at("2025-10-06T07:00:00+07:00")
        );
        // Monday 06:59 and 07:00 local.
        assert_eq!(
            next_run(at("2025-10-06T06:59:00+07:00")),
            at("2025-10-06T07:00:00+07:00")
        );
        assert_eq!(
            next_run(at("2025-10-06T07:00:00+07:00")),
            at("2025-10-13T07:00:00+07:00")
        );
        // Monday 01:00 local is still Sunday in UTC.
        assert_eq!(
            next_run(at("2025-10-05T18:00:00Z")),
            at("2025-10-06T07:00:00+07:00")
        );
        assert_eq!(
            week_ended(at("2025-10-06T07:00:00+07:00")).to_string(),
            "2025-W40"
        );
    }

    #[test]
    fn archive_names_cannot_leave_the_folder() {
        let archive = Archive::new(std::env::temp_dir());
        assert!(archive.file("..", "passwd").is_none());
        assert!(archive.file("2025-W40", "../x").is_none());
        assert!(archive.file("2025-W40", ".hidden").is_none());
    }
}
