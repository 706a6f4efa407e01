//! The event contract of `docs/events.md`, version 1.
//!
//! One row per event. The column order below is the CSV column order; NDJSON
//! keys and Parquet columns use the same names. Timestamps are stored in UTC
//! at microsecond precision; local dates are derived in the business zone.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

/// Column names of the event log, in CSV order.
pub mod columns {
    pub const EVENT_ID: &str = "event_id";
    pub const DOSSIER_ID: &str = "dossier_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const OCCURRED_AT: &str = "occurred_at";
    pub const WARD_CODE: &str = "ward_code";
    pub const PROCEDURE_CODE: &str = "procedure_code";
    pub const DEPARTMENT_CODE: &str = "department_code";
    pub const CHANNEL: &str = "channel";
    pub const FULL_ONLINE: &str = "full_online";
    pub const DUE_AT: &str = "due_at";
    pub const FEE_REQUIRED: &str = "fee_required";
    pub const E_RESULT: &str = "e_result";
    pub const PAID_ONLINE: &str = "paid_online";
    pub const RATING: &str = "rating";

    /// The position of a column in [`ALL`], without a linear search: row
    /// readers call this for every field of every row.
    pub fn index_of(name: &str) -> Option<usize> {
        Some(match name {
            EVENT_ID => 0,
            DOSSIER_ID => 1,
            EVENT_TYPE => 2,
            OCCURRED_AT => 3,
            WARD_CODE => 4,
            PROCEDURE_CODE => 5,
            DEPARTMENT_CODE => 6,
            CHANNEL => 7,
            FULL_ONLINE => 8,
            DUE_AT => 9,
            FEE_REQUIRED => 10,
            E_RESULT => 11,
            PAID_ONLINE => 12,
            RATING => 13,
            _ => return None,
        })
    }

    /// Every column, in the order of the CSV header.
    pub const ALL: [&str; 14] = [
        EVENT_ID,
        DOSSIER_ID,
        EVENT_TYPE,
        OCCURRED_AT,
        WARD_CODE,
        PROCEDURE_CODE,
        DEPARTMENT_CODE,
        CHANNEL,
        FULL_ONLINE,
        DUE_AT,
        FEE_REQUIRED,
        E_RESULT,
        PAID_ONLINE,
        RATING,
    ];
}

/// Longest accepted `event_id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 128;
/// Longest accepted `dossier_id`, in characters.
pub const MAX_DOSSIER_ID_CHARS: usize = 64;
/// Longest accepted `procedure_code` or `department_code`, in characters.
pub const MAX_CODE_CHARS: usize = 32;

/// The Arrow type of every timestamp column: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow schema of the event log.
pub fn event_schema() -> SchemaRef {
    use columns::*;
    Arc::new(Schema::new(vec![
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(DOSSIER_ID, DataType::Utf8, false),
        Field::new(EVENT_TYPE, DataType::Utf8, false),
        Field::new(OCCURRED_AT, timestamp_type(), false),
        Field::new(WARD_CODE, DataType::Utf8, true),
        Field::new(PROCEDURE_CODE, DataType::Utf8, true),
        Field::new(DEPARTMENT_CODE, DataType::Utf8, true),
        Field::new(CHANNEL, DataType::Utf8, true),
        Field::new(FULL_ONLINE, DataType::Boolean, true),
        Field::new(DUE_AT, timestamp_type(), true),
        Field::new(FEE_REQUIRED, DataType::Boolean, true),
        Field::new(E_RESULT, DataType::Boolean, true),
        Field::new(PAID_ONLINE, DataType::Boolean, true),
        Field::new(RATING, DataType::Utf8, true),
    ]))
}

/// An enum of the contract whose values are fixed strings.
pub trait ContractEnum: Sized + Copy + 'static {
    /// Every value, in the order of the spec.
    const ALL: &'static [Self];
    /// The value as written in the event log.
    fn as_str(self) -> &'static str;
    /// Reads a value as written in the event log (exact, lower case).
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
    /// The accepted values, for error messages.
    fn expected() -> String {
        Self::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

macro_rules! contract_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal, $vi:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl ContractEnum for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl $name {
            /// The Vietnamese label shown to users.
            pub fn label_vi(self) -> &'static str {
                match self { $(Self::$variant => $vi),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

contract_enum! {
    /// What happened to a dossier.
    EventType {
        Received => "received", "Tiếp nhận";
        SupplementRequested => "supplement_requested", "Yêu cầu bổ sung";
        SupplementReceived => "supplement_received", "Nhận bổ sung";
        Digitized => "digitized", "Số hóa";
        Paid => "paid", "Thanh toán";
        Resolved => "resolved", "Đã xử lý xong";
        Returned => "returned", "Đã trả kết quả";
        Stopped => "stopped", "Dừng xử lý";
        Withdrawn => "withdrawn", "Rút hồ sơ";
        Apologized => "apologized", "Thư xin lỗi";
        Rated => "rated", "Đánh giá";
    }
}

contract_enum! {
    /// How a dossier was submitted (KenhThucHien 1/2/3).
    Channel {
        Direct => "direct", "Trực tiếp";
        Online => "online", "Trực tuyến";
        Postal => "postal", "Bưu chính";
    }
}

contract_enum! {
    /// The applicant's rating.
    Rating {
        VerySatisfied => "very_satisfied", "Rất hài lòng";
        Satisfied => "satisfied", "Hài lòng";
        Dissatisfied => "dissatisfied", "Không hài lòng";
    }
}

/// One validated event. Fields an event type does not use are `None`;
/// optional booleans of a `received` event carry their default (`false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub dossier_id: String,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub ward_code: Option<String>,
    pub procedure_code: Option<String>,
    pub department_code: Option<String>,
    pub channel: Option<Channel>,
    pub full_online: Option<bool>,
    pub due_at: Option<DateTime<Utc>>,
    pub fee_required: Option<bool>,
    pub e_result: Option<bool>,
    pub paid_online: Option<bool>,
    pub rating: Option<Rating>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(Channel::parse("online"), Some(Channel::Online));
        assert_eq!(Rating::parse("meh"), None);
        assert_eq!(EventType::ALL.len(), 11);
    }

    #[test]
    fn schema_follows_the_csv_column_order() {
        let schema = event_schema();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, columns::ALL);
        for (i, name) in columns::ALL.iter().enumerate() {
            assert_eq!(columns::index_of(name), Some(i));
        }
        assert_eq!(columns::index_of("nope"), None);
    }
}
