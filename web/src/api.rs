//! HTTP handlers: small functions from typed requests to JSON responses or an [`ApiError`].

use crate::error::{ApiError, Cause};
use crate::stream;
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

/// The body as a question, or 400 (not JSON) / 413 (too large) / 422 (JSON without a usable
/// question, or text PostgreSQL cannot hold). The length limit is the extension's; an empty
/// question is caught here without a database round trip.
fn question(payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<String, ApiError> {
    let Json(request) = payload.map_err(|rejection| {
        let status = match rejection {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ref other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("the request body is not valid: {}", rejection.body_text()))
            .with_hint(r#"Send JSON like {"question": "How many orders were placed in July?"} with Content-Type: application/json."#)
    })?;
    if request.question.contains('\0') {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the question contains a NUL character (\\u0000), which PostgreSQL text cannot hold")
            .with_hint("Remove the NUL character from the question."));
    }
    if request.question.trim().is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the question is empty")
            .with_hint("Ask something about the data, e.g. \"What is the most bought pizza on Fridays?\""));
    }
    Ok(request.question)
}

pub async fn ask(State(state): State<AppState>, payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let question = question(payload)?;
    Ok(Json(state.database.ask(&question).await?))
}

/// The answer as server-sent events while it is worked out (see [`stream`]). Bad input is
/// refused with a plain JSON error before any stream starts.
pub async fn ask_stream(State(state): State<AppState>, payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<Response, ApiError> {
    let question = question(payload)?;
    Ok(stream::answer_as_events(state.database.clone(), state.running.clone(), question).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CancelRequest {
    pub id: String,
}

/// Stops the question that /api/ask/stream named `id` in its `started` event.
pub async fn cancel(State(state): State<AppState>, payload: Result<Json<CancelRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(request) = payload.map_err(|rejection| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the request body is not valid: {}", rejection.body_text()))
            .with_hint(r#"Send JSON like {"id": "..."}, the id of the stream's started event."#)
    })?;
    match state.running.cancel(&request.id) {
        true => Ok(Json(json!({ "cancelled": true }))),
        false => Err(ApiError::new(StatusCode::NOT_FOUND, "no question with that id is running").with_hint("It may have finished already.")),
    }
}

pub async fn sql(State(state): State<AppState>, payload: Result<Json<QuestionRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let question = question(payload)?;
    Ok(Json(json!({ "sql": state.database.sql(&question).await? })))
}

pub async fn schema(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.database.schema().await?))
}

/// 200 when the database answers, the extension is installed and ready (its model file present,
/// or with nl2sql.backend = 'openai', an endpoint set); 503 with the failing part otherwise.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.database.status().await {
        Ok(status) => {
            let ready = status["ready"] == json!(true);
            let mut body = json!({ "status": if ready { "ok" } else { "unavailable" }, "database": true, "extension": true,
                                   "backend": status["backend"], "model_present": status["model_present"] });
            if !ready {
                body["error"] = status["not_ready"].clone();
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
            Json(body).into_response()
        }
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

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not accept that method")
        .with_hint("See /api/openapi.json for each endpoint's method (questions are POSTed).")
}
