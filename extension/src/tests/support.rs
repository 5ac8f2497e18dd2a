// Helpers shared by the tests.

const DEMO_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/data.csv");
const DEMO_ROWS: i64 = 49_574;

/// Runs SQL that must fail and returns "message HINT: hint".
fn error_of(sql: &str) -> String {
    let owned = sql.to_owned();
    match catch_pg_error(move || Spi::run(&owned).unwrap_or_else(|e| error!("{e}")), |_| true) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => format!("{} HINT: {}", e.message, e.hint.unwrap_or_default()),
    }
}

fn assert_error(sql: &str, expected: &str) {
    let error = error_of(sql);
    assert!(error.contains(expected), "{sql}\n  expected an error containing {expected:?}\n  got: {error}");
}

/// The schemas generated SQL may use, as the session's settings say.
fn allowed() -> AllowedSchemas {
    AllowedSchemas::new(&crate::gucs::allowed_function_schemas())
}

/// Why checking and planning refused `sql` ("ERROR: ..." when PostgreSQL raised it).
fn refusal(sql: &str) -> String {
    match statement::plan(sql, &allowed()) {
        Ok(columns) => panic!("the checker accepted: {sql} (columns {columns:?})"),
        Err(StatementFailure::Refused(reason)) => reason,
        Err(StatementFailure::Failed(pg)) => format!("ERROR: {}", pg.message),
        Err(StatementFailure::TimedOut) => panic!("planning {sql} timed out"),
    }
}

/// The output columns of `sql`, which must check and plan.
fn accepted(sql: &str) -> Vec<String> {
    statement::plan(sql, &allowed()).unwrap_or_else(|failure| panic!("{sql} was not accepted: {failure:?}"))
}

/// Checks and runs `sql` as nl2sql runs generated SQL.
fn run_checked(sql: &str, max_rows: usize, timeout_ms: i32) -> Result<ResultSet, StatementFailure> {
    statement::run(sql, &allowed(), max_rows, timeout_ms)
}

/// What running `sql` failed with (refusal reason or PostgreSQL's message).
fn run_failure(sql: &str) -> String {
    match run_checked(sql, 100, 10_000) {
        Ok(result) => panic!("{sql} ran and returned {:?}", result.rows),
        Err(StatementFailure::Refused(reason)) => reason,
        Err(StatementFailure::Failed(pg)) => format!("ERROR: {}", pg.message),
        Err(StatementFailure::TimedOut) => "timed out".to_owned(),
    }
}

fn one<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(sql: &str) -> T {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}")).unwrap_or_else(|| panic!("{sql}: NULL"))
}

fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn load_demo() {
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{DEMO_CSV}', 'pizza_sales')")), DEMO_ROWS);
}

/// Rows of a query as lists of values in column order (json, unlike jsonb, keeps key order).
fn value_rows(sql: &str) -> Vec<Vec<Value>> {
    let json = one::<JsonB>(&format!(
        "SELECT coalesce(jsonb_agg((SELECT jsonb_agg(e.value::jsonb ORDER BY e.n) \
                                    FROM json_each(row_to_json(q)) WITH ORDINALITY AS e(key, value, n))), '[]') \
         FROM ({sql}) q"
    ))
    .0;
    serde_json::from_value(json).unwrap()
}

/// Rows nl2sql() returns for a question, as lists of values.
fn nl2sql_rows(question: &str) -> Vec<Vec<Value>> {
    value_rows(&format!("SELECT r FROM nl2sql({}) r", sql_literal(question)))
        .into_iter()
        .map(|row| row[0].as_object().unwrap().values().cloned().collect())
        .collect()
}

/// Equal values: numbers by value up to rounding in the last shown digit (the model may ROUND an
/// average to 2 decimals), text exactly.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 0.005 + 1e-9 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

/// The expected rows, in order, are the first rows of `got`, each found as a set of distinct
/// columns of the matching row (extra columns in `got` are fine; their order is not).
fn starts_with_rows(got: &[Vec<Value>], expected: &[Vec<Value>]) -> bool {
    got.len() >= expected.len() && expected.iter().zip(got).all(|(want, row)| row_contains(row, want))
}

/// The same rows in any order (the question asked for no order).
fn same_rows(got: &[Vec<Value>], expected: &[Vec<Value>]) -> bool {
    got.len() == expected.len() && expected.iter().all(|want| got.iter().any(|row| row_contains(row, want)))
}

/// Each expected value matches a different cell of `row`.
fn row_contains(row: &[Value], want: &[Value]) -> bool {
    let mut used = vec![false; row.len()];
    want.iter().all(|w| match (0..row.len()).find(|&i| !used[i] && same_value(&row[i], w)) {
        Some(i) => {
            used[i] = true;
            true
        }
        None => false,
    })
}

static CAPTURED_WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn capture_warning(error: *mut pg_sys::ErrorData) {
    if (*error).elevel == pg_sys::WARNING as i32 && !(*error).message.is_null() {
        let message = std::ffi::CStr::from_ptr((*error).message).to_string_lossy().into_owned();
        CAPTURED_WARNINGS.lock().unwrap().push(message);
    }
}

/// The WARNINGs running `sql` emits (caught by emit_log_hook on their way to the log).
fn warnings_of(sql: &str) -> Vec<String> {
    CAPTURED_WARNINGS.lock().unwrap().clear();
    // SAFETY: the hook is a backend global; it is put back before returning (tests run one at a
    // time per backend).
    let previous = unsafe { (*std::ptr::addr_of_mut!(pg_sys::emit_log_hook)).replace(capture_warning) };
    let outcome = catch_pg_error(|| Spi::run(sql), |_| false);
    unsafe { *std::ptr::addr_of_mut!(pg_sys::emit_log_hook) = previous };
    outcome.unwrap_or_else(|e| panic!("{sql}: {}", e.message)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    std::mem::take(&mut *CAPTURED_WARNINGS.lock().unwrap())
}

/// `text` as a SQL string literal.
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
