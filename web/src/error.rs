//! One error type for the HTTP API: every failure becomes a status code and a JSON body
//! {"error": "...", "detail": "...", "hint": "..."}. The service never panics on a request.
//!
//! Errors raised by the extension carry a SQLSTATE; [`STATUS_BY_SQLSTATE`] is the one table that
//! turns them into HTTP statuses (the README shows it; web/tests/api.rs and remote.rs have a test per row).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Which part of the system failed (what /healthz reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The request itself, or the question.
    Request,
    /// PostgreSQL could not be reached, or no connection was free in time.
    Database,
    /// The database answers but has no nl2sql extension.
    Extension,
    /// The extension raised an error (no valid query, timeout, missing model...).
    Nl2sql,
}

/// SQLSTATE (or SQLSTATE class, ending in `*`) → HTTP status, with what it means here. The first
/// matching row wins; anything else is 500.
pub const STATUS_BY_SQLSTATE: &[(&str, StatusCode, &str)] = &[
    ("22023", StatusCode::UNPROCESSABLE_ENTITY, "invalid parameter: an empty or over-long question"),
    ("42000", StatusCode::UNPROCESSABLE_ENTITY, "no valid query could be written for the question"),
    ("42P01", StatusCode::UNPROCESSABLE_ENTITY, "the role may read no table on its search path"),
    ("54000", StatusCode::UNPROCESSABLE_ENTITY, "the schema and question do not fit in the model's context"),
    ("57014", StatusCode::GATEWAY_TIMEOUT, "the generated query ran past nl2sql.statement_timeout (or was cancelled), or the inference server past nl2sql.request_timeout"),
    ("58P01", StatusCode::SERVICE_UNAVAILABLE, "the model file is missing or unusable"),
    ("42883", StatusCode::SERVICE_UNAVAILABLE, "the nl2sql extension is not installed in the database"),
    ("53300", StatusCode::SERVICE_UNAVAILABLE, "too many connections"),
    ("08001", StatusCode::SERVICE_UNAVAILABLE, "the inference server (nl2sql.backend = openai) cannot be reached, or failed repeatedly"),
    ("28000", StatusCode::BAD_GATEWAY, "the inference server refused nl2sql.api_key"),
    ("08*", StatusCode::SERVICE_UNAVAILABLE, "the connection to the database failed"),
    ("57P*", StatusCode::SERVICE_UNAVAILABLE, "the database is shutting down or restarting"),
];

pub fn status_for(sqlstate: &str) -> StatusCode {
    STATUS_BY_SQLSTATE
        .iter()
        .find(|(code, _, _)| match code.strip_suffix('*') {
            Some(class) => sqlstate.starts_with(class),
            None => sqlstate == *code,
        })
        .map_or(StatusCode::INTERNAL_SERVER_ERROR, |(_, status, _)| *status)
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub cause: Cause,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Seconds after which trying again makes sense (a Retry-After header).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, cause: Cause::Request, message: message.into(), detail: None, hint: None, retry_after: None }
    }

    pub fn unavailable(what: impl std::fmt::Display) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("the database is not reachable: {what}"))
            .with_hint("Check that PostgreSQL is running and DATABASE_URL points to it; try again in a moment.");
        error.cause = Cause::Database;
        error
    }

    /// Every pooled connection stayed busy for the whole wait: the service is at capacity.
    pub fn busy(waited_s: u32) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("all database connections stayed busy for {waited_s} s"))
            .with_hint("The service is answering other questions; try again shortly.");
        error.cause = Cause::Database;
        error.retry_after = Some(waited_s.max(1));
        error
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The body, as /api/ask and /api/ask/stream both send it.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": self.message, "detail": self.detail, "hint": self.hint })
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let message = db.message().trim_start_matches("nl2sql: ").to_owned();
                let mut error = Self::new(status_for(code), message);
                error.cause = Cause::Nl2sql;
                error.detail = db.detail().map(str::to_owned);
                error.hint = db.hint().map(str::to_owned);
                if code == "42883" {
                    error.cause = Cause::Extension;
                    error.message = format!("the nl2sql extension is not installed in this database ({})", db.message());
                    error.hint = Some("Run CREATE EXTENSION nl2sql; in the database DATABASE_URL names.".into());
                } else if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                    error.cause = Cause::Database;
                }
                error
            }
            None => Self::unavailable(err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
