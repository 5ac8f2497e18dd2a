//! The SQL functions. Each one checks its arguments, calls the pipeline or the engine, and
//! returns every failure as an [`Nl2sqlError`], which pgrx raises as an ERROR with its SQLSTATE,
//! detail and hint. All are SECURITY INVOKER: they read and run as the calling role.

// pgrx raises the ErrorReport a function returns; it is large, but made at most once per call.
#![allow(clippy::result_large_err)]

use crate::backend_model::{loaded, with_model, Backend};
use crate::errors::{Nl2sqlError, Result};
use crate::pipeline::{plan_sql, run_sql};
use crate::question_context::Context;
use crate::progress::{self, Phase};
use crate::statement::ResultSet;
use crate::virtual_foreign_keys::{self, VirtualForeignKey};
use crate::{csv_load, examples, glossary, gucs, schema_context, value_index};
use nl2sql_engine::{NarrationRequest, Question};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{JsonB, PgLogLevel};
use serde_json::{json, Map, Value};
use std::time::Instant;

fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str> {
    value.ok_or_else(|| {
        Nl2sqlError::invalid_input(format!("{name} is NULL"))
            .hint(format!("Pass a {name}, e.g. SELECT * FROM nl2sql('How many orders were placed in July?');"))
    })
}

/// A question that is present, not blank and not over-long: checked before the model is loaded.
fn question(value: Option<&str>) -> Result<Question> {
    Ok(Question::parse(required(value, "question")?)?)
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

fn notice_if_truncated(result: &ResultSet) {
    if result.truncated {
        let message = format!("nl2sql: the result was cut to nl2sql.max_rows = {} rows; ask for fewer rows or raise the setting", gucs::max_rows());
        crate::errors::report(PgLogLevel::NOTICE, &message, None);
    }
}

fn narrate(question: &Question, result: &ResultSet, observer: &mut Backend) -> Result<String> {
    if observer.progress {
        progress::phase(Phase::Explaining);
    }
    let request = NarrationRequest { question, columns: &result.columns, rows: &result.rows };
    observer.narrating = true;
    let narrated = with_model(|model| request.answer(model, observer));
    observer.narrating = false;
    Ok(narrated??.text)
}

/// Answers the question: one jsonb object per result row (column name -> value).
#[pg_extern]
fn nl2sql(
    question: Option<&str>,
    instructions: default!(Option<&str>, "NULL"),
) -> Result<SetOfIterator<'static, JsonB>, ErrorReport> {
    let question = self::question(question)?;
    let answer = run_sql(&question, instructions, &mut Backend::new(false))?;
    notice_if_truncated(&answer.value);
    Ok(SetOfIterator::new(row_objects(&answer.value).into_iter().map(JsonB)))
}

/// The checked (and planned, not run) SQL for the question.
#[pg_extern]
fn nl2sql_sql(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> Result<String, ErrorReport> {
    let question = self::question(question)?;
    Ok(plan_sql(&question, instructions, &mut Backend::new(false))?.sql)
}

/// The exact prompt the model would see for the question, as the calling role.
#[pg_extern]
fn nl2sql_prompt(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> Result<String, ErrorReport> {
    let question = self::question(question)?;
    let context = Context::read(&question, &Backend::new(false))?;
    Ok(context.request(&question, instructions).prompt(None).text())
}

/// `rows` as columns + rows: a jsonb array of objects (as `jsonb_agg` of nl2sql() gives), one
/// object, or NULL for no rows.
fn columns_and_rows(rows: Option<&Value>) -> Result<ResultSet> {
    let shape_error = || {
        Nl2sqlError::invalid_input("rows must be a jsonb array of objects")
            .hint("Pass e.g. (SELECT jsonb_agg(r) FROM nl2sql('your question') AS r)")
    };
    let items = match rows {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(object @ Value::Object(_)) => std::slice::from_ref(object),
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
    let rows = items.iter().map(|item| columns.iter().map(|c| item.get(c).cloned().unwrap_or(Value::Null)).collect()).collect();
    Ok(ResultSet { columns, rows, truncated: false })
}

/// A one- or two-sentence plain-language answer to the question from the given rows.
#[pg_extern]
fn explain_rows(question: Option<&str>, rows: Option<JsonB>) -> Result<String, ErrorReport> {
    let question = self::question(question)?;
    let result = columns_and_rows(rows.as_ref().map(|j| &j.0))?;
    Ok(narrate(&question, &result, &mut Backend::new(false))?)
}

/// Generate, run and narrate in one call: the answer in words.
#[pg_extern]
fn nl2sql_answer(question: Option<&str>, instructions: default!(Option<&str>, "NULL")) -> Result<String, ErrorReport> {
    let question = self::question(question)?;
    let mut observer = Backend::new(false);
    let answer = run_sql(&question, instructions, &mut observer)?;
    notice_if_truncated(&answer.value);
    Ok(narrate(&question, &answer.value, &mut observer)?)
}

/// Everything about one question in one round trip (what the web service calls): the SQL, the
/// columns, the rows as arrays, the answer in words (unless narrate_result is false) and timings.
/// With progress, the phases and the SQL as it is written arrive as NOTICEs (see progress.rs).
#[pg_extern]
fn nl2sql_ask(
    question: Option<&str>,
    instructions: default!(Option<&str>, "NULL"),
    narrate_result: default!(bool, true),
    progress: default!(bool, false),
) -> Result<JsonB, ErrorReport> {
    let started = Instant::now();
    let question = self::question(question)?;
    let mut observer = Backend::new(progress);
    let answer = run_sql(&question, instructions, &mut observer)?;
    let result = &answer.value;
    notice_if_truncated(result);
    let narrate_started = Instant::now();
    let words = match narrate_result {
        true => Some(narrate(&question, result, &mut observer)?),
        false => None,
    };
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round();
    Ok(JsonB(json!({
        "sql": answer.sql,
        "columns": result.columns,
        "rows": result.rows,
        "truncated": result.truncated,
        "answer": words,
        "attempts": answer.attempts(),
        // How many statements the turn wrote, and how many agreed with this one's result: an
        // answer few candidates agree on deserves a second look.
        "candidates": answer.candidates,
        "votes": answer.votes,
        "timings_ms": {
            "generate": ms(answer.generation),
            "run": ms(answer.judging),
            "narrate": if narrate_result { ms(narrate_started.elapsed()) } else { 0.0 },
            "total": ms(started.elapsed()),
        },
    })))
}

/// Loads a server-side CSV file into a new table with inferred column types; returns the row count.
#[pg_extern]
fn nl2sql_load_csv(path: Option<&str>, table_name: Option<&str>) -> Result<i64, ErrorReport> {
    Ok(csv_load::load_csv(required(path, "path")?, required(table_name, "table_name")?)?)
}

/// The checker's verdict on `sql`, as the calling role, without the model and without running
/// it: {allowed, reason, columns}. What generated SQL would face: one read-only SELECT, only code
/// of pg_catalog and the allowed schemas (PostgreSQL's errors are reasons too).
#[pg_extern]
fn nl2sql_check(sql: Option<&str>) -> Result<JsonB, ErrorReport> {
    let sql = required(sql, "sql")?;
    let allowed = crate::provenance::AllowedSchemas::new(&gucs::allowed_function_schemas());
    Ok(JsonB(match crate::statement::plan(sql, &allowed) {
        Ok(columns) => json!({ "allowed": true, "reason": null, "columns": columns }),
        Err(failure) => {
            let reason = match failure {
                crate::statement::StatementFailure::Refused(reason) => reason,
                crate::statement::StatementFailure::Failed(e) => format!("ERROR: {}", e.message),
                crate::statement::StatementFailure::TimedOut => "timed out".to_owned(),
            };
            json!({ "allowed": false, "reason": reason, "columns": null })
        }
    }))
}

/// Stores a verified example: a question and SQL that passes the check generated SQL passes, as
/// the calling role; the example's id. Similar questions are shown it (nl2sql.examples).
#[pg_extern]
fn nl2sql_add_example(question: Option<&str>, sql: Option<&str>) -> Result<i64, ErrorReport> {
    Ok(examples::add(required(question, "question")?, required(sql, "sql")?)?)
}

/// Sets what a term means in this database (shown to the model with the schema); NULL removes it.
#[pg_extern]
fn nl2sql_glossary(term: Option<&str>, meaning: Option<&str>) -> Result<(), ErrorReport> {
    Ok(glossary::set(required(term, "term")?, meaning)?)
}

/// Says that `columns` of `referencing` join `referenced_columns` of `referenced`, where no
/// FOREIGN KEY constraint says so: the model is shown it as a foreign key, and schema linking
/// follows it. Checked as the caller (it may read the columns, and they compare with `=`); false
/// if it was declared already.
#[pg_extern]
fn nl2sql_add_virtual_foreign_key(
    referencing: Option<&str>,
    columns: Option<Vec<Option<String>>>,
    referenced: Option<&str>,
    referenced_columns: Option<Vec<Option<String>>>,
) -> Result<bool, ErrorReport> {
    Ok(virtual_foreign_key(referencing, columns, referenced, referenced_columns, virtual_foreign_keys::add)?)
}

/// Removes a virtual foreign key; false if there was none.
#[pg_extern]
fn nl2sql_drop_virtual_foreign_key(
    referencing: Option<&str>,
    columns: Option<Vec<Option<String>>>,
    referenced: Option<&str>,
    referenced_columns: Option<Vec<Option<String>>>,
) -> Result<bool, ErrorReport> {
    Ok(virtual_foreign_key(referencing, columns, referenced, referenced_columns, virtual_foreign_keys::drop)?)
}

/// The arguments of nl2sql_add/drop_virtual_foreign_key, present and without NULLs, given to `f`.
fn virtual_foreign_key(
    referencing: Option<&str>,
    columns: Option<Vec<Option<String>>>,
    referenced: Option<&str>,
    referenced_columns: Option<Vec<Option<String>>>,
    f: impl FnOnce(&VirtualForeignKey) -> Result<bool>,
) -> Result<bool> {
    let names = |value: Option<Vec<Option<String>>>, name: &str| -> Result<Vec<String>> {
        let value = value.ok_or_else(|| Nl2sqlError::invalid_input(format!("{name} is NULL")))?;
        value.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| Nl2sqlError::invalid_input(format!("{name} holds a NULL")))
    };
    let (columns, referenced_columns) = (names(columns, "columns")?, names(referenced_columns, "referenced_columns")?);
    f(&VirtualForeignKey {
        referencing: required(referencing, "referencing")?,
        columns: &columns,
        referenced: required(referenced, "referenced")?,
        referenced_columns: &referenced_columns,
    })
}

/// Rebuilds the value index (distinct values of low-cardinality text columns); the number of
/// values. Runs as the extension's owner; each caller sees only values it may read.
#[pg_extern(security_definer)]
fn nl2sql_index_values() -> Result<i64, ErrorReport> {
    Ok(value_index::build()?)
}

/// Where the model is, the settings this session asks for, and those in force in the model this
/// backend has loaded, if any (for health checks).
#[pg_extern]
fn nl2sql_status() -> JsonB {
    let path = gucs::model_path();
    let requested = gucs::engine_settings();
    let loaded = loaded();
    // The API key is never shown, not even whether it is set: only superusers may know that.
    let remote = gucs::remote_settings();
    // Whether a question can be answered now, as far as settings and files tell (what the
    // healthchecks of the database image and of the web service ask).
    let not_ready = match gucs::backend() {
        gucs::ModelBackend::Local => (!path.is_file()).then(|| format!("the model file {} is missing", path.display())),
        gucs::ModelBackend::Openai => remote.is_none().then(|| crate::backend_model::no_endpoint().message),
    };
    JsonB(json!({
        "ready": not_ready.is_none(),
        "not_ready": not_ready,
        "backend": match gucs::backend() { gucs::ModelBackend::Local => "local", gucs::ModelBackend::Openai => "openai" },
        "endpoint": remote.as_ref().map(|r| r.shown_endpoint()),
        "model_name": remote.as_ref().map(|r| r.model.clone()),
        "request_timeout_ms": gucs::request_timeout_ms(),
        "model_path": path.display().to_string(),
        "model_present": path.is_file(),
        // With nl2sql preloaded, backends ask the server's model worker (nl2sql_stats() says more).
        "model_worker": crate::model_worker::serves(),
        "loaded_in_this_session": loaded.is_some(),
        "load_seconds": loaded.as_ref().map(|(_, t, _)| t.as_secs_f64()),
        "threads": loaded.as_ref().map_or(requested.threads, |(_, _, s)| s.threads),
        "device": loaded.as_ref().map_or(requested.device, |(_, _, s)| s.device).to_string(),
        "draft_tokens": loaded.as_ref().map_or(requested.draft_tokens, |(_, _, s)| s.draft_tokens),
        "requested": { "threads": requested.threads, "device": requested.device.to_string(), "draft_tokens": requested.draft_tokens },
        "max_new_tokens": gucs::max_new_tokens(),
        "max_rows": gucs::max_rows(),
        "statement_timeout_ms": gucs::statement_timeout_ms(),
        "repair_attempts": gucs::repair_attempts(),
        "candidates": gucs::candidates(),
        "rescue_candidates": gucs::rescue_candidates(),
        "constrained_decoding": gucs::constrained_decoding(),
        "schema_budget_tokens": gucs::schema_budget_tokens(),
        "mention_values": gucs::mention_values(),
        "exact_arithmetic": gucs::exact_arithmetic(),
        "examples": gucs::examples(),
        "embedding_model_present": gucs::embedding_model_path().join("model.safetensors").is_file(),
        "allowed_function_schemas": gucs::allowed_function_schemas(),
    }))
}

/// What the server's model worker has done since it started, as it reports it: its process, the
/// model, threads and device in force, load time; completions (and statement-cache hits),
/// cancels, failures by kind, tokens in and out, percentiles of generation time and queue wait
/// over the last 1,000 requests, and forward passes with the sequences batched in them. It answers between two questions. An ERROR when nl2sql is
/// not preloaded (each backend then has its own model) or the worker cannot be reached.
#[pg_extern]
fn nl2sql_stats() -> Result<JsonB, ErrorReport> {
    if !crate::model_worker::serves() {
        return Err(Nl2sqlError::new(pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "the model worker is not running: nl2sql is not in shared_preload_libraries")
            .hint("Each backend loads its own copy of the model. For one copy per server: ALTER SYSTEM SET shared_preload_libraries = 'nl2sql'; then restart PostgreSQL.")
            .into());
    }
    let status = crate::backend_model::worker_client().status(&mut Backend::new(false)).map_err(Nl2sqlError::from)?;
    let percentiles = |p: &nl2sql_engine::worker::Percentiles| json!({ "count": p.count, "p50": p.p50, "p95": p.p95, "p99": p.p99 });
    Ok(JsonB(json!({
        "pid": status.pid,
        "model_path": status.model_path.display().to_string(),
        "load_seconds": status.load_time.map(|t| t.as_secs_f64()),
        "threads": status.settings.threads,
        "device": status.settings.device.to_string(),
        "completed": status.completed,
        "cache_hits": status.cache_hits,
        "cancelled": status.cancelled,
        "failed": status.failed,
        "prompt_tokens": status.prompt_tokens,
        "cached_prompt_tokens": status.cached_prompt_tokens,
        "generated_tokens": status.generated_tokens,
        "drafted_tokens": status.drafted_tokens,
        "draft_tokens": status.settings.draft_tokens,
        "generation_ms": percentiles(&status.generation_ms),
        "queue_wait_ms": percentiles(&status.queue_wait_ms),
        "forward_passes": status.forward_passes,
        "pass_sequences": status.pass_sequences,
        "max_in_flight": status.max_in_flight,
    })))
}

/// The tables, views and columns the calling role may read, as the model sees them (jsonb).
#[pg_extern]
fn nl2sql_schema() -> Result<JsonB, ErrorReport> {
    let schema = schema_context::readable_schema()?;
    Ok(JsonB(serde_json::to_value(schema).map_err(|e| Nl2sqlError::internal("serialising the schema", e))?))
}
