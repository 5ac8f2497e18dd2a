// Running checked statements: values as JSON, the row cap, the timeout, the caller's state.

#[pg_test]
fn running_keeps_numbers_numbers_and_dates_iso() {
    let result = run_checked(
        "SELECT 1 AS i, 2.50::numeric AS n, 'x' AS t, DATE '2015-01-02' AS d, TIME '11:38:36' AS tm, NULL::int AS z, true AS b, 1 AS i, \
                ARRAY[1, 2] AS a, TIMESTAMP '2015-01-02 10:00' AS ts, '{\"k\": [1]}'::jsonb AS j",
        10,
        10_000,
    )
    .unwrap_or_else(|e| panic!("the statement should run: {e:?}"));
    assert_eq!(result.columns, ["i", "n", "t", "d", "tm", "z", "b", "i", "a", "ts", "j"]);
    assert_eq!(
        result.rows,
        vec![vec![
            json!(1),
            json!(2.50),
            json!("x"),
            json!("2015-01-02"),
            json!("11:38:36"),
            Value::Null,
            json!(true),
            json!(1),
            json!([1, 2]),
            json!("2015-01-02T10:00:00"),
            json!({"k": [1]})
        ]]
    );
    assert!(!result.truncated);
}

#[pg_test]
fn running_cuts_at_max_rows_and_says_so() {
    let result = run_checked("SELECT g FROM generate_series(1, 10) g ORDER BY g DESC", 3, 10_000).unwrap_or_else(|e| panic!("runs: {e:?}"));
    assert_eq!(result.rows, vec![vec![json!(10)], vec![json!(9)], vec![json!(8)]], "order is kept");
    assert!(result.truncated);
    let exact = run_checked("SELECT g FROM generate_series(1, 3) g", 3, 10_000).unwrap_or_else(|e| panic!("runs: {e:?}"));
    assert!(!exact.truncated);
    assert_eq!(exact.rows.len(), 3);
}

/// When the statement has no timer of its own, ours stops the generated query and is gone after.
#[pg_test]
fn results_agree_for_the_vote_on_the_same_rows_in_any_order_whatever_the_names() {
    let result = |sql: &str| run_checked(sql, 1000, 10_000).unwrap_or_else(|e| panic!("{sql} runs: {e:?}"));
    let counted = result("SELECT 'a' AS name, 2 AS n UNION ALL SELECT 'b', 1");
    assert!(counted.same_answer(&result("SELECT 'b' AS pizza, 1 AS total UNION ALL SELECT 'a', 2")), "rows in another order, other names");
    assert!(!counted.same_answer(&result("SELECT 'a' AS name, 2 AS n")), "a row less");
    assert!(!counted.same_answer(&result("SELECT 'a' AS name, 3 AS n UNION ALL SELECT 'b', 1")), "another value");
    assert!(!counted.same_answer(&result("SELECT 'a' AS name UNION ALL SELECT 'b'")), "another column count");
    let capped = run_checked("SELECT g FROM generate_series(1, 10) g", 3, 10_000).unwrap();
    assert!(!capped.same_answer(&result("SELECT g FROM generate_series(1, 3) g")), "a result cut at the row cap is not a whole one");
}

#[pg_test]
fn running_stops_at_nl2sql_statement_timeout() {
    let outcome = run_checked("SELECT count(*) FROM generate_series(1, 500000000)", 10, 200);
    assert!(matches!(outcome, Err(StatementFailure::TimedOut)), "{outcome:?}");
    assert_eq!(statement::statement_timeout_finish_for_tests(), None, "no timer is left armed");
    assert_eq!(one::<i64>("SELECT count(*) FROM generate_series(1, 1000)"), 1000, "the transaction is still usable");
}

/// The caller's statement_timeout timer (simulated: a test runs inside one statement) is re-armed
/// with its own finish time after ours fired; and when the caller's fires first, the cancel is
/// the caller's: it is raised, not shown to the model for repair. The message also pins the
/// position of STATEMENT_TIMEOUT in PostgreSQL's TimeoutId enum, which we declare by hand.
#[pg_test]
fn running_puts_back_the_callers_statement_timeout() {
    let callers = statement::arm_statement_timeout_for_tests(3_600_000);
    let finish = statement::statement_timeout_finish_for_tests().expect("the caller's timer is armed");
    let outcome = run_checked("SELECT count(*) FROM generate_series(1, 500000000)", 10, 200);
    assert!(matches!(outcome, Err(StatementFailure::TimedOut)), "{outcome:?}");
    assert_eq!(statement::statement_timeout_finish_for_tests(), Some(finish), "the caller's timer, re-armed as it was");
    drop(callers);

    let callers = statement::arm_statement_timeout_for_tests(200);
    let caught = catch_pg_error(|| run_checked("SELECT count(*) FROM generate_series(1, 500000000)", 10, 60_000), |_| true);
    drop(callers);
    match caught {
        Err(e) => assert_eq!(e.message, "canceling statement due to statement timeout"),
        Ok(outcome) => panic!("the caller's timeout must be raised, not returned: {outcome:?}"),
    }
}

#[pg_test]
fn running_reports_runtime_errors_and_leaves_the_transaction_usable() {
    run("CREATE TABLE kept (a int)");
    run("INSERT INTO kept VALUES (1)");
    match run_checked("SELECT 1 / (count(*) - 1) FROM kept", 10, 10_000) {
        Err(StatementFailure::Failed(e)) => assert_eq!(e.message, "division by zero"),
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
    let result = run_checked("SELECT body FROM notes ORDER BY body", 10, 10_000).unwrap_or_else(|e| panic!("runs: {e:?}"));
    run("RESET ROLE");
    assert_eq!(result.rows, vec![vec![json!("a1")]]);
}
