//! The model worker as PostgreSQL runs it (nl2sql in shared_preload_libraries, as scripts/db-server
//! configures the test server), with the real model: every session asks one model process and
//! loads nothing itself; a cancel removes a waiting question and stops a running one; the model
//! process killed (as the OOM killer would) fails only the question in flight and is started
//! again, without the crash recovery that a killed backend causes (tests/faults.rs); the batch
//! is a server setting.
//! The tests take turns (SERIAL): one kills the worker the others use.

mod common;

use common::{admin, admin_query_one, question_mid_decoding, sqlstate, watched_session};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const FRIDAYS: &str = "What is the most bought pizza on Fridays?";
const QUESTION: &str = "SELECT nl2sql_ask('How many pizzas were sold on each day of the week?', progress => true)";
const COUNT: &str = "SELECT nl2sql_sql('Count the rows of the pizza_sales table.')";

/// The worker's own report (it answers between questions).
async fn worker() -> Value {
    admin_query_one("SELECT nl2sql_stats()").await
}

/// A process's resident memory, from /proc (the tests run on the server's machine).
fn rss_mib(pid: i64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("process {pid}: {e}"));
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[tokio::test]
async fn every_session_asks_the_one_model_process_and_loads_nothing_itself() {
    let _turn = SERIAL.lock().await;
    let before = worker().await;
    let best = common::friday_best_seller().await;

    // Two new connections ask at the same time.
    let ask = || async {
        let (client, pid, _) = watched_session().await;
        let answer: Value = client.query_one("SELECT nl2sql_ask($1, narrate_result => false)::jsonb", &[&FRIDAYS]).await.unwrap().get(0);
        (client, pid, answer)
    };
    let (first, second) = tokio::join!(ask(), ask());
    for (_client, pid, answer) in [&first, &second] {
        let first_row = answer["rows"][0].as_array();
        assert!(first_row.is_some_and(|row| row.contains(&Value::from(best.clone()))), "the first row is {best}: {answer}");
        let rss = rss_mib(i64::from(*pid));
        eprintln!("backend {pid} after its question: {rss} MiB");
        assert!(rss < 512, "backend {pid} holds {rss} MiB: it loaded a model of its own");
    }

    let after = worker().await;
    assert_eq!(after["pid"], before["pid"], "the same model process answered: {after}");
    let completed = |status: &Value| status["completed"].as_u64().unwrap();
    assert!(completed(&after) >= completed(&before) + 2, "both questions went to it: {before} -> {after}");
    let worker_rss = rss_mib(after["pid"].as_i64().unwrap());
    eprintln!("the model process: {worker_rss} MiB");
    assert!(worker_rss > 1024, "the model is in the worker: {worker_rss} MiB");
}

/// Cancels the call running in backend `pid` and returns its error's SQLSTATE, printing how long
/// the call took to end.
async fn cancel(pid: i32, call: tokio::task::JoinHandle<Result<tokio_postgres::Row, tokio_postgres::Error>>, what: &str) -> Option<String> {
    let started = Instant::now();
    admin(&format!("SELECT pg_cancel_backend({pid})")).await;
    let error = call.await.unwrap().expect_err("a cancelled question cannot succeed");
    let took = started.elapsed();
    eprintln!("cancel of a {what} question: it ended {took:?} after pg_cancel_backend");
    // The bound is loose on purpose (the issue asks for 1 s; the benchmark prints the number):
    // without the cancel, the question would run for many seconds more.
    assert!(took < Duration::from_secs(5), "the {what} question ended {took:?} after its cancel");
    sqlstate(&error)
}

/// Whether a session printed any of the SQL being written (its progress NOTICEs) so far.
fn wrote_sql(notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> bool {
    std::iter::from_fn(|| notices.try_recv().ok()).any(|detail| detail.starts_with("{\"text\""))
}

#[tokio::test]
async fn a_cancel_removes_a_waiting_question_and_stops_a_running_one() {
    let _turn = SERIAL.lock().await;
    let before = worker().await;
    let count = |status: &Value, key: &str| status[key].as_u64().unwrap();
    // The worker decodes up to max_in_flight questions together; the next one waits its turn.
    let batch = count(&before, "max_in_flight") as usize;
    let mut running = Vec::new();
    for _ in 0..batch {
        running.push(question_mid_decoding(QUESTION).await);
    }
    let (waiting_client, waiting_pid, mut waiting_notices) = watched_session().await;
    let waiting = tokio::spawn(async move { waiting_client.query_one(QUESTION, &[]).await });
    tokio::time::sleep(Duration::from_secs(2)).await; // reading its schema takes milliseconds
    assert!(!wrote_sql(&mut waiting_notices), "the question beyond the {batch} in flight waits: it wrote no SQL");

    assert_eq!(cancel(waiting_pid, waiting, "waiting").await.as_deref(), Some("57014"));
    for (pid, question) in running {
        assert_eq!(cancel(pid, question, "running").await.as_deref(), Some("57014"));
    }

    // The worker saw them all leave: it stopped the running ones and skipped the waiting one
    // (which it takes up, and finds gone, once a place is free).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = worker().await;
    while count(&after, "cancelled") < count(&before, "cancelled") + batch as u64 + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = worker().await;
    }
    assert_eq!(count(&after, "cancelled"), count(&before, "cancelled") + batch as u64 + 1, "{before} -> {after}");
    assert_eq!(count(&after, "completed"), count(&before, "completed"), "nothing was finished for nobody: {after}");
    let sql = admin_query_one(COUNT).await;
    assert!(sql.as_str().unwrap().to_lowercase().contains("count"), "and it answers the next question: {sql}");
}

/// Waits until the worker reports `max_in_flight` as `expected` (the model process restarts on
/// the change), then asks it a question.
async fn worker_serving_batches_of(expected: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok((client, connection)) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            if let Ok(row) = client.query_one("SELECT nl2sql_stats()", &[]).await {
                let status: Value = row.get(0);
                if status["max_in_flight"] == expected {
                    return status;
                }
            }
        }
        assert!(Instant::now() < deadline, "the worker did not take nl2sql.worker_batch = {expected} within 120 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// nl2sql.worker_batch is the server's: a reload restarts the model process with the new batch,
/// and a session cannot set it for itself.
#[tokio::test]
async fn the_batch_is_a_server_setting_that_a_reload_applies() {
    let _turn = SERIAL.lock().await;
    let (session, _pid, _) = watched_session().await;
    let refused = session.batch_execute("SET nl2sql.worker_batch = 2").await.expect_err("a session cannot change the server's batch");
    assert_eq!(sqlstate(&refused).as_deref(), Some("55P02"), "{refused}"); // cannot be changed now

    admin("ALTER SYSTEM SET nl2sql.worker_batch = 2").await;
    admin("SELECT pg_reload_conf()").await;
    let two = worker_serving_batches_of(2).await;
    admin("ALTER SYSTEM RESET nl2sql.worker_batch").await;
    admin("SELECT pg_reload_conf()").await;
    let eight = worker_serving_batches_of(8).await;
    assert_ne!(two["pid"], eight["pid"], "each change started a new model process");
    let sql = admin_query_one(COUNT).await;
    assert!(sql.as_str().unwrap().to_lowercase().contains("count"), "and it answers: {sql}");
}

#[tokio::test]
async fn a_killed_model_process_fails_only_the_question_in_flight_and_is_started_again() {
    let _turn = SERIAL.lock().await;
    let old = worker().await["pid"].as_i64().unwrap();
    let (bystander, bystander_pid, _) = watched_session().await;
    let (_pid, question) = question_mid_decoding(QUESTION).await;

    let killed = Instant::now();
    assert!(common::command("kill", &["-KILL", &old.to_string()]).await, "kill -KILL {old} failed");
    let error = question.await.unwrap().expect_err("the question cannot have finished");
    assert_eq!(sqlstate(&error).as_deref(), Some("08001"), "{error}");
    let message = error.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("model worker") && message.contains("ended the connection"), "{message}");

    // Not a crash of the server: a session opened before goes on.
    let pid: i32 = bystander.query_one("SELECT pg_backend_pid()", &[]).await.expect("the bystander's session survives").get(0);
    assert_eq!(pid, bystander_pid);

    // The next question waits for the new model process and is answered.
    let sql = admin_query_one(COUNT).await;
    eprintln!("a question asked after the kill was answered {:?} after it", killed.elapsed());
    assert!(sql.as_str().unwrap().to_lowercase().contains("count"), "{sql}");
    let new = worker().await["pid"].as_i64().unwrap();
    assert_ne!(new, old, "a new model process answers");
}

#[tokio::test]
async fn the_statement_cache_gives_the_same_sql_again_until_the_table_changes() {
    let _turn = SERIAL.lock().await;
    admin("DROP TABLE IF EXISTS cache_probe; CREATE TABLE cache_probe (id int, city text); INSERT INTO cache_probe VALUES (1, 'Oslo'), (2, 'Lima')").await;
    let ask = "SELECT nl2sql_sql('How many rows does the cache_probe table have?')";
    let hits = |status: &Value| status["cache_hits"].as_u64().unwrap();

    let before = worker().await;
    let first = admin_query_one(ask).await;
    let second = admin_query_one(ask).await;
    let between = worker().await;
    assert_eq!(first, second, "the same SQL");
    assert!(hits(&between) > hits(&before), "the second came from the cache: {before} -> {between}");

    // A changed table is another schema in the prompt: computed again.
    admin("ALTER TABLE cache_probe ADD COLUMN country text").await;
    let third = admin_query_one(ask).await;
    let after = worker().await;
    admin("DROP TABLE cache_probe").await;
    assert_eq!(hits(&after), hits(&between), "after ALTER TABLE the SQL is written anew: {between} -> {after}");
    assert!(after["generated_tokens"].as_u64() > between["generated_tokens"].as_u64(), "{after}");
    assert!(third.as_str().unwrap().to_lowercase().contains("cache_probe"), "{third}");
}

#[tokio::test]
async fn metrics_serve_the_workers_statistics_to_prometheus() {
    let _turn = SERIAL.lock().await;
    let base = common::start(&common::database_url(), 1).await;
    admin_query_one(COUNT).await; // something to count
    let stats = worker().await;

    let response = common::http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], nl2sql_web::metrics::CONTENT_TYPE_TEXT);
    let text = response.text().await.unwrap();
    let completed = format!("nl2sql_requests_total{{outcome=\"completed\"}} {}", stats["completed"]);
    assert!(text.lines().any(|line| line == completed), "{completed:?} in\n{text}");
    assert!(text.contains(&format!("nl2sql_worker_info{{pid=\"{}\"", stats["pid"])), "{text}");
    for sample in text.lines().filter(|line| !line.starts_with('#')) {
        let value = sample.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "a sample is a name, labels and a number: {sample:?}");
    }
}
