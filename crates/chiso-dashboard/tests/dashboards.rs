//! Every panel of the shipped dashboards runs on the built-in sample city and
//! shows what it declares.

use chiso_dashboard::{Dashboards, Lang, PanelKind, Params, present};
use chiso_test_support::SampleCity;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_panel_runs_and_has_its_columns() {
    let city = SampleCity::open("dashboard-panels").await;
    let engine = &city.engine;
    let dashboards = Dashboards::builtin().expect("dashboards");
    for period in ["2025-W40"] {
        let mut params = Params::new(
            engine.period(period).expect("period"),
            Lang::Vi,
            engine.now(),
        );
        params.ward = Some(
            chiso_core::wards::WardRegistry::builtin()
                .code("31135")
                .unwrap(),
        );
        for page in &dashboards.pages {
            for panel in &page.panels {
                let table = chiso_dashboard::evaluate(engine, panel, &params)
                    .await
                    .unwrap_or_else(|e| panic!("{}/{}: {e}", page.id, panel.id));
                let declared: Vec<&str> = match &panel.kind {
                    PanelKind::Tiles { tiles: columns } | PanelKind::Table { columns } => {
                        columns.iter().map(|c| c.column.as_str()).collect()
                    }
                    _ => Vec::new(),
                };
                for column in declared {
                    assert!(
                        table.column_index(column).is_some(),
                        "{}/{}: no column {column} in {:?}",
                        page.id,
                        panel.id,
                        table.columns
                    );
                }
                if panel.kind.is_chart() {
                    let chart = present::chart(panel, &table, &params)
                        .unwrap_or_else(|e| panic!("{}/{}: {e}", page.id, panel.id))
                        .expect("a chart");
                    let (w, h) = chart.natural_size();
                    chart.svg(w, h).expect("svg");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ranking_lists_every_ward_and_the_filters_narrow_it() {
    let city = SampleCity::open("dashboard-ranking").await;
    let engine = &city.engine;
    let dashboards = Dashboards::builtin().expect("dashboards");
    let panel = dashboards
        .page("ranking")
        .and_then(|p| p.panel("wards"))
        .expect("ranking panel");
    let mut params = Params::new(
        engine.period("2025-W40").expect("period"),
        Lang::Vi,
        engine.now(),
    );
    let all = chiso_dashboard::evaluate(engine, panel, &params)
        .await
        .expect("ranking");
    assert_eq!(all.total_rows, 103);
    params.kind = Some("xa".into());
    let communes = chiso_dashboard::evaluate(engine, panel, &params)
        .await
        .expect("communes");
    assert!(communes.total_rows > 0 && communes.total_rows < 103);
    let kinds = communes.column("kind_vi").expect("kind");
    assert!(kinds.iter().all(|k| k.raw_text() == "Xã"), "{kinds:?}");
}
