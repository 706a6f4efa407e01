//! The dashboard files: what they may say, and the checks made on loading.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::DashboardError;
use crate::pack::Pack;
use crate::params::{Filter, PARAMETERS};
use crate::present::{Format, Lang};

/// A text in both languages of the product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum TextFile {
    Same(String),
    Both { vi: String, en: String },
}

/// A text shown to people, Vietnamese first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub vi: String,
    pub en: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Vi => &self.vi,
            Lang::En => &self.en,
        }
    }
}

impl From<TextFile> for Text {
    fn from(text: TextFile) -> Self {
        match text {
            TextFile::Same(text) => Text {
                vi: text.clone(),
                en: text,
            },
            TextFile::Both { vi, en } => Text { vi, en },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageFile {
    id: Spanned<String>,
    path: Spanned<String>,
    title: TextFile,
    #[serde(default)]
    description: Option<TextFile>,
    #[serde(default)]
    order: i32,
    #[serde(default = "yes")]
    nav: bool,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default, rename = "panel")]
    panels: Vec<PanelFile>,
    /// SQL shared by panels of any page (`{{name}}` in a panel's query is
    /// replaced by the fragment of that name): read by [`FragmentsFile`]
    /// before the pages, accepted here.
    #[serde(default, rename = "fragments")]
    _fragments: BTreeMap<String, String>,
}

/// The fragments of a file, read before its pages (any page may use them).
#[derive(Debug, Default, Deserialize)]
struct FragmentsFile {
    #[serde(default)]
    fragments: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Text,
    Tiles,
    Table,
    Line,
    Bar,
    Stacked,
    Heatmap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelFile {
    id: Spanned<String>,
    kind: KindName,
    title: TextFile,
    #[serde(default)]
    note: Option<TextFile>,
    sql: Spanned<String>,
    #[serde(default)]
    columns: Vec<ColumnFile>,
    #[serde(default)]
    wide: bool,
    #[serde(default)]
    target: Option<f64>,
    #[serde(default)]
    scale: Option<[f64; 2]>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    empty: Option<TextFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    column: String,
    #[serde(default)]
    label: Option<TextFile>,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    change: Option<String>,
    #[serde(default)]
    good: Option<f64>,
    #[serde(default)]
    warn: Option<f64>,
    #[serde(default)]
    lower_is_better: bool,
    #[serde(default)]
    link: Option<String>,
}

/// When a value reads good, needs watching, or is bad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub good: f64,
    pub warn: f64,
    pub lower_is_better: bool,
}

impl Thresholds {
    pub fn tone(&self, value: f64) -> chiso_chart::Tone {
        use chiso_chart::Tone;
        let at_least = |limit: f64| {
            if self.lower_is_better {
                value <= limit
            } else {
                value >= limit
            }
        };
        if at_least(self.good) {
            Tone::Good
        } else if at_least(self.warn) {
            Tone::Warn
        } else {
            Tone::Bad
        }
    }
}

/// A column of a panel's result, and how to show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub column: String,
    pub label: Text,
    pub format: Format,
    /// The column holding this value's change against the previous period.
    pub change: Option<String>,
    pub thresholds: Option<Thresholds>,
    pub lower_is_better: bool,
    /// A link target with `{column}` placeholders, such as `/ward/{ward_code}`.
    pub link: Option<String>,
}

/// What a panel shows; the columns' roles depend on it (see dashboards/README.md).
#[derive(Debug, Clone, PartialEq)]
pub enum PanelKind {
    /// Sentences the query writes from the figures, one paragraph per row.
    Text {
        text: Column,
    },
    Tiles {
        tiles: Vec<Column>,
    },
    Table {
        columns: Vec<Column>,
    },
    Line {
        x: Column,
        series: Vec<Column>,
        target: Option<f64>,
    },
    Bar {
        label: Column,
        value: Column,
        target: Option<f64>,
    },
    Stacked {
        x: Column,
        parts: Vec<Column>,
    },
    Heatmap {
        x: Column,
        y: Column,
        value: Column,
        scale: [f64; 2],
    },
}

impl PanelKind {
    pub fn is_chart(&self) -> bool {
        !matches!(
            self,
            PanelKind::Text { .. } | PanelKind::Tiles { .. } | PanelKind::Table { .. }
        )
    }
}

/// A panel: a query and a way to show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub id: String,
    pub title: Text,
    pub note: Option<Text>,
    pub sql: String,
    pub kind: PanelKind,
    /// Spans the whole width of the page (tables and rankings do).
    pub wide: bool,
    pub limit: Option<usize>,
    /// What to say when the query returns no rows.
    pub empty: Option<Text>,
}

/// A page of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub id: String,
    /// The URL path; `{ward}` at the end makes it a page per ward.
    pub path: String,
    pub title: Text,
    pub description: Option<Text>,
    pub order: i32,
    /// Listed in the navigation bar.
    pub nav: bool,
    pub filters: Vec<Filter>,
    pub panels: Vec<Panel>,
    pub source: PathBuf,
}

impl Page {
    /// Whether the page is about one ward (its path ends in `{ward}`).
    pub fn per_ward(&self) -> bool {
        self.path.ends_with("{ward}")
    }

    /// The path with the `{ward}` part removed (`/ward/`), for routing.
    pub fn path_prefix(&self) -> &str {
        self.path.trim_end_matches("{ward}")
    }

    pub fn panel(&self, id: &str) -> Option<&Panel> {
        self.panels.iter().find(|p| p.id == id)
    }

    /// Whether a panel reads the stored logs (`events`, `quarantine`,
    /// `ingests`) rather than figures: such a page scans every event.
    pub fn reads_stored_logs(&self) -> bool {
        self.panels.iter().any(|panel| {
            panel
                .sql
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| {
                    ["events", "quarantine", "ingests"]
                        .iter()
                        .any(|table| word.eq_ignore_ascii_case(table))
                })
        })
    }
}

/// Every dashboard page, in navigation order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboards {
    pub pages: Vec<Page>,
    /// The report packs (`packs/*.toml`).
    pub packs: Vec<Pack>,
    /// Where the pages came from, for the logs.
    pub origin: String,
}

/// The dashboards shipped with chiso, compiled in.
const BUILTIN: &[(&str, &str)] = &[
    (
        "overview.toml",
        include_str!("../../../dashboards/overview.toml"),
    ),
    (
        "ranking.toml",
        include_str!("../../../dashboards/ranking.toml"),
    ),
    ("ward.toml", include_str!("../../../dashboards/ward.toml")),
    ("flags.toml", include_str!("../../../dashboards/flags.toml")),
    (
        "quality.toml",
        include_str!("../../../dashboards/quality.toml"),
    ),
];

/// Paths the server keeps for itself.
const RESERVED: &[&str] = &[
    "/api", "/static", "/chart", "/health", "/sql", "/reports", "/export", "/pack",
];

impl Dashboards {
    /// The dashboards of `dashboards/` as shipped.
    pub fn builtin() -> Result<Self, DashboardError> {
        Self::from_files(
            builtin_files("dashboards", BUILTIN),
            builtin_files("dashboards/packs", crate::pack::BUILTIN),
            "built-in dashboards".into(),
        )
    }

    /// Every `*.toml` file of `dir`, and the packs of `dir/packs` (the
    /// built-in packs when there is no such folder).
    pub fn load(dir: &Path) -> Result<Self, DashboardError> {
        let packs_dir = dir.join("packs");
        let packs = if packs_dir.is_dir() {
            read_toml_files(&packs_dir)?
        } else {
            builtin_files("dashboards/packs", crate::pack::BUILTIN)
        };
        Self::from_files(read_toml_files(dir)?, packs, dir.display().to_string())
    }

    fn from_files(
        files: Vec<(PathBuf, String)>,
        pack_files: Vec<(PathBuf, String)>,
        origin: String,
    ) -> Result<Self, DashboardError> {
        let mut fragments = BTreeMap::new();
        for (path, text) in &files {
            // A file that does not parse is reported by parse_page below.
            let file: FragmentsFile = toml::from_str(text).unwrap_or_default();
            for (name, sql) in file.fragments {
                if PARAMETERS.contains(&name.as_str()) || fragments.contains_key(&name) {
                    return Err(DashboardError::Invalid {
                        path: path.clone(),
                        line: 1,
                        reason: format!(
                            "the fragment `{name}` is already a parameter or another fragment"
                        ),
                    });
                }
                fragments.insert(name, sql);
            }
        }
        let mut pages = Vec::with_capacity(files.len());
        for (path, text) in files {
            pages.push(parse_page(&path, &text, &fragments)?);
        }
        if pages.is_empty() {
            return Err(DashboardError::Invalid {
                path: PathBuf::from(&origin),
                line: 1,
                reason: "no dashboard files (*.toml)".into(),
            });
        }
        let (mut ids, mut paths) = (HashSet::new(), HashSet::new());
        for page in &pages {
            let clash = |what: &str, value: &str| DashboardError::Invalid {
                path: page.source.clone(),
                line: 1,
                reason: format!("another page already has the {what} `{value}`"),
            };
            if !ids.insert(page.id.clone()) {
                return Err(clash("id", &page.id));
            }
            if !paths.insert(page.path_prefix().to_owned()) {
                return Err(clash("path", &page.path));
            }
        }
        pages.sort_by(|a, b| (a.order, &a.id).cmp(&(b.order, &b.id)));
        let packs = crate::pack::parse_packs(pack_files, &pages)?;
        Ok(Self {
            pages,
            packs,
            origin,
        })
    }

    pub fn page(&self, id: &str) -> Option<&Page> {
        self.pages.iter().find(|p| p.id == id)
    }

    pub fn pack(&self, id: &str) -> Option<&Pack> {
        self.packs.iter().find(|p| p.id == id)
    }

    /// The page that serves `path` (`/`, `/ranking`, `/ward/31135`), with
    /// the ward code when the page is per ward.
    pub fn route<'a>(&self, path: &'a str) -> Option<(&Page, Option<&'a str>)> {
        self.pages.iter().find_map(|page| {
            if page.per_ward() {
                let code = path.strip_prefix(page.path_prefix())?;
                (!code.is_empty() && !code.contains('/')).then_some((page, Some(code)))
            } else {
                (path == page.path).then_some((page, None))
            }
        })
    }
}

pub(crate) fn builtin_files(dir: &str, files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(name, text)| (Path::new(dir).join(name), (*text).to_owned()))
        .collect()
}

/// The `*.toml` files of `dir`, sorted by name.
fn read_toml_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, DashboardError> {
    let io = |cause| DashboardError::Io {
        path: dir.to_owned(),
        cause,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|cause| DashboardError::Io {
            path: path.clone(),
            cause,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| DashboardError::Invalid {
            path: path.clone(),
            line: 1,
            reason: format!("not UTF-8 text ({e})"),
        })?;
        files.push((path, text));
    }
    Ok(files)
}

pub(crate) fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

fn parse_page(
    path: &Path,
    text: &str,
    fragments: &BTreeMap<String, String>,
) -> Result<Page, DashboardError> {
    let invalid = |line: usize, reason: String| DashboardError::Invalid {
        path: path.to_owned(),
        line,
        reason,
    };
    let file: PageFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span));
        invalid(line, e.message().to_owned())
    })?;
    let id_line = line_of(text, file.id.span());
    let path_line = line_of(text, file.path.span());
    let page_path = file.path.into_inner();
    if !page_path.starts_with('/') {
        return Err(invalid(
            path_line,
            format!("path `{page_path}` must start with /"),
        ));
    }
    let prefix = page_path.trim_end_matches("{ward}");
    if prefix.contains(['{', '}', '?', '#']) {
        return Err(invalid(
            path_line,
            format!("path `{page_path}` may only end in {{ward}}; it has other special characters"),
        ));
    }
    if RESERVED
        .iter()
        .any(|r| prefix == *r || prefix.starts_with(&format!("{r}/")))
    {
        return Err(invalid(
            path_line,
            format!(
                "path `{page_path}` is kept for the server ({})",
                RESERVED.join(", ")
            ),
        ));
    }
    let mut panels = Vec::with_capacity(file.panels.len());
    let mut panel_ids = HashSet::new();
    for panel in file.panels {
        let line = line_of(text, panel.id.span());
        let id = panel.id.get_ref().clone();
        if !panel_ids.insert(id.clone()) {
            return Err(invalid(line, format!("a second panel with the id `{id}`")));
        }
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                line,
                format!("panel id `{id}` must be letters, digits, - or _"),
            ));
        }
        let sql_line = line_of(text, panel.sql.span());
        let mut panel = panel;
        let sql = expand_fragments(panel.sql.get_ref(), fragments);
        check_placeholders(&sql, page_path.ends_with("{ward}"))
            .map_err(|reason| invalid(sql_line, format!("panel `{id}`: {reason}")))?;
        *panel.sql.get_mut() = sql;
        let built = build_panel(panel)
            .map_err(|reason| invalid(line, format!("panel `{id}`: {reason}")))?;
        panels.push(built);
    }
    Ok(Page {
        id: file.id.get_ref().clone(),
        path: page_path,
        title: file.title.into(),
        description: file.description.map(Text::from),
        order: file.order,
        nav: file.nav,
        filters: file.filters,
        panels,
        source: path.to_owned(),
    })
    .and_then(|page| {
        if page.id.is_empty() {
            Err(invalid(id_line, "the page id is empty".into()))
        } else {
            Ok(page)
        }
    })
}

/// `sql` with each `{{name}}` of a fragment replaced by the fragment (one
/// level: a fragment's own `{{…}}` are parameters).
fn expand_fragments(sql: &str, fragments: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        match fragments.get(after[..close].trim()) {
            Some(fragment) => out.push_str(fragment),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Every `{{name}}` must be a parameter chiso fills in; `{{ward}}` only on
/// pages per ward.
fn check_placeholders(sql: &str, per_ward: bool) -> Result<(), String> {
    let mut rest = sql;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "a {{ without its }}".to_owned())?;
        let name = after[..close].trim();
        if !PARAMETERS.contains(&name) {
            return Err(format!(
                "unknown parameter {{{{{name}}}}}; the parameters are {}",
                PARAMETERS.join(", ")
            ));
        }
        if name == "ward" && !per_ward {
            return Err("{{ward}} is only known on a page whose path ends in {ward}".into());
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

fn build_column(file: ColumnFile) -> Result<Column, String> {
    let thresholds = match (file.good, file.warn) {
        (Some(good), Some(warn)) => Some(Thresholds {
            good,
            warn,
            lower_is_better: file.lower_is_better,
        }),
        (Some(good), None) => Some(Thresholds {
            good,
            warn: good,
            lower_is_better: file.lower_is_better,
        }),
        (None, Some(_)) => {
            return Err(format!(
                "column `{}` has warn without good; give both thresholds",
                file.column
            ));
        }
        (None, None) => None,
    };
    if let Some(t) = thresholds {
        let ordered = if t.lower_is_better {
            t.good <= t.warn
        } else {
            t.good >= t.warn
        };
        if !ordered {
            return Err(format!(
                "column `{}`: good ({}) must be {} warn ({})",
                file.column,
                t.good,
                if t.lower_is_better {
                    "at most"
                } else {
                    "at least"
                },
                t.warn
            ));
        }
    }
    let label = file.label.map(Text::from).unwrap_or_else(|| Text {
        vi: file.column.clone(),
        en: file.column.clone(),
    });
    Ok(Column {
        column: file.column,
        label,
        format: file.format,
        change: file.change,
        thresholds,
        lower_is_better: file.lower_is_better,
        link: file.link,
    })
}

fn build_panel(file: PanelFile) -> Result<Panel, String> {
    let mut columns = file
        .columns
        .into_iter()
        .map(build_column)
        .collect::<Result<Vec<_>, _>>()?;
    let need = |count: usize, roles: &str| -> Result<(), String> {
        if columns.len() < count {
            Err(format!("a {:?} panel needs columns: {roles}", file.kind).to_lowercase())
        } else {
            Ok(())
        }
    };
    let kind = match file.kind {
        KindName::Text => {
            if columns.len() != 1 {
                return Err("a text panel has exactly one column: the text".into());
            }
            PanelKind::Text {
                text: columns.remove(0),
            }
        }
        KindName::Tiles => {
            need(1, "one per tile")?;
            PanelKind::Tiles { tiles: columns }
        }
        KindName::Table => {
            need(1, "one per table column")?;
            PanelKind::Table { columns }
        }
        KindName::Line => {
            need(2, "the x axis, then one per line")?;
            let x = columns.remove(0);
            PanelKind::Line {
                x,
                series: columns,
                target: file.target,
            }
        }
        KindName::Bar => {
            need(2, "the bar label, then the value")?;
            if columns.len() > 2 {
                return Err("a bar panel has exactly two columns: label and value".into());
            }
            let value = columns.remove(1);
            let label = columns.remove(0);
            PanelKind::Bar {
                label,
                value,
                target: file.target,
            }
        }
        KindName::Stacked => {
            need(2, "the x axis, then one per stacked part")?;
            let x = columns.remove(0);
            PanelKind::Stacked { x, parts: columns }
        }
        KindName::Heatmap => {
            if columns.len() != 3 {
                return Err(
                    "a heatmap panel has exactly three columns: x (columns), y (rows), value"
                        .into(),
                );
            }
            let value = columns.remove(2);
            let y = columns.remove(1);
            let x = columns.remove(0);
            let scale = file
                .scale
                .ok_or("a heatmap panel needs scale = [low, high] for its colours")?;
            if scale[0] >= scale[1] {
                return Err("scale = [low, high] needs low < high".into());
            }
            PanelKind::Heatmap { x, y, value, scale }
        }
    };
    if file.limit == Some(0) {
        return Err("limit must be at least 1".into());
    }
    Ok(Panel {
        id: file.id.into_inner(),
        title: file.title.into(),
        note: file.note.map(Text::from),
        sql: file.sql.into_inner(),
        wide: file.wide || matches!(kind, PanelKind::Table { .. } | PanelKind::Heatmap { .. }),
        kind,
        limit: file.limit,
        empty: file.empty.map(Text::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Page, DashboardError> {
        parse_page(Path::new("dashboards/test.toml"), text, &BTreeMap::new())
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("should be refused").to_string()
    }

    const PAGE: &str = r#"
id = "t"
path = "/t"
title = { vi = "Thử", en = "Test" }

[[panel]]
id = "a"
kind = "tiles"
title = "A"
sql = "SELECT * FROM kpi({{period}}, 'city')"
columns = [{ column = "received", format = "integer" }]
"#;

    #[test]
    fn the_shipped_dashboards_load() {
        let dashboards = Dashboards::builtin().expect("built-in dashboards");
        assert!(dashboards.pages.len() >= 5);
        let (page, ward) = dashboards.route("/ward/31135").expect("ward page");
        assert!(page.per_ward());
        assert_eq!(ward, Some("31135"));
        assert_eq!(
            dashboards.route("/").map(|(p, _)| p.id.as_str()),
            Some("overview")
        );
        assert!(dashboards.route("/nowhere").is_none());
    }

    #[test]
    fn fragments_are_shared_by_the_pages_of_every_file() {
        let shared = r#"
id = "s"
path = "/s"
title = "S"

[fragments]
worst = "SELECT ward_code FROM kpi({{period}}, 'ward') WHERE on_time_rate < 90"
"#;
        let using = PAGE.replace(
            "SELECT * FROM kpi({{period}}, 'city')",
            "WITH w AS ({{worst}}) SELECT count(*) AS received FROM w",
        );
        let files = vec![
            (PathBuf::from("a.toml"), using),
            (PathBuf::from("b.toml"), shared.to_owned()),
        ];
        let dashboards = Dashboards::from_files(files.clone(), Vec::new(), "test".into())
            .expect("fragments resolve");
        let sql = &dashboards.page("t").expect("page").panels[0].sql;
        assert_eq!(
            sql,
            "WITH w AS (SELECT ward_code FROM kpi({{period}}, 'ward') WHERE on_time_rate < 90) \
             SELECT count(*) AS received FROM w"
        );
        // A fragment may not take a parameter's name, nor be defined twice.
        let clash = shared.replace("worst =", "period =");
        let files = vec![(PathBuf::from("b.toml"), clash)];
        let error = Dashboards::from_files(files, Vec::new(), "test".into())
            .expect_err("a fragment named like a parameter");
        assert!(error.to_string().contains("`period`"), "{error}");
    }

    #[test]
    fn a_valid_page_reads() {
        let page = parse(PAGE).expect("valid");
        assert_eq!(page.title.get(Lang::En), "Test");
        assert_eq!(page.panels[0].title.vi, "A");
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let typo = PAGE.replace("kind = \"tiles\"", "kind = \"pie\"");
        let message = error_of(&typo);
        assert!(message.starts_with("dashboards/test.toml:8:"), "{message}");
        assert!(message.contains("pie"), "{message}");

        let unknown = PAGE.replace("{{period}}", "{{perod}}");
        let message = error_of(&unknown);
        assert!(message.starts_with("dashboards/test.toml:10:"), "{message}");
        assert!(message.contains("perod"), "{message}");

        let ward = PAGE.replace("{{period}}", "{{ward}}");
        assert!(error_of(&ward).contains("only known on a page"));

        let extra = PAGE.replace("title = \"A\"", "title = \"A\"\ncolour = 1");
        let message = error_of(&extra);
        assert!(message.starts_with("dashboards/test.toml:10:"), "{message}");
        assert!(message.contains("colour"), "{message}");

        let no_columns = PAGE.replace(
            "columns = [{ column = \"received\", format = \"integer\" }]",
            "",
        );
        assert!(error_of(&no_columns).contains("needs columns"));

        let thresholds = PAGE.replace("format = \"integer\"", "good = 80, warn = 90");
        assert!(error_of(&thresholds).contains("must be at least"));

        let reserved = PAGE.replace("path = \"/t\"", "path = \"/api/x\"");
        assert!(error_of(&reserved).contains("kept for the server"));

        let broken = PAGE.replace("id = \"a\"", "id = \"a");
        assert!(error_of(&broken).starts_with("dashboards/test.toml:"));
    }
}
