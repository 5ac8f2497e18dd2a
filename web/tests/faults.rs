//! Faults of the server under a question, on the real test server (scripts/db-server, at
//! NL2SQL_PGDATA) with the real model: the server restarted mid-question, and the backend asking
//! a question killed mid-question. Each ends the question
//! with an error the client can read, and the server comes back with its data as it was.
//! These tests restart the server other tests use, so they take turns (SERIAL) and each waits
//! until the server answers again before it ends.

mod common;

use std::time::{Duration, Instant};
use common::{command, question_mid_decoding, sqlstate};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const QUESTION: &str = "SELECT nl2sql_ask('How many pizzas were sold on each day of the week?', progress => true)";
const ROWS: &str = "SELECT count(*) FROM pizza_sales";

/// Connects until the server accepts connections again, and returns the demo table's row count.
async fn rows_once_back(since: Instant) -> i64 {
    loop {
        if let Ok((client, connection)) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            if let Ok(row) = client.query_one(ROWS, &[]).await {
                eprintln!("the server answered again {:?} after the fault", since.elapsed());
                return row.get(0);
            }
        }
        assert!(since.elapsed() < Duration::from_secs(120), "the server is not back after {:?}", since.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn demo_rows() -> i64 {
    let (client, connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client.query_one(ROWS, &[]).await.unwrap().get(0)
}

/// An operator restarts the server (pg_ctl restart -m fast) while the model writes SQL: the
/// backend leaves generation at its next checkpoint with PostgreSQL's own 57P01, so the restart
/// does not wait for the question, and the server is back with the same data.
#[tokio::test]
async fn a_server_restart_mid_question_ends_it_with_57p01_and_the_server_comes_back() {
    let _turn = SERIAL.lock().await;
    let rows = demo_rows().await;
    let (_pid, question) = question_mid_decoding(QUESTION).await;

    let restart = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/db-server");
    assert!(command(script, &["restart"]).await, "scripts/db-server restart failed");
    eprintln!("pg_ctl restart -m fast took {:?} with a question mid-decoding", restart.elapsed());

    let error = question.await.unwrap().expect_err("the question cannot have finished");
    assert_eq!(sqlstate(&error).as_deref(), Some("57P01"), "PostgreSQL's 'terminating connection due to administrator command': {error}");
    assert_eq!(rows_once_back(restart).await, rows);
}

/// The backend asking a question is killed (SIGKILL) mid-question. PostgreSQL treats any backend
/// killed so as a crash: it ends every session and recovers. The question's client sees its
/// connection end, and the server is back with the same data. (The model process killed so costs
/// only the questions in flight: tests/worker.rs.)
#[tokio::test]
async fn a_backend_killed_mid_question_is_recovered_by_the_server() {
    let _turn = SERIAL.lock().await;
    let rows = demo_rows().await;
    let (pid, question) = question_mid_decoding(QUESTION).await;

    let killed = Instant::now();
    assert!(command("kill", &["-KILL", &pid.to_string()]).await, "kill -KILL {pid} failed");
    let error = question.await.unwrap().expect_err("the question cannot have finished");
    assert!(error.is_closed() || error.as_db_error().is_none(), "the connection ended: {error}");
    assert_eq!(rows_once_back(killed).await, rows);
}
