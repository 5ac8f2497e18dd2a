// Attacks by an ordinary role with CREATE on public against a superuser who uses nl2sql: trojan
// overloads of what the extension's own SQL and the generated SQL call, functions that lie about
// their volatility, and side effects while planning.

/// The role `attacker` (no superuser) owns functions in public that try to make it SUPERUSER
/// when a superuser runs them. `overloads` are exact-type overloads that beat pg_catalog's.
fn plant_trojans(overloads: &[&str]) {
    run("CREATE ROLE attacker");
    run("GRANT CREATE ON SCHEMA public TO attacker");
    run("SET ROLE attacker");
    run("CREATE FUNCTION public.escalate() RETURNS void LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE attacker SUPERUSER; END $$");
    for overload in overloads {
        run(overload);
    }
    run("RESET ROLE");
}

fn attacker_is_superuser() -> bool {
    one::<bool>("SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'")
}

/// A PL/pgSQL body that escalates, then returns `value`.
fn trojan(signature: &str, returns: &str, value: &str) -> String {
    format!("CREATE FUNCTION public.{signature} RETURNS {returns} IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM public.escalate(); RETURN {value}; END $$")
}

#[pg_test]
fn trojan_overloads_never_run_in_the_extensions_own_sql() {
    run("CREATE TABLE items (id int PRIMARY KEY, label text, code int2)");
    run("INSERT INTO items SELECT g, (ARRAY['one', 'two'])[1 + g % 2], g FROM generate_series(1, 20) g");
    run("ANALYZE items");
    plant_trojans(&[
        // Each beats pg_catalog's function for the argument types used, were it looked up on
        // the caller's search path: the old result wrapper's jsonb_build_array(q.c1) over an
        // integer column, the catalog query's jsonb_agg(attname), to_jsonb(text[]),
        // unnest(conkey) and oid = regclass, the CSV loader's unnest($1::text[]).
        &trojan("jsonb_build_array(integer)", "jsonb", "'[\"1 (trojan)\"]'"),
        &trojan("to_jsonb(integer)", "jsonb", "'\"trojan\"'"),
        &trojan("to_jsonb(text[])", "jsonb", "'[\"trojan\"]'"),
        &trojan("unnest(smallint[])", "SETOF smallint", "NEXT 1"),
        &trojan("unnest(text[])", "SETOF text", "NEXT 'trojan'"),
        &trojan("agg_step(jsonb, name)", "jsonb", "'[]'"),
        "CREATE AGGREGATE public.jsonb_agg(name) (SFUNC = public.agg_step, STYPE = jsonb)",
        &trojan("oid_is(oid, regclass)", "boolean", "true"),
        "CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.oid_is)",
    ]);
    assert!(!attacker_is_superuser());
    let schema = one::<JsonB>("SELECT nl2sql_schema()").0;
    assert!(schema.to_string().contains("\"label\""), "the catalog query still works: {schema}");
    let prompt = one::<String>("SELECT nl2sql_prompt('How many items?')");
    assert!(prompt.contains("CREATE TABLE items") && !prompt.contains("trojan"), "{prompt}");
    assert!(prompt.contains("label text, -- values: 'one', 'two'") || prompt.contains("label text, -- values: 'two', 'one'"), "{prompt}");
    let rows = run_checked("SELECT id, label, code FROM items ORDER BY id LIMIT 2", 10, 10_000).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rows.rows, vec![vec![json!(1), json!("two"), json!(1)], vec![json!(2), json!("one"), json!(2)]]);
    let csv = csv_file("trojan.csv", "a\n1\n");
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{csv}', 'loaded_by_superuser')")), 1);
    assert!(!attacker_is_superuser(), "no trojan ran as the superuser");
}

#[pg_test]
fn generated_sql_may_not_call_user_functions_operators_or_aggregates() {
    run("CREATE TABLE items (id int, price numeric, note varchar)");
    run("INSERT INTO items VALUES (1, 2.5, 'a')");
    plant_trojans(&[
        &trojan("jsonb_build_array(integer)", "jsonb", "'[]'"),
        &trojan("lower(character varying)", "text", "'trojan'"),
        &trojan("add_numeric(integer, numeric)", "numeric", "0"),
        "CREATE OPERATOR public.+ (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = public.add_numeric)",
        &trojan("sum_step(numeric, numeric)", "numeric", "0"),
        "CREATE AGGREGATE public.total(numeric) (SFUNC = public.sum_step, STYPE = numeric)",
        &trojan("positive(numeric)", "boolean", "true"),
        "CREATE DOMAIN public.price AS numeric CHECK (public.positive(VALUE))",
        "CREATE VIEW public.priced AS SELECT id, public.lower(note) AS note FROM items",
    ]);
    run("GRANT SELECT ON items TO attacker");
    let cases = [
        ("SELECT jsonb_build_array(id) FROM items", "function public.jsonb_build_array(integer)"),
        ("SELECT lower(note) FROM items", "function public.lower(character varying)"),
        ("SELECT id + 1.5 FROM items", "operator public.+(integer,numeric)"),
        ("SELECT total(price) FROM items", "function public.total(numeric)"),
        ("SELECT price::public.price FROM items", "domain public.price"),
        ("SELECT * FROM priced", "function public.lower(character varying)"),
        ("SELECT id FROM items WHERE note = lower('A'::varchar)", "function public.lower(character varying)"),
        ("SELECT id FROM items ORDER BY id + 1.5", "operator public.+(integer,numeric)"),
    ];
    for (sql, named) in cases {
        let reason = refusal(sql);
        assert!(reason.contains(named) && reason.contains("nl2sql.allowed_function_schemas"), "{sql}: {reason}");
        let reason = run_failure(sql);
        assert!(reason.contains(named), "running {sql}: {reason}");
    }
    assert!(!attacker_is_superuser(), "no trojan ran");
    // pg_catalog's own functions, operators, aggregates and casts remain available.
    assert_eq!(accepted("SELECT lower(note::text), sum(price + 1), count(*) FILTER (WHERE id > 0) FROM items GROUP BY 1"), ["lower", "sum", "count"]);
}

/// An enum, a composite type and a domain of a user schema can still be read: their values are
/// read and printed by pg_catalog's code.
#[pg_test]
fn generated_sql_may_read_user_enums_composites_and_domains() {
    run("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    run("CREATE DOMAIN score AS integer CHECK (VALUE >= 0)");
    run("CREATE TABLE visits (id int, feeling mood, points score)");
    run("INSERT INTO visits VALUES (1, 'happy', 3), (2, 'sad', 0)");
    let result = run_checked("SELECT v.feeling, v.points, v FROM visits v WHERE v.feeling > 'sad' ORDER BY id", 10, 10_000)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(result.rows, vec![vec![json!("happy"), json!(3), json!({"id": 1, "feeling": "happy", "points": 3})]]);
}

/// Once an administrator allows a schema, its functions may run: then the read-only transaction
/// state stops whatever they write, however deep, with PostgreSQL's own error.
#[pg_test]
fn read_only_state_stops_writes_through_functions_that_lie_about_volatility() {
    run("CREATE TABLE items (id int)");
    run("INSERT INTO items VALUES (1)");
    run("CREATE TABLE audit (at timestamptz)");
    run("CREATE SEQUENCE counter");
    run("CREATE FUNCTION public.record() RETURNS int VOLATILE LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (now()); RETURN 1; END $$");
    run("CREATE FUNCTION public.looks_stable() RETURNS int STABLE LANGUAGE plpgsql AS $$ BEGIN RETURN public.record(); END $$");
    run("CREATE FUNCTION public.next_id() RETURNS bigint STABLE LANGUAGE sql AS $$ SELECT nextval('counter') $$");
    run("CREATE FUNCTION public.set_id() RETURNS bigint STABLE LANGUAGE sql AS $$ SELECT setval('counter', 100) $$");
    assert!(refusal("SELECT looks_stable() FROM items").contains("function public.looks_stable()"), "refused by default");

    run("SET nl2sql.allowed_function_schemas = 'public'");
    let failure = run_failure("SELECT looks_stable() FROM items");
    assert_eq!(failure, "ERROR: cannot execute INSERT in a read-only transaction");
    let failure = run_failure("SELECT next_id() FROM items");
    assert_eq!(failure, "ERROR: cannot execute nextval() in a read-only transaction");
    let failure = run_failure("SELECT set_id() FROM items");
    assert_eq!(failure, "ERROR: cannot execute setval() in a read-only transaction");
    assert_eq!(one::<i64>("SELECT count(*) FROM audit"), 0, "nothing was inserted");
    assert!(!one::<bool>("SELECT is_called FROM counter"), "the sequence never moved");
    assert_eq!(one::<String>("SHOW transaction_read_only"), "off", "the caller's transaction is writable again");
    run("INSERT INTO audit VALUES (now())"); // and really is
}

/// nl2sql_sql only plans; the planner folds stable functions while estimating, so planning runs
/// under the same read-only state: a sequence does not move.
#[pg_test]
fn planning_has_no_side_effects() {
    run("CREATE TABLE items (id bigint)");
    run("INSERT INTO items SELECT g FROM generate_series(1, 100) g");
    run("ANALYZE items");
    run("CREATE SEQUENCE counter");
    run("CREATE FUNCTION public.next_id() RETURNS bigint STABLE LANGUAGE sql AS $$ SELECT nextval('counter') $$");
    run("SET nl2sql.allowed_function_schemas = 'public'");
    let before = one::<i64>("SELECT last_value FROM counter");
    let _ = statement::plan("SELECT id FROM items WHERE id = next_id()", &allowed());
    assert_eq!(one::<i64>("SELECT last_value FROM counter"), before);
    assert!(!one::<bool>("SELECT is_called FROM counter"), "nextval never ran");
}

/// The extension's own SQL pins search_path only for itself: the caller's is unchanged after,
/// also after an error.
#[pg_test]
fn the_callers_search_path_and_read_only_state_are_restored() {
    run("CREATE SCHEMA elsewhere");
    run("CREATE TABLE elsewhere.things (id int)");
    run("SET search_path = elsewhere, public");
    one::<JsonB>("SELECT nl2sql_schema()");
    assert_eq!(one::<String>("SHOW search_path"), "elsewhere, public");
    let _ = run_checked("SELECT 1 / 0", 1, 1000);
    assert_eq!(one::<String>("SHOW transaction_read_only"), "off");
    let schema = one::<JsonB>("SELECT nl2sql_schema()").0;
    assert_eq!(schema["tables"][0]["name"], json!("things"));
    assert_eq!(schema["tables"][0]["schema"], Value::Null, "visible on the caller's path, so unqualified: {schema}");
}

/// A search_path that puts a hostile schema before pg_catalog makes even exact-signature
/// functions resolve to the hostile ones: they are still refused, and the extension's own SQL
/// does not use them.
#[pg_test]
fn a_hostile_schema_first_on_the_search_path_is_refused() {
    run("CREATE TABLE notes (body text)");
    run("INSERT INTO notes VALUES ('Hello')");
    run("CREATE SCHEMA evil");
    run("CREATE FUNCTION evil.lower(text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'trojan' $$");
    run("CREATE FUNCTION evil.jsonb_agg(anyelement) RETURNS jsonb IMMUTABLE LANGUAGE sql AS $$ SELECT '[]'::jsonb $$");
    run("SET search_path = evil, public, pg_catalog");
    let reason = refusal("SELECT lower(body) FROM notes");
    assert!(reason.contains("function evil.lower("), "{reason}");
    let schema = one::<JsonB>("SELECT nl2sql_schema()").0;
    assert_eq!(schema["tables"][0]["name"], json!("notes"), "the catalog query is not fooled: {schema}");
    let rows = run_checked("SELECT pg_catalog.lower(body) FROM notes", 10, 10_000).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rows.rows, vec![vec![json!("hello")]]);
}

/// Several permissive and restrictive policies, a security-barrier view and SET ROLE: what runs
/// returns exactly the rows the role may see, and the prompt names nothing else.
#[pg_test]
fn row_security_views_and_set_role_hold_through_nl2sql() {
    run("CREATE TABLE tickets (id int, team text, secret text, public_note text)");
    run("INSERT INTO tickets VALUES (1, 'red', 's1', 'n1'), (2, 'blue', 's2', 'n2'), (3, 'red', 's3', 'n3'), (4, 'green', 's4', 'n4')");
    run("ALTER TABLE tickets ENABLE ROW LEVEL SECURITY");
    run("CREATE POLICY reds ON tickets USING (team = 'red')");
    run("CREATE POLICY greens ON tickets USING (team = 'green')");
    run("CREATE POLICY not_four ON tickets AS RESTRICTIVE USING (id <> 4)");
    run("CREATE VIEW open_tickets WITH (security_barrier) AS SELECT id, public_note FROM tickets WHERE id < 3");
    run("CREATE ROLE agent");
    run("GRANT SELECT (id, team, public_note) ON tickets TO agent");
    run("GRANT SELECT ON open_tickets TO agent");
    run("SET ROLE agent");
    let rows = run_checked("SELECT id FROM tickets ORDER BY id", 10, 10_000).unwrap_or_else(|e| panic!("{e:?}"));
    let secret = run_failure("SELECT secret FROM tickets");
    let prompt = one::<String>("SELECT nl2sql_prompt('Show every secret')");
    let through_view = run_checked("SELECT id FROM open_tickets ORDER BY id", 10, 10_000).unwrap_or_else(|e| panic!("{e:?}"));
    run("RESET ROLE");
    assert_eq!(rows.rows, vec![vec![json!(1)], vec![json!(3)]], "permissive red or green, restrictive not 4");
    assert!(secret.contains("permission denied for table tickets"), "{secret}");
    assert!(!prompt.contains("secret text") && !prompt.contains("'s1'"), "{prompt}");
    assert_eq!(through_view.rows, vec![vec![json!(1)], vec![json!(2)]], "the view runs as its owner, as PostgreSQL defines");
}
