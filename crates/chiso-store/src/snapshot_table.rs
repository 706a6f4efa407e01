//! A loaded Delta version as a DataFusion table read by DataFusion's own
//! Parquet scan.
//!
//! delta-rs's table provider turns every batch it reads into Delta's logical
//! rows with the kernel's expression evaluator (partition values, column
//! mapping, deletion vectors), file by file, after a scan that also carries
//! each row's file id. The tables chiso writes need none of that: their
//! protocol is reader version 1 (no column mapping, no deletion vectors), so
//! a file's rows are its Parquet rows plus its partition value, and
//! DataFusion's scan adds a partition value as a constant column itself.
//! Reading the snapshot's files that way made the ad-hoc scan of
//! `benches/kpi.sh` (d) several times faster. A table with reader features
//! (written by another Delta writer) is read through delta-rs.
//!
//! Only the files of the loaded version are read (the add actions of its
//! log), never a listing of the folder: a folder also holds files of ingests
//! that crashed before committing and files that a compaction replaced.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use chiso_exec::datafusion::catalog::{Session, TableProvider};
use chiso_exec::datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use chiso_exec::datafusion::datasource::TableType;
use chiso_exec::datafusion::datasource::empty::EmptyTable;
use chiso_exec::datafusion::datasource::file_format::FileFormat;
use chiso_exec::datafusion::datasource::file_format::parquet::ParquetFormat;
use chiso_exec::datafusion::datasource::listing::PartitionedFile;
use chiso_exec::datafusion::datasource::listing::helpers::{
    expr_applicable_for_cols, filter_partitioned_file,
};
use chiso_exec::datafusion::datasource::object_store::ObjectStoreUrl;
use chiso_exec::datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use chiso_exec::datafusion::datasource::table_schema::TableSchema;
use chiso_exec::datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use chiso_exec::datafusion::physical_plan::ExecutionPlan;
use deltalake::DeltaTable;
use url::Url;

use crate::store::column_as;

/// The prefix delta-rs gives the partition columns of its add-actions table.
const PARTITION_PREFIX: &str = "partition.";

/// The DataFusion table of `loaded` (its loaded version) in the folder
/// `table_url`, with the text columns `dictionaries` read as dictionaries.
pub(crate) async fn provider(
    loaded: &DeltaTable,
    table_url: &Url,
    dictionaries: &[&str],
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let delta_rs = loaded.table_provider().await?;
    let schema = delta_rs.schema();
    match files_provider(loaded, &schema, table_url, dictionaries, &|_| true)? {
        Some(table) => Ok(table),
        None => Ok(delta_rs),
    }
}

/// The table of only those files of `loaded` whose add-action path `keep`
/// accepts, `schema` being delta-rs's; `None` for a table that is not
/// plain Parquet (see [`provider`]).
pub(crate) fn files_provider(
    loaded: &DeltaTable,
    schema: &Schema,
    table_url: &Url,
    dictionaries: &[&str],
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
    let state = loaded
        .snapshot()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    if !reads_plain_parquet(state.protocol()) {
        return Ok(None);
    }
    let actions = state
        .add_actions_table(true)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let paths = column_as::<StringArray>(&actions, "path", &DataType::Utf8)
        .ok_or_else(|| DataFusionError::Internal("no `path` in the add actions".into()))?;
    let kept: arrow::array::BooleanArray = paths
        .iter()
        .map(|path| Some(path.is_some_and(keep)))
        .collect();
    let actions = arrow::compute::filter_record_batch(&actions, &kept)?;
    // Relative add-action paths resolve against a folder only with its slash.
    let mut folder = table_url.clone();
    if !folder.path().ends_with('/') {
        folder.set_path(&format!("{}/", folder.path()));
    }
    Ok(Some(Arc::new(SnapshotTable::try_new(
        read_types(schema, dictionaries),
        &actions,
        &folder,
    )?)))
}

/// `schema` with the types its columns are read as.
///
/// delta-rs's partition columns (its dictionary columns) become string
/// views. A scan repeats a file's partition value on every row it reads: as
/// a view that is 16 bytes of the value itself, without the copy into a
/// string buffer of a plain string column; and DataFusion groups by a view
/// column by column, by a dictionary through its row encoding
/// (benches/README.md, "Why these settings").
///
/// The text columns named in `dictionaries` become dictionaries: the
/// Parquet reader then hands over each page's dictionary and keys as they
/// are, instead of a string per row (the files are written with the
/// writer's default dictionary encoding).
fn read_types(schema: &Schema, dictionaries: &[&str]) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let read_as = match field.data_type() {
                DataType::Dictionary(_, _) => DataType::Utf8View,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    if dictionaries.contains(&field.name().as_str()) =>
                {
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
                }
                _ => return Arc::clone(field),
            };
            Arc::new(field.as_ref().clone().with_data_type(read_as))
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Whether the protocol lets a reader take the Parquet rows as they are:
/// reader version 1 has no column mapping and no deletion vectors.
fn reads_plain_parquet(protocol: &impl serde::Serialize) -> bool {
    serde_json::to_value(protocol)
        .ok()
        .and_then(|p| p.get("minReaderVersion")?.as_i64())
        == Some(1)
}

#[derive(Debug)]
struct SnapshotTable {
    /// The table's schema, as delta-rs presents it.
    schema: SchemaRef,
    /// The scan's schema: the Parquet columns, then the partition columns.
    scan_schema: TableSchema,
    /// For each column of `schema`, its index in the scan's schema.
    scan_index: Vec<usize>,
    files: Vec<PartitionedFile>,
}

impl SnapshotTable {
    fn try_new(schema: SchemaRef, actions: &RecordBatch, table_url: &Url) -> Result<Self> {
        let partition_names: Vec<&str> = actions
            .schema_ref()
            .fields()
            .iter()
            .filter_map(|f| f.name().strip_prefix(PARTITION_PREFIX))
            .collect();
        let is_partition = |name: &str| partition_names.contains(&name);
        let file_fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .filter(|f| !is_partition(f.name()))
            .cloned()
            .collect();
        let partition_fields = partition_names
            .iter()
            .map(|name| Ok(Arc::new(schema.field_with_name(name)?.clone())))
            .collect::<Result<Vec<FieldRef>>>()?;
        // The files' own schema, given to the reader with each file: it
        // declares the dictionary columns (the files' Arrow schema does not).
        let file_schema = Arc::new(Schema::new(file_fields));
        let scan_schema = TableSchema::builder(Arc::clone(&file_schema))
            .with_table_partition_cols(partition_fields.clone())
            .build();
        let scan_index = schema
            .fields()
            .iter()
            .map(|field| scan_schema.table_schema().index_of(field.name()))
            .collect::<Result<Vec<_>, _>>()?;

        let column = |name: &str, data_type: &DataType| {
            DataFusionError::Internal(format!(
                "no `{name}` of type {data_type} in the add actions"
            ))
        };
        let text = |name: &str| {
            column_as::<StringArray>(actions, name, &DataType::Utf8)
                .ok_or_else(|| column(name, &DataType::Utf8))
        };
        let paths = text("path")?;
        let sizes = column_as::<Int64Array>(actions, "size_bytes", &DataType::Int64)
            .ok_or_else(|| column("size_bytes", &DataType::Int64))?;
        let partition_values = partition_names
            .iter()
            .map(|name| text(&format!("{PARTITION_PREFIX}{name}")))
            .collect::<Result<Vec<_>>>()?;
        let mut files = Vec::with_capacity(actions.num_rows());
        for row in 0..actions.num_rows() {
            // Add-action paths are URIs relative to the table's folder.
            let location = table_url
                .join(paths.value(row))
                .ok()
                .and_then(|url| url.to_file_path().ok())
                .ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "the add action `{}` is not a file of the table",
                        paths.value(row)
                    ))
                })?;
            let mut file = PartitionedFile::new(
                location.to_string_lossy().into_owned(),
                sizes.value(row).max(0) as u64,
            )
            .with_arrow_schema(Arc::clone(&file_schema));
            file.partition_values = partition_values
                .iter()
                .zip(&partition_fields)
                .map(|(values, field)| {
                    let value = values.is_valid(row).then(|| values.value(row).to_owned());
                    ScalarValue::Utf8(value).cast_to(field.data_type())
                })
                .collect::<Result<_>>()?;
            files.push(file);
        }
        Ok(Self {
            schema,
            scan_schema,
            scan_index,
            files,
        })
    }

    fn partition_names(&self) -> Vec<&str> {
        self.scan_schema
            .table_partition_cols()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// Whether `filter` can be decided from a file's partition values alone.
    fn decides_files(&self, filter: &Expr) -> bool {
        let names = self.partition_names();
        !names.is_empty() && expr_applicable_for_cols(&names, filter)
    }
}

/// Files in `count` groups of about equal bytes (the largest first, each to
/// the lightest group), one group per thread of the scan.
fn balanced_groups(mut files: Vec<PartitionedFile>, count: usize) -> Vec<FileGroup> {
    files.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); count.max(1)];
    for file in files {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.object_meta.size;
        lightest.1.push(file);
    }
    groups
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| self.decides_files(f))
            .cloned()
            .collect();
        let partition_schema =
            DFSchema::try_from(Schema::new(self.scan_schema.table_partition_cols().clone()))?;
        let mut files = Vec::new();
        for file in &self.files {
            if let Some(file) =
                filter_partitioned_file(file.clone(), &partition_filters, &partition_schema)?
            {
                files.push(file);
            }
        }
        if files.is_empty() {
            return EmptyTable::new(Arc::clone(&self.schema))
                .scan(state, projection, &[], limit)
                .await;
        }
        let indices = match projection {
            Some(columns) => columns.iter().map(|&i| self.scan_index[i]).collect(),
            None => self.scan_index.clone(),
        };
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let config = FileScanConfigBuilder::new(
            ObjectStoreUrl::local_filesystem(),
            format.file_source(self.scan_schema.clone()),
        )
        .with_file_groups(balanced_groups(files, state.config().target_partitions()))
        .with_projection_indices(Some(indices))?
        .with_limit(limit)
        .build();
        format.create_physical_plan(state, config).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters on partition columns choose the files; the rest are also
        // applied after the scan, and DataFusion pushes them into the Parquet
        // reader to skip row groups and pages.
        Ok(filters
            .iter()
            .map(|f| {
                if self.decides_files(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }
}

/// A table read at its latest committed version by every scan, rather than
/// at the version the session was made with: the audit log, which grows
/// with every request while the session of a store version is kept for
/// as long as no ingest comes.
#[derive(Debug)]
pub(crate) struct LatestTable {
    schema: SchemaRef,
    table_url: Url,
}

impl LatestTable {
    /// The table in the folder `table_url`, shaped like `loaded`.
    pub(crate) async fn try_new(loaded: &DeltaTable, table_url: &Url) -> Result<Self> {
        let schema = provider(loaded, table_url, &[]).await?.schema();
        Ok(Self {
            schema,
            table_url: table_url.clone(),
        })
    }
}

#[async_trait]
impl TableProvider for LatestTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let latest = deltalake::open_table(self.table_url.clone())
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        provider(&latest, &self.table_url, &[])
            .await?
            .scan(state, projection, filters, limit)
            .await
    }
}
