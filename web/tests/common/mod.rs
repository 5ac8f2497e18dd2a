//! Shared by the web tests: the real router on a random port, over the real database.

#![allow(dead_code)]

use nl2sql_web::db::{Database, PoolSettings};
use nl2sql_web::{router, AppState};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Row};

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name a PostgreSQL database with nl2sql and the demo table: run scripts/db-server start",
    )
}

/// A superuser URL for the same server (NL2SQL_ADMIN_URL), to set up roles for a test.
pub fn admin_url() -> String {
    std::env::var("NL2SQL_ADMIN_URL").expect("NL2SQL_ADMIN_URL must name a superuser connection to the same database")
}

/// DATABASE_URL's server and database as another user, with server settings given at connect.
pub fn url_as(user: &str, settings: &[(&str, &str)]) -> String {
    let url = database_url();
    let rest = &url[url.find('@').expect("a URL with a user")..];
    let options: Vec<String> = settings.iter().map(|(name, value)| format!("-c%20{name}%3D{value}")).collect();
    match options.is_empty() {
        true => format!("postgres://{user}{rest}"),
        false => format!("postgres://{user}{rest}?options={}", options.join("%20")),
    }
}

/// DATABASE_URL with the statement cache off, for tests that watch the model write: a question
/// another test asked before would otherwise come back at once, written by no one.
pub fn uncached_database_url() -> String {
    url_as("nl2sql_web", &[("nl2sql.statement_cache", "off")])
}

/// Runs SQL as the superuser.
pub async fn admin(sql: &str) {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Starts the service on 127.0.0.1:<random> and returns its base URL.
pub async fn start(database_url: &str, pool_size: usize) -> String {
    start_with(database_url, PoolSettings { size: pool_size, wait: Duration::from_secs(600) }).await
}

pub async fn start_with(database_url: &str, pool: PoolSettings) -> String {
    let database = Database::new(database_url, &pool).expect("pool");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(AppState::new(database))).await.unwrap() });
    format!("http://{address}")
}

/// The best-selling pizza on Fridays by a hand-written query: what the answers must show.
pub async fn friday_best_seller() -> String {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT name FROM pizza_sales WHERE EXTRACT(DOW FROM date) = 5 GROUP BY name ORDER BY count(*) DESC LIMIT 1", &[])
        .await
        .expect("reference query");
    row.get(0)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(600)).build().unwrap()
}

/// The one value `sql` returns, run as the superuser (e.g. to check generated SQL).
pub async fn admin_query_one(sql: &str) -> serde_json::Value {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    let row = client.query_one(&format!("SELECT to_jsonb(q) -> (SELECT min(k) FROM jsonb_object_keys(to_jsonb(q)) k) FROM ({sql}) q"), &[]).await.unwrap();
    row.get(0)
}

/// A superuser session, its backend's pid, and the details of the NOTICEs it receives. The
/// statement cache is off in it: these sessions are for watching the model write.
pub async fn watched_session() -> (Client, i32, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    let (send, notices) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures_util::StreamExt::next(&mut messages).await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = send.send(notice.detail().unwrap_or_default().to_owned());
            }
        }
    });
    client.batch_execute("SET nl2sql.statement_cache = off").await.unwrap();
    let pid = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    (client, pid, notices)
}

/// Asks `sql` (a question with progress => true) in a new superuser session and returns once the
/// model is writing SQL (its first progress NOTICE with text): the backend's pid and the call.
pub async fn question_mid_decoding(sql: &'static str) -> (i32, tokio::task::JoinHandle<Result<Row, tokio_postgres::Error>>) {
    let (client, pid, mut notices) = watched_session().await;
    let question = tokio::spawn(async move { client.query_one(sql, &[]).await });
    let waiting = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(detail) = notices.recv().await {
            if detail.starts_with("{\"text\"") {
                return;
            }
        }
        panic!("the session ended before the model wrote any SQL");
    });
    waiting.await.expect("the model started writing SQL within 300 s");
    (pid, question)
}

/// Runs a program to its end off the test's runtime thread; whether it succeeded.
pub async fn command(program: &str, args: &[&str]) -> bool {
    let mut command = std::process::Command::new(program);
    command.args(args);
    tokio::task::spawn_blocking(move || command.status().is_ok_and(|status| status.success())).await.unwrap()
}

/// The SQLSTATE of a failed call.
pub fn sqlstate(error: &tokio_postgres::Error) -> Option<String> {
    error.as_db_error().map(|db| db.code().code().to_owned())
}
