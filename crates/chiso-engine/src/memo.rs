//! Results computed once, however many ask: the one memo of the product
//! (the table functions' results over ended periods, the server's tables,
//! pages and charts per store version, a report run's panel tables).
//!
//! Concurrent requests for the same missing key wait for one computation
//! (single flight); a failed computation is not kept. The memo is bounded in
//! entries and in bytes (as [`Weight`] counts them): past either it starts
//! over empty, which costs recomputation, never memory. Keys that start
//! with the version of the data they were computed from let a new version
//! drop the old entries ([`Memo::retain_version`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// The most entries kept before the memo starts over, by default.
const MAX_ENTRIES: usize = 4096;
/// The most bytes (as [`Weight`] counts them) kept before it starts over, by
/// default: distinct chart sizes and periods are cheap to ask for and cost
/// memory.
const MAX_BYTES: usize = 512 << 20;

/// About how many bytes a cached value holds.
pub trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Vec<arrow::array::RecordBatch> {
    fn weight(&self) -> usize {
        self.iter()
            .map(arrow::array::RecordBatch::get_array_memory_size)
            .sum()
    }
}

impl<T: Weight> Weight for Arc<T> {
    fn weight(&self) -> usize {
        self.as_ref().weight()
    }
}

#[derive(Debug)]
pub struct Memo<V> {
    entries: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
    bytes: AtomicUsize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self::with_limits(MAX_ENTRIES, MAX_BYTES)
    }
}

impl<V> Memo<V> {
    /// A memo keeping at most `max_entries` entries and `max_bytes` bytes.
    pub fn with_limits(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            bytes: AtomicUsize::new(0),
            max_entries,
            max_bytes,
        }
    }
}

impl<V: Clone + Weight> Memo<V> {
    /// The value for `key`, computing it with `compute` if no one has.
    pub async fn get_or_try<E, F, Fut>(&self, key: String, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let full = entries.len() >= self.max_entries
                || self.bytes.load(Ordering::Relaxed) >= self.max_bytes;
            if full && !entries.contains_key(&key) {
                entries.clear();
                self.bytes.store(0, Ordering::Relaxed);
            }
            Arc::clone(entries.entry(key).or_default())
        };
        cell.get_or_try_init(|| async {
            let value = compute().await?;
            self.bytes.fetch_add(value.weight(), Ordering::Relaxed);
            Ok(value)
        })
        .await
        .cloned()
    }

    /// The value for `key` if it was computed.
    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).and_then(|cell| cell.get().cloned())
    }

    /// Forgets `key` (a value used once and not worth its memory).
    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Drops every entry not computed from `version_prefix`.
    pub fn retain_version(&self, version_prefix: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|key, _| key.starts_with(version_prefix));
        // What is left is the new version's first few entries: counted
        // from nothing again (an estimate, never an excuse to keep more).
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Takes over the computed entries of `earlier` whose keys `keep`
    /// accepts: values a new version of the data would compute the same.
    pub fn carry_over(&self, earlier: &Memo<V>, keep: impl Fn(&str) -> bool) {
        let kept: Vec<(String, Arc<OnceCell<V>>)> = earlier
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(key, cell)| cell.initialized() && keep(key))
            .map(|(key, cell)| (key.clone(), Arc::clone(cell)))
            .collect();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (key, cell) in kept {
            if entries.len() >= self.max_entries {
                break;
            }
            if let Some(value) = cell.get() {
                self.bytes.fetch_add(value.weight(), Ordering::Relaxed);
            }
            entries.entry(key).or_insert(cell);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weight for usize {
        fn weight(&self) -> usize {
            *self
        }
    }

    #[tokio::test]
    async fn the_cache_starts_over_past_its_bytes() {
        let cache: Memo<usize> = Memo::default();
        for i in 0..3 {
            let key = format!("v1/{i}");
            let value = cache
                .get_or_try(key, || async { Ok::<_, ()>(MAX_BYTES / 2) })
                .await;
            assert_eq!(value, Ok(MAX_BYTES / 2));
        }
        assert_eq!(cache.len(), 1, "the third entry found the cache full");
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once_and_failures_are_not_kept() {
        let cache: Arc<Memo<usize>> = Arc::default();
        let computed = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, computed) = (Arc::clone(&cache), Arc::clone(&computed));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_try("v1/a".into(), || async {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok::<_, ()>(computed.fetch_add(1, Ordering::SeqCst) + 7)
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task"), Ok(7));
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);

        let failed: Result<usize, &str> = cache
            .get_or_try("v1/b".into(), || async { Err("no") })
            .await;
        assert_eq!(failed, Err("no"));
        let retried: Result<usize, &str> =
            cache.get_or_try("v1/b".into(), || async { Ok(2) }).await;
        assert_eq!(retried, Ok(2));

        cache.retain_version("v2/");
        assert!(cache.is_empty());
    }
}
