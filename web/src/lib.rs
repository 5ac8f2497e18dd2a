//! nl2sql's web service: the question page and a small JSON API over the extension's functions.
//! - [`api`] — the handlers; [`db`] — the pool and SQL calls; [`error`] — errors as JSON

pub mod api;
pub mod db;
pub mod error;

use axum::routing::{get, post};
use axum::Router;
use deadpool_postgres::Pool;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
}

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    pub pool_size: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let database_url = std::env::var("DATABASE_URL")
            .map_err(|_| "DATABASE_URL is not set; e.g. DATABASE_URL=postgres://nl2sql_web@127.0.0.1:5433/nl2sql".to_owned())?;
        let bind = std::env::var("BIND_ADDRESS").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
        let pool_size = match std::env::var("NL2SQL_WEB_POOL_SIZE") {
            Ok(v) => v.parse().ok().filter(|n| *n > 0).ok_or(format!("NL2SQL_WEB_POOL_SIZE must be a positive number, not '{v}'"))?,
            Err(_) => 2,
        };
        Ok(Self { database_url, bind, pool_size })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/healthz", get(api::healthz))
        .route("/api/ask", post(api::ask))
        .route("/api/sql", post(api::sql))
        .route("/api/schema", get(api::schema))
        .route("/api/openapi.json", get(api::openapi))
        .fallback(api::not_found)
        .with_state(state)
}
