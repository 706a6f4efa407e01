//! Who is asking. With `chiso serve --users FILE`, every request but the
//! login page, the static files and `/health` is made by a user: one whose
//! session cookie (from the login page) or `Authorization: Bearer TOKEN`
//! (`chiso user token`) is valid. The user's role decides what they may do
//! (SQL, ingestion) and their scope what they see: every handler reads the
//! figures through [`crate::AppState::snapshot`], an engine scoped before
//! any query plans (`chiso_engine::scope`). Without `--users` the server is
//! open, as before, and the CLI binds it to loopback only.
//!
//! The session cookie is `HttpOnly`, `SameSite=Lax`, `Secure` under TLS,
//! and expires after [`SESSION_HOURS`]; the login and logout forms carry a
//! CSRF token that must match a cookie of its own (double submit), and
//! the shield already refuses state-changing requests from other sites'
//! pages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use chiso_dashboard::Lang;
use chiso_engine::Scope;
use chiso_users::{Role, User, Users};

use crate::AppState;
use crate::error::AppError;
use crate::html::escape;

/// How long a session lasts.
pub const SESSION_HOURS: u64 = 12;
/// Sessions kept at most; past it, expired ones are dropped, then the oldest.
const MAX_SESSIONS: usize = 10_000;
const SESSION_COOKIE: &str = "chiso_session";
const CSRF_COOKIE: &str = "chiso_csrf";

/// The reader of a request.
#[derive(Debug, Clone)]
pub enum Reader {
    /// No users file: the open server of a single machine.
    Open,
    User(Arc<User>),
}

impl Reader {
    pub fn scope(&self) -> Scope {
        match self {
            Self::Open => Scope::everything(),
            Self::User(user) => user.scope(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Open => "-",
            Self::User(user) => &user.name,
        }
    }

    /// 403 unless the reader writes SQL (the console, `/api/sql`).
    pub fn must_write_sql(&self) -> Result<(), AppError> {
        match self {
            Self::User(user) if !user.role.writes_sql() => Err(AppError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is a {}: SQL is for analysts, ward users and administrators",
                    user.name,
                    user.role.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the reader may open an archived pack: every pack for a
    /// city-wide reader, their wards' packs (`chiso-ward-CODE-…`) for a
    /// ward's officers.
    pub fn may_open_pack(&self, file: &str) -> bool {
        match self.scope().ward_codes() {
            None => true,
            Some(wards) => wards
                .iter()
                .any(|code| file.starts_with(&format!("chiso-ward-{code}-"))),
        }
    }

    /// The wards the reader may send events and dossier lists for: `None`
    /// for every ward (an administrator, or the open server's ingest
    /// token), a ward user's own wards (rows of other wards go to the
    /// quarantine), 403 for leaders and analysts.
    pub fn ingest_wards(&self) -> Result<Option<Vec<String>>, AppError> {
        match self {
            Self::Open => Ok(None),
            Self::User(user) if !user.role.ingests() => Err(AppError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is a {}: events and dossier lists are sent by ward users and \
                     administrators",
                    user.name,
                    user.role.as_str()
                ),
            )),
            Self::User(user) => Ok(user
                .scope()
                .ward_codes()
                .map(|wards| wards.iter().map(|code| code.to_string()).collect())),
        }
    }
}

/// The signed-in sessions of the login page.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    fn start(&self, name: &str) -> Result<String, AppError> {
        let id = random_text()?;
        let mut sessions = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            sessions.retain(|_, (_, expires)| *expires > now);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        let expires = Instant::now() + Duration::from_secs(SESSION_HOURS * 3600);
        sessions.insert(id.clone(), (name.to_owned(), expires));
        Ok(id)
    }

    fn user(&self, id: &str) -> Option<String> {
        let mut sessions = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(id) {
            Some((name, expires)) if *expires > Instant::now() => Some(name.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

fn random_text() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AppError::internal(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The user of a request's token or session cookie.
fn user_of(state: &AppState, users: &Users, headers: &HeaderMap) -> Option<User> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return users.by_token(token).cloned();
    }
    let id = cookie(headers, SESSION_COOKIE)?;
    let name = state.sessions.user(id)?;
    users.get(&name).cloned()
}

/// Paths anyone may ask for.
fn is_public(path: &str) -> bool {
    // A browser asks for /favicon.ico by itself: sent to the login page,
    // it would be one more sign-in form behind the reader's back.
    path == "/login" || path == "/health" || path == "/favicon.ico" || path.starts_with("/static/")
}

/// The middleware: the request's [`Reader`], or 401 (programs) / the
/// login page (people); and, when sign-in is on, the request's entry in
/// the audit log once its answer is known ([`crate::audit`]).
pub async fn identify(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(users) = &state.users else {
        request.extensions_mut().insert(Reader::Open);
        return next.run(request).await;
    };
    let asked = crate::audit::Asked {
        method: request.method().clone(),
        target: request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        ),
        address: request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip()),
        bearer: request.headers().contains_key(header::AUTHORIZATION),
    };
    let path = request.uri().path();
    let reader = match is_public(path) {
        true => None,
        false => user_of(&state, users, request.headers()).map(|user| Reader::User(Arc::new(user))),
    };
    let response = match &reader {
        Some(reader) => {
            request.extensions_mut().insert(reader.clone());
            next.run(request).await
        }
        None if is_public(path) => next.run(request).await,
        None if path.starts_with("/api/") => {
            let message = match asked.bearer {
                true => "the token is not a user's: make one with `chiso user token`",
                false => {
                    "sign in: send `Authorization: Bearer TOKEN` (chiso user token), or sign in at /login"
                }
            };
            let mut response = AppError::new(StatusCode::UNAUTHORIZED, message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        None => {
            let location = format!("/login?next={}", form_urlencoded(&asked.target));
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
    };
    if let Some(audit) = &state.audit
        && let Some(entry) = crate::audit::entry(asked, reader.as_ref(), &response)
    {
        audit.record(entry);
    }
    response
}

fn form_urlencoded(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Where to go after signing in: a path of this server, never another site.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
}

/// `GET /login`: the form, with a fresh CSRF token in a cookie and a field.
pub async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Result<Response, AppError> {
    let lang = query
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(Lang::Vi);
    login_form(
        &state,
        &headers,
        lang,
        query.next.as_deref(),
        None,
        StatusCode::OK,
    )
}

fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    lang: Lang,
    next: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    if state.users.is_none() {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response());
    }
    // The token the browser already holds, if any: a second login page
    // (another tab, a reload) must not make the first one's form stale.
    let csrf = match cookie(headers, CSRF_COOKIE) {
        Some(held) if held.len() == 64 && held.bytes().all(|b| b.is_ascii_hexdigit()) => {
            held.to_owned()
        }
        _ => random_text()?,
    };
    let problem = problem
        .map(|p| format!("<p class=\"error\">{}</p>", escape(p)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"{lang_code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · chỉ số</title><link rel=\"stylesheet\" href=\"/static/chiso.css\">\
<link rel=\"icon\" href=\"data:,\"></head>\
<body><main class=\"login\"><h1>{title}</h1>{problem}\
<form method=\"post\" action=\"/login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label>{name_label}<input name=\"name\" autocomplete=\"username\" required autofocus></label>\
<label>{password_label}<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">{submit}</button></form>\
<p class=\"muted\"><a href=\"/login?lang={other_code}\">{other}</a></p></main></body></html>",
        lang_code = lang.code(),
        title = lang.pick("Đăng nhập", "Sign in"),
        next = escape(&local_path(next)),
        name_label = lang.pick("Tên đăng nhập", "User name"),
        password_label = lang.pick("Mật khẩu", "Password"),
        submit = lang.pick("Đăng nhập", "Sign in"),
        other_code = lang.pick("en", "vi"),
        other = lang.pick("English", "Tiếng Việt"),
    );
    let mut response = (status, Html(body)).into_response();
    let cookie = format!(
        "{CSRF_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/{}",
        secure(state)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn secure(state: &AppState) -> &'static str {
    if state.tls { "; Secure" } else { "" }
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// A form's fields, from a body of a few kilobytes at most.
fn read_form<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, AppError> {
    if body.len() > 16 * 1024 {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a sign-in form is a few lines",
        ));
    }
    serde_urlencoded::from_str(body)
        .map_err(|e| AppError::bad_request(format!("the form is not understood: {e}")))
}

/// The CSRF field matches its cookie.
fn csrf_holds(headers: &HeaderMap, field: &str) -> bool {
    cookie(headers, CSRF_COOKIE).is_some_and(|expected| {
        !expected.is_empty()
            && expected.len() == field.len()
            && expected
                .bytes()
                .zip(field.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// `POST /login`: a session for the right name and password. Failures are
/// logged and throttled per address ([`chiso_users::Failures`], as on the
/// Postgres wire).
pub async fn login(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, AppError> {
    let address = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.0.ip());
    let form: LoginForm = read_form(&body)?;
    let Some(users) = &state.users else {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response());
    };
    if !csrf_holds(&headers, &form.csrf) {
        return login_form(
            &state,
            &headers,
            Lang::Vi,
            form.next.as_deref(),
            Some("Phiên đăng nhập đã hết hạn; hãy thử lại. (The form expired; try again.)"),
            StatusCode::FORBIDDEN,
        );
    }
    if let Some(wait) = state.failures.wait(address, Instant::now()) {
        tracing::warn!(%address, "sign-in refused: too many failures from this address");
        return noted(
            &form.name,
            "refused",
            "too many failed sign-ins from this address",
            login_form(
                &state,
                &headers,
                Lang::Vi,
                form.next.as_deref(),
                Some(&format!(
                    "Quá nhiều lần đăng nhập sai; hãy thử lại sau {} giây. \
                 (Too many failed sign-ins; try again in {} s.)",
                    wait.as_secs().max(1),
                    wait.as_secs().max(1)
                )),
                StatusCode::TOO_MANY_REQUESTS,
            ),
        );
    }
    let Some(user) = users.by_password(&form.name, &form.password) else {
        state.failures.record(address, Instant::now());
        tracing::warn!(
            user = %form.name.chars().take(64).collect::<String>(),
            %address,
            "failed sign-in"
        );
        return noted(
            &form.name,
            "failed",
            "wrong user name or password",
            login_form(
                &state,
                &headers,
                Lang::Vi,
                form.next.as_deref(),
                Some("Tên đăng nhập hoặc mật khẩu không đúng. (Wrong user name or password.)"),
                StatusCode::UNAUTHORIZED,
            ),
        );
    };
    let id = state.sessions.start(&user.name)?;
    tracing::info!(user = %user.name, role = user.role.as_str(), "signed in");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let note = crate::audit::note(&mut response);
    note.user = Some(user.name.clone());
    note.outcome = Some("ok");
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&local_path(form.next.as_deref())) {
        headers.insert(header::LOCATION, value);
    }
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        SESSION_HOURS * 3600,
        secure(&state)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// A sign-in's answer, with what the audit log is to say of it.
fn noted(
    name: &str,
    outcome: &'static str,
    detail: &str,
    response: Result<Response, AppError>,
) -> Result<Response, AppError> {
    let mut response = response?;
    let note = crate::audit::note(&mut response);
    note.user = Some(name.chars().take(64).collect());
    note.outcome = Some(outcome);
    note.detail = Some(detail.to_owned());
    Ok(response)
}

/// `GET /api/me`: who is signed in, for the pages' header (the pages
/// themselves are shared by every reader of a scope, so they cannot say).
pub async fn me(Extension(reader): Extension<Reader>) -> Response {
    let body = match &reader {
        Reader::Open => serde_json::json!({ "name": null }),
        Reader::User(user) => {
            let wards = user.scope().ward_codes().map(|codes| {
                codes
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let (vi, en) = match (user.role, &wards) {
                (Role::Ward, Some(wards)) => {
                    (format!("phường/xã {wards}"), format!("ward {wards}"))
                }
                (Role::Leader, _) => ("lãnh đạo".to_owned(), "leader".to_owned()),
                (Role::Analyst, _) => ("phân tích".to_owned(), "analyst".to_owned()),
                (Role::Admin, _) => ("quản trị".to_owned(), "administrator".to_owned()),
                (Role::Ward, None) => ("phường/xã".to_owned(), "ward".to_owned()),
            };
            serde_json::json!({
                "name": user.name,
                "role": user.role.as_str(),
                "role_label": { "vi": vi, "en": en },
                "wards": wards,
            })
        }
    };
    axum::Json(body).into_response()
}

/// `POST /logout`: the session ends. No CSRF field is needed: a form on
/// another site cannot send the session cookie (`SameSite=Lax` keeps it
/// off cross-site POSTs) and the shield refuses its `Origin`.
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.end(id);
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_follow_a_sign_in() {
        assert_eq!(
            local_path(Some("/ward/31135?period=2025-W40")),
            "/ward/31135?period=2025-W40"
        );
        for outside in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "evil",
        ] {
            assert_eq!(local_path(Some(outside)), "/", "{outside}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chiso_session=abc; chiso_csrf=xyz"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert!(csrf_holds(&headers, "xyz"));
        assert!(!csrf_holds(&headers, "xy"));
        assert!(!csrf_holds(&HeaderMap::new(), ""));
    }
}
