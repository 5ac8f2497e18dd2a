// GUCs, and bad input rejected before the model is touched.

#[pg_test]
fn settings_have_documented_defaults_and_ranges() {
    assert_eq!(one::<String>("SHOW nl2sql.max_rows"), "1000");
    assert_eq!(one::<String>("SHOW nl2sql.statement_timeout"), "10s");
    assert_eq!(one::<String>("SHOW nl2sql.repair_attempts"), "1");
    assert_eq!(one::<String>("SHOW nl2sql.candidates"), "1");
    assert_eq!(one::<String>("SHOW nl2sql.rescue_candidates"), "3");
    assert_eq!(one::<String>("SHOW nl2sql.max_new_tokens"), "256");
    assert_eq!(one::<String>("SHOW nl2sql.device"), "cpu");
    assert_eq!(one::<String>("SHOW nl2sql.allowed_function_schemas"), "");
    assert_eq!(one::<String>("SHOW nl2sql.csv_max_size"), "1GB");
    assert_eq!(one::<String>("SHOW nl2sql.exact_arithmetic"), "on");
    assert!(one::<String>("SHOW nl2sql.model_path").ends_with(".gguf"));
    // The bounds are the engine's own constants.
    use nl2sql_engine::settings::{CANDIDATES, DRAFT_TOKENS, MAX_NEW_TOKENS, REPAIR_ATTEMPTS, RESCUE_CANDIDATES, THREADS};
    for (name, bounds) in [("threads", THREADS), ("max_new_tokens", MAX_NEW_TOKENS), ("repair_attempts", REPAIR_ATTEMPTS), ("candidates", CANDIDATES), ("rescue_candidates", RESCUE_CANDIDATES), ("draft_tokens", DRAFT_TOKENS)] {
        let row = value_rows(&format!("SELECT min_val::int, max_val::int, boot_val::int FROM pg_settings WHERE name = 'nl2sql.{name}'"));
        assert_eq!(row, vec![vec![json!(bounds.min), json!(bounds.max), json!(bounds.default)]], "nl2sql.{name}");
    }
    assert_error("SET nl2sql.threads = 0", "0 is outside the valid range");
    assert_error("SET nl2sql.max_rows = 0", "0 is outside the valid range");
    assert_error("SET nl2sql.repair_attempts = 99", "99 is outside the valid range");
    assert_error("SET nl2sql.candidates = 0", "0 is outside the valid range");
    assert_error("SET nl2sql.rescue_candidates = 8", "8 is outside the valid range");
    assert_error("SET nl2sql.draft_tokens = 9", "9 is outside the valid range");
    assert_error("SET nl2sql.device = 'gpu'", "invalid value for parameter \"nl2sql.device\": \"gpu\"");
    // The prefix is reserved: a typo is an error, not a placeholder that does nothing.
    assert_error("SET nl2sql.max_row = 5", "invalid configuration parameter name \"nl2sql.max_row\"");
    run("SET nl2sql.statement_timeout = '2min'");
    assert_eq!(one::<String>("SHOW nl2sql.statement_timeout"), "2min");
    let status = one::<JsonB>("SELECT nl2sql_status()").0;
    assert_eq!(status["statement_timeout_ms"], json!(120_000));
    assert_eq!(status["model_present"], json!(true), "{status}");
}

#[pg_test]
fn only_superusers_choose_the_model_file_the_device_and_the_allowed_schemas() {
    run("CREATE ROLE plain_user");
    run("SET ROLE plain_user");
    let errors = [
        error_of("SET nl2sql.model_path = '/etc/passwd'"),
        error_of("SET nl2sql.device = 'cuda'"),
        error_of("SET nl2sql.allowed_function_schemas = 'public'"),
    ];
    run("RESET ROLE");
    for (error, name) in errors.iter().zip(["model_path", "device", "allowed_function_schemas"]) {
        assert!(error.contains(&format!("permission denied to set parameter \"nl2sql.{name}\"")), "{error}");
    }
}

/// Threads are fixed when the backend loads the model: a later SET is reported, and the status
/// shows the value in force next to the one asked for.
#[pg_test]
fn settings_fixed_at_load_say_so_and_status_reports_what_is_in_force() {
    load_demo();
    one::<String>("SELECT nl2sql_sql('How many rows are there?')"); // loads the model with 2 threads
    run("SET nl2sql.threads = 1");
    let warnings = warnings_of("SELECT nl2sql_sql('How many rows are there?')");
    assert!(
        warnings.iter().any(|w| w == "nl2sql.threads is 1, but this backend loaded the model with 2 threads; the setting takes effect in a new connection"),
        "{warnings:?}"
    );
    let status = one::<JsonB>("SELECT nl2sql_status()").0;
    assert_eq!(status["loaded_in_this_session"], json!(true), "{status}");
    assert_eq!(status["threads"], json!(2), "in force: {status}");
    assert_eq!(status["requested"]["threads"], json!(1), "asked for: {status}");
}

/// This test server does not preload nl2sql (the web tests' server does: web/tests/worker.rs):
/// each backend loads its own model, and nl2sql_stats() says how to get one model per server.
#[pg_test]
fn without_preloading_there_is_no_model_worker_and_the_error_says_how_to_enable_it() {
    let status = one::<JsonB>("SELECT nl2sql_status()").0;
    assert_eq!(status["model_worker"], json!(false), "{status}");
    let error = error_of("SELECT nl2sql_stats()");
    assert!(error.contains("the model worker is not running: nl2sql is not in shared_preload_libraries"), "{error}");
    assert!(error.contains("HINT: Each backend loads its own copy") && error.contains("shared_preload_libraries = 'nl2sql'"), "{error}");
}

#[pg_test]
fn a_missing_model_is_an_error_that_says_how_to_fetch_it() {
    run("CREATE TABLE sales (id int, amount numeric)");
    run("SET nl2sql.model_path = '/nonexistent/model.gguf'");
    let error = error_of("SELECT nl2sql_sql('How much did we sell?')");
    assert!(error.contains("/nonexistent/model.gguf does not exist"), "{error}");
    assert!(error.contains("HINT: Run scripts/fetch-model") && error.contains("nl2sql.model_path"), "{error}");
}

#[pg_test]
fn bad_questions_get_clear_errors() {
    run("CREATE TABLE sales (id int, amount numeric)");
    assert_error("SELECT * FROM nl2sql(NULL)", "question is NULL");
    assert_error("SELECT * FROM nl2sql('')", "the question is empty");
    assert_error("SELECT nl2sql_sql('   \n\t ')", "the question is empty");
    assert_error("SELECT nl2sql_answer(repeat('how many sales? ', 7000))", "the limit is 2000");
    assert_error("SELECT explain_rows(NULL, '[]')", "question is NULL");
    assert_error("SELECT explain_rows('Total?', '42')", "rows must be a jsonb array of objects");
    assert_eq!(one::<i64>("SELECT count(*) FROM sales"), 0, "nothing changed");
}

#[pg_test]
fn no_readable_tables_is_an_error_with_a_hint() {
    run("CREATE TABLE not_granted (a int)");
    run("CREATE ROLE reads_nothing");
    run("SET ROLE reads_nothing");
    let error = error_of("SELECT nl2sql_prompt('How many?')");
    run("RESET ROLE");
    assert!(error.contains("no tables or views on your search_path that you may read") && error.contains("GRANT SELECT"), "{error}");
}

/// A fixture database whose rendering never changes: every kind of thing the prompt shows.
fn golden_fixture() {
    run("CREATE SCHEMA shop");
    run("CREATE TABLE stores (id int PRIMARY KEY, city text NOT NULL, \"Opened On\" date)");
    run("CREATE TABLE orders (id bigint PRIMARY KEY, store_id int REFERENCES stores(id), total numeric(10, 2), status text, placed_at timestamp)");
    run("COMMENT ON TABLE orders IS 'One row per order,\nplaced online or in a store'");
    run("COMMENT ON COLUMN orders.total IS 'In euros, tax included'");
    run("INSERT INTO stores SELECT g, (ARRAY['Lyon', 'Oslo', 'Porto'])[1 + g % 3], DATE '2020-01-01' + g FROM generate_series(1, 30) g");
    run("INSERT INTO orders SELECT g, 1 + g % 30, g * 1.5, (ARRAY['paid', 'paid', 'shipped', 'it''s late'])[1 + g % 4], TIMESTAMP '2024-01-01' + g * INTERVAL '1 hour' FROM generate_series(1, 400) g");
    run("CREATE VIEW shop.daily_totals AS SELECT placed_at::date AS day, sum(total) AS total FROM orders GROUP BY 1");
    run("SET search_path = public, shop");
    run("ANALYZE stores, orders");
}

/// Compares `actual` with the checked-in golden file byte for byte; on a difference, writes what
/// was produced next to the target dir so it can be reviewed and, if right, copied over.
fn assert_golden(name: &str, actual: &str) {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("cannot read {}: {e}", golden.display()));
    if actual != expected {
        let out = std::env::temp_dir().join(format!("nl2sql-golden-actual-{name}"));
        std::fs::write(&out, actual).unwrap();
        panic!("{} differs from what was produced; see {} (diff them)", golden.display(), out.display());
    }
}

#[pg_test]
fn prompt_matches_its_golden_file() {
    golden_fixture();
    let prompt = one::<String>("SELECT nl2sql_prompt('Which city has the most paid orders?', 'Use the city name.')");
    assert_golden("prompt.txt", &prompt);
}

#[pg_test]
fn schema_matches_its_golden_file() {
    golden_fixture();
    let schema = one::<JsonB>("SELECT nl2sql_schema()").0;
    assert_golden("schema.json", &(serde_json::to_string_pretty(&schema).unwrap() + "\n"));
}

#[pg_test]
fn quoting_matches_the_servers_quote_ident_for_every_keyword() {
    let rows = value_rows("SELECT word, quote_ident(word) FROM pg_get_keywords()");
    assert!(rows.len() > 400);
    for row in rows {
        let (word, quoted) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        assert_eq!(nl2sql_engine::schema::quote_ident(word), quoted, "keyword {word}");
    }
}
