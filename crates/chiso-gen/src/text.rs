//! Events as the text fields of the contract, the form every writer starts
//! from (Parquet converts the few typed columns back).

use chiso_core::event::{ContractEnum, EventType, columns};
use chiso_core::time::BUSINESS_OFFSET_SECONDS;
use chrono::Datelike;

use crate::catalogue::PROCEDURES;
use crate::clock::{DAY, local_date};
use crate::model::{City, GenEvent, Payload};

/// Number of columns of the event log.
pub const COLUMNS: usize = columns::ALL.len();

/// One row as text: `None` is an empty field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextRow {
    pub fields: [Option<String>; COLUMNS],
}

impl TextRow {
    pub fn get(&self, column: &str) -> Option<&str> {
        let i = column_index(column)?;
        self.fields[i].as_deref()
    }

    pub fn set(&mut self, column: &str, value: Option<String>) {
        if let Some(i) = column_index(column) {
            self.fields[i] = value;
        }
    }
}

impl chiso_core::contract::FieldSource for TextRow {
    fn field(&self, column: &str) -> Option<&str> {
        self.get(column)
    }
}

pub fn column_index(column: &str) -> Option<usize> {
    columns::index_of(column)
}

/// Appends `t` as local ISO-8601, `2025-07-14T08:03:00+07:00`, without
/// allocating: writers call this tens of millions of times.
pub fn push_local_timestamp(out: &mut String, t: i64) {
    let date = local_date(t);
    let seconds = (t + i64::from(BUSINESS_OFFSET_SECONDS)).rem_euclid(DAY);
    let two = |out: &mut String, n: u32| {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    let year = date.year() as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push('-');
    two(out, date.month());
    out.push('-');
    two(out, date.day());
    out.push('T');
    two(out, (seconds / 3600) as u32);
    out.push(':');
    two(out, (seconds / 60 % 60) as u32);
    out.push(':');
    two(out, (seconds % 60) as u32);
    out.push_str("+07:00");
}

/// Appends the dossier code of an event.
pub fn push_dossier_id(out: &mut String, city: &City, event: &GenEvent) {
    let dossier = &city.dossiers[event.dossier as usize];
    let ward = &city.wards.as_slice()[usize::from(dossier.ward)].code;
    let date = local_date(dossier.received_at);
    out.push_str(ward);
    out.push_str(".H13-");
    let yy = (date.year() % 100) as u32;
    for n in [yy, date.month(), date.day()] {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    }
    out.push('-');
    let seq = dossier.seq;
    if seq < 1000 {
        out.push('0');
    }
    if seq < 100 {
        out.push('0');
    }
    if seq < 10 {
        out.push('0');
    }
    out.push_str(&seq.to_string());
}

/// Appends the event id: the dossier code and the event's sequence number.
pub fn push_event_id(out: &mut String, city: &City, event: &GenEvent) {
    push_dossier_id(out, city, event);
    out.push('/');
    out.push(char::from(b'0' + event.seq / 10 % 10));
    out.push(char::from(b'0' + event.seq % 10));
    if event.seq >= 100 {
        out.push_str(&event.seq.to_string());
    }
}

fn flag(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Fills `fields` (reused across calls) with the text of one event; each
/// entry is a byte range into `buffer`, or `None` for an empty field.
pub fn event_fields(
    city: &City,
    event: &GenEvent,
    buffer: &mut String,
    fields: &mut [Option<(usize, usize)>; COLUMNS],
) {
    buffer.clear();
    *fields = [None; COLUMNS];
    let mut put = |buffer: &mut String, i: usize, write: &dyn Fn(&mut String)| {
        let start = buffer.len();
        write(buffer);
        fields[i] = Some((start, buffer.len()));
    };
    put(buffer, 0, &|b| push_event_id(b, city, event));
    put(buffer, 1, &|b| push_dossier_id(b, city, event));
    put(buffer, 2, &|b| b.push_str(event.kind.as_str()));
    put(buffer, 3, &|b| push_local_timestamp(b, event.at));
    match (event.kind, event.payload) {
        (EventType::Received, _) => {
            let dossier = &city.dossiers[event.dossier as usize];
            let procedure = &PROCEDURES[usize::from(dossier.procedure)];
            put(buffer, 4, &|b| {
                b.push_str(&city.wards.as_slice()[usize::from(dossier.ward)].code)
            });
            put(buffer, 5, &|b| b.push_str(procedure.code));
            put(buffer, 6, &|b| b.push_str(procedure.department));
            put(buffer, 7, &|b| b.push_str(dossier.channel.as_str()));
            put(buffer, 8, &|b| b.push_str(flag(dossier.full_online)));
            if let Some(due) = dossier.due_at {
                put(buffer, 9, &|b| push_local_timestamp(b, due));
            }
            put(buffer, 10, &|b| b.push_str(flag(procedure.fee)));
        }
        (EventType::Resolved, Payload::Flag(value)) => {
            put(buffer, 11, &|b| b.push_str(flag(value)))
        }
        (EventType::Paid, Payload::Flag(value)) => put(buffer, 12, &|b| b.push_str(flag(value))),
        (EventType::Rated, Payload::Rating(rating)) => {
            put(buffer, 13, &|b| b.push_str(rating.as_str()))
        }
        _ => {}
    }
}

/// One event as an owned [`TextRow`].
pub fn event_row(city: &City, event: &GenEvent) -> TextRow {
    let mut buffer = String::new();
    let mut ranges = [None; COLUMNS];
    event_fields(city, event, &mut buffer, &mut ranges);
    TextRow {
        fields: ranges.map(|r| r.map(|(a, b)| buffer[a..b].to_owned())),
    }
}
