//! Validation of one input row against the event contract.
//!
//! Every entry point (CSV, NDJSON, Parquet, spreadsheet, HTTP) hands its row
//! to [`parse_event`] through the [`FieldSource`] trait, so the rules of
//! `docs/events.md` live in one place. A row either becomes an [`Event`] or a
//! [`Rejection`] naming the column and the reason; what to do with a
//! rejection (quarantine, report) is the caller's business.
//!
//! Text is read as Unicode NFC: the same Vietnamese word arrives composed
//! from Windows and most web forms and decomposed (a letter, then its
//! marks) from macOS and some exports, and both must match `không`, the
//! channels and ratings, and store as the same id.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use crate::event::{
    ContractEnum, Event, EventType, MAX_CODE_CHARS, MAX_DOSSIER_ID_CHARS, MAX_EVENT_ID_CHARS,
    Rating, columns,
};
use crate::time::parse_timestamp;
use crate::wards::WardRegistry;

/// Why a row was not accepted. The codes are stable: they are stored in the
/// quarantine and used by the generator's fault manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// A required field is empty or absent.
    MissingField,
    /// A value outside an enum (event type, channel, rating).
    InvalidEnum,
    /// A timestamp that cannot be read.
    InvalidTimestamp,
    /// An event dated after the moment of ingestion.
    FutureTimestamp,
    /// A boolean that is not true/false, 1/0, yes/no, có/không.
    InvalidBool,
    /// A ward code absent from the registry.
    UnknownWard,
    /// A string longer than the contract allows.
    TooLong,
    /// The `event_id` is known with different content.
    Conflict,
    /// The row itself cannot be read (wrong number of fields, bad JSON, ...).
    MalformedRow,
    /// A ward user sent an event of a dossier outside their wards.
    WardNotPermitted,
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        Self::MissingField,
        Self::InvalidEnum,
        Self::InvalidTimestamp,
        Self::FutureTimestamp,
        Self::InvalidBool,
        Self::UnknownWard,
        Self::TooLong,
        Self::Conflict,
        Self::MalformedRow,
        Self::WardNotPermitted,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::MissingField => "missing_field",
            Self::InvalidEnum => "invalid_enum",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::InvalidBool => "invalid_bool",
            Self::UnknownWard => "unknown_ward",
            Self::TooLong => "too_long",
            Self::Conflict => "conflict",
            Self::MalformedRow => "malformed_row",
            Self::WardNotPermitted => "ward_not_permitted",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A row that breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    /// The offending column, when one is to blame.
    pub column: Option<&'static str>,
    /// A sentence for the person who fixes the source file.
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, column: Option<&'static str>, message: String) -> Self {
        Self {
            reason,
            column,
            message,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(f, "{} ({}): {}", self.reason, column, self.message),
            None => write!(f, "{}: {}", self.reason, self.message),
        }
    }
}

/// A row of any input format, seen as text fields by column name.
pub trait FieldSource {
    /// The raw text of a column; absent and empty fields are both `None`.
    fn field(&self, column: &str) -> Option<&str>;
}

/// What validation needs besides the row.
#[derive(Debug, Clone, Copy)]
pub struct Contract<'a> {
    pub wards: &'a WardRegistry,
    /// Events after `now + FUTURE_TOLERANCE` are rejected as future-dated.
    pub now: DateTime<Utc>,
}

/// Clock skew tolerated between a source system and chiso.
pub fn future_tolerance() -> Duration {
    Duration::hours(1)
}

/// Reads a boolean as the contract allows (case-insensitive).
pub fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "1", "yes", "có", "co"];
    const FALSE: [&str; 5] = ["false", "0", "no", "không", "khong"];
    let text = trim(text);
    // Every row has several booleans: the common spellings are compared
    // without building a lower-cased copy.
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(text));
    if is(&TRUE) {
        return Some(true);
    }
    if is(&FALSE) {
        return Some(false);
    }
    match text.to_lowercase().as_str() {
        lower if TRUE.contains(&lower) => Some(true),
        lower if FALSE.contains(&lower) => Some(false),
        _ => None,
    }
}

/// `str::trim`, without decoding characters when the field neither starts
/// nor ends with a space or a non-ASCII byte (nearly every field): no
/// whitespace, ASCII or Unicode, is a printable ASCII byte.
fn trim(text: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|b| (0x21..0x7f).contains(b));
    let bytes = text.as_bytes();
    if printable(bytes.first()) && printable(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// The number of characters of `text`, counted only when the byte length
/// does not already settle that it is at most `max`.
fn exceeds_chars(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().count() > max
}

struct Row<'r, S: FieldSource + ?Sized> {
    source: &'r S,
}

/// `text` in Unicode NFC, borrowed when it already is (ASCII, and nearly
/// every Vietnamese field from a Windows export).
pub fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

impl<S: FieldSource + ?Sized> Row<'_, S> {
    fn optional(&self, column: &'static str) -> Option<Cow<'_, str>> {
        let text = nfc(trim(self.source.field(column)?));
        (!text.is_empty()).then_some(text)
    }

    fn required(&self, column: &'static str) -> Result<Cow<'_, str>, Rejection> {
        self.optional(column).ok_or_else(|| {
            Rejection::new(
                RejectReason::MissingField,
                Some(column),
                format!("`{column}` is required"),
            )
        })
    }

    fn string(
        &self,
        column: &'static str,
        max: usize,
        required: bool,
    ) -> Result<Option<String>, Rejection> {
        let value = if required {
            Some(self.required(column)?)
        } else {
            self.optional(column)
        };
        match value {
            Some(v) if exceeds_chars(&v, max) => Err(Rejection::new(
                RejectReason::TooLong,
                Some(column),
                format!(
                    "`{column}` has {} characters; at most {max} are allowed",
                    v.chars().count()
                ),
            )),
            other => Ok(other.map(Cow::into_owned)),
        }
    }

    fn timestamp(
        &self,
        column: &'static str,
        required: bool,
    ) -> Result<Option<DateTime<Utc>>, Rejection> {
        let value = if required {
            Some(self.required(column)?)
        } else {
            self.optional(column)
        };
        value
            .map(|text| {
                parse_timestamp(&text).map_err(|e| {
                    Rejection::new(RejectReason::InvalidTimestamp, Some(column), e.to_string())
                })
            })
            .transpose()
    }

    fn boolean(&self, column: &'static str, required: bool) -> Result<Option<bool>, Rejection> {
        let value = if required {
            Some(self.required(column)?)
        } else {
            self.optional(column)
        };
        value
            .map(|text| {
                parse_bool(&text).ok_or_else(|| {
                    Rejection::new(
                        RejectReason::InvalidBool,
                        Some(column),
                        format!("`{text}` is not a boolean (true/false, 1/0, yes/no, có/không)"),
                    )
                })
            })
            .transpose()
    }

    fn enumeration<E: ContractEnum>(
        &self,
        column: &'static str,
        required: bool,
    ) -> Result<Option<E>, Rejection> {
        let value = if required {
            Some(self.required(column)?)
        } else {
            self.optional(column)
        };
        value
            .map(|text| {
                E::parse(&text).ok_or_else(|| {
                    Rejection::new(
                        RejectReason::InvalidEnum,
                        Some(column),
                        format!("`{text}` is not one of {}", E::expected()),
                    )
                })
            })
            .transpose()
    }
}

/// Validates one row. Columns the event type does not use are ignored, as the
/// contract says; the optional booleans of `received` default to `false`.
pub fn parse_event<S: FieldSource + ?Sized>(
    source: &S,
    contract: &Contract<'_>,
) -> Result<Event, Rejection> {
    use columns::*;
    let row = Row { source };
    let event_id = row
        .string(EVENT_ID, MAX_EVENT_ID_CHARS, true)?
        .unwrap_or_default();
    let dossier_id = row
        .string(DOSSIER_ID, MAX_DOSSIER_ID_CHARS, true)?
        .unwrap_or_default();
    let event_type: EventType = row.enumeration(EVENT_TYPE, true)?.expect("required");
    let occurred_at = row.timestamp(OCCURRED_AT, true)?.expect("required");
    if occurred_at > contract.now + future_tolerance() {
        return Err(Rejection::new(
            RejectReason::FutureTimestamp,
            Some(OCCURRED_AT),
            format!(
                "the event is dated {}, after the time of ingestion",
                crate::time::format_local(occurred_at)
            ),
        ));
    }

    let mut event = Event {
        event_id,
        dossier_id,
        event_type,
        occurred_at,
        ward_code: None,
        procedure_code: None,
        department_code: None,
        channel: None,
        full_online: None,
        due_at: None,
        fee_required: None,
        e_result: None,
        paid_online: None,
        rating: None,
    };
    match event_type {
        EventType::Received => {
            let ward = row.required(WARD_CODE)?;
            if !contract.wards.contains(&ward) {
                return Err(Rejection::new(
                    RejectReason::UnknownWard,
                    Some(WARD_CODE),
                    format!("ward code `{ward}` is not in the ward registry"),
                ));
            }
            event.ward_code = Some(ward.into_owned());
            event.procedure_code = row.string(PROCEDURE_CODE, MAX_CODE_CHARS, true)?;
            event.department_code = row.string(DEPARTMENT_CODE, MAX_CODE_CHARS, false)?;
            event.channel = row.enumeration(CHANNEL, true)?;
            event.full_online = Some(row.boolean(FULL_ONLINE, false)?.unwrap_or(false));
            event.due_at = row.timestamp(DUE_AT, false)?;
            event.fee_required = Some(row.boolean(FEE_REQUIRED, false)?.unwrap_or(false));
        }
        EventType::Resolved => event.e_result = row.boolean(E_RESULT, true)?,
        EventType::Paid => event.paid_online = row.boolean(PAID_ONLINE, true)?,
        EventType::Rated => event.rating = row.enumeration::<Rating>(RATING, true)?,
        EventType::SupplementRequested
        | EventType::SupplementReceived
        | EventType::Digitized
        | EventType::Returned
        | EventType::Stopped
        | EventType::Withdrawn
        | EventType::Apologized => {}
    }
    Ok(event)
}

/// Lets a `(column, value)` list serve as a row, for tests and small callers.
impl FieldSource for [(&str, &str)] {
    fn field(&self, column: &str) -> Option<&str> {
        self.iter().find(|(c, _)| *c == column).map(|(_, v)| *v)
    }
}

impl<const N: usize> FieldSource for [(&str, &str); N] {
    fn field(&self, column: &str) -> Option<&str> {
        self.as_slice().field(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Channel;

    fn contract(wards: &WardRegistry) -> Contract<'_> {
        Contract {
            wards,
            now: parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
        }
    }

    fn received<'a>(over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut row = vec![
            ("event_id", "e1"),
            ("dossier_id", "d1"),
            ("event_type", "received"),
            ("occurred_at", "2025-07-14T08:03:00+07:00"),
            ("ward_code", "31120"),
            ("procedure_code", "1.001193"),
            ("channel", "online"),
            ("fee_required", "Có"),
        ];
        for (k, v) in over {
            row.retain(|(c, _)| c != k);
            row.push((k, v));
        }
        row
    }

    fn reason(over: &[(&str, &str)]) -> (RejectReason, Option<&'static str>) {
        let wards = WardRegistry::builtin();
        let row = received(over);
        let r = parse_event(row.as_slice(), &contract(wards)).unwrap_err();
        (r.reason, r.column)
    }

    #[test]
    fn a_good_received_row_gets_defaults() {
        let wards = WardRegistry::builtin();
        let row = received(&[]);
        let e = parse_event(row.as_slice(), &contract(wards)).unwrap();
        assert_eq!(e.channel, Some(Channel::Online));
        assert_eq!(e.full_online, Some(false));
        assert_eq!(e.fee_required, Some(true));
        assert_eq!(e.due_at, None);
    }

    #[test]
    fn unused_columns_are_ignored() {
        let wards = WardRegistry::builtin();
        let row = [
            ("event_id", "e2"),
            ("dossier_id", "d1"),
            ("event_type", "digitized"),
            ("occurred_at", "2025-07-14T09:00:00"),
            ("ward_code", "not a ward"),
            ("rating", "whatever"),
        ];
        let e = parse_event(&row, &contract(wards)).unwrap();
        assert_eq!(e.ward_code, None);
        assert_eq!(e.rating, None);
    }

    #[test]
    fn each_rule_has_its_reason_and_column() {
        use RejectReason::*;
        assert_eq!(
            reason(&[("ward_code", "99999")]),
            (UnknownWard, Some("ward_code"))
        );
        assert_eq!(
            reason(&[("procedure_code", "")]),
            (MissingField, Some("procedure_code"))
        );
        assert_eq!(
            reason(&[("channel", "fax")]),
            (InvalidEnum, Some("channel"))
        );
        assert_eq!(
            reason(&[("event_type", "approved")]),
            (InvalidEnum, Some("event_type"))
        );
        assert_eq!(
            reason(&[("occurred_at", "31/02/2025")]),
            (InvalidTimestamp, Some("occurred_at"))
        );
        assert_eq!(
            reason(&[("occurred_at", "2099-01-01T00:00:00Z")]),
            (FutureTimestamp, Some("occurred_at"))
        );
        assert_eq!(
            reason(&[("full_online", "maybe")]),
            (InvalidBool, Some("full_online"))
        );
        let long = "x".repeat(65);
        assert_eq!(
            reason(&[("dossier_id", long.as_str())]),
            (TooLong, Some("dossier_id"))
        );
    }

    #[test]
    fn fields_are_trimmed_of_any_whitespace_and_measured_in_characters() {
        let wards = WardRegistry::builtin();
        // 64 characters is the limit, but these take 128 bytes.
        let vietnamese_id = "đ".repeat(64);
        let row = received(&[
            ("ward_code", "\u{a0}31120 "),
            ("procedure_code", "\t1.001193\u{3000}"),
            ("fee_required", " Không\r"),
            ("dossier_id", vietnamese_id.as_str()),
        ]);
        let e = parse_event(row.as_slice(), &contract(wards)).unwrap();
        assert_eq!(e.ward_code.as_deref(), Some("31120"));
        assert_eq!(e.procedure_code.as_deref(), Some("1.001193"));
        assert_eq!(e.fee_required, Some(false));
        assert_eq!(e.dossier_id, vietnamese_id);
        let too_long = "đ".repeat(65);
        assert_eq!(
            reason(&[("dossier_id", too_long.as_str())]),
            (RejectReason::TooLong, Some("dossier_id"))
        );
    }

    #[test]
    fn booleans_in_every_accepted_spelling() {
        for t in ["true", "TRUE", "1", "yes", "Có", "CÓ"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "0", "No", "không", "KHÔNG", " False\u{a0}"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(r.code()), Some(r));
        }
    }

    proptest::proptest! {
        /// Any text in any column: an event or a rejection naming why.
        #[test]
        fn any_row_is_an_event_or_a_rejection(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    "\\PC{0,24}",
                    "[0-9T:+\\-]{0,30}",
                    "(received|processing_started|resolved|paid|rated|returned)",
                    "-?[0-9]{1,12}(-[0-9]{1,4}){0,2}T[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(Z|[+-][0-9]{2}:[0-9]{2})?",
                ],
                columns::ALL.len(),
            ),
        ) {
            let wards = WardRegistry::builtin();
            let row: Vec<(&str, &str)> = columns::ALL
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            if let Err(rejection) = parse_event(row.as_slice(), &contract(wards)) {
                proptest::prop_assert!(!rejection.message.is_empty());
            }
        }
    }
}
