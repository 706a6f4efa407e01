//! The dossier-list spreadsheet, as a ward's one-stop software exports it:
//! a title row, then one row per dossier received in the month, with the
//! Vietnamese headers of `docs/events.md` (plus the STT and procedure-name columns
//! real exports carry, which ingestion ignores).

use std::collections::HashMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, Workbook};

use chiso_core::event::{EventType, Rating};
use chiso_core::time::BUSINESS_OFFSET_SECONDS;

use crate::catalogue::PROCEDURES;
use crate::clock;
use crate::model::{City, GenEvent, Payload};
use crate::rng::Rng;
use crate::{GenError, catalogue};

/// The columns of the export, in order.
pub const HEADERS: [&str; 19] = [
    "STT",
    "Mã hồ sơ",
    "Tên thủ tục",
    "Mã đơn vị",
    "Mã thủ tục",
    "Mã cơ quan",
    "Kênh nộp",
    "Toàn trình",
    "Ngày tiếp nhận",
    "Ngày hẹn trả",
    "Có phí",
    "Ngày số hóa",
    "Ngày có kết quả",
    "Kết quả điện tử",
    "Ngày trả kết quả",
    "Ngày dừng xử lý",
    "Ngày rút hồ sơ",
    "Thanh toán trực tuyến",
    "Đánh giá",
];

/// The row of the headers (0-based); rows above it hold the title.
pub const HEADER_ROW: u32 = 2;

/// What one exported dossier shows.
#[derive(Debug, Clone, Default)]
struct ListRow {
    dossier_id: String,
    procedure_name: &'static str,
    ward_code: String,
    procedure_code: &'static str,
    department_code: &'static str,
    channel: &'static str,
    full_online: bool,
    received_at: i64,
    due_at: Option<i64>,
    fee: bool,
    digitized_at: Option<i64>,
    resolved_at: Option<i64>,
    e_result: Option<bool>,
    returned_at: Option<i64>,
    stopped_at: Option<i64>,
    withdrawn_at: Option<i64>,
    paid_online: Option<bool>,
    rating: Option<Rating>,
}

/// Writes the list of `ward`'s dossiers received in the month of `month`.
/// With `shuffle`, rows come in another order, as a re-export sorted
/// differently would. Returns the number of dossiers.
pub fn write_dossier_list(
    city: &City,
    ward_code: &str,
    month: NaiveDate,
    shuffle: bool,
    path: &Path,
) -> Result<usize, GenError> {
    let ward = city
        .wards
        .position(ward_code)
        .ok_or_else(|| GenError::UnknownWard(ward_code.to_owned()))?;
    let mut rows = list_rows(city, ward as u16, month);
    if shuffle {
        let mut rng = Rng::new(city.params.seed, 0x5EED_5EED);
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let ward_name = city.wards.as_slice()[ward].full_name();
    let xlsx_error = |cause| GenError::Xlsx {
        path: path.to_owned(),
        cause,
    };
    let mut workbook = Workbook::new();
    // A fixed creation time keeps the file identical for the same seed.
    let created = ExcelDateTime::from_timestamp(city.end).map_err(xlsx_error)?;
    workbook.set_properties(
        &DocProperties::new()
            .set_creation_datetime(&created)
            .set_title("Danh sách hồ sơ"),
    );
    let sheet = workbook.add_worksheet();
    sheet.set_name("Danh sách hồ sơ").map_err(xlsx_error)?;
    let bold = Format::new().set_bold();
    let header = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center);
    let date_time = Format::new().set_num_format("dd/mm/yyyy hh:mm");
    let title = format!(
        "DANH SÁCH HỒ SƠ TIẾP NHẬN – {} – Tháng {:02}/{}",
        ward_name.to_uppercase(),
        month.month(),
        month.year()
    );
    sheet
        .write_string_with_format(0, 0, &title, &bold)
        .map_err(xlsx_error)?;
    for (col, name) in HEADERS.iter().enumerate() {
        sheet
            .write_string_with_format(HEADER_ROW, col as u16, *name, &header)
            .map_err(xlsx_error)?;
    }
    let yes_no = |b: bool| if b { "Có" } else { "Không" };
    for (i, row) in rows.iter().enumerate() {
        let r = HEADER_ROW + 1 + i as u32;
        let mut col = 0u16;
        let mut next = || {
            col += 1;
            col - 1
        };
        sheet
            .write_number(r, next(), (i + 1) as f64)
            .map_err(xlsx_error)?;
        let texts = [
            row.dossier_id.as_str(),
            row.procedure_name,
            row.ward_code.as_str(),
            row.procedure_code,
            row.department_code,
            row.channel,
            yes_no(row.full_online),
        ];
        for text in texts {
            sheet.write_string(r, next(), text).map_err(xlsx_error)?;
        }
        let date = |sheet: &mut rust_xlsxwriter::Worksheet,
                    col: u16,
                    t: Option<i64>|
         -> Result<(), GenError> {
            if let Some(t) = t {
                let local = ExcelDateTime::from_timestamp(t + i64::from(BUSINESS_OFFSET_SECONDS))
                    .map_err(xlsx_error)?;
                sheet
                    .write_datetime_with_format(r, col, &local, &date_time)
                    .map_err(xlsx_error)?;
            }
            Ok(())
        };
        date(sheet, next(), Some(row.received_at))?;
        date(sheet, next(), row.due_at)?;
        sheet
            .write_string(r, next(), yes_no(row.fee))
            .map_err(xlsx_error)?;
        date(sheet, next(), row.digitized_at)?;
        date(sheet, next(), row.resolved_at)?;
        let e_result_col = next();
        if let Some(e) = row.e_result {
            sheet
                .write_string(r, e_result_col, yes_no(e))
                .map_err(xlsx_error)?;
        }
        date(sheet, next(), row.returned_at)?;
        date(sheet, next(), row.stopped_at)?;
        date(sheet, next(), row.withdrawn_at)?;
        let paid_col = next();
        if let Some(p) = row.paid_online {
            sheet
                .write_string(r, paid_col, yes_no(p))
                .map_err(xlsx_error)?;
        }
        let rating_col = next();
        if let Some(rating) = row.rating {
            sheet
                .write_string(r, rating_col, rating.label_vi())
                .map_err(xlsx_error)?;
        }
    }
    let widths = [
        5.0, 24.0, 40.0, 9.0, 10.0, 9.0, 10.0, 9.0, 16.0, 16.0, 7.0, 16.0, 16.0, 9.0, 16.0, 16.0,
        16.0, 11.0, 14.0,
    ];
    for (col, width) in widths.into_iter().enumerate() {
        sheet
            .set_column_width(col as u16, width)
            .map_err(xlsx_error)?;
    }
    sheet
        .set_freeze_panes(HEADER_ROW + 1, 2)
        .map_err(xlsx_error)?;
    workbook.save(path).map_err(xlsx_error)?;
    Ok(rows.len())
}

fn list_rows(city: &City, ward: u16, month: NaiveDate) -> Vec<ListRow> {
    let first = month.with_day(1).unwrap_or(month);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    let (start, end) = (clock::at(first, 0), clock::at(next, 0));
    let mut index: HashMap<u32, usize> = HashMap::new();
    let mut rows = Vec::new();
    for (i, dossier) in city.dossiers.iter().enumerate() {
        if dossier.ward == ward && (start..end).contains(&dossier.received_at) {
            let procedure = &PROCEDURES[usize::from(dossier.procedure)];
            index.insert(i as u32, rows.len());
            rows.push(ListRow {
                dossier_id: city.dossier_id(dossier),
                procedure_name: procedure.name,
                ward_code: city.wards.as_slice()[usize::from(ward)].code.clone(),
                procedure_code: procedure.code,
                department_code: catalogue::department(procedure.department).map_or("", |d| d.code),
                channel: dossier.channel.label_vi(),
                full_online: dossier.full_online,
                received_at: dossier.received_at,
                due_at: dossier.due_at,
                fee: procedure.fee,
                ..ListRow::default()
            });
        }
    }
    // Events are in time order, so the first one of a kind is the earliest
    // and the last one the latest, as the derivation rules want.
    for event in &city.events {
        let Some(&row) = index.get(&event.dossier) else {
            continue;
        };
        apply(&mut rows[row], event);
    }
    rows
}

fn apply(row: &mut ListRow, event: &GenEvent) {
    let first = |slot: &mut Option<i64>| {
        slot.get_or_insert(event.at);
    };
    match (event.kind, event.payload) {
        (EventType::Digitized, _) => first(&mut row.digitized_at),
        (EventType::Resolved, Payload::Flag(e_result)) if row.resolved_at.is_none() => {
            row.resolved_at = Some(event.at);
            row.e_result = Some(e_result);
        }
        (EventType::Returned, _) => first(&mut row.returned_at),
        (EventType::Stopped, _) => first(&mut row.stopped_at),
        (EventType::Withdrawn, _) => first(&mut row.withdrawn_at),
        (EventType::Paid, Payload::Flag(online)) => row.paid_online = Some(online),
        (EventType::Rated, Payload::Rating(rating)) => row.rating = Some(rating),
        _ => {}
    }
}
