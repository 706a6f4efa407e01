//! The audit log: who asked for what, when, from where, through which entry
//! point, and what came of it; a Delta table `audit` in the store.
//!
//! A server records an [`AuditEntry`] per request or statement with
//! [`AuditLog::record`], which never waits: entries go through a bounded
//! queue to one writer task that appends them to the table in one commit
//! per second (or per [`BATCH`] entries), so hundreds of readers cost a
//! commit a second, not one per page. What the log holds when the server
//! stops is written by [`AuditLog::flush`]. An entry that finds the queue
//! full is counted, and the count is written as an entry of its own
//! (`action` = `audit`, `outcome` = `dropped`): the log may lose detail
//! under a flood, never silently.
//!
//! Readers see the table at its latest version ([`crate::Store::session`]),
//! not at the version of the events they query.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::schema::Table;
use crate::store::{Store, StoreError};

/// Entries waiting for the writer; past this, entries are counted as dropped.
const QUEUE: usize = 100_000;
/// Entries per commit, at most.
pub const BATCH: usize = 10_000;
/// How long an entry waits for its commit, at most (unless writing fails).
const EVERY: Duration = Duration::from_secs(1);
/// The longest text kept in `target` and `detail` (a 2 MB query is cut).
const MAX_TEXT: usize = 16 * 1024;

/// One thing someone did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it was done (set by [`AuditLog::record`]).
    pub at: DateTime<Utc>,
    /// The signed-in user, or the name a failed sign-in gave; `None` when
    /// no name was given.
    pub user_name: Option<String>,
    pub role: Option<String>,
    /// The client's IP address.
    pub address: Option<String>,
    /// `http`, `postgres`, or `server` (the log's own entries).
    pub entry_point: &'static str,
    /// `sign_in`, `sign_out`, `page`, `export`, `report`, `chart`, `api`,
    /// `sql`, `ingest`, `audit`.
    pub action: &'static str,
    /// The path and query asked for, the SQL text, or the ingest id.
    pub target: String,
    /// `ok`, `refused` (not signed in, not allowed), `failed` (a wrong
    /// password or token), `error` (the request itself was wrong or failed),
    /// `dropped`.
    pub outcome: &'static str,
    /// The HTTP status, where there is one.
    pub status: Option<u16>,
    /// Why it was refused or failed, or what came of it (an ingest's counts).
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry of `action` on `target`, by nobody yet, `ok`.
    pub fn new(entry_point: &'static str, action: &'static str, target: impl Into<String>) -> Self {
        Self {
            at: Utc::now(),
            user_name: None,
            role: None,
            address: None,
            entry_point,
            action,
            target: target.into(),
            outcome: "ok",
            status: None,
            detail: None,
        }
    }
}

enum Message {
    Entry(AuditEntry),
    Flush(oneshot::Sender<()>),
}

/// The handle through which a server records entries; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// Starts the writer of the store at `root` (on the current runtime).
    pub async fn start(root: &Path) -> Result<Self, StoreError> {
        let store = Store::open(root).await?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(store, receiver, Arc::clone(&dropped)));
        Ok(Self { sender, dropped })
    }

    /// Queues `entry` for the table, with its time set to now; never waits.
    pub fn record(&self, mut entry: AuditEntry) {
        entry.at = Utc::now();
        cut(&mut entry.target);
        if let Some(detail) = &mut entry.detail {
            cut(detail);
        }
        if self.sender.try_send(Message::Entry(entry)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns once every entry recorded before the call is committed (or
    /// its writing has failed and been logged).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Keeps the first [`MAX_TEXT`] bytes of `text` (at a character boundary).
fn cut(text: &mut String) {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" …");
    }
}

/// The writer task: commits what came in, each [`EVERY`] or [`BATCH`]
/// entries, until every handle is gone.
async fn write(mut store: Store, mut receiver: mpsc::Receiver<Message>, dropped: Arc<AtomicU64>) {
    let mut pending: Vec<AuditEntry> = Vec::new();
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut waiting = None;
        let mut open = true;
        let write_now = tokio::select! {
            message = receiver.recv() => match message {
                Some(Message::Entry(entry)) => {
                    pending.push(entry);
                    pending.len() >= BATCH
                }
                Some(Message::Flush(done)) => {
                    waiting = Some(done);
                    true
                }
                None => {
                    open = false;
                    true
                }
            },
            _ = ticks.tick() => true,
        };
        if write_now {
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let mut entry = AuditEntry::new("server", "audit", "audit log queue");
                entry.outcome = "dropped";
                entry.detail = Some(format!(
                    "{lost} entries were not recorded: more than {QUEUE} waited at once"
                ));
                pending.push(entry);
            }
            if !pending.is_empty() {
                match commit(&mut store, &pending).await {
                    Ok(()) => pending.clear(),
                    Err(error) => {
                        tracing::error!(%error, entries = pending.len(), "could not write the audit log; retrying");
                        if pending.len() > QUEUE {
                            let excess = pending.len() - QUEUE;
                            pending.drain(..excess);
                            dropped.fetch_add(excess as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if let Some(done) = waiting {
            let _ = done.send(());
        }
        if !open {
            return;
        }
    }
}

async fn commit(store: &mut Store, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let batch = to_batch(entries).map_err(|e| StoreError::Query(e.to_string()))?;
    store.refresh_table(Table::Audit).await?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("chiso.operation".into(), "audit".into());
    store.append(Table::Audit, vec![batch], metadata).await?;
    Ok(())
}

fn to_batch(entries: &[AuditEntry]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut user_name = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut address = StringBuilder::new();
    let mut entry_point = StringBuilder::new();
    let mut action = StringBuilder::new();
    let mut target = StringBuilder::new();
    let mut outcome = StringBuilder::new();
    let mut status = Int64Builder::new();
    let mut detail = StringBuilder::new();
    for entry in entries {
        at.append_value(entry.at.timestamp_micros());
        user_name.append_option(entry.user_name.as_deref());
        role.append_option(entry.role.as_deref());
        address.append_option(entry.address.as_deref());
        entry_point.append_value(entry.entry_point);
        action.append_value(entry.action);
        target.append_value(&entry.target);
        outcome.append_value(entry.outcome);
        status.append_option(entry.status.map(i64::from));
        detail.append_option(entry.detail.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(at.finish()),
        Arc::new(user_name.finish()),
        Arc::new(role.finish()),
        Arc::new(address.finish()),
        Arc::new(entry_point.finish()),
        Arc::new(action.finish()),
        Arc::new(target.finish()),
        Arc::new(outcome.finish()),
        Arc::new(status.finish()),
        Arc::new(detail.finish()),
    ];
    RecordBatch::try_new(Table::Audit.schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let mut text = "ồ".repeat(MAX_TEXT);
        cut(&mut text);
        assert!(text.len() <= MAX_TEXT + " …".len());
        assert!(text.ends_with(" …"));
        let mut short = "SELECT 1".to_owned();
        cut(&mut short);
        assert_eq!(short, "SELECT 1");
    }
}
