//! # chiso-exec: how chiso runs a query
//!
//! One DataFusion session setup for every query of the product, whatever
//! the tables: the business time zone, the settings a store's files want
//! (filters evaluated while decoding Parquet, 32 K-row batches, no bloom
//! filter reads, no dynamic join filters), the local files read in place
//! ([`local_reads`]) and the partial aggregation by dictionary keys
//! ([`dictionary_aggregate`]). The store registers its tables in such a
//! session; the engine adds the reference tables, the derived dossiers and
//! the functions. The measurements behind the settings are in
//! benches/README.md, "Why these settings".
//!
//! Architecture invariant: this crate knows DataFusion and the file system,
//! not the store's layout, the KPIs or any entry point.

pub mod dictionary_aggregate;
pub mod local_reads;

use std::sync::Arc;

pub use datafusion;
use datafusion::config::ConfigOptions;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;

/// A new session with chiso's settings, in the business time zone, reading
/// local files through [`local_reads::LocalReads`]. Every setting can be
/// overridden from the environment, as in `datafusion-cli`
/// (`DATAFUSION_EXECUTION_BATCH_SIZE=4096`).
pub fn session() -> Result<SessionContext, DataFusionError> {
    // Filters are evaluated while decoding Parquet, so that the other
    // columns are decoded only for the rows they keep. That pays because
    // the rows a filter keeps are together: the events are grouped by type
    // within a row group, and a period's filter on the derived tables keeps
    // the dossiers alive in it.
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        // Join filters pushed from the build side cost more than they save
        // when both sides are a million dossiers.
        .set_bool(
            "datafusion.optimizer.enable_join_dynamic_filter_pushdown",
            false,
        )
        // A period's query joins and aggregates a million dossiers or more:
        // batches of 32 K rows (not 8 K), and no partial aggregation when
        // half the rows are distinct keys (a dossier has one or two history
        // rows).
        .with_batch_size(32 * 1024)
        .set_str(
            "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
            "0.5",
        )
        // No file chiso writes has a bloom filter: looking for them only
        // costs each row group a reader of its own.
        .set_bool("datafusion.execution.parquet.bloom_filter_on_read", false)
        .set_str(
            "datafusion.execution.time_zone",
            chiso_core::time::BUSINESS_TIME_ZONE,
        );
    override_from_environment(config.options_mut())?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(dictionary_aggregate::DictionaryAggregation))
        .build();
    let context = SessionContext::new_with_state(state);
    // The URL every scan of a local file uses.
    context.register_object_store(
        ObjectStoreUrl::local_filesystem().as_ref(),
        Arc::new(local_reads::LocalReads::default()),
    );
    Ok(context)
}

/// DataFusion's own convention, as in `datafusion-cli`:
/// `DATAFUSION_EXECUTION_BATCH_SIZE=4096` sets `datafusion.execution.batch_size`.
/// It lets an operator tune a setting (or measure one) without a build; the
/// settings chosen in [`session`] are the defaults it overrides.
fn override_from_environment(options: &mut ConfigOptions) -> Result<(), DataFusionError> {
    for entry in options.entries() {
        let variable = entry.key.to_uppercase().replace('.', "_");
        if let Some(value) = std::env::var_os(&variable) {
            options
                .set(&entry.key, &value.to_string_lossy())
                .map_err(|e| {
                    DataFusionError::Configuration(format!("environment variable {variable}: {e}"))
                })?;
        }
    }
    Ok(())
}
