//! The procedure catalogue a store keeps (`STORE/reference/procedures.csv`):
//! the names of the procedures and departments its events cite by code.
//! One reader for it: `chiso store set-catalogue` checks a file with it
//! before the store takes it, and the engine reads the names with it.

use std::collections::HashSet;
use std::path::Path;

use crate::StoreError;

/// One procedure of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    pub code: String,
    pub name: String,
    pub department_code: Option<String>,
    pub department_name: Option<String>,
    pub department_name_en: Option<String>,
}

const COLUMNS: [&str; 5] = [
    "procedure_code",
    "procedure_name",
    "department_code",
    "department_name",
    "department_name_en",
];

/// Reads a catalogue: a CSV with at least `procedure_code` and
/// `procedure_name` (in any order, other columns ignored), no empty or
/// repeated code. `path` names the file in errors.
pub fn read_procedures(path: &Path, bytes: &[u8]) -> Result<Vec<Procedure>, StoreError> {
    let invalid = |line: usize, reason: String| StoreError::Invalid {
        path: path.to_owned(),
        line,
        reason,
    };
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| invalid(1, e.to_string()))?
        .clone();
    let positions: Vec<Option<usize>> = COLUMNS
        .iter()
        .map(|column| header.iter().position(|h| h == *column))
        .collect();
    let (Some(code), Some(name)) = (positions[0], positions[1]) else {
        return Err(invalid(
            1,
            "the header needs procedure_code and procedure_name".into(),
        ));
    };
    let mut seen = HashSet::new();
    let mut procedures = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| invalid(line, e.to_string()))?;
        let field = |position: Option<usize>| {
            position
                .and_then(|p| record.get(p))
                .filter(|value| !value.is_empty())
                // Names show on pages and codes match the events': as NFC.
                .map(|value| chiso_core::contract::nfc(value).into_owned())
        };
        let Some(value) = field(Some(code)) else {
            if record.iter().all(str::is_empty) {
                continue;
            }
            return Err(invalid(line, "procedure_code is empty".into()));
        };
        if !seen.insert(value.clone()) {
            return Err(invalid(
                line,
                format!("procedure_code `{value}` is repeated"),
            ));
        }
        procedures.push(Procedure {
            code: value,
            name: field(Some(name)).unwrap_or_default(),
            department_code: field(positions[2]),
            department_name: field(positions[3]),
            department_name_en: field(positions[4]),
        });
    }
    Ok(procedures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_is_read_by_its_header() {
        let text = "\u{feff}department_code,procedure_code,procedure_name,extra\n\
                    SYT,1.001,\"Cấp phép, lần đầu\",x\n\
                    ,2.002,Đăng ký,y\n\n";
        let procedures = read_procedures(Path::new("p.csv"), text.as_bytes()).unwrap();
        assert_eq!(procedures.len(), 2);
        assert_eq!(procedures[0].name, "Cấp phép, lần đầu");
        assert_eq!(procedures[0].department_code.as_deref(), Some("SYT"));
        assert_eq!(procedures[1].department_code, None);
    }

    #[test]
    fn decomposed_names_are_read_composed() {
        let text = "procedure_code,procedure_name,department_name\n\
                    1.001,Đăng ky\u{301} ho\u{323}\u{302} kinh doanh,Sơ\u{309} Tư pháp\n";
        let procedures = read_procedures(Path::new("p.csv"), text.as_bytes()).unwrap();
        assert_eq!(procedures[0].name, "Đăng ký hộ kinh doanh");
        assert_eq!(procedures[0].department_name.as_deref(), Some("Sở Tư pháp"));
    }

    #[test]
    fn a_bad_catalogue_names_the_line() {
        let error = |text: &str| {
            read_procedures(Path::new("p.csv"), text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(error("code,name\n1,a\n").contains("procedure_code and procedure_name"));
        let repeated = error("procedure_code,procedure_name\n1,a\n1,b\n");
        assert!(
            repeated.contains("p.csv") && repeated.contains('3'),
            "{repeated}"
        );
        assert!(error("procedure_code,procedure_name\n,a\n").contains("empty"));
    }
}
