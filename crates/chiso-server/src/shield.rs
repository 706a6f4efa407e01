//! What a web page elsewhere may do with this server: nothing.
//!
//! * **Host allow-list.** A page on `attacker.example` can point its own
//!   name at 127.0.0.1 (DNS rebinding) and read `/api/sql` as same-origin
//!   while the server listens on loopback only. The browser still sends
//!   `Host: attacker.example`, so a request naming a host that is not this
//!   server's is answered 421 (loopback names by default, more with
//!   `--allowed-host`). A request with an `Origin` of another host (a form
//!   or `fetch` from another site) is answered 403.
//! * **Headers on every answer**: no MIME sniffing, a Content-Security-Policy
//!   that allows only the server's own scripts, styles and images (and
//!   inline styles in the self-contained HTML packs), no framing
//!   (clickjacking), no referrer sent to other sites.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// The host names (and addresses) this server answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Arc<Vec<String>>,
}

/// The names a browser on this machine reaches loopback by.
const LOOPBACK: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

impl AllowedHosts {
    /// Loopback names, and `extra` (`review.cantho.gov.vn`, `10.0.0.5`;
    /// a port, if given, is ignored).
    pub fn new(extra: &[String]) -> Self {
        let mut names: Vec<String> = LOOPBACK.iter().map(|n| (*n).to_owned()).collect();
        for name in extra {
            let name = host_name(name);
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        Self {
            names: Arc::new(names),
        }
    }

    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        self.names.contains(&name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// `Example.org.:8080` → `example.org`; `[::1]:8080` → `[::1]`.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host[..=end].to_owned(),
            None => host,
        }
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or_default().to_owned()
    } else {
        host
    };
    without_port.trim_end_matches('.').to_owned()
}

/// The host of an `Origin` (`https://example.org:8443`), if it has one.
fn origin_host(origin: &str) -> Option<String> {
    let (_, rest) = origin.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    Some(host_name(authority))
}

/// Refuses requests for other hosts and from other sites' pages.
pub(crate) async fn check_host(
    State(allowed): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !allowed.allows(host) {
            tracing::warn!(host, "refused a request for another host");
            return AppError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this server answers to {}, not to `{host}`; start it with \
                     --allowed-host NAME to answer to another name",
                    allowed.names().join(", ")
                ),
            )
            .into_response();
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let same_site = origin_host(origin).is_some_and(|host| allowed.allows(&host));
        if !same_site {
            tracing::warn!(origin, "refused a request from another site's page");
            return AppError::new(
                StatusCode::FORBIDDEN,
                format!("requests from pages of `{origin}` are refused"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Own scripts, styles and images only; nothing framed, nothing posted
/// elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The self-contained HTML packs carry their styles inline.
const PACK_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; font-src data:; frame-ancestors 'none'; base-uri 'none'";

/// The safety headers of every answer.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let inline_styles = {
        let path = request.uri().path();
        path.starts_with("/pack/") || path.starts_with("/reports/")
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let policy = if inline_styles { PACK_POLICY } else { POLICY };
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, policy),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_case_or_trailing_dot() {
        let allowed = AllowedHosts::new(&["Review.CanTho.gov.vn:443".to_owned()]);
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "review.cantho.gov.vn",
            "REVIEW.cantho.gov.vn.",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in [
            "attacker.example",
            "localhost.attacker.example",
            "127.0.0.2",
            "",
        ] {
            assert!(!allowed.allows(host), "{host}");
        }
        assert_eq!(
            origin_host("http://localhost:8080").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            origin_host("https://u@attacker.example/x").as_deref(),
            Some("attacker.example")
        );
        assert_eq!(origin_host("null"), None);
    }
}
