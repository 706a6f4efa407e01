//! The registry of communes and wards (đơn vị hành chính cấp xã).
//!
//! The built-in registry is the 103 units of Cần Thơ City since 1 July 2025,
//! compiled in from `data/wards.csv` (columns `ward_code,name,kind,former_province`).

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::OnceLock;

use crate::CoreError;

/// Whether a unit is an urban ward or a rural commune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WardKind {
    /// Phường: urban ward.
    Phuong,
    /// Xã: rural commune.
    Xa,
}

impl WardKind {
    /// The value as written in `wards.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phuong => "phuong",
            Self::Xa => "xa",
        }
    }

    /// The Vietnamese word, as used before a unit's name.
    pub fn label_vi(self) -> &'static str {
        match self {
            Self::Phuong => "Phường",
            Self::Xa => "Xã",
        }
    }
}

/// One commune or ward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ward {
    /// Five-digit administrative unit code.
    pub code: String,
    /// Name in NFC Unicode with diacritics, without the kind word.
    pub name: String,
    pub kind: WardKind,
    /// The province the unit belonged to before the 2025 merger.
    pub former_province: String,
}

impl Ward {
    /// The name as people say it: "Phường Cái Khế", "Xã Thạnh An".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.kind.label_vi(), self.name)
    }
}

/// The code of a ward of the registry: made only by [`WardRegistry::code`],
/// so that whatever holds one was checked once, where the text came in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WardCode(String);

impl WardCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WardCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for WardCode {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for WardCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A code that is not a ward of the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no ward has the code `{code}`; the city has {known}, listed in the table wards")]
pub struct UnknownWard {
    pub code: String,
    pub known: usize,
}

/// The set of known units, in registry order.
#[derive(Debug, Clone)]
pub struct WardRegistry {
    wards: Vec<Ward>,
    index: HashMap<String, usize>,
}

const BUILTIN_WARDS: &str = include_str!("../data/wards.csv");

impl WardRegistry {
    /// The 103 communes and wards of Cần Thơ City, read once per process.
    pub fn builtin() -> &'static Self {
        static CITY: OnceLock<WardRegistry> = OnceLock::new();
        CITY.get_or_init(|| {
            Self::from_csv("built-in wards.csv", BUILTIN_WARDS.as_bytes())
                .expect("the built-in ward registry is valid (checked by tests)")
        })
    }

    /// The registry's code for `text` (surrounding spaces ignored), or why not.
    pub fn code(&self, text: &str) -> Result<WardCode, UnknownWard> {
        let text = text.trim();
        match self.index.get_key_value(text) {
            Some((code, _)) => Ok(WardCode(code.clone())),
            None => Err(UnknownWard {
                // Bounded: the message repeats at most a code's worth of input.
                code: text.chars().take(32).collect(),
                known: self.len(),
            }),
        }
    }

    /// Reads a registry with the columns `ward_code,name,kind,former_province`.
    pub fn from_csv(source_name: &str, reader: impl Read) -> Result<Self, CoreError> {
        let invalid = |line: u64, reason: String| CoreError::Invalid {
            source_name: source_name.to_owned(),
            line,
            reason,
        };
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let mut wards = Vec::new();
        let mut index = HashMap::new();
        for (i, record) in csv.records().enumerate() {
            let line = i as u64 + 2;
            let record = record.map_err(|e| invalid(line, e.to_string()))?;
            let field = |n: usize| record.get(n).unwrap_or("").to_owned();
            let code = field(0);
            if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    line,
                    format!("ward code `{code}` is not five digits"),
                ));
            }
            let kind = match field(2).as_str() {
                "phuong" => WardKind::Phuong,
                "xa" => WardKind::Xa,
                other => {
                    return Err(invalid(
                        line,
                        format!("kind `{other}` is not `phuong` or `xa`"),
                    ));
                }
            };
            let name = field(1);
            if name.is_empty() {
                return Err(invalid(line, "the name is empty".into()));
            }
            if index.insert(code.clone(), wards.len()).is_some() {
                return Err(invalid(line, format!("ward code {code} appears twice")));
            }
            wards.push(Ward {
                code,
                name,
                kind,
                former_province: field(3),
            });
        }
        Ok(Self { wards, index })
    }

    pub fn get(&self, code: &str) -> Option<&Ward> {
        self.index.get(code).map(|&i| &self.wards[i])
    }

    /// The position of a ward in registry order.
    pub fn position(&self, code: &str) -> Option<usize> {
        self.index.get(code).copied()
    }

    pub fn contains(&self, code: &str) -> bool {
        self.index.contains_key(code)
    }

    /// Every ward's code, in registry order.
    pub fn codes(&self) -> impl ExactSizeIterator<Item = WardCode> + '_ {
        self.wards.iter().map(|w| WardCode(w.code.clone()))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Ward> {
        self.wards.iter()
    }

    pub fn as_slice(&self) -> &[Ward] {
        &self.wards
    }

    pub fn len(&self) -> usize {
        self.wards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_is_the_city_of_2025() {
        let registry = WardRegistry::builtin();
        assert_eq!(registry.len(), 103);
        let phuong = registry
            .iter()
            .filter(|w| w.kind == WardKind::Phuong)
            .count();
        assert_eq!((phuong, registry.len() - phuong), (31, 72));
        let cai_khe = registry.get("31120").unwrap();
        assert_eq!(cai_khe.full_name(), "Phường Cái Khế");
        assert!(!registry.contains("99999"));
        assert_eq!(registry.code(" 31135 ").unwrap().as_str(), "31135");
        let unknown = registry.code("99999").unwrap_err();
        assert!(unknown.to_string().contains("`99999`"), "{unknown}");
    }

    #[test]
    fn a_bad_registry_names_the_line() {
        let text =
            "ward_code,name,kind,former_province\n31120,Cái Khế,phuong,Cần Thơ\n3112,X,xa,Y\n";
        let err = WardRegistry::from_csv("w.csv", text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "w.csv, line 3: ward code `3112` is not five digits"
        );
    }
}
