//! What a reader may see, applied inside the engine, before any query is
//! planned: a ward's one-stop officer sees the dossiers of their wards and
//! nothing else, whichever way they ask (a page, an export, the console,
//! `/api/sql`, the Postgres wire), because the session they query holds no
//! other rows.
//!
//! [`Engine::scoped`] makes an engine whose session has a catalogue of its
//! own: the reference tables as they are; `dossier_facts`, `dossier_history`
//! and `events` as views keeping the dossiers of the scope's wards (an event
//! belongs to the ward of its dossier's `received` event, so events of
//! dossiers without one, orphans, are outside every ward's scope); `wards`
//! keeping those wards, so that a grouping by ward lists them alone; the
//! `dossiers` view and the table functions planned again over those views,
//! with a memo of their own. `quarantine` and `ingests`, which hold the raw
//! lines of every ward, `audit`, what every reader did, and `alerts`, the
//! messages sent to every ward, are in a scope
//! only when it says so (an administrator's). There is no name left through which SQL could reach
//! another ward's rows: not a join, a subquery, `information_schema` or a
//! function, since each resolves names in this catalogue.

use std::collections::BTreeSet;
use std::sync::Arc;

use chiso_core::wards::WardCode;
use chiso_exec::datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider,
};
use chiso_exec::datafusion::execution::session_state::SessionStateBuilder;
use chiso_exec::datafusion::prelude::SessionContext;

use crate::queries::string_literal;
use crate::{Engine, EngineError};

/// The wards whose dossiers a reader sees, and whether they see the
/// operational tables (the quarantine's raw lines, the ingest history).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    wards: Option<BTreeSet<WardCode>>,
    operations: bool,
}

impl Scope {
    /// Everything: the engine as it is (an administrator, the CLI).
    pub fn everything() -> Self {
        Self {
            wards: None,
            operations: true,
        }
    }

    /// Every ward's figures and dossiers, not the operational tables (a
    /// leader, an analyst).
    pub fn city() -> Self {
        Self {
            wards: None,
            operations: false,
        }
    }

    /// The dossiers of `wards` only (a ward's officers).
    pub fn wards(wards: impl IntoIterator<Item = WardCode>) -> Self {
        Self {
            wards: Some(wards.into_iter().collect()),
            operations: false,
        }
    }

    /// The wards of the scope; `None` for every ward.
    pub fn ward_codes(&self) -> Option<&BTreeSet<WardCode>> {
        self.wards.as_ref()
    }

    /// Whether `ward` is in the scope.
    pub fn sees(&self, ward: &WardCode) -> bool {
        self.wards.as_ref().is_none_or(|wards| wards.contains(ward))
    }

    pub fn sees_operations(&self) -> bool {
        self.operations
    }
}

/// The stored tables whose rows are every ward's, or about every reader.
const OPERATIONAL: [&str; 4] = ["quarantine", "ingests", "audit", "alerts"];
/// Tables and views made again for a scope of wards.
const BY_WARD: [&str; 5] = [
    "events",
    "dossier_facts",
    "dossier_history",
    "dossiers",
    "wards",
];

impl Engine {
    /// This engine as a reader of `scope` sees it (see the module's docs).
    /// The whole engine when the scope is everything.
    pub async fn scoped(&self, scope: &Scope) -> Result<Engine, EngineError> {
        if *scope == Scope::everything() {
            return Ok(self.clone());
        }
        let source = &self.context;
        let schema = Arc::new(MemorySchemaProvider::new());
        let public = source
            .catalog("datafusion")
            .and_then(|catalog| catalog.schema("public"))
            .ok_or_else(|| EngineError::Query("the engine has no public schema".into()))?;
        let by_ward = scope.wards.is_some();
        for name in public.table_names() {
            let hidden = (!scope.operations && OPERATIONAL.contains(&name.as_str()))
                || (by_ward && BY_WARD.contains(&name.as_str()));
            if hidden {
                continue;
            }
            if let Some(table) = public.table(&name).await? {
                schema.register_table(name, table)?;
            }
        }
        if let Some(wards) = &scope.wards {
            let codes = wards
                .iter()
                .map(|code| string_literal(code.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            let codes = if codes.is_empty() {
                "NULL".to_owned()
            } else {
                codes
            };
            let dossiers_in_scope =
                format!("SELECT dossier_key FROM dossier_facts WHERE ward_code IN ({codes})");
            let views = [
                (
                    "dossier_facts",
                    format!("SELECT * FROM dossier_facts WHERE ward_code IN ({codes})"),
                ),
                (
                    "dossier_history",
                    format!(
                        "SELECT * FROM dossier_history WHERE dossier_key IN ({dossiers_in_scope})"
                    ),
                ),
                (
                    "events",
                    format!(
                        "SELECT * FROM events WHERE dossier_id IN \
                         (SELECT dossier_id FROM dossier_facts WHERE ward_code IN ({codes}))"
                    ),
                ),
                (
                    "wards",
                    format!("SELECT * FROM wards WHERE ward_code IN ({codes})"),
                ),
            ];
            // Planned in the whole engine's session, so each view reads the
            // stored table itself; only the view is registered here.
            for (name, sql) in views {
                let view = source.sql(&sql).await?.into_view();
                schema.register_table(name.to_owned(), view)?;
            }
        }
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema("public", schema)?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        chiso_exec::datafusion::catalog::CatalogProviderList::register_catalog(
            catalogs.as_ref(),
            "datafusion".to_owned(),
            catalog,
        );
        let context = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(source.state())
                .with_catalog_list(catalogs)
                .build(),
        );
        if by_ward {
            let view = context
                .sql(&self.planner.dossiers_view_sql()?)
                .await
                .map_err(|e| EngineError::Query(format!("queries/dossiers.sql: {e}")))?
                .into_view();
            context.register_table("dossiers", view)?;
        }
        // Table functions of its own: their memo holds this scope's rows.
        let functions = crate::functions::register(&context, &self.planner);
        if let Some(wards) = &scope.wards {
            // The index ranks every ward of the city, and the portal
            // publishes each ward's score and rank: a ward's officers see
            // their own rows of the whole city's index, not an index of
            // their wards alone.
            for name in ["kpi_index", "kpi_index_detail"] {
                context.register_udtf(
                    name,
                    Arc::new(published::PublishedIndex {
                        name,
                        whole: self.clone(),
                        wards: wards.iter().map(|w| w.as_str().to_owned()).collect(),
                    }),
                );
            }
        }
        Ok(Engine {
            store: self.store.clone(),
            context,
            planner: Arc::clone(&self.planner),
            functions,
            derivation: self.derivation,
            change: self.change,
        })
    }
}

/// The composite index of the whole city, a scope's wards' rows of it.
mod published {
    use std::sync::Arc;

    use async_trait::async_trait;
    use chiso_core::wards::WardRegistry;
    use chiso_exec::datafusion::arrow::datatypes::SchemaRef;
    use chiso_exec::datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
    use chiso_exec::datafusion::common::{DataFusionError, Result};
    use chiso_exec::datafusion::logical_expr::{Expr, TableType};
    use chiso_exec::datafusion::physical_plan::ExecutionPlan;
    use chiso_exec::datafusion::prelude::{col, lit};

    use crate::{Call, Engine};

    #[derive(Debug)]
    pub(super) struct PublishedIndex {
        pub(super) name: &'static str,
        pub(super) whole: Engine,
        pub(super) wards: Vec<String>,
    }

    impl TableFunctionImpl for PublishedIndex {
        fn call_with_args(
            &self,
            args: chiso_exec::datafusion::catalog::TableFunctionArgs,
        ) -> Result<Arc<dyn TableProvider>> {
            let texts = crate::functions::text_arguments(args.exprs());
            let call =
                Call::from_arguments(self.name, &texts, self.whole.now(), WardRegistry::builtin())
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let table = self
                .whole
                .functions
                .table(&call, &self.whole.context.state())?;
            Ok(Arc::new(OwnRows {
                schema: table.schema(),
                table,
                whole: self.whole.clone(),
                wards: self.wards.clone(),
            }))
        }
    }

    /// A table of the whole engine, only the rows of `wards`, planned in
    /// the whole engine's session.
    #[derive(Debug)]
    struct OwnRows {
        table: Arc<dyn TableProvider>,
        schema: SchemaRef,
        whole: Engine,
        wards: Vec<String>,
    }

    #[async_trait]
    impl TableProvider for OwnRows {
        fn schema(&self) -> SchemaRef {
            Arc::clone(&self.schema)
        }

        fn table_type(&self) -> TableType {
            TableType::View
        }

        async fn scan(
            &self,
            _state: &dyn Session,
            projection: Option<&Vec<usize>>,
            _filters: &[Expr],
            limit: Option<usize>,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            let wards: Vec<Expr> = self.wards.iter().map(|w| lit(w.as_str())).collect();
            let mut frame = self
                .whole
                .context
                .read_table(Arc::clone(&self.table))?
                .filter(col("ward_code").in_list(wards, false))?;
            if let Some(projection) = projection {
                let columns: Vec<Expr> = projection
                    .iter()
                    .map(|&i| col(format!("\"{}\"", self.schema.field(i).name())))
                    .collect();
                frame = frame.select(columns)?;
            }
            if let Some(limit) = limit {
                frame = frame.limit(0, Some(limit))?;
            }
            frame.create_physical_plan().await
        }
    }
}
