//! Shared by the web tests: the real router on a random port, over the real database.

#![allow(dead_code)]

use nl2sql_web::{db, router, AppState};

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name a PostgreSQL database with nl2sql and the demo table: run scripts/db-server start",
    )
}

/// Starts the service on 127.0.0.1:<random> and returns its base URL.
pub async fn start(database_url: &str, pool_size: usize) -> String {
    let pool = db::pool(database_url, pool_size).expect("pool");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(AppState { pool })).await.unwrap() });
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
