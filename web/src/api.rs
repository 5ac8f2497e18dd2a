//! HTTP handlers: small functions from typed requests to JSON responses or an [`ApiError`].

use crate::db;
use crate::error::{ApiError, Cause};
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct QuestionRequest {
    pub question: String,
}

/// The body as a question, or 400 (not JSON) / 422 (JSON without a usable question). The length
/// limit is the extension's; an empty question is caught here without a database round trip.
fn question(payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<String, ApiError> {
    let Json(request) = payload.map_err(|rejection| {
        let status = match rejection {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("the request body is not valid: {}", rejection.body_text()))
            .with_hint(r#"Send JSON like {"question": "How many orders were placed in July?"} with Content-Type: application/json."#)
    })?;
    if request.question.trim().is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the question is empty")
            .with_hint("Ask something about the data, e.g. \"What is the most bought pizza on Fridays?\""));
    }
    Ok(request.question)
}

pub async fn ask(State(state): State<AppState>, payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let question = question(payload)?;
    let answer = db::ask(&state.pool, &question).await?;
    Ok(Json(answer))
}

pub async fn sql(State(state): State<AppState>, payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let question = question(payload)?;
    Ok(Json(json!({ "sql": db::sql(&state.pool, &question).await? })))
}

pub async fn schema(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(db::schema(&state.pool).await?))
}

/// 200 when the database answers, the extension is installed and the model file is present;
/// 503 with the failing part otherwise.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match db::status(&state.pool).await {
        Ok(status) if status["model_present"] == json!(true) => {
            Json(json!({ "status": "ok", "database": true, "extension": true, "model_present": true })).into_response()
        }
        Ok(status) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": true, "extension": true, "model_present": false,
                         "error": format!("the model file {} is missing", status["model_path"].as_str().unwrap_or("?")) })),
        )
            .into_response(),
        Err(e) => {
            let database = e.cause != Cause::Database;
            let extension = database && e.cause != Cause::Extension;
            let body = json!({ "status": "unavailable", "database": database, "extension": extension,
                               "model_present": null, "error": e.message, "hint": e.hint });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../static/openapi.json"))
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").with_hint("See /api/openapi.json for the API.")
}
