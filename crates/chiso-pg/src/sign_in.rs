//! Sign-ins: SCRAM-SHA-256 (pgwire's), with failures logged and throttled
//! per client address.
//!
//! A password can be guessed only by trying it, and each try costs the
//! guesser one connection: after [`MAX_FAILURES`] failed sign-ins from one
//! address within [`WINDOW`], further sign-ins from it are refused at once
//! (SQLSTATE 28000) until the window has passed, whatever the password.
//! Every failure is logged with the user name and the address.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::{ClientInfo, METADATA_USER};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;

/// Failed sign-ins an address may have within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 10_000;

/// The recent failed sign-ins of every address.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    by_address: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Failures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Vec<Instant>>> {
        self.by_address.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `address` must wait before signing in again, if it must.
    fn wait(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let mut by_address = self.lock();
        let recent = by_address.get_mut(&address)?;
        recent.retain(|at| now.duration_since(*at) < WINDOW);
        if recent.len() < MAX_FAILURES {
            return None;
        }
        recent
            .first()
            .map(|oldest| WINDOW.saturating_sub(now.duration_since(*oldest)))
    }

    fn record(&self, address: IpAddr, now: Instant) {
        let mut by_address = self.lock();
        if by_address.len() >= MAX_ADDRESSES && !by_address.contains_key(&address) {
            by_address.retain(|_, recent| {
                recent.retain(|at| now.duration_since(*at) < WINDOW);
                !recent.is_empty()
            });
            if by_address.len() >= MAX_ADDRESSES {
                by_address.clear();
            }
        }
        let recent = by_address.entry(address).or_default();
        recent.push(now);
        if recent.len() > MAX_FAILURES {
            recent.remove(0);
        }
    }
}

/// pgwire's startup handler, behind the throttle.
pub(crate) struct Throttled<H> {
    pub(crate) inner: H,
    pub(crate) failures: Arc<Failures>,
}

#[async_trait]
impl<H: StartupHandler> StartupHandler for Throttled<H> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let address = client.socket_addr().ip();
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        if let Some(wait) = self.failures.wait(address, Instant::now()) {
            tracing::warn!(%user, %address, "Postgres sign-in refused: too many failures from this address");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_owned(),
                "28000".to_owned(),
                format!(
                    "too many failed sign-ins from {address}; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ))));
        }
        let result = self.inner.on_startup(client, message).await;
        if let Err(PgWireError::InvalidPassword(_)) = &result {
            self.failures.record(address, Instant::now());
            tracing::warn!(%user, %address, "Postgres sign-in failed: wrong password or unknown user");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_waits_after_too_many_failures_and_others_do_not() {
        let failures = Failures::default();
        let (guesser, other): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(failures.wait(guesser, start), None, "after {i} failures");
            failures.record(guesser, start);
        }
        assert!(failures.wait(guesser, start).is_some());
        assert_eq!(failures.wait(other, start), None);
        assert_eq!(
            failures.wait(guesser, start + WINDOW),
            None,
            "the window passed"
        );
    }
}
