//! The database side: a connection pool and one SQL call per endpoint. The web service holds no
//! model; every question is answered by the extension, as the role in DATABASE_URL.

use crate::error::ApiError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use std::str::FromStr;

/// Each pooled connection is a backend that loads the model on its first question (seconds and
/// ~3 GB), so the pool is small and connections are kept.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, String> {
    let config = tokio_postgres::Config::from_str(database_url).map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let manager = Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(size).build().map_err(|e| e.to_string())
}

async fn one_json(pool: &Pool, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Value, ApiError> {
    let client = pool.get().await?;
    let row = client.query_one(sql, params).await?;
    Ok(row.get::<_, Value>(0))
}

pub async fn ask(pool: &Pool, question: &str) -> Result<Value, ApiError> {
    one_json(pool, "SELECT nl2sql_ask($1)", &[&question]).await
}

pub async fn sql(pool: &Pool, question: &str) -> Result<Value, ApiError> {
    one_json(pool, "SELECT to_jsonb(nl2sql_sql($1))", &[&question]).await
}

pub async fn schema(pool: &Pool) -> Result<Value, ApiError> {
    one_json(pool, "SELECT nl2sql_schema()", &[]).await
}

pub async fn status(pool: &Pool) -> Result<Value, ApiError> {
    one_json(pool, "SELECT nl2sql_status()", &[]).await
}
