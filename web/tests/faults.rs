//! Faults of the server under a question, on the real test server (scripts/db-server, at
//! NL2SQL_PGDATA) with the real model: the server restarted mid-question, and the backend that
//! runs the model killed mid-question (as the kernel's OOM killer would). Each ends the question
//! with an error the client can read, and the server comes back with its data as it was.
//! These tests restart the server other tests use, so they take turns (SERIAL) and each waits
//! until the server answers again before it ends.

mod common;

use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::{AsyncMessage, Client};

static SERIAL: Mutex<()> = Mutex::const_new(());

const QUESTION: &str = "SELECT nl2sql_ask('How many pizzas were sold on each day of the week?', progress => true)";
const ROWS: &str = "SELECT count(*) FROM pizza_sales";

/// A superuser session, its backend's pid, and the NOTICEs it receives.
async fn session() -> (Client, i32, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    let (send, notices) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures_util::StreamExt::next(&mut messages).await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = send.send(notice.detail().unwrap_or_default().to_owned());
            }
        }
    });
    let pid = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    (client, pid, notices)
}

/// Waits for the first progress NOTICE with the SQL being written: the question is mid-decoding.
async fn wait_until_decoding(notices: &mut mpsc::UnboundedReceiver<String>) {
    let waiting = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(detail) = notices.recv().await {
            if detail.starts_with("{\"text\"") {
                return;
            }
        }
        panic!("the session ended before the model wrote any SQL");
    });
    waiting.await.expect("the model started writing SQL within 300 s");
}

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

/// Runs a program to its end off the test's runtime thread; whether it succeeded.
async fn command(program: &str, args: &[&str]) -> bool {
    let mut command = std::process::Command::new(program);
    command.args(args);
    tokio::task::spawn_blocking(move || command.status().is_ok_and(|status| status.success())).await.unwrap()
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
    let (client, _pid, mut notices) = session().await;
    let question = tokio::spawn(async move { client.query_one(QUESTION, &[]).await });
    wait_until_decoding(&mut notices).await;

    let restart = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/db-server");
    assert!(command(script, &["restart"]).await, "scripts/db-server restart failed");
    eprintln!("pg_ctl restart -m fast took {:?} with a question mid-decoding", restart.elapsed());

    let error = question.await.unwrap().expect_err("the question cannot have finished");
    let code = error.as_db_error().map(|db| db.code().code().to_owned());
    assert_eq!(code.as_deref(), Some("57P01"), "PostgreSQL's 'terminating connection due to administrator command': {error}");
    assert_eq!(rows_once_back(restart).await, rows);
}

/// The backend running the model is killed (SIGKILL, as the OOM killer does) mid-question. With
/// the model inside the backend, PostgreSQL treats this as a crash: it ends every session and
/// recovers. The question's client sees its connection end, and the server is back with the
/// same data.
#[tokio::test]
async fn a_backend_killed_mid_question_is_recovered_by_the_server() {
    let _turn = SERIAL.lock().await;
    let rows = demo_rows().await;
    let (client, pid, mut notices) = session().await;
    let question = tokio::spawn(async move { client.query_one(QUESTION, &[]).await });
    wait_until_decoding(&mut notices).await;

    let killed = Instant::now();
    assert!(command("kill", &["-KILL", &pid.to_string()]).await, "kill -KILL {pid} failed");
    let error = question.await.unwrap().expect_err("the question cannot have finished");
    assert!(error.is_closed() || error.as_db_error().is_none(), "the connection ended: {error}");
    assert_eq!(rows_once_back(killed).await, rows);
}
