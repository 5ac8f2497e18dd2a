// Nothing the caller cannot read reaches the prompt.

fn privilege_fixtures() {
    run("CREATE TABLE public_info (id int, topic text)");
    run("CREATE TABLE secrets (id int, launch_code text)");
    run("INSERT INTO secrets SELECT g, 'code-' || (g % 3) FROM generate_series(1, 300) g");
    run("CREATE TABLE staff (name text, salary numeric, team text)");
    run("INSERT INTO staff SELECT 'n' || g, g * 1000, (ARRAY['red', 'blue'])[1 + g % 2] FROM generate_series(1, 200) g");
    run("ANALYZE secrets, staff");
    run("CREATE ROLE bob");
    run("GRANT SELECT ON public_info TO bob");
    run("GRANT SELECT (name, team) ON staff TO bob");
}

fn prompt_as(role: &str) -> String {
    run(&format!("SET ROLE {role}"));
    let prompt = one::<String>("SELECT nl2sql_prompt('What is there?')");
    run("RESET ROLE");
    prompt
}

#[pg_test]
fn prompt_holds_only_tables_and_columns_the_caller_may_read() {
    privilege_fixtures();
    let superuser_prompt = one::<String>("SELECT nl2sql_prompt('What is there?')");
    assert!(superuser_prompt.contains("launch_code") && superuser_prompt.contains("salary"));
    assert!(superuser_prompt.contains("'code-0'"), "frequent values for the owner: {superuser_prompt}");

    let prompt = prompt_as("bob");
    assert!(prompt.contains("CREATE TABLE public_info"), "{prompt}");
    assert!(!prompt.contains("secrets") && !prompt.contains("launch_code") && !prompt.contains("code-"), "{prompt}");
    assert!(prompt.contains("CREATE TABLE staff") && prompt.contains("team text"), "{prompt}");
    assert!(!prompt.contains("salary"), "a column bob may not read: {prompt}");
}

#[pg_test]
fn prompt_hides_frequent_values_of_tables_under_row_level_security() {
    privilege_fixtures();
    run("GRANT SELECT ON secrets TO bob");
    run("ALTER TABLE secrets ENABLE ROW LEVEL SECURITY");
    run("CREATE POLICY nothing_for_bob ON secrets USING (false)");
    let prompt = prompt_as("bob");
    assert!(prompt.contains("launch_code text"), "the table itself is readable: {prompt}");
    assert!(!prompt.contains("code-"), "values behind RLS must not leak through pg_stats: {prompt}");
}

#[pg_test]
fn generated_sql_runs_with_the_callers_privileges() {
    privilege_fixtures();
    run("SET ROLE bob");
    let outcome = run_checked("SELECT launch_code FROM secrets", 10, 10_000);
    run("RESET ROLE");
    match outcome {
        Err(StatementFailure::Failed(e)) => assert_eq!(e.message, "permission denied for table secrets"),
        other => panic!("bob must not read secrets: {other:?}"),
    }
}
