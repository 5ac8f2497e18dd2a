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

/// Why the checker refused `sql` ("ERROR: ..." when the parser or analyser raised it).
fn refusal(sql: &str) -> String {
    let owned = sql.to_owned();
    match catch_pg_error(move || check_select_only(&owned), |_| false) {
        Ok(Ok(checked)) => panic!("the checker accepted: {sql} (columns {:?})", checked.columns),
        Ok(Err(refusal)) => refusal.0,
        Err(pg) => format!("ERROR: {}", pg.message),
    }
}

fn accepted(sql: &str) -> CheckedQuery {
    let owned = sql.to_owned();
    match catch_pg_error(move || check_select_only(&owned), |_| false) {
        Ok(Ok(checked)) => checked,
        Ok(Err(refusal)) => panic!("the checker refused {sql}: {}", refusal.0),
        Err(pg) => panic!("{sql} raised: {}", pg.message),
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
    value_rows(&format!("SELECT r FROM nl2sql('{}') r", question.replace('\'', "''")))
        .into_iter()
        .map(|row| row[0].as_object().unwrap().values().cloned().collect())
        .collect()
}

fn same_value(a: &Value, b: &Value) -> bool {
    let number = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse::<f64>().ok()));
    match (number(a), number(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 0.01 * x.abs().max(1.0),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
            _ => a == b,
        },
    }
}

/// Every expected row has all its values within one row of `got` (extra columns are fine).
fn contains_rows(got: &[Vec<Value>], expected: &[Vec<Value>]) -> bool {
    expected.iter().all(|want| got.iter().any(|row| want.iter().all(|w| row.iter().any(|g| same_value(g, w)))))
}
