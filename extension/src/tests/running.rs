// Running checked statements: values as JSON, the row cap, the timeout, the caller's state.

fn run_checked(sql: &str, max_rows: usize, timeout_ms: i32) -> Result<crate::execute::ResultSet, RunFailure> {
    let checked = accepted(sql);
    run_read_only(sql, &checked, max_rows, timeout_ms)
}

#[pg_test]
fn running_keeps_numbers_numbers_and_dates_iso() {
    let result = run_checked(
        "SELECT 1 AS i, 2.50::numeric AS n, 'x' AS t, DATE '2015-01-02' AS d, TIME '11:38:36' AS tm, NULL::int AS z, true AS b, 1 AS i",
        10,
        10_000,
    )
    .unwrap_or_else(|_| panic!("the statement should run"));
    assert_eq!(result.columns, ["i", "n", "t", "d", "tm", "z", "b", "i"]);
    assert_eq!(result.rows, vec![vec![json!(1), json!(2.50), json!("x"), json!("2015-01-02"), json!("11:38:36"), Value::Null, json!(true), json!(1)]]);
    assert!(!result.truncated);
}

#[pg_test]
fn running_cuts_at_max_rows_and_says_so() {
    let result = run_checked("SELECT g FROM generate_series(1, 10) g ORDER BY g DESC", 3, 10_000).unwrap_or_else(|_| panic!("runs"));
    assert_eq!(result.rows, vec![vec![json!(10)], vec![json!(9)], vec![json!(8)]], "order is kept");
    assert!(result.truncated);
    let exact = run_checked("SELECT g FROM generate_series(1, 3) g", 3, 10_000).unwrap_or_else(|_| panic!("runs"));
    assert!(!exact.truncated);
}

#[pg_test]
fn running_stops_at_the_timeout_and_restores_the_callers_timer_and_settings() {
    run("SET statement_timeout = '1h'");
    let started = std::time::Instant::now();
    let outcome = run_checked("SELECT count(*) FROM generate_series(1, 500000000)", 10, 200);
    assert!(matches!(outcome, Err(RunFailure::TimedOut)), "{outcome:?}");
    assert!(started.elapsed().as_secs() < 30);
    assert_eq!(one::<String>("SHOW statement_timeout"), "1h");
    assert_eq!(one::<i64>("SELECT count(*) FROM generate_series(1, 1000)"), 1000, "the transaction is still usable");
}

#[pg_test]
fn running_reports_runtime_errors_and_leaves_the_transaction_usable() {
    run("CREATE TABLE kept (a int)");
    run("INSERT INTO kept VALUES (1)");
    match run_checked("SELECT 1 / (count(*) - 1) FROM kept", 10, 10_000) {
        Err(RunFailure::Failed(e)) => assert!(e.message.contains("division by zero"), "{}", e.message),
        other => panic!("expected a division by zero, got {other:?}"),
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM kept"), 1);
}

#[pg_test]
fn running_as_the_caller_honours_row_level_security() {
    run("CREATE TABLE notes (owner text, body text)");
    run("INSERT INTO notes VALUES ('alice', 'a1'), ('bob', 'b1'), ('bob', 'b2')");
    run("ALTER TABLE notes ENABLE ROW LEVEL SECURITY");
    run("CREATE POLICY own_notes ON notes USING (owner = current_user)");
    run("CREATE ROLE alice");
    run("GRANT SELECT ON notes TO alice");
    run("SET ROLE alice");
    let result = run_checked("SELECT body FROM notes ORDER BY body", 10, 10_000).unwrap_or_else(|_| panic!("runs"));
    run("RESET ROLE");
    assert_eq!(result.rows, vec![vec![json!("a1")]]);
}
