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
    let base = common::start(&common::database_url(), 1).await;
    let best = common::friday_best_seller().await;

    let (status, body) = post(&base, "/api/ask", r#"{"question": "What is the most bought pizza on Fridays?"}"#, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["sql"].as_str().unwrap().to_uppercase().contains("SELECT"), "{body}");
    assert!(!body["columns"].as_array().unwrap().is_empty(), "{body}");
    assert!(body["rows"][0].as_array().unwrap().contains(&json!(best)), "first row is {best}: {body}");
    let answer = body["answer"].as_str().unwrap();
    assert!(answer.replace(' ', "_").to_lowercase().contains(&best), "the answer names {best}: {answer}");
    assert!(body["timings_ms"]["total"].as_f64().unwrap() > 0.0, "{body}");

    let (status, body) = post(&base, "/api/sql", r#"{"question": "Count the rows of the pizza_sales table."}"#, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["sql"].as_str().unwrap().to_uppercase().contains("COUNT"), "{body}");
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
    ];
    for (body, content_type, expected, text) in cases {
        let (status, error) = post(&base, "/api/ask", body, content_type).await;
        assert_eq!(status, expected, "{body}: {error}");
        let message = format!("{} {}", error["error"], error["hint"]);
        assert!(message.contains(text), "{body}: {error}");
    }
    let long = json!({ "question": "how many pizzas ".repeat(7000) }).to_string();
    let (status, error) = post(&base, "/api/sql", &long, "application/json").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"].as_str().unwrap().contains("the limit is 2000"), "{error}");

    let (status, error) = get(&base, "/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error["hint"].as_str().unwrap().contains("openapi"), "{error}");
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
    assert_eq!(health, json!({ "status": "ok", "database": true, "extension": true, "model_present": true }));

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
