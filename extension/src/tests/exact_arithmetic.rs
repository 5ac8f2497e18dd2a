// Arithmetic made exact before a generated statement is judged (exact_arithmetic.rs).

fn planes() {
    run("CREATE TABLE planes (code text, capacity int, range_miles int, payload bigint, speed smallint)");
    run("INSERT INTO planes VALUES ('a', 150, 3000, 20, 500), ('b', 300, 600, 40, 450)");
}

fn revision(sql: &str) -> String {
    crate::exact_arithmetic::revise(sql).unwrap_or_else(|| panic!("{sql} should be revised"))
}

#[pg_test]
fn exact_division_makes_a_ratio_of_integers_divide_a_numeric_and_run_exactly() {
    planes();
    let sql = "SELECT code, capacity / range_miles AS ratio FROM planes ORDER BY code";
    assert_eq!(run_checked(sql, 10, 10_000).unwrap().rows, vec![vec![json!("a"), json!(0)], vec![json!("b"), json!(0)]], "PostgreSQL truncates");
    let revised = revision(sql);
    assert_eq!(revised, "SELECT code, capacity::numeric / range_miles AS ratio FROM planes ORDER BY code");
    let rows = run_checked(&revised, 10, 10_000).unwrap().rows;
    assert_eq!((rows[0][1].as_f64(), rows[1][1].as_f64()), (Some(0.05), Some(0.5)), "{rows:?}");
}

#[pg_test]
fn exact_division_covers_every_integer_pair_aggregates_nesting_and_clauses() {
    planes();
    assert_eq!(
        revision("SELECT count(*) / count(DISTINCT code), sum(capacity)\n   / sum(speed) FROM planes"),
        "SELECT count(*)::numeric / count(DISTINCT code), sum(capacity)::numeric\n   / sum(speed) FROM planes",
        "bigint by bigint (a sum of integers), and the cast goes before the white space ahead of the operator"
    );
    assert_eq!(revision("SELECT speed / capacity, payload / speed FROM planes"), "SELECT speed::numeric / capacity, payload::numeric / speed FROM planes");
    assert_eq!(
        revision("SELECT round((capacity / range_miles) / speed, 2) FROM planes"),
        "SELECT round((capacity::numeric / range_miles)::numeric / speed, 2) FROM planes",
        "round(numeric, int) exists, round(float8, int) would not"
    );
    assert_eq!(
        revision("WITH r AS (SELECT code, capacity / range_miles AS x FROM planes) SELECT code FROM r WHERE x > (SELECT max(speed / capacity) FROM planes)"),
        "WITH r AS (SELECT code, capacity::numeric / range_miles AS x FROM planes) SELECT code FROM r WHERE x > (SELECT max(speed::numeric / capacity) FROM planes)"
    );
    assert_eq!(
        revision("SELECT capacity / range_miles AS r, count(*) FROM planes GROUP BY capacity / range_miles ORDER BY capacity / range_miles"),
        "SELECT capacity::numeric / range_miles AS r, count(*) FROM planes GROUP BY capacity::numeric / range_miles ORDER BY capacity::numeric / range_miles",
        "the grouped expression and the selected one stay the same expression"
    );
}

#[pg_test]
fn exact_division_leaves_constants_non_integers_and_views_alone() {
    planes();
    run("CREATE VIEW plane_ratios AS SELECT code, capacity / range_miles AS ratio FROM planes");
    for sql in [
        "SELECT range_miles / 60 FROM planes",
        "SELECT range_miles / (60 * 60), payload / -2, capacity / '7'::int FROM planes",
        "SELECT capacity / 2.5, capacity::float8 / range_miles, avg(capacity) / max(range_miles) FROM planes",
        "SELECT sum(capacity) / sum(payload) FROM planes", // the sum of bigints is numeric
        "SELECT capacity::numeric / range_miles FROM planes",
        "SELECT code, ratio FROM plane_ratios",
        "SELECT code FROM planes WHERE capacity > 100",
    ] {
        assert_eq!(crate::exact_arithmetic::revise(sql), None, "{sql}");
    }
}

#[pg_test]
fn exact_arithmetic_widens_a_cast_to_real_to_double_precision() {
    planes();
    let sql = "SELECT CAST(a.capacity AS REAL) / CAST(b.capacity AS real) AS ratio FROM planes a, planes b WHERE a.code = 'a' AND b.code = 'b'";
    let as_written = run_checked(sql, 10, 10_000).unwrap().rows;
    assert_eq!(as_written[0][0].as_f64(), Some(0.5), "{as_written:?}");
    let revised = revision(sql);
    assert_eq!(revised, "SELECT CAST(a.capacity AS double precision) / CAST(b.capacity AS double precision) AS ratio FROM planes a, planes b WHERE a.code = 'a' AND b.code = 'b'");
    // 6 significant digits as real (0.33333334), 15 as double precision.
    let third = "SELECT capacity::float4 / (3 * capacity)::Real AS third FROM planes WHERE code = 'a'";
    assert_eq!(run_checked(third, 10, 10_000).unwrap().rows[0][0].to_string(), "0.33333334", "real's precision, as PostgreSQL prints it");
    let revised = revision(third);
    assert_eq!(revised, "SELECT capacity::double precision / (3 * capacity)::double precision AS third FROM planes WHERE code = 'a'");
    assert_eq!(run_checked(&revised, 10, 10_000).unwrap().rows[0][0].as_f64(), Some(1.0 / 3.0));
    assert_eq!(
        revision("SELECT CAST(count(*) AS REAL) / count(DISTINCT code), sum(speed) / count(*) FROM planes"),
        "SELECT CAST(count(*) AS double precision) / count(DISTINCT code), sum(speed)::numeric / count(*) FROM planes",
        "both revisions in one statement"
    );
    run("CREATE TABLE readings (code text, level real)");
    run("INSERT INTO readings VALUES ('a', 1.1)");
    for sql in [
        "SELECT capacity::float8 / 3, CAST(speed AS float) FROM planes",
        "SELECT ARRAY[capacity]::real[] FROM planes",
        // Widened, these would compare 1.1 as double precision with 1.1 stored as real: no row.
        "SELECT code FROM readings WHERE level = '1.1'::real",
        "SELECT code FROM readings WHERE level::real = CAST(level AS REAL)",
    ] {
        assert_eq!(crate::exact_arithmetic::revise(sql), None, "{sql}");
    }
    assert_eq!(one::<String>("SELECT code FROM readings WHERE level = '1.1'::real"), "a");
}

#[pg_test]
fn exact_arithmetic_leaves_what_does_not_analyse_or_revise_cleanly_as_written() {
    planes();
    for sql in [
        "SELECT capacity / nope FROM planes",
        "SELECT capacity / range_miles FROM planes; SELECT 1",
        "",
        "SELECT capacity / FROM planes",
        // The cast would land in the comment: the revision still truncates, so none is made.
        "SELECT capacity -- the seats\n / range_miles FROM planes",
    ] {
        assert_eq!(crate::exact_arithmetic::revise(sql), None, "{sql:?}");
    }
    assert_eq!(one::<i64>("SELECT count(*) FROM planes"), 2, "the transaction is still usable");
}
