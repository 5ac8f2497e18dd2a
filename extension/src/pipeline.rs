//! How a question is answered: read the schema the caller may see, generate SQL, check it with
//! the server's parser, plan or run it; when checking, planning or running fails, show the model
//! the error and let it try again, up to nl2sql.repair_attempts times.

use crate::backend_model::{interrupt_check, with_engine};
use crate::check::check_select_only;
use crate::errors::{Nl2sqlError, Result};
use crate::execute::{plan_only, run_read_only, ResultSet, RunFailure};
use crate::subtransaction::catch_pg_error;
use crate::{gucs, schema_context};
use nl2sql_engine::{Error as EngineError, FailedAttempt, SqlRequest};
use pgrx::PgSqlErrorCode;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Check and plan only (nl2sql_sql).
    Plan,
    /// Check and run (nl2sql, nl2sql_answer, nl2sql_ask).
    Run,
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub generate_ms: f64,
    pub run_ms: f64,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub sql: String,
    /// Present in [`Mode::Run`].
    pub result: Option<ResultSet>,
    pub attempts: usize,
    pub timings: Timings,
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Why one attempt failed, in words the model (and the user) can act on.
enum AttemptFailure {
    Repairable(String),
    TimedOut,
}

fn try_statement(sql: &str, mode: Mode) -> std::result::Result<Option<ResultSet>, AttemptFailure> {
    let checked = match catch_pg_error(|| check_select_only(sql), |_| false) {
        Ok(Ok(checked)) => checked,
        Ok(Err(refusal)) => return Err(AttemptFailure::Repairable(format!("refused: {}", refusal.0))),
        Err(pg) => return Err(AttemptFailure::Repairable(pg.describe())),
    };
    match mode {
        Mode::Plan => plan_only(sql).map(|_| None).map_err(|pg| AttemptFailure::Repairable(pg.describe())),
        Mode::Run => match run_read_only(sql, &checked, gucs::max_rows(), gucs::statement_timeout_ms()) {
            Ok(result) => Ok(Some(result)),
            Err(RunFailure::TimedOut) => Err(AttemptFailure::TimedOut),
            Err(RunFailure::Failed(pg)) => Err(AttemptFailure::Repairable(pg.describe())),
        },
    }
}

pub fn answer(question: &str, instructions: Option<&str>, mode: Mode) -> Result<Outcome> {
    let schema = schema_context::readable_schema_text()?;
    let attempts_allowed = 1 + gucs::repair_attempts();
    let mut timings = Timings::default();
    let mut last_failure: Option<(String, String)> = None;

    for attempt in 1..=attempts_allowed {
        let request = SqlRequest {
            schema: &schema,
            question,
            instructions,
            failed: last_failure.as_ref().map(|(sql, error)| FailedAttempt { sql, error }),
        };
        let started = Instant::now();
        let generated = with_engine(|engine| match engine.generate_sql(&request, &mut interrupt_check()) {
            Ok(generated) => Ok(Ok(generated.sql)),
            Err(EngineError::NoSql { reply }) => Ok(Err(reply)),
            Err(other) => Err(other),
        })?;
        timings.generate_ms += ms_since(started);
        let sql = match generated {
            Ok(sql) => sql,
            Err(reply) => {
                last_failure = Some((reply, "the reply contained no SQL statement; answer with one SELECT in a ```sql block".into()));
                continue;
            }
        };

        let started = Instant::now();
        let outcome = try_statement(&sql, mode);
        timings.run_ms += ms_since(started);
        match outcome {
            Ok(result) => return Ok(Outcome { sql, result, attempts: attempt, timings }),
            Err(AttemptFailure::TimedOut) => {
                return Err(Nl2sqlError::new(
                    PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                    format!("the generated query ran longer than nl2sql.statement_timeout ({} ms) and was stopped", gucs::statement_timeout_ms()),
                )
                .detail(format!("SQL: {sql}"))
                .hint("Ask a narrower question (a date range, a LIMIT), or raise nl2sql.statement_timeout for this session."))
            }
            Err(AttemptFailure::Repairable(reason)) => last_failure = Some((sql, reason)),
        }
    }

    let (sql, reason) = last_failure.expect("every failed attempt records why");
    Err(Nl2sqlError::new(
        PgSqlErrorCode::ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        format!("could not write a valid query for this question in {attempts_allowed} attempt(s)"),
    )
    .detail(format!("last SQL: {sql}\nreason: {reason}"))
    .hint("Rephrase the question using the names of tables and columns, or allow more retries with SET nl2sql.repair_attempts = 2."))
}
