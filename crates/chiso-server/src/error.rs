//! The one error type of the server, and how it answers: JSON for the API,
//! a page in the product's style for people.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chiso_dashboard::{DashboardError, Lang};
use chiso_engine::{EngineError, RequestError, UnknownWard};

/// Why a request failed, with the status it answers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<EngineError> for AppError {
    /// By the error's kind, never its message.
    fn from(error: EngineError) -> Self {
        let status = match &error {
            EngineError::Request(request) => return request.clone().into(),
            EngineError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Stopped(_) => StatusCode::GATEWAY_TIMEOUT,
            other if other.is_request_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

impl From<RequestError> for AppError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Ward(unknown) => unknown.into(),
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<UnknownWard> for AppError {
    fn from(error: UnknownWard) -> Self {
        Self::not_found(error.to_string())
    }
}

impl From<DashboardError> for AppError {
    fn from(error: DashboardError) -> Self {
        match error {
            DashboardError::Query { source, panel } => {
                let inner = AppError::from(*source);
                Self::new(inner.status, format!("panel `{panel}`: {}", inner.message))
            }
            other => Self::internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        }
        let body = serde_json::json!({ "error": &self.message, "status": self.status.as_u16() });
        let mut response = (self.status, axum::Json(body)).into_response();
        crate::audit::note(&mut response).detail = Some(self.message);
        response
    }
}

/// An error shown to a person, as a page.
#[derive(Debug)]
pub struct PageError {
    pub error: AppError,
    pub lang: Lang,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.error.status.is_server_error() {
            tracing::error!(status = %self.error.status, message = %self.error.message, "page failed");
        }
        let html = crate::html::error_page(self.error.status, &self.error.message, self.lang);
        let mut response = (self.error.status, Html(html)).into_response();
        crate::audit::note(&mut response).detail = Some(self.error.message);
        response
    }
}
