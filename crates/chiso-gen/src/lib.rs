//! # chiso-gen: the sample city
//!
//! A deterministic generator of the dossier events of Cần Thơ's 103 communes
//! and wards, calibrated to the published figures of `sample-data.md`, so that
//! a new user sees a living city at once and benchmarks run at any scale.
//!
//! The pipeline is: [`model::generate`] simulates every dossier (one random
//! stream per ward, so threads do not change the result) and orders the
//! events as a one-stop system logs them; [`write`] serialises them as CSV,
//! NDJSON or Parquet, optionally with the faults of [`dirty`] and their
//! manifest; [`xlsx`] exports one ward's month as the dossier-list
//! spreadsheet ward staff would send; [`summary`] measures the result.
//!
//! Architecture invariant: the generator only *produces* the contract of
//! `docs/events.md`; it shares the contract's types with ingestion through
//! `chiso-core` and never reads a store.

pub mod catalogue;
pub mod city;
mod clock;
pub mod dirty;
pub mod model;
pub mod rng;
pub mod summary;
pub mod text;
pub mod write;
pub mod xlsx;

use std::path::PathBuf;

use chrono::NaiveDate;

pub use model::{City, generate};
pub use write::Format;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The seed: the same seed and parameters give the same bytes.
    pub seed: u64,
    /// Volume relative to the real city (1.0 ≈ 1.5 M dossiers a year).
    pub scale: f64,
    /// First local day of the range.
    pub from: NaiveDate,
    /// Last local day of the range (inclusive).
    pub to: NaiveDate,
}

/// The seed of the committed sample city.
pub const DEFAULT_SEED: u64 = 766;
/// The parameters of the sample city committed under `sample-data/`.
pub fn sample_params() -> Params {
    Params {
        scale: 0.01,
        ..Params::default()
    }
}

/// Accepted scales.
pub const SCALE_RANGE: std::ops::RangeInclusive<f64> = 0.0001..=10.0;

impl Default for Params {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            scale: 1.0,
            from: NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date"),
            to: NaiveDate::from_ymd_opt(2025, 12, 31).expect("valid date"),
        }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), GenError> {
        if !SCALE_RANGE.contains(&self.scale) {
            return Err(GenError::Range(format!(
                "--scale {} is outside {} … {}",
                self.scale,
                SCALE_RANGE.start(),
                SCALE_RANGE.end()
            )));
        }
        if self.from > self.to {
            return Err(GenError::Range(format!(
                "--from {} is after --to {}",
                self.from, self.to
            )));
        }
        let earliest = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
        let latest = NaiveDate::from_ymd_opt(2100, 1, 1).expect("valid date");
        if self.from < earliest || self.to >= latest {
            return Err(GenError::Range(
                "dates must lie between 2000-01-01 and 2099-12-31".into(),
            ));
        }
        Ok(())
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{0}")]
    Range(String),
    #[error("ward {0} is not in the ward registry")]
    UnknownWard(String),
    #[error("cannot write {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot write Parquet to {path}: {cause}")]
    Parquet {
        path: PathBuf,
        cause: parquet::errors::ParquetError,
    },
    #[error("cannot write the spreadsheet {path}: {cause}")]
    Xlsx {
        path: PathBuf,
        cause: rust_xlsxwriter::XlsxError,
    },
}
