//! Report packs (`dashboards/packs/*.toml`): which panels of which pages
//! make the printed review, in order. A pack holds no SQL of its own, so the
//! paper, the spreadsheet and the screen always show the same figures.
//!
//! ```toml
//! id = "city"
//! title = { vi = "Báo cáo chỉ số phục vụ…", en = "Service index report" }
//! sections = ["overview/headline", "ranking/wards", "flags/attention"]
//! ```
//!
//! `front = [...]` lists sections printed before the cover, so that page 1
//! carries the message (the summary, the wards that need attention).
//!
//! A pack `per_ward = true` is made for one ward and may use the panels of
//! pages per ward; the others may not.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::DashboardError;
use crate::model::{Page, Panel, Text, TextFile, line_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    id: Spanned<String>,
    title: TextFile,
    #[serde(default)]
    per_ward: bool,
    /// Sections printed before the cover: the message of page 1.
    #[serde(default)]
    front: Vec<Spanned<String>>,
    sections: Vec<Spanned<String>>,
}

/// A pack, its sections resolved to pages and panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub id: String,
    pub title: Text,
    pub per_ward: bool,
    /// (page id, panel id), in order: the first `front` come before the
    /// cover.
    pub sections: Vec<(String, String)>,
    pub front: usize,
    pub source: PathBuf,
}

/// The packs shipped with chiso, compiled in.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    (
        "city.toml",
        include_str!("../../../dashboards/packs/city.toml"),
    ),
    (
        "ward.toml",
        include_str!("../../../dashboards/packs/ward.toml"),
    ),
];

/// Reads the pack files and checks every section against `pages`.
pub(crate) fn parse_packs(
    files: Vec<(PathBuf, String)>,
    pages: &[Page],
) -> Result<Vec<Pack>, DashboardError> {
    let mut packs = Vec::with_capacity(files.len());
    let mut ids = HashSet::new();
    for (path, text) in files {
        let pack = parse_pack(&path, &text, pages)?;
        if !ids.insert(pack.id.clone()) {
            return Err(DashboardError::Invalid {
                path,
                line: 1,
                reason: format!("another pack already has the id `{}`", pack.id),
            });
        }
        packs.push(pack);
    }
    Ok(packs)
}

fn parse_pack(path: &Path, text: &str, pages: &[Page]) -> Result<Pack, DashboardError> {
    let invalid = |line: usize, reason: String| DashboardError::Invalid {
        path: path.to_owned(),
        line,
        reason,
    };
    let file: PackFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span));
        invalid(line, e.message().to_owned())
    })?;
    let id = file.id.get_ref().clone();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(
            line_of(text, file.id.span()),
            format!("pack id `{id}` must be letters, digits or -"),
        ));
    }
    if file.sections.is_empty() {
        return Err(invalid(1, "a pack needs sections".into()));
    }
    let mut sections = Vec::with_capacity(file.front.len() + file.sections.len());
    for section in file.front.iter().chain(&file.sections) {
        let line = line_of(text, section.span());
        let reference = section.get_ref();
        let (page_id, panel_id) = reference.split_once('/').ok_or_else(|| {
            invalid(
                line,
                format!("`{reference}` should read PAGE/PANEL, such as overview/headline"),
            )
        })?;
        let page = pages.iter().find(|p| p.id == page_id).ok_or_else(|| {
            invalid(
                line,
                format!(
                    "no page `{page_id}`; the pages are {}",
                    pages
                        .iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if page.panel(panel_id).is_none() {
            return Err(invalid(
                line,
                format!(
                    "page `{page_id}` has no panel `{panel_id}`; it has {}",
                    page.panels
                        .iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if page.per_ward() && !file.per_ward {
            return Err(invalid(
                line,
                format!(
                    "`{reference}` is a panel of a page per ward; only a pack with per_ward = true may use it"
                ),
            ));
        }
        sections.push((page_id.to_owned(), panel_id.to_owned()));
    }
    Ok(Pack {
        id,
        title: file.title.into(),
        per_ward: file.per_ward,
        sections,
        front: file.front.len(),
        source: path.to_owned(),
    })
}

impl Pack {
    /// The pack's panels with their pages.
    pub fn panels<'a>(&'a self, pages: &'a [Page]) -> impl Iterator<Item = (&'a Page, &'a Panel)> {
        self.sections.iter().filter_map(move |(page_id, panel_id)| {
            let page = pages.iter().find(|p| &p.id == page_id)?;
            Some((page, page.panel(panel_id)?))
        })
    }
}
