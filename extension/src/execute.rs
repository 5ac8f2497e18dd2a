//! Running a checked SELECT through SPI, read-only, as the calling role, with nl2sql's own
//! statement timeout and row cap; the caller's settings and timers are left as they were.

use crate::check::{check_select_only, CheckedQuery};
use crate::subtransaction::{catch_pg_error, CaughtPgError};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    /// Values in column order; numbers stay numbers, dates and times are ISO strings (to_jsonb).
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than nl2sql.max_rows allowed.
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub enum RunFailure {
    /// PostgreSQL refused or failed the statement (worth a repair attempt).
    Failed(CaughtPgError),
    /// It ran longer than nl2sql.statement_timeout.
    TimedOut,
}

/// jsonb_build_array takes at most 100 arguments (FUNC_MAX_ARGS); wider rows are concatenated.
const MAX_FUNCTION_ARGS: usize = 100;

/// The statement as a sub-query whose columns are renamed by position (c1, c2, ...), so that
/// duplicate or odd column names cannot collide, and each row comes back as one jsonb array.
fn wrap_as_json_rows(sql: &str, columns: usize) -> String {
    if columns == 0 {
        return format!("SELECT '[]'::jsonb FROM (\n{sql}\n) AS q");
    }
    let names: Vec<String> = (1..=columns).map(|i| format!("c{i}")).collect();
    let arrays: Vec<String> = names
        .chunks(MAX_FUNCTION_ARGS)
        .map(|chunk| format!("jsonb_build_array({})", chunk.iter().map(|c| format!("q.{c}")).collect::<Vec<_>>().join(", ")))
        .collect();
    // The newlines keep a trailing -- comment in the statement from swallowing the ")".
    format!("SELECT {} FROM (\n{sql}\n) AS q({})", arrays.join(" || "), names.join(", "))
}

/// PostgreSQL's timeout module (utils/timeout.h), which pgrx does not bind.
mod timeout {
    use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
    use pgrx::pg_sys::TimestampTz;
    use std::ffi::c_int;

    /// `TimeoutId` is a C enum; STATEMENT_TIMEOUT is its fourth member in PostgreSQL 13 to 17.
    const STATEMENT_TIMEOUT: c_int = 3;

    mod c {
        use super::*;
        unsafe extern "C-unwind" {
            pub fn enable_timeout_at(id: c_int, fin_time: TimestampTz);
            pub fn disable_timeout(id: c_int, keep_indicator: bool);
            pub fn get_timeout_active(id: c_int) -> bool;
            pub fn get_timeout_finish_time(id: c_int) -> TimestampTz;
        }
    }

    // SAFETY (all four): called on the backend's thread; an ERROR inside becomes a Rust panic.
    pub fn statement_timeout_finish() -> Option<TimestampTz> {
        unsafe {
            pg_guard_ffi_boundary(|| {
                c::get_timeout_active(STATEMENT_TIMEOUT).then(|| c::get_timeout_finish_time(STATEMENT_TIMEOUT))
            })
        }
    }

    pub fn set_statement_timeout_finish(at: TimestampTz) {
        unsafe { pg_guard_ffi_boundary(|| c::enable_timeout_at(STATEMENT_TIMEOUT, at)) }
    }

    pub fn clear_statement_timeout() {
        unsafe { pg_guard_ffi_boundary(|| c::disable_timeout(STATEMENT_TIMEOUT, false)) }
    }
}

/// Makes PostgreSQL's statement-timeout timer fire at our deadline if that comes first, and puts
/// the caller's timer back afterwards.
struct Deadline {
    at: pg_sys::TimestampTz,
    callers: Option<pg_sys::TimestampTz>,
}

impl Deadline {
    fn arm(timeout_ms: i32) -> Self {
        // SAFETY: plain calls into the backend's timeout module from the backend's own thread.
        unsafe {
            let at = pg_sys::GetCurrentTimestamp() + i64::from(timeout_ms) * 1000;
            let callers = timeout::statement_timeout_finish();
            if callers.is_none_or(|theirs| at < theirs) {
                timeout::set_statement_timeout_finish(at);
            }
            Self { at, callers }
        }
    }

    fn passed(&self) -> bool {
        unsafe { pg_sys::GetCurrentTimestamp() >= self.at }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        match self.callers {
            Some(theirs) => timeout::set_statement_timeout_finish(theirs),
            None => timeout::clear_statement_timeout(),
        }
    }
}

/// Read-only SPI runs in the snapshot its caller's statement started with; a volatile function,
/// which nl2sql() is, should see what earlier commands of its own transaction wrote (as PL/pgSQL
/// statements do), so the statement runs in a fresh snapshot. Inside a subtransaction, whose
/// abort pops the snapshot if the statement fails.
fn with_fresh_snapshot<R>(f: impl FnOnce() -> R) -> R {
    unsafe {
        pg_sys::CommandCounterIncrement();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let result = f();
    unsafe { pg_sys::PopActiveSnapshot() };
    result
}

/// Runs a statement that passed [`check_select_only`] and returns at most `max_rows` rows.
pub fn run_read_only(sql: &str, checked: &CheckedQuery, max_rows: usize, timeout_ms: i32) -> Result<ResultSet, RunFailure> {
    let wrapped = wrap_as_json_rows(sql, checked.columns.len());
    let deadline = Deadline::arm(timeout_ms);
    let deadline_at = deadline.at;
    let outcome = catch_pg_error(
        || {
            // The wrapper goes through the same check: whatever runs has been checked.
            if let Err(refusal) = check_select_only(&wrapped) {
                error!("the wrapped statement was refused: {}", refusal.0);
            }
            with_fresh_snapshot(|| Spi::connect(|client| -> Result<(Vec<Vec<Value>>, bool), pgrx::spi::Error> {
                let table = client.select(&wrapped, Some(max_rows as i64 + 1), &[])?;
                let mut rows = Vec::with_capacity(table.len().min(max_rows));
                for row in table {
                    if rows.len() == max_rows {
                        return Ok((rows, true));
                    }
                    let array = row.get::<JsonB>(1)?.map(|j| j.0).unwrap_or(Value::Null);
                    rows.push(match array {
                        Value::Array(values) => values,
                        other => vec![other],
                    });
                }
                Ok((rows, false))
            }))
        },
        move |_| unsafe { pg_sys::GetCurrentTimestamp() >= deadline_at },
    );
    match outcome {
        Ok(Ok((rows, truncated))) => Ok(ResultSet { columns: checked.columns.clone(), rows, truncated }),
        Ok(Err(spi_error)) => Err(RunFailure::Failed(CaughtPgError {
            code: pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            message: spi_error.to_string(),
            detail: None,
            hint: None,
        })),
        Err(caught) if caught.code == pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_QUERY_CANCELED && deadline.passed() => {
            Err(RunFailure::TimedOut)
        }
        Err(caught) => Err(RunFailure::Failed(caught)),
    }
}

/// Plans the statement without running it, to catch planner errors for repair.
pub fn plan_only(sql: &str) -> Result<(), CaughtPgError> {
    let owned = sql.to_owned();
    catch_pg_error(move || crate::check::plan_select(&owned), |_| false)
}

#[cfg(test)]
mod tests {
    use super::wrap_as_json_rows;

    #[test]
    fn wraps_with_positional_names() {
        assert_eq!(
            wrap_as_json_rows("SELECT 1 AS a, 2 AS a", 2),
            "SELECT jsonb_build_array(q.c1, q.c2) FROM (\nSELECT 1 AS a, 2 AS a\n) AS q(c1, c2)"
        );
    }

    #[test]
    fn wide_rows_are_split_into_chunks_of_100() {
        let wrapped = wrap_as_json_rows("SELECT *", 150);
        assert!(wrapped.contains("q.c100) || jsonb_build_array(q.c101"), "{wrapped}");
    }
}
