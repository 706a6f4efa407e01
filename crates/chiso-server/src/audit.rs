//! What the audit log ([`chiso_store::audit`]) records of each HTTP request
//! of a signed-in server: one entry, written by the sign-in middleware once
//! the answer is known, so that no route can forget it. A handler that
//! knows more than the path (the SQL text of a `POST`, an ingest's id and
//! counts, the name a failed sign-in gave) adds it to its answer as an
//! [`AuditNote`]; an error answer carries its message the same way.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use chiso_store::audit::AuditEntry;

use crate::sign_in::Reader;

/// What a handler adds to the entry of its request.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// The user a sign-in was for (the request has none yet).
    pub user: Option<String>,
    /// What was asked for, when the path does not say (SQL sent as a body).
    pub target: Option<String>,
    /// Why it failed, or what came of it.
    pub detail: Option<String>,
    /// The outcome, when the status does not tell it.
    pub outcome: Option<&'static str>,
}

/// The note of `response`, made empty if it has none.
pub fn note(response: &mut Response) -> &mut AuditNote {
    response
        .extensions_mut()
        .get_or_insert_default::<AuditNote>()
}

/// What a request to `path` does; `None` for what is not recorded (the
/// login form, health checks, static files).
fn action(method: &Method, path: &str) -> Option<&'static str> {
    Some(match path {
        // Asked by every page for its header: the page is recorded.
        "/health" | "/api/me" | "/favicon.ico" => return None,
        _ if path.starts_with("/static/") => return None,
        "/login" if method == Method::POST => "sign_in",
        "/login" => return None,
        "/logout" => "sign_out",
        // The console runs the query of its `q` as the API does.
        "/api/sql" | "/sql" => "sql",
        "/api/events" => "ingest",
        _ if path.starts_with("/export/") => "export",
        _ if path.starts_with("/pack/") || path.starts_with("/reports") => "report",
        _ if path.starts_with("/chart/") => "chart",
        _ if path.starts_with("/api/") => "api",
        _ => "page",
    })
}

/// The request as it came, for the entry.
pub struct Asked {
    pub method: Method,
    pub target: String,
    pub address: Option<std::net::IpAddr>,
    /// The request carried `Authorization` (a token, right or wrong).
    pub bearer: bool,
}

/// The entry of a request that `reader` (if anyone signed in) made.
pub fn entry(asked: Asked, reader: Option<&Reader>, response: &Response) -> Option<AuditEntry> {
    let path = asked.target.split('?').next().unwrap_or_default();
    let action = action(&asked.method, path)?;
    let note = response.extensions().get::<AuditNote>();
    let status = response.status();
    let mut entry = AuditEntry::new("http", action, asked.target.clone());
    if let Some(target) = note.and_then(|n| n.target.clone()) {
        entry.target = target;
    }
    entry.address = asked.address.map(|ip| ip.to_string());
    entry.status = Some(status.as_u16());
    if let Some(Reader::User(user)) = reader {
        entry.user_name = Some(user.name.clone());
        entry.role = Some(user.role.as_str().to_owned());
    } else if let Some(name) = note.and_then(|n| n.user.clone()) {
        entry.user_name = Some(name);
    }
    entry.outcome = match note.and_then(|n| n.outcome) {
        Some(outcome) => outcome,
        None if reader.is_none() && status == StatusCode::SEE_OTHER => "refused",
        None if status == StatusCode::UNAUTHORIZED && asked.bearer => "failed",
        None if matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::MISDIRECTED_REQUEST
                | StatusCode::TOO_MANY_REQUESTS
        ) =>
        {
            "refused"
        }
        None if status.is_client_error() || status.is_server_error() => "error",
        None => "ok",
    };
    entry.detail = note.and_then(|n| n.detail.clone()).or_else(|| {
        (entry.outcome == "refused" && reader.is_none()).then(|| "not signed in".to_owned())
    });
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_but_the_public_ones_is_recorded_as_what_it_does() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(action(&get, "/health"), None);
        assert_eq!(action(&get, "/api/me"), None);
        assert_eq!(action(&get, "/static/chiso.css"), None);
        assert_eq!(action(&get, "/login"), None);
        assert_eq!(action(&post, "/login"), Some("sign_in"));
        assert_eq!(action(&post, "/logout"), Some("sign_out"));
        assert_eq!(action(&post, "/api/sql"), Some("sql"));
        assert_eq!(action(&post, "/api/events"), Some("ingest"));
        assert_eq!(action(&get, "/export/overview.xlsx"), Some("export"));
        assert_eq!(action(&get, "/pack/city.pdf"), Some("report"));
        assert_eq!(action(&get, "/reports/2025-W40/city.pdf"), Some("report"));
        assert_eq!(action(&get, "/chart/overview/trend.png"), Some("chart"));
        assert_eq!(action(&get, "/api/kpi"), Some("api"));
        assert_eq!(action(&get, "/ward/31135"), Some("page"));
        assert_eq!(action(&get, "/sql"), Some("sql"));
    }
}
