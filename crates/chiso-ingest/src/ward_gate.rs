//! Scoped ingestion: what a ward's officers may add to the store.
//!
//! Only `received` carries a ward code; every other event belongs to the
//! ward of its dossier's `received`. So an uploader limited to some wards
//! may add
//!
//! - a `received` of one of their wards, for a dossier no other ward has
//!   received (else one ward could claim another's dossier with an earlier
//!   `received`);
//! - any other event of a dossier received by one of their wards, in the
//!   store or earlier or later in the same upload.
//!
//! Events of a dossier unknown when they are read wait until the upload
//! has been read whole (events come in any order); those still unknown
//! then go to the quarantine as `ward_not_permitted`, as does everything
//! of other wards. Nothing is dropped.

use std::collections::{BTreeSet, HashSet};

use arrow::array::AsArray;
use chiso_core::contract::{RejectReason, Rejection};
use chiso_core::event::{Event, EventType, columns};
use chiso_store::{Store, StoreError};
use futures::StreamExt;

use crate::IngestError;
use crate::index::dossier_key;

/// What the gate says of one event.
pub(crate) enum Verdict {
    Admit,
    /// Its dossier is not known yet: ask again once the upload is read.
    Wait,
    Refuse(Rejection),
}

/// The dossiers an uploader may and may not add events to.
#[derive(Debug)]
pub(crate) struct WardGate {
    wards: BTreeSet<String>,
    own: HashSet<u64>,
    others: HashSet<u64>,
}

impl WardGate {
    /// Reads which stored dossiers are received by `wards` and which by
    /// other wards.
    pub(crate) async fn load(store: &Store, wards: &[String]) -> Result<Self, IngestError> {
        let wards: BTreeSet<String> = wards.iter().cloned().collect();
        let list = wards
            .iter()
            .map(|code| format!("'{}'", code.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let dossiers = |condition: &str| {
            format!(
                "SELECT DISTINCT {dossier} FROM events WHERE {kind} = 'received' AND {condition}",
                dossier = columns::DOSSIER_ID,
                kind = columns::EVENT_TYPE,
            )
        };
        let ward = columns::WARD_CODE;
        let (own, others) = if list.is_empty() {
            (
                HashSet::new(),
                dossier_keys(store, &dossiers("TRUE")).await?,
            )
        } else {
            (
                dossier_keys(store, &dossiers(&format!("{ward} IN ({list})"))).await?,
                dossier_keys(store, &dossiers(&format!("{ward} NOT IN ({list})"))).await?,
            )
        };
        Ok(Self { wards, own, others })
    }

    /// Whether `event` may be stored now. An admitted `received` makes its
    /// dossier the uploader's for the rest of the upload.
    pub(crate) fn judge(&mut self, event: &Event) -> Verdict {
        let dossier = dossier_key(&event.dossier_id);
        if event.event_type == EventType::Received {
            let ward = event.ward_code.as_deref().unwrap_or_default();
            if !self.wards.contains(ward) {
                return Verdict::Refuse(self.refusal(
                    Some(columns::WARD_CODE),
                    format!(
                        "ward {ward} is not one of the wards this account may send for ({})",
                        self.ward_list()
                    ),
                ));
            }
            if self.others.contains(&dossier) && !self.own.contains(&dossier) {
                return Verdict::Refuse(self.refusal(
                    Some(columns::DOSSIER_ID),
                    format!(
                        "dossier `{}` was received by another ward; only that ward or an \
                         administrator may add to it",
                        event.dossier_id
                    ),
                ));
            }
            self.own.insert(dossier);
            return Verdict::Admit;
        }
        if self.own.contains(&dossier) {
            Verdict::Admit
        } else if self.others.contains(&dossier) {
            Verdict::Refuse(self.refusal(
                Some(columns::DOSSIER_ID),
                format!(
                    "dossier `{}` belongs to another ward; this account may send events of \
                     {} only",
                    event.dossier_id,
                    self.ward_list()
                ),
            ))
        } else {
            Verdict::Wait
        }
    }

    /// The answer for an event that waited for the end of the upload.
    pub(crate) fn judge_at_end(&mut self, event: &Event) -> Verdict {
        match self.judge(event) {
            Verdict::Wait => Verdict::Refuse(self.refusal(
                Some(columns::DOSSIER_ID),
                format!(
                    "dossier `{}` has no `received` event of {}, in the store or in this \
                     upload; send its `received` first",
                    event.dossier_id,
                    self.ward_list()
                ),
            )),
            verdict => verdict,
        }
    }

    fn ward_list(&self) -> String {
        self.wards.iter().cloned().collect::<Vec<_>>().join(", ")
    }

    fn refusal(&self, column: Option<&'static str>, message: String) -> Rejection {
        Rejection::new(RejectReason::WardNotPermitted, column, message)
    }
}

async fn dossier_keys(store: &Store, sql: &str) -> Result<HashSet<u64>, IngestError> {
    let mut keys = HashSet::new();
    let mut stream = store.stream(sql).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| StoreError::Query(e.to_string()))?;
        let ids = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
        keys.extend(ids.as_string::<i32>().iter().flatten().map(dossier_key));
    }
    Ok(keys)
}
