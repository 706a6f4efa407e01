//! Results computed once per store version, however many people look.
//!
//! Every key starts with the version of the data it was computed from, so a
//! new ingest makes new keys and the old entries are dropped when the new
//! version is served. Concurrent requests for the same missing key wait for
//! one computation (single flight); a failed computation is not kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// The most entries kept before the cache starts over.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
pub struct Cache<V> {
    entries: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Cache<V> {
    /// The value for `key`, computing it with `compute` if no one has.
    pub async fn get_or_try<E, F, Fut>(&self, key: String, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
                entries.clear();
            }
            Arc::clone(entries.entry(key).or_default())
        };
        cell.get_or_try_init(compute).await.cloned()
    }

    /// Drops every entry not computed from `version_prefix`.
    pub fn retain_version(&self, version_prefix: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|key, _| key.starts_with(version_prefix));
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_misses_compute_once_and_failures_are_not_kept() {
        let cache: Arc<Cache<usize>> = Arc::default();
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
