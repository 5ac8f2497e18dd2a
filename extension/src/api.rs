//! The SQL functions. Each one checks its arguments, calls the pipeline or the engine, and turns
//! every failure into a PostgreSQL ERROR with a hint. All are SECURITY INVOKER: they read and run
//! as the calling role.

use crate::backend_model::{interrupt_check, loaded_model, with_engine};
use crate::errors::{Nl2sqlError, Result};
use crate::execute::ResultSet;
use crate::pipeline::{answer, Mode, Outcome};
use crate::{csv_load, gucs, schema_context};
use nl2sql_engine::{NarrationRequest, SqlRequest};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::time::Instant;

fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str> {
    value.ok_or_else(|| {
        Nl2sqlError::invalid_input(format!("{name} is NULL")).hint(format!("Pass a {name}, e.g. SELECT * FROM nl2sql('How many orders were placed in July?');"))
    })
}

/// A question that is present, not blank and not over-long: checked before the model is loaded.
fn checked_question(value: Option<&str>) -> Result<&str> {
    Ok(nl2sql_engine::prompt::check_question(required(value, "question")?)?)
}

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| e.raise())
}

/// Rows as jsonb objects; a repeated column name gets a suffix (_2, _3) so no value is lost.
fn row_objects(result: &ResultSet) -> Vec<Value> {
    let mut keys: Vec<String> = Vec::with_capacity(result.columns.len());
    for name in &result.columns {
        let mut key = name.clone();
        let mut n = 2;
        while keys.contains(&key) {
            key = format!("{name}_{n}");
            n += 1;
        }
        keys.push(key);
    }
    result
        .rows
        .iter()
        .map(|row| Value::Object(keys.iter().cloned().zip(row.iter().cloned()).collect::<Map<_, _>>()))
        .collect()
}

/// The checked question and its outcome, with a NOTICE when the rows were cut.
fn run_question<'a>(question: Option<&'a str>, instructions: Option<&str>) -> (&'a str, Outcome) {
    let question = ok(checked_question(question));
    let outcome = ok(answer(question, instructions, Mode::Run));
    if let Some(result) = &outcome.result {
        if result.truncated {
            notice!("nl2sql: the result was cut to nl2sql.max_rows = {} rows; ask for fewer rows or raise the setting", gucs::max_rows());
        }
    }
    (question, outcome)
}

fn narrate(question: &str, columns: &[String], rows: &[Vec<Value>]) -> Result<String> {
    let request = NarrationRequest { question, columns, rows };
    with_engine(|engine| engine.narrate(&request, &mut interrupt_check()).map(|c| c.text))
}

/// Answers the question: one jsonb object per result row (column name -> value).
#[pg_extern]
fn nl2sql(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> SetOfIterator<'static, JsonB> {
    let (_, outcome) = run_question(question, instructions);
    let rows = outcome.result.as_ref().map(row_objects).unwrap_or_default();
    SetOfIterator::new(rows.into_iter().map(JsonB))
}

/// The checked (and planned, not run) SQL for the question.
#[pg_extern]
fn nl2sql_sql(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> String {
    let question = ok(checked_question(question));
    ok(answer(question, instructions, Mode::Plan)).sql
}

/// The exact prompt the model would see for the question, as the calling role.
#[pg_extern]
fn nl2sql_prompt(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> String {
    let question = ok(checked_question(question));
    let schema = ok(schema_context::readable_schema_text());
    let mut request = SqlRequest::new(&schema, question);
    request.instructions = instructions;
    ok(request.prompt().map_err(Nl2sqlError::from)).text()
}

/// `rows` as columns + rows: a jsonb array of objects (as `jsonb_agg` of nl2sql() gives), or NULL
/// for no rows.
fn columns_and_rows(rows: Option<&Value>) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let shape_error = || {
        Nl2sqlError::invalid_input("rows must be a jsonb array of objects")
            .hint("Pass e.g. (SELECT jsonb_agg(r) FROM nl2sql('your question') AS r)")
    };
    let items = match rows {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Array(items)) => items,
        Some(Value::Object(_)) => std::slice::from_ref(rows.unwrap()),
        Some(_) => return Err(shape_error()),
    };
    let mut columns: Vec<String> = Vec::new();
    for item in items {
        let object = item.as_object().ok_or_else(shape_error)?;
        for key in object.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let table = items
        .iter()
        .map(|item| columns.iter().map(|c| item.get(c).cloned().unwrap_or(Value::Null)).collect())
        .collect();
    Ok((columns, table))
}

/// A one- or two-sentence plain-language answer to the question from the given rows.
#[pg_extern]
fn explain_rows(question: Option<&str>, rows: Option<JsonB>) -> String {
    let question = ok(checked_question(question));
    let (columns, table) = ok(columns_and_rows(rows.as_ref().map(|j| &j.0)));
    ok(narrate(question, &columns, &table))
}

/// Generate, run and narrate in one call: the answer in words.
#[pg_extern]
fn nl2sql_answer(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> String {
    let (question, outcome) = run_question(question, instructions);
    let result = outcome.result.expect("Run mode returns a result");
    ok(narrate(question, &result.columns, &result.rows))
}

/// Everything about one question in one round trip (what the web service calls): the SQL, the
/// columns, the rows as arrays, the answer in words (unless narrate is false) and timings.
#[pg_extern]
fn nl2sql_ask(
    question: Option<&str>,
    instructions: default!(Option<&str>, "NULL"),
    narrate_result: default!(bool, true),
) -> JsonB {
    let started = Instant::now();
    let (question, outcome) = run_question(question, instructions);
    let result = outcome.result.expect("Run mode returns a result");
    let narrate_started = Instant::now();
    let answer = narrate_result.then(|| ok(narrate(question, &result.columns, &result.rows)));
    let narrate_ms = narrate_started.elapsed().as_secs_f64() * 1000.0;
    JsonB(json!({
        "sql": outcome.sql,
        "columns": result.columns,
        "rows": result.rows,
        "truncated": result.truncated,
        "answer": answer,
        "attempts": outcome.attempts,
        "timings_ms": {
            "generate": outcome.timings.generate_ms.round(),
            "run": outcome.timings.run_ms.round(),
            "narrate": if narrate_result { narrate_ms.round() } else { 0.0 },
            "total": (started.elapsed().as_secs_f64() * 1000.0).round(),
        },
    }))
}

/// Loads a server-side CSV file into a new table with inferred column types; returns the row count.
#[pg_extern]
fn nl2sql_load_csv(path: Option<&str>, table_name: Option<&str>) -> i64 {
    let path = ok(required(path, "path"));
    let table_name = ok(required(table_name, "table_name"));
    ok(csv_load::load_csv(path, table_name))
}

/// Where the model is and whether this backend has loaded it (for health checks).
#[pg_extern]
fn nl2sql_status() -> JsonB {
    let path = gucs::model_path();
    let loaded = loaded_model();
    JsonB(json!({
        "model_path": path.display().to_string(),
        "model_present": path.is_file(),
        "loaded_in_this_session": loaded.is_some(),
        "load_seconds": loaded.map(|(_, t)| t.as_secs_f64()),
        "threads": gucs::threads(),
        "device": gucs::device(),
        "max_new_tokens": gucs::max_new_tokens(),
        "max_rows": gucs::max_rows(),
        "statement_timeout_ms": gucs::statement_timeout_ms(),
        "repair_attempts": gucs::repair_attempts(),
    }))
}

/// The tables, views and columns the calling role may read, as the model sees them (jsonb).
#[pg_extern]
fn nl2sql_schema() -> JsonB {
    let schema = ok(schema_context::readable_schema());
    JsonB(serde_json::to_value(schema).expect("a schema is plain data"))
}
