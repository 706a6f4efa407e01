//! Sign-ins: SCRAM-SHA-256 (pgwire's), with failures logged and throttled
//! per client address.
//!
//! A password can be guessed only by trying it, and each try costs the
//! guesser one connection: after `chiso_users::MAX_FAILURES` failed sign-ins
//! from one address within `chiso_users::FAILURE_WINDOW`, further sign-ins from it are refused at once
//! (SQLSTATE 28000) until the window has passed, whatever the password.
//! Every failure is logged with the user name and the address, and every
//! sign-in, failed or not, goes to the audit log.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chiso_users::Failures;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::{ClientInfo, METADATA_USER, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;

/// pgwire's startup handler, behind the throttle.
pub(crate) struct Throttled<H> {
    pub(crate) inner: H,
    pub(crate) failures: Arc<Failures>,
    pub(crate) audit: crate::audit::Audit,
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
            let refused = PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_owned(),
                "28000".to_owned(),
                format!(
                    "too many failed sign-ins from {address}; try again in {} s",
                    wait.as_secs().max(1)
                ),
            )));
            self.audit.record(client, "sign_in", "", Err(&refused));
            return Err(refused);
        }
        let signing_in = !matches!(client.state(), PgWireConnectionState::ReadyForQuery);
        let result = self.inner.on_startup(client, message).await;
        match &result {
            Err(error @ PgWireError::InvalidPassword(_)) => {
                self.failures.record(address, Instant::now());
                tracing::warn!(%user, %address, "Postgres sign-in failed: wrong password or unknown user");
                self.audit.record(client, "sign_in", "", Err(error));
            }
            Ok(())
                if signing_in && matches!(client.state(), PgWireConnectionState::ReadyForQuery) =>
            {
                self.audit.record(client, "sign_in", "", Ok(()));
            }
            _ => {}
        }
        result
    }
}
