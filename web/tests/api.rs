//! The HTTP API against a real PostgreSQL with the extension, the demo table and the real model
//! (DATABASE_URL, as scripts/db-server starts it).

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};

async fn post(base: &str, path: &str, body: &str, content_type: &str) -> (StatusCode, Value) {
    let response = common::http()
        .post(format!("{base}{path}"))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let response = common::http().get(format!("{base}{path}")).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ask_and_sql_answer_with_the_real_model() {
    // One pooled connection: one backend, so the model loads once for both questions.
    let base = common::start(&common::uncached_database_url(), 1).await;
    let best = common::friday_best_seller().await;

    let (status, body) = post(&base, "/api/ask", r#"{"question": "What is the most bought pizza on Fridays?"}"#, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["columns"].as_array().unwrap().len(), body["rows"][0].as_array().unwrap().len(), "{body}");
    assert!(body["rows"][0].as_array().unwrap().contains(&json!(best)), "first row is {best}: {body}");
    let answer = body["answer"].as_str().unwrap();
    assert!(answer.replace(' ', "_").to_lowercase().contains(&best), "the answer names {best}: {answer}");
    let timings = &body["timings_ms"];
    let part = |name: &str| timings[name].as_f64().unwrap();
    assert!(part("generate") > 0.0 && part("total") + 3.0 >= part("generate") + part("run") + part("narrate"), "{timings}");

    let (status, body) = post(&base, "/api/sql", r#"{"question": "Count the rows of the pizza_sales table."}"#, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sql = body["sql"].as_str().unwrap();
    assert_eq!(common::admin_query_one(sql).await, json!(49_574), "the SQL counts the rows: {sql}");
}

#[tokio::test]
async fn bad_input_gets_a_json_error_and_the_service_stays_up() {
    let base = common::start(&common::database_url(), 1).await;
    let cases = [
        ("{not json", "application/json", StatusCode::BAD_REQUEST, "not valid"),
        (r#"{"question": "hi"}"#, "text/plain", StatusCode::BAD_REQUEST, "Content-Type"),
        (r#"{"asked": "hi"}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "question"),
        (r#"{"question": 42}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "question"),
        (r#"{"question": "   "}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "the question is empty"),
        (r#"{"question": "How many\u0000pizzas?"}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "NUL character"),
    ];
    for (body, content_type, expected, text) in cases {
        let (status, error) = post(&base, "/api/ask", body, content_type).await;
        assert_eq!(status, expected, "{body}: {error}");
        let message = format!("{} {}", error["error"], error["hint"]);
        assert!(message.contains(text), "{body}: {error}");
    }
    let long = json!({ "question": "how many pizzas ".repeat(200) }).to_string();
    let (status, error) = post(&base, "/api/sql", &long, "application/json").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"].as_str().unwrap().contains("the limit is 2000"), "{error}");

    let (status, error) = get(&base, "/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error["hint"].as_str().unwrap().contains("openapi"), "{error}");
    let (status, error) = get(&base, "/api/ask").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error["error"].as_str().unwrap().contains("does not accept that method"), "{error}");
    let response = common::http().delete(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.json::<Value>().await.unwrap()["hint"].as_str().unwrap().contains("openapi"));
    let huge = json!({ "question": "x".repeat(10 << 20) }).to_string();
    let (status, error) = post(&base, "/api/ask", &huge, "application/json").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert!(error["error"].as_str().unwrap().contains("not valid"), "a JSON error: {error}");
    let (status, _) = get(&base, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "still serving after bad requests");
}

#[tokio::test]
async fn schema_health_and_openapi_describe_the_service() {
    let base = common::start(&common::database_url(), 1).await;
    let (status, schema) = get(&base, "/api/schema").await;
    assert_eq!(status, StatusCode::OK);
    let table = schema["tables"].as_array().unwrap().iter().find(|t| t["name"] == "pizza_sales").expect("the demo table");
    let columns: Vec<&str> = table["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["id", "date", "time", "name", "size", "type", "price"]);

    let (status, health) = get(&base, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health, json!({ "status": "ok", "database": true, "extension": true, "backend": "local", "model_present": true }));

    let (status, document) = get(&base, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/ask", "/api/sql", "/api/schema", "/healthz", "/api/openapi.json"] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }

    let page = common::http().get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<label for=\"question\">") && page.contains("id=\"ask\""), "the page has a labelled question box");
}

#[tokio::test]
async fn database_down_or_extension_missing_is_503() {
    let down = common::start("postgres://nobody@127.0.0.1:1/nowhere", 1).await;
    let (status, error) = post(&down, "/api/ask", r#"{"question": "How many?"}"#, "application/json").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(error["error"].as_str().unwrap().contains("database is not reachable"), "{error}");
    let (status, health) = get(&down, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["database"], json!(false), "{health}");

    // The same server, a database without the extension.
    let url = common::database_url();
    let without_extension = format!("{}/postgres", &url[..url.rfind('/').unwrap()]);
    let base = common::start(&without_extension, 1).await;
    let (status, health) = get(&base, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!((health["database"].clone(), health["extension"].clone()), (json!(true), json!(false)), "{health}");
    let (status, error) = post(&base, "/api/ask", r#"{"question": "How many?"}"#, "application/json").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(error["hint"].as_str().unwrap().contains("CREATE EXTENSION nl2sql"), "{error}");
}

/// The status a question gets, asked through a service connected with `url`.
async fn status_of(url: &str, question: &str) -> (StatusCode, Value) {
    let base = common::start(url, 1).await;
    post(&base, "/api/ask", &json!({ "question": question }).to_string(), "application/json").await
}

// One test per row of the SQLSTATE → HTTP status table (web/src/error.rs, the README's table).

#[tokio::test]
async fn sqlstate_22023_invalid_question_is_422() {
    let (status, error) = status_of(&common::database_url(), &"how many pizzas ".repeat(200)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"].as_str().unwrap().contains("the limit is 2000"), "{error}");
}

#[tokio::test]
async fn sqlstate_42000_no_valid_query_is_422() {
    // 16 tokens cannot hold this query, and no repair is allowed: the SQL is cut and refused.
    let url = common::url_as("nl2sql_web", &[("nl2sql.max_new_tokens", "16"), ("nl2sql.repair_attempts", "0")]);
    let question = "List each pizza name with its total revenue, average price and number of sales in July 2015, ordered by revenue";
    let (status, error) = status_of(&url, question).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"].as_str().unwrap().contains("could not write a valid query"), "{error}");
    assert!(error["detail"].as_str().unwrap().contains("last SQL:"), "{error}");
}

#[tokio::test]
async fn sqlstate_42p01_nothing_readable_is_422() {
    common::admin("DROP ROLE IF EXISTS nl2sql_reads_nothing; CREATE ROLE nl2sql_reads_nothing LOGIN").await;
    let (status, error) = status_of(&common::url_as("nl2sql_reads_nothing", &[]), "How many pizzas?").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"].as_str().unwrap().contains("no tables or views on your search_path"), "{error}");
}

#[tokio::test]
async fn sqlstate_54000_prompt_too_long_is_422() {
    // 400 tables of 30 columns: far more schema than the model's 32k-token context holds. Schema
    // linking would cut it down to the relevant tables (nl2sql.schema_budget_tokens), so it is
    // turned off here: the whole schema is sent and refused before generation.
    common::admin(
        "DROP SCHEMA IF EXISTS nl2sql_wide CASCADE; CREATE SCHEMA nl2sql_wide;
         DO $$ BEGIN FOR t IN 1..400 LOOP
             EXECUTE format('CREATE TABLE nl2sql_wide.measurements_%s (%s)', t,
                 (SELECT string_agg(format('sensor_reading_value_%s numeric', c), ', ') FROM generate_series(1, 30) c));
         END LOOP; END $$;
         DROP ROLE IF EXISTS nl2sql_wide_reader; CREATE ROLE nl2sql_wide_reader LOGIN;
         GRANT USAGE ON SCHEMA nl2sql_wide TO nl2sql_wide_reader;
         GRANT SELECT ON ALL TABLES IN SCHEMA nl2sql_wide TO nl2sql_wide_reader;
         ALTER ROLE nl2sql_wide_reader SET search_path = nl2sql_wide, public",
    )
    .await;
    let url = common::url_as("nl2sql_wide_reader", &[("nl2sql.schema_budget_tokens", "0")]);
    let (status, error) = status_of(&url, "What is the largest reading?").await;
    common::admin("DROP SCHEMA nl2sql_wide CASCADE").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"].as_str().unwrap().contains("the model's context holds"), "{error}");
}

#[tokio::test]
async fn sqlstate_57014_statement_timeout_is_504() {
    let url = common::url_as("nl2sql_web", &[("nl2sql.statement_timeout", "1")]);
    let (status, error) = status_of(&url, "How many pizzas were sold on each day of 2015?").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{error}");
    assert!(error["error"].as_str().unwrap().contains("ran longer than nl2sql.statement_timeout (1 ms)"), "{error}");
}

#[tokio::test]
async fn sqlstate_58p01_missing_model_is_503() {
    let admin = common::admin_url();
    let url = format!("{admin}?options=-c%20nl2sql.model_path%3D/nonexistent/model.gguf");
    let (status, error) = status_of(&url, "How many pizzas?").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(error["hint"].as_str().unwrap().contains("scripts/fetch-model"), "{error}");
}

#[tokio::test]
async fn sqlstate_53300_too_many_connections_is_503() {
    common::admin("DROP ROLE IF EXISTS nl2sql_no_connections; CREATE ROLE nl2sql_no_connections LOGIN CONNECTION LIMIT 0").await;
    let (status, error) = status_of(&common::url_as("nl2sql_no_connections", &[]), "How many pizzas?").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(error["error"].as_str().unwrap().contains("too many connections"), "{error}");
}

#[tokio::test]
async fn sqlstate_57p01_terminated_connection_is_503() {
    let base = common::start(&common::database_url(), 1).await;
    let asking = tokio::spawn({
        let base = base.clone();
        async move { post(&base, "/api/ask", r#"{"question": "Which pizza sold best in each month?"}"#, "application/json").await }
    });
    // Once the question is being worked on, an administrator terminates the backend.
    for _ in 0..200 {
        let (client, connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let terminated: i64 = client
            .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'nl2sql_web' AND query LIKE '%nl2sql_ask%' AND state = 'active'", &[])
            .await
            .unwrap()
            .get(0);
        if terminated > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, error) = asking.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(error["error"].as_str().unwrap().contains("terminating connection"), "{error}");
}

// 42883 (extension missing) and an unreachable server: database_down_or_extension_missing_is_503.

#[tokio::test]
async fn a_busy_pool_answers_503_with_retry_after() {
    let base = common::start_with(
        &common::database_url(),
        nl2sql_web::db::PoolSettings { size: 1, wait: std::time::Duration::from_secs(1) },
    )
    .await;
    let first = tokio::spawn({
        let base = base.clone();
        async move { post(&base, "/api/ask", r#"{"question": "What was the total revenue in each month?"}"#, "application/json").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let response = common::http()
        .post(format!("{base}/api/sql"))
        .header("content-type", "application/json")
        .body(r#"{"question": "How many pizzas?"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: Value = response.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("stayed busy"), "{error}");
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "the first request is unaffected: {body}");
}

/// The stream: phases in order, the SQL as it is written, then the result that /api/ask gives.
#[tokio::test]
async fn ask_stream_sends_phases_the_sql_as_written_and_the_result() {
    let base = common::start(&common::uncached_database_url(), 1).await;
    let mut response = common::http()
        .post(format!("{base}/api/ask/stream"))
        .header("content-type", "application/json")
        .body(r#"{"question": "What is the most bought pizza on Fridays?"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let phases: Vec<&str> = events.iter().filter(|(n, _)| n == "phase").map(|(_, d)| d["phase"].as_str().unwrap()).collect();
    assert_eq!(phases[..2], ["reading_schema", "writing_sql"], "{events:?}");
    assert_eq!(phases[phases.len() - 2..], ["running", "explaining"], "{events:?}");
    let replies: Vec<&str> = events.iter().filter(|(n, _)| n == "sql").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert!(replies.len() > 5, "the SQL arrives as it is written: {} updates", replies.len());
    assert!(replies[0].len() < replies[replies.len() - 1].len(), "{replies:?}");
    let written = replies[replies.len() - 1];
    let answers: Vec<&str> = events.iter().filter(|(n, _)| n == "answer").map(|(_, d)| d["answer"].as_str().unwrap()).collect();
    let (last, result) = events.last().unwrap();
    assert_eq!(last, "result", "{events:?}");
    assert!(!answers.is_empty() && result["answer"].as_str() == answers.last().map(|a| a.trim()), "the answer is streamed too: {answers:?}");
    let sql = result["sql"].as_str().unwrap();
    assert!(written.contains(sql.lines().next().unwrap()), "the streamed reply holds the SQL: {written:?} vs {sql}");
    let best = common::friday_best_seller().await;
    assert!(result["rows"][0].as_array().unwrap().contains(&json!(best)), "{result}");
}

/// POST /api/ask/cancel with the stream's id stops the question in the database; the stream ends
/// with an error event, and the same id is then unknown.
#[tokio::test]
async fn a_streamed_question_can_be_cancelled_by_its_id() {
    let base = common::start(&common::database_url(), 1).await;
    let mut response = common::http()
        .post(format!("{base}/api/ask/stream"))
        .header("content-type", "application/json")
        .body(r#"{"question": "List every pizza name with its total revenue per month"}"#)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let mut id = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if id.is_none() {
            id = text.split("\n\n").find(|b| b.starts_with("event: started")).and_then(|b| b.lines().find_map(|l| l.strip_prefix("data: "))).map(|d| serde_json::from_str::<Value>(d).unwrap()["id"].as_str().unwrap().to_owned());
        }
        if text.matches("event: sql").count() >= 3 {
            break; // the model is writing: cancel now
        }
    }
    let id = id.expect("a started event with an id");
    let (status, body) = post(&base, "/api/ask/cancel", &json!({ "id": id }).to_string(), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error") && last.contains("cancelled"), "{last}");
    let (client, connection) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let active: i64 = client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = 'nl2sql_web' AND state = 'active'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 0, "the question no longer runs in the database");
    let (status, _) = post(&base, "/api/ask/cancel", &json!({ "id": id }).to_string(), "application/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a finished question cannot be cancelled");
}
