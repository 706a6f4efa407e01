//! The shape of the sample city: how busy each ward is, how well it performs,
//! and how demand moves through the year.
//!
//! Every figure here is a calibration knob tied to `sample-data.md`; the
//! tests in `tests/calibration.rs` check the outcome, not these numbers.

use chrono::{Datelike, NaiveDate, Weekday};

use chiso_core::calendar::{SpecialDayKind, WorkCalendar};
use chiso_core::wards::{WardKind, WardRegistry};

use crate::rng::Rng;

/// The day the two-level local government starts.
pub fn merger_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 7, 1).expect("valid date")
}

/// Dossiers a year for the whole city at scale 1.
pub const DOSSIERS_PER_YEAR: f64 = 1_500_000.0;

/// Wards the press and the spec name as the busiest.
const BUSY_WARDS: [&str; 5] = ["31135", "31120", "31147", "31507", "31321"];
/// Understaffed wards that struggle to keep deadlines (Tân Lộc, Khánh Hòa).
const STRUGGLING_WARDS: [&str; 2] = ["31213", "31789"];

/// How one ward behaves.
#[derive(Debug, Clone)]
pub struct WardProfile {
    /// Share of the city's dossiers.
    pub share: f64,
    /// Probability that a dossier is submitted online before the merger.
    pub online_before: f64,
    /// The same after the merger.
    pub online_after: f64,
    /// Probability that a resolved dossier meets its deadline.
    pub on_time: f64,
    pub digitization: f64,
    pub e_result: f64,
    /// Probability that a fee is paid online.
    pub online_payment: f64,
    /// Probability that a dossier needs a supplement.
    pub supplement: f64,
    /// Probability of a dissatisfied rating for an on-time dossier.
    pub dissatisfied: f64,
}

/// Draws every ward's profile from its own random stream.
pub fn ward_profiles(seed: u64, wards: &WardRegistry) -> Vec<WardProfile> {
    let mut profiles: Vec<WardProfile> = wards
        .iter()
        .enumerate()
        .map(|(i, ward)| {
            let mut rng = Rng::new(seed, 0x5EED_0000 + i as u64);
            let urban = ward.kind == WardKind::Phuong;
            let mut weight = if urban { 2.2 } else { 0.75 } * (0.3 * rng.normal()).exp();
            if BUSY_WARDS.contains(&ward.code.as_str()) {
                weight *= 2.2;
            }
            let online_before = if urban {
                rng.between(0.50, 0.80)
            } else {
                rng.between(0.26, 0.62)
            };
            let struggling = STRUGGLING_WARDS.contains(&ward.code.as_str()) || rng.chance(0.03);
            WardProfile {
                share: weight,
                online_before,
                online_after: (online_before + rng.between(0.06, 0.16)).min(0.99),
                on_time: if struggling {
                    rng.between(0.90, 0.95)
                } else {
                    rng.between(0.972, 0.999)
                },
                digitization: rng.between(0.74, 0.90),
                e_result: rng.between(0.85, 0.95),
                online_payment: rng.between(0.46, 0.72),
                supplement: rng.between(0.05, 0.15),
                dissatisfied: rng.between(0.002, 0.02),
            }
        })
        .collect();
    let total: f64 = profiles.iter().map(|p| p.share).sum();
    for p in &mut profiles {
        p.share /= total;
    }
    profiles
}

/// Relative demand of a local day: weekday rhythm, holidays, Tết, the merger.
pub fn day_weight(calendar: &WorkCalendar, date: NaiveDate) -> f64 {
    let special = calendar.special_day(date).map(|s| s.kind);
    let base = match (special, date.weekday()) {
        (Some(SpecialDayKind::Holiday), _) => 0.015,
        (Some(SpecialDayKind::Workday), _) => 0.95,
        (None, Weekday::Mon) => 1.30,
        (None, Weekday::Tue) => 1.10,
        (None, Weekday::Wed) => 1.04,
        (None, Weekday::Thu) => 1.00,
        (None, Weekday::Fri) => 0.93,
        (None, Weekday::Sat) => 0.07,
        (None, Weekday::Sun) => 0.015,
    };
    base * tet_factor(calendar, date) * merger_factor(date)
}

/// Demand thins out in the week before Tết and recovers slowly after it.
fn tet_factor(calendar: &WorkCalendar, date: NaiveDate) -> f64 {
    let is_tet = |d: NaiveDate| {
        calendar
            .special_day(d)
            .is_some_and(|s| s.kind == SpecialDayKind::Holiday && s.name.contains("Nguyên đán"))
    };
    for distance in 1..=12i64 {
        let after = date - chrono::Duration::days(distance);
        if is_tet(after) {
            // 1 day after Tết: 0.45, rising to ~0.95 twelve days on.
            return 0.4 + 0.045 * distance as f64;
        }
        let before = date + chrono::Duration::days(distance);
        if distance <= 7 && is_tet(before) {
            return 0.7;
        }
    }
    1.0
}

/// Communes take on district-level work from 1 July 2025; the old systems
/// close in the last days of June.
fn merger_factor(date: NaiveDate) -> f64 {
    let merger = merger_date();
    if date >= merger {
        1.2
    } else if (merger - date).num_days() <= 4 {
        0.5
    } else {
        1.0
    }
}

/// Extra lateness and slowness in the first weeks of the two-level government:
/// 1 outside the transition, up to 3 on 1 July 2025, fading over six weeks.
pub fn transition_strain(date: NaiveDate) -> f64 {
    let days = (date - merger_date()).num_days();
    if (0..42).contains(&days) {
        1.0 + 2.0 * (1.0 - days as f64 / 42.0)
    } else {
        1.0
    }
}

/// After the merger communes also take the district-level work, whose
/// procedures (land, construction, social protection) take longer; in the
/// first weeks the transferred files arrive all at once.
pub fn procedure_weight(procedure: &crate::catalogue::Procedure, date: NaiveDate) -> f64 {
    let long = procedure.working_days.is_some_and(|days| days >= 7);
    if date >= merger_date() && long {
        procedure.weight * 2.0 * transition_strain(date)
    } else {
        procedure.weight
    }
}

/// Expected dossiers per unit of day weight, so that a calendar year of
/// 2025 at `scale` holds `scale × 1.5 M` dossiers.
pub fn dossiers_per_weight(calendar: &WorkCalendar, scale: f64) -> f64 {
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date");
    let year_weight: f64 = start
        .iter_days()
        .take_while(|d| d.year() == 2025)
        .map(|d| day_weight(calendar, d))
        .sum();
    DOSSIERS_PER_YEAR * scale / year_weight
}
