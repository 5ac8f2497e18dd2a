//! nl2sql.backend = 'openai' on a real PostgreSQL with the extension: the demo question answered
//! by a real llama.cpp server (scripts/llama-server, at NL2SQL_LLAMA_ENDPOINT), and every way an
//! inference server fails, played by a scripted OpenAI-compatible server in this process.
//! The scripted replies stand in for a server, not for the model: what is tested is the client.

mod common;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

const KEY: &str = "sk-test-4f9c2b7e";

#[derive(Default)]
struct Seen {
    /// Every request body and Authorization header, in order.
    requests: Mutex<Vec<(Value, Option<String>)>>,
    /// Requests to /flaky so far.
    flaky: AtomicUsize,
}

fn reply(content: &str) -> Response {
    Json(json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10},
    }))
    .into_response()
}

const COUNT_SQL: &str = "```sql\nSELECT count(*) AS pizzas FROM pizza_sales\n```";

async fn chat(State(seen): State<Arc<Seen>>, Path(mode): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
    seen.requests.lock().unwrap().push((body, auth.clone()));
    match mode.as_str() {
        "ok" => reply(COUNT_SQL),
        "flaky" if seen.flaky.fetch_add(1, Ordering::SeqCst) < 2 => (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response(),
        "flaky" => reply(COUNT_SQL),
        "failing" => (StatusCode::INTERNAL_SERVER_ERROR, "out of memory").into_response(),
        "auth" if auth.as_deref() == Some(&format!("Bearer {KEY}")) => reply(COUNT_SQL),
        // As OpenAI does, the reply quotes the key it was given.
        "auth" => (StatusCode::UNAUTHORIZED, format!("Incorrect API key provided: {}", auth.unwrap_or_default())).into_response(),
        "prose" => reply("I am not able to answer questions about pizzas."),
        "ratio" => reply(RATIO_SQL),
        "invents" if body_streams(&seen) => invented_column_stream(&seen),
        "invents" => reply(INVENTED_SQL),
        "dies" => dying_stream(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A ratio of two counts, written as models write it: in PostgreSQL it would truncate.
const RATIO_SQL: &str = "```sql\nSELECT count(*) / count(DISTINCT date) AS pizzas_per_day FROM pizza_sales\n```";

/// A statement with a column pizza_sales lacks (it has size).
const INVENTED_SQL: &str = "```sql\nSELECT count(*) FROM pizza_sales WHERE pizza_colour = 'L'\n```";

fn body_streams(seen: &Seen) -> bool {
    seen.requests.lock().unwrap().last().unwrap().0["stream"] == json!(true)
}

/// A model that wants INVENTED_SQL, streamed a token at a time with its candidates: at the
/// invented column its second choice is the real one. A request that continues the assistant's
/// message is answered from there on, as a server does.
fn invented_column_stream(seen: &Seen) -> Response {
    let body = seen.requests.lock().unwrap().last().unwrap().0.clone();
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    let tokens: &[&str] = match last["role"] == "assistant" {
        true if last["content"].as_str().unwrap().ends_with("WHERE size") => &[" =", " 'L'", "\n```"],
        true => &["\n```"],
        false => &["```", "sql", "\n", "SELECT", " count", "(*)", " FROM", " pizza", "_sales", " WHERE", " pizza_colour", " =", " 'L'", "\n```"],
    };
    let mut events = String::new();
    for token in tokens {
        let alternative = (*token == " pizza_colour").then_some(" size");
        events.push_str(&token_event(token, alternative));
    }
    events.push_str(&format!("data: {}\n\ndata: [DONE]\n\n", json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    ([("content-type", "text/event-stream")], events).into_response()
}

/// One streamed token as a server-sent event, with its log-probability and, if given, a second
/// choice less likely.
fn token_event(token: &str, alternative: Option<&str>) -> String {
    let mut candidates = vec![json!({"token": token, "bytes": token.as_bytes(), "logprob": -0.1})];
    if let Some(alternative) = alternative {
        candidates.push(json!({"token": alternative, "bytes": alternative.as_bytes(), "logprob": -2.5}));
    }
    let chunk = json!({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null,
        "logprobs": {"content": [{"token": token, "bytes": token.as_bytes(), "logprob": -0.1, "top_logprobs": candidates}]}}]});
    format!("data: {chunk}\n\n")
}

/// A server whose process dies mid-reply (killed, out of memory): the first tokens of a stream,
/// then the connection ends without the rest.
fn dying_stream() -> Response {
    let first_tokens: String = ["```", "sql", "\n", "SELECT"].iter().map(|token| token_event(token, None)).collect();
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
        vec![Ok(first_tokens.into()), Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the server process died"))];
    ([("content-type", "text/event-stream")], axum::body::Body::from_stream(futures_util::stream::iter(chunks))).into_response()
}

/// The scripted server on 127.0.0.1:<random>: its base URL and what it saw.
async fn scripted_server() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new().route("/{mode}/v1/chat/completions", post(chat)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

/// A server that reads each request and never answers, on a raw socket so that it sees the
/// moment the client closes the connection: its base URL and the count of closed connections.
async fn silent_server() -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let closed = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let count = closed.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let count = count.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                // Reads the request, then waits: a read of 0 bytes is the client hanging up.
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(120), socket.read(&mut buffer)).await {
                    if n == 0 {
                        count.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
            });
        }
    });
    (format!("http://{address}"), closed)
}

/// A superuser session whose questions go to `endpoint`.
async fn session(endpoint: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET nl2sql.backend = 'openai'; SET nl2sql.endpoint = '{endpoint}'; SET nl2sql.request_timeout = '20s'"))
        .await
        .unwrap();
    client
}

/// SQLSTATE, message, detail and hint of the error `sql` raises.
async fn error_of(client: &Client, sql: &str) -> (String, String) {
    let error = client.batch_execute(sql).await.expect_err(sql);
    let db = error.as_db_error().unwrap_or_else(|| panic!("{sql}: not a database error: {error}"));
    let text = format!("{} | {} | {}", db.message(), db.detail().unwrap_or(""), db.hint().unwrap_or(""));
    (db.code().code().to_owned(), text)
}

#[tokio::test]
async fn the_demo_question_is_answered_by_a_real_llama_cpp_server() {
    let endpoint = std::env::var("NL2SQL_LLAMA_ENDPOINT")
        .expect("NL2SQL_LLAMA_ENDPOINT must be the base URL of a llama.cpp server with nl2sql's model: run scripts/llama-server start");
    let client = session(&endpoint).await;
    client.batch_execute("SET nl2sql.request_timeout = '300s'; SET ROLE nl2sql_web").await.unwrap();
    let best = common::friday_best_seller().await;
    let row = client.query_one("SELECT nl2sql_ask('What is the most bought pizza on Fridays?')", &[]).await.unwrap();
    let answer: Value = row.get(0);
    assert!(answer["rows"][0].as_array().unwrap().contains(&json!(best)), "the first row is {best}: {answer}");
    let words = answer["answer"].as_str().unwrap();
    assert!(words.replace(' ', "_").to_lowercase().contains(&best), "the answer names {best}: {words}");
    let status: Value = client.query_one("SELECT nl2sql_status()", &[]).await.unwrap().get(0);
    assert_eq!(status["backend"], "openai");
    assert_eq!(status["loaded_in_this_session"], false, "no local model was loaded: {status}");
}

#[tokio::test]
async fn the_server_gets_the_local_prompt_greedy_with_the_token_limit_and_the_key() {
    let (base, seen) = scripted_server().await;
    let client = session(&format!("{base}/auth/v1")).await;
    client.batch_execute(&format!("SET nl2sql.api_key = '{KEY}'; SET nl2sql.max_new_tokens = 77")).await.unwrap();
    let sql: String = client.query_one("SELECT nl2sql_sql('How many pizzas were sold?')", &[]).await.unwrap().get(0);
    assert_eq!(sql, "SELECT count(*) AS pizzas FROM pizza_sales");
    let prompt: String = client.query_one("SELECT nl2sql_prompt('How many pizzas were sold?')", &[]).await.unwrap().get(0);
    let (body, auth) = seen.requests.lock().unwrap()[0].clone();
    assert_eq!(auth.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!((body["temperature"].as_f64(), body["max_tokens"].as_u64()), (Some(0.0), Some(77)), "{body}");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"].as_str().unwrap().contains("CREATE TABLE pizza_sales"), "the schema is in the system prompt");
    for message in messages {
        assert!(prompt.contains(message["content"].as_str().unwrap()), "what nl2sql_prompt() shows is what was sent: {message}");
    }
}

#[tokio::test]
async fn a_ratio_the_model_writes_over_integers_is_answered_exactly_and_shown_as_run() {
    let (base, _seen) = scripted_server().await;
    let client = session(&format!("{base}/ratio/v1")).await;
    client.batch_execute("SET nl2sql.constrained_decoding = off").await.unwrap();
    let sql: String = client.query_one("SELECT nl2sql_sql('How many pizzas are sold per day?')", &[]).await.unwrap().get(0);
    assert_eq!(sql, "SELECT count(*)::numeric / count(DISTINCT date) AS pizzas_per_day FROM pizza_sales");
    let row = client.query_one("SELECT * FROM nl2sql('How many pizzas are sold per day?')", &[]).await.unwrap();
    let per_day = row.get::<_, Value>(0)["pizzas_per_day"].as_f64().unwrap();
    let exact: f64 = client.query_one("SELECT count(*)::float8 / count(DISTINCT date) FROM pizza_sales", &[]).await.unwrap().get(0);
    assert!((per_day - exact).abs() < 1e-9 && per_day.fract() != 0.0, "{per_day} against {exact}");

    client.batch_execute("SET nl2sql.exact_arithmetic = off").await.unwrap();
    let sql: String = client.query_one("SELECT nl2sql_sql('How many pizzas are sold per day?')", &[]).await.unwrap().get(0);
    assert_eq!(sql, "SELECT count(*) / count(DISTINCT date) AS pizzas_per_day FROM pizza_sales", "off: as written");
    let row = client.query_one("SELECT * FROM nl2sql('How many pizzas are sold per day?')", &[]).await.unwrap();
    assert_eq!(row.get::<_, Value>(0)["pizzas_per_day"].as_f64(), Some(exact.trunc()), "and truncated, as PostgreSQL divides");
}

#[tokio::test]
async fn the_schema_constraint_steers_a_remote_model_to_a_real_column() {
    let (base, seen) = scripted_server().await;
    let client = session(&format!("{base}/invents/v1")).await;
    let sql: String = client.query_one("SELECT nl2sql_sql('How many large pizzas were sold?')", &[]).await.unwrap().get(0);
    assert_eq!(sql, "SELECT count(*) FROM pizza_sales WHERE size = 'L'");
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one request, then one continuing after the correction");
    for (body, _) in &requests {
        assert_eq!((&body["stream"], &body["logprobs"], &body["top_logprobs"]), (&json!(true), &json!(true), &json!(20)), "{body}");
    }
    let second = &requests[1].0;
    assert_eq!((&second["continue_final_message"], &second["add_generation_prompt"]), (&json!(true), &json!(false)), "{second}");
    assert_eq!(second["messages"].as_array().unwrap().last().unwrap(), &json!({"role": "assistant", "content": "```sql\nSELECT count(*) FROM pizza_sales WHERE size"}));

    // Without the constraint the same model's column reaches the checker, and no repair helps.
    seen.requests.lock().unwrap().clear();
    client.batch_execute("SET nl2sql.constrained_decoding = off").await.unwrap();
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many large pizzas were sold?')").await;
    assert_eq!(code, "42000", "{text}");
    assert!(text.contains("pizza_colour"), "{text}");
    assert!(seen.requests.lock().unwrap().iter().all(|(body, _)| body["stream"] == json!(false) && body.get("logprobs").is_none()));
}

#[tokio::test]
async fn errors_are_retried_then_reported_and_a_failing_server_trips_the_breaker() {
    let (base, seen) = scripted_server().await;
    // Two 503s, then an answer: the retries hide them.
    let client = session(&format!("{base}/flaky/v1")).await;
    let rows: Vec<tokio_postgres::Row> = client.query("SELECT * FROM nl2sql('How many pizzas were sold?')", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(seen.flaky.load(Ordering::SeqCst), 3);

    // Always 500: three tries, then a clear ERROR; after three such requests the breaker fails
    // fast without calling the server.
    let client = session(&format!("{base}/failing/v1")).await;
    for _ in 0..3 {
        let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
        assert_eq!(code, "08001", "{text}");
        assert!(text.contains("after 3 tries") && text.contains("HTTP 500") && text.contains("out of memory"), "{text}");
    }
    let calls = seen.requests.lock().unwrap().len();
    let started = Instant::now();
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    assert_eq!(code, "08001");
    assert!(text.contains("failed 3 requests in a row") && text.contains("tries it again"), "{text}");
    assert_eq!(seen.requests.lock().unwrap().len(), calls, "an open breaker does not call the server");
    assert!(started.elapsed() < Duration::from_secs(2), "it fails fast: {:?}", started.elapsed());
    client.batch_execute("SELECT 1").await.expect("the session is still usable");
}

#[tokio::test]
async fn a_server_that_is_down_is_a_clear_error_not_a_hang() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = session(&format!("http://127.0.0.1:{port}/v1")).await;
    let started = Instant::now();
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    assert_eq!(code, "08001", "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")) && text.contains("refused") && text.contains("nl2sql.endpoint"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// The inference server dies while it streams the answer: the request is tried again (a restarted
/// server may answer), then a clear ERROR that names the server; no hang, and the session goes on.
#[tokio::test]
async fn a_server_that_dies_mid_reply_is_a_clear_error() {
    let (base, seen) = scripted_server().await;
    let client = session(&format!("{base}/dies/v1")).await;
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    assert_eq!(code, "08001", "{text}");
    assert!(text.contains(&format!("{base}/dies/v1")) && text.contains("connection closed before message completed"), "{text}");
    assert!(text.contains("nl2sql.endpoint"), "the hint says what to check: {text}");
    assert!(body_streams(&seen), "the reply was being streamed when the server died");
    client.batch_execute("SELECT 1").await.expect("the session is still usable");
}

#[tokio::test]
async fn a_slow_server_times_out_and_a_cancel_aborts_the_request() {
    let (base, closed) = silent_server().await;
    let client = session(&format!("{base}/v1")).await;

    client.batch_execute("SET nl2sql.request_timeout = '1s'").await.unwrap();
    let started = Instant::now();
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    let took = started.elapsed();
    assert_eq!(code, "57014", "{text}");
    assert!(text.contains("did not answer within 1000 ms") && text.contains("nl2sql.request_timeout"), "{text}");
    assert!(took < Duration::from_secs(3), "request_timeout = 1s took {took:?}");

    // statement_timeout stops the wait, and the request's connection is closed with it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(closed.load(Ordering::SeqCst), 1, "the timed-out request's connection was closed");

    client.batch_execute("SET nl2sql.request_timeout = '60s'; SET statement_timeout = '1s'").await.unwrap();
    let started = Instant::now();
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    let took = started.elapsed();
    assert_eq!(code, "57014", "{text}");
    assert!(text.contains("statement timeout"), "{text}");
    assert!(took < Duration::from_secs(3), "statement_timeout = 1s took {took:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(closed.load(Ordering::SeqCst), 2, "the cancelled request's connection was closed: the server can stop generating");
    client.batch_execute("RESET statement_timeout; SELECT 1").await.expect("the session is still usable");
}

/// A client that hangs up mid-question (a killed psql, a driver giving up) ends its backend: the
/// wait for the inference server stops and the request's connection is closed, long before
/// nl2sql.request_timeout.
#[tokio::test]
async fn a_client_that_hangs_up_mid_question_ends_its_backend() {
    let (base, closed) = silent_server().await;
    let (client, connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("SET nl2sql.backend = 'openai'; SET nl2sql.endpoint = '{base}/v1'; SET nl2sql.request_timeout = '120s'"))
        .await
        .unwrap();
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let question = tokio::spawn(async move { client.batch_execute("SELECT nl2sql_sql('How many pizzas?')").await });
    tokio::time::sleep(Duration::from_secs(2)).await; // the request is at the server, which never answers
    assert_eq!(closed.load(Ordering::SeqCst), 0, "still waiting for the server");
    let (observer, watching) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(watching);
    let running = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1";
    assert_eq!(observer.query_one(running, &[&pid]).await.unwrap().get::<_, i64>(0), 1);

    connection.abort(); // the client's socket closes, as when its process is killed
    let hung_up = Instant::now();
    while observer.query_one(running, &[&pid]).await.unwrap().get::<_, i64>(0) == 1 {
        assert!(hung_up.elapsed() < Duration::from_secs(30), "backend {pid} still runs {:?} after its client hung up", hung_up.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("backend {pid} ended {:?} after its client hung up", hung_up.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(closed.load(Ordering::SeqCst), 1, "the inference request's connection was closed with it");
    assert!(question.await.unwrap().is_err(), "the question got no answer");
}

#[tokio::test]
async fn a_bad_key_and_a_reply_without_sql_are_clear_errors() {
    let (base, _seen) = scripted_server().await;
    let client = session(&format!("{base}/auth/v1")).await;
    client.batch_execute("SET nl2sql.api_key = 'sk-wrong-91b3'").await.unwrap();
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    assert_eq!(code, "28000", "{text}");
    assert!(text.contains("refused the API key (HTTP 401)") && text.contains("nl2sql.api_key"), "{text}");
    assert!(!text.contains("sk-wrong-91b3"), "the key is not in the error: {text}");

    let client = session(&format!("{base}/prose/v1")).await;
    let (code, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    assert_eq!(code, "42000", "{text}");
    assert!(text.contains("could not write a valid query") && text.contains("the reply held no SQL"), "{text}");
}

#[tokio::test]
async fn the_key_and_endpoint_are_for_superusers_only() {
    let (base, _seen) = scripted_server().await;
    let client = session(&format!("http://user:pw-in-url@{}/failing/v1", base.trim_start_matches("http://"))).await;
    client.batch_execute(&format!("SET nl2sql.api_key = '{KEY}'; SET ROLE nl2sql_web")).await.unwrap();
    let (code, text) = error_of(&client, "SHOW nl2sql.api_key").await;
    assert_eq!(code, "42501", "a non-superuser cannot read the key: {text}");
    let settings: Vec<String> = client
        .query("SELECT name || '=' || coalesce(setting, '') FROM pg_settings WHERE name LIKE 'nl2sql.%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(settings.iter().any(|s| s.starts_with("nl2sql.backend=")), "{settings:?}");
    assert!(!settings.iter().any(|s| s.contains(KEY) || s.starts_with("nl2sql.api_key")), "{settings:?}");
    let status: Value = client.query_one("SELECT nl2sql_status()", &[]).await.unwrap().get(0);
    assert!(!status.to_string().contains(KEY) && !status.to_string().contains("pw-in-url"), "{status}");
    assert_eq!(status["endpoint"], json!(format!("{base}/failing/v1")), "{status}");
    let (_, text) = error_of(&client, "SELECT nl2sql_sql('How many pizzas?')").await;
    assert!(!text.contains(KEY) && !text.contains("pw-in-url"), "{text}");
    for setting in ["nl2sql.backend = 'local'", "nl2sql.endpoint = 'http://evil.example/v1'", "nl2sql.api_key = 'x'"] {
        let (code, text) = error_of(&client, &format!("SET {setting}")).await;
        assert_eq!(code, "42501", "{setting}: {text}");
    }
}

/// The web service over a superuser connection whose sessions use `endpoint`.
async fn web_with_endpoint(endpoint: &str) -> String {
    let admin = common::admin_url();
    let user = &admin["postgres://".len()..admin.find('@').unwrap()];
    let url = common::url_as(user, &[("nl2sql.backend", "openai"), ("nl2sql.endpoint", endpoint)]);
    common::start(&url, 1).await
}

async fn ask_sql(base: &str) -> (reqwest::StatusCode, Value) {
    let response = common::http().post(format!("{base}/api/sql")).json(&json!({"question": "How many pizzas?"})).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn sqlstate_08001_inference_server_unreachable_is_503() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = web_with_endpoint(&format!("http://127.0.0.1:{port}/v1")).await;
    // Ready as far as the database can tell: no local model is needed.
    let health: Value = common::http().get(format!("{base}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!((health["status"].as_str(), health["backend"].as_str()), (Some("ok"), Some("openai")), "{health}");
    let (status, body) = ask_sql(&base).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("inference server"), "{body}");
}

#[tokio::test]
async fn sqlstate_28000_inference_server_refused_the_key_is_502() {
    let (server, _seen) = scripted_server().await;
    let base = web_with_endpoint(&format!("{server}/auth/v1")).await;
    let (status, body) = ask_sql(&base).await;
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("refused the API key"), "{body}");
}
