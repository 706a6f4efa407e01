//! What the audit log ([`chiso_store::audit`]) records of Postgres clients:
//! every sign-in, failed or not, and every statement, with its outcome.

use chiso_store::audit::{AuditEntry, AuditLog};
use chiso_users::Users;
use datafusion_postgres::pgwire::api::{ClientInfo, METADATA_USER};
use datafusion_postgres::pgwire::error::PgWireError;

/// The log, when the server keeps one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Audit {
    pub(crate) log: Option<AuditLog>,
    pub(crate) users: Option<Users>,
}

impl Audit {
    /// Records `action` on `target` by `client`'s user: `ok`, or the error.
    pub(crate) fn record<C: ClientInfo>(
        &self,
        client: &C,
        action: &'static str,
        target: &str,
        result: Result<(), &PgWireError>,
    ) {
        let Some(log) = &self.log else { return };
        let name = client.metadata().get(METADATA_USER).cloned();
        let mut entry = AuditEntry::new("postgres", action, target);
        entry.role = name
            .as_deref()
            .and_then(|name| self.users.as_ref()?.get(name))
            .map(|user| user.role.as_str().to_owned());
        entry.user_name = name;
        entry.address = Some(client.socket_addr().ip().to_string());
        if let Err(error) = result {
            entry.outcome = match (action, error) {
                ("sign_in", PgWireError::InvalidPassword(_)) => "failed",
                ("sign_in", _) => "refused",
                (_, PgWireError::UserError(info)) if info.code.starts_with("42501") => "refused",
                _ => "error",
            };
            entry.detail = Some(match error {
                PgWireError::UserError(info) => info.message.clone(),
                other => other.to_string(),
            });
        }
        log.record(entry);
    }
}
