//! A document as every format writes it: a title, the period and the data
//! it was made from, and sections that are dashboard panels with their
//! tables; a report pack's document also has the methods it used.

use std::sync::Arc;

use chiso_dashboard::{Dashboards, Lang, Pack, Page, Panel, Params, Table, present};
use chiso_engine::Engine;
use chiso_engine::catalogue::Measure;
use chrono::{DateTime, NaiveDate, Utc};

use crate::ReportError;

/// Which data a document shows, so a printed page can be traced back to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub events_version: i64,
    /// The store has the names of its procedures and departments; without
    /// them a document says so rather than printing dashes.
    pub has_catalogue: bool,
    /// When the last ingest finished.
    pub last_ingest: Option<DateTime<Utc>>,
    /// The first and last local day with data.
    pub data_range: Option<(NaiveDate, NaiveDate)>,
    pub generated_at: DateTime<Utc>,
}

impl Freshness {
    /// What the engine's store holds now.
    pub async fn of(engine: &Engine) -> Result<Self, ReportError> {
        let store = engine.store();
        let info = store
            .info(1)
            .await
            .map_err(|e| ReportError::Data(e.to_string()))?;
        Ok(Self {
            events_version: engine.events_version(),
            has_catalogue: store.has_procedure_catalogue(),
            last_ingest: info.last_ingests.first().map(|i| i.finished_at),
            data_range: engine
                .data_range()
                .await
                .map_err(|e| ReportError::Data(e.to_string()))?,
            generated_at: engine.now(),
        })
    }
}

/// One panel of a page with its result.
#[derive(Debug, Clone)]
pub struct Section {
    pub page: Page,
    pub panel: Panel,
    pub table: Arc<Table>,
}

/// Everything a format needs to write a document.
#[derive(Debug, Clone)]
pub struct Document {
    /// "Báo cáo chỉ số phục vụ người dân, doanh nghiệp".
    pub title: String,
    /// Whose figures: the city, or a ward's full name.
    pub scope: String,
    pub params: Params,
    pub freshness: Freshness,
    pub sections: Vec<Section>,
    /// How many of the sections come before the cover (page 1's message).
    pub front: usize,
    /// The definitions used; empty for a single page's export.
    pub methods: Vec<Measure>,
    /// A name for the file: `chiso-city-2025-W40`.
    pub file_stem: String,
}

impl Document {
    pub fn lang(&self) -> Lang {
        self.params.lang
    }

    /// "Tuần 40/2025 (29/09–05/10/2025)".
    pub fn period_name(&self) -> String {
        present::period_name(&self.params.period, self.params.lang)
    }
}

/// What a page or document says when the store has no procedure catalogue.
pub fn no_catalogue_warning(lang: Lang) -> &'static str {
    lang.pick(
        "Kho dữ liệu chưa có danh mục thủ tục: tên thủ tục và lĩnh vực hiện là “–”. \
         Nạp danh mục bằng lệnh chiso store procedures --store KHO procedures.csv \
         (tệp như chiso gen --procedures viết).",
        "The store has no procedure catalogue: procedure and department names show as “–”. \
         Load one with chiso store procedures --store STORE procedures.csv \
         (a file like the one chiso gen --procedures writes).",
    )
}

/// Whose figures `params` are about, in words.
pub fn scope_name(params: &Params) -> String {
    match params.ward.as_ref().and_then(|code| {
        chiso_core::wards::WardRegistry::builtin()
            .get(code.as_str())
            .map(|w| w.full_name())
    }) {
        Some(name) => name,
        None => params
            .lang
            .pick("Thành phố Cần Thơ", "Cần Thơ City")
            .to_owned(),
    }
}

/// What a document holds before its tables are computed.
#[derive(Debug, Clone)]
pub struct Outline<'a> {
    pub title: String,
    pub panels: Vec<(&'a Page, &'a Panel)>,
    /// How many of the panels come before the cover.
    pub front: usize,
    /// State the definitions at the end (a pack does; a page does not).
    pub methods: bool,
    pub file_stem: String,
}

impl<'a> Outline<'a> {
    /// A pack's outline for `params`, refused with the reason when the pack
    /// is about one ward and `params` name none, or an unknown one.
    pub fn of_pack(
        dashboards: &'a Dashboards,
        pack: &'a Pack,
        params: &Params,
    ) -> Result<Self, ReportError> {
        if pack.per_ward && params.ward.is_none() {
            return Err(ReportError::Request(format!(
                "the pack `{}` is about one ward: give its code (--ward CODE)",
                pack.id
            )));
        }
        Ok(Self {
            title: pack.title.get(params.lang).to_owned(),
            panels: pack.panels(&dashboards.pages).collect(),
            front: pack.front,
            methods: true,
            file_stem: file_stem(&pack.id, params),
        })
    }

    /// The document: every panel's table from `table` (computed
    /// concurrently), with the data it was made from.
    pub async fn document<F, Fut, E>(
        self,
        params: &Params,
        freshness: Freshness,
        table: F,
    ) -> Result<Document, E>
    where
        F: Fn(&'a Panel) -> Fut,
        Fut: Future<Output = Result<Arc<Table>, E>>,
        E: From<ReportError>,
    {
        let tables =
            futures::future::join_all(self.panels.iter().map(|(_, panel)| table(panel))).await;
        let mut sections = Vec::with_capacity(tables.len());
        for ((page, panel), table) in self.panels.iter().zip(tables) {
            sections.push(Section {
                page: (*page).clone(),
                panel: (*panel).clone(),
                table: table?,
            });
        }
        let methods = if self.methods {
            chiso_engine::catalogue::Catalogue::builtin()
                .map_err(|e| ReportError::Data(e.to_string()))?
                .measures
        } else {
            Vec::new()
        };
        Ok(Document {
            title: self.title,
            scope: scope_name(params),
            params: params.clone(),
            freshness,
            sections,
            front: self.front,
            methods,
            file_stem: self.file_stem,
        })
    }
}

/// Panels computed on an engine, each distinct query once: packs made in a
/// row (the city's and every ward's) share what they have in common.
#[derive(Debug)]
pub struct Tables<'a> {
    engine: &'a Engine,
    computed: chiso_engine::memo::Memo<Arc<Table>>,
}

impl<'a> Tables<'a> {
    pub fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            computed: Default::default(),
        }
    }

    pub async fn table(&self, panel: &Panel, params: &Params) -> Result<Arc<Table>, ReportError> {
        let data = |e: &dyn std::fmt::Display| ReportError::Data(e.to_string());
        let key = format!(
            "{}|{}",
            panel.limit.unwrap_or(0),
            params.render(&panel.sql).map_err(|e| data(&e))?
        );
        self.computed
            .get_or_try(key, || async {
                let table = chiso_dashboard::evaluate(self.engine, panel, params)
                    .await
                    .map_err(|e| data(&e))?;
                Ok(Arc::new(table))
            })
            .await
    }
}

/// The document of a pack: every section computed for `params` (a ward
/// pack needs `params.ward`), with the methods of the catalogue.
pub async fn pack_document(
    tables: &Tables<'_>,
    dashboards: &Dashboards,
    pack: &Pack,
    params: &Params,
) -> Result<Document, ReportError> {
    let outline = Outline::of_pack(dashboards, pack, params)?;
    let freshness = Freshness::of(tables.engine).await?;
    outline
        .document(params, freshness, |panel| tables.table(panel, params))
        .await
}

/// `chiso-city-2025-W40`, `chiso-ward-31135-2025-07`.
pub fn file_stem(what: &str, params: &Params) -> String {
    let mut stem = format!("chiso-{what}");
    if let Some(ward) = &params.ward {
        stem.push('-');
        stem.push_str(ward.as_str());
    }
    stem.push('-');
    stem.push_str(&params.period.to_string().replace("..", "_"));
    if params.lang == Lang::En {
        stem.push_str("-en");
    }
    stem
}
