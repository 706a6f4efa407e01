//! # chiso-core: the domain every pipeline stage shares
//!
//! chiso turns the dossier events of the communes' one-stop desks into the
//! figures of Decision 766. This crate holds what all stages must agree on and
//! nothing else:
//!
//! * [`event`]: the event contract of `docs/events.md` (version 1): the enums, the
//!   column names and the Arrow schema of the event log;
//! * [`contract`]: turning one input row (whatever its file format) into a
//!   typed [`event::Event`] or a [`contract::Rejection`] naming the column and
//!   the reason, so that every entry point validates the same way;
//! * [`wards`]: the registry of the 103 communes and wards;
//! * [`calendar`]: working days (weekends, holidays, make-up Saturdays) and the
//!   due-date rule of the one-stop software;
//! * [`time`]: the business time zone, Asia/Ho_Chi_Minh (UTC+07:00, no DST);
//! * [`format`]: numbers as people read them.
//!
//! Reference data (wards, holidays) is compiled in from `data/`, so the binary
//! needs no files at run time; the calendar can be replaced by an edited CSV.
//!
//! Architecture invariant: this crate knows no file formats beyond the two
//! small reference CSVs, no query engine and no HTTP.

pub mod calendar;
pub mod contract;
pub mod error;
pub mod event;
pub mod format;
pub mod time;
pub mod wards;

pub use error::CoreError;
