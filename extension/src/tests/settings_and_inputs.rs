// GUCs, and bad input rejected before the model is touched.

#[pg_test]
fn settings_have_documented_defaults_and_ranges() {
    assert_eq!(one::<String>("SHOW nl2sql.max_rows"), "1000");
    assert_eq!(one::<String>("SHOW nl2sql.statement_timeout"), "10s");
    assert_eq!(one::<String>("SHOW nl2sql.repair_attempts"), "1");
    assert_eq!(one::<String>("SHOW nl2sql.max_new_tokens"), "256");
    assert!(one::<String>("SHOW nl2sql.model_path").ends_with(".gguf"));
    assert_error("SET nl2sql.threads = 0", "0 is outside the valid range");
    assert_error("SET nl2sql.max_rows = 0", "0 is outside the valid range");
    assert_error("SET nl2sql.repair_attempts = 99", "99 is outside the valid range");
    run("SET nl2sql.statement_timeout = '2min'");
    assert_eq!(one::<String>("SHOW nl2sql.statement_timeout"), "2min");
    let status = one::<JsonB>("SELECT nl2sql_status()").0;
    assert_eq!(status["statement_timeout_ms"], json!(120_000));
    assert_eq!(status["model_present"], json!(true), "{status}");
}

#[pg_test]
fn only_superusers_choose_the_model_file() {
    run("CREATE ROLE plain_user");
    run("SET ROLE plain_user");
    let error = error_of("SET nl2sql.model_path = '/etc/passwd'");
    run("RESET ROLE");
    assert!(error.contains("permission denied to set parameter \"nl2sql.model_path\""), "{error}");
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

#[pg_test]
fn prompt_shows_the_schema_keys_comments_and_frequent_values() {
    load_demo();
    run("CREATE TABLE stores (id int PRIMARY KEY, city text)");
    run("CREATE TABLE orders (id int PRIMARY KEY, store_id int REFERENCES stores(id), total numeric)");
    run("COMMENT ON TABLE orders IS 'One row per order'");
    run("COMMENT ON COLUMN orders.total IS 'In euros'");
    let prompt = one::<String>("SELECT nl2sql_prompt('Which size sells best?')");
    assert!(prompt.starts_with("<|im_start|>system\n"), "{prompt}");
    assert!(prompt.contains("CREATE TABLE orders ( -- One row per order"), "{prompt}");
    assert!(prompt.contains("total numeric, -- In euros"), "{prompt}");
    assert!(prompt.contains("FOREIGN KEY (store_id) REFERENCES stores(id)"), "{prompt}");
    assert!(prompt.contains("PRIMARY KEY (id)"), "{prompt}");
    assert!(prompt.contains("\"time\" time without time zone"), "{prompt}");
    assert!(prompt.contains("size text, -- values: 'L', 'M', 'S', 'XL', 'XXL'") || prompt.contains("size text, -- values: "), "{prompt}");
    assert!(prompt.contains("'classic'") && prompt.contains("'veggie'"), "{prompt}");
    assert!(prompt.ends_with("<|im_start|>user\nWhich size sells best?<|im_end|>\n<|im_start|>assistant\n"), "{prompt}");
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
