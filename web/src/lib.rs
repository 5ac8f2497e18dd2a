//! nl2sql's web service: the question page and a small JSON API over the extension's functions.
//! - [`api`] — the handlers; [`stream`] — the answer as server-sent events
//! - [`db`] — the pool and SQL calls; [`error`] — errors as JSON, SQLSTATE → HTTP status
//! - [`metrics`] — the model worker's statistics for Prometheus

pub mod api;
pub mod db;
pub mod error;
pub mod metrics;
pub mod stream;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use db::{Database, PoolSettings};
use std::time::Duration;

/// Request bodies hold one question of at most 2,000 characters: 64 kB is plenty.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub database: Database,
    /// Questions being answered through /api/ask/stream, which /api/ask/cancel can stop.
    pub running: stream::Running,
}

impl AppState {
    pub fn new(database: Database) -> Self {
        Self { database, running: stream::Running::default() }
    }
}

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    pub pool: PoolSettings,
}

fn positive(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().ok().filter(|n| *n > 0).ok_or(format!("{name} must be a positive number, not '{v}'")),
        Err(_) => Ok(default),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let database_url = std::env::var("DATABASE_URL")
            .map_err(|_| "DATABASE_URL is not set; e.g. DATABASE_URL=postgres://nl2sql_web@127.0.0.1:5433/nl2sql".to_owned())?;
        let bind = std::env::var("BIND_ADDRESS").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
        let pool = PoolSettings {
            size: positive("NL2SQL_WEB_POOL_SIZE", 2)? as usize,
            wait: Duration::from_secs(positive("NL2SQL_WEB_POOL_WAIT_S", 60)?),
        };
        Ok(Self { database_url, bind, pool })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/ask", post(api::ask))
        .route("/api/ask/stream", post(api::ask_stream))
        .route("/api/ask/cancel", post(api::cancel))
        .route("/api/sql", post(api::sql))
        .route("/api/schema", get(api::schema))
        .route("/api/openapi.json", get(api::openapi))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
