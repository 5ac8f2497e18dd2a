// The adversarial corpus (extension/tests/adversarial/corpus.tsv, written by make-corpus.py):
// 500+ statements aimed at the checker, each labelled. Run as a superuser (whom the checker is
// the last line of defence for), with dblink and postgres_fdw installed, against a fixture of
// tables, a sequence, a view over random() and functions of public that lie about volatility.

fn adversarial_fixture() {
    run("CREATE EXTENSION dblink");
    run("CREATE EXTENSION postgres_fdw");
    run("CREATE TABLE t (a int, b text, d date)");
    run("INSERT INTO t VALUES (1, 'x', '2015-01-02'), (2, 'y,z', '2015-06-30'), (3, NULL, NULL)");
    run("CREATE TABLE u (a int, c text)");
    run("INSERT INTO u VALUES (1, 'one'), (2, 'two')");
    run("CREATE TABLE audit_log (at timestamptz)");
    run("CREATE SEQUENCE s");
    run("CREATE VIEW v_random AS SELECT a, random() AS r FROM t");
    run("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'");
    run("CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$");
    run("CREATE FUNCTION public.write_log() RETURNS int VOLATILE LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log VALUES (now()); RETURN 1; END $$");
    run("CREATE FUNCTION public.stable_writer() RETURNS int STABLE LANGUAGE plpgsql AS $$ BEGIN RETURN public.write_log(); END $$");
    run("CREATE FUNCTION public.immutable_escalator() RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'ALTER ROLE CURRENT_USER SUPERUSER'; RETURN 1; END $$");
    run("CREATE FUNCTION public.definer_reader() RETURNS text STABLE SECURITY DEFINER LANGUAGE sql AS $$ SELECT pg_read_file('/etc/hostname') $$");
    run("CREATE FUNCTION public.set_returning_writer() RETURNS SETOF int STABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM public.write_log(); RETURN NEXT 1; END $$");
    run("CREATE FUNCTION public.sql_nextval() RETURNS bigint STABLE LANGUAGE sql AS $$ SELECT nextval('s') $$");
    run("CREATE FUNCTION public.add_numeric(integer, numeric) RETURNS numeric IMMUTABLE LANGUAGE sql AS $$ SELECT public.write_log()::numeric $$");
    run("CREATE OPERATOR public.+ (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = public.add_numeric)");
    run("CREATE FUNCTION public.total_step(integer, integer) RETURNS integer IMMUTABLE LANGUAGE sql AS $$ SELECT $1 + $2 $$");
    run("CREATE AGGREGATE public.total(integer) (SFUNC = public.total_step, STYPE = integer)");
    run("CREATE FUNCTION public.lower(character varying) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'trojan' $$");
    run("CREATE FUNCTION public.is_positive(integer) RETURNS boolean IMMUTABLE LANGUAGE sql AS $$ SELECT $1 > 0 $$");
    run("CREATE DOMAIN public.positive_int AS integer CHECK (public.is_positive(VALUE))");
    run("CREATE VIEW v_trojan AS SELECT a, public.stable_writer() AS w FROM t");
}

/// The observable state the corpus must leave as it was.
fn adversarial_state() -> Vec<Vec<Value>> {
    value_rows(
        "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u), (SELECT count(*) FROM audit_log), \
         (SELECT last_value FROM s), (SELECT is_called FROM s), (SELECT count(*) FROM pg_class WHERE relname = 'x'), \
         (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
}

#[pg_test]
fn the_adversarial_corpus_is_refused_and_the_reads_are_allowed() {
    adversarial_fixture();
    let before = adversarial_state();
    let corpus = include_str!("../../tests/adversarial/corpus.tsv");
    let (mut tried, mut refused, mut accepted) = (0, 0, 0);
    let (mut wrongly_allowed, mut wrongly_refused, mut other_reason) = (Vec::new(), Vec::new(), Vec::new());
    for line in corpus.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.splitn(3, '\t');
        let (expected, why, sql) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        let sql = sql.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\");
        tried += 1;
        let outcome = statement::plan(&sql, &allowed());
        match (expected, outcome) {
            ("allowed", Ok(_)) => {
                accepted += 1;
                // Allowed statements also run, read-only, as nl2sql runs them.
                if let Err(e) = run_checked(&sql, 100, 10_000) {
                    wrongly_refused.push(format!("{sql:?} planned but did not run: {e:?}"));
                }
            }
            ("allowed", Err(e)) => {
                refused += 1;
                wrongly_refused.push(format!("{sql:?}: {e:?}"));
            }
            (_, Ok(_)) => {
                accepted += 1;
                wrongly_allowed.push(sql.clone());
            }
            (_, Err(e)) => {
                refused += 1;
                let reason = match &e {
                    StatementFailure::Refused(reason) => reason.clone(),
                    StatementFailure::Failed(pg) => format!("ERROR: {}", pg.message),
                    StatementFailure::TimedOut => "timed out".into(),
                };
                if !reason.contains(why) {
                    other_reason.push(format!("{sql:?} (expected {why:?}): {reason}"));
                }
            }
        }
    }
    // The numbers the README reports.
    let report = format!(
        "adversarial corpus: {tried} tried, {refused} refused, {accepted} allowed, {} wrongly allowed, {} wrongly refused, {} refused for another reason than labelled",
        wrongly_allowed.len(),
        wrongly_refused.len(),
        other_reason.len()
    );
    let details = format!(
        "wrongly allowed:\n{}\nwrongly refused:\n{}\nrefused for another reason:\n{}",
        wrongly_allowed.join("\n"),
        wrongly_refused.join("\n"),
        other_reason.join("\n")
    );
    crate::errors::report(pgrx::PgLogLevel::WARNING, &report, Some(&details));
    // For the README's numbers (the server's log shows the WARNING too).
    let _ = std::fs::write(std::env::temp_dir().join("nl2sql-adversarial-report.txt"), format!("{report}\n{details}\n"));
    assert!(tried >= 500, "{report}");
    assert!(wrongly_allowed.is_empty(), "{report}\nwrongly allowed:\n{}", wrongly_allowed.join("\n"));
    assert!(wrongly_refused.is_empty(), "{report}\nwrongly refused:\n{}", wrongly_refused.join("\n"));
    assert_eq!(adversarial_state(), before, "nothing was written, no sequence moved, no role changed");
}

/// nl2sql_check(sql) gives the checker's verdict without the model: for people, and for aiming
/// attacks at it.
#[pg_test]
fn nl2sql_check_says_what_the_checker_decides() {
    adversarial_fixture();
    let verdict = one::<JsonB>("SELECT nl2sql_check('SELECT a, b FROM t')").0;
    assert_eq!(verdict, json!({ "allowed": true, "reason": null, "columns": ["a", "b"] }));
    let verdict = one::<JsonB>("SELECT nl2sql_check('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d')").0;
    assert_eq!(verdict["allowed"], json!(false));
    assert!(verdict["reason"].as_str().unwrap().contains("WITH clauses that INSERT"), "{verdict}");
    let verdict = one::<JsonB>("SELECT nl2sql_check('SELECT nope FROM t')").0;
    assert_eq!(verdict["reason"], json!("ERROR: column \"nope\" does not exist"));
    assert_eq!(one::<i64>("SELECT count(*) FROM t"), 3);
}

/// A bounded random search for a statement that gets past the checker and writes: statements
/// built from a small SELECT grammar with hostile parts (writing CTEs, locks, volatile and lying
/// functions, trailing statements) and, sometimes, random fragments spliced in; each is either
/// refused, or allowed and then run without changing anything; no input crashes the backend.
#[pg_test]
fn random_statements_are_refused_or_read_only() {
    adversarial_fixture();
    let before = adversarial_state();
    let expressions = [
        "a", "b", "1", "'x'", "count(*)", "lower(b)", "a + 1", "a + 1.5", "nextval('s')", "random()", "public.stable_writer()",
        "txid_current()", "now()", "d - 1", "(SELECT max(a) FROM u)", "pg_sleep(0)", "b::varchar", "lower(b::varchar)", "a::public.positive_int",
    ];
    let relations = ["t", "u", "v_random", "v_trojan", "t JOIN u USING (a)", "(DELETE FROM t RETURNING *) x", "generate_series(1, 3) g", "public.set_returning_writer() f"];
    let heads = ["", "", "WITH w AS (DELETE FROM t RETURNING a) ", "WITH w AS (SELECT a FROM u) ", "WITH w AS (UPDATE t SET a = 0 RETURNING a) "];
    let tails = ["", "", "LIMIT 1", "ORDER BY 1", "FOR UPDATE", "; DELETE FROM t", "UNION SELECT 1", "-- ; DROP TABLE t", "INTO x"];
    let junk = ["(", ")", ";", "DELETE", "--", "/*", "*/", "$$", "'", "\"", ",", "SELECT", "FROM", "\n"];
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut next = move |n: usize| rng.usize(..n);
    let (mut tried, mut ran) = (0, 0);
    for _ in 0..3000 {
        let columns: Vec<&str> = (0..1 + next(3)).map(|_| expressions[next(expressions.len())]).collect();
        let mut sql = format!(
            "{}SELECT {} FROM {} WHERE {} IS NOT NULL {}",
            heads[next(heads.len())],
            columns.join(", "),
            relations[next(relations.len())],
            expressions[next(expressions.len())],
            tails[next(tails.len())]
        );
        if next(4) == 0 {
            let at = next(sql.len());
            let at = (0..=at).rev().find(|&i| sql.is_char_boundary(i)).unwrap_or(0);
            sql.insert_str(at, junk[next(junk.len())]);
        }
        tried += 1;
        if statement::plan(&sql, &allowed()).is_ok() {
            ran += 1;
            let _ = run_checked(&sql, 10, 1_000);
        }
    }
    assert_eq!(adversarial_state(), before, "{tried} random statements, {ran} allowed and run: nothing changed");
    assert!(ran >= 30, "many random statements are plain reads ({ran}), so the run side is exercised too");
}
