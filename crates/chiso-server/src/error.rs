//! The one error type of the server, and how it answers: JSON for the API,
//! a page in the product's style for people.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chiso_dashboard::{DashboardError, Lang};
use chiso_engine::EngineError;

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
    fn from(error: EngineError) -> Self {
        match error {
            // What the request asked for is not a thing: the caller's to fix.
            EngineError::Period(_)
            | EngineError::Grouping(_)
            | EngineError::Layout(_)
            | EngineError::Refused(_)
            | EngineError::Memory { .. } => Self::bad_request(error.to_string()),
            EngineError::Busy(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
            EngineError::Stopped(_) => Self::new(StatusCode::GATEWAY_TIMEOUT, error.to_string()),
            // A table function refusing its arguments (too many periods, an
            // unknown ward) fails at planning: the request's to fix.
            EngineError::Query(message) if message.starts_with("Error during planning") => {
                Self::bad_request(message)
            }
            other => Self::internal(other.to_string()),
        }
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
        let body = serde_json::json!({ "error": self.message, "status": self.status.as_u16() });
        (self.status, axum::Json(body)).into_response()
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
        (self.error.status, Html(html)).into_response()
    }
}
