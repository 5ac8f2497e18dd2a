// The SELECT-only checker: PostgreSQL's parser and analyser decide, on hand-written statements.

fn checker_fixtures() {
    run("CREATE TABLE t (a int, b text)");
    run("INSERT INTO t VALUES (1, 'x')");
    run("CREATE SEQUENCE s");
    run("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'");
    run("CREATE VIEW v_random AS SELECT a, random() AS r FROM t");
}

#[pg_test]
fn checker_refuses_writes_ddl_and_utility_statements() {
    checker_fixtures();
    let cases = [
        ("INSERT INTO t VALUES (2, 'y')", "INSERT statements are not allowed"),
        ("UPDATE t SET a = 2", "UPDATE statements are not allowed"),
        ("DELETE FROM t", "DELETE statements are not allowed"),
        ("MERGE INTO t USING t AS u ON t.a = u.a WHEN MATCHED THEN DELETE", "MERGE statements are not allowed"),
        ("TRUNCATE t", "TRUNCATE TABLE statements are not allowed"),
        ("DROP TABLE t", "DROP TABLE statements are not allowed"),
        ("CREATE TABLE x (a int)", "CREATE TABLE statements are not allowed"),
        ("CREATE TABLE x AS SELECT * FROM t", "CREATE TABLE AS statements are not allowed"),
        ("ALTER TABLE t ADD COLUMN c int", "ALTER TABLE statements are not allowed"),
        ("CREATE INDEX ON t (a)", "CREATE INDEX statements are not allowed"),
        ("GRANT SELECT ON t TO PUBLIC", "GRANT statements are not allowed"),
        ("COPY t TO '/tmp/nl2sql-copy-out'", "COPY statements are not allowed"),
        ("COPY t FROM PROGRAM 'id'", "COPY statements are not allowed"),
        ("DO $$ BEGIN DELETE FROM t; END $$", "DO statements are not allowed"),
        ("CALL p()", "CALL statements are not allowed"),
        ("SET statement_timeout = 0", "SET statements are not allowed"),
        ("RESET ALL", "RESET statements are not allowed"),
        ("BEGIN", "BEGIN statements are not allowed"),
        ("COMMIT", "COMMIT statements are not allowed"),
        ("ROLLBACK", "ROLLBACK statements are not allowed"),
        ("SAVEPOINT x", "SAVEPOINT statements are not allowed"),
        ("VACUUM t", "VACUUM statements are not allowed"),
        ("LOCK TABLE t", "LOCK TABLE statements are not allowed"),
        ("EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN statements are not allowed"),
        ("PREPARE q AS DELETE FROM t", "PREPARE statements are not allowed"),
        ("EXECUTE q", "EXECUTE statements are not allowed"),
        ("NOTIFY x", "NOTIFY statements are not allowed"),
        ("LISTEN x", "LISTEN statements are not allowed"),
    ];
    for (sql, expected) in cases {
        let reason = refusal(sql);
        assert!(reason.contains(expected), "{sql}: {reason}");
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM t"), 1, "nothing ran");
}

#[pg_test]
fn checker_refuses_hidden_writes_locks_and_volatile_functions() {
    checker_fixtures();
    let cases = [
        ("SELECT 1; DROP TABLE t", "holds 2 statements"),
        ("SELECT 1; SELECT 2", "holds 2 statements"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "WITH clauses that INSERT, UPDATE or DELETE"),
        ("WITH i AS (INSERT INTO t VALUES (3, 'z') RETURNING a) SELECT a FROM i", "WITH clauses that INSERT, UPDATE or DELETE"),
        ("SELECT * INTO new_t FROM t", "SELECT INTO creates a table"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE / FOR SHARE"),
        ("SELECT * FROM t FOR SHARE", "FOR UPDATE / FOR SHARE"),
        ("SELECT * FROM (SELECT * FROM t FOR UPDATE) sub", "FOR UPDATE / FOR SHARE"),
        ("WITH x AS (SELECT * FROM t FOR NO KEY UPDATE) SELECT * FROM x", "FOR UPDATE / FOR SHARE"),
        ("SELECT pg_sleep(1)", "volatile function"),
        ("SELECT pg_terminate_backend(pg_backend_pid())", "volatile function"),
        ("SELECT set_config('search_path', 'x', false)", "volatile function"),
        ("SELECT nextval('s')", "volatile function"),
        ("SELECT lo_import('/etc/hostname')", "volatile function"),
        ("SELECT a FROM t ORDER BY random()", "volatile function"),
        ("SELECT * FROM t, pg_sleep(1)", "volatile function"),
        ("SELECT a FROM t WHERE a IN (SELECT pg_backend_pid() FROM pg_sleep(0))", "volatile function"),
        ("SELECT * FROM v_random", "volatile function"),
        ("", "the SQL is empty"),
        ("-- only a comment", "the SQL is empty"),
        ("SELEC 1", "ERROR: syntax error"),
        ("SELECT nope FROM t", "ERROR: column \"nope\" does not exist"),
    ];
    for (sql, expected) in cases {
        let reason = refusal(sql);
        assert!(reason.contains(expected), "{sql}: {reason}");
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM t"), 1, "nothing ran");
    assert_eq!(one::<i64>("SELECT count(*) FROM pg_class WHERE relname = 'new_t'"), 0);
}

/// dblink and postgres_fdw are installed here, so these cases test the checker, not their absence.
#[pg_test]
fn checker_refuses_dblink_and_foreign_data_functions_that_are_installed() {
    checker_fixtures();
    run("CREATE EXTENSION dblink");
    run("CREATE EXTENSION postgres_fdw");
    for sql in [
        "SELECT * FROM dblink('dbname=postgres', 'DELETE FROM t') AS r(x text)",
        "SELECT dblink_exec('dbname=postgres', 'DELETE FROM t')",
        "SELECT dblink_connect('c', 'dbname=postgres')",
        "SELECT postgres_fdw_disconnect_all()",
    ] {
        let reason = refusal(sql);
        assert!(reason.contains("volatile function"), "{sql}: {reason}");
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM t"), 1, "nothing ran");
}

#[pg_test]
fn checker_accepts_plain_reads_and_names_their_columns() {
    checker_fixtures();
    assert_eq!(accepted("SELECT a AS x, a + 1, b FROM t"), ["x", "?column?", "b"]);
    assert_eq!(accepted("WITH x AS (SELECT a FROM t) SELECT count(*) FROM x"), ["count"]);
    assert_eq!(accepted("SELECT a FROM t UNION SELECT 2 ORDER BY 1"), ["a"]);
    assert_eq!(accepted("TABLE t"), ["a", "b"]);
    assert_eq!(accepted("VALUES (1, 'x')"), ["column1", "column2"]);
    assert_eq!(accepted("SELECT now(), current_date, date_trunc('month', now())"), ["now", "current_date", "date_trunc"]);
    assert_eq!(accepted("SELECT t1.a, t2.a FROM t t1 JOIN t t2 USING (b)"), ["a", "a"]);
    assert_eq!(accepted("SELECT b, count(*) FROM t GROUP BY b ORDER BY 2 DESC, b"), ["b", "count"], "ORDER BY columns not selected are not output");
}

#[pg_test]
fn a_date_pattern_applied_to_a_number_is_refused_with_why() {
    run("CREATE TABLE trips (id int, year int, departed bigint, fare numeric, at timestamptz)");
    run("INSERT INTO trips VALUES (1, 2024, 1700000000, 9.5, '2024-05-01')");
    // As written it runs, and prints the pattern's letters.
    let printed = Spi::get_one::<String>("SELECT to_char(departed, 'YYYY-MM') FROM trips").unwrap();
    assert_eq!(printed.as_deref(), Some("YYYY-MM"));
    let reason = run_failure("SELECT to_char(t.departed, 'YYYY-MM') AS month, count(*) FROM trips t GROUP BY 1");
    assert!(reason.starts_with("`to_char(t.departed, 'YYYY-MM')` applies a date pattern to a number (bigint)"), "{reason}");
    assert!(reason.contains("to_timestamp"), "{reason}");
    assert!(run_failure("SELECT to_char(year, 'yyyy') FROM trips").starts_with("`to_char(year, 'yyyy')` applies a date pattern to a number (integer)"));
    let nested = run_failure("SELECT x FROM (SELECT to_char(fare * 2, 'HH24:MI') AS x FROM trips) s");
    assert!(nested.contains("(numeric)") && nested.contains("'HH24:MI'"), "{nested}");
    // Number patterns, date patterns on dates and timestamps, and a view's own calls pass.
    run("CREATE VIEW trip_years AS SELECT to_char(year, 'YYYY') AS y FROM trips");
    let fine = "SELECT to_char(fare, 'FM999.00'), to_char(year, '0000'), to_char(at, 'YYYY-MM'), to_char(to_timestamp(departed), 'HH24:MI'), 'YYYY' AS y, (SELECT y FROM trip_years) FROM trips";
    assert_eq!(run_checked(fine, 10, 10_000).unwrap().rows.len(), 1);
}

#[pg_test]
fn an_output_column_that_repeats_another_is_refused_with_why() {
    run("CREATE TABLE offerings (id int, has_exam boolean, seats int)");
    run("INSERT INTO offerings VALUES (1, true, 10), (2, false, 20)");
    let reason = run_failure("SELECT COUNT(*) AS with_exam, COUNT(*) AS without_exam FROM offerings WHERE has_exam");
    assert!(reason.starts_with("the columns `with_exam` and `without_exam` are the same expression"), "{reason}");
    assert!(run_failure("SELECT o.id, seats, o.id AS \"offering number\" FROM offerings o").contains("`id` and `offering number`"));
    // Different expressions, constants, a repeat inside a sub-query or in ORDER BY pass.
    let fine = "SELECT COUNT(*) FILTER (WHERE has_exam) AS with_exam, COUNT(*) FILTER (WHERE NOT has_exam) AS without_exam, 0 AS a, 0 AS b, (SELECT max(seats) + max(seats) FROM offerings) AS m FROM offerings ORDER BY COUNT(*)";
    assert_eq!(run_checked(fine, 10, 10_000).unwrap().rows, vec![vec![json!(1), json!(1), json!(0), json!(0), json!(40)]]);
}
