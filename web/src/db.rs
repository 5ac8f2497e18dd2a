//! The database side: a connection pool and one SQL call per endpoint. The web service holds no
//! model; every question is answered by the extension, as the role in DATABASE_URL.
//!
//! Each connection's messages are driven by a task of ours rather than deadpool's, so that the
//! progress NOTICEs nl2sql sends while it works (see extension/src/progress.rs) reach the request
//! that is streaming them; they are routed by the backend's process id.

use crate::error::ApiError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// Where the NOTICEs of each connection go: backend process id → the listening request.
#[derive(Clone, Default)]
pub struct Notices(Arc<Mutex<HashMap<i32, mpsc::UnboundedSender<tokio_postgres::error::DbError>>>>);

impl Notices {
    /// Sends `pid`'s NOTICEs to the returned receiver until the guard is dropped.
    pub fn listen(&self, pid: i32) -> (mpsc::UnboundedReceiver<tokio_postgres::error::DbError>, impl Drop) {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.0.lock().expect("notice routes").insert(pid, sender);
        struct Unlisten(Notices, i32);
        impl Drop for Unlisten {
            fn drop(&mut self) {
                self.0 .0.lock().expect("notice routes").remove(&self.1);
            }
        }
        (receiver, Unlisten(self.clone(), pid))
    }

    fn route(&self, pid: i32, notice: tokio_postgres::error::DbError) {
        if let Some(sender) = self.0.lock().expect("notice routes").get(&pid) {
            let _ = sender.send(notice);
        }
    }
}

/// Opens connections whose driver task routes NOTICEs through [`Notices`].
struct RoutedConnect {
    notices: Notices,
}

impl deadpool_postgres::Connect for RoutedConnect {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>> {
        let config = config.clone();
        let notices = self.notices.clone();
        Box::pin(async move {
            let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
            let pid = Arc::new(std::sync::OnceLock::<i32>::new());
            let task_pid = pid.clone();
            let task = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                    match message {
                        Ok(AsyncMessage::Notice(notice)) => {
                            if let Some(&pid) = task_pid.get() {
                                notices.route(pid, notice);
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
            let row = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[]).await?;
            let _ = pid.set(row.get(0));
            Ok((client, task))
        })
    }
}

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Each pooled connection is a backend that loads the model on its first question (seconds
    /// and ~3 GB), so the pool is small and connections are kept.
    pub size: usize,
    /// How long a request waits for a free connection before it gets 503 with Retry-After.
    pub wait: Duration,
}

/// The pool, and where its connections' NOTICEs go.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    pub notices: Notices,
    wait: Duration,
}

impl Database {
    pub fn new(database_url: &str, settings: &PoolSettings) -> Result<Self, String> {
        let config = tokio_postgres::Config::from_str(database_url).map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
        let notices = Notices::default();
        let connect = RoutedConnect { notices: notices.clone() };
        let manager = Manager::from_connect(config, connect, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(settings.size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.wait))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { pool, notices, wait: settings.wait })
    }

    /// A pooled connection, waiting at most the configured time for one to be free.
    pub async fn client(&self) -> Result<Object, ApiError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => ApiError::busy(self.wait.as_secs().max(1) as u32),
            PoolError::Backend(e) => e.into(),
            other => ApiError::unavailable(other),
        })
    }

    async fn one_json(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Value, ApiError> {
        let client = self.client().await?;
        let row = client.query_one(sql, params).await?;
        Ok(row.get::<_, Value>(0))
    }

    pub async fn ask(&self, question: &str) -> Result<Value, ApiError> {
        self.one_json("SELECT nl2sql_ask($1)", &[&question]).await
    }

    pub async fn sql(&self, question: &str) -> Result<Value, ApiError> {
        self.one_json("SELECT to_jsonb(nl2sql_sql($1))", &[&question]).await
    }

    pub async fn schema(&self) -> Result<Value, ApiError> {
        self.one_json("SELECT nl2sql_schema()", &[]).await
    }

    pub async fn status(&self) -> Result<Value, ApiError> {
        self.one_json("SELECT nl2sql_status()", &[]).await
    }

    pub async fn stats(&self) -> Result<Value, ApiError> {
        self.one_json("SELECT nl2sql_stats()", &[]).await
    }
}
