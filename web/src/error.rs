//! One error type for the HTTP API: every failure becomes a status code and a JSON body
//! {"error": "...", "detail": "...", "hint": "..."}. The service never panics on a request.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Which part of the system failed (what /healthz reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The request itself, or the question.
    Request,
    /// PostgreSQL could not be reached.
    Database,
    /// The database answers but has no nl2sql extension.
    Extension,
    /// The extension raised an error (no valid query, timeout, missing model...).
    Nl2sql,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub cause: Cause,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, cause: Cause::Request, message: message.into(), detail: None, hint: None }
    }

    pub fn unavailable(what: impl std::fmt::Display) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("the database is not reachable: {what}"))
            .with_hint("Check that PostgreSQL is running and DATABASE_URL points to it; try again in a moment.");
        error.cause = Cause::Database;
        error
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// SQLSTATEs the extension raises, mapped to what the client should make of them.
fn status_for(code: &str) -> StatusCode {
    match code {
        // invalid parameter (empty or over-long question), no valid query, no readable tables
        "22023" | "22004" | "42000" | "42P01" | "54000" => StatusCode::UNPROCESSABLE_ENTITY,
        // statement timeout or cancel
        "57014" => StatusCode::GATEWAY_TIMEOUT,
        // model file missing, extension missing
        "58P01" | "42883" => StatusCode::SERVICE_UNAVAILABLE,
        // cannot connect, server shutting down, too many connections
        c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => {
                let message = db.message().trim_start_matches("nl2sql: ").to_owned();
                let mut error = Self::new(status_for(db.code().code()), message);
                error.cause = Cause::Nl2sql;
                error.detail = db.detail().map(str::to_owned);
                error.hint = db.hint().map(str::to_owned);
                if db.code().code() == "42883" {
                    error.cause = Cause::Extension;
                    error.message = format!("the nl2sql extension is not installed in this database ({})", db.message());
                    error.hint = Some("Run CREATE EXTENSION nl2sql; in the database DATABASE_URL names.".into());
                }
                error
            }
            None => Self::unavailable(err),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Self::unavailable(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "detail": self.detail, "hint": self.hint });
        (self.status, Json(body)).into_response()
    }
}
