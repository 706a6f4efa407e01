//! What an analyst can query, in words (`queries/catalogue.toml`): each
//! table's meaning, each function's signature, and worked example queries.
//! The SQL console shows it beside the columns of `information_schema`, and
//! `docs/sql.md` is written from it.

use serde::Deserialize;

use crate::EngineError;

/// The catalogue as shipped.
pub const CATALOGUE: &str = include_str!("../../../queries/catalogue.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(rename = "table")]
    pub tables: Vec<Described>,
    #[serde(rename = "function")]
    pub functions: Vec<Function>,
    #[serde(rename = "example")]
    pub examples: Vec<Example>,
    /// The definitions a report's methods page states.
    #[serde(rename = "measure")]
    pub measures: Vec<Measure>,
}

/// A figure (or a rule) and its definition, as a methods page states it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    pub name: String,
    pub vi: String,
    pub en: String,
}

/// A table or view, and what it holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Described {
    pub name: String,
    pub vi: String,
    pub en: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    pub name: String,
    pub signature: String,
    pub vi: String,
    pub en: String,
}

/// A worked example query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub id: String,
    pub vi: String,
    pub en: String,
    pub sql: String,
}

impl Catalogue {
    pub fn builtin() -> Result<Self, EngineError> {
        toml::from_str(CATALOGUE).map_err(|e| EngineError::Reference {
            path: "queries/catalogue.toml".into(),
            message: e.to_string(),
        })
    }

    /// What `name` holds, when the catalogue says.
    pub fn table(&self, name: &str) -> Option<&Described> {
        self.tables.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_catalogue_reads() {
        let catalogue = super::Catalogue::builtin().expect("catalogue");
        assert!(catalogue.table("dossiers").is_some());
        assert_eq!(catalogue.examples.len(), 10);
        assert!(catalogue.functions.iter().any(|f| f.name == "kpi"));
        assert!(
            catalogue
                .measures
                .iter()
                .any(|m| m.name.starts_with("progress_ratio"))
        );
    }
}
