//! The HTTP error type: a status, a stable machine-readable `code` and a
//! message safe to show. Internal causes are logged, never returned.

use std::time::Duration;

use axum::{
    extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::{
    billing::{QuotaError, QuotaExceeded},
    store::StoreError,
};

/// What a 503 asks the client to wait before retrying.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// An error answered to an HTTP client as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("too many messages; slow down")]
    RateLimited,
    /// A throttle said no; `Retry-After` tells when it will say yes.
    #[error("{message}")]
    TooManyRequests {
        message: &'static str,
        retry_after: Duration,
    },
    /// The plan's daily quota is spent: 429 with the quota's fields.
    #[error("{}", QuotaExceeded::MESSAGE)]
    QuotaExceeded(Box<QuotaExceeded>),
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("{message}")]
    Provider {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// A 400 with the given code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// 503 `unavailable`: storage (or another part of the server) failed;
    /// the client keeps its session and retries.
    pub fn unavailable() -> Self {
        AppError::Unavailable {
            code: "unavailable",
            message: "the service is temporarily unavailable; try again shortly".into(),
        }
    }

    /// 502 with the provider's stable error code and its public message:
    /// the model failed, never the request.
    pub fn provider(error: &colloquy_ai::ProviderError) -> Self {
        AppError::Provider {
            status: StatusCode::BAD_GATEWAY,
            code: error.code(),
            message: colloquy_ai::ProviderError::public_message_for(error.code()).into(),
        }
    }

    /// 503 `overloaded`: too much work queued; the client retries later.
    pub fn overloaded() -> Self {
        AppError::Unavailable {
            code: "overloaded",
            message: "the server is busy; try again shortly".into(),
        }
    }

    /// How long the client should wait before retrying, when it should.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AppError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            AppError::Unavailable { .. } => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        }
    }

    /// The HTTP status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AppError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::RateLimited | AppError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            AppError::QuotaExceeded(_) => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            AppError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            AppError::Provider { status, code, .. } => (*status, code),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = %format!("{cause:#}"), "internal error");
        }
        let mut body = json!({ "error": { "code": code, "message": self.to_string() } });
        if let AppError::QuotaExceeded(quota) = &self {
            // The quota's fields beside `code`, as on the socket's `error`.
            if let (Ok(Value::Object(fields)), Some(error)) =
                (serde_json::to_value(quota), body["error"].as_object_mut())
            {
                error.extend(fields);
            }
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(wait) = self.retry_after() {
            // Whole seconds, rounded up: a client retrying on time is let in.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => AppError::NotFound("resource"),
            StoreError::Conflict(what) => AppError::Conflict(what.into()),
            // The database is unreachable or full of waiters: worth retrying.
            StoreError::Unavailable
            | StoreError::Database(
                sqlx::Error::PoolClosed | sqlx::Error::PoolTimedOut | sqlx::Error::Io(_),
            ) => {
                tracing::error!(%error, "storage unavailable");
                AppError::unavailable()
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<QuotaError> for AppError {
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Exceeded(quota) => AppError::QuotaExceeded(quota),
            error @ QuotaError::ModelNotInPlan { .. } => AppError::Forbidden {
                code: "model_not_in_plan",
                message: error.to_string(),
            },
            QuotaError::Store(error) => error.into(),
        }
    }
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return AppError::PayloadTooLarge;
        }
        AppError::bad_request("invalid_body", rejection.body_text())
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return AppError::PayloadTooLarge;
        }
        let code = match rejection {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ => "invalid_json",
        };
        AppError::bad_request(code, rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::bad_request("invalid_path", rejection.body_text())
    }
}

/// `Json` whose rejections are [`AppError`]s, so a malformed body gets the JSON error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// `Query` whose rejections are [`AppError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// `Path` whose rejections are [`AppError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}
