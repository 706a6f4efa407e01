//! What a request asks for, read strictly: an unknown parameter, period,
//! ward or filter value is a 400 that says what is accepted.

use axum::http::Uri;
use chiso_core::time::local_date;
use chiso_dashboard::{Lang, Params};
use chiso_engine::{Period, WardCode};
use serde::Deserialize;

use crate::AppState;
use crate::error::{AppError, PageError};
use crate::live::Snapshot;

/// A page's query and language. A query string that cannot be read, or an
/// unknown language, is answered as an error page in Vietnamese.
pub fn page_query(uri: &Uri) -> Result<(Query, Lang), PageError> {
    let in_vietnamese = |error| PageError {
        error,
        lang: Lang::Vi,
    };
    let query = Query::parse(uri.query()).map_err(in_vietnamese)?;
    let lang = query.lang().map_err(in_vietnamese)?;
    Ok((query, lang))
}

/// Every query-string parameter the server knows.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub period: Option<String>,
    pub lang: Option<String>,
    pub kind: Option<String>,
    pub province: Option<String>,
    pub ward: Option<String>,
    /// Chart width and height in pixels.
    pub w: Option<u32>,
    pub h: Option<u32>,
    pub by: Option<String>,
    pub layout: Option<String>,
    pub grain: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The answer's format for `/api/sql`: json, csv, arrow, parquet or xlsx.
    pub format: Option<String>,
    /// An ad-hoc query (`GET /api/sql?q=…`, the SQL console).
    pub q: Option<String>,
    /// Rows to show at most (`/api/sql`); downloads have no limit.
    pub limit: Option<u64>,
    /// The instant of a due-soon list (ISO-8601; now by default).
    pub at: Option<String>,
    /// Working days a due-soon list looks ahead (2 by default).
    pub days: Option<u32>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, AppError> {
        let raw = raw.unwrap_or("");
        let query: Self = serde_urlencoded::from_str(raw).map_err(|e| {
            AppError::bad_request(format!(
                "the query string `{raw}` is not understood ({e}); the parameters are period, \
                 lang, kind, province, ward, w, h, by, layout, grain, from, to, format, q, limit, at and \
                 days"
            ))
        })?;
        Ok(query.without_empty_values())
    }

    /// A form sends `kind=` for "all": the same as no value.
    fn without_empty_values(mut self) -> Self {
        for value in [
            &mut self.period,
            &mut self.lang,
            &mut self.kind,
            &mut self.province,
            &mut self.ward,
            &mut self.by,
            &mut self.layout,
            &mut self.grain,
            &mut self.from,
            &mut self.to,
            &mut self.format,
            &mut self.q,
            &mut self.at,
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        self
    }

    /// The language asked for; Vietnamese by default.
    pub fn lang(&self) -> Result<Lang, AppError> {
        match &self.lang {
            None => Ok(Lang::Vi),
            Some(text) => Lang::parse(text).ok_or_else(|| {
                AppError::bad_request(format!("unknown language `{text}`; use vi or en"))
            }),
        }
    }

    /// The period asked for, or the default: the last complete week with data.
    pub fn period(&self, snapshot: &Snapshot) -> Result<Period, AppError> {
        match &self.period {
            Some(text) => Ok(snapshot.engine.period(text)?),
            None => Ok(default_period(snapshot)),
        }
    }

    /// The ward asked for, if the reader may see it (404 for no ward of the
    /// city, 403 for another ward's).
    pub fn ward_code(&self, snapshot: &Snapshot) -> Result<Option<WardCode>, AppError> {
        self.ward
            .as_deref()
            .map(|code| snapshot.ward(code))
            .transpose()
    }

    /// The parameters of a dashboard page, checked against the registry.
    pub fn params(
        &self,
        state: &AppState,
        snapshot: &Snapshot,
        ward: Option<&str>,
    ) -> Result<Params, AppError> {
        let mut params = Params::new(self.period(snapshot)?, self.lang()?, snapshot.engine.now());
        if let Some(code) = ward.or(self.ward.as_deref()) {
            params.ward = Some(snapshot.ward(code)?);
        }
        if let Some(kind) = &self.kind {
            let known = ["phuong", "xa"];
            if !known.contains(&kind.as_str()) {
                return Err(AppError::bad_request(format!(
                    "unknown kind `{kind}`; use phuong or xa"
                )));
            }
            params.kind = Some(kind.clone());
        }
        if let Some(province) = &self.province {
            let provinces = provinces(state);
            if !provinces.contains(province) {
                return Err(AppError::bad_request(format!(
                    "unknown former province `{province}`; use one of {}",
                    provinces.join(", ")
                )));
            }
            params.province = Some(province.clone());
        }
        Ok(params)
    }
}

/// The former provinces of the registry, in its order.
pub fn provinces(state: &AppState) -> Vec<String> {
    let mut provinces: Vec<String> = Vec::new();
    for ward in state.wards.iter() {
        if !provinces.contains(&ward.former_province) {
            provinces.push(ward.former_province.clone());
        }
    }
    provinces
}

pub fn default_period(snapshot: &Snapshot) -> Period {
    let today = local_date(snapshot.engine.now());
    // The last complete week up to the last day with data (or today): the
    // week a Monday review looks back on.
    let last = match snapshot.data_range {
        Some((_, last)) => last.min(today),
        None => today,
    };
    Period::week_of(last + chrono::Duration::days(1)).previous()
}

/// The query string that reproduces `params` (for links and cache keys).
pub fn query_string(params: &Params, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = vec![("period", params.period.to_string())];
    if params.lang != Lang::Vi {
        pairs.push(("lang", params.lang.code().to_owned()));
    }
    if let Some(kind) = &params.kind {
        pairs.push(("kind", kind.clone()));
    }
    if let Some(province) = &params.province {
        pairs.push(("province", province.clone()));
    }
    pairs.extend(extra.iter().cloned());
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_parameters_and_values_are_refused_with_the_accepted_ones() {
        let error = Query::parse(Some("perod=2025-W28")).expect_err("typo");
        assert!(error.message.contains("period, lang"), "{}", error.message);
        let query = Query::parse(Some("period=2025-W28&kind=&lang=en")).expect("valid");
        assert_eq!(query.kind, None);
        assert_eq!(query.lang().expect("lang"), Lang::En);
        let bad = Query::parse(Some("lang=fr")).expect("parses");
        assert!(bad.lang().is_err());
        assert!(Query::parse(Some("w=wide")).is_err());
    }

    proptest::proptest! {
        /// Any query string: understood, or a 400 that says why.
        #[test]
        fn any_query_string_is_read_or_refused(
            raw in proptest::prop_oneof![
                "\\PC{0,60}",
                "((period|lang|kind|ward|w|h|by|grain|from|to|limit|q)=[-+%0-9A-Za-z.]{0,12}&?){0,6}",
            ],
        ) {
            match Query::parse(Some(&raw)) {
                Ok(query) => {
                    let _ = query.lang();
                    if let Some(period) = &query.period {
                        let _ = Period::parse(period, chrono::Utc::now());
                    }
                    for date in [&query.from, &query.to].into_iter().flatten() {
                        let _ = chiso_engine::parse_date(date);
                    }
                }
                Err(error) => {
                    proptest::prop_assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
                }
            }
        }
    }
}
