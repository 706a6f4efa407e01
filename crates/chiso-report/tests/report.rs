//! The packs of the built-in sample city, read back by tools nobody on the
//! team wrote: the PDF with poppler's `pdftotext` (and rendered to PNG with
//! `pdftoppm`, kept as test artefacts), the XLSX with calamine, and again
//! after LibreOffice headless has opened and saved it when LibreOffice is
//! installed. Without poppler the PDF checks say they skipped, unless
//! CHISO_REQUIRE_POPPLER is set (CI sets it).

use std::path::Path;
use std::process::Command;

use calamine::{DataType as _, Reader};
use chiso_dashboard::{Dashboards, Lang, Params, Table, Value};
use chiso_engine::Engine;
use chiso_report::{DocumentFormat, pack_document};
use chiso_test_support::SampleCity;

/// The rows of an engine query as plain values.
async fn rows(engine: &Engine, sql: &str) -> Table {
    let batches = engine
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("rows");
    Table::from_batches(&batches, usize::MAX).expect("table")
}

fn poppler() -> bool {
    chiso_test_support::tool_available("pdftotext", "-v", "CHISO_REQUIRE_POPPLER", "poppler-utils")
}

fn pdf_text(path: &Path) -> String {
    let output = Command::new("pdftotext")
        .args(["-layout"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn pages(path: &Path) -> usize {
    let output = Command::new("pdfinfo")
        .arg(path)
        .output()
        .expect("pdfinfo runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a page count")
}

/// Renders the pages to PNG where a person can look at them.
fn keep_pictures(pdf: &Path, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-pages");
    std::fs::create_dir_all(&dir).expect("dir");
    let status = Command::new("pdftoppm")
        .args(["-r", "50", "-png"])
        .arg(pdf)
        .arg(dir.join(name))
        .status()
        .expect("pdftoppm runs");
    assert!(status.success());
}

fn vi_percent(value: &Value) -> Option<String> {
    value
        .as_f64()
        .map(|x| format!("{} %", chiso_core::format::vi_decimal(x, 2)))
}

/// The ranking sheet of a city pack's workbook holds the 103 wards with the
/// engine's numbers (`wards`: code, name, on-time rate, received, score).
fn ranking_sheet_agrees(xlsx: &[u8], wards: &Table) {
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.to_vec())).expect("an XLSX file");
    let names = workbook.sheet_names();
    assert!(
        names.iter().any(|n| n == "Thông tin") && names.iter().any(|n| n == "Định nghĩa"),
        "{names:?}"
    );
    let ranking = names
        .iter()
        .find(|n| n.starts_with("Bảng xếp hạng"))
        .expect("the ranking sheet")
        .clone();
    let range = workbook.worksheet_range(&ranking).expect("sheet");
    let sheet: Vec<_> = range.rows().collect();
    let header = sheet
        .iter()
        .position(|r| r.iter().any(|c| c.get_string() == Some("Xã, phường")))
        .expect("a header row");
    let column = |label: &str| {
        sheet[header]
            .iter()
            .position(|c| c.get_string() == Some(label))
            .unwrap_or_else(|| panic!("no column {label}"))
    };
    let (name, on_time, received, score) = (
        column("Xã, phường"),
        column("Đúng hạn"),
        column("Tiếp nhận"),
        column("Điểm 766"),
    );
    let body = &sheet[header + 1..];
    assert_eq!(body.len(), 103);
    for row in body {
        let ward = row[name].to_string();
        let expected = wards
            .rows
            .iter()
            .find(|r| r[1].raw_text() == ward)
            .unwrap_or_else(|| panic!("{ward} is not a ward"));
        assert_eq!(
            row[received].as_f64(),
            expected[3].as_f64(),
            "{ward}: received"
        );
        let close = |got: Option<f64>, want: Option<f64>| match (got, want) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (a, b) => a == b,
        };
        assert!(
            close(
                row[on_time].as_f64(),
                expected[2].as_f64().map(|r| r / 100.0)
            ),
            "{ward}: on time {:?} vs {:?}",
            row[on_time],
            expected[2]
        );
        assert!(
            close(row[score].as_f64(), expected[4].as_f64()),
            "{ward}: score"
        );
    }
}

/// The workbook can be sent upward as it is: sheet names cut between
/// words, headers in words (no column names), bands in Vietnamese, ward
/// codes beside names, and every table sheet prints its header row on
/// every page.
fn workbook_reads_as_sent(xlsx: &[u8], titles: &[String]) {
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.to_vec())).expect("an XLSX file");
    let names = workbook.sheet_names();
    for name in &names {
        assert!(name.chars().count() <= 31, "{name}");
        let whole_words = titles.iter().any(|title| {
            // Excel refuses []:*?/\ in a sheet name; they become dashes.
            let title = title.replace(['[', ']', ':', '*', '?', '/', '\\'], "-");
            title.starts_with(name.as_str())
                && title[name.len()..]
                    .trim_start_matches([',', ';', ':', '-', '·'])
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        });
        assert!(
            whole_words || ["Thông tin", "Định nghĩa"].contains(&name.as_str()),
            "the sheet name `{name}` cuts a title mid-word"
        );
    }
    let print_titles = workbook
        .defined_names()
        .iter()
        .filter(|(name, _)| name.contains("Print_Titles"))
        .count();
    assert!(
        print_titles >= names.len() - 1,
        "{print_titles} sheets repeat their header"
    );
    let code_like = |text: &str| {
        !text.is_empty()
            && text.contains('_')
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    for name in &names {
        let range = workbook.worksheet_range(name).expect("sheet");
        // The title, a blank line, then the header.
        let Some(header) = range.rows().nth(2) else {
            continue;
        };
        for cell in header {
            let text = cell.to_string();
            assert!(!code_like(&text), "sheet `{name}` has the header `{text}`");
        }
    }
    let ranking = names
        .iter()
        .find(|n| n.starts_with("Bảng xếp hạng"))
        .expect("the ranking sheet")
        .clone();
    let range = workbook.worksheet_range(&ranking).expect("sheet");
    let rows: Vec<_> = range.rows().collect();
    let header = &rows[2];
    let at = |label: &str| {
        header
            .iter()
            .position(|c| c.get_string() == Some(label))
            .unwrap_or_else(|| panic!("no column {label}"))
    };
    let (code, band) = (at("Mã"), at("Xếp loại"));
    for row in &rows[3..] {
        assert_eq!(row[code].to_string().len(), 5, "a ward code");
        let band = row[band].to_string();
        assert!(
            ["Xuất sắc", "Tốt", "Khá", "Trung bình", "Yếu", ""].contains(&band.as_str()),
            "band `{band}`"
        );
    }
}

/// `xlsx` opened and saved again by LibreOffice headless, when it is
/// installed (it is optional: CI does not install it).
fn resaved_by_libreoffice(xlsx: &[u8], dir: &Path) -> Option<Vec<u8>> {
    if Command::new("soffice").arg("--version").output().is_err() {
        eprintln!("LibreOffice is not installed: skipping the conversion check");
        return None;
    }
    let input = dir.join("libreoffice-in.xlsx");
    let out = dir.join("libreoffice-out");
    std::fs::write(&input, xlsx).expect("write");
    let profile = format!(
        "-env:UserInstallation=file://{}",
        dir.join("lo-profile").display()
    );
    let status = Command::new("soffice")
        .args([
            profile.as_str(),
            "--headless",
            "--convert-to",
            "xlsx",
            "--outdir",
        ])
        .arg(&out)
        .arg(&input)
        .output()
        .expect("soffice runs");
    assert!(
        status.status.success(),
        "LibreOffice: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    Some(std::fs::read(out.join("libreoffice-in.xlsx")).expect("LibreOffice wrote the workbook"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_pack_says_what_the_engine_says_in_pdf_and_xlsx() {
    let city = SampleCity::open("report-city").await;
    let (engine, dir) = (&city.engine, city.dir.root());
    let dashboards = Dashboards::builtin().expect("dashboards");
    let pack = dashboards.pack("city").expect("city pack");
    let period = engine.period("2025-W40").expect("period");
    let params = Params::new(period, Lang::Vi, engine.now());
    let document = pack_document(
        &chiso_report::Tables::new(engine),
        &dashboards,
        pack,
        &params,
    )
    .await
    .expect("document");
    assert_eq!(document.file_stem, "chiso-city-2025-W40");
    let city = rows(engine, "SELECT * FROM kpi('2025-W40', 'city')").await;
    let wards = rows(
        engine,
        "SELECT k.ward_code, k.ward_name, k.on_time_rate, k.received, i.score_100 \
         FROM kpi('2025-W40', 'ward') k JOIN kpi_index('2025-W40', 'portal') i ON i.ward_code = k.ward_code",
    )
    .await;
    assert_eq!(wards.rows.len(), 103);

    // The PDF: every ward by its name, with its diacritics; the headline
    // figures; the data it was made from.
    let pdf = DocumentFormat::Pdf.write(&document).expect("pdf");
    assert!(pdf.starts_with(b"%PDF"));
    let path = dir.join("city.pdf");
    std::fs::write(&path, &pdf).expect("write");
    if poppler() {
        let text = pdf_text(&path);
        for row in &wards.rows {
            let name = row[1].raw_text();
            assert!(text.contains(&name), "the PDF lacks {name}");
        }
        let received = city.get(0, "received").expect("received").raw_text();
        let on_time = vi_percent(city.get(0, "on_time_rate").expect("rate")).expect("a rate");
        for figure in [&received, &on_time] {
            assert!(
                text.contains(figure.as_str()),
                "the PDF lacks the headline {figure}"
            );
        }
        assert!(text.contains("Tuần 40/2025"));
        assert!(text.contains("Phiên bản dữ liệu (sự kiện)"));
        assert!(text.contains("Phương pháp tính"), "the methods page");
        assert!(text.contains("Trang 1 /"), "page numbers");
        let count = pages(&path);
        assert!((8..=40).contains(&count), "{count} pages");
        keep_pictures(&path, "city-2025-W40");

        // Page 1 is the message, before the cover and the contents: the
        // summary, then the wards needing attention with their reasons.
        let first_page = text.split('\u{c}').next().unwrap_or_default();
        assert!(first_page.contains("Tóm tắt"), "{first_page}");
        assert!(first_page.contains("xã, phường cần chú ý"), "{first_page}");
        assert!(!first_page.contains("Nội dung"), "the contents come later");
        let overview = dashboards.page("overview").expect("overview");
        let top = chiso_dashboard::evaluate(
            engine,
            overview.panel("attention").expect("attention"),
            &params,
        )
        .await
        .expect("attention");
        assert!(!top.rows.is_empty() && top.rows.len() <= 10);
        for row in 0..top.rows.len() {
            let name = top.get(row, "ward_name").expect("name").raw_text();
            let reasons = top.get(row, "reasons").expect("reasons").raw_text();
            let first_reason = reasons.split("; ").next().unwrap_or_default();
            assert!(first_page.contains(&name), "page 1 lacks {name}");
            assert!(
                first_page.contains(first_reason),
                "page 1 lacks {name}'s reason {first_reason}"
            );
        }
    }

    // Each language's pack speaks that language: no label of the other one
    // (ward names, proper names, stay as they are).
    if poppler() {
        let mut english = params.clone();
        english.lang = Lang::En;
        let document = pack_document(
            &chiso_report::Tables::new(engine),
            &dashboards,
            pack,
            &english,
        )
        .await
        .expect("English document");
        let path = dir.join("city-en.pdf");
        std::fs::write(&path, DocumentFormat::Pdf.write(&document).expect("pdf")).expect("write");
        let english = pdf_text(&path);
        for label in ["Summary", "wards need attention", "Target 95", "Page 1 /"] {
            assert!(english.contains(label), "the English pack lacks {label}");
        }
        for label in [
            "Tóm tắt",
            "cần chú ý",
            "Nghiêm trọng",
            "Mục tiêu",
            "điểm %",
            "Trang ",
            "Xếp loại",
            "Tiếp nhận",
            "Phương pháp",
            "Xuất sắc",
        ] {
            assert!(!english.contains(label), "the English pack says {label}");
        }
        let vietnamese = pdf_text(&dir.join("city.pdf"));
        for label in [
            "Summary",
            "Needs attention",
            "Critical",
            "Target",
            "Page ",
            " pp",
            "Excellent",
            "Ranking",
        ] {
            assert!(
                !vietnamese.contains(label),
                "the Vietnamese pack says {label}"
            );
        }
    }

    // The rule as stated: every ward with 20 overdue dossiers or more, or
    // on time below 85 %, is on the flags page as critical; none is
    // flagged without a reason.
    let flags = dashboards.page("flags").expect("flags");
    let flagged = chiso_dashboard::evaluate(
        engine,
        flags.panel("attention").expect("attention"),
        &params,
    )
    .await
    .expect("flags");
    let grave = rows(
        engine,
        "SELECT ward_code FROM kpi('2025-W40', 'ward') \
         WHERE in_progress_overdue >= 20 OR on_time_rate < 85",
    )
    .await;
    for row in &grave.rows {
        let code = row[0].raw_text();
        let found = (0..flagged.rows.len())
            .find(|&i| flagged.get(i, "ward_code").map(Value::raw_text) == Some(code.clone()));
        let row = found.unwrap_or_else(|| panic!("{code} is not flagged"));
        assert_eq!(
            flagged.get(row, "severity").map(Value::raw_text).as_deref(),
            Some("critical")
        );
    }
    for row in 0..flagged.rows.len() {
        assert!(
            !flagged
                .get(row, "reasons")
                .expect("reasons")
                .raw_text()
                .is_empty()
        );
    }

    // The XLSX: the ranking sheet's numbers are the engine's, rates as
    // fractions formatted as percentages; and so they stay once LibreOffice
    // (when installed) has opened the workbook and saved it again.
    let xlsx = DocumentFormat::Xlsx.write(&document).expect("xlsx");
    ranking_sheet_agrees(&xlsx, &wards);
    let titles: Vec<String> = document
        .sections
        .iter()
        .map(|s| s.panel.title.get(Lang::Vi).to_owned())
        .collect();
    workbook_reads_as_sent(&xlsx, &titles);
    if let Some(saved) = resaved_by_libreoffice(&xlsx, dir) {
        ranking_sheet_agrees(&saved, &wards);
    }

    let html = DocumentFormat::Html.write(&document).expect("html");
    let html = String::from_utf8(html).expect("UTF-8");
    assert!(html.contains("<svg") && html.contains("Phường Ninh Kiều"));
    assert!(!html.contains("src=\"http"), "self-contained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_packs_empty_periods_and_unknown_wards_are_honest() {
    let city = SampleCity::open("report-ward").await;
    let (engine, dir) = (&city.engine, city.dir.root());
    let dashboards = Dashboards::builtin().expect("dashboards");
    let ward_pack = dashboards.pack("ward").expect("ward pack");
    let city_pack = dashboards.pack("city").expect("city pack");
    let at = |period: &str, ward: Option<&str>, lang: Lang| {
        let mut params = Params::new(engine.period(period).expect("period"), lang, engine.now());
        params.ward = ward.map(|code| {
            chiso_core::wards::WardRegistry::builtin()
                .code(code)
                .expect("a ward")
        });
        params
    };

    // A ward's pack lists its procedures and the dossiers that need action.
    let params = at("2025-09", Some("31135"), Lang::Vi);
    let document = pack_document(
        &chiso_report::Tables::new(engine),
        &dashboards,
        ward_pack,
        &params,
    )
    .await
    .expect("ward document");
    assert_eq!(document.scope, "Phường Ninh Kiều");
    let procedures = rows(
        engine,
        "SELECT procedure_name FROM kpi('2025-09', 'procedure', '31135') WHERE received > 0 OR resolved > 0",
    )
    .await;
    assert!(!procedures.rows.is_empty());
    let pdf = DocumentFormat::Pdf.write(&document).expect("pdf");
    let path = dir.join("ward.pdf");
    std::fs::write(&path, &pdf).expect("write");
    if poppler() {
        let text = pdf_text(&path);
        assert!(text.contains("Phường Ninh Kiều"));
        for row in procedures.rows.iter().take(5) {
            // Long names wrap in the table: the first words are on a line.
            let name = row[0].raw_text();
            let start: String = name
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                text.contains(&start),
                "the ward pack lacks the procedure {name}"
            );
        }
        assert!(
            text.contains("Hồ sơ đang quá hạn")
                && text.contains("Hồ sơ trễ hạn chưa có thư xin lỗi")
        );
        // The dossiers due within 2 working days of the month's T, as
        // due_soon lists them.
        assert!(text.contains("Hồ sơ sắp đến hạn trong 2 ngày làm việc tới"));
        let due = rows(
            engine,
            "SELECT dossier_id FROM due_soon('2025-09', 2, '31135') ORDER BY effective_due_at, dossier_id",
        )
        .await;
        assert!(!due.rows.is_empty());
        for row in due.rows.iter().take(10) {
            let id = row[0].raw_text();
            assert!(
                text.contains(&id),
                "the ward pack lacks the dossier {id} due soon"
            );
        }
        // The ward's own 766 points, indicator by indicator.
        assert!(text.contains("Điểm 766 của xã, phường theo từng chỉ tiêu"));
        let points = rows(
            engine,
            "SELECT points FROM kpi_index_detail('2025-09', 'portal') \
             WHERE ward_code = '31135' AND assessed",
        )
        .await;
        assert!(!points.rows.is_empty());
        for row in &points.rows {
            let written = chiso_core::format::vi_decimal(row[0].as_f64().expect("points"), 2);
            assert!(
                text.contains(&written),
                "the ward pack lacks the points {written}"
            );
        }
        assert!(
            !text.contains("chưa có danh mục thủ tục"),
            "the sample has names"
        );
        keep_pictures(&path, "ward-31135-2025-09");

        // A store without the names of its procedures says so on the pack.
        let mut nameless = document.clone();
        nameless.freshness.has_catalogue = false;
        let path = dir.join("ward-nameless.pdf");
        std::fs::write(&path, DocumentFormat::Pdf.write(&nameless).expect("pdf")).expect("write");
        assert!(pdf_text(&path).contains("chưa có danh mục thủ tục"));
    }

    // A period with no data: a document that says so, in every format.
    for (pack, ward) in [(city_pack, None), (ward_pack, Some("31135"))] {
        let params = at("2023-W10", ward, Lang::En);
        let document = pack_document(
            &chiso_report::Tables::new(engine),
            &dashboards,
            pack,
            &params,
        )
        .await
        .expect("an empty period still makes a document");
        for format in [
            DocumentFormat::Pdf,
            DocumentFormat::Xlsx,
            DocumentFormat::Html,
        ] {
            let bytes = format.write(&document).expect("written");
            assert!(!bytes.is_empty());
            if format == DocumentFormat::Html {
                let text = String::from_utf8(bytes).expect("UTF-8");
                // The period is named; rates with nothing to count read "–", not 0.
                assert!(text.contains("Week 10/2023"), "{}", pack.id);
                assert!(
                    text.contains(">–<") || text.contains("No data"),
                    "{}",
                    pack.id
                );
            }
        }
    }

    // An unknown ward is refused where its code comes in (a pack can only
    // be asked for a ward of the registry), and a ward pack without a ward
    // is refused too.
    let unknown = chiso_core::wards::WardRegistry::builtin()
        .code("99999")
        .expect_err("no such ward");
    assert!(unknown.to_string().contains("99999"), "{unknown}");
    let missing = pack_document(
        &chiso_report::Tables::new(engine),
        &dashboards,
        ward_pack,
        &at("2025-09", None, Lang::Vi),
    )
    .await
    .expect_err("a ward pack needs a ward");
    assert!(missing.to_string().contains("--ward"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_writes_a_week_once() {
    let city = SampleCity::open("report-archive").await;
    let (engine, dir) = (&city.engine, city.dir.root());
    let dashboards = Dashboards::builtin().expect("dashboards");
    // Two wards' packs are enough to show the rule; the full run is
    // measured by benches/report.sh.
    let mut small = dashboards.clone();
    let archive = chiso_report::archive::Archive::new(dir.join("reports"));
    let week = chiso_report::archive::week_ended(engine.now());
    assert_eq!(week.to_string(), "2025-W52");
    small.packs.retain(|p| !p.per_ward);
    let first = archive
        .write_period(engine, &small, week)
        .await
        .expect("first run");
    assert_eq!(first.written.len(), 2, "{first:?}");
    assert_eq!(first.kept, 0);
    let again = archive
        .write_period(engine, &small, week)
        .await
        .expect("second run");
    assert!(again.written.is_empty());
    assert_eq!(again.kept, 2);
    let listed = archive.list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].period, "2025-W52");
    let names: Vec<&str> = listed[0].files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["chiso-city-2025-W52.pdf", "chiso-city-2025-W52.xlsx"]
    );
    assert!(
        archive
            .file("2025-W52", "chiso-city-2025-W52.pdf")
            .is_some()
    );
}
