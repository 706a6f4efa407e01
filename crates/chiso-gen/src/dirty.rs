//! Realistic faults for exercising ingestion, and the manifest that lists them.
//!
//! Dirty mode never alters the clean city's events: every fault is an extra
//! row (a re-sent event, a conflicting copy, a row that breaks one rule), or a
//! change of *where* an event arrives (late in the file, or in a second file
//! that completes orphaned dossiers). So an ingestion that catches exactly
//! the faults of the manifest reproduces the clean city's figures.

use std::collections::HashSet;

use chiso_core::contract::RejectReason;
use chiso_core::event::{EventType, columns};
use serde::Serialize;

use crate::clock::HOUR;
use crate::model::City;
use crate::rng::Rng;
use crate::text::{TextRow, event_row, push_local_timestamp};
use crate::write::{Format, OutRow};

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The same event sent again, byte for byte.
    Duplicate,
    /// The same `event_id` with another timestamp.
    Conflict,
    UnknownWard,
    /// A `received` row without its procedure code.
    MissingProcedure,
    UnknownEventType,
    UnknownChannel,
    /// A timestamp in a local format (`14/07/2025 8h03`) the contract does not allow.
    BadTimestamp,
    /// A timestamp in 2099, far after any ingest.
    FutureTimestamp,
    /// `paid_online` = `maybe`.
    BadBoolean,
    /// A `dossier_id` longer than 64 characters.
    OverlongDossierId,
}

/// What ingestion must do with a row of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Duplicate,
    Rejected,
}

/// One injected row.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// 1-based position among the file's data rows.
    pub record: u64,
    /// Line in a text file (the CSV header is line 1).
    pub line: Option<u64>,
    pub event_id: String,
    pub expected: Expected,
    /// The reason code of `chiso_core::contract::RejectReason`, when rejected.
    pub reason: Option<&'static str>,
    pub column: Option<&'static str>,
}

/// What a dirty file holds, for tests to check ingestion against.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    /// Data rows of the main file.
    pub rows: u64,
    /// Rows of the main file that are clean events and must be accepted.
    pub clean_rows: u64,
    /// Of those, events moved to the end of the file (late arrivals).
    pub late_arrivals: u64,
    /// Dossiers whose `received` event is only in the companion file: their
    /// other events are orphans until that file is ingested.
    pub orphan_dossiers: Vec<String>,
    /// Rows of the companion file (all clean, all to be accepted).
    pub companion_rows: u64,
    pub faults: Vec<Fault>,
}

/// Where each row of the dirty files comes from.
#[derive(Debug)]
pub struct DirtyPlan {
    slots: Vec<Slot>,
    companion: Vec<u32>,
    extra_rows: Vec<TextRow>,
    pub manifest: Manifest,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Event(u32),
    Extra(u32),
}

impl DirtyPlan {
    /// The rows of the main file.
    pub fn rows<'a>(&'a self, city: &'a City) -> impl Iterator<Item = OutRow<'a>> + 'a {
        self.slots.iter().map(move |slot| match *slot {
            Slot::Event(i) => OutRow::Event(&city.events[i as usize]),
            Slot::Extra(i) => OutRow::Text(&self.extra_rows[i as usize]),
        })
    }

    /// The rows of the companion file: the withheld `received` events.
    pub fn companion_rows<'a>(&'a self, city: &'a City) -> impl Iterator<Item = OutRow<'a>> + 'a {
        self.companion
            .iter()
            .map(move |&i| OutRow::Event(&city.events[i as usize]))
    }
}

const DIRTY_STREAM: u64 = 0xD1E7;

/// Plans the dirty files for `city` in `format`.
pub fn plan(city: &City, format: Format) -> DirtyPlan {
    let mut rng = Rng::new(city.params.seed, DIRTY_STREAM);
    let events = &city.events;
    let n = events.len();
    let share = |rate: f64| ((n as f64 * rate).round() as usize).max(2).min(n);

    let received: Vec<u32> = (0..n as u32)
        .filter(|&i| events[i as usize].kind == EventType::Received)
        .collect();
    let mut withheld: HashSet<u32> = HashSet::new();
    if !received.is_empty() {
        for _ in 0..share(0.000_1) {
            withheld.insert(received[rng.below(received.len() as u64) as usize]);
        }
    }
    let mut companion: Vec<u32> = withheld.iter().copied().collect();
    companion.sort_unstable();
    let late: HashSet<u32> = (0..share(0.005))
        .map(|_| rng.below(n.max(1) as u64) as u32)
        .filter(|i| !withheld.contains(i))
        .collect();
    let mut base: Vec<u32> = (0..n as u32)
        .filter(|i| !withheld.contains(i) && !late.contains(i))
        .collect();
    let late_arrivals = (n - withheld.len() - base.len()) as u64;
    base.extend((0..n as u32).filter(|i| late.contains(i)));

    // Extra rows, each inserted after the event it copies so that the
    // original is always the first one ingestion sees.
    let mut position = vec![u32::MAX; n];
    for (p, &i) in base.iter().enumerate() {
        position[i as usize] = p as u32;
    }
    let mut extras: Vec<(u32, FaultKind, TextRow)> = Vec::new();
    let kinds: &[(FaultKind, f64)] = &[
        (FaultKind::Duplicate, 0.002),
        (FaultKind::Conflict, 0.000_2),
        (FaultKind::UnknownWard, 0.000_1),
        (FaultKind::MissingProcedure, 0.000_1),
        (FaultKind::UnknownEventType, 0.000_1),
        (FaultKind::UnknownChannel, 0.000_1),
        (FaultKind::BadTimestamp, 0.000_1),
        (FaultKind::FutureTimestamp, 0.000_1),
        (FaultKind::BadBoolean, 0.000_1),
        (FaultKind::OverlongDossierId, 0.000_1),
    ];
    let paid: Vec<u32> = (0..n as u32)
        .filter(|&i| events[i as usize].kind == EventType::Paid)
        .collect();
    for &(kind, rate) in kinds {
        if !format.is_text() && matches!(kind, FaultKind::BadTimestamp | FaultKind::BadBoolean) {
            continue; // Parquet's typed columns cannot hold these values.
        }
        let pool: &[u32] = match kind {
            FaultKind::UnknownWard | FaultKind::MissingProcedure | FaultKind::UnknownChannel => {
                &received
            }
            FaultKind::BadBoolean => &paid,
            _ => &[],
        };
        for k in 0..share(rate) {
            let source = if pool.is_empty() {
                base[rng.below(base.len() as u64) as usize]
            } else {
                pool[rng.below(pool.len() as u64) as usize]
            };
            if withheld.contains(&source) {
                continue;
            }
            let mut row = event_row(city, &events[source as usize]);
            mutate(&mut row, kind, k, &events[source as usize].at);
            extras.push((position[source as usize], kind, row));
        }
    }
    // Each extra goes at a random place after its source.
    let mut placed: Vec<(u32, u32, FaultKind, TextRow)> = extras
        .into_iter()
        .map(|(after, kind, row)| {
            let room = base.len() as u64 - u64::from(after);
            (after + 1 + rng.below(room.max(1)) as u32, 0, kind, row)
        })
        .collect();
    for (i, p) in placed.iter_mut().enumerate() {
        p.1 = i as u32;
    }
    placed.sort_by_key(|p| (p.0, p.1));

    let mut slots = Vec::with_capacity(base.len() + placed.len());
    let mut extra_rows = Vec::with_capacity(placed.len());
    let mut faults = Vec::with_capacity(placed.len());
    let mut next = placed.into_iter().peekable();
    for (p, &event) in base.iter().enumerate() {
        while let Some((at, _, kind, row)) = next.next_if(|x| x.0 as usize <= p) {
            debug_assert!(at as usize <= p);
            push_extra(&mut slots, &mut extra_rows, &mut faults, format, kind, row);
        }
        slots.push(Slot::Event(event));
    }
    for (_, _, kind, row) in next {
        push_extra(&mut slots, &mut extra_rows, &mut faults, format, kind, row);
    }

    let orphan_dossiers = companion
        .iter()
        .map(|&i| city.dossier_id(&city.dossiers[events[i as usize].dossier as usize]))
        .collect();
    let manifest = Manifest {
        format: format.name(),
        rows: slots.len() as u64,
        clean_rows: base.len() as u64,
        late_arrivals,
        orphan_dossiers,
        companion_rows: companion.len() as u64,
        faults,
    };
    DirtyPlan {
        slots,
        companion,
        extra_rows,
        manifest,
    }
}

fn push_extra(
    slots: &mut Vec<Slot>,
    extra_rows: &mut Vec<TextRow>,
    faults: &mut Vec<Fault>,
    format: Format,
    kind: FaultKind,
    row: TextRow,
) {
    let record = slots.len() as u64 + 1;
    let (expected, reason, column) = expectation(kind);
    faults.push(Fault {
        kind,
        record,
        line: format.line_of_record(record),
        event_id: row.get(columns::EVENT_ID).unwrap_or_default().to_owned(),
        expected,
        reason: reason.map(RejectReason::code),
        column,
    });
    slots.push(Slot::Extra(extra_rows.len() as u32));
    extra_rows.push(row);
}

fn expectation(kind: FaultKind) -> (Expected, Option<RejectReason>, Option<&'static str>) {
    use FaultKind::*;
    let rejected = |reason, column| (Expected::Rejected, Some(reason), Some(column));
    match kind {
        Duplicate => (Expected::Duplicate, None, None),
        Conflict => (Expected::Rejected, Some(RejectReason::Conflict), None),
        UnknownWard => rejected(RejectReason::UnknownWard, columns::WARD_CODE),
        MissingProcedure => rejected(RejectReason::MissingField, columns::PROCEDURE_CODE),
        UnknownEventType => rejected(RejectReason::InvalidEnum, columns::EVENT_TYPE),
        UnknownChannel => rejected(RejectReason::InvalidEnum, columns::CHANNEL),
        BadTimestamp => rejected(RejectReason::InvalidTimestamp, columns::OCCURRED_AT),
        FutureTimestamp => rejected(RejectReason::FutureTimestamp, columns::OCCURRED_AT),
        BadBoolean => rejected(RejectReason::InvalidBool, columns::PAID_ONLINE),
        OverlongDossierId => rejected(RejectReason::TooLong, columns::DOSSIER_ID),
    }
}

/// Breaks one rule of a copied row; every faulty copy but duplicates and
/// conflicts gets an id of its own, so it can only be rejected for its fault.
fn mutate(row: &mut TextRow, kind: FaultKind, k: usize, at: &i64) {
    use FaultKind::*;
    let own_id = |row: &mut TextRow, tag: &str| {
        let id = format!(
            "{}~{tag}{k}",
            row.get(columns::EVENT_ID).unwrap_or_default()
        );
        row.set(columns::EVENT_ID, Some(id));
    };
    let text = |s: &str| Some(s.to_owned());
    match kind {
        Duplicate => {}
        Conflict => {
            let mut shifted = String::new();
            push_local_timestamp(&mut shifted, at + 3 * HOUR);
            row.set(columns::OCCURRED_AT, Some(shifted));
        }
        UnknownWard => {
            own_id(row, "ward");
            row.set(columns::WARD_CODE, text("99999"));
        }
        MissingProcedure => {
            own_id(row, "proc");
            row.set(columns::PROCEDURE_CODE, None);
        }
        UnknownEventType => {
            own_id(row, "type");
            row.set(columns::EVENT_TYPE, text("approved"));
        }
        UnknownChannel => {
            own_id(row, "chan");
            row.set(columns::CHANNEL, text("fax"));
        }
        BadTimestamp => {
            own_id(row, "date");
            let local = row.get(columns::OCCURRED_AT).unwrap_or_default();
            // 2025-07-14T08:03:00+07:00 → 14/07/2025 8h03
            let bad = format!(
                "{}/{}/{} {}h{}",
                &local[8..10],
                &local[5..7],
                &local[0..4],
                local[11..13].trim_start_matches('0'),
                &local[14..16]
            );
            row.set(columns::OCCURRED_AT, Some(bad));
        }
        FutureTimestamp => {
            own_id(row, "future");
            let local = row.get(columns::OCCURRED_AT).unwrap_or_default();
            row.set(columns::OCCURRED_AT, Some(format!("2099{}", &local[4..])));
        }
        BadBoolean => {
            own_id(row, "bool");
            row.set(columns::PAID_ONLINE, text("maybe"));
        }
        OverlongDossierId => {
            own_id(row, "long");
            let id = row.get(columns::DOSSIER_ID).unwrap_or_default().repeat(4);
            row.set(columns::DOSSIER_ID, Some(id));
        }
    }
}
