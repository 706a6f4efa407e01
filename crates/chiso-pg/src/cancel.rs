//! Cancel requests: a client's `CancelRequest` (psql's Ctrl-C, psycopg's
//! `connection.cancel()`) stops the statement that connection is running.
//!
//! pgwire stops a statement only while it is being planned; its rows are
//! produced later, as they are sent. So each connection also gets a signal
//! of its own here, which the rows of its statements watch
//! ([`Cancels::watch`]); a cancel request fires both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager};
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use tokio::sync::watch;

type Key = (i32, Bytes);

/// The cancel signal of every connection that has run a statement.
#[derive(Debug, Default)]
pub(crate) struct Cancels {
    signals: Mutex<HashMap<Key, Arc<watch::Sender<u64>>>>,
}

/// Lives as long as its connection; forgets the signal when it ends.
struct Registration {
    key: Key,
    signal: Arc<watch::Sender<u64>>,
    cancels: Weak<Cancels>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(cancels) = self.cancels.upgrade() {
            cancels.lock().remove(&self.key);
        }
    }
}

impl Cancels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<watch::Sender<u64>>>> {
        self.signals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves when `client` asks to cancel what it runs from now on (or
    /// its connection ends).
    pub(crate) fn watch<C: ClientInfo + ?Sized>(
        self: &Arc<Self>,
        client: &C,
    ) -> impl Future<Output = ()> + Send + 'static {
        let registration = client.session_extensions().get_or_insert_with(|| {
            let (pid, secret) = client.pid_and_secret_key();
            let key = (pid, secret.to_bytes());
            let signal = Arc::new(watch::channel(0u64).0);
            self.lock().insert(key.clone(), Arc::clone(&signal));
            Registration {
                key,
                signal,
                cancels: Arc::downgrade(self),
            }
        });
        let mut receiver = registration.signal.subscribe();
        receiver.mark_unchanged();
        async move {
            let _ = receiver.changed().await;
        }
    }

    fn cancel(&self, request: &CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        if let Some(signal) = self.lock().get(&key) {
            signal.send_modify(|generation| *generation += 1);
        }
    }
}

/// The cancel handler: pgwire's (planning) and ours (rows).
pub(crate) struct OnCancel {
    pub(crate) connections: Arc<ConnectionManager>,
    pub(crate) cancels: Arc<Cancels>,
}

#[async_trait::async_trait]
impl CancelHandler for OnCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        tracing::info!(pid = request.pid, "Postgres cancel request");
        self.cancels.cancel(&request);
        self.connections
            .cancel(request.pid, &request.secret_key)
            .await;
    }
}
