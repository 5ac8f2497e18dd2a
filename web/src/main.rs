//! nl2sql-web: DATABASE_URL=postgres://... [BIND_ADDRESS=127.0.0.1:8080] nl2sql-web

use nl2sql_web::db::Database;
use nl2sql_web::{router, AppState, Config};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("nl2sql-web: {message}");
            return ExitCode::FAILURE;
        }
    };
    let database = match Database::new(&config.database_url, &config.pool) {
        Ok(database) => database,
        Err(message) => {
            eprintln!("nl2sql-web: {message}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("nl2sql-web: cannot listen on {}: {e} (set BIND_ADDRESS)", config.bind);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("nl2sql-web: listening on http://{}", config.bind);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, router(AppState::new(database))).with_graceful_shutdown(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nl2sql-web: {e}");
            ExitCode::FAILURE
        }
    }
}
